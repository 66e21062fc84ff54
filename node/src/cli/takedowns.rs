//! `crossmatch takedowns`: every local record's takedown clock (`GET /v1/takedowns`, paged
//! through `after`), with the totals, as a table or JSON. Records are named by id and token
//! prefix only, as the API names them.

use clap::Args;
use hyper::Method;
use serde_json::{Value, json};

use super::hunt::Query;
use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::pages::Pages;
use super::{Api, ApiArgs, CliError, Exit};

/// Clocks asked for in one page (the API's most).
const CLOCKS_PER_PAGE: usize = 5_000;
/// Most clocks listed: past it the listing stops with exit 1 (narrow it with `--state`).
pub const MAX_TAKEDOWN_CLOCKS: usize = 200_000;
/// Most pages read: the clocks' bound in full pages, and one more for the last.
pub const MAX_TAKEDOWN_PAGES: usize = MAX_TAKEDOWN_CLOCKS / CLOCKS_PER_PAGE + 1;

/// `crossmatch takedowns`.
#[derive(Debug, Args)]
#[command(after_help = "Lists at most 200,000 clocks (41 pages of 5,000): past that, or when \
the node names a next page that does not come after the last, it stops with exit 1 and prints \
nothing; narrow it with --state.")]
pub struct TakedownsArgs {
    /// Only clocks in this state: pending, referred, ordered, removed, overdue,
    /// removal_contradicted or reinstated.
    #[arg(long)]
    pub state: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs `takedowns`: every page; under `--json` the last page's answer with every page's
/// clocks in `accounts`.
pub(super) async fn run(args: TakedownsArgs) -> Result<Exit, CliError> {
    let api = Api::connect(&args.api)?;
    let mut query = Query::default();
    query.word("state", args.state.as_deref())?;
    let filter = query.text().replace('?', "&");
    let mut pages =
        Pages::new("clocks", "accounts", "next_after", MAX_TAKEDOWN_PAGES, MAX_TAKEDOWN_CLOCKS);
    loop {
        let path = format!("/v1/takedowns?limit={CLOCKS_PER_PAGE}&after={}{filter}", pages.after());
        let mut page = api.call(Method::GET, &path, None).await?.json()?;
        if !pages.take(&mut page)? {
            page["accounts"] = Value::Array(pages.into_rows());
            if api.json {
                print_json_line(&page);
            } else {
                print_clocks(&page);
            }
            return Ok(Exit::Ok);
        }
    }
}

/// Milliseconds as `1h02m`, `-0h15m` past a deadline; empty for `null`.
fn duration_cell(value: &Value) -> String {
    let Some(ms) = value.as_i64() else { return cell(value) };
    let minutes = ms.unsigned_abs() / 60_000;
    let sign = if ms < 0 { "-" } else { "" };
    format!("{sign}{}h{:02}m", minutes / 60, minutes % 60)
}

/// The clocks, then the totals.
fn print_clocks(answer: &Value) {
    let mut table = Table::new(&[
        "RECORD",
        "TOKEN",
        "STATE",
        "OVERDUE",
        "DEADLINE",
        "LEFT",
        "REMOVED BY",
        "TO REMOVAL",
    ]);
    for clock in answer["accounts"].as_array().into_iter().flatten() {
        let backlog = clock["backlog"] == json!(true);
        table.row(vec![
            cell(&clock["record"]),
            cell(&clock["token_short"]),
            if backlog {
                format!("{} (backlog)", cell(&clock["state"]))
            } else {
                cell(&clock["state"])
            },
            if clock["overdue"] == json!(true) { "yes".into() } else { "no".into() },
            time_cell(&clock["deadline_ms"]),
            duration_cell(&clock["budget_left_ms"]),
            cell(&clock["removed_by"]),
            duration_cell(&clock["time_to_removal"]["unit_ms"]),
        ]);
    }
    print_table(&table);
    println!();
    let totals = &answer["totals"];
    let removal = &totals["time_to_removal_unit"];
    let mut summary = Table::new(&["TOTALS", "VALUE"]);
    for (name, value) in [
        ("records", cell(&totals["accounts"])),
        ("overdue", cell(&totals["overdue"])),
        ("backlog", cell(&totals["backlog"])),
        (
            "time to removal (unit)",
            format!(
                "p50 {}, p90 {} over {}",
                duration_cell(&removal["p50_ms"]),
                duration_cell(&removal["p90_ms"]),
                cell(&removal["count"])
            ),
        ),
        (
            "budget",
            duration_cell(&json!(answer["budget"]["budget_secs"].as_i64().map(|s| s * 1000))),
        ),
    ] {
        summary.row(vec![name.into(), value]);
    }
    print_table(&summary);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_says_the_bounds_in_force() {
        use clap::Subcommand;
        let command =
            super::super::ApiCommand::augment_subcommands(clap::Command::new("crossmatch"));
        let help = |name: &str| {
            let mut command = command.find_subcommand(name).unwrap().clone();
            let help = command.render_long_help().to_string();
            help.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let clocks = format!(
            "{},{:03} clocks ({MAX_TAKEDOWN_PAGES} pages",
            MAX_TAKEDOWN_CLOCKS / 1000,
            MAX_TAKEDOWN_CLOCKS % 1000
        );
        assert!(help("takedowns").contains(&clocks), "{}", help("takedowns"));
        use super::super::alerts::{MAX_ALERT_PAGES, MAX_ALERTS};
        let alerts = format!(
            "{},{:03} alerts ({MAX_ALERT_PAGES} pages",
            MAX_ALERTS / 1000,
            MAX_ALERTS % 1000
        );
        assert!(help("alerts").contains(&alerts), "{}", help("alerts"));
        assert!(help("takedowns").contains("exit 1"));
    }

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(duration_cell(&json!(3_720_000)), "1h02m");
        assert_eq!(duration_cell(&json!(-900_000)), "-0h15m");
        assert_eq!(duration_cell(&json!(null)), "");
    }
}
