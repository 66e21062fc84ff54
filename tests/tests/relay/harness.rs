//! The relay under test as a child process, its control port, and small loopback helpers. Every
//! wait is bounded and names what it waited for.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The longest any single step of a test may wait.
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `future` for at most `STEP`, or fails naming what it waited for.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
    }
}

/// A running `crossmatch-relay run`, killed when dropped.
#[derive(Debug)]
pub struct Relay {
    child: Child,
    routes: HashMap<String, SocketAddr>,
    control: String,
}

impl Relay {
    /// Starts the relay with `args` after `run` and waits for its `ready` line.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crossmatch-relay"))
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the relay binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_in, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_in.send(line).is_err() {
                    return;
                }
            }
        });
        let (mut routes, mut control) = (HashMap::new(), String::new());
        loop {
            let line = lines.recv_timeout(STEP).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("the relay printed no `ready` line within {STEP:?} (args {args:?})")
            });
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["route", name, listen, _target] => {
                    routes.insert((*name).to_owned(), listen.parse().expect("a listen address"));
                }
                ["control", address] => control = (*address).to_owned(),
                ["ready"] => break,
                _ => panic!("unexpected line from the relay: {line}"),
            }
        }
        Self { child, routes, control }
    }

    /// The address the relay listens on for a route.
    pub fn route(&self, name: &str) -> SocketAddr {
        self.routes[name]
    }

    /// Sends one control line on a new connection and returns the answer line.
    pub async fn command(&self, line: &str) -> String {
        let mut answers = self.control_session().await;
        answers.send(line).await
    }

    /// Asks `stats ARGS` until the answer holds every one of `expected` (counters move just after
    /// the bytes they count), and returns that answer.
    pub async fn stats_until(&self, args: &str, expected: &[&str]) -> String {
        let mut last = String::new();
        let wait = async {
            loop {
                last = self.command(&format!("stats {args}")).await;
                if expected.iter().all(|part| last.contains(part)) {
                    return last.clone();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        match tokio::time::timeout(STEP, wait).await {
            Ok(answer) => answer,
            Err(_) => {
                panic!("timed out after {STEP:?} waiting for stats to hold {expected:?}: {last}")
            }
        }
    }

    /// A control connection for several lines.
    pub async fn control_session(&self) -> Control {
        let stream: Box<dyn Stream> = match self.control.strip_prefix("unix:") {
            Some(path) => Box::new(
                within("the control socket", tokio::net::UnixStream::connect(path)).await.unwrap(),
            ),
            None => Box::new(
                within("the control port", TcpStream::connect(&self.control)).await.unwrap(),
            ),
        };
        Control { stream: tokio::io::BufReader::new(stream) }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A byte stream the control port may be reached by.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// One control connection.
pub struct Control {
    stream: tokio::io::BufReader<Box<dyn Stream>>,
}

impl Control {
    /// Sends raw bytes (a newline is not added) and returns the answer line, or "" at the end.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> String {
        self.stream.get_mut().write_all(bytes).await.expect("the control port takes a line");
        let mut answer = String::new();
        within("a control answer", self.stream.read_line(&mut answer))
            .await
            .expect("an answer line");
        answer.trim_end().to_owned()
    }

    /// Whether the relay closed the connection (reads end) within `STEP`.
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(
            within("the control port to close", self.stream.read_line(&mut rest)).await,
            Ok(0) | Err(_)
        )
    }

    /// Sends a line and returns its answer.
    pub async fn send(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\n").as_bytes()).await
    }
}

/// A free loopback listener standing for a member.
pub async fn member() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// Connects to `to` from the loopback address `from` (Linux routes all of 127/8 to loopback).
pub async fn dial_from(from: &str, to: SocketAddr) -> TcpStream {
    try_dial_from(from, to).await.expect("a connection through the relay")
}

/// Like `dial_from`, but a connection reset before it completes is an error, not a failure.
pub async fn try_dial_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    let stream = within("a connection through the relay", socket.connect(to)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Accepts the next connection the relay forwards to a member.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = within("the relay to forward a connection", listener.accept()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A delay table in a temporary file, removed when dropped.
#[derive(Debug)]
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, text: &str) -> Self {
        let path = temp_path(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A path in the temporary directory unique to this process and call.
pub fn temp_path(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("crossmatch-relay-{}-{n}-{name}", std::process::id()));
    // A run that died under the same process id may have left it (a socket refuses to bind).
    let _ = std::fs::remove_file(&path);
    path
}
