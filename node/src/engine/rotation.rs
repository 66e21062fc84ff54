//! Rotation of the federation's secret and token epoch (docs/PROTOCOL.md §5), one durable plan
//! (`U`) carried out in bounded steps ([`Engine::rotation_step`]: at most [`SLICE_ROWS`]
//! records, stored entries or pairs per engine call, so ingest, the API and sync run between
//! them), each committed durably with its cursor in the plan, so that a crash between any two
//! resumes at open:
//!
//! 1. **planned**: nothing changes before the changeover time but the stored plan;
//! 2. **switch**: at the changeover, in one write, the node starts running under the new epoch
//!    (`m`/`epoch`, the key): new records are tokenised, and entries published, under it;
//! 3. **retokenising**: every record's canonical forms are tokenised again under the new
//!    epoch's key, a slice of records per step, one *token* at a time: every record holding the
//!    old token moves to the new one together (holdings, the pair (old, new) under `u`, the
//!    alert row with its id and state, the takedown facts), so a token is never half moved. A
//!    token not moved yet still answers for itself: its alert stays under it and counts the old
//!    epoch's adds (`grace_adds`); a local change to a record (removal, status) or a new record
//!    of the same identifier moves the tokens it touches first;
//! 4. **matching**: every held token's alert is computed again, a slice per step, so the adds
//!    of the new epoch that peers published before (or while) this node moved match; then the
//!    own community snapshots' token lists move to the new tokens (**retagging**), at most
//!    [`SLICE_ROWS`] tokens per step, a long snapshot over several steps;
//! 5. **switched**: the grace period. Republication of the live shares (adds, statuses, tags)
//!    under the new epoch is paced by the publisher (`rotation/republish.rs`), a retraction is
//!    published under both epochs, and other origins' entries of the old epoch are still
//!    indexed and count for the matching record's alert through the token pairs;
//! 6. **purging**: once the grace period is over, every stored entry of an older epoch is
//!    redacted and forgotten the way retention forgets it (`rotation/purge.rs`), then the token
//!    pairs (a slice per step) and the plan (with both secrets) go.
//!
//! Alerts keep their identity because the alert row of a held token is moved, not raised
//! again, and an alert's counterparts during the grace period are the union (one per origin,
//! the new epoch's add preferred) of the adds under either token of the pair. The daemon drives
//! the steps from a worker of its own (`daemon/slices.rs`); tests and tools may run them all at
//! once with [`Engine::advance_rotation`].

mod purge;
mod republish;
mod retag;
mod secret_form;

use crossmatch_protocol::{Canonical, EpochKey, FederationSecret, Token};
use serde::{Deserialize, Serialize};

use super::{EPOCH, Engine, Result, SLICE_ROWS};
use crate::store::{self, Alert, AlertState, Record, RecordId, RemoteAdd, Txn, keys};

pub use super::allowance::{
    REPUBLICATION_BYTES_PER_ENTRY, REPUBLICATION_MARGIN_ENTRIES, RepublicationAllowance,
};
pub use purge::PURGE_SLICE;
pub use republish::REPUBLISH_SLICE;

/// Records tokenised again per step (each step is one durable write carrying its cursor).
pub const RETOKENISE_SLICE: usize = SLICE_ROWS;

/// A rotation to carry out: the new epoch, its secret, when it takes effect and how long the
/// old epoch still counts after it.
#[derive(Clone)]
pub struct Rotation {
    /// The new epoch: greater than the current one.
    pub new_epoch: u32,
    /// The new epoch's secret.
    pub new_secret: FederationSecret,
    /// When the node changes over (Unix ms; a time past is now).
    pub changeover_at_ms: u64,
    /// How long after the changeover the old epoch's entries still count (ms).
    pub grace_ms: u64,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("new_epoch", &self.new_epoch)
            .field("changeover_at_ms", &self.changeover_at_ms)
            .field("grace_ms", &self.grace_ms)
            .finish_non_exhaustive()
    }
}

/// Why a rotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationProblem {
    /// The new epoch must come after the current one.
    #[error("the new epoch ({new}) must be greater than the current epoch ({current})")]
    Epoch {
        /// The current epoch.
        current: u32,
        /// The epoch asked for.
        new: u32,
    },
    /// Another rotation is under way.
    #[error("a rotation to epoch {epoch} is under way; it must finish first")]
    UnderWay {
        /// Its new epoch.
        epoch: u32,
    },
    /// The grace period is longer than the node keeps anything.
    #[error("the grace period is at most the retention ({max_days} days)")]
    Grace {
        /// The limit in days.
        max_days: u64,
    },
}

/// How far a rotation went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Waiting for the changeover time.
    Planned,
    /// Under the new epoch, tokenising records again; those up to `after` are done. (A plan
    /// stored by an earlier version was in this stage before its switch: it switches when
    /// resumed, the records up to `after` being moved already.)
    Retokenising {
        /// The last record done.
        after: RecordId,
    },
    /// Under the new epoch; computing alerts again, those of records up to `after` done.
    Matching {
        /// The last record done.
        after: RecordId,
    },
    /// Under the new epoch, moving the own community snapshots' token lists to the new
    /// tokens, at most [`SLICE_ROWS`] tokens per step: snapshots before the key `from` are
    /// done, and in the snapshot at `from`, its first `index` tokens. (Added after the other
    /// stages: a plan stored by an earlier version never is in it.)
    Retagging {
        /// The snapshot key being moved (empty: the first).
        from: Vec<u8>,
        /// Its tokens already moved.
        index: usize,
    },
    /// In the grace period.
    Switched,
    /// Purging the old epoch's entries: stored batches from the key `from` on are left.
    Purging {
        /// The next stored batch key to look at.
        from: Vec<u8>,
    },
    /// Purged; only republication is left (the secrets are gone from the plan).
    Done,
}

/// The rotation under way, as stored under `U`. It holds both epochs' secrets until the old
/// epoch is purged, so that a crash at any step resumes without the configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPlan {
    /// The epoch rotated from.
    pub old_epoch: u32,
    /// Its secret (zeroed once the old epoch is purged; wiped from memory when dropped).
    #[serde(with = "secret_form")]
    old_secret: FederationSecret,
    /// The epoch rotated to.
    pub new_epoch: u32,
    /// Its secret (zeroed once the old epoch is purged: the configuration has it).
    #[serde(with = "secret_form")]
    new_secret: FederationSecret,
    /// When the node changes over (Unix ms).
    pub changeover_at_ms: u64,
    /// The grace period (ms).
    pub grace_ms: u64,
    /// How far it went.
    pub stage: Stage,
    /// Republication: the last record republished, while some are left (`None`: not started
    /// or finished; see `republishing`).
    pub republish_after: Option<RecordId>,
    /// Republication is under way (from the switch until every record and tag went out).
    pub republishing: bool,
    /// The last record id taken at the switch (the changeover): records after it were made
    /// under the new epoch and published as such, so republication stops there.
    #[serde(default)]
    pub republish_through: RecordId,
    /// `republish_through` was taken at the changeover (a plan stored by an earlier version
    /// takes it at the end of matching).
    #[serde(default)]
    pub through_taken_at_switch: bool,
}

impl std::fmt::Debug for RotationPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationPlan")
            .field("old_epoch", &self.old_epoch)
            .field("new_epoch", &self.new_epoch)
            .field("changeover_at_ms", &self.changeover_at_ms)
            .field("grace_ms", &self.grace_ms)
            .field("stage", &self.stage)
            .field("republishing", &self.republishing)
            .finish_non_exhaustive()
    }
}

impl RotationPlan {
    /// When the grace period ends (Unix ms).
    pub fn grace_ends_at_ms(&self) -> u64 {
        self.changeover_at_ms.saturating_add(self.grace_ms)
    }

    /// Whether the node runs under the new epoch.
    pub fn switched(&self) -> bool {
        !matches!(self.stage, Stage::Planned)
    }

    /// Whether records may still hold tokens of the old epoch not moved yet.
    fn moving(&self) -> bool {
        matches!(self.stage, Stage::Retokenising { .. })
    }

    /// The epoch and secret the node runs under at this stage.
    fn running(&self) -> (u32, FederationSecret) {
        if self.switched() {
            (self.new_epoch, self.new_secret.clone())
        } else {
            (self.old_epoch, self.old_secret.clone())
        }
    }
}

/// A held token's two tokens during a grace period, stored under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Under the old epoch.
    pub old: Token,
    /// Under the new epoch.
    pub new: Token,
}

/// What a rotation looks like from outside: for status and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationView {
    /// From.
    pub old_epoch: u32,
    /// To.
    pub new_epoch: u32,
    /// How far it went.
    pub stage: Stage,
    /// The changeover (Unix ms).
    pub changeover_at_ms: u64,
    /// The end of the grace period (Unix ms).
    pub grace_ends_at_ms: u64,
    /// Republication under the new epoch is not finished.
    pub republishing: bool,
}

/// How this node treats entries of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EpochRole {
    /// The epoch the node runs under: matched.
    Current,
    /// A newer epoch the node has not adopted yet: kept (indexed), matched once it adopts it.
    Pending,
    /// The epoch rotated from, during the grace period: kept, and matched through the pairs.
    Grace,
    /// Any other: not matched, forgotten at retention's end.
    Foreign,
}

impl Engine {
    /// Begins a rotation to `rotation.new_epoch`: the plan is stored durably, and carried out
    /// from the changeover time on (at once if it is past). The same rotation begun again is
    /// a no-op, and so is a rotation to the epoch and secret the node already runs under;
    /// another one while one is under way is refused. Returns the rotation as it stands (none
    /// once it is over).
    pub fn begin_rotation(&mut self, rotation: Rotation) -> Result<Option<RotationView>> {
        if let Some(plan) = &self.rotation {
            let same_secret = plan.new_secret == rotation.new_secret;
            if plan.new_epoch == rotation.new_epoch && (same_secret || plan.stage == Stage::Done) {
                self.rotation_step()?;
                return Ok(self.rotation_view());
            }
            return Err(RotationProblem::UnderWay { epoch: plan.new_epoch }.into());
        }
        if rotation.new_epoch == self.config.epoch && rotation.new_secret == self.config.secret {
            return Ok(None);
        }
        if rotation.new_epoch <= self.config.epoch {
            return Err(RotationProblem::Epoch {
                current: self.config.epoch,
                new: rotation.new_epoch,
            }
            .into());
        }
        if rotation.grace_ms > self.config.max_retention_ms {
            return Err(RotationProblem::Grace {
                max_days: self.config.max_retention_ms / crate::clock::DAY_MS,
            }
            .into());
        }
        let plan = RotationPlan {
            old_epoch: self.config.epoch,
            old_secret: self.config.secret.clone(),
            new_epoch: rotation.new_epoch,
            new_secret: rotation.new_secret,
            changeover_at_ms: rotation.changeover_at_ms,
            grace_ms: rotation.grace_ms,
            stage: Stage::Planned,
            republish_after: None,
            republishing: false,
            republish_through: 0,
            through_taken_at_switch: false,
        };
        let mut txn = self.store.txn();
        txn.put(keys::rotation_plan(), &plan);
        txn.commit_durable()?;
        tracing::info!(
            old_epoch = plan.old_epoch,
            new_epoch = plan.new_epoch,
            changeover_at_ms = plan.changeover_at_ms,
            "rotation planned"
        );
        self.rotation = Some(plan);
        self.rotation_step()?;
        Ok(self.rotation_view())
    }

    /// The rotation under way, if any.
    pub fn rotation_view(&self) -> Option<RotationView> {
        self.rotation.as_ref().map(|plan| RotationView {
            old_epoch: plan.old_epoch,
            new_epoch: plan.new_epoch,
            stage: plan.stage.clone(),
            changeover_at_ms: plan.changeover_at_ms,
            grace_ends_at_ms: plan.grace_ends_at_ms(),
            republishing: plan.republishing,
        })
    }

    /// The epoch the node runs under.
    pub fn epoch(&self) -> u32 {
        self.config.epoch
    }

    /// The fingerprint of the secret the node runs under (the secret never leaves the engine).
    pub fn secret_fingerprint(&self) -> [u8; 32] {
        crossmatch_protocol::secret_fingerprint(&self.config.secret)
    }

    /// Test-only (the `test-support` feature): the next rotation step stops after tokenising
    /// `records` records again, as a crash would, leaving the rest to the next open.
    #[cfg(feature = "test-support")]
    pub fn stop_retokenising_after(&mut self, records: usize) {
        self.retokenise_budget = Some(records);
    }

    /// Carries the rotation as far as the clock allows, step after step, in one call: for
    /// tests, benches and tools. The daemon calls [`Engine::rotation_step`], one bounded step per
    /// turn of the engine lock.
    pub fn advance_rotation(&mut self) -> Result<()> {
        while self.rotation_step()? {}
        Ok(())
    }

    /// Carries the rotation one bounded step (at most [`SLICE_ROWS`] records, stored entries
    /// or pairs), committed durably with its progress. Returns whether another step is due
    /// now; false when the rotation waits (for its changeover, the grace period's end or
    /// republication) or there is none. Called at open ([`Engine::open`]; the daemon's start
    /// calls it itself once the webhook is settled), when a rotation begins, before
    /// publishing, at each retention sweep, and by the daemon's slice worker until it is false.
    pub fn rotation_step(&mut self) -> Result<bool> {
        let Some(plan) = self.rotation.clone() else { return Ok(false) };
        let now = self.clock.now_ms();
        match &plan.stage {
            Stage::Planned if now < plan.changeover_at_ms => return Ok(false),
            Stage::Planned => {
                let new_epoch = plan.new_epoch;
                // Records made from now on are made, and published, under the new epoch:
                // republication stops at the last one made before.
                let through = self.store.get::<u64>(&keys::meta(super::RECORD_COUNTER))?;
                if let Some(plan) = &mut self.rotation {
                    plan.republish_through = through.unwrap_or(0);
                    plan.through_taken_at_switch = true;
                }
                self.save_stage(Stage::Retokenising { after: 0 }, |txn| {
                    txn.put(keys::meta(EPOCH), &new_epoch);
                    Ok(())
                })?;
                self.adopt_running_epoch();
                tracing::info!(new_epoch, "rotation: changeover; epoch switched");
            }
            Stage::Retokenising { after } => {
                if !self.retokenise_slice(&plan, *after)? {
                    return Ok(false);
                }
            }
            Stage::Matching { after } => self.match_slice(*after)?,
            Stage::Retagging { from, index } => self.retag_slice(from, *index)?,
            Stage::Switched if now < plan.grace_ends_at_ms() => return Ok(false),
            Stage::Switched => {
                self.save_stage(Stage::Purging { from: Vec::new() }, |_| Ok(()))?;
                tracing::info!(old_epoch = plan.old_epoch, "rotation: grace period over");
            }
            Stage::Purging { from } => self.purge_slice(&plan, from)?,
            Stage::Done if plan.republishing => return Ok(false),
            Stage::Done => self.end_rotation_slice()?,
        }
        Ok(self.rotation.is_some())
    }

    /// Stores the plan at `stage` (and whatever `more` stages with it) in one durable write.
    fn save_stage(
        &mut self,
        stage: Stage,
        more: impl FnOnce(&mut Txn<'_>) -> Result<()>,
    ) -> Result<()> {
        let Some(mut plan) = self.rotation.clone() else { return Ok(()) };
        plan.stage = stage;
        let store = self.store.clone();
        let mut txn = store.txn();
        more(&mut txn)?;
        txn.put(keys::rotation_plan(), &plan);
        txn.commit_durable()?;
        self.rotation = Some(plan);
        Ok(())
    }

    /// Tokenises the next slice of records again under the new epoch; when none is left,
    /// switches the node to the new epoch. Returns false when the test hook stopped it.
    fn retokenise_slice(&mut self, plan: &RotationPlan, after: RecordId) -> Result<bool> {
        let mut limit = RETOKENISE_SLICE;
        if let Some(budget) = self.retokenise_budget {
            if budget == 0 {
                self.retokenise_budget = None;
                return Ok(false);
            }
            limit = limit.min(budget);
        }
        let (from, to) = self.records_before_switch(plan, after);
        let ids: Vec<RecordId> = self
            .store
            .range_keys(&from, &to, limit)?
            .iter()
            .filter_map(|key| keys::parse_record(key))
            .collect();
        if let Some(budget) = &mut self.retokenise_budget {
            *budget -= ids.len().min(*budget);
        }
        let new_epoch = plan.new_epoch;
        let Some(&last) = ids.last() else {
            // Every record is under the new epoch.
            self.save_stage(Stage::Matching { after: 0 }, |_| Ok(()))?;
            tracing::info!(new_epoch, "rotation: records tokenised again");
            return Ok(true);
        };
        let new_key = self.new_epoch_key(plan);
        let store = self.store.clone();
        let mut txn = store.txn();
        for id in ids {
            let Some(record) = txn.get::<Record>(&keys::record(id))? else { continue };
            self.retokenise_record(&mut txn, &record, &new_key, new_epoch)?;
        }
        let mut next = plan.clone();
        next.stage = Stage::Retokenising { after: last };
        // A plan stored before its switch (an earlier version) switches with its first step.
        txn.put(keys::meta(EPOCH), &new_epoch);
        txn.put(keys::rotation_plan(), &next);
        txn.commit_durable()?;
        self.rotation = Some(next);
        Ok(true)
    }

    /// The records after `after` made before the switch: those made since were made under the
    /// new epoch (and matched when they were made), so a stream of new records cannot keep a
    /// step from finishing. A plan stored by an earlier version bounds nothing.
    fn records_before_switch(&self, plan: &RotationPlan, after: RecordId) -> (Vec<u8>, Vec<u8>) {
        let (from, to) = keys::records_after(after);
        if !plan.through_taken_at_switch {
            return (from, to);
        }
        let to = to.min(keys::record(plan.republish_through.saturating_add(1))).max(from.clone());
        (from, to)
    }

    /// The new epoch's key.
    fn new_epoch_key(&self, plan: &RotationPlan) -> EpochKey {
        EpochKey::derive(&self.config.federation_id, &plan.new_secret, plan.new_epoch)
    }

    /// While records are tokenised again: moves every token of record `id` still under the old
    /// epoch (with every other record holding it) to the new epoch, so that a local change to
    /// the record speaks the running epoch. Nothing to do outside that stage.
    pub(super) fn move_record_tokens(&self, txn: &mut Txn<'_>, id: RecordId) -> Result<()> {
        let Some(plan) = self.rotation.as_ref().filter(|plan| plan.moving()) else {
            return Ok(());
        };
        let Some(record) = txn.get::<Record>(&keys::record(id))? else { return Ok(()) };
        self.retokenise_record(txn, &record, &self.new_epoch_key(plan), plan.new_epoch)
    }

    /// Every token of one record under the new epoch, each moved with all its holders (see
    /// [`Engine::move_token`]). Idempotent: identifiers already under the new epoch are left.
    fn retokenise_record(
        &self,
        txn: &mut Txn<'_>,
        record: &Record,
        new_key: &EpochKey,
        new_epoch: u32,
    ) -> Result<()> {
        for identifier in &record.identifiers {
            if identifier.epoch == new_epoch {
                continue;
            }
            let Ok(canonical) = identifier.canonical.parse::<Canonical>() else {
                // Damaged: it cannot be tokenised again, so it leaves the record.
                tracing::error!(
                    record = record.id,
                    "identifier unreadable: left out of the rotation"
                );
                let Some(mut damaged) = txn.get::<Record>(&keys::record(record.id))? else {
                    continue;
                };
                damaged.identifiers.retain(|i| i.token != identifier.token);
                txn.remove(keys::holding(&identifier.token, record.id));
                txn.put(keys::record(record.id), &damaged);
                continue;
            };
            let new = new_key.token(&canonical);
            self.move_token(txn, &identifier.token, &new, new_epoch)?;
        }
        Ok(())
    }

    /// One old token under the new epoch, with every record holding it at once (so a token is
    /// never held under both): their identifiers and holdings, the pair under `u`, the alert
    /// row (same id and state) and the takedown facts.
    fn move_token(&self, txn: &mut Txn<'_>, old: &Token, new: &Token, epoch: u32) -> Result<()> {
        for id in self.holding_records(txn, old)? {
            txn.remove(keys::holding(old, id));
            let Some(mut record) = txn.get::<Record>(&keys::record(id))? else { continue };
            for identifier in &mut record.identifiers {
                if identifier.token == *old {
                    identifier.token = *new;
                    identifier.epoch = epoch;
                }
            }
            txn.put(keys::holding(new, id), &());
            txn.put(keys::record(id), &record);
        }
        let pair = TokenPair { old: *old, new: *new };
        txn.put(keys::token_pair(old), &pair);
        txn.put(keys::token_pair(new), &pair);
        if let Some(previous) = txn.get::<Alert>(&keys::alert(old))? {
            txn.remove(keys::alert(old));
            // The move is a change of the alert (its version rises, an event goes out); when
            // the new token has an alert already, that one answers for it and this one ends.
            // It changes now, so its event is dated now.
            let mut alert = Alert {
                version: previous.version + 1,
                updated_at_ms: self.clock.now_ms(),
                ..previous.clone()
            };
            let deleted = txn.get_raw(&keys::alert(new))?.is_some();
            if deleted {
                alert.state = AlertState::Closed;
            } else {
                alert.token = *new;
                txn.put(keys::alert(new), &alert);
            }
            self.stage_alert_event(txn, Some(&previous), &alert, deleted)?;
        }
        self.carry_takedown_facts(txn, old, new)
    }

    /// Computes the alerts of the next slice of records again under the new epoch; when none
    /// is left, the grace period (and republication) begins.
    fn match_slice(&mut self, after: RecordId) -> Result<()> {
        let Some(plan) = self.rotation.clone() else { return Ok(()) };
        let (from, to) = self.records_before_switch(&plan, after);
        let now = self.clock.now_ms();
        let store = self.store.clone();
        let keys_in = store.range_keys(&from, &to, SLICE_ROWS)?;
        let Some(last) = keys_in.last().and_then(|key| keys::parse_record(key)) else {
            let Some(mut plan) = self.rotation.clone() else { return Ok(()) };
            plan.stage = Stage::Retagging { from: Vec::new(), index: 0 };
            if !plan.through_taken_at_switch {
                // A plan stored before its switch by an earlier version: taken now.
                plan.republish_through =
                    store.get::<u64>(&keys::meta(super::RECORD_COUNTER))?.unwrap_or(0);
                plan.through_taken_at_switch = true;
            }
            let mut txn = store.txn();
            txn.put(keys::rotation_plan(), &plan);
            txn.commit_durable()?;
            self.rotation = Some(plan);
            return Ok(());
        };
        let mut txn = store.txn();
        let mut events = Vec::new();
        for key in &keys_in {
            let Some(record) = txn.get::<Record>(key)? else { continue };
            for identifier in &record.identifiers {
                events.extend(self.refresh_alert(&mut txn, &identifier.token, now, false)?);
            }
        }
        if let Some(mut plan) = self.rotation.clone() {
            plan.stage = Stage::Matching { after: last };
            txn.put(keys::rotation_plan(), &plan);
            txn.commit_durable()?;
            self.rotation = Some(plan);
        }
        self.announce(events);
        Ok(())
    }

    /// The rotation is over: the token pairs go, at most [`SLICE_ROWS`] per step; then, in
    /// one last step, the older epochs' republication allowances and the plan (with the
    /// secrets). The pairs are deleted in key order, so the step after a crash starts where
    /// the last one ended.
    fn end_rotation_slice(&mut self) -> Result<()> {
        let Some(plan) = self.rotation.clone() else { return Ok(()) };
        let pairs = self.store.scan_first::<TokenPair>(&keys::all_token_pairs(), SLICE_ROWS)?;
        let mut txn = self.store.txn();
        if !pairs.is_empty() {
            for (key, _) in pairs {
                txn.remove(key);
            }
            txn.commit_durable()?;
            return Ok(());
        }
        for key in self.store.scan_keys(&keys::all_republication_allowances())? {
            if keys::parse_republication_allowance(&key)
                .is_some_and(|(_, epoch)| epoch <= plan.new_epoch)
            {
                txn.remove(key);
            }
        }
        txn.remove(keys::rotation_plan());
        txn.commit_durable()?;
        self.rotation = None;
        self.allowances.borrow_mut().clear();
        tracing::info!(epoch = plan.new_epoch, "rotation finished");
        Ok(())
    }

    /// Sets the epoch, secret and key the node runs under from the plan's stage.
    pub(super) fn adopt_running_epoch(&mut self) {
        let Some(plan) = &self.rotation else { return };
        if plan.stage == Stage::Done {
            return;
        }
        let (epoch, secret) = plan.running();
        self.allowances.borrow_mut().clear();
        self.epoch_key = EpochKey::derive(&self.config.federation_id, &secret, epoch);
        self.config.epoch = epoch;
        self.config.secret = secret;
    }

    /// How this node treats entries of `epoch` at `now`.
    pub(super) fn epoch_role(&self, epoch: u32, now: u64) -> EpochRole {
        if epoch == self.config.epoch {
            return EpochRole::Current;
        }
        if epoch > self.config.epoch {
            return EpochRole::Pending;
        }
        match &self.rotation {
            Some(plan)
                if plan.switched()
                    && epoch == plan.old_epoch
                    && now < plan.grace_ends_at_ms()
                    && plan.stage != Stage::Done =>
            {
                EpochRole::Grace
            }
            _ => EpochRole::Foreign,
        }
    }

    /// The token an alert of `token` is kept under: during a rotation (from the switch until
    /// the pairs go), a held token of the old epoch is answered for by its new token.
    pub(super) fn alert_token(&self, txn: &Txn<'_>, token: &Token) -> Result<Token> {
        if !self.rotation.as_ref().is_some_and(RotationPlan::switched) {
            return Ok(*token);
        }
        Ok(txn.get::<TokenPair>(&keys::token_pair(token))?.map_or(*token, |pair| pair.new))
    }

    /// The token of the running epoch that stands for `token`: itself, or, once the node runs
    /// under a rotation's new epoch, the new twin of an old token (none for an old token no
    /// record holds: it cannot be tokenised again).
    /// A held old token not moved yet moves now (with its holders).
    pub(super) fn running_token(&self, txn: &mut Txn<'_>, token: &Token) -> Result<Option<Token>> {
        let Some(plan) = self.rotation.as_ref().filter(|plan| plan.switched()) else {
            return Ok(Some(*token));
        };
        if plan.moving()
            && txn.get_raw(&keys::token_pair(token))?.is_none()
            && let Some(&holder) = self.holding_records(txn, token)?.first()
        {
            self.move_record_tokens(txn, holder)?;
        }
        match txn.get::<TokenPair>(&keys::token_pair(token))? {
            Some(pair) if pair.old == *token => Ok(Some(pair.new)),
            Some(_) => Ok(Some(*token)),
            // Held and never paired: a token taken under the running epoch.
            None if !self.holding_records(txn, token)?.is_empty() => Ok(Some(*token)),
            None => Ok(None),
        }
    }

    /// The old epoch's adds that count for the alert of `token` (a new-epoch token) during the
    /// grace period: those of its pair's old token, by origin key.
    pub(super) fn grace_adds(
        &self,
        txn: &Txn<'_>,
        token: &Token,
        now: u64,
    ) -> Result<Vec<([u8; 32], RemoteAdd)>> {
        let Some(plan) = &self.rotation else { return Ok(Vec::new()) };
        if self.epoch_role(plan.old_epoch, now) != EpochRole::Grace {
            return Ok(Vec::new());
        }
        let old = match txn.get::<TokenPair>(&keys::token_pair(token))? {
            Some(pair) if pair.new == *token => pair.old,
            Some(_) => return Ok(Vec::new()),
            // A held token not moved to the new epoch yet answers for itself.
            None if plan.moving() => *token,
            None => return Ok(Vec::new()),
        };
        let mut adds = Vec::new();
        for (key, add) in txn.scan::<RemoteAdd>(&keys::remote_adds(&old))? {
            let Some((_, origin)) = keys::parse_remote_add(&key) else { continue };
            if add.epoch == plan.old_epoch {
                adds.push((origin, add));
            }
        }
        Ok(adds)
    }

    /// During the grace period, pairs a token taken now under the new epoch with its old-epoch
    /// twin, so other origins' old-epoch adds count for its alert and its retraction goes out
    /// under both epochs.
    pub(super) fn note_grace_pair(
        &self,
        txn: &mut Txn<'_>,
        canonical: &Canonical,
        new: &Token,
    ) -> Result<()> {
        let Some(plan) = &self.rotation else { return Ok(()) };
        if self.epoch_role(plan.old_epoch, self.clock.now_ms()) != EpochRole::Grace {
            return Ok(());
        }
        let old_key =
            EpochKey::derive(&self.config.federation_id, &plan.old_secret, plan.old_epoch);
        let pair = TokenPair { old: old_key.token(canonical), new: *new };
        if plan.moving() {
            // Records holding the old twin, not moved yet, move with it: one token, one alert.
            return self.move_token(txn, &pair.old, new, plan.new_epoch);
        }
        txn.put(keys::token_pair(&pair.old), &pair);
        txn.put(keys::token_pair(new), &pair);
        Ok(())
    }

    /// During the grace period, a retraction of `token` (a new-epoch token) is also published
    /// under the old epoch, for the peers that have not changed over yet.
    pub(super) fn enqueue_grace_retraction(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        reason: crossmatch_protocol::RetractReason,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let Some(plan) = &self.rotation else { return Ok(()) };
        if self.epoch_role(plan.old_epoch, now) != EpochRole::Grace {
            return Ok(());
        }
        let Some(pair) = txn.get::<TokenPair>(&keys::token_pair(token))? else { return Ok(()) };
        if pair.new != *token {
            return Ok(());
        }
        let op = crossmatch_protocol::Op::Retract(crossmatch_protocol::Retract {
            token: pair.old,
            reason,
        });
        self.enqueue_in_epoch(txn, op, plan.old_epoch)
    }
}

/// The stored rotation plan, if any.
pub(super) fn stored_plan(store: &store::Store) -> Result<Option<RotationPlan>> {
    Ok(store.get::<RotationPlan>(&keys::rotation_plan())?)
}
