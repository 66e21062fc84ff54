//! Forwarding: each route's listener admits connections by pair, dials the target and carries
//! both directions. A direction reads a chunk, stamps its release time (read time + delay +
//! jitter, never before the previous chunk's), queues it in a bounded queue (full: it stops
//! reading, so the sender meets TCP backpressure) and a writer writes each chunk once its
//! release time and any stall have passed, in order.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, sleep, sleep_until, timeout};

use crate::jitter::Jitter;
use crate::rules::Pair;
use crate::state::{Counters, Link, LinkGuard, Relay};

/// Pause after a failed accept (out of descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A chunk read and waiting for its release; its bytes count as queued until it is dropped.
#[derive(Debug)]
struct Chunk {
    release: Instant,
    bytes: Vec<u8>,
    counters: Arc<Counters>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.counters.queued_bytes.fetch_sub(self.bytes.len() as u64, Ordering::Relaxed);
    }
}

/// Accepts connections on one route for as long as the relay runs.
pub async fn serve_route(relay: Arc<Relay>, route: usize, listener: TcpListener) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let pair =
            Pair { source: peer.ip().to_canonical(), route: relay.routes[route].name.clone() };
        match relay.admit(pair, Instant::now()) {
            Ok(guard) => {
                let target = relay.routes[route].target;
                tokio::spawn(forward(relay.clone(), guard, inbound, target));
            }
            Err(_) => reset(&inbound),
        }
    }
}

/// Makes the socket's close a reset rather than an orderly close.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Resolves once the link is to close.
async fn closing(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|closed| *closed).await;
}

/// Connects to the target, from `local` when given.
async fn dial(target: SocketAddr, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(target).await;
    };
    let socket = if local.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(target).await
}

/// Carries one admitted connection until both directions end or the link closes.
async fn forward(relay: Arc<Relay>, guard: LinkGuard, mut inbound: TcpStream, target: SocketAddr) {
    let link = guard.link.clone();
    let mut closed = link.closed();
    let local = relay.settings.dial_from.get(&link.pair.source).copied();
    let connect = timeout(relay.settings.connect_timeout, dial(target, local));
    let mut outbound = tokio::select! {
        connected = connect => match connected {
            Ok(Ok(stream)) => stream,
            _ => return reset(&inbound),
        },
        () = closing(&mut closed) => return reset(&inbound),
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let capacity = relay.settings.queue_chunks;
    let (up_sender, up_queue) = mpsc::channel(capacity);
    let (down_sender, down_queue) = mpsc::channel(capacity);
    {
        let (from_dialer, to_dialer) = inbound.split();
        let (from_target, to_target) = outbound.split();
        let seed = relay.settings.seed;
        let chunk = relay.settings.chunk_bytes;
        let up_jitter = Jitter::for_direction(seed, &link.pair, link.number, 0);
        let down_jitter = Jitter::for_direction(seed, &link.pair, link.number, 1);
        tokio::join!(
            read_direction(from_dialer, up_sender, &link, up_jitter, chunk),
            write_direction(to_target, up_queue, &link, true),
            read_direction(from_target, down_sender, &link, down_jitter, chunk),
            write_direction(to_dialer, down_queue, &link, false),
        );
    }
    if link.is_aborted() {
        reset(&inbound);
        reset(&outbound);
    }
    drop(guard);
}

/// Reads chunks, stamps their release and queues them; ends at end of stream (the queue's
/// close then ends the writer after the last chunk), on an error (aborting the link) or when the
/// link closes.
async fn read_direction(
    mut from: ReadHalf<'_>,
    queue: mpsc::Sender<Chunk>,
    link: &Link,
    mut jitter: Jitter,
    chunk_bytes: usize,
) {
    let mut closed = link.closed();
    let mut buffer = vec![0; chunk_bytes];
    let mut previous = Instant::now();
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = closing(&mut closed) => return,
        };
        let length = match read {
            Ok(0) => return,
            Ok(length) => length,
            Err(_) => return link.abort(),
        };
        let delay = link.delay();
        let held = Duration::from_millis(delay.ms + jitter.up_to(delay.jitter_ms));
        // Never before the previous chunk: the writer's queue keeps the order anyway, and this
        // keeps each release time true to when the chunk goes out.
        let release = (Instant::now() + held).max(previous);
        previous = release;
        link.counters.queued_bytes.fetch_add(length as u64, Ordering::Relaxed);
        let chunk =
            Chunk { release, bytes: buffer[..length].to_vec(), counters: link.counters.clone() };
        tokio::select! {
            sent = queue.send(chunk) => if sent.is_err() { return },
            () = closing(&mut closed) => return,
        }
    }
}

/// Writes each queued chunk once its release time and any stall have passed; shuts the write
/// side down after the last one; aborts the link on an error.
async fn write_direction(
    mut to: WriteHalf<'_>,
    mut queue: mpsc::Receiver<Chunk>,
    link: &Link,
    up: bool,
) {
    let mut closed = link.closed();
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            () = closing(&mut closed) => return,
        };
        let Some(chunk) = next else {
            // The reader ended: an orderly end passes on as one, but an abort (which the reader
            // set before it ended) must not send an orderly end ahead of its reset.
            if !link.is_aborted() {
                let _ = to.shutdown().await;
            }
            return;
        };
        // A stall set while waiting extends the wait: check again after every wake.
        loop {
            let hold = link.stalled_until().map_or(chunk.release, |until| until.max(chunk.release));
            if Instant::now() >= hold {
                break;
            }
            tokio::select! {
                () = sleep_until(hold) => {}
                () = closing(&mut closed) => return,
            }
        }
        let written = tokio::select! {
            written = to.write_all(&chunk.bytes) => written,
            () = closing(&mut closed) => return,
        };
        if written.is_err() {
            return link.abort();
        }
        link.counters.delivered(up, chunk.bytes.len());
    }
}
