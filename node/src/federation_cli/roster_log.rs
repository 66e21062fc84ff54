//! The ceremony tools' logs of the rosters they signed or sealed: one line per roster
//! (federation id, version, roster hash), appended and synced before the signature or the
//! sealed file is given, so that the tools never sign, nor seal, a second, different roster of
//! a version (two valid successors of one version would fork the federation). `federation
//! sign` keeps its log beside the governance key (`KEY.signed`); `federation seal` keeps one
//! with the coordinator's roster files (`rosters.sealed` beside the sealed file it writes, or
//! `--log FILE`). The same roster again (the same hash) is no second roster.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crossmatch_protocol::RosterBody;

use super::Error;

/// The file name of the seal log, beside the sealed roster written (`federation seal`).
pub const SEAL_LOG_FILE: &str = "rosters.sealed";

/// Largest log read; a larger one is refused, never read in part.
const MAX_LOG_BYTES: u64 = 16 * 1024 * 1024;

/// Which tool keeps the log: what it refuses, in its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RosterLog {
    /// `federation sign`: the rosters a governance key signed.
    Signed,
    /// `federation seal`: the rosters a coordinator sealed.
    Sealed,
}

impl RosterLog {
    fn refusal(self, version: &str, log: &Path) -> String {
        match self {
            RosterLog::Signed => format!(
                "this governance key signed a different roster of version {version} before \
                 ({}): two successors of one version are never signed",
                log.display()
            ),
            RosterLog::Sealed => format!(
                "a different roster of version {version} was sealed before ({}): two \
                 successors of one version are never sealed",
                log.display()
            ),
        }
    }

    fn header(self) -> &'static str {
        match self {
            RosterLog::Signed => {
                "# Rosters this governance key signed: federation id, version, roster hash. Keep it with\n\
                 # the key: `crossmatch federation sign` refuses a second roster of a version.\n"
            }
            RosterLog::Sealed => {
                "# Rosters sealed here: federation id, version, roster hash. Keep it with the roster\n\
                 # files: `crossmatch federation seal` refuses a second roster of a version.\n"
            }
        }
    }

    fn verb(self) -> &'static str {
        match self {
            RosterLog::Signed => "sign",
            RosterLog::Sealed => "seal",
        }
    }
}

/// The signing log beside a governance key: `KEY.signed`.
pub fn signing_log_path(governance_key: &Path) -> PathBuf {
    let mut path = governance_key.as_os_str().to_owned();
    path.push(".signed");
    PathBuf::from(path)
}

/// The seal log beside the sealed roster `out`: `rosters.sealed` in its directory.
pub fn seal_log_path(out: &Path) -> PathBuf {
    out.with_file_name(SEAL_LOG_FILE)
}

/// Checks the log `log` and appends (federation id, version, hash), synced, before the
/// signature or sealed file is given: a second, different roster of a version logged before
/// is refused; the same roster again passes, logged once. A log over [`MAX_LOG_BYTES`] is
/// refused; a log created here has its directory synced.
pub(super) fn log_roster(
    kind: RosterLog,
    log: &Path,
    body: &RosterBody,
    hash: &[u8; 32],
) -> Result<(), Error> {
    let (text, created) = match std::fs::File::open(log) {
        Ok(file) => {
            let mut text = String::new();
            file.take(MAX_LOG_BYTES + 1)
                .read_to_string(&mut text)
                .map_err(|source| Error::Read { path: log.to_owned(), source })?;
            if text.len() as u64 > MAX_LOG_BYTES {
                // Never judged on part of it: a roster logged past the limit would be missed.
                return Err(Error::Input(format!(
                    "{} is larger than {} MiB; refusing to {} (move it aside and keep it)",
                    log.display(),
                    MAX_LOG_BYTES / (1024 * 1024),
                    kind.verb()
                )));
            }
            (text, false)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => (String::new(), true),
        Err(source) => return Err(Error::Read { path: log.to_owned(), source }),
    };
    let (federation, version, hash) =
        (body.federation_id.to_string(), body.version.to_string(), hex::encode(hash));
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [logged_federation, logged_version, logged_hash] = fields[..] else {
            return Err(Error::Input(format!(
                "{} is damaged (a line is not: federation id, version, hash); refusing to {}",
                log.display(),
                kind.verb()
            )));
        };
        if logged_federation == federation && logged_version == version {
            if logged_hash == hash {
                return Ok(());
            }
            return Err(Error::Input(kind.refusal(&version, log)));
        }
    }
    let header = if text.is_empty() { kind.header() } else { "" };
    let write = |source| Error::Write { path: log.to_owned(), source };
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(log)
        .map_err(write)?;
    file.write_all(format!("{header}{federation} {version} {hash}\n").as_bytes()).map_err(write)?;
    file.sync_all().map_err(write)?;
    if created {
        // The new log's name survives a crash too.
        crate::keyfile::sync_parent(log).map_err(Error::Key)?;
    }
    Ok(())
}
