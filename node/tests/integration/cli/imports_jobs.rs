//! Imports and the STIX export from the command line (`crossmatch import`, `imports`, `export`),
//! run as the binary against in-process members serving their API: a `;` CSV with mixed
//! identifiers per subject, JSON lines and a STIX bundle round trip with their summaries and exit
//! codes; a dry run writes nothing; importing again changes nothing; refused rows exit 2, listed
//! by line, never echoed; no progress bar off a terminal; the export to a 0600 file, admin only.
//!
//! Needs the import jobs (`POST /v1/imports`, `GET /v1/imports/{id}`); what needs no node's
//! import is in `imports.rs`.

use std::os::unix::fs::PermissionsExt;

use crossmatch_node::test_support::http;
use serde_json::Value;

use super::{ADMIN, ANALYST, LIMIT, analyst, api_url, cli, env_ref, members};

const DEFAULTS: [&str; 8] = [
    "--category",
    "terrorism/propaganda",
    "--handling",
    "H1",
    "--evaluation",
    "B2",
    "--expires-in-days",
    "30",
];

/// Every value the files below hold, none of which may appear in any output.
const VALUES: [&str; 6] = [
    "cli_imp_one",
    "cli_imp_two",
    "imp@cli.example",
    "cli_imp_three",
    "cli_imp_four",
    "bad handle!",
];

fn args<'a>(head: &[&'a str]) -> Vec<&'a str> {
    head.iter().copied().chain(DEFAULTS).collect()
}

async fn record(port: u16, id: u64) -> Option<Value> {
    let path = format!("/v1/records/{id}");
    let reply =
        http::request_off_workers(port, "GET", &path, Some(ANALYST), "application/json", None)
            .await;
    (reply.status == 200).then(|| reply.json())
}

fn no_value_in(text: &str) {
    for value in VALUES {
        assert!(!text.contains(value), "{value} echoed in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_lines_import_from_the_command_line() {
    tokio::time::timeout(LIMIT, async {
        let m = members("imports").await;
        let port = m.ports[0];
        let env = analyst(port);
        let dir = m.root.path().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        // `;` as separator, a byte-order mark, one subject of mixed identifiers.
        let csv = dir.join("leak.csv");
        std::fs::write(
            &csv,
            "\u{feff}kind;platform;value;subject\n\
             account;x;@cli_imp_one;s1\n\
             email;;imp@cli.example;s1\n\
             account;telegram;cli_imp_two;s2\n",
        )
        .unwrap();
        let file = csv.to_str().unwrap();

        let dry = cli(&args(&["import", file, "--share", "--dry-run", "--json"]), &env_ref(&env), "")
            .await;
        assert_eq!(dry.code, Some(0), "{dry:?}");
        assert_eq!(dry.json()["summary"]["added"], 2, "{dry:?}");
        assert!(dry.json()["id"].is_null());
        assert!(record(port, 1).await.is_none(), "a dry run writes nothing");

        let run = cli(&args(&["import", file, "--share"]), &env_ref(&env), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("import 1: done"), "{run:?}");
        assert!(run.stderr.is_empty(), "no bar off a terminal: {:?}", run.stderr);
        no_value_in(&run.stdout);
        let first = record(port, 1).await.expect("the first subject's record");
        assert_eq!(first["identifiers"].as_array().unwrap().len(), 2, "{first}");

        // Importing the same file again changes nothing.
        let again = cli(&args(&["import", file, "--share", "--json"]), &env_ref(&env), "").await;
        assert_eq!(again.code, Some(0), "{again:?}");
        assert_eq!(again.json()["summary"]["present"], 2, "{again:?}");
        assert_eq!(again.json()["summary"]["added"], 0, "{again:?}");

        // JSON lines from stdin, with a source; a refused row exits 2, listed by its line.
        let jsonl = "{\"subject\":\"a\",\"identifiers\":[{\"kind\":\"account\",\"platform\":\"x\",\"value\":\"@cli_imp_three\"}]}\n\
                     {\"subject\":\"b\",\"identifiers\":[{\"kind\":\"account\",\"platform\":\"x\",\"value\":\"bad handle!\"}]}\n";
        let run = cli(
            &args(&["import", "-", "--watch", "--format", "jsonl", "--source", "lines"]),
            &env_ref(&env),
            jsonl,
        )
        .await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stdout.contains("line 2"), "{run:?}");
        no_value_in(&run.stdout);
        no_value_in(&run.stderr);

        // The list, one import shown, and stdin without a source refused before anything is sent.
        let list = cli(&["imports", "--json"], &env_ref(&env), "").await;
        assert_eq!(list.code, Some(0), "{list:?}");
        assert_eq!(list.json()["imports"].as_array().unwrap().len(), 3, "{list:?}");
        let show = cli(&["imports", "show", "1"], &env_ref(&env), "").await;
        assert_eq!(show.code, Some(0), "{show:?}");
        let missing = cli(&["imports", "show", "99"], &env_ref(&env), "").await;
        assert_eq!(missing.code, Some(4), "{missing:?}");
        let unnamed = cli(&args(&["import", "-", "--share"]), &env_ref(&env), "x").await;
        assert_eq!(unnamed.code, Some(2), "{unnamed:?}");

        // Undo: what the import made goes; the file imports again.
        let undo = cli(&["imports", "undo", "1", "--json"], &env_ref(&env), "").await;
        assert_eq!(undo.code, Some(0), "{undo:?}");
        assert_eq!(undo.json()["state"], "undone", "{undo:?}");
        assert!(record(port, 1).await.is_none());
        let back = cli(&args(&["import", file, "--share", "--json"]), &env_ref(&env), "").await;
        assert_eq!(back.json()["summary"]["added"], 2, "{back:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stix_export_imports_again_from_the_command_line() {
    tokio::time::timeout(LIMIT, async {
        let m = members("stix-cli").await;
        let (de, fr) = (m.ports[0], m.ports[1]);
        let dir = m.root.path().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("cells.csv");
        std::fs::write(&csv, "kind,platform,value\naccount,x,@cli_imp_four\n").unwrap();
        let run =
            cli(&args(&["import", csv.to_str().unwrap(), "--share"]), &env_ref(&analyst(de)), "")
                .await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let admin = [("CROSSMATCH_API", api_url(de)), ("CROSSMATCH_TOKEN", ADMIN.to_owned())];
        let out = dir.join("unit.json");
        let out_arg = out.to_str().unwrap();
        // Admin only.
        let refused =
            cli(&["export", "--format", "stix", "--out", out_arg], &env_ref(&analyst(de)), "")
                .await;
        assert_eq!(refused.code, Some(3), "{refused:?}");
        assert!(!out.exists(), "a refused export leaves no file");
        let export =
            cli(&["export", "--format", "stix", "--out", out_arg], &env_ref(&admin), "").await;
        assert_eq!(export.code, Some(0), "{export:?}");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let bundle: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(bundle["type"], "bundle");
        let again =
            cli(&["export", "--format", "stix", "--out", out_arg], &env_ref(&admin), "").await;
        assert_eq!(again.code, Some(2), "never over a file: {again:?}");
        // FR imports DE's bundle as a watch.
        // A bundle carries no category, evaluation or expiry: the import's defaults give them.
        let args = [
            "import",
            out_arg,
            "--watch",
            "--json",
            "--category",
            "terrorism/propaganda",
            "--evaluation",
            "B2",
            "--expires-in-days",
            "30",
        ];
        let run = cli(&args, &env_ref(&analyst(fr)), "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.json()["summary"]["added"], 1, "{run:?}");
        no_value_in(&run.stdout);
    })
    .await
    .expect("test timed out");
}
