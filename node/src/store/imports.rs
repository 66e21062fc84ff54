//! Imports and exports in the store: the typed values of import jobs (`M`), import rows (`R`),
//! spread records waiting for quota room (`Q`) and the STIX ids of exported objects (`S`); a
//! record's [`fingerprint`], which undo and the export compare to see whether it changed; and
//! the reads the import job makes without the engine lock ([`classify`], [`job`], [`jobs`]).
//!
//! The records an import created are found from its job: every one has an id in the job's
//! [`ImportJob::created`] range and names the import in its [`RecordImport`], with its
//! fingerprint then. Schema 2 kept a row per created record (`j`); the open migrates them
//! (`Store::migrate_from_2`).

use std::collections::BTreeMap;

use crossmatch_protocol::Handling;
use serde::{Deserialize, Serialize};

use crate::import::{Cursor, Defaults, Format, ImportOptions, Overrides, Position, StixVersion};

use super::{Record, RecordId, Result, Store, encode, keys};

/// An import's id, issued in order from 1 (`m` `import` holds the last).
pub type ImportId = u64;

/// Where a job is (docs/API.md, Imports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Spooled, waiting for its turn.
    Queued,
    /// The file is read and counted; nothing is written.
    Planning,
    /// Chunks are being committed.
    Applying,
    /// Every chunk is committed.
    Done,
    /// Refused at plan (`quota`, `format`, `too_many_records`): nothing was written.
    Refused,
    /// Stopped on an error (`source_missing`, `store`, `audit`); what applied stays.
    Failed,
    /// The records it created are being removed.
    Undoing,
    /// Undone (records edited since may have been kept).
    Undone,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Planning,
        JobState::Applying,
        JobState::Done,
        JobState::Refused,
        JobState::Failed,
        JobState::Undoing,
        JobState::Undone,
    ];

    /// The state's name in the API and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Planning => "planning",
            JobState::Applying => "applying",
            JobState::Done => "done",
            JobState::Refused => "refused",
            JobState::Failed => "failed",
            JobState::Undoing => "undoing",
            JobState::Undone => "undone",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("state must be one of queued, planning, applying, done, refused, failed, undoing, undone")]
pub struct UnknownJobState;

impl std::str::FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s).ok_or(UnknownJobState)
    }
}

/// An import job (`M`): what was asked, where it is, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJob {
    /// Its id.
    pub id: ImportId,
    /// The API user who asked.
    pub user: String,
    /// When it was asked (Unix ms).
    pub created_at_ms: u64,
    /// When it last changed (Unix ms).
    pub updated_at_ms: u64,
    /// The file's format.
    pub format: Format,
    /// The source label.
    pub source: String,
    /// Per-import defaults.
    pub defaults: Defaults,
    /// Marking overrides (admin).
    pub overrides: Overrides,
    /// A share past today's quota spread over the next days.
    pub spread: bool,
    /// Where it is.
    pub state: JobState,
    /// Why it was refused or failed (a fixed code, never request data).
    pub reason: Option<String>,
    /// The spooled file's size.
    pub file_bytes: u64,
    /// Where the next chunk starts (none: from the start).
    pub cursor: Option<Cursor>,
    /// The plan's counts.
    pub plan: ImportCounts,
    /// The counts of the chunks committed.
    pub done: ImportCounts,
    /// The quota check of the plan.
    pub quota: Option<QuotaCheck>,
    /// Refused rows by position and rule code, at most `MAX_REFUSALS_KEPT`.
    pub refusals: Vec<(Position, String)>,
    /// Notices by code, counted.
    pub notices: BTreeMap<String, u64>,
    /// The undo, once asked.
    pub undo: Option<UndoState>,
    /// The first and last ids of the records it created (none: it created none, or, for a job
    /// of schema 2, none it created was left when the store was migrated). Records of others
    /// can have ids in between: an import's chunks take their ids in order, but API adds and
    /// community shares between two calls of the apply take theirs too, and the undo reads
    /// them and passes over them (a page of `SLICE_ROWS` ids a step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<(RecordId, RecordId)>,
}

impl ImportJob {
    /// A new job of `options` by `user` at `now_ms`, queued with nothing done yet (id 0 until
    /// it is stored).
    pub fn queued(options: ImportOptions, user: String, now_ms: u64, file_bytes: u64) -> Self {
        Self {
            id: 0,
            user,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            format: options.format,
            source: options.source,
            defaults: options.defaults,
            overrides: options.overrides,
            spread: options.spread,
            state: JobState::Queued,
            reason: None,
            file_bytes,
            cursor: None,
            plan: ImportCounts::default(),
            done: ImportCounts::default(),
            quota: None,
            refusals: Vec::new(),
            notices: BTreeMap::new(),
            undo: None,
            created: None,
        }
    }

    /// Widens [`created`](Self::created) to hold `record`.
    pub fn note_created(&mut self, record: RecordId) {
        self.created = Some(match self.created {
            Some((first, last)) => (first.min(record), last.max(record)),
            None => (record, record),
        });
    }
}

/// An import's counts, planned or done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Records read.
    pub records: u64,
    /// New records.
    pub added: u64,
    /// Records updated in place.
    pub updated: u64,
    /// Rows already present (same content, or an older STIX version).
    pub present: u64,
    /// Records removed (STIX `revoked`).
    pub removed: u64,
    /// Rows refused by rule.
    pub refused: u64,
    /// Records made watches.
    pub watched: u64,
    /// Entries shared now (identifiers of shared records: an upper bound of the adds).
    pub share_entries: u64,
    /// Entries waiting for quota room (spread).
    pub pending_entries: u64,
}

impl ImportCounts {
    /// Adds `other`'s counts to these (saturating).
    pub fn add(&mut self, other: &ImportCounts) {
        self.records = self.records.saturating_add(other.records);
        self.added = self.added.saturating_add(other.added);
        self.updated = self.updated.saturating_add(other.updated);
        self.present = self.present.saturating_add(other.present);
        self.removed = self.removed.saturating_add(other.removed);
        self.refused = self.refused.saturating_add(other.refused);
        self.watched = self.watched.saturating_add(other.watched);
        self.share_entries = self.share_entries.saturating_add(other.share_entries);
        self.pending_entries = self.pending_entries.saturating_add(other.pending_entries);
    }
}

/// Whether an import's share fits the federation's daily quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaCheck {
    /// The roster's entries per day.
    pub entries_per_day: u64,
    /// What is left today for this node's own feed.
    pub left_today: u64,
    /// What the import shares.
    pub entries: u64,
    /// It fits today.
    pub fits_today: bool,
    /// Days the share takes (1 when it fits).
    pub days: u32,
}

/// An undo's plan and progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoState {
    /// Edited records go too.
    pub force: bool,
    /// Records the plan removes.
    pub planned_remove: u64,
    /// Records the plan keeps (edited since, without force).
    pub planned_keep: u64,
    /// Records removed so far.
    pub removed: u64,
    /// Records kept because they were edited.
    pub kept_edited: u64,
    /// The last record id looked at (the cursor).
    pub after: RecordId,
    /// When it was asked (Unix ms).
    pub at_ms: u64,
}

/// An import row's state (`R`): the record it made and how it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRowState {
    /// The record.
    pub record: RecordId,
    /// The last import that wrote it.
    pub import: ImportId,
    /// Its keyed content hash then.
    pub content: [u8; 16],
    /// Its STIX `modified` then (Unix ms).
    pub modified_ms: Option<u64>,
}

/// A record an import created, as schema 2 kept it (`j`, import id ‖ record id): read only by
/// the migration to schema 3, which moves its fingerprint into the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ImportedRecord {
    /// Its row key.
    pub row_key: [u8; 32],
    /// Its [`fingerprint`] when the import wrote it.
    pub fingerprint: [u8; 32],
}

/// Which import row made a record (`Record::import`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordImport {
    /// The import that created it (a later import's update keeps it: its `Q` row is under
    /// this id, and its undo is the one that may remove the record).
    pub import: ImportId,
    /// Its row key.
    pub row_key: [u8; 32],
    /// Its [`fingerprint`] when that import created it: what its undo compares. Absent only
    /// in a record whose schema 2 row was gone (nothing then undoes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<[u8; 32]>,
}

/// What `import`'s undo does with `record`: removes it if the import created it and it is
/// unchanged since (or `force`), keeps it if edited, and leaves any other record alone.
pub fn undo_of(record: &Record, import: ImportId, force: bool) -> Undo {
    let made = record.import.filter(|made| made.import == import);
    let Some(then) = made.and_then(|made| made.fingerprint) else { return Undo::NotItsOwn };
    if force || fingerprint(record) == then { Undo::Remove } else { Undo::KeepEdited }
}

/// What an undo does with a record ([`undo_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// Created by the import and unchanged (or forced): removed.
    Remove,
    /// Created by the import, edited since: kept, and counted.
    KeepEdited,
    /// Another import's, or an API add's: not the undo's business.
    NotItsOwn,
}

/// An exported object's stored ids (`S` 1–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StixIds {
    /// Its UUID (v4), drawn at its first export; never an imported object's id.
    pub uuid: [u8; 16],
    /// Its `created` (Unix ms).
    pub created_ms: u64,
    /// Its `modified` (Unix ms).
    pub modified_ms: u64,
    /// The fingerprint of what it was exported from, when `modified` was set: a record's
    /// [`fingerprint`]; a sighting's indicator, first and last seen and marking; an
    /// identity's name and contact.
    pub fingerprint: [u8; 32],
    /// A sighting's: the UUID of the indicator it is of, so that its tombstone names it.
    pub sighting_of: Option<[u8; 16]>,
    /// The handling code it was last exported under: its tombstone's marking.
    #[serde(with = "super::records::by_name")]
    pub handling: Handling,
}

/// What kind of object a tombstone stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StixKind {
    /// A record's indicator.
    Indicator,
    /// An alert's sighting.
    Sighting,
}

/// An exported object whose record or alert went (`S` 4): exported as `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StixTombstone {
    /// Indicator or sighting.
    pub kind: StixKind,
    /// Its `created` (Unix ms).
    pub created_ms: u64,
    /// Its revoked version's `modified` (Unix ms): when it went, and after its last version.
    pub modified_ms: u64,
    /// A sighting's indicator UUID.
    pub sighting_of: Option<[u8; 16]>,
    /// The handling code it was last exported under, which marks the revoked version too.
    #[serde(with = "super::records::by_name")]
    pub handling: Handling,
}

/// The fingerprint of what an analyst sees of a record: BLAKE3 over the CBOR of its sorted
/// canonical forms, category, handling, evaluation, notes, activity, expiry, shared (a pending
/// share counts as shared, so its release is no edit), status and backlog. Its id, creation,
/// author and import are not part of it.
pub fn fingerprint(r: &Record) -> [u8; 32] {
    let mut canonicals: Vec<&str> = r.identifiers.iter().map(|i| i.canonical.as_str()).collect();
    canonicals.sort_unstable();
    let status = r.status.map(|(status, at_ms)| (status.as_str(), at_ms));
    let fields = (
        canonicals,
        r.category.as_str(),
        r.handling.as_str(),
        r.evaluation.to_string(),
        r.notes.as_str(),
        r.activity_per_day,
        r.expires_at_ms,
        r.shared || r.pending_share,
        status,
        r.backlog,
    );
    let mut hasher = blake3::Hasher::new_derive_key("crossmatch record fingerprint v1");
    hasher.update(&encode(&fields));
    *hasher.finalize().as_bytes()
}

/// The fingerprint of an exported sighting: the indicator it is of, its first and last seen
/// and its marking. A change moves its `modified`.
pub fn sighting_fingerprint(
    indicator: &[u8; 16],
    first_seen_ms: u64,
    last_seen_ms: u64,
    handling: Handling,
) -> [u8; 32] {
    let fields = (indicator, first_seen_ms, last_seen_ms, handling.as_str());
    let mut hasher = blake3::Hasher::new_derive_key("crossmatch sighting fingerprint v1");
    hasher.update(&encode(&fields));
    *hasher.finalize().as_bytes()
}

/// The fingerprint of an exported identity: the member's id and its roster contact.
pub fn identity_fingerprint(member: &str, contact: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("crossmatch identity fingerprint v1");
    hasher.update(&encode(&(member, contact)));
    *hasher.finalize().as_bytes()
}

/// What an import row is against what the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowClass {
    /// No row, or its record went: add.
    #[default]
    New,
    /// Same content, same or no `modified`: present.
    Same,
    /// Other content (CSV, JSON lines): update in place.
    Changed,
    /// A newer STIX `modified`: update in place.
    Newer,
    /// An older STIX `modified`: present.
    Older,
    /// `revoked: true` and the record exists: remove it.
    Revoke,
    /// `revoked: true` and nothing to remove: present.
    RevokedGone,
    /// Written by this import in an earlier chunk: refused.
    Duplicate,
}

/// Classifies a row by its key and content hash (docs/STIX.md §3; the table of the import's
/// design). Reads only, never under the engine lock.
pub fn classify(
    store: &Store,
    key: &[u8; 32],
    content: &[u8; 16],
    import: ImportId,
    stix: Option<&StixVersion>,
) -> Result<RowClass> {
    let state: Option<ImportRowState> = store.get(&keys::import_row(key))?;
    let record_exists = match &state {
        Some(state) => store.get_raw(&keys::record(state.record))?.is_some(),
        None => false,
    };
    Ok(classify_row(state.as_ref(), record_exists, content, import, stix))
}

/// [`classify`] over what was read: the row's stored state, whether its record exists, the
/// row's content hash, the import and the row's STIX version facts.
pub fn classify_row(
    state: Option<&ImportRowState>,
    record_exists: bool,
    content: &[u8; 16],
    import: ImportId,
    stix: Option<&StixVersion>,
) -> RowClass {
    let revoked = stix.is_some_and(|version| version.revoked);
    let Some(state) = state.filter(|_| record_exists) else {
        return if revoked { RowClass::RevokedGone } else { RowClass::New };
    };
    if state.import == import {
        return RowClass::Duplicate;
    }
    if revoked {
        return RowClass::Revoke;
    }
    if let (Some(new), Some(old)) =
        (stix.and_then(|version| version.modified_ms), state.modified_ms)
    {
        match new.cmp(&old) {
            std::cmp::Ordering::Greater => return RowClass::Newer,
            std::cmp::Ordering::Less => return RowClass::Older,
            std::cmp::Ordering::Equal => {}
        }
    }
    if state.content == *content { RowClass::Same } else { RowClass::Changed }
}

/// An import job, if there is one of that id.
pub fn job(store: &Store, id: ImportId) -> Result<Option<ImportJob>> {
    store.get(&keys::import_job(id))
}

/// At most `limit` import jobs with an id above `after`, in id order.
pub fn jobs(store: &Store, after: ImportId, limit: usize) -> Result<Vec<ImportJob>> {
    let (from, to) = keys::import_jobs_after(after);
    let mut jobs = Vec::new();
    for key in store.range_keys(&from, &to, limit)? {
        if let Some(job) = store.get(&key)? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredIdentifier;
    use crossmatch_protocol::{Handling, Status, Token};

    fn record() -> Record {
        let identifier = |canonical: &str, byte: u8| StoredIdentifier {
            canonical: canonical.into(),
            token: Token([byte; 32]),
            epoch: 1,
        };
        Record {
            id: 7,
            identifiers: vec![
                identifier("v1|account|x|alpha", 1),
                identifier("v1|account|x|beta", 2),
            ],
            category: "propaganda".into(),
            handling: Handling::H1,
            evaluation: "B2".parse().unwrap(),
            notes: "seen".into(),
            activity_per_day: Some(40),
            expires_at_ms: 1_900_000_000_000,
            shared: true,
            created_at_ms: 1_800_000_000_000,
            created_by: "ana".into(),
            algorithmic: false,
            status: None,
            backlog: true,
            pending_share: false,
            import: Some(RecordImport { import: 3, row_key: [5; 32], fingerprint: None }),
        }
    }

    #[test]
    fn an_undo_removes_only_its_own_records_unchanged_or_forced() {
        let mut made = record();
        made.import = Some(RecordImport { import: 3, row_key: [5; 32], fingerprint: None });
        assert_eq!(undo_of(&made, 3, true), Undo::NotItsOwn, "no fingerprint: nothing to undo");
        made.import =
            Some(RecordImport { fingerprint: Some(fingerprint(&made)), ..made.import.unwrap() });
        assert_eq!(undo_of(&made, 3, false), Undo::Remove);
        assert_eq!(undo_of(&made, 4, true), Undo::NotItsOwn, "another import's record");
        let mut edited = made.clone();
        edited.notes = "edited".into();
        assert_eq!(undo_of(&edited, 3, false), Undo::KeepEdited);
        assert_eq!(undo_of(&edited, 3, true), Undo::Remove);
        let api_add = Record { import: None, ..made };
        assert_eq!(undo_of(&api_add, 3, true), Undo::NotItsOwn);
    }

    #[test]
    fn the_fingerprint_sees_every_edit_and_nothing_else() {
        let base = record();
        let print = fingerprint(&base);
        let mut same = base.clone();
        same.identifiers.reverse();
        same.identifiers.iter_mut().for_each(|i| i.token = Token([9; 32]));
        (same.id, same.created_at_ms, same.created_by) = (8, 1, "bo".into());
        same.import = None;
        assert_eq!(fingerprint(&same), print, "order, tokens, id, author and import are not edits");
        // A pending share released is no edit.
        let (mut pending, mut released) = (base.clone(), base.clone());
        (pending.shared, pending.pending_share) = (false, true);
        (released.shared, released.pending_share) = (true, false);
        assert_eq!(fingerprint(&pending), fingerprint(&released));
        let edits: [fn(&mut Record); 10] = [
            |r| r.identifiers.truncate(1),
            |r| r.category = "other".into(),
            |r| r.handling = Handling::H2,
            |r| r.evaluation = "A1".parse().unwrap(),
            |r| r.notes.push('!'),
            |r| r.activity_per_day = None,
            |r| r.expires_at_ms += 1,
            |r| r.shared = false,
            |r| r.status = Some((Status::Referred, 5)),
            |r| r.backlog = false,
        ];
        for (n, edit) in edits.iter().enumerate() {
            let mut edited = base.clone();
            edit(&mut edited);
            assert_ne!(fingerprint(&edited), print, "edit {n} went unnoticed");
        }
    }

    #[test]
    fn rows_are_classified_by_their_stored_state() {
        use RowClass::*;
        let state = |import, content: u8, modified_ms| ImportRowState {
            record: 9,
            import,
            content: [content; 16],
            modified_ms,
        };
        let stix = |modified_ms, revoked| StixVersion { modified_ms, revoked };
        let class =
            |stored: Option<ImportRowState>, exists, content: u8, version: Option<StixVersion>| {
                classify_row(stored.as_ref(), exists, &[content; 16], 5, version.as_ref())
            };
        assert_eq!(class(None, false, 1, None), New);
        assert_eq!(class(Some(state(2, 1, None)), false, 1, None), New, "its record went");
        assert_eq!(class(None, false, 1, Some(stix(None, true))), RevokedGone);
        assert_eq!(class(Some(state(5, 1, None)), true, 1, None), Duplicate);
        assert_eq!(class(Some(state(2, 1, None)), true, 1, None), Same);
        assert_eq!(class(Some(state(2, 1, None)), true, 2, None), Changed);
        assert_eq!(class(Some(state(2, 1, Some(10))), true, 1, Some(stix(Some(11), false))), Newer);
        assert_eq!(class(Some(state(2, 1, Some(10))), true, 2, Some(stix(Some(9), false))), Older);
        assert_eq!(class(Some(state(2, 1, Some(10))), true, 1, Some(stix(Some(10), false))), Same);
        assert_eq!(
            class(Some(state(2, 1, Some(10))), true, 2, Some(stix(Some(10), false))),
            Changed
        );
        assert_eq!(class(Some(state(2, 1, Some(10))), true, 1, Some(stix(Some(9), true))), Revoke);
    }

    #[test]
    fn job_states_round_trip_by_name() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!("paused".parse::<JobState>(), Err(UnknownJobState));
    }

    fn job(id: ImportId) -> ImportJob {
        ImportJob {
            id,
            user: "ana".into(),
            created_at_ms: 1,
            updated_at_ms: 2,
            format: Format::Stix,
            source: "leak".into(),
            defaults: Defaults { share: true, handling: Some(Handling::H2), ..Defaults::default() },
            overrides: Overrides { red: true, ..Overrides::default() },
            spread: false,
            state: JobState::Applying,
            reason: None,
            file_bytes: 10,
            cursor: Some(Cursor { byte: 5, line: 2, index: 1 }),
            plan: ImportCounts { records: 4, added: 3, ..ImportCounts::default() },
            done: ImportCounts::default(),
            quota: None,
            refusals: vec![(Position::Object(3), "pattern_unsupported".into())],
            notices: BTreeMap::from([("forced_watch".into(), 2)]),
            undo: None,
            created: Some((3, 9)),
        }
    }

    #[test]
    fn jobs_are_read_back_in_pages_of_ids() {
        let dir = std::env::temp_dir().join(format!("crossmatch-imports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut txn = store.txn();
        for id in [1, 2, 3, 5] {
            txn.put(keys::import_job(id), &job(id));
        }
        txn.commit().unwrap();
        assert_eq!(super::job(&store, 3).unwrap(), Some(job(3)));
        assert_eq!(super::job(&store, 4).unwrap(), None);
        let ids = |after, limit| -> Vec<ImportId> {
            jobs(&store, after, limit).unwrap().iter().map(|job| job.id).collect()
        };
        assert_eq!(ids(0, 10), [1, 2, 3, 5]);
        assert_eq!(ids(1, 2), [2, 3]);
        assert_eq!(ids(3, 2), [5]);
        assert_eq!(ids(5, 2), Vec::<ImportId>::new());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
