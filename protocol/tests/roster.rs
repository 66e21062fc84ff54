//! The roster, member records, key changes and the sealed secret (docs/PROTOCOL.md §4):
//! founding and successor verification with every way to get it wrong, conflicts, records,
//! sealing, the Ed25519 → X25519 conversion against libsodium's, and property tests of the
//! decoders.

use crossmatch_protocol::{
    BatchHash, FederationId, FederationSecret, FinalHead, GovernanceSignature, KeyChange,
    MemberRecord, PublicKey, RosterBody, RosterMember, RosterProblem, Rotation, SealError,
    SealedSecret, SignedMemberRecord, SignedRoster, SigningKey, VerifiedRoster,
    decode_roster_conflict, open_secret, seal_secret, secret_fingerprint,
    secret_fingerprint_phone_form, sign_roster, verify_conflict, verify_founding, verify_successor,
};
use proptest::prelude::*;

const FEDERATION: FederationId = FederationId([0xfe; 32]);
const NOW_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY_MS: u64 = 86_400_000;
const IDS: [&str; 6] = ["AT", "BE", "DE", "FR", "NL", "PL"];

fn node_key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn governance_key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n + 100; 32])
}

fn member(n: u8) -> RosterMember {
    let node = node_key(n).public_key();
    RosterMember {
        id: IDS[usize::from(n)].to_owned(),
        name: format!("Unit {n}"),
        node_key: node,
        governance_key: governance_key(n).public_key(),
        sealing_key: node.to_x25519(),
        retired_node_keys: vec![],
    }
}

fn secret(n: u8) -> FederationSecret {
    FederationSecret::from_bytes([n; 32])
}

/// Version 1 of a federation of members 0..n with threshold k.
fn body(n: u8, k: u32) -> RosterBody {
    RosterBody {
        federation_id: FEDERATION,
        version: 1,
        epoch: 1,
        expires_at_ms: NOW_MS + 365 * DAY_MS,
        threshold: k,
        max_retention_days: 180,
        quota_entries_per_day: 200_000,
        quota_bytes_per_day: 64 * 1024 * 1024,
        secret_fingerprint: secret_fingerprint(&secret(1)),
        rotation: None,
        members: (0..n).map(member).collect(),
    }
}

/// `body` signed by the governance keys of `signers` (member numbers).
fn signed(body: RosterBody, signers: &[u8]) -> SignedRoster {
    let signatures = signers
        .iter()
        .map(|&n| sign_roster(&body, IDS[usize::from(n)], &governance_key(n)))
        .collect();
    SignedRoster { body, signatures, key_changes: vec![] }
}

fn founding(n: u8, k: u32) -> VerifiedRoster {
    let signers: Vec<u8> = (0..n).collect();
    verify_founding(&signed(body(n, k), &signers)).unwrap()
}

/// The successor body of `current`, version + 1, same members and settings.
fn next_body(current: &VerifiedRoster) -> RosterBody {
    RosterBody { version: current.body().version + 1, ..current.body().clone() }
}

#[test]
fn founding_needs_every_member() {
    let all = signed(body(5, 3), &[0, 1, 2, 3, 4]);
    let verified = verify_founding(&all).unwrap();
    assert_eq!(verified.hash(), &all.body.hash());
    assert_eq!(verified.body().members.len(), 5);
    let missing = signed(body(5, 3), &[0, 1, 2, 3]);
    assert_eq!(
        verify_founding(&missing),
        Err(RosterProblem::MissingSignatures { have: 4, need: 5 })
    );
    // A 2-member federation needs both signatures, founding and after.
    let two = verify_founding(&signed(body(2, 2), &[0, 1])).unwrap();
    let one_of_two = signed(next_body(&two), &[0]);
    assert_eq!(
        verify_successor(&two, &one_of_two),
        Err(RosterProblem::MissingSignatures { have: 1, need: 2 })
    );
}

#[test]
fn expiry_is_asked_of_a_verified_roster_not_judged_by_verification() {
    let roster = signed(body(3, 2), &[0, 1, 2]);
    let verified = verify_founding(&roster).unwrap();
    assert!(!verified.expired(roster.body.expires_at_ms - 1));
    assert!(verified.expired(roster.body.expires_at_ms));
    assert!(verified.expired(u64::MAX));
    // A roster whose expiry is long past still verifies: a node restarted after it keeps it.
    let past = signed(RosterBody { expires_at_ms: 1, ..body(3, 2) }, &[0, 1, 2]);
    assert!(verify_founding(&past).unwrap().expired(NOW_MS));
}

#[test]
fn the_hash_covers_the_body_and_not_the_signatures() {
    let a = signed(body(3, 2), &[0, 1, 2]);
    let b = signed(body(3, 2), &[2, 0]);
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.to_wire(), b.to_wire());
    let mut other = body(3, 2);
    other.quota_entries_per_day += 1;
    assert_ne!(other.hash(), a.hash());
    assert_eq!(a.hash(), blake3::derive_key("crossmatch roster v2", &a.body.canonical_bytes()));
}

#[test]
fn successor_needs_k_current_members() {
    let current = founding(5, 3);
    let next = next_body(&current);
    let three = signed(next.clone(), &[0, 2, 4]);
    let verified = verify_successor(&current, &three).unwrap();
    assert_eq!(verified.body().version, 2);
    let two = signed(next, &[0, 2]);
    assert_eq!(
        verify_successor(&current, &two),
        Err(RosterProblem::MissingSignatures { have: 2, need: 3 })
    );
}

#[test]
fn signatures_that_do_not_count() {
    let current = founding(5, 3);
    let next = next_body(&current);
    let base = signed(next.clone(), &[0, 1]);
    let need_one_more = |extra: Vec<GovernanceSignature>| {
        let mut roster = base.clone();
        roster.signatures.extend(extra);
        verify_successor(&current, &roster)
    };
    // A third valid member signature makes it: the others below do not.
    assert!(need_one_more(vec![sign_roster(&next, "DE", &governance_key(2))]).is_ok());
    // A non-member (its own key under an id the roster lacks).
    let outsider = sign_roster(&next, "PL", &governance_key(5));
    assert_eq!(
        need_one_more(vec![outsider]),
        Err(RosterProblem::MissingSignatures { have: 2, need: 3 })
    );
    // A member's id with another key.
    let wrong_key = sign_roster(&next, "DE", &governance_key(5));
    assert!(need_one_more(vec![wrong_key]).is_err());
    // An invalid signature.
    let mut invalid = sign_roster(&next, "DE", &governance_key(2));
    invalid.signature[10] ^= 1;
    assert!(need_one_more(vec![invalid]).is_err());
    // The same member twice.
    let twice = sign_roster(&next, "AT", &governance_key(0));
    assert_eq!(
        need_one_more(vec![twice.clone(), twice]),
        Err(RosterProblem::MissingSignatures { have: 2, need: 3 })
    );
    // A node key instead of the governance key.
    let node_signed = sign_roster(&next, "DE", &node_key(2));
    assert!(need_one_more(vec![node_signed]).is_err());
    // A signature over another body.
    let mut other = next.clone();
    other.expires_at_ms += 1;
    assert!(need_one_more(vec![sign_roster(&other, "DE", &governance_key(2))]).is_err());
}

#[test]
fn a_removed_member_signs_for_nothing() {
    let v1 = founding(5, 3);
    // Version 2 removes NL (member 4): 4 members, k = 3.
    let mut body2 = next_body(&v1);
    body2.members.retain(|m| m.id != "NL");
    let v2 = verify_successor(&v1, &signed(body2, &[0, 1, 2, 4])).unwrap();
    let body3 = next_body(&v2);
    let with_removed = signed(body3.clone(), &[0, 1, 4]);
    assert_eq!(
        verify_successor(&v2, &with_removed),
        Err(RosterProblem::MissingSignatures { have: 2, need: 3 })
    );
    assert!(verify_successor(&v2, &signed(body3, &[0, 1, 3])).is_ok());
}

#[test]
fn successor_refuses_other_federations_and_versions_but_not_expiry() {
    let current = founding(3, 2);
    let all = [0, 1, 2];
    let mut other_federation = next_body(&current);
    other_federation.federation_id = FederationId([1; 32]);
    assert_eq!(
        verify_successor(&current, &signed(other_federation, &all)),
        Err(RosterProblem::WrongFederation)
    );
    for version in [1, 3] {
        let body = RosterBody { version, ..current.body().clone() };
        assert_eq!(
            verify_successor(&current, &signed(body, &all)),
            Err(RosterProblem::NotNextVersion { current: 1, next: version })
        );
    }
    let mut expired_body = next_body(&current);
    expired_body.expires_at_ms = 1;
    let expired = verify_successor(&current, &signed(expired_body, &all)).unwrap();
    assert!(expired.expired(NOW_MS));
}

#[test]
fn the_threshold_rule_is_enforced_on_the_body() {
    for (n, k, ok) in [(4, 2, false), (4, 3, true), (4, 4, true), (4, 5, false), (5, 2, false)] {
        let body = body(n, k);
        let result = body.validate();
        assert_eq!(result.is_ok(), ok, "n {n} k {k}: {result:?}");
        if !ok {
            assert_eq!(
                result,
                Err(RosterProblem::BadThreshold { threshold: k, members: n.into() })
            );
        }
    }
    let current = founding(4, 3);
    let mut low = next_body(&current);
    low.threshold = 2;
    assert!(matches!(
        verify_successor(&current, &signed(low, &[0, 1, 2, 3])),
        Err(RosterProblem::BadThreshold { .. })
    ));
}

#[test]
fn body_rules_are_checked() {
    let mut unsorted = body(3, 2);
    unsorted.members.swap(0, 1);
    assert_eq!(unsorted.validate(), Err(RosterProblem::MembersNotSorted));
    let mut bad_id = body(3, 2);
    bad_id.members[0].id = "A T".into();
    assert_eq!(bad_id.validate(), Err(RosterProblem::BadMemberId));
    let mut shared_key = body(3, 2);
    shared_key.members[1].governance_key = shared_key.members[0].node_key;
    assert_eq!(shared_key.validate(), Err(RosterProblem::DuplicateKey("BE".into())));
    let mut sealing = body(3, 2);
    sealing.members[2].sealing_key = [9; 32];
    assert_eq!(sealing.validate(), Err(RosterProblem::SealingKeyMismatch("DE".into())));
    let mut long_name = body(3, 2);
    long_name.members[0].name = "é".repeat(129);
    assert_eq!(long_name.validate(), Err(RosterProblem::NameTooLong("AT".into())));
    let mut retention = body(3, 2);
    retention.max_retention_days = 401;
    assert_eq!(retention.validate(), Err(RosterProblem::OutOfRange("max_retention_days")));
    let mut no_members = body(3, 2);
    no_members.members.clear();
    assert_eq!(no_members.validate(), Err(RosterProblem::MemberCount));
}

/// Version 2 of `current` in which member 1 (BE) changes its node key to seed 50.
fn key_change_body(current: &VerifiedRoster, retire_old: bool) -> RosterBody {
    let mut body = next_body(current);
    let new = node_key(50).public_key();
    body.members[1].node_key = new;
    body.members[1].sealing_key = new.to_x25519();
    if retire_old {
        body.members[1].retired_node_keys = vec![node_key(1).public_key()];
    }
    body
}

#[test]
fn a_routine_key_change_keeps_the_old_key_with_a_key_change_only() {
    let current = founding(3, 2);
    let old = node_key(1).public_key();
    // The key changes without a key change: a removal plus an addition, the old key gone.
    let replaced = signed(key_change_body(&current, false), &[0, 2]);
    let verified = verify_successor(&current, &replaced).unwrap();
    assert!(!verified.origin_keys().any(|key| key == old));
    // Listing the old key as retired needs a key change.
    let unbacked = signed(key_change_body(&current, true), &[0, 2]);
    assert_eq!(
        verify_successor(&current, &unbacked),
        Err(RosterProblem::UnbackedRetiredKey("BE".into()))
    );
    // Signed by the old and the new key: valid, and the old feed stays an origin.
    let change =
        KeyChange::sign(&FEDERATION, "BE", &node_key(1), &node_key(50), Some(final_head()));
    assert_eq!(change.verify(), Ok(()));
    let mut backed = unbacked.clone();
    backed.key_changes.push(change.clone());
    let verified = verify_successor(&current, &backed).unwrap();
    assert!(verified.origin_keys().any(|key| key == old));
    assert_eq!(verified.member_of_origin(&old).map(|m| m.id.as_str()), Some("BE"));
    // The wire form keeps the key change.
    assert_eq!(SignedRoster::from_wire(&backed.to_wire()), Ok(backed.clone()));
    assert_eq!(verified.key_change_of(&old), Some(&change));
    // Signed by only one of the two keys: refused.
    let mut only_old = change.clone();
    only_old.new_signature = change.old_signature;
    let mut only_new = change.clone();
    only_new.old_signature = change.new_signature;
    for half in [only_old, only_new] {
        assert_eq!(half.verify(), Err(RosterProblem::BadKeyChange("BE".into())));
        let mut roster = unbacked.clone();
        roster.key_changes.push(half);
        assert_eq!(
            verify_successor(&current, &roster),
            Err(RosterProblem::UnbackedRetiredKey("BE".into()))
        );
    }
    // A key change signed by a third key in the old key's place.
    let forged = KeyChange::sign(&FEDERATION, "BE", &node_key(60), &node_key(50), None);
    let mut roster = unbacked;
    roster.key_changes.push(KeyChange { old_key: old, ..forged });
    assert!(verify_successor(&current, &roster).is_err());
}

/// Where BE's old feed ends in the key change of these tests.
fn final_head() -> FinalHead {
    FinalHead { generation: 1, seq: 7, hash: BatchHash([7; 32]) }
}

#[test]
fn a_successor_carries_the_key_changes_of_the_retired_keys_it_keeps() {
    let current = founding(3, 2);
    let change =
        KeyChange::sign(&FEDERATION, "BE", &node_key(1), &node_key(50), Some(final_head()));
    let mut v2 = signed(key_change_body(&current, true), &[0, 2]);
    v2.key_changes.push(change.clone());
    let v2 = verify_successor(&current, &v2).unwrap();
    // Version 3 keeps the retired key and carries its key change: valid.
    let mut carried = signed(next_body(&v2), &[0, 1, 2]);
    carried.key_changes.push(change.clone());
    let v3 = verify_successor(&v2, &carried).unwrap();
    assert_eq!(v3.key_change_of(&node_key(1).public_key()), Some(&change));
    // It keeps the retired key but drops its key change: refused, as its final head would be
    // lost to every node that catches up through it.
    let dropped = signed(next_body(&v2), &[0, 1, 2]);
    assert_eq!(
        verify_successor(&v2, &dropped),
        Err(RosterProblem::UnbackedRetiredKey("BE".into()))
    );
    // It carries another key change of the same keys, whose final head moved on: refused.
    let moved = FinalHead { seq: 9, ..final_head() };
    let mut other = signed(next_body(&v2), &[0, 1, 2]);
    other.key_changes.push(KeyChange::sign(
        &FEDERATION,
        "BE",
        &node_key(1),
        &node_key(50),
        Some(moved),
    ));
    assert_eq!(verify_successor(&v2, &other), Err(RosterProblem::UnbackedRetiredKey("BE".into())));
    // It drops the retired key with its key change: valid, and the old feed is no origin.
    let mut gone_body = next_body(&v2);
    gone_body.members[1].retired_node_keys.clear();
    let gone = verify_successor(&v2, &signed(gone_body, &[0, 1, 2])).unwrap();
    assert!(!gone.origin_keys().any(|key| key == node_key(1).public_key()));
    assert_eq!(gone.key_change_of(&node_key(1).public_key()), None);
}

#[test]
fn a_retired_key_must_be_the_members_own_earlier_key() {
    let current = founding(3, 2);
    let mut successor = next_body(&current);
    // A key never on the roster, with a valid key change from it.
    successor.members[1].retired_node_keys = vec![node_key(70).public_key()];
    let mut roster = signed(successor, &[0, 1, 2]);
    roster.key_changes.push(KeyChange::sign(&FEDERATION, "BE", &node_key(70), &node_key(1), None));
    assert_eq!(
        verify_successor(&current, &roster),
        Err(RosterProblem::UnbackedRetiredKey("BE".into()))
    );
    // A founding roster may list retired keys only with their key changes.
    let mut founding_body = body(3, 2);
    founding_body.members[1].retired_node_keys = vec![node_key(70).public_key()];
    let mut founding_roster = signed(founding_body, &[0, 1, 2]);
    assert_eq!(
        verify_founding(&founding_roster),
        Err(RosterProblem::UnbackedRetiredKey("BE".into()))
    );
    founding_roster.key_changes.push(KeyChange::sign(
        &FEDERATION,
        "BE",
        &node_key(70),
        &node_key(1),
        None,
    ));
    assert!(verify_founding(&founding_roster).is_ok());
}

#[test]
fn an_epoch_changes_only_with_a_rotation_that_follows() {
    let current = founding(3, 2);
    let rotation = Rotation {
        previous_epoch: 1,
        previous_secret_fingerprint: secret_fingerprint(&secret(1)),
        changeover_at_ms: NOW_MS + DAY_MS,
        grace_ms: 7 * DAY_MS,
    };
    let rotated = RosterBody {
        epoch: 2,
        secret_fingerprint: secret_fingerprint(&secret(2)),
        rotation: Some(rotation),
        ..next_body(&current)
    };
    let v2 = verify_successor(&current, &signed(rotated.clone(), &[0, 1])).unwrap();
    // The next version of the same epoch may keep the rotation or drop it.
    assert!(verify_successor(&v2, &signed(next_body(&v2), &[0, 1])).is_ok());
    let dropped = RosterBody { rotation: None, ..next_body(&v2) };
    assert!(verify_successor(&v2, &signed(dropped, &[0, 1])).is_ok());
    let refused = |body: RosterBody| verify_successor(&current, &signed(body, &[0, 1]));
    assert_eq!(
        refused(RosterBody { rotation: None, ..rotated.clone() }),
        Err(RosterProblem::BadEpochChange)
    );
    let wrong_previous = Rotation { previous_secret_fingerprint: [3; 32], ..rotation };
    assert_eq!(
        refused(RosterBody { rotation: Some(wrong_previous), ..rotated.clone() }),
        Err(RosterProblem::BadEpochChange)
    );
    let new_secret_same_epoch =
        RosterBody { secret_fingerprint: secret_fingerprint(&secret(2)), ..next_body(&current) };
    assert_eq!(refused(new_secret_same_epoch), Err(RosterProblem::BadEpochChange));
    let same_fingerprint =
        Rotation { previous_secret_fingerprint: rotated.secret_fingerprint, ..rotation };
    assert_eq!(
        refused(RosterBody { rotation: Some(same_fingerprint), ..rotated }),
        Err(RosterProblem::BadRotation)
    );
}

#[test]
fn two_valid_successors_of_one_version_are_a_conflict() {
    let current = founding(5, 3);
    let a = signed(next_body(&current), &[0, 1, 2]);
    let mut other = next_body(&current);
    other.members.retain(|m| m.id != "NL");
    let b = signed(other, &[0, 2, 3]);
    let conflict = verify_conflict(&current, &a, &b).unwrap();
    assert_eq!(conflict.version(), 2);
    let mut hashes = [a.hash(), b.hash()];
    hashes.sort();
    assert_eq!(conflict.hashes(), &hashes);
    // The wire form round-trips and verifies again, in either order.
    let (first, second) = decode_roster_conflict(&conflict.to_wire()).unwrap();
    assert_eq!(verify_conflict(&current, &second, &first), Ok(conflict.clone()));
    // Conflicts are proofs whatever the time: a pair long expired still proves it.
    let expired = |signers: &[u8], quota: u64| {
        let body =
            RosterBody { expires_at_ms: 1, quota_entries_per_day: quota, ..next_body(&current) };
        signed(body, signers)
    };
    assert!(verify_conflict(&current, &expired(&[0, 1, 2], 1), &expired(&[2, 3, 4], 2)).is_ok());
    // The same roster twice, even with other signatures, is no conflict.
    let a_again = signed(next_body(&current), &[2, 3, 4]);
    assert_eq!(verify_conflict(&current, &a, &a_again), Err(RosterProblem::NotAConflict));
    // One of the two invalid.
    let mut weak = next_body(&current);
    weak.quota_bytes_per_day += 1;
    let weak = signed(weak, &[0, 1]);
    assert_eq!(
        verify_conflict(&current, &a, &weak),
        Err(RosterProblem::MissingSignatures { have: 2, need: 3 })
    );
    assert!(decode_roster_conflict(&[0x80]).is_err());
}

fn record(seq: u64) -> MemberRecord {
    MemberRecord {
        federation_id: FEDERATION,
        member: "DE".into(),
        seq,
        addresses: vec!["/dns4/node.de.example/tcp/7000".into(), "/ip4/192.0.2.7/tcp/7000".into()],
        contact: "duty officer +49 30 0000".into(),
    }
}

#[test]
fn member_records_are_signed_by_the_members_node_key() {
    let roster = founding(3, 2);
    let signed = record(5).sign(&node_key(2)).unwrap();
    assert_eq!(signed.verify(&roster, None), Ok(()));
    assert_eq!(signed.verify(&roster, Some(4)), Ok(()));
    assert_eq!(
        signed.verify(&roster, Some(5)),
        Err(RosterProblem::StaleRecord { member: "DE".into(), seq: 5, held: 5 })
    );
    assert_eq!(SignedMemberRecord::from_wire(&signed.to_wire()), Ok(signed.clone()));
    // Another key: the governance key, another member's node key.
    for key in [governance_key(2), node_key(1)] {
        let other = record(5).sign(&key).unwrap();
        assert_eq!(
            other.verify(&roster, None),
            Err(RosterProblem::BadRecordSignature("DE".into()))
        );
    }
    let mut altered = signed.clone();
    altered.record.addresses.push("/ip4/198.51.100.1/tcp/7000".into());
    assert!(altered.verify(&roster, None).is_err());
    let stranger = MemberRecord { member: "PL".into(), ..record(1) }.sign(&node_key(5)).unwrap();
    assert_eq!(stranger.verify(&roster, None), Err(RosterProblem::UnknownMember("PL".into())));
    let elsewhere = MemberRecord { federation_id: FederationId([1; 32]), ..record(1) }
        .sign(&node_key(2))
        .unwrap();
    assert_eq!(elsewhere.verify(&roster, None), Err(RosterProblem::WrongFederation));
}

#[test]
fn member_records_over_their_bounds_are_refused() {
    let too_many = MemberRecord { addresses: vec!["/ip4/192.0.2.1/tcp/1".into(); 9], ..record(1) };
    assert!(matches!(too_many.clone().sign(&node_key(2)), Err(RosterProblem::RecordBounds(_))));
    let long_address = MemberRecord { addresses: vec!["a".repeat(257)], ..record(1) };
    assert!(matches!(long_address.sign(&node_key(2)), Err(RosterProblem::RecordBounds(_))));
    let long_contact = MemberRecord { contact: "ü".repeat(257), ..record(1) };
    assert!(matches!(long_contact.sign(&node_key(2)), Err(RosterProblem::RecordBounds(_))));
    assert!(MemberRecord { contact: "ü".repeat(256), ..record(1) }.sign(&node_key(2)).is_ok());
    let zero_seq = record(0);
    assert!(matches!(zero_seq.sign(&node_key(2)), Err(RosterProblem::RecordBounds(_))));
    // A signed record over its bounds (signed by hand) is refused on decode and on verify.
    let eight = MemberRecord { addresses: vec!["/ip4/192.0.2.1/tcp/1".into(); 8], ..record(1) };
    let mut over = eight.sign(&node_key(2)).unwrap();
    over.record.addresses.push("/ip4/192.0.2.1/tcp/1".into());
    assert!(SignedMemberRecord::from_wire(&over.to_wire()).is_err());
    assert!(over.verify(&founding(3, 2), None).is_err());
}

#[test]
fn a_sealed_secret_opens_with_the_members_node_key_only() {
    let recipient = node_key(2);
    let sealing_key = recipient.public_key().to_x25519();
    let sealed = seal_secret(&secret(7), &FEDERATION, 3, "DE", &sealing_key, &[0x33; 32]).unwrap();
    assert_eq!(open_secret(&sealed, &recipient), Ok(secret(7)));
    assert_eq!(SealedSecret::from_wire(&sealed.to_wire()), Ok(sealed.clone()));
    assert_ne!(&sealed.ciphertext[..32], secret(7).as_bytes());
    // Another member's key.
    assert_eq!(open_secret(&sealed, &node_key(1)), Err(SealError::CannotOpen));
    // Tampered ciphertext, tag, federation, epoch, member, ephemeral key.
    let mut tampered = Vec::new();
    for index in [0, 31, 32, 47] {
        let mut copy = sealed.clone();
        copy.ciphertext[index] ^= 1;
        tampered.push(copy);
    }
    tampered.push(SealedSecret { federation_id: FederationId([1; 32]), ..sealed.clone() });
    tampered.push(SealedSecret { epoch: 4, ..sealed.clone() });
    tampered.push(SealedSecret { member: "FR".into(), ..sealed.clone() });
    let mut ephemeral = sealed.clone();
    ephemeral.ephemeral_public[0] ^= 1;
    tampered.push(ephemeral);
    for copy in tampered {
        assert_eq!(open_secret(&copy, &recipient), Err(SealError::CannotOpen), "{copy:?}");
    }
    // A small-order recipient key would make the shared secret all zeros.
    assert_eq!(
        seal_secret(&secret(7), &FEDERATION, 3, "DE", &[0; 32], &[0x33; 32]),
        Err(SealError::WeakKey)
    );
    let mut zero_ephemeral = sealed.clone();
    zero_ephemeral.ephemeral_public = [0; 32];
    assert_eq!(open_secret(&zero_ephemeral, &recipient), Err(SealError::CannotOpen));
    // Two copies with different ephemeral secrets differ.
    let again = seal_secret(&secret(7), &FEDERATION, 3, "DE", &sealing_key, &[0x34; 32]).unwrap();
    assert_ne!(again.ciphertext, sealed.ciphertext);
}

#[test]
fn the_secret_fingerprint_and_its_phone_form() {
    let fingerprint = secret_fingerprint(&secret(7));
    assert_eq!(fingerprint, blake3::derive_key("crossmatch secret fingerprint v1", &[7; 32]));
    let phone = secret_fingerprint_phone_form(&fingerprint);
    assert_eq!(phone.len(), 8 * 4 + 7);
    assert_eq!(phone.replace('-', ""), hex::encode(&fingerprint[..16]));
    assert_ne!(fingerprint, secret_fingerprint(&secret(8)));
}

/// libsodium's `crypto_sign_ed25519_pk_to_curve25519` and `…_sk_to_curve25519`, computed
/// independently (Python: u = (1 + y) / (1 − y) mod 2^255 − 19 from the Ed25519 public key,
/// and `cryptography`'s X25519 public key of SHA-512(seed)[..32], which agree).
#[test]
fn the_conversion_matches_libsodium() {
    let cases = [
        (
            "4242424242424242424242424242424242424242424242424242424242424242",
            "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12",
            "cc4f2cdb695dd766f34118eb67b98652fed1d8bc49c330b119bbfa8a64989378",
            "95e7595fc89e52fdfddce9c6a43d74dbf6047025ee0462d2d172e8b6a2841dae",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
            "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01",
            "3d94eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6f",
        ),
    ];
    for (seed, ed_public, x_public, x_secret) in cases {
        let seed: [u8; 32] = hex::decode(seed).unwrap().try_into().unwrap();
        let key = SigningKey::from_seed(&seed);
        assert_eq!(key.public_key(), ed_public.parse::<PublicKey>().unwrap());
        assert_eq!(hex::encode(key.public_key().to_x25519()), x_public);
        assert_eq!(hex::encode(key.x25519_secret()), x_secret);
    }
}

#[test]
fn the_wire_form_is_strict() {
    let roster = signed(body(3, 2), &[0, 1, 2]);
    let wire = roster.to_wire();
    assert_eq!(SignedRoster::from_wire(&wire), Ok(roster));
    // Trailing bytes, a truncated form, an oversized form.
    assert!(SignedRoster::from_wire(&[wire.clone(), vec![0]].concat()).is_err());
    assert!(SignedRoster::from_wire(&wire[..wire.len() - 1]).is_err());
    assert_eq!(
        SignedRoster::from_wire(&vec![0; crossmatch_protocol::MAX_ROSTER_BYTES + 1]),
        Err(RosterProblem::TooLarge)
    );
    // An unknown field in the body is refused: a roster is adopted only when understood whole.
    let mut value: ciborium::Value = ciborium::from_reader(wire.as_slice()).unwrap();
    if let ciborium::Value::Map(pairs) = &mut value
        && let ciborium::Value::Map(body) = &mut pairs[0].1
    {
        body.push((11.into(), 0.into()));
    }
    let mut unknown = Vec::new();
    ciborium::into_writer(&value, &mut unknown).unwrap();
    assert_eq!(SignedRoster::from_wire(&unknown), Err(RosterProblem::BadWireForm("body")));
}

fn arbitrary_body() -> impl Strategy<Value = RosterBody> {
    let member_count = 1u8..=5;
    (
        member_count,
        any::<[u8; 32]>(),
        1u64..1_000,
        1u32..10,
        any::<u64>(),
        (1u32..=400, 1u64..u64::MAX, 1u64..u64::MAX),
        any::<[u8; 32]>(),
        proptest::option::of((any::<u64>(), 0u64..=crossmatch_protocol::MAX_GRACE_MS)),
        "[a-zA-Z ]{0,20}",
    )
        .prop_map(
            |(
                n,
                federation,
                version,
                epoch,
                expires,
                (days, entries, bytes),
                fp,
                rotation,
                name,
            )| {
                let members = (0..n)
                    .map(|i| RosterMember { name: format!("{name}{i}"), ..member(i) })
                    .collect();
                RosterBody {
                    federation_id: FederationId(federation),
                    version,
                    epoch: epoch + 1,
                    expires_at_ms: expires,
                    threshold: u32::from(n / 2 + 1),
                    max_retention_days: days,
                    quota_entries_per_day: entries,
                    quota_bytes_per_day: bytes,
                    secret_fingerprint: fp,
                    rotation: rotation.map(|(changeover_at_ms, grace_ms)| Rotation {
                        previous_epoch: epoch,
                        previous_secret_fingerprint: blake3::hash(&fp).into(),
                        changeover_at_ms,
                        grace_ms,
                    }),
                    members,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = SignedRoster::from_wire(&bytes);
        let _ = SignedMemberRecord::from_wire(&bytes);
        let _ = KeyChange::from_wire(&bytes);
        let _ = SealedSecret::from_wire(&bytes);
        let _ = decode_roster_conflict(&bytes);
    }

    #[test]
    fn signed_rosters_round_trip(body in arbitrary_body(), signers in 0usize..=5) {
        prop_assert_eq!(body.validate(), Ok(()));
        let n = body.members.len();
        let ids: Vec<u8> = (0..n.min(signers)).map(|i| i as u8).collect();
        let roster = signed(body, &ids);
        let wire = roster.to_wire();
        prop_assert_eq!(SignedRoster::from_wire(&wire), Ok(roster.clone()));
        // Every decodable mutation re-encodes to itself (one encoding per value).
        for index in [0, wire.len() / 3, wire.len() / 2, wire.len() - 1] {
            let mut mutated = wire.clone();
            mutated[index] ^= 0x01;
            if let Ok(decoded) = SignedRoster::from_wire(&mutated) {
                prop_assert_eq!(decoded.to_wire(), mutated);
            }
        }
    }

    #[test]
    fn records_and_sealed_secrets_round_trip(
        seq in 1u64..u64::MAX,
        addresses in proptest::collection::vec("[a-z0-9/.]{1,256}", 0..=8),
        contact in "\\PC{0,256}",
        epoch in any::<u32>(),
        ephemeral in any::<[u8; 32]>(),
        value in any::<[u8; 32]>(),
    ) {
        let record = MemberRecord { seq, addresses, contact, ..record(1) };
        let signed = record.sign(&node_key(2)).unwrap();
        prop_assert_eq!(SignedMemberRecord::from_wire(&signed.to_wire()), Ok(signed.clone()));
        prop_assert_eq!(signed.verify(&founding(3, 2), None), Ok(()));
        let recipient = node_key(2).public_key().to_x25519();
        let sealed = seal_secret(&FederationSecret::from_bytes(value), &FEDERATION, epoch, "DE", &recipient, &ephemeral).unwrap();
        prop_assert_eq!(SealedSecret::from_wire(&sealed.to_wire()), Ok(sealed.clone()));
        prop_assert_eq!(open_secret(&sealed, &node_key(2)), Ok(FederationSecret::from_bytes(value)));
        let change = KeyChange::sign(&FederationId(value), "DE", &node_key(2), &node_key(3), Some(FinalHead { generation: epoch, seq: 1, hash: BatchHash(value) }));
        prop_assert_eq!(KeyChange::from_wire(&change.to_wire()), Ok(change));
    }
}

#[test]
fn a_roster_too_large_to_send_is_never_verified() {
    let key = |n: u8, purpose: u8| {
        let mut seed = [0u8; 32];
        seed[..2].copy_from_slice(&[n, purpose]);
        SigningKey::from_seed(&seed).public_key()
    };
    let members = (0..=255u8)
        .map(|n| RosterMember {
            id: format!("M{n:03}"),
            name: "€".repeat(128),
            node_key: key(n, 1),
            governance_key: key(n, 2),
            sealing_key: key(n, 1).to_x25519(),
            retired_node_keys: vec![],
        })
        .collect();
    let body = RosterBody { members, threshold: 129, ..body(1, 1) };
    assert_eq!(body.validate(), Ok(()));
    let change = KeyChange::sign(&FEDERATION, "M000", &node_key(1), &node_key(2), None);
    let roster = SignedRoster { body, signatures: vec![], key_changes: vec![change; 600] };
    assert!(roster.to_wire().len() > crossmatch_protocol::MAX_ROSTER_BYTES);
    assert_eq!(verify_founding(&roster), Err(RosterProblem::TooLarge));
    assert_eq!(SignedRoster::from_wire(&roster.to_wire()), Err(RosterProblem::TooLarge));
}
