//! A filter of what the store may hold under its token-keyed prefixes, so that looking up a
//! token the store has never held costs no sled read.
//!
//! Most look-ups of an import or an ingest are misses: a new record's token has no holdings,
//! no alert, no remote adds and no identification yet, and a new row has no import row. Each
//! miss is still a walk down sled's tree (a scan also copies the leaf it starts in). The filter
//! answers most of them from memory.
//!
//! It is a Bloom filter over the 32 bytes that follow the prefix byte (a token, a token
//! pseudonym or a row key), for the prefixes in [`FILTERED`], the prefix byte mixed in. The
//! invariant: **every key present in the tree under a filtered prefix is in the filter.**
//! Every write to the tree calls [`Presence::note`] for each key it sets *before* the write is
//! applied, so a reader that can see a key in the tree also sees it in the filter. Removals
//! clear nothing: the filter is a superset, and a key removed only costs a read that finds
//! nothing, until the next open rebuilds the filter from the keys present.
//!
//! The filter is built anew at every open, from every key under the filtered prefixes. A small
//! store (up to [`FILL_AT_OPEN_BYTES`] on disk) is read before the open returns; a larger one,
//! or one whose size cannot be read, on a thread of its own, since reading millions of keys
//! takes seconds (a store of a million remote entries: 5 to 12 s on the 2-core machine).
//! Until the read ends the filter answers "may hold" to everything, so the node reads sled as
//! it did before; writes meanwhile are noted as always, and the read sees every key present
//! when it began that is not removed. When the store's last handle drops, the thread is
//! stopped (at its next slice of keys) and joined first, so sled's own flush on drop still
//! runs.
//!
//! A "may hold" answer sends the look-up to sled as before; only "absent" skips it. So a false
//! positive costs what every look-up cost before, and the filter's size bounds its memory, not
//! its correctness: past a few million keys its false positives rise and it skips less.
//! Remote peers choose the tokens of their adds; tokens built to collide only make the filter
//! answer "may hold" more often.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::keys::prefix;

/// The prefixes whose keys start with 32 bytes the filter covers: holdings, remote adds,
/// alerts, identifications, import rows, token pairs and own adds.
pub const FILTERED: [u8; 7] = [
    prefix::HOLDING,
    prefix::REMOTE_ADD,
    prefix::ALERT,
    prefix::IDENTIFICATION,
    prefix::IMPORT_ROW,
    prefix::TOKEN_PAIR,
    prefix::OWN_ADD,
];

/// log2 of the filter's bits at least: 2^25 bits, 4 MiB. With [`PROBES`] probes, about 0.07 %
/// false positives at 2 million keys and 0.5 % at 3 million.
const MIN_BITS_LOG2: u32 = 25;
/// log2 of the filter's bits at most: 2^29 bits, 64 MiB, sized for about 38 million keys.
const MAX_BITS_LOG2: u32 = 29;
/// Bits per key the filter is sized for: about 0.2 % false positives.
const BITS_PER_KEY: u64 = 14;
/// The store's bytes on disk per filtered key, at the fewest: a remote entry takes about
/// 1,700 bytes for its one key (`t`; its `I` row is written only once the add is gone), an
/// imported record fewer. Sizing by it overestimates the keys, which only lowers the false
/// positives.
const DISK_BYTES_PER_KEY: u64 = 250;
/// Bits set and tested per key.
const PROBES: u64 = 6;
/// A store at most this large on disk has its filter filled before the open returns.
pub const FILL_AT_OPEN_BYTES: u64 = 64 << 20;
/// Keys the background fill notes between checks that the store is still open.
const FILL_SLICE: usize = 4_096;

/// The filter: an array of bits, set by writers and read by any thread; until it is filled it
/// answers "may hold" to everything.
#[derive(Debug)]
pub struct Presence {
    words: Box<[AtomicU64]>,
    bits_log2: u32,
    filled: AtomicBool,
    /// Look-ups the filter answered "absent" (so sled was not read).
    skipped: AtomicU64,
}

impl Presence {
    /// A filter of 2^`bits_log2` bits (6 at least), not yet filled.
    fn with_bits(bits_log2: u32) -> Self {
        let words = (0..1usize << (bits_log2 - 6)).map(|_| AtomicU64::new(0)).collect();
        Self { words, bits_log2, filled: AtomicBool::new(false), skipped: AtomicU64::new(0) }
    }

    /// An empty filter sized for a store of `disk_bytes`, which answers "may hold" until it is
    /// filled.
    pub fn sized_for(disk_bytes: u64) -> Self {
        let keys = disk_bytes / DISK_BYTES_PER_KEY;
        let wanted = keys.saturating_mul(BITS_PER_KEY).max(1).next_power_of_two().ilog2();
        Self::with_bits(wanted.clamp(MIN_BITS_LOG2, MAX_BITS_LOG2))
    }

    /// Notes every key `tree` holds under the filtered prefixes, then answers from the filter.
    pub fn fill(&self, tree: &sled::Tree) -> sled::Result<()> {
        if self.note_tree(tree, || false)?.is_some() {
            self.filled.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Notes every key `tree` holds under the filtered prefixes, a slice at a time, asking
    /// `stop` before each slice; returns the keys noted, or `None` once stopped.
    fn note_tree(&self, tree: &sled::Tree, stop: impl Fn() -> bool) -> sled::Result<Option<usize>> {
        let mut noted = 0;
        for prefix in FILTERED {
            let mut keys = tree.scan_prefix([prefix]).keys();
            loop {
                if stop() {
                    return Ok(None);
                }
                let mut slice = 0;
                for key in keys.by_ref().take(FILL_SLICE) {
                    self.note(&key?);
                    slice += 1;
                }
                noted += slice;
                if slice < FILL_SLICE {
                    break;
                }
            }
        }
        Ok(Some(noted))
    }

    /// Fills `presence` from `tree` on a thread of its own, which checks `stop` before every
    /// slice of keys; the returned [`Filler`] sets it and joins the thread when dropped, so
    /// the tree is let go of before the store's last handle (and sled's flush on drop). A
    /// read error leaves the filter unfilled, answering "may hold", and is logged.
    pub fn fill_in_background(
        presence: &Arc<Self>,
        tree: sled::Tree,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Filler> {
        let presence = Arc::clone(presence);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("presence-fill".into()).spawn(move || {
            let started = std::time::Instant::now();
            let noted = match presence.note_tree(&tree, || flag.load(Ordering::Relaxed)) {
                Ok(Some(noted)) => noted,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "the presence filter could not be filled");
                    return;
                }
            };
            presence.filled.store(true, Ordering::Release);
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(keys = noted, secs, "presence filter filled");
        })?;
        Ok(Filler { stop, thread: Some(thread) })
    }

    /// Records that `key` is (about to be) in the tree; keys under other prefixes are ignored.
    pub fn note(&self, key: &[u8]) {
        if let Some(item) = Item::of(key) {
            for bit in item.bits(self.bits_log2) {
                self.words[bit / 64].fetch_or(1 << (bit % 64), Ordering::Relaxed);
            }
        }
    }

    /// Whether the tree may hold `key`, or a key starting with it when it is a prefix: `false`
    /// only when the filter is filled, `key` starts with a filtered prefix and its 32 bytes,
    /// and no key noted does.
    pub fn may_hold(&self, key: &[u8]) -> bool {
        if !self.filled.load(Ordering::Acquire) {
            return true;
        }
        let held = self.holds_bits(key);
        if !held {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        held
    }

    /// Whether the filter's bits hold `key` (always, under other prefixes), filled or not and
    /// without counting a skip.
    pub fn holds_bits(&self, key: &[u8]) -> bool {
        Item::of(key).is_none_or(|item| {
            item.bits(self.bits_log2)
                .all(|bit| self.words[bit / 64].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0)
        })
    }

    /// A filter of no use but to be replaced (64 bits), which answers "may hold".
    pub fn placeholder() -> Self {
        Self::with_bits(6)
    }

    /// Whether the filter answers from its bits yet.
    pub fn is_filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// Look-ups answered "absent" since the store opened.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The filter's size in bytes.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// The background fill's thread: stopped and joined when dropped.
#[derive(Debug)]
pub struct Filler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panicked fill left the filter unfilled: nothing to do.
            let _ = thread.join();
        }
    }
}

/// The part of a key the filter covers: its prefix byte and the 32 bytes after it.
struct Item {
    first: u64,
    step: u64,
}

impl Item {
    fn of(key: &[u8]) -> Option<Self> {
        let (&prefix, rest) = key.split_first()?;
        let bytes: &[u8; 32] = rest.get(..32)?.try_into().ok()?;
        if !FILTERED.contains(&prefix) {
            return None;
        }
        let word = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        // The bytes are keyed hashes, but a peer may choose a token's: every byte counts, and
        // the prefix keeps one token's holdings, alert and adds apart.
        let mixed = u64::from(prefix).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let first = word(0) ^ word(16).rotate_left(17) ^ mixed;
        let step = (word(8) ^ word(24).rotate_left(29) ^ mixed.rotate_left(32)) | 1;
        Some(Self { first, step })
    }

    /// The bit positions of the key in a filter of 2^`bits_log2` bits, by double hashing.
    fn bits(&self, bits_log2: u32) -> impl Iterator<Item = usize> {
        let (first, step) = (self.first, self.step);
        (0..PROBES).map(move |probe| {
            let hash = first.wrapping_add(probe.wrapping_mul(step));
            // The top bits, which mix more of both words than the low ones.
            (hash >> (64 - bits_log2)) as usize
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: u8, seed: u8) -> Vec<u8> {
        let mut key = vec![prefix];
        key.extend((0..32u8).map(|i| i.wrapping_mul(31).wrapping_add(seed).rotate_left(3)));
        key.extend_from_slice(&[7; 8]);
        key
    }

    fn token(n: u64) -> Vec<u8> {
        let mut key = vec![prefix::REMOTE_ADD];
        key.extend_from_slice(blake3::hash(&n.to_le_bytes()).as_bytes());
        key
    }

    fn tree() -> sled::Tree {
        sled::Config::new().temporary(true).open().unwrap().open_tree("t").unwrap()
    }

    fn filled() -> Presence {
        let presence = Presence::sized_for(0);
        presence.fill(&tree()).unwrap();
        presence
    }

    #[test]
    fn a_noted_key_and_its_prefix_may_be_held_and_other_prefixes_always_may() {
        let presence = filled();
        let holding = key(prefix::HOLDING, 1);
        assert!(!presence.may_hold(&holding));
        presence.note(&holding);
        assert!(presence.may_hold(&holding));
        assert!(presence.may_hold(&holding[..33]), "the token's prefix of the key");
        // The same 32 bytes under another filtered prefix are another item.
        let mut alert = holding[..33].to_vec();
        alert[0] = prefix::ALERT;
        assert!(!presence.may_hold(&alert));
        // Keys too short to name 32 bytes, or under other prefixes, are never filtered.
        assert!(presence.may_hold(&[prefix::HOLDING]));
        assert!(presence.may_hold(&key(prefix::RECORD, 2)));
        assert!(presence.may_hold(&key(prefix::HOLDING, 2)[..20]));
        assert_eq!(presence.skipped(), 1 + 1);
    }

    #[test]
    fn false_positives_are_rare_at_a_hundred_thousand_keys() {
        let presence = filled();
        for n in 0..100_000 {
            presence.note(&token(n));
        }
        assert!((0..100_000).all(|n| presence.may_hold(&token(n))));
        let false_positives = (100_000..200_000).filter(|&n| presence.may_hold(&token(n))).count();
        assert!(false_positives < 10, "{false_positives} of 100,000");
    }

    #[test]
    fn a_filled_filter_holds_every_key_of_the_tree() {
        let tree = tree();
        let keys: Vec<Vec<u8>> =
            FILTERED.iter().flat_map(|&p| (0..50).map(move |s| key(p, s))).collect();
        for key in &keys {
            tree.insert(key, &[]).unwrap();
        }
        let presence = Presence::sized_for(0);
        let absent = key(prefix::HOLDING, 200);
        assert!(presence.may_hold(&absent), "nothing is absent before the fill");
        presence.fill(&tree).unwrap();
        assert!(keys.iter().all(|key| presence.may_hold(key)));
        assert_eq!(presence.skipped(), 0);
        assert!(!presence.may_hold(&absent));
    }

    #[test]
    fn the_filter_is_sized_from_the_store_on_disk_within_its_bounds() {
        assert_eq!(Presence::sized_for(0).bytes(), 4 << 20);
        assert_eq!(Presence::sized_for(200 << 20).bytes(), 4 << 20, "a small store");
        // 2 GiB on disk: 8.6 million keys at most, 120 million bits wanted, 2^27 bits.
        assert_eq!(Presence::sized_for(2 << 30).bytes(), 16 << 20);
        assert_eq!(Presence::sized_for(u64::MAX).bytes(), 64 << 20);
    }

    #[test]
    fn a_background_fill_holds_every_key_and_a_stopped_one_fills_nothing() {
        let tree = tree();
        // More than one slice, under two prefixes.
        for n in 0..(FILL_SLICE as u64 + 100) {
            tree.insert(token(n), &[]).unwrap();
        }
        tree.insert(key(prefix::IMPORT_ROW, 9), &[]).unwrap();
        let presence = Arc::new(Presence::sized_for(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut fill = Presence::fill_in_background(&presence, tree.clone(), stop).unwrap();
        fill.thread.take().unwrap().join().unwrap();
        assert!(presence.is_filled());
        assert!((0..FILL_SLICE as u64 + 100).all(|n| presence.may_hold(&token(n))));
        assert!(presence.may_hold(&key(prefix::IMPORT_ROW, 9)));
        assert!(!presence.may_hold(&token(1 << 40)));
        // Stopped before its first slice, a fill ends without filling: "may hold" to all.
        let stopped = Arc::new(Presence::sized_for(0));
        let fill = Presence::fill_in_background(&stopped, tree, Arc::new(AtomicBool::new(true)));
        drop(fill.unwrap());
        assert!(!stopped.is_filled());
        assert!(stopped.may_hold(&token(1 << 40)));
    }

    #[test]
    fn a_fill_stopped_between_slices_ends_there() {
        let tree = tree();
        let keys = 0..2 * FILL_SLICE as u64 + 1;
        for n in keys.clone() {
            tree.insert(token(n), &[]).unwrap();
        }
        let presence = Presence::sized_for(0);
        // Asked before each slice: stop once a slice of these keys is noted.
        let stop = || keys.clone().any(|n| presence.holds_bits(&token(n)));
        assert_eq!(presence.note_tree(&tree, stop).unwrap(), None);
        // The first slice's keys and no other: 4,096 keys set under 0.1 % of 2^25 bits, so a
        // false positive among these fixed keys has a chance of about 1e-19.
        let noted = keys.filter(|&n| presence.holds_bits(&token(n))).count();
        assert_eq!(noted, FILL_SLICE);
        // Never stopped, the same scan notes every key.
        assert_eq!(presence.note_tree(&tree, || false).unwrap(), Some(2 * FILL_SLICE + 1));
    }
}
