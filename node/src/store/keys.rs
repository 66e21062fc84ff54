//! The store's key layout: one builder and one parser per prefix, beside the table that
//! documents them. Nothing outside this file writes a prefix byte or slices a key.
//!
//! One tree, `crossmatch-v1`. Integers are big-endian, so keys sort by them; `origin` is a
//! member's 32-byte public key, `token` a 32-byte token, `generation` a u32, `seq`, ids and
//! times (Unix ms) u64s, `index` (an entry's place in its batch) and `day` u32s.
//!
//! | prefix | key after prefix | value |
//! | --- | --- | --- |
//! | `m` | name | metadata: `schema` version, counters `record` (and `record-reserved`, the last record id reserved durably), `outbox`, `alert`, `own` ([`OwnFeed`]), the records' token `epoch`, the last import id `import`, the `import-key` (32 random bytes keying import rows) and the `facts-key` (the key of the `I` and `T` rows' token pseudonyms, derived from the node's key at the store's first open and kept through key changes) |
//! | `r` | record id | [`Record`] |
//! | `e` | expiry ms ‖ record id | `()` (CBOR null): when to delete a local record |
//! | `h` | token ‖ record id | `()` (CBOR null): the local holdings index |
//! | `o` | outbox seq | [`OutboxItem`]: an entry waiting to be published |
//! | `b` | origin ‖ generation ‖ seq | a batch's wire form (possibly redacted) |
//! | `k` | origin ‖ generation ‖ seq | the stored batch's hash (32 bytes) |
//! | `i` | batch hash | [`BatchLocation`]: where the batch with that hash is stored |
//! | `c` | origin ‖ generation | [`ChainRecord`]: a chain's head and fork limit |
//! | `t` | token ‖ origin | [`RemoteAdd`]: another origin's live add of a token, with its first and latest receipt (the token's identification source while it lives) |
//! | `p` | origin ‖ generation ‖ seq ‖ token | schemas 2 and 3 only: where each `t` add sat (the index by chain). Schema 4 reads an origin's adds from its stored batches (`engine/live_adds.rs`); the open deletes these rows |
//! | `w` | token | [`OwnAdd`]: where this node's own live add of a token sits |
//! | `a` | token | [`Alert`] |
//! | `f` | origin ‖ generation ‖ seq | [`ForkEvidence`] for a fork at that seq |
//! | `x` | expiry ms ‖ origin ‖ generation ‖ seq | entry indices (a CBOR list of u32) of that batch to redact then |
//! | `v` | origin ‖ generation ‖ seq | [`Tombstones`]: the batch's entries redacted here for expiry or retraction (or unusable), never to be refilled: a bit per entry, 32 bytes, not CBOR |
//! | `z` | origin ‖ generation ‖ seq ‖ index | schema 4 and before only: a row per tombstone. Schema 5 folds them into the batch's `v` row at open, then deletes them |
//! | `q` | origin ‖ day | [`Quota`] the origin used that day (day = Unix ms / 86,400,000) |
//! | `n` | account index (u32) | [`AccountRow`]: an observed account (the hunt's ledger) |
//! | `l` | canonical form (UTF-8) | account index (u32): an observed account's alias |
//! | `d` | day ‖ account index | [`DayAccountRow`]: an account's posts and evidence that day |
//! | `y` | day ‖ from ‖ to (account indices) | [`EdgeRow`]: an interaction edge's day |
//! | `s` | day ‖ post hash (u64) | [`SeenRow`]: a post counted that day, its author, its evidence if kept |
//! | `g` | account index | [`FollowRow`]: an account's newest follow snapshot |
//! | `L` | community id (u64) | [`CuratedCommunity`]: an analyst's label, anchors, pin, merge or split of a community; id 0 holds [`CurationMeta`] (the next mark and community ids) |
//! | `N` | canonical form (UTF-8) | [`NotATarget`]: an account an analyst marked "not a target" |
//! | `G` | origin ‖ token ‖ pseudonym (16 bytes) | [`RemoteTag`]: another origin's live `tag` of a token |
//! | `H` | community id ‖ snapshot seq | [`OwnSnapshot`]: a community snapshot this node shared |
//! | `I` | token pseudonym (32 bytes: BLAKE3 keyed by the `facts-key`, so no token byte outlives the token's expiry) | [`Identification`]: when this node first learned of the token, from whom (own record, remote adds), and each source's clamped `created_at`; a remote add's source is its `t` row while the add lives, and lands here when it leaves |
//! | `T` | token pseudonym (as `I`) | [`TakedownStatuses`]: the referral, order, removal and reinstatement statuses members (this node included) asserted for the token, clamped |
//! | `U` | `0`, or `1` ‖ origin ‖ epoch | `0`: [`RotationPlan`], the epoch and secret rotation under way (with both epochs' secrets until its grace period ends) and how far it went; `1`: [`RepublicationAllowance`], how much of an origin's republication under a newer epoch may pass its daily quota, and how much it used |
//! | `u` | token | [`TokenPair`]: during a rotation's grace period, a held token's old-epoch and new-epoch tokens (under both) |
//! | `X` | origin | [`Withdrawal`]: an origin outside the roster whose live adds and tags are being withdrawn, a slice per step (`engine/members.rs`), with the next entry to read in its stored batches (CBOR null, the form before schema 4: from the first); its adds count for no alert meanwhile. Marked done once they are gone, the row stays while the origin stays outside the roster |
//! | `V` | roster version (u64), or `u64::MAX` ‖ `conflict` | a roster this node adopted: its `SignedRoster` wire form (`protocol::roster`), kept for every version adopted so the chain can be checked again at start and served to peers that missed versions; `u64::MAX` ‖ `conflict` (after every version key, never parsed as one): the first roster conflict this node proved, its `RosterConflict` wire form, two valid rosters of one version, verified again at start (the alarm survives a restart) |
//! | `W` | member id (UTF-8) | the highest-seq `SignedMemberRecord` wire form verified for that member (its addresses and contact) |
//! | `K` | (nothing) | [`OwnKeys`]: the node key the own feed is signed with, and the keys this node retired in routine key changes with their final heads (never to sign again), and, after a change, how far the republication of the own live shares under the new key went (a durable cursor) |
//! | `J` | origin | [`RepublicationAllowance`]: how much of a member's republication under its new node key (a routine key change) may pass its daily quota, and how much it used |
//! | `E` | event seq (u64) | [`StoredEvent`]: the alert event log, a ring of the last `event_log_keep` events (`m` keys `event-seq`, `event-incarnation`, `event-incarnation-from`, `event-high-water-written`); written with the alert row it reports, in one write |
//! | `D` | (nothing) | [`WebhookState`]: the webhook's delivery cursor and its durable drop counters |
//! | `M` | import id (u64) | [`ImportJob`]: an import or undo job, its state, cursor, counts and refusals by position |
//! | `R` | row key (32 bytes: BLAKE3 keyed by `import-key` over the source and subject, or the STIX id) | [`ImportRowState`]: the record an import row made, the last import that wrote it, its keyed content hash and STIX `modified`; lives and dies with its record |
//! | `j` | import id ‖ record id | schema 2 only: a record the import created, its row key and fingerprint then. Schema 3 keeps the fingerprint in the record ([`RecordImport`]) and the ids in the job ([`ImportJob`]'s `created`); the open migrates these rows and deletes them |
//! | `Q` | import id ‖ record id | `()` (CBOR null): a spread record waiting (a watch with `pending_share`) for quota room, first in first out |
//! | `S` | kind (u8) ‖ key | [`StixIds`]: an exported object's stored ids, 1 ‖ record id (indicator), 2 ‖ alert id ‖ member id (sighting), 3 ‖ member id (identity); 4 ‖ gone ms ‖ uuid (16): [`StixTombstone`], an exported object that went |
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
//! [`Tombstones`]: super::Tombstones
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
//! [`RotationPlan`]: crate::engine::rotation::RotationPlan
//! [`RepublicationAllowance`]: crate::engine::RepublicationAllowance
//! [`Withdrawal`]: crate::engine::Withdrawal
//! [`TokenPair`]: crate::engine::rotation::TokenPair
//! [`OwnKeys`]: crate::engine::OwnKeys
//! [`StoredEvent`]: super::events::StoredEvent
//! [`WebhookState`]: super::events::WebhookState
//! [`ImportJob`]: super::imports::ImportJob
//! [`ImportRowState`]: super::imports::ImportRowState
//! [`RecordImport`]: super::imports::RecordImport
//! [`StixIds`]: super::imports::StixIds
//! [`StixTombstone`]: super::imports::StixTombstone

use crossmatch_protocol::{BatchHash, BatchId, FeedId, Token};

use super::RecordId;

mod hunt;
mod imports;

pub use hunt::*;
pub use imports::*;

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
    /// Schemas 2 and 3 only: remote adds by place (origin, generation, seq), deleted at open.
    pub const REMOTE_ADD_PLACE: u8 = b'p';
    /// Own live adds.
    pub const OWN_ADD: u8 = b'w';
    /// Alerts.
    pub const ALERT: u8 = b'a';
    /// Fork evidence.
    pub const FORK: u8 = b'f';
    /// Entry expiry index.
    pub const EXPIRY: u8 = b'x';
    /// Tombstones of a batch's redacted entries.
    pub const TOMBSTONES: u8 = b'v';
    /// Schema 4 and before only: a tombstone per redacted entry, folded into `v` at open.
    pub const ENTRY_TOMBSTONE: u8 = b'z';
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
    // ---- epoch and secret rotation ----
    /// The rotation plan and the republication allowances.
    pub const ROTATION: u8 = b'U';
    /// Token pairs of a rotation's grace period.
    pub const TOKEN_PAIR: u8 = b'u';
    // ---- the roster adopted at run time ----
    /// Adopted rosters, by version.
    pub const ROSTER: u8 = b'V';
    /// Members' signed records, by member id.
    pub const MEMBER_RECORD: u8 = b'W';
    // ---- this node's own key changes ----
    /// The own feed's key and the retired own keys.
    pub const OWN_KEYS: u8 = b'K';
    /// Members' republication allowances after a routine key change.
    pub const KEY_CHANGE_ALLOWANCE: u8 = b'J';
    // ---- members removed from the roster ----
    /// Origins whose live adds are being withdrawn.
    pub const WITHDRAWAL: u8 = b'X';
    // ---- live alerts ----
    /// The alert event log.
    pub const EVENT: u8 = b'E';
    /// The webhook's delivery state.
    pub const WEBHOOK: u8 = b'D';
    // ---- imports and exports ----
    /// Import jobs.
    pub const IMPORT_JOB: u8 = b'M';
    /// Import rows' states, by row key.
    pub const IMPORT_ROW: u8 = b'R';
    /// Records each import created.
    pub const IMPORTED_RECORD: u8 = b'j';
    /// Spread records waiting for quota room.
    pub const PENDING_SHARE: u8 = b'Q';
    /// Exported STIX objects' ids and tombstones.
    pub const STIX_ID: u8 = b'S';
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
/// The key of the takedown facts' token pseudonyms (`I`, `T`).
pub fn facts_key() -> Vec<u8> {
    meta("facts-key")
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
/// The records with an id in `(after, last]`: the range `[from, to)`.
pub fn records_after_until(after: RecordId, last: RecordId) -> (Vec<u8>, Vec<u8>) {
    let to = match last.checked_add(1) {
        Some(next) => record(next),
        None => vec![prefix::RECORD + 1],
    };
    match after.checked_add(1) {
        Some(first) if first <= last => (record(first), to),
        _ => (to.clone(), to),
    }
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
/// The stored batches of `feed` from `from_seq` on: the range `[from, to)`.
pub fn feed_batches_from(feed: &FeedId, from_seq: u64) -> (Vec<u8>, Vec<u8>) {
    let generation = feed.generation.to_be_bytes();
    let from = join(prefix::BATCH, &[&feed.origin, &generation, &from_seq.to_be_bytes()]);
    // Past every key of the feed: those hold 8 bytes after the generation, none above 0xff.
    let to = join(prefix::BATCH, &[&feed.origin, &generation, &[0xff; 9]]);
    (from, to)
}
/// The stored batches of `origin` from generation `generation`, seq `from_seq` on, in every
/// later generation too: the range `[from, to)`.
pub fn origin_batches_from(
    origin: &[u8; 32],
    generation: u32,
    from_seq: u64,
) -> (Vec<u8>, Vec<u8>) {
    let from = join(prefix::BATCH, &[origin, &generation.to_be_bytes(), &from_seq.to_be_bytes()]);
    // Past every key of the origin: those hold 12 bytes after it, none above 0xff.
    let to = join(prefix::BATCH, &[origin, &[0xff; 13]]);
    (from, to)
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
/// Past every chain head of `origin`: where the next origin's begin.
pub fn chains_after(origin: &[u8; 32]) -> Vec<u8> {
    join(prefix::CHAIN, &[origin, &[0xff; 5]])
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

/// Schemas 2 and 3 only: the place of another origin's live add of a token, the index of remote
/// adds by chain that schema 4 no longer keeps (the open deletes these rows).
pub fn remote_add_place(origin: &[u8; 32], generation: u32, seq: u64, token: &Token) -> Vec<u8> {
    let (generation, seq) = (generation.to_be_bytes(), seq.to_be_bytes());
    join(prefix::REMOTE_ADD_PLACE, &[origin, &generation, &seq, token.as_bytes()])
}
/// Schemas 2 and 3 only: every place row.
pub fn all_remote_add_places() -> Vec<u8> {
    vec![prefix::REMOTE_ADD_PLACE]
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

/// The entries of a batch this node redacted for good.
pub fn tombstones(id: &BatchId) -> Vec<u8> {
    batch_key(prefix::TOMBSTONES, id)
}
/// The batch of a tombstones key.
pub fn parse_tombstones(key: &[u8]) -> Option<BatchId> {
    let mut reader = Reader::new(key, prefix::TOMBSTONES)?;
    let id = reader.batch()?;
    reader.end(id)
}

/// Schema 4 and before only: one entry this node redacted for good.
pub fn entry_tombstone(id: &BatchId, index: u32) -> Vec<u8> {
    let mut key = batch_key(prefix::ENTRY_TOMBSTONE, id);
    key.extend_from_slice(&index.to_be_bytes());
    key
}
/// (batch, entry index) of a schema 4 tombstone key.
pub fn parse_entry_tombstone(key: &[u8]) -> Option<(BatchId, u32)> {
    let mut reader = Reader::new(key, prefix::ENTRY_TOMBSTONE)?;
    let id = reader.batch()?;
    let index = reader.u32()?;
    reader.end((id, index))
}
/// Schema 4 and before only: every tombstone row.
pub fn all_entry_tombstones() -> Vec<u8> {
    vec![prefix::ENTRY_TOMBSTONE]
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
/// Every remote tag of `origin`: the range `[from, to)`.
pub fn remote_tags_range_of(origin: &[u8; 32]) -> (Vec<u8>, Vec<u8>) {
    let from = join(prefix::REMOTE_TAG, &[origin]);
    // Past every key of the origin: those hold 48 bytes after it, none above 0xff.
    let to = join(prefix::REMOTE_TAG, &[origin, &[0xff; 49]]);
    (from, to)
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
/// The own snapshots from the key `from` on (every one when `from` is empty): `[from, to)`.
pub fn own_snapshots_from(from: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let from = if from.is_empty() { all_own_snapshots() } else { from.to_vec() };
    (from, vec![prefix::OWN_SNAPSHOT + 1])
}
/// (community id, snapshot seq) of an own-snapshot key.
pub fn parse_own_snapshot(key: &[u8]) -> Option<(u64, u64)> {
    let mut reader = Reader::new(key, prefix::OWN_SNAPSHOT)?;
    let community = reader.u64()?;
    let seq = reader.u64()?;
    reader.end((community, seq))
}

// ---- epoch and secret rotation ----

/// The rotation plan.
pub fn rotation_plan() -> Vec<u8> {
    vec![prefix::ROTATION, 0]
}
/// An origin's republication allowance under `epoch`; every one: [`all_republication_allowances`].
pub fn republication_allowance(origin: &[u8; 32], epoch: u32) -> Vec<u8> {
    join(prefix::ROTATION, &[&[1], origin, &epoch.to_be_bytes()])
}
pub fn all_republication_allowances() -> Vec<u8> {
    vec![prefix::ROTATION, 1]
}
/// (origin, epoch) of a republication allowance key.
pub fn parse_republication_allowance(key: &[u8]) -> Option<([u8; 32], u32)> {
    let mut reader = Reader::new(key, prefix::ROTATION)?;
    let [1] = reader.take::<1>()? else { return None };
    let (origin, epoch) = (reader.take()?, reader.u32()?);
    reader.end((origin, epoch))
}
/// A token's pair during a rotation's grace period; every one: [`all_token_pairs`].
pub fn token_pair(token: &Token) -> Vec<u8> {
    join(prefix::TOKEN_PAIR, &[token.as_bytes()])
}
pub fn all_token_pairs() -> Vec<u8> {
    vec![prefix::TOKEN_PAIR]
}
/// The token of a token-pair key.
pub fn parse_token_pair(key: &[u8]) -> Option<Token> {
    let mut reader = Reader::new(key, prefix::TOKEN_PAIR)?;
    let token = reader.token()?;
    reader.end(token)
}
// ---- the roster adopted at run time ----

/// An adopted roster of `version`.
pub fn roster(version: u64) -> Vec<u8> {
    join(prefix::ROSTER, &[&version.to_be_bytes()])
}
/// The version of an adopted-roster key.
pub fn parse_roster(key: &[u8]) -> Option<u64> {
    let mut reader = Reader::new(key, prefix::ROSTER)?;
    let version = reader.u64()?;
    reader.end(version)
}
/// The roster conflict proved (one at most): after every version key, and never parsed as one.
pub fn roster_conflict() -> Vec<u8> {
    join(prefix::ROSTER, &[&u64::MAX.to_be_bytes(), b"conflict"])
}
/// A member's signed record.
pub fn member_record(member: &str) -> Vec<u8> {
    join(prefix::MEMBER_RECORD, &[member.as_bytes()])
}
/// The own feed's key and the retired own keys.
pub fn own_keys() -> Vec<u8> {
    vec![prefix::OWN_KEYS]
}
/// A member's republication allowance under its new node key `origin`.
pub fn key_change_allowance(origin: &[u8; 32]) -> Vec<u8> {
    join(prefix::KEY_CHANGE_ALLOWANCE, &[origin])
}
pub fn all_key_change_allowances() -> Vec<u8> {
    vec![prefix::KEY_CHANGE_ALLOWANCE]
}
/// The origin of a key change's allowance key.
pub fn parse_key_change_allowance(key: &[u8]) -> Option<[u8; 32]> {
    let mut reader = Reader::new(key, prefix::KEY_CHANGE_ALLOWANCE)?;
    let origin = reader.take()?;
    reader.end(origin)
}
/// The member id of a member-record key.
pub fn parse_member_record(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(Reader::new(key, prefix::MEMBER_RECORD)?.rest()).ok()
}

// ---- members removed from the roster ----

/// An origin outside the roster whose live adds are being withdrawn, or were; every one:
/// [`all_withdrawals`].
pub fn withdrawal(origin: &[u8; 32]) -> Vec<u8> {
    join(prefix::WITHDRAWAL, &[origin])
}
pub fn all_withdrawals() -> Vec<u8> {
    vec![prefix::WITHDRAWAL]
}
/// The origin of a withdrawal key.
pub fn parse_withdrawal(key: &[u8]) -> Option<[u8; 32]> {
    let mut reader = Reader::new(key, prefix::WITHDRAWAL)?;
    let origin = reader.take()?;
    reader.end(origin)
}

// ---- live alerts ----

/// An event of the alert log; every one: [`all_events`].
pub fn event(seq: u64) -> Vec<u8> {
    join(prefix::EVENT, &[&seq.to_be_bytes()])
}
pub fn all_events() -> Vec<u8> {
    vec![prefix::EVENT]
}
/// The seq of an event key.
pub fn parse_event(key: &[u8]) -> Option<u64> {
    let mut reader = Reader::new(key, prefix::EVENT)?;
    let seq = reader.u64()?;
    reader.end(seq)
}
/// The webhook's delivery state.
pub fn webhook_state() -> Vec<u8> {
    vec![prefix::WEBHOOK]
}

/// Every record with an id above `after`: the range `[from, to)`.
pub fn records_after(after: RecordId) -> (Vec<u8>, Vec<u8>) {
    (record(after.saturating_add(1)), vec![prefix::RECORD + 1])
}
/// Every stored batch from the key `from` on (from the first if `from` is not a batch key).
pub fn batches_from(from: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let first =
        if from.first() == Some(&prefix::BATCH) { from.to_vec() } else { vec![prefix::BATCH] };
    (first, vec![prefix::BATCH + 1])
}

#[cfg(test)]
mod tests;
