//! `crossmatch observe FILE`: sends observation lines to a running node's API
//! (`POST /v1/observations`) in parts of a bounded number of lines, each part numbered from
//! its first line so refusals name the file's line numbers. A progress bar (bytes of a file, or
//! a running count from stdin) goes to stderr when stderr is a terminal.
//!
//! The API's address, token and TLS files are the analyst commands' (`cli.rs`: `--api` or
//! `CROSSMATCH_API`, the token from `CROSSMATCH_TOKEN` or `--token-file`, never from an
//! argument; plain HTTP to a loopback address only, else `https://`), and so are the exit
//! codes; refused lines exit 2.

use std::io::{self, BufRead, IsTerminal};

use anyhow::Context;
use hyper::Method;
use hyper::body::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Api, CliError};
use crate::hunt::observation::MAX_LINE_BYTES;

/// Lines sent per request by default.
pub const DEFAULT_LINES_PER_REQUEST: usize = 5_000;
/// Refusals printed; the count covers them all.
const MAX_REFUSALS_PRINTED: u64 = 100;

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ObserveTarget {
    /// The node's API, with the token.
    pub api: Api,
    /// Lines per request.
    pub lines_per_request: usize,
}

/// What the node said of the whole file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserveSummary {
    /// Lines read from the file.
    pub lines: u64,
    /// Accepted lines.
    pub accepted: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Refused lines.
    pub refused: u64,
    /// Dropped references.
    pub dropped_references: u64,
}

/// The progress bar: over `total_bytes` when the input's size is known, else a spinner;
/// hidden when stderr is not a terminal.
pub(crate) fn progress_bar(total_bytes: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total_bytes {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {msg}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {bytes} {bytes_per_sec}  {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Sends every line of `input` (`total_bytes` long, when known) to the node; prints refusals on
/// stderr by line number and rule.
pub async fn observe(
    target: &ObserveTarget,
    input: &mut dyn BufRead,
    total_bytes: Option<u64>,
) -> anyhow::Result<ObserveSummary> {
    let mut summary = ObserveSummary::default();
    let bar = progress_bar(total_bytes);
    let mut line = Vec::new();
    loop {
        let first_line = summary.lines + 1;
        let mut body = Vec::new();
        let mut count = 0;
        while count < target.lines_per_request {
            line.clear();
            let read = io::Read::take(&mut *input, MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut line)
                .context("reading the observations")?;
            if read == 0 {
                break;
            }
            bar.inc(read as u64);
            if !line.ends_with(b"\n") && read as u64 == MAX_LINE_BYTES as u64 + 2 {
                // A line past the limit: send what fits (the node refuses it as too long) and
                // skip the rest of it.
                let mut rest = Vec::new();
                let skipped =
                    input.read_until(b'\n', &mut rest).context("reading the observations")?;
                bar.inc(skipped as u64);
                line.push(b'\n');
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            body.extend_from_slice(&line);
            count += 1;
        }
        if count == 0 {
            break;
        }
        summary.lines += count as u64;
        let answer = post(target, first_line, body).await?;
        let number = |key: &str| answer.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        summary.accepted += number("accepted");
        summary.duplicates += number("duplicates");
        summary.dropped_references += number("dropped_references");
        for refusal in answer.get("refused").and_then(|r| r.as_array()).into_iter().flatten() {
            if summary.refused < MAX_REFUSALS_PRINTED {
                let at = refusal.get("line").and_then(serde_json::Value::as_u64).unwrap_or(0);
                let message = refusal.get("message").and_then(|m| m.as_str()).unwrap_or("refused");
                bar.suspend(|| eprintln!("line {at}: {message}"));
            }
            summary.refused += 1;
        }
        bar.set_message(format!(
            "{} lines: {} accepted, {} duplicates, {} refused",
            summary.lines, summary.accepted, summary.duplicates, summary.refused
        ));
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// One request; the answer's JSON, or the node's refusal (a [`CliError`] with its exit code).
async fn post(
    target: &ObserveTarget,
    first_line: u64,
    body: Vec<u8>,
) -> anyhow::Result<serde_json::Value> {
    let answer = target
        .api
        .call_with(
            Method::POST,
            &format!("/v1/observations?first_line={first_line}"),
            Some(("application/x-ndjson", Bytes::from(body))),
        )
        .await
        .map_err(|error| CliError {
            message: format!("the node refused lines from {first_line} on: {}", error.message),
            ..error
        })?;
    Ok(answer.json()?)
}
