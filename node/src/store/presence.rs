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
//! [`Presence::fill`] reads every such key when the store opens, and every write to the tree
//! calls [`Presence::note`] for each key it sets *before* the write is applied, so a reader
//! that can see a key in the tree also sees it in the filter. Removals clear nothing: the
//! filter is a superset, and a key removed only costs a read that finds nothing, until the
//! next open rebuilds the filter from the keys present.
//!
//! A "may hold" answer sends the look-up to sled as before; only "absent" skips it. So a false
//! positive costs what every look-up cost before, and the filter's size bounds its memory, not
//! its correctness: past a few million keys its false positives rise and it skips less.
//! Remote peers choose the tokens of their adds; tokens built to collide only make the filter
//! answer "may hold" more often.

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
/// log2 of the filter's bits at most: 2^29 bits, 64 MiB, sized for about 40 million keys.
const MAX_BITS_LOG2: u32 = 29;
/// Bits per key the filter is sized for when the store opens holding many: about 0.1 % false
/// positives until its keys have grown by half.
const BITS_PER_KEY: u64 = 14;
/// Bits set and tested per key.
const PROBES: u64 = 6;

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

    /// An empty filter, which answers "may hold" until [`Presence::fill`].
    pub fn new() -> Self {
        Self::with_bits(MIN_BITS_LOG2)
    }

    /// Notes every key `tree` holds under the filtered prefixes, then answers from the filter.
    /// A store that holds more keys than the filter was sized for gets a larger filter (a
    /// second scan): one sized at the open, so a long-running node's false positives rise only
    /// as its keys grow past that.
    pub fn fill(self, tree: &sled::Tree) -> sled::Result<Self> {
        let held = self.note_all(tree)?;
        let wanted = held.saturating_mul(BITS_PER_KEY).max(1).next_power_of_two().ilog2();
        let presence = if wanted > self.bits_log2 {
            let larger = Self::with_bits(wanted.min(MAX_BITS_LOG2));
            larger.note_all(tree)?;
            larger
        } else {
            self
        };
        presence.filled.store(true, Ordering::Release);
        Ok(presence)
    }

    /// Notes every key under the filtered prefixes; returns how many.
    fn note_all(&self, tree: &sled::Tree) -> sled::Result<u64> {
        let mut held = 0;
        for prefix in FILTERED {
            for key in tree.scan_prefix([prefix]).keys() {
                self.note(&key?);
                held += 1;
            }
        }
        Ok(held)
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
        let Some(item) = Item::of(key) else { return true };
        if !self.filled.load(Ordering::Acquire) {
            return true;
        }
        let held = item
            .bits(self.bits_log2)
            .all(|bit| self.words[bit / 64].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0);
        if !held {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        held
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

    fn filled() -> Presence {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Presence::new().fill(&db.open_tree("t").unwrap()).unwrap()
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
        let token = |n: u64| {
            let mut key = vec![prefix::REMOTE_ADD];
            key.extend_from_slice(blake3::hash(&n.to_le_bytes()).as_bytes());
            key
        };
        for n in 0..100_000 {
            presence.note(&token(n));
        }
        assert!((0..100_000).all(|n| presence.may_hold(&token(n))));
        let false_positives = (100_000..200_000).filter(|&n| presence.may_hold(&token(n))).count();
        assert!(false_positives < 10, "{false_positives} of 100,000");
    }

    #[test]
    fn a_filled_filter_holds_every_key_of_the_tree() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let keys: Vec<Vec<u8>> =
            FILTERED.iter().flat_map(|&p| (0..50).map(move |s| key(p, s))).collect();
        for key in &keys {
            tree.insert(key, &[]).unwrap();
        }
        let presence = Presence::new();
        let absent = key(prefix::HOLDING, 200);
        assert!(presence.may_hold(&absent), "nothing is absent before the fill");
        let presence = presence.fill(&tree).unwrap();
        assert!(keys.iter().all(|key| presence.may_hold(key)));
        assert_eq!(presence.skipped(), 0);
        assert!(!presence.may_hold(&absent));
        assert_eq!(presence.bytes(), 4 << 20);
    }

    #[test]
    fn a_store_opened_with_many_keys_gets_a_larger_filter() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let token = |n: u64| {
            let mut key = vec![prefix::IDENTIFICATION];
            key.extend_from_slice(blake3::hash(&n.to_le_bytes()).as_bytes());
            key
        };
        // 3,000 keys at 14 bits each want 2^16 bits; a filter of 2^12 is replaced.
        for n in 0..3_000 {
            tree.insert(token(n), &[]).unwrap();
        }
        let presence = Presence::with_bits(12).fill(&tree).unwrap();
        assert_eq!(presence.bytes(), (1 << 16) / 8);
        assert!((0..3_000).all(|n| presence.may_hold(&token(n))));
        let false_positives = (3_000..13_000).filter(|&n| presence.may_hold(&token(n))).count();
        assert!(false_positives < 30, "{false_positives} of 10,000");
        // Sized up to the largest filter at most.
        let wanted = Presence::with_bits(MAX_BITS_LOG2 - 6);
        assert_eq!(wanted.bits_log2, MAX_BITS_LOG2 - 6);
    }
}
