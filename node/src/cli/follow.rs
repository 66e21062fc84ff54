//! `crossmatch alerts --follow [--cursor-file F]`: the node's live alert stream
//! (`GET /v1/alerts/stream`, Server-Sent Events) printed as JSON lines, until stopped.
//!
//! - Each event's JSON (`{"id","type","at_ms","data"}`) is printed on a line of its own; then
//!   its id, the cursor, is written to the cursor file atomically (a new file, synced, renamed
//!   over the old one), so a follower killed at any moment resumes after the last line it
//!   printed, or at worst prints that line again: never a gap.
//! - It reconnects with `Last-Event-ID` after a dropped connection, after 45 s of silence (the
//!   node sends a heartbeat every 15 s), and while the node is down or busy, backing off from
//!   1 s to 30 s.
//! - A `resync` (the cursor is of another incarnation of the node's store, or further behind
//!   than its log keeps) is printed as a line, then every current alert as an `alert.snapshot`
//!   line (events carry an alert's full state, so nothing is lost), printed page by page as
//!   the pages arrive with no bound on the total (`cli/pages.rs`'s walk; each page's cursor
//!   must still rise), then it goes on from the cursor the resync names.
//! - It stops with exit 3 on `401`/`403` (a token revoked), 4 on `404`, 2 on other `4xx`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use super::input::read_at_most;
use super::output::print_json_line;
use super::{Api, CliError, Exit};
use crate::http_client::sse::{SseEvent, SseItem, SseParser};
use crate::keyfile::{self, Existing};

/// The stream's path.
pub const STREAM_PATH: &str = "/v1/alerts/stream";
/// The first wait before reconnecting; it doubles up to [`RECONNECT_MAX`].
pub const RECONNECT_FIRST: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Silence after which the connection is taken for dead (three heartbeats).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Longest event (or line) taken from the stream.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Longest cursor (an event id: 16 hex digits, `-`, a decimal seq).
const MAX_CURSOR_BYTES: usize = 64;
/// Largest cursor file read: a cursor with room for white space around it.
const MAX_CURSOR_FILE_BYTES: u64 = 1024;

/// An event id `<incarnation as 16 hex digits>-<seq>`: the incarnation and the seq.
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (incarnation, seq) = id.split_once('-')?;
    if incarnation.len() != 16 || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((u64::from_str_radix(incarnation, 16).ok()?, seq.parse().ok()?))
}

/// Where the follower is: the cursor and its file.
struct Cursor {
    id: Option<String>,
    file: Option<PathBuf>,
}

impl Cursor {
    /// The cursor kept in `file`, if the file exists.
    fn open(file: Option<&Path>) -> Result<Self, CliError> {
        let id = match file {
            Some(path) => match std::fs::File::open(path)
                .and_then(|file| read_at_most(file, MAX_CURSOR_FILE_BYTES))
            {
                Ok(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).trim().to_owned())
                    .filter(|id| !id.is_empty()),
                Ok(None) => {
                    return Err(CliError::new(
                        Exit::Usage,
                        "the cursor file does not hold a cursor (it is too large)",
                    ));
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    return Err(CliError::new(
                        Exit::Usage,
                        format!("reading the cursor file: {error}"),
                    ));
                }
            },
            None => None,
        };
        if let Some(id) = &id
            && (id.len() > MAX_CURSOR_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(CliError::new(Exit::Usage, "the cursor file does not hold a cursor"));
        }
        Ok(Self { id, file: file.map(Path::to_owned) })
    }

    /// Whether `id` is at or before the cursor in the same incarnation: already printed.
    fn seen(&self, id: &str) -> bool {
        match (self.id.as_deref().and_then(parse_event_id), parse_event_id(id)) {
            (Some((incarnation, at)), Some((of, seq))) => incarnation == of && seq <= at,
            _ => false,
        }
    }

    /// Moves the cursor to `id` and keeps it in the file, atomically and durably.
    fn advance(&mut self, id: &str) -> Result<(), CliError> {
        if self.id.as_deref() == Some(id) {
            return Ok(());
        }
        if id.len() > MAX_CURSOR_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CliError::new(Exit::Failure, "the stream sent a malformed event id"));
        }
        self.id = Some(id.to_owned());
        if let Some(path) = &self.file {
            write_atomically(path, id).map_err(|error| {
                CliError::new(Exit::Failure, format!("writing the cursor file: {error}"))
            })?;
        }
        Ok(())
    }
}

/// Writes `cursor` to `path` through a new file beside it, synced and renamed over it, then
/// syncs the directory: a crash leaves the old cursor or the new one.
fn write_atomically(path: &Path, cursor: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let bytes = format!("{cursor}\n");
    keyfile::replace_private_file(path, Path::new(&temporary), bytes.as_bytes(), Existing::Replace)
        .map_err(|error| error.source)
}

/// How a connection ended, when it did not end the follower.
enum Ended {
    /// It had said `hello` (or `resync`): the wait before reconnecting starts again at 1 s.
    AfterHello(String),
    /// It never got that far.
    Early(String),
}

/// Follows the stream until stopped, or until the node refuses the follower for good.
pub(super) async fn follow(api: &Api, cursor_file: Option<&Path>) -> Result<Exit, CliError> {
    let mut cursor = Cursor::open(cursor_file)?;
    let mut wait = RECONNECT_FIRST;
    loop {
        let why = match session(api, &mut cursor).await {
            Ok(Ended::AfterHello(why)) => {
                wait = RECONNECT_FIRST;
                why
            }
            Ok(Ended::Early(why)) => why,
            Err(error) if matches!(error.exit, Exit::Retryable) => error.message,
            Err(error) => return Err(error),
        };
        eprintln!("crossmatch: the alert stream: {why}; reconnecting in {} s", wait.as_secs());
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// One connection: opened after the cursor, read until it ends or falls silent.
async fn session(api: &Api, cursor: &mut Cursor) -> Result<Ended, CliError> {
    let response = api.open_stream(STREAM_PATH, cursor.id.as_deref()).await?;
    let status = response.status();
    if !status.is_success() {
        let body = tokio::time::timeout(
            SILENCE_LIMIT,
            Limited::new(response.into_body(), MAX_EVENT_BYTES).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
        let mut error = super::refusal(status, &body);
        if status.is_server_error() {
            // The node's own trouble (a store error, stopping): worth another try.
            error.exit = Exit::Retryable;
        }
        return Err(error);
    }
    let event_stream = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !event_stream {
        return Err(CliError::new(Exit::Failure, "the node's answer is not an event stream"));
    }
    let mut parser = SseParser::new(MAX_EVENT_BYTES);
    let mut body = response.into_body();
    let mut greeted = false;
    let ended = |greeted: bool, why: &str| {
        if greeted { Ended::AfterHello(why.into()) } else { Ended::Early(why.into()) }
    };
    loop {
        let frame = match tokio::time::timeout(SILENCE_LIMIT, body.frame()).await {
            Err(_) => return Ok(ended(greeted, "silent for 45 s")),
            Ok(None) => return Ok(ended(greeted, "the node closed it")),
            Ok(Some(Err(_))) => return Ok(ended(greeted, "the connection broke")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Some(data) = frame.data_ref() else { continue };
        let items = match parser.push(data) {
            Ok(items) => items,
            Err(error) => return Ok(ended(greeted, &error.to_string())),
        };
        for item in items {
            let SseItem::Event(event) = item else { continue };
            greeted |= take_event(api, cursor, &event).await?;
        }
    }
}

/// Prints one event and moves the cursor past it. True for `hello` and `resync`, which say the
/// stream is under way.
async fn take_event(api: &Api, cursor: &mut Cursor, event: &SseEvent) -> Result<bool, CliError> {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    match event.event.as_str() {
        "hello" => {
            // The cursor the stream resumes from: ours when valid, else the head.
            if let Some(id) = event.id.as_deref().or(data["cursor"].as_str()) {
                cursor.advance(id)?;
            }
            Ok(true)
        }
        "resync" => {
            let Some(resume) = data["cursor"].as_str().or(event.id.as_deref()) else {
                return Err(CliError::new(Exit::Failure, "a resync without a cursor"));
            };
            let resume = resume.to_owned();
            print_json_line(&json!({ "type": "resync", "data": data }));
            super::alerts::each_alert(api, |alerts| {
                for alert in alerts {
                    print_json_line(
                        &json!({ "type": "alert.snapshot", "data": { "alert": alert } }),
                    );
                }
            })
            .await?;
            cursor.advance(&resume)?;
            Ok(true)
        }
        _ => {
            let Some(id) = event.id.as_deref() else {
                return Err(CliError::new(Exit::Failure, "an event without an id"));
            };
            if cursor.seen(id) {
                return Ok(false);
            }
            if data.is_null() {
                eprintln!("crossmatch: an event that is not JSON was skipped");
            } else {
                print_json_line(&data);
            }
            cursor.advance(id)?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_an_incarnation_and_a_seq() {
        assert_eq!(parse_event_id("9f2c01ab77e0d3c4-1042"), Some((0x9f2c_01ab_77e0_d3c4, 1042)));
        for bad in ["", "9f2c01ab77e0d3c4", "9f2c-1", "9f2c01ab77e0d3cx-1", "9f2c01ab77e0d3c4-x"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_cursor_file_is_replaced_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("crossmatch-cursor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cursor");
        let mut cursor = Cursor::open(Some(&file)).unwrap();
        assert_eq!(cursor.id, None);
        cursor.advance("00000000000000aa-7").unwrap();
        assert!(cursor.seen("00000000000000aa-7") && cursor.seen("00000000000000aa-3"));
        assert!(!cursor.seen("00000000000000aa-8") && !cursor.seen("00000000000000bb-1"));
        let reopened = Cursor::open(Some(&file)).unwrap();
        assert_eq!(reopened.id.as_deref(), Some("00000000000000aa-7"));
        assert!(!dir.join("cursor.new").exists());
        std::fs::write(&file, "not a\ncursor with spaces").unwrap();
        assert!(Cursor::open(Some(&file)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
