//! The reload a running node does on SIGHUP: the API takes a token added to the tokens file
//! and refuses a removed one once reloaded; a broken tokens or config file changes nothing (the
//! previous users and log level stay); each reload, applied or refused, is an audit line. In
//! process, and with the real binary: a member set up by `crossmatch init` is sent SIGHUP.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crossmatch_node::api::{self, Role, UsersHandle};
use crossmatch_node::audit;
use crossmatch_node::config::LogLevel;
use crossmatch_node::init_cli::token_entry;
use crossmatch_node::reload::{ReloadError, Reloaded, Reloader};
use crossmatch_node::test_support::api_node::serve_api_to;
use crossmatch_node::test_support::{self, federation, http, roster_file};

const LIMIT: Duration = Duration::from_secs(60);
const ANA: &str = "cmt_ana-secret";
const NEO: &str = "cmt_neo-secret";
const MO: &str = "cmt_mo-secret";

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn tokens(users: &[(&str, Role, &str)]) -> String {
    users
        .iter()
        .map(|(name, role, token)| token_entry(name, *role, &api::token_hash(token)))
        .collect()
}

fn config(log_level: &str) -> String {
    format!(
        "member_id = \"M0\"\ndata_dir = \"data\"\nkey_file = \"node.key\"\n\
         secret_file = \"federation.secret\"\nroster_file = \"roster.toml\"\n\
         listen_addresses = [\"/ip4/127.0.0.1/tcp/0\"]\nlog_level = \"{log_level}\"\n\n\
         [api]\ntokens_file = \"api-tokens.toml\"\n"
    )
}

async fn status(port: u16, bearer: &str) -> u16 {
    let bearer = bearer.to_owned();
    tokio::task::spawn_blocking(move || {
        http::request(port, "GET", "/v1/status", Some(&bearer), None).unwrap().status
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_api_users_whole_and_a_broken_file_changes_nothing() {
    tokio::time::timeout(LIMIT, async {
        let (root, mut fed) = federation("reload", 1);
        fed.start_all().await.unwrap();
        let node = fed.node(0).unwrap().clone();
        let (config_file, tokens_file) =
            (root.path().join("node.toml"), root.path().join("api-tokens.toml"));
        write_private(&config_file, &config("info"));
        write_private(&tokens_file, &tokens(&[("ana", Role::Analyst, ANA)]));
        let users =
            UsersHandle::new(crossmatch_node::config::load_api_users(&tokens_file).unwrap());
        let levels = Arc::new(Mutex::new(Vec::new()));
        let seen = levels.clone();
        let reloader = Reloader::new(
            config_file.clone(),
            Some((tokens_file.clone(), users.clone())),
            Some(Box::new(move |level| seen.lock().unwrap().push(level))),
        );
        let (port, server) = serve_api_to(&node, users, "M0").await;

        assert_eq!((status(port, ANA).await, status(port, NEO).await), (200, 401));
        // The file changes: nothing happens until the reload.
        write_private(
            &tokens_file,
            &tokens(&[("neo", Role::Monitor, NEO), ("mo", Role::Monitor, MO)]),
        );
        write_private(&config_file, &config("debug"));
        assert_eq!((status(port, ANA).await, status(port, NEO).await), (200, 401));
        let reloaded = reloader.reload(&node).await.unwrap();
        assert_eq!(
            reloaded,
            Reloaded { users: Some(2), log_level: LogLevel::Debug, log_level_applied: true }
        );
        assert_eq!(*levels.lock().unwrap(), [LogLevel::Debug]);
        // The added token is taken, the removed one refused.
        assert_eq!((status(port, ANA).await, status(port, NEO).await), (401, 200));

        // A broken tokens file (here, a hash that is no hash; then one readable by others) is
        // refused whole: the users and level before it stay, and nothing is refused that was
        // taken.
        let broken = tokens(&[("ana", Role::Analyst, ANA)])
            + "[[tokens]]\nname = \"x\"\nrole = \"admin\"\nhash = \"00\"\n";
        write_private(&tokens_file, &broken);
        write_private(&config_file, &config("trace"));
        assert!(matches!(reloader.reload(&node).await, Err(ReloadError::Tokens(_))));
        write_private(&tokens_file, &tokens(&[("ana", Role::Analyst, ANA)]));
        std::fs::set_permissions(&tokens_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = reloader.reload(&node).await.unwrap_err();
        assert!(
            refused.to_string().contains("must not be readable by group or others"),
            "{refused}"
        );
        assert_eq!(
            (status(port, ANA).await, status(port, NEO).await, status(port, MO).await),
            (401, 200, 200)
        );
        // A config that does not load (an unknown level) is refused as a whole too: the good
        // tokens file beside it is not applied.
        std::fs::set_permissions(&tokens_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_private(&config_file, &config("loud"));
        assert!(matches!(reloader.reload(&node).await, Err(ReloadError::Config(_))));
        assert_eq!((status(port, ANA).await, status(port, NEO).await), (401, 200));
        assert_eq!(*levels.lock().unwrap(), [LogLevel::Debug], "no level set by a refusal");

        // Fixed, it applies.
        write_private(&config_file, &config("warn"));
        let reloaded = reloader.reload(&node).await.unwrap();
        assert_eq!((reloaded.users, reloaded.log_level), (Some(1), LogLevel::Warn));
        assert_eq!((status(port, ANA).await, status(port, NEO).await), (200, 401));

        // Every reload is an audit line by the node itself, with counts, never a token or hash.
        let log = std::fs::read_to_string(fed.data_dir(0).join("audit").join(audit::LOG_FILE_NAME))
            .unwrap();
        let reloads: Vec<&str> = log.lines().filter(|l| l.contains("\treload\t")).collect();
        let subjects: Vec<&str> =
            reloads.iter().map(|line| line.split('\t').nth(5).unwrap_or_default()).collect();
        assert_eq!(
            subjects,
            [
                "reload:users.2_log_level.debug",
                "reload:refused_tokens_file",
                "reload:refused_tokens_file",
                "reload:refused_config_file",
                "reload:users.1_log_level.warn",
            ],
            "{log}"
        );
        assert!(reloads.iter().all(|line| line.contains("\t*node\t")), "{reloads:#?}");
        for secret in [ANA, NEO, MO] {
            assert!(!log.contains(secret) && !log.contains(&hex::encode(api::token_hash(secret))));
        }
        server.abort();
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the reload test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_or_with_rust_log_a_reload_still_checks_and_audits() {
    tokio::time::timeout(LIMIT, async {
        let (root, mut fed) = federation("reload-bare", 1);
        fed.start_all().await.unwrap();
        let node = fed.node(0).unwrap().clone();
        let config_file = root.path().join("node.toml");
        write_private(&config_file, &config("debug"));
        let reloader = Reloader::new(config_file.clone(), None, None);
        let reloaded = reloader.reload(&node).await.unwrap();
        assert_eq!(
            reloaded,
            Reloaded { users: None, log_level: LogLevel::Debug, log_level_applied: false }
        );
        std::fs::remove_file(&config_file).unwrap();
        assert!(matches!(reloader.reload(&node).await, Err(ReloadError::Config(_))));
        let log = std::fs::read_to_string(fed.data_dir(0).join("audit").join(audit::LOG_FILE_NAME))
            .unwrap();
        assert!(log.contains("\treload\treload:users.none_log_level.rust_log\t"), "{log}");
        assert!(log.contains("\treload\treload:refused_config_file\t"), "{log}");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the reload test timed out");
}

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");

fn crossmatch(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines().find_map(|line| line.strip_prefix(label)).unwrap().trim()
}

fn api_status(port: u16, bearer: &str) -> Option<u16> {
    http::request(port, "GET", "/v1/status", Some(bearer), None).ok().map(|reply| reply.status)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &std::process::Child, signal: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
}

/// Waits for a log line holding `needle`; returns every line read so far.
fn wait_for_line(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) {
    let deadline = Instant::now() + LIMIT;
    while !seen.iter().any(|line| line.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("timed out waiting for {needle:?}; saw {seen:#?}"),
        }
    }
}

#[test]
fn sighup_reloads_the_tokens_file_and_log_level_of_a_running_binary() {
    let root = test_support::TempDir::new("reload-sighup");
    let dir = root.path().join("de");
    let printed = crossmatch(&["init", "--member", "DE", "--dir", dir.to_str().unwrap()]);
    let admin = after(&printed, "admin bearer token (admin-de):").to_owned();
    crossmatch(&["secret", "new", "--out", dir.join("federation.secret").to_str().unwrap()]);
    let [mesh_port, api_port] = test_support::free_ports(2)[..] else { unreachable!() };
    let secret =
        crossmatch_node::keyfile::read_federation_secret(&dir.join("federation.secret")).unwrap();
    let seat = roster_file::seat_of_dir("DE", &dir, &[format!("/ip4/127.0.0.1/tcp/{mesh_port}")]);
    roster_file::write_founding(&dir.join("roster.toml"), &secret, &[seat]);
    // The config `init` wrote, on ports of this test's own and with a short recovery.
    let config_file = dir.join("node.toml");
    let config = std::fs::read_to_string(&config_file)
        .unwrap()
        .replace("/ip4/0.0.0.0/tcp/7400", &format!("/ip4/127.0.0.1/tcp/{mesh_port}"))
        .replace("127.0.0.1:7480", &format!("127.0.0.1:{api_port}"))
        .replacen(
            "log_level = \"info\"\n",
            "log_level = \"info\"\nrecovery_deadline_secs = 1\n",
            1,
        );
    write_private(&config_file, &config);

    let mut child = Command::new(BIN)
        .args(["run", "--config", config_file.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    wait_for("the API", || api_status(api_port, &admin) == Some(200));

    // A new analyst: refused until the node is told to reload.
    let entry = crossmatch(&["api-token", "new", "--name", "analyst-de-1", "--role", "analyst"]);
    let analyst = after(&entry, "bearer token:").to_owned();
    let tokens_file = dir.join("api-tokens.toml");
    let admin_only = std::fs::read_to_string(&tokens_file).unwrap();
    let with_analyst =
        format!("{admin_only}\n[[tokens]]{}", entry.split_once("[[tokens]]").unwrap().1);
    write_private(&tokens_file, &with_analyst);
    write_private(&config_file, &config.replace("log_level = \"info\"", "log_level = \"debug\""));
    assert_eq!(api_status(api_port, &analyst), Some(401));
    signal(&child, "-HUP");
    wait_for("the analyst's token", || api_status(api_port, &analyst) == Some(200));
    wait_for_line(&lines, &mut seen, "reloaded");

    // A broken tokens file: refused, logged, and both users keep working.
    write_private(&tokens_file, "[[tokens]]\nname = \"x\"\n");
    signal(&child, "-HUP");
    wait_for_line(&lines, &mut seen, "reload refused");
    assert_eq!(api_status(api_port, &analyst), Some(200));
    assert_eq!(api_status(api_port, &admin), Some(200));

    // The analyst removed: refused after the next reload, the admin still taken.
    write_private(&tokens_file, &admin_only);
    signal(&child, "-HUP");
    wait_for("the analyst's token refused", || api_status(api_port, &analyst) == Some(401));
    assert_eq!(api_status(api_port, &admin), Some(200));

    signal(&child, "-TERM");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the node did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    seen.extend(lines.try_iter());
    // No token or hash in any log line.
    for token in [&admin, &analyst] {
        let hash = hex::encode(api::token_hash(token));
        assert!(seen.iter().all(|line| !line.contains(token.as_str()) && !line.contains(&hash)));
    }
    let log =
        std::fs::read_to_string(dir.join("data").join("audit").join(audit::LOG_FILE_NAME)).unwrap();
    let reloads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\treload\t"))
        .map(|line| line.split('\t').nth(5).unwrap_or_default())
        .collect();
    assert_eq!(
        reloads,
        [
            "reload:users.2_log_level.debug",
            "reload:refused_tokens_file",
            "reload:users.1_log_level.debug",
        ],
        "{log}"
    );
}
