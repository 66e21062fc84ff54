//! A structural JSON scanner for STIX bundles: finds the top-level `objects` array and yields
//! each element's bytes with its offset, holding at most one element (larger ones are skipped
//! and reported), so a bundle of any size streams in bounded memory. It checks structure
//! (strings, nesting), not values: serde reads each element.

use std::io::{self, BufRead, BufReader};

use crate::import::{Source, limits};

/// Deepest nesting followed.
const MAX_DEPTH: usize = 256;

/// One element of `objects`.
pub(super) struct Element {
    /// Byte offset of its first byte.
    pub(super) start: u64,
    /// Its bytes; `None` when it is longer than [`limits::MAX_STIX_OBJECT_BYTES`].
    pub(super) bytes: Option<Vec<u8>>,
}

/// Why scanning stopped.
pub(super) enum Fault {
    Io(io::Error),
    /// Not a bundle's JSON structure (or cut short).
    Malformed,
}

impl From<io::Error> for Fault {
    fn from(error: io::Error) -> Self {
        Fault::Io(error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level object.
    Start,
    /// Inside `objects`, before an element (or a `,` before one, or the closing `]`).
    InArray {
        first: bool,
    },
    Done,
}

/// The scanner over a file.
pub(super) struct Scanner {
    file: BufReader<Source>,
    byte: u64,
    state: State,
}

impl Scanner {
    pub(super) fn new(file: BufReader<Source>, byte: u64) -> Self {
        Self { file, byte, state: State::Start }
    }

    /// A scanner whose file is positioned inside `objects`, at an element or the `,` before one.
    pub(super) fn resume(file: BufReader<Source>, byte: u64) -> Self {
        Self { file, byte, state: State::InArray { first: false } }
    }

    /// Bytes consumed.
    pub(super) fn byte(&self) -> u64 {
        self.byte
    }

    fn peek(&mut self) -> Result<Option<u8>, Fault> {
        Ok(self.file.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        self.file.consume(1);
        self.byte += 1;
    }

    fn next_byte(&mut self) -> Result<u8, Fault> {
        let byte = self.peek()?.ok_or(Fault::Malformed)?;
        self.bump();
        Ok(byte)
    }

    fn skip_space(&mut self) -> Result<Option<u8>, Fault> {
        while let Some(byte) = self.peek()? {
            if !byte.is_ascii_whitespace() {
                return Ok(Some(byte));
            }
            self.bump();
        }
        Ok(None)
    }

    /// The next element of `objects`, or `None` after the last.
    pub(super) fn next_element(&mut self) -> Result<Option<Element>, Fault> {
        if self.state == State::Start {
            self.find_objects()?;
        }
        let State::InArray { first } = self.state else { return Ok(None) };
        let mut next = self.skip_space()?;
        if next == Some(b']') {
            self.state = State::Done;
            return Ok(None);
        }
        if !first && next == Some(b',') {
            self.bump();
            next = self.skip_space()?;
        }
        if next.is_none() || next == Some(b']') || next == Some(b',') {
            return Err(Fault::Malformed);
        }
        self.state = State::InArray { first: false };
        let start = self.byte;
        let mut bytes = Some(Vec::new());
        self.value(&mut bytes)?;
        Ok(Some(Element { start, bytes }))
    }

    /// Reads the top-level object's keys up to `objects` and its `[`.
    fn find_objects(&mut self) -> Result<(), Fault> {
        if self.skip_space()? != Some(b'{') {
            return Err(Fault::Malformed);
        }
        self.bump();
        loop {
            match self.skip_space()? {
                Some(b'}') => {
                    self.state = State::Done;
                    return Ok(());
                }
                Some(b',') => self.bump(),
                Some(b'"') => {
                    let mut key = Some(Vec::new());
                    self.string(&mut key)?;
                    if self.skip_space()? != Some(b':') {
                        return Err(Fault::Malformed);
                    }
                    self.bump();
                    let is_objects = key.as_deref() == Some(b"\"objects\"");
                    if is_objects && self.skip_space()? == Some(b'[') {
                        self.bump();
                        self.state = State::InArray { first: true };
                        return Ok(());
                    }
                    self.value(&mut None)?;
                }
                _ => return Err(Fault::Malformed),
            }
        }
    }

    /// Consumes one value, copying it into `out` while it stays within the object limit.
    fn value(&mut self, out: &mut Option<Vec<u8>>) -> Result<(), Fault> {
        let mut depth = 0usize;
        loop {
            let Some(byte) = self.skip_space()? else { return Err(Fault::Malformed) };
            match byte {
                b'"' => self.string(out)?,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Fault::Malformed);
                    }
                    self.copy(out);
                }
                b'}' | b']' => {
                    if depth == 0 {
                        return Err(Fault::Malformed);
                    }
                    depth -= 1;
                    self.copy(out);
                }
                b',' | b':' if depth > 0 => self.copy(out),
                _ => {
                    // A scalar: up to a delimiter.
                    let mut length = 0;
                    while let Some(byte) = self.peek()? {
                        if matches!(byte, b',' | b']' | b'}' | b':') || byte.is_ascii_whitespace() {
                            break;
                        }
                        self.copy(out);
                        length += 1;
                    }
                    if length == 0 {
                        return Err(Fault::Malformed);
                    }
                }
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    /// Consumes a string from its opening quote.
    fn string(&mut self, out: &mut Option<Vec<u8>>) -> Result<(), Fault> {
        self.copy(out);
        loop {
            let byte = self.next_byte()?;
            push(out, byte);
            match byte {
                b'"' => return Ok(()),
                b'\\' => {
                    let escaped = self.next_byte()?;
                    push(out, escaped);
                }
                _ => {}
            }
        }
    }

    /// Consumes the peeked byte, copying it.
    fn copy(&mut self, out: &mut Option<Vec<u8>>) {
        if let Ok(Some(byte)) = self.peek() {
            push(out, byte);
        }
        self.bump();
    }
}

fn push(out: &mut Option<Vec<u8>>, byte: u8) {
    if let Some(bytes) = out {
        if bytes.len() >= limits::MAX_STIX_OBJECT_BYTES {
            *out = None;
        } else {
            bytes.push(byte);
        }
    }
}

/// Whether the first bytes of a file are a JSON object whose top-level `type` is `bundle`
/// (the key may come after others; the head may end anywhere).
pub(crate) fn is_bundle_head(head: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    // The last top-level key read, and whether its value comes next.
    let mut key: Option<&[u8]> = None;
    let mut expect_key = false;
    while at < head.len() {
        match head[at] {
            b'"' => {
                let start = at + 1;
                at += 1;
                while at < head.len() && head[at] != b'"' {
                    at += if head[at] == b'\\' { 2 } else { 1 };
                }
                let Some(text) = head.get(start..at) else { return false };
                if depth == 1 && expect_key {
                    key = Some(text);
                    expect_key = false;
                } else if depth == 1 && key == Some(b"type".as_slice()) {
                    return text == b"bundle";
                } else if depth == 1 {
                    key = None;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth == 1 {
                    expect_key = true;
                }
                key = key.filter(|_| depth == 1);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => {
                expect_key = true;
                key = None;
            }
            _ => {}
        }
        at += 1;
    }
    false
}
