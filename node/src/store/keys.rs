//! The store's key layout: one builder and one parser per prefix, beside the table that
//! documents them. Nothing outside this file writes a prefix byte or slices a key.
//!
//! One tree, `crossmatch-v1`. Integers are big-endian, so keys sort by them; `origin` is a
//! member's 32-byte public key, `token` a 32-byte token, `generation` a u32, `seq`, ids and
//! times (Unix ms) u64s, `index` (an entry's place in its batch) and `day` u32s.
//!
//! | prefix | key after prefix | value |
//! | --- | --- | --- |
//! | `m` | name | metadata: `schema` version, counters `record` (and `record-reserved`, the last record id reserved durably), `outbox`, `alert`, `own` ([`OwnFeed`]) and the records' token `epoch` |
//! | `r` | record id | [`Record`] |
//! | `e` | expiry ms ‖ record id | `()` (CBOR null): when to delete a local record |
//! | `h` | token ‖ record id | `()` (CBOR null): the local holdings index |
//! | `o` | outbox seq | [`OutboxItem`]: an entry waiting to be published |
//! | `b` | origin ‖ generation ‖ seq | a batch's wire form (possibly redacted) |
//! | `k` | origin ‖ generation ‖ seq | the stored batch's hash (32 bytes) |
//! | `i` | batch hash | [`BatchLocation`]: where the batch with that hash is stored |
//! | `c` | origin ‖ generation | [`ChainRecord`]: a chain's head and fork limit |
//! | `t` | token ‖ origin | [`RemoteAdd`]: another origin's live add of a token |
//! | `p` | origin ‖ generation ‖ seq ‖ token | `()` (CBOR null): where each `t` add sits, so that a fork reads only the adds of the chain it freezes (since schema 2) |
//! | `w` | token | [`OwnAdd`]: where this node's own live add of a token sits |
//! | `a` | token | [`Alert`] |
//! | `f` | origin ‖ generation ‖ seq | [`ForkEvidence`] for a fork at that seq |
//! | `x` | expiry ms ‖ origin ‖ generation ‖ seq | entry indices (a CBOR list of u32) of that batch to redact then |
//! | `z` | origin ‖ generation ‖ seq ‖ index | `()` (CBOR null): an entry redacted here for expiry or retraction, never to be refilled |
//! | `q` | origin ‖ day | [`Quota`] the origin used that day (day = Unix ms / 86,400,000) |
//! | `n` | account index (u32) | [`AccountRow`]: an observed account (the hunt's ledger) |
//! | `l` | canonical form (UTF-8) | account index (u32): an observed account's alias |
//! | `d` | day ‖ account index | [`DayAccountRow`]: an account's posts and evidence that day |
//! | `y` | day ‖ from ‖ to (account indices) | [`EdgeRow`]: an interaction edge's day |
//! | `s` | day ‖ post hash (u64) | [`SeenRow`]: a post counted that day, with its evidence if kept |
//! | `g` | account index | [`FollowRow`]: an account's newest follow snapshot |
//! | `L` | community id (u64) | [`CuratedCommunity`]: an analyst's label, anchors, pin, merge or split of a community; id 0 holds [`CurationMeta`] (the next mark and community ids) |
//! | `N` | canonical form (UTF-8) | [`NotATarget`]: an account an analyst marked "not a target" |
//! | `G` | origin ‖ token ‖ pseudonym (16 bytes) | [`RemoteTag`]: another origin's live `tag` of a token |
//! | `H` | community id ‖ snapshot seq | [`OwnSnapshot`]: a community snapshot this node shared |
//! | `I` | token pseudonym (32 bytes: BLAKE3 keyed by a key derived from the node's own key, so no token byte outlives the token's expiry) | [`Identification`]: when this node first learned of the token, from whom (own record, remote adds), and each source's clamped `created_at` |
//! | `T` | token pseudonym (as `I`) | [`TakedownStatuses`]: the referral, order, removal and reinstatement statuses members (this node included) asserted for the token, clamped |
//!
//! [`OwnFeed`]: super::OwnFeed
//! [`Record`]: super::Record
//! [`OutboxItem`]: super::OutboxItem
//! [`BatchLocation`]: super::BatchLocation
//! [`ChainRecord`]: super::ChainRecord
//! [`RemoteAdd`]: super::RemoteAdd
//! [`OwnAdd`]: super::OwnAdd
//! [`Alert`]: super::Alert
//! [`ForkEvidence`]: super::ForkEvidence
//! [`Quota`]: super::Quota
//! [`AccountRow`]: crate::hunt::ledger::AccountRow
//! [`DayAccountRow`]: crate::hunt::ledger::DayAccountRow
//! [`EdgeRow`]: crate::hunt::ledger::EdgeRow
//! [`SeenRow`]: crate::hunt::ledger::SeenRow
//! [`FollowRow`]: crate::hunt::ledger::FollowRow
//! [`CuratedCommunity`]: crate::hunt::curation::CuratedCommunity
//! [`CurationMeta`]: crate::hunt::curation::CurationMeta
//! [`NotATarget`]: crate::hunt::curation::NotATarget
//! [`RemoteTag`]: super::RemoteTag
//! [`OwnSnapshot`]: super::OwnSnapshot
//! [`Identification`]: crate::engine::takedowns::Identification
//! [`TakedownStatuses`]: crate::engine::takedowns::TakedownStatuses

use crossmatch_protocol::{BatchHash, BatchId, FeedId, Token};

use super::RecordId;

/// The prefix bytes, one per row of the layout table.
pub mod prefix {
    /// Metadata.
    pub const META: u8 = b'm';
    /// Records.
    pub const RECORD: u8 = b'r';
    /// Record expiry index.
    pub const RECORD_EXPIRY: u8 = b'e';
    /// Local holdings index.
    pub const HOLDING: u8 = b'h';
    /// Outbox.
    pub const OUTBOX: u8 = b'o';
    /// Batch wire forms.
    pub const BATCH: u8 = b'b';
    /// Stored batch hashes.
    pub const BATCH_HASH: u8 = b'k';
    /// Batch locations by hash.
    pub const BATCH_LOCATION: u8 = b'i';
    /// Chain heads.
    pub const CHAIN: u8 = b'c';
    /// Remote adds.
    pub const REMOTE_ADD: u8 = b't';
    /// Remote adds by place: origin, generation, seq.
    pub const REMOTE_ADD_PLACE: u8 = b'p';
    /// Own live adds.
    pub const OWN_ADD: u8 = b'w';
    /// Alerts.
    pub const ALERT: u8 = b'a';
    /// Fork evidence.
    pub const FORK: u8 = b'f';
    /// Entry expiry index.
    pub const EXPIRY: u8 = b'x';
    /// Tombstones of redacted entries.
    pub const TOMBSTONE: u8 = b'z';
    /// Quota use per day.
    pub const QUOTA: u8 = b'q';
    /// Observed accounts.
    pub const HUNT_ACCOUNT: u8 = b'n';
    /// Observed accounts' aliases.
    pub const HUNT_ALIAS: u8 = b'l';
    /// An observed account's day.
    pub const HUNT_DAY_ACCOUNT: u8 = b'd';
    /// An interaction edge's day.
    pub const HUNT_EDGE: u8 = b'y';
    /// Seen posts by day.
    pub const HUNT_SEEN: u8 = b's';
    /// Follow snapshots.
    pub const HUNT_FOLLOWS: u8 = b'g';
    /// Analysts' curation of communities.
    pub const CURATED_COMMUNITY: u8 = b'L';
    /// "Not a target" marks.
    pub const NOT_A_TARGET: u8 = b'N';
    // ---- across borders: community shares ----
    /// Remote tags.
    pub const REMOTE_TAG: u8 = b'G';
    /// Own shared community snapshots.
    pub const OWN_SNAPSHOT: u8 = b'H';
    /// Identification times, by token.
    pub const IDENTIFICATION: u8 = b'I';
    /// Takedown statuses, by token.
    pub const TAKEDOWN: u8 = b'T';
}

/// The prefix of `key` as a character, for error messages (`?` for an empty key).
pub fn prefix_of(key: &[u8]) -> char {
    key.first().map_or('?', |byte| char::from(*byte))
}

fn join(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    key.push(prefix);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

fn batch_key(prefix: u8, id: &BatchId) -> Vec<u8> {
    join(prefix, &[id.origin(), &id.generation().to_be_bytes(), &id.seq.to_be_bytes()])
}

/// Reads a key field by field; every parser checks the prefix and that nothing is left over.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(key: &'a [u8], prefix: u8) -> Option<Self> {
        match key.split_first() {
            Some((&first, rest)) if first == prefix => Some(Self(rest)),
            _ => None,
        }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }

    fn token(&mut self) -> Option<Token> {
        self.take().map(Token)
    }

    fn batch(&mut self) -> Option<BatchId> {
        let origin = self.take()?;
        let generation = self.u32()?;
        Some(BatchId::new(origin, generation, self.u64()?))
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }

    fn end<T>(self, value: T) -> Option<T> {
        self.0.is_empty().then_some(value)
    }
}

/// A metadata entry.
pub fn meta(name: &str) -> Vec<u8> {
    join(prefix::META, &[name.as_bytes()])
}
/// The name of a metadata key.
pub fn parse_meta(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(Reader::new(key, prefix::META)?.rest()).ok()
}

/// A record.
pub fn record(id: RecordId) -> Vec<u8> {
    join(prefix::RECORD, &[&id.to_be_bytes()])
}
/// Every record.
pub fn all_records() -> Vec<u8> {
    vec![prefix::RECORD]
}
/// The id of a record key.
pub fn parse_record(key: &[u8]) -> Option<RecordId> {
    let mut reader = Reader::new(key, prefix::RECORD)?;
    let id = reader.u64()?;
    reader.end(id)
}

/// When to delete a local record.
pub fn record_expiry(at_ms: u64, id: RecordId) -> Vec<u8> {
    join(prefix::RECORD_EXPIRY, &[&at_ms.to_be_bytes(), &id.to_be_bytes()])
}
/// Record expiry keys due before `now_ms`: the range `[from, to)`.
pub fn record_expiries_due(now_ms: u64) -> (Vec<u8>, Vec<u8>) {
    (vec![prefix::RECORD_EXPIRY], join(prefix::RECORD_EXPIRY, &[&now_ms.to_be_bytes()]))
}
/// (expiry ms, record id) of a record expiry key.
pub fn parse_record_expiry(key: &[u8]) -> Option<(u64, RecordId)> {
    let mut reader = Reader::new(key, prefix::RECORD_EXPIRY)?;
    let at_ms = reader.u64()?;
    let id = reader.u64()?;
    reader.end((at_ms, id))
}

/// A local holding of a token by a record.
pub fn holding(token: &Token, id: RecordId) -> Vec<u8> {
    join(prefix::HOLDING, &[token.as_bytes(), &id.to_be_bytes()])
}
/// All local holdings of a token.
pub fn holdings(token: &Token) -> Vec<u8> {
    join(prefix::HOLDING, &[token.as_bytes()])
}
/// (token, record id) of a holding key.
pub fn parse_holding(key: &[u8]) -> Option<(Token, RecordId)> {
    let mut reader = Reader::new(key, prefix::HOLDING)?;
    let token = reader.token()?;
    let id = reader.u64()?;
    reader.end((token, id))
}

/// An outbox item.
pub fn outbox(seq: u64) -> Vec<u8> {
    join(prefix::OUTBOX, &[&seq.to_be_bytes()])
}
/// The whole outbox.
pub fn all_outbox() -> Vec<u8> {
    vec![prefix::OUTBOX]
}
/// The seq of an outbox key.
pub fn parse_outbox(key: &[u8]) -> Option<u64> {
    let mut reader = Reader::new(key, prefix::OUTBOX)?;
    let seq = reader.u64()?;
    reader.end(seq)
}

/// A batch's wire form.
pub fn batch(id: &BatchId) -> Vec<u8> {
    batch_key(prefix::BATCH, id)
}
/// The batch of a batch key.
pub fn parse_batch(key: &[u8]) -> Option<BatchId> {
    let mut reader = Reader::new(key, prefix::BATCH)?;
    let id = reader.batch()?;
    reader.end(id)
}

/// A stored batch's hash.
pub fn batch_hash(id: &BatchId) -> Vec<u8> {
    batch_key(prefix::BATCH_HASH, id)
}
/// The batch of a batch-hash key.
pub fn parse_batch_hash(key: &[u8]) -> Option<BatchId> {
    let mut reader = Reader::new(key, prefix::BATCH_HASH)?;
    let id = reader.batch()?;
    reader.end(id)
}

/// Where the batch with this hash is stored.
pub fn batch_location(hash: &BatchHash) -> Vec<u8> {
    join(prefix::BATCH_LOCATION, &[hash.as_bytes()])
}
/// The hash of a batch-location key.
pub fn parse_batch_location(key: &[u8]) -> Option<BatchHash> {
    let mut reader = Reader::new(key, prefix::BATCH_LOCATION)?;
    let hash = reader.take().map(BatchHash)?;
    reader.end(hash)
}

/// A chain head.
pub fn chain(feed: &FeedId) -> Vec<u8> {
    join(prefix::CHAIN, &[&feed.origin, &feed.generation.to_be_bytes()])
}
/// Every chain head.
pub fn all_chains() -> Vec<u8> {
    vec![prefix::CHAIN]
}
/// The feed of a chain key.
pub fn parse_chain(key: &[u8]) -> Option<FeedId> {
    let mut reader = Reader::new(key, prefix::CHAIN)?;
    let origin = reader.take()?;
    let generation = reader.u32()?;
    reader.end(FeedId::new(origin, generation))
}

/// Another origin's live add of a token.
pub fn remote_add(token: &Token, origin: &[u8; 32]) -> Vec<u8> {
    join(prefix::REMOTE_ADD, &[token.as_bytes(), origin])
}
/// All remote adds of a token.
pub fn remote_adds(token: &Token) -> Vec<u8> {
    join(prefix::REMOTE_ADD, &[token.as_bytes()])
}
/// Every remote add.
pub fn all_remote_adds() -> Vec<u8> {
    vec![prefix::REMOTE_ADD]
}
/// (token, origin) of a remote-add key.
pub fn parse_remote_add(key: &[u8]) -> Option<(Token, [u8; 32])> {
    let mut reader = Reader::new(key, prefix::REMOTE_ADD)?;
    let token = reader.token()?;
    let origin = reader.take()?;
    reader.end((token, origin))
}

/// The place of another origin's live add of a token: the index of remote adds by chain.
pub fn remote_add_place(origin: &[u8; 32], generation: u32, seq: u64, token: &Token) -> Vec<u8> {
    let (generation, seq) = (generation.to_be_bytes(), seq.to_be_bytes());
    join(prefix::REMOTE_ADD_PLACE, &[origin, &generation, &seq, token.as_bytes()])
}
/// The places of the remote adds of `feed` from `from_seq` on: the range `[from, to)`.
pub fn remote_add_places_from(feed: &FeedId, from_seq: u64) -> (Vec<u8>, Vec<u8>) {
    let generation = feed.generation.to_be_bytes();
    let from =
        join(prefix::REMOTE_ADD_PLACE, &[&feed.origin, &generation, &from_seq.to_be_bytes()]);
    // Past every key of the feed: those hold 40 bytes after the generation, none above 0xff.
    let to = join(prefix::REMOTE_ADD_PLACE, &[&feed.origin, &generation, &[0xff; 41]]);
    (from, to)
}
/// The places of every remote add of `origin`, in every generation: the range `[from, to)`.
pub fn remote_add_places_of(origin: &[u8; 32]) -> (Vec<u8>, Vec<u8>) {
    let from = join(prefix::REMOTE_ADD_PLACE, &[origin]);
    // Past every key of the origin: those hold 44 bytes after it, none above 0xff.
    let to = join(prefix::REMOTE_ADD_PLACE, &[origin, &[0xff; 45]]);
    (from, to)
}
/// The whole index of remote adds by chain: the range `[from, to)`.
pub fn all_remote_add_places() -> (Vec<u8>, Vec<u8>) {
    (vec![prefix::REMOTE_ADD_PLACE], vec![prefix::REMOTE_ADD_PLACE + 1])
}
/// (batch, token) of a remote-add place key.
pub fn parse_remote_add_place(key: &[u8]) -> Option<(BatchId, Token)> {
    let mut reader = Reader::new(key, prefix::REMOTE_ADD_PLACE)?;
    let id = reader.batch()?;
    let token = reader.token()?;
    reader.end((id, token))
}

/// Where this node's own live add of a token is.
pub fn own_add(token: &Token) -> Vec<u8> {
    join(prefix::OWN_ADD, &[token.as_bytes()])
}
/// Every own live add.
pub fn all_own_adds() -> Vec<u8> {
    vec![prefix::OWN_ADD]
}
/// The token of an own-add key.
pub fn parse_own_add(key: &[u8]) -> Option<Token> {
    let mut reader = Reader::new(key, prefix::OWN_ADD)?;
    let token = reader.token()?;
    reader.end(token)
}

/// An alert.
pub fn alert(token: &Token) -> Vec<u8> {
    join(prefix::ALERT, &[token.as_bytes()])
}
/// Every alert.
pub fn all_alerts() -> Vec<u8> {
    vec![prefix::ALERT]
}
/// The token of an alert key.
pub fn parse_alert(key: &[u8]) -> Option<Token> {
    let mut reader = Reader::new(key, prefix::ALERT)?;
    let token = reader.token()?;
    reader.end(token)
}

/// Fork evidence for a fork at this batch's position.
pub fn fork(id: &BatchId) -> Vec<u8> {
    batch_key(prefix::FORK, id)
}
/// All fork evidence.
pub fn all_forks() -> Vec<u8> {
    vec![prefix::FORK]
}
/// All fork evidence against one origin.
pub fn forks_of(origin: &[u8; 32]) -> Vec<u8> {
    join(prefix::FORK, &[origin])
}
/// The contested position of a fork key.
pub fn parse_fork(key: &[u8]) -> Option<BatchId> {
    let mut reader = Reader::new(key, prefix::FORK)?;
    let id = reader.batch()?;
    reader.end(id)
}

/// When to redact entries of one stored batch; the value lists their indices.
pub fn expiry(at_ms: u64, id: &BatchId) -> Vec<u8> {
    let (generation, seq) = (id.generation().to_be_bytes(), id.seq.to_be_bytes());
    join(prefix::EXPIRY, &[&at_ms.to_be_bytes(), id.origin(), &generation, &seq])
}
/// Entry expiry keys due before `now_ms`: the range `[from, to)`.
pub fn expiries_due(now_ms: u64) -> (Vec<u8>, Vec<u8>) {
    (vec![prefix::EXPIRY], join(prefix::EXPIRY, &[&now_ms.to_be_bytes()]))
}
/// (expiry ms, batch) of an expiry key.
pub fn parse_expiry(key: &[u8]) -> Option<(u64, BatchId)> {
    let mut reader = Reader::new(key, prefix::EXPIRY)?;
    let at_ms = reader.u64()?;
    let id = reader.batch()?;
    reader.end((at_ms, id))
}

/// An entry this node redacted for expiry or retraction.
pub fn tombstone(id: &BatchId, index: u32) -> Vec<u8> {
    let mut key = batch_key(prefix::TOMBSTONE, id);
    key.extend_from_slice(&index.to_be_bytes());
    key
}
/// (batch, entry index) of a tombstone key.
pub fn parse_tombstone(key: &[u8]) -> Option<(BatchId, u32)> {
    let mut reader = Reader::new(key, prefix::TOMBSTONE)?;
    let id = reader.batch()?;
    let index = reader.u32()?;
    reader.end((id, index))
}

/// A quota day.
pub fn quota(origin: &[u8; 32], day: u32) -> Vec<u8> {
    join(prefix::QUOTA, &[origin, &day.to_be_bytes()])
}
/// (origin, day) of a quota key.
pub fn parse_quota(key: &[u8]) -> Option<([u8; 32], u32)> {
    let mut reader = Reader::new(key, prefix::QUOTA)?;
    let origin = reader.take()?;
    let day = reader.u32()?;
    reader.end((origin, day))
}

/// An observed account.
pub fn hunt_account(index: u32) -> Vec<u8> {
    join(prefix::HUNT_ACCOUNT, &[&index.to_be_bytes()])
}
/// The index of an observed account key.
pub fn parse_hunt_account(key: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(key, prefix::HUNT_ACCOUNT)?;
    let index = reader.u32()?;
    reader.end(index)
}

/// An observed account's alias.
pub fn hunt_alias(canonical: &str) -> Vec<u8> {
    join(prefix::HUNT_ALIAS, &[canonical.as_bytes()])
}
/// The canonical form of an alias key.
pub fn parse_hunt_alias(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(Reader::new(key, prefix::HUNT_ALIAS)?.rest()).ok()
}

/// An observed account's day.
pub fn hunt_day_account(day: u32, account: u32) -> Vec<u8> {
    join(prefix::HUNT_DAY_ACCOUNT, &[&day.to_be_bytes(), &account.to_be_bytes()])
}
/// (day, account) of a day-account key.
pub fn parse_hunt_day_account(key: &[u8]) -> Option<(u32, u32)> {
    let mut reader = Reader::new(key, prefix::HUNT_DAY_ACCOUNT)?;
    let day = reader.u32()?;
    let account = reader.u32()?;
    reader.end((day, account))
}

/// An interaction edge's day.
pub fn hunt_edge(day: u32, from: u32, to: u32) -> Vec<u8> {
    join(prefix::HUNT_EDGE, &[&day.to_be_bytes(), &from.to_be_bytes(), &to.to_be_bytes()])
}
/// (day, from, to) of an edge key.
pub fn parse_hunt_edge(key: &[u8]) -> Option<(u32, u32, u32)> {
    let mut reader = Reader::new(key, prefix::HUNT_EDGE)?;
    let day = reader.u32()?;
    let from = reader.u32()?;
    let to = reader.u32()?;
    reader.end((day, from, to))
}

/// A seen post.
pub fn hunt_seen(day: u32, post_hash: u64) -> Vec<u8> {
    join(prefix::HUNT_SEEN, &[&day.to_be_bytes(), &post_hash.to_be_bytes()])
}
/// (day, post hash) of a seen key.
pub fn parse_hunt_seen(key: &[u8]) -> Option<(u32, u64)> {
    let mut reader = Reader::new(key, prefix::HUNT_SEEN)?;
    let day = reader.u32()?;
    let hash = reader.u64()?;
    reader.end((day, hash))
}

/// A follow snapshot.
pub fn hunt_follows(account: u32) -> Vec<u8> {
    join(prefix::HUNT_FOLLOWS, &[&account.to_be_bytes()])
}
/// The account of a follow snapshot key.
pub fn parse_hunt_follows(key: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(key, prefix::HUNT_FOLLOWS)?;
    let account = reader.u32()?;
    reader.end(account)
}

/// A curated community (id 0: the curation's counters).
pub fn curated_community(id: u64) -> Vec<u8> {
    join(prefix::CURATED_COMMUNITY, &[&id.to_be_bytes()])
}
/// The id of a curated community key.
pub fn parse_curated_community(key: &[u8]) -> Option<u64> {
    let mut reader = Reader::new(key, prefix::CURATED_COMMUNITY)?;
    let id = reader.u64()?;
    reader.end(id)
}

/// A "not a target" mark.
pub fn not_a_target(canonical: &str) -> Vec<u8> {
    join(prefix::NOT_A_TARGET, &[canonical.as_bytes()])
}
/// The canonical form of a mark key.
pub fn parse_not_a_target(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(Reader::new(key, prefix::NOT_A_TARGET)?.rest()).ok()
}

/// When this node first learned of a token, by the token's pseudonym.
pub fn identification(pseudonym: &[u8; 32]) -> Vec<u8> {
    join(prefix::IDENTIFICATION, &[pseudonym])
}
/// Every identification.
pub fn all_identifications() -> Vec<u8> {
    vec![prefix::IDENTIFICATION]
}
/// The token pseudonym of an identification key.
pub fn parse_identification(key: &[u8]) -> Option<[u8; 32]> {
    let mut reader = Reader::new(key, prefix::IDENTIFICATION)?;
    let pseudonym = reader.take()?;
    reader.end(pseudonym)
}

/// The takedown statuses asserted for a token, by the token's pseudonym.
pub fn takedown(pseudonym: &[u8; 32]) -> Vec<u8> {
    join(prefix::TAKEDOWN, &[pseudonym])
}
/// Every token's takedown statuses.
pub fn all_takedowns() -> Vec<u8> {
    vec![prefix::TAKEDOWN]
}
/// The token pseudonym of a takedown key.
pub fn parse_takedown(key: &[u8]) -> Option<[u8; 32]> {
    let mut reader = Reader::new(key, prefix::TAKEDOWN)?;
    let pseudonym = reader.take()?;
    reader.end(pseudonym)
}

/// The key range of a per-day hunt prefix (`d`, `y` or `s`) for the days before `day`.
pub fn hunt_days_before(prefix: u8, day: u32) -> (Vec<u8>, Vec<u8>) {
    (vec![prefix], join(prefix, &[&day.to_be_bytes()]))
}

// ---- across borders: community shares ----

/// Another origin's live tag of a token under a pseudonym.
pub fn remote_tag(origin: &[u8; 32], token: &Token, pseudonym: &[u8; 16]) -> Vec<u8> {
    join(prefix::REMOTE_TAG, &[origin, token.as_bytes(), pseudonym])
}
/// Every remote tag of `origin`.
pub fn remote_tags_of(origin: &[u8; 32]) -> Vec<u8> {
    join(prefix::REMOTE_TAG, &[origin])
}
/// Every remote tag `origin` made of `token`.
pub fn remote_tags_of_token(origin: &[u8; 32], token: &Token) -> Vec<u8> {
    join(prefix::REMOTE_TAG, &[origin, token.as_bytes()])
}
/// Every remote tag.
pub fn all_remote_tags() -> Vec<u8> {
    vec![prefix::REMOTE_TAG]
}
/// (origin, token, pseudonym) of a remote-tag key.
pub fn parse_remote_tag(key: &[u8]) -> Option<([u8; 32], Token, [u8; 16])> {
    let mut reader = Reader::new(key, prefix::REMOTE_TAG)?;
    let origin = reader.take()?;
    let token = reader.token()?;
    let pseudonym = reader.take()?;
    reader.end((origin, token, pseudonym))
}

/// A community snapshot this node shared.
pub fn own_snapshot(community: u64, seq: u64) -> Vec<u8> {
    join(prefix::OWN_SNAPSHOT, &[&community.to_be_bytes(), &seq.to_be_bytes()])
}
/// Every snapshot this node shared of `community`.
pub fn own_snapshots_of(community: u64) -> Vec<u8> {
    join(prefix::OWN_SNAPSHOT, &[&community.to_be_bytes()])
}
/// Every snapshot this node shared.
pub fn all_own_snapshots() -> Vec<u8> {
    vec![prefix::OWN_SNAPSHOT]
}
/// (community id, snapshot seq) of an own-snapshot key.
pub fn parse_own_snapshot(key: &[u8]) -> Option<(u64, u64)> {
    let mut reader = Reader::new(key, prefix::OWN_SNAPSHOT)?;
    let community = reader.u64()?;
    let seq = reader.u64()?;
    reader.end((community, seq))
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            parse_remote_add_place(&remote_add_place(&ORIGIN, 3, 1 << 40, &TOKEN)),
            Some((id, TOKEN))
        );
        assert_eq!(parse_own_add(&own_add(&TOKEN)), Some(TOKEN));
        assert_eq!(parse_alert(&alert(&TOKEN)), Some(TOKEN));
        assert_eq!(parse_fork(&fork(&id)), Some(id));
        assert_eq!(parse_expiry(&expiry(99, &id)), Some((99, id)));
        assert_eq!(parse_tombstone(&tombstone(&id, 6)), Some((id, 6)));
        assert_eq!(parse_quota(&quota(&ORIGIN, 20_000)), Some((ORIGIN, 20_000)));
        assert_eq!(parse_curated_community(&curated_community(12)), Some(12));
        assert_eq!(parse_not_a_target(&not_a_target("v1|account|x|a")), Some("v1|account|x|a"));
        assert_eq!(parse_not_a_target(&curated_community(12)), None);
        assert_eq!(parse_identification(&identification(&ORIGIN)), Some(ORIGIN));
        assert_eq!(parse_takedown(&takedown(&ORIGIN)), Some(ORIGIN));
        assert_eq!(parse_takedown(&identification(&ORIGIN)), None, "another prefix");
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
        // Byte for byte what schema version 1 wrote (and, for `p`, version 2), for every
        // builder: a store keeps working across this code.
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
            (tombstone(&id, 4), [&b"z"[..], &position, &4u32.to_be_bytes()].concat()),
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
        let feed = FeedId::new(ORIGIN, 2);
        let (from, to) = remote_add_places_from(&feed, 5);
        let place = |generation, seq, token: u8| {
            remote_add_place(&ORIGIN, generation, seq, &Token([token; 32]))
        };
        assert!(
            place(2, 4, 0xff) < from && from <= place(2, 5, 0) && place(2, u64::MAX, 0xff) < to
        );
        assert!(place(3, 0, 0) >= to && place(1, u64::MAX, 0xff) < from);
        // An origin's places, every generation: nothing of a neighbouring origin.
        let (from, to) = remote_add_places_of(&ORIGIN);
        assert!(from <= place(0, 0, 0) && place(u32::MAX, u64::MAX, 0xff) < to);
        let mut next = ORIGIN;
        next[31] = next[31].wrapping_add(1);
        let neighbour = remote_add_place(&next, 0, 0, &Token([0; 32]));
        assert!(neighbour >= to || neighbour < from);
        let (all_from, all_to) = all_remote_add_places();
        assert!(all_from <= from && to <= all_to);
        let other_kind = remote_add(&Token([0; 32]), &ORIGIN);
        assert!(!(all_from..all_to).contains(&other_kind), "only places are in the range");
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
}
