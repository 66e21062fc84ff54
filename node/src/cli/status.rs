//! `crossmatch status` (`GET /v1/status`), `crossmatch peers` (`GET /v1/peers`) and `crossmatch
//! forks` (`GET /v1/forks`, admin): the node's state, its members as it sees them and the fork
//! evidence it holds, as tables or JSON.

use hyper::Method;

use super::output::{Table, cell, print_json_line, print_table, time_cell};
use super::{Api, ApiArgs, CliError, Exit};

/// `crossmatch status`.
pub(super) async fn status(args: &ApiArgs) -> Result<Exit, CliError> {
    let api = Api::connect(args)?;
    let status = api.call(Method::GET, "/v1/status", None).await?.json()?;
    if api.json {
        print_json_line(&status);
        return Ok(Exit::Ok);
    }
    let own = &status["own_feed"];
    let counters = &status["counters"];
    let mut summary = Table::new(&["NODE", "VALUE"]);
    for (name, value) in [
        ("member", cell(&status["member_id"])),
        ("ready", cell(&status["ready"])),
        ("peers connected", cell(&status["peers"])),
        ("own feed", format!("generation {}, seq {}", cell(&own["generation"]), cell(&own["seq"]))),
        ("outbox", cell(&status["outbox"])),
        ("forks held", cell(&status["forks"])),
        ("bans", cell(&status["bans"])),
        ("batches applied", cell(&counters["applied"])),
        ("batches rejected", cell(&counters["rejected"])),
        ("other federation", cell(&status["roster_mismatches"])),
    ] {
        summary.row(vec![name.into(), value]);
    }
    print_table(&summary);
    println!();
    let mut heads = Table::new(&["MEMBER", "GENERATION", "SEQ"]);
    for head in status["heads"].as_array().into_iter().flatten() {
        let member = cell(&head["member"]);
        heads.row(vec![
            if member.is_empty() { "?".into() } else { member },
            cell(&head["generation"]),
            cell(&head["seq"]),
        ]);
    }
    print_table(&heads);
    Ok(Exit::Ok)
}

/// `crossmatch peers`.
pub(super) async fn peers(args: &ApiArgs) -> Result<Exit, CliError> {
    let api = Api::connect(args)?;
    let peers = api.call(Method::GET, "/v1/peers", None).await?.json()?;
    if api.json {
        print_json_line(&peers);
        return Ok(Exit::Ok);
    }
    let mut table = Table::new(&[
        "MEMBER",
        "CONNECTED",
        "BANNED UNTIL",
        "HEAD",
        "SKEW MS",
        "ADDRESSES",
        "CONTACT",
    ]);
    for peer in peers["peers"].as_array().into_iter().flatten() {
        let connected = if peer["this_node"] == serde_json::json!(true) {
            "this node".to_owned()
        } else if peer["connected"] == serde_json::json!(true) {
            "yes".to_owned()
        } else {
            "no".to_owned()
        };
        let head = match peer["head"].as_object() {
            Some(head) => format!(
                "{}/{}",
                cell(head.get("generation").unwrap_or(&serde_json::Value::Null)),
                cell(head.get("seq").unwrap_or(&serde_json::Value::Null))
            ),
            None => String::new(),
        };
        let addresses: Vec<String> =
            peer["addresses"].as_array().into_iter().flatten().map(cell).collect();
        table.row(vec![
            cell(&peer["member"]),
            connected,
            time_cell(&peer["banned_until_ms"]),
            head,
            cell(&peer["clock_skew_ms"]),
            addresses.join(" "),
            cell(&peer["contact"]),
        ]);
    }
    print_table(&table);
    Ok(Exit::Ok)
}

/// `crossmatch forks` (admin): every fork held as evidence.
pub(super) async fn forks(args: &ApiArgs) -> Result<Exit, CliError> {
    let api = Api::connect(args)?;
    let forks = api.call(Method::GET, "/v1/forks", None).await?.json()?;
    if api.json {
        print_json_line(&forks);
        return Ok(Exit::Ok);
    }
    let mut table = Table::new(&["MEMBER", "ORIGIN", "GENERATION", "SEQ", "FOUND"]);
    for fork in forks["forks"].as_array().into_iter().flatten() {
        let member = cell(&fork["member"]);
        let origin: String = cell(&fork["origin"]).chars().take(16).collect();
        table.row(vec![
            if member.is_empty() { "?".into() } else { member },
            origin,
            cell(&fork["generation"]),
            cell(&fork["seq"]),
            time_cell(&fork["found_at_ms"]),
        ]);
    }
    print_table(&table);
    Ok(Exit::Ok)
}
