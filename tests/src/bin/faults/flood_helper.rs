//! The `floods` scenario's loads, run by this same binary inside a namespace (`ip netns exec
//! NS crossmatch-faults flood-helper …`: the campaign itself stays in the host's namespace,
//! and a member's API listens on the loopback of its own). Two loads, each printing one JSON
//! object on stdout for the scenario to judge:
//!
//! - `api`: concurrent analysts, each on connections of its own (plain HTTP/1.1 over
//!   `TcpStream`, `Connection: close`), adding shared account records one after another with
//!   the token in `CROSSMATCH_TOKEN`. A `503 busy` was not carried out, so that add is sent
//!   again after a short pause; any other answer is final (the API answers no `429`:
//!   each of its limits answers `503 busy`, docs/API.md).
//! - `tcp`: many connections opened at once to a member's mesh port from each of several local
//!   addresses, half of them sending garbage, half idle, each held until the member closes it
//!   or the hold ends; when each opened and closed.
//!
//! It runs only inside one of the campaign's namespaces (`ip netns identify` names an `xmf-`
//! one), and floods only the lab's addresses (10.233.0.0/24) or loopback: it is no tool to
//! flood anything else.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::Rng;

/// The helper's name on the command line, in place of a scenario.
pub const HELPER: &str = "flood-helper";

/// The API every member's namespace has on its loopback.
const API_ADDRESS: &str = "127.0.0.1:7480";
/// How long one HTTP exchange may take: the API's 30 s request timeout, and room to wait for
/// a connection slot. Past it the add is reported as hung.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(45);
/// How long one add is sent again while the node answers `busy`.
const BUSY_LIMIT: Duration = Duration::from_secs(60);
/// The most bytes of an answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long one mesh connection may take to open.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// The helper's options (hidden: the scenario passes them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FloodArgs {
    /// The load: `api` or `tcp`.
    #[arg(long, hide = true)]
    pub flood_mode: Option<String>,
    /// `api`: analysts adding at once.
    #[arg(long, hide = true, default_value_t = 0)]
    pub flood_clients: usize,
    /// `api`: adds each analyst makes, one after another.
    #[arg(long, hide = true, default_value_t = 0)]
    pub flood_adds: usize,
    /// `api`: what every handle starts with.
    #[arg(long, hide = true, default_value = "f")]
    pub flood_prefix: String,
    /// `tcp`: the member's mesh address (`IP:PORT`).
    #[arg(long, hide = true)]
    pub flood_target: Option<SocketAddr>,
    /// `tcp`: the local addresses the connections come from, comma-separated.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub flood_from: Vec<IpAddr>,
    /// `tcp`: connections opened from each address.
    #[arg(long, hide = true, default_value_t = 0)]
    pub flood_connections: usize,
    /// `tcp`: how long every connection is held, in seconds.
    #[arg(long, hide = true, default_value_t = 0)]
    pub flood_hold_secs: u64,
}

/// The handle of analyst `client`'s `n`th add: at most 15 characters, as x handles are.
pub fn handle(prefix: &str, client: usize, n: usize) -> String {
    format!("{prefix}_{client}_{n}")
}

/// Runs the load `args` names and prints its outcome; 0, or 2 when it could not run or was
/// asked to run outside the lab.
pub fn main(args: &FloodArgs, seed: u64) -> ExitCode {
    if let Err(why) = inside_the_lab(args) {
        eprintln!("flood-helper: {why}");
        return ExitCode::from(2);
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let Ok(runtime) = runtime else {
        eprintln!("flood-helper: no runtime");
        return ExitCode::from(2);
    };
    let outcome = match args.flood_mode.as_deref() {
        Some("api") => runtime.block_on(api_load(args, seed)),
        Some("tcp") => runtime.block_on(tcp_flood(args, seed)),
        other => Err(format!("no load {other:?}")),
    };
    match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("flood-helper: {why}");
            ExitCode::from(2)
        }
    }
}

/// Refuses to run outside one of the campaign's namespaces, or against an address that is not
/// the lab's or loopback.
fn inside_the_lab(args: &FloodArgs) -> Result<(), String> {
    let output = crate::lab::bounded("ip")
        .args(["netns", "identify"])
        .output()
        .map_err(|error| format!("ip netns identify: {error}"))?;
    let namespace = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !namespace.starts_with(crate::lab::PREFIX) {
        return Err(format!("runs only in one of the campaign's namespaces, not {namespace:?}"));
    }
    match args.flood_target {
        Some(target) if !in_the_lab(target.ip()) => {
            Err(format!("floods only the lab's addresses or loopback, not {}", target.ip()))
        }
        _ => Ok(()),
    }
}

/// Whether `ip` is loopback or in the lab's 10.233.0.0/24.
fn in_the_lab(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[..3] == [10, 233, 0],
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// How one add ended.
#[derive(Debug)]
enum Ended {
    /// `201` with the record's id.
    Added(u64),
    /// A final answer other than `201` (a `503 timeout` included: it may have been carried
    /// out, so it is not sent again), or none: what came instead.
    Other(String),
}

/// What one analyst saw: its adds acknowledged and not, the `busy` answers in all and the
/// most before one add was answered, and its slowest add.
#[derive(Debug, Default)]
struct Analyst {
    added: Vec<(String, u64)>,
    other: Vec<(String, String)>,
    busy: u64,
    most_busy: u64,
    slowest: Duration,
}

/// The `api` load: `--flood-clients` analysts at once, each making `--flood-adds` adds one
/// after another; every add acknowledged (handle and id) or not (handle and what came), the
/// `busy` answers, the slowest add and how long it all took.
async fn api_load(args: &FloodArgs, seed: u64) -> Result<Value, String> {
    let token = std::env::var("CROSSMATCH_TOKEN").map_err(|_| "no CROSSMATCH_TOKEN".to_owned())?;
    let start = Instant::now();
    let mut analysts = tokio::task::JoinSet::new();
    for client in 0..args.flood_clients {
        let (token, prefix, adds) = (token.clone(), args.flood_prefix.clone(), args.flood_adds);
        let mut rng = Rng(seed ^ (client as u64).wrapping_mul(0x9e37_79b9));
        analysts.spawn(async move {
            let mut analyst = Analyst::default();
            for n in 0..adds {
                let handle = handle(&prefix, client, n);
                let began = Instant::now();
                let (ended, busy) = add_until_answered(&token, &handle, &mut rng).await;
                analyst.slowest = analyst.slowest.max(began.elapsed());
                analyst.busy += busy;
                analyst.most_busy = analyst.most_busy.max(busy);
                match ended {
                    Ended::Added(id) => analyst.added.push((handle, id)),
                    Ended::Other(what) => analyst.other.push((handle, what)),
                }
            }
            analyst
        });
    }
    let mut added = Vec::new();
    let mut other = Vec::new();
    let (mut busy, mut most_busy, mut slowest) = (0, 0, Duration::ZERO);
    while let Some(analyst) = analysts.join_next().await {
        let analyst = analyst.map_err(|error| format!("an analyst's task: {error}"))?;
        added.extend(analyst.added.into_iter().map(|(h, id)| json!({"handle": h, "id": id})));
        other.extend(analyst.other.into_iter().map(|(h, what)| json!({"handle": h, "what": what})));
        busy += analyst.busy;
        most_busy = most_busy.max(analyst.most_busy);
        slowest = slowest.max(analyst.slowest);
    }
    Ok(json!({
        "added": added,
        "other": other,
        "busy": busy,
        "most_busy": most_busy,
        "slowest_ms": slowest.as_millis() as u64,
        "took_ms": start.elapsed().as_millis() as u64,
    }))
}

/// Sends one add until it is answered with anything but `busy`: how it ended, and the `busy`
/// answers before.
async fn add_until_answered(token: &str, handle: &str, rng: &mut Rng) -> (Ended, u64) {
    let body = json!({
        "identifiers": [{"kind": "account", "platform": "x", "value": handle}],
        "category": "terrorism/propaganda",
        "handling": "H1",
        "evaluation": "B2",
        "expires_in_days": 30,
        "share": true,
    })
    .to_string();
    let request = format!(
        "POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut busy = 0;
    let began = Instant::now();
    while began.elapsed() < BUSY_LIMIT {
        let answer = tokio::time::timeout(EXCHANGE_LIMIT, exchange(&request)).await;
        let (status, body) = match answer {
            Err(_) => return (Ended::Other(format!("no answer within {EXCHANGE_LIMIT:?}")), busy),
            // Not connected: nothing was sent, so it is sent again.
            Ok(Err(Exchange::NotConnected)) => {
                pause(rng).await;
                continue;
            }
            Ok(Err(Exchange::Broken(what))) => return (Ended::Other(what), busy),
            Ok(Ok(answer)) => answer,
        };
        let code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
        match (status, code.as_deref()) {
            (201, _) => {
                let id = serde_json::from_str::<Value>(&body).ok().and_then(|b| b["id"].as_u64());
                return match id {
                    Some(id) => (Ended::Added(id), busy),
                    None => (Ended::Other(format!("201 without an id: {body}")), busy),
                };
            }
            (503, Some("busy")) => {
                busy += 1;
                pause(rng).await;
            }
            _ => return (Ended::Other(format!("{status} {body}")), busy),
        }
    }
    (Ended::Other(format!("still busy after {BUSY_LIMIT:?} ({busy} answers)")), busy)
}

/// A short pause before sending again, drawn from the analyst's seed: 10 to 60 ms.
async fn pause(rng: &mut Rng) {
    tokio::time::sleep(Duration::from_millis(10 + rng.below(50) as u64)).await;
}

/// Why an exchange gave no answer.
#[derive(Debug)]
enum Exchange {
    /// The connection did not open: nothing was sent.
    NotConnected,
    /// The request went out (in part or whole), and no whole answer came.
    Broken(String),
}

/// One request on a connection of its own: the answer's status and body.
async fn exchange(request: &str) -> Result<(u16, String), Exchange> {
    let mut stream = TcpStream::connect(API_ADDRESS).await.map_err(|_| Exchange::NotConnected)?;
    let broken = |error: std::io::Error| Exchange::Broken(format!("connection: {error}"));
    stream.write_all(request.as_bytes()).await.map_err(broken)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(broken)?;
        if n == 0 || answer.len() + n > MAX_ANSWER_BYTES {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    parse_answer(&answer).ok_or_else(|| {
        Exchange::Broken(format!("not an answer: {:?}", String::from_utf8_lossy(&answer)))
    })
}

/// An HTTP/1.1 answer read to its end: its status and its body (de-chunked).
pub(crate) fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(answer).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .lines()
        .any(|line| line.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    Some((status, if chunked { dechunk(body)? } else { body.to_owned() }))
}

/// A chunked body's bytes.
fn dechunk(mut body: &str) -> Option<String> {
    let mut whole = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(whole);
        }
        whole.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// The `tcp` flood: `--flood-connections` connections at once from each `--flood-from`
/// address to `--flood-target`, each held `--flood-hold-secs` at most; when each opened and
/// closed, by source.
async fn tcp_flood(args: &FloodArgs, seed: u64) -> Result<Value, String> {
    let target = args.flood_target.ok_or("no --flood-target")?;
    let hold = Duration::from_secs(args.flood_hold_secs);
    let start = Instant::now();
    let mut connections = tokio::task::JoinSet::new();
    for (source, from) in args.flood_from.iter().enumerate() {
        for n in 0..args.flood_connections {
            let garbage = n % 2 == 0;
            let mut rng = Rng(seed ^ ((source * 1000 + n) as u64).wrapping_mul(0x9e37_79b9));
            let from = *from;
            connections.spawn(async move {
                let life = hold_one(from, target, garbage, &mut rng, start, hold).await;
                (from, garbage, life)
            });
        }
    }
    let mut lives = Vec::new();
    while let Some(connection) = connections.join_next().await {
        let (from, garbage, life) = connection.map_err(|e| format!("a connection's task: {e}"))?;
        lives.push(json!({
            "from": from.to_string(),
            "garbage": garbage,
            "opened_ms": life.opened_ms,
            "closed_ms": life.closed_ms,
            "error": life.error,
        }));
    }
    Ok(json!({"connections": lives, "took_ms": start.elapsed().as_millis() as u64}))
}

/// One flood connection's life, in ms since the flood began.
#[derive(Debug, Default)]
struct Life {
    /// When it opened; `None` when it did not.
    opened_ms: Option<u64>,
    /// When the member closed it; `None` when it was still open at the end of the hold.
    closed_ms: Option<u64>,
    /// Why it did not open.
    error: Option<String>,
}

/// One connection from `from` to `target`: sends garbage (or nothing), then reads until the
/// member closes it or `hold` since `start` ends.
async fn hold_one(
    from: IpAddr,
    target: SocketAddr,
    garbage: bool,
    rng: &mut Rng,
    start: Instant,
    hold: Duration,
) -> Life {
    let since = |start: Instant| start.elapsed().as_millis() as u64;
    let failed = |error: String| Life { error: Some(error), ..Life::default() };
    let socket = match TcpSocket::new_v4() {
        Ok(socket) => socket,
        Err(error) => return failed(error.to_string()),
    };
    if let Err(error) = socket.bind(SocketAddr::new(from, 0)) {
        return failed(format!("bind {from}: {error}"));
    }
    let mut stream = match tokio::time::timeout(CONNECT_LIMIT, socket.connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return failed(error.to_string()),
        Err(_) => return failed("connect timed out".into()),
    };
    let opened_ms = Some(since(start));
    if garbage {
        let bytes: Vec<u8> = (0..64 + rng.below(448)).map(|_| rng.next_u64() as u8).collect();
        // The member may have closed it already: that is an end like any other.
        let _ = stream.write_all(&bytes).await;
    }
    let mut sink = [0u8; 1024];
    let deadline = start + hold;
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut sink)).await;
        match read {
            Err(_) => return Life { opened_ms, ..Life::default() },
            Ok(Ok(0) | Err(_)) => {
                return Life { opened_ms, closed_ms: Some(since(start)), error: None };
            }
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_whole_or_chunked_and_handles_fit_an_x_handle() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"id\":7}";
        assert_eq!(parse_answer(plain), Some((201, "{\"id\":7}".to_owned())));
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked), Some((503, "{\"a\":1}".to_owned())));
        assert_eq!(parse_answer(b"HTTP/1.1 200"), None, "no end of the head");
        let longest = handle("fabc", 199, 9);
        assert!(longest.len() <= 15, "{longest}");
    }

    #[test]
    fn only_the_labs_addresses_and_loopback_are_flooded() {
        assert!(in_the_lab("10.233.0.1".parse().unwrap()));
        assert!(in_the_lab("127.0.0.1".parse().unwrap()));
        assert!(in_the_lab("::1".parse().unwrap()));
        assert!(!in_the_lab("10.233.1.1".parse().unwrap()));
        assert!(!in_the_lab("192.0.2.7".parse().unwrap()));
    }
}
