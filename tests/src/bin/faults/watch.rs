//! What the WAN scenarios measure, for any number of members: publish-to-alert latency read
//! from each watcher's `crossmatch alerts --follow` (the moment its alert line arrives).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Failure;
use crate::federation::Federation;

/// Alert lines a followers' channel holds before their readers wait.
const SEEN_BOUND: usize = 65_536;

/// One alert line: the watcher, a local record it names, and when the line arrived.
type Seen = (usize, u64, Instant);

/// Every member's `alerts --follow`, read line by line as the alerts arrive.
#[derive(Debug)]
pub struct Followers {
    children: Vec<Child>,
    seen: Receiver<Seen>,
}

impl Followers {
    /// Follows the alerts of every member of `federation`.
    pub fn start(federation: &Federation) -> Result<Self, Failure> {
        let (tx, seen) = mpsc::sync_channel(SEEN_BOUND);
        let mut children = Vec::new();
        for index in 0..federation.members.len() {
            let mut child = federation.follow(index)?;
            let stdout = child.stdout.take();
            children.push(child);
            let Some(stdout) = stdout else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let at = Instant::now();
                    for record in alerted_records(&line) {
                        if tx.send((index, record, at)).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        Ok(Self { children, seen })
    }

    /// Waits until every `(watcher, record)` in `expected` was alerted, for at most `limit`;
    /// when each was.
    pub fn wait_all(
        &self,
        expected: &[(usize, u64)],
        limit: Duration,
        what: &str,
    ) -> Result<HashMap<(usize, u64), Instant>, Failure> {
        let deadline = Instant::now() + limit;
        let mut arrived = HashMap::new();
        while expected.iter().any(|key| !arrived.contains_key(key)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok((watcher, record, at)) => {
                    arrived.entry((watcher, record)).or_insert(at);
                }
                Err(_) => {
                    let missing = expected.iter().filter(|k| !arrived.contains_key(k)).count();
                    return Err(Failure::timeout(&format!("{what} ({missing} missing)"), limit));
                }
            }
        }
        Ok(arrived)
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The local records an alert line of `alerts --follow` names, when it opens or updates an
/// alert.
fn alerted_records(line: &str) -> Vec<u64> {
    let Ok(event) = serde_json::from_str::<Value>(line) else { return Vec::new() };
    if !matches!(event["type"].as_str(), Some("alert.opened" | "alert.updated")) {
        return Vec::new();
    }
    let records = event["data"]["alert"]["records"].as_array().cloned().unwrap_or_default();
    records.iter().filter_map(Value::as_u64).collect()
}

/// The 50th and 99th percentiles and the largest of `samples` (nearest rank), or none.
pub fn percentiles(samples: &[Duration]) -> Option<(Duration, Duration, Duration)> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    let largest = *sorted.last()?;
    Some((at(0.5), at(0.99), largest))
}

/// Milliseconds, for what the scenarios print.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_lines_name_their_records_and_other_lines_none() {
        let opened =
            r#"{"id":"a-1","type":"alert.opened","at_ms":1,"data":{"alert":{"records":[4,9]}}}"#;
        assert_eq!(alerted_records(opened), vec![4, 9]);
        let closed =
            r#"{"id":"a-2","type":"alert.closed","at_ms":1,"data":{"alert":{"records":[4]}}}"#;
        assert!(alerted_records(closed).is_empty());
        assert!(alerted_records("not json").is_empty());
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let (p50, p99, max) = percentiles(&samples).unwrap();
        assert_eq!(
            (p50, p99, max),
            (Duration::from_millis(51), Duration::from_millis(99), Duration::from_millis(100))
        );
        assert!(percentiles(&[]).is_none());
    }
}
