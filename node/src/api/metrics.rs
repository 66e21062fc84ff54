//! `/metrics`: the node's health, its engine calls and the status figures in the Prometheus
//! text format, prefixed `crossmatch_`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Api;
use super::auth::{Role, User};
use super::error::ApiResult;
use super::status::gather_status;
use crate::daemon::{TIME_TO_REMOVAL_BUCKETS_SECS, TakedownMetrics, WebhookFigures};

/// `GET /metrics` (monitor): the node's health and engine calls, which need no engine and are
/// always there, then the status figures: gauges, then counters. A failed node answers with
/// the health figures alone; a running node that cannot gather the status now (the engine
/// busy, a store error) fails the scrape with that error, so no series comes and goes.
pub(super) async fn metrics(State(api): State<Api>, user: User) -> ApiResult<Response> {
    user.require(Role::Monitor)?;
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let calls = api.node.engine_calls();
    let mut text = String::new();
    write_table(
        &mut text,
        Kind::Gauge,
        &[
            (
                "ready",
                "1 once own-feed recovery is done and the node publishes, 0 before and once it failed.",
                u64::from(api.node.is_ready()),
            ),
            (
                "failed",
                "Tasks (or the engine) that failed: the node stops and the process exits non-zero.",
                as_u64(api.node.failures().len()),
            ),
            (
                "api_engine_calls_outstanding",
                "Engine calls queued or running for API requests (at most 64).",
                calls.api_outstanding,
            ),
            (
                "sync_engine_calls_outstanding",
                "Engine calls queued or running for peers' sync requests (at most 64).",
                calls.sync_outstanding,
            ),
        ],
    );
    write_table(
        &mut text,
        Kind::Counter,
        &[(
            "engine_calls_abandoned_total",
            "Engine calls that did nothing because their caller had gone (a timed-out request).",
            calls.abandoned,
        )],
    );
    live_alert_metrics(&api, &mut text);
    webhook_metrics(&api.node.webhook_figures().await.unwrap_or_default(), &mut text);
    let status = match gather_status(&api).await {
        Ok(status) => status,
        // A failed node: the health figures above say so; the rest cannot be read.
        Err(_) if !api.node.failures().is_empty() => return Ok(prometheus(text)),
        Err(error) => return Err(error),
    };
    let c = &status.counters;
    let gauges = [
        ("peers", "Members connected with a matching roster.", as_u64(status.peers)),
        ("outbox_entries", "Entries waiting to be published.", as_u64(status.outbox)),
        ("own_feed_seq", "Seq of the newest own batch.", status.own_feed.seq),
        (
            "own_feed_generation",
            "Generation of the own feed.",
            u64::from(status.own_feed.generation),
        ),
        ("forks", "Fork evidence held.", as_u64(status.forks)),
        ("bans", "Members banned now.", as_u64(status.bans)),
        (
            "roster_mismatches",
            "Members that announced another federation (no sync with them).",
            as_u64(status.roster_mismatches.len()),
        ),
    ];
    let counters = [
        ("batches_received_total", "Batches received by ingest.", c.received),
        ("verifications_total", "Signature verifications of received batches.", c.verifications),
        (
            "stored_reverifications_total",
            "Verifications of stored batches before redacting or filling them.",
            c.stored_reverifications,
        ),
        ("batches_applied_total", "Batches applied.", c.applied),
        ("batches_applied_by_sync_total", "Batches applied from sync answers.", c.applied_by_sync),
        ("batches_applied_by_gossip_total", "Batches applied from gossip.", c.applied_by_gossip),
        ("batches_duplicate_total", "Duplicate batches seen.", c.duplicates),
        ("batches_rejected_total", "Batches rejected.", c.rejected),
        ("batches_quota_refused_total", "Batches refused over quota.", c.quota_refused),
        (
            "batches_refused_unverified_total",
            "Batches ignored on their claim before any signature check (past a fork, over quota).",
            c.refused_unverified,
        ),
        (
            // A member's routine node key change.
            "batches_past_final_head_total",
            "Batches of a retired node key past its key change's final head, ignored.",
            c.past_final_head,
        ),
        (
            "unknown_origin_total",
            "Batches and fork evidence of an origin outside the roster, ignored unverified.",
            c.unknown_origin,
        ),
        ("entries_skipped_total", "Entries skipped as invalid.", c.skipped_entries),
        ("forks_found_total", "Forks found.", c.forks),
        ("held_dropped_total", "Held out-of-order batches dropped, window full.", c.held_dropped),
        (
            "outbox_dropped_total",
            "Own outbox entries dropped unsigned (expired while waiting, or damaged).",
            c.outbox_dropped,
        ),
        (
            "gossip_dropped_busy_total",
            "Gossip ignored because the node was busy.",
            status.gossip_dropped_busy,
        ),
        ("sync_refused_busy_total", "Sync requests refused as busy.", status.sync_refused_busy),
        ("connections_refused_total", "Connections refused.", status.refused_connections),
        (
            "mesh_payload_bytes_sent_total",
            "Payload bytes sent by the mesh (published batches, sync answers), before Noise and Yamux.",
            status.mesh_payload_bytes_sent,
        ),
        (
            "mesh_gossip_bytes_published_total",
            "Payload bytes published by gossip, once each (batches, fork evidence, roster \
             announcements, member records): mesh_payload_bytes_sent_total without sync answers.",
            status.mesh_gossip_bytes_published,
        ),
        (
            "api_auth_failures_total",
            "API requests without a valid token.",
            status.api_auth_failures,
        ),
    ];
    write_table(&mut text, Kind::Gauge, &gauges);
    write_table(&mut text, Kind::Counter, &counters);
    write_takedowns(&mut text, &api.node.takedown_metrics());
    write_roster(&mut text, &api);
    Ok(prometheus(text))
}

/// The signed roster's figures: its version (0 without one) and its alarms, each 0 or 1.
fn write_roster(text: &mut String, api: &Api) {
    let version = api.node.roster_view().map_or(0, |view| view.version);
    let alarms = api.node.roster_alarms();
    write_table(
        text,
        Kind::Gauge,
        &[
            ("roster_version", "Version of the adopted signed roster.", version),
            (
                "roster_expired",
                "1 while the adopted roster is past its expires_at (the node keeps running).",
                u64::from(alarms.contains(&"expired")),
            ),
            (
                "roster_conflict",
                "1 once two valid rosters of one version were seen: the federation forked.",
                u64::from(alarms.contains(&"conflict")),
            ),
            (
                "roster_removal_without_rotation",
                "1 while a member removed without a rotation of the epoch can still compute tokens.",
                u64::from(alarms.contains(&"removal_without_rotation")),
            ),
            (
                "rotation_alarm",
                "1 while the adopted roster's rotation is not carried out (its secret missing, or it does not follow the epoch the node runs).",
                u64::from(api.node.rotation_alarm().is_some()),
            ),
        ],
    );
}

/// The takedown clock's figures as of the timer's last sweep: the overdue gauge, warnings, and
/// the time-to-removal histogram on the unit clock (non-backlog records, each removal observed
/// once per process run).
fn write_takedowns(text: &mut String, takedowns: &TakedownMetrics) {
    write_table(
        text,
        Kind::Gauge,
        &[(
            "takedowns_overdue",
            "Records past their takedown budget and not removed, at the last sweep (backlog excluded).",
            takedowns.overdue,
        )],
    );
    write_table(
        text,
        Kind::Counter,
        &[("takedown_warnings_total", "Takedown budget warnings raised.", takedowns.warnings)],
    );
    let name = "crossmatch_takedown_time_to_removal_seconds";
    let _ = writeln!(text, "# HELP {name} Time from identification to removal, unit clock.");
    let _ = writeln!(text, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (index, bound) in TIME_TO_REMOVAL_BUCKETS_SECS.iter().enumerate() {
        cumulative += takedowns.removal_buckets.get(index).copied().unwrap_or(0);
        let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += takedowns.removal_buckets.last().copied().unwrap_or(0);
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(text, "{name}_sum {}", takedowns.removal_sum_ms as f64 / 1000.0);
    let _ = writeln!(text, "{name}_count {cumulative}");
}

/// A metric's type, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One figure: its name (after `crossmatch_`), its help and its value.
type Row<'a> = (&'a str, &'a str, u64);

/// A table of figures of one kind, in order, each with its help and type lines.
fn write_table(text: &mut String, kind: Kind, rows: &[Row<'_>]) {
    let kind = kind.as_str();
    for (name, help, value) in rows {
        let _ = writeln!(text, "# HELP crossmatch_{name} {help}");
        let _ = writeln!(text, "# TYPE crossmatch_{name} {kind}");
        let _ = writeln!(text, "crossmatch_{name} {value}");
    }
}

/// The answer: Prometheus text.
fn prometheus(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The live alerts' figures, which need no engine: the durable head and the streams'.
fn live_alert_metrics(api: &Api, text: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let head = api.node.event_head().borrow().map_or(0, |head| head.seq);
    let streams = &api.streams;
    write_table(
        text,
        Kind::Gauge,
        &[
            ("alert_event_seq", "Seq of the newest durable alert event.", head),
            ("alert_streams_open", "Alert streams open now.", streams.open.load(Relaxed)),
        ],
    );
    write_table(
        text,
        Kind::Counter,
        &[
            (
                "alert_streams_refused_total",
                "Alert streams refused because all stream slots were taken.",
                streams.refused.load(Relaxed),
            ),
            (
                "alert_stream_resyncs_total",
                "Resync events sent on alert streams.",
                streams.resyncs.load(Relaxed),
            ),
            (
                "alert_high_water_failures_total",
                "Failed store flushes or high-water file writes of the alert event pump; while \
                 they fail, no new alert event goes out.",
                api.node.alert_head_failures(),
            ),
        ],
    );
}

/// The webhook's figures, always present (0 without a webhook); the drop and marker counters
/// are durable.
fn webhook_metrics(figures: &WebhookFigures, text: &mut String) {
    let f = figures;
    let gauges = [
        ("webhook_configured", "1 when a webhook is configured.", f.configured),
        ("webhook_queue_events", "Alert events waiting for the webhook.", f.queue_events),
        ("webhook_queue_capacity", "The webhook queue's bound (max_queue).", f.queue_capacity),
        ("webhook_backoff_seconds", "Wait before the next webhook attempt.", f.backoff_seconds),
        (
            "webhook_last_delivery_timestamp_seconds",
            "When the webhook last acknowledged a delivery (Unix seconds).",
            f.last_delivery_timestamp_seconds,
        ),
        (
            "webhook_oldest_pending_age_seconds",
            "Age of the oldest event waiting for the webhook.",
            f.oldest_pending_age_seconds,
        ),
    ];
    write_table(text, Kind::Gauge, &gauges);
    let counters = [
        (
            "webhook_deliveries_total",
            "Webhook deliveries acknowledged with a 2xx.",
            f.deliveries_total,
        ),
        (
            "webhook_attempt_failures_total",
            "Webhook attempts that failed (no answer, or not a 2xx).",
            f.attempt_failures_total,
        ),
        (
            "webhook_dropped_events_total",
            "Events dropped because the webhook queue was full or fell behind (durable).",
            f.dropped_events_total,
        ),
        (
            "webhook_resync_markers_total",
            "Resync markers delivered to the webhook (durable).",
            f.resync_markers_total,
        ),
    ];
    write_table(text, Kind::Counter, &counters);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_writes_each_figure_with_its_help_and_type_in_order() {
        let mut text = String::new();
        write_table(&mut text, Kind::Gauge, &[("a", "The a.", 1), ("b", "The b.", 2)]);
        write_table(&mut text, Kind::Counter, &[("c_total", "The c.", 3)]);
        assert_eq!(
            text,
            "# HELP crossmatch_a The a.\n# TYPE crossmatch_a gauge\ncrossmatch_a 1\n\
             # HELP crossmatch_b The b.\n# TYPE crossmatch_b gauge\ncrossmatch_b 2\n\
             # HELP crossmatch_c_total The c.\n# TYPE crossmatch_c_total counter\ncrossmatch_c_total 3\n"
        );
    }

    #[test]
    fn the_webhook_figures_are_written_gauges_first_then_counters() {
        let figures = WebhookFigures {
            configured: 1,
            queue_events: 2,
            queue_capacity: 3,
            backoff_seconds: 4,
            last_delivery_timestamp_seconds: 5,
            oldest_pending_age_seconds: 6,
            deliveries_total: 7,
            attempt_failures_total: 8,
            dropped_events_total: 9,
            resync_markers_total: 10,
        };
        let mut text = String::new();
        webhook_metrics(&figures, &mut text);
        let expected = [
            ("webhook_configured", "1 when a webhook is configured.", "gauge", 1),
            ("webhook_queue_events", "Alert events waiting for the webhook.", "gauge", 2),
            ("webhook_queue_capacity", "The webhook queue's bound (max_queue).", "gauge", 3),
            ("webhook_backoff_seconds", "Wait before the next webhook attempt.", "gauge", 4),
            (
                "webhook_last_delivery_timestamp_seconds",
                "When the webhook last acknowledged a delivery (Unix seconds).",
                "gauge",
                5,
            ),
            (
                "webhook_oldest_pending_age_seconds",
                "Age of the oldest event waiting for the webhook.",
                "gauge",
                6,
            ),
            (
                "webhook_deliveries_total",
                "Webhook deliveries acknowledged with a 2xx.",
                "counter",
                7,
            ),
            (
                "webhook_attempt_failures_total",
                "Webhook attempts that failed (no answer, or not a 2xx).",
                "counter",
                8,
            ),
            (
                "webhook_dropped_events_total",
                "Events dropped because the webhook queue was full or fell behind (durable).",
                "counter",
                9,
            ),
            (
                "webhook_resync_markers_total",
                "Resync markers delivered to the webhook (durable).",
                "counter",
                10,
            ),
        ]
        .map(|(name, help, kind, value)| {
            format!(
                "# HELP crossmatch_{name} {help}\n# TYPE crossmatch_{name} {kind}\n\
                 crossmatch_{name} {value}\n"
            )
        })
        .concat();
        assert_eq!(text, expected);
    }

    #[test]
    fn the_takedown_figures_are_the_overdue_gauge_the_warnings_and_the_histogram() {
        let takedowns = TakedownMetrics {
            removal_buckets: vec![1, 0, 2, 0, 0, 0, 0, 0, 0, 1],
            removal_sum_ms: 90_000_500,
            overdue: 4,
            warnings: 5,
            sweeps: 6,
        };
        let mut text = String::new();
        write_takedowns(&mut text, &takedowns);
        let name = "crossmatch_takedown_time_to_removal_seconds";
        let mut expected = String::from(
            "# HELP crossmatch_takedowns_overdue Records past their takedown budget and not \
             removed, at the last sweep (backlog excluded).\n\
             # TYPE crossmatch_takedowns_overdue gauge\ncrossmatch_takedowns_overdue 4\n\
             # HELP crossmatch_takedown_warnings_total Takedown budget warnings raised.\n\
             # TYPE crossmatch_takedown_warnings_total counter\n\
             crossmatch_takedown_warnings_total 5\n",
        );
        expected.push_str(&format!(
            "# HELP {name} Time from identification to removal, unit clock.\n\
             # TYPE {name} histogram\n"
        ));
        for (bound, cumulative) in
            TIME_TO_REMOVAL_BUCKETS_SECS.iter().zip([1, 1, 3, 3, 3, 3, 3, 3, 3])
        {
            expected.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {cumulative}\n"));
        }
        expected.push_str(&format!(
            "{name}_bucket{{le=\"+Inf\"}} 4\n{name}_sum 90000.5\n{name}_count 4\n"
        ));
        assert_eq!(text, expected);
    }
}
