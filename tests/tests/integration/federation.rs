//! Federation tests: real nodes, real sockets on 127.0.0.1, every wait under a timeout and on
//! a condition (peers connected, heads reached, alerts stored), never a bare sleep.

use std::time::Duration;

use crossmatch_node::local::wait_until;
use crossmatch_node::store::AlertState;
use crossmatch_node::test_support::{alerts, federation, record};
use crossmatch_protocol::FeedId;

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
    let member_0 = fed.key(0);
    let restored = fed
        .node(0)
        .unwrap()
        .with_engine(move |e| e.chain(FeedId::of(&member_0, before.0)).map(|c| c.seq).unwrap_or(0))
        .await
        .unwrap();
    assert_eq!(restored, before.1, "the wiped member restored its feed from its peers");
    // It lost data, so a peer it did not reach may hold more of that generation: it goes on in
    // a new one.
    let after = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    assert_eq!(after, (before.0 + 1, 0), "a new generation after restoring lost data");
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
async fn a_wiped_member_that_reaches_only_a_peer_behind_another_signs_no_seq_twice() {
    // Member 2 holds more of member 0's feed than member 1 does; member 0 is wiped and comes
    // back with only member 1 in reach.
    let (_dir, mut fed) = federation("wipe-behind", 3);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let member_0 = fed.key(0);
    let held = |fed: &crossmatch_node::local::LocalFederation, i: usize, (g, s): (u32, u64)| {
        let node = fed.node(i).unwrap().clone();
        async move {
            let feed = FeedId::of(&member_0, g);
            node.with_engine(move |e| e.chain(feed).map(|c| c.seq).unwrap_or(0)).await.unwrap() >= s
        }
    };
    let own_head = |fed: &crossmatch_node::local::LocalFederation| {
        let node = fed.node(0).unwrap().clone();
        async move { node.with_engine(|e| e.own_head()).await.unwrap() }
    };
    let sign = |fed: &crossmatch_node::local::LocalFederation, name: &'static str| {
        let node = fed.node(0).unwrap().clone();
        async move { node.add_record(record(&[name], true), "ana".into()).await.unwrap() }
    };
    sign(&fed, "behind_1").await;
    wait_until("member 0 signs", LIMIT, || async { own_head(&fed).await.1 >= 1 }).await.unwrap();
    let first = own_head(&fed).await;
    for i in [1, 2] {
        wait_until("both peers hold it", LIMIT, || held(&fed, i, first)).await.unwrap();
    }
    fed.stop(1).await.unwrap();
    sign(&fed, "behind_2").await;
    let second = (first.0, first.1 + 1);
    wait_until("member 2 holds the second", LIMIT, || held(&fed, 2, second)).await.unwrap();
    fed.stop(2).await.unwrap();
    fed.stop(0).await.unwrap();
    std::fs::remove_dir_all(fed.data_dir(0)).unwrap();

    // Member 0 restores what member 1 holds, and must not sign on after it: member 2 holds
    // the next seq.
    fed.start(1).await.unwrap();
    fed.start(0).await.unwrap();
    fed.wait_meshed().await.unwrap();
    assert!(held(&fed, 0, first).await, "the wiped member restored what member 1 held");
    let after = own_head(&fed).await;
    assert!(after.0 > first.0, "a new generation after restoring lost data: {after:?}");

    // Member 0 signs, then member 2 comes back: nobody sees a seq signed twice.
    sign(&fed, "behind_3").await;
    wait_until("member 0 signs after recovery", LIMIT, || async { own_head(&fed).await > after })
        .await
        .unwrap();
    let signed = own_head(&fed).await;
    wait_until("member 1 holds it", LIMIT, || held(&fed, 1, signed)).await.unwrap();
    fed.start(2).await.unwrap();
    fed.wait_meshed().await.unwrap();
    wait_until("member 2 holds it", LIMIT, || held(&fed, 2, signed)).await.unwrap();
    for i in [1, 2] {
        let forks = fed
            .node(i)
            .unwrap()
            .with_engine(|e| e.forks().map(|f| f.len()).unwrap_or(0))
            .await
            .unwrap();
        assert_eq!(forks, 0, "member {i} saw a seq of member 0 signed twice");
    }
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
