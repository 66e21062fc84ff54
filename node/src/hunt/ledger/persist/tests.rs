//! The rows' unit tests: rebuilding, purging, freeing slots, a purge cut short.

use super::*;
use crate::hunt::ledger::{AccountIndex, Window};
use crate::hunt::observation::parse_line;

const NOW: u64 = 1_800_000_000_000;

fn ingest(ledger: &mut Ledger, lines: &str, touched: &mut Touched) {
    for (n, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let parsed = parse_line(line.trim(), n as u64 + 1, NOW, 0).unwrap();
        ledger.ingest_tracked(&parsed.observation, touched);
    }
}

/// Applies rows to an accumulated "store" of rows, as the store does by key.
fn apply(store: &mut HashMap<String, String>, rows: &LedgerRows) {
    let mut put = |key: String, value: Option<String>| match value {
        Some(value) => store.insert(key, value),
        None => store.remove(&key),
    };
    for (k, v) in &rows.accounts {
        put(format!("n{k}"), v.as_ref().map(|v| format!("{v:?}")));
    }
    for (k, v) in &rows.aliases {
        put(format!("l{k}"), v.map(|v| v.to_string()));
    }
    for (k, v) in &rows.day_accounts {
        put(format!("d{k:?}"), v.as_ref().map(|v| format!("{v:?}")));
    }
    for (k, v) in &rows.edges {
        put(format!("y{k:?}"), v.as_ref().map(|v| format!("{v:?}")));
    }
    for (k, v) in &rows.seen {
        put(format!("s{k:?}"), v.as_ref().map(|v| format!("{v:?}")));
    }
    for (k, v) in &rows.follows {
        put(format!("g{k}"), v.as_ref().map(|v| format!("{v:?}")));
    }
}

const CORPUS: &str = r#"
    {"platform":"x","account":"@a","at":1600000000000,"post_id":"1","mentions":["@b","@c"],"urls":["https://e.org/1"]}
    {"platform":"x","account":"@b","at":1600000000000,"post_id":"2","repost_of":"@a"}
    {"platform":"x","account":"@old","at":1600000000000,"post_id":"3","reply_to":"@a"}
    {"platform":"x","account":"@new","account_id":"9","at":1600090000000,"post_id":"4","repost_of":"@a"}
    {"platform":"x","account":"@old","account_id":"9","at":1600050000000,"post_id":"5"}
    {"platform":"x","account":"@b","at":1600100000000,"follows":["@a","@c"]}"#;

#[test]
fn rows_of_every_batch_rebuild_the_same_ledger() {
    let mut ledger = Ledger::default();
    let mut store = HashMap::new();
    let mut all = LedgerRows::default();
    // One batch per line, as a client sending small chunks would.
    for line in CORPUS.lines().filter(|l| !l.trim().is_empty()) {
        let mut touched = Touched::default();
        ingest(&mut ledger, line, &mut touched);
        let rows = ledger.delta(&touched);
        apply(&mut store, &rows);
        extend(&mut all, rows);
    }
    // Later rows of a key win, as in the store.
    let rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(all));
    let window = Window { first: Day(0), last: Day(u32::MAX) };
    let activity = ledger.window_activity(window);
    assert_eq!(rebuilt.window_activity(window), activity);
    assert_eq!(
        rebuilt.window_edges(window, &activity, 0.5),
        ledger.window_edges(window, &activity, 0.5)
    );
    assert_eq!(rebuilt.post_count(), ledger.post_count());
    assert_eq!(alias_count(&rebuilt), alias_count(&ledger));
    let old = rebuilt.account_of(&"v1|account|x|old".parse().unwrap()).unwrap();
    assert_eq!(rebuilt.display(old).unwrap().as_str(), "v1|account|x|new");
    let merged = ledger.account_of(&"v1|account|x|old".parse().unwrap()).unwrap();
    assert_eq!(rebuilt.account_evidence(old, window).len(), 3, "posts 3, 4 and 5");
    assert_eq!(ledger.account_evidence(merged, window).len(), 3);
    // Ingesting the corpus again into the rebuilt ledger touches nothing.
    let mut again = rebuilt;
    let mut touched = Touched::default();
    ingest(&mut again, CORPUS, &mut touched);
    // (An older follow snapshot only notes when its author was seen.)
    assert!(touched.seen.is_empty() && touched.day_accounts.is_empty(), "{touched:?}");
    assert!(touched.edges.is_empty() && touched.follows.is_empty(), "{touched:?}");
}

fn last_wins(all: LedgerRows) -> LedgerRows {
    fn dedup<K: Ord + Clone, V>(rows: Vec<(K, Option<V>)>) -> Vec<(K, Option<V>)> {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in rows {
            map.insert(k, v);
        }
        map.into_iter().collect()
    }
    LedgerRows {
        accounts: dedup(all.accounts),
        aliases: dedup(all.aliases),
        day_accounts: dedup(all.day_accounts),
        edges: dedup(all.edges),
        seen: dedup(all.seen),
        follows: dedup(all.follows),
    }
}

#[test]
fn a_purge_cut_short_inside_a_merged_group_is_completed_by_the_next() {
    // @q joins @p's account by its id: @p's account, made first, keeps the group, so the
    // purge writes the group's root before the account it absorbed.
    const MERGED: &str = r#"
    {"platform":"x","account":"@p","account_id":"7","at":1600000000000,"post_id":"10"}
    {"platform":"x","account":"@q","at":1600010000000,"post_id":"11"}
    {"platform":"x","account":"@q","account_id":"7","at":1600020000000,"post_id":"12"}"#;
    let mut ledger = Ledger::default();
    let mut touched = Touched::default();
    ingest(&mut ledger, &format!("{CORPUS}\n{MERGED}"), &mut touched);
    let held = ledger.delta(&touched);
    let a: Canonical = "v1|account|x|a".parse().unwrap();
    let is_record = |names: &[&Canonical]| names.contains(&&a);
    let purge = ledger.purge_unrecorded(Day(u32::MAX), &is_record);
    let names = |ledger: &Ledger| ledger.accounts.iter().filter(|state| state.is_named()).count();
    let whole = names(&ledger);
    // Cut the purge after each of its account rows in turn, as a crash between two slices
    // would.
    assert!(purge.accounts.len() > 1, "{:?}", purge.accounts);
    for cut in 0..purge.accounts.len() {
        let mut rows = held.clone();
        rows.aliases.extend(purge.aliases.iter().cloned());
        rows.day_accounts.extend(purge.day_accounts.iter().cloned());
        rows.edges.extend(purge.edges.iter().cloned());
        rows.seen.extend(purge.seen.iter().cloned());
        rows.follows.extend(purge.follows.iter().cloned());
        rows.accounts.extend(purge.accounts[..cut].iter().cloned());
        let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(rows));
        rebuilt.purge_unrecorded(Day(u32::MAX), &is_record);
        assert_eq!(names(&rebuilt), whole, "cut after {cut} account rows");
    }
}

#[test]
fn unrecorded_accounts_lose_their_old_days_and_then_their_names() {
    let mut ledger = Ledger::default();
    ingest(&mut ledger, CORPUS, &mut Touched::default());
    let a: Canonical = "v1|account|x|a".parse().unwrap();
    let is_record = |names: &[&Canonical]| names.contains(&&a);
    let rows = ledger.purge_unrecorded(Day(u32::MAX), &is_record);
    let window = Window { first: Day(0), last: Day(u32::MAX) };
    let activity = ledger.window_activity(window);
    let account_a = ledger.account_of(&a).unwrap();
    assert_eq!(activity.len(), 1, "only the record's counts stay: {activity:?}");
    assert_eq!(activity[&account_a].originals, 1);
    // @b and @c stay named: the record's edges point at them. @old (renamed @new) is gone.
    assert!(ledger.account_of(&"v1|account|x|b".parse().unwrap()).is_some());
    assert!(ledger.account_of(&"v1|account|x|old".parse().unwrap()).is_none(), "forgotten");
    assert!(ledger.account_of(&"v1|account|x|new".parse().unwrap()).is_none());
    assert!(ledger.account_of(&"v1|account_id|x|9".parse().unwrap()).is_none());
    // The seen hashes of the posts whose counts went go with them: only the record's stays.
    assert_eq!(ledger.post_count(), 1, "the seen hashes go with the counts");
    assert_eq!(rows.seen.len(), 4, "{:?}", rows.seen);
    assert!(rows.seen.iter().all(|(_, row)| row.is_none()), "deleted, not rewritten");
    assert!(!rows.aliases.is_empty() && rows.aliases.iter().all(|(_, v)| v.is_none()));
    // Edges from the record stay; its targets are kept as slots (@b, @c were mentioned).
    assert_eq!(ledger.window_edges(window, &activity, 0.5).len(), 2);
    assert_eq!(ledger.account_evidence(account_a, window).len(), 1);
    // A purged post sent again is counted again, as new, and the next purge drops it again;
    // the record's post is still a duplicate.
    let again = r#"{"platform":"x","account":"@b","at":1600000000000,"post_id":"2","repost_of":"@a"}
        {"platform":"x","account":"@a","at":1600000000000,"post_id":"1"}"#;
    ingest(&mut ledger, again, &mut Touched::default());
    assert_eq!(ledger.post_count(), 2);
    let b = ledger.account_of(&"v1|account|x|b".parse().unwrap()).unwrap();
    assert_eq!(ledger.window_activity(window)[&b].reposts, 1);
    assert_eq!(ledger.window_activity(window)[&account_a].originals, 1, "not counted twice");
    ledger.purge_unrecorded(Day(u32::MAX), &is_record);
    assert_eq!(ledger.post_count(), 1);
    assert!(!ledger.window_activity(window).contains_key(&b));
}

#[test]
fn a_seen_hash_counted_under_an_index_merged_into_a_record_stays() {
    // @old's post 3 is counted under @old's own index, merged later into id 9's account.
    let mut ledger = Ledger::default();
    ingest(&mut ledger, CORPUS, &mut Touched::default());
    let nine: Canonical = "v1|account_id|x|9".parse().unwrap();
    let rows = ledger.purge_unrecorded(Day(u32::MAX), &|names| names.contains(&&nine));
    assert_eq!(ledger.post_count(), 3, "posts 3, 4 and 5 stay; @a's and @b's go");
    assert_eq!(rows.seen.iter().filter(|(_, row)| row.is_none()).count(), 2);
    let counted: u32 = ledger
        .window_activity(Window { first: Day(0), last: Day(u32::MAX) })
        .values()
        .map(|activity| activity.posts())
        .sum();
    assert_eq!(counted, 3);
}

#[test]
fn a_seen_row_stored_before_authors_were_kept_reads_as_naming_none() {
    #[derive(Serialize)]
    struct Before {
        evidence: Option<(String, Vec<String>)>,
    }
    let bytes = crate::store::encode(&Before { evidence: Some(("7".into(), vec![])) });
    let row: SeenRow = ciborium::de::from_reader(bytes.as_slice()).unwrap();
    assert_eq!(row, SeenRow { evidence: Some(("7".into(), vec![])), author: None });
    let now = crate::store::encode(&SeenRow { evidence: None, author: Some(3) });
    let read: SeenRow = ciborium::de::from_reader(now.as_slice()).unwrap();
    assert_eq!(read.author, Some(3));
}

#[test]
fn a_seen_row_names_its_author_and_one_that_does_not_stays_until_the_general_retention() {
    let mut ledger = Ledger::default();
    let mut touched = Touched::default();
    ingest(&mut ledger, CORPUS, &mut touched);
    let mut rows = ledger.delta(&touched);
    assert_eq!(rows.seen.len(), 5);
    for (_, row) in &rows.seen {
        let author = row.as_ref().and_then(|row| row.author).unwrap();
        assert!(ledger.accounts.get(author as usize).is_some_and(AccountState::is_named));
    }
    // Rows written before authors were kept: a rebuilt ledger keeps their hashes through the
    // shorter retention, and drops them with their days.
    for (_, row) in &mut rows.seen {
        if let Some(row) = row {
            row.author = None;
        }
    }
    let mut older = Ledger::from_rows(LedgerLimits::default(), rows);
    let purge = older.purge_unrecorded(Day(u32::MAX), &|_| false);
    assert!(!purge.seen.is_empty(), "the evidence went: its rows are rewritten");
    assert!(purge.seen.iter().all(|(_, row)| row.as_ref().is_some_and(|row| row.author.is_none())));
    assert_eq!(older.post_count(), 5, "an author not named keeps its post's hash");
    older.purge_before(Day(u32::MAX));
    assert_eq!(older.post_count(), 0);
}

const DAY: u64 = 86_400_000;
const START: u64 = 1_600_000_000_000;

/// `count` accounts new on `day`, each posting once and mentioning the one before it.
fn newcomers(day: u64, count: u64) -> String {
    let at = START + day * DAY;
    (0..count)
        .map(|i| {
            let account = format!(r#""platform":"x","account":"@u{day}x{i}","at":{at}"#);
            let mention = match i {
                0 => String::new(),
                _ => format!(r#","mentions":["@u{day}x{}"]"#, i - 1),
            };
            format!(r#"{{{account},"post_id":"{day}-{i}"{mention}}}"#) + "\n"
        })
        .collect()
}

fn extend(all: &mut LedgerRows, rows: LedgerRows) {
    all.accounts.extend(rows.accounts);
    all.aliases.extend(rows.aliases);
    all.day_accounts.extend(rows.day_accounts);
    all.edges.extend(rows.edges);
    all.seen.extend(rows.seen);
    all.follows.extend(rows.follows);
}

fn account(handle: &str) -> Canonical {
    format!("v1|account|x|{handle}").parse().unwrap()
}

#[test]
fn forgotten_accounts_free_their_slots_and_newcomers_take_them() {
    let mut ledger = Ledger::default();
    let mut all = LedgerRows::default();
    let never = |_: &[&Canonical]| false;
    // Thirty days of 100 new accounts a day, the last three days kept.
    for day in 0..30 {
        let mut touched = Touched::default();
        ingest(&mut ledger, &newcomers(day, 100), &mut touched);
        extend(&mut all, ledger.delta(&touched));
        let first_kept = Day::of_ms(START + day * DAY).0.saturating_sub(2);
        extend(&mut all, ledger.purge_unrecorded(Day(first_kept), &never));
        // Three days' accounts in use, and the slots of a fourth that the newest took.
        let in_use = ledger.account_count() - ledger.free_count();
        assert_eq!(in_use, 100 * (day as usize + 1).min(3), "day {day}");
        assert!(ledger.account_count() <= 400, "day {day}: {}", ledger.account_count());
    }
    assert!(ledger.account_of(&account("u26x0")).is_none(), "forgotten");
    assert!(ledger.account_of(&account("u27x0")).is_some(), "kept");
    // The store's rows give the same ledger, down to the next slot handed out.
    let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(all.clone()));
    assert_eq!(rebuilt.account_count(), ledger.account_count());
    assert_eq!(rebuilt.free_count(), ledger.free_count());
    let stored = last_wins(all).accounts.iter().filter(|(_, row)| row.is_some()).count();
    assert_eq!(stored, ledger.account_count() - ledger.free_count(), "freed rows deleted");
    let window = Window { first: Day(0), last: Day(u32::MAX) };
    assert_eq!(rebuilt.window_activity(window), ledger.window_activity(window));
    // A day of fewer newcomers takes free slots, lowest first, in both alike.
    let (mut touched, mut again) = (Touched::default(), Touched::default());
    ingest(&mut ledger, &newcomers(30, 10), &mut touched);
    ingest(&mut rebuilt, &newcomers(30, 10), &mut again);
    let newcomer = account("u30x9");
    assert_eq!(ledger.account_of(&newcomer), rebuilt.account_of(&newcomer));
    let slot = ledger.account_of(&newcomer).unwrap().0;
    assert!((slot as usize) < ledger.account_count() - 1, "a free slot, not a new one");
    // The reused slots' rows are written anew.
    let rows = ledger.delta(&touched);
    assert!(rows.accounts.iter().any(|(index, row)| *index == slot && row.is_some()));
}

#[test]
fn a_forgotten_account_a_snapshot_follows_keeps_its_slot_until_the_snapshot_goes() {
    let lines = r#"
    {"platform":"x","account":"@r","at":1600000000000,"post_id":"1"}
    {"platform":"x","account":"@x","at":1600000000000,"post_id":"2"}
    {"platform":"x","account":"@r","at":1600000000000,"follows":["@x"]}"#;
    let mut ledger = Ledger::default();
    ingest(&mut ledger, lines, &mut Touched::default());
    let r = account("r");
    let is_record = |names: &[&Canonical]| names.contains(&&r);
    let x = ledger.account_of(&account("x")).unwrap();
    let later = Day(Day::of_ms(1_600_000_000_000).0 + 5);
    let rows = ledger.purge_unrecorded(later, &is_record);
    assert!(ledger.account_of(&account("x")).is_none(), "@x is forgotten");
    assert!(rows.accounts.iter().any(|(index, row)| *index == x.0 && row.is_some()));
    assert_eq!(ledger.free_count(), 0, "@r's snapshot still lists @x's slot");
    // The general retention takes the snapshot; the next purge frees the slot.
    ledger.purge_before_rows(later);
    let rows = ledger.purge_unrecorded(later, &is_record);
    assert_eq!(rows.accounts, vec![(x.0, None)]);
    // The last slot: dropped rather than kept free.
    assert_eq!((ledger.account_count(), ledger.free_count()), (1, 0));
    assert!(ledger.account_of(&r).is_some(), "a record is never forgotten");
}

#[test]
fn a_purge_cut_at_any_row_is_completed_by_the_next_and_frees_the_same_slots() {
    const MERGED: &str = r#"
    {"platform":"x","account":"@p","account_id":"7","at":1600000000000,"post_id":"10"}
    {"platform":"x","account":"@q","at":1600010000000,"post_id":"11"}
    {"platform":"x","account":"@q","account_id":"7","at":1600020000000,"post_id":"12"}
    {"platform":"x","account":"@z","at":1600020000000,"follows":["@q","@b"]}"#;
    let mut ledger = Ledger::default();
    let mut touched = Touched::default();
    ingest(&mut ledger, &format!("{CORPUS}\n{MERGED}\n{}", newcomers(0, 5)), &mut touched);
    let held = ledger.delta(&touched);
    let a = account("a");
    let is_record = |names: &[&Canonical]| names.contains(&&a);
    let purge = ledger.purge_unrecorded(Day(u32::MAX), &is_record);
    assert!(purge.accounts.iter().any(|(_, row)| row.is_none()), "slots are freed");
    // The purge's rows one at a time, in the store's key order (d, g, l, n, s, y), the seen
    // rows it deletes last, in a write of their own (`Hunt::purge`).
    let sorted = last_wins(purge);
    let (seen_gone, seen_rewritten): (Vec<_>, Vec<_>) =
        sorted.seen.into_iter().partition(|(_, row)| row.is_none());
    assert!(!seen_gone.is_empty(), "the purge deletes seen rows");
    let row = LedgerRows::default;
    let mut keyed: Vec<LedgerRows> = Vec::new();
    keyed.extend(
        sorted.day_accounts.into_iter().map(|r| LedgerRows { day_accounts: vec![r], ..row() }),
    );
    keyed.extend(sorted.follows.into_iter().map(|r| LedgerRows { follows: vec![r], ..row() }));
    keyed.extend(sorted.aliases.into_iter().map(|r| LedgerRows { aliases: vec![r], ..row() }));
    keyed.extend(sorted.accounts.into_iter().map(|r| LedgerRows { accounts: vec![r], ..row() }));
    keyed.extend(seen_rewritten.into_iter().map(|r| LedgerRows { seen: vec![r], ..row() }));
    keyed.extend(sorted.edges.into_iter().map(|r| LedgerRows { edges: vec![r], ..row() }));
    keyed.extend(seen_gone.into_iter().map(|r| LedgerRows { seen: vec![r], ..row() }));
    // Whatever the cut, the corpus sent again is never counted twice, even where an author it
    // purged became a record meanwhile (@b, whose repost of @a made an edge).
    let b = account("b");
    let records_later = |names: &[&Canonical]| names.contains(&&a) || names.contains(&&b);
    let resent = format!("{CORPUS}\n{MERGED}");
    let resent_and_purged = |ledger: &Ledger| {
        let mut ledger = ledger.clone();
        ingest(&mut ledger, &resent, &mut Touched::default());
        ledger.purge_unrecorded(Day(u32::MAX), &records_later);
        let activity = ledger.window_activity(Window { first: Day(0), last: Day(u32::MAX) });
        let edges =
            ledger.window_edges(Window { first: Day(0), last: Day(u32::MAX) }, &activity, 0.0);
        let name = |index: AccountIndex| ledger.display(index).unwrap().as_str().to_owned();
        let mut named: HashMap<(String, String), f64> = HashMap::new();
        for ((from, to), weight) in edges {
            *named.entry((name(from), name(to))).or_default() += weight;
        }
        named
    };
    let most = resent_and_purged(&ledger);
    assert!(most.keys().any(|(from, _)| from.ends_with("|b")), "{most:?}");
    // Newcomers come between the reload and the next purge.
    let late = newcomers(1, 12);
    let mut expected = ledger.clone();
    ingest(&mut expected, &late, &mut Touched::default());
    expected.purge_unrecorded(Day(u32::MAX), &is_record);
    let window = Window { first: Day(0), last: Day(u32::MAX) };
    for cut in 0..=keyed.len() {
        let mut stored = held.clone();
        for part in &keyed[..cut] {
            extend(&mut stored, part.clone());
        }
        let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), last_wins(stored.clone()));
        assert_named_slots_held(&rebuilt, cut);
        for (edge, weight) in resent_and_purged(&rebuilt) {
            assert!(weight <= most.get(&edge).copied().unwrap_or(0.0), "{edge:?} at cut {cut}");
        }
        let mut touched = Touched::default();
        ingest(&mut rebuilt, &late, &mut touched);
        assert_named_slots_held(&rebuilt, cut);
        extend(&mut stored, rebuilt.delta(&touched));
        // A rebuild before the next purge reads the same groups (no newcomer inherits a
        // member whose root a cut deleted).
        let between = Ledger::from_rows(LedgerLimits::default(), last_wins(stored.clone()));
        for index in 0..rebuilt.account_count() as u32 {
            let (there, here) =
                (between.root(AccountIndex(index)), rebuilt.root(AccountIndex(index)));
            assert_eq!(there, here, "slot {index}'s group at cut {cut}");
        }
        extend(&mut stored, rebuilt.purge_unrecorded(Day(u32::MAX), &is_record));
        assert_eq!(alias_count(&rebuilt), alias_count(&expected), "cut at {cut}");
        assert_eq!(rebuilt.account_count(), expected.account_count(), "cut at {cut}");
        assert_eq!(rebuilt.free_count(), expected.free_count(), "cut at {cut}");
        assert_eq!(rebuilt.window_activity(window), expected.window_activity(window));
        // The seen hashes the purge dropped stay dropped: a rebuild reads their authors.
        assert_eq!(rebuilt.post_count(), expected.post_count(), "cut at {cut}");
        // No alias names a free slot.
        for (alias, &target) in &rebuilt.aliases {
            assert!(!rebuilt.free.contains(&rebuilt.root_of(target)), "{alias:?} at {cut}");
        }
        // The store holds a row for each slot in use, and none for another.
        let stored = last_wins(stored);
        let rows = stored.accounts.iter().filter(|(_, row)| row.is_some()).count();
        assert_eq!(rows, rebuilt.account_count() - rebuilt.free_count(), "cut at {cut}");
        let seen = stored.seen.iter().filter(|(_, row)| row.is_some()).count();
        assert_eq!(seen, rebuilt.post_count(), "a seen row for each hash held, at {cut}");
        let again = Ledger::from_rows(LedgerLimits::default(), stored);
        assert_eq!(
            (again.account_count(), again.free_count()),
            (rebuilt.account_count(), rebuilt.free_count())
        );
    }
}

/// Every slot a day or a follow snapshot names is in the ledger and not free.
fn assert_named_slots_held(ledger: &Ledger, cut: usize) {
    for account in ledger.slots_named_by_days_and_follows() {
        assert!((account as usize) < ledger.account_count(), "slot {account} at cut {cut}");
        assert!(!ledger.free.contains(&account), "slot {account} named and free at cut {cut}");
    }
}

#[test]
fn rows_a_rebuild_finds_stale_are_written_by_the_next_purge() {
    let lines = r#"
    {"platform":"x","account":"@a","at":1600000000000,"post_id":"1"}
    {"platform":"x","account":"@x","at":1600000000000,"post_id":"2"}
    {"platform":"x","account":"@b","at":1600000000000,"post_id":"3"}"#;
    let mut ledger = Ledger::default();
    let mut touched = Touched::default();
    ingest(&mut ledger, lines, &mut touched);
    let mut stored = last_wins(ledger.delta(&touched));
    let x = ledger.account_of(&account("x")).unwrap().0;
    let b = ledger.account_of(&account("b")).unwrap().0;
    // @x's slot as an older version left it: an empty row, nothing naming it.
    stored.aliases.retain(|(alias, _)| !alias.ends_with("|x"));
    stored.day_accounts.retain(|((_, account), _)| *account != x);
    let empty = AccountRow {
        parent: x,
        handle: None,
        account_id: None,
        first_seen_ms: None,
        last_seen_ms: None,
        languages: Vec::new(),
    };
    // @b's row as a purge cut short leaves it: its parent's row gone.
    let mut orphan = None;
    for (index, row) in &mut stored.accounts {
        match *index {
            i if i == x => *row = Some(empty.clone()),
            i if i == b => {
                let row = row.as_mut().unwrap();
                row.parent = 40;
                orphan = Some(AccountRow { parent: b, ..row.clone() });
            }
            _ => {}
        }
    }
    let mut rebuilt = Ledger::from_rows(LedgerLimits::default(), stored);
    assert_eq!(rebuilt.free_count(), 1, "@x's slot is free");
    assert_eq!(rebuilt.root(AccountIndex(b)), AccountIndex(b), "@b stands alone");
    // Nothing is old enough to purge, yet the purge writes what the rebuild found.
    let mut rows = rebuilt.purge_unrecorded(Day(0), &|_| false).accounts;
    rows.sort_by_key(|(index, _)| *index);
    let mut want = vec![(x, None), (b, orphan)];
    want.sort_by_key(|(index, _)| *index);
    assert_eq!(rows, want);
    assert!(rebuilt.purge_unrecorded(Day(0), &|_| false).accounts.is_empty(), "written once");
}
