//! A roster member that floods valid batches past its daily quota, on real sockets: a raw
//! mesh signing with member 3's key sends member 0 a chain of well-formed, correctly signed
//! batches three times its roster's quota. Honest members store what fits the quota and ignore
//! the rest: never stored, never forwarded (members 1 and 2, reached only through member 0 (the
//! rogue's only peer), never see a batch over it once member 0 has refused every one);
//! meanwhile they keep gossiping, matching and answering their API. The honest nodes run on a
//! clock held still at the test's start, so that the quota's UTC day never turns during it.
//! (The fault campaign's `floods` scenario cannot host such a signer: a real node never goes
//! past its quota; docs/TESTING.md.)

use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::{self, PeerKey, SyncRequest, SyncResponse};
use crossmatch_node::test_support::{ManualClock, add_entry, federation, record};
use crossmatch_protocol::{
    BatchHash, BatchId, BatchPosition, FeedId, PublicKey, VerifiedBatch, sign_batch,
};

use super::api_client::{MONITOR, now_ms, request_typed, serve};
use super::hostile::{connect_raw, raw_member};

const LIMIT: Duration = Duration::from_secs(60);
/// The roster's daily quota of entries per origin.
const QUOTA: u64 = 60;
/// Entries in each of the rogue's batches.
const PER_BATCH: u8 = 10;
/// The rogue's batches: three times what the quota takes.
const BATCHES: u8 = 18;

/// The rogue's chain: `BATCHES` batches of `PER_BATCH` distinct adds, each linked to the one
/// before, all signed at `now` (the honest nodes' clock).
fn rogue_chain(
    fed: &LocalFederation,
    key: &crossmatch_protocol::SigningKey,
    now: u64,
) -> Vec<VerifiedBatch> {
    let expires = now + DAY_MS;
    let mut prev = BatchHash::ZERO;
    let mut chain = Vec::new();
    for seq in 1..=BATCHES {
        let position = BatchPosition {
            generation: 1,
            seq: u64::from(seq),
            prev,
            epoch: 1,
            created_at_ms: now,
        };
        let entries: Vec<_> =
            (0..PER_BATCH).map(|n| add_entry((seq - 1) * PER_BATCH + n + 1, expires)).collect();
        let batch = sign_batch(key, &fed.federation_id(), position, &entries).unwrap();
        prev = batch.hash();
        chain.push(batch);
    }
    chain
}

/// Member `i`'s head of the rogue's feed.
async fn rogue_seq(fed: &LocalFederation, i: usize, rogue: PublicKey) -> u64 {
    let feed = FeedId::of(&rogue, 1);
    fed.node(i).unwrap().with_engine(move |e| e.chain(feed).map_or(0, |c| c.seq)).await.unwrap()
}

/// Whether member `i` stores the rogue's batch at `seq`.
async fn stores_rogue_batch(fed: &LocalFederation, i: usize, rogue: PublicKey, seq: u64) -> bool {
    let id = BatchId { feed: FeedId::of(&rogue, 1), seq };
    fed.node(i).unwrap().with_engine(move |e| e.batch(id).unwrap().is_some()).await.unwrap()
}

/// Batches member `i` ignored over quota, on their claim or once verified.
async fn over_quota(fed: &LocalFederation, i: usize) -> u64 {
    let counters = fed.node(i).unwrap().with_engine(|e| e.counters()).await.unwrap();
    counters.quota_refused + counters.refused_unverified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_past_its_quota_is_ignored_past_it_while_honest_members_keep_serving() {
    let (_dir, mut fed) = federation("quota-flood", 4);
    let now = now_ms();
    let everyone = [0, 1, 2, 3];
    let mut body = fed.roster_body(&everyone, 1, 3, now + 365 * DAY_MS);
    body.quota_entries_per_day = QUOTA;
    let roster = fed.sign_roster(body, &everyone);
    let clock = Arc::new(ManualClock::new(now));
    for i in 0..3 {
        fed.set_signed_roster(i, Some(roster.clone()));
        fed.set_clock(i, clock.clone());
    }
    for i in 0..3 {
        fed.start(i).await.unwrap();
    }
    fed.wait_meshed().await.unwrap();
    let rogue_key = fed.members()[3].key.clone();
    let rogue = rogue_key.public_key();
    let keys = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let (raw, mut events, stop) = raw_member(&fed, &rogue_key, keys).await;
    // It answers every sync request with nothing: what it signed goes out by gossip only.
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let mesh::Event::SyncRequest { request, reply, .. } = event {
                let empty = match request {
                    SyncRequest::Heads => SyncResponse::Heads(vec![]),
                    _ => SyncResponse::Batches(vec![]),
                };
                let _ = reply.send(empty);
            }
        }
    });
    connect_raw(&fed, 0, &raw, &rogue_key).await;
    let chain = rogue_chain(&fed, &rogue_key, now);
    let fitting = usize::try_from(QUOTA / u64::from(PER_BATCH)).unwrap();

    // What fits the quota goes out one batch at a time, each applied before the next.
    let first = chain[0].to_wire();
    wait_until("the rogue's first batch is published", LIMIT, || async {
        raw.publish(first.clone()).await.is_ok()
    })
    .await
    .unwrap();
    for (at, batch) in chain.iter().enumerate().take(fitting) {
        if at > 0 {
            raw.publish(batch.to_wire()).await.unwrap();
        }
        let want = at as u64 + 1;
        wait_until(&format!("member 0 applies the rogue's batch {want}"), LIMIT, || async {
            rogue_seq(&fed, 0, rogue).await == want
        })
        .await
        .unwrap();
    }
    // The rest, twice the quota, at once; an honest member publishes in the middle of it.
    let (half, rest) = chain[fitting..].split_at((chain.len() - fitting) / 2);
    for batch in half {
        let _ = raw.publish(batch.to_wire()).await;
    }
    let honest = fed.node(1).unwrap().add_record(record(&["during_flood"], true), "ana".into());
    honest.await.unwrap();
    let watch = fed.node(2).unwrap().add_record(record(&["during_flood"], false), "ben".into());
    let watched = watch.await.unwrap();
    for batch in rest {
        let _ = raw.publish(batch.to_wire()).await;
    }
    let excess = u64::from(BATCHES) - fitting as u64;
    wait_until(&format!("member 0 ignores all {excess} batches over the quota"), LIMIT, || async {
        over_quota(&fed, 0).await >= excess
    })
    .await
    .unwrap();
    wait_until("member 2 alerts on member 1's account, published during the flood", LIMIT, || {
        let node = fed.node(2).unwrap().clone();
        async move {
            let alerts = node.with_engine(|e| e.alerts(None, None).unwrap()).await.unwrap();
            alerts.iter().any(|alert| alert.records.contains(&watched))
        }
    })
    .await
    .unwrap();
    // Members 1 and 2 get what member 0 stored, by gossip or by sync, and nothing more.
    for i in 1..3 {
        wait_until(
            &format!("member {i} holds the rogue's feed up to its quota"),
            LIMIT,
            || async { rogue_seq(&fed, i, rogue).await == fitting as u64 },
        )
        .await
        .unwrap();
    }
    // Member 0 has refused every batch over the quota: none is stored or forwarded, and the
    // rogue reaches the others only through it.
    let only_peer = vec![PeerKey(fed.key(0).to_bytes())];
    assert_eq!(raw.connected_peers().await.unwrap(), only_peer, "the rogue's peers");
    for i in 0..3 {
        assert_eq!(
            rogue_seq(&fed, i, rogue).await,
            fitting as u64,
            "member {i} went past the quota"
        );
        let over = fitting as u64 + 1;
        assert!(!stores_rogue_batch(&fed, i, rogue, over).await, "member {i} stores batch {over}");
    }
    for i in 1..3 {
        assert_eq!(
            over_quota(&fed, i).await,
            0,
            "member 0 forwarded a batch over the quota to {i}"
        );
    }
    // Member 0 answers its API within its limits, connected to both honest members.
    let port = serve(fed.node(0).unwrap()).await;
    let status = request_typed(port, "GET", "/v1/status", MONITOR, "application/json", None).await;
    assert_eq!(status.status, 200, "{status:?}");
    let peers = request_typed(port, "GET", "/v1/peers", MONITOR, "application/json", None).await;
    assert_eq!(peers.status, 200, "{peers:?}");
    let connected: Vec<String> = peers.json()["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|peer| peer["connected"] == true)
        .map(|peer| peer["member"].as_str().unwrap().to_owned())
        .collect();
    let honest: Vec<String> = fed.members()[1..3].iter().map(|m| m.id.clone()).collect();
    assert!(honest.iter().all(|id| connected.contains(id)), "{connected:?} lacks {honest:?}");
    let _ = stop.send(true);
    fed.stop_all().await.unwrap();
}
