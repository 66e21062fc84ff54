//! The demo's live alert: a member's analyst follows its node's `GET /v1/alerts/stream`
//! (Server-Sent Events, over [`crate::http_client`] and [`SseParser`], as `crossmatch alerts
//! --follow` does), another member shares an account it watches, and the demo tells how long
//! after that add the alert event arrived on the stream.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, StatusCode, header};
use serde_json::Value;
use tokio::time::Instant;

use crate::http_client::sse::{SseEvent, SseItem, SseParser};
use crate::http_client::{Client, ClientError, TlsFiles};

/// The stream's path.
pub const STREAM_PATH: &str = "/v1/alerts/stream";
/// Longest event (or line) taken from the stream.
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// How long connecting and the stream's `hello` may take.
const OPEN_LIMIT: Duration = Duration::from_secs(10);

/// Why the stream could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// No connection, or no answer.
    #[error("the alert stream: {0}")]
    Client(#[from] ClientError),
    /// The node refused the stream.
    #[error("the alert stream was refused: {0}")]
    Refused(StatusCode),
    /// The stream broke a rule, or its connection broke.
    #[error("the alert stream broke: {0}")]
    Broken(String),
    /// The node closed the stream.
    #[error("the alert stream ended")]
    Ended,
    /// No awaited event came in time.
    #[error("no awaited event on the alert stream in time")]
    TimedOut,
}

/// An alert event that arrived on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The event's type (`alert.opened`, …).
    pub kind: String,
    /// The event's id (`<incarnation>-<seq>`).
    pub event_id: String,
    /// The alert's id.
    pub alert_id: u64,
}

/// A member's alert stream, open and past its `hello`.
pub struct AlertStream {
    body: Incoming,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
}

impl AlertStream {
    /// Opens the stream of the API at `address` (plain HTTP: loopback only) with a bearer
    /// token, from its head, and waits for its `hello`.
    pub async fn open(address: SocketAddr, token: &str) -> Result<Self, StreamError> {
        let client = Client::new(&format!("http://{address}"), &TlsFiles::default())?;
        let request = client
            .request(Method::GET, STREAM_PATH)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::new()))
            .map_err(|error| StreamError::Broken(error.to_string()))?;
        let response = client.send(request, OPEN_LIMIT).await?;
        if response.status() != StatusCode::OK {
            return Err(StreamError::Refused(response.status()));
        }
        let mut stream = Self {
            body: response.into_body(),
            parser: SseParser::new(MAX_EVENT_BYTES),
            pending: VecDeque::new(),
        };
        let hello = stream.next_event(OPEN_LIMIT).await?;
        if hello.event != "hello" {
            return Err(StreamError::Broken(format!("it began with {:?}", hello.event)));
        }
        Ok(stream)
    }

    /// The next event (heartbeats and other comments are skipped), within `limit`.
    async fn next_event(&mut self, limit: Duration) -> Result<SseEvent, StreamError> {
        let read = async {
            loop {
                if let Some(event) = self.pending.pop_front() {
                    return Ok(event);
                }
                let frame = match self.body.frame().await {
                    None => return Err(StreamError::Ended),
                    Some(Err(error)) => return Err(StreamError::Broken(error.to_string())),
                    Some(Ok(frame)) => frame,
                };
                let Some(data) = frame.data_ref() else { continue };
                let items = self
                    .parser
                    .push(data)
                    .map_err(|error| StreamError::Broken(error.to_string()))?;
                self.pending.extend(items.into_iter().filter_map(|item| match item {
                    SseItem::Event(event) => Some(event),
                    SseItem::Comment(_) => None,
                }));
            }
        };
        tokio::time::timeout(limit, read).await.map_err(|_| StreamError::TimedOut)?
    }

    /// Waits at most `limit` for the first alert event naming the local record `record`;
    /// events on other alerts are passed over.
    pub async fn alert_on(&mut self, record: u64, limit: Duration) -> Result<Arrival, StreamError> {
        let deadline = Instant::now() + limit;
        loop {
            let event = self.next_event(deadline.saturating_duration_since(Instant::now())).await?;
            if !event.event.starts_with("alert.") {
                continue;
            }
            let Ok(data) = serde_json::from_str::<Value>(&event.data) else { continue };
            let alert = &data["data"]["alert"];
            let names_record = alert["records"]
                .as_array()
                .is_some_and(|records| records.iter().any(|id| id.as_u64() == Some(record)));
            if names_record {
                return Ok(Arrival {
                    kind: event.event,
                    event_id: event.id.unwrap_or_default(),
                    alert_id: alert["id"].as_u64().unwrap_or_default(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Serves one connection: reads the request's head, writes `head`, then each chunk of
    /// `chunks` in its own write; keeps the connection open until the test ends. Returns the
    /// address and the request's head as read.
    async fn serve_once(
        head: &'static str,
        chunks: Vec<&'static str>,
    ) -> (SocketAddr, tokio::sync::oneshot::Receiver<String>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sent, request) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut read = Vec::new();
            let mut buffer = [0u8; 1024];
            while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buffer).await.unwrap();
                assert!(n > 0, "the request ended early");
                read.extend_from_slice(&buffer[..n]);
            }
            let _ = sent.send(String::from_utf8_lossy(&read).into_owned());
            socket.write_all(head.as_bytes()).await.unwrap();
            for chunk in chunks {
                socket.write_all(chunk.as_bytes()).await.unwrap();
                socket.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(LIMIT).await;
        });
        (address, request)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      transfer-encoding: chunked\r\n\r\n";

    /// One chunk of a chunked body.
    fn chunk(text: &str) -> &'static str {
        Box::leak(format!("{:x}\r\n{text}\r\n", text.len()).into_boxed_str())
    }

    #[tokio::test]
    async fn the_first_event_on_the_record_is_taken_past_others_and_heartbeats() {
        let hello = chunk("id: 00000000000000aa-3\nevent: hello\ndata: {\"cursor\":\"x\"}\n\n");
        let other = chunk(
            "id: 00000000000000aa-4\nevent: alert.opened\n\
             data: {\"type\":\"alert.opened\",\"data\":{\"alert\":{\"id\":1,\"records\":[8]}}}\n\n",
        );
        let heartbeat = chunk(": heartbeat\n\n");
        // The awaited event, split across two chunks in the middle of its data line.
        let first_half = chunk("id: 00000000000000aa-5\nevent: alert.opened\ndata: {\"data\":");
        let second_half = chunk("{\"alert\":{\"id\":2,\"records\":[7,9]}}}\n\n");
        let (address, request) =
            serve_once(OK, vec![hello, other, heartbeat, first_half, second_half]).await;
        let arrival = tokio::time::timeout(LIMIT, async {
            let mut stream = AlertStream::open(address, "cmt_demo").await.unwrap();
            stream.alert_on(9, LIMIT).await.unwrap()
        })
        .await
        .expect("test timed out");
        assert_eq!(
            arrival,
            Arrival {
                kind: "alert.opened".into(),
                event_id: "00000000000000aa-5".into(),
                alert_id: 2
            }
        );
        let request = request.await.unwrap();
        assert!(request.starts_with("GET /v1/alerts/stream HTTP/1.1\r\n"), "{request}");
        assert!(request.to_lowercase().contains("authorization: bearer cmt_demo"), "{request}");
    }

    #[tokio::test]
    async fn a_refusal_a_missing_hello_and_silence_are_errors() {
        let refused = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        let (address, _request) = serve_once(refused, vec![]).await;
        let opened = tokio::time::timeout(LIMIT, AlertStream::open(address, "t")).await.unwrap();
        assert!(
            matches!(opened, Err(StreamError::Refused(StatusCode::SERVICE_UNAVAILABLE))),
            "{:?}",
            opened.err()
        );

        let resync = chunk("event: resync\ndata: {}\n\n");
        let (address, _request) = serve_once(OK, vec![resync]).await;
        let opened = tokio::time::timeout(LIMIT, AlertStream::open(address, "t")).await.unwrap();
        assert!(matches!(opened, Err(StreamError::Broken(_))), "{:?}", opened.err());

        let hello = chunk("id: 00000000000000aa-1\nevent: hello\ndata: {}\n\n");
        let (address, _request) = serve_once(OK, vec![hello]).await;
        let waited = tokio::time::timeout(LIMIT, async {
            let mut stream = AlertStream::open(address, "t").await.unwrap();
            stream.alert_on(1, Duration::from_millis(300)).await
        })
        .await
        .unwrap();
        assert!(matches!(waited, Err(StreamError::TimedOut)), "{waited:?}");
    }
}
