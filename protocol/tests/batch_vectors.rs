//! Regenerates `tests/vectors/batches.json` from the code and fails on any difference, and checks
//! that every vector verifies (or is refused) exactly as the file says. Set
//! `CROSSMATCH_WRITE_VECTORS=1` to rewrite the file after an intended change.

use coset::{CborSerializable, CoseSign1, TaggedCborSerializable};
use crossmatch_protocol::{
    Add, BatchError, BatchHash, BatchPosition, Entry, EntryProblem, EnvelopeError, Evaluation,
    FederationId, Handling, Kind, Op, PublicKey, Retract, RetractReason, SigningKey, Status,
    StatusUpdate, Tag, Token, VerifiedBatch, sign_batch, verify_batch,
};
use serde_json::{Value as Json, json};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/batches.json");
const FEDERATION: FederationId = FederationId([0xfe; 32]);
const ORIGIN_SEED: [u8; 32] = [0x42; 32];
const OTHER_SEED: [u8; 32] = [0x43; 32];
const CREATED_AT_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY_MS: u64 = 86_400_000;

fn salt(n: u8) -> [u8; 16] {
    [n; 16]
}

fn token(n: u8) -> Token {
    Token(*blake3::hash(&[n]).as_bytes())
}

fn add(n: u8, kind: Kind, handling: Handling) -> Entry {
    Entry {
        salt: salt(n),
        op: Op::Add(Add {
            token: token(n),
            kind,
            category: "terrorism/propaganda".into(),
            handling,
            evaluation: Evaluation::new('B', 2).unwrap(),
            activity_per_day: n.is_multiple_of(2).then_some(u64::from(n) * 10),
            expires_at_ms: CREATED_AT_MS + 90 * DAY_MS,
            algorithmic: false,
        }),
    }
}

fn position(generation: u32, seq: u64, prev: BatchHash) -> BatchPosition {
    BatchPosition { generation, seq, prev, epoch: 1, created_at_ms: CREATED_AT_MS + seq * 1000 }
}

/// Replaces the COSE_Sign1 inside a batch's wire form, keeping its entries.
fn with_manifest(batch: &VerifiedBatch, manifest: Vec<u8>) -> Vec<u8> {
    let entries = batch
        .raw_entries()
        .iter()
        .map(|e| e.clone().map_or(ciborium::Value::Null, ciborium::Value::Bytes))
        .collect();
    let wire = ciborium::Value::Array(vec![
        ciborium::Value::Bytes(manifest),
        ciborium::Value::Array(entries),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&wire, &mut out).unwrap();
    out
}

fn parse_manifest(batch: &VerifiedBatch) -> CoseSign1 {
    CoseSign1::from_tagged_slice(batch.manifest_bytes()).unwrap()
}

/// Every vector: (name, wire bytes, expected outcome, why).
struct Vector {
    wire: Vec<u8>,
    why: Option<&'static str>,
    expected: Result<(), BatchError>,
}

fn build() -> (Vec<Vector>, Vec<VerifiedBatch>) {
    let key = SigningKey::from_seed(&ORIGIN_SEED);
    let other = SigningKey::from_seed(&OTHER_SEED);
    let b1 = sign_batch(
        &key,
        &FEDERATION,
        position(1, 1, BatchHash::ZERO),
        &[add(1, Kind::Account, Handling::H0), add(2, Kind::Email, Handling::H1)],
    )
    .unwrap();
    let b2 = sign_batch(
        &key,
        &FEDERATION,
        position(1, 2, b1.hash()),
        &[
            add(3, Kind::Phone, Handling::H2),
            Entry {
                salt: salt(4),
                op: Op::Status(StatusUpdate {
                    token: token(1),
                    status: Status::Referred,
                    at_ms: CREATED_AT_MS + 1500,
                }),
            },
        ],
    )
    .unwrap();
    let b3 = sign_batch(
        &key,
        &FEDERATION,
        position(1, 3, b2.hash()),
        &[
            Entry {
                salt: salt(5),
                op: Op::Retract(Retract { token: token(2), reason: RetractReason::NoLongerHeld }),
            },
            add(6, Kind::Domain, Handling::H0),
            add(7, Kind::Url, Handling::H1),
        ],
    )
    .unwrap();
    let gen2 = sign_batch(
        &key,
        &FEDERATION,
        position(2, 1, b3.hash()),
        &[add(8, Kind::AccountId, Handling::H0)],
    )
    .unwrap();
    // A community share: an algorithmic add and a tag naming the snapshot's pseudonym.
    let mut algorithmic = add(9, Kind::Account, Handling::H1);
    if let Op::Add(add) = &mut algorithmic.op {
        add.algorithmic = true;
        add.activity_per_day = Some(20);
    }
    let gen2_share = sign_batch(
        &key,
        &FEDERATION,
        position(2, 2, gen2.hash()),
        &[
            algorithmic,
            Entry {
                salt: salt(10),
                op: Op::Tag(Tag {
                    token: token(9),
                    community: [0xc0; 16],
                    expires_at_ms: CREATED_AT_MS + 30 * DAY_MS,
                }),
            },
        ],
    )
    .unwrap();
    let redacted = b2.redacted(&[0]);

    let mut vectors: Vec<Vector> = [&b1, &b2, &b3, &redacted, &gen2, &gen2_share]
        .into_iter()
        .map(|b| Vector { wire: b.to_wire(), why: None, expected: Ok(()) })
        .collect();
    let envelope = |e| Err(BatchError::Envelope(e));

    // A flipped payload byte: the signature no longer covers the payload.
    let mut flipped = parse_manifest(&b1);
    let payload = flipped.payload.as_mut().unwrap();
    let last = payload.len() - 1;
    payload[last] ^= 0x01;
    vectors.push(Vector {
        wire: with_manifest(&b1, flipped.to_tagged_vec().unwrap()),
        why: Some("payload byte flipped after signing: signature does not verify"),
        expected: envelope(EnvelopeError::BadSignature),
    });

    // Signed for another federation: the external AAD differs.
    let foreign = sign_batch(
        &key,
        &FederationId([0xaa; 32]),
        position(1, 1, BatchHash::ZERO),
        &[add(1, Kind::Account, Handling::H0)],
    )
    .unwrap();
    vectors.push(Vector {
        wire: foreign.to_wire(),
        why: Some("signed with another federation id as external aad: signature does not verify"),
        expected: envelope(EnvelopeError::BadSignature),
    });

    // The origin's kid, signed by another key.
    let mut wrong_key = parse_manifest(&b1);
    let tbs = wrong_key.tbs_data(FEDERATION.as_bytes());
    wrong_key.signature = other.sign(&tbs).to_vec();
    vectors.push(Vector {
        wire: with_manifest(&b1, wrong_key.to_tagged_vec().unwrap()),
        why: Some("kid names the origin but another key signed: signature does not verify"),
        expected: envelope(EnvelopeError::BadSignature),
    });

    // A well-signed batch from a key outside the roster.
    let outsider = sign_batch(
        &other,
        &FEDERATION,
        position(1, 1, BatchHash::ZERO),
        &[add(1, Kind::Account, Handling::H0)],
    )
    .unwrap();
    vectors.push(Vector {
        wire: outsider.to_wire(),
        why: Some("signed by a key that is not in the roster"),
        expected: envelope(EnvelopeError::UnknownOrigin),
    });

    // The COSE_Sign1 without its tag 18.
    vectors.push(Vector {
        wire: with_manifest(&b1, parse_manifest(&b1).to_vec().unwrap()),
        why: Some("cose_sign1 without tag 18"),
        expected: envelope(EnvelopeError::NotCanonical),
    });

    // A kid in the (unsigned) unprotected header.
    let mut unprotected = parse_manifest(&b1);
    unprotected.unprotected.key_id = key.public_key().to_bytes().to_vec();
    vectors.push(Vector {
        wire: with_manifest(&b1, unprotected.to_tagged_vec().unwrap()),
        why: Some("non-empty unprotected header (signature itself still verifies)"),
        expected: envelope(EnvelopeError::NotCanonical),
    });

    // The signature's length written in two bytes instead of one.
    let canonical = b1.manifest_bytes().to_vec();
    let signature_at = canonical.len() - 64 - 2;
    assert_eq!(&canonical[signature_at..signature_at + 2], &[0x58, 0x40]);
    let mut long_length = canonical[..signature_at].to_vec();
    long_length.extend_from_slice(&[0x59, 0x00, 0x40]);
    long_length.extend_from_slice(&canonical[signature_at + 2..]);
    vectors.push(Vector {
        wire: with_manifest(&b1, long_length),
        why: Some("signature length encoded in 2 bytes instead of 1: not canonical"),
        expected: envelope(EnvelopeError::NotCanonical),
    });

    // An entry altered after signing: the batch stays valid, that entry is skipped.
    let mut wire =
        ciborium::de::from_reader::<ciborium::Value, _>(b3.to_wire().as_slice()).unwrap();
    if let ciborium::Value::Array(items) = &mut wire
        && let ciborium::Value::Array(entries) = &mut items[1]
        && let ciborium::Value::Bytes(bytes) = &mut entries[1]
    {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
    }
    let mut altered = Vec::new();
    ciborium::ser::into_writer(&wire, &mut altered).unwrap();
    vectors.push(Vector {
        wire: altered,
        why: Some("entry 1 altered after signing: batch valid, entry 1 skipped (digest mismatch)"),
        expected: Ok(()),
    });

    (vectors, vec![b1, b2, b3, redacted, gen2, gen2_share])
}

fn entry_json(bytes: &Option<Vec<u8>>, outcome: Result<Entry, EntryProblem>) -> Json {
    let mut fields = json!({ "entry_hex": bytes.as_ref().map(hex::encode) });
    match outcome {
        Err(problem) => {
            fields["valid"] = json!(false);
            fields["problem"] = json!(problem.to_string());
        }
        Ok(entry) => {
            fields["valid"] = json!(true);
            fields["salt_hex"] = json!(hex::encode(entry.salt));
            fields["token_hex"] = json!(entry.op.token().to_string());
            match entry.op {
                Op::Add(a) => {
                    fields["op"] = json!("add");
                    fields["kind"] = json!(a.kind.as_str());
                    fields["category"] = json!(a.category);
                    fields["handling"] = json!(a.handling.as_str());
                    fields["evaluation"] = json!(a.evaluation.to_string());
                    fields["activity_per_day"] = json!(a.activity_per_day);
                    fields["expires_at_ms"] = json!(a.expires_at_ms);
                    fields["algorithmic"] = json!(a.algorithmic);
                }
                Op::Tag(t) => {
                    fields["op"] = json!("tag");
                    fields["community_hex"] = json!(hex::encode(t.community));
                    fields["expires_at_ms"] = json!(t.expires_at_ms);
                }
                Op::Retract(r) => {
                    fields["op"] = json!("retract");
                    fields["reason"] = json!(r.reason.as_str());
                }
                Op::Status(s) => {
                    fields["op"] = json!("status");
                    fields["status"] = json!(s.status.as_str());
                    fields["at_ms"] = json!(s.at_ms);
                }
            }
        }
    }
    fields
}

fn render() -> Json {
    let origin = SigningKey::from_seed(&ORIGIN_SEED).public_key();
    let roster = [origin];
    let (vectors, _) = build();
    let batches: Vec<Json> = vectors
        .iter()
        .map(|vector| {
            let outcome = verify_batch(&vector.wire, &FEDERATION, &roster[..]);
            assert_eq!(
                outcome.as_ref().map(|_| ()).map_err(Clone::clone),
                vector.expected,
                "{:?}",
                vector.why
            );
            let mut fields = json!({
                "wire_hex": hex::encode(&vector.wire),
                "valid": outcome.is_ok(),
                "why": vector.why,
            });
            match outcome {
                Ok(batch) => {
                    let header = batch.header();
                    fields["manifest_hex"] = json!(hex::encode(batch.manifest_bytes()));
                    fields["batch_hash_hex"] = json!(batch.hash().to_string());
                    fields["generation"] = json!(header.generation);
                    fields["seq"] = json!(header.seq);
                    fields["prev_hex"] = json!(header.prev.to_string());
                    fields["epoch"] = json!(header.epoch);
                    fields["created_at_ms"] = json!(header.created_at_ms);
                    fields["entry_digests_hex"] = json!(
                        header.entry_digests.iter().map(ToString::to_string).collect::<Vec<_>>()
                    );
                    fields["entries"] = batch
                        .raw_entries()
                        .iter()
                        .zip(batch.entries())
                        .map(|(bytes, outcome)| entry_json(bytes, outcome))
                        .collect();
                }
                Err(error) => {
                    let wire: ciborium::Value =
                        ciborium::de::from_reader(vector.wire.as_slice()).unwrap();
                    let manifest = wire.as_array().and_then(|items| items[0].as_bytes()).unwrap();
                    fields["manifest_hex"] = json!(hex::encode(manifest));
                    fields["error"] = json!(error.to_string());
                }
            }
            fields
        })
        .collect();
    json!({
        "description": "crossmatch batch vectors, protocol v1; see docs/PROTOCOL.md. \
            Invalid batches carry 'why'; a batch with an invalid entry is valid, \
            and that entry is skipped.",
        "federation_id_hex": FEDERATION.to_string(),
        "origin_seed_hex": hex::encode(ORIGIN_SEED),
        "origin_public_key_hex": origin.to_string(),
        "batches": batches,
    })
}

#[test]
fn vectors_file_matches_the_code() {
    let rendered = serde_json::to_string_pretty(&render()).unwrap() + "\n";
    if std::env::var_os("CROSSMATCH_WRITE_VECTORS").is_some() {
        std::fs::write(VECTORS_PATH, &rendered).unwrap();
    }
    let on_disk = std::fs::read_to_string(VECTORS_PATH).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "{VECTORS_PATH} differs from what the code produces; if the change is intended, \
         rerun with CROSSMATCH_WRITE_VECTORS=1 and review the diff"
    );
}

#[test]
fn vectors_cover_the_required_cases() {
    let (vectors, valid) = build();
    let [b1, b2, b3, redacted, gen2, gen2_share] = &valid[..] else { panic!("six valid batches") };
    assert_eq!(gen2_share.header().prev, gen2.hash());
    assert_eq!(redacted.hash(), b2.hash());
    assert!(!redacted.is_complete());
    assert_eq!(gen2.header().seq, 1);
    assert_eq!(gen2.header().prev, b3.hash());
    assert_eq!(b2.header().prev, b1.hash());
    let ops: Vec<&'static str> = valid
        .iter()
        .flat_map(|b| b.entries().filter_map(Result::ok))
        .map(|e| match e.op {
            Op::Add(_) => "add",
            Op::Retract(_) => "retract",
            Op::Status(_) => "status",
            Op::Tag(_) => "tag",
        })
        .collect();
    let algorithmic = valid
        .iter()
        .flat_map(|b| b.entries().filter_map(Result::ok))
        .any(|e| matches!(e.op, Op::Add(Add { algorithmic: true, .. })));
    assert!(algorithmic, "an algorithmic add");
    for op in ["add", "retract", "status", "tag"] {
        assert!(ops.contains(&op), "{op} missing");
    }
    assert_eq!(vectors.iter().filter(|v| v.expected.is_err()).count(), 7);
    let altered = vectors.last().unwrap();
    let roster = [PublicKey::from_bytes(&b1.origin().to_bytes()).unwrap()];
    let batch = verify_batch(&altered.wire, &FEDERATION, &roster[..]).unwrap();
    let outcomes: Vec<_> = batch.entries().map(|e| e.err()).collect();
    assert_eq!(outcomes, vec![None, Some(EntryProblem::DigestMismatch), None]);
}
