//! Regenerates `tests/vectors/roster.json` from the code and fails on any difference, and checks
//! that every vector in the file verifies (or is refused) as the file says. Set
//! `CROSSMATCH_WRITE_VECTORS=1` to rewrite the file after an intended change;
//! `scripts/check_roster_vectors.py` checks the same file with other people's code.

use crossmatch_protocol::{
    BatchHash, FederationId, FederationSecret, FinalHead, KeyChange, MemberRecord, RosterBody,
    RosterMember, RosterProblem, Rotation, SealedSecret, SignedMemberRecord, SignedRoster,
    SigningKey, VerifiedRoster, open_secret, seal_secret, secret_fingerprint,
    secret_fingerprint_phone_form, sign_roster, verify_founding, verify_successor,
};
use serde_json::{Value as Json, json};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/roster.json");
const FEDERATION: FederationId = FederationId([0xfe; 32]);
const NOW_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY_MS: u64 = 86_400_000;
const IDS: [&str; 4] = ["AT", "BE", "DE", "FR"];
/// The node key BE changes to in version 2.
const NEW_NODE_SEED: [u8; 32] = [0x50; 32];
const EPHEMERAL_SECRET: [u8; 32] = [0x33; 32];

fn node_seed(n: usize) -> [u8; 32] {
    [0x41 + n as u8; 32]
}

fn governance_seed(n: usize) -> [u8; 32] {
    [0x61 + n as u8; 32]
}

fn node_key(n: usize) -> SigningKey {
    SigningKey::from_seed(&node_seed(n))
}

fn governance_key(n: usize) -> SigningKey {
    SigningKey::from_seed(&governance_seed(n))
}

fn secret(epoch: u8) -> FederationSecret {
    FederationSecret::from_bytes(*blake3::hash(&[epoch]).as_bytes())
}

fn founding_body() -> RosterBody {
    let members = (0..4)
        .map(|n| {
            let node = node_key(n).public_key();
            RosterMember {
                id: IDS[n].into(),
                name: format!("Unit {}", IDS[n]),
                node_key: node,
                governance_key: governance_key(n).public_key(),
                sealing_key: node.to_x25519(),
                retired_node_keys: vec![],
            }
        })
        .collect();
    RosterBody {
        federation_id: FEDERATION,
        version: 1,
        epoch: 1,
        expires_at_ms: NOW_MS + 365 * DAY_MS,
        threshold: 3,
        max_retention_days: 180,
        quota_entries_per_day: 200_000,
        quota_bytes_per_day: 64 * 1024 * 1024,
        secret_fingerprint: secret_fingerprint(&secret(1)),
        rotation: None,
        members,
    }
}

/// Version 2: FR removed (k = 2 of 3), BE's routine node key change, and a rotation to epoch 2.
fn successor_body(current: &RosterBody) -> RosterBody {
    let mut members = current.members.clone();
    members.retain(|m| m.id != "FR");
    let new = SigningKey::from_seed(&NEW_NODE_SEED).public_key();
    members[1].retired_node_keys = vec![members[1].node_key];
    members[1].node_key = new;
    members[1].sealing_key = new.to_x25519();
    RosterBody {
        version: 2,
        epoch: 2,
        threshold: 2,
        secret_fingerprint: secret_fingerprint(&secret(2)),
        rotation: Some(Rotation {
            previous_epoch: 1,
            previous_secret_fingerprint: current.secret_fingerprint,
            changeover_at_ms: NOW_MS + 2 * DAY_MS,
            grace_ms: 7 * DAY_MS,
        }),
        members,
        ..current.clone()
    }
}

fn sign(body: RosterBody, signers: &[usize]) -> SignedRoster {
    let signatures =
        signers.iter().map(|&n| sign_roster(&body, IDS[n], &governance_key(n))).collect();
    SignedRoster { body, signatures, key_changes: vec![] }
}

fn roster_json(roster: &SignedRoster) -> Json {
    json!({
        "body_cbor_hex": hex::encode(roster.body.canonical_bytes()),
        "hash_hex": hex::encode(roster.hash()),
        "signatures": roster.signatures.iter().map(|s| json!({
            "member": s.member,
            "signature_hex": hex::encode(s.signature),
        })).collect::<Vec<_>>(),
        "wire_hex": hex::encode(roster.to_wire()),
    })
}

fn generate() -> Json {
    let members: Vec<Json> = (0..4)
        .map(|n| {
            let key = node_key(n);
            json!({
                "id": IDS[n],
                "node_seed_hex": hex::encode(node_seed(n)),
                "governance_seed_hex": hex::encode(governance_seed(n)),
                "node_key_hex": key.public_key().to_string(),
                "governance_key_hex": governance_key(n).public_key().to_string(),
                "sealing_key_hex": hex::encode(key.public_key().to_x25519()),
                "x25519_secret_hex": hex::encode(key.x25519_secret()),
            })
        })
        .collect();

    let founding = sign(founding_body(), &[0, 1, 2, 3]);
    let verified = verify_founding(&founding).unwrap();

    let mut successor = sign(successor_body(&founding.body), &[0, 1, 3]);
    let final_head = FinalHead { generation: 1, seq: 42, hash: BatchHash([0x42; 32]) };
    let change = KeyChange::sign(
        &FEDERATION,
        "BE",
        &node_key(1),
        &SigningKey::from_seed(&NEW_NODE_SEED),
        Some(final_head),
    );
    successor.key_changes.push(change.clone());
    verify_successor(&verified, &successor).unwrap();

    let mut too_few = successor.clone();
    too_few.signatures.truncate(2);
    let mut skipped = sign(RosterBody { version: 3, ..successor.body.clone() }, &[0, 1, 2, 3]);
    skipped.key_changes.push(change.clone());

    let record = MemberRecord {
        federation_id: FEDERATION,
        member: "DE".into(),
        seq: 3,
        addresses: vec!["/dns4/node.de.example/tcp/7000".into(), "/ip4/192.0.2.7/tcp/7000".into()],
        contact: "Lagezentrum, +49 30 0000 0000".into(),
    }
    .sign(&node_key(2))
    .unwrap();

    let sealed = seal_secret(
        &secret(2),
        &FEDERATION,
        2,
        "DE",
        &node_key(2).public_key().to_x25519(),
        &EPHEMERAL_SECRET,
    )
    .unwrap();
    let fingerprint = secret_fingerprint(&secret(2));

    json!({
        "federation_id_hex": hex::encode(FEDERATION.as_bytes()),
        "now_ms": NOW_MS,
        "contexts": {
            "roster_hash": crossmatch_protocol::ROSTER_HASH_CONTEXT,
            "roster_signature": crossmatch_protocol::ROSTER_SIGNATURE_CONTEXT,
            "key_change": crossmatch_protocol::KEY_CHANGE_CONTEXT,
            "member_record": crossmatch_protocol::MEMBER_RECORD_CONTEXT,
            "seal": crossmatch_protocol::SEAL_CONTEXT,
            "secret_fingerprint": crossmatch_protocol::SECRET_FINGERPRINT_CONTEXT,
        },
        "members": members,
        "new_node_key": {
            "member": "BE",
            "node_seed_hex": hex::encode(NEW_NODE_SEED),
            "node_key_hex": SigningKey::from_seed(&NEW_NODE_SEED).public_key().to_string(),
        },
        "founding": roster_json(&founding),
        "successor": {
            "why": "version 2 signed by AT, BE and FR (k = 3 of version 1): FR removed, BE's \
                    routine node key change, a rotation to epoch 2",
            "roster": roster_json(&successor),
            "key_change_wire_hex": hex::encode(change.to_wire()),
            "key_change_final_head": {
                "generation": final_head.generation,
                "seq": final_head.seq,
                "hash_hex": hex::encode(final_head.hash.as_bytes()),
            },
        },
        "invalid_successors": [
            {"why": "two signatures where version 1 needs three", "wire_hex": hex::encode(too_few.to_wire())},
            {"why": "version 3 after version 1", "wire_hex": hex::encode(skipped.to_wire())},
        ],
        "member_record": {
            "why": "DE's record, signed by its node key",
            "wire_hex": hex::encode(record.to_wire()),
        },
        "sealed_secret": {
            "member": "DE",
            "epoch": 2,
            "ephemeral_secret_hex": hex::encode(EPHEMERAL_SECRET),
            "secret_hex": hex::encode(secret(2).as_bytes()),
            "fingerprint_hex": hex::encode(fingerprint),
            "phone_form": secret_fingerprint_phone_form(&fingerprint),
            "wire_hex": hex::encode(sealed.to_wire()),
        },
    })
}

fn bytes_at(vectors: &Json, pointer: &str) -> Vec<u8> {
    hex::decode(vectors.pointer(pointer).and_then(Json::as_str).unwrap()).unwrap()
}

#[test]
fn roster_vectors_match_the_code() {
    let rendered = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("CROSSMATCH_WRITE_VECTORS").is_some() {
        std::fs::write(VECTORS_PATH, &rendered).unwrap();
    }
    let on_disk = std::fs::read_to_string(VECTORS_PATH).unwrap();
    assert!(
        on_disk == rendered,
        "tests/vectors/roster.json differs from the code; rerun with CROSSMATCH_WRITE_VECTORS=1 \
         if the change is intended"
    );
}

#[test]
fn roster_vectors_verify_as_the_file_says() {
    let vectors: Json =
        serde_json::from_str(&std::fs::read_to_string(VECTORS_PATH).unwrap()).unwrap();
    let now = vectors["now_ms"].as_u64().unwrap();
    let founding = SignedRoster::from_wire(&bytes_at(&vectors, "/founding/wire_hex")).unwrap();
    assert_eq!(founding.body.canonical_bytes(), bytes_at(&vectors, "/founding/body_cbor_hex"));
    let v1: VerifiedRoster = verify_founding(&founding).unwrap();
    assert!(!v1.expired(now));
    assert_eq!(v1.hash().to_vec(), bytes_at(&vectors, "/founding/hash_hex"));

    let successor =
        SignedRoster::from_wire(&bytes_at(&vectors, "/successor/roster/wire_hex")).unwrap();
    let v2 = verify_successor(&v1, &successor).unwrap();
    assert_eq!(v2.hash().to_vec(), bytes_at(&vectors, "/successor/roster/hash_hex"));
    assert!(v2.origin_keys().any(|key| key == node_key(1).public_key()));
    let change = v2.key_change_of(&node_key(1).public_key()).unwrap();
    let head = change.final_head.unwrap();
    assert_eq!(
        u64::from(head.generation),
        vectors["successor"]["key_change_final_head"]["generation"]
    );
    assert_eq!(head.seq, vectors["successor"]["key_change_final_head"]["seq"]);
    assert_eq!(
        head.hash.as_bytes().to_vec(),
        bytes_at(&vectors, "/successor/key_change_final_head/hash_hex")
    );
    assert_eq!(change.to_wire(), bytes_at(&vectors, "/successor/key_change_wire_hex"));

    let too_few = SignedRoster::from_wire(&bytes_at(&vectors, "/invalid_successors/0/wire_hex"));
    assert_eq!(
        verify_successor(&v1, &too_few.unwrap()),
        Err(RosterProblem::MissingSignatures { have: 2, need: 3 })
    );
    let skipped = SignedRoster::from_wire(&bytes_at(&vectors, "/invalid_successors/1/wire_hex"));
    assert!(matches!(
        verify_successor(&v1, &skipped.unwrap()),
        Err(RosterProblem::NotNextVersion { current: 1, next: 3 })
    ));

    let record =
        SignedMemberRecord::from_wire(&bytes_at(&vectors, "/member_record/wire_hex")).unwrap();
    assert_eq!(record.verify(&v1, None), Ok(()));

    let sealed = SealedSecret::from_wire(&bytes_at(&vectors, "/sealed_secret/wire_hex")).unwrap();
    let opened = open_secret(&sealed, &node_key(2)).unwrap();
    assert_eq!(opened.as_bytes().to_vec(), bytes_at(&vectors, "/sealed_secret/secret_hex"));
    assert_eq!(
        secret_fingerprint(&opened).to_vec(),
        bytes_at(&vectors, "/sealed_secret/fingerprint_hex")
    );
    assert_eq!(
        v2.body().secret_fingerprint.to_vec(),
        bytes_at(&vectors, "/sealed_secret/fingerprint_hex")
    );
}
