//! `crossmatch import FILE|-` and `crossmatch imports [show ID | undo ID]`: an analyst's file
//! (CSV, JSON lines or a STIX 2.1 bundle) streamed to `POST /v1/imports` without being held in
//! memory, the job it becomes followed until it ends (an indicatif bar on a terminal, none
//! otherwise), then its summary; the past imports listed, one shown, one undone.
//!
//! Nothing here prints a value of the file: the node reports refused rows by position and rule,
//! and the summary is counts. Exit 0; 2 on refused rows, a refused job (the quota message) or
//! bad usage; 1 when the job failed; 3, 4 and 5 as every API command.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::Method;
use hyper::body::{Bytes, Frame};
use indicatif::ProgressBar;
use serde_json::Value;

use super::hunt::Query;
use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, ApiArgs, CliError, Exit, MAX_ANSWER_BYTES, refusal};

/// How often a running job is asked for its progress.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest the upload may take, to the node's answer (the node's own bound is 600 s).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(660);
/// Bytes read from the file per chunk of the upload.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks read ahead of the connection.
const UPLOAD_CHUNKS_AHEAD: usize = 4;
/// Longest a source label is (`[A-Za-z0-9._-]`).
const MAX_SOURCE_BYTES: usize = 64;

/// `crossmatch import`: one file as an import job.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: CSV, JSON lines or a STIX 2.1 bundle; `-` reads stdin.
    pub file: PathBuf,
    /// Share the imported records with the federation (unless a marking, or a row's own
    /// `share` of false, makes one a watch).
    #[arg(long, conflicts_with = "watch", required_unless_present = "watch")]
    pub share: bool,
    /// Only watch the imported records: nothing is shared.
    #[arg(long)]
    pub watch: bool,
    /// The file's format; else detected from its content.
    #[arg(long, value_parser = ["csv", "jsonl", "stix"])]
    pub format: Option<String>,
    /// The source label rows are keyed by (letters, digits, `.`, `_`, `-`); else the file's
    /// name, so importing the same file again changes nothing. Required with stdin.
    #[arg(long)]
    pub source: Option<String>,
    /// Default category of rows that give none.
    #[arg(long)]
    pub category: Option<String>,
    /// Default handling code (H0 to H3).
    #[arg(long)]
    pub handling: Option<String>,
    /// Default evaluation (such as B2).
    #[arg(long)]
    pub evaluation: Option<String>,
    /// Default expiry, in days.
    #[arg(long)]
    pub expires_in_days: Option<u64>,
    /// Spread a share bigger than what is left of today's quota over the next days.
    #[arg(long)]
    pub spread: bool,
    /// Admin only, audited: import TLP:RED, TLP:AMBER+STRICT or unmarked STIX objects as
    /// shared rather than as watches (comma separated).
    #[arg(long = "override", value_delimiter = ',',
          value_parser = ["red", "amber-strict", "unmarked"])]
    pub override_marking: Vec<String>,
    /// Show the summary only: nothing is written or published.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the job's id and return once the node has it.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `crossmatch imports`: the past imports, or one of them.
#[derive(Debug, Args)]
pub struct ImportsArgs {
    #[command(subcommand)]
    pub command: Option<ImportsCommand>,
    /// How many to list (1 to 500).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=500))]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What to do with one import.
#[derive(Debug, Subcommand)]
pub enum ImportsCommand {
    /// One import's job: state, progress, summary, refused rows by position.
    Show {
        /// The import's id.
        id: u64,
    },
    /// Removes what the import created and nobody changed since (`--force`: edited records
    /// too), retracting as `erroneous` only tokens no other shared record holds.
    Undo {
        /// The import's id.
        id: u64,
        /// Remove records edited since the import too.
        #[arg(long)]
        force: bool,
        /// Return once the undo is queued.
        #[arg(long)]
        no_wait: bool,
    },
}

/// The job states after which nothing more happens without a new request.
fn is_final(state: &str) -> bool {
    matches!(state, "done" | "refused" | "failed" | "undone")
}

/// The source label of `file`: its base name filtered to the label's characters.
fn default_source(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_string_lossy();
    let label: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(MAX_SOURCE_BYTES)
        .collect();
    (!label.is_empty()).then_some(label)
}

/// `value` percent-encoded for a query (categories hold `/`).
fn encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The query of an import request (`?format=…&…`).
fn import_query(args: &ImportArgs) -> Result<String, CliError> {
    let stdin = args.file.as_os_str() == "-";
    let source = match (&args.source, stdin) {
        (Some(source), _) => Some(source.clone()),
        (None, false) => default_source(&args.file),
        (None, true) => None,
    };
    if source.is_none() && args.format.as_deref() != Some("stix") {
        return Err(CliError::new(
            Exit::Usage,
            "give --source NAME: rows are keyed by it, so that importing again changes nothing",
        ));
    }
    let label = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if source.as_ref().is_some_and(|source| {
        source.is_empty() || source.len() > MAX_SOURCE_BYTES || !source.chars().all(label)
    }) {
        return Err(CliError::new(
            Exit::Usage,
            "--source is 1 to 64 letters, digits, `.`, `_` or `-`",
        ));
    }
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let mut text = |name: &'static str, value: Option<&str>| {
        if let Some(value) = value {
            pairs.push((name, encoded(value)));
        }
    };
    text("format", args.format.as_deref());
    text("source", source.as_deref());
    text("share", Some(if args.share { "true" } else { "false" }));
    text("category", args.category.as_deref());
    text("handling", args.handling.as_deref());
    text("evaluation", args.evaluation.as_deref());
    let days = args.expires_in_days.map(|days| days.to_string());
    text("expires_in_days", days.as_deref());
    text("spread", args.spread.then_some("true"));
    let overrides = args.override_marking.join(",");
    text("override", (!overrides.is_empty()).then_some(overrides.as_str()));
    text("dry_run", args.dry_run.then_some("true"));
    let query: Vec<String> = pairs.iter().map(|(name, value)| format!("{name}={value}")).collect();
    Ok(format!("?{}", query.join("&")))
}

/// An upload's body: the file's chunks as they are read.
type UploadBody = StreamBody<
    std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>,
    >,
>;

/// The file as a stream of chunks read on a blocking thread, counting the bytes sent.
fn file_body(file: &Path, sent: Arc<AtomicU64>) -> Result<(UploadBody, Option<u64>), CliError> {
    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let opened = std::fs::File::open(file)
            .map_err(|error| CliError::new(Exit::Usage, format!("{}: {error}", file.display())))?;
        let size = opened.metadata().ok().map(|metadata| metadata.len());
        (Box::new(opened), size)
    };
    let (chunks, receiver) = tokio::sync::mpsc::channel(UPLOAD_CHUNKS_AHEAD);
    std::thread::spawn(move || {
        let mut reader = reader;
        loop {
            let mut buffer = vec![0; UPLOAD_CHUNK_BYTES];
            let read = match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let _ = chunks.blocking_send(Err(error));
                    return;
                }
            };
            buffer.truncate(read);
            sent.fetch_add(read as u64, Ordering::Relaxed);
            if chunks.blocking_send(Ok(Frame::data(Bytes::from(buffer)))).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((chunk, receiver))
    });
    Ok((StreamBody::new(Box::pin(stream)), size))
}

/// Sends the file; the node's answer as JSON.
async fn upload(api: &Api, args: &ImportArgs, bar: &ProgressBar) -> Result<Value, CliError> {
    let query = import_query(args)?;
    let sent = Arc::new(AtomicU64::new(0));
    let (body, size) = file_body(&args.file, sent.clone())?;
    if let Some(size) = size {
        bar.set_length(size);
    }
    bar.set_message("uploading");
    let mut request = api
        .request(Method::POST, &format!("/v1/imports{query}"))
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream");
    // A file's size is known: the node can refuse one past its limit before reading it.
    if let Some(size) = size {
        request = request.header(hyper::header::CONTENT_LENGTH, size);
    }
    let request = request
        .body(body)
        .map_err(|_| CliError::new(Exit::Usage, "the request could not be built"))?;
    let ticking = {
        let (bar, sent) = (bar.clone(), sent.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(sent.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let response = api.client.send(request, UPLOAD_TIMEOUT.max(api.timeout)).await;
    ticking.abort();
    let response = response?;
    let status = response.status();
    let body = tokio::time::timeout(
        api.timeout,
        Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
    )
    .await
    .map_err(|_| CliError::new(Exit::Retryable, "the answer did not arrive in time"))?
    .map_err(|_| CliError::new(Exit::Retryable, "the answer was cut off or too large"))?
    .to_bytes();
    if !status.is_success() {
        return Err(refusal(status, &body));
    }
    serde_json::from_slice(&body)
        .map_err(|_| CliError::new(Exit::Failure, "the API's answer is not the JSON expected"))
}

/// Runs `crossmatch import`.
pub(super) async fn import(args: ImportArgs) -> Result<Exit, CliError> {
    let api = Api::connect(&args.api)?;
    // A bar with its total when the file's size is known (not from stdin), else a spinner.
    let size = (args.file.as_os_str() != "-")
        .then(|| std::fs::metadata(&args.file).ok().map(|metadata| metadata.len()))
        .flatten();
    let bar = crate::observe_cli::progress_bar(size);
    let answer = upload(&api, &args, &bar).await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            bar.finish_and_clear();
            return Err(error);
        }
    };
    if args.dry_run {
        bar.finish_and_clear();
        return report(&api, &answer, true);
    }
    let Some(id) = answer["id"].as_u64() else {
        bar.finish_and_clear();
        return Err(CliError::new(Exit::Failure, "the API's answer is not the JSON expected"));
    };
    if args.no_wait {
        bar.finish_and_clear();
        return queued(&api, &answer, id);
    }
    let job = follow(&api, id, &bar, is_final, file_progress).await;
    bar.finish_and_clear();
    report(&api, &job?, false)
}

/// Prints a queued job's id.
fn queued(api: &Api, answer: &Value, id: u64) -> Result<Exit, CliError> {
    if api.json {
        print_json_line(answer);
    } else {
        println!(
            "import {id} {}: follow it with `crossmatch imports show {id}`",
            cell(&answer["state"])
        );
    }
    Ok(Exit::Ok)
}

/// Polls a job until `done(state)`, showing on the bar the `(done, total)` that `progress`
/// reads from the job.
async fn follow(
    api: &Api,
    id: u64,
    bar: &ProgressBar,
    done: impl Fn(&str) -> bool,
    progress: impl Fn(&Value) -> Option<(u64, u64)>,
) -> Result<Value, CliError> {
    loop {
        let job = api.call(Method::GET, &format!("/v1/imports/{id}"), None).await?.json()?;
        let state = job["state"].as_str().unwrap_or_default();
        if done(state) {
            return Ok(job);
        }
        if let Some((done, total)) = progress(&job) {
            bar.set_length(total.max(done));
            bar.set_position(done);
        }
        bar.set_message(state.to_owned());
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// An import's progress: the bytes of its file read.
fn file_progress(job: &Value) -> Option<(u64, u64)> {
    Some((job["progress"]["done"].as_u64()?, job["progress"]["total"].as_u64()?))
}

/// An undo's progress: the records it has looked at, of those its plan counted (none until
/// the plan is made).
fn undo_progress(job: &Value) -> Option<(u64, u64)> {
    let undo = &job["undo"];
    let total = undo["planned_remove"].as_u64()? + undo["planned_keep"].as_u64()?;
    let done = undo["removed"].as_u64()? + undo["kept_edited"].as_u64()?;
    (total > 0).then_some((done, total))
}

/// The undo's bar: over the records its plan counted, once it has; hidden when stderr is not
/// a terminal.
fn records_bar() -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} records eta {eta}  {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// The message of a job refused for the quota.
fn quota_message(job: &Value) -> String {
    let quota = &job["quota"];
    if quota["days"].as_u64() == Some(u64::from(u32::MAX)) {
        return format!(
            "this import shares {} entries and the daily quota leaves no room to share any, even spread: use --watch",
            cell(&quota["entries"]),
        );
    }
    format!(
        "this import shares {} entries; {} of today's {} are left: use --spread ({} days) or --watch",
        cell(&quota["entries"]),
        cell(&quota["left_today"]),
        cell(&quota["entries_per_day"]),
        cell(&quota["days"]),
    )
}

/// Prints a job's summary (or the job under `--json`) and returns its exit code.
fn report(api: &Api, job: &Value, dry_run: bool) -> Result<Exit, CliError> {
    let state = job["state"].as_str().unwrap_or_default();
    let refused_rows =
        job["refused_count"].as_u64().or_else(|| job["summary"]["refused"].as_u64()).unwrap_or(0);
    if api.json {
        print_json_line(job);
    } else {
        print_summary(job, dry_run);
    }
    match state {
        "refused" if job["reason"] == "quota" => Err(CliError {
            exit: Exit::Usage,
            code: Some("quota".into()),
            message: quota_message(job),
        }),
        "refused" => Err(CliError::new(
            Exit::Usage,
            format!("the import was refused: {}", cell(&job["reason"])),
        )),
        "failed" => Err(CliError::new(
            Exit::Failure,
            format!("the import failed: {}", cell(&job["reason"])),
        )),
        _ if refused_rows > 0 => Ok(Exit::Usage),
        _ => Ok(Exit::Ok),
    }
}

/// The summary as tables: counts, quota, refused rows by position and rule, notices.
fn print_summary(job: &Value, dry_run: bool) {
    let title = match job["id"].as_u64() {
        Some(id) => format!("import {id}: {}", cell(&job["state"])),
        None => format!("dry run: {} (nothing was written)", cell(&job["state"])),
    };
    println!("{title}");
    let summary = &job["summary"];
    let columns = [
        "records", "added", "updated", "present", "removed", "refused", "watched", "to_share",
        "pending",
    ];
    let mut table = Table::new(&columns);
    table.row(columns.iter().map(|name| cell(&summary[*name])).collect());
    print_table(&table);
    let quota = &job["quota"];
    if quota.is_object() {
        let fits = if quota["fits_today"] == true { "fits today" } else { "does not fit today" };
        let days = match quota["days"].as_u64() {
            Some(days) if days == u64::from(u32::MAX) => "no room on any day".to_owned(),
            _ => format!("{} days", cell(&quota["days"])),
        };
        println!(
            "share: {} entries; {} of today's {} left ({fits}; {days})",
            cell(&quota["entries"]),
            cell(&quota["left_today"]),
            cell(&quota["entries_per_day"]),
        );
    }
    if let Some(refused) = job["refused"].as_array().filter(|refused| !refused.is_empty()) {
        let mut table = Table::new(&["refused at", "rule"]);
        for row in refused {
            table.row(vec![cell(&row["position"]), cell(&row["rule"])]);
        }
        print_table(&table);
        let count = job["refused_count"].as_u64().unwrap_or(refused.len() as u64);
        if count > refused.len() as u64 {
            println!("… and {} more refused rows", count - refused.len() as u64);
        }
    }
    if let Some(notices) = job["notices"].as_object().filter(|notices| !notices.is_empty()) {
        let mut table = Table::new(&["notice", "count"]);
        for (notice, count) in notices {
            table.row(vec![notice.clone(), cell(count)]);
        }
        print_table(&table);
    }
    if job["undo"].is_object() {
        let undo = &job["undo"];
        println!(
            "undo: {} removed, {} kept as edited since (planned {} and {}{})",
            cell(&undo["removed"]),
            cell(&undo["kept_edited"]),
            cell(&undo["planned_remove"]),
            cell(&undo["planned_keep"]),
            if undo["force"] == true { ", forced" } else { "" },
        );
    }
    if dry_run && job["id"].is_null() {
        println!("nothing was written or published");
    }
}

/// Runs `crossmatch imports`.
pub(super) async fn imports(args: ImportsArgs) -> Result<Exit, CliError> {
    let api = Api::connect(&args.api)?;
    match args.command {
        None => list(&api, args.limit).await,
        Some(ImportsCommand::Show { id }) => {
            let job = api.call(Method::GET, &format!("/v1/imports/{id}"), None).await?.json()?;
            report(&api, &job, false)
        }
        Some(ImportsCommand::Undo { id, force, no_wait }) => undo(&api, id, force, no_wait).await,
    }
}

async fn list(api: &Api, limit: Option<u64>) -> Result<Exit, CliError> {
    let mut query = Query::default();
    query.number("limit", limit);
    let answer =
        api.call(Method::GET, &format!("/v1/imports{}", query.text()), None).await?.json()?;
    if api.json {
        print_json_line(&answer);
        return Ok(Exit::Ok);
    }
    let mut table = Table::new(&[
        "id", "state", "format", "source", "by", "created", "records", "added", "updated",
        "removed", "refused",
    ]);
    for job in answer["imports"].as_array().into_iter().flatten() {
        let summary = &job["summary"];
        table.row(vec![
            cell(&job["id"]),
            cell(&job["state"]),
            cell(&job["format"]),
            cell(&job["source"]),
            cell(&job["created_by"]),
            time_cell(&job["created_at_ms"]),
            cell(&summary["records"]),
            cell(&summary["added"]),
            cell(&summary["updated"]),
            cell(&summary["removed"]),
            cell(&summary["refused"]),
        ]);
    }
    print_table(&table);
    Ok(Exit::Ok)
}

async fn undo(api: &Api, id: u64, force: bool, no_wait: bool) -> Result<Exit, CliError> {
    let path = if force {
        format!("/v1/imports/{id}/undo?force=true")
    } else {
        format!("/v1/imports/{id}/undo")
    };
    let answer = api.call(Method::POST, &path, None).await?.json()?;
    if no_wait {
        if api.json {
            print_json_line(&answer);
        } else {
            println!("import {id} {}", cell(&answer["state"]));
        }
        return Ok(Exit::Ok);
    }
    let bar = records_bar();
    let job = follow(api, id, &bar, |state| state != "undoing", undo_progress).await;
    bar.finish_and_clear();
    report(api, &job?, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_source_is_the_file_name_in_the_label_charset() {
        assert_eq!(
            default_source(Path::new("/tmp/leak 2015.csv")).as_deref(),
            Some("leak2015.csv")
        );
        assert_eq!(default_source(Path::new("bündel.json")).as_deref(), Some("bndel.json"));
        assert_eq!(default_source(Path::new("/tmp/ü")), None);
        let long = "a".repeat(100);
        assert_eq!(default_source(Path::new(&long)).map(|s| s.len()), Some(64));
    }

    #[test]
    fn the_bars_read_the_bytes_of_an_import_and_the_records_of_an_undo() {
        let importing = serde_json::json!({"progress": {"done": 10, "total": 40}, "undo": null});
        assert_eq!(file_progress(&importing), Some((10, 40)));
        assert_eq!(undo_progress(&importing), None);
        let planning = serde_json::json!({"undo": {
            "planned_remove": 0, "planned_keep": 0, "removed": 0, "kept_edited": 0
        }});
        assert_eq!(undo_progress(&planning), None, "no total before the plan");
        let undoing = serde_json::json!({"undo": {
            "planned_remove": 5, "planned_keep": 2, "removed": 3, "kept_edited": 1
        }});
        assert_eq!(undo_progress(&undoing), Some((4, 7)));
    }

    #[test]
    fn values_are_percent_encoded_in_the_query() {
        assert_eq!(encoded("terrorism/propaganda"), "terrorism%2Fpropaganda");
        assert_eq!(encoded("red,amber-strict"), "red%2Camber-strict");
        assert_eq!(encoded("B2"), "B2");
    }

    #[test]
    fn a_job_s_end_maps_to_its_exit_code() {
        let client = crate::http_client::Client::new(
            "http://127.0.0.1:7480",
            &crate::http_client::TlsFiles::default(),
        )
        .unwrap();
        let api =
            Api { client, token: "cmt_x".into(), timeout: Duration::from_secs(1), json: true };
        let job = |state: &str, reason: Value, refused: u64| {
            serde_json::json!({ "id": 4, "state": state, "reason": reason,
                "summary": { "refused": refused }, "refused_count": refused,
                "quota": { "entries_per_day": 10, "left_today": 1, "entries": 30,
                           "fits_today": false, "days": 4 } })
        };
        assert_eq!(report(&api, &job("done", Value::Null, 0), false).unwrap(), Exit::Ok);
        assert_eq!(report(&api, &job("done", Value::Null, 3), false).unwrap(), Exit::Usage);
        assert_eq!(report(&api, &job("undone", Value::Null, 0), false).unwrap(), Exit::Ok);
        let quota = report(&api, &job("refused", "quota".into(), 0), true).unwrap_err();
        assert_eq!((quota.exit, quota.code.as_deref()), (Exit::Usage, Some("quota")));
        assert!(quota.message.contains("--spread (4 days) or --watch"), "{}", quota.message);
        let format = report(&api, &job("refused", "format".into(), 0), false).unwrap_err();
        assert_eq!(format.exit, Exit::Usage);
        let failed = report(&api, &job("failed", "store".into(), 0), false).unwrap_err();
        assert_eq!(failed.exit, Exit::Failure);
        assert!(failed.message.contains("store"), "{}", failed.message);
    }

    #[test]
    fn the_quota_message_names_the_way_out() {
        let job = serde_json::json!({ "state": "refused", "reason": "quota", "quota": {
            "entries_per_day": 1000, "left_today": 900, "entries": 2600,
            "fits_today": false, "days": 3 } });
        assert_eq!(
            quota_message(&job),
            "this import shares 2600 entries; 900 of today's 1000 are left: use --spread (3 days) or --watch"
        );
        let no_room = serde_json::json!({ "state": "refused", "reason": "quota", "quota": {
            "entries_per_day": 1000, "left_today": 0, "entries": 2600,
            "fits_today": false, "days": u32::MAX } });
        assert_eq!(
            quota_message(&no_room),
            "this import shares 2600 entries and the daily quota leaves no room to share any, even spread: use --watch"
        );
    }
}
