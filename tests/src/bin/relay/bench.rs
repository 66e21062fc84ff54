//! `crossmatch-relay bench`: the relay's own overhead, in one process on loopback. Round trips
//! of small messages to an echo server, direct and through the relay at delay 0 (p50, p99),
//! and a bulk transfer to a sink, direct and through the relay (MiB/s).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Instant};

use crate::forward::serve_route;
use crate::rules::DelayTable;
use crate::state::{Relay, Route, Settings};

/// What the bench measures.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Round trips measured per path (after as many again to warm up).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    round_trips: u32,
    /// Size of each round trip's message, in bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    message_bytes: u32,
    /// Size of the bulk transfer, in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    bulk_mib: u32,
}

/// Runs the bench and prints its figures.
pub async fn run(args: BenchArgs, settings: Settings) -> std::io::Result<()> {
    let echo = serve(echo).await?;
    let sink = serve(sink).await?;
    let routes = vec![
        Route { name: "echo".into(), listen: loopback(), target: echo },
        Route { name: "sink".into(), listen: loopback(), target: sink },
    ];
    let relay = Arc::new(Relay::new(settings, routes, DelayTable::default()));
    let mut relayed = Vec::new();
    for index in 0..relay.routes.len() {
        let listener = TcpListener::bind(loopback()).await?;
        relayed.push(listener.local_addr()?);
        tokio::spawn(serve_route(relay.clone(), index, listener));
    }
    let (n, size) = (args.round_trips as usize, args.message_bytes as usize);
    println!("round trips of {size} bytes, {n} per path (after {n} to warm up):");
    for (label, address) in [("direct", echo), ("relay", relayed[0])] {
        round_trips(address, n, size).await?;
        let mut times = round_trips(address, n, size).await?;
        times.sort_unstable();
        let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));
        println!("  {label:>6}: p50 {:.1} µs, p99 {:.1} µs", micros(p50), micros(p99));
    }
    let bytes = u64::from(args.bulk_mib) << 20;
    println!("bulk transfer of {} MiB:", args.bulk_mib);
    for (label, address) in [("direct", sink), ("relay", relayed[1])] {
        let took = bulk(address, bytes).await?;
        let rate = bytes as f64 / (1 << 20) as f64 / took.as_secs_f64();
        println!("  {label:>6}: {:.2} s, {rate:.0} MiB/s", took.as_secs_f64());
    }
    Ok(())
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Serves every connection to a new loopback listener with `handle`.
async fn serve<F, Fut>(handle: F) -> std::io::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind(loopback()).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(handle(stream));
        }
    });
    Ok(address)
}

/// Writes back whatever it reads.
async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0; 65_536];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..read]).await?;
    }
}

/// Reads to the end, then answers with the count of bytes read.
async fn sink(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0; 65_536];
    let mut total: u64 = 0;
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return stream.write_all(&total.to_be_bytes()).await;
        }
        total += read as u64;
    }
}

/// Times `n` round trips of `size` bytes over one connection.
async fn round_trips(address: SocketAddr, n: usize, size: usize) -> std::io::Result<Vec<Duration>> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let message = vec![7; size];
    let mut answer = vec![0; size];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        stream.write_all(&message).await?;
        stream.read_exact(&mut answer).await?;
        times.push(start.elapsed());
    }
    Ok(times)
}

/// Times sending `bytes` until the sink confirms it read them all.
async fn bulk(address: SocketAddr, bytes: u64) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(address).await?;
    let block = vec![0x5a; 1 << 16];
    let mut sent = 0;
    while sent < bytes {
        let length = block.len().min((bytes - sent) as usize);
        stream.write_all(&block[..length]).await?;
        sent += length as u64;
    }
    stream.shutdown().await?;
    let mut count = [0; 8];
    stream.read_exact(&mut count).await?;
    let took = start.elapsed();
    if u64::from_be_bytes(count) != bytes {
        return Err(std::io::Error::other("the sink counted another number of bytes"));
    }
    Ok(took)
}
