//! JSON lines imports: one record a line in the API's record shape, its record fields optional
//! (`import/record_in.rs`'s `RecordLine`), plus a `subject`. Blank lines are skipped; a line
//! longer than [`limits::MAX_LINE_BYTES`] is refused without being held. A subject that appeared
//! on an earlier line is refused `duplicate_subject` (an 8-byte hash of each, in memory only,
//! rebuilt up to the cursor when a job resumes).

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader};

use super::record_in::RecordLine;
use super::{
    Cursor, Defaults, Item, Position, Refusal, RowRule, Rows, Source, Subject, limits, subject_hash,
};

/// A JSON lines file read as items.
pub(super) struct JsonlRows {
    file: BufReader<Source>,
    defaults: Defaults,
    cursor: Cursor,
    seen: HashSet<u64>,
    file_bytes: u64,
    line: Vec<u8>,
}

impl JsonlRows {
    pub(super) fn open(
        file: Source,
        defaults: &Defaults,
        from: Option<Cursor>,
    ) -> io::Result<Self> {
        let file_bytes = file.len()?;
        let mut rows = Self {
            file: BufReader::new(file),
            defaults: defaults.clone(),
            cursor: Cursor::default(),
            seen: HashSet::new(),
            file_bytes,
            line: Vec::new(),
        };
        if let Some(from) = from {
            // Replay up to the cursor exactly as the straight read goes, so the seen set holds
            // the same subjects (only those of lines that parse as a record).
            while rows.cursor.byte < from.byte {
                match rows.next() {
                    None => break,
                    Some(Err(error)) => return Err(error),
                    Some(Ok(_)) => {}
                }
            }
            if rows.cursor != from {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the stored cursor is not where a line of this file starts",
                ));
            }
        }
        Ok(rows)
    }

    /// Reads the next line into `self.line` (at most the limit; the rest of a longer line is
    /// skipped) and moves the cursor past it. `None` at the end; `Some(true)`: too long.
    fn read_line(&mut self) -> io::Result<Option<bool>> {
        self.line.clear();
        let mut too_long = false;
        let mut read = 0u64;
        loop {
            let buffer = self.file.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let (chunk, ends) = match memchr_newline(buffer) {
                Some(at) => (&buffer[..=at], true),
                None => (buffer, false),
            };
            let length = chunk.len();
            if !too_long {
                if self.line.len() + length > limits::MAX_LINE_BYTES + 1 {
                    too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            self.file.consume(length);
            read += length as u64;
            if ends {
                break;
            }
        }
        if read == 0 {
            return Ok(None);
        }
        if self.cursor.byte == 0 && self.line.starts_with(b"\xef\xbb\xbf") {
            self.line.drain(..3);
        }
        self.cursor.byte += read;
        self.cursor.line += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(Some(too_long || self.line.len() > limits::MAX_LINE_BYTES))
    }

    fn next_item(&mut self) -> io::Result<Option<Item>> {
        loop {
            let Some(too_long) = self.read_line()? else { return Ok(None) };
            let position = Position::Line(self.cursor.line);
            if too_long {
                return Ok(Some(refused(position, RowRule::TooLong)));
            }
            if is_blank(&self.line) {
                continue;
            }
            if std::str::from_utf8(&self.line).is_err() {
                return Ok(Some(refused(position, RowRule::NotUtf8)));
            }
            let line: RecordLine = match serde_json::from_slice(&self.line) {
                Ok(line) => line,
                Err(error) => {
                    let rule = match error.classify() {
                        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                            RowRule::MalformedJson
                        }
                        _ => RowRule::NotAnObject,
                    };
                    return Ok(Some(refused(position, rule)));
                }
            };
            if let Some(subject) = line.subject.as_deref().filter(|s| !s.is_empty())
                && !self.seen.insert(subject_hash(subject))
            {
                return Ok(Some(refused(position, RowRule::DuplicateSubject)));
            }
            return Ok(Some(match line.into_row(position, &self.defaults) {
                Ok(row) => {
                    debug_assert!(!matches!(row.subject, Subject::Stix(_)));
                    Item::Row(row)
                }
                Err(rule) => refused(position, rule),
            }));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn refused(position: Position, rule: RowRule) -> Item {
    Item::Refused(Refusal { position, rule })
}

impl Iterator for JsonlRows {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.next_item().transpose()?;
        if item.is_ok() {
            self.cursor.index += 1;
        }
        Some(item)
    }
}

impl Rows for JsonlRows {
    fn cursor(&self) -> Cursor {
        self.cursor
    }

    fn progress(&self) -> (u64, u64) {
        (self.cursor.byte, self.file_bytes)
    }
}
