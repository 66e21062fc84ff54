//! The hunt through the API of a running member: observations posted, posted again (no
//! double count), refused lines by number without echo, the analytics read back (audited), and
//! the counts surviving a restart.

use std::time::Duration;

use crossmatch_node::audit;
use crossmatch_node::local::LocalFederation;
use crossmatch_node::test_support::api_node::{
    ANALYST_TOKEN as ANALYST, MONITOR_TOKEN as MONITOR, analytics_account, clique_observations,
    serve_api,
};
use crossmatch_node::test_support::{TempDir, http, record};
use crossmatch_protocol::Status;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
/// A handle on a refused line: it must never come back.
const SECRET: &str = "hidden_handle";

async fn serve(fed: &LocalFederation) -> (u16, tokio::task::JoinHandle<()>) {
    serve_api(fed.node(0).unwrap(), "DE").await
}

async fn send(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<String>,
) -> http::Reply {
    let (method, path, bearer) = (method.to_owned(), path.to_owned(), bearer.to_owned());
    tokio::task::spawn_blocking(move || {
        let body = body.map(String::into_bytes);
        http::request_typed(
            port,
            &method,
            &path,
            Some(&bearer),
            "application/x-ndjson",
            body.as_deref(),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

/// The two cliques of the sample observations, then an account that posts originals only,
/// mentioning `@red0` and a malformed handle.
fn corpus(now_ms: u64) -> String {
    let mut lines = clique_observations(now_ms);
    for k in 0..3 {
        let id = lines.len() + 1;
        lines.push(format!(
            r#"{{"platform":"x","account":"@writer","at":{},"post_id":"{id}","mentions":["@red0","not a handle!"]}}"#,
            now_ms - 60_000 + k
        ));
    }
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_are_counted_once_refused_by_number_and_read_back_audited() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let root = TempDir::new("hunt-api");
        let mut fed = LocalFederation::new(root.path(), &["DE"]);
        fed.start(0).await.unwrap();
        let (port, server) = serve(&fed).await;
        let now = fed.node(0).unwrap().now_ms();
        let body = corpus(now);
        let lines = body.lines().count() as u64;
        // A line without post_id (holding a handle that must not come back) and one in the future.
        let bad = format!(
            "{body}\n{{\"platform\":\"x\",\"account\":\"@{SECRET}\",\"at\":{now}}}\n\
             {{\"platform\":\"x\",\"account\":\"@{SECRET}\",\"at\":{},\"post_id\":\"f\"}}\n",
            now + 86_400_000
        );

        // The monitor role may not send observations; a JSON body is refused.
        assert_eq!(
            send(port, "POST", "/v1/observations", MONITOR, Some(body.clone())).await.status,
            403
        );
        let json = tokio::task::spawn_blocking(move || {
            http::request(port, "POST", "/v1/observations", Some(ANALYST), Some(b"{}")).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(json.status, 415);

        let reply = send(port, "POST", "/v1/observations", ANALYST, Some(bad.clone())).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(!reply.body.contains(SECRET), "a refused line came back: {}", reply.body);
        let out = reply.json();
        assert_eq!(out["accepted"], lines);
        assert_eq!(out["duplicates"], 0);
        assert_eq!(out["dropped_references"], 3, "one bad mention on each of three lines");
        assert_eq!(out["refused_count"], 2);
        assert_eq!(out["refused"][0]["line"], lines + 1);
        assert_eq!(out["refused"][0]["rule"], "post_id");
        assert_eq!(out["refused"][1]["line"], lines + 2);
        assert_eq!(out["refused"][1]["rule"], "future");

        // The same file again: nothing is counted twice. Numbering can start where a part does.
        let reply = send(port, "POST", "/v1/observations?first_line=101", ANALYST, Some(bad)).await;
        let out = reply.json();
        assert_eq!((out["accepted"].as_u64(), out["duplicates"].as_u64()), (Some(0), Some(lines)));
        assert_eq!(out["refused"][0]["line"], 100 + lines + 1);

        assert!(fed.node(0).unwrap().recompute_hunt().await.unwrap());
        let accounts = read(port, "/v1/analytics/accounts?sort=activity&limit=3").await;
        assert_eq!(accounts["accounts"][0]["account"], "v1|account|x|writer", "{accounts}");
        assert_eq!(accounts["accounts"][0]["activity"]["originals"], 3);
        assert_eq!(accounts["accounts"].as_array().unwrap().len(), 3);
        let red0 = read(port, "/v1/analytics/accounts?sort=influence&limit=1").await;
        assert_eq!(red0["accounts"][0]["account"], "v1|account|x|red0", "{red0}");
        assert_eq!(red0["accounts"][0]["structure_activity"]["reposts"], 4);
        // The referral queue: every account with its score's terms, highest score first.
        let queue = read(port, "/v1/analytics/accounts?sort=priority&limit=1000").await;
        assert_eq!(queue["sort"], "priority");
        let scores: Vec<f64> = queue["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["priority"]["score"].as_f64().unwrap())
            .collect();
        assert_eq!(scores.len() as u64, queue["total"].as_u64().unwrap());
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{queue}");
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        let top = &queue["accounts"][0]["priority"];
        for term in ["activity", "amplifiers", "influence", "reach", "link"] {
            assert!(top[term].as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)), "{top}");
        }

        let communities = read(port, "/v1/analytics/communities").await;
        let list = communities["communities"].as_array().unwrap();
        assert!(list.len() >= 2, "{communities}");
        let blue = read(port, "/v1/analytics/accounts?limit=1000").await;
        let blue0 = analytics_account(&blue, "blue0").unwrap().clone();
        let id = blue0["community"].as_u64().unwrap();
        let detail = read(port, &format!("/v1/analytics/communities/{id}")).await;
        let members: Vec<&str> = detail["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["account"].as_str().unwrap())
            .collect();
        assert_eq!(members.len(), 5, "{detail}");
        assert!(members.iter().all(|m| m.contains("|blue")));
        assert_eq!(detail["internal_edges"].as_array().unwrap().len(), 20);
        assert!(detail["members"][0]["confidence"].as_f64().unwrap() > 0.0);
        assert_eq!(call(port, "/v1/analytics/communities/999999").await.status, 404);

        // Sharing the blue community: a preview, then the share quoting it, once.
        let share_path = format!("/v1/analytics/communities/{id}/share");
        let json = |path: &str, body: String| {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || {
                http::request_typed(
                    port,
                    "POST",
                    &path,
                    Some(ANALYST),
                    "application/json",
                    Some(body.as_bytes()),
                )
                .unwrap()
            })
        };
        let bad = json(&share_path, r#"{"preview":true,"handling":"H3","category":"x","expires_in_days":9}"#.into());
        assert_eq!(bad.await.unwrap().json()["error"]["code"], "invalid_share");
        let preview = json(
            &share_path,
            r#"{"preview":true,"handling":"H1","category":"terrorism/propaganda","expires_in_days":30}"#
                .into(),
        )
        .await
        .unwrap();
        assert_eq!(preview.status, 200, "{}", preview.body);
        let preview = preview.json();
        // A federation of one: no other member would receive it, and the preview says so.
        assert_eq!(preview["members"], 0);
        let summary = format!("{} accounts to all 0 members", preview["included"]);
        assert!(preview["summary"].as_str().unwrap().starts_with(&summary), "{preview}");
        let quote = format!(r#"{{"preview":false,"preview_id":{}}}"#, preview["preview_id"]);
        let shared = json(&share_path, quote.clone()).await.unwrap();
        assert_eq!(shared.status, 201, "{}", shared.body);
        assert_eq!(shared.json()["accounts"], preview["included"]);
        assert_eq!(shared.json()["algorithmic_records"], preview["not_reviewed"]);
        let again = json(&share_path, quote).await.unwrap();
        assert_eq!((again.status, again.json()["error"]["code"].as_str()), (409, Some("preview_unknown")));

        // Audited: one line per observations request with its counts, one per read; never a handle.
        let audit_dir = fed.data_dir(0).join("audit");
        let log = std::fs::read_to_string(audit_dir.join(audit::LOG_FILE_NAME)).unwrap();
        let observe: Vec<&str> = log.lines().filter(|l| l.contains("\tobserve\t")).collect();
        assert_eq!(observe.len(), 2, "{log}");
        assert!(observe[0].contains(&format!("accepted.{lines}_duplicates.0_refused.2_dropped.3")));
        let reads = log.lines().filter(|l| l.contains("\tread_analytics\t")).count();
        assert_eq!(reads, 8, "every read, the priority queue and the share preview:\n{log}");
        assert_eq!(log.lines().filter(|l| l.contains("\tshare\t")).count(), 1, "{log}");
        assert!(!log.contains(SECRET) && !log.contains("|red0"));

        // Restart: the counts survive, and the file sent again changes nothing.
        server.abort();
        let _ = server.await;
        fed.stop(0).await.unwrap();
        fed.start(0).await.unwrap();
        let (port, server) = serve(&fed).await;
        let reply = send(port, "POST", "/v1/observations", ANALYST, Some(body)).await;
        assert_eq!(
            (reply.json()["accepted"].as_u64(), reply.json()["duplicates"].as_u64()),
            (Some(0), Some(lines))
        );
        fed.node(0).unwrap().recompute_hunt().await.unwrap();
        let again = read(port, "/v1/analytics/accounts?sort=activity&limit=3").await;
        assert_eq!(again["accounts"], accounts["accounts"], "the same figures after a restart");

        // The unit reports the top writer removed itself: it leaves the unit's own queue.
        let in_queue = |queue: &Value, name: &str| {
            queue["accounts"].as_array().unwrap().iter().any(|a| a["account"] == name)
        };
        let queue = read(port, "/v1/analytics/accounts?sort=priority&limit=1000").await;
        assert!(in_queue(&queue, "v1|account|x|writer"), "{queue}");
        let node = fed.node(0).unwrap();
        let watch = node.add_record(record(&["writer"], false), "ana".into()).await.unwrap();
        node.set_status(watch, Status::Removed, "ana".into()).await.unwrap();
        let queue = read(port, "/v1/analytics/accounts?sort=priority&limit=1000").await;
        assert!(!in_queue(&queue, "v1|account|x|writer"), "{queue}");
        assert!(in_queue(&queue, "v1|account|x|red0"), "the others stay");
        server.abort();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

async fn call(port: u16, path: &str) -> http::Reply {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        http::request(port, "GET", &path, Some(ANALYST), None).unwrap()
    })
    .await
    .unwrap()
}

async fn read(port: u16, path: &str) -> Value {
    let reply = tokio::time::timeout(LIMIT, call(port, path)).await.unwrap();
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}
