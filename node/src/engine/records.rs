//! Local records and watches: adding (alone or in bulk), removing, flagging a status and
//! reading back, each in one durable write with its audit line; and the outbox entries they
//! make, so the federation learns of a token once, of a longer expiry, and of its retraction.

use crossmatch_protocol::limits::MAX_ACTIVITY_PER_DAY;
use crossmatch_protocol::{
    Add, Canonical, Entry, Handling, Kind, Op, Retract, RetractReason, Status, StatusUpdate, Token,
};

use super::{
    Engine, Error, NewRecord, OUTBOX_COUNTER, RECORD_COUNTER, RECORD_IDS_RESERVED,
    RECORD_IDS_RESERVED_AT_ONCE, Result,
};
use crate::audit::{Action, AuditSubject, AuditUser};
use crate::clock::DAY_MS;
use crate::engine::AlertEvent;
use crate::store::imports::RecordImport;
use crate::store::{self, OutboxItem, Record, RecordId, Store, StoredIdentifier, Txn, keys};
use std::sync::atomic::{AtomicU64, Ordering};

/// How a record is staged: by an analyst (the default), by a community share, or by an import.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StageAs {
    /// Made by a community share, not an analyst (its adds say so).
    pub algorithmic: bool,
    /// A spread import's record waiting for quota room: a watch until released.
    pub pending: bool,
    /// The import row that made it.
    pub import: Option<RecordImport>,
}

impl Engine {
    /// Adds a local record: writes it, its holdings and (if shared, H0–H2) its outbox entries in
    /// one atomic, flushed write, then matches it against what other origins hold. Durable
    /// against a process crash when it returns.
    pub fn add_record(&mut self, new: NewRecord, user: &str) -> Result<RecordId> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let (record, events) = self.stage_record(&mut txn, new, &user, now, StageAs::default())?;
        self.reserve_record_ids(&txn)?;
        // Audit first: a crash can leave an audit line for an action that did not complete,
        // never an action without its audit line. Room before the audit line: the commit is
        // refused only under half the reserve, so a full disk leaves no line for an id that
        // the next add would take again.
        let action = if record.shared { Action::Share } else { Action::Watch };
        self.store.check_space()?;
        self.audit.append(&user, action, &AuditSubject::record(record.id))?;
        txn.commit_durable()?;
        self.announce(events);
        Ok(record.id)
    }

    /// Adds many records in one atomic, flushed write with one `import` audit line: the bulk
    /// path for imports. All or nothing: one invalid record refuses the whole set.
    pub fn add_records(&mut self, records: Vec<NewRecord>, user: &str) -> Result<Vec<RecordId>> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut ids = Vec::with_capacity(records.len());
        let mut events = Vec::new();
        for new in records {
            let (record, record_events) =
                self.stage_record(&mut txn, new, &user, now, StageAs::default())?;
            ids.push(record.id);
            events.extend(record_events);
        }
        self.reserve_record_ids(&txn)?;
        let subject = AuditSubject::new(&format!("records:{}", ids.len()))?;
        self.store.check_space()?;
        self.audit.append(&user, Action::Import, &subject)?;
        txn.commit_durable()?;
        self.announce(events);
        Ok(ids)
    }

    /// Makes sure the ids `txn` takes are reserved durably before anything names them (the
    /// audit line comes next): if they pass the reservation, reserves them and
    /// [`RECORD_IDS_RESERVED_AT_ONCE`] more in a durable write of its own. A crash can then lose
    /// the record but never the reservation, and [`Engine::open`] resumes past it, so no id the
    /// audit log names is issued twice. The reservation is judged by what is known synced, not
    /// by the live store: a write applied whose sync failed shows values a crash may lose.
    pub(super) fn reserve_record_ids(&self, txn: &Txn<'_>) -> Result<()> {
        let last_taken = txn.get::<u64>(&keys::meta(RECORD_COUNTER))?.unwrap_or(0);
        if let Some(until) = self.record_ids.reservation_needed(last_taken) {
            let mut reservation = self.store.txn();
            let until =
                until.max(self.store.get::<u64>(&keys::meta(RECORD_IDS_RESERVED))?.unwrap_or(0));
            reservation.put(keys::meta(RECORD_IDS_RESERVED), &until);
            reservation.commit_durable()?;
            self.record_ids.reserved_durably(until);
        }
        Ok(())
    }

    /// Stages the reservation of the ids `txn` takes in `txn` itself, for a write that nothing
    /// outside it names before it commits (an import's chunk: the import's audit line names the
    /// import, and the chunk's alerts are announced after its commit). The reservation then
    /// lands with the ids, in the same durable write, instead of in one of its own before it.
    /// Returns the reservation staged: the caller reports it with
    /// [`RecordIds::reserved_durably`] once that write has synced, and only then.
    pub(super) fn stage_record_id_reservation(&self, txn: &mut Txn<'_>) -> Result<Option<u64>> {
        let last_taken = txn.get::<u64>(&keys::meta(RECORD_COUNTER))?.unwrap_or(0);
        let Some(until) = self.record_ids.reservation_needed(last_taken) else {
            return Ok(None);
        };
        let until = until.max(txn.get::<u64>(&keys::meta(RECORD_IDS_RESERVED))?.unwrap_or(0));
        txn.put(keys::meta(RECORD_IDS_RESERVED), &until);
        Ok(Some(until))
    }

    /// The next record id, staged in `txn`: past the counter and past the floor kept when the
    /// counter could not be moved at start.
    fn next_record_id(&self, txn: &mut Txn<'_>) -> Result<RecordId> {
        let taken = txn.get::<u64>(&keys::meta(RECORD_COUNTER))?.unwrap_or(0);
        let floor = &self.record_ids.floor;
        let next = taken.max(floor.load(Ordering::Relaxed)) + 1;
        // Never issued again in this run, even when the write naming it is refused (its audit
        // line may already name it).
        floor.fetch_max(next, Ordering::Relaxed);
        txn.put(keys::meta(RECORD_COUNTER), &next);
        Ok(next)
    }

    /// Validates a record and stages it, its holdings, its outbox entries and its alerts, as
    /// `how` says: made by a community share, or by an import (and then perhaps waiting for
    /// quota room: a watch until released).
    pub(super) fn stage_record(
        &self,
        txn: &mut Txn<'_>,
        new: NewRecord,
        user: &AuditUser,
        now: u64,
        how: StageAs,
    ) -> Result<(Record, Vec<AlertEvent>)> {
        self.check_new_record(&new, now)?;
        let wants_share = new.share && new.handling != Handling::H3;
        let id = self.next_record_id(txn)?;
        let mut identifiers = Vec::new();
        let mut kinds = Vec::new();
        for canonical in &new.identifiers {
            let token = self.token(canonical);
            if identifiers.iter().any(|i: &StoredIdentifier| i.token == token) {
                continue;
            }
            // During a rotation's grace period, its old-epoch twin counts for its alert.
            self.note_grace_pair(txn, canonical, &token)?;
            identifiers.push(StoredIdentifier {
                canonical: canonical.to_string(),
                token,
                epoch: self.config.epoch,
            });
            kinds.push(canonical.kind());
        }
        let mut record = Record {
            id,
            identifiers,
            category: new.category,
            handling: new.handling,
            evaluation: new.evaluation,
            notes: new.notes,
            activity_per_day: new.activity_per_day,
            expires_at_ms: new.expires_at_ms,
            shared: wants_share && !how.pending,
            created_at_ms: now,
            created_by: user.as_str().to_owned(),
            algorithmic: how.algorithmic,
            status: None,
            backlog: new.backlog,
            pending_share: wants_share && how.pending,
            import: how.import,
        };
        if record.import.is_some() {
            // What the import's undo compares: the record as the import created it.
            let then = Some(store::imports::fingerprint(&record));
            record.import = record.import.map(|made| RecordImport { fingerprint: then, ..made });
        }
        // Each token's holdings are read once, before this record's: they decide its `add`
        // and, with this record, its alert.
        let mut held = Vec::with_capacity(record.identifiers.len());
        for (identifier, kind) in record.identifiers.iter().zip(kinds) {
            let holders = self.holding_records(txn, &identifier.token)?;
            if record.shared {
                let longest = self.longest_shared_hold(txn, &holders, id)?;
                self.enqueue_add_if_longer(txn, &record, identifier.token, kind, longest)?;
            }
            held.push(holders);
        }
        txn.put(keys::record(id), &record);
        txn.put(keys::record_expiry(record.expires_at_ms, id), &());
        let mut events = Vec::new();
        for (identifier, mut holders) in record.identifiers.iter().zip(held) {
            let token = identifier.token;
            txn.put(keys::holding(&token, id), &());
            self.note_identification(txn, &token, self.own_key, now, now)?;
            let alert_token = self.alert_token(txn, &token)?;
            let event = if alert_token == token {
                // The holdings as the scan of `H` would now read them: ids in key order.
                if let Err(place) = holders.binary_search(&id) {
                    holders.insert(place, id);
                }
                self.refresh_alert_of(txn, &token, holders, now, true)?
            } else {
                self.refresh_alert(txn, &token, now, true)?
            };
            events.extend(event);
        }
        Ok((record, events))
    }

    /// The rules a new record's fields follow (identifiers, expiry, category, activity).
    pub(super) fn check_new_record(&self, new: &NewRecord, now: u64) -> Result<()> {
        if new.identifiers.is_empty() {
            return Err(Error::NoIdentifiers);
        }
        if new.expires_at_ms <= now || new.expires_at_ms - now > self.config.max_retention_ms {
            return Err(Error::Expiry { max_days: self.config.max_retention_ms / DAY_MS });
        }
        if !crossmatch_protocol::is_valid_category(&new.category) {
            return Err(Error::Category);
        }
        if new.activity_per_day.is_some_and(|activity| activity > MAX_ACTIVITY_PER_DAY) {
            return Err(Error::Activity);
        }
        Ok(())
    }

    /// Enqueues the `add` of `token` that the shared `record` makes, unless another shared
    /// record holds the token as long or longer: the federation learns of a token once, and
    /// again whenever a record keeps it longer than the records already sharing it.
    pub(super) fn enqueue_add_once(
        &self,
        txn: &mut Txn<'_>,
        record: &Record,
        token: Token,
        kind: Kind,
    ) -> Result<()> {
        let holders = self.holding_records(txn, &token)?;
        let held_until = self.longest_shared_hold(txn, &holders, record.id)?;
        self.enqueue_add_if_longer(txn, record, token, kind, held_until)
    }

    /// The latest expiry among the shared records of `holders` other than `record` (`None`:
    /// no other shared record holds the token).
    fn longest_shared_hold(
        &self,
        txn: &Txn<'_>,
        holders: &[RecordId],
        record: RecordId,
    ) -> Result<Option<u64>> {
        let mut held_until = None;
        for &id in holders.iter().filter(|&&id| id != record) {
            if let Some(other) = txn.get::<Record>(&keys::record(id))?
                && other.shared
            {
                held_until = held_until.max(Some(other.expires_at_ms));
            }
        }
        Ok(held_until)
    }

    /// Enqueues the `add` of `token` the shared `record` makes when no other shared record
    /// holds it (`held_until` is `None`) or it holds it longer than they do.
    fn enqueue_add_if_longer(
        &self,
        txn: &mut Txn<'_>,
        record: &Record,
        token: Token,
        kind: Kind,
        held_until: Option<u64>,
    ) -> Result<()> {
        if held_until.is_none_or(|until| record.expires_at_ms > until) {
            self.enqueue(
                txn,
                Op::Add(Add {
                    token,
                    kind,
                    category: record.category.clone(),
                    handling: record.handling,
                    evaluation: record.evaluation,
                    activity_per_day: record.activity_per_day,
                    expires_at_ms: record.expires_at_ms,
                    algorithmic: record.algorithmic,
                }),
            )?;
        }
        Ok(())
    }

    /// Removes a local record; a token no shared record holds any more is retracted.
    pub fn remove_record(&mut self, id: RecordId, reason: RetractReason, user: &str) -> Result<()> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let mut txn = self.store.txn();
        let (record, events) = self.stage_removal(&mut txn, id, reason, now)?;
        let action = if record.shared { Action::Retract } else { Action::Unwatch };
        self.store.check_space()?;
        self.audit.append(&user, action, &AuditSubject::record(id))?;
        txn.commit_durable()?;
        self.announce(events);
        Ok(())
    }

    /// Stages the removal of a local record with its holdings, expiry and import rows: a token
    /// no shared record holds any more is retracted with `reason` (a later expiry than is now
    /// held is corrected), and an `erroneous` one voids the own identification of a token no
    /// record holds any more. Returns the record and its alerts' changes.
    pub(super) fn stage_removal(
        &self,
        txn: &mut Txn<'_>,
        id: RecordId,
        reason: RetractReason,
        now: u64,
    ) -> Result<(Record, Vec<AlertEvent>)> {
        // Mid-rotation, its tokens move to the running epoch first (`rotation.rs`).
        self.move_record_tokens(txn, id)?;
        let record: Record = txn.get(&keys::record(id))?.ok_or(Error::NoRecord(id))?;
        txn.remove(keys::record(id));
        txn.remove(keys::record_expiry(record.expires_at_ms, id));
        self.forget_import_rows(txn, &record)?;
        let mut events = Vec::new();
        for identifier in &record.identifiers {
            txn.remove(keys::holding(&identifier.token, id));
            if reason == RetractReason::Erroneous
                && self.holding_records(txn, &identifier.token)?.is_empty()
            {
                self.void_identification(txn, &identifier.token, &self.own_key)?;
            }
            if record.shared {
                self.release_shared_token(txn, &record, identifier, reason)?;
            }
            events.extend(self.refresh_alert(txn, &identifier.token, now, false)?);
        }
        Ok((record, events))
    }

    /// What the federation is told when the shared `record` (removed, or changed not to share
    /// the token any more) no longer holds one of its tokens: a retraction when no other shared
    /// record holds it, or the add of the longest holder when that one expires earlier.
    pub(super) fn release_shared_token(
        &self,
        txn: &mut Txn<'_>,
        record: &Record,
        identifier: &StoredIdentifier,
        reason: RetractReason,
    ) -> Result<()> {
        let remaining = self.shared_holders(txn, &identifier.token)?;
        let remaining = remaining.iter().filter(|other| other.id != record.id);
        match remaining.max_by_key(|r| r.expires_at_ms) {
            None => {
                let token = identifier.token;
                self.enqueue(txn, Op::Retract(Retract { token, reason }))?;
                // During a rotation's grace period: under the old epoch too.
                self.enqueue_grace_retraction(txn, &token, reason)?;
            }
            // The federation was told of a later expiry than is now held: correct it.
            Some(longest) if longest.expires_at_ms < record.expires_at_ms => {
                let add = self.add_of(longest, identifier)?;
                self.enqueue(txn, Op::Add(add))?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Keeps a record's status, taking effect now, and publishes it for every token of a shared
    /// record.
    pub fn set_status(&mut self, id: RecordId, status: Status, user: &str) -> Result<()> {
        self.set_status_at(id, status, self.clock.now_ms(), user)
    }

    /// Keeps a record's referral or takedown status that took effect at `at_ms` (a later time
    /// than now is taken as now), publishes it for every token of a shared record, and notes it
    /// for the takedown clock (for a watched record too).
    pub fn set_status_at(
        &mut self,
        id: RecordId,
        status: Status,
        at_ms: u64,
        user: &str,
    ) -> Result<()> {
        let user = AuditUser::new(user)?;
        let now = self.clock.now_ms();
        let at_ms = at_ms.min(now);
        let mut txn = self.store.txn();
        // Mid-rotation, its tokens move to the running epoch first (`rotation.rs`).
        self.move_record_tokens(&mut txn, id)?;
        let mut record: Record = txn.get(&keys::record(id))?.ok_or(Error::NoRecord(id))?;
        record.status = Some((status, at_ms));
        txn.put(keys::record(id), &record);
        for identifier in &record.identifiers {
            if record.shared {
                self.enqueue(
                    &mut txn,
                    Op::Status(StatusUpdate { token: identifier.token, status, at_ms }),
                )?;
            }
            self.note_status(&mut txn, &identifier.token, self.own_key, status, at_ms, now)?;
        }
        self.store.check_space()?;
        self.audit.append(&user, Action::Status, &AuditSubject::record(id))?;
        txn.commit_durable()?;
        Ok(())
    }

    /// A local record by id: raw data, so the read is audited under `user`.
    pub fn read_record(&mut self, id: RecordId, user: &str) -> Result<Option<Record>> {
        let user = AuditUser::new(user)?;
        self.audit.append(&user, Action::ReadRecord, &AuditSubject::record(id))?;
        Ok(self.store.get(&keys::record(id))?)
    }

    /// Writes one audit line for `user` about the hunt (`Observe` with the counts as subject,
    /// or `ReadAnalytics` naming what was read), before the caller answers.
    pub fn audit_hunt(&mut self, user: &str, action: Action, subject: &str) -> Result<()> {
        let user = AuditUser::new(user)?;
        self.audit.append(&user, action, &AuditSubject::new(subject)?)?;
        Ok(())
    }

    /// Writes one audit line of the node's own (`*node`), such as a reload on SIGHUP.
    pub fn audit_by_node(&mut self, action: Action, subject: &str) -> Result<()> {
        self.audit.append(&AuditUser::node(), action, &AuditSubject::new(subject)?)?;
        Ok(())
    }

    /// [`Engine::audit_by_node`] for a line that precedes a write to the store (a roster
    /// adopted, a rotation begun, a key changed, an import's share released): refused while
    /// the disk is short of the store's reserve, since a line for a write then refused would
    /// name what never happened, each time it is tried again.
    pub fn audit_by_node_before_write(&mut self, action: Action, subject: &str) -> Result<()> {
        self.check_space()?;
        self.audit_by_node(action, subject)
    }

    /// `Ok` while the data directory's disk keeps the store's reserve; the disk-full error
    /// otherwise (`store/space.rs`).
    pub fn check_space(&self) -> Result<()> {
        Ok(self.store.check_space()?)
    }

    /// The canonical forms of every local record's identifiers: what the hunt's retention
    /// keeps longer. The records are read one at a time and only their canonical forms kept:
    /// the timer's hunt sweep calls this whenever the hunt's purge is due, and a million
    /// decoded records held at once would be hundreds of megabytes the allocator keeps after.
    pub fn record_canonicals(&self) -> Result<std::collections::HashSet<String>> {
        let mut canonicals = std::collections::HashSet::new();
        self.store.scan_each(&keys::all_records(), |_, record: Record| {
            canonicals.extend(record.identifiers.into_iter().map(|i| i.canonical));
            Ok::<_, Error>(())
        })?;
        Ok(canonicals)
    }

    /// The statuses of every local account record's identifiers (accounts and account ids), by
    /// canonical form: the record's own latest status and each member's latest on the token.
    /// What the hunt's successor search reads.
    pub fn account_statuses(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<(Status, u64)>>> {
        // One record at a time: the result keeps only accounts with a status, never the records.
        let mut out: std::collections::HashMap<String, Vec<(Status, u64)>> = Default::default();
        self.store.scan_each(&keys::all_records(), |_, record: Record| {
            for identifier in record.identifiers {
                let kind = identifier.canonical.parse::<Canonical>().map(|c| c.kind());
                if !matches!(kind, Ok(Kind::Account | Kind::AccountId)) {
                    continue;
                }
                let mut statuses: Vec<(Status, u64)> = record.status.into_iter().collect();
                self.store.scan_each(
                    &keys::remote_adds(&identifier.token),
                    |_, add: store::RemoteAdd| {
                        statuses.extend(add.status);
                        Ok::<_, Error>(())
                    },
                )?;
                if !statuses.is_empty() {
                    out.entry(identifier.canonical).or_default().extend(statuses);
                }
            }
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }

    /// Longest this node keeps anything (ms).
    pub fn max_retention_ms(&self) -> u64 {
        self.config.max_retention_ms
    }

    /// Whether this node holds `token` locally (a shared record or a watch): the match look-up.
    pub fn holds(&self, token: &Token) -> Result<bool> {
        Ok(self.store.any_with_prefix(&keys::holdings(token))?)
    }

    /// The local records holding `token`, by id.
    pub(super) fn holding_records(&self, txn: &Txn<'_>, token: &Token) -> Result<Vec<RecordId>> {
        Ok(txn
            .scan::<()>(&keys::holdings(token))?
            .into_iter()
            .filter_map(|(key, ())| keys::parse_holding(&key).map(|(_, id)| id))
            .collect())
    }

    /// The shared records holding `token`.
    pub(super) fn shared_holders(&self, txn: &Txn<'_>, token: &Token) -> Result<Vec<Record>> {
        let mut shared = Vec::new();
        for id in self.holding_records(txn, token)? {
            if let Some(record) = txn.get::<Record>(&keys::record(id))?
                && record.shared
            {
                shared.push(record);
            }
        }
        Ok(shared)
    }

    /// Appends an entry to the outbox, salted, in the current epoch.
    pub(super) fn enqueue(&self, txn: &mut Txn<'_>, op: Op) -> Result<()> {
        self.enqueue_in_epoch(txn, op, self.config.epoch)
    }

    /// Appends an entry to the outbox, salted, in `epoch` (a rotation's old epoch, during its
    /// grace period, for retractions).
    pub(super) fn enqueue_in_epoch(&self, txn: &mut Txn<'_>, op: Op, epoch: u32) -> Result<()> {
        let seq = self.next_counter(txn, OUTBOX_COUNTER)?;
        let entry = Entry { salt: random_salt(), op };
        txn.put(keys::outbox(seq), &OutboxItem { epoch, entry: entry.encode() });
        Ok(())
    }

    /// Enqueues the `add` the longest-held shared record of `token` makes, if any. A record
    /// that cannot be read back is skipped (and logged), not allowed to stop the caller.
    pub(super) fn enqueue_current_add(&self, txn: &mut Txn<'_>, token: &Token) -> Result<()> {
        let holders = self.shared_holders(txn, token)?;
        let Some(longest) = holders.iter().max_by_key(|r| r.expires_at_ms) else { return Ok(()) };
        let Some(identifier) = longest.identifiers.iter().find(|i| i.token == *token) else {
            return Ok(());
        };
        match self.add_of(longest, identifier) {
            Ok(add) => self.enqueue(txn, Op::Add(add)),
            Err(error) => {
                tracing::error!(%error, record = longest.id, "record unreadable: its add is not republished");
                Ok(())
            }
        }
    }

    /// The `add` a shared record makes of one of its identifiers.
    pub(super) fn add_of(&self, record: &Record, identifier: &StoredIdentifier) -> Result<Add> {
        let canonical: Canonical = identifier
            .canonical
            .parse()
            .map_err(|_| store::Error::Corrupt { prefix: char::from(keys::prefix::RECORD) })?;
        Ok(Add {
            token: identifier.token,
            kind: canonical.kind(),
            category: record.category.clone(),
            handling: record.handling,
            evaluation: record.evaluation,
            activity_per_day: record.activity_per_day,
            expires_at_ms: record.expires_at_ms,
            algorithmic: record.algorithmic,
        })
    }
}

fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    // The OS random source does not fail on supported platforms; a zero salt would only make
    // two equal entries share a digest.
    let _ = getrandom::fill(&mut salt);
    salt
}

/// Where record ids stand in this run: the floor no id issued may be below, and the last id
/// reserved by a write known to have synced.
#[derive(Debug, Default)]
pub(super) struct RecordIds {
    /// The lowest record id that may be issued: past the reserved ids when the store's counter
    /// could not be moved at start (the disk was full), and past every id staged in this run,
    /// stored or not.
    floor: AtomicU64,
    /// The last id reserved durably: read from the store at open and raised only after a write
    /// carrying a reservation has synced. The live store may show more (a write applied whose
    /// sync failed), which a crash can lose.
    durably_reserved: AtomicU64,
}

impl RecordIds {
    /// The reservation to make when ids up to `last_taken` are taken (`None`: they are reserved
    /// durably already): them and [`RECORD_IDS_RESERVED_AT_ONCE`] more.
    pub(super) fn reservation_needed(&self, last_taken: u64) -> Option<u64> {
        (last_taken > self.durably_reserved.load(Ordering::Relaxed))
            .then(|| last_taken.saturating_add(RECORD_IDS_RESERVED_AT_ONCE))
    }

    /// Notes that a write reserving ids up to `until` has synced.
    pub(super) fn reserved_durably(&self, until: u64) {
        self.durably_reserved.fetch_max(until, Ordering::Relaxed);
    }
}

/// Moves the record counter past the ids reserved before a crash: some of them may be named in
/// the audit log by records whose writes were lost, and must not be issued again. Keeps the
/// floor in memory instead when the disk is too full for the write, so a node starts while full
/// and still never issues such an id. The reservation read is the one on disk.
pub(super) fn resume_record_ids(store: &Store) -> Result<RecordIds> {
    let taken = store.get::<u64>(&keys::meta(RECORD_COUNTER))?.unwrap_or(0);
    let reserved = store.get::<u64>(&keys::meta(RECORD_IDS_RESERVED))?.unwrap_or(0);
    let ids = RecordIds { floor: AtomicU64::new(0), durably_reserved: AtomicU64::new(reserved) };
    if reserved <= taken {
        return Ok(ids);
    }
    let mut txn = store.txn();
    txn.put(keys::meta(RECORD_COUNTER), &reserved);
    match txn.commit_durable() {
        Ok(()) => Ok(ids),
        Err(store::Error::Io(error)) if error.kind() == std::io::ErrorKind::StorageFull => {
            tracing::warn!("disk full at start: the record id floor is kept in memory");
            ids.floor.store(reserved, Ordering::Relaxed);
            Ok(ids)
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reservation the live store shows but no sync confirmed does not cover an id: only a
    /// reservation reported synced does.
    #[test]
    fn only_a_synced_reservation_covers_an_id() {
        let ids = RecordIds { floor: AtomicU64::new(0), durably_reserved: AtomicU64::new(0) };
        // A chunk takes ids up to 1,000 and stages a reservation; its sync fails, so it is
        // never reported: the next id taken still needs a durable reservation of its own.
        assert_eq!(ids.reservation_needed(1_000), Some(1_000 + RECORD_IDS_RESERVED_AT_ONCE));
        assert_eq!(ids.reservation_needed(1_001), Some(1_001 + RECORD_IDS_RESERVED_AT_ONCE));
        // Once a write reserving up to 2,024 has synced, ids up to it need none.
        ids.reserved_durably(1_000 + RECORD_IDS_RESERVED_AT_ONCE);
        assert_eq!(ids.reservation_needed(1_001), None);
        assert_eq!(ids.reservation_needed(2_024), None);
        assert_eq!(ids.reservation_needed(2_025), Some(2_025 + RECORD_IDS_RESERVED_AT_ONCE));
        // A lower report never lowers it.
        ids.reserved_durably(10);
        assert_eq!(ids.reservation_needed(2_024), None);
    }
}
