//! The node's configuration file, the API tokens file and the roster file it names (read by
//! `roster_file`, checked here against the body's rules and this node's key): parsed, then
//! validated; unknown keys refused; key, secret and config files must not be readable by group
//! or others. Which roster a node adopts is decided at start, not here.
//!
//! Paths in the config file are relative to the file's own directory.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crossmatch_protocol::{
    FederationSecret, RosterBody, SignedMemberRecord, SigningKey, VerifiedRoster,
    secret_fingerprint,
};
use serde::Deserialize;

use crate::api::{self, Role};
use crate::audit::AuditUser;
use crate::clock::DAY_MS;
use crate::daemon::{HuntSettings, Membership, MembershipMember};
use crate::engine::EngineConfig;
use crate::engine::takedowns::TakedownSettings;
use crate::hunt::communities::CommunitySettings;
use crate::hunt::leiden::Quality;
use crate::hunt::successors::SuccessorSettings;
use crate::keyfile;
use crate::roster_file::{self, RosterFile};

mod announce;
mod webhook;
use announce::check_announce;
pub use webhook::{WebhookSection, new_webhook_secret, parse_webhook_secrets};

/// Largest config or tokens file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most API users in a tokens file.
pub const MAX_API_USERS: usize = 256;

/// Configuration errors: each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error("{path} has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// TOML syntax, unknown keys or wrong types.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key or secret file.
    #[error(transparent)]
    Key(#[from] keyfile::Error),
    /// The roster file.
    #[error(transparent)]
    Roster(#[from] roster_file::Error),
}

/// The config file (`crossmatch run --config FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This member's id in the roster (`DE`).
    pub member_id: String,
    /// Where the store, own-feed log and audit log live.
    pub data_dir: PathBuf,
    /// The member's Ed25519 key (`crossmatch keygen`).
    pub key_file: PathBuf,
    /// The federation secret (`crossmatch secret new`).
    pub secret_file: PathBuf,
    /// The roster the coordinator sent.
    pub roster_file: PathBuf,
    /// Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/7400`.
    pub listen_addresses: Vec<String>,
    /// Where the other members reach this node, as multiaddrs (at most 8), announced in this
    /// member's own signed record; named with `contact` or not at all (one alone is refused);
    /// absent: the node signs no record of its own.
    #[serde(default)]
    pub announce_addresses: Option<Vec<String>>,
    /// Whom the other members call about this node (at most 256 characters), announced with
    /// `announce_addresses` (named with it or not at all).
    #[serde(default)]
    pub contact: Option<String>,
    /// This node's own maximum retention; the effective one is the smaller of this and the
    /// roster's.
    #[serde(default = "default_retention_days")]
    pub max_retention_days: u64,
    /// How long the publisher waits for more entries once busy (it publishes at once when idle).
    #[serde(default = "default_linger_ms")]
    pub publish_linger_ms: u64,
    /// Period of the background pull from a random peer (jittered).
    #[serde(default = "default_sync_interval_secs")]
    pub sync_interval_secs: u64,
    /// How long a starting node asks peers for its own head before it starts a new generation.
    #[serde(default = "default_recovery_deadline_secs")]
    pub recovery_deadline_secs: u64,
    /// The most sled's page cache holds, in MiB (16 to 65,536; default 256).
    #[serde(default = "default_store_cache_mib")]
    pub store_cache_mib: u64,
    /// How much the node logs (default `info`); `RUST_LOG` wins when set. SIGHUP reloads it.
    #[serde(default)]
    pub log_level: LogLevel,
    /// How log lines are written: `text` (the default) or `json`; read at start only.
    #[serde(default)]
    pub log_format: crate::logging::LogFormat,
    /// The local HTTP API; absent: no API.
    #[serde(default)]
    pub api: Option<ApiSection>,
    /// The hunt's analytics and retention; absent: the defaults.
    #[serde(default)]
    pub hunt: HuntSection,
    /// The takedown clock's budgets; absent: the defaults.
    #[serde(default)]
    pub takedown: TakedownSection,
    /// Where alerts are delivered as they happen (`config/webhook.rs`); absent: nowhere.
    #[serde(default)]
    pub webhook: Option<WebhookSection>,
}

/// The config's `log_level`: how much the node logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// What an operator follows (the default).
    #[default]
    Info,
    /// Detail for diagnosis.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level's name in the config, in log filters and in the audit log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[takedown]` section; every key has a default (docs/API.md, `GET /v1/takedowns`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TakedownSection {
    /// The budget from identification to removal (60 to 604,800 s; default 7,200: 2 hours).
    pub budget_secs: u64,
    /// A removal order's budget from its issue (60 to 604,800 s; default 3,600: the TCO
    /// regulation's hour).
    pub order_budget_secs: u64,
    /// The share of a budget used that raises a warning (above 0 and at most 1; default 0.75).
    pub warning_share: f64,
}

impl Default for TakedownSection {
    fn default() -> Self {
        Self { budget_secs: 7_200, order_budget_secs: 3_600, warning_share: 0.75 }
    }
}

impl TakedownSection {
    /// The clock's settings, or what is out of range.
    pub fn settings(&self) -> Result<TakedownSettings, &'static str> {
        if !(60..=604_800).contains(&self.budget_secs)
            || !(60..=604_800).contains(&self.order_budget_secs)
        {
            return Err("takedown.budget_secs and order_budget_secs must be 60 to 604800");
        }
        if !(self.warning_share > 0.0 && self.warning_share <= 1.0) {
            return Err("takedown.warning_share must be greater than 0 and at most 1");
        }
        Ok(TakedownSettings {
            budget_ms: self.budget_secs * 1000,
            order_budget_ms: self.order_budget_secs * 1000,
            warning_share: self.warning_share,
        })
    }
}

/// The `[hunt]` section; every key has a default (docs/HUNT.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HuntSection {
    /// Seconds between recomputations (1 to 86,400; default 300).
    pub recompute_interval_secs: u64,
    /// The activity window in days (1 to 30; default 1, the 24 hours).
    pub activity_window_days: u32,
    /// The structure window in days (1 to 90; default 7).
    pub structure_window_days: u32,
    /// Leiden runs per computation, for membership confidence (1 to 20; default 5).
    pub runs: u32,
    /// Every how many recomputations those runs run (1 to 1,000; default 12); the others run
    /// once and carry the confidences.
    pub confidence_every: u32,
    /// The first run's seed (default 1).
    pub seed: u64,
    /// `modularity` (default) or `cpm`.
    pub quality: String,
    /// The resolution γ (greater than 0 and at most 100; default 1.0).
    pub resolution: f64,
    /// How long the days of observed accounts that are not records are kept (1 to 400;
    /// default 60).
    pub observation_retention_days: u64,
    /// Edges an account needs into a labelled community before its link strength counts
    /// (1 to 1,000; default 3).
    pub suggestion_min_edges: u32,
    /// The least link strength suggested (greater than 0 and at most 1; default 0.5).
    pub suggestion_min_strength: f64,
    /// The membership confidence an account needs to be included in a community share
    /// (greater than 0 and at most 1; default 0.8).
    pub share_min_confidence: f64,
    /// The priority score's weights (`[hunt.priority]`).
    pub priority: PrioritySection,
    // The successor search (docs/HUNT.md, "Successors").
    /// Removals older than this are not searched (1 to 400 days; default 14).
    pub successor_lookback_days: u32,
    /// Candidates are first seen at most this many hours before the removal (0 to 720;
    /// default 24).
    pub successor_new_since_hours: u64,
    /// Shared partners the overlap needs (1 to 1,000; default 5).
    pub successor_min_common: usize,
    /// Circle members mentioning a candidate that make the announcement part 1 (1 to 1,000;
    /// default 3).
    pub successor_announcers: u32,
    /// Least handle similarity that counts (0 to 1; default 0.6).
    pub successor_handle_min: f64,
    /// The parts' weights (each 0 to 1; defaults 0.5, 0.25, 0.25).
    pub successor_weight_overlap: f64,
    /// See `successor_weight_overlap`.
    pub successor_weight_announce: f64,
    /// See `successor_weight_overlap`.
    pub successor_weight_handle: f64,
    /// Least score of a likely successor (greater than 0, at most 1; default 0.3).
    pub successor_threshold: f64,
    /// Most suggestions per removed account (1 to 100; default 5).
    pub successor_max_per_account: usize,
    /// The handling code whose mark analytics exports carry (H0 to H3; default H1).
    pub export_handling: String,
}

/// The `[hunt.priority]` section: the weights of the priority score's terms (each 0 to 100,
/// at least one above 0; defaults 0.25, 0.2, 0.2, 0.15, 0.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritySection {
    /// Original posts in the activity window.
    pub activity: f64,
    /// Distinct amplifiers.
    pub amplifiers: f64,
    /// Influence (PageRank).
    pub influence: f64,
    /// Cross-border reach: other members holding the token.
    pub reach: f64,
    /// Link to a labelled or shared community.
    pub link: f64,
}

impl Default for PrioritySection {
    fn default() -> Self {
        let weights = crate::hunt::priority::PriorityWeights::default();
        Self {
            activity: weights.activity,
            amplifiers: weights.amplifiers,
            influence: weights.influence,
            reach: weights.reach,
            link: weights.link,
        }
    }
}

impl Default for HuntSection {
    fn default() -> Self {
        Self {
            recompute_interval_secs: 300,
            activity_window_days: 1,
            structure_window_days: 7,
            runs: 5,
            confidence_every: 12,
            seed: 1,
            quality: "modularity".into(),
            resolution: 1.0,
            observation_retention_days: 60,
            suggestion_min_edges: 3,
            suggestion_min_strength: 0.5,
            share_min_confidence: 0.8,
            priority: PrioritySection::default(),
            successor_lookback_days: 14,
            successor_new_since_hours: 24,
            successor_min_common: 5,
            successor_announcers: 3,
            successor_handle_min: 0.6,
            successor_weight_overlap: 0.5,
            successor_weight_announce: 0.25,
            successor_weight_handle: 0.25,
            successor_threshold: 0.3,
            successor_max_per_account: 5,
            export_handling: "H1".into(),
        }
    }
}

impl HuntSection {
    /// The daemon's settings, or what is out of range.
    pub fn settings(&self) -> Result<HuntSettings, &'static str> {
        if !(1..=86_400).contains(&self.recompute_interval_secs) {
            return Err("hunt.recompute_interval_secs must be 1 to 86400");
        }
        if !(1..=30).contains(&self.activity_window_days)
            || !(1..=90).contains(&self.structure_window_days)
        {
            return Err("hunt.activity_window_days must be 1 to 30, structure_window_days 1 to 90");
        }
        if !(1..=20).contains(&self.runs) {
            return Err("hunt.runs must be 1 to 20");
        }
        if !(1..=1000).contains(&self.confidence_every) {
            return Err("hunt.confidence_every must be 1 to 1000");
        }
        if !(self.resolution > 0.0 && self.resolution <= 100.0) {
            return Err("hunt.resolution must be greater than 0 and at most 100");
        }
        if !(1..=400).contains(&self.observation_retention_days) {
            return Err("hunt.observation_retention_days must be 1 to 400");
        }
        if !(1..=1000).contains(&self.suggestion_min_edges) {
            return Err("hunt.suggestion_min_edges must be 1 to 1000");
        }
        if !(self.suggestion_min_strength > 0.0 && self.suggestion_min_strength <= 1.0) {
            return Err("hunt.suggestion_min_strength must be greater than 0 and at most 1");
        }
        if !(self.share_min_confidence > 0.0 && self.share_min_confidence <= 1.0) {
            return Err("hunt.share_min_confidence must be greater than 0 and at most 1");
        }
        let p = &self.priority;
        let weights = [p.activity, p.amplifiers, p.influence, p.reach, p.link];
        if !weights.iter().all(|w| (0.0..=100.0).contains(w)) || weights.iter().all(|w| *w == 0.0) {
            return Err("hunt.priority weights must be 0 to 100, at least one above 0");
        }
        let resolution = self.resolution;
        let quality = match self.quality.as_str() {
            "modularity" => Quality::Modularity { resolution },
            "cpm" => Quality::Cpm { resolution },
            _ => return Err("hunt.quality must be modularity or cpm"),
        };
        let mut settings = HuntSettings {
            recompute_interval_secs: self.recompute_interval_secs,
            confidence_every: self.confidence_every,
            observation_retention_days: self.observation_retention_days,
            share_min_confidence: self.share_min_confidence,
            priority: crate::hunt::priority::PriorityWeights {
                activity: p.activity,
                amplifiers: p.amplifiers,
                influence: p.influence,
                reach: p.reach,
                link: p.link,
            },
            ..HuntSettings::default()
        };
        settings.analytics.activity_days = self.activity_window_days;
        settings.analytics.structure_days = self.structure_window_days;
        settings.analytics.communities =
            CommunitySettings { quality, runs: self.runs, seed: self.seed };
        settings.suggestions.min_edges = self.suggestion_min_edges;
        settings.suggestions.min_strength = self.suggestion_min_strength;
        settings.successors = self.successor_settings()?;
        settings.export_handling =
            self.export_handling.parse().map_err(|_| "hunt.export_handling must be H0 to H3")?;
        Ok(settings)
    }

    /// The successor search's settings, or what is out of range.
    fn successor_settings(&self) -> Result<SuccessorSettings, &'static str> {
        let share = |value: f64| (0.0..=1.0).contains(&value);
        if !(1..=400).contains(&self.successor_lookback_days)
            || self.successor_new_since_hours > 720
            || !(1..=1000).contains(&self.successor_min_common)
            || !(1..=1000).contains(&self.successor_announcers)
            || !(1..=100).contains(&self.successor_max_per_account)
        {
            return Err(
                "hunt.successor_lookback_days must be 1 to 400, successor_new_since_hours \
                        0 to 720, successor_min_common and successor_announcers 1 to 1000, \
                        successor_max_per_account 1 to 100",
            );
        }
        let valid = share(self.successor_handle_min)
            && share(self.successor_weight_overlap)
            && share(self.successor_weight_announce)
            && share(self.successor_weight_handle)
            && self.successor_threshold > 0.0
            && self.successor_threshold <= 1.0;
        if !valid {
            return Err("hunt.successor_handle_min and the successor weights must be 0 to 1, \
                        successor_threshold greater than 0 and at most 1");
        }
        Ok(SuccessorSettings {
            lookback_days: self.successor_lookback_days,
            new_since_ms: self.successor_new_since_hours * 3_600_000,
            min_common: self.successor_min_common,
            announcers_full: self.successor_announcers,
            handle_min: self.successor_handle_min,
            weight_overlap: self.successor_weight_overlap,
            weight_announce: self.successor_weight_announce,
            weight_handle: self.successor_weight_handle,
            threshold: self.successor_threshold,
            max_per_account: self.successor_max_per_account,
            ..SuccessorSettings::default()
        })
    }
}

/// The `[api]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Loopback address and port to serve on; TLS and remote access go through a reverse proxy.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// The API users and their token hashes (`crossmatch api-token new`).
    pub tokens_file: PathBuf,
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7480))
}

/// The API tokens file: one `[[tokens]]` table per user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// The users.
    pub tokens: Vec<TokenEntry>,
}

/// One API user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The name the audit log records.
    pub name: String,
    /// `monitor`, `analyst` or `admin`.
    pub role: Role,
    /// `BLAKE3-derive_key(api::TOKEN_HASH_CONTEXT, bearer token)`, 64 hex digits.
    pub hash: String,
}

fn default_retention_days() -> u64 {
    365
}
fn default_linger_ms() -> u64 {
    20
}
fn default_sync_interval_secs() -> u64 {
    30
}
fn default_recovery_deadline_secs() -> u64 {
    10
}
fn default_store_cache_mib() -> u64 {
    crate::store::DEFAULT_CACHE_BYTES >> 20
}

/// The member set of an adopted roster, for the node ([`crate::daemon::Node::apply_membership`]
/// and its start): each member with the addresses and contact of its own record when the file
/// carries one that verifies against the roster (a record that does not verify is left out and
/// logged by member id, so the member is listed with no addresses and no contact).
pub fn membership(roster: &VerifiedRoster, records: &[SignedMemberRecord]) -> Membership {
    let members = roster
        .body()
        .members
        .iter()
        .map(|member| {
            let record = records
                .iter()
                .filter(|signed| signed.record.member == member.id)
                .max_by_key(|signed| signed.record.seq)
                .filter(|signed| match signed.verify(roster, None) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(member = %member.id, %error, "member record refused");
                        false
                    }
                });
            MembershipMember {
                id: member.id.clone(),
                node_key: member.node_key,
                retired_node_keys: member.retired_node_keys.clone(),
                retired_heads: roster.signed().retired_heads(member),
                addresses: record.map(|r| r.record.addresses.clone()).unwrap_or_default(),
                contact: record.map(|r| r.record.contact.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Membership { version: roster.body().version, roster_hash: *roster.hash(), members }
}

/// The member set a node starts with, from the roster file's body alone: ids, node keys and
/// retired keys, with no address or contact (the daemon settles it on the roster it adopts,
/// with the members' verified records, before the node runs).
pub fn start_membership(file: &RosterFile) -> Membership {
    let body = &file.roster.body;
    Membership {
        version: body.version,
        roster_hash: body.hash(),
        members: body
            .members
            .iter()
            .map(|member| MembershipMember {
                id: member.id.clone(),
                node_key: member.node_key,
                retired_node_keys: member.retired_node_keys.clone(),
                retired_heads: file.roster.retired_heads(member),
                addresses: Vec::new(),
                contact: String::new(),
            })
            .collect(),
    }
}

/// Everything `run` needs, loaded and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config file.
    pub config: ConfigFile,
    /// The roster file the config names, checked structurally (the body's own rules) and
    /// found to hold this node's key under `member_id`; not yet adopted (see `main.rs`).
    pub roster: RosterFile,
    /// The member's key.
    pub key: SigningKey,
    /// The federation secret.
    pub secret: FederationSecret,
    /// The API's address and users, if it is configured.
    pub api: Option<(SocketAddr, api::Users)>,
    /// The webhook's settings, keys read, if one is configured.
    pub webhook: Option<crate::daemon::WebhookSettings>,
}

impl Loaded {
    /// The hunt's settings (checked at load).
    pub fn hunt_settings(&self) -> HuntSettings {
        self.config.hunt.settings().unwrap_or_default()
    }

    /// The takedown clock's settings (checked at load).
    pub fn takedown_settings(&self) -> TakedownSettings {
        self.config.takedown.settings().unwrap_or_default()
    }

    /// The engine's configuration under the adopted roster `roster` and its `membership`
    /// ([`membership`]). The configured secret runs the epoch whose fingerprint it has
    /// ([`configured_epoch`]): a rotation roster's previous epoch for the previous secret.
    pub fn engine_config(&self, body: &RosterBody, membership: &Membership) -> EngineConfig {
        EngineConfig {
            federation_id: body.federation_id,
            secret: self.secret.clone(),
            epoch: configured_epoch(body, &self.secret),
            key: self.key.clone(),
            members: membership.engine_members(),
            max_retention_ms: (u64::from(body.max_retention_days) * DAY_MS)
                .min(self.config.max_retention_days.saturating_mul(DAY_MS)),
            quota_entries_per_day: body.quota_entries_per_day,
            quota_bytes_per_day: body.quota_bytes_per_day,
            store_cache_bytes: self.config.store_cache_mib << 20,
        }
    }
}

/// The epoch the secret `secret` runs under `body`: the roster's epoch when it is the roster's
/// secret, the rotation's previous epoch when it is the previous one's (a node given a
/// rotation roster and only the old secret runs the old epoch, and the rotation waits for the
/// new secret), else the roster's epoch (`load` refuses such a secret; the node checks its
/// running secret against the adopted roster again at start).
pub fn configured_epoch(body: &RosterBody, secret: &FederationSecret) -> u32 {
    let fingerprint = secret_fingerprint(secret);
    match body.rotation {
        Some(rotation)
            if fingerprint != body.secret_fingerprint
                && fingerprint == rotation.previous_secret_fingerprint =>
        {
            rotation.previous_epoch
        }
        _ => body.epoch,
    }
}

fn read_private(path: &Path) -> Result<String, Error> {
    let metadata =
        std::fs::metadata(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::TooOpen { path: path.to_owned(), mode });
    }
    read_bounded(path)
}

fn read_bounded(path: &Path) -> Result<String, Error> {
    let metadata =
        std::fs::metadata(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge { path: path.to_owned() });
    }
    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Error> {
    toml::from_str(text).map_err(|error| Error::Parse {
        path: path.to_owned(),
        message: error.message().to_owned(),
    })
}

/// Loads a config file and everything it names, refusing a roster without this node's key.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let text = read_private(path)?;
    let mut config: ConfigFile = parse(path, &text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = vec![
        &mut config.data_dir,
        &mut config.key_file,
        &mut config.secret_file,
        &mut config.roster_file,
    ];
    if let Some(api) = config.api.as_mut() {
        files.push(&mut api.tokens_file);
    }
    if let Some(webhook) = config.webhook.as_mut() {
        files.extend(webhook.files());
    }
    for file in files {
        if file.is_relative() {
            *file = base.join(&*file);
        }
    }
    let invalid =
        |message: &str| Error::Invalid { path: path.to_owned(), message: message.to_owned() };
    if config.listen_addresses.is_empty() {
        return Err(invalid("listen_addresses must name at least one address"));
    }
    if config.max_retention_days == 0 {
        return Err(invalid("max_retention_days must be at least 1"));
    }
    if config.sync_interval_secs == 0 || config.publish_linger_ms > 10_000 {
        return Err(invalid(
            "sync_interval_secs must be at least 1 and publish_linger_ms at most 10000",
        ));
    }
    if !(16..=65_536).contains(&config.store_cache_mib) {
        return Err(invalid("store_cache_mib must be 16 to 65536"));
    }
    config.hunt.settings().map_err(invalid)?;
    config.takedown.settings().map_err(invalid)?;
    check_announce(&config).map_err(invalid)?;
    let key = keyfile::read_signing_key(&config.key_file)?;
    let secret = keyfile::read_federation_secret(&config.secret_file)?;
    let roster = roster_file::read(&config.roster_file)?;
    let roster_invalid =
        |message: String| Error::Invalid { path: config.roster_file.clone(), message };
    roster.roster.body.validate().map_err(|problem| roster_invalid(problem.to_string()))?;
    let own = key.public_key();
    match roster.roster.body.members.iter().find(|member| member.node_key == own) {
        None => {
            return Err(invalid(
                "the roster does not hold this node's public key; ask the coordinator to add it",
            ));
        }
        Some(member) if member.id != config.member_id => {
            return Err(invalid("member_id does not match the roster entry of this node's key"));
        }
        Some(_) => {}
    }
    let fingerprint = secret_fingerprint(&secret);
    let body = &roster.roster.body;
    let previous = body.rotation.map(|rotation| rotation.previous_secret_fingerprint);
    if fingerprint != body.secret_fingerprint && Some(fingerprint) != previous {
        return Err(invalid(
            "the federation secret's fingerprint is not the roster's secret_fingerprint; open \
             the sealed secret again (`crossmatch secret open`)",
        ));
    }
    let api = match &config.api {
        Some(section) if !section.listen.ip().is_loopback() => {
            return Err(invalid(
                "api.listen must be a loopback address; put a TLS reverse proxy in front for \
                 remote access",
            ));
        }
        Some(section) => Some((section.listen, load_api_users(&section.tokens_file)?)),
        None => None,
    };
    let webhook = config.webhook.as_ref().map(|section| section.settings(path)).transpose()?;
    Ok(Loaded { config, roster, key, secret, api, webhook })
}

/// Reads the config file again for what a reload (SIGHUP) applies besides the tokens file: its
/// log level. The whole file must still parse, so a broken config is refused as a whole.
pub fn load_log_level(path: &Path) -> Result<LogLevel, Error> {
    let config: ConfigFile = parse(path, &read_private(path)?)?;
    Ok(config.log_level)
}

/// Parses and validates an API tokens file (which must be private to its owner).
pub fn load_api_users(path: &Path) -> Result<api::Users, Error> {
    let text = read_private(path)?;
    let file: TokensFile = parse(path, &text)?;
    let invalid = |message: String| Error::Invalid { path: path.to_owned(), message };
    if file.tokens.len() > MAX_API_USERS {
        return Err(invalid(format!("at most {MAX_API_USERS} API users")));
    }
    let mut users: Vec<([u8; 32], api::User)> = Vec::new();
    for entry in file.tokens {
        AuditUser::new(&entry.name)
            .map_err(|error| invalid(format!("user name {:?}: {error}", entry.name)))?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&entry.hash, &mut hash)
            .map_err(|_| invalid(format!("user {}: hash must be 64 hex digits", entry.name)))?;
        if users.iter().any(|(h, user)| *h == hash || user.name == entry.name) {
            return Err(invalid(format!("user {} appears twice (same name or hash)", entry.name)));
        }
        users.push((hash, api::User { name: entry.name, role: entry.role }));
    }
    Ok(api::Users::new(users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_secret_of_a_rotation_roster_runs_the_previous_epoch() {
        let (old, new) =
            (FederationSecret::from_bytes([0x17; 32]), FederationSecret::from_bytes([0x71; 32]));
        let fed = crate::local::LocalFederation::new(Path::new("/nonexistent"), &["A", "B"]);
        let mut body = fed.roster_body(&[0, 1], 2, 2, u64::MAX);
        assert_eq!(configured_epoch(&body, &old), 1, "no rotation: the roster's epoch");
        body.epoch = 3;
        body.secret_fingerprint = secret_fingerprint(&new);
        body.rotation = Some(crossmatch_protocol::Rotation {
            previous_epoch: 2,
            previous_secret_fingerprint: secret_fingerprint(&old),
            changeover_at_ms: 0,
            grace_ms: 0,
        });
        assert_eq!(configured_epoch(&body, &new), 3);
        assert_eq!(configured_epoch(&body, &old), 2);
    }
}
