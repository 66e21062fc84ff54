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
use std::io::{self, BufReader, Seek, SeekFrom};

use crossmatch_protocol::{Canonical, Handling, Kind, canonicalize};
use serde_json::{Map, Value};

use self::pattern::Found;
use self::scan::{Element, Scanner};
use super::record_in::{Fields, MAX_IDENTIFIERS_PER_RECORD};
use super::{
    Cursor, Defaults, ImportOptions, ImportRow, Item, Notice, Overrides, Position, Refusal,
    RowRule, Rows, Source, StixVersion, Subject, limits,
};
use crate::stix::{Marking, Tlp, marking, parse_object_id, parse_timestamp, sco_id};

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

/// An observable's key in the first pass's index: its type (an index in [`SCO_TYPES`]) and the
/// 16 bytes of its id's UUID.
type ScoKey = (u8, [u8; 16]);

/// The key of an observable id; `None` for another type or a malformed id.
fn sco_key(id: &str) -> Option<ScoKey> {
    let (kind, uuid) = parse_object_id(id)?;
    let kind = SCO_TYPES.iter().position(|t| *t == kind)?;
    Some((u8::try_from(kind).ok()?, uuid))
}

/// What a set of markings says, folded as it is read (a few bytes, however many markings an
/// object lists): the strictest code its references name, under the overrides, and whether it
/// had any reference, a property-level marking, an unknown id or a TLP level forced to a watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    code: Option<Handling>,
    marked: bool,
    granular: bool,
    unknown: bool,
    forced: bool,
}

/// Where the newest version of an indicator is.
#[derive(Debug, Clone, Copy)]
struct Newest {
    modified_ms: u64,
    revoked: bool,
    index: u32,
}

/// What the first pass learns.
#[derive(Debug, Default)]
struct Index {
    /// Observable (by its id as written) → the markings of the `observed-data` objects that
    /// reference it, merged.
    containers: HashMap<ScoKey, Marks>,
    /// Observable ids implied by the patterns of the newest, unrevoked versions of the
    /// bundle's indicators whose patterns can become a row (completed by [`Index::settled`]).
    covered: HashSet<ScoKey>,
    /// Indicator UUID → the observable ids its newest version's pattern implies (none when
    /// that version is revoked or its pattern cannot become a row), replaced as newer versions
    /// are read, until [`Index::settled`] adds them to `covered`.
    implied: HashMap<[u8; 16], Vec<ScoKey>>,
    /// Covered observable (by its recomputed id) → its own markings with its containers'.
    observed: HashMap<ScoKey, Marks>,
    /// Indicator UUID → its newest version (the latest `modified`, a revocation winning a tie,
    /// else the first); only that one is read.
    newest: HashMap<[u8; 16], Newest>,
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
    /// The bundle's structure broke: its refusal is the last item, and the cursor after it is
    /// [`BROKEN_END`].
    broken: bool,
}

/// The cursor's byte after the refusal of a bundle whose structure broke: a resume from it
/// reads nothing (the scanner cannot re-enter a broken structure where it stopped).
const BROKEN_END: u64 = u64::MAX;

impl StixRows {
    pub(super) fn open(file: Source, o: &ImportOptions, from: Option<Cursor>) -> io::Result<Self> {
        let file_bytes = file.len()?;
        let index = first_pass(BufReader::new(file.reopen()?), o.overrides)?;
        let ended = from.is_some_and(|from| from.byte == BROKEN_END);
        let from = from.filter(|from| from.byte > 0 && !ended);
        // The resumed scanner reads from a handle of its own, seeked to the cursor.
        let resumed = from.map(|_| file.reopen()).transpose()?;
        let mut rows = Self {
            scanner: Scanner::new(BufReader::new(file), 0),
            index,
            defaults: o.defaults.clone(),
            overrides: o.overrides,
            pending: VecDeque::new(),
            cursor: Cursor::default(),
            file_bytes,
            finished: ended,
            broken: ended,
        };
        if let (Some(from), Some(mut file)) = (from, resumed) {
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
            let element = match self.scanner.next_element() {
                Ok(Some(_)) if index >= limits::MAX_STIX_OBJECTS => {
                    self.finished = true;
                    return Err(too_many_objects());
                }
                Ok(Some(element)) => element,
                Ok(None) => {
                    self.finished = true;
                    return Ok(());
                }
                Err(scan::Fault::Io(error)) => return Err(error),
                Err(scan::Fault::Malformed) => {
                    (self.finished, self.broken) = (true, true);
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
            let key = text(&object, "id").and_then(sco_key);
            let container = key.and_then(|key| self.index.containers.get(&key)).copied();
            self.observable(position, &object, container.unwrap_or_default(), &mut items);
        } else if kind == "observed-data" {
            // MISP's 2.0-style embedded observables, keyed "0", "1", …
            let marks = Marks::of(&object, self.overrides);
            let embedded: Vec<&Value> = match object.get("objects") {
                Some(Value::Object(map)) => map.values().collect(),
                Some(Value::Array(list)) => list.iter().collect(),
                _ => Vec::new(),
            };
            for value in embedded {
                if let Value::Object(inner) = value
                    && SCO_TYPES.contains(&text(inner, "type").unwrap_or_default())
                {
                    self.observable(position, inner, marks, &mut items);
                }
            }
        } else if !STRUCTURAL_TYPES.contains(&kind) {
            items.push(Item::Notice(position, Notice::Ignored));
        }
        items
    }

    fn indicator(&self, position: Position, object: &Map<String, Value>, items: &mut Vec<Item>) {
        let uuid = text(object, "id").and_then(parse_object_id).map(|(_, uuid)| uuid);
        let newest = uuid.and_then(|uuid| self.index.newest.get(&uuid));
        if newest.is_some_and(|newest| Position::Object(u64::from(newest.index)) != position) {
            items.push(Item::Notice(position, Notice::Superseded));
            return;
        }
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
        // The indicator's own markings, made stricter by what the observables it names say of
        // themselves (their own and their containers' markings; one left unmarked adds nothing).
        let mut marks = Marks::of(object, self.overrides);
        let identifiers = found.and_then(|found| {
            let mut identifiers = Vec::new();
            for found in found {
                let key = implied_id(&found).as_deref().and_then(sco_key);
                if let Some(observed) = key.and_then(|key| self.index.observed.get(&key)) {
                    marks = marks.merge(Marks { marked: false, ..*observed });
                }
                canonicals(&found, &mut identifiers, position, items)?;
            }
            Ok(identifiers)
        });
        let subject = Subject::Stix(text(object, "id").unwrap_or_default().to_owned());
        let row = identifiers
            .and_then(|identifiers| self.row(position, subject, identifiers, marks, stix, items));
        items.push(row.map_or_else(|rule| refused(position, rule), Item::Row));
    }

    fn observable(
        &self,
        position: Position,
        object: &Map<String, Value>,
        container: Marks,
        items: &mut Vec<Item>,
    ) {
        let found = observable_found(object);
        let recomputed = found.as_ref().and_then(implied_id);
        let covered = recomputed.as_deref().and_then(sco_key);
        if covered.is_some_and(|key| self.index.covered.contains(&key)) {
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
        let marks = Marks::of(object, self.overrides).merge(container);
        let row = identifiers.and_then(|identifiers| {
            self.row(position, Subject::Stix(id), identifiers, marks, stix, items)
        });
        items.push(row.map_or_else(|rule| refused(position, rule), Item::Row));
    }

    /// The record of an object: its handling from its markings, the rest from the defaults.
    fn row(
        &self,
        position: Position,
        subject: Subject,
        identifiers: Vec<Canonical>,
        marks: Marks,
        stix: StixVersion,
        items: &mut Vec<Item>,
    ) -> Result<ImportRow, RowRule> {
        if identifiers.is_empty() && !stix.revoked {
            return Err(RowRule::NoIdentifiers);
        }
        if identifiers.len() > MAX_IDENTIFIERS_PER_RECORD {
            return Err(RowRule::TooManyIdentifiers);
        }
        let (handling, notices) = marks.settle(self.defaults.handling, self.overrides);
        items.extend(notices.into_iter().map(|notice| Item::Notice(position, notice)));
        let fields = Fields { handling, ..Fields::default() };
        let mut row = fields.complete(position, subject, identifiers, &self.defaults)?;
        row.stix = Some(stix);
        Ok(row)
    }
}

impl Marks {
    /// An object's own markings, under the overrides.
    fn of(object: &Map<String, Value>, overrides: Overrides) -> Marks {
        let mut marks = Marks {
            granular: matches!(object.get("granular_markings"), Some(Value::Array(g)) if !g.is_empty()),
            ..Marks::default()
        };
        let refs = match object.get("object_marking_refs") {
            Some(Value::Array(refs)) => refs.as_slice(),
            _ => &[],
        };
        for id in refs.iter().filter_map(Value::as_str) {
            marks.marked = true;
            let code = match marking(id) {
                Marking::Tlp(tlp @ (Tlp::Red | Tlp::AmberStrict)) => {
                    let overridden = match tlp {
                        Tlp::Red => overrides.red,
                        _ => overrides.amber_strict,
                    };
                    marks.forced |= !overridden;
                    if overridden { Handling::H2 } else { Handling::H3 }
                }
                Marking::Tlp(tlp) => tlp.handling(),
                Marking::Handling(handling) => handling,
                Marking::Unknown => {
                    marks.unknown = true;
                    continue;
                }
            };
            marks.code = strictest(marks.code, Some(code));
        }
        marks
    }

    /// Whether these markings can make a record stricter than the others it is merged with
    /// (a code above H0, or a marking that forces a watch or is unknown or property-level);
    /// the first pass keeps only such summaries of the observables indicators cover.
    fn restricts(self) -> bool {
        self.code.is_some_and(|code| code != Handling::H0)
            || self.granular
            || self.unknown
            || self.forced
    }

    /// Both sets of markings together.
    fn merge(self, other: Marks) -> Marks {
        Marks {
            code: strictest(self.code, other.code),
            marked: self.marked || other.marked,
            granular: self.granular || other.granular,
            unknown: self.unknown || other.unknown,
            forced: self.forced || other.forced,
        }
    }

    /// The effective handling code with the import's default (the strictest; `None`: nothing
    /// names one), and the notices: no marking, an unknown one or a property-level one makes a
    /// watch unless the `unmarked` override gives the default.
    fn settle(
        self,
        default: Option<Handling>,
        overrides: Overrides,
    ) -> (Option<Handling>, Vec<Notice>) {
        let mut code = strictest(self.code, default);
        let mut notices = Vec::new();
        let unmarked = [
            (self.granular, Notice::MarkingGranular),
            (!self.marked, Notice::MarkingMissing),
            (self.unknown, Notice::MarkingUnknown),
        ];
        for notice in unmarked.into_iter().filter_map(|(set, notice)| set.then_some(notice)) {
            notices.push(notice);
            if !overrides.unmarked {
                code = strictest(code, Some(Handling::H3));
            }
        }
        if self.forced {
            notices.push(Notice::ForcedWatch);
        }
        (code, notices)
    }
}

/// The stricter of two codes.
fn strictest(a: Option<Handling>, b: Option<Handling>) -> Option<Handling> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.code() > a.code() { b } else { a }),
        (a, b) => a.or(b),
    }
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

/// Pass 1: the markings of the observables indicators cover, with their containers', and the
/// newest version of each indicator. Memory: a fixed-size entry per referenced or loose
/// observable and per implied id and indicator, never a copy of a marking list.
fn first_pass(file: BufReader<Source>, overrides: Overrides) -> io::Result<Index> {
    let mut scanner = Scanner::new(file, 0);
    let mut index = Index::default();
    // Observables whose written id is not the one their properties give: written → recomputed.
    let mut aliases: Vec<(ScoKey, ScoKey)> = Vec::new();
    let mut observe = |index: &mut Index, object: &Map<String, Value>, container: Marks| {
        let recomputed = observable_found(object).as_ref().and_then(implied_id);
        let Some(recomputed) = recomputed.as_deref().and_then(sco_key) else { return };
        let marks = Marks::of(object, overrides).merge(container);
        if marks.restricts() {
            let entry = index.observed.entry(recomputed).or_default();
            *entry = entry.merge(marks);
        }
        if let Some(written) = text(object, "id").and_then(sco_key)
            && written != recomputed
        {
            aliases.push((written, recomputed));
        }
    };
    for position in 0..limits::MAX_STIX_OBJECTS {
        let element = match scanner.next_element() {
            Ok(Some(element)) => element,
            Ok(None) | Err(scan::Fault::Malformed) => return Ok(index.settled(aliases)),
            Err(scan::Fault::Io(error)) => return Err(error),
        };
        let Some(bytes) = element.bytes else { continue };
        let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes) else { continue };
        match text(&object, "type") {
            Some("observed-data") => {
                let marks = Marks::of(&object, overrides);
                let refs = object.get("object_refs").and_then(Value::as_array);
                for key in refs.into_iter().flatten().filter_map(Value::as_str).filter_map(sco_key)
                {
                    let entry = index.containers.entry(key).or_default();
                    *entry = entry.merge(marks);
                }
                let embedded: Vec<&Value> = match object.get("objects") {
                    Some(Value::Object(map)) => map.values().collect(),
                    Some(Value::Array(list)) => list.iter().collect(),
                    _ => Vec::new(),
                };
                for inner in embedded.into_iter().filter_map(Value::as_object) {
                    observe(&mut index, inner, marks);
                }
            }
            Some(kind) if SCO_TYPES.contains(&kind) => {
                observe(&mut index, &object, Marks::default())
            }
            Some("indicator") => {
                let revoked = object.get("revoked") == Some(&Value::Bool(true));
                let implied = || -> Vec<ScoKey> {
                    let found = row_pattern(&object).filter(|_| !revoked).unwrap_or_default();
                    found
                        .iter()
                        .filter_map(|f| implied_id(f).as_deref().and_then(sco_key))
                        .collect()
                };
                let Some((_, uuid)) = text(&object, "id").and_then(parse_object_id) else {
                    index.covered.extend(implied());
                    continue;
                };
                let version = Newest {
                    modified_ms: text(&object, "modified").and_then(parse_timestamp).unwrap_or(0),
                    revoked,
                    index: u32::try_from(position).unwrap_or(u32::MAX),
                };
                let newest = index.newest.entry(uuid).or_insert(version);
                let first = newest.index == version.index;
                if first
                    || (version.modified_ms, version.revoked) > (newest.modified_ms, newest.revoked)
                {
                    *newest = version;
                    index.implied.insert(uuid, implied());
                }
            }
            _ => {}
        }
    }
    match scanner.next_element() {
        Ok(Some(_)) => Err(too_many_objects()),
        Ok(None) | Err(scan::Fault::Malformed) => Ok(index.settled(aliases)),
        Err(scan::Fault::Io(error)) => Err(error),
    }
}

/// What an indicator's pattern names, when it can become a row: a STIX pattern within the
/// size limit, in the subset read, naming 1 to [`MAX_IDENTIFIERS_PER_RECORD`] identifiers that
/// all canonicalise. Only such a pattern covers the observables it names.
fn row_pattern(object: &Map<String, Value>) -> Option<Vec<Found>> {
    let pattern =
        text(object, "pattern").filter(|_| text(object, "pattern_type") == Some("stix"))?;
    if pattern.len() > limits::MAX_PATTERN_BYTES {
        return None;
    }
    let found = pattern::identifiers(pattern).ok()?;
    let (mut identifiers, mut notices) = (Vec::new(), Vec::new());
    for each in &found {
        canonicals(each, &mut identifiers, Position::Object(0), &mut notices).ok()?;
    }
    (1..=MAX_IDENTIFIERS_PER_RECORD).contains(&identifiers.len()).then_some(found)
}

/// A bundle past [`limits::MAX_STIX_OBJECTS`]: the whole import is refused `too_many_records`.
fn too_many_objects() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        "the bundle holds more objects than an import reads",
    )
}

impl Index {
    /// The index once the whole bundle was read: each covered observable's markings with its
    /// containers' (through `aliases`, written id → recomputed id, where they differ); the
    /// observables no indicator covers are dropped.
    fn settled(mut self, aliases: Vec<(ScoKey, ScoKey)>) -> Index {
        let Index { containers, covered, observed, implied, .. } = &mut self;
        covered.extend(std::mem::take(implied).into_values().flatten());
        observed.retain(|key, _| covered.contains(key));
        let by_id = covered.iter().filter_map(|key| Some((*key, *containers.get(key)?)));
        let by_alias = aliases
            .into_iter()
            .filter(|(_, recomputed)| covered.contains(recomputed))
            .filter_map(|(written, recomputed)| Some((recomputed, *containers.get(&written)?)));
        for (key, container) in by_id.chain(by_alias) {
            if container.restricts() {
                let entry = observed.entry(key).or_default();
                *entry = entry.merge(container);
            }
        }
        self
    }
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
            let byte = if self.broken { BROKEN_END } else { self.scanner.byte() };
            self.cursor = Cursor { byte, line: 0, index: self.cursor.index + 1 };
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
