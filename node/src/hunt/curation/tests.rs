//! Tests of the curation: labels across a new day and a restart, merges, splits, pins, the
//! regrouping rules and marks.

use super::*;
use crate::hunt::analytics::{AnalyticsSettings, Confidence, Snapshot};
use crate::hunt::ledger::{Day, Ledger};
use crate::hunt::observation::parse_line;

const DAY_MS: u64 = 86_400_000;
const TODAY: u32 = 20_000;

/// Cliques of accounts reposting each other on `day`: `groups` of (prefix, size).
fn ledger_with(ledger: &mut Ledger, groups: &[(&str, usize)], day: u32, post: &mut u64) {
    for (group, size) in groups {
        for i in 0..*size {
            for j in 0..*size {
                if i != j {
                    *post += 1;
                    let at = u64::from(day) * DAY_MS + *post;
                    let line = format!(
                        r#"{{"platform":"x","account":"@{group}{i}","at":{at},"post_id":"{post}","repost_of":"@{group}{j}"}}"#
                    );
                    ledger.ingest(&parse_line(&line, 1, u64::MAX / 2, 0).unwrap().observation);
                }
            }
        }
    }
}

fn name(handle: &str) -> String {
    format!("v1|account|x|{handle}")
}

fn compute(ledger: &Ledger, previous: &Analytics, curation: &Curation) -> Analytics {
    let snapshot = Snapshot::take(ledger, Day(TODAY), AnalyticsSettings::default());
    let known = curation.previous(previous.known());
    snapshot.compute_curated(&known, previous.next_id, Confidence::Runs, curation).unwrap()
}

fn community_of<'a>(
    analytics: &'a Analytics,
    handle: &str,
) -> &'a crate::hunt::analytics::CommunityStats {
    let account = analytics.accounts.iter().find(|a| a.account == name(handle)).unwrap();
    analytics.community(account.community).unwrap()
}

fn members(analytics: &Analytics, id: u64) -> Vec<String> {
    let mut out: Vec<String> = analytics
        .community(id)
        .unwrap()
        .members
        .iter()
        .map(|&m| analytics.accounts[m].account.clone())
        .collect();
    out.sort();
    out
}

#[test]
fn a_label_follows_its_anchors_across_a_new_day_and_a_restart() {
    let mut ledger = Ledger::default();
    let mut post = 0;
    ledger_with(&mut ledger, &[("a", 5), ("b", 5)], TODAY - 1, &mut post);
    let first = compute(&ledger, &Analytics::default(), &Curation::default());
    let alpha = community_of(&first, "a0").id;
    let mut curation = Curation::default();
    let changed = curation.label(&first, alpha, " alpha ", None).unwrap();
    assert_eq!(changed.communities.len(), 1);
    let anchors = &curation.community(alpha).unwrap().anchors;
    assert_eq!(anchors.len(), 5, "the stable core: every member at confidence 1");
    // One more day, with newcomers: the label stays on the community holding the anchors.
    ledger_with(&mut ledger, &[("a", 7), ("c", 4)], TODAY, &mut post);
    let second = compute(&ledger, &first, &curation);
    let labelled = community_of(&second, "a6");
    assert_eq!((labelled.id, labelled.labels.clone()), (alpha, vec!["alpha".to_owned()]));
    assert!(community_of(&second, "b0").labels.is_empty());
    // A restart: nothing known but the curation; the id and label come back all the same.
    let restarted = compute(&ledger, &Analytics::default(), &curation);
    assert_eq!(community_of(&restarted, "a0").id, alpha);
    assert_eq!(community_of(&restarted, "a0").labels, ["alpha"]);
    assert!(restarted.communities.iter().all(|c| c.id != alpha || c.members.len() == 7));
    let other_ids: Vec<u64> =
        restarted.communities.iter().map(|c| c.id).filter(|&id| id != alpha).collect();
    assert!(other_ids.iter().all(|&id| id > alpha), "fresh ids never take a curated one");
    // Seeds must be members.
    let seeds = vec![name("b0")];
    assert_eq!(
        curation.label(&second, alpha, "alpha", Some(&seeds)),
        Err(CurationError::NotAMember(0))
    );
    assert_eq!(curation.label(&second, alpha, "", None), Err(CurationError::InvalidLabel));
    assert_eq!(curation.label(&second, 999, "x", None), Err(CurationError::NoCommunity));
}

#[test]
fn merge_shows_two_communities_as_one_with_both_labels() {
    let mut ledger = Ledger::default();
    let mut post = 0;
    ledger_with(&mut ledger, &[("a", 5), ("b", 5), ("c", 3)], TODAY, &mut post);
    let first = compute(&ledger, &Analytics::default(), &Curation::default());
    let (alpha, beta) = (community_of(&first, "a0").id, community_of(&first, "b0").id);
    let mut curation = Curation::default();
    curation.label(&first, alpha, "alpha", None).unwrap();
    curation.label(&first, beta, "beta", None).unwrap();
    assert_eq!(curation.merge(&first, alpha, alpha), Err(CurationError::SameCommunity));
    curation.merge(&first, alpha, beta).unwrap();
    let merged = compute(&ledger, &first, &curation);
    let shown = community_of(&merged, "b3");
    assert_eq!(shown.id, alpha);
    assert_eq!(shown.members.len(), 10);
    assert_eq!(shown.labels, ["alpha", "beta"]);
    assert!(shown.merged_ids.contains(&beta));
    assert!(merged.community(beta).is_none());
    assert_eq!(shown.internal_edges.len(), 40, "both cliques' edges");
    // And again, from the curation alone.
    let again = compute(&ledger, &Analytics::default(), &curation);
    assert_eq!(members(&again, alpha), members(&merged, alpha));
}

#[test]
fn a_split_forms_a_new_community_and_a_pin_holds_members_together() {
    let mut ledger = Ledger::default();
    let mut post = 0;
    ledger_with(&mut ledger, &[("a", 6), ("b", 5)], TODAY, &mut post);
    let first = compute(&ledger, &Analytics::default(), &Curation::default());
    let alpha = community_of(&first, "a0").id;
    let beta = community_of(&first, "b0").id;
    let mut curation = Curation::default();
    curation.label(&first, alpha, "alpha", None).unwrap();
    let all: Vec<String> = (0..6).map(|i| name(&format!("a{i}"))).collect();
    assert!(matches!(curation.split(&first, alpha, &all, None), Err(CurationError::Accounts(_))));
    let leaving = vec![name("a4"), name("a5")];
    let (_, split) = curation.split(&first, alpha, &leaving, Some("offshoot")).unwrap();
    assert!(split >= first.next_id, "a fresh id");
    curation.pin(&first, beta, true).unwrap();
    let second = compute(&ledger, &first, &curation);
    assert_eq!(members(&second, split), leaving);
    assert_eq!(second.community(split).unwrap().labels, ["offshoot"]);
    assert_eq!(members(&second, alpha).len(), 4);
    assert_eq!(second.community(alpha).unwrap().labels, ["alpha"]);
    // A day on which the pinned community's members interact with the others' more than
    // with each other: Leiden would split them, the pin holds them together.
    let mut day = Ledger::default();
    let mut post = 0;
    ledger_with(&mut day, &[("b", 2), ("a", 3)], TODAY, &mut post);
    for (i, target) in [(2, "a0"), (3, "a1"), (4, "a2")] {
        for k in 0..6 {
            post += 1;
            let line = format!(
                r#"{{"platform":"x","account":"@b{i}","at":{},"post_id":"{post}","repost_of":"@{target}"}}"#,
                u64::from(TODAY) * DAY_MS + post + k
            );
            day.ingest(&parse_line(&line, 1, u64::MAX / 2, 0).unwrap().observation);
        }
    }
    let unpinned = compute(&day, &second, &Curation::default());
    assert_ne!(
        community_of(&unpinned, "b0").id,
        community_of(&unpinned, "b2").id,
        "unpinned, Leiden splits them"
    );
    let pinned = compute(&day, &second, &curation);
    assert_eq!(members(&pinned, beta), (0..5).map(|i| name(&format!("b{i}"))).collect::<Vec<_>>());
    // The same run twice gives the same answer.
    assert_eq!(pinned, compute(&day, &second, &curation));
}

#[test]
fn regroup_places_split_offs_first_then_pins_in_their_home() {
    let names: Vec<String> = ["a", "b", "c", "d", "e", "f"].iter().map(|n| name(n)).collect();
    let anchors = |handles: &[&str]| handles.iter().map(|h| name(h)).collect::<Vec<_>>();
    let mut curation = Curation::default();
    curation.communities.insert(
        7,
        CuratedCommunity {
            anchors: anchors(&["a", "b", "c", "d"]),
            pinned: true,
            ..Default::default()
        },
    );
    curation.communities.insert(
        9,
        CuratedCommunity {
            anchors: anchors(&["c"]),
            pinned: true,
            split_from: Some(7),
            ..Default::default()
        },
    );
    let regrouped = curation.regroup(&names, &[0, 0, 0, 1, 1, 1]);
    assert_eq!(regrouped.groups, vec![vec![0, 1, 3], vec![4, 5], vec![2]]);
    assert_eq!(regrouped.forced, vec![Some(7), None, Some(9)]);
    // Without a home of its own (another curated community holds more anchors there), a
    // pinned community's anchors form a group of their own.
    curation.communities.insert(
        3,
        CuratedCommunity { anchors: anchors(&["a", "b", "e", "f"]), ..Default::default() },
    );
    curation.communities.get_mut(&7).unwrap().anchors = anchors(&["a", "d"]);
    let regrouped = curation.regroup(&names, &[0, 0, 0, 1, 1, 1]);
    assert_eq!(regrouped.forced.iter().filter(|f| f.is_some()).count(), 2);
    let seven = regrouped.forced.iter().position(|f| *f == Some(7)).unwrap();
    assert_eq!(regrouped.groups[seven], vec![0, 3]);
}

#[test]
fn marks_keep_their_ids_and_ids_are_never_reused() {
    let mut curation = Curation::default();
    let (changed, first) = curation
        .mark_not_a_target("v1|account|x|press", NotATargetCategory::Journalist, 5)
        .unwrap();
    assert_eq!(changed.marks.len(), 1);
    assert!(curation.is_not_a_target("v1|account|x|press"));
    let (_, again) =
        curation.mark_not_a_target("v1|account|x|press", NotATargetCategory::Official, 6).unwrap();
    assert_eq!(again, first, "a new category keeps the mark");
    assert_eq!(curation.mark("v1|account|x|press").unwrap().category, NotATargetCategory::Official);
    let (changed, removed) = curation.unmark_not_a_target("v1|account|x|press").unwrap();
    assert_eq!((removed, changed.marks[0].1.clone()), (first, None));
    assert!(!curation.is_not_a_target("v1|account|x|press"));
    let (_, next) =
        curation.mark_not_a_target("v1|account|x|other", NotATargetCategory::Victim, 7).unwrap();
    assert!(next > first);
    // Rebuilt from its rows, the counters carry on.
    let rows: Vec<_> = curation.marks().map(|(a, m)| (a.to_owned(), m.clone())).collect();
    let mut reopened = Curation::from_rows(vec![], rows, curation.meta());
    let (_, third) =
        reopened.mark_not_a_target("v1|account|x|third", NotATargetCategory::Other, 8).unwrap();
    assert!(third > next);
    assert_eq!("counter_speech".parse(), Ok(NotATargetCategory::CounterSpeech));
    assert!("spy".parse::<NotATargetCategory>().is_err());
}
