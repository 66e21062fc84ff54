//! `GET /v1/export/stix` over an in-process federation: admin only, a bad query refused; an
//! export (`Node::export_stix`, which the API calls) is one audit line with its counts before
//! anything streams (never an identifier, no sighting from an H2 add); and the
//! export's writer's bundles of every kind of object, written to
//! `$CARGO_TARGET_TMPDIR/crossmatch-stix/` for CI's `stix2-validator --strict`. The node's
//! bundles (ids stable across exports, no sighting from an H2 add, tokens only on
//! request, `--since` with revoked objects, the round trip through import, and the files CI
//! validates) are in `stix_export_bundles.rs`.

use std::path::PathBuf;
use std::time::Duration;

use crossmatch_node::audit;
use crossmatch_node::daemon::{StixExportCounts, StixExportQuery};
use crossmatch_node::local::wait_until;
use crossmatch_node::stix::export::{BundleWriter, IdentityIn, SightingIn};
use crossmatch_node::store::imports::{StixIds, StixKind, StixTombstone};
use crossmatch_node::store::{Record, StoredIdentifier};
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN as ANALYST, ApiMembers, MONITOR_TOKEN as MONITOR,
    api_members,
};
use crossmatch_node::test_support::http;
use crossmatch_protocol::{FederationId, Handling, Status, Token};

const LIMIT: Duration = Duration::from_secs(90);

async fn get(port: u16, path: &str, bearer: Option<&str>) -> http::Reply {
    http::request_off_workers(port, "GET", path, bearer, "application/json", None).await
}

fn error_code(reply: &http::Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// An export by the node's façade, as the API makes it for the admin `adm`: the audit line
/// is written before it returns; the bundle is then read to its end (which stores the ids of
/// what it exported, so a later export `since` a time knows them).
async fn export_by_admin(f: &ApiMembers, query: StixExportQuery) -> StixExportCounts {
    let node = f.fed.node(0).unwrap();
    let (counts, mut chunks) = node.export_stix(query, "DE".into(), "adm".into()).await.unwrap();
    while let Some(chunk) = chunks.recv().await {
        chunk.expect("the bundle streams whole");
    }
    counts
}

/// The audit lines whose action is `export`.
fn export_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.split('\t').any(|field| field == "export"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_is_admin_only_and_audited_once_with_its_counts() {
    tokio::time::timeout(LIMIT, async {
        let f = api_members("stix-export-roles").await;
        let de = f.ports[0];
        for handle in ["@stix_alpha", "@stix_beta"] {
            let body = serde_json::to_vec(&http::account_record(handle, true)).unwrap();
            let added = http::request_off_workers(
                de,
                "POST",
                "/v1/records",
                Some(ANALYST),
                "application/json",
                Some(body),
            )
            .await;
            assert_eq!(added.status, 201, "{}", added.body);
        }
        let audit_dir = f.fed.data_dir(0).join("audit");
        let log_path = audit_dir.join(audit::LOG_FILE_NAME);
        let before = export_lines(&std::fs::read_to_string(&log_path).unwrap()).len();

        // A bulk read of raw data: no token, a monitor and an analyst are refused.
        assert_eq!(get(de, "/v1/export/stix", None).await.status, 401);
        for bearer in [MONITOR, ANALYST] {
            let refused = get(de, "/v1/export/stix", Some(bearer)).await;
            assert_eq!((refused.status, error_code(&refused).as_str()), (403, "forbidden"));
        }
        // Asking for nothing, or for something unknown, is a bad query.
        for query in ["?records=false&alerts=false", "?notes=true", "?since_ms=yesterday"] {
            let refused = get(de, &format!("/v1/export/stix{query}"), Some(ADMIN)).await;
            assert_eq!((refused.status, error_code(&refused).as_str()), (400, "invalid_query"));
        }
        let after_refusals = std::fs::read_to_string(&log_path).unwrap();
        assert_eq!(export_lines(&after_refusals).len(), before, "a refused export is not audited");

        // An admin's export is one audit line naming its counts, written before it streams.
        let all = StixExportQuery { records: true, alerts: true, since_ms: None, tokens: false };
        let counts = export_by_admin(&f, StixExportQuery { alerts: false, ..all }).await;
        assert_eq!(counts, StixExportCounts { records: 2, sightings: 0, revoked: 0 });
        let log = std::fs::read_to_string(&log_path).unwrap();
        let lines = export_lines(&log);
        assert_eq!(lines.len(), before + 1, "{log}");
        let line = lines.last().unwrap();
        assert!(line.split('\t').any(|field| field == "adm"), "{line}");
        assert!(line.split('\t').any(|field| field == "stix:r2_a0_v0_t0"), "{line}");
        assert!(!line.contains("stix_alpha") && !line.contains("stix_beta"), "{line}");

        // FR holds both accounts, one at H1 and one at H2: DE has two alerts, and its export
        // counts one sighting, none from the H2 add. Tokens are named in the subject when asked;
        // no alert changed after a time to come.
        let fr = f.ports[1];
        for (handle, handling) in [("@stix_alpha", "H1"), ("@stix_beta", "H2")] {
            let mut record = http::account_record(handle, true);
            record["handling"] = handling.into();
            let body = serde_json::to_vec(&record).unwrap();
            let added = http::request_off_workers(
                fr,
                "POST",
                "/v1/records",
                Some(ANALYST),
                "application/json",
                Some(body),
            )
            .await;
            assert_eq!(added.status, 201, "{}", added.body);
        }
        wait_until("DE raises both alerts", LIMIT, || async {
            let alerts = get(de, "/v1/alerts", Some(ANALYST)).await.json();
            alerts["alerts"].as_array().is_some_and(|alerts| alerts.len() == 2)
        })
        .await
        .unwrap();
        let later = f.fed.node(0).unwrap().now_ms() + 3_600_000;
        for (query, subject) in [
            (StixExportQuery { records: false, ..all }, "stix:r0_a1_v0_t0"),
            (StixExportQuery { tokens: true, ..all }, "stix:r2_a1_v0_t1"),
            (StixExportQuery { records: false, since_ms: Some(later), ..all }, "stix:r0_a0_v0_t0"),
        ] {
            export_by_admin(&f, query).await;
            let log = std::fs::read_to_string(&log_path).unwrap();
            let line = export_lines(&log).pop().unwrap();
            assert!(line.split('\t').any(|field| field == subject), "{query:?}: {line}");
        }
        assert_eq!(export_lines(&std::fs::read_to_string(&log_path).unwrap()).len(), before + 4);
        let report =
            audit::verify(&log_path, &audit_dir.join(audit::HEAD_FILE_NAME), &f.fed.key(0));
        assert!(report.is_ok(), "{report:?}");
    })
    .await
    .expect("test timed out");
}

const CREATED_MS: u64 = 1_800_000_000_000;

/// A record of `canonicals` at `handling`.
fn record(id: u64, canonicals: &[&str], handling: Handling) -> Record {
    Record {
        id,
        identifiers: canonicals
            .iter()
            .zip(1u8..)
            .map(|(canonical, n)| StoredIdentifier {
                canonical: (*canonical).into(),
                token: Token([n; 32]),
                epoch: 1,
            })
            .collect(),
        category: "terrorism/propaganda".into(),
        handling,
        evaluation: "B2".parse().unwrap(),
        notes: String::new(),
        activity_per_day: None,
        expires_at_ms: CREATED_MS + 30 * 86_400_000,
        shared: handling != Handling::H3,
        created_at_ms: CREATED_MS,
        created_by: "ana".into(),
        algorithmic: false,
        status: None,
        backlog: false,
        pending_share: false,
        import: None,
    }
}

fn stored(created_ms: u64) -> StixIds {
    stored_as(crossmatch_node::stix::new_uuid(), created_ms)
}

fn stored_as(uuid: [u8; 16], created_ms: u64) -> StixIds {
    StixIds {
        uuid,
        created_ms,
        modified_ms: created_ms + 1_000,
        fingerprint: [0; 32],
        sighting_of: None,
        handling: Handling::H3,
    }
}

/// The records the writer's bundles hold: every kind of identifier, every handling code.
fn records() -> Vec<Record> {
    let mut referred = record(3, &["v1|account|x|stix_three"], Handling::H0);
    referred.status = Some((Status::Referred, CREATED_MS + 5));
    referred.backlog = true;
    vec![
        record(
            1,
            &[
                "v1|account|x|stix_writer_one",
                "v1|email|ops@stix-writer.example",
                "v1|phone|+33612345678",
                "v1|url|https://stix-writer.example/it's",
                "v1|domain|stix-writer.example",
            ],
            Handling::H1,
        ),
        record(
            2,
            &["v1|account_id|telegram|123456789", "v1|account|telegram|stix_writer_two"],
            Handling::H2,
        ),
        referred,
        record(4, &["v1|domain|stix-writer.example"], Handling::H3),
    ]
}

/// Writes one bundle the writer made to the directory CI validates; it parses back whole.
fn write_bundle(name: &str, chunks: &[Vec<u8>]) -> serde_json::Value {
    let bytes = chunks.concat();
    let bundle: serde_json::Value = serde_json::from_slice(&bytes).expect("a whole bundle");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crossmatch-stix");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), &bytes).unwrap();
    bundle
}

#[test]
fn the_writer_s_bundles_of_every_object_are_written_for_the_validator() {
    let unit = crossmatch_node::stix::new_uuid();
    let member = crossmatch_node::stix::new_uuid();
    let identities = [
        IdentityIn {
            ids: stored_as(unit, CREATED_MS),
            name: "DE".into(),
            contact: "ops@de.example".into(),
        },
        IdentityIn {
            ids: stored_as(member, CREATED_MS),
            name: "FR".into(),
            contact: String::new(),
        },
    ];
    let records = records();
    let ids: Vec<StixIds> = records.iter().map(|_| stored(CREATED_MS + 10)).collect();
    let bundle = |tokens: Option<FederationId>, sightings: bool, revoked: bool| {
        let mut writer = BundleWriter::new(&unit, tokens);
        let mut chunks = vec![writer.head(&crossmatch_node::stix::new_uuid(), &identities)];
        for (record, ids) in records.iter().zip(&ids) {
            chunks.push(writer.record(ids, record));
        }
        if sightings {
            for (record, handling) in [(0, Handling::H0), (1, Handling::H1), (2, Handling::H2)] {
                let sighting = stored(CREATED_MS + 30);
                chunks.push(writer.sighting(&SightingIn {
                    ids: &sighting,
                    indicator: ids[record].uuid,
                    member,
                    first_seen_ms: CREATED_MS + 15,
                    last_seen_ms: CREATED_MS + 25,
                    own_handling: records[record].handling,
                    counterpart_handling: handling,
                }));
            }
        }
        if revoked {
            let tombstone = |kind, sighting_of, handling| StixTombstone {
                kind,
                created_ms: CREATED_MS,
                modified_ms: CREATED_MS + 40,
                sighting_of,
                handling,
            };
            let indicator = tombstone(StixKind::Indicator, None, Handling::H3);
            let sighting = tombstone(StixKind::Sighting, Some(ids[0].uuid), Handling::H1);
            chunks.push(writer.revoked(&crossmatch_node::stix::new_uuid(), &indicator));
            chunks.push(writer.revoked(&crossmatch_node::stix::new_uuid(), &sighting));
        }
        chunks.push(writer.tail());
        chunks
    };
    let only_records = write_bundle("writer-records", &bundle(None, false, false));
    let with_sightings = write_bundle("writer-sightings", &bundle(None, true, false));
    let with_tokens =
        write_bundle("writer-tokens", &bundle(Some(FederationId([7; 32])), true, false));
    let with_revoked = write_bundle("writer-revoked", &bundle(None, false, true));
    let count = |bundle: &serde_json::Value, kind: &str| {
        bundle["objects"].as_array().unwrap().iter().filter(|o| o["type"] == kind).count()
    };
    assert_eq!(count(&only_records, "indicator"), 4);
    assert_eq!(count(&with_sightings, "sighting"), 2, "none from the H2 add");
    assert!(with_tokens.to_string().contains("a0d0ecf1-be4c-4695-9b67-3de2eff8175d"));
    assert!(!only_records.to_string().contains("a0d0ecf1-be4c-4695-9b67-3de2eff8175d"));
    assert_eq!(count(&with_revoked, "indicator"), 5);
}
