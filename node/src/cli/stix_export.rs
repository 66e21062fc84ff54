//! `crossmatch export --format stix`: the unit's records and alerts as one STIX 2.1 bundle
//! (`GET /v1/export/stix`, admin), streamed to stdout or to `--out FILE` as it arrives, never
//! held whole. The file holds raw identifiers: it is written owner-only (0600) under a new name
//! beside it, synced, then linked into place (never over an existing file); a bundle cut short
//! leaves no file and exits 1.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::json;

use super::hunt::Query;
use super::output::print_json_line;
use super::{Api, ApiArgs, CliError, Exit, refusal};

/// Largest refusal read from the API.
const MAX_REFUSAL_BYTES: usize = 64 * 1024;

/// `crossmatch export`: a STIX 2.1 bundle of the unit's data.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The format: stix (STIX 2.1).
    #[arg(long, value_parser = ["stix"])]
    pub format: String,
    /// The records, as observables and indicators (neither --records nor --alerts: both).
    #[arg(long)]
    pub records: bool,
    /// The alerts, as sightings by the counterpart members.
    #[arg(long)]
    pub alerts: bool,
    /// Only what changed since this time (RFC 3339, or Unix ms); what went since is exported
    /// as revoked.
    #[arg(long)]
    pub since: Option<String>,
    /// Each indicator's tokens, in the tokens extension.
    #[arg(long)]
    pub tokens: bool,
    /// Write the bundle to this new file (mode 0600) rather than stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `--since`: Unix ms, or an RFC 3339 time.
fn since_ms(text: &str) -> Result<u64, CliError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| CliError::new(Exit::Usage, "invalid --since"));
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| CliError::new(Exit::Usage, "--since is an RFC 3339 time or Unix ms"))?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| CliError::new(Exit::Usage, "--since is before 1970"))
}

/// The request's query.
fn export_query(args: &ExportArgs) -> Result<String, CliError> {
    let mut query = Query::default();
    if args.records {
        query.word("records", Some("true"))?;
    }
    if args.alerts {
        query.word("alerts", Some("true"))?;
    }
    query.number("since_ms", args.since.as_deref().map(since_ms).transpose()?);
    if args.tokens {
        query.word("tokens", Some("true"))?;
    }
    Ok(query.text())
}

/// Where the bundle goes: stdout, or a new owner-only file linked into place at the end.
enum Sink {
    Stdout(std::io::Stdout),
    File { file: std::fs::File, temporary: PathBuf, out: PathBuf },
}

impl Sink {
    fn open(out: Option<&Path>) -> Result<Self, CliError> {
        let Some(out) = out else { return Ok(Sink::Stdout(std::io::stdout())) };
        if std::fs::symlink_metadata(out).is_ok() {
            return Err(exists(out));
        }
        let name = out
            .file_name()
            .ok_or_else(|| CliError::new(Exit::Usage, "--out names no file"))?
            .to_string_lossy()
            .into_owned();
        let temporary = out.with_file_name(format!(".{name}.{}.new", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|error| write_error(out, &error))?;
        Ok(Sink::File { file, temporary, out: out.to_owned() })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        match self {
            Sink::Stdout(stdout) => stdout
                .lock()
                .write_all(bytes)
                .map_err(|error| CliError::new(Exit::Failure, format!("writing stdout: {error}"))),
            Sink::File { file, out, .. } => {
                file.write_all(bytes).map_err(|error| write_error(out, &error))
            }
        }
    }

    /// The bundle is whole: flushed, or synced and linked into place.
    fn finish(self) -> Result<(), CliError> {
        match self {
            Sink::Stdout(stdout) => stdout
                .lock()
                .flush()
                .map_err(|error| CliError::new(Exit::Failure, format!("writing stdout: {error}"))),
            Sink::File { file, temporary, out } => {
                let linked = file
                    .sync_all()
                    .and_then(|()| std::fs::hard_link(&temporary, &out))
                    .map_err(|error| {
                        if error.kind() == std::io::ErrorKind::AlreadyExists {
                            exists(&out)
                        } else {
                            write_error(&out, &error)
                        }
                    });
                let _ = std::fs::remove_file(&temporary);
                linked?;
                crate::keyfile::sync_parent(&out)
                    .map_err(|error| CliError::new(Exit::Failure, error.to_string()))
            }
        }
    }

    /// The bundle was cut short: no file is left.
    fn abandon(self) {
        if let Sink::File { temporary, .. } = self {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

fn exists(out: &Path) -> CliError {
    CliError::new(
        Exit::Usage,
        format!("{} exists: the export never replaces a file", out.display()),
    )
}

fn write_error(out: &Path, error: &std::io::Error) -> CliError {
    CliError::new(Exit::Failure, format!("writing {}: {error}", out.display()))
}

/// Runs `crossmatch export`.
pub(super) async fn export(args: ExportArgs) -> Result<Exit, CliError> {
    let api = Api::connect(&args.api)?;
    let query = export_query(&args)?;
    // Refused before the node is asked (and audits an export nobody keeps).
    let mut sink = Sink::open(args.out.as_deref())?;
    let request = api
        .request(Method::GET, &format!("/v1/export/stix{query}"))
        .body(Full::new(Bytes::new()))
        .map_err(|_| CliError::new(Exit::Usage, "the request could not be built"));
    let response = match request {
        Ok(request) => api.client.send(request, api.timeout).await.map_err(CliError::from),
        Err(error) => Err(error),
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            sink.abandon();
            return Err(error);
        }
    };
    let status = response.status();
    if !status.is_success() {
        sink.abandon();
        let body = tokio::time::timeout(
            api.timeout,
            Limited::new(response.into_body(), MAX_REFUSAL_BYTES).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
        return Err(refusal(status, &body));
    }
    let mut body = response.into_body();
    let mut bytes = 0u64;
    let mut last = Vec::new();
    loop {
        let frame = match tokio::time::timeout(api.timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                sink.abandon();
                return Err(CliError::new(Exit::Failure, "the export was cut short"));
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        if let Err(error) = sink.write(&data) {
            sink.abandon();
            return Err(error);
        }
        bytes += data.len() as u64;
        last.extend_from_slice(&data);
        let keep = last.len().saturating_sub(8);
        last.drain(..keep);
    }
    // A bundle the node finished ends with its closing; one that failed part-way does not.
    if !last.ends_with(b"]}\n") {
        sink.abandon();
        return Err(CliError::new(Exit::Failure, "the export was cut short"));
    }
    let out = args.out.clone();
    sink.finish()?;
    if let Some(out) = out {
        if api.json {
            print_json_line(
                &json!({ "format": "stix", "out": out.display().to_string(), "bytes": bytes }),
            );
        } else {
            println!("{bytes} bytes of STIX 2.1 written to {}", out.display());
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_unix_ms_or_rfc3339() {
        assert_eq!(since_ms("1800000000000").unwrap(), 1_800_000_000_000);
        assert_eq!(since_ms("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600_000);
        assert_eq!(since_ms("2026-01-01T01:00:00+01:00").unwrap(), 1_767_225_600_000);
        for bad in ["", "yesterday", "1969-12-31T23:59:59Z", "12e3"] {
            assert_eq!(since_ms(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn a_file_sink_is_owner_only_and_never_replaces_a_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::test_support::TempDir::new("cli-stix-export");
        let out = dir.path().join("bundle.json");
        let mut sink = Sink::open(Some(&out)).unwrap();
        sink.write(b"{}").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"{}");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Sink::open(Some(&out)).err().map(|error| error.exit), Some(Exit::Usage));
        let other = dir.path().join("cut.json");
        let mut sink = Sink::open(Some(&other)).unwrap();
        sink.write(b"{\"type\"").unwrap();
        sink.abandon();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the whole bundle is left: {left:?}");
    }
}
