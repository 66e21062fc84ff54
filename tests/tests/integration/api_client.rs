//! What the federation tests that talk to a node's API share: the users they authenticate as,
//! a node's API served on a loopback port, and requests made off the async workers.

use crossmatch_node::api::{self, Role, User, Users};
use crossmatch_node::daemon::Node;
use crossmatch_node::test_support::http;

/// The admin's bearer token (user `coordinator`).
pub const ADMIN: &str = "cmt_admin-secret";
/// A monitor's bearer token (user `mo`).
pub const MONITOR: &str = "cmt_monitor-secret";

/// The two users: an admin and a monitor.
pub fn users() -> Users {
    Users::new([
        (api::token_hash(ADMIN), User { name: "coordinator".into(), role: Role::Admin }),
        (api::token_hash(MONITOR), User { name: "mo".into(), role: Role::Monitor }),
    ])
}

/// The wall clock, in Unix milliseconds.
pub fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    u64::try_from(now.as_millis()).unwrap()
}

/// Serves `node`'s API on a loopback port until the node stops; returns the port.
pub async fn serve(node: &Node) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(api::serve(listener, api::router(node.clone(), users(), "M"), node.clone()));
    port
}

/// One request with a body of `content_type`, off the async workers.
pub async fn request_typed(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    content_type: &'static str,
    body: Option<Vec<u8>>,
) -> http::Reply {
    http::request_off_workers(port, method, path, Some(bearer), content_type, body).await
}

/// The `error.code` of an error reply.
pub fn error_code(reply: &http::Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}
