//! `crossmatch alerts`: every alert (paged through `after_id`), as a table or JSON;
//! `alerts ack ID`; and `alerts --follow` (in `follow`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::pages::{Pages, walk};
use super::{Api, ApiArgs, CliError, Exit};

/// Alerts asked for in one page (the API's most).
const ALERTS_PER_PAGE: usize = 1_000;
/// Most alerts listed: past it the listing stops with exit 1 (narrow it with `--state` or
/// `--since-ms`).
pub const MAX_ALERTS: usize = 200_000;
/// Most pages read: the alerts' bound in full pages, and one more for the last.
pub const MAX_ALERT_PAGES: usize = MAX_ALERTS / ALERTS_PER_PAGE + 1;

/// `crossmatch alerts`.
#[derive(Debug, Args)]
#[command(after_help = "Lists at most 200,000 alerts (201 pages of 1,000): past that, or when \
the node names a next page that does not come after the last, it stops with exit 1 and prints \
nothing; narrow it with --state or --since-ms.")]
pub struct AlertsArgs {
    /// `ack ID`; without it, the alerts are listed (or followed).
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
    /// Only alerts in this state: open, updated, closed or reopened.
    #[arg(long)]
    pub state: Option<String>,
    /// Only alerts changed at or after this time (Unix ms).
    #[arg(long)]
    pub since_ms: Option<u64>,
    /// Print JSON lines as alerts change, from the node's live stream, until stopped; resumes
    /// after a dropped connection, and across runs with --cursor-file.
    #[arg(long, conflicts_with_all = ["state", "since_ms"])]
    pub follow: bool,
    /// With --follow: where the last event printed is kept (written atomically after each
    /// line), and read to resume from.
    #[arg(long, requires = "follow")]
    pub cursor_file: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `crossmatch alerts …`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Acknowledge an alert (audited under the token's user).
    Ack {
        /// The alert's id.
        id: u64,
    },
}

/// Runs an `alerts` command.
pub(super) async fn run(args: AlertsArgs) -> Result<Exit, CliError> {
    let api = Api::connect(&args.api)?;
    if let Some(AlertsCommand::Ack { id }) = args.command {
        api.call(Method::POST, &format!("/v1/alerts/{id}/ack"), None).await?;
        if api.json {
            print_json_line(&json!({ "acknowledged": id }));
        } else {
            println!("alert {id} acknowledged");
        }
        return Ok(Exit::Ok);
    }
    if args.follow {
        return super::follow::follow(&api, args.cursor_file.as_deref()).await;
    }
    let alerts = every_alert(&api, args.state.as_deref(), args.since_ms).await?;
    if api.json {
        print_json_line(&json!({ "alerts": alerts }));
    } else {
        print_table(&alert_table(&alerts));
    }
    Ok(Exit::Ok)
}

/// Every alert (in a state, changed since a time), page by page, at most [`MAX_ALERTS`].
pub(super) async fn every_alert(
    api: &Api,
    state: Option<&str>,
    since_ms: Option<u64>,
) -> Result<Vec<Value>, CliError> {
    let mut filter = String::new();
    if let Some(state) = state {
        if !state.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(CliError::new(Exit::Usage, "unknown --state"));
        }
        filter.push_str(&format!("&state={state}"));
    }
    if let Some(since_ms) = since_ms {
        filter.push_str(&format!("&since_ms={since_ms}"));
    }
    let pages = Pages::new("alerts", "alerts", "next_after_id", MAX_ALERT_PAGES, MAX_ALERTS);
    let mut alerts = Vec::new();
    let filter = filter.as_str();
    walk(pages, move |after_id| alert_page(api, after_id, filter), |rows| alerts.extend(rows))
        .await?;
    Ok(alerts)
}

/// Every alert, handed to `each` a page at a time as the pages arrive, with no bound on the
/// total (`alerts --follow`'s resync snapshot prints them as it goes); each page must still
/// move on past the one before.
pub(super) async fn each_alert(api: &Api, each: impl FnMut(Vec<Value>)) -> Result<(), CliError> {
    let pages = Pages::new("alerts", "alerts", "next_after_id", usize::MAX, usize::MAX);
    walk(pages, move |after_id| alert_page(api, after_id, ""), each).await
}

/// One page of `/v1/alerts` after the alert id `after_id`, with `filter`'s query parameters.
async fn alert_page(api: &Api, after_id: u64, filter: &str) -> Result<Value, CliError> {
    let path = format!("/v1/alerts?after_id={after_id}&limit={ALERTS_PER_PAGE}{filter}");
    api.call(Method::GET, &path, None).await?.json()
}

/// Alerts for people: one row each, counterparts by member.
fn alert_table(alerts: &[Value]) -> Table {
    let mut table =
        Table::new(&["ID", "STATE", "ACK", "TOKEN", "RECORDS", "COUNTERPARTS", "UPDATED"]);
    for alert in alerts {
        let records: Vec<String> = alert["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|record| format!("#{}", cell(record)))
            .collect();
        let counterparts: Vec<String> = alert["counterparts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|counterpart| {
                let member = cell(&counterpart["member"]);
                let member = if member.is_empty() { "?".to_owned() } else { member };
                format!("{member} ({})", cell(&counterpart["contact"]))
            })
            .collect();
        table.row(vec![
            cell(&alert["id"]),
            cell(&alert["state"]),
            if alert["acknowledged"] == json!(true) { "yes".into() } else { "no".into() },
            cell(&alert["token_short"]),
            records.join(" "),
            counterparts.join(", "),
            time_cell(&alert["updated_at_ms"]),
        ]);
    }
    table
}
