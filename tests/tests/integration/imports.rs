//! Imports across a federation (they need the import readers and the engine's import chunks
//! and undo, so this module joins `main.rs` once those are in): 26,000 accounts imported as one
//! job at a member while four others hold 1,000 of them, every match surfacing at both ends;
//! and an undo across three members, where a record edited since the import stays without
//! `force`, a token the importer's analyst still holds in another record is not retracted (its
//! alerts stay open at the others, the rest close), `force` removes the edited record, and the
//! same file then imports again.

use std::time::Duration;

use crossmatch_node::daemon::{ImportRequest, ImportView, JobState, Node};
use crossmatch_node::import::{Defaults, Format};
use crossmatch_node::local::wait_until;
use crossmatch_node::store::{AlertState, Record, keys};
use crossmatch_node::test_support::federation::{alerts, federation};
use crossmatch_node::test_support::{account, record};
use crossmatch_protocol::{Handling, Status};

const LIMIT: Duration = Duration::from_secs(240);

fn request(source: &str) -> ImportRequest {
    ImportRequest {
        format: Some(Format::Csv),
        source: Some(source.into()),
        defaults: Defaults {
            category: Some("terrorism/propaganda".into()),
            handling: Some(Handling::H1),
            evaluation: Some("B2".parse().unwrap()),
            expires_in_days: Some(30),
            share: true,
        },
        ..ImportRequest::default()
    }
}

/// One x handle a row, each its own record.
fn csv(handles: &[String]) -> Vec<u8> {
    let mut text = String::from("kind;platform;value\n");
    for handle in handles {
        text += &format!("account;x;{handle}\n");
    }
    text.into_bytes()
}

/// Imports `body` at `node` and waits for the job's end.
async fn import(node: &Node, source: &str, body: Vec<u8>) -> ImportView {
    let mut spool = node.import_spool().await.unwrap();
    spool.write(&body).await.unwrap();
    let id = node.import_upload(spool, request(source), "importer".into()).await.unwrap();
    wait_job(node, id).await
}

async fn wait_job(node: &Node, id: u64) -> ImportView {
    wait_until("the import job ends", LIMIT, || async {
        let view = node.import(id).await.unwrap().unwrap();
        !matches!(
            view.job.state,
            JobState::Queued | JobState::Planning | JobState::Applying | JobState::Undoing
        )
    })
    .await
    .unwrap();
    node.import(id).await.unwrap().unwrap()
}

async fn records(node: &Node) -> Vec<Record> {
    node.with_engine(|engine| engine.store().scan::<Record>(&keys::all_records()))
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_26000_accounts_surfaces_every_match_at_the_other_members() {
    // Every wait inside is bounded; the whole is bounded too, so a hang fails.
    tokio::time::timeout(Duration::from_secs(900), async {
        let (_dir, mut fed) = federation("import-bulk", 5);
        fed.wait_limit = Duration::from_secs(240);
        fed.start_all().await.unwrap();
        fed.wait_meshed().await.unwrap();
        for member in 1..5 {
            let records = (0..250)
                .map(|i| record(&[&format!("bulk_{}", (member - 1) * 250 + i)], true))
                .collect();
            fed.node(member).unwrap().add_records(records, "analyst".into()).await.unwrap();
        }
        let handles: Vec<String> = (0..26_000).map(|i| format!("bulk_{i}")).collect();
        let view = import(fed.node(0).unwrap(), "leak2015", csv(&handles)).await;
        assert_eq!((view.job.state, view.job.done.added), (JobState::Done, 26_000), "{view:?}");
        wait_until("member 0 raised 1000 alerts", fed.wait_limit, || async {
            alerts(&fed, 0).await.len() == 1000
        })
        .await
        .unwrap();
        for member in 1..5 {
            wait_until(&format!("member {member} raised 250 alerts"), fed.wait_limit, || async {
                alerts(&fed, member).await.len() == 250
            })
            .await
            .unwrap();
        }
        fed.wait_converged(0).await.unwrap();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the bulk import test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_across_three_members_keeps_edited_records_and_held_tokens() {
    tokio::time::timeout(Duration::from_secs(600), async {
        let (_dir, mut fed) = federation("import-undo", 3);
        fed.wait_limit = LIMIT;
        fed.start_all().await.unwrap();
        fed.wait_meshed().await.unwrap();
        let handles: Vec<String> = (1..=6).map(|i| format!("undo_{i}")).collect();
        let (a, b, c) = (
            fed.node(0).unwrap().clone(),
            fed.node(1).unwrap().clone(),
            fed.node(2).unwrap().clone(),
        );
        // B holds undo_1 and undo_2, C undo_3 and undo_4.
        b.add_records(vec![record(&["undo_1"], true), record(&["undo_2"], true)], "bo".into())
            .await
            .unwrap();
        c.add_records(vec![record(&["undo_3"], true), record(&["undo_4"], true)], "cy".into())
            .await
            .unwrap();
        let file = csv(&handles);
        let view = import(&a, "undo", file.clone()).await;
        assert_eq!((view.job.state, view.job.done.added), (JobState::Done, 6), "{view:?}");
        let open = |alerts: Vec<crossmatch_node::store::Alert>| {
            alerts.iter().filter(|alert| alert.state != AlertState::Closed).count()
        };
        for (member, expected) in [(0, 4), (1, 2), (2, 2)] {
            wait_until(&format!("member {member} raised its alerts"), LIMIT, || async {
                open(alerts(&fed, member).await) == expected
            })
            .await
            .unwrap();
        }
        // A's analyst edits undo_5's imported record and holds undo_2 in a record of its own.
        let imported = records(&a).await;
        let form = |handle: &str| account(handle).as_str().to_owned();
        let of = |handle: &str| {
            imported
                .iter()
                .find(|r| r.identifiers.iter().any(|i| i.canonical == form(handle)))
                .unwrap()
                .id
        };
        a.set_status(of("undo_5"), Status::Referred, "ana".into()).await.unwrap();
        a.add_record(record(&["undo_2"], true), "ana".into()).await.unwrap();
        let undo = a.undo_import(view.job.id, false, "ana".into()).await.unwrap();
        assert_eq!(undo.job.undo.map(|u| (u.planned_remove, u.planned_keep)), Some((5, 1)));
        let view = wait_job(&a, view.job.id).await;
        assert_eq!(view.job.state, JobState::Undone);
        let left: Vec<u64> = records(&a).await.iter().map(|r| r.id).collect();
        assert!(left.contains(&of("undo_5")), "the edited record stays without force");
        assert!(!left.contains(&of("undo_1")) && !left.contains(&of("undo_2")));
        // undo_2 is still held at A: B's alert on it stays open; undo_1's closes; C's both close.
        let token_of = |node: &Node, handle: &'static str| {
            let node = node.clone();
            async move { node.with_engine(move |e| e.token(&account(handle))).await.unwrap() }
        };
        let (t1, t2) = (token_of(&b, "undo_1").await, token_of(&b, "undo_2").await);
        wait_until("B's alert on undo_1 closes", LIMIT, || async {
            alerts(&fed, 1).await.iter().any(|al| al.token == t1 && al.state == AlertState::Closed)
        })
        .await
        .unwrap();
        assert!(
            alerts(&fed, 1).await.iter().any(|al| al.token == t2 && al.state != AlertState::Closed)
        );
        wait_until("C's alerts close", LIMIT, || async { open(alerts(&fed, 2).await) == 0 })
            .await
            .unwrap();
        // With force the edited record goes too; then the same file imports again.
        a.undo_import(view.job.id, true, "ana".into()).await.unwrap();
        let view = wait_job(&a, view.job.id).await;
        assert_eq!(view.job.state, JobState::Undone);
        assert!(!records(&a).await.iter().any(|r| r.id == of("undo_5")));
        let again = import(&a, "undo", file).await;
        assert_eq!((again.job.state, again.job.done.added), (JobState::Done, 6), "{again:?}");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}
