//! The API's TCP listener: it holds one of a fixed number of slots per open connection, so
//! connections are capped, and closes a connection that stays silent for the idle timeout, so
//! stalled clients cannot keep the slots. (A client that trickles bytes is not silent: the
//! head timeout, applied by the HTTP server in `api.rs`, closes it. A client that keeps
//! sending whole requests is closed by `api.rs` too: no keep-alive while the slots are
//! crowded, and none past a connection's lifetime.)

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A TCP listener that holds one of a fixed number of slots per open connection.
pub(super) struct Limited {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
    idle_timeout: Duration,
}

/// How many of the listener's slots are taken, as connections see it.
#[derive(Debug, Clone)]
pub(super) struct Occupancy {
    slots: Arc<Semaphore>,
    max_connections: usize,
}

impl Occupancy {
    /// Whether more than three quarters of the slots are taken: then connections are closed
    /// after the response they are in, so that connections waiting for a slot get one.
    pub(super) fn crowded(&self) -> bool {
        let taken = self.max_connections.saturating_sub(self.slots.available_permits());
        taken.saturating_mul(4) > self.max_connections.saturating_mul(3)
    }
}

impl Limited {
    /// `listener`, with at most `max_connections` open at once, each closed after
    /// `idle_timeout` of silence.
    pub(super) fn new(
        listener: TcpListener,
        max_connections: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            idle_timeout,
        }
    }

    /// How many slots are taken, now and later.
    pub(super) fn occupancy(&self) -> Occupancy {
        Occupancy { slots: self.slots.clone(), max_connections: self.max_connections }
    }
}

/// A connection and its slot, given back when the connection is dropped. Reading fails with
/// `TimedOut` once nothing has been read or written for the idle timeout.
pub(super) struct Slotted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl Limited {
    /// The next connection, once a slot is free.
    pub(super) async fn accept(&mut self) -> Slotted {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                // The semaphore is never closed; if it were, accept nothing more.
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, _address)) => {
                    let idle = Box::pin(tokio::time::sleep(self.idle_timeout));
                    return Slotted { stream, _slot: slot, idle_timeout: self.idle_timeout, idle };
                }
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::debug!(%error, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl AsyncRead for Slotted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        // Bytes going out (an alert stream's events and heartbeats) keep the connection alive
        // as bytes coming in do: a stream is not a stalled client.
        if let Poll::Ready(Ok(count)) = written
            && count > 0
        {
            let deadline = tokio::time::Instant::now() + this.idle_timeout;
            this.idle.as_mut().reset(deadline);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
