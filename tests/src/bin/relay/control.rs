//! The control port: line commands on a local TCP or Unix socket, one answer line each,
//! `ok ...` or `err ...`. Every line is validated; a bad one gets an error line.
//!
//! - `delay SRC_IP ROUTE MS [JITTER]`: the pair pattern's one-way delay (both directions).
//! - `stall SRC_IP ROUTE SECS`: hold all traffic of matching connections for SECS (up to
//!   3600, fractions allowed), then release it in order.
//! - `cut SRC_IP ROUTE`: close matching connections now (reset) and refuse new ones.
//! - `heal SRC_IP ROUTE`: lift the cuts the pattern covers.
//! - `stats [SRC_IP ROUTE]`: bytes and chunks per pair.
//!
//! `SRC_IP` and `ROUTE` may each be `*`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::time::{Duration, Instant, timeout};

use crate::rules::{Delay, PairPattern};
use crate::state::Relay;

/// Longest command line, without its newline.
pub const MAX_LINE: usize = 512;

/// Longest stall a command may set.
const MAX_STALL_SECS: f64 = 3600.0;

/// Most control connections served at once; one more is told so and closed.
const MAX_CONTROL_CONNECTIONS: usize = 16;

/// A control connection silent this long, or not taking its answer this long, is closed.
const IDLE: Duration = Duration::from_secs(600);

/// A command, validated.
#[derive(Debug, PartialEq)]
pub enum Command {
    Delay(PairPattern, Delay),
    Stall(PairPattern, Duration),
    Cut(PairPattern),
    Heal(PairPattern),
    Stats(PairPattern),
}

/// Parses one line; `is_route` says whether a route name exists.
pub fn parse(line: &str, is_route: impl Fn(&str) -> bool) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let pattern = |source: &str, route: &str| PairPattern::parse(source, route, &is_route);
    match words.as_slice() {
        ["delay", source, route, ms, rest @ ..] if rest.len() <= 1 => {
            Ok(Command::Delay(pattern(source, route)?, Delay::parse(ms, rest.first().copied())?))
        }
        ["stall", source, route, secs] => {
            Ok(Command::Stall(pattern(source, route)?, parse_secs(secs)?))
        }
        ["cut", source, route] => Ok(Command::Cut(pattern(source, route)?)),
        ["heal", source, route] => Ok(Command::Heal(pattern(source, route)?)),
        ["stats"] => Ok(Command::Stats(PairPattern::ANY)),
        ["stats", source, route] => Ok(Command::Stats(pattern(source, route)?)),
        [] => Err("empty line".into()),
        [verb, ..] if ["delay", "stall", "cut", "heal", "stats"].contains(verb) => {
            Err(format!("usage: {}", usage(verb)))
        }
        _ => Err("unknown command; commands: delay, stall, cut, heal, stats".into()),
    }
}

fn usage(verb: &str) -> &'static str {
    match verb {
        "delay" => "delay SRC_IP ROUTE MS [JITTER]",
        "stall" => "stall SRC_IP ROUTE SECS",
        "cut" => "cut SRC_IP ROUTE",
        "heal" => "heal SRC_IP ROUTE",
        _ => "stats [SRC_IP ROUTE]",
    }
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| "a stall is a number of seconds".to_owned())?;
    if !(secs > 0.0 && secs <= MAX_STALL_SECS) {
        return Err(format!("a stall lasts more than 0 and at most {MAX_STALL_SECS} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Carries out a command; the answer line without its newline.
pub fn apply(relay: &Relay, command: Command) -> String {
    let now = Instant::now();
    let answer = match command {
        Command::Delay(pattern, delay) => relay
            .set_delay(pattern.clone(), delay)
            .map(|live| format!("ok delay {pattern} {} {} live={live}", delay.ms, delay.jitter_ms)),
        Command::Stall(pattern, length) => relay
            .stall(pattern.clone(), now + length, now)
            .map(|live| format!("ok stall {pattern} {} live={live}", length.as_secs_f64())),
        Command::Cut(pattern) => {
            relay.cut(pattern.clone()).map(|live| format!("ok cut {pattern} closed={live}"))
        }
        Command::Heal(pattern) => Ok(format!("ok heal {pattern} lifted={}", relay.heal(&pattern))),
        Command::Stats(pattern) => Ok(format!("ok {}", relay.stats(&pattern))),
    };
    answer.unwrap_or_else(|error| format!("err {error}"))
}

/// Where the control port listens.
#[derive(Debug, Clone)]
pub enum ControlAddress {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for ControlAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Ok(Self::Unix(path.into())),
            Some(_) => Err("unix: needs a path".into()),
            None => {
                text.parse().map(Self::Tcp).map_err(|_| "expected HOST:PORT or unix:PATH".into())
            }
        }
    }
}

/// A bound control listener.
#[derive(Debug)]
pub enum ControlListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl ControlListener {
    /// Binds the address; a TCP one must be a loopback address.
    pub async fn bind(address: &ControlAddress) -> std::io::Result<Self> {
        match address {
            ControlAddress::Tcp(socket) if !socket.ip().is_loopback() => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the control port listens on loopback only",
            )),
            ControlAddress::Tcp(socket) => TcpListener::bind(socket).await.map(Self::Tcp),
            ControlAddress::Unix(path) => UnixListener::bind(path).map(Self::Unix),
        }
    }

    /// The bound address, as the ready lines print it.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(listener) => listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Self::Unix(listener) => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_default(),
        }
    }
}

/// Serves control connections for as long as the relay runs.
pub async fn serve(relay: Arc<Relay>, listener: ControlListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONTROL_CONNECTIONS));
    loop {
        let accepted = match &listener {
            ControlListener::Tcp(l) => {
                l.accept().await.map(|(s, _)| spawn_session(&relay, &slots, s))
            }
            ControlListener::Unix(l) => {
                l.accept().await.map(|(s, _)| spawn_session(&relay, &slots, s))
            }
        };
        if accepted.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn_session<S>(relay: &Arc<Relay>, slots: &Arc<Semaphore>, mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let relay = relay.clone();
    let slot = slots.clone().try_acquire_owned();
    tokio::spawn(async move {
        match slot {
            Ok(_slot) => session(&relay, stream).await,
            Err(_) => {
                let _ = stream.write_all(b"err too many control connections\n").await;
            }
        }
    });
}

/// Answers the lines of one control connection until it closes, idles or sends a line too long.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(relay: &Relay, stream: S) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let mut line = Vec::with_capacity(MAX_LINE + 1);
    loop {
        line.clear();
        let limit = (MAX_LINE + 2) as u64;
        let read = timeout(IDLE, (&mut reader).take(limit).read_until(b'\n', &mut line)).await;
        let Ok(Ok(length)) = read else { return };
        if length == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let answer = if !complete && length as u64 >= limit || text.len() > MAX_LINE {
            format!("err a line is at most {MAX_LINE} bytes")
        } else {
            match std::str::from_utf8(text) {
                Ok(text) => match parse(text, |name| relay.is_route(name)) {
                    Ok(command) => apply(relay, command),
                    Err(error) => format!("err {error}"),
                },
                Err(_) => "err a line is UTF-8 text".into(),
            }
        };
        let written = timeout(IDLE, writer.write_all(format!("{answer}\n").as_bytes())).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
        if answer.starts_with("err a line is at most") {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_route(name: &str) -> bool {
        name == "fr"
    }

    #[test]
    fn good_lines_parse() {
        let pattern = PairPattern::parse("10.0.0.1", "fr", is_route).unwrap();
        let delay = Delay { ms: 200, jitter_ms: 5 };
        assert_eq!(
            parse("delay 10.0.0.1 fr 200 5", is_route),
            Ok(Command::Delay(pattern.clone(), delay))
        );
        assert_eq!(
            parse("  stall 10.0.0.1 fr 0.5 ", is_route),
            Ok(Command::Stall(pattern.clone(), Duration::from_millis(500)))
        );
        assert_eq!(parse("cut 10.0.0.1 fr", is_route), Ok(Command::Cut(pattern.clone())));
        assert_eq!(parse("heal * *", is_route), Ok(Command::Heal(PairPattern::ANY)));
        assert!(matches!(parse("stats", is_route), Ok(Command::Stats(_))));
    }

    #[test]
    fn bad_lines_are_errors() {
        for (line, expected) in [
            ("", "empty line"),
            ("reboot", "unknown command"),
            ("delay 10.0.0.1 fr", "usage: delay"),
            ("delay 10.0.0.1 fr 1 2 3", "usage: delay"),
            ("delay 10.0.0.1 it 1", "no route named it"),
            ("delay 10.0.0.300 fr 1", "a source is an IP address"),
            ("delay * fr 99999999999999999999", "a delay is a whole number"),
            ("stall * fr 0", "a stall lasts"),
            ("stall * fr NaN", "a stall lasts"),
            ("stall * fr inf", "a stall lasts"),
            ("stall * fr 3601", "a stall lasts"),
            ("stall * fr soon", "a stall is a number"),
            ("cut *", "usage: cut"),
            ("stats *", "usage: stats"),
        ] {
            let error = parse(line, is_route).unwrap_err();
            assert!(error.starts_with(expected), "{line:?}: {error}");
        }
    }
}
