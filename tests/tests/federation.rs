//! Federation tests: real nodes, real sockets on 127.0.0.1, every wait under a timeout and on
//! a condition (peers connected, heads reached, alerts stored), never a bare sleep.

use crossmatch_node::store::AlertState;
use crossmatch_tests::{Federation, record, wait_until};

async fn alerts(fed: &Federation, i: usize) -> Vec<crossmatch_node::store::Alert> {
    fed.node(i).with_engine(|e| e.alerts(None, None).unwrap_or_default()).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_match_both_ways_and_converge() {
    let mut fed = Federation::new("five", 5);
    fed.start_all().await;
    fed.wait_meshed(4).await;
    // B holds the account first; A shares it; B is alerted. B shares too; A is alerted.
    fed.node(1).add_record(record(&["shared_target"], true), "ben".into()).await.unwrap();
    fed.node(0)
        .add_record(record(&["shared_target", "only_at_a"], true), "ana".into())
        .await
        .unwrap();
    for member in [0, 1] {
        wait_until(&format!("member {member} alerted"), || async {
            alerts(&fed, member)
                .await
                .iter()
                .any(|a| a.state == AlertState::Open && !a.counterparts.is_empty())
        })
        .await;
    }
    for member in 2..5 {
        assert!(alerts(&fed, member).await.is_empty(), "member {member} holds nothing");
    }
    let reference = fed.heads(0).await;
    assert!(reference.iter().any(|(origin, _, seq)| *origin == 0 && *seq >= 1));
    for member in 1..5 {
        wait_until(&format!("member {member} converged"), || async {
            fed.heads(member).await == fed.heads(0).await
        })
        .await;
    }
    for i in 0..5 {
        fed.stop(i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_converges_by_sync_alone() {
    let mut fed = Federation::new("late", 3);
    fed.start(0).await;
    fed.start(1).await;
    fed.wait_meshed(1).await;
    let records = (0..2000).map(|i| record(&[&format!("late_{i}")], true)).collect();
    fed.node(0).add_records(records, "importer".into()).await.unwrap();
    wait_until("member 1 holds the 2000 entries", || async {
        fed.heads(1).await.iter().any(|(origin, _, seq)| *origin == 0 && *seq >= 8)
    })
    .await;
    // Member 2 holds one of the accounts and joins after everything was published.
    fed.start(2).await;
    fed.node(2).add_record(record(&["late_1999"], false), "cat".into()).await.unwrap();
    wait_until("member 2 caught up by sync", || async { fed.heads(2).await == fed.heads(0).await })
        .await;
    wait_until("member 2 alerted by the caught-up entries", || async {
        !alerts(&fed, 2).await.is_empty()
    })
    .await;
    for i in 0..3 {
        fed.stop(i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_recovers_its_feed_and_never_reuses_a_seq() {
    let mut fed = Federation::new("wipe", 3);
    fed.start_all().await;
    fed.wait_meshed(2).await;
    for i in 0..3 {
        fed.node(0).add_record(record(&[&format!("wipe_{i}")], true), "ana".into()).await.unwrap();
        wait_until("peers hold the batch", || async {
            fed.heads(1).await.iter().any(|(o, _, seq)| *o == 0 && *seq as usize > i)
        })
        .await;
    }
    let before = fed.node(0).with_engine(|e| e.own_head()).await.unwrap();
    fed.stop(0).await;
    std::fs::remove_dir_all(fed.dir.0.join("member-0")).unwrap();
    fed.start(0).await;
    fed.wait_meshed(2).await;
    let after = fed.node(0).with_engine(|e| e.own_head()).await.unwrap();
    assert!(after >= before, "recovered {after:?}, had {before:?}");
    fed.node(0).add_record(record(&["wipe_after"], true), "ana".into()).await.unwrap();
    // The next batch extends the recovered chain (or a new generation): peers apply it.
    wait_until("peers apply the batch signed after recovery", || async {
        let own = fed.node(0).with_engine(|e| e.own_head()).await.unwrap();
        fed.heads(1).await.iter().any(|(o, g, s)| *o == 0 && (*g, *s) == own) && own > after
    })
    .await;
    let forks = fed.node(1).with_engine(|e| e.forks().map(|f| f.len()).unwrap_or(0)).await.unwrap();
    assert_eq!(forks, 0, "no seq was signed twice");
    for i in 0..3 {
        fed.stop(i).await;
    }
}
