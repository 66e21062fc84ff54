//! The analyst's command line (`crossmatch records | alerts | status | peers`), run as the
//! binary against two in-process members serving their API: every command, every exit code,
//! identifiers only from stdin, plain HTTP only to loopback, private files refused when others
//! can read them, and TLS through a mutual-TLS proxy. `alerts --follow` is in `cli/follow.rs`,
//! the hunt's commands (`hunt`, `takedowns`, `forks`) in `cli/hunt.rs`.

mod follow;
mod hunt;
// Imports and the STIX export; the jobs themselves are in `imports_jobs.rs`.
mod imports;
mod imports_jobs;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN as ANALYST, ApiMembers, MONITOR_TOKEN as MONITOR,
    api_members,
};
use crossmatch_node::test_support::tls_proxy;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");
const LIMIT: Duration = Duration::from_secs(180);
/// Longest one run of the binary may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Two meshed members, DE and FR, each serving its API on a loopback port.
async fn members(name: &str) -> ApiMembers {
    api_members(&format!("cli-{name}")).await
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs the binary with `args`, `env` and `stdin`, on a blocking thread; killed (and the test
/// failed) past [`RUN_LIMIT`]. No environment is inherited but the path.
async fn cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> =
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || run_blocking(&args, &env, &stdin)).await.unwrap()
}

fn run_blocking(args: &[String], env: &[(String, String)], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("crossmatch {args:?} ran past {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn api_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The analyst's environment for a member's API.
fn analyst(port: u16) -> Vec<(&'static str, String)> {
    vec![("CROSSMATCH_API", api_url(port)), ("CROSSMATCH_TOKEN", ANALYST.to_owned())]
}

fn env_ref<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

const RECORD_OPTIONS: [&str; 10] = [
    "--category",
    "terrorism/propaganda",
    "--handling",
    "H1",
    "--evaluation",
    "B2",
    "--expires-in-days",
    "90",
    "--platform",
    "x",
];

/// Polls `alerts --json` until `done` holds of the alerts, or fails after a minute.
async fn alerts_until(port: u16, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let env = analyst(port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = cli(&["alerts", "--json"], &env_ref(&env), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let alerts = run.json()["alerts"].as_array().cloned().unwrap_or_default();
        if done(&alerts) {
            return alerts;
        }
        assert!(Instant::now() < deadline, "alerts never came: {alerts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_does_the_daily_work_from_the_command_line() {
    tokio::time::timeout(LIMIT, async {
        let m = members("daily").await;
        let (de, fr) = (analyst(m.ports[0]), analyst(m.ports[1]));
        // DE adds two accounts, one a line from stdin; the blank line is skipped.
        let mut args = vec!["records", "add", "--kind", "account"];
        args.extend(RECORD_OPTIONS);
        let run = cli(&args, &env_ref(&de), "@shared_handle\n\n@de_only_handle\n").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("line 1: record ") && run.stdout.contains("line 3: record "));
        assert!(run.stdout.contains("2 records added, 0 refused"), "{}", run.stdout);
        // FR adds JSON lines: the shared account, and a record of an unknown kind on line 2,
        // refused by its line and code without echoing it.
        let good = r#"{"identifiers":[{"kind":"account","platform":"x","value":"@shared_handle"}],"category":"terrorism/propaganda","handling":"H1","evaluation":"B2","expires_in_days":90,"share":true}"#;
        let bad = r#"{"identifiers":[{"kind":"carrier_pigeon","value":"fr_secret_bird"}],"category":"terrorism/propaganda","handling":"H1","evaluation":"B2","expires_in_days":90,"share":true}"#;
        let run = cli(&["records", "add", "--json"], &env_ref(&fr), &format!("{good}\n{bad}\n"))
            .await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("line 2: refused: unknown_kind"), "{}", run.stderr);
        assert!(!run.stderr.contains("fr_secret_bird") && !run.stdout.contains("fr_secret_bird"));
        let added: Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
        assert_eq!(added["line"], 1);
        let fr_record = added["id"].as_u64().unwrap();
        // The match reaches FR, naming DE; the table shows it too.
        let alerts = alerts_until(m.ports[1], |alerts| {
            alerts.iter().any(|a| a["counterparts"][0]["member"] == "DE")
        })
        .await;
        let alert_id = alerts[0]["id"].as_u64().unwrap().to_string();
        let run = cli(&["alerts"], &env_ref(&fr), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.starts_with("ID") && run.stdout.contains("DE ("), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("#{fr_record}")), "{}", run.stdout);
        let run = cli(&["alerts", "--state", "open", "--json"], &env_ref(&fr), "").await;
        assert_eq!(run.json()["alerts"].as_array().unwrap().len(), 1, "{run:?}");
        let run = cli(&["alerts", "--state", "closed", "--json"], &env_ref(&fr), "").await;
        assert_eq!(run.json()["alerts"], serde_json::json!([]), "{run:?}");
        // Acknowledged, and the list says so.
        let run = cli(&["alerts", "ack", &alert_id], &env_ref(&fr), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains(&format!("alert {alert_id} acknowledged")));
        alerts_until(m.ports[1], |alerts| alerts[0]["acknowledged"] == true).await;
        // The record, read (audited), flagged, removed; then it is not found.
        let id = fr_record.to_string();
        let run = cli(&["records", "get", &id, "--json"], &env_ref(&fr), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let record = run.json();
        assert_eq!(record["id"], fr_record);
        assert_eq!(record["identifiers"][0]["token_short"].as_str().unwrap().len(), 8);
        let run = cli(&["records", "get", &id], &env_ref(&fr), "").await;
        assert!(run.stdout.contains("terrorism/propaganda"), "{}", run.stdout);
        assert!(run.stdout.contains("IDENTIFIER"), "{}", run.stdout);
        let run = cli(&["records", "status", &id, "referred"], &env_ref(&fr), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = cli(&["records", "rm", &id, "--reason", "erroneous"], &env_ref(&fr), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains(&format!("record {id} removed")));
        let run = cli(&["records", "get", &id], &env_ref(&fr), "").await;
        assert_eq!(run.code, Some(4), "{run:?}");
        // The retraction closes DE's alert.
        alerts_until(m.ports[0], |alerts| {
            !alerts.is_empty() && alerts.iter().all(|a| a["state"] == "closed")
        })
        .await;
        // Status and peers, as tables and JSON.
        let run = cli(&["status"], &env_ref(&de), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("member") && run.stdout.contains("DE"), "{}", run.stdout);
        let run = cli(&["status", "--json"], &env_ref(&de), "").await;
        assert_eq!(run.json()["member_id"], "DE");
        let run = cli(&["peers", "--json"], &env_ref(&de), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let peers = run.json()["peers"].as_array().cloned().unwrap();
        assert_eq!(peers.len(), 2, "{peers:?}");
        let peer = |id: &str| peers.iter().find(|p| p["member"] == id).unwrap().clone();
        assert_eq!((peer("DE")["this_node"].clone(), peer("FR")["connected"].clone()), (true.into(), true.into()));
        assert_eq!(peer("FR")["this_node"], false);
        assert!(peer("FR")["head"]["seq"].as_u64().unwrap() >= 1, "{peers:?}");
        let run = cli(&["peers"], &env_ref(&de), "").await;
        assert!(run.stdout.contains("this node") && run.stdout.contains("FR"), "{}", run.stdout);
        drop(m.fed);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_exit_code() {
    tokio::time::timeout(LIMIT, async {
        let m = members("exits").await;
        let url = api_url(m.ports[0]);
        // 3: no token, a wrong one, a role that may not.
        let run = cli(&["status", "--api", &url], &[], "").await;
        assert_eq!(run.code, Some(3), "{run:?}");
        let run = cli(&["status", "--api", &url], &[("CROSSMATCH_TOKEN", "cmt_wrong")], "").await;
        assert_eq!(run.code, Some(3), "{run:?}");
        let run = cli(&["alerts", "--api", &url], &[("CROSSMATCH_TOKEN", MONITOR)], "").await;
        assert_eq!(run.code, Some(3), "{run:?}");
        assert!(run.stderr.contains("forbidden"), "{}", run.stderr);
        // A monitor may read the peers.
        let run = cli(&["peers", "--api", &url], &[("CROSSMATCH_TOKEN", MONITOR)], "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let env = analyst(m.ports[0]);
        // 4: no such record or alert.
        let run = cli(&["records", "get", "987654"], &env_ref(&env), "").await;
        assert_eq!(run.code, Some(4), "{run:?}");
        let run = cli(&["alerts", "ack", "987654"], &env_ref(&env), "").await;
        assert_eq!(run.code, Some(4), "{run:?}");
        // 2: clap's errors, and the API's 400.
        let run = cli(&["records", "get", "not-a-number"], &env_ref(&env), "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        let run = cli(&["records", "add", "--kind", "account"], &env_ref(&env), "@x\n").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        let run = cli(&["alerts", "--state", "sleeping"], &env_ref(&env), "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("invalid_state"), "{}", run.stderr);
        // 2: plain HTTP to an address that is not loopback is refused before connecting (a
        // connection tried would end in 5, by its timeout or as unreachable).
        let run = cli(
            &["status", "--api", "http://192.0.2.1:7480"],
            &[("CROSSMATCH_TOKEN", ANALYST)],
            "",
        )
        .await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("non-loopback"), "{}", run.stderr);
        let run = cli(
            &["status"],
            &[("CROSSMATCH_API", "http://192.0.2.1"), ("CROSSMATCH_TOKEN", ANALYST)],
            "",
        )
        .await;
        assert_eq!(run.code, Some(2), "{run:?}");
        // 2: a token file or a client key others can read; a client certificate over http.
        let token_file = m.root.path().join("token");
        std::fs::write(&token_file, ANALYST).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let token_path = token_file.to_str().unwrap();
        let run = cli(&["status", "--api", &url, "--token-file", token_path], &[], "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let run = cli(&["status", "--api", &url, "--token-file", token_path], &[], "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        pki(m.root.path());
        let file = |name: &str| m.root.path().join(name).to_str().unwrap().to_owned();
        let open_key = m.root.path().join("open.key");
        std::fs::copy(m.root.path().join("client.key"), &open_key).unwrap();
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("open.key"));
        let run = cli(
            &[
                "status",
                "--api",
                "https://localhost:1",
                "--ca-file",
                &ca,
                "--client-cert",
                &cert,
                "--client-key",
                &key,
            ],
            &[("CROSSMATCH_TOKEN", ANALYST)],
            "",
        )
        .await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("open.key"), "{}", run.stderr);
        let key = file("client.key");
        let run =
            cli(&["status", "--client-cert", &cert, "--client-key", &key], &env_ref(&env), "")
                .await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("https://"), "{}", run.stderr);
        // From a file: pretty JSON objects, each numbered by its first line.
        let records = m.root.path().join("records.json");
        let record = |handle: &str| {
            serde_json::to_string_pretty(&serde_json::json!({
                "identifiers": [{"kind": "account", "platform": "x", "value": handle}],
                "category": "terrorism/propaganda", "handling": "H1", "evaluation": "B2",
                "expires_in_days": 90, "share": false,
            }))
            .unwrap()
        };
        let text = format!("{}\n{}\n", record("@from_file_1"), record("@from_file_2"));
        // The second object starts on the second line that opens one.
        let second_line = text.lines().enumerate().filter(|(_, line)| *line == "{").nth(1);
        let second_line = second_line.map(|(index, _)| index as u64 + 1);
        std::fs::write(&records, &text).unwrap();
        let run = cli(
            &["records", "add", "--json", "--file", records.to_str().unwrap()],
            &env_ref(&env),
            "",
        )
        .await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let lines: Vec<Value> =
            run.stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{run:?}");
        assert_eq!((lines[0]["line"].as_u64(), lines[1]["line"].as_u64()), (Some(1), second_line));
        // 5: nothing listens (a port bound, then freed).
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = api_url(free.local_addr().unwrap().port());
        drop(free);
        let run = cli(&["status", "--api", &closed], &[("CROSSMATCH_TOKEN", ANALYST)], "").await;
        assert_eq!(run.code, Some(5), "{run:?}");
        // Observe takes the same codes: refused before connecting.
        let run = cli(
            &["observe", "-", "--api", "http://192.0.2.1:7480"],
            &[("CROSSMATCH_TOKEN", ANALYST)],
            "",
        )
        .await;
        assert_eq!(run.code, Some(2), "{run:?}");
    })
    .await
    .expect("test timed out");
}

/// No option or argument of the analyst's commands takes an identifier: the only positional
/// arguments are record, alert and community ids and a status name; labels and accounts of the
/// hunt's curation come from stdin or a file.
#[test]
fn no_command_takes_an_identifier_as_an_argument() {
    use clap::Subcommand;
    let command = crossmatch_node::cli::ApiCommand::augment_subcommands(clap::Command::new("x"));
    let allowed = [
        "api",
        "token_file",
        "ca_file",
        "client_cert",
        "client_key",
        "json",
        "timeout",
        "file",
        "kind",
        "platform",
        "region",
        "category",
        "handling",
        "evaluation",
        "expires_in_days",
        "no_share",
        "backlog",
        "id",
        "reason",
        "status",
        "at_ms",
        "state",
        "since_ms",
        "follow",
        "cursor_file",
        "sort",
        "lang",
        "community",
        "limit",
        "unpin",
        "with",
        "remove",
        "confirm",
        "seeds_from",
        "format",
        "out",
        "force",
        // Imports and the STIX export: names, flags and times, never an identifier.
        "source",
        "share",
        "watch",
        "spread",
        "override_marking",
        "dry_run",
        "no_wait",
        "records",
        "alerts",
        "since",
        "tokens",
        "help",
        "version",
    ];
    let mut seen = 0;
    let mut stack = vec![command];
    while let Some(command) = stack.pop() {
        for arg in command.get_arguments() {
            seen += 1;
            let name = arg.get_id().as_str();
            assert!(allowed.contains(&name), "`{}` takes `{name}`", command.get_name());
        }
        stack.extend(command.get_subcommands().cloned());
    }
    assert!(seen > 20, "{seen} arguments seen");
}

/// PEM files for the proxy test: a CA, the proxy's certificate for `localhost`, a client
/// certificate, written to `dir` (the keys 0600).
struct Pki {
    certificates: tls_proxy::ProxyCertificates,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let named = |names: Vec<String>, common_name: &str| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = named(Vec::new(), "crossmatch test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = named(vec!["localhost".to_owned()], "crossmatch test proxy")
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = named(Vec::new(), "analyst-de-1").signed_by(&client_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
    std::fs::set_permissions(dir.join("client.key"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
    Pki {
        certificates: tls_proxy::ProxyCertificates {
            server_chain: server.pem(),
            server_key: server_key.serialize_pem(),
            client_ca: ca.pem(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_the_mutual_tls_proxy() {
    tokio::time::timeout(LIMIT, async {
        let m = members("tls").await;
        let pki = pki(m.root.path());
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], m.ports[0]));
        let proxy = tls_proxy::start(target, &pki.certificates).await;
        let url = format!("https://localhost:{}", proxy.address.port());
        let file = |name: &str| m.root.path().join(name).to_str().unwrap().to_owned();
        let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
        let token = [("CROSSMATCH_TOKEN", ANALYST)];
        // With the client certificate: through.
        let args = [
            "status",
            "--json",
            "--api",
            &url,
            "--ca-file",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
        ];
        let run = cli(&args, &token, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.json()["member_id"], "DE");
        // The same through the environment.
        let env = [
            ("CROSSMATCH_TOKEN", ANALYST),
            ("CROSSMATCH_API", url.as_str()),
            ("CROSSMATCH_CA_FILE", ca.as_str()),
            ("CROSSMATCH_CLIENT_CERT", cert.as_str()),
            ("CROSSMATCH_CLIENT_KEY", key.as_str()),
        ];
        let run = cli(&["peers"], &env, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        // Without it, the proxy refuses the handshake: a TLS failure, exit 1.
        let run = cli(&["status", "--api", &url, "--ca-file", &ca], &token, "").await;
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stderr.contains("tls"), "{}", run.stderr);
        // A server the CA did not sign for: refused too (the system's roots do not know it).
        let run = cli(
            &["status", "--api", &url, "--client-cert", &cert, "--client-key", &key],
            &token,
            "",
        )
        .await;
        assert_eq!(run.code, Some(1), "{run:?}");
        drop(proxy);
    })
    .await
    .expect("test timed out");
}

/// A stand-in for a misbehaving node: answers each `GET` with `page(path)` as JSON, one
/// connection per request, until dropped.
struct FakeNode {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeNode {
    fn start(page: fn(&str) -> Value) -> Self {
        use std::io::Read;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + LIMIT;
            while !stopped.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or_default();
                let body = page(path).to_string();
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \
                         {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Self { port, stop, thread: Some(thread) }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The value of `name` in a path's query.
fn query_number(path: &str, name: &str) -> u64 {
    let query = path.split_once('?').map(|(_, query)| query).unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_whose_next_page_does_not_rise_fails_with_exit_1_and_prints_nothing() {
    tokio::time::timeout(LIMIT, async {
        // Takedowns: the second page names itself again as the next.
        let node = FakeNode::start(|path| {
            let after = query_number(path, "after");
            json!({"accounts": [{"record": after + 1}], "next_after": after.max(1), "totals": {}})
        });
        let run = cli(&["takedowns", "--json"], &env_ref(&analyst(node.port)), "").await;
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stdout.is_empty(), "nothing printed: {run:?}");
        assert!(run.stderr.contains("misbehaving"), "{}", run.stderr);
        drop(node);
        // Alerts: the next page goes back.
        let node = FakeNode::start(|path| {
            let after = query_number(path, "after_id");
            let next = if after == 0 { 5 } else { 3 };
            json!({"alerts": [{"id": after + 1}], "next_after_id": next})
        });
        let run = cli(&["alerts"], &env_ref(&analyst(node.port)), "").await;
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stdout.is_empty(), "nothing printed: {run:?}");
        // A well-behaved end (no next page) lists every page.
        let node = FakeNode::start(|path| {
            let after = query_number(path, "after_id");
            let next = if after < 2 { json!(after + 1) } else { json!(null) };
            json!({"alerts": [{"id": after + 1, "state": "open"}], "next_after_id": next})
        });
        let run = cli(&["alerts", "--json"], &env_ref(&analyst(node.port)), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.json()["alerts"].as_array().map(Vec::len), Some(3), "{run:?}");
    })
    .await
    .expect("test timed out");
}
