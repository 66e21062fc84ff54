//! Running it as a service: `crossmatch run` tells the service manager `READY=1` only once
//! `/readyz` answers 200 and `STOPPING=1` on SIGTERM (through `NOTIFY_SOCKET`, set on the child
//! only); the systemd unit in `config/` has every hardening directive and loads exactly the files
//! its service config names; and the README's restore drill: a data directory restored without
//! its own-feed log starts a new generation of the own feed and a new incarnation of the alert
//! event log.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use crossmatch_node::config::ConfigFile;
use crossmatch_node::test_support::sse::{EventStream, open_stream};
use crossmatch_node::test_support::{TempDir, http};

use crate::run::{self, Member};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `/readyz`'s status, or `None` while the API is not up.
fn readyz(member: &Member) -> Option<u16> {
    http::request(member.api_port, "GET", "/readyz", None, None).ok().map(|reply| reply.status)
}

/// The first event of the member's alert stream, resumed from `cursor` or from its head: its
/// type and data.
fn first_stream_event(member: &Member, cursor: Option<&str>) -> (String, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut stream = open_stream(member.api_port, &member.bearer, cursor, "").await;
        assert_eq!(stream.status, 200, "the alert stream");
        let event = stream.event(run::LIMIT).await;
        (event.event.clone(), EventStream::json(&event))
    })
}

/// The next notification on `socket`, within the test's limit.
fn next_notification(socket: &UnixDatagram) -> String {
    socket.set_read_timeout(Some(run::LIMIT)).unwrap();
    let mut buffer = [0u8; 256];
    let n = socket.recv(&mut buffer).expect("a notification within the limit");
    String::from_utf8(buffer[..n].to_vec()).unwrap()
}

#[test]
fn ready_is_told_once_readyz_answers_and_stopping_on_sigterm() {
    let dir = TempDir::new("service-notify");
    let members = run::setup(dir.path(), 1, 1);
    let member = &members[0];
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut nodes = vec![run::spawn_with_env(
        &member.config,
        &[("RUST_LOG", "info"), ("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    )];
    // The first notification is READY=1, and when it comes /readyz answers 200 already.
    assert_eq!(next_notification(&socket), "READY=1");
    assert_eq!(readyz(member), Some(200), "READY=1 came before /readyz answered 200");
    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = nodes[0].0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(next_notification(&socket), "STOPPING=1");
    run::stop_all(&mut nodes);
}

#[test]
fn a_node_without_a_notify_socket_runs_as_before() {
    let dir = TempDir::new("service-no-notify");
    let members = run::setup(dir.path(), 1, 1);
    // A socket path nobody listens on would be logged, not fatal; with no variable at all the
    // node never tries.
    let mut nodes = vec![run::spawn_with_env(
        &members[0].config,
        &[("RUST_LOG", "debug"), ("NOTIFY_SOCKET", "")],
    )];
    run::wait_for("the node ready", || readyz(&members[0]) == Some(200));
    run::stop_all(&mut nodes);
    let (_, receiver) = nodes.pop().unwrap();
    let mut lines = Vec::new();
    let deadline = Instant::now() + run::LIMIT;
    loop {
        match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the node's stderr stayed open"),
        }
    }
    assert!(lines.iter().any(|line| line.contains("node running")), "{lines:#?}");
    assert!(
        lines.iter().all(|line| !line.contains("service manager")),
        "nothing is told without a socket: {lines:#?}"
    );
}

/// The unit's `Key=value` settings in order (comments and section headers left out).
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with('[') && line.contains('='))
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap();
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_unit_has_every_directive_and_loads_the_files_its_config_names() {
    let unit = std::fs::read_to_string(root().join("config/crossmatch.service")).unwrap();
    let settings = unit_settings(&unit);
    let values = |key: &str| -> Vec<&str> {
        settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    };
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("User", "crossmatch"),
        ("StateDirectory", "crossmatch"),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("Restart", "on-failure"),
        ("TimeoutStopSec", "30"),
    ] {
        assert!(values(key).contains(&value), "the unit lacks {key}={value}");
    }
    let exec = values("ExecStart");
    assert_eq!(exec.len(), 1);
    assert!(exec[0].ends_with(" run --config ${CREDENTIALS_DIRECTORY}/node.toml"), "{exec:?}");

    // Every credential is a file the service config names (beside the config itself), and every
    // file it names is a credential.
    let credentials: BTreeSet<String> = values("LoadCredential")
        .iter()
        .map(|value| {
            let (name, source) = value.split_once(':').unwrap();
            assert_eq!(
                source,
                format!("/etc/crossmatch/{name}"),
                "sources stay in /etc/crossmatch"
            );
            name.to_owned()
        })
        .collect();
    let text = std::fs::read_to_string(root().join("config/node.service.example.toml")).unwrap();
    let config: ConfigFile = toml::from_str(&text).unwrap();
    let named: BTreeSet<String> = [
        PathBuf::from("node.toml"),
        config.key_file.clone(),
        config.secret_file.clone(),
        config.roster_file.clone(),
        config.api.as_ref().unwrap().tokens_file.clone(),
    ]
    .iter()
    .map(|path| {
        assert!(path.is_relative() && path.components().count() == 1, "{path:?}");
        path.to_str().unwrap().to_owned()
    })
    .collect();
    assert_eq!(credentials, named);
    // The state lives in the unit's state directory, the one place it may write.
    assert_eq!(config.data_dir, Path::new("/var/lib").join(values("StateDirectory")[0]));

    // The unit's user is the one sysusers makes.
    let sysusers = std::fs::read_to_string(root().join("config/crossmatch.sysusers")).unwrap();
    assert!(sysusers.lines().any(|line| line.starts_with("u crossmatch ")), "{sysusers}");

    // The committed security report is of this unit; where the same systemd is at hand, it is
    // made again and must agree.
    let report =
        std::fs::read_to_string(root().join("config/crossmatch.service.security.txt")).unwrap();
    let overall = |text: &str| -> String {
        text.lines()
            .find(|line| line.contains("Overall exposure level for crossmatch.service"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert!(!overall(&report).is_empty(), "{report}");
    let version = Command::new("systemd-analyze").arg("--version").output();
    if let Ok(version) = version
        && String::from_utf8_lossy(&version.stdout).starts_with("systemd 252 ")
    {
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(root().join("config/crossmatch.service"))
            .output()
            .unwrap();
        let fresh = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert_eq!(overall(&fresh), overall(&report), "regenerate the committed report");
    }
}

/// Copies `from` into the new directory `to`, keeping modes, leaving out what `skip` names.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
    let mode = std::fs::metadata(from).unwrap().permissions().mode();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|skipped| name == *skipped) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn own_feed(member: &Member) -> (u64, u64) {
    let status = run::status(member).unwrap();
    let own = &status["own_feed"];
    (own["generation"].as_u64().unwrap(), own["seq"].as_u64().unwrap())
}

#[test]
fn a_data_directory_restored_without_its_own_feed_log_starts_a_new_generation_and_incarnation() {
    let dir = TempDir::new("service-restore");
    let members = run::setup(dir.path(), 1, 1);
    let member = &members[0];
    let data_dir = dir.path().join("data-0");
    let mut nodes = vec![run::spawn(&member.config)];
    run::wait_for("the node ready", || run::status(member).is_some_and(|s| s["ready"] == true));
    let ids: Vec<u64> = (0..3)
        .map(|k| {
            let body = http::account_record(&format!("restore_drill_{k}"), true);
            let reply =
                http::call(member.api_port, "POST", "/v1/records", &member.bearer, Some(&body));
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.json()["id"].as_u64().unwrap()
        })
        .collect();
    run::wait_for("the records published", || {
        run::status(member).is_some_and(|s| s["outbox"] == 0 && s["own_feed"]["seq"] != 0)
    });
    let (generation, seq) = own_feed(member);
    assert!(seq > 0);
    let (kind, hello) = first_stream_event(member, None);
    assert_eq!(kind, "hello", "{hello}");
    let head = hello["head"].as_str().expect("the stream's head").to_owned();
    run::stop_all(&mut nodes);

    // The runbook: the node stopped, the data directory copied without own-feed.log; later the
    // directory is lost and the copy put in its place.
    let entries: BTreeSet<String> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Exactly what the runbook names, copied or left out: a file added to the data directory
    // must be added there.
    let copied = ["db", "audit", "secrets", "imports"];
    let left_out = ["own-feed.log", "event-log.head"];
    let named: BTreeSet<String> =
        copied.iter().chain(&left_out).map(|name| (*name).to_owned()).collect();
    assert_eq!(entries, named, "README, \"Backup and restore\"");
    for file in ["audit.log", "audit.head"] {
        assert!(data_dir.join("audit").join(file).is_file(), "audit/{file}");
    }
    let backup = dir.path().join("backup");
    copy_tree(&data_dir, &backup, &left_out);
    std::fs::remove_dir_all(&data_dir).unwrap();
    std::fs::rename(&backup, &data_dir).unwrap();

    let mut nodes = vec![run::spawn(&member.config)];
    run::wait_for("the restored node ready", || {
        run::status(member).is_some_and(|s| s["ready"] == true)
    });
    let (restored_generation, _) = own_feed(member);
    assert!(
        restored_generation > generation,
        "a restored node signs on in a new generation: {generation} then {restored_generation}"
    );
    // The event log's incarnation is new too: a stream resuming from before the backup resyncs.
    let (kind, resync) = first_stream_event(member, Some(&head));
    assert_eq!(kind, "resync", "{resync}");
    assert_eq!(resync["reason"], "unknown_incarnation", "{resync}");
    for id in ids {
        let reply =
            http::call(member.api_port, "GET", &format!("/v1/records/{id}"), &member.bearer, None);
        assert_eq!(reply.status, 200, "record {id} restored: {}", reply.body);
    }
    // It publishes again, in the new generation.
    let body = http::account_record("restore_after", true);
    let reply = http::call(member.api_port, "POST", "/v1/records", &member.bearer, Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    run::wait_for("the new record published", || {
        run::status(member).is_some_and(|s| {
            s["outbox"] == 0
                && s["own_feed"]["generation"] == restored_generation
                && s["own_feed"]["seq"] != 0
        })
    });
    run::stop_all(&mut nodes);
}
