//! A minimal blocking HTTP/1.1 client for the API tests: one request per connection, every
//! read and write under a timeout; and [`request_off_workers`], the one async wrapper that
//! async tests call it through.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Longest any one read or write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: status {} body {:?}", self.status, self.body))
    }
}

/// Sends one request to `127.0.0.1:port` (a JSON body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
) -> std::io::Result<Reply> {
    request_typed(port, method, path, bearer, "application/json", body)
}

/// Sends one request to `127.0.0.1:port` with a body of `content_type`.
pub fn request_typed(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    content_type: &str,
    body: Option<&[u8]>,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(bearer) = bearer {
        head += &format!("Authorization: Bearer {bearer}\r\n");
    }
    let body = body.unwrap_or_default();
    head += &format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {headers:?}")))?;
    let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Reply { status, headers: headers.to_owned(), body })
}

/// Longest a request made through [`request_off_workers`] may take, connection included.
const ASYNC_REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// [`request_typed`] from async code: run on a blocking thread, off the async workers (the
/// client blocks), and bounded by a timeout, so a hang fails the test. Panics on an I/O error
/// or the timeout.
pub async fn request_off_workers(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    content_type: &'static str,
    body: Option<Vec<u8>>,
) -> Reply {
    let (method, path, bearer) = (method.to_owned(), path.to_owned(), bearer.map(str::to_owned));
    let reply = tokio::task::spawn_blocking(move || {
        request_typed(port, &method, &path, bearer.as_deref(), content_type, body.as_deref())
    });
    match tokio::time::timeout(ASYNC_REQUEST_LIMIT, reply).await {
        Ok(Ok(Ok(reply))) => reply,
        Ok(Ok(Err(error))) => panic!("the request failed: {error}"),
        Ok(Err(error)) => panic!("the request's thread failed: {error}"),
        Err(_) => panic!("no answer within {ASYNC_REQUEST_LIMIT:?}"),
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out += &rest[..size];
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Sends JSON with a bearer token.
pub fn call(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<&serde_json::Value>,
) -> Reply {
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    request(port, method, path, Some(bearer), body.as_deref())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A shared (or watched) record of one x account, as the API takes it.
pub fn account_record(handle: &str, share: bool) -> serde_json::Value {
    serde_json::json!({
        "identifiers": [{ "kind": "account", "platform": "x", "value": handle }],
        "category": "terrorism/propaganda",
        "handling": "H1",
        "evaluation": "B2",
        "expires_in_days": 30,
        "share": share,
    })
}
