//! Members serving their HTTP API in-process, for the tests that drive the API or the command
//! line: three users (an analyst, a monitor, an admin) with fixed tokens, a member's API served
//! on a loopback port of its own, two meshed members DE and FR each serving theirs, and the
//! hunt's sample observations with a lookup of an account in an analytics answer.

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::api::{self, Role, User, Users, UsersHandle};
use crate::daemon::Node;
use crate::local::LocalFederation;

use super::TempDir;

/// The analyst's bearer token (user `ana`).
pub const ANALYST_TOKEN: &str = "cmt_test-analyst";
/// The monitor's bearer token (user `mo`).
pub const MONITOR_TOKEN: &str = "cmt_test-monitor";
/// The admin's bearer token (user `adm`).
pub const ADMIN_TOKEN: &str = "cmt_test-admin";

/// The API's users: `ana` (analyst), `mo` (monitor) and `adm` (admin), by the tokens above.
pub fn api_users() -> Users {
    Users::new([
        (api::token_hash(ANALYST_TOKEN), User { name: "ana".into(), role: Role::Analyst }),
        (api::token_hash(MONITOR_TOKEN), User { name: "mo".into(), role: Role::Monitor }),
        (api::token_hash(ADMIN_TOKEN), User { name: "adm".into(), role: Role::Admin }),
    ])
}

/// Serves `node`'s API (as member `member_id`, to [`api_users`]) on a loopback port the
/// operating system picks, until the node stops: the port and the server's task.
pub async fn serve_api(node: &Node, member_id: &str) -> (u16, JoinHandle<()>) {
    serve_api_to(node, api_users(), member_id).await
}

/// Serves `node`'s API as [`serve_api`] does, to `users` (e.g. a handle a reload swaps).
pub async fn serve_api_to(
    node: &Node,
    users: impl Into<UsersHandle>,
    member_id: &str,
) -> (u16, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding the API's port: {e}"));
    let port = listener.local_addr().unwrap_or_else(|e| panic!("the API's port: {e}")).port();
    let router = api::router(node.clone(), users, member_id);
    (port, tokio::spawn(api::serve(listener, router, node.clone())))
}

/// Two meshed members, DE and FR, each serving its API; fields drop in order, so the
/// federation stops before its root is removed.
#[derive(Debug)]
pub struct ApiMembers {
    /// The federation.
    pub fed: LocalFederation,
    /// DE's and FR's API ports.
    pub ports: Vec<u16>,
    /// Their API servers' tasks.
    pub servers: Vec<JoinHandle<()>>,
    /// The federation's temporary root.
    pub root: TempDir,
}

/// Starts DE and FR under a new temporary root named after `name`, waits until they are
/// meshed, and serves each one's API.
pub async fn api_members(name: &str) -> ApiMembers {
    let root = TempDir::new(name);
    let mut fed = LocalFederation::new(root.path(), &["DE", "FR"]);
    fed.start_all().await.unwrap_or_else(|e| panic!("starting DE and FR: {e}"));
    fed.wait_meshed().await.unwrap_or_else(|e| panic!("meshing DE and FR: {e}"));
    let (mut ports, mut servers) = (Vec::new(), Vec::new());
    for (i, id) in ["DE", "FR"].into_iter().enumerate() {
        let node = fed.node(i).unwrap_or_else(|e| panic!("{e}"));
        let (port, server) = serve_api(node, id).await;
        ports.push(port);
        servers.push(server);
    }
    ApiMembers { fed, ports, servers, root }
}

/// Observations (`POST /v1/observations` lines) of two cliques, `@red0`…`@red4` and
/// `@blue0`…`@blue4` on x, each account reposting every other of its clique once, an hour
/// before `now_ms`: post ids 1 to 40.
pub fn clique_observations(now_ms: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut id = 0;
    for group in ["red", "blue"] {
        for i in 0..5 {
            for j in 0..5 {
                if i != j {
                    id += 1;
                    let at = now_ms - 3_600_000 + id;
                    lines.push(format!(
                        r#"{{"platform":"x","account":"@{group}{i}","at":{at},"post_id":"{id}","repost_of":"@{group}{j}"}}"#
                    ));
                }
            }
        }
    }
    lines
}

/// The x account `handle` (without `@`) in an analytics answer's `accounts`, if it is there.
pub fn analytics_account<'a>(answer: &'a Value, handle: &str) -> Option<&'a Value> {
    let canonical = format!("v1|account|x|{handle}");
    answer["accounts"].as_array()?.iter().find(|account| account["account"] == canonical)
}
