//! A member's routine node key change at the engine: its feeds under the old and the new key
//! are one member (counted once, one counterpart), this node's own retired feed never matches
//! this node, and a retired key's batches past the final head its key change names are ignored.
//! The republication under the new key goes in slices behind a durable cursor, and peers let
//! it past their daily quota up to the size of the old feed they hold, counted in bounded
//! slices.

use std::sync::Arc;

use std::collections::BTreeMap;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::rotation::REPUBLISH_SLICE;
use crossmatch_node::engine::takedowns::FACTS_KEY_CONTEXT;
use crossmatch_node::engine::{
    Engine, EngineConfig, EngineLimits, IngestOutcome, Member, REPUBLICATION_MARGIN_ENTRIES,
    RepublicationAllowance, SLICE_ROWS,
};
use crossmatch_node::store::keys;
use crossmatch_node::test_support::{
    ManualClock, T0, TempDir, account, key, members, record_until,
};
use crossmatch_protocol::{FinalHead, Op, Token, VerifiedBatch};

struct Node {
    engine: Engine,
    _dir: TempDir,
}

fn node_with(config: EngineConfig, name: &str) -> Node {
    let dir = TempDir::new(&format!("key-change-{name}"));
    let engine = Engine::open(dir.path(), config, Arc::new(ManualClock::new(T0))).unwrap();
    Node { engine, _dir: dir }
}

fn node(n: u8, name: &str) -> Node {
    node_with(EngineConfig::for_test(n), name)
}

/// Adds a shared record of `handles` and returns the batches it published.
fn share(node: &mut Node, handles: &[&str]) -> Vec<VerifiedBatch> {
    node.engine.add_record(record_until(handles, true, T0 + 90 * DAY_MS), "ana").unwrap();
    node.engine.publish().unwrap()
}

/// Where a feed ends: its last batch.
fn final_head(batches: &[VerifiedBatch]) -> FinalHead {
    let last = batches.last().unwrap();
    let id = last.id();
    FinalHead { generation: id.feed.generation, seq: id.seq, hash: last.hash() }
}

/// The test federation of three in which A changed its node key from key(1) to key(11), its
/// old feed ending at `head`.
fn roster(head: Option<FinalHead>) -> Vec<Member> {
    let mut roster = members(3);
    roster[0].key = key(11).public_key();
    roster[0].retired_keys = vec![key(1).public_key()];
    roster[0].retired_heads = vec![(key(1).public_key(), head)];
    roster
}

fn config(n: u8, members: Vec<Member>) -> EngineConfig {
    EngineConfig { members, ..EngineConfig::for_test(n) }
}

fn ingest_all(engine: &mut Engine, batches: &[VerifiedBatch]) {
    for batch in batches {
        let outcome = engine.ingest(&batch.to_wire()).unwrap();
        assert!(matches!(outcome, IngestOutcome::Applied { .. }), "{outcome:?}");
    }
}

#[test]
fn a_members_token_under_its_old_and_new_key_counts_once() {
    let (mut old_a, mut new_a) = (node(1, "once-old-a"), node(11, "once-new-a"));
    let old_batches = share(&mut old_a, &["both_keys"]);
    let new_batches = share(&mut new_a, &["both_keys"]);
    let mut b = node_with(config(2, roster(Some(final_head(&old_batches)))), "once-b");
    let b = &mut b.engine;
    b.add_record(record_until(&["both_keys"], false, T0 + 90 * DAY_MS), "ben").unwrap();
    ingest_all(b, &old_batches);
    let token = b.token(&account("both_keys"));
    assert_eq!(b.remote_holders(&token).unwrap(), 1);
    let first = b.alerts(None, None).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].counterparts.len(), 1);
    ingest_all(b, &new_batches);
    // Under both keys, A is one member holding the token, and one counterpart.
    assert_eq!(b.remote_holders(&token).unwrap(), 1);
    assert_eq!(b.token_facts(&[token]).unwrap()[0].members_holding, 1);
    let alerts = b.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].id, first[0].id);
    assert_eq!(alerts[0].counterparts.len(), 1, "{:?}", alerts[0].counterparts);
    assert_eq!(alerts[0].counterparts[0].origin, key(11).public_key(), "named by its new key");
    assert_eq!(b.member(&alerts[0].counterparts[0].origin).map(|m| m.id.as_str()), Some("A"));
    // C holding it too makes two members.
    let mut c = node(3, "once-c");
    ingest_all(b, &share(&mut c, &["both_keys"]));
    assert_eq!(b.remote_holders(&token).unwrap(), 2);
    assert_eq!(b.alerts(None, None).unwrap()[0].counterparts.len(), 2);
}

#[test]
fn a_nodes_own_retired_feed_raises_no_alert_at_itself() {
    // This node is A after its key change (key 11); its old feed (key 1) comes back from peers.
    let mut old_self = node(1, "self-old");
    let old_batches = share(&mut old_self, &["mine", "also_b"]);
    let mut this = node_with(config(11, roster(Some(final_head(&old_batches)))), "self-new");
    let this = &mut this.engine;
    this.add_record(record_until(&["mine"], true, T0 + 90 * DAY_MS), "ana").unwrap();
    // The old feed still ingests (other members match it) but is this node, not a counterpart.
    ingest_all(this, &old_batches);
    assert!(this.alerts(None, None).unwrap().is_empty(), "the node matched itself");
    assert_eq!(this.remote_holders(&this.token(&account("mine"))).unwrap(), 0);
    // A real counterpart still raises an alert, with B alone in it.
    let mut b = node(2, "self-b");
    ingest_all(this, &share(&mut b, &["mine"]));
    let alerts = this.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1);
    let origins: Vec<_> = alerts[0].counterparts.iter().map(|c| c.origin).collect();
    assert_eq!(origins, [key(2).public_key()]);
}

#[test]
fn a_retired_keys_batches_past_its_final_head_are_ignored() {
    let mut old_a = node(1, "leak-old-a");
    let before = share(&mut old_a, &["before_change"]);
    let head = final_head(&before);
    // The retired key leaks and signs on: a later batch of the same generation, and a batch of
    // a later generation.
    let past = share(&mut old_a, &["after_change"]);
    old_a.engine.start_new_generation().unwrap();
    let later_generation = share(&mut old_a, &["new_generation"]);
    let mut b = node_with(config(2, roster(Some(head))), "leak-b");
    let b = &mut b.engine;
    ingest_all(b, &before);
    for batch in past.iter().chain(&later_generation) {
        let outcome = b.ingest(&batch.to_wire()).unwrap();
        assert!(matches!(outcome, IngestOutcome::Ignored), "{outcome:?}");
    }
    let counters = b.counters();
    assert_eq!(counters.past_final_head, (past.len() + later_generation.len()) as u64);
    assert_eq!(b.remote_holders(&b.token(&account("after_change"))).unwrap(), 0);
    assert_eq!(b.remote_holders(&b.token(&account("before_change"))).unwrap(), 1);
    // A retired key whose key change names no final head (it never signed) admits nothing.
    let mut c = node_with(config(3, roster(None)), "leak-c");
    let outcome = c.engine.ingest(&before[0].to_wire()).unwrap();
    assert!(matches!(outcome, IngestOutcome::Ignored), "{outcome:?}");
}

#[test]
fn a_node_opened_with_its_new_key_republishes_under_it_and_never_signs_with_the_old() {
    let dir = TempDir::new("key-change-own");
    let clock = Arc::new(ManualClock::new(T0));
    // A under its first key shares two accounts; the feed ends at its last batch.
    let mut a = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    a.add_record(record_until(&["kept_one", "kept_two"], true, T0 + 90 * DAY_MS), "ana").unwrap();
    let old_batches = a.publish().unwrap();
    let head = a.own_final_head().unwrap();
    assert_eq!(head, final_head(&old_batches));
    assert_eq!(a.own_key_change(), None);
    drop(a);
    // Opened with the new key (and the roster that retires the old one): a new own feed, the
    // live share republished under the new key.
    let mut a = Engine::open(dir.path(), config(11, roster(Some(head))), clock.clone()).unwrap();
    let through = a.own_key_change().map(|change| change.republish_through);
    assert!(through.is_some_and(|through| through >= 1), "{through:?}");
    assert_eq!(a.own_head(), (1, 0));
    let new_batches = a.publish().unwrap();
    assert_eq!(a.own_key_change().map(|change| change.republished_records), Some(1));
    assert_eq!(a.own_republication().unwrap(), None, "the republication is over");
    assert!(!new_batches.is_empty());
    assert!(new_batches.iter().all(|batch| batch.origin() == key(11).public_key()));
    assert_eq!(new_batches[0].id().seq, 1);
    drop(a);
    // A peer takes both feeds: one member holding each account, no entry past the old head.
    let mut b = node_with(config(2, roster(Some(head))), "own-b");
    let b = &mut b.engine;
    b.add_record(record_until(&["kept_one"], false, T0 + 90 * DAY_MS), "ben").unwrap();
    ingest_all(b, &old_batches);
    ingest_all(b, &new_batches);
    let token = b.token(&account("kept_one"));
    assert_eq!(b.remote_holders(&token).unwrap(), 1);
    assert_eq!(b.alerts(None, None).unwrap()[0].counterparts.len(), 1);
    // Opened again with the new key: nothing more to do. With the old key: refused.
    let a = Engine::open(dir.path(), config(11, roster(Some(head))), clock.clone()).unwrap();
    assert_eq!(a.own_key_change(), None);
    drop(a);
    let refused = Engine::open(dir.path(), EngineConfig::for_test(1), clock).unwrap_err();
    assert!(refused.to_string().contains("retired"), "{refused}");
    // The audit log checks out offline under both keys (heads from before the change carry the
    // old key's signature), and not under the new key alone if an old head is in it.
    let audit = dir.path().join("audit");
    let (log, head) = (audit.join("audit.log"), audit.join("audit.head"));
    let both = [key(11).public_key(), key(1).public_key()];
    crossmatch_node::audit::verify_keys(&log, &head, &both).unwrap();
    // The change itself is audited once, naming both keys by fingerprint.
    let text = std::fs::read_to_string(&log).unwrap();
    let changes: Vec<&str> = text.lines().filter(|l| l.contains("\tchange_node_key\t")).collect();
    let subject = format!(
        "node_key:{}.{}",
        hex::encode(&key(1).public_key().to_bytes()[..8]),
        hex::encode(&key(11).public_key().to_bytes()[..8])
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].contains(&subject), "{changes:?}");
}

/// Opens the engine of the member whose config is `config`, as `run` would under the config's
/// roster file.
fn open_member(config: &std::path::Path) -> Engine {
    let loaded = crossmatch_node::config::load(config).unwrap();
    let membership = crossmatch_node::config::start_membership(&loaded.roster);
    let engine_config = loaded.engine_config(&loaded.roster.roster.body, &membership);
    let clock = Arc::new(crossmatch_node::clock::SystemClock);
    Engine::open(&loaded.config.data_dir, engine_config, clock).unwrap()
}

#[test]
fn node_key_rotate_and_federation_key_change_make_a_successor_that_keeps_the_old_feed() {
    use crossmatch_node::federation_cli::{
        self, EditTarget, FederationCommand, KeyChangeArgs, NodeKeyRotateArgs, SignArgs,
    };
    use crossmatch_node::init_cli::{self, CONFIG_FILE, GOVERNANCE_KEY_FILE, NODE_KEY_FILE};
    use crossmatch_node::test_support::roster_file::{seat_of_dir, write_founding};
    use crossmatch_node::{clock::Clock, keyfile, roster_file};
    use crossmatch_protocol::{FederationSecret, verify_founding, verify_successor};

    let root = TempDir::new("key-change-cli");
    let (de, fr) = (root.path().join("de"), root.path().join("fr"));
    init_cli::init("DE", &de).unwrap();
    init_cli::init("FR", &fr).unwrap();
    let seats = [seat_of_dir("DE", &de, &[]), seat_of_dir("FR", &fr, &[])];
    let secret = FederationSecret::from_bytes([5; 32]);
    for dir in [&de, &fr] {
        keyfile::write_federation_secret(&dir.join(init_cli::SECRET_FILE), &secret).unwrap();
        write_founding(&dir.join(init_cli::ROSTER_FILE), &secret, &seats);
    }
    let old_key = seats[0].node_key.public_key();
    // DE shares an account under its first key.
    let mut engine = open_member(&de.join(CONFIG_FILE));
    engine.add_record(record_until(&["rotated"], true, T0 + 90 * DAY_MS), "ana").unwrap();
    let old_batches = engine.publish().unwrap();
    let head = engine.own_final_head().unwrap();
    // While the node runs, the key cannot change.
    let rotate = NodeKeyRotateArgs { config: de.join(CONFIG_FILE), out: root.path().join("c") };
    let refused = federation_cli::node_key_rotate(&rotate, &mut Vec::new()).unwrap_err();
    assert!(refused.to_string().contains("stopped"), "{refused}");
    assert!(!rotate.out.exists());
    drop(engine);
    // Stopped: a new key file and a key change naming the old feed's final head.
    let mut printed = Vec::new();
    federation_cli::node_key_rotate(&rotate, &mut printed).unwrap();
    let new_key = keyfile::read_signing_key(&de.join(NODE_KEY_FILE)).unwrap().public_key();
    assert_ne!(new_key, old_key);
    assert!(String::from_utf8(printed).unwrap().contains(&new_key.to_string()));
    // Twice is refused: the change file exists.
    assert!(federation_cli::node_key_rotate(&rotate, &mut Vec::new()).is_err());
    // The node does not start on a roster that does not hold its new key.
    assert!(crossmatch_node::config::load(&de.join(CONFIG_FILE)).is_err());
    // The coordinator's next version: the old key retired, the new one in its place.
    let v2 = root.path().join("roster.v2.toml");
    let target = EditTarget {
        roster: de.join(init_cli::ROSTER_FILE),
        next: true,
        out: Some(v2.clone()),
        threshold: None,
    };
    let change = KeyChangeArgs { target, change: rotate.out.clone() };
    federation_cli::run(FederationCommand::KeyChange(change), &mut Vec::new(), T0).unwrap();
    for (id, dir) in [("DE", &de), ("FR", &fr)] {
        let sign = SignArgs {
            roster: v2.clone(),
            governance_key: dir.join(GOVERNANCE_KEY_FILE),
            member: id.into(),
            previous: None,
        };
        federation_cli::run(FederationCommand::Sign(sign), &mut Vec::new(), T0).unwrap();
    }
    let v1 = roster_file::read(&de.join(init_cli::ROSTER_FILE)).unwrap();
    let v1 = verify_founding(&v1.roster).unwrap();
    let next = roster_file::read(&v2).unwrap();
    let next = verify_successor(&v1, &next.roster).unwrap();
    let member = &next.body().members[0];
    assert_eq!((member.node_key, member.retired_node_keys.clone()), (new_key, vec![old_key]));
    assert_eq!(member.sealing_key, new_key.to_x25519());
    assert_eq!(next.key_change_of(&old_key).unwrap().final_head, Some(head));
    // Both members run the new version: DE republishes under its new key; FR keeps DE's old
    // feed, takes the new one, and counts DE once.
    for dir in [&de, &fr] {
        std::fs::copy(&v2, dir.join(init_cli::ROSTER_FILE)).unwrap();
    }
    let mut de_engine = open_member(&de.join(CONFIG_FILE));
    let new_batches = de_engine.publish().unwrap();
    assert_eq!(de_engine.own_key_change().map(|c| c.republished_records), Some(1));
    assert!(new_batches.iter().all(|batch| batch.origin() == new_key));
    let mut fr_engine = open_member(&fr.join(CONFIG_FILE));
    let expires = crossmatch_node::clock::SystemClock.now_ms() + 90 * DAY_MS;
    fr_engine.add_record(record_until(&["rotated"], true, expires), "fra").unwrap();
    ingest_all(&mut fr_engine, &old_batches);
    let token = fr_engine.token(&account("rotated"));
    assert_eq!(fr_engine.remote_holders(&token).unwrap(), 1, "the old feed stays matchable");
    ingest_all(&mut fr_engine, &new_batches);
    assert_eq!(fr_engine.remote_holders(&token).unwrap(), 1, "DE once, under either key");
    let alerts = fr_engine.alerts(None, None).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].counterparts.len(), 1);
    assert_eq!(alerts[0].counterparts[0].origin, new_key);
}

/// A's feed of `n` shared records under its first key (key 1), then A opened with its new key
/// (key 11) in the same directory: the engine, the old feed's batches and its final head.
fn changed_key_with_feed(
    dir: &TempDir,
    prefix: &str,
    n: usize,
) -> (Engine, Vec<VerifiedBatch>, FinalHead) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    let records =
        (0..n).map(|i| record_until(&[&format!("{prefix}_{i}")], true, T0 + 90 * DAY_MS)).collect();
    a.add_records(records, "ana").unwrap();
    let old_batches = a.publish().unwrap();
    let head = a.own_final_head().unwrap();
    drop(a);
    let a = Engine::open(dir.path(), config(11, roster(Some(head))), clock).unwrap();
    (a, old_batches, head)
}

/// The adds in `batches`, by token: how often each token was added.
fn adds_by_token(batches: &[VerifiedBatch]) -> BTreeMap<Token, usize> {
    let mut adds = BTreeMap::new();
    for batch in batches {
        for entry in batch.entries().flatten() {
            if let Op::Add(add) = entry.op {
                *adds.entry(add.token).or_insert(0) += 1;
            }
        }
    }
    adds
}

#[test]
fn a_key_change_republishes_a_large_feed_in_slices_and_a_crash_midway_repeats_and_loses_nothing() {
    let dir = TempDir::new("key-change-slices");
    let n = 3 * REPUBLISH_SLICE + 10;
    let (mut a, old_batches, head) = changed_key_with_feed(&dir, "sliced", n);
    let started = a.own_republication().unwrap().expect("a republication under way");
    assert_eq!(started.after, 0);
    assert!(started.through >= n as u64, "every record made before the change: {started:?}");
    assert_eq!(a.outbox_len().unwrap(), 0, "nothing enqueued at open");
    // The slice worker's step puts one slice in the outbox, with the cursor, and no more while
    // the outbox holds it (analysts' adds go first).
    assert!(a.background_step().unwrap());
    assert_eq!(a.own_republication().unwrap().unwrap().after, REPUBLISH_SLICE as u64);
    assert_eq!(a.outbox_len().unwrap(), REPUBLISH_SLICE);
    assert!(!a.background_step().unwrap());
    assert_eq!(a.own_republication().unwrap().unwrap().after, REPUBLISH_SLICE as u64);
    // The publisher signs it, then feeds and signs the next slice.
    let mut new_batches = a.publish_batches(1).unwrap();
    new_batches.extend(a.publish_batches(1).unwrap());
    assert_eq!(new_batches.len(), 2);
    assert_eq!(a.own_republication().unwrap().unwrap().after, 2 * REPUBLISH_SLICE as u64);
    // A third slice goes into the outbox, and the node crashes before signing it.
    assert!(a.background_step().unwrap());
    assert_eq!(a.own_republication().unwrap().unwrap().after, 3 * REPUBLISH_SLICE as u64);
    drop(a);
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = Engine::open(dir.path(), config(11, roster(Some(head))), clock).unwrap();
    assert_eq!(a.own_key_change(), None, "the key is the store's now");
    let resumed = a.own_republication().unwrap().expect("resumed at open");
    assert_eq!(resumed.after, 3 * REPUBLISH_SLICE as u64);
    new_batches.extend(a.publish().unwrap());
    assert_eq!(a.own_republication().unwrap(), None, "the republication is over");
    assert!(new_batches.iter().all(|batch| batch.origin() == key(11).public_key()));
    // Every live add exactly once under the new key: none repeated, none lost.
    let republished = adds_by_token(&new_batches);
    assert_eq!(republished.len(), n);
    assert!(republished.values().all(|&count| count == 1), "an add went out twice");
    assert_eq!(republished, adds_by_token(&old_batches));
    // The old feed stays matchable at a peer, and the member is one holder under both keys.
    let mut b = node_with(config(2, roster(Some(head))), "slices-b");
    let b = &mut b.engine;
    b.add_record(record_until(&["sliced_7"], false, T0 + 90 * DAY_MS), "ben").unwrap();
    ingest_all(b, &old_batches);
    let token = b.token(&account("sliced_7"));
    assert_eq!(b.remote_holders(&token).unwrap(), 1, "the old feed matches");
    let alert = b.alerts(None, None).unwrap();
    assert_eq!(alert.len(), 1);
    ingest_all(b, &new_batches);
    assert_eq!(b.remote_holders(&token).unwrap(), 1);
    let alerts = b.alerts(None, None).unwrap();
    assert_eq!((alerts.len(), alerts[0].id), (1, alert[0].id));
}

#[test]
fn peers_take_a_republished_feed_past_the_daily_quota_and_an_uncovered_feed_still_hits_it() {
    let dir = TempDir::new("key-change-quota");
    let n = 500;
    let (mut a, old_batches, head) = changed_key_with_feed(&dir, "quota", n);
    let new_batches = a.publish().unwrap();
    let mut b = node_with(config(2, roster(Some(head))), "quota-b");
    let b = &mut b.engine;
    ingest_all(b, &old_batches);
    // From now on a day's quota is 300 entries: the new key's republication of 500 is past it,
    // and is let through on the key change's allowance.
    let limits = EngineLimits { quota_entries_per_day: 300, ..b.limits() };
    b.set_limits(limits);
    ingest_all(b, &new_batches);
    assert_eq!(b.counters().quota_refused, 0);
    let token = b.token(&account("quota_499"));
    assert_eq!(b.remote_holders(&token).unwrap(), 1);
    // A flood beyond the allowance (the old feed's adds and a batch's margin) is refused as
    // over quota, like any batch over quota: the allowance is used up, not being counted.
    let flood = (0..(n + REPUBLICATION_MARGIN_ENTRIES as usize + 100))
        .map(|i| record_until(&[&format!("flood_{i}")], true, T0 + 90 * DAY_MS))
        .collect();
    a.add_records(flood, "ana").unwrap();
    let flood = a.publish().unwrap();
    let outcomes: Vec<_> = flood.iter().map(|batch| b.ingest(&batch.to_wire()).unwrap()).collect();
    assert!(outcomes.contains(&IngestOutcome::QuotaExceeded), "{outcomes:?}");
    assert!(!outcomes.contains(&IngestOutcome::RepublicationOverQuota), "{outcomes:?}");
    // C changed no key: its feed past the quota is refused as ever.
    let mut c = node(3, "quota-c");
    let records =
        (0..400).map(|i| record_until(&[&format!("c_{i}")], true, T0 + 90 * DAY_MS)).collect();
    c.engine.add_records(records, "cem").unwrap();
    let outcomes: Vec<_> = c
        .engine
        .publish()
        .unwrap()
        .iter()
        .map(|batch| b.ingest(&batch.to_wire()).unwrap())
        .collect();
    assert!(outcomes.contains(&IngestOutcome::QuotaExceeded), "{outcomes:?}");
    assert!(!outcomes.contains(&IngestOutcome::RepublicationOverQuota), "{outcomes:?}");
    // The allowance is stored with what it used, and goes once the roster no longer shows the
    // key change (here: A's new key leaves the roster).
    let row = keys::key_change_allowance(&key(11).public_key().to_bytes());
    let stored: Option<RepublicationAllowance> = b.store().get(&row).unwrap();
    let stored = stored.expect("the allowance is stored");
    assert_eq!(stored.entries, n as u64 + REPUBLICATION_MARGIN_ENTRIES);
    assert!(stored.used_entries >= n as u64 - 300, "{stored:?}");
    b.set_members(members(3)).unwrap();
    assert_eq!(b.store().get_raw(&row).unwrap(), None);
}

#[test]
fn the_allowance_is_counted_in_bounded_slices() {
    let dir = TempDir::new("key-change-count");
    let n = SLICE_ROWS + 300;
    let (mut a, old_batches, head) = changed_key_with_feed(&dir, "count", n);
    let new_batches = a.publish().unwrap();
    let mut b = node_with(config(2, roster(Some(head))), "count-b");
    let b = &mut b.engine;
    ingest_all(b, &old_batches);
    b.set_limits(EngineLimits { quota_entries_per_day: 10, ..b.limits() });
    assert_eq!(b.allowance_rows_counted(), 0, "nothing counted within the quota");
    // The first batch past the quota counts one slice of the old feed, not all of it, and is
    // refused for now (no relay is charged for it).
    let first = b.ingest(&new_batches[0].to_wire()).unwrap();
    assert_eq!(first, IngestOutcome::RepublicationOverQuota);
    assert_eq!(b.allowance_rows_counted(), SLICE_ROWS as u64);
    // The slice worker counts the rest, a slice at most per step, then has nothing to do.
    assert!(b.background_step().unwrap());
    assert_eq!(b.allowance_rows_counted(), n as u64);
    assert!(!b.background_step().unwrap());
    // Offered again, the whole new feed passes on the allowance, counted no more.
    ingest_all(b, &new_batches);
    assert_eq!(b.allowance_rows_counted(), n as u64);
    assert_eq!(b.remote_holders(&b.token(&account("count_0"))).unwrap(), 1);
}

#[test]
fn a_count_in_progress_survives_a_member_record_update() {
    let dir = TempDir::new("key-change-count-kept");
    let n = SLICE_ROWS + 300;
    let (mut a, old_batches, head) = changed_key_with_feed(&dir, "kept", n);
    let new_batches = a.publish().unwrap();
    let mut b = node_with(config(2, roster(Some(head))), "kept-b");
    let b = &mut b.engine;
    ingest_all(b, &old_batches);
    b.set_limits(EngineLimits { quota_entries_per_day: 10, ..b.limits() });
    let first = b.ingest(&new_batches[0].to_wire()).unwrap();
    assert_eq!(first, IngestOutcome::RepublicationOverQuota);
    assert_eq!(b.allowance_rows_counted(), SLICE_ROWS as u64);
    // A member's record changes only its contact (addresses are not the engine's), then the
    // same members are set again: neither throws the slice counted away.
    let mut moved = roster(Some(head));
    moved[1].contact = "new-desk@b.example".into();
    assert_eq!(b.update_members(moved.clone()).unwrap(), Default::default());
    assert_eq!(b.members()[1].contact, "new-desk@b.example");
    b.set_members(moved).unwrap();
    assert!(b.background_step().unwrap());
    assert_eq!(b.allowance_rows_counted(), n as u64, "the count went on where it was");
    assert!(!b.background_step().unwrap());
    ingest_all(b, &new_batches);
    assert_eq!(b.allowance_rows_counted(), n as u64, "counted once");
    assert_eq!(b.remote_holders(&b.token(&account("kept_0"))).unwrap(), 1);
}

#[test]
fn past_a_used_up_allowance_a_batch_is_over_quota_on_its_claim() {
    let dir = TempDir::new("key-change-used-up");
    let n = 200;
    let (mut a, old_batches, head) = changed_key_with_feed(&dir, "used", n);
    let new_batches = a.publish().unwrap();
    let mut b = node_with(config(2, roster(Some(head))), "used-b");
    let b = &mut b.engine;
    ingest_all(b, &old_batches);
    b.set_limits(EngineLimits { quota_entries_per_day: 10, ..b.limits() });
    ingest_all(b, &new_batches);
    // More than the margin left: the first batch past what is left of the allowance is over
    // quota (the allowance is stored, so known), not a republication still being counted.
    let more = (0..(2 * REPUBLICATION_MARGIN_ENTRIES as usize))
        .map(|i| record_until(&[&format!("more_{i}")], true, T0 + 90 * DAY_MS))
        .collect();
    a.add_records(more, "ana").unwrap();
    let more = a.publish().unwrap();
    let outcomes: Vec<_> = more.iter().map(|batch| b.ingest(&batch.to_wire()).unwrap()).collect();
    let refused = outcomes.iter().position(|o| *o == IngestOutcome::QuotaExceeded);
    let refused = refused.unwrap_or_else(|| panic!("the allowance is used up: {outcomes:?}"));
    assert!(outcomes[..refused].iter().all(|o| matches!(o, IngestOutcome::Applied { .. })));
    assert!(!outcomes.contains(&IngestOutcome::RepublicationOverQuota), "{outcomes:?}");
    // Offered again, it is refused on its claim, before its signature is checked, as over
    // quota: what its sender's budget of ignorable gossip pays for.
    let before = b.counters();
    let again = b.ingest(&more[refused].to_wire()).unwrap();
    assert_eq!(again, IngestOutcome::QuotaExceeded);
    let after = b.counters();
    assert_eq!(after.refused_unverified, before.refused_unverified + 1);
    assert_eq!(after.quota_refused, before.quota_refused + 1);
}

#[test]
fn the_takedown_facts_outlive_a_change_of_the_node_key() {
    let dir = TempDir::new("key-change-facts");
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    let id = a.add_record(record_until(&["facts_kept"], true, T0 + 90 * DAY_MS), "ana").unwrap();
    a.publish().unwrap();
    clock.advance(60_000);
    a.set_status(id, crossmatch_protocol::Status::Referred, "ana").unwrap();
    let token = a.token(&account("facts_kept"));
    let (identification, statuses) =
        (a.identification(&token).unwrap(), a.takedown_statuses(&token).unwrap());
    let learned =
        identification.as_ref().and_then(|i| i.learned_from(&key(1).public_key().to_bytes()));
    assert_eq!(learned, Some(T0));
    assert_eq!(statuses.assertions.len(), 1, "{statuses:?}");
    // A store an earlier build wrote has no facts key: the node's key, unchanged, derives the
    // one its pseudonyms were made with.
    let mut txn = a.store().txn();
    txn.remove(keys::facts_key());
    txn.commit().unwrap();
    let head = a.own_final_head().unwrap();
    drop(a);
    let a = Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).unwrap();
    assert!(a.store().get::<[u8; 32]>(&keys::facts_key()).unwrap().is_some());
    assert_eq!(a.identification(&token).unwrap(), identification);
    drop(a);
    // Opened under the new key, the node still finds what it knew and what was asserted.
    let a = Engine::open(dir.path(), config(11, roster(Some(head))), clock.clone()).unwrap();
    assert!(a.own_key_change().is_some());
    assert_eq!(a.identification(&token).unwrap(), identification);
    assert_eq!(a.takedown_statuses(&token).unwrap(), statuses);
    // A store without a facts key whose feed is signed with the new key: opened by mistake
    // under the retired key it is refused and keeps no key derived from that one; opened under
    // the new key it keeps the new key's.
    let mut txn = a.store().txn();
    txn.remove(keys::facts_key());
    txn.commit_durable().unwrap();
    drop(a);
    assert!(Engine::open(dir.path(), EngineConfig::for_test(1), clock.clone()).is_err());
    let a = Engine::open(dir.path(), config(11, roster(Some(head))), clock).unwrap();
    let derived = blake3::derive_key(FACTS_KEY_CONTEXT, &key(11).seed());
    assert_eq!(a.store().get::<[u8; 32]>(&keys::facts_key()).unwrap(), Some(derived));
}
