//! Successors and exports through the API of two members: a member marks an account removed,
//! the other (which watches it and observes its circle) flags the new account that takes the
//! circle over, and stops once the account is reinstated; its exports parse, carry the handling
//! mark and nothing the other member shared, and are audited.

use std::time::Duration;

use crossmatch_node::audit;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::test_support::api_node::{ANALYST_TOKEN as ANALYST, serve_api};
use crossmatch_node::test_support::{TempDir, http, record};
use crossmatch_protocol::{Handling, Status};
use serde_json::Value;

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

async fn call(port: u16, method: &str, path: &str, body: Option<String>) -> http::Reply {
    let (method, path) = (method.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let body = body.map(String::into_bytes);
        http::request_typed(
            port,
            &method,
            &path,
            Some(ANALYST),
            "application/x-ndjson",
            body.as_deref(),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

fn line(account: &str, id: &str, at: u64, extra: &str) -> String {
    format!(r#"{{"platform":"x","account":"@{account}","at":{at},"post_id":"{id}"{extra}}}"#)
}

/// `@abu_x` and its circle of eight fans over the three days before `now`, and a crowd
/// reposting a hub.
fn before(now: u64) -> String {
    let mut lines = Vec::new();
    for day in 1..=3u64 {
        let at = now - day * DAY;
        for p in 0..8 {
            lines.push(line(
                &format!("fan{p}"),
                &format!("a{day}-{p}"),
                at,
                r#","repost_of":"@abu_x""#,
            ));
            lines.push(line(
                &format!("fan{p}"),
                &format!("h{day}-{p}"),
                at + 1,
                r#","repost_of":"@hub""#,
            ));
        }
        lines.push(line("abu_x", &format!("x{day}"), at, r#","mentions":["@fan0","@fan1"]"#));
        for o in 0..20 {
            lines.push(line(
                &format!("crowd{o}"),
                &format!("c{day}-{o}"),
                at,
                r#","repost_of":"@hub""#,
            ));
        }
    }
    lines.join("\n")
}

/// After the removal: `@abu_x2` reposted by seven fans (one announces it), and `@newbie`, a new
/// account of the crowd.
fn after(now: u64) -> String {
    let mut lines = vec![line("abu_x2", "s0", now, r#","repost_of":"@hub""#)];
    for p in 0..7 {
        lines.push(line(
            &format!("fan{p}"),
            &format!("s{p}"),
            now + 1,
            r#","repost_of":"@abu_x2""#,
        ));
    }
    lines.push(line(
        "fan0",
        "announce",
        now + 2,
        r#","mentions":["@abu_x2"],"urls":["https://x.com/fan0/status/1"]"#,
    ));
    lines.push(line("newbie", "n0", now, r#","repost_of":"@hub""#));
    for o in 0..10 {
        lines.push(line(
            &format!("crowd{o}"),
            &format!("n{o}"),
            now + 1,
            r#","repost_of":"@newbie""#,
        ));
    }
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_is_flagged_after_a_removal_and_a_reinstatement_is_not_mistaken_for_one() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let root = TempDir::new("successors");
        let mut fed = LocalFederation::new(root.path(), &["DE", "FR"]);
        fed.start_all().await.unwrap();
        fed.wait_meshed().await.unwrap();
        let (de, fr) = (fed.node(0).unwrap().clone(), fed.node(1).unwrap().clone());
        let (port, server) = serve_api(&de, "DE").await;

        // DE watches @abu_x and observes its circle; FR shares it under H2 and has it removed.
        de.add_record(record(&["@abu_x"], false), "ana".into()).await.unwrap();
        let reply = call(port, "POST", "/v1/observations", Some(before(de.now_ms()))).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut shared = record(&["@abu_x"], true);
        shared.handling = Handling::H2;
        shared.category = "terrorism/h2only".into();
        let id = fr.add_record(shared, "fr".into()).await.unwrap();
        fr.set_status(id, Status::Removed, "fr".into()).await.unwrap();
        // The removal reaches DE; nothing is flagged before a successor appears.
        let successors = || async {
            de.recompute_hunt().await.unwrap();
            call(port, "GET", "/v1/analytics/successors", None).await.json()
        };
        wait_until("DE searches the removed account", Duration::from_secs(60), || async {
            successors().await["removed_searched"] == 1
        })
        .await
        .unwrap();
        assert_eq!(successors().await["successors"], Value::Array(Vec::new()));

        tokio::time::sleep(Duration::from_millis(5)).await;
        let reply = call(port, "POST", "/v1/observations", Some(after(de.now_ms()))).await;
        assert_eq!(reply.json()["refused_count"], 0, "{}", reply.body);
        let found = successors().await;
        let list = found["successors"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{found}");
        let successor = &list[0];
        assert_eq!(successor["account"], "v1|account|x|abu_x2");
        assert_eq!(successor["suggestion"], "likely successor of v1|account|x|abu_x");
        assert_eq!(successor["parts"]["overlap"]["common_partners"], 7);
        assert!(successor["parts"]["overlap"]["score"].as_f64().unwrap() > 0.0);
        let posts = successor["parts"]["announcement"]["posts"].as_array().unwrap();
        assert!(posts.iter().any(|p| p["post_id"] == "announce"), "{successor}");
        assert_eq!(successor["parts"]["handle"]["similarity"], 0.8);

        // Exports: they parse, carry the mark, hold nothing FR shared, and are audited.
        let graphml = call(port, "GET", "/v1/analytics/export?format=graphml", None).await;
        assert_eq!(graphml.status, 200);
        assert!(graphml.headers.to_ascii_lowercase().contains("application/xml"));
        let mut reader = quick_xml::Reader::from_str(&graphml.body);
        reader.config_mut().check_end_names = true;
        while !matches!(reader.read_event().expect("well-formed"), quick_xml::events::Event::Eof) {}
        assert!(graphml.body.contains("<!-- handling: H1 local analytics"));
        assert!(graphml.body.contains("v1|account|x|abu_x2"));
        for export in ["gexf", "accounts.csv", "links.csv"] {
            let reply =
                call(port, "GET", &format!("/v1/analytics/export?format={export}"), None).await;
            assert_eq!(reply.status, 200, "{export}");
            assert!(reply.body.contains("H1 local analytics"), "{export}");
            assert!(!reply.body.contains("h2only") && !reply.body.contains("FR"), "{export}");
        }
        assert!(!graphml.body.contains("h2only"));
        let refused = call(port, "GET", "/v1/analytics/export?format=xlsx", None).await;
        assert_eq!(
            (refused.status, refused.json()["error"]["code"].clone()),
            (400, "invalid_format".into())
        );
        assert_eq!(call(port, "GET", "/v1/analytics/export", None).await.status, 400);
        let log = std::fs::read_to_string(fed.data_dir(0).join("audit").join(audit::LOG_FILE_NAME))
            .unwrap();
        let exports: Vec<&str> =
            log.lines().filter(|l| l.contains("\texport_analytics\t")).collect();
        assert_eq!(exports.len(), 4, "{log}");
        assert!(exports[0].contains("export:graphml_community.all_accounts."), "{}", exports[0]);
        assert!(log.lines().any(|l| l.contains("\tanalytics:successors")));
        assert!(!log.contains("abu_x"), "no handle in the audit log");

        // FR reports the account reinstated: the same account restored, no successor search.
        fr.set_status(id, Status::Reinstated, "fr".into()).await.unwrap();
        wait_until("DE sees the reinstatement", Duration::from_secs(60), || async {
            successors().await["reinstated"] == serde_json::json!(["v1|account|x|abu_x"])
        })
        .await
        .unwrap();
        let found = successors().await;
        assert_eq!(
            (found["removed_searched"].as_u64(), found["successors"].as_array().map(Vec::len)),
            (Some(0), Some(0))
        );

        server.abort();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}
