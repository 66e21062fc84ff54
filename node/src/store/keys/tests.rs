//! Unit tests of the key layout: every builder's key parses back, parsers refuse other keys,
//! the layout is pinned, and due ranges stop where they should.

use super::*;

const TOKEN: Token = Token([7; 32]);
const ORIGIN: [u8; 32] = [9; 32];

#[test]
fn every_parser_reads_back_what_its_builder_wrote() {
    let id = BatchId::new(ORIGIN, 3, 1 << 40);
    assert_eq!(parse_meta(&meta("own")), Some("own"));
    assert_eq!(parse_record(&record(42)), Some(42));
    assert_eq!(parse_record_expiry(&record_expiry(5, 42)), Some((5, 42)));
    assert_eq!(parse_holding(&holding(&TOKEN, 42)), Some((TOKEN, 42)));
    assert_eq!(parse_outbox(&outbox(17)), Some(17));
    assert_eq!(parse_batch(&batch(&id)), Some(id));
    assert_eq!(parse_batch_hash(&batch_hash(&id)), Some(id));
    assert_eq!(
        parse_batch_location(&batch_location(&BatchHash([4; 32]))),
        Some(BatchHash([4; 32]))
    );
    assert_eq!(parse_chain(&chain(&id.feed)), Some(id.feed));
    assert_eq!(parse_remote_add(&remote_add(&TOKEN, &ORIGIN)), Some((TOKEN, ORIGIN)));
    assert_eq!(parse_own_add(&own_add(&TOKEN)), Some(TOKEN));
    assert_eq!(parse_alert(&alert(&TOKEN)), Some(TOKEN));
    assert_eq!(parse_fork(&fork(&id)), Some(id));
    assert_eq!(parse_expiry(&expiry(99, &id)), Some((99, id)));
    assert_eq!(parse_tombstones(&tombstones(&id)), Some(id));
    assert_eq!(parse_entry_tombstone(&entry_tombstone(&id, 6)), Some((id, 6)));
    assert_eq!(parse_tombstones(&entry_tombstone(&id, 6)), None, "another prefix");
    assert_eq!(parse_quota(&quota(&ORIGIN, 20_000)), Some((ORIGIN, 20_000)));
    assert_eq!(parse_curated_community(&curated_community(12)), Some(12));
    assert_eq!(parse_not_a_target(&not_a_target("v1|account|x|a")), Some("v1|account|x|a"));
    assert_eq!(parse_not_a_target(&curated_community(12)), None);
    assert_eq!(parse_identification(&identification(&ORIGIN)), Some(ORIGIN));
    assert_eq!(parse_takedown(&takedown(&ORIGIN)), Some(ORIGIN));
    assert_eq!(parse_takedown(&identification(&ORIGIN)), None, "another prefix");
    assert_eq!(
        parse_republication_allowance(&republication_allowance(&ORIGIN, 4)),
        Some((ORIGIN, 4))
    );
    assert_eq!(parse_republication_allowance(&rotation_plan()), None);
    assert_eq!(parse_token_pair(&token_pair(&TOKEN)), Some(TOKEN));
    assert_eq!(parse_withdrawal(&withdrawal(&ORIGIN)), Some(ORIGIN));
    assert_eq!(parse_withdrawal(&token_pair(&TOKEN)), None, "another prefix");
    assert!(withdrawal(&ORIGIN).starts_with(&all_withdrawals()));
    assert_eq!(parse_key_change_allowance(&key_change_allowance(&ORIGIN)), Some(ORIGIN));
    assert_eq!(parse_key_change_allowance(&withdrawal(&ORIGIN)), None, "another prefix");
    assert!(key_change_allowance(&ORIGIN).starts_with(&all_key_change_allowances()));
}

#[test]
fn parsers_refuse_other_prefixes_and_lengths() {
    let id = BatchId::new(ORIGIN, 3, 8);
    assert_eq!(parse_fork(&batch(&id)), None, "another prefix");
    assert_eq!(parse_chain(&chain(&id.feed)[..36]), None, "too short");
    assert_eq!(parse_record(&[record(1), vec![0]].concat()), None, "too long");
    assert_eq!(parse_holding(&holdings(&TOKEN)), None, "a scan prefix is not a key");
    assert_eq!(parse_outbox(&[]), None);
}

#[test]
fn the_layout_is_unchanged() {
    // Byte for byte what schema version 1 wrote (and, for `p`, version 2; for `v`, version 5),
    // for every builder: a store keeps working across this code.
    let id = BatchId::new(ORIGIN, 2, 3);
    let (generation, seq) = (2u32.to_be_bytes(), 3u64.to_be_bytes());
    let position = [&ORIGIN[..], &generation, &seq].concat();
    let hash = BatchHash([4; 32]);
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (meta("own"), b"mown".to_vec()),
        (record(42), [&b"r"[..], &42u64.to_be_bytes()].concat()),
        (record_expiry(1, 2), [&b"e"[..], &1u64.to_be_bytes(), &2u64.to_be_bytes()].concat()),
        (holding(&TOKEN, 42), [&b"h"[..], &TOKEN.0, &42u64.to_be_bytes()].concat()),
        (holdings(&TOKEN), [&b"h"[..], &TOKEN.0].concat()),
        (outbox(17), [&b"o"[..], &17u64.to_be_bytes()].concat()),
        (batch(&id), [&b"b"[..], &position].concat()),
        (batch_hash(&id), [&b"k"[..], &position].concat()),
        (batch_location(&hash), [&b"i"[..], &hash.0].concat()),
        (chain(&id.feed), [&b"c"[..], &ORIGIN, &generation].concat()),
        (remote_add(&TOKEN, &ORIGIN), [&b"t"[..], &TOKEN.0, &ORIGIN].concat()),
        (remote_adds(&TOKEN), [&b"t"[..], &TOKEN.0].concat()),
        (remote_add_place(&ORIGIN, 2, 3, &TOKEN), [&b"p"[..], &position, &TOKEN.0].concat()),
        (own_add(&TOKEN), [&b"w"[..], &TOKEN.0].concat()),
        (alert(&TOKEN), [&b"a"[..], &TOKEN.0].concat()),
        (fork(&id), [&b"f"[..], &position].concat()),
        (forks_of(&ORIGIN), [&b"f"[..], &ORIGIN].concat()),
        (expiry(5, &id), [&b"x"[..], &5u64.to_be_bytes(), &position].concat()),
        (entry_tombstone(&id, 4), [&b"z"[..], &position, &4u32.to_be_bytes()].concat()),
        (tombstones(&id), [&b"v"[..], &position].concat()),
        (quota(&ORIGIN, 7), [&b"q"[..], &ORIGIN, &7u32.to_be_bytes()].concat()),
    ];
    for (built, written) in cases {
        assert_eq!(built, written, "key {:?}", prefix_of(&written));
    }
}

#[test]
fn due_ranges_stop_before_the_given_time() {
    let (from, to) = expiries_due(100);
    let id = BatchId::new(ORIGIN, 1, 1);
    assert!(from <= expiry(0, &id) && expiry(99, &id) < to);
    assert!(expiry(100, &id) >= to);
    // A feed's stored batches from a seq on: nothing of another generation.
    let feed = FeedId::new(ORIGIN, 2);
    let (from, to) = feed_batches_from(&feed, 5);
    let at = |generation, seq| batch(&BatchId::new(ORIGIN, generation, seq));
    assert!(at(2, 4) < from && from == at(2, 5) && at(2, u64::MAX) < to);
    assert!(at(3, 0) >= to && at(1, u64::MAX) < from);
    // An origin's, from a place on, every later generation: nothing of a neighbouring origin.
    let (from, to) = origin_batches_from(&ORIGIN, 2, 5);
    assert!(at(2, 4) < from && from == at(2, 5) && at(u32::MAX, u64::MAX) < to);
    let mut next = ORIGIN;
    next[31] = next[31].wrapping_add(1);
    let neighbour = batch(&BatchId::new(next, 0, 0));
    assert!(neighbour >= to);
    // Past an origin's chain heads: its last generation's, not the next origin's first.
    let after = chains_after(&ORIGIN);
    assert!(chain(&FeedId::new(ORIGIN, u32::MAX)) < after);
    assert!(chain(&FeedId::new(next, 0)) >= after);
    let (from, to) = record_expiries_due(100);
    assert!(from <= record_expiry(99, u64::MAX) && record_expiry(99, u64::MAX) < to);
    assert!(record_expiry(100, 0) >= to);
}

#[test]
fn community_share_keys_parse_back_and_group_by_their_prefixes() {
    let (origin, token, pseudonym) = ([1; 32], Token([2; 32]), [3; 16]);
    let tag = remote_tag(&origin, &token, &pseudonym);
    assert_eq!(parse_remote_tag(&tag), Some((origin, token, pseudonym)));
    assert!(tag.starts_with(&remote_tags_of_token(&origin, &token)));
    assert!(tag.starts_with(&remote_tags_of(&origin)));
    assert!(!tag.starts_with(&remote_tags_of(&[9; 32])));
    assert_eq!(parse_remote_tag(&tag[..tag.len() - 1]), None);
    let snapshot = own_snapshot(7, 2);
    assert_eq!(parse_own_snapshot(&snapshot), Some((7, 2)));
    assert!(snapshot.starts_with(&own_snapshots_of(7)));
    assert!(own_snapshot(7, 3) > snapshot && own_snapshot(8, 0) > own_snapshot(7, u64::MAX));
}

#[test]
fn roster_keys_parse_back_sort_by_version_and_keep_their_layout() {
    assert_eq!(parse_roster(&roster(7)), Some(7));
    assert_eq!(roster(7), [&b"V"[..], &7u64.to_be_bytes()].concat());
    assert!(roster(2) < roster(10) && roster(255) < roster(256), "versions sort as numbers");
    assert_eq!(parse_member_record(&member_record("DE")), Some("DE"));
    assert_eq!(member_record("DE"), b"WDE".to_vec());
    assert_eq!(parse_roster(&member_record("DE")), None, "another prefix");
    assert_eq!(parse_member_record(&roster(1)), None, "another prefix");
    assert_eq!(parse_roster(&roster(1)[..5]), None, "too short");
}
