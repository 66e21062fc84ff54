//! The members: their files, made by the README's ceremony with the `crossmatch` command line
//! (`init`, `federation new | add-member | sign | seal`, `member-record`, `secret new | seal |
//! open`), their `crossmatch run` processes, each in its own namespace, and the analyst's
//! command line run inside that namespace with `CROSSMATCH_API` and `CROSSMATCH_TOKEN`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Failure;
use crate::lab::{MESH_PORT, address, bounded, complaint, namespace};

/// The API's address inside every member's namespace (each has its own loopback).
pub const API: &str = "http://127.0.0.1:7480";
/// The longest one command-line call may take.
const CALL_LIMIT_SECS: &str = "30";
/// How long a node has to stop on SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// One alert as the campaign reads it: its local record ids, and the members it names.
pub type Alert = (Vec<u64>, Vec<String>);

/// One member: its id, directory, admin token and, while it runs, its node.
#[derive(Debug)]
pub struct Member {
    /// Its index: its namespace and address.
    pub index: usize,
    /// Its id in the roster (`M0`).
    pub id: String,
    dir: PathBuf,
    token: String,
    node: Option<Child>,
}

/// The federation: every member's files, and the binary they run.
#[derive(Debug)]
pub struct Federation {
    /// The `crossmatch` binary.
    bin: PathBuf,
    /// The members, by index.
    pub members: Vec<Member>,
    /// Environment variables every node is started with.
    pub node_env: Vec<(String, String)>,
}

impl Federation {
    /// Founds `members` on a fresh lab of `groups` bridges, runs `steps` over them, then stops
    /// the nodes and removes the lab whatever the end; a failure carries the nodes' last log
    /// lines.
    pub fn run_in_lab(
        context: &crate::Context,
        members: usize,
        groups: usize,
        steps: impl FnOnce(&crate::lab::Lab, &mut Self) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let lab = crate::lab::Lab::new(members, groups)?;
        let mut federation = Self::found(&context.bin, &context.work, members)?;
        let outcome = steps(&lab, &mut federation);
        let outcome = outcome.map_err(|failure| failure.with_logs(federation.log_tails(30)));
        federation.stop_all();
        drop(lab);
        outcome
    }

    /// Runs the ceremony for `count` members in `work`, each listening on its lab address and
    /// announcing it.
    pub fn found(bin: &Path, work: &Path, count: usize) -> Result<Self, Failure> {
        Self::found_announcing(bin, work, count, &|index| {
            format!("/ip4/{}/tcp/{MESH_PORT}", address(index))
        })
    }

    /// Runs the ceremony for `count` members in `work`, each listening on its lab address and
    /// announcing `announced(index)` in its record (a relay's address for it): what the
    /// others dial.
    pub fn found_announcing(
        bin: &Path,
        work: &Path,
        count: usize,
        announced: &dyn Fn(usize) -> String,
    ) -> Result<Self, Failure> {
        Self::found_borrowing(bin, work, count, announced, &[])
    }

    /// As [`Self::found_announcing`], but members `0..lent.len()` take the keys and cards of
    /// `lent`'s members (their node and governance keys, their `member.toml`): a federation
    /// whose roster names another's nodes by their real keys.
    pub fn found_borrowing(
        bin: &Path,
        work: &Path,
        count: usize,
        announced: &dyn Fn(usize) -> String,
        lent: &[Member],
    ) -> Result<Self, Failure> {
        let mut federation =
            Self { bin: bin.to_owned(), members: Vec::new(), node_env: Vec::new() };
        for index in 0..count {
            federation.init(work, index)?;
        }
        for (member, lender) in federation.members.iter().zip(lent) {
            for file in ["node.key", "governance.key", "member.toml"] {
                std::fs::copy(lender.dir.join(file), member.dir.join(file))
                    .map_err(|error| Failure::setup(format!("borrowing {file}: {error}")))?;
            }
        }
        let roster = work.join("roster.toml");
        let secret = work.join("federation.secret");
        federation.tool(work, &["secret", "new", "--out", path(&secret)])?;
        federation.tool(
            work,
            &["federation", "new", "--secret", path(&secret), "--out", path(&roster)],
        )?;
        for member in &federation.members {
            let card = member.dir.join("member.toml");
            let name = format!("unit {}", member.id);
            let args = ["federation", "add-member", "--roster", path(&roster), "--card"];
            federation.tool(work, &[&args[..], &[path(&card), "--name", &name]].concat())?;
        }
        for member in &federation.members {
            let key = member.dir.join("node.key");
            let governance = member.dir.join("governance.key");
            let at = announced(member.index);
            let sign = [
                "federation",
                "sign",
                "--roster",
                path(&roster),
                "--governance-key",
                path(&governance),
                "--member",
                &member.id,
            ];
            federation.tool(work, &sign)?;
            let record = [
                "member-record",
                "--roster",
                path(&roster),
                "--key",
                path(&key),
                "--seq",
                "1",
                "--address",
                &at,
                "--contact",
                "duty desk",
            ];
            federation.tool(work, &record)?;
        }
        let sealed_roster = work.join("roster.final.toml");
        let sealed = work.join("sealed");
        let seal = ["federation", "seal", "--roster", path(&roster), "--out", path(&sealed_roster)];
        federation.tool(work, &seal)?;
        let seal_secret = [
            "secret",
            "seal",
            "--roster",
            path(&sealed_roster),
            "--secret",
            path(&secret),
            "--out-dir",
            path(&sealed),
        ];
        federation.tool(work, &seal_secret)?;
        for member in &federation.members {
            let own_roster = member.dir.join("roster.toml");
            std::fs::copy(&sealed_roster, &own_roster)
                .map_err(|error| Failure::setup(format!("copying the roster: {error}")))?;
            let sealed_copy = sealed.join(format!("{}.sealed", member.id));
            let key = member.dir.join("node.key");
            let secret = member.dir.join("federation.secret");
            let open = [
                "secret",
                "open",
                "--sealed",
                path(&sealed_copy),
                "--key",
                path(&key),
                "--roster",
                path(&own_roster),
                "--out",
                path(&secret),
            ];
            federation.tool(work, &open)?;
        }
        Ok(federation)
    }

    /// `crossmatch init` for member `index`, its config tuned for a test's pace (a pull every
    /// 2 s, a 2 s recovery deadline); keeps the admin token `init` printed.
    fn init(&mut self, work: &Path, index: usize) -> Result<(), Failure> {
        let id = format!("M{index}");
        let dir = work.join(format!("m{index}"));
        let listen = format!("/ip4/{}/tcp/{MESH_PORT}", address(index));
        let api = API.trim_start_matches("http://");
        let init = ["init", "--member", &id, "--dir", path(&dir), "--listen", &listen];
        let printed = self.tool(work, &[&init[..], &["--api-listen", api]].concat())?;
        let token = printed
            .lines()
            .find_map(|line| line.split_once("admin bearer token").map(|(_, rest)| rest))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, token)| token.trim().to_owned())
            .ok_or_else(|| Failure::setup(format!("init printed no admin token for {id}")))?;
        let config = dir.join("node.toml");
        let text = std::fs::read_to_string(&config)
            .map_err(|error| Failure::setup(format!("reading {id}'s config: {error}")))?;
        let tuned = with_top_level(&text, "sync_interval_secs = 2\nrecovery_deadline_secs = 2")
            .ok_or_else(|| Failure::setup(format!("{id}'s config has no table")))?;
        std::fs::write(&config, tuned)
            .map_err(|error| Failure::setup(format!("writing {id}'s config: {error}")))?;
        self.members.push(Member { index, id, dir, token, node: None });
        Ok(())
    }

    /// Runs a ceremony command in `work`; its stdout, or a failure with what it said.
    fn tool(&self, work: &Path, args: &[&str]) -> Result<String, Failure> {
        let output = bounded(&self.bin)
            .args(args)
            .current_dir(work)
            .output()
            .map_err(|error| Failure::setup(format!("cannot run {:?}: {error}", self.bin)))?;
        if !output.status.success() {
            return Err(Failure::setup(format!(
                "crossmatch {}: {}",
                args.first().unwrap_or(&""),
                complaint(&output)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts member `index`'s node in its namespace, its log in `node.log` beside its files.
    pub fn start(&mut self, index: usize) -> Result<(), Failure> {
        let config = self.config_file(index);
        let member = &mut self.members[index];
        // Appended to: a restarted node's log follows its earlier runs'.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member.dir.join("node.log"))
            .map_err(|error| Failure::setup(format!("creating {}'s log: {error}", member.id)))?;
        // `ip netns exec` becomes the node: the child is the node itself.
        let child = Command::new("ip")
            .args(["netns", "exec", &namespace(index)])
            .arg(&self.bin)
            .args(["run", "--config", path(&config)])
            .envs(self.node_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| Failure::setup(format!("starting {}'s node: {error}", member.id)))?;
        member.node = Some(child);
        Ok(())
    }

    /// Member `index`'s admin token, for a client of its API other than the command line.
    pub fn token(&self, index: usize) -> &str {
        &self.members[index].token
    }

    /// Member `index`'s config file, which its node reads at each start.
    pub fn config_file(&self, index: usize) -> PathBuf {
        self.members[index].dir.join("node.toml")
    }

    /// Member `index`'s data directory (`data_dir` in its config): the store, the own-feed
    /// log, the audit log and the import spool.
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.members[index].dir.join("data")
    }

    /// Kills member `index`'s node with SIGKILL, as a power cut would, and reaps it.
    pub fn kill(&mut self, index: usize) -> Result<(), Failure> {
        let member = &mut self.members[index];
        let Some(mut node) = member.node.take() else {
            return Err(Failure::setup(format!("{}'s node is not running", member.id)));
        };
        node.kill().map_err(|error| Failure::setup(format!("killing {}: {error}", member.id)))?;
        let _ = node.wait();
        Ok(())
    }

    /// Stops member `index`'s node with SIGTERM, as an operator would, SIGKILL past
    /// [`STOP_LIMIT`]; whether it stopped by itself, cleanly (exit 0).
    pub fn stop(&mut self, index: usize) -> bool {
        let Some(mut node) = self.members[index].node.take() else { return false };
        let _ = bounded("kill").args(["-TERM", &node.id().to_string()]).status();
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = node.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = node.kill();
        let _ = node.wait();
        false
    }

    /// Whether member `index`'s node process is still running (it did not exit by itself).
    pub fn running(&mut self, index: usize) -> bool {
        self.members[index].node.as_mut().is_some_and(|node| matches!(node.try_wait(), Ok(None)))
    }

    /// The process id of member `index`'s node, while it runs (`ip netns exec` becomes the
    /// node, so it is the node's own).
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].node.as_ref().map(Child::id)
    }

    /// Member `index`'s whole node log.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.members[index].dir.join("node.log")).unwrap_or_default()
    }

    /// Stops every node with SIGTERM, then SIGKILL past [`STOP_LIMIT`].
    pub fn stop_all(&mut self) {
        for member in &self.members {
            if let Some(node) = &member.node {
                let _ = bounded("kill").args(["-TERM", &node.id().to_string()]).status();
            }
        }
        let deadline = Instant::now() + STOP_LIMIT;
        for member in &mut self.members {
            let Some(mut node) = member.node.take() else { continue };
            while matches!(node.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = node.kill();
            let _ = node.wait();
        }
    }

    /// The analyst's command line at member `index`, inside its namespace, with `input` on
    /// stdin; its stdout, or a failure with what it said.
    pub fn cli(&self, index: usize, args: &[&str], input: &str) -> Result<String, Failure> {
        self.cli_within(index, args, input, CALL_LIMIT_SECS)
    }

    /// [`Federation::cli`] bounded by `limit_secs` rather than the usual 30 s (an import).
    pub fn cli_within(
        &self,
        index: usize,
        args: &[&str],
        input: &str,
        limit_secs: &str,
    ) -> Result<String, Failure> {
        let member = &self.members[index];
        let mut child = Command::new("ip")
            .args(["netns", "exec", &namespace(index), "timeout", limit_secs])
            .arg(&self.bin)
            .args(args)
            .env("CROSSMATCH_API", API)
            .env("CROSSMATCH_TOKEN", &member.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| Failure::setup(format!("cannot run the command line: {error}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|error| Failure::setup(format!("the command line: {error}")))?;
        if !output.status.success() {
            return Err(Failure::setup(format!(
                "crossmatch {} at {}: {} {}",
                args.join(" "),
                member.id,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `crossmatch alerts --follow` at member `index`, its JSON lines on the child's stdout;
    /// the caller stops it.
    pub fn follow(&self, index: usize) -> Result<Child, Failure> {
        let member = &self.members[index];
        Command::new("ip")
            .args(["netns", "exec", &namespace(index)])
            .arg(&self.bin)
            .args(["alerts", "--follow"])
            .env("CROSSMATCH_API", API)
            .env("CROSSMATCH_TOKEN", &member.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| Failure::setup(format!("following {}'s alerts: {error}", member.id)))
    }

    /// Member `index`'s status (`GET /v1/status`, what `crossmatch status --json` prints),
    /// read by the campaign's own [`probe`](crate::probe), or `None` while its API does not
    /// answer.
    pub fn status(&self, index: usize) -> Option<Value> {
        let body = crate::probe::get(&namespace(index), &self.members[index].token, "/v1/status");
        serde_json::from_str(&body.ok()?).ok()
    }

    /// Adds one account record per handle at member `index` (shared, or watched only); the
    /// new records' ids, in the handles' order.
    pub fn add(&self, index: usize, handles: &[String], share: bool) -> Result<Vec<u64>, Failure> {
        self.add_expiring(index, handles, share, None)
    }

    /// [`add`](Self::add), the records expiring after `days` of the member's clock when given,
    /// instead of after [`RECORD_DEFAULTS`]' 30.
    pub fn add_expiring(
        &self,
        index: usize,
        handles: &[String],
        share: bool,
        days: Option<u64>,
    ) -> Result<Vec<u64>, Failure> {
        let days = days.map(|days| days.to_string());
        let mut args = vec!["records", "add", "--json", "--kind", "account", "--platform", "x"];
        let mut replaced = false;
        for pair in RECORD_DEFAULTS.chunks(2) {
            let value = match (pair[0], &days) {
                ("--expires-in-days", Some(days)) => {
                    replaced = true;
                    days.as_str()
                }
                _ => pair[1],
            };
            args.extend([pair[0], value]);
        }
        if days.is_some() && !replaced {
            return Err(Failure::setup("RECORD_DEFAULTS names no --expires-in-days to replace"));
        }
        if !share {
            args.push("--no-share");
        }
        let printed = self.cli(index, &args, &(handles.join("\n") + "\n"))?;
        let ids: Vec<u64> = printed
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|line| line["id"].as_u64())
            .collect();
        if ids.len() != handles.len() {
            return Err(Failure::setup(format!(
                "{} added {} of {} records",
                self.members[index].id,
                ids.len(),
                handles.len()
            )));
        }
        Ok(ids)
    }

    /// Writes `handles` as a CSV of x accounts at `file` and imports it shared at member
    /// `index` with `--no-wait`: the job's id, acknowledged once the command returns.
    pub fn import_no_wait(
        &self,
        index: usize,
        file: &Path,
        handles: impl IntoIterator<Item = String>,
    ) -> Result<u64, Failure> {
        let mut text = String::from("kind;platform;value\n");
        for handle in handles {
            text.push_str("account;x;");
            text.push_str(&handle);
            text.push('\n');
        }
        std::fs::write(file, text)
            .map_err(|error| Failure::setup(format!("writing {}: {error}", file.display())))?;
        let printed = self.cli(index, &import_args(path(file), &["--no-wait", "--json"]), "")?;
        serde_json::from_str::<Value>(printed.trim())
            .ok()
            .and_then(|answer| answer["id"].as_u64())
            .ok_or_else(|| Failure::setup(format!("the import at M{index} printed no job id")))
    }

    /// Has `watcher` watch `handles` (`--no-share`), published by the member `publisher`
    /// names: the watches, (watcher, record id, publisher).
    pub fn watch(
        &self,
        watcher: usize,
        handles: &[String],
        publisher: &str,
    ) -> Result<Vec<(usize, u64, String)>, Failure> {
        let ids = self.add(watcher, handles, false)?;
        Ok(ids.into_iter().map(|id| (watcher, id, publisher.to_owned())).collect())
    }

    /// Member `index`'s own feed position, or a failure when its API does not answer.
    pub fn own_feed(&self, index: usize) -> Result<(u64, u64), Failure> {
        self.status(index)
            .as_ref()
            .and_then(own_position)
            .ok_or_else(|| Failure::check(format!("M{index}'s API does not answer")))
    }

    /// `crossmatch alerts --json` at member `index`: each alert's local records and the
    /// members it names.
    pub fn alerts(&self, index: usize) -> Result<Vec<Alert>, Failure> {
        let printed = self.cli(index, &["alerts", "--json"], "")?;
        let listing: Value = serde_json::from_str(printed.trim())
            .map_err(|error| Failure::setup(format!("alerts --json: {error}")))?;
        let alerts = listing["alerts"].as_array().cloned().unwrap_or_default();
        Ok(alerts
            .iter()
            .map(|alert| {
                let records = numbers(&alert["records"]);
                let members = alert["counterparts"]
                    .as_array()
                    .map(|all| {
                        all.iter().filter_map(|c| c["member"].as_str().map(str::to_owned)).collect()
                    })
                    .unwrap_or_default();
                (records, members)
            })
            .collect())
    }

    /// The last `lines` lines of every node's log, for a failure's report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for member in &self.members {
            let log = std::fs::read_to_string(member.dir.join("node.log")).unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- the last lines of {}'s node log\n", member.id));
            for line in &all[all.len().saturating_sub(lines)..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Each feed's head a member holds: origin → (its member, generation, seq).
pub type FeedHeads = std::collections::BTreeMap<String, (String, u64, u64)>;

/// What every record the campaign makes carries: its category, handling, evaluation and expiry.
pub const RECORD_DEFAULTS: [&str; 8] = [
    "--category",
    "terrorism/propaganda",
    "--handling",
    "H1",
    "--evaluation",
    "B2",
    "--expires-in-days",
    "30",
];

/// `text`, a node config, with `lines` added at its top level: before its first table.
/// `None` when it has no table.
pub fn with_top_level(text: &str, lines: &str) -> Option<String> {
    let table = text.find("\n[")?;
    Some(format!("{}\n{lines}\n{}", &text[..table], &text[table..]))
}

/// `crossmatch import FILE` as the campaign runs it: shared accounts with [`RECORD_DEFAULTS`],
/// then `more` (`--no-wait`, `--dry-run`, `--json`…).
pub fn import_args<'a>(file: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["import", file, "--share"];
    args.extend(RECORD_DEFAULTS);
    args.extend_from_slice(more);
    args
}

/// The heads of a status answer.
pub fn feed_heads(status: &Value) -> FeedHeads {
    let all = status["heads"].as_array().cloned().unwrap_or_default();
    all.iter()
        .filter_map(|head| {
            let origin = head["origin"].as_str()?.to_owned();
            let member = head["member"].as_str().unwrap_or("?").to_owned();
            Some((origin, (member, head["generation"].as_u64()?, head["seq"].as_u64()?)))
        })
        .collect()
}

/// A member's own feed as its status reports it: (generation, seq), in the order a feed grows.
pub fn own_position(status: &Value) -> Option<(u64, u64)> {
    Some((status["own_feed"]["generation"].as_u64()?, status["own_feed"]["seq"].as_u64()?))
}

impl Federation {
    /// Every member's status, read at once (one command line each), `None` where the API did
    /// not answer.
    pub fn statuses(&self) -> Vec<Option<Value>> {
        std::thread::scope(|scope| {
            let reads: Vec<_> = (0..self.members.len())
                .map(|index| scope.spawn(move || self.status(index)))
                .collect();
            reads.into_iter().map(|read| read.join().ok().flatten()).collect()
        })
    }

    /// The heads every member holds when the federation is quiet: every member answers, holds
    /// the same head of every member's feed with an empty outbox, and is connected to every
    /// other member. Otherwise what was seen instead.
    pub fn quiet_heads(&self) -> Result<FeedHeads, String> {
        let count = self.members.len();
        let mut first: Option<FeedHeads> = None;
        for (index, status) in self.statuses().into_iter().enumerate() {
            let Some(status) = status else { return Err(format!("M{index} did not answer")) };
            let heads = feed_heads(&status);
            let quiet = status["outbox"] == 0 && status["peers"] == count - 1;
            if !quiet || heads.len() != count || first.as_ref().is_some_and(|f| *f != heads) {
                return Err(format!(
                    "M{index}: outbox {}, peers {}, heads {heads:?}, the first's {first:?}",
                    status["outbox"], status["peers"]
                ));
            }
            first = Some(heads);
        }
        Ok(first.unwrap_or_default())
    }

    /// Waits until the federation is quiet ([`Federation::quiet_heads`]) and `also` holds;
    /// then checks that no member holds fork evidence or counts a ban, a fork, a rejected
    /// batch, a skipped entry or a dropped held batch. The heads agreed on, and the time the
    /// wait took.
    pub fn settle(
        &self,
        context: &crate::Context,
        what: &str,
        mut also: impl FnMut() -> Result<bool, Failure>,
    ) -> Result<(FeedHeads, Duration), Failure> {
        let mut agreed = FeedHeads::new();
        let mut last = String::from("no member answered");
        let waited = context.wait_for(what, || match self.quiet_heads() {
            Err(seen) => {
                last = seen;
                Ok(false)
            }
            Ok(heads) => {
                agreed = heads;
                last = String::from("the heads agreed, the other condition did not hold");
                also()
            }
        });
        let took = waited
            .map_err(|failure| Failure::check(format!("{}; last seen: {last}", failure.message)))?;
        for index in 0..self.members.len() {
            self.no_faults(index)?;
        }
        Ok((agreed, took))
    }

    /// Checks that member `index` holds no fork evidence and counts no ban, fork, rejected
    /// batch, skipped entry or dropped held batch.
    pub fn no_faults(&self, index: usize) -> Result<(), Failure> {
        let id = &self.members[index].id;
        let status =
            self.status(index).ok_or_else(|| Failure::check(format!("{id}'s API stopped")))?;
        for (field, value) in [
            ("forks", &status["forks"]),
            ("bans", &status["bans"]),
            ("counters.forks", &status["counters"]["forks"]),
            ("counters.rejected", &status["counters"]["rejected"]),
            ("counters.skipped_entries", &status["counters"]["skipped_entries"]),
            ("counters.held_dropped", &status["counters"]["held_dropped"]),
        ] {
            if value != 0 {
                return Err(Failure::check(format!("{id}'s {field} is {value}: {status}")));
            }
        }
        Ok(())
    }

    /// Whether every watched record is alerted at its watcher naming its publisher: `watches`
    /// are (watcher, record id, publisher's member id).
    pub fn all_alerted(&self, watches: &[(usize, u64, String)]) -> Result<bool, Failure> {
        let watchers: std::collections::BTreeSet<usize> = watches.iter().map(|w| w.0).collect();
        for watcher in watchers {
            let alerts = self.alerts(watcher)?;
            let matched = watches.iter().filter(|w| w.0 == watcher).all(|(_, id, publisher)| {
                alerts
                    .iter()
                    .any(|(records, members)| records.contains(id) && members.contains(publisher))
            });
            if !matched {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn numbers(value: &Value) -> Vec<u64> {
    value.as_array().map(|all| all.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

/// A path as an argument (the campaign's paths are its own, always UTF-8).
fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}
