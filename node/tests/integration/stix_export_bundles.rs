//! The STIX 2.1 bundles `GET /v1/export/stix` writes, over an in-process federation: records
//! only, alerts only, everything with tokens, and `since` a time with a removed record revoked,
//! each written to `$CARGO_TARGET_TMPDIR/crossmatch-stix/` for CI's `stix2-validator --strict`
//! and `scripts/check_stix_ids.py`; ids and versions stable across two exports; sightings
//! since a time (a new one in, one its member withdrew revoked); tokens only on request; no
//! sighting derived from a counterpart's H2 add; and the records bundle imported into a fresh
//! member gives the same identifier groups, which the bundle with everything (sightings and
//! tokens too) then imports into without a refusal or a new record.
//!
//! Needs the stored STIX ids (`Engine::stix_*`) and the import jobs (`POST /v1/imports`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crossmatch_node::local::wait_until;
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN as ANALYST, ApiMembers, api_members, serve_api,
};
use crossmatch_node::test_support::http;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(180);
const TOKENS_EXTENSION: &str = "extension-definition--a0d0ecf1-be4c-4695-9b67-3de2eff8175d";

async fn call(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> http::Reply {
    let body = body.map(|body| serde_json::to_vec(&body).unwrap());
    http::request_off_workers(port, method, path, Some(bearer), "application/json", body).await
}

/// Adds a record of `identifiers` (`(kind, platform, value)`) at `handling`; its id.
async fn add(port: u16, identifiers: &[(&str, Option<&str>, &str)], handling: &str) -> u64 {
    let identifiers: Vec<Value> = identifiers
        .iter()
        .map(|(kind, platform, value)| match platform {
            Some(platform) => json!({ "kind": kind, "platform": platform, "value": value }),
            None => json!({ "kind": kind, "value": value }),
        })
        .collect();
    let body = json!({
        "identifiers": identifiers,
        "category": "terrorism/propaganda",
        "handling": handling,
        "evaluation": "B2",
        "notes": "a note that never leaves",
        "expires_in_days": 30,
        "share": handling != "H3",
    });
    let added = call(port, "POST", "/v1/records", ANALYST, Some(body)).await;
    assert_eq!(added.status, 201, "{}", added.body);
    added.json()["id"].as_u64().expect("the new record's id")
}

/// An export, parsed, and written to the directory CI validates under `name`.
async fn export(port: u16, query: &str, name: &str) -> Value {
    let reply = call(port, "GET", &format!("/v1/export/stix{query}"), ADMIN, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let bundle: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{e}: the bundle is not whole JSON"));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crossmatch-stix");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), &reply.body).unwrap();
    assert!(objects(&bundle).len() <= 500, "bundles stay small for the pattern validator");
    bundle
}

fn objects(bundle: &Value) -> &Vec<Value> {
    bundle["objects"].as_array().expect("objects")
}

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    objects(bundle).iter().filter(|object| object["type"] == kind).collect()
}

/// Indicator ids by name (`crossmatch record <id>`).
fn indicators(bundle: &Value) -> BTreeMap<String, String> {
    of_type(bundle, "indicator")
        .into_iter()
        .filter(|indicator| indicator["revoked"] != true)
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i["id"].as_str().unwrap().to_owned()))
        .collect()
}

/// DE's accounts, which FR holds too (FR at `fr_handling`).
async fn matched_federation(name: &str, fr_handling: &str) -> (ApiMembers, Vec<u64>) {
    let f = api_members(name).await;
    let (de, fr) = (f.ports[0], f.ports[1]);
    let mixed = add(
        de,
        &[
            ("account", Some("x"), "@stix_one"),
            ("email", None, "ops@stix.example"),
            ("phone", None, "+33612345678"),
            ("url", None, "https://stix.example/a'b"),
            ("domain", None, "stix.example"),
        ],
        "H1",
    )
    .await;
    let telegram = add(de, &[("account", Some("telegram"), "stix_two")], "H0").await;
    let watch = add(de, &[("account", Some("x"), "@stix_three")], "H3").await;
    add(fr, &[("account", Some("x"), "@stix_one")], fr_handling).await;
    add(fr, &[("account", Some("telegram"), "stix_two")], "H1").await;
    wait_until("DE raises its alerts", LIMIT, || async {
        let alerts = call(de, "GET", "/v1/alerts", ANALYST, None).await.json();
        alerts["alerts"].as_array().is_some_and(|alerts| alerts.len() == 2)
    })
    .await
    .unwrap();
    (f, vec![mixed, telegram, watch])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_for_ci_with_stable_ids_tokens_on_request_and_revoked_objects() {
    tokio::time::timeout(LIMIT, async {
        let (f, records) = matched_federation("stix-bundles", "H1").await;
        let de = f.ports[0];
        let only_records = export(de, "?records=true", "records").await;
        let text = only_records.to_string();
        assert!(!text.contains("a note that never leaves"), "notes never leave");
        assert!(!text.contains(TOKENS_EXTENSION), "tokens only on request");
        assert!(of_type(&only_records, "sighting").is_empty());
        let names: BTreeSet<String> = indicators(&only_records).into_keys().collect();
        let expected: BTreeSet<String> =
            records.iter().map(|id| format!("crossmatch record {id}")).collect();
        assert_eq!(names, expected, "every own record, the watch too");
        let only_alerts = export(de, "?alerts=true", "alerts").await;
        assert!(of_type(&only_alerts, "indicator").is_empty());
        assert_eq!(of_type(&only_alerts, "sighting").len(), 2);
        let everything = export(de, "?tokens=true", "all-tokens").await;
        for indicator in of_type(&everything, "indicator") {
            let tokens = &indicator["extensions"][TOKENS_EXTENSION]["tokens"];
            assert!(tokens.as_array().is_some_and(|tokens| !tokens.is_empty()), "{indicator}");
        }
        // Ids are stable: the same records, sightings and identities, under the same ids.
        let again = export(de, "", "all").await;
        assert_eq!(indicators(&again), indicators(&everything));
        let ids = |bundle: &Value, kind: &str| -> BTreeSet<String> {
            of_type(bundle, kind).iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
        };
        for kind in ["sighting", "identity", "user-account", "email-addr", "url", "domain-name"] {
            assert_eq!(ids(&again, kind), ids(&everything, kind), "{kind}");
        }
        // And unchanged, under the same versions.
        let versions = |bundle: &Value, kind: &str| -> BTreeSet<(String, String)> {
            of_type(bundle, kind)
                .iter()
                .map(|o| (o["id"].to_string(), o["modified"].to_string()))
                .collect()
        };
        for kind in ["indicator", "sighting", "identity"] {
            assert_eq!(versions(&again, kind), versions(&everything, kind), "{kind}");
        }
        assert_ne!(again["id"], everything["id"], "a bundle's own id is fresh");
        // A removed record is revoked in an export since a time before it went.
        let since = f.fed.node(0).unwrap().now_ms();
        let removed = records[2];
        let gone = call(de, "DELETE", &format!("/v1/records/{removed}"), ANALYST, None).await;
        assert_eq!(gone.status, 204, "{}", gone.body);
        let revoked_id = indicators(&everything)[&format!("crossmatch record {removed}")].clone();
        let since_bundle = export(de, &format!("?since_ms={since}"), "since-revoked").await;
        let revoked: Vec<&Value> =
            objects(&since_bundle).iter().filter(|o| o["revoked"] == true).collect();
        assert!(revoked.iter().any(|o| o["id"] == revoked_id.as_str()), "{since_bundle}");
        assert!(!indicators(&since_bundle).contains_key(&format!("crossmatch record {removed}")));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sighting_is_derived_from_an_h2_add() {
    tokio::time::timeout(LIMIT, async {
        // FR adds `@stix_one` at H2 and the telegram account at H1.
        let (f, records) = matched_federation("stix-h2", "H2").await;
        let bundle = export(f.ports[0], "?alerts=true", "alerts-h2").await;
        let sightings = of_type(&bundle, "sighting");
        assert_eq!(sightings.len(), 1, "{bundle}");
        let everything = export(f.ports[0], "?records=true", "records-h2").await;
        let telegram = &indicators(&everything)[&format!("crossmatch record {}", records[1])];
        assert_eq!(sightings[0]["sighting_of_ref"], telegram.as_str());
    })
    .await
    .expect("test timed out");
}

/// With `since` a time: a sighting new since then is in the export even when its member's add
/// came before it and another export stored the sighting's ids in between; a sighting whose
/// member withdrew its add is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sightings_since_a_time_are_the_new_ones_and_the_withdrawn_revoked() {
    tokio::time::timeout(LIMIT, async {
        let (f, records) = matched_federation("stix-since-sightings", "H1").await;
        let (de, fr) = (f.ports[0], f.ports[1]);
        let everything = export(de, "", "since-sightings-before").await;
        let mixed_indicator =
            indicators(&everything)[&format!("crossmatch record {}", records[0])].clone();
        let withdrawn = of_type(&everything, "sighting")
            .into_iter()
            .find(|sighting| sighting["sighting_of_ref"] == mixed_indicator.as_str())
            .expect("the sighting of the mixed record")["id"]
            .clone();
        // FR adds an account DE does not hold yet; DE receives it before `since`.
        let fr_seq = |status: &Value| {
            status["heads"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|head| head["member"] == "FR")
                .and_then(|head| head["seq"].as_u64())
        };
        let fr_before =
            fr_seq(&call(de, "GET", "/v1/status", ANALYST, None).await.json()).unwrap_or(0);
        add(fr, &[("account", Some("x"), "@stix_four")], "H1").await;
        wait_until("DE receives FR's add", LIMIT, || async {
            fr_seq(&call(de, "GET", "/v1/status", ANALYST, None).await.json()) > Some(fr_before)
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let since = f.fed.node(0).unwrap().now_ms();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // DE adds it after `since`: a new alert, whose sighting a full export stores first.
        let four = add(de, &[("account", Some("x"), "@stix_four")], "H1").await;
        wait_until("DE raises the third alert", LIMIT, || async {
            let alerts = call(de, "GET", "/v1/alerts", ANALYST, None).await.json();
            alerts["alerts"].as_array().is_some_and(|alerts| alerts.len() == 3)
        })
        .await
        .unwrap();
        let full = export(de, "?alerts=true&records=true", "since-sightings-full").await;
        let four_indicator = indicators(&full)[&format!("crossmatch record {four}")].clone();
        // FR withdraws the mixed record's account.
        let fr_records = call(fr, "GET", "/v1/alerts", ANALYST, None).await.json();
        let fr_one: Vec<u64> = fr_records["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|alert| alert["records"].as_array().unwrap().iter().filter_map(Value::as_u64))
            .collect();
        assert!(!fr_one.is_empty(), "FR's alerts name its records: {fr_records}");
        for id in fr_one.into_iter().collect::<BTreeSet<_>>() {
            let record = call(fr, "GET", &format!("/v1/records/{id}"), ANALYST, None).await.json();
            let holds_one = record["identifiers"].to_string().contains("stix_one");
            if holds_one {
                let gone = call(fr, "DELETE", &format!("/v1/records/{id}"), ANALYST, None).await;
                assert_eq!(gone.status, 204, "{}", gone.body);
            }
        }
        let query = format!("?alerts=true&since_ms={since}");
        let since_bundle = loop {
            let bundle = export(de, &query, "since-sightings").await;
            if objects(&bundle).iter().any(|o| o["id"] == withdrawn && o["revoked"] == true) {
                break bundle;
            }
            // The outer timeout bounds the wait for FR's retraction to reach DE.
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let live: Vec<&Value> = of_type(&since_bundle, "sighting")
            .into_iter()
            .filter(|sighting| sighting["revoked"] != true)
            .collect();
        assert!(
            live.iter().any(|sighting| sighting["sighting_of_ref"] == four_indicator.as_str()),
            "the new sighting is in the export since: {since_bundle}"
        );
    })
    .await
    .expect("test timed out");
}

/// The identifier groups a member holds: each record's canonical forms, sorted.
async fn groups(port: u16, ids: impl Iterator<Item = u64>) -> BTreeSet<Vec<String>> {
    let mut groups = BTreeSet::new();
    for id in ids {
        let record = call(port, "GET", &format!("/v1/records/{id}"), ANALYST, None).await;
        if record.status != 200 {
            continue;
        }
        let mut group: Vec<String> = record.json()["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["canonical"].as_str().unwrap().to_owned())
            .collect();
        group.sort();
        groups.insert(group);
    }
    groups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_imported_into_a_fresh_member_gives_the_same_identifier_groups() {
    tokio::time::timeout(LIMIT, async {
        let (f, records) = matched_federation("stix-round-trip", "H1").await;
        let bundle = export(f.ports[0], "?records=true", "round-trip").await;
        let exported = groups(f.ports[0], records.iter().copied()).await;
        // FR imports it: its own two records hold one account each, so DE's mixed record can
        // only come from the bundle.
        let fresh = f.fed.node(1).unwrap();
        let (fresh_port, _server) = serve_api(fresh, "FR").await;
        // A bundle carries no category, evaluation or expiry: the import's defaults give them.
        import_bundle(fresh_port, &bundle).await;
        let imported = groups(fresh_port, 1..=10).await;
        assert!(exported.is_subset(&imported), "{exported:?} ⊄ {imported:?}");
        // The bundle with everything, sightings and the tokens' extension too, imports into
        // the same member without a refused object and changes nothing there: every record
        // it names is already present, and a sighting makes no record.
        let everything = export(f.ports[0], "?tokens=true", "round-trip-all").await;
        let job = import_bundle(fresh_port, &everything).await;
        let done = call(fresh_port, "GET", &format!("/v1/imports/{job}"), ANALYST, None).await;
        let summary = &done.json()["summary"];
        assert_eq!(summary["refused"], 0, "{}", done.body);
        for count in ["added", "updated", "removed"] {
            assert_eq!(summary[count], 0, "{count}: {}", done.body);
        }
        assert_eq!(groups(fresh_port, 1..=20).await, imported);
    })
    .await
    .expect("test timed out");
}

/// Imports `bundle` into the member at `port` and waits until the job is done; its id.
async fn import_bundle(port: u16, bundle: &Value) -> u64 {
    let reply = http::request_off_workers(
        port,
        "POST",
        "/v1/imports?format=stix&share=false&category=terrorism/propaganda&evaluation=B2\
         &expires_in_days=30",
        Some(ANALYST),
        "application/octet-stream",
        Some(bundle.to_string().into_bytes()),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let job = reply.json()["id"].as_u64().unwrap();
    wait_for_job(port, job, "done").await;
    job
}

async fn wait_for_job(port: u16, job: u64, state: &str) {
    wait_until("the import job's state", LIMIT, || async {
        let job = call(port, "GET", &format!("/v1/imports/{job}"), ANALYST, None).await;
        job.json()["state"] == state
    })
    .await
    .unwrap();
}

/// No object id twice in `bundle`, and so no revoked object under a live one's id.
fn assert_ids_unique(bundle: &Value) {
    let mut seen = BTreeSet::new();
    for object in objects(bundle) {
        let observable = ["user-account", "email-addr", "url", "domain-name"]
            .contains(&object["type"].as_str().unwrap_or_default());
        if !observable {
            assert!(seen.insert(object["id"].as_str().unwrap().to_owned()), "{object} twice");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_s_own_bundle_imported_back_reuses_no_indicator_id() {
    tokio::time::timeout(LIMIT, async {
        let (f, _) = matched_federation("stix-own-back", "H1").await;
        let de = f.ports[0];
        let first = export(de, "?records=true", "own-back-first").await;
        // DE imports its own bundle: new records, each with an indicator id of its own.
        let job = import_bundle(de, &first).await;
        let again = export(de, "?records=true&since_ms=0", "own-back-again").await;
        assert_ids_unique(&again);
        assert_eq!(indicators(&again).len(), 2 * indicators(&first).len(), "{again}");
        // Undone, the imported records' indicators are revoked; imported again, the new
        // records' indicators are not those revoked ones.
        let undo = call(de, "POST", &format!("/v1/imports/{job}/undo"), ANALYST, None).await;
        assert_eq!(undo.status, 202, "{}", undo.body);
        wait_for_job(de, job, "undone").await;
        import_bundle(de, &first).await;
        let last = export(de, "?records=true&since_ms=0", "own-back-undone").await;
        assert_ids_unique(&last);
        let revoked = objects(&last).iter().filter(|o| o["revoked"] == true).count();
        assert_eq!(revoked, indicators(&first).len(), "{last}");
    })
    .await
    .expect("test timed out");
}
