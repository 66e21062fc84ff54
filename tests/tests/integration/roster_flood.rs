//! A member that floods roster announcements (docs/PROTOCOL.md §3.6): each announcement claims
//! a newer version, with another hash each time, while the member's answer to `roster_head`
//! is the node's own version (so its pulls cost it nothing, and only the announcements are
//! judged). The node is held to its bounds: an announcement draws on the sender's budget of
//! ignorable gossip, free up to its burst and a penalty past it, so the flooder is banned;
//! announcements queue at most one pull of their sender (duplicates dropped, one pull per peer
//! at a time), and an announcement alone makes the node verify nothing. Counted (the
//! announcements sent, the pulls the flooder is asked for, the rosters the node verified), not
//! timed: the flooder leaves every pull after the first unanswered, so the number of pulls does
//! not depend on how fast the machine runs them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::{Event, GossipKind, PeerKey, SyncRequest, SyncResponse};
use crossmatch_node::test_support::federation;
use crossmatch_protocol::encode_roster_announcement;

use super::api_client::now_ms;
use crossmatch_node::clock::DAY_MS;

const LIMIT: Duration = Duration::from_secs(60);
/// Announcements the flooder sends: several times the burst of ignorable gossip a peer may
/// send (600).
const ANNOUNCEMENTS: u64 = 3_000;
/// The burst of ignorable gossip a peer may send (`daemon::gossip::IGNORABLE_BURST`).
const IGNORABLE_BURST: u64 = 600;
/// Announcements sent before the check that they cost nothing: within the burst.
const WITHIN_BURST: u64 = 400;
/// Most pulls the flood may start, whatever the machine's speed: the flooder never answers
/// `roster_head` after the pull at connect, so a pull of it ends only by the request timeout
/// (30 s) or the ban; one runs per peer at a time and at most four more wait for it
/// (`daemon::sync::MAX_WAITING_JOBS_PER_PEER`), so: the pull at connect, the one left
/// unanswered, and the waiting ones.
const MAX_PULLS: u64 = 2 + 4;

/// Whether member `i` has banned `peer`.
async fn banned(fed: &LocalFederation, i: usize, peer: PeerKey) -> bool {
    let stats = fed.node(i).unwrap().mesh().stats().await.unwrap();
    stats.bans.iter().any(|ban| ban.peer == peer)
}

/// Whether member `i` has banned `peer` or scored it below zero (a penalty).
async fn penalised(fed: &LocalFederation, i: usize, peer: PeerKey) -> bool {
    let stats = fed.node(i).unwrap().mesh().stats().await.unwrap();
    banned(fed, i, peer).await
        || stats.peer_scores.iter().any(|(scored, score)| *scored == peer && *score < 0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_roster_announcements_is_bounded_by_the_gossip_budget_and_pulls() {
    // Member 0 runs version 1 of {0, 1}; member 1 is a raw mesh that floods.
    let (_dir, mut fed) = federation("roster-flood", 2);
    let expires = now_ms() + 365 * DAY_MS;
    let v1 = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, expires), &[0, 1]);
    fed.set_signed_roster(0, Some(v1.clone()));
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap().clone();
    let verified_at_start = node.roster_verifications();

    let keys: Vec<[u8; 32]> = fed.members().iter().map(|m| m.key.public_key().to_bytes()).collect();
    let key = fed.members()[1].key.clone();
    let (client, mut events, stop) = crate::hostile::raw_member(&fed, &key, keys).await;
    let (pulls, served) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    {
        let (pulls, served) = (pulls.clone(), served.clone());
        let (version, hash) = (1, v1.hash());
        tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Some(event) = events.recv().await {
                let Event::SyncRequest { request, reply, .. } = event else { continue };
                let answer = match request {
                    SyncRequest::RosterHead => {
                        // Every pull begins by asking it. The pull at connect is answered the
                        // truth (the node's own version); later ones are never answered (the
                        // reply is held, not dropped), so no pull ends quickly.
                        if pulls.fetch_add(1, Ordering::SeqCst) >= 1 {
                            unanswered.push(reply);
                            continue;
                        }
                        SyncResponse::RosterHead { version, hash }
                    }
                    SyncRequest::Rosters { .. } => {
                        served.fetch_add(1, Ordering::SeqCst);
                        SyncResponse::Rosters(vec![])
                    }
                    SyncRequest::Heads => SyncResponse::Heads(vec![]),
                    SyncRequest::Forks => SyncResponse::Forks(vec![]),
                    _ => SyncResponse::Refused("unavailable".into()),
                };
                let _ = reply.send(answer);
            }
        });
    }
    crate::hostile::connect_raw(&fed, 0, &client, &key).await;
    wait_until("the pull at connect", LIMIT, || async { pulls.load(Ordering::SeqCst) >= 1 })
        .await
        .unwrap();

    let announcer = key.public_key().to_bytes();
    let flooder = PeerKey(announcer);
    let announce = |i: u64| {
        let hash = *blake3::hash(&i.to_be_bytes()).as_bytes();
        encode_roster_announcement(&announcer, 1_000 + i, &hash)
    };
    // Within the burst: free.
    for i in 0..WITHIN_BURST {
        client.publish_on(GossipKind::Roster, announce(i)).await.unwrap();
    }
    // They are handled (an announcement of a newer version queues a pull of its sender).
    wait_until("announcements within the burst handled", LIMIT, || async {
        pulls.load(Ordering::SeqCst) >= 2
    })
    .await
    .unwrap();
    assert!(!penalised(&fed, 0, flooder).await, "penalised within its budget");
    // Past the burst: a penalty each, until the node drops the flooder (publishing fails).
    let mut sent = WITHIN_BURST;
    for i in WITHIN_BURST..ANNOUNCEMENTS {
        if client.publish_on(GossipKind::Roster, announce(i)).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > IGNORABLE_BURST, "the flood went past the burst: {sent} announcements");
    wait_until("the flooder is banned", LIMIT, || async { banned(&fed, 0, flooder).await })
        .await
        .unwrap();
    // Whatever was queued before the ban drains; the counts then stay put.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (pulled, verified) =
        (pulls.load(Ordering::SeqCst), node.roster_verifications() - verified_at_start);
    eprintln!("roster flood: {sent} announcements, {pulled} pulls, {verified} verifications");
    assert!(pulled <= MAX_PULLS, "{pulled} pulls for {sent} announcements");
    assert_eq!(served.load(Ordering::SeqCst), 0, "no roster asked of a peer on this version");
    assert_eq!(verified, 0, "an announcement alone makes the node verify nothing");
    assert_eq!(node.roster_identity(), (1, v1.hash()), "nothing adopted");
    assert!(node.roster_alarms().is_empty());
    let _ = stop.send(true);
    drop(node);
    fed.stop_all().await.unwrap();
}
