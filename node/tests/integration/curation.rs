//! The analysts' curation through the API of a running member: a label, a pin, a merge, a split
//! and a "not a target" mark survive a recompute that adds a day and a restart of the node;
//! suggestions for a labelled community come with their evidence and leave out records and
//! marked accounts; every curation is audited without naming an account.

use std::time::Duration;

use crossmatch_node::audit;
use crossmatch_node::local::LocalFederation;
use crossmatch_node::test_support::api_node::{
    ANALYST_TOKEN as ANALYST, MONITOR_TOKEN as MONITOR, serve_api,
};
use crossmatch_node::test_support::{TempDir, http};
use serde_json::{Value, json};

const HOUR_MS: u64 = 3_600_000;

/// DE's API, served to the shared test users.
async fn serve(fed: &LocalFederation) -> (u16, tokio::task::JoinHandle<()>) {
    serve_api(fed.node(0).unwrap(), "DE").await
}

async fn call(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Vec<u8>>,
) -> http::Reply {
    let content =
        if path == "/v1/observations" { "application/x-ndjson" } else { "application/json" };
    http::request_off_workers(port, method, path, Some(bearer), content, body).await
}

async fn send(port: u16, path: &str, body: Value) -> http::Reply {
    call(port, "POST", path, ANALYST, Some(body.to_string().into_bytes())).await
}

async fn read(port: u16, path: &str) -> Value {
    let reply = call(port, "GET", path, ANALYST, None).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

/// Cliques of accounts reposting each other at `at_ms`, numbering posts from `first_post`.
fn cliques(groups: &[(&str, usize)], at_ms: u64, first_post: &mut u64) -> Vec<String> {
    let mut lines = Vec::new();
    for (group, size) in groups {
        for i in 0..*size {
            for j in 0..*size {
                if i != j {
                    *first_post += 1;
                    let id = *first_post;
                    lines.push(format!(
                        r#"{{"platform":"x","account":"@{group}{i}","at":{},"post_id":"p{id}","repost_of":"@{group}{j}","urls":["https://example.com/{id}"]}}"#,
                        at_ms + id
                    ));
                }
            }
        }
    }
    lines
}

/// Recomputes now: again when the node's own task was computing (its run may predate the
/// last write). Bounded by the test's timeout.
async fn recompute(node: &crossmatch_node::daemon::Node) {
    while !node.recompute_hunt().await.unwrap() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn observe(port: u16, lines: &[String]) {
    let reply =
        call(port, "POST", "/v1/observations", ANALYST, Some(lines.join("\n").into_bytes())).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["refused_count"], 0, "{}", reply.body);
}

/// Each account's community id and "not a target" flag.
async fn accounts(port: u16) -> Vec<(String, u64, Value)> {
    let out = read(port, "/v1/analytics/accounts?limit=1000").await;
    out["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let name =
                a["account"].as_str().unwrap().trim_start_matches("v1|account|x|").to_owned();
            (name, a["community"].as_u64().unwrap(), a["not_a_target"].clone())
        })
        .collect()
}

fn community_of(accounts: &[(String, u64, Value)], handle: &str) -> u64 {
    accounts.iter().find(|(name, ..)| name == handle).unwrap().1
}

/// The handles of a community's members, sorted.
fn members_of(accounts: &[(String, u64, Value)], id: u64) -> Vec<String> {
    let mut out: Vec<String> =
        accounts.iter().filter(|(_, c, _)| *c == id).map(|(n, ..)| n.clone()).collect();
    out.sort();
    out
}

async fn community(port: u16, id: u64) -> Value {
    read(port, &format!("/v1/analytics/communities/{id}")).await
}

fn handles(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_merge_split_and_not_a_target_survive_a_new_day_and_a_restart() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let root = TempDir::new("curation-api");
        let mut fed = LocalFederation::new(root.path(), &["DE"]);
        fed.start(0).await.unwrap();
        let (port, server) = serve(&fed).await;
        let node = fed.node(0).unwrap().clone();
        let now = node.now_ms();
        let mut post = 0;
        let groups = [("red", 5), ("blue", 6), ("green", 4)];
        observe(port, &cliques(&groups, now - 30 * HOUR_MS, &mut post)).await;
        recompute(&node).await;
        let before = accounts(port).await;
        let (red, blue, green) = (
            community_of(&before, "red0"),
            community_of(&before, "blue0"),
            community_of(&before, "green0"),
        );
        assert_eq!(members_of(&before, blue), handles("blue", 0..6));

        // Refusals: the role, an unknown community, a bad label, a seed that is no member, a
        // merge with itself, an unknown category; none changes anything.
        let label = json!({"label": "red cell"});
        let path = |id: u64, what: &str| format!("/v1/analytics/communities/{id}/{what}");
        let label_path = path(red, "label");
        let body = Some(label.to_string().into_bytes());
        assert_eq!(call(port, "POST", &label_path, MONITOR, body).await.status, 403);
        assert_eq!(send(port, &path(999_999, "label"), label.clone()).await.status, 404);
        assert_eq!(send(port, "/v1/analytics/communities/x/pin", json!({})).await.status, 404);
        let bad = send(port, &path(red, "label"), json!({"label": ""})).await;
        assert_eq!((bad.status, bad.json()["error"]["code"].as_str()), (400, Some("invalid_curation")));
        let stranger = json!({"label": "red", "seeds": ["v1|account|x|blue0"]});
        assert_eq!(send(port, &path(red, "label"), stranger).await.status, 400);
        assert_eq!(send(port, &path(red, "merge"), json!({"with": red})).await.status, 400);
        let spy = json!({"account": "@red0", "platform": "x", "category": "spy"});
        assert_eq!(send(port, "/v1/analytics/not-a-target", spy).await.status, 400);

        // The curation.
        let labelled = send(port, &path(red, "label"), label).await;
        assert_eq!(labelled.status, 200, "{}", labelled.body);
        assert_eq!(labelled.json(), json!({"community": red, "applied": true}));
        assert_eq!(send(port, &path(green, "label"), json!({"label": "green cell"})).await.status, 200);
        assert_eq!(send(port, &path(red, "merge"), json!({"with": green})).await.status, 200);
        assert_eq!(send(port, &path(blue, "pin"), json!({})).await.status, 200);
        let split = send(
            port,
            &path(blue, "split"),
            json!({"accounts": ["v1|account|x|blue4", "v1|account|x|blue5"], "label": "offshoot"}),
        )
        .await;
        assert_eq!(split.status, 200, "{}", split.body);
        let offshoot = split.json()["community"].as_u64().unwrap();
        assert!(![red, blue, green].contains(&offshoot), "a fresh id");
        let marked = send(
            port,
            "/v1/analytics/not-a-target",
            json!({"account": "https://x.com/red0", "category": "journalist"}),
        )
        .await;
        assert_eq!(marked.status, 200, "{}", marked.body);
        assert!(!marked.body.contains("red0"), "the answer repeats no account");
        let mark_id = marked.json()["mark_id"].as_u64().unwrap();

        // What an analyst sees, now, after a recompute that adds a day, and after a restart.
        let check = |accounts: Vec<(String, u64, Value)>, when: &'static str| {
            let mut merged = handles("green", 0..4);
            merged.extend(handles("red", 0..5));
            if accounts.iter().any(|(n, ..)| n == "red5") {
                merged.push("red5".into());
            }
            merged.sort();
            assert_eq!(members_of(&accounts, red), merged, "{when}: merged");
            assert_eq!(members_of(&accounts, blue), handles("blue", 0..4), "{when}: pinned");
            assert_eq!(members_of(&accounts, offshoot), handles("blue", 4..6), "{when}: split");
            assert!(accounts.iter().all(|(_, c, _)| *c != green), "{when}: no green");
            for (name, _, flag) in &accounts {
                let expected = if name == "red0" { json!("journalist") } else { Value::Null };
                assert_eq!(flag, &expected, "{when}: {name}");
            }
        };
        let check_communities = |red_detail: Value, blue_detail: Value, offshoot_detail: Value| {
            assert_eq!(red_detail["labels"], json!(["red cell", "green cell"]));
            assert_eq!(red_detail["label"], "red cell");
            let flagged: Vec<&Value> = red_detail["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["not_a_target"] == "journalist")
                .collect();
            assert_eq!(flagged.len(), 1);
            assert_eq!(flagged[0]["account"], "v1|account|x|red0");
            assert_eq!(blue_detail["pinned"], true);
            assert_eq!(offshoot_detail["labels"], json!(["offshoot"]));
            assert_eq!(offshoot_detail["split_from"], blue);
        };
        check(accounts(port).await, "at once");
        check_communities(community(port, red).await, community(port, blue).await, community(port, offshoot).await);

        // A day later: a newcomer joins the red cell, and the blue cell's members now talk to
        // each other only in pairs; the curation holds.
        let mut today = cliques(&[("blue", 2)], now - HOUR_MS, &mut post);
        for target in ["red0", "red1", "red2", "red3"] {
            post += 1;
            today.push(format!(
                r#"{{"platform":"x","account":"@red5","at":{},"post_id":"p{post}","repost_of":"@{target}"}}"#,
                now - HOUR_MS + post
            ));
        }
        observe(port, &today).await;
        recompute(&node).await;
        check(accounts(port).await, "a day later");
        check_communities(community(port, red).await, community(port, blue).await, community(port, offshoot).await);

        // A restart: the curation was durable.
        server.abort();
        let _ = server.await;
        drop(node);
        fed.stop(0).await.unwrap();
        fed.start(0).await.unwrap();
        let (port, server) = serve(&fed).await;
        let node = fed.node(0).unwrap().clone();
        assert!(node.curation().is_not_a_target("v1|account|x|red0"));
        recompute(&node).await;
        check(accounts(port).await, "after a restart");
        check_communities(community(port, red).await, community(port, blue).await, community(port, offshoot).await);

        // Unmarked, the flag is gone; unpinned, the label stays.
        let unmark = json!({"account": "v1|account|x|red0", "remove": true});
        assert_eq!(send(port, "/v1/analytics/not-a-target", unmark).await.json()["mark_id"], mark_id);
        assert!(!node.curation().is_not_a_target("v1|account|x|red0"));
        assert_eq!(send(port, &path(blue, "pin"), json!({"pinned": false})).await.status, 200);
        assert_eq!(community(port, blue).await["pinned"], false);

        // Audited as writes, naming communities and the mark, never an account.
        let log = std::fs::read_to_string(fed.data_dir(0).join("audit").join(audit::LOG_FILE_NAME))
            .unwrap();
        let count = |action: &str| log.lines().filter(|l| l.contains(&format!("\t{action}\t"))).count();
        assert_eq!(count("label_community"), 2, "{log}");
        assert_eq!(count("merge_communities"), 1);
        assert_eq!(count("pin_community"), 2);
        assert_eq!(count("split_community"), 1);
        assert_eq!(count("mark_not_a_target"), 2);
        assert!(log.contains(&format!("community:{green}_into.{red}")));
        assert!(log.contains(&format!("community:{blue}_to.{offshoot}")));
        assert!(log.contains(&format!("not_a_target:mark.{mark_id}_journalist")));
        assert!(!log.contains("red0") && !log.contains("blue4"), "{log}");
        server.abort();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_for_a_labelled_community_come_with_evidence() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let root = TempDir::new("curation-suggest");
        let mut fed = LocalFederation::new(root.path(), &["DE"]);
        fed.start(0).await.unwrap();
        let (port, server) = serve(&fed).await;
        let node = fed.node(0).unwrap().clone();
        let now = node.now_ms();
        let mut post = 0;
        let mut lines = cliques(&[("red", 5), ("blue", 5)], now - 2 * HOUR_MS, &mut post);
        // A fan: three reposts into the red cell, one into the blue; a passer-by: two into red.
        for (account, target) in
            [("fan", "red0"), ("fan", "red1"), ("fan", "red2"), ("fan", "blue0"), ("passer", "red0"), ("passer", "red1")]
        {
            post += 1;
            lines.push(format!(
                r#"{{"platform":"x","account":"@{account}","at":{},"post_id":"f{post}","repost_of":"@{target}","urls":["https://example.com/f{post}"]}}"#,
                now - HOUR_MS + post
            ));
        }
        observe(port, &lines).await;
        recompute(&node).await;
        let red = community_of(&accounts(port).await, "red0");
        // Nothing is labelled yet: no suggestions.
        assert_eq!(read(port, "/v1/analytics/suggestions").await["suggestions"], json!([]));
        assert_eq!(send(port, &format!("/v1/analytics/communities/{red}/label"), json!({"label": "red cell"})).await.status, 200);
        // red1 is a record; red2 is marked "not a target".
        let record = call(port, "POST", "/v1/records", ANALYST, Some(http::account_record("@red1", false).to_string().into_bytes())).await;
        assert_eq!(record.status, 201, "{}", record.body);
        let mark = json!({"account": "@red2", "platform": "x", "category": "victim"});
        assert_eq!(send(port, "/v1/analytics/not-a-target", mark).await.status, 200);

        let out = read(port, &format!("/v1/analytics/suggestions?community={red}&limit=50")).await;
        let list = out["suggestions"].as_array().unwrap();
        let names: Vec<&str> = list.iter().map(|s| s["account"].as_str().unwrap()).collect();
        assert!(!names.contains(&"v1|account|x|red1"), "a record is not suggested: {names:?}");
        assert!(!names.contains(&"v1|account|x|red2"), "nor an account marked: {names:?}");
        assert!(!names.contains(&"v1|account|x|passer"), "two edges are not enough: {names:?}");
        assert!(names.contains(&"v1|account|x|red0") && names.contains(&"v1|account|x|red3"));
        let fan = list.iter().find(|s| s["account"] == "v1|account|x|fan").expect("the fan");
        assert_eq!(fan["community"], red);
        assert_eq!(fan["label"], "red cell");
        assert_eq!(fan["edge_count"], 3);
        let strength = fan["strength"].as_f64().unwrap();
        assert!((strength - 0.75).abs() < 1e-9, "three of four equal edges: {strength}");
        let edges = fan["edges"].as_array().unwrap();
        let mut targets: Vec<&str> = edges.iter().map(|e| e["to"].as_str().unwrap()).collect();
        targets.sort();
        assert_eq!(targets, ["v1|account|x|red0", "v1|account|x|red1", "v1|account|x|red2"]);
        for edge in edges {
            let posts = edge["posts"].as_array().unwrap();
            assert_eq!(posts.len(), 1, "{edge}");
            let id = posts[0]["post_id"].as_str().unwrap();
            assert!(id.starts_with('f'));
            assert_eq!(posts[0]["urls"], json!([format!("https://example.com/{id}")]));
            assert!((edge["weight"].as_f64().unwrap() - 2f64.ln()).abs() < 1e-9);
        }
        // Strongest first; the limit holds; a bad limit is refused.
        let strengths: Vec<f64> = list.iter().map(|s| s["strength"].as_f64().unwrap()).collect();
        assert!(strengths.windows(2).all(|w| w[0] >= w[1]), "{strengths:?}");
        let one = read(port, "/v1/analytics/suggestions?limit=1").await;
        assert_eq!(one["suggestions"].as_array().unwrap().len(), 1);
        assert_eq!(call(port, "GET", "/v1/analytics/suggestions?limit=0", ANALYST, None).await.status, 400);
        assert_eq!(call(port, "GET", "/v1/analytics/suggestions", MONITOR, None).await.status, 403);
        let log = std::fs::read_to_string(fed.data_dir(0).join("audit").join(audit::LOG_FILE_NAME))
            .unwrap();
        assert!(log.contains(&format!("analytics:suggestions.community.{red}")), "{log}");
        server.abort();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}
