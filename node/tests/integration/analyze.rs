//! `crossmatch analyze`: the real binary on a hand-made corpus with two planted communities, a
//! mass-mentioned account and bad lines; and community ids kept across a re-run with one more
//! day, through the library.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crossmatch_node::hunt::analyze::{LineCounts, ingest_lines, report};
use crossmatch_node::hunt::{AnalyzeSettings, Ledger, LedgerLimits};
use crossmatch_node::test_support::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");
const DAY_MS: u64 = 86_400_000;
const DAY1: u64 = 1_700_000_000_000 / DAY_MS * DAY_MS;

/// Runs the binary with `stdin`, killing it if it takes longer than a minute.
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("crossmatch analyze did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Two groups of eight accounts that repost each other, one light link between them, and a
/// press account that 16 posts mass-mention with 19 bystanders each. `day` is 0-based.
fn corpus(days: u64) -> String {
    let mut lines = Vec::new();
    let mut post_id = 0;
    for day in 0..days {
        let at = DAY1 + day * DAY_MS + 3_600_000;
        for group in ["red", "blue"] {
            for a in 0..8 {
                for b in 0..8 {
                    if a != b {
                        post_id += 1;
                        lines.push(format!(
                            r#"{{"platform":"x","account":"@{group}{a}","at":{at},"post_id":"{post_id}","repost_of":"@{group}{b}"}}"#
                        ));
                    }
                }
                post_id += 1;
                lines.push(format!(
                    r#"{{"platform":"x","account":"https://x.com/{group}{a}","at":{at},"post_id":"{post_id}","lang":"ar"}}"#
                ));
            }
        }
        post_id += 1;
        lines.push(format!(
            r#"{{"platform":"x","account":"@red0","at":{at},"post_id":"{post_id}","mentions":["@blue0"]}}"#
        ));
        for n in 0..16 {
            let mut mentions: Vec<String> = (0..19).map(|b| format!("\"@bystander{b}\"")).collect();
            mentions.push("\"@press\"".into());
            post_id += 1;
            let group = if n % 2 == 0 { "red" } else { "blue" };
            lines.push(format!(
                r#"{{"platform":"x","account":"@{group}{}","at":{at},"post_id":"{post_id}","mentions":[{}]}}"#,
                n % 8,
                mentions.join(",")
            ));
        }
        post_id += 1;
        lines.push(format!(
            r#"{{"platform":"x","account":"@press","at":{at},"post_id":"{post_id}"}}"#
        ));
    }
    lines.join("\n") + "\n"
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

fn account<'a>(report: &'a serde_json::Value, handle: &str) -> &'a serde_json::Value {
    let canonical = format!("v1|account|x|{handle}");
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == canonical.as_str())
        .unwrap()
}

#[test]
fn analyze_finds_the_planted_communities_and_counts_exactly() {
    let dir = TempDir::new("analyze");
    let path = dir.path().join("observations.jsonl");
    std::fs::write(&path, corpus(2)).unwrap();
    let output = run(&["analyze", "--observations", path.to_str().unwrap(), "--json"], "");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    assert_eq!(report["window"]["days"], 7);
    // Each group member: 7 reposts and 1 original a day, plus its share of mass-mention posts.
    let red1 = account(&report, "red1");
    assert_eq!((red1["posts"].as_u64(), red1["reposts"].as_u64()), (Some(16), Some(14)));
    let red7 = account(&report, "red7");
    assert_eq!(red7["posts"], 16, "7 reposts and 1 original on each of 2 days");
    assert_eq!(account(&report, "bystander3")["posts"], 0);
    assert_eq!(account(&report, "bystander3")["pagerank"], serde_json::Value::Null);
    // The planted groups are two communities.
    for group in ["red", "blue"] {
        let first = &account(&report, &format!("{group}0"))["community"];
        for a in 1..8 {
            assert_eq!(&account(&report, &format!("{group}{a}"))["community"], first, "{group}{a}");
        }
    }
    assert_ne!(account(&report, "red0")["community"], account(&report, "blue0")["community"]);
    assert!(report["modularity"].as_f64().unwrap() > 0.3);
    assert!(
        report["communities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"].is_u64() && c["size"].is_u64())
    );
    // Mass mentions do not make the press account central.
    let top = &report["accounts"][0];
    assert_ne!(top["account"], "v1|account|x|press");
    let press = account(&report, "press")["pagerank"].as_f64().unwrap();
    let red1_rank = red1["pagerank"].as_f64().unwrap();
    assert!(press < red1_rank, "press {press} vs red1 {red1_rank}");
}

#[test]
fn bad_lines_are_refused_by_number_and_rule_without_echo() {
    let mut input = corpus(1);
    input.push_str("{\"platform\":\"x\",\"account\":\"@secret_one\",\"post_id\":\"9\"}\n");
    input.push_str("not json @secret_two\n");
    let lines = input.lines().count();
    let output = run(&["analyze", "--observations", "-"], &input);
    assert_eq!(output.status.code(), Some(2), "refused lines give exit code 2");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("line {}: the required field `at`", lines - 1)), "{stderr}");
    assert!(
        stderr.contains(&format!("line {}: the line is not one JSON object", lines)),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 lines refused") && stdout.contains("communities"), "{stdout}");
}

#[test]
fn community_ids_stay_stable_when_a_day_is_added() {
    let settings = AnalyzeSettings::at(DAY1 + 30 * DAY_MS);
    let analyse = |days: u64, previous: &[_], next_id: &mut u64| {
        let mut ledger = Ledger::new(LedgerLimits::default());
        let counts: LineCounts =
            ingest_lines(corpus(days).as_bytes(), &mut ledger, &settings, &mut |r| panic!("{r}"))
                .unwrap();
        report(&ledger, &settings, counts, previous, next_id).unwrap()
    };
    let mut next_id = 1;
    let before = analyse(2, &[], &mut next_id);
    let after = analyse(3, &before.known(), &mut next_id);
    let community_of = |report: &crossmatch_node::hunt::Report, name: &str| {
        let canonical = format!("v1|account|x|{name}");
        report.accounts.iter().find(|a| a.account == canonical).map(|a| a.community)
    };
    for name in ["red0", "red5", "blue0", "blue7"] {
        assert_eq!(community_of(&before, name), community_of(&after, name), "{name}");
    }
    assert_eq!(after.lines.posts, before.lines.posts / 2 * 3);
}
