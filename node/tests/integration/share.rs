//! Community shares across borders, at the engine: a snapshot publishes algorithmic adds and
//! tags, receivers keep the tags until expiry or retraction, and a share publishes exactly the
//! holdings its preview saw.

use std::sync::Arc;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::{
    CommunityShare, Engine, EngineConfig, Error, MAX_TAGS_PER_ORIGIN, ShareHolding, SharedAccount,
};
use crossmatch_node::test_support::{ManualClock, T0, TempDir, account, record_until};
use crossmatch_protocol::{
    BatchHash, BatchPosition, Entry, Evaluation, Handling, Op, RetractReason, Tag, Token,
    sign_batch,
};

struct Node {
    engine: Engine,
    clock: Arc<ManualClock>,
    _dir: TempDir,
}

fn node(n: u8, name: &str) -> Node {
    let dir = TempDir::new(&format!("share-{name}"));
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::open(dir.path(), EngineConfig::for_test(n), clock.clone()).unwrap();
    Node { engine, clock, _dir: dir }
}

fn deliver(from: &mut Node, to: &mut Node) {
    for batch in from.engine.publish().unwrap() {
        to.engine.ingest(&batch.to_wire()).unwrap();
    }
}

fn share_of(engine: &Engine, handles: &[&str], pseudonym: u8) -> CommunityShare {
    let accounts: Vec<_> = handles.iter().map(|h| account(h)).collect();
    let holdings = engine.share_holdings(&accounts).unwrap();
    CommunityShare {
        community: 7,
        accounts: accounts
            .into_iter()
            .zip(holdings)
            .map(|(account, holding)| SharedAccount {
                account,
                holding,
                activity_per_day: Some(20),
            })
            .collect(),
        category: "terrorism/propaganda".into(),
        handling: Handling::H1,
        evaluation: Evaluation::new('X', 4).unwrap(),
        expires_at_ms: T0 + 30 * DAY_MS,
        pseudonym: [pseudonym; 16],
    }
}

#[test]
fn a_share_publishes_algorithmic_adds_and_tags_that_receivers_keep_until_retraction_or_expiry() {
    let mut a = node(1, "tags-a");
    let mut b = node(2, "tags-b");
    a.engine.add_record(record_until(&["reviewed"], true, T0 + 90 * DAY_MS), "ana").unwrap();
    b.engine.add_record(record_until(&["fresh_one"], false, T0 + 90 * DAY_MS), "ben").unwrap();
    let share = share_of(&a.engine, &["reviewed", "fresh_one", "fresh_two"], 0xaa);
    let holdings: Vec<_> = share.accounts.iter().map(|s| s.holding).collect();
    assert_eq!(
        holdings,
        [ShareHolding::Shared, ShareHolding::NotRecorded, ShareHolding::NotRecorded]
    );
    let outcome = a.engine.share_community(share, "ana").unwrap();
    assert_eq!((outcome.tags, outcome.records.len()), (3, 2));
    deliver(&mut a, &mut b);
    let tags = b.engine.remote_tags().unwrap();
    assert_eq!(tags.len(), 3);
    assert!(tags.iter().all(|t| t.pseudonym == [0xaa; 16]));
    // B watches fresh_one: its alert shows A's add as an algorithm's, not an analyst's.
    let alert = b.engine.alerts(None, None).unwrap().remove(0);
    assert!(alert.counterparts[0].add.algorithmic);
    assert_eq!(alert.counterparts[0].add.activity_per_day, Some(20));
    let facts = b.engine.token_facts(&[a.engine.token(&account("fresh_one"))]).unwrap();
    assert_eq!((facts[0].members_holding, facts[0].tagged), (1, true));

    // A's analyst removes one algorithmic record: B forgets its tag with the add.
    a.engine.remove_record(outcome.records[0], RetractReason::Erroneous, "ana").unwrap();
    deliver(&mut a, &mut b);
    assert_eq!(b.engine.remote_tags().unwrap().len(), 2);
    assert!(b.engine.alerts(None, None).unwrap()[0].counterparts.is_empty());

    // At expiry, the tags and A's own snapshot go.
    assert_eq!(a.engine.own_snapshots().unwrap().len(), 1);
    for n in [&mut a, &mut b] {
        n.clock.set(T0 + 31 * DAY_MS);
        n.engine.expire().unwrap();
    }
    assert!(b.engine.remote_tags().unwrap().is_empty());
    assert!(a.engine.own_snapshots().unwrap().is_empty());
    let fresh_two = a.engine.token(&account("fresh_two"));
    for (key, value) in b.engine.store().dump().unwrap() {
        assert!(!contains(&key, fresh_two.as_bytes()) && !contains(&value, fresh_two.as_bytes()));
    }
}

#[test]
fn a_share_refuses_holdings_changed_since_the_preview_and_withheld_accounts() {
    let mut a = node(1, "changed-a");
    let share = share_of(&a.engine, &["later_recorded"], 1);
    a.engine.add_record(record_until(&["later_recorded"], true, T0 + 90 * DAY_MS), "ana").unwrap();
    assert!(matches!(a.engine.share_community(share, "ana"), Err(Error::ShareChanged)));
    a.engine.add_record(record_until(&["watched_only"], false, T0 + 90 * DAY_MS), "ana").unwrap();
    let share = share_of(&a.engine, &["watched_only"], 2);
    assert_eq!(share.accounts[0].holding, ShareHolding::Withheld);
    assert!(matches!(a.engine.share_community(share, "ana"), Err(Error::ShareChanged)));
    assert!(a.engine.own_snapshots().unwrap().is_empty());
    let published: Vec<Entry> = a
        .engine
        .publish()
        .unwrap()
        .iter()
        .flat_map(|batch| batch.entries().filter_map(Result::ok).collect::<Vec<_>>())
        .collect();
    assert_eq!(published.len(), 1, "the analyst's add of later_recorded only");
    assert!(published.iter().all(|entry| !matches!(entry.op, Op::Tag(_))), "no tag left");
}

#[test]
fn tags_are_bounded_per_origin() {
    let mut b = node(2, "bound-b");
    let key = crossmatch_node::test_support::key(1);
    let mut prev = BatchHash::ZERO;
    let per_batch = 250u32;
    let batches = (MAX_TAGS_PER_ORIGIN as u32).div_ceil(per_batch) + 1;
    for seq in 1..=u64::from(batches) {
        let entries: Vec<Entry> = (0..per_batch)
            .map(|i| {
                let n = (seq as u32 - 1) * per_batch + i;
                let mut token = [0u8; 32];
                token[..4].copy_from_slice(&n.to_be_bytes());
                Entry {
                    salt: [1; 16],
                    op: Op::Tag(Tag {
                        token: Token(token),
                        community: [3; 16],
                        expires_at_ms: T0 + DAY_MS,
                    }),
                }
            })
            .collect();
        let position = BatchPosition { generation: 1, seq, prev, epoch: 1, created_at_ms: T0 };
        let batch =
            sign_batch(&key, &crossmatch_node::test_support::FEDERATION, position, &entries)
                .unwrap();
        prev = batch.hash();
        b.engine.ingest(&batch.to_wire()).unwrap();
    }
    assert_eq!(b.engine.remote_tags().unwrap().len() as u64, MAX_TAGS_PER_ORIGIN);
    assert_eq!(
        b.engine.counters().tags_over_bound,
        u64::from(batches * per_batch) - MAX_TAGS_PER_ORIGIN
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
