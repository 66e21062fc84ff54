//! Imports in the engine: the import key, job rows, one chunk of keyed rows committed in one
//! durable write with its cursor (records with their `R` and `Q` rows, the job's range of
//! created ids), the own feed's daily quota an import's share is paced under, undo in bounded
//! steps, and the release of spread records as quota room comes.
//!
//! Here: the import key, job rows, chunks and the in-place update of an imported record; the
//! own feed's quota and the release of spread records are in `imports/quota.rs`, undo in
//! `imports/undo.rs`.
//!
//! An import row lives and dies with its record: whatever removes a record (an analyst's
//! removal, expiry, undo, a STIX revocation) removes its `R` row (if it still names the
//! record) and its `Q` row in the same write ([`Engine::forget_import_rows`]).

mod quota;
mod undo;

pub use undo::plan_undo;

use std::collections::HashSet;

use crossmatch_protocol::{Canonical, RetractReason, Token};

use crate::audit::{Action, AuditSubject, AuditUser};
use crate::clock::DAY_MS;
use crate::import::limits::MAX_REFUSALS_KEPT;
use crate::import::{Cursor, Format, ImportRow, Notice, Position, Refusal, RowRule};
use crate::store::imports::{
    self, ImportCounts, ImportId, ImportJob, ImportRowState, JobState, RecordImport, RowClass,
};
use crate::store::{self, Record, RecordId, StoredIdentifier, Txn, keys};

use super::records::StageAs;
use super::{AlertEvent, Engine, Error, NewRecord, Result};

/// The share of the roster's daily quota this node's own feed uses; the rest covers the
/// receivers' other clocks (their UTC day is not this node's).
pub const OWN_QUOTA_PERCENT: u64 = 90;

/// A row with its idempotency key and keyed content hash (`import/hash.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRow {
    /// The row.
    pub row: ImportRow,
    /// Its row key.
    pub key: [u8; 32],
    /// Its content hash.
    pub content: [u8; 16],
}

/// One chunk of an import: at most `CHUNK_RECORDS` rows, committed in one durable write with
/// the job's cursor, so a resumed job never applies a row twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportChunk {
    /// The import.
    pub import: ImportId,
    /// Its rows.
    pub rows: Vec<KeyedRow>,
    /// Rows refused in it.
    pub refusals: Vec<Refusal>,
    /// Notices in it.
    pub notices: Vec<(Position, Notice)>,
    /// Where the next chunk starts.
    pub cursor: Cursor,
    /// Entries this chunk may still share today (past it, a spread import's records wait).
    pub share_left: u64,
}

/// The own feed's daily quota today.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnQuota {
    /// The roster's entries per day.
    pub entries_per_day: u64,
    /// The roster's bytes per day.
    pub bytes_per_day: u64,
    /// Entries signed today.
    pub signed_today_entries: u64,
    /// Wire bytes signed today.
    pub signed_today_bytes: u64,
    /// Entries waiting in the outbox.
    pub outbox_entries: u64,
    /// What an import may still share today.
    pub left_today: u64,
}

impl Engine {
    /// The import key, drawn and stored durably at the first real import.
    pub fn import_key(&mut self) -> Result<[u8; 32]> {
        if let Some(key) = self.import_key_if_any()? {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|error| {
            store::Error::Io(std::io::Error::other(format!(
                "no randomness for the import key: {error}"
            )))
        })?;
        let mut txn = self.store.txn();
        txn.put(keys::import_key(), &key);
        txn.commit_durable()?;
        Ok(key)
    }

    /// The import key if one was drawn (a dry run draws none: every row is new).
    pub fn import_key_if_any(&self) -> Result<Option<[u8; 32]>> {
        Ok(self.store.get(&keys::import_key())?)
    }

    /// Stores a new job under the next import id, durably; returns the id.
    pub fn create_import(&mut self, mut job: ImportJob) -> Result<ImportId> {
        let mut txn = self.store.txn();
        job.id = self.next_counter(&mut txn, IMPORT_COUNTER)?;
        txn.put(keys::import_job(job.id), &job);
        txn.commit_durable()?;
        Ok(job.id)
    }

    /// Stores a job's new state, durably.
    pub fn put_import(&mut self, job: &ImportJob) -> Result<()> {
        let mut txn = self.store.txn();
        txn.put(keys::import_job(job.id), job);
        txn.commit_durable()?;
        Ok(())
    }

    /// Writes the import's audit line (`import`, `subject`), then the job `applying`, durably.
    pub fn begin_import(&mut self, job: &ImportJob, subject: &str) -> Result<()> {
        let user = AuditUser::new(&job.user)?;
        let subject = AuditSubject::new(subject)?;
        // Room first: a refused write must leave no audit line behind.
        self.store.check_space()?;
        self.audit.append(&user, Action::Import, &subject)?;
        let job = ImportJob { state: JobState::Applying, ..job.clone() };
        self.put_import(&job)
    }

    /// Commits one chunk: its records, their import rows and the job with its cursor, in one
    /// durable write. Returns the chunk's counts.
    ///
    /// Each row is classified against what the store holds with the chunk's own writes seen
    /// (so a subject twice in one chunk is a duplicate too): new rows become records (shared
    /// while `share_left` lasts, then waiting for quota room with a `Q` row), changed rows
    /// update their record in place, revoked ones remove it (reason `no_longer_held`), the
    /// rest are present. A row whose record fields break a record rule is refused by its
    /// position. No audit line: the import's one was written by [`Engine::begin_import`].
    pub fn import_chunk(&mut self, chunk: ImportChunk) -> Result<ImportCounts> {
        let now = self.clock.now_ms();
        let store = self.store.clone();
        let mut txn = store.txn();
        let mut job: ImportJob = txn
            .get(&keys::import_job(chunk.import))?
            .ok_or(store::Error::Corrupt { prefix: char::from(keys::prefix::IMPORT_JOB) })?;
        let user = AuditUser::new(&job.user)?;
        let mut apply = Apply {
            import: chunk.import,
            user,
            now,
            share_left: chunk.share_left,
            counts: ImportCounts::default(),
            refusals: chunk.refusals,
            events: Vec::new(),
            created: Vec::new(),
        };
        let duplicate = if job.format == Format::Csv {
            RowRule::SubjectNotAdjacent
        } else {
            RowRule::DuplicateSubject
        };
        // Rows this chunk saw: a subject again is refused even where its first row wrote
        // nothing (present); across chunks, the `R` rows this import wrote tell.
        let mut seen = HashSet::new();
        for keyed in chunk.rows {
            apply.counts.records += 1;
            if !seen.insert(keyed.key) {
                apply.refuse(keyed.row.position, duplicate);
                continue;
            }
            let state: Option<ImportRowState> = txn.get(&keys::import_row(&keyed.key))?;
            let record = match &state {
                Some(state) => txn.get::<Record>(&keys::record(state.record))?,
                None => None,
            };
            let class = imports::classify_row(
                state.as_ref(),
                record.is_some(),
                &keyed.content,
                chunk.import,
                keyed.row.stix.as_ref(),
            );
            match (class, state, record) {
                (RowClass::Duplicate, ..) => apply.refuse(keyed.row.position, duplicate),
                (RowClass::Revoke, _, Some(record)) => {
                    let reason = RetractReason::NoLongerHeld;
                    let (_, events) = self.stage_removal(&mut txn, record.id, reason, now)?;
                    apply.events.extend(events);
                    apply.counts.removed += 1;
                }
                (RowClass::Changed | RowClass::Newer, Some(state), Some(record)) => {
                    if state.content == keyed.content {
                        // A newer version of the same content: only its `modified` moves.
                        self.put_import_row(&mut txn, &keyed, record.id, chunk.import);
                        apply.counts.present += 1;
                    } else {
                        self.import_update(&mut txn, &mut apply, keyed, record)?;
                    }
                }
                (RowClass::New, ..) => self.import_new(&mut txn, &mut apply, keyed)?,
                _ => apply.counts.present += 1,
            }
        }
        apply.counts.refused += apply.refusals.len() as u64;
        job.cursor = Some(chunk.cursor);
        job.done.add(&apply.counts);
        for &record in &apply.created {
            job.note_created(record);
        }
        for refusal in &apply.refusals {
            if job.refusals.len() >= MAX_REFUSALS_KEPT {
                break;
            }
            job.refusals.push((refusal.position, refusal.rule.code().to_owned()));
        }
        for (_, notice) in &chunk.notices {
            *job.notices.entry(notice.code().to_owned()).or_default() += 1;
        }
        job.updated_at_ms = now;
        txn.put(keys::import_job(job.id), &job);
        let reservation = self.stage_record_id_reservation(&mut txn)?;
        txn.commit_durable()?;
        if let Some(until) = reservation {
            self.record_ids.reserved_durably(until);
        }
        self.announce(apply.events);
        Ok(apply.counts)
    }

    /// Stages a new row's record with its `R` (and `Q`) rows, or refuses the row.
    fn import_new(&self, txn: &mut Txn<'_>, apply: &mut Apply, keyed: KeyedRow) -> Result<()> {
        let new = apply.new_record(&keyed.row);
        if let Err(error) = self.check_new_record(&new, apply.now) {
            return apply.refuse_for(keyed.row.position, error);
        }
        let pending = apply.take_share(&keyed.row);
        let how = StageAs {
            algorithmic: false,
            pending,
            import: Some(RecordImport {
                import: apply.import,
                row_key: keyed.key,
                fingerprint: None,
            }),
        };
        let (record, events) = self.stage_record(txn, new, &apply.user, apply.now, how)?;
        apply.events.extend(events);
        apply.counts.added += 1;
        apply.count_sharing(&record);
        apply.created.push(record.id);
        self.put_import_row(txn, &keyed, record.id, apply.import);
        if record.pending_share {
            txn.put(keys::pending_share(apply.import, record.id), &());
        }
        // No `S` row: a record's indicator id is drawn at its first export, never taken from
        // the bundle (another creator's object, and the same id again after an undo).
        Ok(())
    }

    /// Writes a row's `R` row: the record it made and how this import wrote it.
    fn put_import_row(&self, txn: &mut Txn<'_>, keyed: &KeyedRow, record: u64, import: ImportId) {
        let modified_ms = keyed.row.stix.and_then(|version| version.modified_ms);
        let state = ImportRowState { record, import, content: keyed.content, modified_ms };
        txn.put(keys::import_row(&keyed.key), &state);
    }

    /// Updates an imported record in place from a changed row, keeping its id, creation and
    /// status: tokens it keeps stay held (a new `add` only when the assessment or expiry
    /// changed), tokens it drops are released as a removal releases them, new ones are staged
    /// as a new record's are.
    fn import_update(
        &self,
        txn: &mut Txn<'_>,
        apply: &mut Apply,
        keyed: KeyedRow,
        old: Record,
    ) -> Result<()> {
        let new = apply.new_record(&keyed.row);
        if let Err(error) = self.check_new_record(&new, apply.now) {
            return apply.refuse_for(keyed.row.position, error);
        }
        let id = old.id;
        // Mid-rotation, its tokens move to the running epoch first (`rotation.rs`).
        self.move_record_tokens(txn, id)?;
        let old: Record = txn.get(&keys::record(id))?.unwrap_or(old);
        let wants_share = new.share && new.handling != crossmatch_protocol::Handling::H3;
        // A shared record stays shared: making it wait would retract what receivers hold.
        let pending = if old.shared && wants_share {
            let entries = keyed.row.identifiers.len() as u64;
            apply.share_left = apply.share_left.saturating_sub(entries);
            false
        } else {
            apply.take_share(&keyed.row)
        };
        let mut identifiers: Vec<(StoredIdentifier, Canonical)> = Vec::new();
        for canonical in &new.identifiers {
            let token = self.token(canonical);
            if identifiers.iter().all(|(i, _)| i.token != token) {
                let identifier = StoredIdentifier {
                    canonical: canonical.to_string(),
                    token,
                    epoch: self.config.epoch,
                };
                identifiers.push((identifier, canonical.clone()));
            }
        }
        let record = Record {
            identifiers: identifiers.iter().map(|(i, _)| i.clone()).collect(),
            category: new.category,
            handling: new.handling,
            evaluation: new.evaluation,
            notes: new.notes,
            activity_per_day: new.activity_per_day,
            expires_at_ms: new.expires_at_ms,
            shared: wants_share && !pending,
            pending_share: wants_share && pending,
            ..old.clone()
        };
        let kept: HashSet<Token> = record.identifiers.iter().map(|i| i.token).collect();
        let before: HashSet<Token> = old.identifiers.iter().map(|i| i.token).collect();
        for identifier in old.identifiers.iter().filter(|i| !kept.contains(&i.token)) {
            txn.remove(keys::holding(&identifier.token, id));
        }
        txn.remove(keys::record_expiry(old.expires_at_ms, id));
        txn.put(keys::record_expiry(record.expires_at_ms, id), &());
        txn.put(keys::record(id), &record);
        let creator = old.import.map_or(apply.import, |import| import.import);
        if record.pending_share {
            txn.put(keys::pending_share(creator, id), &());
        } else {
            txn.remove(keys::pending_share(creator, id));
        }
        let reason = RetractReason::NoLongerHeld;
        for identifier in old.identifiers.iter().filter(|i| !kept.contains(&i.token)) {
            if old.shared {
                self.release_shared_token(txn, &old, identifier, reason)?;
            }
            apply.events.extend(self.refresh_alert(txn, &identifier.token, apply.now, false)?);
        }
        let assessed_anew =
            (&old.category, old.handling, old.evaluation, old.activity_per_day, old.expires_at_ms)
                != (
                    &record.category,
                    record.handling,
                    record.evaluation,
                    record.activity_per_day,
                    record.expires_at_ms,
                );
        for (identifier, canonical) in &identifiers {
            let token = identifier.token;
            let held_before = before.contains(&token);
            if !held_before {
                self.note_grace_pair(txn, canonical, &token)?;
                txn.put(keys::holding(&token, id), &());
                self.note_identification(txn, &token, self.own_key, apply.now, apply.now)?;
            }
            match (held_before && old.shared, record.shared) {
                (true, false) => self.release_shared_token(txn, &old, identifier, reason)?,
                (false, true) => self.enqueue_add_once(txn, &record, token, canonical.kind())?,
                (true, true) if assessed_anew => self.enqueue_current_add(txn, &token)?,
                _ => {}
            }
            apply.events.extend(self.refresh_alert(txn, &token, apply.now, !held_before)?);
        }
        self.put_import_row(txn, &keyed, id, apply.import);
        apply.counts.updated += 1;
        apply.count_sharing(&record);
        Ok(())
    }

    /// Deletes the import rows of a record that goes (`R` if it still names the record, `Q`),
    /// in the removal's write: an import row lives and dies with its record.
    pub(super) fn forget_import_rows(&self, txn: &mut Txn<'_>, record: &Record) -> Result<()> {
        let Some(import) = record.import else { return Ok(()) };
        let row = keys::import_row(&import.row_key);
        if txn.get::<ImportRowState>(&row)?.is_some_and(|state| state.record == record.id) {
            txn.remove(row);
        }
        txn.remove(keys::pending_share(import.import, record.id));
        Ok(())
    }
}

/// Metadata name of the last import id (`m` `import`).
const IMPORT_COUNTER: &str = "import";

/// One chunk's work in progress.
struct Apply {
    import: ImportId,
    user: AuditUser,
    now: u64,
    share_left: u64,
    counts: ImportCounts,
    refusals: Vec<Refusal>,
    events: Vec<AlertEvent>,
    /// The records the chunk created, for the job's [`ImportJob::created`] range.
    created: Vec<RecordId>,
}

impl Apply {
    /// The record a row asks for, expiring its days from now.
    fn new_record(&self, row: &ImportRow) -> NewRecord {
        NewRecord {
            identifiers: row.identifiers.clone(),
            category: row.category.clone(),
            handling: row.handling,
            evaluation: row.evaluation,
            notes: row.notes.clone(),
            activity_per_day: row.activity_per_day,
            expires_at_ms: self.now.saturating_add(row.expires_in_days.saturating_mul(DAY_MS)),
            share: row.share,
            backlog: true,
        }
    }

    /// Whether the row's share must wait for quota room; takes its entries from what is left
    /// today when it need not.
    fn take_share(&mut self, row: &ImportRow) -> bool {
        if !row.share || row.handling == crossmatch_protocol::Handling::H3 {
            return false;
        }
        let entries = row.identifiers.len() as u64;
        if entries > self.share_left {
            return true;
        }
        self.share_left -= entries;
        false
    }

    /// Counts what a staged record shares, waits to share or watches.
    fn count_sharing(&mut self, record: &Record) {
        let entries = record.identifiers.len() as u64;
        if record.shared {
            self.counts.share_entries += entries;
        } else if record.pending_share {
            self.counts.pending_entries += entries;
        } else {
            self.counts.watched += 1;
        }
    }

    fn refuse(&mut self, position: Position, rule: RowRule) {
        self.refusals.push(Refusal { position, rule });
    }

    /// Refuses a row for a record rule it broke; any other error stops the chunk.
    fn refuse_for(&mut self, position: Position, error: Error) -> Result<()> {
        let rule = match error {
            Error::NoIdentifiers => RowRule::NoIdentifiers,
            Error::Expiry { .. } => RowRule::Expiry,
            Error::Category => RowRule::Category,
            Error::Activity => RowRule::Activity,
            error => return Err(error),
        };
        self.refuse(position, rule);
        Ok(())
    }
}
