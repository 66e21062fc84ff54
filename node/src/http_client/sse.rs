//! An incremental Server-Sent Events parser (the WHATWG event-stream format): feed it the body's
//! chunks as they arrive, take out whole events and comments. Lines end with `\n` or `\r\n`; a
//! line or an event past the bound is an error, so a hostile server cannot grow it without end.

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line (`: heartbeat`), without its colon and the one space after it.
    Comment(String),
}

/// An event: its `id:` (the last id seen, as the spec keeps it), `event:` type and `data:` lines
/// joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id set on the stream, if any.
    pub id: Option<String>,
    /// The event type; `message` when the server named none.
    pub event: String,
    /// The data lines, joined by `\n`.
    pub data: String,
}

/// The stream broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or an event grew past the parser's bound.
    #[error("an event-stream line or event is longer than {0} bytes")]
    TooLong(usize),
    /// A line is not UTF-8.
    #[error("an event-stream line is not UTF-8")]
    NotUtf8,
}

/// The parser's state between chunks.
#[derive(Debug)]
pub struct SseParser {
    max_bytes: usize,
    /// The unfinished line.
    line: Vec<u8>,
    last_id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    event_bytes: usize,
}

impl SseParser {
    /// A parser whose lines and events are at most `max_bytes` long.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, line: Vec::new(), last_id: None, event: None, data: None, event_bytes: 0 }
    }

    /// The last event id the stream set: where to resume from.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds one chunk; returns the items it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, SseError> {
        let mut items = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&byte| byte == b'\n') {
            self.extend_line(&rest[..end])?;
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            if let Some(item) = self.take_line(&line)? {
                items.push(item);
            }
        }
        self.extend_line(rest)?;
        Ok(items)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_bytes {
            return Err(SseError::TooLong(self.max_bytes));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// One whole line: a blank line dispatches, a comment is returned, a field is kept.
    fn take_line(&mut self, line: &str) -> Result<Option<SseItem>, SseError> {
        if line.is_empty() {
            self.event_bytes = 0;
            let event = self.event.take();
            return Ok(self.data.take().map(|data| {
                SseItem::Event(SseEvent {
                    id: self.last_id.clone(),
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data,
                })
            }));
        }
        if let Some(comment) = line.strip_prefix(':') {
            return Ok(Some(SseItem::Comment(comment.strip_prefix(' ').unwrap_or(comment).into())));
        }
        self.event_bytes += line.len();
        if self.event_bytes > self.max_bytes {
            return Err(SseError::TooLong(self.max_bytes));
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            // `retry:` and unknown fields are ignored, as the format says.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, event: &str, data: &str) -> SseItem {
        SseItem::Event(SseEvent { id: Some(id.into()), event: event.into(), data: data.into() })
    }

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let stream = b": hello\n\nid: a-1\nevent: alert.opened\ndata: {\"x\":1}\n\nid: a-2\r\ndata: l1\r\ndata: l2\r\n\r\n";
        for split in 0..stream.len() {
            let mut parser = SseParser::new(1024);
            let mut items = parser.push(&stream[..split]).unwrap();
            items.extend(parser.push(&stream[split..]).unwrap());
            assert_eq!(
                items,
                vec![
                    SseItem::Comment("hello".into()),
                    event("a-1", "alert.opened", "{\"x\":1}"),
                    event("a-2", "message", "l1\nl2"),
                ],
                "split at {split}"
            );
            assert_eq!(parser.last_id(), Some("a-2"));
        }
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing() {
        let mut parser = SseParser::new(64);
        assert_eq!(parser.push(b"event: x\n\n").unwrap(), vec![]);
        assert_eq!(
            parser.push(b"data\n\n").unwrap(),
            vec![SseItem::Event(SseEvent {
                id: None,
                event: "message".into(),
                data: String::new()
            })]
        );
    }

    #[test]
    fn overlong_lines_and_events_are_refused() {
        let mut parser = SseParser::new(16);
        assert_eq!(parser.push(&[b'a'; 17]), Err(SseError::TooLong(16)));
        let mut parser = SseParser::new(16);
        assert_eq!(parser.push(b"data: 0123456\ndata: 0123456\n"), Err(SseError::TooLong(16)));
        let mut parser = SseParser::new(16);
        assert_eq!(parser.push(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}
