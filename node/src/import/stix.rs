//! STIX 2.1 bundle imports (docs/STIX.md §3). The bundle is streamed: a structural scanner
//! (`import/stix/scan.rs`) yields each element of `objects` with its byte offset, never holding
//! more than one object ([`limits::MAX_STIX_OBJECT_BYTES`]). Two passes: the first indexes which
//! observables `observed-data` objects reference (with their markings) and the observable ids
//! accepted indicator patterns imply; the second yields the items.
//!
//! One indicator is one record (its pattern within the subset `stix/pattern.rs` accepts); a
//! loose observable, one an `observed-data` references, or one embedded in a MISP-style
//! `observed-data`, is one record each, unless an indicator of the bundle covers it (its
//! recomputed id is one the indicator's pattern implies). Markings only make a record stricter.
//! A refusal names the object's index in `objects`, never its id.

mod pattern;
mod scan;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::Path;

use crossmatch_protocol::{Canonical, Handling, Kind, canonicalize};
use serde_json::{Map, Value};

use self::pattern::Found;
use self::scan::{Element, Scanner};
use super::record_in::Fields;
use super::{
    Cursor, Defaults, ImportOptions, ImportRow, Item, Notice, Overrides, Position, Refusal,
    RowRule, Rows, StixVersion, Subject, limits,
};
use crate::stix::{Marking, Tlp, marking, parse_timestamp, sco_id};

pub(super) use self::scan::is_bundle_head;

/// The observable types that become records.
const SCO_TYPES: [&str; 5] =
    ["user-account", "email-addr", "url", "domain-name", "x-crossmatch-phone"];
/// Types read without a notice: they carry no record themselves.
const STRUCTURAL_TYPES: [&str; 5] = [
    "marking-definition",
    "identity",
    "extension-definition",
    "observed-data",
    "x-crossmatch-withdrawn",
];

/// The markings an `observed-data` passes to the observables it references.
#[derive(Debug, Clone, Default)]
struct Marks {
    refs: Vec<String>,
    granular: bool,
}

/// What the first pass learns.
#[derive(Debug, Default)]
struct Index {
    /// Observable id → the markings of the `observed-data` objects that reference it.
    containers: HashMap<String, Marks>,
    /// Observable ids implied by the bundle's accepted indicator patterns.
    covered: HashSet<String>,
}

/// A STIX bundle read as items.
pub(super) struct StixRows {
    scanner: Scanner,
    index: Index,
    defaults: Defaults,
    overrides: Overrides,
    /// Items of the current object not yet yielded.
    pending: VecDeque<Item>,
    cursor: Cursor,
    file_bytes: u64,
    finished: bool,
}

impl StixRows {
    pub(super) fn open(path: &Path, o: &ImportOptions, from: Option<Cursor>) -> io::Result<Self> {
        let file = File::open(path)?;
        let file_bytes = file.metadata()?.len();
        let index = first_pass(BufReader::new(File::open(path)?))?;
        let mut rows = Self {
            scanner: Scanner::new(BufReader::new(file), 0),
            index,
            defaults: o.defaults.clone(),
            overrides: o.overrides,
            pending: VecDeque::new(),
            cursor: Cursor::default(),
            file_bytes,
            finished: false,
        };
        if let Some(from) = from.filter(|from| from.byte > 0) {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(from.byte))?;
            rows.scanner = Scanner::resume(BufReader::new(file), from.byte);
            rows.cursor = Cursor { byte: from.byte, line: 0, index: from.index };
            if from.line > 0 {
                rows.fill()?;
                for _ in 0..from.line {
                    rows.pending.pop_front();
                    rows.cursor.line += 1;
                }
            }
        }
        Ok(rows)
    }

    /// Reads the next object that yields items into `pending`.
    fn fill(&mut self) -> io::Result<()> {
        while self.pending.is_empty() && !self.finished {
            let index = self.cursor.index;
            let position = Position::Object(index);
            if index >= limits::MAX_STIX_OBJECTS {
                self.finished = true;
                self.pending.push_back(refused(position, RowRule::TooLong));
                return Ok(());
            }
            let element = match self.scanner.next_element() {
                Ok(Some(element)) => element,
                Ok(None) => {
                    self.finished = true;
                    return Ok(());
                }
                Err(scan::Fault::Io(error)) => return Err(error),
                Err(scan::Fault::Malformed) => {
                    self.finished = true;
                    self.pending.push_back(refused(position, RowRule::MalformedJson));
                    return Ok(());
                }
            };
            self.cursor = Cursor { byte: element.start, line: 0, index };
            self.pending = self.items(position, element).into();
            if self.pending.is_empty() {
                self.cursor = Cursor { byte: self.scanner.byte(), line: 0, index: index + 1 };
            }
        }
        Ok(())
    }

    /// The items of one object.
    fn items(&self, position: Position, element: Element) -> Vec<Item> {
        let Element { bytes: Some(bytes), .. } = element else {
            return vec![refused(position, RowRule::TooLong)];
        };
        let object = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return vec![refused(position, RowRule::NotAnObject)],
            Err(_) => return vec![refused(position, RowRule::MalformedJson)],
        };
        let kind = text(&object, "type").unwrap_or_default();
        let mut items = Vec::new();
        if kind == "indicator" {
            self.indicator(position, &object, &mut items);
        } else if SCO_TYPES.contains(&kind) {
            let id = text(&object, "id").unwrap_or_default();
            let container = self.index.containers.get(id);
            self.observable(position, &object, container, &mut items);
        } else if kind == "observed-data" {
            // MISP's 2.0-style embedded observables, keyed "0", "1", …
            let marks = own_marks(&object);
            let embedded: Vec<&Value> = match object.get("objects") {
                Some(Value::Object(map)) => map.values().collect(),
                Some(Value::Array(list)) => list.iter().collect(),
                _ => Vec::new(),
            };
            for value in embedded {
                if let Value::Object(inner) = value
                    && SCO_TYPES.contains(&text(inner, "type").unwrap_or_default())
                {
                    self.observable(position, inner, Some(&marks), &mut items);
                }
            }
        } else if !STRUCTURAL_TYPES.contains(&kind) {
            items.push(Item::Notice(position, Notice::Ignored));
        }
        items
    }

    fn indicator(&self, position: Position, object: &Map<String, Value>, items: &mut Vec<Item>) {
        let stix = StixVersion {
            modified_ms: text(object, "modified").and_then(parse_timestamp),
            revoked: object.get("revoked") == Some(&Value::Bool(true)),
        };
        let found = match (text(object, "pattern_type"), text(object, "pattern")) {
            (Some("stix"), Some(pattern)) if pattern.len() > limits::MAX_PATTERN_BYTES => {
                Err(RowRule::TooLong)
            }
            (Some("stix"), Some(pattern)) => pattern::identifiers(pattern),
            (Some("stix"), None) => Err(RowRule::PatternSyntax),
            _ => Err(RowRule::PatternUnsupported),
        };
        let identifiers = found.and_then(|found| {
            let mut identifiers = Vec::new();
            for found in found {
                canonicals(&found, &mut identifiers, position, items)?;
            }
            Ok(identifiers)
        });
        let subject = Subject::Stix(text(object, "id").unwrap_or_default().to_owned());
        let row = identifiers.and_then(|identifiers| {
            self.row(position, subject, identifiers, object, None, stix, items)
        });
        items.push(row.map_or_else(|rule| refused(position, rule), Item::Row));
    }

    fn observable(
        &self,
        position: Position,
        object: &Map<String, Value>,
        container: Option<&Marks>,
        items: &mut Vec<Item>,
    ) {
        let found = observable_found(object);
        let recomputed = found.as_ref().and_then(implied_id);
        if recomputed.as_ref().is_some_and(|id| self.index.covered.contains(id)) {
            items.push(Item::Notice(position, Notice::CoveredByIndicator));
            return;
        }
        let id = text(object, "id").map(str::to_owned).or(recomputed).unwrap_or_default();
        let identifiers = match &found {
            Some(found) => {
                let mut identifiers = Vec::new();
                canonicals(found, &mut identifiers, position, items).map(|()| identifiers)
            }
            None => Err(RowRule::NoIdentifiers),
        };
        let stix = StixVersion::default();
        let row = identifiers.and_then(|identifiers| {
            self.row(position, Subject::Stix(id), identifiers, object, container, stix, items)
        });
        items.push(row.map_or_else(|rule| refused(position, rule), Item::Row));
    }

    /// The record of an object: its handling from its markings, the rest from the defaults.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        position: Position,
        subject: Subject,
        identifiers: Vec<Canonical>,
        object: &Map<String, Value>,
        container: Option<&Marks>,
        stix: StixVersion,
        items: &mut Vec<Item>,
    ) -> Result<ImportRow, RowRule> {
        if identifiers.is_empty() && !stix.revoked {
            return Err(RowRule::NoIdentifiers);
        }
        if identifiers.len() > super::record_in::MAX_IDENTIFIERS_PER_RECORD {
            return Err(RowRule::TooManyIdentifiers);
        }
        let mut marks = own_marks(object);
        if let Some(container) = container {
            marks.refs.extend(container.refs.iter().cloned());
            marks.granular |= container.granular;
        }
        let (handling, notices) = marking_handling(&marks, self.defaults.handling, self.overrides);
        items.extend(notices.into_iter().map(|notice| Item::Notice(position, notice)));
        let fields = Fields { handling, ..Fields::default() };
        let mut row = fields.complete(position, subject, identifiers, &self.defaults)?;
        row.stix = Some(stix);
        Ok(row)
    }
}

/// The effective handling code of an object's markings with the import's default (the
/// strictest), and the notices they give. `None`: nothing names a code.
fn marking_handling(
    marks: &Marks,
    default: Option<Handling>,
    overrides: Overrides,
) -> (Option<Handling>, Vec<Notice>) {
    let mut codes: Vec<Handling> = default.into_iter().collect();
    let mut notices = Vec::new();
    let unmarked = |notice: Notice, codes: &mut Vec<Handling>, notices: &mut Vec<Notice>| {
        if !notices.contains(&notice) {
            notices.push(notice);
        }
        if !overrides.unmarked {
            codes.push(Handling::H3);
        }
    };
    if marks.granular {
        unmarked(Notice::MarkingGranular, &mut codes, &mut notices);
    }
    if marks.refs.is_empty() {
        unmarked(Notice::MarkingMissing, &mut codes, &mut notices);
    }
    for id in &marks.refs {
        match marking(id) {
            Marking::Tlp(tlp @ (Tlp::Red | Tlp::AmberStrict)) => {
                let overridden = match tlp {
                    Tlp::Red => overrides.red,
                    _ => overrides.amber_strict,
                };
                if overridden {
                    codes.push(Handling::H2);
                } else {
                    codes.push(Handling::H3);
                    if !notices.contains(&Notice::ForcedWatch) {
                        notices.push(Notice::ForcedWatch);
                    }
                }
            }
            Marking::Tlp(tlp) => codes.push(tlp.handling()),
            Marking::Handling(handling) => codes.push(handling),
            Marking::Unknown => unmarked(Notice::MarkingUnknown, &mut codes, &mut notices),
        }
    }
    (codes.into_iter().max_by_key(|code| code.code()), notices)
}

/// An object's own markings.
fn own_marks(object: &Map<String, Value>) -> Marks {
    let refs = match object.get("object_marking_refs") {
        Some(Value::Array(refs)) => {
            refs.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    };
    let granular =
        matches!(object.get("granular_markings"), Some(Value::Array(g)) if !g.is_empty());
    Marks { refs, granular }
}

/// What an observable names, as written.
fn observable_found(object: &Map<String, Value>) -> Option<Found> {
    let kind = text(object, "type")?;
    if kind == "user-account" {
        let get = |name: &str| text(object, name).map(str::to_owned);
        let (login, user_id) = (get("account_login"), get("user_id"));
        if login.is_none() && user_id.is_none() {
            return None;
        }
        return Some(Found::Account { account_type: get("account_type"), login, user_id });
    }
    let kind = pattern::VALUE_TYPES.into_iter().find(|t| *t == kind)?;
    Some(Found::Value { kind, value: text(object, "value")?.to_owned() })
}

/// The deterministic id of the observable a pattern or object names (its properties as
/// written).
fn implied_id(found: &Found) -> Option<String> {
    match found {
        Found::Account { account_type, login, user_id } => {
            let mut props = Vec::new();
            let named =
                [("account_type", account_type), ("account_login", login), ("user_id", user_id)];
            for (name, value) in named {
                if let Some(value) = value {
                    props.push((name, value.as_str()));
                }
            }
            Some(sco_id("user-account", &props))
        }
        Found::Value { kind, value } => Some(sco_id(kind, &[("value", value)])),
        Found::Withdrawn => None,
    }
}

/// Canonicalises what a pattern or observable names: a user-account's login is an account, its
/// `user_id` an account id only if it passes the id rule (else a notice).
fn canonicals(
    found: &Found,
    out: &mut Vec<Canonical>,
    position: Position,
    items: &mut Vec<Item>,
) -> Result<(), RowRule> {
    let rule = |error: crossmatch_protocol::CanonError| RowRule::Identifier(error.rule);
    match found {
        Found::Account { account_type, login, user_id } => {
            let platform = account_type.as_deref().ok_or(RowRule::PlatformMissing)?;
            if let Some(login) = login {
                out.push(canonicalize(Kind::Account, Some(platform), None, login).map_err(rule)?);
            }
            if let Some(user_id) = user_id {
                match canonicalize(Kind::AccountId, Some(platform), None, user_id) {
                    Ok(canonical) => out.push(canonical),
                    Err(_) => items.push(Item::Notice(position, Notice::UserIdDropped)),
                }
            }
        }
        Found::Value { kind, value } => {
            let kind = match *kind {
                "email-addr" => Kind::Email,
                "url" => Kind::Url,
                "domain-name" => Kind::Domain,
                _ => Kind::Phone,
            };
            out.push(canonicalize(kind, None, None, value).map_err(rule)?);
        }
        Found::Withdrawn => {}
    }
    Ok(())
}

fn text<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    object.get(name).and_then(Value::as_str)
}

fn refused(position: Position, rule: RowRule) -> Item {
    Item::Refused(Refusal { position, rule })
}

/// Pass 1: the observables `observed-data` objects reference, and those indicators cover.
fn first_pass(file: BufReader<File>) -> io::Result<Index> {
    let mut scanner = Scanner::new(file, 0);
    let mut index = Index::default();
    for _ in 0..limits::MAX_STIX_OBJECTS {
        let element = match scanner.next_element() {
            Ok(Some(element)) => element,
            Ok(None) | Err(scan::Fault::Malformed) => break,
            Err(scan::Fault::Io(error)) => return Err(error),
        };
        let Some(bytes) = element.bytes else { continue };
        let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes) else { continue };
        match text(&object, "type") {
            Some("observed-data") => {
                let marks = own_marks(&object);
                let refs = object.get("object_refs").and_then(Value::as_array);
                for id in refs.into_iter().flatten().filter_map(Value::as_str) {
                    let entry = index.containers.entry(id.to_owned()).or_default();
                    entry.refs.extend(marks.refs.iter().cloned());
                    entry.granular |= marks.granular;
                }
            }
            Some("indicator") if text(&object, "pattern_type") == Some("stix") => {
                let pattern = text(&object, "pattern").unwrap_or_default();
                if pattern.len() <= limits::MAX_PATTERN_BYTES
                    && let Ok(found) = pattern::identifiers(pattern)
                {
                    index.covered.extend(found.iter().filter_map(implied_id));
                }
            }
            _ => {}
        }
    }
    Ok(index)
}

impl Iterator for StixRows {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(error) = self.fill() {
            self.finished = true;
            return Some(Err(error));
        }
        let item = self.pending.pop_front()?;
        self.cursor.line += 1;
        if self.pending.is_empty() {
            self.cursor =
                Cursor { byte: self.scanner.byte(), line: 0, index: self.cursor.index + 1 };
        }
        Some(Ok(item))
    }
}

impl Rows for StixRows {
    fn cursor(&self) -> Cursor {
        self.cursor
    }

    fn progress(&self) -> (u64, u64) {
        (self.scanner.byte(), self.file_bytes)
    }
}

#[cfg(test)]
mod tests;
