//! The bundle reader's tests: markings (TLP 1.0 and 2.0, RED and AMBER+STRICT as watches, the
//! overrides, unknown, missing and granular markings), the mapping of each observable, the
//! user_id rule, indicators covering observables, observed-data, versions, and resuming.

use std::io::BufReader;

use serde_json::{Value, json};

use super::{Marks, first_pass};

use crate::import::reader_tests::{TempFile, assert_resumes, full_defaults, options, read_all};
use crate::import::*;
use crate::stix::{HANDLING_MARKINGS, TLP_MARKINGS, Tlp};

const INDICATOR_V4: &str = "indicator--6ba7b810-9dad-41d1-80b4-00c04fd430c8";

fn bundle(objects: Vec<Value>) -> TempFile {
    let bundle = json!({"type": "bundle", "id": "bundle--0d3c1e4c-2a7e-4d38-9a47-7b1f8f0c2b1a", "objects": objects});
    TempFile::new(serde_json::to_string_pretty(&bundle).unwrap().as_bytes())
}

fn read(objects: Vec<Value>, overrides: Overrides) -> Vec<Item> {
    let mut o = options(Format::Stix, full_defaults());
    o.overrides = overrides;
    read_all(&bundle(objects), &o).into_iter().map(|(item, _)| item).collect()
}

fn indicator(pattern: &str, markings: &[&str]) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1", "id": INDICATOR_V4,
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.500Z",
        "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
        "object_marking_refs": markings,
    })
}

/// The objects with every indicator after the first given an id of its own, so that none is
/// read as another version of the first.
fn distinct(mut objects: Vec<Value>) -> Vec<Value> {
    for (n, object) in objects.iter_mut().enumerate().skip(1) {
        if object["id"] == INDICATOR_V4 {
            object["id"] = json!(format!("indicator--6ba7b810-9dad-41d1-80b4-{n:012}"));
        }
    }
    objects
}

fn rows(items: &[Item]) -> Vec<&ImportRow> {
    items
        .iter()
        .filter_map(|item| if let Item::Row(row) = item { Some(row) } else { None })
        .collect()
}

fn notices(items: &[Item]) -> Vec<Notice> {
    items
        .iter()
        .filter_map(|item| if let Item::Notice(_, n) = item { Some(*n) } else { None })
        .collect()
}

const DOMAIN: &str = "[domain-name:value = 'example.org']";

#[test]
fn tlp_levels_map_to_handling_codes_and_red_is_a_watch() {
    for (id, tlp) in TLP_MARKINGS {
        let items = read(vec![indicator(DOMAIN, &[id])], Overrides::default());
        let row = rows(&items)[0];
        let expected = match tlp {
            Tlp::Clear | Tlp::Green => Handling::H0,
            Tlp::Amber => Handling::H2,
            Tlp::AmberStrict | Tlp::Red => Handling::H3,
        };
        assert_eq!(row.handling, expected, "{id}");
        let watched = matches!(tlp, Tlp::AmberStrict | Tlp::Red);
        assert_eq!(row.share, !watched, "{id}");
        assert_eq!(notices(&items).contains(&Notice::ForcedWatch), watched, "{id}");
    }
    for marking in HANDLING_MARKINGS {
        let items = read(vec![indicator(DOMAIN, &[marking.id])], Overrides::default());
        assert_eq!(rows(&items)[0].handling, marking.handling);
        assert!(notices(&items).is_empty());
    }
    // The strictest marking wins, and the default counts too.
    let both = [TLP_MARKINGS[0].0, TLP_MARKINGS[5].0];
    assert_eq!(
        rows(&read(vec![indicator(DOMAIN, &both)], Overrides::default()))[0].handling,
        Handling::H2
    );
}

#[test]
fn the_overrides_share_red_and_amber_strict_as_h2() {
    let red = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
    let strict = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
    let red_override = Overrides { red: true, ..Overrides::default() };
    let items =
        read(distinct(vec![indicator(DOMAIN, &[red]), indicator(DOMAIN, &[strict])]), red_override);
    let found = rows(&items);
    assert_eq!((found[0].handling, found[0].share), (Handling::H2, true));
    assert_eq!(
        (found[1].handling, found[1].share),
        (Handling::H3, false),
        "only red was overridden"
    );
    let strict_override = Overrides { amber_strict: true, ..Overrides::default() };
    let items = read(vec![indicator(DOMAIN, &[strict])], strict_override);
    assert_eq!((rows(&items)[0].handling, rows(&items)[0].share), (Handling::H2, true));
}

#[test]
fn unknown_missing_and_granular_markings_make_watches_with_a_notice() {
    let opencti_strict = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37";
    let mut granular = indicator(DOMAIN, &[TLP_MARKINGS[0].0]);
    granular["granular_markings"] =
        json!([{"marking_ref": TLP_MARKINGS[8].0, "selectors": ["name"]}]);
    let objects =
        distinct(vec![indicator(DOMAIN, &[opencti_strict]), indicator(DOMAIN, &[]), granular]);
    let items = read(objects.clone(), Overrides::default());
    for row in rows(&items) {
        assert_eq!((row.handling, row.share), (Handling::H3, false));
    }
    assert_eq!(
        notices(&items),
        [Notice::MarkingUnknown, Notice::MarkingMissing, Notice::MarkingGranular]
    );
    // The override gives the import's default (H0 here), still with the notices.
    let items = read(objects, Overrides { unmarked: true, ..Overrides::default() });
    for row in rows(&items) {
        assert_eq!((row.handling, row.share), (Handling::H0, true));
    }
    assert_eq!(notices(&items).len(), 3);
}

#[test]
fn observables_map_to_their_kinds_and_the_user_id_rule_holds() {
    let green = TLP_MARKINGS[3].0;
    let account = |props: Value| {
        let mut object = json!({"type": "user-account", "spec_version": "2.1", "id": "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598", "object_marking_refs": [green]});
        for (name, value) in props.as_object().unwrap() {
            object[name] = value.clone();
        }
        object
    };
    let items = read(
        vec![
            account(
                json!({"account_login": "Example_Handle", "account_type": "twitter", "user_id": "12345"}),
            ),
            account(
                json!({"account_login": "example_chan", "account_type": "telegram", "user_id": "not-an-id"}),
            ),
            account(json!({"account_login": "someone"})),
            account(json!({"account_login": "someone", "account_type": "unix"})),
            json!({"type": "email-addr", "id": "email-addr--6deb37bd-12b7-54ae-805f-5f7146f3d171", "value": "JDoe@Example.com", "object_marking_refs": [green]}),
            json!({"type": "url", "id": "url--be22e93a-5e33-5678-b19f-8b4ea06df0bd", "value": "https://example.com/", "object_marking_refs": [green]}),
            json!({"type": "x-crossmatch-phone", "id": "x-crossmatch-phone--0c0e3d56-c2b5-4a7c-9f5c-0d5d2c6c0e6b", "value": "+33612345678", "object_marking_refs": [green]}),
            json!({"type": "malware", "id": "malware--0c0e3d56-c2b5-4a7c-9f5c-0d5d2c6c0e6b", "name": "x", "is_family": false}),
        ],
        Overrides::default(),
    );
    let described: Vec<String> = items
        .iter()
        .map(|item| match item {
            Item::Row(row) => format!(
                "{} {:?}",
                row.position,
                row.identifiers.iter().map(|c| c.as_str()).collect::<Vec<_>>()
            ),
            Item::Refused(refusal) => format!("{} {}", refusal.position, refusal.rule.code()),
            Item::Notice(position, notice) => format!("{position} {}", notice.code()),
        })
        .collect();
    assert_eq!(
        described,
        [
            r#"object 0 ["v1|account|x|example_handle", "v1|account_id|x|12345"]"#,
            "object 1 user_id_dropped",
            r#"object 1 ["v1|account|telegram|example_chan"]"#,
            "object 2 platform_missing",
            "object 3 platform-unknown",
            r#"object 4 ["v1|email|jdoe@example.com"]"#,
            r#"object 5 ["v1|url|https://example.com/"]"#,
            r#"object 6 ["v1|phone|+33612345678"]"#,
            "object 7 ignored",
        ]
    );
    let first = rows(&items)[0];
    assert_eq!(
        first.subject,
        Subject::Stix("user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598".into())
    );
    assert_eq!(first.stix, Some(StixVersion::default()));
}

#[test]
fn an_indicator_covers_its_observables_and_observed_data_passes_its_markings() {
    let red = TLP_MARKINGS[8].0;
    let green = TLP_MARKINGS[3].0;
    let pattern = "[user-account:account_login = 'example_handle' AND user-account:account_type = 'twitter'] OR [domain-name:value = 'example.com']";
    let objects = vec![
        indicator(pattern, &[green]),
        json!({"type": "user-account", "id": "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598", "account_login": "example_handle", "account_type": "twitter", "object_marking_refs": [green]}),
        json!({"type": "domain-name", "id": "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7", "value": "example.com"}),
        json!({"type": "domain-name", "id": "domain-name--7f1c4c5e-5d0b-5b2a-9f0e-7d8a5c1b2e3f", "value": "other.example"}),
        json!({"type": "observed-data", "id": "observed-data--2b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b", "object_refs": ["domain-name--7f1c4c5e-5d0b-5b2a-9f0e-7d8a5c1b2e3f"], "object_marking_refs": [red]}),
        // MISP's 2.0 style: observables inside the observed-data.
        json!({"type": "observed-data", "id": "observed-data--3b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b", "object_marking_refs": [green],
               "objects": {"0": {"type": "email-addr", "value": "a@example.org"}, "1": {"type": "url", "value": "https://example.org/b"}}}),
    ];
    let items = read(objects, Overrides::default());
    let indicator_row = rows(&items)[0];
    assert_eq!(indicator_row.identifiers.len(), 2);
    assert_eq!(notices(&items)[..2], [Notice::CoveredByIndicator, Notice::CoveredByIndicator]);
    let found = rows(&items);
    assert_eq!(found.len(), 4, "{items:?}");
    // The referenced observable takes its container's RED.
    assert_eq!(
        (found[1].position, found[1].handling, found[1].share),
        (Position::Object(3), Handling::H3, false)
    );
    assert!(notices(&items).contains(&Notice::ForcedWatch));
    assert_eq!((found[2].position, found[3].position), (Position::Object(5), Position::Object(5)));
    assert_eq!((found[2].handling, found[3].handling), (Handling::H0, Handling::H0));
    assert!(matches!(&found[2].subject, Subject::Stix(id) if id.starts_with("email-addr--")));
}

#[test]
fn indicator_versions_patterns_and_refusals() {
    let green = TLP_MARKINGS[3].0;
    let mut revoked = indicator(
        "[x-crossmatch-withdrawn:indicator_id = '6ba7b810-9dad-41d1-80b4-00c04fd430c8']",
        &[green],
    );
    revoked["revoked"] = json!(true);
    let mut v5 = indicator(DOMAIN, &[green]);
    v5["id"] = json!("indicator--bedb4899-d24b-5401-bc86-8f6b4cc18ec7");
    v5["modified"] = json!("not a time");
    let mut sigma = indicator("title: x", &[green]);
    sigma["pattern_type"] = json!("sigma");
    let items = read(
        distinct(vec![
            indicator(DOMAIN, &[green]),
            revoked,
            v5,
            indicator("[domain-name:value LIKE 'secret%']", &[green]),
            indicator("[domain-name:value = 'secret", &[green]),
            sigma,
            indicator("[domain-name:value = 'not a domain secret']", &[green]),
            indicator("[x-crossmatch-withdrawn:indicator_id = 'x']", &[green]),
        ]),
        Overrides::default(),
    );
    let found = rows(&items);
    assert_eq!(
        found[0].stix,
        Some(StixVersion { modified_ms: Some(1_769_904_000_500), revoked: false })
    );
    assert_eq!(found[0].subject, Subject::Stix(INDICATOR_V4.into()));
    assert!(found[1].identifiers.is_empty() && found[1].stix.unwrap().revoked);
    assert_eq!(found[2].stix, Some(StixVersion::default()), "no time");
    let refused: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Item::Refused(refusal) => Some(format!("{refusal} ({})", refusal.rule.code())),
            _ => None,
        })
        .collect();
    for shown in &refused {
        assert!(!shown.contains("secret") && !shown.contains("indicator--"), "{shown}");
    }
    let codes: Vec<&str> =
        refused.iter().map(|s| s.rsplit('(').next().unwrap().trim_end_matches(')')).collect();
    assert_eq!(
        codes,
        [
            "pattern_unsupported",
            "pattern_syntax",
            "pattern_unsupported",
            "domain",
            "no_identifiers"
        ]
    );
    assert!(refused[0].starts_with("object 3: "));
}

#[test]
fn a_bundle_resumes_from_every_cursor_and_bad_structure_stops_it() {
    let green = TLP_MARKINGS[3].0;
    let objects = vec![
        json!({"type": "identity", "id": "identity--4afb678d-4128-421e-91a5-36b62c4dccd3", "name": "x"}),
        indicator(DOMAIN, &[]),
        json!({"type": "observed-data", "id": "observed-data--3b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b",
               "objects": {"0": {"type": "email-addr", "value": "a@example.org"}, "1": {"type": "url", "value": "https://example.org/b"}}}),
        json!({"type": "malware", "id": "malware--0c0e3d56-c2b5-4a7c-9f5c-0d5d2c6c0e6b"}),
        indicator("[url:value = 'https://example.org/c']", &[green]),
    ];
    let file = bundle(objects);
    assert_resumes(&file, &options(Format::Stix, full_defaults()));
    let broken = TempFile::new(br#"{"type":"bundle","objects":[{"type":"malware"}, {"type": "#);
    // A broken structure's refusal is the last item, on a straight read and on every resume:
    // truncated, a bad header, nothing at all.
    for bytes in [
        &br#"{"type":"bundle","objects":[{"type":"malware"}, {"type": "#[..],
        br#"{"x" {"type":"domain-name","value":"a.example"}]}"#,
        b"",
    ] {
        assert_resumes(&TempFile::new(bytes), &options(Format::Stix, full_defaults()));
    }
    let items: Vec<Item> = read_all(&broken, &options(Format::Stix, full_defaults()))
        .into_iter()
        .map(|(item, _)| item)
        .collect();
    assert_eq!(
        items,
        [
            Item::Notice(Position::Object(0), Notice::Ignored),
            Item::Refused(Refusal { position: Position::Object(1), rule: RowRule::MalformedJson }),
        ]
    );
}

/// One `observed-data` referencing many observables under many markings is folded into a
/// fixed-size summary per observable: the index holds one small entry per reference, not a
/// copy of the marking list for each.
#[test]
fn many_references_under_many_markings_keep_one_small_summary_each() {
    const REFS: usize = 2_000;
    const MARKINGS: usize = 2_000;
    let red = TLP_MARKINGS[8].0;
    let refs: Vec<String> =
        (0..REFS).map(|n| format!("domain-name--00000000-0000-4000-8000-{n:012}")).collect();
    let mut markings: Vec<String> = (0..MARKINGS - 1)
        .map(|n| format!("marking-definition--00000000-0000-4000-9000-{n:012}"))
        .collect();
    markings.push(red.to_owned());
    let container = json!({"type": "observed-data", "id": "observed-data--2b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b",
        "object_refs": refs, "object_marking_refs": markings});
    let loose = json!({"type": "domain-name", "id": refs[7], "value": "example.org"});
    let file = bundle(vec![container, loose]);
    let index = first_pass(BufReader::new(Source::open(&file.0).unwrap()), Overrides::default())
        .expect("the first pass");
    assert!(size_of::<Marks>() <= 8);
    assert_eq!(index.containers.len(), REFS);
    let expected = Marks {
        code: Some(Handling::H3),
        marked: true,
        granular: false,
        unknown: true,
        forced: true,
    };
    assert!(index.containers.values().all(|marks| *marks == expected));
    assert!(index.observed.is_empty(), "no indicator covers them");
    // The referenced observable is a watch, with both reasons reported once.
    let items: Vec<Item> = read_all(&file, &options(Format::Stix, full_defaults()))
        .into_iter()
        .map(|(item, _)| item)
        .collect();
    assert_eq!((rows(&items)[0].handling, rows(&items)[0].share), (Handling::H3, false));
    assert_eq!(notices(&items), [Notice::MarkingUnknown, Notice::ForcedWatch]);
}

/// An indicator never shares what the bundle marks stricter on the observables it names: a
/// TLP:RED account (its own marking, or its observed-data's) under a TLP:GREEN indicator is a
/// watch with `forced_watch`; an unmarked covered observable leaves the indicator as it is.
#[test]
fn a_covered_observable_makes_its_indicator_as_strict_as_itself() {
    let red = TLP_MARKINGS[8].0;
    let green = TLP_MARKINGS[3].0;
    let account =
        "[user-account:account_login = 'example_handle' AND user-account:account_type = 'twitter']";
    let mut by_container = indicator("[domain-name:value = 'example.com']", &[green]);
    by_container["id"] = json!("indicator--7ba7b810-9dad-41d1-80b4-00c04fd430c8");
    let mut unmarked_sco = indicator("[url:value = 'https://example.org/u']", &[green]);
    unmarked_sco["id"] = json!("indicator--8ba7b810-9dad-41d1-80b4-00c04fd430c8");
    let objects = vec![
        indicator(account, &[green]),
        by_container,
        unmarked_sco,
        json!({"type": "user-account", "id": "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598", "account_login": "example_handle", "account_type": "twitter", "object_marking_refs": [red]}),
        // A MISP-style random id: the container is found through the written id.
        json!({"type": "domain-name", "id": "domain-name--9c3e5a11-2f4b-4d6e-8a7c-1b2c3d4e5f60", "value": "example.com"}),
        json!({"type": "observed-data", "id": "observed-data--2b4c7a4e-1c1e-4d8f-a0a1-0c7e2d3f4a5b", "object_refs": ["domain-name--9c3e5a11-2f4b-4d6e-8a7c-1b2c3d4e5f60"], "object_marking_refs": [red]}),
        json!({"type": "url", "id": "url--6b2d3f4a-5c6d-4e7f-8a9b-0c1d2e3f4a5b", "value": "https://example.org/u"}),
    ];
    let items = read(objects, Overrides::default());
    let found = rows(&items);
    assert_eq!(found.len(), 3, "{items:?}");
    for row in &found[..2] {
        assert_eq!((row.handling, row.share), (Handling::H3, false), "{:?}", row.position);
    }
    assert_eq!((found[2].handling, found[2].share), (Handling::H0, true));
    let forced: Vec<Position> = items
        .iter()
        .filter_map(|item| match item {
            Item::Notice(position, Notice::ForcedWatch) => Some(*position),
            _ => None,
        })
        .collect();
    assert_eq!(forced, [Position::Object(0), Position::Object(1)]);
    assert!(!notices(&items).contains(&Notice::MarkingMissing));
    // With the red override the account is shared as H2.
    let items = read(
        vec![
            indicator(account, &[green]),
            json!({"type": "user-account", "id": "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598", "account_login": "example_handle", "account_type": "twitter", "object_marking_refs": [red]}),
        ],
        Overrides { red: true, ..Overrides::default() },
    );
    assert_eq!((rows(&items)[0].handling, rows(&items)[0].share), (Handling::H2, true));
}

/// Several versions of one indicator in one bundle read as the newest (a revocation winning a
/// tie); the others are `superseded` notices, and the bundle still resumes from every cursor.
#[test]
fn only_the_newest_version_of_an_indicator_is_read() {
    let green = TLP_MARKINGS[3].0;
    let version = |modified: &str, pattern: &str| {
        let mut object = indicator(pattern, &[green]);
        object["modified"] = json!(modified);
        object
    };
    let objects = vec![
        version("2026-02-01T00:00:00.000Z", "[domain-name:value = 'a.example']"),
        version("2026-03-01T00:00:00.000Z", "[domain-name:value = 'b.example']"),
        version("2026-01-01T00:00:00.000Z", "[domain-name:value = 'c.example']"),
    ];
    let items = read(objects.clone(), Overrides::default());
    let found = rows(&items);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].position, Position::Object(1));
    assert_eq!(found[0].identifiers[0].as_str(), "v1|domain|b.example");
    assert_eq!(notices(&items), [Notice::Superseded, Notice::Superseded]);
    assert_resumes(&bundle(objects.clone()), &options(Format::Stix, full_defaults()));
    let mut revoked = version("2026-03-01T00:00:00.000Z", "[domain-name:value = 'b.example']");
    revoked["revoked"] = json!(true);
    let items = read(vec![objects[1].clone(), revoked], Overrides::default());
    let found = rows(&items);
    assert_eq!(found.len(), 1);
    assert!(found[0].stix.unwrap().revoked);
}

/// Only the newest version of an indicator, unrevoked, with a pattern that can become a row,
/// covers the observables it names: a loose observable named by an older version, a revoked
/// one, or a pattern that is refused, still imports as its own record.
#[test]
fn only_an_indicator_that_becomes_a_row_covers_its_observables() {
    let green = TLP_MARKINGS[3].0;
    let version = |modified: &str, pattern: &str| {
        let mut object = indicator(pattern, &[green]);
        object["modified"] = json!(modified);
        object
    };
    let domain = |n: u32, value: &str| json!({"type": "domain-name", "id": format!("domain-name--00000000-0000-4000-8000-{n:012}"), "value": value});
    let too_many = (0..33)
        .map(|n| format!("[domain-name:value = 'n{n}.example']"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let mut refused = indicator(&too_many, &[green]);
    refused["id"] = json!("indicator--6ba7b810-9dad-41d1-80b4-000000000099");
    let mut revoked = indicator("[domain-name:value = 'c.example']", &[green]);
    revoked["id"] = json!("indicator--6ba7b810-9dad-41d1-80b4-000000000098");
    revoked["revoked"] = json!(true);
    let objects = vec![
        version("2026-01-01T00:00:00.000Z", "[domain-name:value = 'a.example']"),
        version("2026-03-01T00:00:00.000Z", "[domain-name:value = 'b.example']"),
        refused,
        revoked,
        domain(1, "a.example"),
        domain(2, "b.example"),
        domain(3, "n7.example"),
        domain(4, "c.example"),
    ];
    let items = read(objects.clone(), Overrides::default());
    let found: Vec<_> = rows(&items)
        .iter()
        .filter(|row| !row.stix.is_some_and(|stix| stix.revoked))
        .map(|row| row.identifiers[0].as_str().to_owned())
        .collect();
    assert_eq!(
        found,
        [
            "v1|domain|b.example",
            "v1|domain|a.example",
            "v1|domain|n7.example",
            "v1|domain|c.example"
        ],
        "{items:?}"
    );
    let notices: Vec<_> =
        notices(&items).into_iter().filter(|n| *n != Notice::MarkingMissing).collect();
    assert_eq!(
        notices,
        [Notice::Superseded, Notice::CoveredByIndicator],
        "the old version is superseded, b.example covered by the newest"
    );
    assert!(items.iter().any(|item| matches!(
        item,
        Item::Refused(Refusal { position: Position::Object(2), rule: RowRule::TooManyIdentifiers })
    )));
    assert_resumes(&bundle(objects), &options(Format::Stix, full_defaults()));
}

/// A bundle of more objects than an import reads is refused whole (`FileTooLarge`, which the
/// job runner reports `too_many_records`), not cut short with the rest imported.
#[test]
fn a_bundle_past_the_object_limit_is_refused_whole() {
    let count = usize::try_from(limits::MAX_STIX_OBJECTS).unwrap() + 1;
    let mut text = String::with_capacity(count * 3 + 64);
    text.push_str(r#"{"type":"bundle","objects":["#);
    for n in 0..count {
        text.push_str(if n == 0 { "{}" } else { ",{}" });
    }
    text.push_str("]}");
    let file = TempFile::new(text.as_bytes());
    let error = open(&file.0, &options(Format::Stix, full_defaults()), None).err().unwrap();
    assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
}
