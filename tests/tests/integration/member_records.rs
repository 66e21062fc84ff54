//! Members' own records travel by the mesh (docs/PROTOCOL.md §3.7, §4.5): a member restarted
//! with new announced details signs a new record itself, and every other member takes it with
//! no admin posting anything; a member that was offline catches up by sync; a forged record
//! costs the peer that gossiped it; a replayed older record changes nothing; a member flooding
//! new records of its own is held to its pace, and the flood is charged to the sender.

use std::time::Duration;

use crossmatch_node::clock::{Clock, DAY_MS, SystemClock};
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::mesh::{GossipKind, PeerKey};
use crossmatch_node::test_support::federation;
use crossmatch_protocol::{MemberRecord, SignedMemberRecord, SigningKey};

const LIMIT: Duration = Duration::from_secs(90);
/// New records of one member a node takes at once (`daemon/roster/records/pace.rs`).
const RECORD_BURST: u64 = 3;
/// New seqs the flooding member gossips.
const FLOOD: u64 = 50;

/// Member `member`'s record as member `i` holds it: (seq, addresses, contact).
fn record_at(fed: &LocalFederation, i: usize, member: &str) -> Option<(u64, Vec<String>, String)> {
    let view = fed.node(i).ok()?.roster_view()?;
    let held = view.members.into_iter().find(|m| m.id == member)?;
    Some((held.record_seq?, held.record_addresses, held.record_contact?))
}

/// Waits until member `i` holds `expected` as `member`'s record.
async fn wait_record(
    fed: &LocalFederation,
    i: usize,
    member: &str,
    expected: &(u64, Vec<String>, String),
) {
    let what = format!("member {i} holds {member}'s record seq {}", expected.0);
    wait_until(&what, LIMIT, || async { record_at(fed, i, member).as_ref() == Some(expected) })
        .await
        .unwrap();
}

/// Member `i`'s gossipsub score of member `j`, if connected.
async fn score(fed: &LocalFederation, i: usize, j: usize) -> Option<f64> {
    let stats = fed.node(i).ok()?.mesh().stats().await.ok()?;
    let key = PeerKey(fed.key(j).to_bytes());
    stats.peer_scores.into_iter().find(|(peer, _)| *peer == key).map(|(_, score)| score)
}

/// A record of `member` signed by `key` (the member's own, or a forger's).
fn signed(
    fed: &LocalFederation,
    member: &str,
    seq: u64,
    addresses: &[&str],
    contact: &str,
    key: &SigningKey,
) -> SignedMemberRecord {
    let record = MemberRecord {
        federation_id: fed.federation_id(),
        member: member.to_owned(),
        seq,
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        contact: contact.to_owned(),
    };
    record.sign(key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_changes_its_details_alone_and_every_member_takes_them() {
    let (_dir, mut fed) = federation("member-records", 3);
    let expires = SystemClock.now_ms() + 365 * DAY_MS;
    let roster = fed.sign_roster(fed.roster_body(&[0, 1, 2], 1, 2, expires), &[0, 1, 2]);
    for i in 0..3 {
        fed.set_signed_roster(i, Some(roster.clone()));
    }
    // M1 announces its details from its config; nobody's roster file carries a record of it.
    let first = (1, vec!["/ip4/127.0.0.1/tcp/9".to_owned()], "desk one".to_owned());
    fed.set_announce(1, first.1.clone(), &first.2);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    assert_eq!(record_at(&fed, 1, "M1"), Some(first.clone()), "signed at start");
    for i in [0, 2] {
        wait_record(&fed, i, "M1", &first).await;
    }

    // A record of M1 signed by M2's key, gossiped by M2 (which runs the same roster): refused
    // by M0, and it costs M2 (a Reject lowers its score).
    wait_until("M0 scores M2", LIMIT, || async { score(&fed, 0, 2).await.is_some() })
        .await
        .unwrap();
    // M0 knows M2 runs its roster (what every pull's `roster_head` tells it).
    let identity = fed.node(2).unwrap().roster_identity();
    fed.node(0).unwrap().note_peer_roster(PeerKey(fed.key(2).to_bytes()), identity);
    let before = score(&fed, 0, 2).await.unwrap();
    let forger = fed.members()[2].key.clone();
    let forged = signed(&fed, "M1", 7, &["/ip4/127.0.0.1/tcp/10"], "forged desk", &forger);
    let published = fed.node(2).unwrap().mesh().publish_on(GossipKind::Record, forged.to_wire());
    published.await.unwrap();
    wait_until("M0 lowers M2's score for the forged record", LIMIT, || async {
        score(&fed, 0, 2).await.is_some_and(|after| after < before - 5.0)
    })
    .await
    .unwrap();
    for i in [0, 1] {
        assert_eq!(record_at(&fed, i, "M1"), Some(first.clone()), "member {i} kept M1's own");
    }

    // M2 goes offline; M1 restarts with new details and signs seq 2 itself; M0 takes it live
    // (contacts and addresses), with no admin posting anything.
    fed.stop(2).await.unwrap();
    let second = (
        2,
        vec!["/ip4/127.0.0.1/tcp/11".to_owned(), "/dns4/one.example/tcp/7400".to_owned()],
        "desk one, new number".to_owned(),
    );
    fed.set_announce(1, second.1.clone(), &second.2);
    fed.stop(1).await.unwrap();
    fed.start(1).await.unwrap();
    wait_record(&fed, 0, "M1", &second).await;
    let contact = fed.node(0).unwrap().contacts().into_iter().find(|c| c.member_id == "M1");
    assert_eq!(contact.map(|c| c.contact), Some(second.2.clone()), "M0's contacts are live");

    // Gossip keeps no history beyond a few heartbeats: M2, started well after the change,
    // can only take the record by sync.
    tokio::time::sleep(Duration::from_secs(6)).await;
    fed.start(2).await.unwrap();
    wait_record(&fed, 2, "M1", &second).await;

    // Restarted with the same details, M1 signs nothing new.
    fed.stop(1).await.unwrap();
    fed.start(1).await.unwrap();
    fed.wait_meshed().await.unwrap();
    assert_eq!(record_at(&fed, 1, "M1"), Some(second.clone()), "no new seq for the same details");

    // A replay of M1's first record (its own signature, an older seq), gossiped by M2 and
    // posted at M0, changes nothing; gossiped, it draws one unit of M2's budget of ignorable
    // gossip, far from a penalty.
    let old = signed(&fed, "M1", 1, &["/ip4/127.0.0.1/tcp/9"], "desk one", &fed.members()[1].key);
    assert!(fed.node(0).unwrap().adopt_member_record(old.clone()).await.is_err());
    wait_until("M0 scores M2 again", LIMIT, || async { score(&fed, 0, 2).await.is_some() })
        .await
        .unwrap();
    let before = score(&fed, 0, 2).await.unwrap();
    let _ = fed.node(2).unwrap().mesh().publish_on(GossipKind::Record, old.to_wire()).await;
    // A record M0 takes afterwards proves the replay was handled before it (one sender, one
    // topic, in order): M2 gossips M2's own newer record.
    let own = signed(&fed, "M2", 1, &["/ip4/127.0.0.1/tcp/12"], "desk two", &forger);
    fed.node(2).unwrap().mesh().publish_on(GossipKind::Record, own.to_wire()).await.unwrap();
    let expected = (1, vec!["/ip4/127.0.0.1/tcp/12".to_owned()], "desk two".to_owned());
    wait_record(&fed, 0, "M2", &expected).await;
    for i in [0, 2] {
        assert_eq!(record_at(&fed, i, "M1"), Some(second.clone()), "member {i} after the replay");
    }
    let after = score(&fed, 0, 2).await.unwrap();
    assert!(after > before - 5.0, "the replay cost M2 no penalty: {before} then {after}");
    fed.stop_all().await.unwrap();
}

/// A member that gossips 50 new records of its own (each validly signed, each a new seq) has at
/// most the burst of them taken at a peer; the rest are ignored there (not stored, not
/// forwarded) and each is drawn on the sender's budget of ignorable gossip. Counted, not timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_new_records_of_its_own_is_held_to_its_pace_and_charged() {
    let (_dir, mut fed) = federation("record-flood", 2);
    let expires = SystemClock.now_ms() + 365 * DAY_MS;
    let roster = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, expires), &[0, 1]);
    for i in 0..2 {
        fed.set_signed_roster(i, Some(roster.clone()));
    }
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    wait_until("M0 scores M1", LIMIT, || async { score(&fed, 0, 1).await.is_some() })
        .await
        .unwrap();
    let node = fed.node(0).unwrap().clone();
    let flooder = fed.node(1).unwrap().clone();
    let dropped = || async { node.mesh().stats().await.map_or(0, |s| s.gossip_dropped_busy) };
    let before = (node.member_record_counts(), dropped().await);
    let key = fed.members()[1].key.clone();
    for seq in 1..=FLOOD {
        let record =
            signed(&fed, "M1", seq, &["/ip4/127.0.0.1/tcp/9"], &format!("desk {seq}"), &key);
        let what = format!("record seq {seq} gossiped");
        wait_until(&what, LIMIT, || async {
            flooder.mesh().publish_on(GossipKind::Record, record.to_wire()).await.is_ok()
        })
        .await
        .unwrap();
    }
    // Every record of the flood reached M0's handler, or was dropped by its busy mesh.
    wait_until("M0 handled the flood", LIMIT, || async {
        let handled = node.member_record_counts().gossiped - before.0.gossiped;
        handled + dropped().await - before.1 >= FLOOD
    })
    .await
    .unwrap();
    let counts = node.member_record_counts();
    let taken = counts.taken_by_gossip + counts.taken_by_sync
        - before.0.taken_by_gossip
        - before.0.taken_by_sync;
    let paced = counts.paced - before.0.paced;
    let not_judged = counts.not_judged - before.0.not_judged;
    eprintln!("record flood: {taken} taken, {paced} past the pace, {not_judged} not judged");
    assert!((1..=RECORD_BURST).contains(&taken), "{taken} of the flood taken");
    // The newest record taken is held. Records before it that were not taken were dropped by
    // the busy mesh or came after a newer one (old, not judged on the pace): neither is counted.
    let uncounted = FLOOD.saturating_sub(taken + paced + not_judged);
    let held = record_at(&fed, 0, "M1").map(|(seq, _, _)| seq);
    assert!(
        held.is_some_and(|seq| seq <= RECORD_BURST + uncounted),
        "M0 holds M1's seq {held:?}, {uncounted} of the flood uncounted"
    );
    // Every record handled was taken, not judged, or charged (past the pace, or older than
    // one already held: both draw on the sender's budget).
    let handled = counts.gossiped - before.0.gossiped;
    let charged = counts.charged - before.0.charged;
    let taken_by_gossip = counts.taken_by_gossip - before.0.taken_by_gossip;
    assert!(taken_by_gossip + not_judged + charged >= handled, "all judged");
    let dropped = dropped().await - before.1;
    assert!(charged + not_judged + RECORD_BURST + dropped >= FLOOD, "the rest charged");
    assert!(charged >= paced, "every record past the pace is charged");
    fed.stop_all().await.unwrap();
}
