//! The node's integration tests, one module per subject, in one test binary: one link of
//! libp2p, sled and axum instead of one per file. `crash` stays a binary of its own (it runs
//! without the libtest harness and re-runs itself as the process it kills).
//!
//! The modules share one process: they take their directories from `test_support::TempDir`
//! (unique per test), their ports from the operating system (`run` asks it for a free port and
//! hands that to its child, a small race), and set no environment variables.

mod analyze;
mod api;
mod audit;
mod ceremony;
mod cli;
mod curation;
mod diskfull;
mod engine;
mod engine_costs;
// The fuzz targets' corpora, replayed.
mod fuzz_corpus;
mod hunt;
mod import_engine;
mod init;
mod key_change;
mod members;
mod mesh;
// The OpenAPI document against the router.
mod openapi;
mod reload;
mod rotation;
mod run;
mod share;
mod slices;
// The STIX export: its roles, audit and the bundles it writes.
mod stix_export;
mod stix_export_bundles;
mod successors;
mod takedowns;
mod tidy;
mod tombstones;

// Running it as a service: its logs, the systemd unit and readiness, the restore drill.
mod logs;
mod service;
// Live alerts: the event log, the stream and the webhook.
mod event_edges;
mod events;
mod stream;
mod webhook;
// Imports as resumable jobs, dry runs and undo.
mod import_kill;
mod imports;
mod imports_rows;
