//! The WAN between members: one `crossmatch-relay` process in the switch namespace, with one
//! route per member (it listens on `10.233.1.(100+i)` and forwards to the member's own
//! address) and one source address per member to dial from (`10.233.1.(160+i)`), so each
//! member sees each peer from an address of its own. Members announce their route's address,
//! so every connection between two members goes through the relay, which delays it by its
//! pair's row of the delay table and stalls or cuts it on command (docs/TESTING.md).
//!
//! The relay's addresses are a subnet of their own, which the members reach through one
//! gateway (the switch's [`GATEWAY`] on bridge 0), not on the members' link, so the relay
//! serves members on bridge 0 only. Linux keeps one neighbour table shared by all namespaces,
//! with a global limit of 1,024 entries by default (`net.ipv4.neigh.default.gc_thresh3`): on
//! the link, 28 members resolving up to 54 relay addresses each (27 routes to dial, 27 addresses
//! dialing them) overflowed it, and the kernel dropped the SYN-ACKs it could make no entry for,
//! with no TCP or IP counter (only the table's `table_fulls`, `/proc/net/stat/arp_cache`).
//! Through the gateway a member needs about one entry for all of them.
//!
//! The relay runs in the switch namespace, so [`crate::lab::sweep`] stops it with the nodes
//! when a campaign is killed outright; dropping the [`Wan`] stops it otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Failure;
use crate::lab::{Lab, MESH_PORT, SWITCH, address, bounded, namespace};

/// Most members a lab's relay serves: its routes (`10.233.1.100` on) end before the addresses
/// it dials from (`10.233.1.160` on), and the members' own (`10.233.0.10` on) before the floods'
/// (`10.233.0.70` on).
pub const MAX_MEMBERS: usize = 60;
/// The longest the relay may take to bind its sockets and print `ready`.
const START_LIMIT: Duration = Duration::from_secs(15);
/// The longest one control command may take.
const CONTROL_LIMIT: Duration = Duration::from_secs(5);

/// The switch's address on bridge 0, through which the members reach [`WAN_SUBNET`].
const GATEWAY: &str = "10.233.0.1";
/// The subnet of the relay's addresses.
const WAN_SUBNET: &str = "10.233.1.0/24";

/// The relay's address for member `index`: what the member announces and the others dial.
pub fn route_address(index: usize) -> String {
    format!("10.233.1.{}", 100 + index)
}

/// The address the relay dials member `index`'s peers from, for connections member `index`
/// opened.
fn dial_from_address(index: usize) -> String {
    format!("10.233.1.{}", 160 + index)
}

/// Member `index`'s route, as the relay's commands and stats name it.
pub fn route_name(index: usize) -> String {
    format!("m{index}")
}

/// The multiaddr member `index` announces: its route on the relay.
pub fn announced(index: usize) -> String {
    format!("/ip4/{}/tcp/{MESH_PORT}", route_address(index))
}

/// One pair's counters from the relay's `stats`: bytes written each way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairBytes {
    /// The dialer's member index (by its own address).
    pub source: usize,
    /// The member whose route it dialed.
    pub route: usize,
    /// Bytes from the dialer to the route's member.
    pub up: u64,
    /// Bytes back.
    pub down: u64,
}

/// The running relay.
#[derive(Debug)]
pub struct Wan {
    child: Child,
    control: PathBuf,
    members: usize,
}

impl Wan {
    /// The relay's user and system time so far, in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        crate::europe::cpu_ticks(&stat)
    }

    /// Starts the relay for `members` members of `lab` with `delays` (the relay's delay table
    /// text) and the jitter of `seed`; returns once it printed `ready`. Its log is
    /// `relay.log` in `work`.
    pub fn start(
        lab: &Lab,
        relay: &Path,
        work: &Path,
        members: usize,
        delays: &str,
        seed: u64,
    ) -> Result<Self, Failure> {
        if members > MAX_MEMBERS {
            return Err(Failure::setup(format!("at most {MAX_MEMBERS} members behind the relay")));
        }
        let mut routes = String::new();
        let mut dial_from = Vec::new();
        lab.add_switch_address(&format!("{GATEWAY}/24"))?;
        for index in 0..members {
            lab.add_switch_address(&format!("{}/32", route_address(index)))?;
            lab.add_switch_address(&format!("{}/32", dial_from_address(index)))?;
            lab.add_route(index, WAN_SUBNET, GATEWAY)?;
            routes.push_str(&format!(
                "{} {}:{MESH_PORT} {}:{MESH_PORT}\n",
                route_name(index),
                route_address(index),
                address(index)
            ));
            dial_from.push(format!("--dial-from={}={}", address(index), dial_from_address(index)));
        }
        let write = |name: &str, text: &str| {
            let file = work.join(name);
            std::fs::write(&file, text)
                .map_err(|error| Failure::setup(format!("writing {name}: {error}")))?;
            Ok::<_, Failure>(file)
        };
        let routes_file = write("relay-routes.txt", &routes)?;
        let delays_file = write("relay-delays.txt", delays)?;
        let control = work.join("relay.sock");
        let _ = std::fs::remove_file(&control);
        let log = std::fs::File::create(work.join("relay.log"))
            .map_err(|error| Failure::setup(format!("creating the relay's log: {error}")))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", SWITCH])
            .arg(relay)
            .arg("run")
            .arg("--routes")
            .arg(&routes_file)
            .arg("--delays")
            .arg(&delays_file)
            .arg(format!("--control=unix:{}", control.display()))
            .arg(format!("--seed={seed}"))
            .args(&dial_from)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|error| Failure::setup(format!("starting the relay: {error}")))?;
        let stdout = child.stdout.take();
        let wan = Self { child, control, members };
        wan.wait_ready(stdout)?;
        Ok(wan)
    }

    /// Reads the relay's stdout until `ready`, for at most [`START_LIMIT`].
    fn wait_ready(&self, stdout: Option<std::process::ChildStdout>) -> Result<(), Failure> {
        let stdout = stdout.ok_or_else(|| Failure::setup("the relay has no stdout"))?;
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l == "ready");
            let _ = tx.send(ready);
        });
        match rx.recv_timeout(START_LIMIT) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::setup("the relay exited before ready (see relay.log)")),
            Err(_) => Err(Failure::timeout("the relay to print ready", START_LIMIT)),
        }
    }

    /// Sends one control line; the relay's `ok ...` answer, or a failure with its `err`.
    pub fn command(&self, line: &str) -> Result<String, Failure> {
        let failed = |error: std::io::Error| Failure::setup(format!("relay `{line}`: {error}"));
        let mut stream = UnixStream::connect(&self.control).map_err(failed)?;
        stream.set_read_timeout(Some(CONTROL_LIMIT)).map_err(failed)?;
        stream.set_write_timeout(Some(CONTROL_LIMIT)).map_err(failed)?;
        stream.write_all(format!("{line}\n").as_bytes()).map_err(failed)?;
        let mut answer = String::new();
        BufReader::new(stream.take(1 << 20)).read_line(&mut answer).map_err(failed)?;
        let answer = answer.trim_end().to_owned();
        if answer.starts_with("ok") {
            Ok(answer)
        } else {
            Err(Failure::setup(format!("relay `{line}`: {answer}")))
        }
    }

    /// Every pair's bytes so far, by member indexes.
    pub fn stats(&self) -> Result<Vec<PairBytes>, Failure> {
        let answer = self.command("stats")?;
        Ok(parse_stats(&answer, self.members))
    }

    /// Holds all traffic to member `index` (every dialer's connections to its route) for
    /// `secs` seconds.
    pub fn stall_towards(&self, index: usize, secs: f64) -> Result<(), Failure> {
        self.command(&format!("stall * {} {secs:.1}", route_name(index))).map(drop)
    }

    /// Holds all traffic between every pair for `secs` seconds.
    pub fn stall_all(&self, secs: f64) -> Result<(), Failure> {
        self.command(&format!("stall * * {secs:.1}")).map(drop)
    }

    /// Resets every connection between members `a` and `b` and refuses new ones.
    pub fn cut_pair(&self, a: usize, b: usize) -> Result<(), Failure> {
        self.command(&format!("cut {} {}", address(a), route_name(b)))?;
        self.command(&format!("cut {} {}", address(b), route_name(a))).map(drop)
    }

    /// Lifts every cut.
    pub fn heal_all(&self) -> Result<(), Failure> {
        self.command("heal * *").map(drop)
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.control);
    }
}

/// Reads `stats`' answer: ` | SRC ROUTE up=BYTES/CHUNKS down=BYTES/CHUNKS ...` per pair.
fn parse_stats(answer: &str, members: usize) -> Vec<PairBytes> {
    let member_of_address = |ip: &str| (0..members).find(|&i| address(i) == ip);
    let member_of_route = |name: &str| (0..members).find(|&i| route_name(i) == name);
    let bytes =
        |field: &str, key: &str| field.strip_prefix(key)?.split('/').next()?.parse::<u64>().ok();
    answer
        .split(" | ")
        .skip(1)
        .filter_map(|pair| {
            let words: Vec<&str> = pair.split_whitespace().collect();
            let source = member_of_address(words.first()?)?;
            let route = member_of_route(words.get(1)?)?;
            let up = words.iter().find_map(|w| bytes(w, "up="))?;
            let down = words.iter().find_map(|w| bytes(w, "down="))?;
            Some(PairBytes { source, route, up, down })
        })
        .collect()
}

/// Bytes member `index` received through the relay: what its peers sent on the connections
/// it dialed, and what they sent on the connections they dialed to it.
pub fn received_by(pairs: &[PairBytes], index: usize) -> u64 {
    pairs
        .iter()
        .map(|p| match (p.source == index, p.route == index) {
            (true, _) => p.down,
            (_, true) => p.up,
            _ => 0,
        })
        .sum()
}

/// Checks that every pair of members talked through the relay and that no member holds a
/// TCP connection to another member's own address: nothing went around the relay.
pub fn check_no_bypass(pairs: &[PairBytes], members: usize) -> Result<(), Failure> {
    every_pair_carried(pairs, members)?;
    for index in 0..members {
        let output = bounded("ip")
            .args(["netns", "exec", &namespace(index), "ss", "-Htn", "state", "established"])
            .output()
            .map_err(|error| Failure::setup(format!("cannot run ss: {error}")))?;
        let text = String::from_utf8_lossy(&output.stdout);
        for peer in text.lines().filter_map(|line| line.split_whitespace().nth(3)) {
            let ip = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip);
            if let Some(other) = (0..members).find(|&i| i != index && address(i) == ip) {
                return Err(Failure::check(format!(
                    "M{index} holds a connection to M{other}'s own address, around the relay"
                )));
            }
        }
    }
    Ok(())
}

/// Checks that the relay carried bytes both ways between every pair of members, on a
/// connection either of them dialed.
fn every_pair_carried(pairs: &[PairBytes], members: usize) -> Result<(), Failure> {
    for a in 0..members {
        for b in a + 1..members {
            let carried = pairs.iter().any(|p| {
                ((p.source, p.route) == (a, b) || (p.source, p.route) == (b, a))
                    && p.up > 0
                    && p.down > 0
            });
            if !carried {
                return Err(Failure::check(format!(
                    "the relay carried nothing between M{a} and M{b}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_give_each_pair_s_bytes_by_member() {
        let answer = "ok pairs=2 | 10.233.0.10 m1 up=1200/3 down=800/2 queued=0 open=1 total=1 \
                      refused=0 | 10.233.0.12 m0 up=5/1 down=7/1 queued=0 open=1 total=2 refused=0";
        let pairs = parse_stats(answer, 3);
        assert_eq!(
            pairs,
            vec![
                PairBytes { source: 0, route: 1, up: 1200, down: 800 },
                PairBytes { source: 2, route: 0, up: 5, down: 7 },
            ]
        );
        assert_eq!(received_by(&pairs, 0), 800 + 5);
        assert_eq!(received_by(&pairs, 1), 1200);
        assert!(every_pair_carried(&pairs, 2).is_ok());
        assert!(every_pair_carried(&pairs, 3).is_err(), "M1 and M2 never talked");
    }
}
