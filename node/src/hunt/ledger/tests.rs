//! The ledger's unit tests: aggregation, aliases and merges, evidence, windows.

use super::*;
use crate::hunt::observation::parse_line;

const NOW: u64 = 1_800_000_000_000;
const DAY1: u64 = 1_600_000_000_000;

fn ingest(ledger: &mut Ledger, lines: &str) -> Vec<Ingested> {
    lines
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            ledger.ingest(&parse_line(line, n as u64 + 1, NOW, 0).unwrap().observation)
        })
        .collect()
}

fn account(ledger: &Ledger, handle: &str) -> AccountIndex {
    let canonical =
        crossmatch_protocol::canonicalize(Kind::Account, Some("x"), None, handle).unwrap();
    ledger.account_of(&canonical).unwrap()
}

fn all_days() -> Window {
    Window { first: Day(0), last: Day(u32::MAX) }
}

#[test]
fn a_follow_snapshot_is_not_a_post_and_moves_no_seen_time() {
    let mut ledger = Ledger::default();
    ingest(
        &mut ledger,
        r#"{"platform":"x","account":"@poster","at":1600000000000,"post_id":"1"}
{"platform":"x","account":"@poster","at":1600000900000,"follows":["@other"]}
{"platform":"x","account":"@lurker","at":1600000900000,"follows":["@poster"]}"#,
    );
    let poster = account(&ledger, "poster");
    assert_eq!(ledger.seen(poster), Some((DAY1, DAY1)));
    assert_eq!(ledger.seen(account(&ledger, "lurker")), None);
}

#[test]
fn a_handle_and_a_profile_url_aggregate_together() {
    let mut ledger = Ledger::default();
    ingest(
        &mut ledger,
        r#"{"platform":"x","account":"@Someone","at":1600000000000,"post_id":"1"}
           {"platform":"x","account":"https://x.com/someone","at":1600000000001,"post_id":"2"}"#,
    );
    let activity = ledger.window_activity(all_days());
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[&account(&ledger, "@someone")].originals, 2);
}

#[test]
fn an_account_id_merges_a_renamed_account() {
    let mut ledger = Ledger::default();
    // Seen first without its id, then renamed with its id, then the old handle with the id.
    ingest(
        &mut ledger,
        r#"{"platform":"x","account":"@old_name","at":1600000000000,"post_id":"1"}
           {"platform":"x","account":"@new_name","account_id":"42","at":1600000100000,"post_id":"2"}
           {"platform":"x","account":"@old_name","account_id":"42","at":1600000050000,"post_id":"3"}
           {"platform":"x","account":"@fan","at":1600000000000,"post_id":"4","repost_of":"@old_name"}
           {"platform":"x","account":"@fan","at":1600000000000,"post_id":"5","repost_of":"@new_name"}"#,
    );
    let old = account(&ledger, "@old_name");
    let new = account(&ledger, "@new_name");
    assert_eq!(old, new);
    let activity = ledger.window_activity(all_days());
    assert_eq!(activity[&old].posts(), 3);
    assert_eq!(ledger.display(old).unwrap().as_str(), "v1|account|x|new_name", "the newest handle");
    let fan = account(&ledger, "@fan");
    let edges = ledger.window_edges(all_days(), &activity, 0.5);
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[&(fan, old)], 2.0, "reposts of both handles land on one edge");
    assert_eq!(ledger.seen(old), Some((1_600_000_000_000, 1_600_000_100_000)));
}

#[test]
fn a_recycled_handle_is_not_merged() {
    let mut ledger = Ledger::default();
    ingest(
        &mut ledger,
        r#"{"platform":"x","account":"@name","account_id":"1","at":1600000000000,"post_id":"1"}
           {"platform":"x","account":"@name","account_id":"2","at":1600000100000,"post_id":"2"}"#,
    );
    let activity = ledger.window_activity(all_days());
    assert_eq!(activity.len(), 2, "two accounts, one post each");
    assert!(activity.values().all(|activity| activity.posts() == 1));
}

#[test]
fn activity_and_edges_are_exact_on_a_hand_made_corpus() {
    let mut ledger = Ledger::default();
    let day2 = DAY1 + DAY_MS;
    let corpus = format!(
        r#"{{"platform":"x","account":"@a","at":{DAY1},"post_id":"1","mentions":["@b","@c","@d","@e"]}}
           {{"platform":"x","account":"@a","at":{DAY1},"post_id":"2","reply_to":"@b"}}
           {{"platform":"x","account":"@b","at":{DAY1},"post_id":"3","repost_of":"@a"}}
           {{"platform":"x","account":"@b","at":{day2},"post_id":"4","repost_of":"@a","mentions":["@a"]}}
           {{"platform":"x","account":"@c","at":{day2},"post_id":"5","lang":"ar"}}
           {{"platform":"x","account":"@c","at":{day2},"post_id":"6","reply_to":"@c"}}"#
    );
    assert!(ingest(&mut ledger, &corpus).iter().all(|outcome| *outcome == Ingested::Post));
    let (a, b, c, d) = (
        account(&ledger, "@a"),
        account(&ledger, "@b"),
        account(&ledger, "@c"),
        account(&ledger, "@d"),
    );
    let activity = ledger.window_activity(all_days());
    assert_eq!(activity[&a], Activity { originals: 1, reposts: 0, replies: 1 });
    assert_eq!(activity[&b], Activity { originals: 0, reposts: 2, replies: 0 });
    assert_eq!(activity[&c], Activity { originals: 1, reposts: 0, replies: 1 });
    assert!(!activity.contains_key(&d), "mentioned only");
    let day1 = Window::ending(Day::of_ms(DAY1), 1);
    assert_eq!(ledger.window_activity(day1)[&b].reposts, 1);
    let edges = ledger.window_edges(all_days(), &activity, 0.5);
    assert_eq!(edges[&(a, b)], 1.25, "a reply (1) and a quarter of four mentions");
    assert_eq!(edges[&(a, c)], 0.25);
    assert_eq!(edges[&(a, d)], 0.25);
    assert_eq!(edges[&(b, a)], 3.0, "two reposts and one mention");
    assert!(!edges.contains_key(&(c, c)), "no self-edges");
    assert_eq!(edges.len(), 5);
    assert_eq!(ledger.languages(c), ["ar"]);
    let evidence = ledger.edge_evidence(b, a, all_days());
    let ids: Vec<&str> = evidence.iter().map(|post| post.post_id.as_str()).collect();
    assert_eq!(ids, ["4", "3"], "newest day first");
    assert_eq!(ledger.account_evidence(a, all_days()).len(), 2);
}

#[test]
fn ingesting_lines_again_changes_nothing() {
    let corpus = format!(
        r#"{{"platform":"x","account":"@a","at":{DAY1},"post_id":"1","mentions":["@b"]}}
           {{"platform":"x","account":"@b","at":{DAY1},"post_id":"2","repost_of":"@a"}}
           {{"platform":"x","account":"@b","at":{DAY1},"follows":["@a"]}}"#
    );
    let mut ledger = Ledger::default();
    ingest(&mut ledger, &corpus);
    let activity = ledger.window_activity(all_days());
    let edges = ledger.window_edges(all_days(), &activity, 0.5);
    // As after a crash half-way through the file: the first line again, then all of it.
    let first_line = corpus.lines().next().unwrap();
    assert_eq!(ingest(&mut ledger, first_line), [Ingested::DuplicatePost]);
    assert_eq!(
        ingest(&mut ledger, &corpus),
        [Ingested::DuplicatePost, Ingested::DuplicatePost, Ingested::OlderFollows]
    );
    assert_eq!(ledger.window_activity(all_days()), activity);
    assert_eq!(ledger.window_edges(all_days(), &activity, 0.5), edges);
    assert_eq!(ledger.post_count(), 2);
}

#[test]
fn follows_count_only_between_posters_and_a_newer_snapshot_replaces_the_older() {
    let mut ledger = Ledger::default();
    let later = DAY1 + 1000;
    ingest(
        &mut ledger,
        &format!(
            r#"{{"platform":"x","account":"@a","at":{DAY1},"post_id":"1"}}
               {{"platform":"x","account":"@b","at":{DAY1},"post_id":"2"}}
               {{"platform":"x","account":"@c","at":{DAY1},"post_id":"3"}}
               {{"platform":"x","account":"@a","at":{later},"follows":["@c","@quiet"]}}
               {{"platform":"x","account":"@a","at":{DAY1},"follows":["@b"]}}"#
        ),
    );
    let (a, c) = (account(&ledger, "@a"), account(&ledger, "@c"));
    let activity = ledger.window_activity(all_days());
    let edges = ledger.window_edges(all_days(), &activity, 0.5);
    assert_eq!(edges.len(), 1, "the older snapshot is ignored, @quiet never posted: {edges:?}");
    assert_eq!(edges[&(a, c)], 0.5);
}

#[test]
fn a_follow_of_two_handles_of_one_account_counts_once() {
    let mut ledger = Ledger::default();
    ingest(
        &mut ledger,
        &format!(
            r#"{{"platform":"x","account":"@a","at":{DAY1},"post_id":"1"}}
               {{"platform":"x","account":"@b_old","at":{DAY1},"post_id":"2"}}
               {{"platform":"x","account":"@a","at":{DAY1},"follows":["@b_old","@b_new"]}}
               {{"platform":"x","account":"@b_new","account_id":"9","at":{DAY1},"post_id":"3"}}
               {{"platform":"x","account":"@b_old","account_id":"9","at":{DAY1},"post_id":"4"}}"#
        ),
    );
    let (a, b) = (account(&ledger, "@a"), account(&ledger, "@b_new"));
    assert_eq!(account(&ledger, "@b_old"), b, "merged by the id");
    let activity = ledger.window_activity(all_days());
    let edges = ledger.window_edges(all_days(), &activity, 0.5);
    assert_eq!(edges, HashMap::from([((a, b), 0.5)]), "one follow, not two");
}

#[test]
fn purging_drops_days_and_their_seen_posts() {
    let mut ledger = Ledger::default();
    let day2 = DAY1 + DAY_MS;
    let corpus = format!(
        r#"{{"platform":"x","account":"@a","at":{DAY1},"post_id":"1"}}
           {{"platform":"x","account":"@a","at":{day2},"post_id":"2"}}"#
    );
    ingest(&mut ledger, &corpus);
    ledger.purge_before(Day::of_ms(day2));
    assert_eq!(ledger.post_count(), 1);
    assert_eq!(ledger.window_activity(all_days())[&account(&ledger, "@a")].originals, 1);
    assert_eq!(ledger.last_day(), Some(Day::of_ms(day2)));
}
