//! `crossmatch init`, the member's first step of the ceremony: an owner-only directory with the
//! node key, a separate governance key, a commented config and a tokens file with one admin
//! whose token is printed once and stored nowhere; the config loads once the roster and the
//! secret arrive; a non-empty directory or a bad member id is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crossmatch_node::init_cli::{
    self, CONFIG_FILE, GOVERNANCE_KEY_FILE, NODE_KEY_FILE, TOKENS_FILE,
};
use crossmatch_node::test_support::{TempDir, roster_file};
use crossmatch_node::{api, config, keyfile};
use crossmatch_protocol::FederationSecret;

const BIN: &str = env!("CARGO_BIN_EXE_crossmatch");

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The value printed after `label:` on its own line.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label).and_then(|rest| rest.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {label:?} in {stdout}"))
        .trim()
}

#[test]
fn init_writes_the_members_files_and_its_config_loads_once_roster_and_secret_arrive() {
    let root = TempDir::new("init");
    let dir = root.path().join("de");
    let output = Command::new(BIN)
        .args(["init", "--member", "DE", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));

    // Owner-only: the directory and every file in it.
    assert_eq!(mode(&dir), 0o700);
    for file in [NODE_KEY_FILE, GOVERNANCE_KEY_FILE, CONFIG_FILE, TOKENS_FILE] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    // The public keys and fingerprints printed are those of the two key files, which differ.
    let node_key = keyfile::read_signing_key(&dir.join(NODE_KEY_FILE)).unwrap().public_key();
    let governance =
        keyfile::read_signing_key(&dir.join(GOVERNANCE_KEY_FILE)).unwrap().public_key();
    assert_ne!(node_key, governance);
    assert_eq!(printed(&stdout, "member id"), "DE");
    assert_eq!(printed(&stdout, "node public key"), node_key.to_string());
    assert_eq!(printed(&stdout, "node fingerprint"), node_key.fingerprint().to_string());
    assert_eq!(printed(&stdout, "governance public key"), governance.to_string());
    assert_eq!(printed(&stdout, "governance fingerprint"), governance.fingerprint().to_string());
    assert!(stdout.contains("Move it offline"), "{stdout}");
    // The admin's token is printed, and only its hash is stored.
    let token = printed(&stdout, "admin bearer token (admin-de)");
    assert!(token.starts_with(api::TOKEN_PREFIX), "{token}");
    let tokens = std::fs::read_to_string(dir.join(TOKENS_FILE)).unwrap();
    assert!(!tokens.contains(token));
    assert!(tokens.contains(&hex::encode(api::token_hash(token))), "{tokens}");
    let users = config::load_api_users(&dir.join(TOKENS_FILE)).unwrap();
    assert_eq!(format!("{users:?}"), "[\"admin-de\"]");
    // The config is commented and never names the governance key.
    let text = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
    assert!(text.lines().filter(|l| l.starts_with('#')).count() >= 10, "{text}");
    assert!(!text.contains(GOVERNANCE_KEY_FILE), "{text}");

    // Before the roster and the secret arrive, the config names what is missing.
    let missing = config::load(&dir.join(CONFIG_FILE)).unwrap_err().to_string();
    assert!(missing.contains(init_cli::SECRET_FILE), "{missing}");
    // Once they do, it loads: this member, its key, the API on loopback with the admin.
    let secret = FederationSecret::from_bytes([4; 32]);
    keyfile::write_federation_secret(&dir.join(init_cli::SECRET_FILE), &secret).unwrap();
    let seat = roster_file::seat_of_dir("DE", &dir, &["/ip4/127.0.0.1/tcp/7400".into()]);
    roster_file::write_founding(&dir.join(init_cli::ROSTER_FILE), &secret, &[seat]);
    let loaded = config::load(&dir.join(CONFIG_FILE)).unwrap();
    assert_eq!(loaded.config.member_id, "DE");
    assert_eq!(loaded.key.public_key(), node_key);
    assert_eq!(loaded.config.data_dir, dir.join(init_cli::DATA_DIR));
    assert_eq!(loaded.config.log_level, config::LogLevel::Info);
    let (address, users) = loaded.api.unwrap();
    assert!(address.ip().is_loopback());
    assert_eq!(users.len(), 1);
}

#[test]
fn init_refuses_a_used_directory_and_a_bad_member_id() {
    let root = TempDir::new("init-refused");
    // An existing empty directory is taken (and made owner-only).
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).unwrap();
    init_cli::init("FR", &empty).unwrap();
    assert_eq!(mode(&empty), 0o700);
    // A second init there is refused, and leaves the keys alone.
    let key_before = std::fs::read(empty.join(NODE_KEY_FILE)).unwrap();
    let output = Command::new(BIN)
        .args(["init", "--member", "FR", "--dir", empty.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an empty directory"));
    assert_eq!(std::fs::read(empty.join(NODE_KEY_FILE)).unwrap(), key_before);
    // A file is no directory.
    let file = root.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(init_cli::init("FR", &file), Err(init_cli::Error::NotEmpty { .. })));
    // A member id a roster would refuse is refused before anything is written.
    let fresh = root.path().join("fresh");
    for bad in ["", "D E", "DE/1", &"X".repeat(33)] {
        let output = Command::new(BIN)
            .args(["init", "--member", bad, "--dir", fresh.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!fresh.exists());
    }
}
