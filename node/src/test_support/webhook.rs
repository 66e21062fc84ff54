//! A webhook receiver for tests: an HTTP/1.1 server on a loopback port that records every
//! delivery (headers and body), checks its Standard Webhooks signatures against the keys it
//! was given, and answers with the status a test sets (200 by default).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::daemon::signature_header;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: u64,
    /// `webhook-signature`.
    pub signature: String,
    /// `content-type`.
    pub content_type: String,
    /// `user-agent`.
    pub user_agent: String,
    /// The path posted to.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
    /// Every `v1,` signature listed matched one of the keys, one per key.
    pub verified: bool,
    /// The status it was answered with.
    pub answered: u16,
}

impl Delivery {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("{error}"))
    }
}

#[derive(Debug)]
struct State {
    keys: Vec<Vec<u8>>,
    answer: u16,
    deliveries: Vec<Delivery>,
}

/// The receiver; it serves until dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Its loopback port.
    pub port: u16,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// A receiver checking signatures against `keys`, on a free loopback port.
    pub async fn start(keys: Vec<Vec<u8>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Self::on(listener, keys)
    }

    /// A receiver on `listener`.
    pub fn on(listener: tokio::net::TcpListener, keys: Vec<Vec<u8>>) -> Self {
        let port = listener.local_addr().map(|address| address.port()).unwrap_or_default();
        let state = Arc::new(Mutex::new(State { keys, answer: 200, deliveries: Vec::new() }));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(receive(request, &state).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { port, state, server }
    }

    /// The URL to configure: its path `/hook/` ends with a `/`, which a delivery must keep
    /// (the receiver records the path as it came).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/", self.port)
    }

    /// Answers every request from now on with `status`.
    pub fn answer(&self, status: u16) {
        if let Ok(mut state) = self.state.lock() {
            state.answer = status;
        }
    }

    /// Every request so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().map(|state| state.deliveries.clone()).unwrap_or_default()
    }

    /// The requests answered with a 2xx so far.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.deliveries().into_iter().filter(|d| (200..300).contains(&d.answered)).collect()
    }

    /// Waits until `count` requests were answered with a 2xx; panics after `within`.
    pub async fn wait_accepted(&self, count: usize, within: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= count {
                return accepted;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {count} deliveries accepted within {within:?}",
                accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `count` requests arrived, whatever the answer; panics after `within`.
    pub async fn wait_requests(&self, count: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.deliveries().len() < count {
            assert!(tokio::time::Instant::now() < deadline, "{count} requests within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(request: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_owned()
    };
    let (id, timestamp, signature) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let (content_type, user_agent) = (header("content-type"), header("user-agent"));
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let timestamp = timestamp.parse().unwrap_or(0);
    let Ok(mut state) = state.lock() else { return status(500) };
    let listed: Vec<&str> = signature.split(' ').collect();
    let verified = listed.len() == state.keys.len()
        && state.keys.iter().all(|key| {
            let expected = signature_header(std::slice::from_ref(key), &id, timestamp, &body);
            listed.contains(&expected.as_str())
        });
    let answered = state.answer;
    state.deliveries.push(Delivery {
        id,
        timestamp,
        signature,
        content_type,
        user_agent,
        path,
        body,
        verified,
        answered,
    });
    status(answered)
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
