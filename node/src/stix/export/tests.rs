//! Unit tests of the STIX export's writer: the bundle's shape, the fixed ids, observables once
//! each with the standard's ids, patterns, markings, no notes and no confidence, sightings (none
//! from an H2 add), tokens only when asked, and revoked objects.

use crossmatch_protocol::{Status, Token};
use serde_json::Value;

use super::*;
use crate::stix::parse_timestamp;
use crate::store::StoredIdentifier;

const CREATED_MS: u64 = 1_800_000_000_000;

fn record(id: u64, canonicals: &[&str], handling: Handling) -> Record {
    Record {
        id,
        identifiers: canonicals
            .iter()
            .enumerate()
            .map(|(n, canonical)| StoredIdentifier {
                canonical: (*canonical).into(),
                token: Token([u8::try_from(n).unwrap() + 1; 32]),
                epoch: 3,
            })
            .collect(),
        category: "propaganda".into(),
        handling,
        evaluation: "B2".parse().unwrap(),
        notes: "a secret note about the source".into(),
        activity_per_day: Some(40),
        expires_at_ms: CREATED_MS + 86_400_000,
        shared: true,
        created_at_ms: CREATED_MS,
        created_by: "ana".into(),
        algorithmic: false,
        status: None,
        backlog: false,
        pending_share: false,
        import: None,
    }
}

fn ids(byte: u8) -> StixIds {
    let mut uuid = [byte; 16];
    uuid[6] = 0x40 | (byte & 0x0f);
    uuid[8] = 0x80 | (byte & 0x3f);
    StixIds {
        uuid,
        created_ms: CREATED_MS + 1_000,
        modified_ms: CREATED_MS + 2_000,
        fingerprint: [0; 32],
        sighting_of: None,
        handling: Handling::H3,
    }
}

fn identity(byte: u8, name: &str) -> IdentityIn {
    IdentityIn { ids: ids(byte), name: name.into(), contact: format!("ops@{name}.example") }
}

/// A whole bundle from chunks, parsed.
fn bundle(chunks: &[Vec<u8>]) -> Value {
    let bytes: Vec<u8> = chunks.concat();
    serde_json::from_slice(&bytes).expect("the chunks make one JSON bundle")
}

fn objects(bundle: &Value) -> &Vec<Value> {
    bundle["objects"].as_array().expect("objects")
}

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    objects(bundle).iter().filter(|object| object["type"] == kind).collect()
}

#[test]
fn the_head_carries_the_fixed_objects_and_the_identities() {
    let mut writer = BundleWriter::new(&ids(1).uuid, None);
    let head = writer.head(&ids(9).uuid, &[identity(1, "DE"), identity(2, "FR")]);
    let tail = writer.tail();
    let whole = bundle(&[head, tail]);
    let bundle = &whole;
    assert_eq!(bundle["type"], "bundle");
    assert_eq!(bundle["id"], object_id("bundle", &ids(9).uuid));
    let identities = of_type(bundle, "identity");
    assert_eq!(identities[0]["id"], PROJECT_IDENTITY_ID);
    assert_eq!(identities[0]["identity_class"], "system");
    assert_eq!(identities[0]["created"], FIXED_TIMESTAMP);
    assert_eq!(identities[1]["id"], object_id("identity", &ids(1).uuid));
    assert_eq!(identities[1]["name"], "DE");
    assert_eq!(identities[1]["contact_information"], "ops@DE.example");
    assert_eq!(identities[2]["name"], "FR");
    // A member's identity keeps its stored times: an export re-issues no new version of it.
    assert_eq!(identities[2]["created"], timestamp(CREATED_MS + 1_000));
    assert_eq!(identities[2]["modified"], timestamp(CREATED_MS + 2_000));
    let markings = of_type(bundle, "marking-definition");
    let marking_ids: Vec<&str> = markings.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let fixed: Vec<&str> = HANDLING_MARKINGS.iter().map(|m| m.id).collect();
    assert_eq!(marking_ids, fixed);
    for (marking, fixed) in markings.iter().zip(HANDLING_MARKINGS) {
        assert_eq!(marking["definition_type"], "statement");
        assert_eq!(marking["definition"]["statement"], fixed.statement);
        assert_eq!(marking["created_by_ref"], PROJECT_IDENTITY_ID);
        assert!(marking.get("modified").is_none(), "marking definitions have no modified");
    }
    let extensions: Vec<&str> =
        of_type(bundle, "extension-definition").iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(extensions, [PHONE_EXTENSION.id, WITHDRAWN_EXTENSION.id], "no tokens unasked");
    for extension in of_type(bundle, "extension-definition") {
        for property in ["name", "description", "schema", "version", "extension_types"] {
            assert!(extension.get(property).is_some(), "{property}");
        }
    }
    assert_eq!(writer.written().objects, 1 + 4 + 2 + 2);

    let mut writer = BundleWriter::new(&ids(1).uuid, Some(FederationId([7; 32])));
    let with_tokens = self::bundle(&[writer.head(&ids(9).uuid, &[]), writer.tail()]);
    let extensions = of_type(&with_tokens, "extension-definition");
    assert!(extensions.iter().any(|e| e["id"] == TOKENS_EXTENSION.id));
}

#[test]
fn a_record_is_observables_once_and_an_indicator_with_its_marking() {
    let mut writer = BundleWriter::new(&ids(1).uuid, None);
    let head = writer.head(&ids(9).uuid, &[]);
    let first = record(
        12,
        &[
            "v1|account|x|example_handle",
            "v1|account_id|telegram|123456789",
            "v1|email|jdoe@example.com",
            "v1|phone|+33612345678",
            "v1|url|https://example.com/",
            "v1|domain|example.com",
        ],
        Handling::H3,
    );
    let mut second = record(13, &["v1|domain|example.com"], Handling::H1);
    second.status = Some((Status::Referred, CREATED_MS));
    second.backlog = true;
    let chunks =
        [head, writer.record(&ids(2), &first), writer.record(&ids(3), &second), writer.tail()];
    let text = String::from_utf8(chunks.concat()).unwrap();
    let bundle = bundle(&chunks);
    let mut sco_ids: Vec<&str> = objects(&bundle)
        .iter()
        .filter(|o| {
            ["user-account", "email-addr", "url", "domain-name"]
                .contains(&o["type"].as_str().unwrap())
        })
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    sco_ids.sort_unstable();
    assert_eq!(
        sco_ids,
        [
            "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7",
            "email-addr--6deb37bd-12b7-54ae-805f-5f7146f3d171",
            "url--be22e93a-5e33-5678-b19f-8b4ea06df0bd",
            "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598",
            "user-account--41516365-9ad7-5140-acc9-0db7b8de381d",
        ],
        "the standard's ids, the shared domain once, no phone observable"
    );
    let account = objects(&bundle)
        .iter()
        .find(|o| o["id"] == "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598")
        .unwrap();
    assert_eq!(account["account_type"], "twitter");
    assert_eq!(account["account_login"], "example_handle");
    assert_eq!(account["object_marking_refs"][0], handling_marking_id(Handling::H3));
    let indicators = of_type(&bundle, "indicator");
    assert_eq!(indicators.len(), 2);
    let indicator = indicators[0];
    assert_eq!(indicator["id"], object_id("indicator", &ids(2).uuid));
    assert_eq!(indicator["name"], "crossmatch record 12");
    assert_eq!(indicator["created_by_ref"], object_id("identity", &ids(1).uuid));
    assert_eq!(parse_timestamp(indicator["created"].as_str().unwrap()), Some(CREATED_MS + 1_000));
    assert_eq!(parse_timestamp(indicator["modified"].as_str().unwrap()), Some(CREATED_MS + 2_000));
    assert_eq!(parse_timestamp(indicator["valid_from"].as_str().unwrap()), Some(CREATED_MS));
    assert_eq!(
        parse_timestamp(indicator["valid_until"].as_str().unwrap()),
        Some(CREATED_MS + 86_400_000)
    );
    assert_eq!(
        indicator["object_marking_refs"],
        serde_json::json!([handling_marking_id(Handling::H3)])
    );
    assert_eq!(
        indicator["pattern"],
        "[user-account:account_type = 'twitter' AND user-account:account_login = 'example_handle'] \
         OR [user-account:account_type = 'telegram' AND user-account:user_id = '123456789'] \
         OR [email-addr:value = 'jdoe@example.com'] OR [x-crossmatch-phone:value = '+33612345678'] \
         OR [url:value = 'https://example.com/'] OR [domain-name:value = 'example.com']"
    );
    assert_eq!(indicator["pattern_type"], "stix");
    let description = indicator["description"].as_str().unwrap();
    assert!(description.contains("propaganda"), "{description}");
    assert!(description.contains("source reliability B, information credibility 2"));
    assert!(!description.contains("Watched"), "a shared record");
    assert!(indicators[1]["description"].as_str().unwrap().contains("Status: referred"));
    assert!(indicators[1]["description"].as_str().unwrap().contains("Backlog"));
    assert_eq!(indicators[1]["object_marking_refs"][0], handling_marking_id(Handling::H1));
    assert!(!text.contains("secret note"), "notes are never exported");
    assert!(!text.contains("confidence"), "evaluation is not confidence");
    assert!(!text.contains(TOKENS_EXTENSION.id), "tokens only when asked");
    assert!(!text.contains(&Token([1; 32]).to_string()));
    assert_eq!(
        writer.written(),
        Written { objects: 1 + 4 + 2 + 5 + 2, indicators: 2, observables: 5, ..Written::default() }
    );
}

#[test]
fn tokens_travel_in_their_extension_when_asked() {
    let federation = FederationId([7; 32]);
    let mut writer = BundleWriter::new(&ids(1).uuid, Some(federation));
    let head = writer.head(&ids(9).uuid, &[]);
    let watch = {
        let mut watch =
            record(5, &["v1|email|jdoe@example.com", "v1|domain|example.com"], Handling::H0);
        watch.shared = false;
        watch
    };
    let bundle = bundle(&[head, writer.record(&ids(2), &watch), writer.tail()]);
    let indicator = of_type(&bundle, "indicator")[0];
    let extension = &indicator["extensions"][TOKENS_EXTENSION.id];
    assert_eq!(extension["extension_type"], "property-extension");
    assert_eq!(extension["federation_id"], federation.to_string());
    assert_eq!(extension["epoch"], 3);
    assert_eq!(
        extension["tokens"],
        serde_json::json!([Token([1; 32]).to_string(), Token([2; 32]).to_string()]),
        "in pattern order"
    );
    assert!(indicator["description"].as_str().unwrap().contains("Watched, not shared"));
    // No token passes for a standard observable.
    for object in objects(&bundle) {
        if object["type"] != "indicator" {
            assert!(!object.to_string().contains(&Token([1; 32]).to_string()), "{object}");
        }
    }
}

#[test]
fn quotes_and_backslashes_are_escaped_in_patterns() {
    // A URL may hold a quote; a canonical form never holds a raw backslash, the writer
    // escapes one all the same.
    assert_eq!(quoted("it's"), r"'it\'s'");
    assert_eq!(quoted(r"a\b"), r"'a\\b'");
    let canonical: Canonical = "v1|url|https://example.com/it's".parse().unwrap();
    assert_eq!(observation(&canonical), r"[url:value = 'https://example.com/it\'s']");
}

#[test]
fn a_record_with_nothing_to_express_is_left_out() {
    let mut writer = BundleWriter::new(&ids(1).uuid, None);
    let _ = writer.head(&ids(9).uuid, &[]);
    let broken = record(4, &["v0|account|x|old_rules"], Handling::H0);
    assert!(writer.record(&ids(2), &broken).is_empty());
    assert_eq!(writer.written().left_out, 1);
    assert_eq!(writer.written().indicators, 0);
}

fn sighting_in<'a>(stored: &'a StixIds, own: Handling, theirs: Handling) -> SightingIn<'a> {
    SightingIn {
        ids: stored,
        indicator: ids(2).uuid,
        member: ids(4).uuid,
        first_seen_ms: CREATED_MS + 10,
        last_seen_ms: CREATED_MS + 20,
        own_handling: own,
        counterpart_handling: theirs,
    }
}

#[test]
fn sightings_carry_the_stricter_code_and_none_comes_from_an_h2_add() {
    assert!(sighted_by(Handling::H0) && sighted_by(Handling::H1) && sighted_by(Handling::H3));
    assert!(!sighted_by(Handling::H2));
    let mut writer = BundleWriter::new(&ids(1).uuid, None);
    let head = writer.head(&ids(9).uuid, &[identity(4, "FR")]);
    let sighting_ids = ids(5);
    let h2 = writer.sighting(&sighting_in(&sighting_ids, Handling::H0, Handling::H2));
    assert!(h2.is_empty(), "an H2 add is never passed on");
    let h1 = writer.sighting(&sighting_in(&sighting_ids, Handling::H0, Handling::H1));
    let other_ids = ids(6);
    let own_h3 = writer.sighting(&sighting_in(&other_ids, Handling::H3, Handling::H0));
    let bundle = bundle(&[head, h2, h1, own_h3, writer.tail()]);
    let sightings = of_type(&bundle, "sighting");
    assert_eq!(sightings.len(), 2);
    let sighting = sightings[0];
    assert_eq!(sighting["id"], object_id("sighting", &ids(5).uuid));
    assert_eq!(sighting["sighting_of_ref"], object_id("indicator", &ids(2).uuid));
    assert_eq!(
        sighting["where_sighted_refs"],
        serde_json::json!([object_id("identity", &ids(4).uuid)])
    );
    assert_eq!(parse_timestamp(sighting["first_seen"].as_str().unwrap()), Some(CREATED_MS + 10));
    assert_eq!(parse_timestamp(sighting["last_seen"].as_str().unwrap()), Some(CREATED_MS + 20));
    assert_eq!(sighting["object_marking_refs"][0], handling_marking_id(Handling::H1));
    assert_eq!(sightings[1]["object_marking_refs"][0], handling_marking_id(Handling::H3));
    assert_eq!(writer.written().sightings, 2);
    assert_eq!(writer.written().left_out, 1);
}

/// A tombstone of `kind` (a sighting's of the indicator `of`), last exported under `handling`.
fn tombstone(kind: StixKind, of: Option<[u8; 16]>, handling: Handling) -> StixTombstone {
    let modified_ms = CREATED_MS + 5_000;
    StixTombstone { kind, created_ms: CREATED_MS, modified_ms, sighting_of: of, handling }
}

#[test]
fn gone_objects_are_revoked_with_the_placeholder_pattern_under_their_last_marking() {
    let mut writer = BundleWriter::new(&ids(1).uuid, None);
    let head = writer.head(&ids(9).uuid, &[]);
    let indicator = tombstone(StixKind::Indicator, None, Handling::H3);
    let sighting = tombstone(StixKind::Sighting, Some(ids(2).uuid), Handling::H1);
    let orphan = tombstone(StixKind::Sighting, None, Handling::H0);
    let chunks = [
        head,
        writer.revoked(&ids(2).uuid, &indicator),
        writer.revoked(&ids(3).uuid, &sighting),
        writer.revoked(&ids(6).uuid, &orphan),
        writer.tail(),
    ];
    let bundle = bundle(&chunks);
    let revoked: Vec<&Value> = objects(&bundle).iter().filter(|o| o["revoked"] == true).collect();
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked[0]["type"], "indicator");
    assert_eq!(revoked[0]["id"], object_id("indicator", &ids(2).uuid));
    let uuid = object_id("indicator", &ids(2).uuid).trim_start_matches("indicator--").to_owned();
    assert_eq!(revoked[0]["pattern"], format!("[x-crossmatch-withdrawn:indicator_id = '{uuid}']"));
    assert_eq!(parse_timestamp(revoked[0]["modified"].as_str().unwrap()), Some(CREATED_MS + 5_000));
    // A watch's indicator stays H3 when revoked, a sighting keeps its code: never less strict.
    assert_eq!(revoked[0]["object_marking_refs"][0], handling_marking_id(Handling::H3));
    assert_eq!(revoked[1]["type"], "sighting");
    assert_eq!(revoked[1]["sighting_of_ref"], object_id("indicator", &ids(2).uuid));
    assert_eq!(revoked[1]["object_marking_refs"][0], handling_marking_id(Handling::H1));
    assert_eq!(writer.written().revoked, 2);
    assert_eq!(writer.written().left_out, 1);
}
