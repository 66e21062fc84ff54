//! Crash safety: a child process adds records and reports each acknowledged add on a pipe; the
//! parent kills it with SIGKILL after N acknowledgements (N from a seeded sequence), reopens the
//! store and checks that every acknowledged record is there, every acknowledged share reaches the
//! own feed once the outbox drains, and no seq is reused or skipped. Runs without the libtest
//! harness: the same binary is parent and child.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crossmatch_node::clock::{DAY_MS, SystemClock};
use crossmatch_node::engine::{Engine, EngineConfig, NewRecord};
use crossmatch_node::test_support::{FEDERATION, TempDir};
use crossmatch_protocol::{
    BatchHash, Evaluation, Handling, Kind, Op, Token, canonicalize, verify_batch,
};

const CHILD_ENV: &str = "CROSSMATCH_CRASH_CHILD";
const ROUNDS: u64 = 20;

/// The writer is member `A` of the test federation.
fn config() -> EngineConfig {
    EngineConfig::for_test(1)
}

fn open(dir: &Path) -> Engine {
    Engine::open(dir, config(), Arc::new(SystemClock)).expect("store opens without repair")
}

fn new_record(handle: &str) -> NewRecord {
    NewRecord {
        identifiers: vec![canonicalize(Kind::Account, Some("telegram"), None, handle).unwrap()],
        category: "test".into(),
        handling: Handling::H0,
        evaluation: Evaluation::new('A', 1).unwrap(),
        notes: String::new(),
        activity_per_day: None,
        expires_at_ms: SystemClock.now() + DAY_MS,
        share: true,
        backlog: false,
    }
}

trait Now {
    fn now(&self) -> u64;
}

impl Now for SystemClock {
    fn now(&self) -> u64 {
        crossmatch_node::clock::Clock::now_ms(self)
    }
}

/// The child: adds records forever (bounded), publishing every third add, acknowledging each
/// add on stdout only after `add_record` returned.
fn child(dir: &Path, round: u64) {
    let mut engine = open(dir);
    let mut stdout = std::io::stdout().lock();
    for i in 0..10_000u64 {
        let handle = format!("crash_r{round}_n{i}");
        let id = engine.add_record(new_record(&handle), "crash-test").unwrap();
        writeln!(stdout, "ack {id} {handle}").unwrap();
        stdout.flush().unwrap();
        if i % 3 == 2 {
            engine.publish().unwrap();
        }
    }
}

fn parent() -> Result<(), String> {
    let seed = std::env::var("CROSSMATCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee_u64);
    println!("crash test: seed {seed}, {ROUNDS} rounds");
    let dir = TempDir::new("crash");
    match rounds(&dir, seed) {
        Ok(()) => Ok(()),
        // The store is the evidence: keep it.
        Err(error) => Err(format!("{error}; the store is kept in {}", dir.keep().display())),
    }
}

/// SIGKILLs a writer `ROUNDS` times over the store in `dir`, checking it after every kill.
fn rounds(dir: &TempDir, seed: u64) -> Result<(), String> {
    let mut state = seed;
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for round in 0..ROUNDS {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let kill_after = 1 + (state >> 33) % 12;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, dir.path())
            .env("CROSSMATCH_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..kill_after {
            let line = lines.next().ok_or("child ended early")?.map_err(|e| e.to_string())?;
            let mut parts = line.split(' ');
            let (Some("ack"), Some(id), Some(handle)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("unexpected child line {line:?}"));
            };
            acknowledged.push((id.parse().map_err(|_| "bad id")?, handle.to_owned()));
        }
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        child.wait().map_err(|e| e.to_string())?;
        check(dir.path(), &acknowledged)
            .map_err(|e| format!("round {round} (seed {seed}): {e}"))?;
    }
    println!("crash test: {} acknowledged adds survived {ROUNDS} SIGKILLs", acknowledged.len());
    Ok(())
}

fn check(dir: &Path, acknowledged: &[(u64, String)]) -> Result<(), String> {
    let mut engine = open(dir);
    for (id, handle) in acknowledged {
        let record = engine
            .read_record(*id, "crash-test")
            .map_err(|e| e.to_string())?
            .ok_or(format!("acknowledged record {id} lost"))?;
        if !record.identifiers[0].canonical.ends_with(handle.as_str()) {
            return Err(format!("record {id} holds another identifier"));
        }
    }
    engine.publish().map_err(|e| e.to_string())?;
    let (generation, head) = engine.own_head();
    let origin = config().key.public_key();
    let mut prev = BatchHash::ZERO;
    let mut shared: Vec<Token> = Vec::new();
    for seq in 1..=head {
        let wire = engine
            .batch(crossmatch_protocol::BatchId::of(&origin, generation, seq))
            .map_err(|e| e.to_string())?
            .ok_or(format!("seq {seq} missing: skipped"))?;
        let batch = verify_batch(&wire, &FEDERATION, &[origin][..]).map_err(|e| e.to_string())?;
        if batch.header().prev != prev {
            return Err(format!("seq {seq} does not link to seq {}: reused or forked", seq - 1));
        }
        prev = batch.hash();
        for entry in batch.entries().flatten() {
            if let Op::Add(add) = entry.op {
                if shared.contains(&add.token) {
                    return Err("a token was published twice".into());
                }
                shared.push(add.token);
            }
        }
    }
    for (_, handle) in acknowledged {
        let canonical = canonicalize(Kind::Account, Some("telegram"), None, handle).unwrap();
        if !shared.contains(&engine.token(&canonical)) {
            return Err(format!("acknowledged share {handle} missing from the own feed"));
        }
    }
    Ok(())
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let round =
            std::env::var("CROSSMATCH_CRASH_ROUND").ok().and_then(|r| r.parse().ok()).unwrap_or(0);
        child(Path::new(&dir), round);
        return;
    }
    match parent() {
        Ok(()) => println!("1 passed, 0 failed"),
        Err(error) => {
            eprintln!("crash test failed: {error}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}
