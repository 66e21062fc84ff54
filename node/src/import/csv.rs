//! CSV imports: UTF-8 (a byte-order mark stripped), `;` or `,` (whichever makes the header row
//! the documented columns), quoted fields. Adjacent rows with one non-empty `subject` are one
//! record of at most 32 identifiers, its record fields from its first row; a row without a
//! subject is a record of its own. A refusal names the line of the row that broke the rule.
//!
//! A subject seen earlier in the file and not adjacent is refused `subject_not_adjacent`: the
//! reader keeps an 8-byte hash of every subject it has passed (rebuilt by reading the file up to
//! the cursor when a job resumes, so a resumed reader yields exactly what the first would have).

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use crossmatch_protocol::{Canonical, Kind, canonicalize};
use csv::{ByteRecord, Reader, ReaderBuilder};

use super::record_in::{Fields, MAX_IDENTIFIERS_PER_RECORD, parse_optional};
use super::{
    Cursor, Defaults, ImportRow, Item, Position, Refusal, RowRule, Rows, Source, Subject, limits,
    subject_hash,
};

/// The documented columns, in their usual order; `kind` and `value` are required.
pub const COLUMNS: [&str; 11] = [
    "kind",
    "platform",
    "region",
    "value",
    "subject",
    "category",
    "handling",
    "evaluation",
    "expires_in_days",
    "notes",
    "share",
];

const KIND: usize = 0;
const PLATFORM: usize = 1;
const REGION: usize = 2;
const VALUE: usize = 3;
const SUBJECT: usize = 4;
/// The record fields: every row of a subject must agree on them.
const RECORD_FIELDS: [usize; 6] = [5, 6, 7, 8, 9, 10];
const CATEGORY: usize = 5;
const HANDLING: usize = 6;
const EVALUATION: usize = 7;
const EXPIRES: usize = 8;
const NOTES: usize = 9;
const SHARE: usize = 10;

/// Where each documented column is in the file, if it is there.
#[derive(Debug, Clone, Copy)]
struct Columns {
    at: [Option<usize>; 11],
    count: usize,
}

/// The separator and columns of a header line, if it is the documented columns with either.
fn header(line: &[u8]) -> Option<(u8, Columns)> {
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    let line = std::str::from_utf8(line).ok()?.trim_end_matches(['\r', '\n']);
    [b';', b','].into_iter().find_map(|separator| {
        let mut at = [None; 11];
        let names: Vec<&str> = line.split(char::from(separator)).collect();
        for (index, name) in names.iter().enumerate() {
            let name = name.trim().trim_matches('"').trim();
            let column = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name))?;
            if at[column].replace(index).is_some() {
                return None;
            }
        }
        (at[KIND].is_some() && at[VALUE].is_some())
            .then_some((separator, Columns { at, count: names.len() }))
    })
}

/// One CSV row, its fields read as text.
struct Row {
    line: u64,
    start: Cursor,
    fields: [String; 11],
}

/// What the next row is.
enum Next {
    /// A row whose fields are text.
    Row(Box<Row>),
    /// A row refused on its own (its subject unknown): where it starts, its line, the rule.
    Bad(Cursor, u64, RowRule),
}

/// A CSV file read as items.
pub(super) struct CsvRows {
    reader: Option<Reader<RowBound>>,
    columns: Columns,
    defaults: Defaults,
    /// A row read ahead: the start of the next item.
    ahead: Option<Next>,
    /// Where the next item starts.
    cursor: Cursor,
    /// Items yielded, from the start of the file.
    items: u64,
    seen: HashSet<u64>,
    file_bytes: u64,
    /// The header's refusal, yielded once.
    refused_header: bool,
    record: ByteRecord,
}

impl CsvRows {
    pub(super) fn open(
        mut file: Source,
        defaults: &Defaults,
        from: Option<Cursor>,
    ) -> io::Result<Self> {
        let file_bytes = file.len()?;
        let mut head = Vec::new();
        BufReader::new(&mut file)
            .take(limits::MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut head)?;
        file.seek(SeekFrom::Start(0))?;
        let mut rows = Self {
            reader: None,
            columns: Columns { at: [None; 11], count: 0 },
            defaults: defaults.clone(),
            ahead: None,
            cursor: Cursor::default(),
            items: 0,
            seen: HashSet::new(),
            file_bytes,
            refused_header: false,
            record: ByteRecord::new(),
        };
        let Some((separator, columns)) = header(&head) else {
            // The whole file is refused: one item, at line 1.
            rows.refused_header = from.is_some_and(|cursor| cursor.index > 0);
            return Ok(rows);
        };
        rows.columns = columns;
        let mut reader = ReaderBuilder::new()
            .delimiter(separator)
            // Rows end at `\n` (a `\r` before it is trimmed with the field), so a row's start
            // is its line's start and line numbers count `\r\n` files right.
            .terminator(csv::Terminator::Any(b'\n'))
            .has_headers(false)
            .flexible(true)
            .from_reader(RowBound { file, read: 0 });
        // The header row.
        reader.read_byte_record(&mut rows.record)?;
        rows.cursor = cursor_at(reader.position());
        rows.reader = Some(reader);
        if let Some(from) = from {
            rows.skip_to(from)?;
        }
        Ok(rows)
    }

    /// Reads items without canonicalising until the cursor, noting every subject passed.
    fn skip_to(&mut self, from: Cursor) -> io::Result<()> {
        while self.cursor.byte < from.byte {
            let Some(next) = self.take()? else { break };
            match next {
                Next::Row(row) if !row.fields[SUBJECT].is_empty() => {
                    let subject = row.fields[SUBJECT].clone();
                    self.seen.insert(subject_hash(&subject));
                    while let Some(next) = self.take()? {
                        match next {
                            Next::Row(row) if row.fields[SUBJECT] == subject => continue,
                            other => {
                                self.ahead = Some(other);
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
            self.items += 1;
            self.settle_cursor();
        }
        if self.cursor.byte != from.byte {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the stored cursor is not where a row of this file starts",
            ));
        }
        Ok(())
    }

    /// The cursor is where the next unread row starts.
    fn settle_cursor(&mut self) {
        let start = match &self.ahead {
            Some(Next::Row(row)) => Some(row.start),
            Some(Next::Bad(start, ..)) => Some(*start),
            None => None,
        };
        self.cursor = match (start, &self.reader) {
            (Some(start), _) => start,
            (None, Some(reader)) => cursor_at(reader.position()),
            (None, None) => self.cursor,
        };
        self.cursor.index = self.items;
    }

    /// The next row, read ahead or from the file.
    fn take(&mut self) -> io::Result<Option<Next>> {
        if let Some(next) = self.ahead.take() {
            return Ok(Some(next));
        }
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        let start = cursor_at(reader.position());
        let more = reader.read_byte_record(&mut self.record);
        reader.get_mut().read = 0;
        let more = more.map_err(|error| match error.into_kind() {
            csv::ErrorKind::Io(error) => error,
            _ => io::Error::new(io::ErrorKind::InvalidData, "the file is not readable CSV"),
        })?;
        if !more {
            return Ok(None);
        }
        let end = reader.position().byte();
        let line = start.line + 1;
        if end.saturating_sub(start.byte) > limits::MAX_LINE_BYTES as u64 {
            return Ok(Some(Next::Bad(start, line, RowRule::TooLong)));
        }
        if self.record.len() != self.columns.count {
            return Ok(Some(Next::Bad(start, line, RowRule::MalformedCsv)));
        }
        let mut fields: [String; 11] = Default::default();
        for (column, at) in self.columns.at.iter().enumerate() {
            if let Some(at) = at {
                let bytes = self.record.get(*at).unwrap_or_default();
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return Ok(Some(Next::Bad(start, line, RowRule::NotUtf8)));
                };
                fields[column] = text.trim().to_owned();
            }
        }
        Ok(Some(Next::Row(Box::new(Row { line, start, fields }))))
    }

    /// The next item: a record of a subject's rows (or of one row), or a refusal.
    fn next_item(&mut self) -> io::Result<Option<Item>> {
        let Some(next) = self.take()? else { return Ok(None) };
        let first = match next {
            Next::Bad(_, line, rule) => return Ok(Some(refused(line, rule))),
            Next::Row(row) => row,
        };
        let line = first.line;
        let subject = first.fields[SUBJECT].clone();
        // The first fault of the record: the line of the row that broke it, and the rule.
        let mut fault: Option<(u64, RowRule)> = None;
        if !subject.is_empty() && !self.seen.insert(subject_hash(&subject)) {
            fault = Some((line, RowRule::SubjectNotAdjacent));
        }
        let mut identifiers = Vec::new();
        let mut rows = 1;
        note(&mut fault, line, identifier(&first.fields).map(|c| identifiers.push(c)));
        if !subject.is_empty() {
            while let Some(next) = self.take()? {
                let row = match next {
                    Next::Row(row) if row.fields[SUBJECT] == subject => row,
                    other => {
                        self.ahead = Some(other);
                        break;
                    }
                };
                rows += 1;
                if rows > MAX_IDENTIFIERS_PER_RECORD {
                    note(&mut fault, row.line, Err(RowRule::TooManyIdentifiers));
                }
                let differs = RECORD_FIELDS.iter().any(|&field| {
                    !row.fields[field].is_empty() && row.fields[field] != first.fields[field]
                });
                if differs {
                    note(&mut fault, row.line, Err(RowRule::FieldsDiffer));
                }
                if fault.is_none() {
                    note(
                        &mut fault,
                        row.line,
                        identifier(&row.fields).map(|c| identifiers.push(c)),
                    );
                }
            }
        }
        if let Some((line, rule)) = fault {
            return Ok(Some(refused(line, rule)));
        }
        let subject = if subject.is_empty() { Subject::Content } else { Subject::Named(subject) };
        Ok(Some(match self.record_of(&first.fields, subject, identifiers, line) {
            Ok(row) => Item::Row(row),
            Err(rule) => refused(line, rule),
        }))
    }

    fn record_of(
        &self,
        fields: &[String; 11],
        subject: Subject,
        identifiers: Vec<Canonical>,
        line: u64,
    ) -> Result<ImportRow, RowRule> {
        let text = |field: usize| Some(fields[field].as_str()).filter(|t| !t.is_empty());
        let share = match text(SHARE).map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("true" | "yes" | "1") => Some(true),
            Some("false" | "no" | "0") => Some(false),
            Some(_) => return Err(RowRule::Share),
        };
        let own = Fields {
            category: text(CATEGORY).map(str::to_owned),
            handling: parse_optional(text(HANDLING), RowRule::Handling)?,
            evaluation: parse_optional(text(EVALUATION), RowRule::Evaluation)?,
            expires_in_days: parse_optional(text(EXPIRES), RowRule::Expiry)?,
            share,
            notes: fields[NOTES].clone(),
            activity_per_day: None,
        };
        own.complete(Position::Line(line), subject, identifiers, &self.defaults)
    }
}

/// Keeps the first fault.
fn note(fault: &mut Option<(u64, RowRule)>, line: u64, result: Result<(), RowRule>) {
    if let (None, Err(rule)) = (&fault, result) {
        *fault = Some((line, rule));
    }
}

fn refused(line: u64, rule: RowRule) -> Item {
    Item::Refused(Refusal { position: Position::Line(line), rule })
}

/// A row's identifier.
fn identifier(fields: &[String; 11]) -> Result<Canonical, RowRule> {
    let kind: Kind = fields[KIND].parse().map_err(|_| RowRule::UnknownKind)?;
    let optional = |field: usize| Some(fields[field].as_str()).filter(|t| !t.is_empty());
    canonicalize(kind, optional(PLATFORM), optional(REGION), &fields[VALUE])
        .map_err(|error| RowRule::Identifier(error.rule))
}

/// The file under the CSV reader, which refuses to read on once one row has taken
/// [`ROW_BOUND_BYTES`] (a quote left open would otherwise make the rest of the file one field
/// held in memory): the read fails, and with it the import.
struct RowBound {
    file: Source,
    /// Bytes read since the last row ended.
    read: u64,
}

/// Bytes one row may take before reading stops: far past [`limits::MAX_LINE_BYTES`] (rows up to
/// there are refused `too_long` one by one) plus the reader's buffer.
const ROW_BOUND_BYTES: u64 = 4 * limits::MAX_LINE_BYTES as u64;

impl Read for RowBound {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.read > ROW_BOUND_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a CSV row runs far past the line limit (a quote left open?)",
            ));
        }
        let read = self.file.read(buffer)?;
        self.read += read as u64;
        Ok(read)
    }
}

fn cursor_at(position: &csv::Position) -> Cursor {
    Cursor { byte: position.byte(), line: position.line().saturating_sub(1), index: 0 }
}

impl Iterator for CsvRows {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.is_none() {
            if self.refused_header {
                return None;
            }
            self.refused_header = true;
            self.items = 1;
            self.cursor = Cursor { byte: self.file_bytes, line: 0, index: 1 };
            return Some(Ok(refused(1, RowRule::MissingColumn)));
        }
        let item = self.next_item().transpose()?;
        if item.is_ok() {
            self.items += 1;
            self.settle_cursor();
        }
        Some(item)
    }
}

impl Rows for CsvRows {
    fn cursor(&self) -> Cursor {
        self.cursor
    }

    fn progress(&self) -> (u64, u64) {
        (self.cursor.byte, self.file_bytes)
    }
}
