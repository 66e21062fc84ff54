//! `crossmatch alerts`: every alert (paged through `after_id`), as a table or JSON;
//! `alerts ack ID`; and `alerts --follow` (in `follow`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, ApiArgs, CliError, Exit};

/// Pages read at most (of 1,000 alerts each) before the listing stops with an error.
pub const MAX_ALERT_PAGES: usize = 10_000;

/// `crossmatch alerts`.
#[derive(Debug, Args)]
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

/// Every alert (in a state, changed since a time), page by page.
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
    let mut alerts = Vec::new();
    let mut after_id = 0;
    for _ in 0..MAX_ALERT_PAGES {
        let path = format!("/v1/alerts?after_id={after_id}&limit=1000{filter}");
        let page = api.call(Method::GET, &path, None).await?.json()?;
        alerts.extend(page["alerts"].as_array().cloned().unwrap_or_default());
        match page["next_after_id"].as_u64() {
            Some(next) if next > after_id => after_id = next,
            _ => return Ok(alerts),
        }
    }
    Err(CliError::new(Exit::Failure, "too many pages of alerts"))
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
