//! `crossmatch takedowns`: every local record's takedown clock (`GET /v1/takedowns`, paged
//! through `after`), with the totals, as a table or JSON. Records are named by id and token
//! prefix only, as the API names them.

use clap::Args;
use hyper::Method;
use serde_json::{Value, json};

use super::hunt::Query;
use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, ApiArgs, CliError, Exit};

/// Pages read at most (of 5,000 clocks each) before the listing stops with an error.
pub const MAX_TAKEDOWN_PAGES: usize = 10_000;

/// `crossmatch takedowns`.
#[derive(Debug, Args)]
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
    let mut accounts = Vec::new();
    let mut after: Option<u64> = None;
    for _ in 0..MAX_TAKEDOWN_PAGES {
        let from = after.map(|after| format!("&after={after}")).unwrap_or_default();
        let path = format!("/v1/takedowns?limit=5000{from}{filter}");
        let mut page = api.call(Method::GET, &path, None).await?.json()?;
        if !page.is_object() {
            return Err(CliError::new(
                Exit::Failure,
                "the takedowns answer is not the JSON expected",
            ));
        }
        if let Some(Value::Array(found)) = page.get_mut("accounts").map(Value::take) {
            accounts.extend(found);
        }
        match page["next_after"].as_u64() {
            Some(next) if after.is_none_or(|after| next > after) => after = Some(next),
            _ => {
                page["accounts"] = Value::Array(accounts);
                if api.json {
                    print_json_line(&page);
                } else {
                    print_clocks(&page);
                }
                return Ok(Exit::Ok);
            }
        }
    }
    Err(CliError::new(Exit::Failure, "too many pages of takedown clocks"))
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
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(duration_cell(&json!(3_720_000)), "1h02m");
        assert_eq!(duration_cell(&json!(-900_000)), "-0h15m");
        assert_eq!(duration_cell(&json!(null)), "");
    }
}
