//! Operations: `/readyz`, `/v1/status` (the node's state, for people and scripts) and
//! `/v1/forks` (fork evidence held, for admins).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::Api;
use super::auth::{Role, User};
use super::error::ApiResult;
use crate::daemon::{Counters, StatusView};

/// What `/v1/status` and `/metrics` report.
#[derive(Debug, Serialize)]
pub(super) struct StatusOut {
    pub(super) member_id: String,
    pub(super) ready: bool,
    pub(super) peers: usize,
    pub(super) own_feed: Position,
    pub(super) outbox: usize,
    pub(super) heads: Vec<HeadOut>,
    pub(super) forks: usize,
    pub(super) counters: CountersOut,
    pub(super) gossip_dropped_busy: u64,
    pub(super) sync_refused_busy: u64,
    pub(super) refused_connections: u64,
    pub(super) bans: usize,
    /// Payload bytes sent by the mesh (published batches, sync answers), before Noise and Yamux.
    pub(super) mesh_payload_bytes_sent: u64,
    /// Of those, the batches and announcements published by gossip, once each.
    pub(super) mesh_gossip_bytes_published: u64,
    /// Members (by id, or key hex if unknown) that announced another federation: no sync.
    pub(super) roster_mismatches: Vec<String>,
    pub(super) api_auth_failures: u64,
    /// Engine calls queued or running for API requests (at most 64).
    pub(super) api_engine_calls_outstanding: u64,
    /// Engine calls queued or running for peers' sync requests (at most 64).
    pub(super) sync_engine_calls_outstanding: u64,
    /// Engine calls that did nothing because their caller had gone (a request that timed out).
    pub(super) engine_calls_abandoned: u64,
    /// Per member (id, or `?` off the roster), the estimated clock skew in ms: the median of
    /// receipt time minus `created_at` over its recent batches that gossip brought fresh.
    pub(super) clock_skew_ms: std::collections::BTreeMap<String, i64>,
    /// Samples each skew estimate is over.
    pub(super) clock_skew_samples: std::collections::BTreeMap<String, usize>,
}

/// Ingest counters since start.
#[derive(Debug, Serialize)]
pub(super) struct CountersOut {
    pub(super) received: u64,
    pub(super) verifications: u64,
    pub(super) stored_reverifications: u64,
    pub(super) applied: u64,
    pub(super) applied_by_sync: u64,
    pub(super) applied_by_gossip: u64,
    pub(super) duplicates: u64,
    pub(super) rejected: u64,
    pub(super) quota_refused: u64,
    pub(super) refused_unverified: u64,
    pub(super) unknown_origin: u64,
    pub(super) past_final_head: u64,
    pub(super) skipped_entries: u64,
    pub(super) forks: u64,
    pub(super) held_dropped: u64,
    pub(super) outbox_dropped: u64,
}

impl From<Counters> for CountersOut {
    fn from(c: Counters) -> Self {
        Self {
            received: c.received,
            verifications: c.verifications,
            stored_reverifications: c.stored_reverifications,
            applied: c.applied,
            applied_by_sync: c.applied_by_sync,
            applied_by_gossip: c.applied_by_gossip,
            duplicates: c.duplicates,
            rejected: c.rejected,
            quota_refused: c.quota_refused,
            refused_unverified: c.refused_unverified,
            unknown_origin: c.unknown_origin,
            past_final_head: c.past_final_head,
            skipped_entries: c.skipped_entries,
            forks: c.forks,
            held_dropped: c.held_dropped,
            outbox_dropped: c.outbox_dropped,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Position {
    pub(super) generation: u32,
    pub(super) seq: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct HeadOut {
    member: Option<String>,
    origin: String,
    generation: u32,
    seq: u64,
}

impl StatusOut {
    /// The node's status as the API reports it.
    fn new(api: &Api, status: StatusView) -> Self {
        let calls = api.node.engine_calls();
        Self {
            member_id: api.member_id.to_string(),
            ready: status.ready,
            peers: status.mesh.connected_peers,
            own_feed: Position { generation: status.own_feed.generation, seq: status.own_feed.seq },
            outbox: status.outbox,
            heads: status
                .heads
                .into_iter()
                .map(|head| HeadOut {
                    member: head.member_id,
                    origin: head.origin.to_string(),
                    generation: head.generation,
                    seq: head.seq,
                })
                .collect(),
            forks: status.forks,
            counters: status.counters.into(),
            gossip_dropped_busy: status.mesh.gossip_dropped_busy,
            sync_refused_busy: status.mesh.sync_refused_busy,
            refused_connections: status.mesh.refused_connections,
            bans: status.mesh.bans,
            mesh_payload_bytes_sent: status.mesh.payload_bytes_sent,
            mesh_gossip_bytes_published: status.mesh.gossip_bytes_published,
            roster_mismatches: status.roster_mismatches,
            api_auth_failures: api.auth_failures.load(Ordering::Relaxed),
            api_engine_calls_outstanding: calls.api_outstanding,
            sync_engine_calls_outstanding: calls.sync_outstanding,
            engine_calls_abandoned: calls.abandoned,
            clock_skew_ms: status
                .clock_skews
                .iter()
                .map(|skew| (skew.member_id.clone().unwrap_or_else(|| "?".into()), skew.median_ms))
                .collect(),
            clock_skew_samples: status
                .clock_skews
                .iter()
                .map(|skew| (skew.member_id.clone().unwrap_or_else(|| "?".into()), skew.samples))
                .collect(),
        }
    }
}

/// The node's status now, as `/v1/status` and `/metrics` report it.
pub(super) async fn gather_status(api: &Api) -> ApiResult<StatusOut> {
    let status = api.node.status().await?;
    Ok(StatusOut::new(api, status))
}

/// `GET /livez`: `200` while the process runs and nothing has failed, `503` once a task or the
/// engine has failed (the node is stopping and the process exits non-zero).
pub(super) async fn livez(State(api): State<Api>) -> (StatusCode, String) {
    match failed(&api) {
        Some(failed) => failed,
        None => (StatusCode::OK, "ok\n".into()),
    }
}

/// `GET /readyz`: `200` once own-feed recovery is done, `503` before, and `503` naming what
/// failed once a task or the engine has. A ready node with a roster alarm (an expired roster)
/// answers `200 ready, degraded: roster <alarms>`: it keeps working, and an operator must act.
pub(super) async fn readyz(State(api): State<Api>) -> (StatusCode, String) {
    if let Some(failed) = failed(&api) {
        return failed;
    }
    if api.node.is_ready() {
        let alarms = api.node.roster_alarms();
        if alarms.is_empty() {
            (StatusCode::OK, "ready\n".into())
        } else {
            (StatusCode::OK, format!("ready, degraded: roster {}\n", alarms.join(", ")))
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering the own feed\n".into())
    }
}

/// The health answer of a failed node: `503` and the fixed names of what failed.
fn failed(api: &Api) -> Option<(StatusCode, String)> {
    let failures = api.node.failures();
    (!failures.is_empty())
        .then(|| (StatusCode::SERVICE_UNAVAILABLE, format!("failed: {}\n", failures.join(", "))))
}

/// `GET /v1/status` (monitor).
pub(super) async fn status(State(api): State<Api>, user: User) -> ApiResult<axum::Json<StatusOut>> {
    user.require(Role::Monitor)?;
    Ok(axum::Json(gather_status(&api).await?))
}

/// `GET /v1/forks` (admin): every fork held as evidence.
pub(super) async fn forks(
    State(api): State<Api>,
    user: User,
) -> ApiResult<axum::Json<serde_json::Value>> {
    user.require(Role::Admin)?;
    let forks: Vec<_> = api
        .node
        .forks()
        .await?
        .into_iter()
        .map(|fork| {
            json!({
                "member": fork.member_id,
                "origin": fork.origin.to_string(),
                "generation": fork.generation,
                "seq": fork.seq,
                "found_at_ms": fork.found_at_ms,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "forks": forks })))
}
