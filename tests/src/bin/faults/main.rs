//! `crossmatch-faults`: the fault campaign (docs/TESTING.md). Each scenario runs real
//! `crossmatch run` processes, one per network namespace, founded by the README's ceremony and
//! driven by the analyst's command line, breaks something between or under them, and checks
//! that nothing was lost. Run as root (namespaces):
//!
//! ```text
//! crossmatch-faults [--bin target/debug/crossmatch] [--seed N] <partition | kill | backup | diskfull | slow | floods | all>
//! crossmatch-faults europe [--members 28] [--zero-delay]     # a measurement, not in `all`
//! crossmatch-faults soak [--soak-minutes 60] [--soak-csv soak.csv]     # likewise
//! ```
//!
//! Every wait is bounded; a failure prints the scenario, the seed and what it waited for, and
//! exits 1 (2 when the campaign could not run at all). The namespaces and the nodes are removed
//! at the end, on a failure, a panic, Ctrl-C or SIGTERM, and at the next start when a run was
//! killed outright.

mod backup;
mod diskfull;
mod europe;
mod federation;
mod flood_helper;
mod floods;
mod kill;
mod lab;
mod partition;
mod probe;
mod slow;
mod soak;
mod wan;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

/// The campaign's command line.
#[derive(Debug, Parser)]
#[command(name = "crossmatch-faults", about = "Runs the fault campaign's scenarios (as root).")]
struct Args {
    /// The scenario to run (`partition`, `kill`, `backup`, `diskfull`, `slow`, `floods`), `all`
    /// of them, or a measurement (`europe`, `soak`).
    scenario: String,
    /// The seed of every choice a scenario draws (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The `crossmatch` binary the members run.
    #[arg(long, default_value = "target/debug/crossmatch")]
    bin: PathBuf,
    /// The longest any one wait may take, in seconds.
    #[arg(long, default_value_t = 120)]
    give_up_secs: u64,
    /// The `crossmatch-relay` binary of the WAN scenarios (default: beside this one).
    #[arg(long)]
    relay: Option<PathBuf>,
    #[command(flatten)]
    europe: europe::EuropeArgs,
    #[command(flatten)]
    soak: soak::SoakArgs,
    #[command(flatten)]
    flood: flood_helper::FloodArgs,
}

/// A scenario: its name, and what runs it.
type Scenario = (&'static str, fn(&Context) -> Result<(), Failure>);

/// Every scenario, in the order `all` runs them.
const SCENARIOS: &[Scenario] = &[
    ("partition", partition::run),
    ("kill", kill::run),
    ("backup", backup::run),
    ("diskfull", diskfull::run),
    ("slow", slow::run),
    ("floods", floods::run),
];

/// Measurements run only by name, never by `all`.
const MEASUREMENTS: &[Scenario] = &[("europe", europe::run), ("soak", soak::run)];

/// What a scenario runs with.
#[derive(Debug)]
pub struct Context {
    /// The scenario's name, for what it prints.
    pub name: &'static str,
    /// The seed of its choices.
    pub seed: u64,
    /// The `crossmatch` binary.
    pub bin: PathBuf,
    /// Its directory: the members' files and logs.
    pub work: PathBuf,
    /// The longest any one wait may take.
    pub give_up: Duration,
    /// The `crossmatch-relay` binary.
    pub relay: PathBuf,
    /// The `europe` measurement's options.
    pub europe: europe::EuropeArgs,
    /// The `soak` measurement's options.
    pub soak: soak::SoakArgs,
}

impl Context {
    /// Prints one line of the scenario's progress.
    pub fn say(&self, text: impl std::fmt::Display) {
        println!("faults {}: {text}", self.name);
    }

    /// A generator of the scenario's choices, from its seed.
    pub fn rng(&self) -> Rng {
        Rng(self.seed)
    }

    /// Polls `ready` every half second until it holds, for at most [`Context::give_up`]; the
    /// time it took, or a failure naming `what`.
    pub fn wait_for(
        &self,
        what: &str,
        mut ready: impl FnMut() -> Result<bool, Failure>,
    ) -> Result<Duration, Failure> {
        let start = Instant::now();
        loop {
            if ready()? {
                return Ok(start.elapsed());
            }
            if start.elapsed() > self.give_up {
                return Err(Failure::timeout(what, self.give_up));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Why a scenario failed, and the nodes' last log lines when it had nodes.
#[derive(Debug)]
pub struct Failure {
    message: String,
    logs: String,
}

impl Failure {
    /// The campaign could not do what it meant to (a command failed).
    pub fn setup(message: impl Into<String>) -> Self {
        Self { message: message.into(), logs: String::new() }
    }

    /// A check that did not hold.
    pub fn check(message: impl Into<String>) -> Self {
        Self::setup(message)
    }

    /// A wait that ran out.
    pub fn timeout(what: &str, limit: Duration) -> Self {
        Self::setup(format!("timed out after {} s waiting for {what}", limit.as_secs()))
    }

    /// The same failure with the nodes' logs attached.
    pub fn with_logs(self, logs: String) -> Self {
        Self { logs, ..self }
    }
}

/// The scenarios' random choices: splitmix64, so a seed replays a run's choices exactly.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// `items` in a random order.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Milliseconds in a day: a node counts its quota and its retention per UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// The system clock in ms since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// Removes the namespaces and stops the nodes on Ctrl-C or SIGTERM, then exits 130.
fn clean_up_on_signals(work: PathBuf) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let Ok(runtime) = runtime else { return };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut interrupt), Ok(mut terminate)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
            else {
                return;
            };
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            eprintln!("crossmatch-faults: interrupted; removing the namespaces and the nodes");
            lab::sweep();
            let _ = std::fs::remove_dir_all(&work);
            let _ = std::fs::remove_file(lab::LOCK_FILE);
            std::process::exit(130);
        });
    });
}

/// Checks what the campaign needs before it starts; a sentence saying what is missing.
fn preflight(bin: &Path) -> Result<(), String> {
    let user = std::process::Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&user.stdout).trim() != "0" {
        return Err("needs root to create network namespaces".into());
    }
    for tool in ["ip", "timeout", "kill", "tc", "ss"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("{tool} not found (iproute2, coreutils)"));
        }
    }
    if !bin.is_file() {
        return Err(format!("no crossmatch binary at {} (cargo build first)", bin.display()));
    }
    Ok(())
}

/// `crossmatch-relay` in this binary's directory (the same target directory).
fn relay_beside_this_binary() -> PathBuf {
    let this = std::env::current_exe().unwrap_or_default();
    this.with_file_name("crossmatch-relay")
}

/// Checks the relay exists when a chosen scenario runs one.
fn relay_found(relay: &Path, chosen: &[&Scenario]) -> Result<(), String> {
    let needs = chosen.iter().any(|(name, _)| ["slow", "europe"].contains(name));
    if needs && !relay.is_file() {
        return Err(format!(
            "no crossmatch-relay at {} (cargo build -p crossmatch-tests --bin crossmatch-relay, \
             or --relay)",
            relay.display()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.scenario == flood_helper::HELPER {
        // A load the `floods` scenario runs inside a namespace: no lock, no sweep.
        return flood_helper::main(&args.flood, args.seed.unwrap_or(1));
    }
    let chosen: Vec<&Scenario> = if args.scenario == "all" {
        SCENARIOS.iter().collect()
    } else {
        SCENARIOS.iter().chain(MEASUREMENTS).filter(|(name, _)| *name == args.scenario).collect()
    };
    if chosen.is_empty() {
        let names: Vec<&str> =
            SCENARIOS.iter().chain(MEASUREMENTS).map(|(name, _)| *name).collect();
        eprintln!("crossmatch-faults: no scenario {:?}; one of {names:?} or all", args.scenario);
        return ExitCode::from(2);
    }
    let relay = args.relay.clone().unwrap_or_else(relay_beside_this_binary);
    if let Err(why) = preflight(&args.bin).and_then(|()| relay_found(&relay, &chosen)) {
        eprintln!("crossmatch-faults: {why}");
        return ExitCode::from(2);
    }
    let bin = std::fs::canonicalize(&args.bin).unwrap_or(args.bin.clone());
    let seed = args.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map(|d| d.as_nanos() as u64).unwrap_or(1) % 1_000_000
    });
    let _lock = match lab::CampaignLock::take() {
        Ok(lock) => lock,
        Err(why) => {
            eprintln!("crossmatch-faults: {why}");
            return ExitCode::from(2);
        }
    };
    let root = lab::root();
    // A killed run's leftovers go first: its nodes, namespaces and files.
    lab::sweep();
    let _ = std::fs::remove_dir_all(&root);
    clean_up_on_signals(root.clone());
    let give_up = Duration::from_secs(args.give_up_secs);
    for (name, run) in chosen {
        let work = root.join(name);
        if let Err(error) = std::fs::create_dir_all(&work) {
            eprintln!("crossmatch-faults: cannot create {}: {error}", work.display());
            return ExitCode::from(2);
        }
        let context = Context {
            name,
            seed,
            bin: bin.clone(),
            work,
            give_up,
            relay: relay.clone(),
            europe: args.europe.clone(),
            soak: args.soak.clone(),
        };
        context.say(format!("seed {seed}"));
        let start = Instant::now();
        match run(&context) {
            Ok(()) => context.say(format!("passed in {:.1} s", start.elapsed().as_secs_f64())),
            Err(failure) => {
                eprint!("{}", failure.logs);
                eprintln!(
                    "crossmatch-faults: FAILED: scenario {name}, seed {seed}: {}\n\
                     (replay: crossmatch-faults {name} --seed {seed}; files kept in {})",
                    failure.message,
                    context.work.display()
                );
                lab::sweep();
                return ExitCode::from(1);
            }
        }
    }
    lab::sweep();
    let _ = std::fs::remove_dir_all(&root);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::{Args, Rng};
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_well_formed_and_takes_each_measurements_options() {
        Args::command().debug_assert();
        let args = Args::parse_from([
            "crossmatch-faults",
            "soak",
            "--soak-minutes",
            "3",
            "--members",
            "6",
            "--soak-csv",
            "out.csv",
        ]);
        assert_eq!((args.soak.soak_minutes, args.europe.members), (3, 6));
        assert_eq!(args.soak.soak_csv, std::path::PathBuf::from("out.csv"));
    }

    #[test]
    fn a_seed_replays_its_choices_and_a_shuffle_keeps_every_item() {
        let draw = |seed| {
            let mut items: Vec<usize> = (0..6).collect();
            Rng(seed).shuffle(&mut items);
            items
        };
        assert_eq!(draw(42), draw(42), "the same seed, the same order");
        assert!((0..50).any(|seed| draw(seed) != draw(42)), "seeds differ in what they draw");
        let mut sorted = draw(7);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>());
    }
}
