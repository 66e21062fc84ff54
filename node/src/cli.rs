//! The analyst's command line: `crossmatch records …`, `alerts …`, `hunt …`, `takedowns`, `status`,
//! `peers`, `forks`, `import`, `imports` and `export` talk to a running node's API over
//! [`crate::http_client`]. This file holds the clap definitions, the API's address, token and TLS
//! files ([`ApiArgs`]), the dispatch and the exit codes ([`Exit`]); `cli/` holds one job per file:
//! `records`, `alerts` (the list and acknowledging), `follow` (`alerts --follow`: the live stream,
//! resumed from a cursor file), `hunt` (the analytics' reads), `export` (`hunt export`: the
//! analytics as a file), `curation` (the hunt's writes: labels, pins, merges, splits, "not a
//! target" marks, community shares), `takedowns` (the takedown clocks), `status` (`status`, `peers`
//! and `forks`), `imports` (`import FILE` as a job, `imports` listed, shown, undone), `stix_export`
//! (`export --format stix`, streamed to a file), `output` (tables, and JSON for scripts), `input`
//! (stdin and files, read within a bound) and `pages` (paged listings, bounded, each page past the
//! last).
//!
//! - Identifiers are never arguments (arguments show in the process list and stay in the
//!   shell's history): they come from stdin or a file.
//! - The bearer token comes from `CROSSMATCH_TOKEN` or `--token-file` (mode 0600), never from an
//!   argument, and is sent over plain HTTP only to a loopback address.
//! - No message echoes an input: a refusal names its line and the API's error code.

mod alerts;
mod curation;
mod export;
mod follow;
mod hunt;
// Imports and the STIX export.
mod imports;
mod input;
mod output;
mod pages;
mod records;
mod status;
mod stix_export;
mod takedowns;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};

use crate::http_client::{Client, ClientError, TlsFiles};

pub use alerts::AlertsArgs;
pub use hunt::{HuntArgs, HuntCommand};
pub use imports::{ImportArgs, ImportsArgs, ImportsCommand};
pub use records::RecordsCommand;
pub use stix_export::ExportArgs;
pub use takedowns::TakedownsArgs;

/// The API's address when neither `--api` nor `CROSSMATCH_API` gives one.
pub const DEFAULT_API: &str = "http://127.0.0.1:7480";
/// Largest answer read from the API.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// What an exit code means; documented in the README and `ARCHITECTURE.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: a failure: the node's `500`, a TLS or certificate problem, an answer it cannot read,
    /// a listing past its bound or whose next page does not come after the last.
    Failure = 1,
    /// 2: bad usage or input: clap's errors, `400`/`409`/`413`/`415`, local refusals (plain
    /// HTTP to a remote address, a file readable by others).
    Usage = 2,
    /// 3: authentication or authorisation: `401`, `403`, no token.
    Auth = 3,
    /// 4: not found: `404`.
    NotFound = 4,
    /// 5: worth retrying: connection refused or reset, no answer in time, `429`, `503`, and a
    /// proxy's `502`/`504`.
    Retryable = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

impl Exit {
    /// The exit code an API answer's status maps to.
    pub fn of_status(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => Exit::Ok,
            401 | 403 => Exit::Auth,
            404 => Exit::NotFound,
            429 | 502 | 503 | 504 => Exit::Retryable,
            400..=499 => Exit::Usage,
            _ => Exit::Failure,
        }
    }
}

/// Why a command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// The API's error code (`identifier_refused`), when the API answered one.
    pub code: Option<String>,
    /// What to tell the user; never an input.
    pub message: String,
}

impl CliError {
    /// An error with no API error code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, code: None, message: message.into() }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        let exit = match &error {
            ClientError::PlainHttp | ClientError::BadUrl(_) | ClientError::Files(_) => Exit::Usage,
            ClientError::Tls(_) => Exit::Failure,
            ClientError::Connect(_) | ClientError::Timeout => Exit::Retryable,
            ClientError::Http(http) if is_tls_failure(http) => Exit::Failure,
            ClientError::Http(http) if http.is_parse() || http.is_parse_status() => Exit::Failure,
            ClientError::Http(_) => Exit::Retryable,
        };
        let message = match &error {
            ClientError::Http(http) if is_tls_failure(http) => format!("tls: {error}"),
            _ => error.to_string(),
        };
        CliError::new(exit, message)
    }
}

/// Whether a failed exchange was refused by TLS (a certificate the server would not take,
/// which TLS 1.3 reports only on the first read).
fn is_tls_failure(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        source = current.source();
    }
    false
}

/// How to reach the node's API; shared by every command (and accepted after the command's
/// name).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The node's API: `http://` to a loopback address only, else `https://` (through the
    /// mutual-TLS reverse proxy). Else CROSSMATCH_API, else http://127.0.0.1:7480.
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// A file holding the bearer token (mode 0600); else CROSSMATCH_TOKEN. Never an argument.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// PEM certificates to trust for https:// instead of the system's; else CROSSMATCH_CA_FILE.
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate for the proxy; else CROSSMATCH_CLIENT_CERT.
    #[arg(long, global = true)]
    pub client_cert: Option<PathBuf>,
    /// Its PEM key (mode 0600); else CROSSMATCH_CLIENT_KEY.
    #[arg(long, global = true)]
    pub client_key: Option<PathBuf>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for each answer.
    #[arg(long, global = true, default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// The commands that talk to a running node's API (flattened into the binary's commands).
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Local records: `records add` (JSON bodies, or one identifier a line, from stdin or a
    /// file: never as arguments), `records get ID`, `records rm ID`, `records status ID STATUS`.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Match alerts: a table of them (`--state`, `--since-ms`), `alerts ack ID`, or `alerts
    /// --follow` (JSON lines as alerts change, resumed from `--cursor-file`).
    Alerts(AlertsArgs),
    /// The hunt: ranked `accounts`, `communities [ID]`, `suggestions`, `overlaps`,
    /// `successors`, `export --format F` (a file for Gephi or i2); and the curation: `label
    /// ID`, `pin ID`, `merge ID --with OTHER`, `split ID`, `not-a-target`, `share ID` (labels,
    /// seeds and accounts from stdin or a file).
    Hunt(HuntArgs),
    /// The takedown clocks of the local records (`--state overdue`), with their totals.
    Takedowns(TakedownsArgs),
    /// The node's state: readiness, peers, own feed, heads, forks.
    Status(ApiArgs),
    /// The roster's members as the node sees them: connected, banned, addresses, heads, skew.
    Peers(ApiArgs),
    /// The fork evidence the node holds (admin token).
    Forks(ApiArgs),
    /// Imports a file (CSV, JSON lines or a STIX 2.1 bundle) as a job: `--share` or
    /// `--watch`, `--dry-run` for the summary alone; shows its progress, then its summary.
    Import(ImportArgs),
    /// The past imports; `imports show ID`, `imports undo ID [--force]`.
    Imports(ImportsArgs),
    /// The unit's records and alerts as a STIX 2.1 bundle (admin token).
    Export(ExportArgs),
}

/// Runs one command; prints its error on stderr and returns its exit code.
pub fn run(command: ApiCommand) -> ExitCode {
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("crossmatch: error: starting the runtime: {error}");
                return Exit::Failure.into();
            }
        };
    let result = runtime.block_on(async move {
        match command {
            ApiCommand::Records { command, api } => records::run(command, &api).await,
            ApiCommand::Alerts(args) => alerts::run(args).await,
            ApiCommand::Hunt(args) => hunt::run(args).await,
            ApiCommand::Takedowns(args) => takedowns::run(args).await,
            ApiCommand::Status(api) => status::status(&api).await,
            ApiCommand::Peers(api) => status::peers(&api).await,
            ApiCommand::Forks(api) => status::forks(&api).await,
            ApiCommand::Import(args) => imports::import(args).await,
            ApiCommand::Imports(args) => imports::imports(args).await,
            ApiCommand::Export(args) => stix_export::export(args).await,
        }
    });
    match result {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("crossmatch: error: {error}");
            error.exit.into()
        }
    }
}

/// A connection to the node's API: the client, the token and the time allowed.
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    token: String,
    timeout: Duration,
    /// JSON output.
    pub json: bool,
}

/// An answer the API gave with a `2xx` status.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON; an unreadable one is a failure.
    pub fn json(&self) -> Result<serde_json::Value, CliError> {
        serde_json::from_slice(&self.body)
            .map_err(|_| CliError::new(Exit::Failure, "the API's answer is not the JSON expected"))
    }
}

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl Api {
    /// Checks the address (plain HTTP to loopback only, before anything is read or sent),
    /// reads the TLS files and the token.
    pub fn connect(args: &ApiArgs) -> Result<Self, CliError> {
        let url = args.api.clone().or_else(|| env("CROSSMATCH_API"));
        let url = url.as_deref().unwrap_or(DEFAULT_API);
        crate::http_client::check_url(url)?;
        let pick = |given: &Option<PathBuf>, name: &str| {
            given.clone().or_else(|| env(name).map(PathBuf::from))
        };
        let tls = TlsFiles {
            ca_file: pick(&args.ca_file, "CROSSMATCH_CA_FILE"),
            client_cert: pick(&args.client_cert, "CROSSMATCH_CLIENT_CERT"),
            client_key: pick(&args.client_key, "CROSSMATCH_CLIENT_KEY"),
        };
        let client = Client::new(url, &tls)?;
        let token = match &args.token_file {
            Some(path) => crate::keyfile::read_private_text(path)
                .map_err(|error| CliError::new(Exit::Usage, format!("the token file: {error}")))?
                .trim()
                .to_owned(),
            None => env("CROSSMATCH_TOKEN").ok_or_else(|| {
                CliError::new(Exit::Auth, "no token: set CROSSMATCH_TOKEN or give --token-file")
            })?,
        };
        if token.is_empty() || token.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(CliError::new(Exit::Auth, "the token is empty or malformed"));
        }
        Ok(Self { client, token, timeout: Duration::from_secs(args.timeout), json: args.json })
    }

    /// The API's origin (`scheme://host:port`), for messages.
    pub fn origin(&self) -> &str {
        self.client.origin()
    }

    /// A request for `path` with the token set.
    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        self.client
            .request(method, path)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    /// One call; a `2xx` answer, or the API's refusal as an error with its code.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, CliError> {
        let body = body.map(|body| {
            ("application/json", Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
        });
        self.call_with(method, path, body).await
    }

    /// One call with a body of the given content type.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Answer, CliError> {
        let mut request = self.request(method, path);
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(hyper::header::CONTENT_TYPE, content_type);
                body
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|_| CliError::new(Exit::Usage, "the request could not be built"))?;
        let response = self.client.send(request, self.timeout).await?;
        let status = response.status();
        let body = tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
        )
        .await
        .map_err(|_| CliError::new(Exit::Retryable, "the answer did not arrive in time"))?
        .map_err(|_| CliError::new(Exit::Retryable, "the answer was cut off or too large"))?
        .to_bytes();
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        Err(refusal(status, &body))
    }

    /// The stream request (`GET` with `Accept: text/event-stream`, resuming after `cursor`):
    /// the response, whatever its status, with its body unread.
    pub async fn open_stream(
        &self,
        path: &str,
        cursor: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, CliError> {
        let mut request =
            self.request(Method::GET, path).header(hyper::header::ACCEPT, "text/event-stream");
        if let Some(cursor) = cursor {
            request = request.header("last-event-id", cursor);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|_| CliError::new(Exit::Usage, "the request could not be built"))?;
        Ok(self.client.send(request, self.timeout).await?)
    }
}

/// The error of a refused call: its exit code, and the API's code and message (which never
/// echo the request).
pub fn refusal(status: StatusCode, body: &[u8]) -> CliError {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = answer["error"]["code"].as_str().map(str::to_owned);
    let message = answer["error"]["message"].as_str().unwrap_or("no message");
    CliError {
        exit: Exit::of_status(status),
        message: format!(
            "the node answered {status} {}: {message}",
            code.as_deref().unwrap_or("(no code)")
        ),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        for (status, exit) in [
            (200, Exit::Ok),
            (204, Exit::Ok),
            (400, Exit::Usage),
            (409, Exit::Usage),
            (413, Exit::Usage),
            (415, Exit::Usage),
            (401, Exit::Auth),
            (403, Exit::Auth),
            (404, Exit::NotFound),
            (429, Exit::Retryable),
            (502, Exit::Retryable),
            (503, Exit::Retryable),
            (504, Exit::Retryable),
            (500, Exit::Failure),
        ] {
            assert_eq!(Exit::of_status(StatusCode::from_u16(status).unwrap()), exit, "{status}");
        }
    }

    #[test]
    fn a_refusal_names_the_code_and_the_message() {
        let error = refusal(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"code":"identifier_refused","message":"identifier 1: rule"}}"#,
        );
        assert_eq!((error.exit, error.code.as_deref()), (Exit::Usage, Some("identifier_refused")));
        assert!(error.message.contains("identifier 1: rule"), "{}", error.message);
        let error = refusal(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!((error.exit, error.code), (Exit::Retryable, None));
    }

    #[test]
    fn client_errors_map_to_exit_codes() {
        assert_eq!(CliError::from(ClientError::PlainHttp).exit, Exit::Usage);
        assert_eq!(CliError::from(ClientError::Timeout).exit, Exit::Retryable);
        assert_eq!(CliError::from(ClientError::Tls("x".into())).exit, Exit::Failure);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(CliError::from(ClientError::Connect(refused)).exit, Exit::Retryable);
    }
}
