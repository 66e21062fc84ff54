//! A test client of the alert stream (`GET /v1/alerts/stream`) over [`crate::http_client`]:
//! it reads the body as it arrives through [`SseParser`], keeps every byte it received (for
//! scans), and bounds every wait.

use std::collections::VecDeque;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::body::Bytes;

use crate::http_client::sse::{SseEvent, SseItem, SseParser};
use crate::http_client::{Client, TlsFiles};

/// Longest a stream's line or event may be.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// An open stream (or the refusal of one).
pub struct EventStream {
    /// The answer's status.
    pub status: u16,
    /// The answer's headers.
    pub headers: hyper::HeaderMap,
    body: Option<hyper::body::Incoming>,
    parser: SseParser,
    pending: VecDeque<SseItem>,
    /// Every byte of the body received so far.
    pub bytes: Vec<u8>,
}

/// What waiting for the next item gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// An item.
    Item(SseItem),
    /// The server ended the stream.
    Ended,
    /// Nothing came within the wait.
    Silent,
}

/// Opens the stream of the API on `127.0.0.1:port` with `bearer`, resuming from
/// `last_event_id` if given; `query` is appended to the path (`""` or `?after=…`).
pub async fn open_stream(
    port: u16,
    bearer: &str,
    last_event_id: Option<&str>,
    query: &str,
) -> EventStream {
    let (client, request) = stream_request(port, bearer, last_event_id, query);
    let response = client
        .send(request, Duration::from_secs(30))
        .await
        .unwrap_or_else(|error| panic!("stream request: {error}"));
    EventStream::of(response)
}

/// Opens the stream as [`open_stream`] does, over a socket whose receive buffer is
/// `receive_buffer` bytes, fixed (not grown as the kernel would): a reader that does not read
/// holds the server's writes back once the buffers between them are full.
pub async fn open_stream_slowly(
    port: u16,
    bearer: &str,
    last_event_id: Option<&str>,
    receive_buffer: u32,
) -> EventStream {
    let (_, request) = stream_request(port, bearer, last_event_id, "");
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|error| panic!("{error}"));
    // Set before connecting, so the window offered is small from the start.
    socket.set_recv_buffer_size(receive_buffer).unwrap_or_else(|error| panic!("{error}"));
    let exchange = async {
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(std::io::Error::other)
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to the stream request in time"))
        .unwrap_or_else(|error| panic!("stream request: {error}"));
    EventStream::of(response)
}

/// A client of the API on `127.0.0.1:port` and its stream request.
fn stream_request(
    port: u16,
    bearer: &str,
    last_event_id: Option<&str>,
    query: &str,
) -> (Client, hyper::Request<Full<Bytes>>) {
    let client = Client::new(&format!("http://127.0.0.1:{port}"), &TlsFiles::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let mut request = client
        .request(Method::GET, &format!("/v1/alerts/stream{query}"))
        .header("authorization", format!("Bearer {bearer}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap_or_else(|error| panic!("{error}"));
    (client, request)
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("status", &self.status)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    fn of(response: hyper::Response<hyper::body::Incoming>) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: Some(response.into_body()),
            parser: SseParser::new(MAX_EVENT_BYTES),
            pending: VecDeque::new(),
            bytes: Vec::new(),
        }
    }

    /// The next item, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Next::Item(item);
            }
            let Some(body) = self.body.as_mut() else { return Next::Ended };
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Next::Silent,
                Ok(None | Some(Err(_))) => {
                    self.body = None;
                    return Next::Ended;
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.bytes.extend_from_slice(&data);
                        let items =
                            self.parser.push(&data).unwrap_or_else(|error| panic!("{error}"));
                        self.pending.extend(items);
                    }
                }
            }
        }
    }

    /// The next event (heartbeats skipped), waiting at most `within` in all; panics if the
    /// stream ends or stays silent.
    pub async fn event(&mut self, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Item(SseItem::Event(event)) => return event,
                Next::Item(SseItem::Comment(_)) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// The data of `event` as JSON.
    pub fn json(event: &SseEvent) -> serde_json::Value {
        serde_json::from_str(&event.data).unwrap_or_else(|error| panic!("{error}: {event:?}"))
    }

    /// Waits for the stream to end; false if it is still open after `within`.
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Ended => return true,
                Next::Silent => return false,
                Next::Item(_) => continue,
            }
        }
    }
}
