//! `GET /v1/export/stix` over an in-process federation: admin only, a bad query refused, and one
//! audit line with the export's counts before anything streams (never an identifier). The
//! bundles themselves (ids stable across exports, no sighting from an H2 add, tokens only on
//! request, `--since` with revoked objects, the round trip through import, and the files CI
//! validates) are in `stix_export_bundles.rs`.

use std::time::Duration;

use crossmatch_node::audit;
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN as ANALYST, MONITOR_TOKEN as MONITOR, api_members,
};
use crossmatch_node::test_support::http;

const LIMIT: Duration = Duration::from_secs(90);

async fn get(port: u16, path: &str, bearer: Option<&str>) -> http::Reply {
    http::request_off_workers(port, "GET", path, bearer, "application/json", None).await
}

fn error_code(reply: &http::Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// The audit lines of member `index` whose action is `export`.
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
        let export = get(de, "/v1/export/stix?records=true", Some(ADMIN)).await;
        assert_eq!(export.status, 200, "{}", export.body);
        assert!(
            export.headers.to_ascii_lowercase().contains("content-type: application/stix+json"),
            "{}",
            export.headers
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
