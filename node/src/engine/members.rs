//! The roster's members while the node runs: [`Engine::set_members`] makes a new member set the
//! engine's without a restart. The origins it accepts are every member's node key and its
//! retired keys (a routine key change keeps the old feed matchable); an origin in neither (nor
//! one of this node's own earlier keys) has its new batches ignored as origins outside the
//! roster at once, and its live adds and tags withdrawn from matching in bounded steps
//! ([`Engine::withdrawal_step`], at most [`SLICE_ROWS`] stored entries read and tags per engine
//! call; the adds are read from the origin's stored batches, `live_adds.rs`), behind a durable
//! mark per origin (`X`, with the cursor of the next entry to read) that a crash between two
//! steps leaves in place, so the withdrawal resumes at open where it was. From the mark on, the
//! origin's adds not withdrawn yet count for no alert; each step updates or closes the alerts
//! of the adds it withdrew exactly as a fork's withdrawal does. Its stored batches stay, and
//! read, expire and purge as before.

use std::collections::{BTreeSet, HashMap, HashSet};

use crossmatch_protocol::{PublicKey, Token};

use serde::{Deserialize, Serialize};

use super::live_adds::EntryPlace;
use super::{Engine, Member, Result, SLICE_ROWS};
use crate::store::{Store, Txn, keys};

/// What [`Engine::set_members`] began, or what withdrawal steps did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembersChange {
    /// Origins outside the roster whose withdrawal began ([`Engine::set_members`]) or
    /// finished (withdrawal steps).
    pub withdrawn_origins: usize,
    /// Live adds withdrawn from matching.
    pub withdrawn_adds: usize,
    /// Alerts updated or closed by the withdrawal.
    pub alerts_changed: usize,
}

impl Engine {
    /// Marks for withdrawal the live adds of every origin outside the configured members: what
    /// [`Engine::set_members`] does with the members the engine was opened with. A node that
    /// runs no signed roster calls it at start, so that an origin removed while it was stopped
    /// is withdrawn (by the slice worker) and counts for no alert from the start.
    pub fn withdraw_removed_members(&mut self) -> Result<MembersChange> {
        self.set_members(self.config.members.clone())
    }

    /// Makes `members` the roster (this node among them). Every origin this node holds a chain
    /// of that is neither a member's node key nor one of its retired keys (nor one of this
    /// node's own earlier keys) is marked for withdrawal durably (`X`), in one write: from then
    /// on its batches are ignored and its adds count for no alert; [`Engine::withdrawal_step`] withdraws them, with its tags, a
    /// slice at a time. An origin that is a member again has its mark removed (what is left of
    /// its adds counts again). Held batches of origins outside the roster are dropped.
    ///
    /// Idempotent: a second call with the same members marks nothing new, and an origin is
    /// marked once while it stays outside the roster (the mark stays when its withdrawal is
    /// done). Origins are found through the chain heads (one seek per origin this node holds a
    /// chain of), so an origin removed while this node was stopped is marked by the first call
    /// after.
    pub fn set_members(&mut self, members: Vec<Member>) -> Result<MembersChange> {
        let origins_changed = origin_layout(&self.config.members) != origin_layout(&members);
        let roster = accepted_origins(&members);
        // Marked origins, withdrawn or being withdrawn: an origin is marked once while it
        // stays outside the roster.
        let marked: HashSet<[u8; 32]> = self
            .store
            .scan_keys(&keys::all_withdrawals())?
            .iter()
            .filter_map(|key| keys::parse_withdrawal(key))
            .collect();
        let own: HashSet<[u8; 32]> = super::own_key::earlier_keys(&self.store, &self.own_key)?
            .iter()
            .map(PublicKey::to_bytes)
            .chain([self.own_key])
            .collect();
        let outsiders: Vec<[u8; 32]> = self
            .origins_with_chains()?
            .into_iter()
            .filter(|origin| !roster.contains_key(origin) && !own.contains(origin))
            .filter(|origin| !marked.contains(origin))
            .collect();
        let readmitted: Vec<[u8; 32]> =
            marked.iter().filter(|origin| roster.contains_key(*origin)).copied().collect();
        let change = MembersChange { withdrawn_origins: outsiders.len(), ..Default::default() };
        if !outsiders.is_empty() || !readmitted.is_empty() {
            let mut txn = self.store.txn();
            for origin in &outsiders {
                txn.put(keys::withdrawal(origin), &Withdrawal::default());
            }
            for origin in &readmitted {
                txn.remove(keys::withdrawal(origin));
            }
            txn.commit_durable()?;
            tracing::info!(
                origins = outsiders.len(),
                readmitted = readmitted.len(),
                "origins outside the roster: withdrawal of their live adds begun"
            );
        }
        self.withdrawing.extend(outsiders);
        for origin in &readmitted {
            self.withdrawing.remove(origin);
        }
        self.roster = roster;
        self.config.members = members;
        self.resolve_origins();
        // Counts in progress depend only on the origins and which member's retired keys they
        // are: a change of anything else keeps them.
        if origins_changed {
            self.allowances.borrow_mut().clear();
        }
        self.forget_stale_key_change_allowances()?;
        let roster = &self.roster;
        self.held.retain(|id, _| roster.contains_key(id.origin()));
        Ok(change)
    }

    /// Makes `members` the roster: when they differ from the current members in nothing but
    /// contacts (a member's own record that changed only its addresses or contact), by taking
    /// them as they are, with no scan of the store and the allowance counts in progress kept;
    /// otherwise by [`Engine::set_members`].
    pub fn update_members(&mut self, members: Vec<Member>) -> Result<MembersChange> {
        if same_but_contacts(&self.config.members, &members) {
            self.config.members = members;
            return Ok(MembersChange::default());
        }
        self.set_members(members)
    }

    /// Withdraws the next slice (at most [`SLICE_ROWS`] entries of its stored batches read, and
    /// tags) of an origin marked by [`Engine::set_members`], in one durable write with the
    /// alerts it changes (announced once it landed) and the mark's cursor; once every batch is
    /// read its tags go, in what is left of a slice, and the last slice marks it done.
    /// Returns what it did, and whether another step is due (`None`: nothing to withdraw).
    pub fn withdrawal_step(&mut self) -> Result<Option<(MembersChange, bool)>> {
        let Some(&origin) = self.withdrawing.iter().next() else { return Ok(None) };
        let store = self.store.clone();
        let now = self.clock.now_ms();
        let mut txn = store.txn();
        let mut mark = stored_withdrawal(&txn, &origin)?;
        let mut change = MembersChange::default();
        let mut tokens: BTreeSet<Token> = BTreeSet::new();
        let mut read = 0;
        if let Some(from) = mark.next {
            let slice = self.live_adds_of(&txn, &origin, from, SLICE_ROWS)?;
            read = slice.read;
            for (token, add) in slice.adds {
                self.retire_remote_add(&mut txn, &token, &origin, &add)?;
                change.withdrawn_adds += 1;
                tokens.insert(token);
            }
            mark.next = slice.next;
        }
        // Its tags go once its adds are gone, in what is left of the slice (none when the
        // batches took all of it).
        let tags_budget = SLICE_ROWS.saturating_sub(read);
        let mut events = Vec::new();
        for token in &tokens {
            events.extend(self.refresh_alert(&mut txn, token, now, false)?);
        }
        let finished = mark.next.is_none()
            && tags_budget > 0
            && self.withdraw_remote_tags_slice(&mut txn, &origin, tags_budget)?;
        mark.done = finished;
        txn.put(keys::withdrawal(&origin), &mark);
        if finished {
            change.withdrawn_origins = 1;
        }
        txn.commit_durable()?;
        if finished {
            self.withdrawing.remove(&origin);
            tracing::info!(adds = change.withdrawn_adds, "origin outside the roster withdrawn");
        }
        change.alerts_changed = events.len();
        self.announce(events);
        Ok(Some((change, !self.withdrawing.is_empty())))
    }

    /// Runs withdrawal steps until none is left, in one call: for tests and tools (the daemon's
    /// slice worker runs one step per turn of the engine lock). Returns the totals.
    pub fn finish_withdrawals(&mut self) -> Result<MembersChange> {
        let mut total = MembersChange::default();
        while let Some((change, more)) = self.withdrawal_step()? {
            total.withdrawn_origins += change.withdrawn_origins;
            total.withdrawn_adds += change.withdrawn_adds;
            total.alerts_changed += change.alerts_changed;
            if !more {
                break;
            }
        }
        Ok(total)
    }

    /// Whether `origin`'s live adds are being withdrawn: they count for no alert meanwhile.
    pub(super) fn withdrawn(&self, origin: &[u8; 32]) -> bool {
        self.withdrawing.contains(origin)
    }

    /// The engine's bounded background work, one step: a withdrawal's, else an allowance
    /// count's, else a rotation's, else a key change's republication slice (only when the
    /// outbox is empty), else the release of a spread import's records as quota room comes.
    /// Returns whether another step is due now (the daemon's slice worker calls it until not).
    pub fn background_step(&mut self) -> Result<bool> {
        if self.withdrawal_step()?.is_some() {
            return Ok(true);
        }
        if self.allowance_count_step()? || self.rotation_step()? {
            return Ok(true);
        }
        Ok(self.own_republication_step()? || self.release_pending_step()?)
    }

    /// This node's own public key.
    pub fn own_public_key(&self) -> PublicKey {
        self.config.key.public_key()
    }

    /// Signs this member's own record (its addresses and contact, docs/PROTOCOL.md §4.5) with
    /// the node key; refused when the record is over its bounds.
    pub fn sign_own_record(
        &self,
        record: crossmatch_protocol::MemberRecord,
    ) -> std::result::Result<
        crossmatch_protocol::SignedMemberRecord,
        crossmatch_protocol::RosterProblem,
    > {
        record.sign(&self.config.key)
    }

    /// The roster's members.
    pub fn members(&self) -> &[Member] {
        &self.config.members
    }

    /// Every origin this node holds a chain of (and so, perhaps, live adds), found by one seek
    /// per origin through the chain heads.
    fn origins_with_chains(&self) -> Result<Vec<[u8; 32]>> {
        let (mut from, to) = (keys::all_chains(), vec![keys::prefix::CHAIN + 1]);
        let mut origins = Vec::new();
        while let Some(key) = self.store.range_keys(&from, &to, 1)?.pop() {
            let Some(feed) = keys::parse_chain(&key) else {
                // Not a chain key: step past it.
                from = [key, vec![0]].concat();
                continue;
            };
            origins.push(feed.origin);
            from = keys::chains_after(&feed.origin);
        }
        Ok(origins)
    }
}

/// The origins a roster accepts: each member's node key and its retired keys.
pub(super) fn accepted_origins(members: &[Member]) -> HashMap<[u8; 32], PublicKey> {
    members
        .iter()
        .flat_map(|member| std::iter::once(member.key).chain(member.retired_keys.iter().copied()))
        .map(|key| (key.to_bytes(), key))
        .collect()
}

/// Which origins a roster accepts, and how they group: each member's node key with its
/// retired keys, sorted (what allowance counts depend on).
fn origin_layout(members: &[Member]) -> BTreeSet<([u8; 32], BTreeSet<[u8; 32]>)> {
    members
        .iter()
        .map(|member| {
            let retired = member.retired_keys.iter().map(|key| key.to_bytes()).collect();
            (member.key.to_bytes(), retired)
        })
        .collect()
}

/// Whether two member lists differ in nothing but contacts: the same members in the same
/// order, with the same ids, node keys, retired keys and retired feeds' final heads.
fn same_but_contacts(current: &[Member], offered: &[Member]) -> bool {
    current.len() == offered.len()
        && current.iter().zip(offered).all(|(current, offered)| {
            current.id == offered.id
                && current.key == offered.key
                && current.retired_keys == offered.retired_keys
                && current.retired_heads == offered.retired_heads
        })
}

/// The origins whose withdrawal a crash left unfinished: resumed by the next steps.
pub(super) fn stored_withdrawals(store: &Store) -> Result<HashSet<[u8; 32]>> {
    // Each mark read once, key and value (a mark of an earlier build is CBOR null: going).
    let marks = store.scan::<Option<Withdrawal>>(&keys::all_withdrawals())?;
    Ok(marks
        .into_iter()
        .filter(|(_, mark)| !mark.is_some_and(|mark| mark.done))
        .filter_map(|(key, _)| keys::parse_withdrawal(&key))
        .collect())
}

/// Where the withdrawal of `origin` stands (`X`; a mark of an earlier build, CBOR null, stands
/// at its beginning).
fn stored_withdrawal(txn: &Txn<'_>, origin: &[u8; 32]) -> Result<Withdrawal> {
    Ok(txn.get::<Option<Withdrawal>>(&keys::withdrawal(origin))?.flatten().unwrap_or_default())
}

/// Where the withdrawal of an origin outside the roster stands (stored under `X`). The mark
/// stays once the withdrawal is done, so that the origin is not marked again while it stays
/// outside the roster; it goes when the origin is a member again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The next entry to read in the origin's stored batches; none once every one is read (its
    /// tags go then).
    pub next: Option<EntryPlace>,
    /// Every live add and tag of the origin is withdrawn.
    pub done: bool,
}

impl Default for Withdrawal {
    fn default() -> Self {
        Self { next: Some(EntryPlace::default()), done: false }
    }
}
