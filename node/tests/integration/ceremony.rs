//! The README's setup ceremony, run as it stands: its `sh` block (init, federation new,
//! add-member, sign, member-record, seal, secret seal / secret open) runs with bash in an empty
//! directory with the real binary on PATH; then the two members' nodes start from exactly the
//! files it made, an account added through each node's API matches, and both see the alert.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossmatch_node::test_support::{TempDir, http};

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");
const LIMIT: Duration = Duration::from_secs(120);

/// The README's ceremony: the `sh` block that runs `federation new`.
fn ceremony_block() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    text.split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains("crossmatch federation new"))
        .expect("the README has a ceremony block")
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits for `child` until the deadline; kills it if it is still running then.
fn wait_bounded(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running node, killed if the test ends without stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_node(dir: &Path, member: &str) -> Running {
    let log = std::fs::File::create(dir.join(format!("{member}.log"))).unwrap();
    Running(
        Command::new(BIN)
            .args(["run", "--config", &format!("{member}/node.toml")])
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, dir: &Path, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        if Instant::now() > deadline {
            let logs: Vec<String> = ["de", "fr"]
                .iter()
                .map(|m| std::fs::read_to_string(dir.join(format!("{m}.log"))).unwrap_or_default())
                .collect();
            panic!("timed out waiting for {what}; logs: {logs:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value printed after `label` on its own line.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {stdout}"))
        .trim()
}

#[test]
fn the_readme_ceremony_runs_as_written_and_its_members_match() {
    let root = TempDir::new("ceremony");
    let dir = root.path();
    let bin_dir = PathBuf::from(BIN).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let mut bash = Command::new("bash")
        .args(["-c", &ceremony_block()])
        .current_dir(dir)
        .env("PATH", path)
        .env("DE_PORT", ports[0].to_string())
        .env("DE_API", ports[1].to_string())
        .env("FR_PORT", ports[2].to_string())
        .env("FR_API", ports[3].to_string())
        .stdout(std::fs::File::create(dir.join("ceremony.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("ceremony.err")).unwrap())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut bash, "the ceremony");
    let stdout = std::fs::read_to_string(dir.join("ceremony.out")).unwrap();
    let stderr = std::fs::read_to_string(dir.join("ceremony.err")).unwrap();
    assert!(status.success(), "the ceremony failed: {stdout}\n{stderr}");
    // Both sealed copies opened to the roster's secret, whose phone form both sides print.
    let fingerprint = printed(&stdout, "secret fingerprint:");
    assert_eq!(stdout.matches(&format!("secret fingerprint (epoch 1): {fingerprint}")).count(), 3);
    assert_eq!(
        std::fs::read(dir.join("de/federation.secret")).unwrap(),
        std::fs::read(dir.join("fr/federation.secret")).unwrap()
    );
    let tokens = ["admin-de", "admin-fr"]
        .map(|admin| printed(&stdout, &format!("admin bearer token ({admin}):")).to_owned());

    let _nodes = [run_node(dir, "de"), run_node(dir, "fr")];
    let api = [ports[1], ports[3]];
    for (port, token) in api.iter().zip(&tokens) {
        wait_for("both nodes ready with their peer", dir, || {
            http::request(*port, "GET", "/v1/status", Some(token), None).is_ok_and(|reply| {
                reply.status == 200 && reply.json()["ready"] == true && reply.json()["peers"] == 1
            })
        });
    }
    for (port, token) in api.iter().zip(&tokens) {
        let record = http::account_record("@same_account", true);
        let reply = http::call(*port, "POST", "/v1/records", token, Some(&record));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    for (port, token) in api.iter().zip(&tokens) {
        wait_for("the match at both members", dir, || {
            let reply = http::call(*port, "GET", "/v1/alerts", token, None);
            reply.status == 200 && reply.json()["alerts"].as_array().is_some_and(|a| a.len() == 1)
        });
    }
}
