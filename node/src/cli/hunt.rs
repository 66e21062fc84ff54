//! `crossmatch hunt …`: the hunt's analytics read from the node's API (`/v1/analytics/*`):
//! `accounts` (ranked: activity, influence or the referral queue), `communities [ID]`,
//! `suggestions`, `overlaps` (other members' shared communities) and `successors`, as tables or
//! JSON; `export` (the analytics as a file) is in `export`, the curation's writes (`label`,
//! `pin`, `merge`, `split`, `not-a-target`, `share`) in `curation`. Every read is audited by the
//! node: the answers hold raw handles.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;

use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, ApiArgs, CliError, Exit};

/// `crossmatch hunt`.
#[derive(Debug, Args)]
pub struct HuntArgs {
    /// What to read or change.
    #[command(subcommand)]
    pub command: HuntCommand,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `crossmatch hunt …`.
#[derive(Debug, Subcommand)]
pub enum HuntCommand {
    /// Ranked accounts: by activity (default), influence, or the referral queue (priority).
    Accounts {
        /// activity, influence or priority.
        #[arg(long)]
        sort: Option<String>,
        /// Only accounts of this platform (x).
        #[arg(long)]
        platform: Option<String>,
        /// Only accounts posting in this language (ar).
        #[arg(long)]
        lang: Option<String>,
        /// Only members of this community.
        #[arg(long)]
        community: Option<u64>,
        /// How many (1 to 1000; default 100).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Every community, largest first; or with an id, one community with its members.
    Communities {
        /// A community's id.
        id: Option<u64>,
    },
    /// Accounts strongly linked to a labelled community, not yet records, with evidence.
    Suggestions {
        /// Only for this community.
        #[arg(long)]
        community: Option<u64>,
        /// How many (1 to 500; default 100).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Other members' shared communities that overlap what this node holds or observes.
    Overlaps,
    /// Likely successors of removed accounts.
    Successors,
    /// The latest analytics as a file, with the node's handling mark: GraphML or GEXF (Gephi),
    /// accounts.csv or links.csv (i2), to stdout or --out FILE (written 0600; an existing file
    /// is replaced only with --force). An audited export: the file holds raw handles.
    Export {
        /// graphml, gexf, accounts.csv or links.csv.
        #[arg(long)]
        format: String,
        /// Only this community.
        #[arg(long)]
        community: Option<u64>,
        /// The file to write (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace --out if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Label a community: the label from stdin or --file, as plain text, or as the API's JSON
    /// body (`{"label", "seeds"}`) when the input starts with `{`; the seeds it is anchored to
    /// (default: the community's stable core) from --seeds-from.
    Label {
        /// The community's id.
        id: u64,
        /// The input file; `-` (the default) reads stdin.
        #[arg(long, default_value = "-")]
        file: PathBuf,
        /// A file of the members the label is anchored to, one account a line in its canonical
        /// form (as `hunt accounts` prints it: v1|account|x|handle); `-` reads stdin when the
        /// label comes from --file.
        #[arg(long, value_name = "FILE")]
        seeds_from: Option<PathBuf>,
    },
    /// Pin a community (its id and label kept across recomputes), or --unpin it.
    Pin {
        /// The community's id.
        id: u64,
        /// Unpin, keeping the label.
        #[arg(long)]
        unpin: bool,
    },
    /// Merge community --with into ID: shown as part of ID from now on.
    Merge {
        /// The community that stays.
        id: u64,
        /// The community merged into it.
        #[arg(long)]
        with: u64,
    },
    /// Split accounts off a community: one account a line, in its canonical form (as `hunt
    /// accounts` prints it: v1|account|x|handle), from stdin or --file; or the API's JSON body
    /// (`{"accounts", "label"}`) when the input starts with `{`. Prints the new community's id.
    Split {
        /// The community's id.
        id: u64,
        /// The input file; `-` (the default) reads stdin.
        #[arg(long, default_value = "-")]
        file: PathBuf,
    },
    /// Mark an account "not a target" (or --remove the mark): the account from stdin only, its
    /// first line (a canonical form, or a handle or profile URL with --platform).
    NotATarget {
        /// journalist, official, researcher, counter_speech, victim or other.
        #[arg(long, required_unless_present = "remove")]
        category: Option<String>,
        /// Remove the account's mark.
        #[arg(long, conflicts_with = "category")]
        remove: bool,
        /// The platform of a handle or profile URL.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Share a community with every member: prints the preview (what would leave) and its id;
    /// with --confirm PREVIEW_ID, shares exactly that reviewed preview and nothing else.
    Share {
        /// The community's id.
        id: u64,
        /// The handling code (H1 or H2).
        #[arg(long)]
        handling: String,
        /// The category (terrorism/propaganda).
        #[arg(long)]
        category: String,
        /// Days until the shared accounts expire.
        #[arg(long)]
        expires_in_days: u64,
        /// The evaluation (default X4).
        #[arg(long)]
        evaluation: Option<String>,
        /// Share the preview with this id, as an earlier run printed it (no new preview).
        #[arg(long, value_name = "PREVIEW_ID")]
        confirm: Option<String>,
    },
}

/// Runs a `hunt` command.
pub(super) async fn run(args: HuntArgs) -> Result<Exit, CliError> {
    let api = Api::connect(&args.api)?;
    match args.command {
        HuntCommand::Accounts { sort, platform, lang, community, limit } => {
            let mut query = Query::default();
            query.word("sort", sort.as_deref())?;
            query.word("platform", platform.as_deref())?;
            query.word("lang", lang.as_deref())?;
            query.number("community", community);
            query.number("limit", limit);
            let answer = get(&api, &format!("/v1/analytics/accounts{}", query.text())).await?;
            show(&api, &answer, accounts_table)
        }
        HuntCommand::Communities { id: None } => {
            let answer = get(&api, "/v1/analytics/communities").await?;
            show(&api, &answer, communities_table)
        }
        HuntCommand::Communities { id: Some(id) } => {
            let answer = get(&api, &format!("/v1/analytics/communities/{id}")).await?;
            if api.json {
                print_json_line(&answer);
            } else {
                print_community(&answer);
            }
            Ok(Exit::Ok)
        }
        HuntCommand::Suggestions { community, limit } => {
            let mut query = Query::default();
            query.number("community", community);
            query.number("limit", limit);
            let answer = get(&api, &format!("/v1/analytics/suggestions{}", query.text())).await?;
            show(&api, &answer, suggestions_table)
        }
        HuntCommand::Overlaps => {
            let answer = get(&api, "/v1/analytics/overlaps").await?;
            show(&api, &answer, overlaps_table)
        }
        HuntCommand::Successors => {
            let answer = get(&api, "/v1/analytics/successors").await?;
            show(&api, &answer, successors_table)
        }
        HuntCommand::Export { format, community, out, force } => {
            let request = super::export::ExportRequest { format, community, out, force };
            super::export::run(&api, request).await
        }
        write => super::curation::run(&api, write).await,
    }
}

/// A query string built from options: words checked to be plain (no `&`, `=`, `%`, spaces).
#[derive(Debug, Default)]
pub(super) struct Query(Vec<String>);

impl Query {
    /// Adds `name=value` for a word made of letters, digits, `_`, `-` and `.`.
    pub(super) fn word(&mut self, name: &str, value: Option<&str>) -> Result<(), CliError> {
        let Some(value) = value else { return Ok(()) };
        if value.is_empty()
            || !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(CliError::new(Exit::Usage, format!("invalid --{name}")));
        }
        self.0.push(format!("{name}={value}"));
        Ok(())
    }

    /// Adds `name=value` for a number.
    pub(super) fn number(&mut self, name: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.0.push(format!("{name}={value}"));
        }
    }

    /// `?a=1&b=2`, or nothing.
    pub(super) fn text(&self) -> String {
        if self.0.is_empty() { String::new() } else { format!("?{}", self.0.join("&")) }
    }
}

/// A `GET` answered with JSON.
pub(super) async fn get(api: &Api, path: &str) -> Result<Value, CliError> {
    api.call(Method::GET, path, None).await?.json()
}

/// Prints an answer: as it came under `--json`, else as the table `table` makes of it.
pub(super) fn show(
    api: &Api,
    answer: &Value,
    table: fn(&Value) -> Table,
) -> Result<Exit, CliError> {
    if api.json {
        print_json_line(answer);
    } else {
        print_table(&table(answer));
    }
    Ok(Exit::Ok)
}

/// A number for people: at most 4 decimals, empty for `null`.
pub(super) fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(x) if value.is_f64() => {
            let text = format!("{x:.4}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        _ => cell(value),
    }
}

/// A list of values, space separated.
fn list(value: &Value) -> String {
    value.as_array().into_iter().flatten().map(cell).collect::<Vec<_>>().join(" ")
}

fn rows(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn accounts_table(answer: &Value) -> Table {
    let priority = answer["sort"] == "priority";
    let mut header = vec![
        "ACCOUNT",
        "COMMUNITY",
        "ORIGINALS",
        "POSTS",
        "AMPLIFIERS",
        "PAGERANK",
        "CONFIDENCE",
        "NOT A TARGET",
    ];
    if priority {
        header.push("PRIORITY");
    }
    let mut table = Table::new(&header);
    for account in rows(&answer["accounts"]) {
        let mut row = vec![
            cell(&account["account"]),
            cell(&account["community"]),
            cell(&account["activity"]["originals"]),
            cell(&account["activity"]["posts"]),
            cell(&account["distinct_amplifiers"]),
            number(&account["pagerank"]),
            number(&account["confidence"]),
            cell(&account["not_a_target"]),
        ];
        if priority {
            row.push(number(&account["priority"]["score"]));
        }
        table.row(row);
    }
    table
}

fn community_row(community: &Value) -> Vec<String> {
    vec![
        cell(&community["id"]),
        cell(&community["label"]),
        cell(&community["size"]),
        cell(&community["core_size"]),
        if community["pinned"] == Value::Bool(true) { "yes".into() } else { "no".into() },
        list(&community["merged_ids"]),
        cell(&community["split_from"]),
    ]
}

const COMMUNITY_HEADER: [&str; 7] =
    ["ID", "LABEL", "SIZE", "CORE", "PINNED", "MERGED", "SPLIT FROM"];

fn communities_table(answer: &Value) -> Table {
    let mut table = Table::new(&COMMUNITY_HEADER);
    for community in rows(&answer["communities"]) {
        table.row(community_row(community));
    }
    table
}

/// One community for people: its row, then its members.
fn print_community(community: &Value) {
    let mut table = Table::new(&COMMUNITY_HEADER);
    table.row(community_row(community));
    print_table(&table);
    println!();
    let mut members = Table::new(&["ACCOUNT", "CONFIDENCE", "PAGERANK", "POSTS", "NOT A TARGET"]);
    for member in rows(&community["members"]) {
        members.row(vec![
            cell(&member["account"]),
            number(&member["confidence"]),
            number(&member["pagerank"]),
            cell(&member["posts"]),
            cell(&member["not_a_target"]),
        ]);
    }
    print_table(&members);
}

fn suggestions_table(answer: &Value) -> Table {
    let mut table = Table::new(&["ACCOUNT", "COMMUNITY", "LABEL", "STRENGTH", "EDGES", "POSTS"]);
    for suggestion in rows(&answer["suggestions"]) {
        let posts: Vec<String> = rows(&suggestion["edges"])
            .flat_map(|edge| rows(&edge["posts"]))
            .map(|post| cell(&post["post_id"]))
            .take(5)
            .collect();
        table.row(vec![
            cell(&suggestion["account"]),
            cell(&suggestion["community"]),
            cell(&suggestion["label"]),
            number(&suggestion["strength"]),
            cell(&suggestion["edge_count"]),
            posts.join(" "),
        ]);
    }
    table
}

fn overlaps_table(answer: &Value) -> Table {
    let mut table =
        Table::new(&["MEMBER", "SHARED", "HELD", "OBSERVED", "YOUR COMMUNITIES", "SUMMARY"]);
    for overlap in rows(&answer["overlaps"]) {
        let communities: Vec<String> = rows(&overlap["communities"])
            .map(|c| format!("{} ({})", cell(&c["community"]), cell(&c["accounts"])))
            .collect();
        table.row(vec![
            overlap_member(overlap),
            cell(&overlap["size"]),
            cell(&overlap["held"]),
            cell(&overlap["observed"]),
            communities.join(", "),
            cell(&overlap["summary"]),
        ]);
    }
    table
}

/// Who shared an overlapping snapshot: the member's id, or for a member no longer on the
/// roster the snapshot's pseudonym (the name the API gives it), marked as a former member.
fn overlap_member(overlap: &Value) -> String {
    let member = cell(&overlap["member_id"]);
    let pseudonym = cell(&overlap["pseudonym"]);
    match (member.is_empty(), pseudonym.is_empty()) {
        (false, _) => member,
        (true, false) => format!("{pseudonym} (former member)"),
        (true, true) => "?".into(),
    }
}

fn successors_table(answer: &Value) -> Table {
    let mut table =
        Table::new(&["ACCOUNT", "LIKELY SUCCESSOR OF", "SCORE", "REMOVED", "FIRST SEEN"]);
    for successor in rows(&answer["successors"]) {
        table.row(vec![
            cell(&successor["account"]),
            cell(&successor["likely_successor_of"]),
            number(&successor["score"]),
            time_cell(&successor["removed_at_ms"]),
            time_cell(&successor["first_seen_ms"]),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_take_plain_words_only() {
        let mut query = Query::default();
        query.word("sort", Some("priority")).unwrap();
        query.number("limit", Some(5));
        assert_eq!(query.text(), "?sort=priority&limit=5");
        assert!(query.word("lang", Some("ar&limit=1")).is_err());
        assert!(query.word("lang", Some("")).is_err());
        assert_eq!(Query::default().text(), "");
    }

    #[test]
    fn an_overlap_of_a_former_member_names_its_pseudonym() {
        let answer = json!({"overlaps": [
            {"member_id": "FR", "pseudonym": "7f3a", "size": 3},
            {"member_id": null, "pseudonym": "c0ffee42", "size": 2},
            {"member_id": null, "size": 1},
        ]});
        let text = overlaps_table(&answer).render();
        let members: Vec<&str> =
            text.lines().skip(1).map(|line| line.split("  ").next().unwrap()).collect();
        assert_eq!(members, ["FR", "c0ffee42 (former member)", "?"], "{text}");
        assert!(!text.contains("7f3a"), "a member is named by its id: {text}");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(&json!(0.003_123_9)), "0.0031");
        assert_eq!(number(&json!(0.5)), "0.5");
        assert_eq!(number(&json!(12)), "12");
        assert_eq!(number(&json!(null)), "");
    }
}
