//! The roster's members while the node runs: [`Engine::set_members`] makes a new member set the
//! engine's without a restart. The origins it accepts are every member's node key and its
//! retired keys (a routine key change keeps the old feed matchable); an origin in neither has
//! its live adds and tags withdrawn from matching in one durable write, its alerts updated or
//! closed exactly as a fork's withdrawal does, and its new batches are ignored as origins
//! outside the roster. Its stored batches stay, and read, expire and purge as before.

use std::collections::{BTreeSet, HashMap};

use crossmatch_protocol::{PublicKey, Token};

use super::{Engine, Member, Result};
use crate::store::keys;

/// What [`Engine::set_members`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembersChange {
    /// Origins outside the new roster whose live adds were withdrawn.
    pub withdrawn_origins: usize,
    /// Live adds withdrawn from matching.
    pub withdrawn_adds: usize,
    /// Alerts updated or closed by the withdrawal.
    pub alerts_changed: usize,
}

impl Engine {
    /// Withdraws the live adds of every origin outside the configured members: what
    /// [`Engine::set_members`] does with the members the engine was opened with. A node that
    /// runs no signed roster calls it at start, so that an origin removed while it was stopped
    /// is withdrawn before it runs.
    pub fn withdraw_removed_members(&mut self) -> Result<MembersChange> {
        self.set_members(self.config.members.clone())
    }

    /// Makes `members` the roster (this node among them). Every live remote add of an origin
    /// that is neither a member's node key nor one of its retired keys is withdrawn, with its
    /// tags, and the alerts of its tokens are recomputed, all in one durable write; the alert
    /// changes are announced once it landed. Held batches of such origins are dropped.
    ///
    /// Idempotent: a second call with the same members finds no live add of an origin outside
    /// them and writes nothing. Origins are found through the index of remote adds by chain
    /// (one seek per origin that holds live adds), so an origin removed while this node was
    /// stopped is withdrawn by the first call after.
    pub fn set_members(&mut self, members: Vec<Member>) -> Result<MembersChange> {
        let roster = accepted_origins(&members);
        let outsiders: Vec<[u8; 32]> = self
            .origins_with_live_adds()?
            .into_iter()
            .filter(|origin| !roster.contains_key(origin) && !self.is_own(origin))
            .collect();
        let mut change = MembersChange { withdrawn_origins: outsiders.len(), ..Default::default() };
        let now = self.clock.now_ms();
        let store = self.store.clone();
        let mut txn = store.txn();
        let mut tokens: BTreeSet<Token> = BTreeSet::new();
        for origin in &outsiders {
            for (token, add) in txn.remote_adds_of(origin)? {
                txn.forget_remote_add(&token, origin, &add);
                change.withdrawn_adds += 1;
                tokens.insert(token);
            }
            self.withdraw_all_remote_tags(&mut txn, origin)?;
        }
        let mut events = Vec::new();
        for token in &tokens {
            events.extend(self.refresh_alert(&mut txn, token, now, false)?);
        }
        if !txn.is_empty() {
            txn.commit_durable()?;
        }
        change.alerts_changed = events.len();
        self.roster = roster;
        self.config.members = members;
        self.resolve_origins();
        let roster = &self.roster;
        self.held.retain(|id, _| roster.contains_key(id.origin()));
        self.announce(events);
        Ok(change)
    }

    /// This node's own public key.
    pub fn own_public_key(&self) -> PublicKey {
        self.config.key.public_key()
    }

    /// The roster's members.
    pub fn members(&self) -> &[Member] {
        &self.config.members
    }

    /// Every origin with a live add in the store, found by one seek per origin through the
    /// index of remote adds by chain.
    fn origins_with_live_adds(&self) -> Result<Vec<[u8; 32]>> {
        let (mut from, to) = keys::all_remote_add_places();
        let mut origins = Vec::new();
        while let Some(key) = self.store.range_keys(&from, &to, 1)?.pop() {
            let Some((id, _)) = keys::parse_remote_add_place(&key) else {
                // Not a place key: step past it.
                from = [key, vec![0]].concat();
                continue;
            };
            origins.push(*id.origin());
            from = keys::remote_add_places_of(id.origin()).1;
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
