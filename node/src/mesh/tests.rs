//! Unit tests of the mesh's settings: what `MeshConfig::validate` refuses, and why; and a
//! listen port another node holds, and one a node takes on both wildcards.

use super::*;

fn member(seed: u8, addresses: &[&str]) -> MeshMember {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    MeshMember {
        public_key: signing.verifying_key().to_bytes(),
        addresses: addresses.iter().map(ToString::to_string).collect(),
    }
}

fn valid() -> MeshConfig {
    MeshConfig::new(
        [1; 32],
        [0xfe; 32],
        vec![member(1, &[]), member(2, &["/dns4/node.example/tcp/7400"])],
        vec!["/ip4/127.0.0.1/tcp/0".to_string()],
        Arc::new(crossmatch_protocol::gossip_message_id),
    )
}

/// The message `validate` refuses `valid()` with once `change` is applied.
fn refusal(change: impl FnOnce(&mut MeshConfig)) -> String {
    let mut config = valid();
    change(&mut config);
    match config.validate() {
        Ok(()) => panic!("accepted: {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_default_tuning_is_valid() {
    assert!(valid().validate().is_ok());
}

#[test]
fn a_member_key_that_is_no_ed25519_key_is_refused() {
    // y = 2 is not on the curve.
    let mut bad = [0u8; 32];
    bad[0] = 2;
    let message = refusal(|config| config.members[1].public_key = bad);
    assert_eq!(message, "roster member 1 has an invalid public key");
}

#[test]
fn addresses_that_are_no_multiaddrs_are_refused() {
    let message = refusal(|config| config.members[1].addresses.push("node:7400".into()));
    assert!(message.starts_with("invalid address \"node:7400\""), "{message}");
    let message = refusal(|config| config.listen_addresses.push("0.0.0.0:7400".into()));
    assert!(message.starts_with("invalid address \"0.0.0.0:7400\""), "{message}");
}

#[test]
fn more_members_than_a_roster_holds_are_refused() {
    let mut config = valid();
    config.members = (0..=MAX_MEMBERS).map(|n| member((n % 250) as u8 + 1, &[])).collect();
    let message = config.validate().map(|()| String::new()).unwrap_or_else(|e| e.to_string());
    assert_eq!(message, "invalid mesh setting: at most 256 members");
    config.members.truncate(MAX_MEMBERS);
    assert!(config.validate().is_ok());
}

#[test]
fn zero_channel_capacities_are_refused() {
    let message = refusal(|config| config.command_capacity = 0);
    assert_eq!(message, "invalid mesh setting: command_capacity must be at least 1");
    let message = refusal(|config| config.event_capacity = 0);
    assert_eq!(message, "invalid mesh setting: event_capacity must be at least 1");
}

#[test]
fn a_ban_threshold_that_is_not_negative_is_refused() {
    for threshold in [0.0, 10.0, f64::NAN] {
        let message = refusal(|config| config.ban_score_threshold = threshold);
        assert_eq!(message, "invalid mesh setting: ban_score_threshold must be negative");
    }
}

#[test]
fn a_ban_of_no_time_or_over_a_year_is_refused() {
    for ban_secs in [0, MAX_BAN_SECS + 1, u64::MAX] {
        let message = refusal(|config| config.ban_secs = ban_secs);
        assert!(message.contains("ban_secs must be at least 1 and at most a year"));
    }
    let mut config = valid();
    config.ban_secs = MAX_BAN_SECS;
    assert!(config.validate().is_ok());
}

#[test]
fn a_sync_budget_that_is_not_positive_is_refused() {
    let changes: [fn(&mut SyncBudget); 5] = [
        |budget| budget.requests_per_sec = 0.0,
        |budget| budget.requests_burst = 0.5,
        |budget| budget.response_bytes_per_sec = -1.0,
        |budget| budget.response_bytes_burst = 0.0,
        |budget| budget.requests_per_sec = f64::NAN,
    ];
    for change in changes {
        let message = refusal(|config| change(&mut config.sync_budget));
        assert!(message.contains("sync budget rates and bursts must be positive"));
    }
}

#[test]
fn a_sync_request_timeout_of_zero_is_refused() {
    let message = refusal(|config| config.sync_request_timeout_secs = 0);
    assert!(message.contains("sync_request_timeout_secs must be at least 1"));
}

#[test]
fn a_redial_max_below_the_initial_wait_is_refused() {
    let message = refusal(|config| {
        config.redial_initial_ms = 2_000;
        config.redial_max_ms = 1_000;
    });
    assert!(message.contains("redial_initial_ms must be at least 1 and at most redial_max_ms"));
    let message = refusal(|config| config.redial_initial_ms = 0);
    assert!(message.contains("redial_initial_ms must be at least 1"));
}

#[test]
fn a_redial_max_over_a_day_is_refused() {
    let message = refusal(|config| config.redial_max_ms = MAX_REDIAL_MS + 1);
    assert!(message.contains("redial_max_ms must be at most a day"));
}

#[test]
fn zero_connection_limits_are_refused() {
    let message = refusal(|config| config.max_connections_per_peer = 0);
    assert!(message.contains("max_connections_per_peer must be at least 1"));
    for change in [
        (|config: &mut MeshConfig| config.max_pending_incoming = 0) as fn(&mut MeshConfig),
        |config| config.max_pending_outgoing = 0,
    ] {
        let message = refusal(change);
        assert!(message.contains("max_pending_incoming and max_pending_outgoing"));
    }
    let message = refusal(|config| config.max_inbound_per_ip = 0);
    assert!(message.contains("max_inbound_per_ip must be at least 1"));
}

#[test]
fn mesh_new_refuses_what_validate_refuses() {
    let mut config = valid();
    config.ban_score_threshold = 1.0;
    let error = new(config).map(|_| ()).expect_err("refused");
    assert_eq!(error.to_string(), "invalid mesh setting: ban_score_threshold must be negative");
}

#[tokio::test]
async fn a_port_another_node_listens_on_is_refused() {
    let port = crate::test_support::free_ports(1)[0];
    let on_port = || {
        let mut config = valid();
        config.listen_addresses = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        config
    };
    let first = new(on_port()).expect("the first node listens on a free port");
    // libp2p listens with SO_REUSEPORT: without the check, the second node would bind too.
    let error = new(on_port()).map(|_| ()).expect_err("the second node is refused");
    assert!(matches!(error, MeshError::Listen { .. }), "{error}");
    let source = std::error::Error::source(&error).expect("the cause");
    let io = source.downcast_ref::<std::io::Error>().expect("an I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
    drop(first);
    let _again = new(on_port()).expect("the port is free once the first node is gone");
}

#[tokio::test]
async fn one_port_on_both_wildcards_is_not_a_clash_with_itself() {
    // libp2p binds an IPv6 listener for IPv6 alone, so `[::]` and `0.0.0.0` on one port are
    // two listeners that do not share a connection: the check must see them so too.
    let port = crate::test_support::free_ports(1)[0];
    let mut config = valid();
    config.listen_addresses =
        vec![format!("/ip4/0.0.0.0/tcp/{port}"), format!("/ip6/::/tcp/{port}")];
    let _node = new(config).expect("one node listens on the port's IPv4 and IPv6 wildcards");
}
