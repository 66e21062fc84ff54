//! A community share across two members: the preview matches what is published, mention-only
//! and "not a target" accounts are never shared, the overlap surfaces at the other member, and
//! no raw identifier crosses the mesh (every batch the receiver stores is scanned for them).

use std::time::Duration;

use crossmatch_node::clock::{Clock, SystemClock};
use crossmatch_node::daemon::{CurationChange, ShareError, ShareParameters};
use crossmatch_node::hunt::curation::NotATargetCategory;
use crossmatch_node::local::wait_until;
use crossmatch_node::test_support::{account, federation, record};
use crossmatch_protocol::{Evaluation, Handling};

const LIMIT: Duration = Duration::from_secs(60);

/// A clique of accounts reposting each other, every post mentioning `victim`.
fn clique_lines(members: &[&str], victim: &str, first_id: u64, now: u64) -> Vec<(u64, Vec<u8>)> {
    let mut lines = Vec::new();
    let mut id = first_id;
    for from in members {
        for to in members {
            if from == to {
                continue;
            }
            for _ in 0..3 {
                id += 1;
                let line = format!(
                    r#"{{"platform":"x","account":"@{from}","at":{},"post_id":"{id}","repost_of":"@{to}","mentions":["@{victim}"]}}"#,
                    now - 60_000
                );
                lines.push((lines.len() as u64 + 1, line.into_bytes()));
            }
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_share_reaches_the_other_member_as_previewed_and_without_raw_identifiers() {
    tokio::time::timeout(Duration::from_secs(300), share_story())
        .await
        .expect("the share story finishes within 300 s");
}

async fn share_story() {
    let (_dir, mut fed) = federation("share", 2);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let now = SystemClock.now_ms();
    let (a, b) = (fed.node(0).unwrap(), fed.node(1).unwrap());
    let clique =
        ["cell_alpha", "cell_bravo", "cell_charlie", "cell_delta", "cell_echo", "press_desk"];
    a.observe(clique_lines(&clique, "victim_v", 0, now)).await.unwrap();
    // One clique account is already an analyst's shared record; one is a journalist.
    a.add_record(record(&["cell_alpha"], true), "ana".into()).await.unwrap();
    let journalist = CurationChange::NotATarget {
        account: account("press_desk"),
        category: Some(NotATargetCategory::Journalist),
    };
    a.curate(journalist, "ana".into()).await.unwrap().unwrap();
    a.recompute_hunt().await.unwrap();
    let analytics = a.read_analytics("communities".into(), "ana".into()).await.unwrap();
    let named = |name: &str| account(name).into_string();
    let community = analytics
        .communities
        .iter()
        .find(|c| c.members.iter().any(|&m| analytics.accounts[m].account == named("cell_bravo")))
        .unwrap();
    let in_community = |name: &str| {
        community.members.iter().any(|&m| analytics.accounts[m].account == named(name))
    };
    assert!(in_community("victim_v") && in_community("press_desk"), "the victim is pulled in");

    let parameters = ShareParameters {
        category: "terrorism/propaganda".into(),
        handling: Handling::H1,
        evaluation: Evaluation::new('X', 4).unwrap(),
        expires_at_ms: now + 30 * 86_400_000,
    };
    // A mark made after a preview refuses its share: nothing leaves.
    let early = a.preview_share(community.id, parameters.clone(), "ana".into()).await.unwrap();
    let mark = |category| CurationChange::NotATarget { account: account("cell_echo"), category };
    a.curate(mark(Some(NotATargetCategory::Victim)), "ana".into()).await.unwrap().unwrap();
    let refused = a.share_community(community.id, early.preview_id, "ana".into()).await;
    assert!(matches!(refused, Err(ShareError::MarkedSincePreview)), "{refused:?}");
    a.curate(mark(None), "ana".into()).await.unwrap().unwrap();
    assert!(a.with_engine(|e| e.own_snapshots().unwrap().is_empty()).await.unwrap());

    let preview = a.preview_share(community.id, parameters, "ana".into()).await.unwrap();
    assert_eq!(preview.members, 1);
    assert_eq!(preview.included, 5, "the five cell accounts");
    assert_eq!(preview.not_reviewed, 4, "all but the recorded one");
    assert_eq!((preview.mention_only, preview.not_a_target), (1, 1));
    assert_eq!(preview.below_threshold, community.members.len() - 7);
    let shared = a.share_community(community.id, preview.preview_id.clone(), "ana".into()).await;
    let shared = shared.unwrap();
    assert_eq!((shared.tags, shared.records), (preview.included, preview.not_reviewed));
    // The preview is used up.
    assert!(a.share_community(community.id, preview.preview_id, "ana".into()).await.is_err());

    // B receives exactly the previewed set: K tags, J of the adds algorithmic.
    wait_until("B holds the share's tags", LIMIT, || async {
        b.with_engine(|e| e.remote_tags().map(|t| t.len()).unwrap_or(0)).await.unwrap_or(0)
            == preview.included
    })
    .await
    .unwrap();
    let tokens_of = |names: &[&str]| {
        let names: Vec<_> = names.iter().map(|n| account(n)).collect();
        a.with_engine(move |e| names.iter().map(|c| e.token(c)).collect::<Vec<_>>())
    };
    let cells = tokens_of(&clique[..5]).await.unwrap();
    let excluded = tokens_of(&["press_desk", "victim_v"]).await.unwrap();
    let (tagged, algorithmic) = b
        .with_engine(move |e| {
            let tagged: Vec<_> = e.remote_tags().unwrap().into_iter().map(|t| t.token).collect();
            let facts = e.token_facts(&tagged).unwrap();
            let algorithmic = e
                .store()
                .scan::<crossmatch_node::store::RemoteAdd>(&[
                    crossmatch_node::store::keys::prefix::REMOTE_ADD,
                ])
                .unwrap()
                .into_iter()
                .filter(|(_, add)| add.algorithmic)
                .count();
            assert!(facts.iter().all(|f| f.members_holding == 1 && f.tagged));
            (tagged, algorithmic)
        })
        .await
        .unwrap();
    assert_eq!(algorithmic, preview.not_reviewed);
    for token in &cells {
        assert!(tagged.contains(token), "every cell account is tagged");
    }
    for token in &excluded {
        assert!(!tagged.contains(token), "never the victim or the journalist");
    }

    // B observes two of the cell accounts itself: the overlap surfaces there, and only there.
    b.observe(clique_lines(&["cell_bravo", "cell_charlie"], "someone_else", 10_000, now))
        .await
        .unwrap();
    b.recompute_hunt().await.unwrap();
    let overlaps = b.overlaps("ben".into()).await.unwrap();
    assert_eq!(overlaps.len(), 1);
    assert_eq!(overlaps[0].member_id.as_deref(), Some("M0"));
    assert_eq!((overlaps[0].size, overlaps[0].observed), (preview.included, 2));
    assert_eq!(overlaps[0].communities.iter().map(|c| c.1).sum::<usize>(), 2);
    assert!(a.overlaps("ana".into()).await.unwrap().is_empty(), "own tags are no overlap");

    // No raw identifier in anything B stored from the mesh: batches, adds, tags.
    let dump = b.with_engine(|e| e.store().dump().unwrap()).await.unwrap();
    let from_mesh = |key: &[u8]| matches!(key.first(), Some(b'b' | b't' | b'G' | b'a'));
    let handles = [&clique[..], &["victim_v"]].concat();
    let mut scanned = 0;
    for (key, value) in dump.iter().filter(|(key, _)| from_mesh(key)) {
        scanned += 1;
        for handle in &handles {
            let raw = handle.as_bytes();
            assert!(
                !value.windows(raw.len()).any(|w| w == raw)
                    && !key.windows(raw.len()).any(|w| w == raw),
                "a raw identifier crossed the mesh"
            );
        }
    }
    assert!(scanned >= preview.included, "the scan read what the share published");
    fed.stop_all().await.unwrap();
}
