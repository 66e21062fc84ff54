//! The hunt: what the unit observes (posts and follow snapshots), kept as local aggregates, and
//! the analytics over them: the interaction graph, communities, influence. Pure: no I/O, no
//! clock, no async, no storage; the caller passes lines, times and seeds.
//!
//! One job per file: `observation` parses and canonicalises a line, `ledger` keeps the per-day
//! aggregates, `graph` builds a window's graph, `leiden` and `communities` find communities
//! with confidences and stable ids, `pagerank` ranks influence, `successors` flags new accounts
//! that take over a removed one's circle, `export` writes GraphML, GEXF and CSV for the
//! analysts' tools, `analytics` runs it all for the node (a snapshot taken under the ledger's
//! lock, computed without it), `priority` scores the referral queue, and `analyze` over a
//! file for `crossmatch analyze` (its JSON schema is in docs/HUNT.md). `ledger/persist` gives
//! the ledger's rows to the store and rebuilds it from them. `curation` holds the analysts'
//! labels, pins, merges, splits and "not a target" marks and applies them to a computation;
//! `suggestions` finds accounts strongly linked to a labelled community.

pub mod analytics;
pub mod analyze;
pub mod communities;
pub mod curation;
pub mod export;
pub mod graph;
pub mod ledger;
pub mod leiden;
pub mod observation;
pub mod pagerank;
pub mod priority;
pub mod successors;
pub mod suggestions;

pub use analytics::{Analytics, AnalyticsSettings, Confidence, Snapshot};
pub use analyze::{AnalyzeSettings, Report, analyze};
pub use curation::{Curation, NotATargetCategory};
pub use export::{Export, ExportFormat, export};
pub use ledger::{AccountIndex, Activity, Day, Ledger, LedgerLimits, Window};
pub use observation::{LineRule, Observation, Parsed, Refusal, parse_line};
pub use successors::{RemovedAccount, Successor, SuccessorSettings, SuccessorSnapshot, Successors};
