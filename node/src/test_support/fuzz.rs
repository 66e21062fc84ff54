//! The bodies of the node's fuzz targets (`node/fuzz`) and their seeds. The cargo-fuzz targets
//! and the stable replay of their corpora (`tests/integration/fuzz_corpus.rs`) call the same
//! function here, so they cannot drift. Each body takes any bytes, must never panic, and
//! returns whether the input was accepted (parsed and valid), which the replay counts.
//!
//! Where a parser has an inverse, the body also checks the round trip: an input accepted once
//! is accepted again, unchanged, from its re-encoding.

use std::sync::Arc;

use crossmatch_protocol::{
    FederationSecret, Handling, MemberSeq, SyncRequest, SyncResponse, verify_founding,
};
use serde_json::json;

use crate::api::fuzz::{BODIES, observations_body, request_body};
use crate::hunt::analyze::ingest_lines;
use crate::hunt::{AnalyzeSettings, Ledger};
use crate::import::{self, Cursor, Defaults, Format, ImportOptions, Item, Overrides};
use crate::mesh::codec_in_memory as codec;
use crate::roster_file::{self, MAX_ROSTER_FILE_BYTES};
use crate::stix::TLP_MARKINGS;

use super::T0;
use super::roster_file::{founding_file, seat};

/// The node's fuzz targets, by name: each has a corpus `node/fuzz/corpus/<name>`.
pub const TARGETS: [&str; 7] = [
    "sync",
    "roster_file",
    "api_body",
    "observations",
    "import_csv",
    "import_jsonl",
    "import_stix",
];

/// Most items one import input may yield: inputs are small, so more means a reader that loops.
const MAX_ITEMS: usize = 100_000;

/// Runs target `name` on `bytes`.
///
/// # Panics
/// On an unknown target name (and wherever the target's body finds a bug).
pub fn run(name: &str, bytes: &[u8]) -> bool {
    match name {
        "sync" => sync(bytes),
        "roster_file" => roster_file(bytes),
        "api_body" => api_body(bytes),
        "observations" => observations(bytes),
        "import_csv" => import_csv(bytes),
        "import_jsonl" => import_jsonl(bytes),
        "import_stix" => import_stix(bytes),
        other => panic!("no fuzz target named {other}"),
    }
}

/// The sync codec (the mesh's, with the protocol's size limits), as a request and as a
/// response: what reads is checked (`is_well_formed`, `encoded_len_max`), written back and
/// read again unchanged, and the response's bound holds its encoding.
pub fn sync(bytes: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(request) = codec::read_request(bytes) {
        accepted = true;
        let _ = request.is_well_formed();
        let written = codec::write_request(request.clone()).expect("a request read is written");
        let again = codec::read_request(&written).expect("a written request reads");
        assert_eq!(again, request, "a request reads back unchanged");
    }
    if let Ok(response) = codec::read_response(bytes) {
        accepted = true;
        let bound = response.encoded_len_max();
        let written = codec::write_response(response.clone()).expect("a response read is written");
        assert!(written.len() <= bound, "encoded_len_max {bound} < encoding {}", written.len());
        let again = codec::read_response(&written).expect("a written response reads");
        assert_eq!(again, response, "a response reads back unchanged");
    }
    accepted
}

/// The roster file reader (TOML): what parses renders back to a file that parses to the same
/// roster, and the founding checks run on it.
pub fn roster_file(bytes: &[u8]) -> bool {
    if bytes.len() as u64 > MAX_ROSTER_FILE_BYTES {
        return false;
    }
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let Ok(file) = roster_file::parse(text) else { return false };
    let rendered = roster_file::render(&file);
    let again = roster_file::parse(&rendered).expect("a rendered roster file parses");
    assert_eq!(again, file, "a roster file renders and parses back unchanged");
    let _ = verify_founding(&file.roster);
    true
}

/// The API's JSON (and roster) request bodies, through their handlers' checks.
pub fn api_body(bytes: &[u8]) -> bool {
    request_body(bytes)
}

/// The hunt's observation lines, as `crossmatch hunt analyze` reads a file and as the API's
/// observations body is chunked and checked line by line.
pub fn observations(bytes: &[u8]) -> bool {
    let settings = AnalyzeSettings::at(T0);
    let mut ledger = Ledger::new(settings.limits);
    let counts = ingest_lines(bytes, &mut ledger, &settings, &mut |_| {});
    let read = counts.is_ok_and(|counts| counts.read > counts.refused);
    let accepted = observations_body(bytes);
    read || accepted > 0
}

/// The CSV import reader, read to its end and resumed from its cursors.
pub fn import_csv(bytes: &[u8]) -> bool {
    import_file(bytes, Format::Csv)
}

/// The JSON lines import reader, read to its end and resumed from its cursors.
pub fn import_jsonl(bytes: &[u8]) -> bool {
    import_file(bytes, Format::Jsonl)
}

/// The STIX 2.1 bundle reader, read to its end and resumed from its cursors.
pub fn import_stix(bytes: &[u8]) -> bool {
    import_file(bytes, Format::Stix)
}

/// The import options of the fuzz targets: every default set, so rows become records.
fn import_options(format: Format) -> ImportOptions {
    ImportOptions {
        format,
        source: "fuzz".into(),
        defaults: Defaults {
            category: Some("propaganda".into()),
            handling: Some(Handling::H0),
            evaluation: "B2".parse().ok(),
            expires_in_days: Some(30),
            share: true,
        },
        overrides: Overrides::default(),
        spread: false,
    }
}

/// Reads `bytes` as an import of `format` to its end (or its first error), then resumes from
/// item cursors ([`resume_points`]) and checks the rest is what the straight read gave.
/// Accepted: at least one row became a record.
fn import_file(bytes: &[u8], format: Format) -> bool {
    let _ = import::detect(bytes);
    let bytes: Arc<[u8]> = bytes.into();
    let options = import_options(format);
    let Some(straight) = read_items(&bytes, &options, None) else { return false };
    for n in resume_points(straight.len()) {
        let Some(cursor) = straight[n].1 else { continue };
        let resumed = read_items(&bytes, &options, Some(cursor))
            .unwrap_or_else(|| panic!("the reader reopens at its own cursor {cursor:?}"));
        let expected: Vec<_> = straight[n + 1..].iter().map(|(item, _)| item).collect();
        let got: Vec<_> = resumed.iter().map(|(item, _)| item).collect();
        assert_eq!(got, expected, "resuming after item {n} at {cursor:?}");
    }
    straight.iter().any(|(item, _)| matches!(item, Ok(Item::Row(_))))
}

/// Most cursors one input is resumed from.
const MAX_RESUMES: usize = 16;

/// The items (of `items`) whose cursors an input is resumed from: every one when there are at
/// most [`MAX_RESUMES`], else at most that many, evenly spaced and ending with the last. Each
/// resume reopens the reader (for CSV that builds the parser's tables, which the fuzzer's
/// instrumentation makes costly), so resuming from every cursor made an input's cost grow
/// with the square of its items; the fuzzer varies the inputs, and so the cursors tried.
fn resume_points(items: usize) -> impl Iterator<Item = usize> {
    let step = items.div_ceil(MAX_RESUMES).max(1);
    (0..items).rev().step_by(step)
}

/// An item read (an error's kind standing for the error, which ends the read) and the cursor
/// after it (none after an error).
type ItemRead = (Result<Item, std::io::ErrorKind>, Option<Cursor>);

/// The items read from `from` on; `None` when the reader does not open.
fn read_items(
    bytes: &Arc<[u8]>,
    options: &ImportOptions,
    from: Option<Cursor>,
) -> Option<Vec<ItemRead>> {
    let mut rows = import::open_bytes(Arc::clone(bytes), options, from).ok()?;
    let mut items = Vec::new();
    while let Some(item) = rows.next() {
        let (read, bytes_total) = rows.progress();
        assert!(read <= bytes_total, "progress {read} past the length {bytes_total}");
        match item {
            Ok(item) => items.push((Ok(item), Some(rows.cursor()))),
            Err(error) => {
                items.push((Err(error.kind()), None));
                break;
            }
        }
        assert!(items.len() <= MAX_ITEMS, "the reader does not end");
    }
    Some(items)
}

/// Small valid inputs of target `name`, made by the real encoders, with a few edge cases: its
/// corpus's seeds.
///
/// # Panics
/// On an unknown target name.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "sync" => sync_seeds(),
        "roster_file" => roster_file_seeds(),
        "api_body" => api_body_seeds(),
        "observations" => observation_seeds(),
        "import_csv" => csv_seeds(),
        "import_jsonl" => jsonl_seeds(),
        "import_stix" => stix_seeds(),
        other => panic!("no fuzz target named {other}"),
    }
}

fn sync_seeds() -> Vec<Vec<u8>> {
    let requests = [
        SyncRequest::Heads,
        SyncRequest::Forks,
        SyncRequest::Range { origin: [0x11; 32], generation: 2, from_seq: 5, max: 16 },
        SyncRequest::RosterHead,
        SyncRequest::Rosters { from_version: 3 },
        SyncRequest::RecordSeqs,
        SyncRequest::MemberRecords { members: vec!["DE".into(), "fr-2".into()] },
        SyncRequest::RosterConflict,
    ];
    let responses = [
        SyncResponse::Heads(vec![vec![0xd2, 0x84, 0x43], vec![]]),
        SyncResponse::Batches(vec![vec![0x83; 24], vec![0x01]]),
        SyncResponse::Forks(vec![vec![0x82, 0x40, 0x40]]),
        SyncResponse::Refused("busy".into()),
        SyncResponse::RosterHead { version: 2, hash: [0x22; 32] },
        SyncResponse::Rosters(vec![]),
        SyncResponse::RecordSeqs(vec![MemberSeq { member: "DE".into(), seq: 3 }]),
        SyncResponse::MemberRecords(vec![vec![0xa6, 0x00]]),
        SyncResponse::RosterConflict(vec![]),
    ];
    let mut seeds: Vec<Vec<u8>> = requests
        .into_iter()
        .map(|request| codec::write_request(request).expect("a request is written"))
        .collect();
    seeds.extend(
        responses
            .into_iter()
            .map(|response| codec::write_response(response).expect("a response is written")),
    );
    seeds
}

fn roster_file_seeds() -> Vec<Vec<u8>> {
    let secret = FederationSecret::from_bytes([5; 32]);
    let seats = [
        seat("DE", 1, &["/dns4/de.example/tcp/4001".into()]),
        seat("FR", 2, &[]),
        seat("NL", 3, &["/ip4/192.0.2.7/tcp/4001".into()]),
    ];
    let one = founding_file(super::FEDERATION, &secret, &seats[..1], T0 + 86_400_000);
    let three = founding_file(super::FEDERATION, &secret, &seats, T0 + 86_400_000);
    vec![roster_file::render(&one).into_bytes(), roster_file::render(&three).into_bytes()]
}

fn api_body_seeds() -> Vec<Vec<u8>> {
    let bodies = [
        json!({"identifiers": [{"kind": "account", "platform": "x", "value": "@someone"},
                               {"kind": "phone", "region": "FR", "value": "06 12 34 56 78"}],
               "category": "propaganda", "handling": "H1", "evaluation": "B2",
               "notes": "n", "expires_in_days": 30, "share": true}),
        json!({"status": "removed", "at_ms": 1_700_000_000_000u64}),
        json!({"preview": true, "handling": "H1", "category": "propaganda", "evaluation": "B2",
               "expires_in_days": 30}),
        json!({"label": "a network", "seeds": ["v1|account|x|someone"]}),
        json!({"pinned": false}),
        json!({"with": 4}),
        json!({"accounts": ["v1|account|x|someone"], "label": "part"}),
        json!({"account": "@someone", "platform": "x", "category": "journalist"}),
    ];
    let mut seeds: Vec<Vec<u8>> = bodies
        .iter()
        .enumerate()
        .map(|(kind, body)| {
            let mut seed = vec![u8::try_from(kind).unwrap_or(0)];
            seed.extend(serde_json::to_vec(body).expect("JSON is written"));
            seed
        })
        .collect();
    let roster = BODIES.iter().position(|body| *body == "roster").unwrap_or(0);
    for file in roster_file_seeds().into_iter().take(1) {
        seeds.push([vec![u8::try_from(roster).unwrap_or(0)], file].concat());
    }
    let signed = founding_file(
        super::FEDERATION,
        &FederationSecret::from_bytes([5; 32]),
        &[seat("DE", 1, &[])],
        T0,
    );
    seeds.push([vec![u8::try_from(roster).unwrap_or(0)], signed.roster.to_wire()].concat());
    // Edge cases: an empty pin body (read as `{}`), and an empty input.
    seeds.push(vec![4]);
    seeds.push(vec![]);
    seeds
}

fn observation_seeds() -> Vec<Vec<u8>> {
    let lines = super::api_node::clique_observations(T0);
    let follows = r#"{"platform":"telegram","account":"chan_a","at":"2027-01-15T07:00:00Z","follows":["chan_b","chan_c"]}"#;
    vec![
        // Frames of 64 bytes.
        [b"?".to_vec(), lines[..4].join("\n").into_bytes()].concat(),
        // Frames of one byte, CRLF lines and a blank one.
        [vec![0], lines[4..6].join("\r\n\r\n").into_bytes()].concat(),
        [b"\x10".to_vec(), follows.as_bytes().to_vec()].concat(),
    ]
}

fn csv_seeds() -> Vec<Vec<u8>> {
    let semicolon = "\u{feff}subject;kind;platform;region;value;category;handling;notes\r\n\
        s1;account;x;;@alpha_1;;H2;\"quoted; with separator\"\r\n\
        s1;email;;;Alpha@Example.org;;;\r\n\
        s1;phone;;FR;06 12 34 56 78;;;\r\n\
        ;domain;;;Example.net;;;\r\n";
    let comma = "kind,platform,value,subject,category\naccount,x,alpha_1,s1,propaganda\n\
        account,x,beta,s1,propaganda\nurl,,https://example.org/a,,\n";
    vec![semicolon.as_bytes().to_vec(), comma.as_bytes().to_vec(), b"kind;value\n".to_vec()]
}

fn jsonl_seeds() -> Vec<Vec<u8>> {
    let lines = [
        json!({"identifiers": [{"kind": "account", "platform": "x", "value": "@alpha"}], "subject": "s1"}),
        json!({"identifiers": [{"kind": "domain", "value": "example.net"}], "handling": "H2",
               "category": "propaganda", "expires_in_days": 7, "share": false}),
    ];
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    vec![text.join("\n").into_bytes(), format!("\n{}\r\n\n", text[1]).into_bytes()]
}

fn stix_seeds() -> Vec<Vec<u8>> {
    let green = TLP_MARKINGS[3].0;
    let red = TLP_MARKINGS[8].0;
    let bundle = |objects: serde_json::Value| {
        let bundle = json!({"type": "bundle", "id": "bundle--0d3c1e4c-2a7e-4d38-9a47-7b1f8f0c2b1a", "objects": objects});
        serde_json::to_vec(&bundle).expect("JSON is written")
    };
    let pattern = "[user-account:account_login = 'example_handle' AND user-account:account_type = 'twitter'] OR [domain-name:value = 'example.com']";
    vec![
        bundle(json!([
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6ba7b810-9dad-41d1-80b4-00c04fd430c8",
             "created": "2026-01-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.500Z",
             "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
             "object_marking_refs": [green]},
            {"type": "user-account", "id": "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598", "account_login": "example_handle", "account_type": "twitter", "object_marking_refs": [green]},
            {"type": "domain-name", "id": "domain-name--7f1c4c5e-5d0b-5b2a-9f0e-7d8a5c1b2e3f", "value": "other.example"},
            {"type": "observed-data", "id": "observed-data--2b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b", "object_refs": ["domain-name--7f1c4c5e-5d0b-5b2a-9f0e-7d8a5c1b2e3f"], "object_marking_refs": [red]},
        ])),
        bundle(json!([
            {"type": "email-addr", "id": "email-addr--6deb37bd-12b7-54ae-805f-5f7146f3d171", "value": "JDoe@Example.com", "object_marking_refs": [green]},
            {"type": "url", "id": "url--be22e93a-5e33-5678-b19f-8b4ea06df0bd", "value": "https://example.com/", "object_marking_refs": [green]},
            {"type": "observed-data", "id": "observed-data--3b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b", "object_marking_refs": [green],
             "objects": {"0": {"type": "email-addr", "value": "a@example.org"}}},
        ])),
        bundle(json!([])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_resume_from_every_cursor_of_a_short_read_and_sixteen_of_a_long_one() {
        assert_eq!(resume_points(0).count(), 0);
        assert_eq!(resume_points(5).collect::<Vec<_>>(), [4, 3, 2, 1, 0]);
        assert_eq!(resume_points(MAX_RESUMES).count(), MAX_RESUMES);
        for items in [17, 100, 1_000, 99_999] {
            let points: Vec<usize> = resume_points(items).collect();
            assert!(points.len() <= MAX_RESUMES, "{items}: {}", points.len());
            assert!(points.len() >= MAX_RESUMES / 2, "{items}: {}", points.len());
            assert_eq!(points[0], items - 1, "the last item's cursor is tried");
            assert!(points.windows(2).all(|pair| pair[0] > pair[1]));
        }
    }
}
