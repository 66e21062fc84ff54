//! The reload a running node does on SIGHUP: the API tokens file and the config's log level are
//! read again and applied together, without a restart. A file that fails to load is refused as
//! a whole: the previous users and level stay, and the reason is logged (never a token or a
//! hash). Each reload, applied or refused, is an audit line (`reload`, by the node itself),
//! written before anything is applied. `main.rs` owns the signal; the API owns the users (a
//! [`UsersHandle`] swapped here); the log level is set through the function `main.rs` hands in.

use std::path::PathBuf;

use crate::api::{Users, UsersHandle};
use crate::config::{self, LogLevel};
use crate::daemon::{self, Node};

/// Sets the log level of the running process (a `tracing_subscriber::reload` handle in the
/// binary). A failure is the setter's to log: the level is the lesser half of a reload.
pub type SetLogLevel = Box<dyn Fn(LogLevel) + Send + Sync>;

/// What a reload applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    /// How many API users are now in place; `None` when the node serves no API.
    pub users: Option<usize>,
    /// The config's log level, which is now in place unless `RUST_LOG` wins.
    pub log_level: LogLevel,
    /// Whether the level was applied (false when `RUST_LOG` was set at start, which wins).
    pub log_level_applied: bool,
}

/// Why a reload was refused, or could not be audited; nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file failed to load.
    #[error("the config file failed to load: {0}")]
    Config(String),
    /// The API tokens file failed to load.
    #[error("the API tokens file failed to load: {0}")]
    Tokens(String),
    /// The audit log did not take the reload's line, so nothing was applied.
    #[error("the audit log did not take the reload's line, so nothing was applied")]
    Audit(#[source] daemon::Error),
}

impl ReloadError {
    /// The audit subject of a refusal (`reload:refused_<what>`).
    fn audit_subject(&self) -> Option<&'static str> {
        match self {
            Self::Config(_) => Some("reload:refused_config_file"),
            Self::Tokens(_) => Some("reload:refused_tokens_file"),
            Self::Audit(_) => None,
        }
    }
}

/// Reloads a running node's API users and log level; one per node, called on each SIGHUP.
pub struct Reloader {
    config_file: PathBuf,
    api: Option<(PathBuf, UsersHandle)>,
    set_log_level: Option<SetLogLevel>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("config_file", &self.config_file)
            .field("api", &self.api)
            .field("sets_log_level", &self.set_log_level.is_some())
            .finish()
    }
}

impl Reloader {
    /// A reloader of the config at `config_file`, the API users behind `api` (the resolved path
    /// of the tokens file the node started with, and the handle the API reads), and the log
    /// level through `set_log_level` (`None` when `RUST_LOG` wins).
    pub fn new(
        config_file: PathBuf,
        api: Option<(PathBuf, UsersHandle)>,
        set_log_level: Option<SetLogLevel>,
    ) -> Self {
        Self { config_file, api, set_log_level }
    }

    /// Reads both files again; if both load, audits the reload and applies it whole. Otherwise
    /// audits the refusal and changes nothing.
    pub async fn reload(&self, node: &Node) -> Result<Reloaded, ReloadError> {
        let config_file = self.config_file.clone();
        let tokens_file = self.api.as_ref().map(|(path, _)| path.clone());
        let loaded = tokio::task::spawn_blocking(move || load(config_file, tokens_file))
            .await
            .unwrap_or_else(|_| Err(ReloadError::Config("the reading task failed".into())));
        let (log_level, users) = match loaded {
            Ok(loaded) => loaded,
            Err(refusal) => {
                if let Some(subject) = refusal.audit_subject()
                    && let Err(error) = node.audit_reload(subject.to_owned()).await
                {
                    tracing::error!(%error, "the audit log did not take a refused reload's line");
                }
                tracing::warn!(
                    reason = %refusal,
                    "reload refused; the previous API users and log level stay"
                );
                return Err(refusal);
            }
        };
        let log_level_applied = self.set_log_level.is_some();
        let subject = format!(
            "reload:users.{}_log_level.{}",
            users.as_ref().map_or_else(|| "none".to_owned(), |users| users.len().to_string()),
            if log_level_applied { log_level.as_str() } else { "rust_log" },
        );
        if let Err(error) = node.audit_reload(subject).await {
            tracing::error!(%error, "reload not applied: the audit log did not take its line");
            return Err(ReloadError::Audit(error));
        }
        if let Some(set_log_level) = &self.set_log_level {
            set_log_level(log_level);
        }
        let count = users.as_ref().map(Users::len);
        if let (Some((_, handle)), Some(users)) = (&self.api, users) {
            handle.replace(users);
        }
        tracing::info!(users = ?count, %log_level, log_level_applied, "reloaded");
        Ok(Reloaded { users: count, log_level, log_level_applied })
    }
}

/// Loads the config's log level and the tokens file's users; either failing refuses both.
fn load(
    config_file: PathBuf,
    tokens_file: Option<PathBuf>,
) -> Result<(LogLevel, Option<Users>), ReloadError> {
    let log_level = config::load_log_level(&config_file)
        .map_err(|error| ReloadError::Config(named_reason(&error, "a config file")))?;
    let users = match tokens_file {
        Some(path) => Some(
            config::load_api_users(&path)
                .map_err(|error| ReloadError::Tokens(named_reason(&error, "a tokens file")))?,
        ),
        None => None,
    };
    Ok((log_level, users))
}

/// What is wrong with a file (`what`: "a tokens file", "a config file"), for the log: a parser's
/// message may quote a value (a hash, a token pasted by mistake, a contact), so a parse failure
/// is named, not quoted. The node's own messages name users and keys, never hashes or values.
fn named_reason(error: &config::Error, what: &str) -> String {
    match error {
        config::Error::Parse { path, .. } => format!(
            "{}: not {what} (TOML syntax, an unknown or missing key, or a wrong type)",
            path.display()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_does_not_parse_is_named_not_quoted() {
        let error = config::Error::Parse {
            path: PathBuf::from("/etc/crossmatch/api-tokens.toml"),
            message: "invalid type: string \"cmt_0123\", expected a sequence".into(),
        };
        let reason = named_reason(&error, "a tokens file");
        assert!(reason.contains("api-tokens.toml: not a tokens file"), "{reason}");
        assert!(!reason.contains("cmt_"), "{reason}");
        let error = config::Error::Parse {
            path: PathBuf::from("/etc/crossmatch/node.toml"),
            message: "invalid type: string \"BKA desk +49 000\", expected a sequence".into(),
        };
        let reason = named_reason(&error, "a config file");
        assert!(reason.contains("node.toml: not a config file"), "{reason}");
        assert!(!reason.contains("BKA"), "{reason}");
    }

    #[test]
    fn every_refusal_but_the_audits_own_is_audited() {
        assert_eq!(
            ReloadError::Tokens("x".into()).audit_subject(),
            Some("reload:refused_tokens_file")
        );
        assert_eq!(
            ReloadError::Config("x".into()).audit_subject(),
            Some("reload:refused_config_file")
        );
        assert_eq!(ReloadError::Audit(daemon::Error::EngineTask).audit_subject(), None);
    }
}
