//! The hunt from the command line (`crossmatch hunt …`, `takedowns`, `forks`), run as the binary
//! against an in-process member serving its API: observations sent with `crossmatch observe`,
//! then every read prints what the API answers, every write changes what the API then shows,
//! and a missing community (4) and a bad body (2) get their exit codes.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crossmatch_node::test_support::api_node::{ApiMembers, analytics_account, clique_observations};
use crossmatch_node::test_support::http;
use serde_json::{Value, json};

use super::{ADMIN, ANALYST, LIMIT, analyst, cli, env_ref, members};

/// The sample observations, as an observations file.
fn corpus(now_ms: u64) -> String {
    clique_observations(now_ms).join("\n") + "\n"
}

/// The API's own answer to a `GET`, with `token`: its body.
async fn api_text(port: u16, path: &str, token: &'static str) -> String {
    let reply =
        http::request_off_workers(port, "GET", path, Some(token), "application/json", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The API's own answer to a `GET`, with `token`, as JSON.
async fn api(port: u16, path: &str, token: &'static str) -> Value {
    let body = api_text(port, path, token).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Recomputes now: again when the node's own task was computing.
async fn recompute(node: &crossmatch_node::daemon::Node) {
    while !node.recompute_hunt().await.unwrap() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// DE and FR serving their APIs, DE having observed the sample corpus through `crossmatch
/// observe` and recomputed: the members and DE's API port.
async fn observed_members(name: &str) -> (ApiMembers, u16) {
    let m = members(name).await;
    let port = m.ports[0];
    let de = analyst(port);
    let node = m.fed.node(0).unwrap().clone();
    let run = cli(&["observe", "-"], &env_ref(&de), &corpus(node.now_ms())).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    recompute(&node).await;
    (m, port)
}

/// An x account as the API's analytics show it.
async fn account(port: u16, handle: &str) -> Value {
    let accounts = api(port, "/v1/analytics/accounts?limit=1000", ANALYST).await;
    let found = analytics_account(&accounts, handle).cloned();
    found.unwrap_or_else(|| panic!("{handle} not in {accounts}"))
}

/// The community of an account, as the API shows it.
async fn community_of(port: u16, handle: &str) -> u64 {
    account(port, handle).await["community"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hunt_reads_print_what_the_api_answers() {
    tokio::time::timeout(LIMIT, async {
        let (m, port) = observed_members("hunt-reads").await;
        let de = analyst(port);
        let env = env_ref(&de);
        // Each read with --json prints exactly the API's answer; the table shows it too.
        let blue = community_of(port, "blue0").await;
        let reads: Vec<(Vec<String>, String)> = vec![
            (vec!["accounts".into()], "/v1/analytics/accounts".into()),
            (
                ["accounts", "--sort", "influence", "--limit", "3", "--platform", "x"]
                    .map(String::from)
                    .to_vec(),
                "/v1/analytics/accounts?sort=influence&platform=x&limit=3".into(),
            ),
            (
                vec!["accounts".into(), "--sort".into(), "priority".into()],
                "/v1/analytics/accounts?sort=priority".into(),
            ),
            (
                vec!["accounts".into(), "--community".into(), blue.to_string()],
                format!("/v1/analytics/accounts?community={blue}"),
            ),
            (vec!["communities".into()], "/v1/analytics/communities".into()),
            (
                vec!["communities".into(), blue.to_string()],
                format!("/v1/analytics/communities/{blue}"),
            ),
            (
                ["suggestions", "--limit", "5"].map(String::from).to_vec(),
                "/v1/analytics/suggestions?limit=5".into(),
            ),
            (vec!["overlaps".into()], "/v1/analytics/overlaps".into()),
            (vec!["successors".into()], "/v1/analytics/successors".into()),
        ];
        for (args, path) in reads {
            let mut json_args = vec!["hunt"];
            json_args.extend(args.iter().map(String::as_str));
            json_args.push("--json");
            let run = cli(&json_args, &env, "").await;
            assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
            assert_eq!(run.json(), api(port, &path, ANALYST).await, "{args:?}");
            let run = cli(&json_args[..json_args.len() - 1], &env, "").await;
            assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
            let header = ["ACCOUNT", "ID", "MEMBER"];
            assert!(header.iter().any(|h| run.stdout.starts_with(h)), "{args:?}: {}", run.stdout);
        }
        let run = cli(&["hunt", "accounts", "--sort", "influence"], &env, "").await;
        assert!(run.stdout.contains("v1|account|x|red0"), "{}", run.stdout);
        let run = cli(&["hunt", "communities", &blue.to_string()], &env, "").await;
        assert!(run.stdout.contains("v1|account|x|blue4"), "{}", run.stdout);
        // 4 for a community that is not there; 2 for an option the API refuses or a bad word.
        let run = cli(&["hunt", "communities", "987654"], &env, "").await;
        assert_eq!(run.code, Some(4), "{run:?}");
        let run = cli(&["hunt", "accounts", "--sort", "volume"], &env, "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("invalid_query"), "{}", run.stderr);
        let run = cli(&["hunt", "accounts", "--lang", "ar&limit=1"], &env, "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        // The analytics as a file: on stdout exactly what the API answers; with --out, owner
        // only, never over an existing file without --force; an unknown format refused (2).
        let run = cli(&["hunt", "export", "--format", "accounts.csv"], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(
            run.stdout,
            api_text(port, "/v1/analytics/export?format=accounts.csv", ANALYST).await
        );
        assert!(run.stdout.contains("v1|account|x|red0"), "{}", run.stdout);
        let out = m.root.path().join("blue.graphml");
        let community = blue.to_string();
        let export = [
            "hunt",
            "export",
            "--format",
            "graphml",
            "--community",
            &community,
            "--out",
            out.to_str().unwrap(),
        ];
        let run = cli(&export, &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let graphml = api_text(
            port,
            &format!("/v1/analytics/export?format=graphml&community={blue}"),
            ANALYST,
        )
        .await;
        assert!(graphml.contains("v1|account|x|blue0") && !graphml.contains("red0"), "{graphml}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), graphml);
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&out, "kept").unwrap();
        let run = cli(&export, &env, "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("--force"), "{}", run.stderr);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept");
        let forced: Vec<&str> = export.iter().copied().chain(["--force"]).collect();
        let run = cli(&forced, &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), graphml);
        let run = cli(&["hunt", "export", "--format", "pdf"], &env, "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("invalid_format"), "{}", run.stderr);
        // The takedown clocks: a record of a hunted account, then its clock, as the API shows it.
        let run = cli(
            &["records", "add", "--kind", "account", "--json"]
                .into_iter()
                .chain(super::RECORD_OPTIONS)
                .collect::<Vec<_>>(),
            &env,
            "@red0\n",
        )
        .await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let record = run.json()["id"].as_u64().unwrap();
        let run = cli(&["takedowns", "--json"], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let clocks = run.json();
        let from_api = api(port, "/v1/takedowns", ANALYST).await;
        assert_eq!(clocks["totals"], from_api["totals"]);
        let keys = |answer: &Value| -> Vec<Value> {
            answer["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| json!([c["record"], c["token_short"], c["state"], c["deadline_ms"]]))
                .collect()
        };
        assert_eq!(keys(&clocks), keys(&from_api));
        assert_eq!(clocks["accounts"][0]["record"], record);
        let run = cli(&["takedowns", "--state", "pending"], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(
            run.stdout.starts_with("RECORD") && run.stdout.contains("pending"),
            "{}",
            run.stdout
        );
        let run = cli(&["takedowns", "--state", "removed", "--json"], &env, "").await;
        assert_eq!(run.json()["accounts"], json!([]), "{run:?}");
        // Forks: for admins, as the API shows them; an analyst is refused (3).
        let admin = [("CROSSMATCH_API", de[0].1.as_str()), ("CROSSMATCH_TOKEN", ADMIN)];
        let run = cli(&["forks", "--json"], &admin, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.json(), api(port, "/v1/forks", ADMIN).await);
        let run = cli(&["forks"], &admin, "").await;
        assert!(run.stdout.starts_with("MEMBER"), "{run:?}");
        let run = cli(&["forks"], &env, "").await;
        assert_eq!(run.code, Some(3), "{run:?}");
        drop(m.fed);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hunt_writes_change_what_the_api_shows() {
    tokio::time::timeout(LIMIT, async {
        let (m, port) = observed_members("hunt-writes").await;
        let de = analyst(port);
        let env = env_ref(&de);
        let (red, blue) = (community_of(port, "red0").await, community_of(port, "blue0").await);
        let community = |id: u64| async move {
            api(port, &format!("/v1/analytics/communities/{id}"), ANALYST).await
        };
        // A label from stdin, and from a file; neither is an argument.
        let run = cli(&["hunt", "label", &red.to_string()], &env, "red cell\n").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(community(red).await["label"], "red cell");
        // Seeds from a file, one canonical form a line: a seed that is not a member of the
        // community is refused by the node (2), so the seeds were sent; its own members are
        // taken. Label and seeds cannot both come from stdin.
        let seeds = m.root.path().join("seeds.txt");
        std::fs::write(&seeds, "v1|account|x|blue0\n").unwrap();
        let id = red.to_string();
        let labelled = ["hunt", "label", &id, "--seeds-from", seeds.to_str().unwrap()];
        let run = cli(&labelled, &env, "red core\n").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("invalid_curation"), "{}", run.stderr);
        assert!(!run.stderr.contains("blue0"), "{}", run.stderr);
        std::fs::write(&seeds, "v1|account|x|red0\n\nv1|account|x|red1\n").unwrap();
        let run = cli(&labelled, &env, "red cell\n").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(community(red).await["label"], "red cell");
        let run = cli(&["hunt", "label", &id, "--seeds-from", "-"], &env, "red cell\n").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        // A label past 64 KiB is refused here, before the node is asked.
        let run = cli(&["hunt", "label", &id], &env, &"x".repeat(64 * 1024 + 1)).await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("over 65536 bytes"), "{}", run.stderr);
        let file = m.root.path().join("label.txt");
        std::fs::write(&file, "blue cell\n").unwrap();
        let args = ["hunt", "label", &blue.to_string(), "--file", file.to_str().unwrap(), "--json"];
        let run = cli(&args, &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.json()["community"], blue);
        assert_eq!(community(blue).await["label"], "blue cell");
        // Pinned, then unpinned (the label kept).
        let run = cli(&["hunt", "pin", &red.to_string()], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(community(red).await["pinned"], true);
        let run = cli(&["hunt", "pin", &red.to_string(), "--unpin"], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(
            (community(red).await["pinned"].clone(), community(red).await["label"].clone()),
            (json!(false), json!("red cell"))
        );
        // Two accounts split off red, one a line: the answer names the new community.
        let stdin = "v1|account|x|red3\nv1|account|x|red4\n";
        let run = cli(&["hunt", "split", &red.to_string(), "--json"], &env, stdin).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let new = run.json()["community"].as_u64().unwrap();
        assert_eq!(community_of(port, "red3").await, new);
        assert_eq!(community(new).await["split_from"], red);
        // Merged back: shown as part of red from now on.
        let run =
            cli(&["hunt", "merge", &red.to_string(), "--with", &new.to_string()], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(
            run.stdout.contains(&format!("community {new} merged into {red}")),
            "{}",
            run.stdout
        );
        let merged = community(red).await["merged_ids"].clone();
        assert!(merged.as_array().unwrap().contains(&json!(new)), "{merged}");
        // "Not a target": the account from stdin only; then the mark removed.
        let run =
            cli(&["hunt", "not-a-target", "--category", "journalist"], &env, "@blue1\n").await;
        assert_eq!(run.code, Some(2), "a handle needs --platform: {run:?}");
        let args = ["hunt", "not-a-target", "--category", "journalist", "--platform", "x"];
        let run = cli(&args, &env, "@blue1\n").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let marked = || async { account(port, "blue1").await["not_a_target"].clone() };
        assert_eq!(marked().await, json!("journalist"));
        let run = cli(&["hunt", "not-a-target", "--remove"], &env, "v1|account|x|blue1\n").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(marked().await, Value::Null);
        let run = cli(&["hunt", "not-a-target", "--category", "journalist"], &env, "").await;
        assert_eq!(run.code, Some(2), "no account on stdin: {run:?}");
        // A piped list is refused whole, not taken for its first line.
        let list = "v1|account|x|blue1\nv1|account|x|red1\n";
        let run = cli(&["hunt", "not-a-target", "--category", "journalist"], &env, list).await;
        assert_eq!(run.code, Some(2), "two accounts on stdin: {run:?}");
        assert!(!run.stderr.contains("blue1") && !run.stderr.contains("red1"), "{run:?}");
        assert_eq!(marked().await, Value::Null, "nothing marked");
        // A share: the preview alone shares nothing; --confirm shares exactly the preview shown.
        let share = [
            "hunt",
            "share",
            &blue.to_string(),
            "--handling",
            "H1",
            "--category",
            "terrorism/propaganda",
            "--expires-in-days",
            "30",
        ];
        let run = cli(&share, &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("nothing shared"), "{}", run.stdout);
        let mut args = share.to_vec();
        args.push("--json");
        let run = cli(&args, &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let preview: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(preview["preview"], json!(true), "{preview}");
        let preview_id = preview["preview_id"].as_str().unwrap().to_owned();
        assert!(run.stdout.lines().count() == 1, "a preview shares nothing: {run:?}");
        // The reviewed preview, and only it, is shared.
        let mut args = share.to_vec();
        args.extend(["--confirm", &preview_id, "--json"]);
        let run = cli(&args, &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let shared: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(shared["preview"], json!(false), "{shared}");
        assert_eq!(shared["accounts"], preview["included"]);
        assert!(shared["snapshot"].as_u64().is_some(), "{shared}");
        // 4: a community that is not there, for every write that names one.
        for args in [
            vec!["hunt", "label", "987654"],
            vec!["hunt", "pin", "987654"],
            vec!["hunt", "split", "987654"],
        ] {
            let run = cli(&args, &env, "v1|account|x|red1\n").await;
            assert_eq!(run.code, Some(4), "{args:?}: {run:?}");
        }
        // 2: a body the API refuses (an unknown field), malformed JSON (refused here, never
        // quoted), an empty label, an unknown category.
        let id = red.to_string();
        let run = cli(&["hunt", "label", &id], &env, r#"{"label":"x","colour":"red"}"#).await;
        assert_eq!(run.code, Some(2), "{run:?}");
        let run = cli(&["hunt", "label", &id], &env, r#"{"label":"secret_cell""#).await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(!run.stderr.contains("secret_cell"), "{}", run.stderr);
        let run = cli(&["hunt", "label", &id], &env, "\n").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        let run =
            cli(&["hunt", "not-a-target", "--category", "spy"], &env, "v1|account|x|red1\n").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("invalid_curation"), "{}", run.stderr);
        assert_eq!(community(red).await["label"], "red cell", "nothing refused changed it");
        drop(m.fed);
    })
    .await
    .expect("test timed out");
}
