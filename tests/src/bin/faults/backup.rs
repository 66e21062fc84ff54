//! The `backup` scenario: a member's data directory is backed up by the README's runbook
//! ("Backup and restore": the node stopped, `own-feed.log` and `event-log.head` left out), the
//! member publishes more, and the copy is restored (the node stopped, the directory deleted,
//! the copy unpacked, `event-log.head` removed, no `own-feed.log`). The restored node must
//! start a new generation of its own feed because the store came from a backup, and a new
//! alert event incarnation; no member may hold fork evidence; every entry its peers held from
//! it before the restore is still held and still alerted at its watchers; and what it publishes
//! after the restore reaches every member.

use std::path::Path;
use std::process::Command;

use crate::federation::Federation;
use crate::lab::{bounded, complaint};
use crate::{Context, Failure};

/// Members in the federation.
const MEMBERS: usize = 3;
/// Accounts the restored member publishes in each phase.
const RECORDS: usize = 8;
/// The runbook's copy: the data directory without the own-feed log and the event log's mark.
const EXCLUDED: [&str; 2] = ["own-feed.log", "event-log.head"];

/// An account's handle: the seed's low bits, the phase and the publisher and its number.
fn handle(seed: u64, phase: &str, publisher: usize, number: usize) -> String {
    format!("b{:x}_{phase}{publisher}_{number}", seed % 0x1000)
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
    context.wait_for("every node ready with all its peers", || {
        Ok((0..MEMBERS).all(|i| {
            federation.status(i).is_some_and(|s| s["ready"] == true && s["peers"] == MEMBERS - 1)
        }))
    })?;
    let restored = rng.below(MEMBERS);
    let watcher = (restored + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
    let id = federation.members[restored].id.clone();
    let handles = |phase: &str, publisher: usize| -> Vec<String> {
        (0..RECORDS).map(|k| handle(context.seed, phase, publisher, k)).collect()
    };
    // Before the backup: every member publishes, the restored member watches what the watcher
    // published (so it holds alerts, and their events), and the watcher what it published.
    for index in 0..MEMBERS {
        federation.add(index, &handles("a", index), true)?;
    }
    let mut watches = federation.watch(watcher, &handles("a", restored), &id)?;
    let own_alerts = federation.add(restored, &handles("a", watcher), false)?;
    let watcher_id = federation.members[watcher].id.clone();
    let mut own_watches: Vec<(usize, u64, String)> =
        own_alerts.into_iter().map(|record| (restored, record, watcher_id.clone())).collect();
    federation.settle(context, "the first publications", || {
        Ok(federation.all_alerted(&watches)? && federation.all_alerted(&own_watches)?)
    })?;

    if !federation.stop(restored) {
        return Err(Failure::check(format!("{id} did not stop cleanly on SIGTERM")));
    }
    let copy = context.work.join("backup.tar");
    back_up(&federation.data_dir(restored), &copy)?;
    context.say(format!("{id} stopped and backed up by the runbook"));
    federation.start(restored)?;
    wait_ready(context, federation, restored, "after its backup")?;
    // After the backup: the member publishes what its copy will not hold.
    federation.add(restored, &handles("b", restored), true)?;
    watches.extend(federation.watch(watcher, &handles("b", restored), &id)?);
    let (held, _) = federation.settle(context, "the publications after the backup", || {
        federation.all_alerted(&watches)
    })?;
    let before = federation.own_feed(restored)?;
    let origin_head = |heads: &crate::federation::FeedHeads| {
        heads
            .values()
            .find(|(member, ..)| *member == id)
            .map(|(_, generation, seq)| (*generation, *seq))
    };
    let peers_held = origin_head(&held);
    context.say(format!("{id} published after its backup: own feed {before:?}"));

    if !federation.stop(restored) {
        return Err(Failure::check(format!("{id} did not stop cleanly on SIGTERM")));
    }
    let log_before = federation.log(restored).len();
    restore(&federation.data_dir(restored), &copy)?;
    federation.start(restored)?;
    wait_ready(context, federation, restored, "after its restore")?;
    let after = federation.own_feed(restored)?;
    if after.0 <= before.0 {
        return Err(Failure::check(format!(
            "{id} restored kept generation {} (before the restore {before:?}, after {after:?})",
            after.0
        )));
    }
    let log = federation.log(restored);
    let since = log.get(log_before..).unwrap_or_default();
    for (line, fields) in [
        ("own feed not fully confirmed: new generation", "restored=true"),
        ("event log: new incarnation", ""),
    ] {
        if !since.lines().any(|l| l.contains(line) && l.contains(fields)) {
            return Err(Failure::check(format!("{id}'s log after the restore lacks {line:?}")));
        }
    }
    context.say(format!("{id} restored: own feed {before:?} -> {after:?}, a new incarnation"));

    // After the restore: what it publishes reaches everyone; what its peers held of it stays.
    federation.add(restored, &handles("c", restored), true)?;
    watches.extend(federation.watch(watcher, &handles("c", restored), &id)?);
    let other = (0..MEMBERS).find(|&i| i != restored && i != watcher).unwrap_or(watcher);
    watches.extend(federation.watch(other, &handles("c", restored), &id)?);
    own_watches.extend(
        federation
            .add(restored, &handles("c", other), false)?
            .into_iter()
            .map(|record| (restored, record, federation.members[other].id.clone())),
    );
    federation.add(other, &handles("c", other), true)?;
    let (end, _) =
        federation.settle(context, "every member to converge after the restore", || {
            Ok(federation.all_alerted(&watches)? && federation.all_alerted(&own_watches)?)
        })?;
    let now_held = origin_head(&end);
    if now_held.is_none_or(|(generation, _)| Some(generation) <= peers_held.map(|h| h.0)) {
        return Err(Failure::check(format!(
            "the peers hold {id}'s feed at {now_held:?} after its restore, {peers_held:?} before"
        )));
    }
    context.say(format!(
        "every member converged; the peers held {id}'s feed at {peers_held:?} before the \
         restore and {now_held:?} after, every entry they held still alerted"
    ));
    Ok(())
}

/// Waits until member `index` is ready (its own-feed recovery done).
fn wait_ready(
    context: &Context,
    federation: &Federation,
    index: usize,
    when: &str,
) -> Result<(), Failure> {
    let what = format!("M{index} ready {when}");
    context.wait_for(&what, || Ok(federation.status(index).is_some_and(|s| s["ready"] == true)))?;
    Ok(())
}

/// The runbook's backup of a stopped node's data directory: a tar of it without
/// `own-feed.log` and `event-log.head`.
fn back_up(data: &Path, copy: &Path) -> Result<(), Failure> {
    let (parent, name) = split(data)?;
    let mut tar = bounded("tar");
    tar.arg("-C").arg(parent);
    for file in EXCLUDED {
        tar.arg(format!("--exclude={name}/{file}"));
    }
    run_tool(tar.arg("-cf").arg(copy).arg(name), "tar -c")
}

/// The runbook's restore: the data directory deleted first, the copy unpacked in its place,
/// `event-log.head` removed; and no `own-feed.log` may be there.
fn restore(data: &Path, copy: &Path) -> Result<(), Failure> {
    let (parent, _) = split(data)?;
    std::fs::remove_dir_all(data)
        .map_err(|error| Failure::setup(format!("deleting the data directory: {error}")))?;
    run_tool(bounded("tar").arg("-C").arg(parent).arg("-xf").arg(copy), "tar -x")?;
    let _ = std::fs::remove_file(data.join("event-log.head"));
    if data.join("own-feed.log").exists() {
        return Err(Failure::setup("the restored copy holds an own-feed.log"));
    }
    Ok(())
}

/// A directory's parent and name.
fn split(dir: &Path) -> Result<(&Path, &str), Failure> {
    let parent = dir.parent();
    let name = dir.file_name().and_then(|name| name.to_str());
    parent.zip(name).ok_or_else(|| Failure::setup(format!("no parent: {}", dir.display())))
}

/// Runs a command to its end; a failure names `what` and what it said.
fn run_tool(command: &mut Command, what: &str) -> Result<(), Failure> {
    let output =
        command.output().map_err(|error| Failure::setup(format!("cannot run {what}: {error}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Failure::setup(format!("{what}: {}", complaint(&output))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_fit_an_x_handle_and_differ_by_phase() {
        for seed in [0, 7, 0xfff, u64::MAX] {
            let handle = handle(seed, "c", MEMBERS - 1, RECORDS - 1);
            assert!(handle.len() <= 15, "{handle}");
        }
        assert_ne!(handle(1, "a", 0, 0), handle(1, "b", 0, 0));
    }
}
