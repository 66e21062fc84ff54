//! The engine's bounded background work: a rotation and a removed member's withdrawal carried
//! out a step at a time ([`SLICE_ROWS`] rows at most per call), with other calls (ingest, new
//! records, removals) between any two steps; matching is right between any two steps, and a
//! crash between two steps resumes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crossmatch_node::clock::DAY_MS;
use crossmatch_node::engine::rotation::Stage;
use crossmatch_node::engine::{
    Engine, EngineConfig, IngestOutcome, Rotation, SLICE_ROWS, Withdrawal,
};
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::store::{AlertState, RemoteAdd, keys};
use crossmatch_node::test_support::{
    FEDERATION, ManualClock, SECRET, T0, TempDir, account, key, members, record, record_until,
};
use crossmatch_protocol::{
    BatchPosition, Entry, EpochKey, FederationSecret, Op, RetractReason, Tag, Token, VerifiedBatch,
    sign_batch,
};

const NEW_SECRET: FederationSecret = FederationSecret::from_bytes([0x77; 32]);
const GRACE: u64 = 2 * DAY_MS;
/// More records than two steps take.
const RECORDS: usize = 2 * SLICE_ROWS + 500;

fn open(n: u8, dir: &TempDir, clock: &Arc<ManualClock>) -> Engine {
    Engine::open(dir.path(), EngineConfig::for_test(n), clock.clone()).unwrap()
}

fn handles(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}_{i}")).collect()
}

fn share_all(engine: &mut Engine, handles: &[String]) {
    for chunk in handles.chunks(500) {
        let records =
            chunk.iter().map(|h| record_until(&[h.as_str()], true, T0 + 90 * DAY_MS)).collect();
        engine.add_records(records, "ana").unwrap();
    }
}

fn wires(engine: &mut Engine) -> Vec<Vec<u8>> {
    engine.publish().unwrap().iter().map(VerifiedBatch::to_wire).collect()
}

fn deliver(to: &mut Engine, wires: &[Vec<u8>]) {
    for wire in wires {
        let outcome = to.ingest(wire).unwrap();
        assert!(matches!(outcome, IngestOutcome::Applied { .. }), "{outcome:?}");
    }
}

/// Alerts by the records they are for: (id, state, counterparts).
fn alerts_by_record(engine: &Engine) -> BTreeMap<Vec<u64>, Vec<(u64, AlertState, usize)>> {
    let mut out: BTreeMap<Vec<u64>, Vec<(u64, AlertState, usize)>> = BTreeMap::new();
    for alert in engine.alerts(None, None).unwrap() {
        out.entry(alert.records.clone()).or_default().push((
            alert.id,
            alert.state,
            alert.counterparts.len(),
        ));
    }
    out
}

fn token(secret: &FederationSecret, epoch: u32, handle: &str) -> Token {
    EpochKey::derive(&FEDERATION, secret, epoch).token(&account(handle))
}

#[test]
fn every_match_holds_between_any_two_rotation_steps() {
    let clock = Arc::new(ManualClock::new(T0));
    let (dir_a, dir_b) = (TempDir::new("slices-rotation-a"), TempDir::new("slices-rotation-b"));
    let (mut a, mut b) = (open(1, &dir_a, &clock), open(2, &dir_b, &clock));
    let held = handles("held", RECORDS);
    share_all(&mut a, &held);
    share_all(&mut b, &held);
    wires(&mut b);
    deliver(&mut b, &wires(&mut a));
    let before = alerts_by_record(&b);
    assert_eq!(before.len(), RECORDS);
    assert!(before.values().all(|alerts| alerts.len() == 1 && alerts[0].2 == 1));

    // B rotates; A (no new secret yet) keeps adding under the old epoch, B's grace period.
    let rotation =
        Rotation { new_epoch: 2, new_secret: NEW_SECRET, changeover_at_ms: T0, grace_ms: GRACE };
    b.begin_rotation(rotation).unwrap();
    assert_eq!(b.epoch(), 2, "the changeover switches at once");
    let mut steps = 0;
    let mut late = Vec::new();
    let mut removed = None;
    loop {
        // Between two steps: a new match under the old epoch, with a record B makes now.
        let handle = format!("late_{steps}");
        b.add_record(record_until(&[&handle], false, T0 + 90 * DAY_MS), "ben").unwrap();
        a.add_record(record_until(&[&handle], true, T0 + 90 * DAY_MS), "ana").unwrap();
        deliver(&mut b, &wires(&mut a));
        late.push(handle);
        // And, once, a removal of a record not tokenised again yet.
        let stage = b.rotation_view().unwrap().stage;
        if removed.is_none() && matches!(stage, Stage::Retokenising { after } if after > 0) {
            removed = Some(RECORDS as u64);
            b.remove_record(RECORDS as u64, RetractReason::NoLongerHeld, "ben").unwrap();
        }
        // Every match is there, once, under the id it had; none closed or reopened.
        let now = alerts_by_record(&b);
        for (records, alerts) in &before {
            if removed.is_some_and(|id| records == &vec![id]) {
                continue;
            }
            let found = now.get(records).unwrap_or_else(|| panic!("lost at step {steps}"));
            assert_eq!(found.len(), 1, "doubled at step {steps}: {found:?}");
            assert_eq!(found[0].0, alerts[0].0, "the alert keeps its id");
            assert_eq!(found[0].2, 1, "one counterpart at step {steps}");
            assert!(matches!(found[0].1, AlertState::Open | AlertState::Updated), "{found:?}");
        }
        let open = now.values().flatten().filter(|a| a.1 != AlertState::Closed).count();
        assert_eq!(open, RECORDS - usize::from(removed.is_some()) + late.len(), "step {steps}");
        if !b.rotation_step().unwrap() {
            break;
        }
        steps += 1;
        let view = b.rotation_view();
        assert!(steps < 100, "the rotation ends: {view:?}");
    }
    assert!(steps >= 4, "it took several steps: {steps}");
    assert!(removed.is_some());
    assert_eq!(b.rotation_view().unwrap().stage, Stage::Switched);

    // The removal went out under the new epoch with the new token, and under the old one with
    // the old token; no old token went out under the new epoch.
    let removed_handle = format!("held_{}", RECORDS - 1);
    let mut retracted = Vec::new();
    for batch in b.publish().unwrap() {
        for entry in batch.entries().flatten() {
            if let Op::Retract(retract) = &entry.op {
                retracted.push((batch.header().epoch, retract.token));
            }
            if let Op::Add(add) = &entry.op {
                assert_eq!(batch.header().epoch, 2);
                assert_ne!(add.token, token(&SECRET, 1, &held[0]));
            }
        }
    }
    retracted.sort_unstable();
    assert_eq!(
        retracted,
        vec![(1, token(&SECRET, 1, &removed_handle)), (2, token(&NEW_SECRET, 2, &removed_handle))]
    );
}

#[test]
fn a_removed_members_adds_are_withdrawn_in_steps_and_resume_after_a_crash() {
    let clock = Arc::new(ManualClock::new(T0));
    let dirs = [1, 2, 3].map(|n| TempDir::new(&format!("slices-withdraw-{n}")));
    let mut a = open(1, &dirs[0], &clock);
    let mut c = open(3, &dirs[2], &clock);
    let mut b = open(2, &dirs[1], &clock);
    let held = handles("held", RECORDS);
    share_all(&mut b, &held);
    // A shares every account, C the first half and one that B holds only later.
    share_all(&mut a, &held);
    share_all(&mut c, &held[..RECORDS / 2]);
    c.add_record(record_until(&["later"], true, T0 + 90 * DAY_MS), "cid").unwrap();
    deliver(&mut b, &wires(&mut a));
    deliver(&mut b, &wires(&mut c));
    let before = alerts_by_record(&b);
    assert_eq!(before.len(), RECORDS);

    // C leaves. Its new batches are refused at once, and its adds not withdrawn yet raise
    // nothing new: B's new record of an account C added matches nobody.
    let without_c: Vec<_> =
        members(3).into_iter().filter(|m| m.key != key(3).public_key()).collect();
    assert_eq!(b.set_members(without_c.clone()).unwrap().withdrawn_origins, 1);
    let later = b.add_record(record_until(&["later"], false, T0 + 90 * DAY_MS), "ben").unwrap();
    assert!(b.alerts(None, None).unwrap().iter().all(|alert| !alert.records.contains(&later)));
    c.add_record(record_until(&["after_leaving"], true, T0 + 90 * DAY_MS), "cid").unwrap();
    assert_eq!(b.ingest(&wires(&mut c)[0]).unwrap(), IngestOutcome::UnknownOrigin);

    // One bounded step, then a crash.
    let c_adds = |engine: &Engine| {
        let all = engine.store().scan::<RemoteAdd>(&keys::all_remote_adds()).unwrap();
        let c_key = key(3).public_key().to_bytes();
        all.iter()
            .filter(|(k, _)| keys::parse_remote_add(k).is_some_and(|(_, o)| o == c_key))
            .count()
    };
    let (first, more) = b.withdrawal_step().unwrap().unwrap();
    assert!(more);
    assert_eq!(first.withdrawn_adds, SLICE_ROWS, "one slice");
    assert_eq!(c_adds(&b), RECORDS / 2 + 1 - SLICE_ROWS);
    drop(b);
    let mut config = EngineConfig::for_test(2);
    config.members = without_c.clone();
    let mut b = Engine::open(dirs[1].path(), config, clock.clone()).unwrap();
    // Resumed: nothing of C counts meanwhile, and the steps finish it.
    let rest = b.finish_withdrawals().unwrap();
    assert_eq!(rest.withdrawn_adds, RECORDS / 2 + 1 - SLICE_ROWS);
    assert_eq!(rest.withdrawn_origins, 1);
    assert_eq!(c_adds(&b), 0);
    assert!(b.withdrawal_step().unwrap().is_none(), "nothing left");
    // Every alert is still there under its id, with A as its one counterpart.
    let after = alerts_by_record(&b);
    for (records, alerts) in &before {
        let found = &after[records];
        assert_eq!((found.len(), found[0].0, found[0].2), (1, alerts[0].0, 1), "{found:?}");
    }
    assert!(after.keys().all(|records| records != &vec![later]), "C's add never matched");
    // C's mark stays, done: the same roster again marks nothing, a roster with C removes it.
    let mark = keys::withdrawal(&key(3).public_key().to_bytes());
    assert_eq!(b.set_members(without_c).unwrap().withdrawn_origins, 0);
    assert!(b.withdrawal_step().unwrap().is_none());
    let done = Withdrawal { next: None, done: true };
    assert_eq!(b.store().get::<Withdrawal>(&mark).unwrap(), Some(done));
    b.set_members(members(3)).unwrap();
    assert!(b.store().get_raw(&mark).unwrap().is_none());
}

#[test]
fn a_withdrawal_step_reads_a_bounded_slice_whatever_the_batches_hold() {
    let clock = Arc::new(ManualClock::new(T0));
    let dirs = [2, 3].map(|n| TempDir::new(&format!("slices-withdraw-bounded-{n}")));
    let mut b = open(2, &dirs[0], &clock);
    let mut c = open(3, &dirs[1], &clock);
    // C adds 600 accounts, then retracts them all: B holds 1,200 entries of C's, no live add.
    let ids = {
        let gone = handles("gone", 600);
        let records =
            gone.iter().map(|h| record_until(&[h.as_str()], true, T0 + 90 * DAY_MS)).collect();
        c.add_records(records, "cid").unwrap()
    };
    deliver(&mut b, &wires(&mut c));
    for id in ids {
        c.remove_record(id, RetractReason::NoLongerHeld, "cid").unwrap();
    }
    deliver(&mut b, &wires(&mut c));
    let without_c: Vec<_> =
        members(3).into_iter().filter(|m| m.key != key(3).public_key()).collect();
    assert_eq!(b.set_members(without_c).unwrap().withdrawn_origins, 1);
    // A step reads at most SLICE_ROWS entries, redacted adds and retractions too.
    let (first, more) = b.withdrawal_step().unwrap().unwrap();
    assert_eq!((first.withdrawn_adds, first.withdrawn_origins, more), (0, 0, true));
    let (second, more) = b.withdrawal_step().unwrap().unwrap();
    assert_eq!((second.withdrawn_adds, second.withdrawn_origins, more), (0, 1, false));
}

#[test]
fn a_removed_members_tags_are_withdrawn_in_slices_too() {
    let clock = Arc::new(ManualClock::new(T0));
    let dirs = [2, 3].map(|n| TempDir::new(&format!("slices-tags-{n}")));
    let mut b = open(2, &dirs[0], &clock);
    let mut c = open(3, &dirs[1], &clock);
    // C shares one account, then tags more tokens than one slice withdraws.
    c.add_record(record_until(&["tagger"], true, T0 + 90 * DAY_MS), "cid").unwrap();
    let published = c.publish().unwrap();
    let last = published.last().unwrap();
    let (mut seq, mut prev, generation) =
        (last.header().seq, last.hash(), last.header().generation);
    deliver(&mut b, &published.iter().map(VerifiedBatch::to_wire).collect::<Vec<_>>());
    let tags = SLICE_ROWS + SLICE_ROWS / 2;
    for chunk in (0..tags as u32).collect::<Vec<_>>().chunks(250) {
        let entries: Vec<Entry> = chunk
            .iter()
            .map(|n| {
                let mut token = [0u8; 32];
                token[..4].copy_from_slice(&n.to_be_bytes());
                let tag =
                    Tag { token: Token(token), community: [3; 16], expires_at_ms: T0 + DAY_MS };
                Entry { salt: [1; 16], op: Op::Tag(tag) }
            })
            .collect();
        seq += 1;
        let position = BatchPosition { generation, seq, prev, epoch: 1, created_at_ms: T0 };
        let batch = sign_batch(&key(3), &FEDERATION, position, &entries).unwrap();
        prev = batch.hash();
        deliver(&mut b, &[batch.to_wire()]);
    }
    assert_eq!(b.remote_tags().unwrap().len(), tags);

    // C leaves. Its stored batches' 1,501 entries (the add and the tags) are read in the first
    // slice and half the second; then its tags go, in what is left of the second slice and in
    // slices of their own.
    let without_c: Vec<_> =
        members(3).into_iter().filter(|m| m.key != key(3).public_key()).collect();
    assert_eq!(b.set_members(without_c).unwrap().withdrawn_origins, 1);
    let (first, more) = b.withdrawal_step().unwrap().unwrap();
    assert!(more, "entries are left");
    assert_eq!((first.withdrawn_adds, first.withdrawn_origins), (1, 0));
    assert_eq!(b.remote_tags().unwrap().len(), tags);
    let left_in_batches = tags + 1 - SLICE_ROWS;
    let mut left = tags - (SLICE_ROWS - left_in_batches);
    let (second, more) = b.withdrawal_step().unwrap().unwrap();
    assert!(more, "tags are left");
    assert_eq!((second.withdrawn_adds, second.withdrawn_origins), (0, 0));
    assert_eq!(b.remote_tags().unwrap().len(), left);
    while left > SLICE_ROWS {
        assert!(b.withdrawal_step().unwrap().unwrap().1);
        left -= SLICE_ROWS;
        assert_eq!(b.remote_tags().unwrap().len(), left);
    }
    let (last, more) = b.withdrawal_step().unwrap().unwrap();
    assert!(!more);
    assert_eq!((last.withdrawn_adds, last.withdrawn_origins), (0, 1));
    assert!(b.remote_tags().unwrap().is_empty());
    assert!(b.withdrawal_step().unwrap().is_none(), "nothing left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_slice_worker_carries_a_rotation_in_steps_while_it_serves() {
    let root = TempDir::new("slices-daemon");
    let mut fed = LocalFederation::new(root.path(), &["DE", "FR", "IT"]);
    fed.start(0).await.unwrap();
    let node = fed.node(0).unwrap().clone();
    let records =
        handles("daemon", SLICE_ROWS + 200).iter().map(|h| record(&[h.as_str()], true)).collect();
    node.add_records(records, "ana".into()).await.unwrap();
    let changeover_at_ms = node.now_ms();
    let rotation =
        Rotation { new_epoch: 2, new_secret: NEW_SECRET, changeover_at_ms, grace_ms: GRACE };
    let view = node.begin_rotation(rotation).await.unwrap().unwrap();
    assert_eq!(view.stage, Stage::Retokenising { after: 0 }, "the changeover is one step");
    // The slice worker carries it on, a step at a time, while the API answers.
    let stage = || async {
        node.with_engine(|engine| engine.rotation_view().map(|view| view.stage)).await.unwrap()
    };
    wait_until("the rotation reaches its grace period", Duration::from_secs(120), || async {
        node.status().await.is_ok() && stage().await == Some(Stage::Switched)
    })
    .await
    .unwrap();
    fed.stop_all().await.unwrap();
}
