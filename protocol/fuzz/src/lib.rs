//! The bodies of the protocol's fuzz targets. The cargo-fuzz targets call them through this
//! crate, and the stable replay of their corpora (`protocol/tests/fuzz_corpus.rs`) includes this
//! very file, so the two cannot drift. Each body takes any bytes, must never panic, and returns
//! whether the input was accepted (it decoded and verified), which the replay counts. Where a
//! decoder has an encoder, what decodes must encode back to what decodes the same.
//!
//! Only `crossmatch_protocol` and `std` are used here: the replay test has nothing else.

use std::sync::OnceLock;

use crossmatch_protocol::{
    Entry, FederationId, FederationSecret, KeyChange, PublicKey, RosterBody, RosterMember,
    SealedSecret, SignedMemberRecord, SignedRoster, SigningKey, VerifiedRoster,
    decode_roster_announcement, decode_roster_conflict, decode_roster_conflict_announcement,
    encode_roster_announcement, encode_roster_conflict_announcement, fork_evidence_manifests,
    open_secret, secret_fingerprint, sign_roster, verify_batch, verify_conflict,
    verify_fork_evidence, verify_founding, verify_manifest, verify_successor,
};

/// The federation of the wire vectors (the `wire` corpus's seeds).
pub const WIRE_FEDERATION: FederationId = FederationId([0xfe; 32]);

/// The key the wire vectors were signed with.
pub fn wire_origin() -> PublicKey {
    PublicKey::from_bytes(&[
        0x21, 0x52, 0xf8, 0xd1, 0x9b, 0x79, 0x1d, 0x24, 0x45, 0x32, 0x42, 0xe1, 0x5f, 0x2e, 0xab,
        0x6c, 0xb7, 0xcf, 0xfa, 0x7b, 0x6a, 0x5e, 0xd3, 0x00, 0x97, 0x96, 0x0e, 0x06, 0x98, 0x81,
        0xdb, 0x12,
    ])
    .expect("the wire vectors' key is a valid key")
}

/// The batch wire decoder and verifier, the manifest verifier and the entry decoder: a batch
/// that verifies re-encodes to its wire form byte for byte.
pub fn wire(bytes: &[u8]) -> bool {
    let roster = [wire_origin()];
    let mut verified = false;
    if let Ok(batch) = verify_batch(bytes, &WIRE_FEDERATION, &roster[..]) {
        verified = true;
        for _ in batch.entries() {}
        assert_eq!(batch.to_wire(), bytes, "a verified batch re-encodes to its wire form");
    }
    let _ = verify_manifest(bytes, &WIRE_FEDERATION, &roster[..]);
    let _ = Entry::decode(bytes, 0);
    verified
}

/// The federation of the fork and roster seeds.
pub const FEDERATION: FederationId = FederationId([7; 32]);

/// The signing key of seed `n` (node keys 1.., governance keys 101..).
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

/// Fork evidence, split and verified against origins 1 and 2: verified evidence names one of
/// them, and a seq its second manifest contradicts.
pub fn fork(bytes: &[u8]) -> bool {
    // Derived once: two key derivations per input were most of an input's cost.
    static ROSTER: OnceLock<[PublicKey; 2]> = OnceLock::new();
    let roster = ROSTER.get_or_init(|| [key(1).public_key(), key(2).public_key()]);
    let _ = fork_evidence_manifests(bytes);
    match verify_fork_evidence(bytes, &FEDERATION, &roster[..]) {
        Ok(fork) => {
            assert!(roster.contains(&fork.origin), "a fork names an origin of the roster");
            assert!(fork.seq >= 1, "a fork's contested seq is a real seq");
            true
        }
        Err(_) => false,
    }
}

/// The member ids of the seed federation.
pub const IDS: [&str; 3] = ["DE", "FR", "NL"];

/// The seed federation's version-1 body: members `IDS`, node key `n + 1`, governance key
/// `n + 101`, threshold 2.
pub fn founding_body() -> RosterBody {
    let members = IDS
        .iter()
        .zip(1u8..)
        .map(|(id, n)| {
            let node_key = key(n).public_key();
            RosterMember {
                id: (*id).to_owned(),
                name: format!("Unit {id}"),
                node_key,
                governance_key: key(n + 100).public_key(),
                sealing_key: node_key.to_x25519(),
                retired_node_keys: Vec::new(),
            }
        })
        .collect();
    RosterBody {
        federation_id: FEDERATION,
        version: 1,
        epoch: 1,
        expires_at_ms: 1_900_000_000_000,
        threshold: 2,
        max_retention_days: 180,
        quota_entries_per_day: 200_000,
        quota_bytes_per_day: 64 * 1024 * 1024,
        secret_fingerprint: secret_fingerprint(&FederationSecret::from_bytes([5; 32])),
        rotation: None,
        members,
    }
}

/// `body` signed by every member's governance key.
pub fn signed_by_all(body: RosterBody) -> SignedRoster {
    let mut roster = SignedRoster { body, signatures: Vec::new(), key_changes: Vec::new() };
    for (id, n) in IDS.iter().zip(1u8..) {
        let signature = sign_roster(&roster.body, id, &key(n + 100));
        roster.add_signature(signature);
    }
    roster
}

/// The seed federation's founding roster, verified once.
fn current() -> &'static VerifiedRoster {
    static CURRENT: OnceLock<VerifiedRoster> = OnceLock::new();
    CURRENT.get_or_init(|| {
        verify_founding(&signed_by_all(founding_body())).expect("the seed roster founds")
    })
}

/// Everything of the roster's wire forms a peer or an operator can hand a node: a signed
/// roster (founding and successor checks), a roster conflict, a member record, a key change,
/// a sealed secret, and the roster topic's two announcements. What decodes re-encodes to what
/// decodes the same.
pub fn roster(bytes: &[u8]) -> bool {
    let current = current();
    let mut accepted = false;
    if let Ok(roster) = SignedRoster::from_wire(bytes) {
        let again = SignedRoster::from_wire(&roster.to_wire());
        assert_eq!(again.as_ref(), Ok(&roster), "a signed roster re-encodes to itself");
        accepted |= verify_founding(&roster).is_ok();
        accepted |= verify_successor(current, &roster).is_ok();
    }
    if let Ok((first, second)) = decode_roster_conflict(bytes) {
        accepted |= verify_conflict(current, &first, &second).is_ok();
    }
    if let Ok(record) = SignedMemberRecord::from_wire(bytes) {
        let again = SignedMemberRecord::from_wire(&record.to_wire());
        assert_eq!(again.as_ref(), Ok(&record), "a member record re-encodes to itself");
        accepted |= record.verify(current, None).is_ok();
    }
    if let Ok(change) = KeyChange::from_wire(bytes) {
        let again = KeyChange::from_wire(&change.to_wire());
        assert_eq!(again.as_ref(), Ok(&change), "a key change re-encodes to itself");
        accepted |= change.verify().is_ok();
    }
    if let Ok(sealed) = SealedSecret::from_wire(bytes) {
        let again = SealedSecret::from_wire(&sealed.to_wire());
        assert_eq!(again.as_ref(), Ok(&sealed), "a sealed secret re-encodes to itself");
        accepted |= open_secret(&sealed, &key(1)).is_ok();
    }
    if let Some((announcer, version, hash)) = decode_roster_announcement(bytes) {
        assert_eq!(encode_roster_announcement(&announcer, version, &hash), bytes);
        accepted = true;
    }
    if let Some((announcer, version, hashes)) = decode_roster_conflict_announcement(bytes) {
        assert_eq!(encode_roster_conflict_announcement(&announcer, version, &hashes), bytes);
        accepted = true;
    }
    accepted
}
