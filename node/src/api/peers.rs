//! `GET /v1/peers` (monitor): each roster member as this node sees it: connected, banned,
//! the addresses it dials, the head of its feed held here and its clock skew.

use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use super::Api;
use super::auth::{Role, User};
use super::error::ApiResult;
use crate::daemon::PeerView;

/// One member, as `/v1/peers` shows it.
#[derive(Debug, Serialize)]
struct PeerOut {
    member: String,
    contact: String,
    node_key_fingerprint: String,
    this_node: bool,
    connected: bool,
    banned_until_ms: Option<u64>,
    addresses: Vec<String>,
    head: Option<Value>,
    clock_skew_ms: Option<i64>,
    clock_skew_samples: usize,
}

impl From<PeerView> for PeerOut {
    fn from(peer: PeerView) -> Self {
        Self {
            member: peer.member_id,
            contact: peer.contact,
            node_key_fingerprint: peer.key.fingerprint().to_string(),
            this_node: peer.this_node,
            connected: peer.connected,
            banned_until_ms: peer.banned_until_ms,
            addresses: peer.addresses,
            head: peer.head.map(|head| json!({ "generation": head.generation, "seq": head.seq })),
            clock_skew_ms: peer.skew.map(|(median_ms, _)| median_ms),
            clock_skew_samples: peer.skew.map_or(0, |(_, samples)| samples),
        }
    }
}

/// `GET /v1/peers` → `{"peers": [...]}`, in roster order.
pub(super) async fn peers(State(api): State<Api>, user: User) -> ApiResult<axum::Json<Value>> {
    user.require(Role::Monitor)?;
    let peers: Vec<PeerOut> = api.node.peers().await?.into_iter().map(PeerOut::from).collect();
    Ok(axum::Json(json!({ "peers": peers })))
}
