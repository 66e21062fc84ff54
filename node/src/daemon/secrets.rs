//! The federation secrets a running node holds beyond its config's `secret_file`
//! (docs/PROTOCOL.md §5.1): the secret of a new epoch, which a rotation roster names by its
//! fingerprint and each member receives sealed to its node key (`crossmatch secret seal`).
//!
//! - **Intake**: an admin posts the sealed copy (`POST /v1/secret`), or the operator drops the
//!   `<member id>.sealed` file into `<data_dir>/secrets/`, which the node takes at start, after
//!   every adoption and on every timer tick (a taken file is removed; a refused one is renamed
//!   `*.refused`, logged once). Either way it is opened with the node key and kept only when it
//!   is sealed to this member of this federation and its fingerprint is the one the adopted
//!   rosters name for its epoch ([`named_fingerprint`]). The secret is never logged, nor its
//!   fingerprint.
//! - **Persistence**: each kept secret is a file `<data_dir>/secrets/epoch-<N>.secret` (hex,
//!   as `secret_file` is), mode 0600, written to a temporary file that is synced, renamed
//!   over, and the directory synced, before the intake answers. A file rather than the store:
//!   the engine needs the secret of the epoch its store runs under *before* the store opens
//!   (it refuses a store of another epoch than its config's), so after a rotation a restart
//!   opens the engine with the held secret of the store's epoch, whatever the config's
//!   `secret_file` says (`open_engine`). A held secret of an epoch wins over the config's of
//!   the same epoch.
//! - **At start** ([`check_running_secret`]): the secret the engine runs under must be the one
//!   the adopted roster names for the engine's epoch (its own epoch's, or its rotation's
//!   previous one; failing both, the newest earlier adopted version's that names the epoch);
//!   otherwise the node refuses to start, naming the epoch, rather than run an epoch under
//!   another epoch's secret. (The config's secret runs the epoch whose fingerprint it has:
//!   given a rotation roster and only the old secret, the node runs the old epoch and the
//!   rotation waits for the new secret, `config::configured_epoch`.)
//! - **Intake is serialised**: one sealed copy is taken at a time (posted or dropped), so two
//!   intakes never write the same temporary file. Its audit line (`open_secret`) is written
//!   before the secret is persisted: a crash between the two leaves an audit line for a secret
//!   that was not kept, the accepted side of the trade (as roster adoption does).
//! - **Retirement**: once a rotation from epoch N is over (its grace period ended), the held
//!   `epoch-N.secret` is deleted (`rotation.rs`): nothing of epoch N is matched any more. A
//!   config's `secret_file` of such an epoch is then useless (the store runs a later epoch,
//!   opened with its held secret); the operator should point it at the current epoch's secret
//!   (`crossmatch secret open` against the roster in force) and destroy the old file.
//! - Buffers this module owns that hold secret bytes (file text, decoded bodies) are zeroised.

mod rotation;

pub use rotation::SecretTaken;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crossmatch_protocol::{
    FederationSecret, SealedSecret, SigningKey, open_secret, secret_fingerprint,
};
use zeroize::Zeroize;

use super::ErrorKind;
use super::roster::SignedRosters;
use crate::clock::Clock;
use crate::engine::{self, Engine, EngineConfig};
use crate::keyfile::{self, Existing};

/// The directory under the data directory that holds the secrets and takes dropped sealed
/// copies.
pub const SECRETS_DIR: &str = "secrets";

/// Largest sealed copy taken, as posted or dropped (its hex form is about 300 bytes).
pub const MAX_SEALED_INPUT_BYTES: usize = 4096;

/// Most dropped files looked at per scan.
const MAX_DROPPED_PER_SCAN: usize = 64;

/// Why a sealed secret was not taken. Messages name epochs and rules, never secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not a sealed secret's wire form (nor its hex text).
    #[error("not a sealed secret (the file `crossmatch secret seal` writes, or its wire form)")]
    Malformed,
    /// Sealed to another federation or another member.
    #[error("sealed to another federation or member, not to this node")]
    NotForThisNode,
    /// The node key does not open it (altered, or sealed to another key).
    #[error("the node key does not open this sealed secret")]
    CannotOpen,
    /// The adopted roster names no secret for its epoch.
    #[error("the adopted roster names no secret for epoch {epoch}; adopt the roster first")]
    UnknownEpoch {
        /// The epoch it is sealed for.
        epoch: u32,
    },
    /// Its fingerprint is not the one the roster names for its epoch.
    #[error("the secret's fingerprint is not the one the adopted roster names for epoch {epoch}")]
    FingerprintMismatch {
        /// The epoch it is sealed for.
        epoch: u32,
    },
    /// The node runs without a signed roster.
    #[error("this node runs without a signed roster")]
    NoRoster,
    /// The secret could not be written durably.
    #[error("the secret could not be stored: {0}")]
    Io(#[source] std::io::Error),
    /// The node failed (the audit log, the engine) or is stopping.
    #[error(transparent)]
    Node(Box<super::Error>),
}

impl SecretError {
    /// What the refusal means to a caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SecretError::Malformed
            | SecretError::NotForThisNode
            | SecretError::CannotOpen
            | SecretError::FingerprintMismatch { .. } => ErrorKind::Invalid,
            SecretError::UnknownEpoch { .. } | SecretError::NoRoster => ErrorKind::Conflict,
            SecretError::Io(_) => ErrorKind::Store,
            SecretError::Node(error) => error.kind(),
        }
    }
}

/// The secrets held: the config's, and those taken since (persisted).
pub(super) struct Secrets {
    dir: PathBuf,
    key: SigningKey,
    configured: (u32, FederationSecret),
    held: RwLock<BTreeMap<u32, FederationSecret>>,
    /// Why the adopted roster's rotation is not carried out, by fixed name (`rotation.rs`).
    alarm: RwLock<Option<&'static str>>,
    /// One rotation check at a time.
    checking: tokio::sync::Mutex<()>,
    /// One intake at a time (`rotation.rs`).
    pub(super) intake: tokio::sync::Mutex<()>,
    /// The new epoch whose `begin_rotation` audit line this run wrote, so a begin the engine
    /// refuses, retried on every tick, is audited once.
    pub(super) audited_begin: Mutex<Option<u32>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let epochs: Vec<u32> =
            self.held.read().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
        f.debug_struct("Secrets").field("epochs", &epochs).finish_non_exhaustive()
    }
}

impl Secrets {
    /// Reads the secrets held under `<data_dir>/secrets/` (created owner-only if missing). A
    /// held file that is unreadable, open to others or malformed is logged and left out.
    pub(super) fn open(data_dir: &Path, config: &EngineConfig) -> std::io::Result<Self> {
        crate::store::create_private_dir(data_dir).map_err(std::io::Error::other)?;
        let dir = data_dir.join(SECRETS_DIR);
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let mut held = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(epoch) = held_epoch(&path) else { continue };
            match keyfile::read_federation_secret(&path) {
                Ok(secret) => {
                    held.insert(epoch, secret);
                }
                Err(error) => {
                    tracing::error!(epoch, %error, "a held secret file is unusable; left out")
                }
            }
        }
        Ok(Self {
            dir,
            key: config.key.clone(),
            configured: (config.epoch, config.secret.clone()),
            held: RwLock::new(held),
            alarm: RwLock::new(None),
            checking: tokio::sync::Mutex::new(()),
            intake: tokio::sync::Mutex::new(()),
            audited_begin: Mutex::new(None),
        })
    }

    /// The secret held for `epoch`: one taken since (checked against an adopted roster when
    /// it was taken), else the config's.
    pub(super) fn get(&self, epoch: u32) -> Option<FederationSecret> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner).get(&epoch).cloned();
        held.or_else(|| (epoch == self.configured.0).then(|| self.configured.1.clone()))
    }

    /// The epochs of the secrets held as files.
    pub(super) fn held_epochs(&self) -> Vec<u32> {
        self.held.read().unwrap_or_else(PoisonError::into_inner).keys().copied().collect()
    }

    /// Deletes the held secret of `epoch` (file, then the directory synced). Blocking.
    pub(super) fn remove(&self, epoch: u32) -> std::io::Result<()> {
        match fs::remove_file(self.dir.join(format!("epoch-{epoch}.secret"))) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        fs::File::open(&self.dir)?.sync_all()?;
        self.held.write().unwrap_or_else(PoisonError::into_inner).remove(&epoch);
        Ok(())
    }

    /// The node's signing key, which opens sealed copies.
    pub(super) fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Persists `secret` for `epoch` (module docs) and holds it. Blocking.
    pub(super) fn put(&self, epoch: u32, secret: FederationSecret) -> std::io::Result<()> {
        write_atomically(&self.dir, &format!("epoch-{epoch}.secret"), secret.as_bytes())?;
        self.held.write().unwrap_or_else(PoisonError::into_inner).insert(epoch, secret);
        Ok(())
    }

    /// The sealed copies dropped into the directory: (path, contents), at most a few per scan.
    /// Blocking.
    pub(super) fn dropped(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut found = Vec::new();
        for entry in entries.flatten().take(4 * MAX_DROPPED_PER_SCAN) {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "sealed") {
                continue;
            }
            let bytes = fs::File::open(&path).and_then(|file| {
                let mut bytes = Vec::new();
                std::io::Read::take(file, MAX_SEALED_INPUT_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)?;
                Ok(bytes)
            });
            if let Ok(bytes) = bytes {
                found.push((path, bytes));
            }
            if found.len() == MAX_DROPPED_PER_SCAN {
                break;
            }
        }
        found
    }
}

use std::io::Read as _;

/// The epoch of a held secret's file name (`epoch-<N>.secret`).
fn held_epoch(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("epoch-")?.strip_suffix(".secret")?.parse().ok()
}

/// Writes `bytes` as hex to `dir/name`, mode 0600: a temporary file synced, renamed over, and
/// the directory synced, so a crash leaves the old file or the new one, never a torn one.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8; 32]) -> std::io::Result<()> {
    let mut text = format!("{}\n", hex::encode(bytes));
    let written = keyfile::replace_private_file(
        &dir.join(name),
        &dir.join(format!(".{name}.tmp")),
        text.as_bytes(),
        Existing::Replace,
    );
    text.zeroize();
    written.map_err(|error| error.source)
}

/// Decodes a posted or dropped sealed copy: the hex text `secret seal` writes, or the wire
/// form itself.
pub(super) fn decode_sealed(input: &[u8]) -> Result<SealedSecret, SecretError> {
    if input.len() > MAX_SEALED_INPUT_BYTES {
        return Err(SecretError::Malformed);
    }
    let text = std::str::from_utf8(input).ok().map(str::trim);
    let mut decoded = text.and_then(|text| hex::decode(text).ok());
    let sealed = match &decoded {
        Some(wire) => SealedSecret::from_wire(wire),
        None => SealedSecret::from_wire(input),
    };
    if let Some(decoded) = &mut decoded {
        decoded.zeroize();
    }
    sealed.map_err(|_| SecretError::Malformed)
}

/// Opens `sealed` with `key` and checks it against the roster: sealed to `member` of
/// `federation`, and of the fingerprint `expected` names for its epoch.
pub(super) fn open_checked(
    sealed: &SealedSecret,
    key: &SigningKey,
    federation: &crossmatch_protocol::FederationId,
    member: &str,
    expected: impl Fn(u32) -> Option<[u8; 32]>,
) -> Result<FederationSecret, SecretError> {
    if sealed.federation_id != *federation || sealed.member != member {
        return Err(SecretError::NotForThisNode);
    }
    let expected =
        expected(sealed.epoch).ok_or(SecretError::UnknownEpoch { epoch: sealed.epoch })?;
    let secret = open_secret(sealed, key).map_err(|_| SecretError::CannotOpen)?;
    if secret_fingerprint(&secret) != expected {
        return Err(SecretError::FingerprintMismatch { epoch: sealed.epoch });
    }
    Ok(secret)
}

/// Opens the engine with the held secret of the config's epoch if there is one (else the
/// config's); when its store runs a later epoch than the config's (a rotation finished before
/// this start), opens it again with the held secret of the store's epoch: the stored secret
/// wins over the config's `secret_file`. It takes no rotation step
/// ([`Engine::open_without_rotation_step`]): the caller takes it once the webhook is settled.
pub(super) fn open_engine(
    data_dir: &Path,
    mut config: EngineConfig,
    clock: Arc<dyn Clock>,
    secrets: &Secrets,
) -> Result<Engine, engine::Error> {
    if let Some(secret) = secrets.get(config.epoch) {
        config.secret = secret;
    }
    match Engine::open_without_rotation_step(data_dir, config.clone(), clock.clone()) {
        Err(engine::Error::EpochChanged { stored, configured }) if stored > configured => {
            let Some(secret) = secrets.get(stored) else {
                return Err(engine::Error::EpochChanged { stored, configured });
            };
            tracing::info!(
                epoch = stored,
                configured,
                "the store runs a later epoch than the config's secret: opened with the held secret of that epoch"
            );
            Engine::open_without_rotation_step(
                data_dir,
                EngineConfig { epoch: stored, secret, ..config },
                clock,
            )
        }
        other => other,
    }
}

/// The fingerprint the adopted rosters name for `epoch`: the held roster's own epoch's, or its
/// rotation's previous one; failing both, the newest earlier adopted version's that names it.
/// Read from the chain's epochs kept in memory (`daemon/roster/epochs.rs`): nothing is read
/// from the store or verified again.
pub(super) fn named_fingerprint(rosters: &SignedRosters, epoch: u32) -> Option<[u8; 32]> {
    rosters.epochs().named_fingerprint(epoch)
}

/// At start, once the roster is chosen: the engine's secret must be the one the adopted rosters
/// name for the engine's epoch, else the node refuses to start (module docs). A node without a
/// signed roster has nothing to check against. Blocking.
pub(super) fn check_running_secret(
    engine: &Engine,
    rosters: &SignedRosters,
) -> Result<(), super::Error> {
    if rosters.version().is_none() {
        return Ok(());
    }
    let epoch = engine.epoch();
    match named_fingerprint(rosters, epoch) {
        Some(named) if named == engine.secret_fingerprint() => Ok(()),
        _ => Err(super::Error::SecretNotNamed { epoch }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_secrets_are_named_by_epoch() {
        assert_eq!(held_epoch(Path::new("/x/epoch-7.secret")), Some(7));
        assert_eq!(held_epoch(Path::new("/x/.epoch-7.secret.tmp")), None);
        assert_eq!(held_epoch(Path::new("/x/DE.sealed")), None);
        assert_eq!(held_epoch(Path::new("/x/epoch-x.secret")), None);
    }

    #[test]
    fn an_atomic_write_is_owner_only_and_replaces() {
        let dir = crate::test_support::TempDir::new("secret-write");
        write_atomically(dir.path(), "epoch-2.secret", &[1; 32]).unwrap();
        write_atomically(dir.path(), "epoch-2.secret", &[2; 32]).unwrap();
        let path = dir.path().join("epoch-2.secret");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let read = keyfile::read_federation_secret(&path).unwrap();
        assert_eq!(read.as_bytes(), &[2; 32]);
        assert!(!dir.path().join(".epoch-2.secret.tmp").exists());
    }

    #[test]
    fn no_secret_shows_in_debug_output() {
        let dir = crate::test_support::TempDir::new("secret-debug");
        let mut config = EngineConfig::for_test(1);
        config.secret = FederationSecret::from_bytes([0xab; 32]);
        let secrets = Secrets::open(dir.path(), &config).unwrap();
        secrets.put(2, FederationSecret::from_bytes([0xcd; 32])).unwrap();
        let rotation = engine::Rotation {
            new_epoch: 2,
            new_secret: FederationSecret::from_bytes([0xcd; 32]),
            changeover_at_ms: 1,
            grace_ms: 2,
        };
        let shown = format!("{config:?} {secrets:?} {rotation:?} {:?}", secrets.get(2));
        for byte in ["ab", "cd"] {
            assert!(!shown.contains(&byte.repeat(4)), "{shown}");
        }
        for byte in [0xab, 0xcd] {
            assert!(!shown.contains(&format!("{byte}, {byte}")), "{shown}");
        }
        assert!(shown.contains("FederationSecret(…)") && shown.contains("epochs: [2]"), "{shown}");
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(decode_sealed(b"not hex at all"), Err(SecretError::Malformed)));
        assert!(matches!(decode_sealed(&[0xff; 10]), Err(SecretError::Malformed)));
        assert!(matches!(
            decode_sealed(&vec![b'a'; MAX_SEALED_INPUT_BYTES + 1]),
            Err(SecretError::Malformed)
        ));
    }
}
