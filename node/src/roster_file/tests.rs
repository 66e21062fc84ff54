//! The roster file's unit tests: render then parse is the identity, rendering is stable, and
//! what parse refuses (unknown keys, bad hex, bad times, an oversized file).

use super::*;
use crate::test_support::roster_file::{founding_file, key_change, seat};
use crate::test_support::{SECRET, TempDir};
use crossmatch_protocol::SigningKey;

const EXPIRES: u64 = 1_900_000_000_123;

fn sample() -> RosterFile {
    let seats = [
        seat("FR", 2, &["/dns4/fr.example/tcp/7400".into()]),
        seat("DE", 1, &["/ip4/10.0.0.1/tcp/7400".into(), "/dns4/de.example/tcp/7400".into()]),
        seat("NL", 3, &[]),
    ];
    let mut file = founding_file(FederationId([4; 32]), &SECRET, &seats, EXPIRES);
    file.roster.body.rotation = Some(Rotation {
        previous_epoch: 1,
        previous_secret_fingerprint: [6; 32],
        changeover_at_ms: 1_850_000_000_000,
        grace_ms: 86_400_000,
    });
    file.roster.body.epoch = 2;
    file.roster.body.members[0].retired_node_keys =
        vec![SigningKey::from_seed(&[40; 32]).public_key()];
    file.roster.key_changes.push(key_change(
        &FederationId([4; 32]),
        &seats[1],
        &SigningKey::from_seed(&[41; 32]),
        Some(crossmatch_protocol::FinalHead {
            generation: 2,
            seq: 17,
            hash: crossmatch_protocol::BatchHash([5; 32]),
        }),
    ));
    file.records[0].record.contact = "\"quoted\" \\ desk\nline".into();
    file
}

#[test]
fn render_then_parse_is_the_identity_and_rendering_is_stable() {
    let file = sample();
    let text = render(&file);
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed, file);
    assert_eq!(render(&parsed), text);
    // The hash in the header comment is the body's, which parsing does not change.
    assert!(text.contains(&hex::encode(file.roster.body.hash())));
    // A draft (no members, no signatures) round-trips too.
    let mut draft = file.clone();
    draft.roster.body.members.clear();
    draft.roster.signatures.clear();
    draft.roster.key_changes.clear();
    draft.records.clear();
    draft.roster.body.rotation = None;
    assert_eq!(parse(&render(&draft)).unwrap(), draft);
}

#[test]
fn unknown_keys_and_bad_values_are_refused_by_field() {
    let text = render(&sample());
    let refused = |text: &str| parse(text).unwrap_err().to_string();
    assert!(refused(&format!("colour = \"red\"\n{text}")).contains("unknown field"));
    let with = text.replace("[[members]]\n", "[[members]]\naddresses = []\n");
    assert!(refused(&with).contains("unknown field"), "{}", refused(&with));
    let bad_key = text.replacen("node_key = \"", "node_key = \"zz", 1);
    assert!(refused(&bad_key).contains("members[DE].node_key"), "{}", refused(&bad_key));
    let bad_id = text.replacen("id = \"DE\"", "id = \"D E\"", 1);
    assert!(refused(&bad_id).contains("member id"), "{}", refused(&bad_id));
    let bad_time = text.replacen("expires_at = \"", "expires_at = \"next ", 1);
    assert!(refused(&bad_time).contains("expires_at"));
    let missing = text.replacen("threshold = ", "# threshold = ", 1);
    assert!(refused(&missing).contains("threshold"), "{}", refused(&missing));
}

#[test]
fn times_are_rfc_3339_with_at_most_milliseconds() {
    assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_time(1_800_000_000_007), "2027-01-15T08:00:00.007Z");
    assert_eq!(parse_time("2027-01-15T08:00:00.007Z", "t").unwrap(), 1_800_000_000_007);
    assert_eq!(parse_time("2027-01-15T10:00:00+02:00", "t").unwrap(), 1_800_000_000_000);
    assert!(parse_time("2027-01-15T08:00:00.0001Z", "t").is_err());
    assert!(parse_time("1969-12-31T23:59:59Z", "t").is_err());
}

#[test]
fn a_file_over_the_bound_is_refused_before_parsing() {
    let dir = TempDir::new("roster-file");
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, render(&sample())).unwrap();
    assert_eq!(read(&path).unwrap(), sample());
    let padding = "#".repeat(usize::try_from(MAX_ROSTER_FILE_BYTES).unwrap());
    std::fs::write(&path, format!("{padding}\n{}", render(&sample()))).unwrap();
    assert!(matches!(read(&path), Err(Error::TooLarge { .. })));
}
