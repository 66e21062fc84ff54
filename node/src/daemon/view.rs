//! The façade's answers: plain Rust values that callers of [`Node`](super::Node) read, with
//! origins resolved to member ids and contacts from the roster. They are not JSON: the API
//! shapes its own answers from them. The status and fork reads that build them are here too.

use crossmatch_protocol::{PublicKey, Token};

use super::{Error, Lane, Result};
use crate::engine::{self, Counters, Member};
use crate::store::events::EventAlert;
use crate::store::{Alert, AlertState, Counterpart, Record, StoredIdentifier};

/// A roster member and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Member id (`DE`).
    pub member_id: String,
    /// Its contact, as the roster gives it.
    pub contact: String,
    /// Its key.
    pub key: PublicKey,
}

/// The roster's members, to resolve origins to member ids and contacts.
#[derive(Debug)]
pub(super) struct Roster {
    members: Vec<Contact>,
    /// Each member's retired node keys (a routine key change), by position in `members`: an
    /// origin under one of them is still that member.
    retired: Vec<Vec<PublicKey>>,
}

impl Roster {
    /// The roster of `members`.
    pub(super) fn new(members: &[Member]) -> Self {
        let contacts = members
            .iter()
            .map(|member| Contact {
                member_id: member.id.clone(),
                contact: member.contact.clone(),
                key: member.key,
            })
            .collect();
        let retired = members.iter().map(|member| member.retired_keys.clone()).collect();
        Self { members: contacts, retired }
    }

    /// Every member, in roster order.
    pub(super) fn contacts(&self) -> Vec<Contact> {
        self.members.clone()
    }

    /// The member whose key, or one of whose retired keys, is `origin` (its bytes), if it is
    /// on the roster.
    pub(super) fn member(&self, origin: &[u8; 32]) -> Option<&Contact> {
        let current = self.members.iter().position(|contact| contact.key.to_bytes() == *origin);
        let retired = || {
            self.retired.iter().position(|keys| keys.iter().any(|key| key.to_bytes() == *origin))
        };
        current.or_else(retired).and_then(|position| self.members.get(position))
    }

    /// The member id of `origin`, if it is on the roster.
    pub(super) fn member_id(&self, origin: &[u8; 32]) -> Option<String> {
        self.member(origin).map(|contact| contact.member_id.clone())
    }
}

/// A local record, raw identifiers included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Local id.
    pub id: u64,
    /// Canonical forms and their tokens.
    pub identifiers: Vec<IdentifierView>,
    /// Category label.
    pub category: String,
    /// Handling code name (`H0`–`H3`).
    pub handling: String,
    /// Evaluation (`B2`).
    pub evaluation: String,
    /// Free-text notes (local only).
    pub notes: String,
    /// Posts per day, if known.
    pub activity_per_day: Option<u64>,
    /// Made by an algorithm (a community share), not an analyst.
    pub algorithmic: bool,
    /// Expiry (Unix ms).
    pub expires_at_ms: u64,
    /// Shared with the federation, or only watched.
    pub shared: bool,
    /// Creation time (Unix ms).
    pub created_at_ms: u64,
    /// The user who created it.
    pub created_by: String,
    /// From a bulk import of old lists (kept out of the takedown budget figures).
    pub backlog: bool,
    /// A spread import's record waiting for quota room: a watch until released.
    pub pending_share: bool,
    /// The import that created or last updated it, if one did.
    pub import: Option<u64>,
}

/// One identifier of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierView {
    /// The canonical form (raw data).
    pub canonical: String,
    /// Its token in the record's epoch.
    pub token: Token,
    /// That epoch.
    pub epoch: u32,
}

impl From<StoredIdentifier> for IdentifierView {
    fn from(identifier: StoredIdentifier) -> Self {
        Self { canonical: identifier.canonical, token: identifier.token, epoch: identifier.epoch }
    }
}

impl From<Record> for RecordView {
    fn from(record: Record) -> Self {
        Self {
            id: record.id,
            identifiers: record.identifiers.into_iter().map(IdentifierView::from).collect(),
            category: record.category,
            handling: record.handling.as_str().to_owned(),
            evaluation: record.evaluation.to_string(),
            notes: record.notes,
            activity_per_day: record.activity_per_day,
            algorithmic: record.algorithmic,
            expires_at_ms: record.expires_at_ms,
            shared: record.shared,
            created_at_ms: record.created_at_ms,
            created_by: record.created_by,
            backlog: record.backlog,
            pending_share: record.pending_share,
            import: record.import.map(|import| import.import),
        }
    }
}

/// Which alerts to read: a filter and a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts in this state.
    pub state: Option<AlertState>,
    /// Only alerts changed at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only alerts with a greater id (0: from the first).
    pub after_id: u64,
    /// At most this many alerts.
    pub limit: usize,
}

impl AlertQuery {
    /// Every alert, in one page.
    pub fn all() -> Self {
        Self { state: None, since_ms: None, after_id: 0, limit: usize::MAX }
    }
}

/// A page of alerts, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPage {
    /// The alerts.
    pub alerts: Vec<AlertView>,
    /// The `after_id` of the next page, if there is one.
    pub next_after_id: Option<u64>,
}

/// One alert: a token held here that other members add too. `T` is what it shows of the token:
/// the full [`Token`] in the façade's answers, a [`TokenPrefix`] in an event
/// ([`EventAlertView`](super::EventAlertView)), so a full token cannot reach an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertView<T = Token> {
    /// Alert id (local, increasing).
    pub id: u64,
    /// The token (sensitive: show only its prefix), or only its prefix.
    pub token: T,
    /// State.
    pub state: AlertState,
    /// Acknowledged by an analyst.
    pub acknowledged: bool,
    /// Local records holding the token.
    pub records: Vec<u64>,
    /// The other members holding it.
    pub counterparts: Vec<CounterpartView>,
    /// First raised (Unix ms).
    pub opened_at_ms: u64,
    /// Last changed (Unix ms).
    pub updated_at_ms: u64,
    /// Strictly rising per alert: keep the highest.
    pub version: u64,
}

/// A token's first four bytes: all of it an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrefix([u8; 4]);

impl TokenPrefix {
    /// The prefix of `token`.
    pub fn of(token: &Token) -> Self {
        let [a, b, c, d, ..] = *token.as_bytes();
        Self([a, b, c, d])
    }
}

impl From<[u8; 4]> for TokenPrefix {
    fn from(bytes: [u8; 4]) -> Self {
        Self(bytes)
    }
}

/// What an alert view shows of its token, and how it is written: the first four bytes as hex.
pub trait AlertToken {
    /// The token's first four bytes, as hex.
    fn short(&self) -> String;
}

impl AlertToken for Token {
    fn short(&self) -> String {
        Token::short(self)
    }
}

impl AlertToken for TokenPrefix {
    fn short(&self) -> String {
        hex::encode(self.0)
    }
}

/// Another member's add of an alert's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterpartView {
    /// The member's id, if its key is on the roster.
    pub member_id: Option<String>,
    /// The member's contact, if its key is on the roster.
    pub contact: Option<String>,
    /// The member's public key (hex).
    pub origin: String,
    /// True when the match was found by a local add of a token already held remotely.
    pub retro: bool,
    /// Identifier kind name.
    pub kind: String,
    /// Category.
    pub category: String,
    /// Handling code name.
    pub handling: String,
    /// Evaluation.
    pub evaluation: String,
    /// Activity per day.
    pub activity_per_day: Option<u64>,
    /// Made by an algorithm (a community share), not an analyst.
    pub algorithmic: bool,
    /// Expiry, capped by this node's retention (Unix ms).
    pub expires_at_ms: u64,
    /// When the member signed the add (Unix ms).
    pub created_at_ms: u64,
    /// When this node received it (Unix ms).
    pub received_at_ms: u64,
    /// The latest status the member reported (`referred`, …), if any.
    pub status: Option<String>,
}

impl AlertView {
    /// `alert`, with its counterparts resolved from `roster` (its records and counterparts
    /// moved, not copied: every alert of every page goes through here).
    pub(super) fn new(alert: Alert, roster: &Roster) -> Self {
        let token = alert.token;
        AlertView::resolve(token, EventAlert::from(alert), roster)
    }
}

impl AlertView<TokenPrefix> {
    /// The alert an event keeps, with its counterparts resolved from `roster`.
    pub(super) fn of_event(alert: EventAlert, roster: &Roster) -> Self {
        AlertView::resolve(TokenPrefix::from(alert.token_prefix), alert, roster)
    }
}

impl<T> AlertView<T> {
    /// `alert` (an alert without its token) showing `token`, its counterparts resolved from
    /// `roster`.
    fn resolve(token: T, alert: EventAlert, roster: &Roster) -> Self {
        Self {
            id: alert.id,
            token,
            state: alert.state,
            acknowledged: alert.acknowledged,
            records: alert.records,
            counterparts: alert
                .counterparts
                .into_iter()
                .map(|counterpart| CounterpartView::new(counterpart, roster))
                .collect(),
            opened_at_ms: alert.opened_at_ms,
            updated_at_ms: alert.updated_at_ms,
            version: alert.version,
        }
    }
}

impl CounterpartView {
    fn new(counterpart: Counterpart, roster: &Roster) -> Self {
        let member = roster.member(&counterpart.origin.to_bytes());
        let add = counterpart.add;
        Self {
            member_id: member.map(|member| member.member_id.clone()),
            contact: member.map(|member| member.contact.clone()),
            origin: counterpart.origin.to_string(),
            retro: counterpart.retro,
            kind: add.kind.as_str().to_owned(),
            category: add.category,
            handling: add.handling.as_str().to_owned(),
            evaluation: add.evaluation.to_string(),
            activity_per_day: add.activity_per_day,
            algorithmic: add.algorithmic,
            expires_at_ms: add.expires_at_ms,
            created_at_ms: add.created_at_ms,
            received_at_ms: add.received_at_ms,
            status: add.status.map(|(status, _)| status.as_str().to_owned()),
        }
    }
}

/// A chain's position: (generation, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    /// Generation.
    pub generation: u32,
    /// Seq of the newest batch (0: none).
    pub seq: u64,
}

/// The head of one origin's chain held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadView {
    /// The origin's member id, if its key is on the roster.
    pub member_id: Option<String>,
    /// The origin's key.
    pub origin: PublicKey,
    /// Generation.
    pub generation: u32,
    /// Head seq: every batch up to it is held.
    pub seq: u64,
}

/// One fork held as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkView {
    /// The origin's member id, if its key is on the roster.
    pub member_id: Option<String>,
    /// The origin that signed two batches for one position.
    pub origin: PublicKey,
    /// Generation.
    pub generation: u32,
    /// The contested seq.
    pub seq: u64,
    /// When the fork was found (Unix ms).
    pub found_at_ms: u64,
}

/// The mesh's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshView {
    /// Members connected with a matching roster.
    pub connected_peers: usize,
    /// Gossip messages ignored because the node was busy.
    pub gossip_dropped_busy: u64,
    /// Inbound sync requests refused as busy.
    pub sync_refused_busy: u64,
    /// Connections refused since start.
    pub refused_connections: u64,
    /// Bans in force.
    pub bans: usize,
    /// Payload bytes sent (published batches and sync answers), before Noise and Yamux
    /// framing: see [`crate::mesh::MeshStats::payload_bytes_sent`].
    pub payload_bytes_sent: u64,
    /// Of those, the batches and announcements published by gossip: see
    /// [`crate::mesh::MeshStats::gossip_bytes_published`].
    pub gossip_bytes_published: u64,
}

impl MeshView {
    /// The figures of `stats`.
    pub(crate) fn of(stats: &crate::mesh::MeshStats) -> Self {
        Self {
            connected_peers: stats.connected_peers.len(),
            gossip_dropped_busy: stats.gossip_dropped_busy,
            sync_refused_busy: stats.sync_refused_busy,
            refused_connections: stats.refused_connections,
            bans: stats.bans.len(),
            payload_bytes_sent: stats.payload_bytes_sent,
            gossip_bytes_published: stats.gossip_bytes_published,
        }
    }
}

/// A running node's state at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// Own-feed recovery is done and the node publishes.
    pub ready: bool,
    /// This node's own feed.
    pub own_feed: FeedPosition,
    /// Entries waiting to be published.
    pub outbox: usize,
    /// Every origin's newest head held here, in origin order.
    pub heads: Vec<HeadView>,
    /// Forks held as evidence.
    pub forks: usize,
    /// Ingest counters since start.
    pub counters: Counters,
    /// The mesh's figures.
    pub mesh: MeshView,
    /// Members that announced another federation (no sync with them): member ids, or the key in hex
    /// for a key not on the roster.
    pub roster_mismatches: Vec<String>,
    /// Each peer's estimated clock skew, from fresh gossip.
    pub clock_skews: Vec<SkewView>,
}

/// A peer's estimated clock skew: the median, over its recent batches that gossip brought
/// fresh, of this node's receipt time minus the batch's `created_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkewView {
    /// The peer's member id, if its key is on the roster.
    pub member_id: Option<String>,
    /// The median (ms): transit time plus how far the peer's clock is behind (negative: ahead).
    pub median_ms: i64,
    /// Samples it is over.
    pub samples: usize,
}

impl super::Node {
    /// The node's state now: own feed, outbox, heads, forks, counters, the mesh's figures and
    /// the members running another roster.
    pub async fn status(&self) -> Result<StatusView> {
        let stats = self.mesh.stats().await.map_err(|_| Error::Closed)?;
        let (own, outbox, heads, forks, counters, skews) = self
            .call(Lane::Api, |engine| {
                let heads = engine.head_positions()?;
                Ok::<_, engine::Error>((
                    engine.own_head(),
                    engine.outbox_len()?,
                    heads,
                    engine.fork_count()?,
                    engine.counters(),
                    engine.clock_skews(),
                ))
            })
            .await??;
        let heads = heads
            .into_iter()
            .filter_map(|head| {
                Some(HeadView {
                    member_id: self.roster.member_id(head.origin()),
                    origin: PublicKey::from_bytes(head.origin()).ok()?,
                    generation: head.generation(),
                    seq: head.seq,
                })
            })
            .collect();
        let roster_mismatches = stats
            .roster_mismatches
            .iter()
            .map(|peer| self.roster.member_id(&peer.0).unwrap_or_else(|| hex::encode(peer.0)))
            .collect();
        Ok(StatusView {
            ready: self.is_ready(),
            own_feed: FeedPosition { generation: own.0, seq: own.1 },
            outbox,
            heads,
            forks,
            counters,
            mesh: MeshView::of(&stats),
            roster_mismatches,
            clock_skews: skews
                .into_iter()
                .map(|skew| SkewView {
                    member_id: self.roster.member_id(&skew.origin),
                    median_ms: skew.median_ms,
                    samples: skew.samples,
                })
                .collect(),
        })
    }

    /// Every fork held as evidence, with the origin's member id.
    pub async fn forks(&self) -> Result<Vec<ForkView>> {
        let forks = self.call(Lane::Api, |engine| engine.forks()).await??;
        Ok(forks
            .into_iter()
            .filter_map(|(contested, evidence)| {
                Some(ForkView {
                    member_id: self.roster.member_id(contested.origin()),
                    origin: PublicKey::from_bytes(contested.origin()).ok()?,
                    generation: contested.generation(),
                    seq: contested.seq,
                    found_at_ms: evidence.found_at_ms,
                })
            })
            .collect())
    }
}
