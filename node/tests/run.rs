//! The real binary: `crossmatch run` processes with real key, secret, roster and config files
//! form a mesh and stop cleanly on SIGTERM; a roster without the node's key is refused.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");
const LIMIT: Duration = Duration::from_secs(60);

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn crossmatch(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Sets up `n` members in `dir`: keys, one secret, one roster, one config each.
fn setup(dir: &Path, n: usize, roster_members: usize) -> Vec<PathBuf> {
    crossmatch(&["secret", "new", "--out", dir.join("federation.secret").to_str().unwrap()]);
    let mut members = String::new();
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    for (i, port) in ports.iter().enumerate() {
        let key = dir.join(format!("m{i}.key"));
        let printed = crossmatch(&["keygen", "--out", key.to_str().unwrap()]);
        let public_key = printed.lines().next().unwrap().trim_start_matches("public key:").trim();
        if i < roster_members {
            members += &format!(
                "\n[[members]]\nid = \"M{i}\"\nname = \"Member {i}\"\npublic_key = \"{public_key}\"\n\
                 addresses = [\"/ip4/127.0.0.1/tcp/{port}\"]\ncontact = \"desk@m{i}.example\"\n"
            );
        }
    }
    let roster = format!(
        "federation_id = \"{}\"\nversion = 1\nepoch = 1\nmax_retention_days = 180\n\
         quota_entries_per_day = 1000000\nquota_bytes_per_day = 1000000000\n{members}",
        "ab".repeat(32)
    );
    std::fs::write(dir.join("roster.toml"), roster).unwrap();
    (0..n)
        .map(|i| {
            let config = dir.join(format!("m{i}.toml"));
            write_private(
                &config,
                &format!(
                    "member_id = \"M{i}\"\ndata_dir = \"data-{i}\"\nkey_file = \"m{i}.key\"\n\
                     secret_file = \"federation.secret\"\nroster_file = \"roster.toml\"\n\
                     listen_addresses = [\"/ip4/127.0.0.1/tcp/{}\"]\nrecovery_deadline_secs = 2\n",
                    ports[i]
                ),
            );
            config
        })
        .collect()
}

/// Starts `crossmatch run`, forwarding its log lines to a channel.
fn spawn(config: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, receiver) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, receiver)
}

fn wait_for_lines(lines: &mpsc::Receiver<String>, needle: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while seen.iter().filter(|l: &&String| l.contains(needle)).count() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("timed out waiting for {count} × {needle:?}; saw {seen:#?}"),
        }
    }
    seen
}

#[test]
fn three_run_processes_mesh_and_stop_on_sigterm() {
    let dir = Dir(std::env::temp_dir().join(format!("crossmatch-run-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let configs = setup(&dir.0, 3, 3);
    let mut nodes: Vec<_> = configs.iter().map(|c| spawn(c)).collect();
    for (_, lines) in &nodes {
        let seen = wait_for_lines(lines, "member connected", 2);
        assert!(seen.iter().all(|l| !l.contains("ERROR")), "{seen:#?}");
    }
    for (child, _) in &mut nodes {
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }
    for (child, _) in &mut nodes {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    }
}

#[test]
fn a_roster_without_the_nodes_key_is_refused() {
    let dir =
        Dir(std::env::temp_dir().join(format!("crossmatch-run-refused-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let configs = setup(&dir.0, 2, 1);
    let output =
        Command::new(BIN).args(["run", "--config", configs[1].to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not hold this node's public key"), "{stderr}");
    // A config readable by others is refused too.
    std::fs::set_permissions(&configs[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    let output =
        Command::new(BIN).args(["run", "--config", configs[0].to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("must not be readable by group or others")
    );
}
