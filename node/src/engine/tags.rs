//! Community shares across borders (docs/HUNT.md §5, docs/PROTOCOL.md §2.2 `tag`): publishing a
//! snapshot of a community (an `add` per account, from its analyst's record or from a new
//! record marked algorithmic, and a `tag` per account under the snapshot's random pseudonym),
//! keeping other origins' tags until their expiry, their retraction or a fork, and the facts
//! the hunt's overlap and priority read about tokens.

use std::collections::{HashMap, HashSet};

use crossmatch_protocol::{
    BatchId, Canonical, Evaluation, Handling, Op, Status, Tag, Token, VerifiedBatch,
};

use super::records::StageAs;
use super::{Engine, Error, NewRecord, Result};
use crate::audit::{Action, AuditSubject, AuditUser};
use crate::clock::DAY_MS;
use crate::store::{OwnSnapshot, RecordId, RemoteAdd, RemoteTag, Txn, keys};

/// Most live tags kept per origin; more are skipped and counted, so one member cannot fill
/// another's store with tags (a share of a large community is 2,000 accounts).
pub const MAX_TAGS_PER_ORIGIN: u64 = 20_000;
/// Most snapshots this node keeps of its own shares, live or not yet expired.
pub const MAX_OWN_SNAPSHOTS: usize = 1_000;
/// Most accounts in one community share.
pub const MAX_SHARED_ACCOUNTS: usize = 5_000;
/// Metadata name of the own-snapshot counter.
const SNAPSHOT_COUNTER: &str = "snapshot";

/// How this node holds an account a share would include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareHolding {
    /// A shared record (H0–H2) holds it: an analyst reviewed it; its add is published already.
    Shared,
    /// Only watches or H3 records hold it: an analyst chose not to share it, so a share
    /// leaves it out.
    Withheld,
    /// No record holds it: the share makes an algorithmic record for it.
    NotRecorded,
}

/// A community snapshot to publish, exactly as previewed.
#[derive(Debug, Clone)]
pub struct CommunityShare {
    /// The local community id.
    pub community: u64,
    /// The accounts, with the holding the preview saw and their activity bucket.
    pub accounts: Vec<SharedAccount>,
    /// Category of the algorithmic records.
    pub category: String,
    /// Handling code of the algorithmic records (H0–H2).
    pub handling: Handling,
    /// Evaluation of the algorithmic records.
    pub evaluation: Evaluation,
    /// When the tags and the algorithmic records expire (Unix ms).
    pub expires_at_ms: u64,
    /// The snapshot's random pseudonym.
    pub pseudonym: [u8; 16],
}

/// One account of a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAccount {
    /// Its canonical form.
    pub account: Canonical,
    /// How this node held it when the share was previewed.
    pub holding: ShareHolding,
    /// Its observed activity, rounded down to a bucket.
    pub activity_per_day: Option<u64>,
}

/// What a share published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareOutcome {
    /// The snapshot's number among this node's snapshots.
    pub snapshot: u64,
    /// Tags published.
    pub tags: usize,
    /// Algorithmic records made (and their adds published).
    pub records: Vec<RecordId>,
}

/// Another origin's live tag, as the overlap reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagView {
    /// The origin.
    pub origin: [u8; 32],
    /// The tagged token.
    pub token: Token,
    /// The snapshot's pseudonym.
    pub pseudonym: [u8; 16],
}

/// What the federation says of a token, for the priority score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// Members other than this node with a live add of it.
    pub members_holding: u32,
    /// Some member tags it in a shared community.
    pub tagged: bool,
    /// The latest status any member reported for it, and when.
    pub status: Option<(Status, u64)>,
}

impl Engine {
    /// How this node holds each account (by its token).
    pub fn share_holdings(&self, accounts: &[Canonical]) -> Result<Vec<ShareHolding>> {
        let txn = self.store.txn();
        accounts.iter().map(|account| self.holding_of(&txn, &self.token(account))).collect()
    }

    fn holding_of(&self, txn: &Txn<'_>, token: &Token) -> Result<ShareHolding> {
        let records = self.holding_records(txn, token)?;
        if records.is_empty() {
            return Ok(ShareHolding::NotRecorded);
        }
        Ok(if self.shared_holders(txn, token)?.is_empty() {
            ShareHolding::Withheld
        } else {
            ShareHolding::Shared
        })
    }

    /// Publishes a community snapshot in one durable write with its audit line: an algorithmic
    /// record (and its add) for each account no record holds, a tag per account, and the
    /// snapshot kept under `H`. Refused ([`Error::ShareChanged`]) when any account is held
    /// otherwise than the preview saw, so exactly the previewed set leaves.
    pub fn share_community(&mut self, share: CommunityShare, user: &str) -> Result<ShareOutcome> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        if share.expires_at_ms <= now || share.expires_at_ms - now > self.config.max_retention_ms {
            return Err(Error::Expiry { max_days: self.config.max_retention_ms / DAY_MS });
        }
        if share.accounts.is_empty() || share.accounts.len() > MAX_SHARED_ACCOUNTS {
            return Err(Error::ShareSize { max: MAX_SHARED_ACCOUNTS });
        }
        if share.handling == Handling::H3 {
            return Err(Error::ShareHandling);
        }
        if self.store.scan_keys(&keys::all_own_snapshots())?.len() >= MAX_OWN_SNAPSHOTS {
            return Err(Error::TooManySnapshots { max: MAX_OWN_SNAPSHOTS });
        }
        let mut txn = self.store.txn();
        let mut tokens = Vec::with_capacity(share.accounts.len());
        let mut records = Vec::new();
        let mut events = Vec::new();
        let mut seen = HashSet::new();
        for account in &share.accounts {
            let token = self.token(&account.account);
            if !seen.insert(token) {
                continue;
            }
            let holding = self.holding_of(&txn, &token)?;
            if holding != account.holding || holding == ShareHolding::Withheld {
                return Err(Error::ShareChanged);
            }
            if holding == ShareHolding::NotRecorded {
                let new = NewRecord {
                    identifiers: vec![account.account.clone()],
                    category: share.category.clone(),
                    handling: share.handling,
                    evaluation: share.evaluation,
                    notes: format!("community share {} (algorithmic)", share.community),
                    activity_per_day: account.activity_per_day,
                    expires_at_ms: share.expires_at_ms,
                    share: true,
                    backlog: false,
                };
                let (record, record_events) = self.stage_record(
                    &mut txn,
                    new,
                    &user,
                    now,
                    StageAs { algorithmic: true, ..StageAs::default() },
                )?;
                records.push(record.id);
                events.extend(record_events);
            }
            self.enqueue(
                &mut txn,
                Op::Tag(Tag {
                    token,
                    community: share.pseudonym,
                    expires_at_ms: share.expires_at_ms,
                }),
            )?;
            tokens.push(token);
        }
        let snapshot = self.next_counter(&mut txn, SNAPSHOT_COUNTER)?;
        txn.put(
            keys::own_snapshot(share.community, snapshot),
            &OwnSnapshot {
                pseudonym: share.pseudonym,
                tokens: tokens.clone(),
                algorithmic: records.len() as u64,
                created_at_ms: now,
                expires_at_ms: share.expires_at_ms,
                created_by: user.as_str().to_owned(),
            },
        );
        self.reserve_record_ids(&txn)?;
        let subject = AuditSubject::new(&format!(
            "community:{}.snapshot.{snapshot}.accounts.{}.algorithmic.{}",
            share.community,
            tokens.len(),
            records.len()
        ))?;
        self.store.check_space()?;
        self.audit.append(&user, Action::Share, &subject)?;
        txn.commit_durable()?;
        self.announce(events);
        Ok(ShareOutcome { snapshot, tags: tokens.len(), records })
    }

    /// The snapshots this node shared: (community id, snapshot seq, snapshot).
    pub fn own_snapshots(&self) -> Result<Vec<(u64, u64, OwnSnapshot)>> {
        Ok(self
            .store
            .scan::<OwnSnapshot>(&keys::all_own_snapshots())?
            .into_iter()
            .filter_map(|(key, snapshot)| {
                let (community, seq) = keys::parse_own_snapshot(&key)?;
                Some((community, seq, snapshot))
            })
            .collect())
    }

    /// Every live tag of other origins.
    pub fn remote_tags(&self) -> Result<Vec<TagView>> {
        Ok(self
            .store
            .scan_keys(&keys::all_remote_tags())?
            .into_iter()
            .filter_map(|key| {
                let (origin, token, pseudonym) = keys::parse_remote_tag(&key)?;
                Some(TagView { origin, token, pseudonym })
            })
            .collect())
    }

    /// What the federation says of each of `tokens`: the members holding it, whether a member
    /// tags it, the latest status reported.
    pub fn token_facts(&self, tokens: &[Token]) -> Result<Vec<TokenFacts>> {
        let tagged: HashSet<Token> = self.remote_tags()?.into_iter().map(|tag| tag.token).collect();
        let mut facts = Vec::with_capacity(tokens.len());
        for token in tokens {
            let adds = self.store.scan::<RemoteAdd>(&keys::remote_adds(token))?;
            let status = adds.iter().filter_map(|(_, add)| add.status).max_by_key(|s| s.1);
            let origins = adds.iter().filter_map(|(key, _)| keys::parse_remote_add(key));
            facts.push(TokenFacts {
                members_holding: self.origins.count_members(origins.map(|(_, origin)| origin))
                    as u32,
                tagged: tagged.contains(token),
                status,
            });
        }
        Ok(facts)
    }

    /// Keeps another origin's tag at `place`, within the origin's bound. Returns false (and
    /// counts it) when the origin is at its bound.
    pub(super) fn keep_remote_tag(
        &mut self,
        txn: &mut Txn<'_>,
        place: (BatchId, u32),
        tag: &Tag,
        expires_at_ms: u64,
        now: u64,
    ) -> Result<bool> {
        let (id, index) = place;
        let origin = *id.origin();
        let key = keys::remote_tag(&origin, &tag.token, &tag.community);
        let previous: Option<RemoteTag> = txn.get(&key)?;
        if previous.is_none() {
            let count = self.remote_tag_count(txn, &origin)?;
            if count >= MAX_TAGS_PER_ORIGIN {
                self.counters.tags_over_bound += 1;
                return Ok(false);
            }
            txn.put(keys::meta(&tag_count_name(&origin)), &(count + 1));
        }
        let remote = RemoteTag {
            generation: id.generation(),
            seq: id.seq,
            index,
            expires_at_ms,
            received_at_ms: previous.map_or(now, |p| p.received_at_ms),
        };
        txn.put(key, &remote);
        Ok(true)
    }

    /// Forgets every tag `origin` made of `token` (its retraction) and redacts them in their
    /// stored batches, so the token's bytes go with them.
    pub(super) fn drop_remote_tags(
        &self,
        txn: &mut Txn<'_>,
        origin: &[u8; 32],
        token: &Token,
        retracting: &BatchId,
        redact_here: &mut Vec<usize>,
    ) -> Result<()> {
        let tags = txn.scan::<RemoteTag>(&keys::remote_tags_of_token(origin, token))?;
        let mut by_batch: HashMap<BatchId, Vec<usize>> = HashMap::new();
        for (key, tag) in tags {
            txn.remove(key);
            self.forget_one_tag(txn, origin)?;
            let (id, index) = tag.place(*origin);
            if id == *retracting {
                redact_here.push(index as usize);
                txn.put_tombstone(&id, index)?;
            } else {
                by_batch.entry(id).or_default().push(index as usize);
            }
        }
        for (id, indices) in by_batch {
            self.redact_stored(txn, &id, &indices)?;
        }
        Ok(())
    }

    /// Forgets the tag of a stored entry whose expiry came (`retention`), if it still sits
    /// there.
    pub(super) fn expire_remote_tag(
        &self,
        txn: &mut Txn<'_>,
        place: (BatchId, u32),
        tag: &Tag,
    ) -> Result<()> {
        let origin = *place.0.origin();
        let key = keys::remote_tag(&origin, &tag.token, &tag.community);
        if txn.get::<RemoteTag>(&key)?.is_some_and(|t| t.place(origin) == place) {
            txn.remove(key);
            self.forget_one_tag(txn, &origin)?;
        }
        Ok(())
    }

    /// Forgets the tags a fork withdrew: those of `feed`'s origin at or after `seq` in its
    /// generation.
    pub(super) fn withdraw_remote_tags(
        &self,
        txn: &mut Txn<'_>,
        feed: &crossmatch_protocol::FeedId,
        seq: u64,
    ) -> Result<()> {
        for (key, tag) in txn.scan::<RemoteTag>(&keys::remote_tags_of(&feed.origin))? {
            if tag.generation == feed.generation && tag.seq >= seq {
                txn.remove(key);
                self.forget_one_tag(txn, &feed.origin)?;
            }
        }
        Ok(())
    }

    /// Withdraws the next `limit` (at least 1) tags of `origin` (a roster change removed it);
    /// with the last of them, its tag count. Returns whether none is left.
    pub(super) fn withdraw_remote_tags_slice(
        &self,
        txn: &mut Txn<'_>,
        origin: &[u8; 32],
        limit: usize,
    ) -> Result<bool> {
        let (from, to) = keys::remote_tags_range_of(origin);
        let slice = self.store.range_keys(&from, &to, limit)?;
        let finished = slice.len() < limit;
        for key in slice {
            txn.remove(key);
        }
        if finished {
            txn.remove(keys::meta(&tag_count_name(origin)));
        }
        Ok(finished)
    }

    /// Republishes, in the own feed's new generation, the tags a fork of it withdrew that are
    /// still live (their snapshot is kept and not expired).
    pub(super) fn republish_own_tags(
        &self,
        txn: &mut Txn<'_>,
        batch: &VerifiedBatch,
        now: u64,
    ) -> Result<()> {
        for entry in batch.entries().flatten() {
            if let Op::Tag(tag) = entry.op
                && tag.expires_at_ms > now
            {
                self.enqueue(txn, Op::Tag(tag))?;
            }
        }
        Ok(())
    }

    fn remote_tag_count(&self, txn: &Txn<'_>, origin: &[u8; 32]) -> Result<u64> {
        Ok(txn.get::<u64>(&keys::meta(&tag_count_name(origin)))?.unwrap_or(0))
    }

    /// How many live tags of `origin` this node keeps.
    pub(super) fn live_tag_count(&self, origin: &[u8; 32]) -> Result<u64> {
        self.remote_tag_count(&self.store.txn(), origin)
    }

    fn forget_one_tag(&self, txn: &mut Txn<'_>, origin: &[u8; 32]) -> Result<()> {
        let count = self.remote_tag_count(txn, origin)?;
        let name = keys::meta(&tag_count_name(origin));
        if count <= 1 {
            txn.remove(name);
        } else {
            txn.put(name, &(count - 1));
        }
        Ok(())
    }
}

/// Metadata name of an origin's live-tag count.
fn tag_count_name(origin: &[u8; 32]) -> String {
    format!("tags.{}", hex::encode(origin))
}
