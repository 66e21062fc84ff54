//! `crossmatch records add | get | rm | status`. `add` reads its records from stdin or a file,
//! never from arguments: JSON objects or JSON lines of `POST /v1/records` bodies, or, with
//! `--kind`, one identifier a line, each its own record. Each record is one request; a refusal
//! is reported by its line and the API's error code, never by its content, and the others go
//! on.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::input::read_input;
use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, ApiArgs, CliError, Exit};

/// Largest input `records add` reads.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// `crossmatch records …`.
#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Add records read from stdin or --file (never from arguments): JSON objects or JSON lines
    /// of `POST /v1/records` bodies (docs/API.md), or with --kind one identifier a line, each
    /// its own record. Prints each new record's id by its line; refusals go to stderr by line
    /// and error code (exit 2).
    Add(AddArgs),
    /// Print one record with its canonical identifiers (an audited read).
    Get {
        /// The record's id.
        id: u64,
    },
    /// Remove a record; its shared tokens held by no other shared record are retracted.
    Rm {
        /// The record's id.
        id: u64,
        /// Why: no_longer_held (default) or erroneous.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set a record's status: referred, ordered, removed or reinstated.
    Status {
        /// The record's id.
        id: u64,
        /// referred, ordered, removed or reinstated.
        status: String,
        /// When it took effect (Unix ms; default now).
        #[arg(long)]
        at_ms: Option<u64>,
    },
}

/// `crossmatch records add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The input file; `-` (the default) reads stdin.
    #[arg(long, default_value = "-")]
    pub file: PathBuf,
    /// Read one identifier a line, of this kind (account, account_id, email, phone, url,
    /// domain), each line its own record with the options below.
    #[arg(long, requires_all = ["category", "handling", "evaluation", "expires_in_days"])]
    pub kind: Option<String>,
    /// The platform of accounts and account ids.
    #[arg(long, requires = "kind")]
    pub platform: Option<String>,
    /// The region of national-format phone numbers (FR).
    #[arg(long, requires = "kind")]
    pub region: Option<String>,
    /// The records' category (terrorism/propaganda).
    #[arg(long, requires = "kind")]
    pub category: Option<String>,
    /// The handling code (H1, H2, H3).
    #[arg(long, requires = "kind")]
    pub handling: Option<String>,
    /// The evaluation (B2).
    #[arg(long, requires = "kind")]
    pub evaluation: Option<String>,
    /// Days until the records expire.
    #[arg(long, requires = "kind")]
    pub expires_in_days: Option<u64>,
    /// Watch only: match locally, never publish.
    #[arg(long, requires = "kind")]
    pub no_share: bool,
    /// From a bulk import of old lists (kept out of the takedown clock's budget).
    #[arg(long, requires = "kind")]
    pub backlog: bool,
}

/// Runs a `records` command.
pub(super) async fn run(command: RecordsCommand, args: &ApiArgs) -> Result<Exit, CliError> {
    let api = Api::connect(args)?;
    match command {
        RecordsCommand::Add(add) => add_records(&api, &add).await,
        RecordsCommand::Get { id } => {
            let record = api.call(Method::GET, &format!("/v1/records/{id}"), None).await?.json()?;
            if api.json {
                print_json_line(&record);
            } else {
                print_record(&record);
            }
            Ok(Exit::Ok)
        }
        RecordsCommand::Rm { id, reason } => {
            let query = match &reason {
                Some(reason) if reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                    format!("?reason={reason}")
                }
                Some(_) => return Err(CliError::new(Exit::Usage, "unknown --reason")),
                None => String::new(),
            };
            api.call(Method::DELETE, &format!("/v1/records/{id}{query}"), None).await?;
            say(&api, json!({ "removed": id }), &format!("record {id} removed"));
            Ok(Exit::Ok)
        }
        RecordsCommand::Status { id, status, at_ms } => {
            let mut body = json!({ "status": status });
            if let Some(at_ms) = at_ms {
                body["at_ms"] = json!(at_ms);
            }
            api.call(Method::POST, &format!("/v1/records/{id}/status"), Some(body)).await?;
            say(&api, json!({ "id": id, "status": status }), &format!("record {id}: {status}"));
            Ok(Exit::Ok)
        }
    }
}

/// Prints a confirmation: JSON or a sentence.
fn say(api: &Api, json: Value, text: &str) {
    if api.json {
        print_json_line(&json);
    } else {
        println!("{text}");
    }
}

/// A record for people: its fields, then its identifiers.
fn print_record(record: &Value) {
    let mut fields = Table::new(&["FIELD", "VALUE"]);
    for (name, value) in [
        ("id", cell(&record["id"])),
        ("category", cell(&record["category"])),
        ("handling", cell(&record["handling"])),
        ("evaluation", cell(&record["evaluation"])),
        ("shared", cell(&record["shared"])),
        ("backlog", cell(&record["backlog"])),
        ("created", time_cell(&record["created_at_ms"])),
        ("created by", cell(&record["created_by"])),
        ("expires", time_cell(&record["expires_at_ms"])),
        ("notes", cell(&record["notes"])),
    ] {
        fields.row(vec![name.into(), value]);
    }
    print_table(&fields);
    println!();
    let mut identifiers = Table::new(&["IDENTIFIER", "TOKEN", "EPOCH"]);
    for identifier in record["identifiers"].as_array().into_iter().flatten() {
        identifiers.row(vec![
            cell(&identifier["canonical"]),
            cell(&identifier["token_short"]),
            cell(&identifier["epoch"]),
        ]);
    }
    print_table(&identifiers);
}

/// One record to send, or why it cannot be sent, by its first line.
type Parsed = (u64, Result<Value, String>);

/// The records of a JSON input: a stream of JSON values (objects, pretty or one a line); if the
/// whole input is not one, each non-blank line on its own (so one bad line of JSON lines is
/// refused alone). Messages never quote the input.
pub fn parse_json_records(bytes: &[u8]) -> Vec<Parsed> {
    let line_at = |offset: usize| 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut records = Vec::new();
    let mut whole = true;
    loop {
        let before = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let start =
                    before + bytes[before..].iter().take_while(|b| b.is_ascii_whitespace()).count();
                records.push((line_at(start) as u64, object(value)));
            }
            Some(Err(_)) => {
                whole = false;
                break;
            }
        }
    }
    if whole {
        return records;
    }
    let mut records = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = serde_json::from_slice::<Value>(line).map_err(|error| {
            format!(
                "invalid_json: malformed JSON at column {} ({:?})",
                error.column(),
                error.classify()
            )
        });
        records.push((index as u64 + 1, parsed.and_then(object)));
    }
    records
}

fn object(value: Value) -> Result<Value, String> {
    if value.is_object() { Ok(value) } else { Err("invalid_json: not a JSON object".into()) }
}

/// The records of a `--kind` input: one identifier a line, each its own record.
fn identifier_records(bytes: &[u8], add: &AddArgs) -> Vec<Parsed> {
    let mut records = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = index as u64 + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            records.push((number, Err("invalid_input: the line is not UTF-8".into())));
            continue;
        };
        let value = line.trim();
        if value.is_empty() {
            continue;
        }
        let mut identifier = json!({ "kind": add.kind, "value": value });
        if let Some(platform) = &add.platform {
            identifier["platform"] = json!(platform);
        }
        if let Some(region) = &add.region {
            identifier["region"] = json!(region);
        }
        let record = json!({
            "identifiers": [identifier],
            "category": add.category,
            "handling": add.handling,
            "evaluation": add.evaluation,
            "expires_in_days": add.expires_in_days,
            "share": !add.no_share,
            "backlog": add.backlog,
        });
        records.push((number, Ok(record)));
    }
    records
}

/// `records add`: one request per record, in order. A refused record is reported and the next
/// one sent; a failure that is not the record's (authentication, the node down) stops at once
/// with its own exit code, after saying how far it got.
async fn add_records(api: &Api, add: &AddArgs) -> Result<Exit, CliError> {
    let bytes = read_input(&add.file, MAX_INPUT_BYTES)?;
    let records = if add.kind.is_some() {
        identifier_records(&bytes, add)
    } else {
        parse_json_records(&bytes)
    };
    drop(bytes);
    let (mut added, mut refused) = (0u64, 0u64);
    for (line, record) in records {
        let outcome = match record {
            Ok(record) => api.call(Method::POST, "/v1/records", Some(record)).await,
            Err(message) => Err(CliError::new(Exit::Usage, message)),
        };
        match outcome {
            Ok(answer) => {
                let id = answer.json()?["id"].clone();
                added += 1;
                say(api, json!({ "line": line, "id": id }), &format!("line {line}: record {id}"));
            }
            Err(error) if error.exit == Exit::Usage => {
                refused += 1;
                match &error.code {
                    Some(code) => eprintln!("line {line}: refused: {code}: {}", error.message),
                    None => eprintln!("line {line}: refused: {}", error.message),
                }
            }
            Err(error) => {
                eprintln!("{added} records added, {refused} refused before this failure");
                return Err(CliError {
                    message: format!("line {line}: {}", error.message),
                    ..error
                });
            }
        }
    }
    if !api.json {
        println!("{added} records added, {refused} refused");
    }
    Ok(if refused == 0 { Exit::Ok } else { Exit::Usage })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_are_numbered_by_their_first_line() {
        let input = b"{\"a\":1}\n\n{\n  \"b\": 2\n}\n{\"c\":3}";
        let lines: Vec<u64> = parse_json_records(input).iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![1, 3, 6]);
    }

    #[test]
    fn a_bad_line_of_json_lines_is_refused_alone_and_never_quoted() {
        let input = b"{\"a\":1}\n{\"secret_handle\n[1]\n{\"b\":2}\n";
        let records = parse_json_records(input);
        assert_eq!(records.len(), 4);
        assert!(records[0].1.is_ok() && records[3].1.is_ok());
        assert_eq!(records[3].0, 4);
        for (_, refused) in &records[1..3] {
            let message = refused.as_ref().unwrap_err();
            assert!(message.starts_with("invalid_json"), "{message}");
            assert!(!message.contains("secret_handle"), "{message}");
        }
    }
}
