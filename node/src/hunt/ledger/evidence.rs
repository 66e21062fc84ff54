//! The ledger's evidence, stored compactly: nearly every post is some account's or some edge's
//! evidence at the default limits, so a month of it is millions of posts, and one heap string
//! and one map entry of two `String`s per post cost more than everything else the ledger keeps.
//!
//! [`PostList`] holds a bounded list of post hashes with its first two inline (the default limit
//! per edge), so an edge-day needs no allocation of its own. [`EvidenceArena`] holds one day's
//! evidence posts as length-prefixed bytes in one buffer, found through a map from the post
//! hash to the record's offset: about a quarter of the memory of a map of [`EvidencePost`]s.

use rustc_hash::FxHashMap;

use super::EvidencePost;
use crate::hunt::observation::PostHash;

/// How many post hashes a [`PostList`] keeps without allocating.
const INLINE: usize = 2;

/// A short list of post hashes, the first [`INLINE`] of them inline.
#[derive(Debug, Clone)]
pub(super) struct PostList {
    inline: [PostHash; INLINE],
    /// How many of `inline` are used.
    inline_len: u8,
    /// Hashes past the inline ones: boxed, so the rarely used spill costs one pointer in every
    /// edge-day rather than a vector's three words.
    #[expect(clippy::box_collection, reason = "one word per edge-day instead of three")]
    spill: Option<Box<Vec<PostHash>>>,
}

impl Default for PostList {
    fn default() -> Self {
        Self { inline: [PostHash(0); INLINE], inline_len: 0, spill: None }
    }
}

impl PostList {
    /// How many hashes the list holds.
    pub(super) fn len(&self) -> usize {
        usize::from(self.inline_len) + self.spill.as_ref().map_or(0, |spill| spill.len())
    }

    /// The last hash pushed.
    pub(super) fn last(&self) -> Option<PostHash> {
        match &self.spill {
            Some(spill) if !spill.is_empty() => spill.last().copied(),
            _ => usize::from(self.inline_len).checked_sub(1).map(|last| self.inline[last]),
        }
    }

    /// Appends a hash.
    pub(super) fn push(&mut self, hash: PostHash) {
        let used = usize::from(self.inline_len);
        if used < INLINE {
            self.inline[used] = hash;
            self.inline_len += 1;
        } else {
            self.spill.get_or_insert_with(Default::default).push(hash);
        }
    }

    /// The hashes, in the order they were pushed.
    pub(super) fn iter(&self) -> impl Iterator<Item = PostHash> + '_ {
        self.inline[..usize::from(self.inline_len)]
            .iter()
            .copied()
            .chain(self.spill.iter().flat_map(|spill| spill.iter().copied()))
    }
}

impl FromIterator<PostHash> for PostList {
    fn from_iter<I: IntoIterator<Item = PostHash>>(hashes: I) -> Self {
        let mut list = PostList::default();
        for hash in hashes {
            list.push(hash);
        }
        list
    }
}

/// One day's evidence posts: records `varint(len) post_id varint(count) (varint(len) url)*`
/// back to back in one buffer, with each record's offset by post hash.
#[derive(Debug, Clone, Default)]
pub(super) struct EvidenceArena {
    bytes: Vec<u8>,
    offsets: FxHashMap<PostHash, u32>,
}

impl EvidenceArena {
    /// Keeps a post's id and URLs under its hash (once: a hash already held is left as is). A
    /// day's buffer is bounded by 4 GiB; a post past that is not kept (a day of evidence at the
    /// default limits is a few megabytes).
    pub(super) fn insert(&mut self, hash: PostHash, post_id: &str, urls: &[String]) {
        if self.offsets.contains_key(&hash) {
            return;
        }
        let Ok(offset) = u32::try_from(self.bytes.len()) else { return };
        put_text(&mut self.bytes, post_id);
        put_varint(&mut self.bytes, urls.len());
        for url in urls {
            put_text(&mut self.bytes, url);
        }
        self.offsets.insert(hash, offset);
    }

    /// The post kept under a hash.
    pub(super) fn get(&self, hash: PostHash) -> Option<EvidencePost> {
        let mut at = *self.offsets.get(&hash)? as usize;
        let post_id = take_text(&self.bytes, &mut at)?;
        let count = take_varint(&self.bytes, &mut at)?;
        let mut urls = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            urls.push(take_text(&self.bytes, &mut at)?);
        }
        Some(EvidencePost { post_id, urls })
    }

    /// Keeps only the posts `keep` says yes to, compacting the buffer; returns the hashes of
    /// the posts dropped.
    pub(super) fn retain(&mut self, keep: impl Fn(PostHash) -> bool) -> Vec<PostHash> {
        let dropped: Vec<PostHash> =
            self.offsets.keys().copied().filter(|&hash| !keep(hash)).collect();
        if dropped.is_empty() {
            return dropped;
        }
        let mut kept = EvidenceArena::default();
        for &hash in self.offsets.keys().filter(|&&hash| keep(hash)) {
            if let Some(post) = self.get(hash) {
                kept.insert(hash, &post.post_id, &post.urls);
            }
        }
        *self = kept;
        dropped
    }
}

impl super::Ledger {
    /// Calls `visit(from, to, mentions)` for every edge-day of a window that holds mentions, by
    /// (mentioning, mentioned) root accounts, without self-edges.
    pub fn for_each_window_mention(
        &self,
        window: super::Window,
        mut visit: impl FnMut(super::AccountIndex, super::AccountIndex, u32),
    ) {
        for (_, data) in self.days.range(window.first..=window.last) {
            for (&(from, to), edge) in data.edges.iter().filter(|(_, edge)| edge.mentions > 0) {
                let (from, to) =
                    (self.root(super::AccountIndex(from)), self.root(super::AccountIndex(to)));
                if from != to {
                    visit(from, to, edge.mentions);
                }
            }
        }
    }

    /// The evidence posts of the edges `wanted` picks, over a window, by (amplifier, amplified)
    /// root accounts: at most `per_edge` posts per edge, newest day first. One pass over the
    /// window's edges (for many edges at once, where [`super::Ledger::edge_evidence`] scans the
    /// window once per edge).
    pub fn edges_evidence(
        &self,
        window: super::Window,
        wanted: impl Fn(super::AccountIndex, super::AccountIndex) -> bool,
        per_edge: usize,
    ) -> std::collections::HashMap<(super::AccountIndex, super::AccountIndex), Vec<EvidencePost>>
    {
        let mut out: std::collections::HashMap<_, Vec<EvidencePost>> = Default::default();
        for (_, data) in self.days.range(window.first..=window.last).rev() {
            for (&(from, to), edge) in &data.edges {
                let pair =
                    (self.root(super::AccountIndex(from)), self.root(super::AccountIndex(to)));
                if pair.0 == pair.1 || !wanted(pair.0, pair.1) {
                    continue;
                }
                let posts = out.entry(pair).or_default();
                for hash in edge.evidence.iter() {
                    if posts.len() >= per_edge {
                        break;
                    }
                    posts.extend(data.evidence_posts.get(hash));
                }
            }
        }
        out
    }
}

fn put_varint(bytes: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        bytes.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn put_text(bytes: &mut Vec<u8>, text: &str) {
    put_varint(bytes, text.len());
    bytes.extend_from_slice(text.as_bytes());
}

fn take_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut value = 0usize;
    for shift in (0..usize::BITS).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take_text(bytes: &[u8], at: &mut usize) -> Option<String> {
    let len = take_varint(bytes, at)?;
    let text = bytes.get(*at..at.checked_add(len)?)?;
    *at += len;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_list_keeps_order_past_its_inline_slots() {
        let mut list = PostList::default();
        assert_eq!((list.len(), list.last()), (0, None));
        for n in 1..=5 {
            list.push(PostHash(n));
            assert_eq!((list.len(), list.last()), (n as usize, Some(PostHash(n))));
        }
        assert_eq!(list.iter().map(|hash| hash.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_arena_gives_back_what_it_kept() {
        let mut arena = EvidenceArena::default();
        let long = "é".repeat(300);
        arena.insert(PostHash(1), "991", &["https://a.example/x".into(), long.clone()]);
        arena.insert(PostHash(2), "line\nbreak\0", &[]);
        arena.insert(PostHash(1), "not kept", &[]);
        let first = arena.get(PostHash(1)).unwrap();
        assert_eq!(first.post_id, "991");
        assert_eq!(first.urls, ["https://a.example/x".to_owned(), long]);
        let second = arena.get(PostHash(2)).unwrap();
        assert_eq!((second.post_id.as_str(), second.urls.len()), ("line\nbreak\0", 0));
        assert_eq!(arena.get(PostHash(3)), None);
        assert_eq!(arena.retain(|hash| hash != PostHash(2)), [PostHash(2)]);
        assert_eq!(arena.get(PostHash(2)), None);
        assert_eq!(arena.get(PostHash(1)).unwrap().post_id, "991");
        assert!(arena.retain(|_| true).is_empty());
    }
}
