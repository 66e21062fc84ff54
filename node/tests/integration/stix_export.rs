//! `GET /v1/export/stix` over an in-process federation: admin only, a bad query refused, and one
//! audit line with the export's counts before anything streams (never an identifier); and the
//! export's writer's bundles of every kind of object, written to
//! `$CARGO_TARGET_TMPDIR/crossmatch-stix/` for CI's `stix2-validator --strict`. The node's
//! bundles (ids stable across exports, no sighting from an H2 add, tokens only on
//! request, `--since` with revoked objects, the round trip through import, and the files CI
//! validates) are in `stix_export_bundles.rs`.

use std::path::PathBuf;
use std::time::Duration;

use crossmatch_node::audit;
use crossmatch_node::stix::export::{BundleWriter, IdentityIn, SightingIn};
use crossmatch_node::store::imports::{StixIds, StixKind, StixTombstone};
use crossmatch_node::store::{Record, StoredIdentifier};
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN as ANALYST, MONITOR_TOKEN as MONITOR, api_members,
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

/// The head of an admin's `GET path` answer, read as far as the connection allows: the body
/// streams after it, and may be cut short (this test needs no bundle).
fn response_head(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {ADMIN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n").map_or(text.clone(), |(head, _)| head.to_owned())
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

        // An admin's export answers 200 as STIX, and is one audit line naming its counts.
        let head =
            tokio::task::spawn_blocking(move || response_head(de, "/v1/export/stix?records=true"));
        let head = tokio::time::timeout(Duration::from_secs(60), head).await.unwrap().unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("content-type: application/stix+json"),
            "{head}"
        );
        let log = std::fs::read_to_string(&log_path).unwrap();
        let lines = export_lines(&log);
        assert_eq!(lines.len(), before + 1, "{log}");
        let line = lines.last().unwrap();
        assert!(line.split('\t').any(|field| field == "adm"), "{line}");
        assert!(line.split('\t').any(|field| field == "stix:r2_a0_v0_t0"), "{line}");
        assert!(!line.contains("stix_alpha") && !line.contains("stix_beta"), "{line}");
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
    StixIds {
        uuid: crossmatch_node::stix::new_uuid(),
        created_ms,
        modified_ms: created_ms + 1_000,
        fingerprint: [0; 32],
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
        IdentityIn { uuid: unit, name: "DE".into(), contact: "ops@de.example".into() },
        IdentityIn { uuid: member, name: "FR".into(), contact: String::new() },
    ];
    let records = records();
    let ids: Vec<StixIds> = records.iter().map(|_| stored(CREATED_MS + 10)).collect();
    let bundle = |tokens: Option<FederationId>, sightings: bool, revoked: bool| {
        let mut writer = BundleWriter::new(&unit, tokens);
        let mut chunks =
            vec![writer.head(&crossmatch_node::stix::new_uuid(), CREATED_MS + 20, &identities)];
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
            let indicator = StixTombstone {
                kind: StixKind::Indicator,
                created_ms: CREATED_MS,
                sighting_of: None,
            };
            let sighting = StixTombstone {
                kind: StixKind::Sighting,
                created_ms: CREATED_MS,
                sighting_of: Some(ids[0].uuid),
            };
            let gone = CREATED_MS + 40;
            chunks.push(writer.revoked(&crossmatch_node::stix::new_uuid(), gone, &indicator));
            chunks.push(writer.revoked(&crossmatch_node::stix::new_uuid(), gone, &sighting));
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
