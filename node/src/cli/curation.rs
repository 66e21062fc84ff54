//! `crossmatch hunt label | pin | merge | split | not-a-target | share`: the analysts' curation
//! through the node's API (`POST /v1/analytics/…`, each audited by the node). What may be
//! sensitive never goes on the command line: a label, its seeds and the accounts split off come
//! from stdin or a file, the account marked "not a target" from stdin only; ids, categories and
//! codes are arguments. Accounts are given one a line in their canonical form; an input that
//! starts with `{` is the API's JSON body. Messages never repeat an input.

use hyper::Method;
use serde_json::{Value, json};

use super::hunt::HuntCommand;
use super::input::read_input;
use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, CliError, Exit};

/// Largest input read for one change (the API takes bodies of at most 64 KiB).
pub const MAX_CHANGE_BYTES: u64 = 64 * 1024;

/// Runs a curation command (`hunt`'s writes).
pub(super) async fn run(api: &Api, command: HuntCommand) -> Result<Exit, CliError> {
    match command {
        HuntCommand::Label { id, file, seeds_from } => {
            let stdin = |path: &std::path::Path| path.as_os_str() == "-";
            if seeds_from.as_deref().is_some_and(stdin) && stdin(&file) {
                return Err(CliError::new(
                    Exit::Usage,
                    "the label and the seeds cannot both come from stdin: give the label with \
                     --file",
                ));
            }
            let mut body = match text_or_object(&read_input(&file, MAX_CHANGE_BYTES)?)? {
                Input::Object(body) => body,
                Input::Text(text) => json!({ "label": text.trim() }),
            };
            if let Some(seeds_from) = seeds_from {
                let bytes = read_input(&seeds_from, MAX_CHANGE_BYTES)?;
                let seeds = account_lines(utf8(&bytes)?);
                if seeds.is_empty() {
                    return Err(CliError::new(Exit::Usage, "no seeds in --seeds-from"));
                }
                if body.get("seeds").is_some() {
                    return Err(CliError::new(
                        Exit::Usage,
                        "seeds given twice: in the JSON body and with --seeds-from",
                    ));
                }
                body["seeds"] = json!(seeds);
            }
            let done = post(api, &format!("/v1/analytics/communities/{id}/label"), body).await?;
            say(api, &done, &format!("community {id} labelled"));
        }
        HuntCommand::Pin { id, unpin } => {
            let body = json!({ "pinned": !unpin });
            let done = post(api, &format!("/v1/analytics/communities/{id}/pin"), body).await?;
            let what = if unpin { "unpinned" } else { "pinned" };
            say(api, &done, &format!("community {id} {what}"));
        }
        HuntCommand::Merge { id, with } => {
            let body = json!({ "with": with });
            let done = post(api, &format!("/v1/analytics/communities/{id}/merge"), body).await?;
            say(api, &done, &format!("community {with} merged into {id}"));
        }
        HuntCommand::Split { id, file } => {
            let body = match text_or_object(&read_input(&file, MAX_CHANGE_BYTES)?)? {
                Input::Object(body) => body,
                Input::Text(text) => json!({ "accounts": account_lines(&text) }),
            };
            let done = post(api, &format!("/v1/analytics/communities/{id}/split"), body).await?;
            let new = cell(&done["community"]);
            say(api, &done, &format!("community {id} split: the accounts are now community {new}"));
        }
        HuntCommand::NotATarget { category, remove, platform } => {
            let account = account_from_stdin()?;
            let mut body = json!({ "account": account });
            if let Some(platform) = platform {
                body["platform"] = json!(platform);
            }
            match category {
                Some(category) => body["category"] = json!(category),
                None if remove => body["remove"] = json!(true),
                None => return Err(CliError::new(Exit::Usage, "give --category or --remove")),
            }
            let done = post(api, "/v1/analytics/not-a-target", body).await?;
            let mark = cell(&done["mark_id"]);
            let text = match (remove, mark.is_empty()) {
                (true, true) => "the account had no mark".to_owned(),
                (true, false) => format!("mark {mark} removed"),
                (false, _) => format!("the account is marked not a target (mark {mark})"),
            };
            say(api, &done, &text);
        }
        HuntCommand::Share { id, handling, category, expires_in_days, evaluation, confirm } => {
            let path = format!("/v1/analytics/communities/{id}/share");
            let Some(preview_id) = confirm else {
                let mut body = json!({
                    "preview": true,
                    "handling": handling,
                    "category": category,
                    "expires_in_days": expires_in_days,
                });
                if let Some(evaluation) = evaluation {
                    body["evaluation"] = json!(evaluation);
                }
                let preview = post(api, &path, body).await?;
                if api.json {
                    print_json_line(&preview);
                } else {
                    print_preview(&preview);
                    println!(
                        "nothing shared; to share exactly this, run again with --confirm {}",
                        cell(&preview["preview_id"])
                    );
                }
                return Ok(Exit::Ok);
            };
            let body = json!({ "preview": false, "preview_id": preview_id });
            let shared = post(api, &path, body).await?;
            let text = format!(
                "community {id} shared: snapshot {}, {} accounts",
                cell(&shared["snapshot"]),
                cell(&shared["accounts"])
            );
            say(api, &shared, &text);
        }
        _ => return Err(CliError::new(Exit::Usage, "not a curation command")),
    }
    Ok(Exit::Ok)
}

/// A change's input: the API's JSON body as it is, or plain text.
enum Input {
    Object(Value),
    Text(String),
}

/// An input starting with `{` is a JSON object (the API's body); anything else is text. Empty
/// input, bad JSON and text that is not UTF-8 are refused without quoting them.
fn text_or_object(bytes: &[u8]) -> Result<Input, CliError> {
    let text = utf8(bytes)?;
    if text.trim().is_empty() {
        return Err(CliError::new(Exit::Usage, "the input is empty"));
    }
    if !text.trim_start().starts_with('{') {
        return Ok(Input::Text(text.to_owned()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(object @ Value::Object(_)) => Ok(Input::Object(object)),
        Ok(_) => Err(CliError::new(Exit::Usage, "invalid_json: not a JSON object")),
        Err(error) => Err(CliError::new(
            Exit::Usage,
            format!(
                "invalid_json: malformed JSON at line {} column {}",
                error.line(),
                error.column()
            ),
        )),
    }
}

/// An input as text; one that is not UTF-8 is refused without quoting it.
fn utf8(bytes: &[u8]) -> Result<&str, CliError> {
    std::str::from_utf8(bytes).map_err(|_| CliError::new(Exit::Usage, "the input is not UTF-8"))
}

/// Accounts one a line: each line trimmed, blank lines skipped.
fn account_lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty()).collect()
}

/// The account a mark names: the one non-blank line of stdin (more than one is refused, so a
/// piped list is not taken for its first line).
fn account_from_stdin() -> Result<String, CliError> {
    let bytes = read_input(std::path::Path::new("-"), MAX_CHANGE_BYTES)?;
    let mut accounts = account_lines(utf8(&bytes)?).into_iter();
    let account = accounts
        .next()
        .map(str::to_owned)
        .ok_or_else(|| CliError::new(Exit::Usage, "no account on stdin"))?;
    if accounts.next().is_some() {
        return Err(CliError::new(
            Exit::Usage,
            "one account only on stdin: mark each account with its own command",
        ));
    }
    Ok(account)
}

/// A `POST` with a JSON body, answered with JSON.
async fn post(api: &Api, path: &str, body: Value) -> Result<Value, CliError> {
    api.call(Method::POST, path, Some(body)).await?.json()
}

/// Prints the answer under `--json`, else a sentence (and whether it is applied yet).
fn say(api: &Api, answer: &Value, text: &str) {
    if api.json {
        print_json_line(answer);
    } else if answer["applied"] == Value::Bool(false) {
        println!("{text} (applied at the next recompute)");
    } else {
        println!("{text}");
    }
}

/// A share's preview for people: what would leave.
fn print_preview(preview: &Value) {
    let mut table = Table::new(&["PREVIEW", "VALUE"]);
    for (name, value) in [
        ("community", cell(&preview["community"])),
        ("accounts included", cell(&preview["included"])),
        ("to members", cell(&preview["members"])),
        ("never reviewed", cell(&preview["not_reviewed"])),
        ("below threshold", cell(&preview["below_threshold"])),
        ("mention only", cell(&preview["mention_only"])),
        ("not a target", cell(&preview["not_a_target"])),
        ("withheld", cell(&preview["withheld"])),
        ("min confidence", cell(&preview["min_confidence"])),
        ("handling", cell(&preview["handling"])),
        ("category", cell(&preview["category"])),
        ("evaluation", cell(&preview["evaluation"])),
        ("expires", time_cell(&preview["expires_at_ms"])),
        ("preview id", cell(&preview["preview_id"])),
        ("valid until", time_cell(&preview["valid_until_ms"])),
    ] {
        table.row(vec![name.into(), value]);
    }
    print_table(&table);
    println!("{}", cell(&preview["summary"]));
    println!("{}", cell(&preview["what_members_learn"]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_objects_or_text_and_never_quoted() {
        assert!(matches!(text_or_object(b"  {\"label\": \"a\"}\n"), Ok(Input::Object(_))));
        assert!(matches!(text_or_object(b"red cell\n"), Ok(Input::Text(_))));
        let error = text_or_object(b"{\"label\": \"secret_cell\"").err().unwrap();
        assert_eq!(error.exit, Exit::Usage);
        assert!(!error.message.contains("secret_cell"), "{}", error.message);
        assert!(text_or_object(b" \n").is_err());
        assert!(text_or_object(&[0xff, 0xfe]).is_err());
    }
}
