//! The relay's shared state: its routes and settings, the rules the control port changes
//! (delays, stalls, cuts), the live connections (`Link`) those rules reach, and the counters
//! per pair. One short-held mutex; no lock is held across an await.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::{Duration, Instant};

use crate::rules::{Delay, DelayTable, Pair, PairPattern};

/// Most cut and stall rules held at once, each.
pub const MAX_FAULT_RULES: usize = 4096;

/// Most distinct pairs counted; a connection of a new pair past it is refused.
pub const MAX_PAIRS: usize = 16_384;

/// How the relay forwards, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seed of the jitter streams.
    pub seed: u64,
    /// Largest chunk read at once.
    pub chunk_bytes: usize,
    /// Chunks a direction holds before it stops reading (backpressure).
    pub queue_chunks: usize,
    /// Most connections forwarded at once; more are refused.
    pub max_connections: usize,
    /// Longest wait for the target to accept.
    pub connect_timeout: Duration,
    /// The local address to dial the target from, by the dialer's source address (so each
    /// member sees each peer from an address of its own); the system picks for the others.
    pub dial_from: HashMap<IpAddr, IpAddr>,
}

/// One route: the relay listens on `listen` and forwards what it accepts to `target`.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub listen: SocketAddr,
    pub target: SocketAddr,
}

/// What a pair has carried; `up` is dialer to target, `down` the way back.
#[derive(Debug, Default)]
pub struct Counters {
    pub up_bytes: AtomicU64,
    pub up_chunks: AtomicU64,
    pub down_bytes: AtomicU64,
    pub down_chunks: AtomicU64,
    /// Bytes read and not yet written, both directions.
    pub queued_bytes: AtomicU64,
    pub open: AtomicU64,
    pub total: AtomicU64,
    pub refused: AtomicU64,
}

impl Counters {
    /// Counts a chunk written to its receiver.
    pub fn delivered(&self, up: bool, bytes: usize) {
        let (total, chunks) = if up {
            (&self.up_bytes, &self.up_chunks)
        } else {
            (&self.down_bytes, &self.down_chunks)
        };
        total.fetch_add(bytes as u64, Ordering::Relaxed);
        chunks.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self, pair: &Pair) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "{pair} up={}/{} down={}/{} queued={} open={} total={} refused={}",
            get(&self.up_bytes),
            get(&self.up_chunks),
            get(&self.down_bytes),
            get(&self.down_chunks),
            get(&self.queued_bytes),
            get(&self.open),
            get(&self.total),
            get(&self.refused),
        )
    }
}

/// A live connection as the rules see it: its pair, its delay (which `delay` changes while it
/// runs), the end of its stall, and the signal that closes it.
#[derive(Debug)]
pub struct Link {
    pub id: u64,
    pub pair: Pair,
    /// The pair's connection number, from 0: picks the jitter streams.
    pub number: u64,
    pub counters: Arc<Counters>,
    delay: Mutex<Delay>,
    stalled_until: Mutex<Option<Instant>>,
    closed: watch::Sender<bool>,
    reset: AtomicBool,
}

impl Link {
    pub fn delay(&self) -> Delay {
        *lock(&self.delay)
    }

    /// The instant a stall holds traffic until, if one was set.
    pub fn stalled_until(&self) -> Option<Instant> {
        *lock(&self.stalled_until)
    }

    fn stall_until(&self, until: Instant) {
        let mut stalled = lock(&self.stalled_until);
        *stalled = Some(stalled.map_or(until, |earlier| earlier.max(until)));
    }

    /// A receiver that turns `true` once the connection is to close.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Closes both sides now with a reset, not an orderly close: a cut, or a failed read or
    /// write on one side, which the other side then sees as the reset it was.
    pub fn abort(&self) {
        self.reset.store(true, Ordering::Relaxed);
        self.closed.send_replace(true);
    }

    /// Whether the connection's sockets are to be reset when they close.
    pub fn is_aborted(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
    }
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Cut,
    TooManyConnections,
    TooManyPairs,
}

#[derive(Debug, Default)]
struct Rules {
    delays: DelayTable,
    cuts: Vec<PairPattern>,
    stalls: Vec<(PairPattern, Instant)>,
    links: HashMap<u64, Arc<Link>>,
    pairs: BTreeMap<Pair, Arc<Counters>>,
    next_id: u64,
}

/// The relay: routes, settings and rules, shared by every task.
#[derive(Debug)]
pub struct Relay {
    pub settings: Settings,
    pub routes: Vec<Route>,
    rules: Mutex<Rules>,
}

/// Removes its link from the live set when the connection ends, however it ends.
#[derive(Debug)]
pub struct LinkGuard {
    relay: Arc<Relay>,
    pub link: Arc<Link>,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        lock(&self.relay.rules).links.remove(&self.link.id);
        self.link.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep going with it.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Relay {
    pub fn new(settings: Settings, routes: Vec<Route>, delays: DelayTable) -> Self {
        let rules = Rules { delays, ..Rules::default() };
        Self { settings, routes, rules: Mutex::new(rules) }
    }

    /// Whether a route of that name exists.
    pub fn is_route(&self, name: &str) -> bool {
        self.routes.iter().any(|route| route.name == name)
    }

    /// Admits a new connection of `pair`, or says why not (counted as refused).
    pub fn admit(self: &Arc<Self>, pair: Pair, now: Instant) -> Result<LinkGuard, Refusal> {
        let mut rules = lock(&self.rules);
        if !rules.pairs.contains_key(&pair) && rules.pairs.len() >= MAX_PAIRS {
            return Err(Refusal::TooManyPairs);
        }
        let counters = rules.pairs.entry(pair.clone()).or_default().clone();
        let refusal = if rules.cuts.iter().any(|cut| cut.matches(&pair)) {
            Some(Refusal::Cut)
        } else if rules.links.len() >= self.settings.max_connections {
            Some(Refusal::TooManyConnections)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refusal);
        }
        rules.stalls.retain(|(_, until)| *until > now);
        let stalled_until =
            rules.stalls.iter().filter(|(p, _)| p.matches(&pair)).map(|(_, until)| *until).max();
        let id = rules.next_id;
        rules.next_id += 1;
        let link = Arc::new(Link {
            id,
            number: counters.total.fetch_add(1, Ordering::Relaxed),
            delay: Mutex::new(rules.delays.lookup(&pair)),
            stalled_until: Mutex::new(stalled_until),
            closed: watch::channel(false).0,
            reset: false.into(),
            counters,
            pair,
        });
        link.counters.open.fetch_add(1, Ordering::Relaxed);
        rules.links.insert(id, link.clone());
        Ok(LinkGuard { relay: self.clone(), link })
    }

    /// Sets the delay of a pattern; live connections take their (possibly new) delay for the
    /// chunks they read from now on. Returns how many live connections the pattern covers.
    pub fn set_delay(&self, pattern: PairPattern, delay: Delay) -> Result<usize, String> {
        let mut rules = lock(&self.rules);
        rules.delays.set(pattern.clone(), delay)?;
        for link in rules.links.values() {
            *lock(&link.delay) = rules.delays.lookup(&link.pair);
        }
        Ok(rules.links.values().filter(|link| pattern.matches(&link.pair)).count())
    }

    /// Holds all traffic of the pattern's connections, live and new, until `until`.
    pub fn stall(
        &self,
        pattern: PairPattern,
        until: Instant,
        now: Instant,
    ) -> Result<usize, String> {
        let mut rules = lock(&self.rules);
        rules.stalls.retain(|(_, end)| *end > now);
        if rules.stalls.len() >= MAX_FAULT_RULES {
            return Err(format!("too many stalls at once ({MAX_FAULT_RULES})"));
        }
        let live: Vec<&Arc<Link>> =
            rules.links.values().filter(|link| pattern.matches(&link.pair)).collect();
        live.iter().for_each(|link| link.stall_until(until));
        let count = live.len();
        rules.stalls.push((pattern, until));
        Ok(count)
    }

    /// Closes the pattern's live connections and refuses new ones until a `heal` covers it.
    pub fn cut(&self, pattern: PairPattern) -> Result<usize, String> {
        let mut rules = lock(&self.rules);
        if !rules.cuts.contains(&pattern) {
            if rules.cuts.len() >= MAX_FAULT_RULES {
                return Err(format!("too many cuts at once ({MAX_FAULT_RULES})"));
            }
            rules.cuts.push(pattern.clone());
        }
        let live: Vec<&Arc<Link>> =
            rules.links.values().filter(|link| pattern.matches(&link.pair)).collect();
        live.iter().for_each(|link| link.abort());
        Ok(live.len())
    }

    /// Lifts every cut the pattern covers; returns how many.
    pub fn heal(&self, pattern: &PairPattern) -> usize {
        let mut rules = lock(&self.rules);
        let before = rules.cuts.len();
        rules.cuts.retain(|cut| !pattern.covers(cut));
        before - rules.cuts.len()
    }

    /// One line: every counted pair the pattern covers, `SRC ROUTE up=BYTES/CHUNKS
    /// down=BYTES/CHUNKS queued=BYTES open=N total=N refused=N`, separated by ` | `.
    pub fn stats(&self, pattern: &PairPattern) -> String {
        let rules = lock(&self.rules);
        let lines: Vec<String> = rules
            .pairs
            .iter()
            .filter(|(pair, _)| pattern.matches(pair))
            .map(|(pair, counters)| counters.line(pair))
            .collect();
        let mut answer = format!("pairs={}", lines.len());
        for line in lines {
            answer.push_str(" | ");
            answer.push_str(&line);
        }
        answer
    }
}
