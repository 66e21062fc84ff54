//! The `crossmatch` binary: parses the command line, sets up logging, calls the library and
//! prints errors. Exit codes: 0 success, 1 failure, 2 bad usage or invalid input; the commands
//! that talk to a node's API (`cli.rs`) add 3 authentication, 4 not found, 5 retryable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crossmatch_node::canon_cli::{self, IdentifierArgs, Output, TokenArgs};
use crossmatch_node::config::LogLevel;
use crossmatch_node::{api, audit, notify, reload};
use crossmatch_node::{federation_cli, init_cli, keyfile};
use crossmatch_protocol::{EpochKey, FederationSecret, SigningKey};

/// How long a stopping node waits, from the stop, for its API and tasks to drain: inside the
/// service unit's `TimeoutStopSec=30`.
const STOP_DRAIN: std::time::Duration = std::time::Duration::from_secs(25);

/// crossmatch: find shared propaganda accounts across member units without sharing raw data.
#[derive(Debug, Parser)]
#[command(name = "crossmatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up a member: a new directory (mode 0700) with the node key, a governance key (keep it
    /// offline), a commented config and an API tokens file with one admin, whose token is
    /// printed once. Prints the public keys and fingerprints to send to the coordinator.
    Init {
        /// The member's id in the roster (`DE`): 1-32 of A-Z a-z 0-9 - _.
        #[arg(long)]
        member: String,
        /// The directory to create (refused if it exists and is not empty).
        #[arg(long)]
        dir: PathBuf,
        /// The mesh address the config listens on.
        #[arg(long, default_value = init_cli::DEFAULT_LISTEN)]
        listen: String,
        /// The API address the config serves on (loopback only).
        #[arg(long, default_value = init_cli::DEFAULT_API_LISTEN)]
        api_listen: std::net::SocketAddr,
    },
    /// The federation's roster: a new federation, members added and removed, signatures by
    /// governance keys, the final (sealed) file, and a roster shown for the phone check.
    Federation {
        #[command(subcommand)]
        command: federation_cli::FederationCommand,
    },
    /// This node's key: `node-key rotate` changes it routinely (the node stopped), writing a
    /// key change signed by the old and the new key for the coordinator.
    NodeKey {
        #[command(subcommand)]
        command: NodeKeyCommand,
    },
    /// Sign this member's own record (addresses, contact) with its node key into the roster
    /// file; no governance signatures needed.
    MemberRecord(federation_cli::MemberRecordArgs),
    /// Generate a member's Ed25519 key; prints its public key and fingerprint.
    Keygen {
        /// Where to write the key (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Manage the federation's shared token secret.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Print the canonical form of each identifier, one per line. Refused inputs are reported
    /// on stderr by position and rule; the exit code is then 2.
    Canon(IdentifierArgs),
    /// Print the token (hex) of each identifier under the federation secret and an epoch.
    /// Refused inputs are reported as by `canon`.
    Token(TokenArgs),
    /// Run a node: `crossmatch run --config FILE` (stops cleanly on SIGTERM or Ctrl-C; SIGHUP
    /// reloads the API tokens file and the log level).
    Run {
        /// The node's TOML configuration file (mode 0600).
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local federation (five members by default) with generated lists and show
    /// matches surfacing, a real outage with catch-up by sync, a referral status, a retraction
    /// and the hunt, then a summary; the members stay up, each with its API, until Ctrl-C.
    Demo(DemoArgs),
    /// Manage the local HTTP API's bearer tokens.
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// Manage the webhook's signing keys (`new --out FILE`: a 32-byte key, 0600, nothing
    /// printed); a new file takes effect at the node's next start.
    WebhookSecret {
        #[command(subcommand)]
        command: WebhookSecretCommand,
    },
    /// Send observation lines (JSON lines; `-` reads stdin) to a running node's API in parts,
    /// with a progress bar on a terminal. The address comes from --api or CROSSMATCH_API
    /// (default http://127.0.0.1:7480; plain HTTP to loopback only), the token from
    /// CROSSMATCH_TOKEN or --token-file. Refused lines are reported on stderr by number and
    /// rule; the exit code is then 2.
    Observe {
        /// The observations file, or `-` for stdin.
        file: PathBuf,
        /// The API's address, token and TLS files, as for `records`.
        #[command(flatten)]
        api: crossmatch_node::cli::ApiArgs,
        /// Lines per request.
        #[arg(long, default_value_t = crossmatch_node::observe_cli::DEFAULT_LINES_PER_REQUEST)]
        lines_per_request: usize,
    },
    /// The analyst's commands over a running node's API: `records`, `alerts`, `hunt`,
    /// `takedowns`, `status`, `peers`, `forks` (clap definitions in `cli.rs`).
    #[command(flatten)]
    Api(crossmatch_node::cli::ApiCommand),
    /// Print the API's OpenAPI 3.1 document (as served at `/v1/openapi.json`), offline.
    ApiDoc,
    /// Analyse observation lines offline (JSON lines: posts and follow snapshots; `-` reads
    /// stdin): activity, communities (Leiden) and influence (PageRank) over the window that ends
    /// on the latest observation's day. Refused lines are reported on stderr by number and
    /// rule; the exit code is then 2. The `--json` schema is in docs/HUNT.md.
    Analyze {
        /// The observations file, or `-` for stdin.
        #[arg(long)]
        observations: PathBuf,
        /// The structure window in days; the counts cover it too.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
        window_days: u32,
        /// Print the stable JSON report instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify an audit log offline: every record's hash chain, every signed head, and that the
    /// log reaches the separately stored latest head. Exit codes: 0 intact, 1 tampering or
    /// damage found (printed), 2 bad usage or unreadable files.
    Verify {
        /// The audit log (`audit.log` in the node's audit directory).
        #[arg(long)]
        log: PathBuf,
        /// The latest signed head (`audit.head`, or a copy kept elsewhere).
        #[arg(long)]
        head: PathBuf,
        /// The node's Ed25519 public key, as 64 hex digits. Repeat it for a node that changed
        /// its key (`node-key rotate`): heads signed before the change carry the old key's
        /// signature.
        #[arg(long, required = true)]
        public_key: Vec<crossmatch_protocol::PublicKey>,
    },
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Generate a bearer token for a named user. Prints the token once, and the entry to add to
    /// the tokens file, which holds only the token's hash.
    New {
        /// The user's name, as the audit log will record it.
        #[arg(long)]
        name: String,
        /// monitor, analyst or admin.
        #[arg(long)]
        role: api::Role,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookSecretCommand {
    /// Write a new signing key (`whsec_<base64>`) to a new 0600 file.
    New {
        /// The file to write; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum NodeKeyCommand {
    /// Change this node's key routinely, with the node stopped: a new key replaces the key file
    /// and a key change signed by the old and the new key (naming where the old key's feed
    /// ends) goes to the coordinator (`crossmatch federation key-change`).
    Rotate(federation_cli::NodeKeyRotateArgs),
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Generate a new 32-byte federation secret; prints its fingerprint.
    New {
        /// Where to write the secret (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal the secret to each member of a roster: `<id>.sealed` files, one per member, that
    /// only that member's node key opens.
    Seal(federation_cli::SealArgs),
    /// Open this member's sealed copy with its node key; written only when its fingerprint is
    /// the roster's.
    Open(federation_cli::SecretOpenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("crossmatch: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => run_node(&config),
        Command::Demo(args) => run_demo(&args),
        Command::Init { member, dir, listen, api_listen } => {
            init(&member, &dir, &init_cli::Listen { mesh: listen, api: api_listen })
        }
        Command::Federation { command } => {
            ceremony(|out| federation_cli::run(command, out, now_ms()))
        }
        Command::MemberRecord(args) => ceremony(|out| federation_cli::member_record(&args, out)),
        Command::NodeKey { command: NodeKeyCommand::Rotate(args) } => {
            ceremony(|out| federation_cli::node_key_rotate(&args, out))
        }
        Command::Secret { command: SecretCommand::Seal(args) } => {
            ceremony(|out| federation_cli::secret_seal(&args, out))
        }
        Command::Secret { command: SecretCommand::Open(args) } => {
            ceremony(|out| federation_cli::secret_open(&args, out))
        }
        Command::Keygen { out } => {
            let key = SigningKey::from_seed(&keyfile::random_32().context("reading randomness")?);
            keyfile::write_signing_key(&out, &key)?;
            let public_key = key.public_key();
            println!("public key:  {public_key}");
            println!("fingerprint: {}", public_key.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::Secret { command: SecretCommand::New { out } } => {
            let secret =
                FederationSecret::from_bytes(keyfile::random_32().context("reading randomness")?);
            keyfile::write_federation_secret(&out, &secret)?;
            let fingerprint = crossmatch_protocol::secret_fingerprint(&secret);
            println!(
                "fingerprint: {}",
                crossmatch_protocol::secret_fingerprint_phone_form(&fingerprint)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ApiToken { command: ApiTokenCommand::New { name, role } } => {
            if let Err(error) = audit::AuditUser::new(&name) {
                eprintln!("crossmatch: error: user name: {error}");
                return Ok(ExitCode::from(2));
            }
            let token = api::new_bearer_token().context("reading randomness")?;
            println!("bearer token: {token}");
            println!("(shown once: hand it to {name} over a trusted channel)");
            println!();
            println!("add to the API tokens file (a running node reads it again on SIGHUP):");
            print!("{}", init_cli::token_entry(&name, role, &api::token_hash(&token)));
            Ok(ExitCode::SUCCESS)
        }
        Command::WebhookSecret { command: WebhookSecretCommand::New { out } } => {
            let line = crossmatch_node::config::new_webhook_secret().context("randomness")?;
            keyfile::write_private_text(&out, &line)?;
            println!("webhook signing key written to {} (mode 0600)", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Canon(args) => {
            let summary = canon_cli::run_stdio(&args, &Output::Canonical).context("canon")?;
            Ok(summary.exit_code())
        }
        Command::Token(args) => {
            let secret = keyfile::read_federation_secret(&args.secret_file)?;
            let key = EpochKey::derive(&args.federation_id, &secret, args.epoch);
            let summary =
                canon_cli::run_stdio(&args.identifiers, &Output::Token(key)).context("token")?;
            Ok(summary.exit_code())
        }
        Command::Observe { file, api, lines_per_request } => {
            observe(&file, &api, lines_per_request)
        }
        Command::Api(command) => Ok(crossmatch_node::cli::run(command)),
        // The OpenAPI document, offline.
        Command::ApiDoc => {
            println!("{}", api::openapi_document());
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze { observations, window_days, json } => {
            analyze(&observations, window_days, json)
        }
        Command::Audit { command: AuditCommand::Verify { log, head, public_key } } => {
            match audit::verify_keys(&log, &head, &public_key) {
                Ok(report) => {
                    println!("{report}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) if error.is_tampering() => {
                    println!("audit log not intact: {error}");
                    Ok(ExitCode::FAILURE)
                }
                Err(error) => {
                    eprintln!("crossmatch: error: {error}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

/// Runs a ceremony command, printing its report to stdout; bad input exits 2.
fn ceremony(
    command: impl FnOnce(&mut dyn Write) -> Result<(), federation_cli::Error>,
) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match command(&mut stdout) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("crossmatch: error: {error}");
            Ok(ExitCode::from(error.exit_code()))
        }
    }
}

fn init(
    member: &str,
    dir: &std::path::Path,
    listen: &init_cli::Listen,
) -> anyhow::Result<ExitCode> {
    let made = match init_cli::init_with(member, dir, listen) {
        Ok(made) => made,
        Err(
            error @ (init_cli::Error::MemberId
            | init_cli::Error::NotEmpty { .. }
            | init_cli::Error::ApiNotLoopback),
        ) => {
            eprintln!("crossmatch: error: {error}");
            return Ok(ExitCode::from(2));
        }
        Err(error) => return Err(error).context("init"),
    };
    let (node, governance) = (made.node_key, made.governance_key);
    println!("member {member} set up in {}", dir.display());
    println!();
    println!("send to the coordinator, and read the fingerprints to them by phone:");
    println!("member id:              {member}");
    println!("node public key:        {node}");
    println!("node fingerprint:       {}", node.fingerprint());
    println!("governance public key:  {governance}");
    println!("governance fingerprint: {}", governance.fingerprint());
    println!("sealing public key:     {}", hex::encode(node.to_x25519()));
    println!("(all in {}, the public card to send)", dir.join(federation_cli::CARD_FILE).display());
    println!();
    println!(
        "{}: signs this member's roster changes. Move it offline now (an encrypted medium in a \
         safe); `crossmatch run` never reads it.",
        dir.join(init_cli::GOVERNANCE_KEY_FILE).display()
    );
    println!();
    println!("admin bearer token ({}): {}", made.admin_name, made.admin_token);
    println!("(shown once and stored nowhere: {} holds only its hash)", init_cli::TOKENS_FILE);
    println!();
    println!(
        "next: put the roster ({}) and the federation secret ({}) the coordinator sends in {}, \
         then `crossmatch run --config {}`",
        init_cli::ROSTER_FILE,
        init_cli::SECRET_FILE,
        dir.display(),
        made.config_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn analyze(
    observations: &std::path::Path,
    window_days: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crossmatch_node::hunt;
    let settings = hunt::AnalyzeSettings { window_days, ..hunt::AnalyzeSettings::at(now_ms()) };
    let mut refused = 0u64;
    let mut on_refusal = |refusal: hunt::Refusal| {
        refused += 1;
        eprintln!("crossmatch: refused {refusal}");
    };
    let report = if observations.as_os_str() == "-" {
        hunt::analyze(std::io::stdin().lock(), &settings, &mut on_refusal)
    } else {
        let file = std::fs::File::open(observations)
            .with_context(|| format!("opening {}", observations.display()))?;
        hunt::analyze(std::io::BufReader::new(file), &settings, &mut on_refusal)
    }?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &report).context("writing the report")?;
        writeln!(stdout)?;
    } else {
        report.write_table(&mut stdout, 50)?;
    }
    Ok(if refused > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

fn observe(
    file: &std::path::Path,
    api: &crossmatch_node::cli::ApiArgs,
    lines_per_request: usize,
) -> anyhow::Result<ExitCode> {
    use crossmatch_node::cli::{Api, CliError};
    use crossmatch_node::observe_cli::ObserveTarget;
    let api = match Api::connect(api) {
        Ok(api) => api,
        Err(error) => {
            eprintln!("crossmatch: error: {error}");
            return Ok(error.exit.into());
        }
    };
    if lines_per_request == 0 || lines_per_request > 100_000 {
        anyhow::bail!("--lines-per-request must be 1 to 100000");
    }
    let target = ObserveTarget { api, lines_per_request };
    let (mut input, total_bytes): (Box<dyn std::io::BufRead>, _) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let opened =
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let size = opened.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(std::io::BufReader::new(opened)), size)
    };
    let summary = match runtime()?.block_on(crossmatch_node::observe_cli::observe(
        &target,
        &mut *input,
        total_bytes,
    )) {
        Ok(summary) => summary,
        Err(error) => match error.downcast::<CliError>() {
            Ok(error) => {
                eprintln!("crossmatch: error: {error}");
                return Ok(error.exit.into());
            }
            Err(error) => return Err(error),
        },
    };
    println!(
        "{} lines: {} accepted, {} duplicates, {} refused, {} references dropped",
        summary.lines,
        summary.accepted,
        summary.duplicates,
        summary.refused,
        summary.dropped_references
    );
    Ok(if summary.refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// The system clock in Unix milliseconds.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")
}

/// `crossmatch demo`'s options.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// After the story, stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    exit_after: Option<u64>,
    /// Members in the federation.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(4..=12))]
    members: u64,
    /// Generated records per member.
    #[arg(long, default_value_t = crossmatch_node::demo::DEFAULT_RECORDS as u64,
          value_parser = clap::value_parser!(u64).range(100..=crossmatch_node::demo::MAX_RECORDS as u64))]
    records: u64,
}

fn run_demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    use crossmatch_node::demo;
    crossmatch_node::logging::init_command(LogLevel::Warn);
    let root = std::env::temp_dir().join(format!("crossmatch-demo-{}", std::process::id()));
    let options = demo::Options {
        members: args.members as usize,
        records: args.records as usize,
        exit_after: args.exit_after.map(std::time::Duration::from_secs),
    };
    // Ctrl-C (or SIGTERM) ends the demo at any point; the members' data goes with it.
    let result = runtime()?.block_on(async {
        let mut stdout = std::io::stdout();
        tokio::select! {
            result = demo::run(&root, options, &mut stdout) => result,
            () = stop_signal() => {
                println!("demo stopped");
                Ok(())
            }
        }
    });
    let _ = std::fs::remove_dir_all(&root);
    result.context("the demo failed")?;
    Ok(ExitCode::SUCCESS)
}

fn run_node(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let loaded = crossmatch_node::config::load(config)?;
    let set_log_level =
        crossmatch_node::logging::init(loaded.config.log_format, loaded.config.log_level);
    // Which roster the node adopts is the daemon's choice at start (`daemon/roster.rs`): a
    // store without a roster adopts the file's as a founding roster (every member signed it);
    // a stored roster wins over an older or equal file, and a file one version ahead is
    // checked as the stored one's successor. The start settings below are the file's; the
    // daemon settles them on the adopted roster before the node runs.
    let file = &loaded.roster;
    let members = crossmatch_node::config::start_membership(file);
    let settings = crossmatch_node::daemon::Settings {
        data_dir: loaded.config.data_dir.clone(),
        engine: loaded.engine_config(&file.roster.body, &members),
        roster_version: file.roster.body.version,
        roster_hash: file.roster.body.hash(),
        roster: Some(crossmatch_node::daemon::GivenRoster {
            roster: file.roster.clone(),
            records: file.records.clone(),
            max_retention_ms: loaded
                .config
                .max_retention_days
                .saturating_mul(crossmatch_node::clock::DAY_MS),
            announce: loaded.announce(),
        }),
        mesh_members: members.mesh_members(),
        listen_addresses: loaded.config.listen_addresses.clone(),
        publish_linger_ms: loaded.config.publish_linger_ms,
        sync_interval_secs: loaded.config.sync_interval_secs,
        recovery_deadline_secs: loaded.config.recovery_deadline_secs,
        pages_per_pull: crossmatch_node::daemon::MAX_RANGE_REQUESTS_PER_PULL,
        chain_wait: crossmatch_node::daemon::CHAIN_WAIT,
        sync_budget: crossmatch_node::mesh::SyncBudget::default(),
        clock: node_clock()?,
        hunt: loaded.hunt_settings(),
        takedown: loaded.takedown_settings(),
        webhook: loaded.webhook.clone(),
    };
    let runtime = runtime()?;
    let mut drained = true;
    let outcome = runtime.block_on(async {
        // Bound before the node starts, so a taken port fails the start instead of half of it.
        let api_listener = match &loaded.api {
            Some((address, _)) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding the API to {address}"))?,
            ),
            None => None,
        };
        let stop_signal = stop_signal();
        // Installed before the node starts: a SIGHUP that comes while it starts must not take
        // the default action (ending the process).
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let (node, tasks) = crossmatch_node::daemon::start(settings, async move {
            stop_signal.await;
            tracing::info!("stopping");
        })
        .await?;
        let users = loaded.api.as_ref().map(|(_, users)| api::UsersHandle::new(users.clone()));
        let api_task = match (api_listener, &users) {
            (Some(listener), Some(users)) => {
                let address = listener.local_addr()?;
                tracing::info!(%address, "API listening");
                let router = api::router(node.clone(), users.clone(), &loaded.config.member_id);
                Some(tokio::spawn(api::serve(listener, router, node.clone())))
            }
            _ => None,
        };
        let tokens_file = loaded.config.api.as_ref().map(|section| section.tokens_file.clone());
        let reloader =
            reload::Reloader::new(config.to_owned(), tokens_file.zip(users), set_log_level);
        tokio::spawn(reload_on_hangup(hangup, reloader, node.clone()));
        let addresses = node.listen_addresses().await.unwrap_or_default();
        tracing::info!(member = %loaded.config.member_id, ?addresses, "node running");
        #[cfg(feature = "test-support")]
        fail_engine_when_told(&node);
        tokio::spawn(notify_when_ready(node.clone()));
        node.stopped().await;
        // Within systemd's TimeoutStopSec (30 s), counted from here: a drain that hangs says
        // which tasks it waits for before the process ends, rather than being killed without
        // a word.
        let deadline = tokio::time::Instant::now() + STOP_DRAIN;
        // Told to stop (a signal, or a failure): the service manager hears it before the drain.
        notify::tell(notify::STOPPING);
        if let Some(api_task) = api_task {
            let _ = tokio::time::timeout_at(deadline, api_task).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Err(running) = tasks.join_within(left).await {
            drained = false;
            let running = running.join(", ");
            tracing::error!(%running, "the node did not stop within {STOP_DRAIN:?}; exiting");
            anyhow::bail!("the node did not stop within {STOP_DRAIN:?}: {running} still running");
        }
        // A task or the engine failed: the node stopped by itself, and the exit code says so.
        let failures = node.failures();
        if !failures.is_empty() {
            anyhow::bail!("the node failed ({}) and stopped", failures.join(", "));
        }
        anyhow::Ok(())
    });
    if !drained {
        // What hung may be work on a blocking thread, which dropping the runtime would wait
        // for without end: leave it; the store is crash-safe.
        runtime.shutdown_background();
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// The clock the node runs on: the system's; with the `test-support` feature (which release
/// builds lack), a sped-up one when `CROSSMATCH_TEST_CLOCK` asks for it (`ANCHOR_MS:FACTOR`,
/// `clock::ScaledClock`), so that a soak of an hour crosses days of retention.
fn node_clock() -> anyhow::Result<std::sync::Arc<dyn crossmatch_node::clock::Clock>> {
    #[cfg(feature = "test-support")]
    if let Some(text) = std::env::var_os("CROSSMATCH_TEST_CLOCK") {
        let clock = text
            .to_str()
            .and_then(crossmatch_node::clock::ScaledClock::parse)
            .context("CROSSMATCH_TEST_CLOCK is not ANCHOR_MS:FACTOR with a factor of 1 to 10000")?;
        tracing::warn!(?clock, "the node runs on a scaled clock, as a test asked");
        return Ok(std::sync::Arc::new(clock));
    }
    Ok(std::sync::Arc::new(crossmatch_node::clock::SystemClock))
}

/// Test-only (the `test-support` feature, which release builds lack): with
/// `CROSSMATCH_TEST_FAIL_ENGINE` set, an engine call panics once the node is ready, poisoning the
/// engine lock, so that a process test can see the node fail and exit non-zero.
#[cfg(feature = "test-support")]
fn fail_engine_when_told(node: &crossmatch_node::daemon::Node) {
    if std::env::var_os("CROSSMATCH_TEST_FAIL_ENGINE").is_none() {
        return;
    }
    let node = node.clone();
    tokio::spawn(async move {
        if node.wait_ready().await.is_ok() {
            let _ = node.with_engine(|_| panic!("the engine fails, as a test asked")).await;
        }
    });
}

/// Tells the service manager `READY=1` once the node is ready, the same condition as `/readyz`
/// answering 200 (the API, when there is one, was already serving).
async fn notify_when_ready(node: crossmatch_node::daemon::Node) {
    tokio::select! {
        () = node.stopped() => {}
        ready = node.wait_ready() => {
            if ready.is_ok() && node.is_ready() {
                notify::tell(notify::READY);
            }
        }
    }
}

/// Reloads the API tokens file and the log level on each SIGHUP, until the node stops. The
/// reloader logs and audits each outcome.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    reloader: reload::Reloader,
    node: crossmatch_node::daemon::Node,
) {
    loop {
        tokio::select! {
            () = node.stopped() => return,
            received = hangup.recv() => {
                if received.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading the API tokens file and the log level");
                let _ = reloader.reload(&node).await;
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The SIGTERM handler is installed when this is called, before
/// the node starts, so a SIGTERM that comes while it starts is not lost.
fn stop_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { match terminate.as_mut() { Some(s) => s.recv().await, None => None } } => {}
        }
    }
}
