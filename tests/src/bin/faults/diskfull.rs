//! The `diskfull` scenario: one member, drawn from the seed, keeps its data directory on a
//! small tmpfs. Once every member has published and imported, the member starts a shared
//! import of its own and a filler file takes all but 10 MiB left on it (under the store's
//! reserve), so its outbox is full of
//! entries to sign while a peer publishes a bulk import to everyone and the member itself is
//! asked to add, every second for the whole window. The full member must refuse every add
//! with `507 disk_full` (an add it acknowledges must be read back later), keep running, log
//! the full disk without a panic and without spinning; once the filler is deleted it must take
//! work again, finish its import, converge with its peers (the same heads, no fork, nothing
//! rejected), hold every record and import it acknowledged before the fill, and alert on what
//! the peer published while its disk was full.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::federation::Federation;
use crate::lab::bounded;
use crate::{Context, Failure};

/// Members in the federation.
const MEMBERS: usize = 3;
/// The full member's tmpfs.
const TMPFS_SIZE: &str = "96m";
/// Accounts each member publishes before the fill.
const RECORDS: usize = 8;
/// Rows of the full member's import before the fill, and of the peer's import during it.
const IMPORT_ROWS: usize = 2_000;
/// How long the disk stays full at least: the peer's import and the member's adds meet it.
const FULL_FOR: Duration = Duration::from_secs(15);
/// The most log lines the full member may write while full: more is a spin.
const MAX_LINES_WHILE_FULL: usize = 2_000;
/// Accounts of the peer's import the full member watches.
const SAMPLE: usize = 8;

/// An account's handle: the seed's low bits, the phase, the publisher and its number.
fn handle(seed: u64, phase: &str, publisher: usize, number: usize) -> String {
    format!("d{:x}_{phase}{publisher}_{number}", seed % 0x1000)
}

/// Runs the scenario; a failure carries the nodes' last log lines. The tmpfs is unmounted by
/// the lab's sweep, whatever the end.
pub fn run(context: &Context) -> Result<(), Failure> {
    Federation::run_in_lab(context, MEMBERS, 1, |_, federation| steps(context, federation))
}

fn steps(context: &Context, federation: &mut Federation) -> Result<(), Failure> {
    let mut rng = context.rng();
    let full = rng.below(MEMBERS);
    let peer = (full + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
    let data = federation.data_dir(full);
    mount_tmpfs(&data)?;
    for index in 0..MEMBERS {
        federation.start(index)?;
    }
    context.wait_for("every node ready with all its peers", || {
        Ok((0..MEMBERS).all(|i| {
            federation.status(i).is_some_and(|s| s["ready"] == true && s["peers"] == MEMBERS - 1)
        }))
    })?;
    let id = |index: usize| format!("M{index}");
    let handles = |phase: &str, publisher: usize, count: usize| -> Vec<String> {
        (0..count).map(|k| handle(context.seed, phase, publisher, k)).collect()
    };
    // Before the fill: everyone publishes; the peer watches the full member's accounts and
    // the full member the peer's; the full member imports a file of its own.
    let mut own_ids = Vec::new();
    for index in 0..MEMBERS {
        let ids = federation.add(index, &handles("a", index, RECORDS), true)?;
        if index == full {
            own_ids = ids;
        }
    }
    let mut watches = federation.watch(peer, &handles("a", full, RECORDS), &id(full))?;
    let kept = federation.watch(full, &handles("a", peer, RECORDS), &id(peer))?;
    watches.extend(kept.iter().cloned());
    let file = context.work.join("before.csv");
    let job = federation.import_no_wait(full, &file, handles("i", full, IMPORT_ROWS))?.to_string();
    wait_done(context, federation, full, &job)?;
    federation.settle(context, "every member to converge before the fill", || {
        federation.all_alerted(&watches)
    })?;
    context.say(format!("{} keeps its data on a {TMPFS_SIZE} tmpfs; filling it", id(full)));

    let log_before = federation.log(full).lines().count();
    // A shared import at the full member just before the fill: its entries wait in the outbox
    // to be signed while the disk is full.
    let late = context.work.join("late.csv");
    let late_job =
        federation.import_no_wait(full, &late, handles("l", full, IMPORT_ROWS))?.to_string();
    let filler = data.join("filler");
    fill(&filler)?;
    let started = Instant::now();
    let during = context.work.join("during.csv");
    let peer_job =
        federation.import_no_wait(peer, &during, handles("p", peer, IMPORT_ROWS))?.to_string();
    let (refusal, acknowledged) = refused_while_full(context, federation, full, started)?;
    let log = federation.log(full);
    let while_full: Vec<&str> = log.lines().skip(log_before).collect();
    let named = check_log_while_full(&while_full).map_err(|failure| {
        Failure::check(format!("{} (its add was refused: {refusal})", failure.message))
    })?;
    let alive = federation.running(full);
    context.say(format!(
        "{} full: refused an add ({refusal}), {} log lines in {:.0} s, node {}",
        id(full),
        while_full.len(),
        started.elapsed().as_secs_f64(),
        if alive { "still running" } else { "stopped" }
    ));
    context.say(format!("{} logged: {named}", id(full)));

    std::fs::remove_file(&filler)
        .map_err(|error| Failure::setup(format!("deleting the filler: {error}")))?;
    if !alive {
        return Err(Failure::check(format!("{} stopped while its disk was full", id(full))));
    }
    let after = context
        .wait_for(&format!("{} to take an add once space is back", id(full)), || {
            Ok(federation.add(full, &handles("z", full, 1), true).is_ok())
        })?;
    wait_done(context, federation, peer, &peer_job)?;
    wait_done(context, federation, full, &job)?;
    wait_done(context, federation, full, &late_job)?;
    // The peer watches some of the accounts the full member imported before and during the
    // fill: their alerts prove the rows were kept and published.
    let mut own_sample = Vec::new();
    for (phase, count) in [("i", SAMPLE), ("l", 2 * SAMPLE)] {
        while own_sample.len() < count {
            let row = handle(context.seed, phase, full, rng.below(IMPORT_ROWS));
            if !own_sample.contains(&row) {
                own_sample.push(row);
            }
        }
    }
    watches.extend(federation.watch(peer, &own_sample, &id(full))?);
    let mut sample = Vec::new();
    while sample.len() < SAMPLE {
        let row = handle(context.seed, "p", peer, rng.below(IMPORT_ROWS));
        if !sample.contains(&row) {
            sample.push(row);
        }
    }
    watches.extend(federation.watch(full, &sample, &id(peer))?);
    federation.settle(context, "every member to converge once space is back", || {
        federation.all_alerted(&watches)
    })?;
    let read_back =
        own_ids.iter().chain(kept.iter().map(|(_, record, _)| record)).chain(acknowledged.iter());
    for record in read_back {
        federation.cli(full, &["records", "get", &record.to_string(), "--json"], "")?;
    }
    for job in [&job, &late_job] {
        imported_all(federation, full, job)?;
    }
    context.say(format!(
        "{} took work {:.1} s after the filler went; every member converged, every record \
         kept, and what {} published while it was full alerted",
        id(full),
        after.as_secs_f64(),
        id(peer)
    ));
    Ok(())
}

/// Mounts a [`TMPFS_SIZE`] tmpfs, owner-only, on `dir` (made first).
fn mount_tmpfs(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|error| Failure::setup(format!("creating {}: {error}", dir.display())))?;
    let options = format!("size={TMPFS_SIZE},mode=0700");
    let status = bounded("mount")
        .args(["-t", "tmpfs", "-o", &options, "xmf-tmpfs"])
        .arg(dir)
        .status()
        .map_err(|error| Failure::setup(format!("cannot run mount: {error}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::setup(format!("mount -t tmpfs on {}: {status}", dir.display())))
    }
}

/// What the filler leaves free: under the store's reserve (16 MiB), so the node must refuse,
/// but room for what sled already holds in flight. sled (0.34) wedges a flush that meets
/// `ENOSPC` for good, so a disk filled to its last byte while sled writes is recovered by a
/// restart, not by the reserve (docs/TESTING.md).
const LEFT_FREE: u64 = 10 << 20;

/// Writes `filler` until the file system holding it has about [`LEFT_FREE`] bytes available,
/// measuring again after each pass: the node writes and sled frees segments meanwhile.
fn fill(filler: &Path) -> Result<(), Failure> {
    let dir = filler.parent().unwrap_or(filler);
    let mut file = std::fs::File::create(filler)
        .map_err(|error| Failure::setup(format!("creating the filler: {error}")))?;
    let block = vec![0xa5u8; 1 << 20];
    for _pass in 0..8 {
        let mut left = available(dir)?.saturating_sub(LEFT_FREE);
        if left < block.len() as u64 {
            break;
        }
        while left > 0 {
            let size = left.min(block.len() as u64) as usize;
            if file.write_all(&block[..size]).is_err() {
                // Something else took the space meanwhile: the disk is as full as wanted.
                break;
            }
            left -= size as u64;
        }
        let _ = file.sync_all();
    }
    Ok(())
}

/// The bytes available on the file system holding `dir` (`df`).
fn available(dir: &Path) -> Result<u64, Failure> {
    let output = bounded("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .map_err(|error| Failure::setup(format!("df: {error}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| Failure::setup(format!("df printed no available bytes: {text}")))
}

/// Asks the full member to add, every second, until [`FULL_FOR`] has passed since `started`.
/// Every refusal must be `507 disk_full`, and at least one must come; the ids of adds it
/// acknowledged anyway (read back once space is back: an acknowledged add must be stored).
/// What it said when it refused.
fn refused_while_full(
    context: &Context,
    federation: &Federation,
    full: usize,
    started: Instant,
) -> Result<(String, Vec<u64>), Failure> {
    let mut said = String::new();
    let mut acknowledged = Vec::new();
    let mut number = 0;
    while started.elapsed() < FULL_FOR {
        number += 1;
        let attempt = vec![handle(context.seed, "f", full, number)];
        match federation.add(full, &attempt, true) {
            Ok(ids) => acknowledged.extend(ids),
            Err(failure) => {
                let message = failure.message.split_whitespace().collect::<Vec<_>>().join(" ");
                if !message.contains("507") || !message.contains("disk_full") {
                    return Err(Failure::check(format!(
                        "M{full}'s refusal while full is not 507 disk_full: {message}"
                    )));
                }
                said = message;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if said.is_empty() {
        return Err(Failure::check(format!(
            "M{full} refused no add in {} s of a full disk",
            FULL_FOR.as_secs()
        )));
    }
    Ok((said, acknowledged))
}

/// Checks that import `job` at `member` added every one of its [`IMPORT_ROWS`] rows (its
/// summary once applied).
fn imported_all(federation: &Federation, member: usize, job: &str) -> Result<(), Failure> {
    let printed = federation.cli(member, &["imports", "show", job, "--json"], "")?;
    let answer: serde_json::Value = serde_json::from_str(printed.trim()).unwrap_or_default();
    let added = answer["summary"]["added"].as_u64();
    if added != Some(IMPORT_ROWS as u64) {
        return Err(Failure::check(format!(
            "import {job} at M{member} added {added:?} of {IMPORT_ROWS} rows"
        )));
    }
    Ok(())
}

/// Checks the full member's log lines while full: they name the full disk, hold no panic, and
/// are not a spin. The first line that names the full disk.
fn check_log_while_full(lines: &[&str]) -> Result<String, Failure> {
    if let Some(panic) = lines.iter().find(|line| line.contains("panicked")) {
        return Err(Failure::check(format!("the full node panicked: {panic}")));
    }
    if lines.len() > MAX_LINES_WHILE_FULL {
        return Err(Failure::check(format!(
            "the full node wrote {} log lines in {} s: a spin",
            lines.len(),
            FULL_FOR.as_secs()
        )));
    }
    lines
        .iter()
        .find(|line| {
            let line = line.to_ascii_lowercase();
            line.contains("no space left") || line.contains("the disk is full")
        })
        .map(|line| (*line).to_owned())
        .ok_or_else(|| Failure::check("the full node's log does not say its disk is full"))
}

/// Waits for import `job` at `member` to read `done`.
fn wait_done(
    context: &Context,
    federation: &Federation,
    member: usize,
    job: &str,
) -> Result<(), Failure> {
    let mut state = String::new();
    let what = format!("import {job} at M{member} to read done");
    let waited = context.wait_for(&what, || {
        let printed = federation.cli(member, &["imports", "show", job, "--json"], "");
        let answer: serde_json::Value =
            printed.ok().and_then(|p| serde_json::from_str(p.trim()).ok()).unwrap_or_default();
        state = answer["state"].as_str().unwrap_or("?").to_owned();
        Ok(state == "done" || state == "failed" || state == "refused")
    });
    waited?;
    if state != "done" {
        return Err(Failure::check(format!("import {job} at M{member} ended {state}")));
    }
    Ok(())
}
