//! The `slow` scenario: four members meshed through the WAN relay at 200 ms one-way (plus up
//! to 40 ms of jitter), one of them behind a 1 Mbit/s token bucket on its veth, publish in
//! turns while the relay stalls traffic for a few seconds and cuts a pair's connections. Every
//! watcher must be alerted of every publication, and at the end the federation must converge
//! (every head everywhere, outboxes empty, every member connected, no fork, ban or rejection),
//! with every pair's traffic through the relay and none around it. Prints publish-to-alert
//! latency (p50, p99, max).

use std::time::{Duration, Instant};

use crate::federation::Federation;
use crate::lab::Lab;
use crate::wan::{self, Wan};
use crate::watch::{self, Followers};
use crate::{Context, Failure, Rng};

/// Members in the federation.
const MEMBERS: usize = 4;
/// Every pair's one-way delay and jitter, in milliseconds.
const DELAY_MS: u64 = 200;
const JITTER_MS: u64 = 40;
/// The bandwidth cap on one member's link (tc's notation).
const RATE: &str = "1mbit";
/// Publications, one a round, publishers in turn; round 0 only shows the followers follow.
const ROUNDS: usize = 12;

/// An account's handle: the seed's low bits and the round; at most 15 characters.
fn handle(seed: u64, round: usize) -> String {
    format!("w{:x}_{round}", seed % 0x1_0000)
}

/// What the relay does to the network before a round's publication.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Every connection towards one member held for some seconds.
    StallTowards(usize, f64),
    /// Every connection held for some seconds.
    StallAll(f64),
    /// One pair's connections reset and refused, healed after some seconds.
    Cut(usize, usize, f64),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "no fault"),
            Self::StallTowards(member, secs) => {
                write!(f, "traffic to M{member} stalled {secs:.1} s")
            }
            Self::StallAll(secs) => write!(f, "all traffic stalled {secs:.1} s"),
            Self::Cut(a, b, secs) => write!(f, "M{a} and M{b} cut, healed {secs:.1} s after"),
        }
    }
}

/// The fault of each round, drawn from the seed: a stall towards one member, a cut of the
/// publisher from another member while it publishes, a stall of everything, twice over.
fn faults(rng: &mut Rng) -> Vec<Fault> {
    let mut faults = vec![Fault::None; ROUNDS];
    for (round, fault) in faults.iter_mut().enumerate().skip(1) {
        let publisher = round % MEMBERS;
        let secs = 2.0 + rng.below(3000) as f64 / 1000.0;
        *fault = match round % 4 {
            1 => Fault::StallTowards(rng.below(MEMBERS), secs),
            2 => Fault::Cut(publisher, (publisher + 1 + rng.below(MEMBERS - 1)) % MEMBERS, secs),
            3 => Fault::StallAll(secs),
            _ => Fault::None,
        };
    }
    faults
}

/// Runs the scenario; a failure carries the nodes' last log lines.
pub fn run(context: &Context) -> Result<(), Failure> {
    let lab = Lab::new(MEMBERS, 1)?;
    let delays = format!("default {DELAY_MS} {JITTER_MS}\n");
    let wan = Wan::start(&lab, &context.relay, &context.work, MEMBERS, &delays, context.seed)?;
    let mut federation =
        Federation::found_announcing(&context.bin, &context.work, MEMBERS, &wan::announced)?;
    let outcome = steps(context, &lab, &wan, &mut federation);
    let outcome = outcome.map_err(|failure| failure.with_logs(federation.log_tails(30)));
    federation.stop_all();
    drop(wan);
    drop(lab);
    outcome
}

fn steps(
    context: &Context,
    lab: &Lab,
    wan: &Wan,
    federation: &mut Federation,
) -> Result<(), Failure> {
    let mut rng = context.rng();
    let capped = rng.below(MEMBERS);
    lab.cap_rate(capped, RATE)?;
    for index in 0..MEMBERS {
        federation.start(index)?;
    }
    let took =
        context.wait_for("every node ready with all its peers, through the relay", || {
            Ok(federation.statuses().iter().all(|status| {
                status.as_ref().is_some_and(|s| s["ready"] == true && s["peers"] == MEMBERS - 1)
            }))
        })?;
    context.say(format!(
        "{MEMBERS} nodes meshed through the relay ({DELAY_MS} ms one-way, jitter {JITTER_MS} ms; \
         M{capped} capped at {RATE}) in {:.1} s",
        took.as_secs_f64()
    ));
    let followers = Followers::start(federation)?;
    // Each member watches every round's account that another member publishes.
    let mut expected: Vec<Vec<(usize, u64)>> = vec![Vec::new(); ROUNDS];
    for watcher in 0..MEMBERS {
        let rounds: Vec<usize> = (0..ROUNDS).filter(|r| r % MEMBERS != watcher).collect();
        let handles: Vec<String> = rounds.iter().map(|&r| handle(context.seed, r)).collect();
        let ids = federation.add(watcher, &handles, false)?;
        for (round, id) in rounds.into_iter().zip(ids) {
            expected[round].push((watcher, id));
        }
    }
    let faults = faults(&mut rng);
    let mut latencies = Vec::new();
    for (round, fault) in faults.iter().enumerate() {
        let publisher = round % MEMBERS;
        let heal_after = apply(wan, *fault)?;
        federation.add(publisher, &[handle(context.seed, round)], true)?;
        let published = Instant::now();
        if let Some(secs) = heal_after {
            std::thread::sleep(Duration::from_secs_f64(secs));
            wan.heal_all()?;
        }
        let what = format!("round {round}'s alerts (M{publisher} published; {fault})");
        let arrived = followers.wait_all(&expected[round], context.give_up, &what)?;
        let took: Vec<Duration> =
            arrived.values().map(|at| at.saturating_duration_since(published)).collect();
        let slowest = took.iter().max().copied().unwrap_or_default();
        context.say(format!(
            "round {round}: M{publisher} published ({fault}); slowest alert {}",
            watch::ms(slowest)
        ));
        if round > 0 {
            latencies.extend(took);
        }
    }
    let (_, took) = federation.settle(context, "every member to converge", || Ok(true))?;
    context.say(format!("converged {:.1} s after the last round", took.as_secs_f64()));
    wan::check_no_bypass(&wan.stats()?, MEMBERS)?;
    context.say("every pair talked through the relay; no connection went around it");
    if let Some((p50, p99, max)) = watch::percentiles(&latencies) {
        context.say(format!(
            "publish-to-alert over {} alerts: p50 {}, p99 {}, max {}",
            latencies.len(),
            watch::ms(p50),
            watch::ms(p99),
            watch::ms(max)
        ));
    }
    Ok(())
}

/// Has the relay do `fault`; for a cut, how long to wait after publishing before healing.
fn apply(wan: &Wan, fault: Fault) -> Result<Option<f64>, Failure> {
    match fault {
        Fault::None => Ok(None),
        Fault::StallTowards(member, secs) => wan.stall_towards(member, secs).map(|()| None),
        Fault::StallAll(secs) => wan.stall_all(secs).map(|()| None),
        Fault::Cut(a, b, secs) => wan.cut_pair(a, b).map(|()| Some(secs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_draws_each_kind_of_fault_and_cuts_two_members() {
        for seed in [0, 1, 42, 0xdead_beef] {
            let faults = faults(&mut Rng(seed));
            assert_eq!(faults[0], Fault::None, "round 0 only checks the followers");
            assert!(faults.iter().any(|f| matches!(f, Fault::StallTowards(..))));
            assert!(faults.iter().any(|f| matches!(f, Fault::StallAll(..))));
            for fault in &faults {
                if let Fault::Cut(a, b, secs) = fault {
                    assert_ne!(a, b, "seed {seed}: a cut is between two members");
                    assert!((2.0..5.0).contains(secs), "seed {seed}: {secs}");
                }
            }
        }
        assert!(handle(u64::MAX, ROUNDS).len() <= 15);
    }
}
