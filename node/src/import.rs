//! Imports: an analyst's file (CSV, JSON lines or a STIX 2.1 bundle) read as a stream of items:
//! rows that become records, rows refused by position and rule, and notices. Pure: a file in,
//! items out; it knows no store, engine or tokio. The job that keys, classifies and applies the
//! rows is the daemon's (`daemon/imports.rs`) and the engine's (`engine/imports.rs`);
//! `import/hash.rs` gives a row its idempotency key and content hash.
//!
//! A refusal names a position (a line, or an object's index in the bundle) and a rule, never
//! the row's value and never a STIX id: observable ids are unkeyed hashes of the raw value.
//! [`Subject`] and [`ImportRow`] show no subject, value or notes in `Debug`.

mod csv;
pub mod hash;
mod jsonl;
#[cfg(test)]
mod reader_tests;
pub mod record_in;
mod stix;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crossmatch_protocol::{Canonical, Evaluation, Handling, Rule};
use serde::{Deserialize, Serialize};

/// Imports' own bounds (not the API's 64 KiB body limit); docs/API.md lists them.
pub mod limits {
    /// Largest file accepted, in bytes.
    pub const MAX_IMPORT_BYTES: u64 = 256 << 20;
    /// Most records one import makes.
    pub const MAX_RECORDS: u64 = 2_000_000;
    /// Longest CSV or JSON line, in bytes.
    pub const MAX_LINE_BYTES: usize = 64 << 10;
    /// Most objects in one STIX bundle.
    pub const MAX_STIX_OBJECTS: u64 = 2_000_000;
    /// Largest single STIX object, in bytes.
    pub const MAX_STIX_OBJECT_BYTES: usize = 1 << 20;
    /// Longest STIX indicator pattern, in bytes.
    pub const MAX_PATTERN_BYTES: usize = 16 << 10;
    /// Most refused rows kept by position in a job (the rest are counted).
    pub const MAX_REFUSALS_KEPT: usize = 1_000;
    /// Most records committed in one chunk: one durable write each (= `engine::SLICE_ROWS`).
    pub const CHUNK_RECORDS: usize = 1_000;
    /// Most notices read into one chunk: a few a record, and a file of objects that only give
    /// notices (a STIX bundle of ignored types) is still read a bounded chunk at a time.
    pub const CHUNK_NOTICES: usize = 4 * CHUNK_RECORDS;
    /// Most imports queued or running at once.
    pub const MAX_QUEUED_IMPORTS: usize = 4;
    /// Longest source label, in bytes, of `[A-Za-z0-9._-]`.
    pub const MAX_SOURCE_BYTES: usize = 64;
}

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma- or semicolon-separated values with a header row.
    Csv,
    /// JSON lines in the API's record shape.
    Jsonl,
    /// A STIX 2.1 bundle.
    Stix,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Csv, Format::Jsonl, Format::Stix];

    /// The format's name on the command line, in the API and in the job.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Stix => "stix",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("format must be one of csv, jsonl, stix")]
pub struct UnknownFormat;

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL.into_iter().find(|format| format.as_str() == s).ok_or(UnknownFormat)
    }
}

/// The format of a file from its first bytes, if they say: a JSON object whose `type` is
/// `bundle` is STIX, a first line that is a JSON object is JSON lines, anything that does not
/// start with `{` is CSV. `None`: empty, or a JSON object the head cannot tell (set the format).
pub fn detect(head: &[u8]) -> Option<Format> {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &head[start..];
    if head[0] != b'{' {
        return Some(Format::Csv);
    }
    if stix::is_bundle_head(head) {
        return Some(Format::Stix);
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    match serde_json::from_slice::<serde_json::Value>(first_line) {
        Ok(serde_json::Value::Object(_)) => Some(Format::Jsonl),
        _ => None,
    }
}

/// Bytes [`detect`] reads.
pub const DETECT_BYTES: usize = 64 << 10;

/// A subject's hash in a reader's seen set (in memory only, never stored).
fn subject_hash(subject: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    subject.hash(&mut hasher);
    hasher.finish()
}

/// What a row takes when its own field is empty (`None`: the row must say).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    /// Category label.
    pub category: Option<String>,
    /// Handling code.
    #[serde(default, with = "optional_by_name")]
    pub handling: Option<Handling>,
    /// Evaluation (`B2`).
    #[serde(default, with = "optional_by_name")]
    pub evaluation: Option<Evaluation>,
    /// Days until the record expires.
    pub expires_in_days: Option<u64>,
    /// Share the records, or only watch them.
    pub share: bool,
}

/// The audited ways past a marking that would make a record a watch (admin only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// TLP:RED is shared as H2 instead of watched.
    pub red: bool,
    /// TLP:AMBER+STRICT is shared as H2 instead of watched.
    pub amber_strict: bool,
    /// Unmarked, unknown or granular markings take the import's default instead of a watch.
    pub unmarked: bool,
}

/// How to read one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The file's format.
    pub format: Format,
    /// The source label (`[A-Za-z0-9._-]`, at most [`limits::MAX_SOURCE_BYTES`]): with a row's
    /// subject, its idempotency key.
    pub source: String,
    /// Per-import defaults.
    pub defaults: Defaults,
    /// Marking overrides.
    pub overrides: Overrides,
    /// Spread a share larger than today's quota over the next days.
    pub spread: bool,
}

/// Where an item is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// A line, from 1 (CSV: a row's own line; a whole record, or a rule about it, is named by
    /// its subject's first row).
    Line(u64),
    /// An object's index in the bundle's `objects`, from 0.
    Object(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(line) => write!(f, "line {line}"),
            Position::Object(index) => write!(f, "object {index}"),
        }
    }
}

/// What makes a row the same row again in a later import of the file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A CSV or JSON lines `subject` (raw: never logged).
    Named(String),
    /// No subject: the row is its sorted canonical forms.
    Content,
    /// A STIX object id, `<type>--<uuid>` (an observable's is a hash of its value).
    Stix(String),
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Named(_) => "Named(..)",
            Subject::Content => "Content",
            Subject::Stix(_) => "Stix(..)",
        })
    }
}

/// A STIX object's version facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StixVersion {
    /// Its `modified` (Unix ms), if it has one.
    pub modified_ms: Option<u64>,
    /// `revoked: true`: the record goes.
    pub revoked: bool,
}

/// One record to make, with every default applied.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Where it starts.
    pub position: Position,
    /// What makes it the same row again.
    pub subject: Subject,
    /// Its identifiers, 1 to 32.
    pub identifiers: Vec<Canonical>,
    /// Category label.
    pub category: String,
    /// Handling code (the strictest of the markings and the default).
    pub handling: Handling,
    /// Evaluation.
    pub evaluation: Evaluation,
    /// Free-text notes (local only).
    pub notes: String,
    /// Posts per day, if known.
    pub activity_per_day: Option<u64>,
    /// Days until the record expires, from when it is written.
    pub expires_in_days: u64,
    /// Shared, or only watched.
    pub share: bool,
    /// A STIX object's version facts.
    pub stix: Option<StixVersion>,
}

impl fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportRow")
            .field("position", &self.position)
            .field("subject", &self.subject)
            .field("identifiers", &self.identifiers)
            .field("handling", &self.handling)
            .field("evaluation", &self.evaluation)
            .field("expires_in_days", &self.expires_in_days)
            .field("share", &self.share)
            .field("stix", &self.stix)
            .finish_non_exhaustive()
    }
}

/// The rule a refused row broke. Messages say what is accepted, never what the row held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RowRule {
    /// An identifier broke a canonicalisation rule.
    #[error("{}", .0.message())]
    Identifier(Rule),
    /// `kind` is not an identifier kind.
    #[error("kind must be one of account, account_id, email, phone, url, domain")]
    UnknownKind,
    /// A required column or field is missing, or a column is not one of the documented ones.
    #[error("a required column is missing, or a column is not one of the documented ones")]
    MissingColumn,
    /// A CSV subject's rows are not next to each other.
    #[error("the rows of a subject must be next to each other")]
    SubjectNotAdjacent,
    /// The subject (or STIX object) appeared before in this import.
    #[error("the subject appears more than once in the file")]
    DuplicateSubject,
    /// More than 32 identifiers for one subject.
    #[error("a subject holds at most 32 identifiers")]
    TooManyIdentifiers,
    /// A later row of a subject gives another value for a record field.
    #[error("the rows of a subject must agree on every record field")]
    FieldsDiffer,
    /// No category, and no default.
    #[error("category is empty and the import gives no default")]
    CategoryMissing,
    /// No handling code, and no default.
    #[error("handling is empty and the import gives no default")]
    HandlingMissing,
    /// No evaluation, and no default.
    #[error("evaluation is empty and the import gives no default")]
    EvaluationMissing,
    /// No expiry, and no default.
    #[error("expires_in_days is empty and the import gives no default")]
    ExpiryMissing,
    /// Not a handling code.
    #[error("handling must be one of H0, H1, H2, H3")]
    Handling,
    /// Not an evaluation.
    #[error("evaluation must be A1 to X4 (source A, B, C or X; information 1 to 4)")]
    Evaluation,
    /// Not a category label.
    #[error("category is not an acceptable category label")]
    Category,
    /// Not an expiry in days within bounds.
    #[error("expires_in_days must be a whole number of days within the retention")]
    Expiry,
    /// `share` is neither true nor false.
    #[error("share must be true or false")]
    Share,
    /// Notes too long or not text.
    #[error("notes are too long")]
    Notes,
    /// `activity_per_day` is not a count within bounds.
    #[error("activity_per_day must be a whole number within bounds")]
    Activity,
    /// A line or object past its size limit.
    #[error("the line or object is longer than its limit")]
    TooLong,
    /// Not UTF-8.
    #[error("the line is not UTF-8")]
    NotUtf8,
    /// A CSV row that does not parse (quotes, field count).
    #[error("the row is not well-formed CSV")]
    MalformedCsv,
    /// A line or object that is not JSON.
    #[error("the line or object is not well-formed JSON")]
    MalformedJson,
    /// JSON that is not an object of the expected shape.
    #[error("not a JSON object of the expected shape")]
    NotAnObject,
    /// A record without identifiers.
    #[error("the record has no identifiers")]
    NoIdentifiers,
    /// A STIX pattern that does not parse.
    #[error("the indicator's pattern is not a valid STIX pattern")]
    PatternSyntax,
    /// A STIX pattern outside the accepted subset.
    #[error("only `=` comparisons joined by OR are accepted, and AND only within one user-account")]
    PatternUnsupported,
    /// A user-account without `account_type`.
    #[error("a user-account needs an account_type naming its platform")]
    PlatformMissing,
}

impl RowRule {
    /// Its stable code: snake_case, or the canonicalisation rule's own code.
    pub const fn code(self) -> &'static str {
        match self {
            RowRule::Identifier(rule) => rule.code(),
            RowRule::UnknownKind => "unknown_kind",
            RowRule::MissingColumn => "missing_column",
            RowRule::SubjectNotAdjacent => "subject_not_adjacent",
            RowRule::DuplicateSubject => "duplicate_subject",
            RowRule::TooManyIdentifiers => "too_many_identifiers",
            RowRule::FieldsDiffer => "fields_differ",
            RowRule::CategoryMissing => "category_missing",
            RowRule::HandlingMissing => "handling_missing",
            RowRule::EvaluationMissing => "evaluation_missing",
            RowRule::ExpiryMissing => "expiry_missing",
            RowRule::Handling => "handling",
            RowRule::Evaluation => "evaluation",
            RowRule::Category => "category",
            RowRule::Expiry => "expiry",
            RowRule::Share => "share",
            RowRule::Notes => "notes",
            RowRule::Activity => "activity",
            RowRule::TooLong => "too_long",
            RowRule::NotUtf8 => "not_utf8",
            RowRule::MalformedCsv => "malformed_csv",
            RowRule::MalformedJson => "malformed_json",
            RowRule::NotAnObject => "not_an_object",
            RowRule::NoIdentifiers => "no_identifiers",
            RowRule::PatternSyntax => "pattern_syntax",
            RowRule::PatternUnsupported => "pattern_unsupported",
            RowRule::PlatformMissing => "platform_missing",
        }
    }
}

/// A refused row: where, and the rule it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {rule}")]
pub struct Refusal {
    /// Where it starts.
    pub position: Position,
    /// The rule.
    pub rule: RowRule,
}

/// Something the summary reports without refusing a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Notice {
    /// An object without markings became a watch (or took the default, with the override).
    MarkingMissing,
    /// A marking of an unknown id became a watch (or took the default, with the override).
    MarkingUnknown,
    /// Property-level (`granular_markings`) markings became a watch.
    MarkingGranular,
    /// TLP:RED or TLP:AMBER+STRICT became a watch.
    ForcedWatch,
    /// A `user_id` that does not pass the account id rule was left out.
    UserIdDropped,
    /// An observable an indicator of the bundle covers: the indicator is its record.
    CoveredByIndicator,
    /// An object of a type imports do not read.
    Ignored,
    /// An older version of an indicator the bundle also holds in a newer (or revoked) one: only
    /// the newest is read.
    Superseded,
}

impl Notice {
    /// Every notice.
    pub const ALL: [Notice; 8] = [
        Notice::MarkingMissing,
        Notice::MarkingUnknown,
        Notice::MarkingGranular,
        Notice::ForcedWatch,
        Notice::UserIdDropped,
        Notice::CoveredByIndicator,
        Notice::Ignored,
        Notice::Superseded,
    ];

    /// Its name in the job's `notices` counts.
    pub const fn code(self) -> &'static str {
        match self {
            Notice::MarkingMissing => "marking_missing",
            Notice::MarkingUnknown => "marking_unknown",
            Notice::MarkingGranular => "marking_granular",
            Notice::ForcedWatch => "forced_watch",
            Notice::UserIdDropped => "user_id_dropped",
            Notice::CoveredByIndicator => "covered_by_indicator",
            Notice::Ignored => "ignored",
            Notice::Superseded => "superseded",
        }
    }
}

/// One item read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A record to make.
    Row(ImportRow),
    /// A refused row.
    Refused(Refusal),
    /// A notice about the object at a position.
    Notice(Position, Notice),
}

/// Where the next item starts: what a job stores to resume a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Byte offset in the file.
    pub byte: u64,
    /// CSV and JSON lines: lines before that byte. STIX: how many items of the object at
    /// `index` were already yielded (an object can yield notices and several records).
    pub line: u64,
    /// CSV and JSON lines: rows read; STIX: the index of the next object.
    pub index: u64,
}

/// A file read as items, resumable at any item's cursor.
pub trait Rows: Iterator<Item = io::Result<Item>> + Send {
    /// Where the next item starts.
    fn cursor(&self) -> Cursor;
    /// (bytes read, file bytes): for a progress bar.
    fn progress(&self) -> (u64, u64);
}

/// Opens `path` as items in `o.format`, from the start or from a cursor a job stored.
pub fn open(path: &Path, o: &ImportOptions, from: Option<Cursor>) -> io::Result<Box<dyn Rows>> {
    open_source(Source::open(path)?, o, from)
}

/// Reads `bytes` as items in `o.format`, exactly as [`open`] reads a file of those bytes: the
/// fuzz targets drive the readers through it.
pub fn open_bytes(
    bytes: Arc<[u8]>,
    o: &ImportOptions,
    from: Option<Cursor>,
) -> io::Result<Box<dyn Rows>> {
    open_source(Source::Memory(io::Cursor::new(bytes)), o, from)
}

fn open_source(
    source: Source,
    o: &ImportOptions,
    from: Option<Cursor>,
) -> io::Result<Box<dyn Rows>> {
    Ok(match o.format {
        Format::Csv => Box::new(csv::CsvRows::open(source, &o.defaults, from)?),
        Format::Jsonl => Box::new(jsonl::JsonlRows::open(source, &o.defaults, from)?),
        Format::Stix => Box::new(stix::StixRows::open(source, o, from)?),
    })
}

/// What a reader reads: a file on disk (an import job's) or bytes in memory (the fuzz targets').
enum Source {
    /// An open file and its path, to open it again at its start (a STIX bundle is read twice).
    Disk { file: File, path: PathBuf },
    /// Bytes held in memory.
    Memory(io::Cursor<Arc<[u8]>>),
}

impl Source {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(Self::Disk { file: File::open(path)?, path: path.to_owned() })
    }

    /// The length in bytes.
    fn len(&self) -> io::Result<u64> {
        match self {
            Self::Disk { file, .. } => Ok(file.metadata()?.len()),
            Self::Memory(bytes) => Ok(bytes.get_ref().len() as u64),
        }
    }

    /// The same bytes again, read from their start by a handle of its own.
    fn reopen(&self) -> io::Result<Self> {
        match self {
            Self::Disk { path, .. } => Self::open(path),
            Self::Memory(bytes) => Ok(Self::Memory(io::Cursor::new(Arc::clone(bytes.get_ref())))),
        }
    }
}

impl Read for Source {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Disk { file, .. } => file.read(buffer),
            Self::Memory(bytes) => bytes.read(buffer),
        }
    }
}

impl Seek for Source {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        match self {
            Self::Disk { file, .. } => file.seek(position),
            Self::Memory(bytes) => bytes.seek(position),
        }
    }
}

/// `Option<T>` stored by its name (`"H2"`, `"B2"`), as the store keeps wire enums.
mod optional_by_name {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    pub fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_ref().map(ToString::to_string).serialize(serializer)
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|name| name.parse().map_err(|_| D::Error::custom("unknown name")))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_by_name() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse(), Ok(format));
            assert_eq!(serde_json::to_value(format).unwrap(), format.as_str());
        }
        assert_eq!("xlsx".parse::<Format>(), Err(UnknownFormat));
    }

    #[test]
    fn defaults_keep_their_codes_by_name() {
        let defaults = Defaults {
            category: Some("propaganda".into()),
            handling: Some(Handling::H2),
            evaluation: Some("B2".parse().unwrap()),
            expires_in_days: Some(30),
            share: true,
        };
        let json = serde_json::to_value(&defaults).unwrap();
        assert_eq!(json["handling"], "H2");
        assert_eq!(json["evaluation"], "B2");
        let back: Defaults = serde_json::from_value(json).unwrap();
        assert_eq!(back, defaults);
        let none: Defaults = serde_json::from_value(serde_json::json!({"share": false})).unwrap();
        assert_eq!(none, Defaults::default());
        let bad = serde_json::json!({"share": false, "handling": "H9"});
        assert!(serde_json::from_value::<Defaults>(bad).is_err());
    }

    #[test]
    fn positions_and_codes_are_written_out() {
        assert_eq!(Position::Line(12).to_string(), "line 12");
        assert_eq!(Position::Object(17).to_string(), "object 17");
        let refusal = Refusal { position: Position::Line(3), rule: RowRule::FieldsDiffer };
        assert_eq!(
            refusal.to_string(),
            "line 3: the rows of a subject must agree on every record field"
        );
        assert_eq!(RowRule::Identifier(Rule::XHandle).code(), "x-handle");
        assert_eq!(RowRule::PatternUnsupported.code(), "pattern_unsupported");
        let codes: std::collections::HashSet<_> = Notice::ALL.iter().map(|n| n.code()).collect();
        assert_eq!(codes.len(), Notice::ALL.len());
    }

    #[test]
    fn debug_shows_no_subject() {
        let named = format!("{:?}", Subject::Named("secret-subject".into()));
        let stix = format!("{:?}", Subject::Stix("indicator--0000".into()));
        assert!(!named.contains("secret") && !stix.contains("0000"), "{named} {stix}");
    }
}
