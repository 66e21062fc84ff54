//! Imports and the STIX export from the command line, refused before anything is sent or written:
//! stdin without a source, a missing file, neither or both of `--share` and `--watch`, a source
//! outside the label's characters, an unknown format, a bad `--since`, an export over an
//! existing file (no audit line: the node is not asked) and an export by an analyst (exit 3, no
//! file, no audit line). The jobs themselves are run in `imports_jobs.rs`.

use crossmatch_node::audit;

use super::{ADMIN, analyst, api_url, cli, env_ref, members};

/// The audit lines of DE whose action is `export`.
fn export_lines(log: &std::path::Path) -> usize {
    let log = std::fs::read_to_string(log).unwrap();
    log.lines().filter(|line| line.split('\t').any(|field| field == "export")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_refused_before_the_node_is_asked() {
    tokio::time::timeout(super::LIMIT, async {
        let m = members("imports-usage").await;
        let port = m.ports[0];
        let env = analyst(port);
        let dir = m.root.path().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("leak.csv");
        std::fs::write(&csv, "kind,platform,value\naccount,x,@cli_usage_one\n").unwrap();
        let file = csv.to_str().unwrap();
        let missing = dir.join("missing.csv");
        let refused: [&[&str]; 6] = [
            &["import", "-", "--share"],
            &["import", missing.to_str().unwrap(), "--share"],
            &["import", file],
            &["import", file, "--share", "--watch"],
            &["import", file, "--share", "--source", "a label"],
            &["import", file, "--share", "--format", "xlsx"],
        ];
        for args in refused {
            let run = cli(args, &env_ref(&env), "account,x,@cli_usage_one\n").await;
            assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
            assert!(!run.stderr.contains("cli_usage_one"), "{run:?}");
            assert!(run.stdout.is_empty(), "{run:?}");
        }
        let log = m.fed.data_dir(0).join("audit").join(audit::LOG_FILE_NAME);
        let before = export_lines(&log);
        let admin = [("CROSSMATCH_API", api_url(port)), ("CROSSMATCH_TOKEN", ADMIN.to_owned())];
        // An existing file is never written over: refused before the node is asked.
        let out = dir.join("unit.json");
        std::fs::write(&out, "kept").unwrap();
        let out_arg = out.to_str().unwrap();
        let run =
            cli(&["export", "--format", "stix", "--out", out_arg], &env_ref(&admin), "").await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept");
        for args in [
            &["export", "--format", "csv"][..],
            &["export", "--format", "stix", "--since", "yesterday"],
        ] {
            let run = cli(args, &env_ref(&admin), "").await;
            assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        }
        // An analyst may not export: exit 3, and no file is left.
        let fresh = dir.join("fresh.json");
        let fresh_arg = fresh.to_str().unwrap();
        let run =
            cli(&["export", "--format", "stix", "--out", fresh_arg], &env_ref(&env), "").await;
        assert_eq!(run.code, Some(3), "{run:?}");
        assert!(run.stderr.contains("forbidden"), "{run:?}");
        assert!(!fresh.exists());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left: {left:?}");
        assert_eq!(export_lines(&log), before, "nothing was exported");
    })
    .await
    .expect("test timed out");
}
