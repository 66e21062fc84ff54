//! The campaign's own reads of a member's API, for the waits that poll every member's status
//! many times a second. The command line costs three processes per read (`ip netns exec`,
//! `timeout`, `crossmatch`), about 10 ms of CPU: in a profile of a 28-member europe run they
//! held about a sixth of the machine's samples, taken from the nodes being measured. A probe
//! instead opens its socket inside the member's namespace, from a thread that enters it
//! (`setns`) and ends after the connect, so the campaign's other threads stay in the host's
//! namespace; the request itself is one plain HTTP/1.1 `GET` with `Connection: close`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::federation::API;
use crate::flood_helper::parse_answer;

/// The longest a connect may take, on the namespace's own loopback.
const CONNECT_LIMIT: Duration = Duration::from_secs(2);
/// The longest the request and its whole answer may take, after the connect.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(30);
/// The most an answer may hold (a status is a few kilobytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// `GET path` at the API in network namespace `namespace` with the bearer `token`: the body
/// of a `200` answer, or what went wrong.
pub fn get(namespace: &str, token: &str, path: &str) -> Result<String, String> {
    let mut stream = connect_in(namespace)?;
    let deadline = Instant::now() + EXCHANGE_LIMIT;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|error| format!("sending: {error}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Each read waits only for what is left of the exchange's time.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no whole answer within {EXCHANGE_LIMIT:?}"));
        }
        stream.set_read_timeout(Some(left)).map_err(|error| format!("timeouts: {error}"))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) if answer.len() + read > MAX_ANSWER_BYTES => {
                return Err(format!("an answer over {MAX_ANSWER_BYTES} bytes"));
            }
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("reading: {error}")),
        }
    }
    match parse_answer(&answer) {
        Some((200, body)) => Ok(body),
        Some((status, body)) => Err(format!("{status} {body}")),
        None => Err(format!("not an answer: {:?}", String::from_utf8_lossy(&answer))),
    }
}

/// A connection to the API inside `namespace`, made from a thread that enters the namespace
/// and ends with the connect (a socket stays in the namespace it was made in).
fn connect_in(namespace: &str) -> Result<TcpStream, String> {
    let file = File::open(format!("/var/run/netns/{namespace}"))
        .map_err(|error| format!("namespace {namespace}: {error}"))?;
    let address: SocketAddr = API
        .trim_start_matches("http://")
        .parse()
        .map_err(|error| format!("the API's address: {error}"))?;
    let stream = std::thread::Builder::new()
        .name("probe-connect".into())
        .spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|error| format!("setns: {error}"))?;
            TcpStream::connect_timeout(&address, CONNECT_LIMIT)
                .map_err(|error| format!("connect: {error}"))
        })
        .map_err(|error| format!("a connecting thread: {error}"))?
        .join()
        .map_err(|_| "the connecting thread panicked".to_owned())??;
    stream.set_write_timeout(Some(EXCHANGE_LIMIT)).map_err(|error| format!("timeouts: {error}"))?;
    Ok(stream)
}
