//! The sync messages' CBOR form against `vectors/sync_messages.json`: bytes the node put on the
//! wire before the types moved into this crate. Every variant is encoded byte for byte and
//! decoded back; byte fields stay CBOR byte strings of the exact length.

use crossmatch_protocol::{MAX_RANGE_BATCHES, MemberSeq, SyncRequest, SyncResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

fn vectors(kind: &str) -> Vec<(String, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/sync_messages.json");
    let text = std::fs::read_to_string(path).expect("reading the sync vectors");
    let json: Json = serde_json::from_str(&text).expect("parsing the sync vectors");
    json[kind]
        .as_array()
        .expect("a list of vectors")
        .iter()
        .map(|vector| {
            let name = vector["name"].as_str().expect("a name").to_string();
            let bytes = hex::decode(vector["cbor_hex"].as_str().expect("hex")).expect("hex");
            (name, bytes)
        })
        .collect()
}

fn request_named(name: &str) -> SyncRequest {
    match name {
        "heads" => SyncRequest::Heads,
        "forks" => SyncRequest::Forks,
        "range" => SyncRequest::Range { origin: [0x11; 32], generation: 2, from_seq: 5, max: 16 },
        "range_extremes" => SyncRequest::Range {
            origin: std::array::from_fn(|i| i as u8),
            generation: u32::MAX,
            from_seq: u64::MAX,
            max: MAX_RANGE_BATCHES,
        },
        "roster_head" => SyncRequest::RosterHead,
        "rosters" => SyncRequest::Rosters { from_version: 3 },
        "record_seqs" => SyncRequest::RecordSeqs,
        "member_records" => {
            SyncRequest::MemberRecords { members: vec!["DE".into(), "fr-2".into()] }
        }
        "roster_conflict" => SyncRequest::RosterConflict,
        other => panic!("no request named {other}"),
    }
}

fn response_named(name: &str) -> SyncResponse {
    match name {
        "heads" => SyncResponse::Heads(vec![vec![0xd2, 0x84, 0x43], vec![]]),
        "heads_empty" => SyncResponse::Heads(vec![]),
        "batches" => SyncResponse::Batches(vec![vec![0x83; 24], vec![0x01], vec![0xff; 300]]),
        "forks" => SyncResponse::Forks(vec![vec![0x82, 0x40, 0x40]]),
        "refused" => SyncResponse::Refused("busy".to_string()),
        "refused_long" => SyncResponse::Refused("roster unconfirmed".to_string()),
        "roster_head" => SyncResponse::RosterHead { version: 2, hash: [0x22; 32] },
        "rosters" => SyncResponse::Rosters(vec![vec![0xa3, 0x00], vec![]]),
        "rosters_empty" => SyncResponse::Rosters(vec![]),
        "record_seqs" => SyncResponse::RecordSeqs(vec![
            MemberSeq { member: "DE".into(), seq: 3 },
            MemberSeq { member: "FR".into(), seq: u64::MAX },
        ]),
        "record_seqs_empty" => SyncResponse::RecordSeqs(vec![]),
        "member_records" => SyncResponse::MemberRecords(vec![vec![0xa6, 0x00], vec![]]),
        "roster_conflict" => SyncResponse::RosterConflict(vec![vec![0x82, 0x41, 0xa0, 0x41, 0xa1]]),
        "roster_conflict_none" => SyncResponse::RosterConflict(vec![]),
        other => panic!("no response named {other}"),
    }
}

/// The variant's wire name; a new variant does not compile until it is named here (and then
/// needs a vector).
fn request_variant(request: &SyncRequest) -> &'static str {
    match request {
        SyncRequest::Heads => "heads",
        SyncRequest::Range { .. } => "range",
        SyncRequest::Forks => "forks",
        SyncRequest::RosterHead => "roster_head",
        SyncRequest::Rosters { .. } => "rosters",
        SyncRequest::RecordSeqs => "record_seqs",
        SyncRequest::MemberRecords { .. } => "member_records",
        SyncRequest::RosterConflict => "roster_conflict",
    }
}

fn response_variant(response: &SyncResponse) -> &'static str {
    match response {
        SyncResponse::Heads(_) => "heads",
        SyncResponse::Batches(_) => "batches",
        SyncResponse::Forks(_) => "forks",
        SyncResponse::Refused(_) => "refused",
        SyncResponse::RosterHead { .. } => "roster_head",
        SyncResponse::Rosters(_) => "rosters",
        SyncResponse::RecordSeqs(_) => "record_seqs",
        SyncResponse::MemberRecords(_) => "member_records",
        SyncResponse::RosterConflict(_) => "roster_conflict",
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("encodes");
    bytes
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> T {
    ciborium::from_reader(bytes).expect("decodes")
}

#[test]
fn every_request_variant_encodes_as_before() {
    let mut variants = Vec::new();
    for (name, golden) in vectors("requests") {
        let request = request_named(&name);
        assert_eq!(hex::encode(encode(&request)), hex::encode(&golden), "request {name}");
        assert_eq!(decode::<SyncRequest>(&golden), request, "request {name}");
        variants.push(request_variant(&request));
    }
    variants.sort_unstable();
    variants.dedup();
    assert_eq!(
        variants,
        [
            "forks",
            "heads",
            "member_records",
            "range",
            "record_seqs",
            "roster_conflict",
            "roster_head",
            "rosters"
        ]
    );
}

#[test]
fn every_response_variant_encodes_as_before() {
    let mut variants = Vec::new();
    for (name, golden) in vectors("responses") {
        let response = response_named(&name);
        assert_eq!(hex::encode(encode(&response)), hex::encode(&golden), "response {name}");
        assert_eq!(decode::<SyncResponse>(&golden), response, "response {name}");
        assert!(golden.len() <= response.encoded_len_max(), "response {name}");
        variants.push(response_variant(&response));
    }
    variants.sort_unstable();
    variants.dedup();
    assert_eq!(
        variants,
        [
            "batches",
            "forks",
            "heads",
            "member_records",
            "record_seqs",
            "refused",
            "roster_conflict",
            "roster_head",
            "rosters"
        ]
    );
}

#[test]
fn requests_carry_the_origin_as_one_byte_string() {
    let request = SyncRequest::Range { origin: [7; 32], generation: 2, from_seq: 5, max: 16 };
    let bytes = encode(&request);
    assert_eq!(decode::<SyncRequest>(&bytes), request);
    // The origin is one byte string (0x58 0x20 + 32 bytes), not an array of 32 integers.
    let needle = [&[0x58, 0x20][..], &[7; 32][..]].concat();
    assert!(bytes.windows(needle.len()).any(|window| window == needle));
    assert!(bytes.len() < 100);
}

#[test]
fn responses_stay_within_their_size_bound() {
    let response = SyncResponse::Batches(vec![vec![1; 300], vec![], vec![255; 70_000]]);
    let bytes = encode(&response);
    assert_eq!(decode::<SyncResponse>(&bytes), response);
    assert!(bytes.len() <= response.encoded_len_max());
    assert!(bytes.len() < 70_400);
    let refused = SyncResponse::Refused("busy".into());
    let bytes = encode(&refused);
    assert_eq!(decode::<SyncResponse>(&bytes), refused);
    assert!(bytes.len() <= refused.encoded_len_max());
}

#[test]
fn an_origin_of_the_wrong_length_is_refused() {
    /// A byte string of any length, where the origin belongs.
    struct Bytes(Vec<u8>);
    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }
    #[derive(Serialize)]
    enum Fake {
        #[serde(rename = "range")]
        Range { origin: Bytes, generation: u32, from_seq: u64, max: u32 },
    }
    for length in [31, 33] {
        let fake =
            Fake::Range { origin: Bytes(vec![1; length]), generation: 1, from_seq: 1, max: 1 };
        let bytes = encode(&fake);
        assert!(ciborium::from_reader::<SyncRequest, _>(bytes.as_slice()).is_err());
    }
    // Nor is an origin written as an array of integers.
    #[derive(Serialize)]
    enum AsArray {
        #[serde(rename = "range")]
        Range { origin: [u8; 32], generation: u32, from_seq: u64, max: u32 },
    }
    let bytes = encode(&AsArray::Range { origin: [1; 32], generation: 1, from_seq: 1, max: 1 });
    assert!(ciborium::from_reader::<SyncRequest, _>(bytes.as_slice()).is_err());
}
