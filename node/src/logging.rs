//! The process's logging: `tracing` to stderr, as text (the default) or as one JSON object per
//! line (`log_format = "json"`, for journald or a log shipper), filtered by `RUST_LOG` when it is
//! set, else by the config's `log_level`, which SIGHUP can change while the node runs.
//!
//! What goes into a line is the callers' affair, and the rule is theirs to keep: no raw
//! identifier, canonical form or full token in any field (a `Token` logs by `short()` or
//! `Debug`, both four bytes), and no parser message that may quote its input.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogLevel;
use crate::reload::SetLogLevel;

/// The config's `log_format`: how each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default; colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level.
    Json,
}

impl LogFormat {
    /// The format's name in the config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The filter's reload handle.
type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// A subscriber writing `format` to `writer` through a reloadable `filter`, and the handle
/// that changes the filter.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> (impl tracing::Subscriber + Send + Sync + 'static, FilterHandle)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let (filter, handle) = reload::Layer::new(filter);
    let (text, json) = match format {
        LogFormat::Text => {
            (Some(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer)), None)
        }
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
    };
    (tracing_subscriber::registry().with(filter).with(text).with(json), handle)
}

/// A running node's logging in `format`: `RUST_LOG` when it is set (it wins, and stays), else
/// `level`, which SIGHUP can change through the setter returned (`None` when `RUST_LOG` wins).
/// A second call in one process changes nothing.
pub fn init(format: LogFormat, level: LogLevel) -> Option<SetLogLevel> {
    let from_environment = EnvFilter::try_from_default_env().ok();
    let reloadable = from_environment.is_none();
    let filter = from_environment.unwrap_or_else(|| EnvFilter::new(level.as_str()));
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let (subscriber, handle) = subscriber(format, filter, std::io::stderr, ansi);
    if subscriber.try_init().is_err() || !reloadable {
        return None;
    }
    Some(Box::new(move |level: LogLevel| {
        if let Err(error) = handle.reload(EnvFilter::new(level.as_str())) {
            tracing::warn!(%error, "the log level could not be changed");
        }
    }))
}

/// A command's logging (the demo's): text on stderr, `RUST_LOG` when it is set, else `level`.
pub fn init_command(level: LogLevel) {
    let _ = init(LogFormat::Text, level);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'writer> MakeWriter<'writer> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'writer self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap().lines().map(str::to_owned).collect()
        }
    }

    #[test]
    fn json_lines_are_flat_objects_with_the_events_fields() {
        let buffer = Buffer::default();
        let (subscriber, _handle) =
            subscriber(LogFormat::Json, EnvFilter::new("info"), buffer.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(record = 7, state = "open", "alert raised");
            tracing::debug!("filtered out at info");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "alert raised");
        assert_eq!(line["record"], 7);
        assert_eq!(line["state"], "open");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line.get("fields").is_none(), "flattened: {line}");
    }

    #[test]
    fn the_level_changes_through_the_handle() {
        let buffer = Buffer::default();
        let (subscriber, handle) =
            subscriber(LogFormat::Text, EnvFilter::new("warn"), buffer.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before the change");
            handle.reload(EnvFilter::new("info")).unwrap();
            tracing::info!("after the change");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("after the change"), "{lines:?}");
        assert!(!lines[0].contains('\u{1b}'), "no colours off a terminal: {lines:?}");
    }

    #[test]
    fn the_format_parses_from_the_config_by_name() {
        #[derive(Deserialize)]
        struct Section {
            log_format: LogFormat,
        }
        let json: Section = toml::from_str("log_format = \"json\"").unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        let text: Section = toml::from_str("log_format = \"text\"").unwrap();
        assert_eq!(text.log_format, LogFormat::Text);
        assert!(toml::from_str::<Section>("log_format = \"xml\"").is_err());
        assert_eq!(LogFormat::default().to_string(), "text");
    }
}
