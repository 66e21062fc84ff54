//! `crossmatch-relay`: test code, not product code. A userspace TCP relay that puts WAN
//! behaviour between federation members where the kernel has no `netem`: one listen address per
//! member (a route), every accepted connection forwarded to the route's target with the one-way
//! delay (and seeded jitter) of its pair, the dialer's source IP and the route; stalls and cuts
//! on command through a control port. `crossmatch-relay bench` measures its own overhead.
//! docs/TESTING.md describes it.

mod bench;
mod control;
mod forward;
mod jitter;
mod routes;
mod rules;
mod state;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::time::Duration;

use crate::control::{ControlAddress, ControlListener};
use crate::rules::DelayTable;
use crate::state::{Relay, Settings};

/// A userspace delay, stall and cut TCP relay for federation tests.
#[derive(Debug, Parser)]
#[command(name = "crossmatch-relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Relays the routes until killed; prints `route NAME LISTEN TARGET` per route, then
    /// `control ADDRESS` and `ready` once every socket is bound.
    Run(RunArgs),
    /// Measures the relay's overhead at delay 0 against direct connections, on loopback.
    Bench {
        #[command(flatten)]
        bench: bench::BenchArgs,
        #[command(flatten)]
        forwarding: Forwarding,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A route, `[NAME=]LISTEN=TARGET` (IP:PORT each); repeatable.
    #[arg(long = "route", value_name = "SPEC")]
    routes: Vec<String>,
    /// A file of routes, one `NAME LISTEN TARGET` a line.
    #[arg(long = "routes", value_name = "FILE")]
    routes_file: Option<PathBuf>,
    /// The delay table: `SRC_IP ROUTE MS [JITTER]` or `default MS [JITTER]` a line.
    #[arg(long, value_name = "FILE")]
    delays: Option<PathBuf>,
    /// Dial the target from LOCAL_IP for connections from SRC_IP (`SRC_IP=LOCAL_IP`, repeatable):
    /// members then see each peer from an address of its own, not all from the relay's.
    #[arg(long = "dial-from", value_name = "SRC_IP=LOCAL_IP")]
    dial_from: Vec<String>,
    /// The control port: a loopback `IP:PORT` or `unix:PATH`.
    #[arg(long, value_name = "ADDRESS")]
    control: Option<ControlAddress>,
    #[command(flatten)]
    forwarding: Forwarding,
}

#[derive(Debug, clap::Args)]
struct Forwarding {
    /// Seed of the jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest chunk read at once, in bytes.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    chunk_bytes: u32,
    /// Chunks a direction holds before it stops reading (its throughput is at most
    /// chunk-bytes × queue-chunks per delay).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    queue_chunks: u32,
    /// Most connections forwarded at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections: u32,
    /// Longest wait for a target to accept, in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    connect_timeout_ms: u64,
}

impl Forwarding {
    fn settings(&self, dial_from: HashMap<IpAddr, IpAddr>) -> Settings {
        Settings {
            dial_from,
            seed: self.seed,
            chunk_bytes: self.chunk_bytes as usize,
            queue_chunks: self.queue_chunks as usize,
            max_connections: self.max_connections as usize,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Bench { bench, forwarding } => {
            bench::run(bench, forwarding.settings(HashMap::new()))
                .await
                .map_err(|error| error.to_string())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crossmatch-relay: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Reads a bounded text file (a routes or delay table).
fn read_small(path: &PathBuf) -> Result<String, String> {
    const MAX_FILE: u64 = 4 << 20;
    let length = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    if length > MAX_FILE {
        return Err(format!("{}: larger than {MAX_FILE} bytes", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

async fn run(args: RunArgs) -> Result<(), String> {
    let mut routes = match &args.routes_file {
        Some(path) => routes::parse_file(&read_small(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => Vec::new(),
    };
    for spec in &args.routes {
        routes.push(routes::parse_spec(spec)?);
    }
    routes::check(&routes)?;
    let is_route = |name: &str| routes.iter().any(|route| route.name == name);
    let delays = match &args.delays {
        Some(path) => DelayTable::parse(&read_small(path)?, is_route)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => DelayTable::default(),
    };
    let mut listeners = Vec::with_capacity(routes.len());
    for route in &mut routes {
        let listener = TcpListener::bind(route.listen)
            .await
            .map_err(|e| format!("route {}: {e}", route.name))?;
        route.listen = listener.local_addr().map_err(|e| e.to_string())?;
        listeners.push(listener);
    }
    let control = match &args.control {
        Some(address) => {
            Some(ControlListener::bind(address).await.map_err(|e| format!("control: {e}"))?)
        }
        None => None,
    };
    for route in &routes {
        println!("route {} {} {}", route.name, route.listen, route.target);
    }
    if let Some(control) = &control {
        println!("control {}", control.describe());
    }
    println!("ready");
    let settings = args.forwarding.settings(routes::parse_dial_from(&args.dial_from)?);
    let relay = Arc::new(Relay::new(settings, routes, delays));
    for (index, listener) in listeners.into_iter().enumerate() {
        tokio::spawn(forward::serve_route(relay.clone(), index, listener));
    }
    match control {
        Some(control) => control::serve(relay, control).await,
        None => std::future::pending().await,
    }
    Ok(())
}
