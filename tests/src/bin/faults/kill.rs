//! The `kill` scenario: three members; in each of ten rounds one or two of them, drawn from the
//! seed, import a file of a few thousand accounts of their own (`crossmatch import --share`),
//! and a member drawn from the seed (an importer or not) is SIGKILLed at a drawn moment while
//! the imports apply and publish, then restarted. Every import acknowledged must end `done`
//! with every row of its file added (a killed import resumes), the restarted member's own feed
//! must never go back (the same or a later generation, never a lower seq in the same one), and
//! at the end every member holds the same head of every feed, no fork, nothing rejected, and a
//! sample of each import watched at another member is alerted naming its importer.

use std::time::Duration;

use serde_json::Value;

use crate::federation::Federation;
use crate::{Context, Failure, Rng};

/// Members in the federation.
const MEMBERS: usize = 3;
/// Rounds of imports and a kill.
const ROUNDS: usize = 10;
/// The fewest rows an import's file holds; the seed adds up to [`EXTRA_ROWS`].
const MIN_ROWS: usize = 2_000;
/// The most rows the seed adds to [`MIN_ROWS`].
const EXTRA_ROWS: usize = 1_000;
/// The longest the kill comes after the last import of its round was acknowledged.
const MAX_KILL_DELAY_MS: usize = 3_000;
/// Accounts of each import another member watches.
const SAMPLE: usize = 8;

/// An imported account's handle: the seed's low bits, the round, the importer and its row;
/// at most 15 characters, as x handles are.
fn handle(seed: u64, round: usize, importer: usize, row: usize) -> String {
    format!("k{:x}_{round}{importer}_{row}", seed % 0x1000)
}

/// One acknowledged import: who imported, its job and how many rows its file held.
#[derive(Debug)]
struct Import {
    importer: usize,
    job: u64,
    rows: usize,
}

/// Runs the scenario; a failure carries the nodes' last log lines.
pub fn run(context: &Context) -> Result<(), Failure> {
    Federation::run_in_lab(context, MEMBERS, 1, |_, federation| steps(context, federation))
}

fn steps(context: &Context, federation: &mut Federation) -> Result<(), Failure> {
    let mut rng = context.rng();
    for index in 0..MEMBERS {
        federation.start(index)?;
    }
    let took = context.wait_for("every node ready with all its peers", || {
        Ok((0..MEMBERS).all(|i| {
            federation.status(i).is_some_and(|s| s["ready"] == true && s["peers"] == MEMBERS - 1)
        }))
    })?;
    context.say(format!("{MEMBERS} nodes meshed in {:.1} s", took.as_secs_f64()));
    for index in 0..MEMBERS {
        federation.add(index, &[handle(context.seed, 0, index, 0)], true)?;
    }
    federation.settle(context, "the first publications", || Ok(true))?;

    let mut watches = Vec::new();
    let mut imported = 0;
    for round in 1..=ROUNDS {
        let began = std::time::Instant::now();
        let imports = start_imports(context, federation, &mut rng, round)?;
        let victim = rng.below(MEMBERS);
        std::thread::sleep(Duration::from_millis(rng.below(MAX_KILL_DELAY_MS) as u64));
        let before = federation.own_feed(victim)?;
        federation.kill(victim)?;
        federation.start(victim)?;
        let what = format!("M{victim} ready again after its kill in round {round}");
        context.wait_for(&what, || {
            Ok(federation.status(victim).is_some_and(|s| s["ready"] == true))
        })?;
        let after = federation.own_feed(victim)?;
        if after < before {
            return Err(Failure::check(format!(
                "round {round}: M{victim}'s own feed went back across its kill: \
                 (generation, seq) {before:?} before, {after:?} after"
            )));
        }
        for import in &imports {
            finished(context, federation, import, round)?;
            imported += import.rows;
            watches.extend(watch_sample(context, federation, &mut rng, round, import)?);
        }
        let importers: Vec<String> = imports.iter().map(|i| format!("M{}", i.importer)).collect();
        context.say(format!(
            "round {round}: {} imported, M{victim} killed and restarted, own feed {before:?} -> \
             {after:?} ({:.1} s)",
            importers.join(" and "),
            began.elapsed().as_secs_f64()
        ));
    }
    let start = std::time::Instant::now();
    let (heads, _) =
        federation.settle(context, "every member to converge after the kills", || {
            federation.all_alerted(&watches)
        })?;
    context.say(format!(
        "{imported} accounts imported in {ROUNDS} rounds; every member converged on {} feeds \
         and {} sampled accounts were alerted {:.1} s after the last round",
        heads.len(),
        watches.len(),
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Draws the round's importers (one or two), writes each its file of distinct accounts and
/// starts its import with `--no-wait`: the job is acknowledged when the command returns.
fn start_imports(
    context: &Context,
    federation: &Federation,
    rng: &mut Rng,
    round: usize,
) -> Result<Vec<Import>, Failure> {
    let mut members: Vec<usize> = (0..MEMBERS).collect();
    rng.shuffle(&mut members);
    let count = 1 + rng.below(2);
    let mut imports = Vec::new();
    for &importer in &members[..count] {
        let rows = MIN_ROWS + rng.below(EXTRA_ROWS + 1);
        let file = context.work.join(format!("round{round}-m{importer}.csv"));
        let handles = (0..rows).map(|row| handle(context.seed, round, importer, row));
        let job = federation.import_no_wait(importer, &file, handles)?;
        imports.push(Import { importer, job, rows });
    }
    Ok(imports)
}

/// Waits for `import`'s job to end, and checks it ended `done` with every row of its file read
/// and added, nothing refused.
fn finished(
    context: &Context,
    federation: &Federation,
    import: &Import,
    round: usize,
) -> Result<(), Failure> {
    let (importer, id) = (import.importer, import.job.to_string());
    let mut job = Value::Null;
    let what = format!("import {id} at M{importer} (round {round}) to end");
    context.wait_for(&what, || {
        let Ok(printed) = federation.cli(importer, &["imports", "show", &id, "--json"], "") else {
            return Ok(false);
        };
        job = serde_json::from_str(printed.trim()).unwrap_or(Value::Null);
        Ok(["done", "failed", "refused", "undone"].iter().any(|state| job["state"] == *state))
    })?;
    let summary = &job["summary"];
    let counted = |field: &str| summary[field].as_u64().unwrap_or(u64::MAX);
    let rows = import.rows as u64;
    let whole = job["state"] == "done"
        && counted("records") == rows
        && counted("added") == rows
        && counted("refused") == 0
        && counted("to_share") == rows;
    if !whole {
        return Err(Failure::check(format!(
            "round {round}: import {id} at M{importer} of {rows} rows ended {}: {job}",
            job["state"]
        )));
    }
    Ok(())
}

/// Has a member other than the importer watch [`SAMPLE`] accounts of its file, drawn from the
/// seed: (watcher, record id, importer) for each.
fn watch_sample(
    context: &Context,
    federation: &Federation,
    rng: &mut Rng,
    round: usize,
    import: &Import,
) -> Result<Vec<(usize, u64, String)>, Failure> {
    let watcher = (import.importer + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
    let mut rows = std::collections::BTreeSet::new();
    while rows.len() < SAMPLE.min(import.rows) {
        rows.insert(rng.below(import.rows));
    }
    let handles: Vec<String> =
        rows.into_iter().map(|row| handle(context.seed, round, import.importer, row)).collect();
    let ids = federation.add(watcher, &handles, false)?;
    let publisher = federation.members[import.importer].id.clone();
    Ok(ids.into_iter().map(|id| (watcher, id, publisher.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_fit_an_x_handle_and_differ_by_round_and_importer() {
        for seed in [0, 7, 0xfff, 123_456_789, u64::MAX] {
            let handle = handle(seed, ROUNDS, MEMBERS - 1, MIN_ROWS + EXTRA_ROWS);
            assert!(handle.len() <= 15, "{handle}");
            assert!(handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{handle}");
        }
        assert_ne!(handle(1, 1, 0, 0), handle(1, 2, 0, 0));
        assert_ne!(handle(1, 1, 0, 0), handle(1, 1, 1, 0));
    }
}
