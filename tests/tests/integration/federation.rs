//! Federation tests: real nodes, real sockets on 127.0.0.1, every wait under a timeout and on
//! a condition (peers connected, heads reached, alerts stored), never a bare sleep.

use std::time::Duration;

use crossmatch_node::local::wait_until;
use crossmatch_node::store::AlertState;
use crossmatch_node::test_support::{alerts, federation, record};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_match_both_ways_and_converge() {
    let (_dir, mut fed) = federation("five", 5);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    // B holds the account first; A shares it; B is alerted. B shares too; A is alerted.
    fed.node(1).unwrap().add_record(record(&["shared_target"], true), "ben".into()).await.unwrap();
    fed.node(0)
        .unwrap()
        .add_record(record(&["shared_target", "only_at_a"], true), "ana".into())
        .await
        .unwrap();
    for member in [0, 1] {
        wait_until(&format!("member {member} alerted"), LIMIT, || async {
            alerts(&fed, member)
                .await
                .iter()
                .any(|a| a.state == AlertState::Open && !a.counterparts.is_empty())
        })
        .await
        .unwrap();
    }
    fed.wait_converged(0).await.unwrap();
    for member in 2..5 {
        assert!(alerts(&fed, member).await.is_empty(), "member {member} holds nothing");
    }
    let heads = fed.heads(3).await.unwrap();
    assert!(heads.iter().any(|(origin, _, seq)| *origin == 0 && *seq >= 1));
    assert!(heads.iter().any(|(origin, _, seq)| *origin == 1 && *seq >= 1));
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_converges_by_sync_alone() {
    let (_dir, mut fed) = federation("late", 3);
    fed.start(0).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    let records = (0..2000).map(|i| record(&[&format!("late_{i}")], true)).collect();
    fed.node(0).unwrap().add_records(records, "importer".into()).await.unwrap();
    wait_until("member 1 holds the 2000 entries", LIMIT, || async {
        fed.heads(1).await.unwrap().iter().any(|(origin, _, seq)| *origin == 0 && *seq >= 8)
    })
    .await
    .unwrap();
    // Member 2 holds one of the accounts and joins after everything was published.
    fed.start(2).await.unwrap();
    fed.node(2).unwrap().add_record(record(&["late_1999"], false), "cat".into()).await.unwrap();
    fed.wait_converged(0).await.unwrap();
    wait_until("member 2 alerted by the caught-up entries", LIMIT, || async {
        !alerts(&fed, 2).await.is_empty()
    })
    .await
    .unwrap();
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_recovers_its_feed_and_never_reuses_a_seq() {
    let (_dir, mut fed) = federation("wipe", 3);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    for i in 0..3u64 {
        fed.node(0)
            .unwrap()
            .add_record(record(&[&format!("wipe_{i}")], true), "ana".into())
            .await
            .unwrap();
        wait_until("peers hold the batch", LIMIT, || async {
            fed.heads(1).await.unwrap().iter().any(|(o, _, seq)| *o == 0 && *seq > i)
        })
        .await
        .unwrap();
    }
    let before = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    fed.stop(0).await.unwrap();
    std::fs::remove_dir_all(fed.data_dir(0)).unwrap();
    fed.start(0).await.unwrap();
    fed.wait_meshed().await.unwrap();
    let after = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    assert_eq!(after, before, "the wiped member restored its feed from its peers");
    fed.node(0).unwrap().add_record(record(&["wipe_after"], true), "ana".into()).await.unwrap();
    wait_until("peers apply the batch signed after recovery", LIMIT, || async {
        let own = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
        own > after
            && fed.heads(1).await.unwrap().iter().any(|(o, g, s)| *o == 0 && (*g, *s) == own)
    })
    .await
    .unwrap();
    let forks = fed
        .node(1)
        .unwrap()
        .with_engine(|e| e.forks().map(|f| f.len()).unwrap_or(0))
        .await
        .unwrap();
    assert_eq!(forks, 0, "no seq was signed twice");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_alone_at_start_begins_a_new_generation() {
    let (_dir, mut fed) = federation("alone", 2);
    fed.start(0).await.unwrap();
    fed.node(0).unwrap().add_record(record(&["alone_1"], true), "ana".into()).await.unwrap();
    fed.node(0).unwrap().wait_ready().await.unwrap();
    wait_until("the first batch is signed", LIMIT, || async {
        fed.node(0).unwrap().with_engine(|e| e.own_head().1).await.unwrap() >= 1
    })
    .await
    .unwrap();
    let (generation, _) = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    assert_eq!(generation, 2, "no peer could confirm the feed, so a new generation began");
    fed.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_26000_accounts_with_1000_held_elsewhere_all_match_and_converge() {
    let (_dir, mut fed) = federation("bulk", 5);
    // Unoptimised test builds on a shared 2-core machine: allow this much work more time.
    fed.wait_limit = Duration::from_secs(240);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    // Four members each share 250 of the accounts first.
    for member in 1..5 {
        let records = (0..250)
            .map(|i| record(&[&format!("bulk_{}", (member - 1) * 250 + i)], true))
            .collect();
        fed.node(member).unwrap().add_records(records, "analyst".into()).await.unwrap();
    }
    let records = (0..26_000).map(|i| record(&[&format!("bulk_{i}")], true)).collect();
    fed.node(0).unwrap().add_records(records, "importer".into()).await.unwrap();
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
    let heads = fed.heads(4).await.unwrap();
    let own = heads.iter().find(|(origin, _, _)| *origin == 0).map(|(_, _, seq)| *seq).unwrap();
    assert!(own >= 26_000 / 256, "26,000 entries in {own} batches");
    fed.stop_all().await.unwrap();
}
