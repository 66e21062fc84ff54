//! The README's setup ceremony, run as it stands: its `sh` block (init, federation new,
//! add-member, sign, member-record, seal, secret seal / secret open) runs with bash in an empty
//! directory with the real binary on PATH; then the three members' nodes start from exactly
//! the files it made, an account added through each node's API matches, and all see the
//! alert. Then the README's removal block runs as it stands against the running nodes
//! (remove-member with a new secret, sign, seal, secret seal, the roster and the sealed copies
//! posted to the API): the two remaining members adopt version 2 and rotate to epoch 2 with
//! no restart, a new account both add matches between them, and the removed member's add of
//! it matches nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossmatch_node::test_support::{self, TempDir, http};

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");
const LIMIT: Duration = Duration::from_secs(120);

/// The README's `sh` block that holds `command`.
fn readme_block(command: &str) -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    text.split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains(command))
        .unwrap_or_else(|| panic!("the README has a block with {command}"))
        .to_owned()
}

/// Runs `block` with bash in `dir`, the binary on PATH and `env` set, bounded in time; its
/// stdout once it succeeded.
fn run_block(dir: &Path, name: &str, block: &str, env: &[(&str, String)]) -> String {
    let bin_dir = PathBuf::from(BIN).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let (out, err) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
    let mut bash = Command::new("bash")
        .args(["-c", block])
        .current_dir(dir)
        .env("PATH", path)
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut bash, name);
    let stdout = std::fs::read_to_string(out).unwrap();
    let stderr = std::fs::read_to_string(err).unwrap();
    assert!(status.success(), "{name} failed: {stdout}\n{stderr}");
    stdout
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
            let logs: Vec<String> = ["de", "fr", "nl"]
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

/// The alerts at the member behind `port`.
fn alerts(port: u16, token: &str) -> Vec<serde_json::Value> {
    let reply = http::call(port, "GET", "/v1/alerts", token, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["alerts"].as_array().cloned().unwrap_or_default()
}

/// The member ids of the counterparts of the alert on record `record`, if it has one.
fn counterparts_of(alerts: &[serde_json::Value], record: u64) -> Option<Vec<String>> {
    let alert = alerts.iter().find(|alert| {
        alert["records"].as_array().is_some_and(|records| records.contains(&record.into()))
    })?;
    let counterparts = alert["counterparts"].as_array()?;
    Some(counterparts.iter().map(|c| c["member"].as_str().unwrap_or_default().to_owned()).collect())
}

/// Adds an account record at the member behind `port`; its id.
fn add_account(port: u16, token: &str, handle: &str) -> u64 {
    let reply =
        http::call(port, "POST", "/v1/records", token, Some(&http::account_record(handle, true)));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_u64().unwrap()
}

/// The epoch of the first identifier of record `record` at the member behind `port`.
fn record_epoch(port: u16, token: &str, record: u64) -> u64 {
    let reply = http::call(port, "GET", &format!("/v1/records/{record}"), token, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["identifiers"][0]["epoch"].as_u64().unwrap()
}

#[test]
fn the_readme_ceremony_runs_as_written_its_members_match_and_a_removal_rotates() {
    let root = TempDir::new("ceremony");
    let dir = root.path();
    let ports = test_support::free_ports(6);
    let env: Vec<(&str, String)> = ["DE_PORT", "DE_API", "FR_PORT", "FR_API", "NL_PORT", "NL_API"]
        .into_iter()
        .zip(ports.iter().map(u16::to_string))
        .collect();
    let stdout = run_block(dir, "ceremony", &readme_block("crossmatch federation new"), &env);
    // Every sealed copy opened to the roster's secret, whose phone form both sides print.
    let fingerprint = printed(&stdout, "secret fingerprint:");
    assert_eq!(stdout.matches(&format!("secret fingerprint (epoch 1): {fingerprint}")).count(), 4);
    let secret = std::fs::read(dir.join("de/federation.secret")).unwrap();
    for member in ["fr", "nl"] {
        assert_eq!(std::fs::read(dir.join(format!("{member}/federation.secret"))).unwrap(), secret);
    }
    let tokens = ["admin-de", "admin-fr", "admin-nl"]
        .map(|admin| printed(&stdout, &format!("admin bearer token ({admin}):")).to_owned());

    let _nodes = [run_node(dir, "de"), run_node(dir, "fr"), run_node(dir, "nl")];
    let api = [ports[1], ports[3], ports[5]];
    for (port, token) in api.iter().zip(&tokens) {
        wait_for("every node ready with its peers", dir, || {
            http::request(*port, "GET", "/v1/status", Some(token), None).is_ok_and(|reply| {
                reply.status == 200 && reply.json()["ready"] == true && reply.json()["peers"] == 2
            })
        });
    }
    let first: Vec<u64> = api
        .iter()
        .zip(&tokens)
        .map(|(port, token)| add_account(*port, token, "@same_account"))
        .collect();
    for (i, (port, token)) in api.iter().zip(&tokens).enumerate() {
        wait_for("the match at every member", dir, || {
            counterparts_of(&alerts(*port, token), first[i]).is_some_and(|c| c.len() == 2)
        });
    }

    // NL leaves: the README's removal block, as it stands, against the running nodes.
    let mut rotation_env = env.clone();
    rotation_env.push(("DE_TOKEN", tokens[0].clone()));
    rotation_env.push(("FR_TOKEN", tokens[1].clone()));
    let said = run_block(
        dir,
        "removal",
        &readme_block("crossmatch federation remove-member"),
        &rotation_env,
    );
    assert!(said.contains("version 2 sealed"), "{said}");
    // DE and FR adopt version 2 and rotate: their records move to epoch 2.
    for i in 0..2 {
        wait_for("the rotation to epoch 2 at DE and FR", dir, || {
            record_epoch(api[i], &tokens[i], first[i]) == 2
        });
        let roster = http::call(api[i], "GET", "/v1/roster", &tokens[i], None).json();
        assert_eq!((roster["version"].as_u64(), roster["epoch"].as_u64()), (Some(2), Some(2)));
        assert_eq!(roster["members"].as_array().map(Vec::len), Some(2));
        let ready = http::request(api[i], "GET", "/readyz", Some(&tokens[i]), None).unwrap();
        assert_eq!(ready.body, "ready\n");
    }
    assert_eq!(record_epoch(api[2], &tokens[2], first[2]), 1, "NL keeps the old epoch");

    // A new account all three add matches between DE and FR only; NL's add matches nothing.
    // NL adds it first, so its add (published at once) is older than the match DE and FR
    // make: had it reached them and matched, the alert they wait for would name NL too.
    let nl_after = add_account(api[2], &tokens[2], "@after_rotation");
    let after: Vec<u64> = api[..2]
        .iter()
        .zip(&tokens)
        .map(|(port, token)| add_account(*port, token, "@after_rotation"))
        .collect();
    for (i, other) in [(0, "FR"), (1, "DE")] {
        wait_for("the new match between DE and FR", dir, || {
            counterparts_of(&alerts(api[i], &tokens[i]), after[i])
                .is_some_and(|c| c.contains(&other.to_owned()))
        });
        assert_eq!(
            counterparts_of(&alerts(api[i], &tokens[i]), after[i]),
            Some(vec![other.to_owned()]),
            "the removed member's add matched"
        );
        assert_eq!(record_epoch(api[i], &tokens[i], after[i]), 2);
    }
    assert_eq!(counterparts_of(&alerts(api[2], &tokens[2]), nl_after), None, "NL matches nothing");
}
