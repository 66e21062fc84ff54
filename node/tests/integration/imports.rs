//! Imports as jobs through one member's API, the parts that need no rows: uploads refused by
//! rule, role or size (nothing spooled, no job, no value echoed), jobs taken up again after a
//! restart (a queued job without its file fails `source_missing`, one with its file leaves
//! `queued` and loses its file, a stop's spool leftovers are deleted), the listing's pages and
//! undo's refusals by state. The tests that import rows are in `imports_rows.rs`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossmatch_node::daemon::IMPORTS_DIR;
use crossmatch_node::import::{Defaults, Format, ImportOptions, Overrides};
use crossmatch_node::local::{LocalFederation, wait_until};
use crossmatch_node::store::imports::{ImportJob, JobState};
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN, ANALYST_TOKEN, MONITOR_TOKEN, serve_api,
};
use crossmatch_node::test_support::federation::federation;
use crossmatch_node::test_support::http::{self, Reply};

const LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);
/// A value that must never come back in an answer.
const SECRET_HANDLE: &str = "never_echoed_handle_4711";

fn csv_body() -> Vec<u8> {
    format!("kind;platform;value;subject\naccount;x;{SECRET_HANDLE};s1\n").into_bytes()
}

async fn post(port: u16, path: &str, bearer: Option<&str>, body: Vec<u8>) -> Reply {
    http::request_off_workers(port, "POST", path, bearer, "text/csv", Some(body)).await
}

async fn get(port: u16, path: &str) -> Reply {
    http::request_off_workers(port, "GET", path, Some(ANALYST_TOKEN), "application/json", None)
        .await
}

fn imports_dir(fed: &LocalFederation) -> PathBuf {
    fed.data_dir(0).join(IMPORTS_DIR)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn code(reply: &Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// Sends a request head claiming `length` bytes and a few of them, and reads the answer.
fn claim_length(port: u16, path: &str, length: u64) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ANALYST_TOKEN}\r\n\
         Content-Type: text/csv\r\nContent-Length: {length}\r\n\r\nkind,value\n"
    );
    stream.write_all(head.as_bytes())?;
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_refused_by_rule_role_or_size_leave_nothing() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed) = federation("imports-refused", 1);
        fed.start_all().await.unwrap();
        let (port, _server) = serve_api(fed.node(0).unwrap(), "M0").await;
        let ok = "/v1/imports?format=csv&source=leak&share=false";
        let cases: [(&str, Option<&str>, u16, &str); 10] = [
            (ok, None, 401, "unauthorized"),
            (ok, Some(MONITOR_TOKEN), 403, "forbidden"),
            ("/v1/imports?format=csv&source=leak", Some(ANALYST_TOKEN), 400, "invalid_import"),
            (
                "/v1/imports?format=xlsx&source=leak&share=true",
                Some(ANALYST_TOKEN),
                400,
                "invalid_import",
            ),
            ("/v1/imports?format=csv&share=true", Some(ANALYST_TOKEN), 400, "invalid_import"),
            (
                "/v1/imports?format=csv&source=a/b&share=true",
                Some(ANALYST_TOKEN),
                400,
                "invalid_import",
            ),
            (
                "/v1/imports?format=csv&source=leak&share=true&handling=H9",
                Some(ANALYST_TOKEN),
                400,
                "invalid_import",
            ),
            (
                "/v1/imports?format=csv&source=leak&share=true&override=red",
                Some(ANALYST_TOKEN),
                403,
                "forbidden",
            ),
            (
                "/v1/imports?format=csv&source=leak&share=true&override=green",
                Some(ADMIN_TOKEN),
                400,
                "invalid_import",
            ),
            (
                "/v1/imports?format=csv&source=leak&share=true&colour=red",
                Some(ANALYST_TOKEN),
                400,
                "invalid_query",
            ),
        ];
        for (path, bearer, status, expected) in cases {
            let reply = post(port, path, bearer, csv_body()).await;
            assert_eq!(
                (reply.status, code(&reply).as_str()),
                (status, expected),
                "{path}: {}",
                reply.body
            );
            assert!(!reply.body.contains(SECRET_HANDLE), "{path} echoed the file: {}", reply.body);
        }
        // Neither a format nor a source: refused whether or not the format can be told.
        let reply = post(port, "/v1/imports?share=true", Some(ANALYST_TOKEN), csv_body()).await;
        assert_eq!(
            (reply.status, code(&reply).as_str()),
            (400, "invalid_import"),
            "{}",
            reply.body
        );
        // A body that says it is past the limit is refused before it is read.
        let claimed = crossmatch_node::import::limits::MAX_IMPORT_BYTES + 1;
        let answer = tokio::task::spawn_blocking(move || claim_length(port, ok, claimed))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("too_large"), "{answer}");
        // Nothing spooled is left, and no job was made.
        assert_eq!(files_in(&imports_dir(&fed)), Vec::<String>::new());
        let listing = get(port, "/v1/imports").await;
        assert_eq!(listing.status, 200, "{}", listing.body);
        assert_eq!(listing.json(), serde_json::json!({ "imports": [], "next_after": null }));
        for bad in ["/v1/imports?limit=0", "/v1/imports?limit=501", "/v1/imports?after=x"] {
            let reply = get(port, bad).await;
            assert_eq!((reply.status, code(&reply).as_str()), (400, "invalid_query"), "{bad}");
        }
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

/// A job of `state` as the API would store it.
fn job(state: JobState) -> ImportJob {
    let options = ImportOptions {
        format: Format::Csv,
        source: "leak".into(),
        defaults: Defaults { share: false, ..Defaults::default() },
        overrides: Overrides::default(),
        spread: false,
    };
    ImportJob { state, ..ImportJob::queued(options, "ana".into(), 1, 0) }
}

async fn create(fed: &LocalFederation, state: JobState) -> u64 {
    let job = job(state);
    fed.node(0)
        .unwrap()
        .with_engine(move |engine| engine.create_import(job))
        .await
        .unwrap()
        .unwrap()
}

async fn state_of(port: u16, id: u64) -> (String, Option<String>) {
    let reply = get(port, &format!("/v1/imports/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job = reply.json();
    (job["state"].as_str().unwrap().to_owned(), job["reason"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_left_at_a_stop_are_taken_up_again_at_the_start() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed) = federation("imports-restart", 1);
        fed.start_all().await.unwrap();
        // Stored while the node runs, unknown to its task: as a crash leaves them.
        let with_file = create(&fed, JobState::Queued).await;
        let without_file = create(&fed, JobState::Queued).await;
        let planning = create(&fed, JobState::Planning).await;
        let done = create(&fed, JobState::Done).await;
        assert_eq!((with_file, without_file, planning, done), (1, 2, 3, 4));
        let dir = imports_dir(&fed);
        let file = |id: u64| dir.join(format!("{id}.src"));
        std::fs::write(file(with_file), csv_body()).unwrap();
        std::fs::write(file(planning), csv_body()).unwrap();
        std::fs::write(dir.join("upload-1-0.part"), csv_body()).unwrap();
        fed.stop(0).await.unwrap();
        fed.start(0).await.unwrap();
        let (port, _server) = serve_api(fed.node(0).unwrap(), "M0").await;
        wait_until("the left jobs end", WAIT, || async {
            let mut ended = true;
            for id in [with_file, without_file, planning] {
                let (state, _) = state_of(port, id).await;
                ended &= !["queued", "planning", "applying"].contains(&state.as_str());
            }
            ended
        })
        .await
        .unwrap();
        assert_eq!(
            state_of(port, without_file).await,
            ("failed".to_owned(), Some("source_missing".to_owned()))
        );
        assert_eq!(state_of(port, done).await, ("done".to_owned(), None));
        // Every file is gone: the ended jobs' and the stop's leftover.
        assert_eq!(files_in(&dir), Vec::<String>::new());
        // The listing pages through them in id order.
        let page = get(port, "/v1/imports?limit=3").await.json();
        let ids: Vec<u64> =
            page["imports"].as_array().unwrap().iter().map(|j| j["id"].as_u64().unwrap()).collect();
        assert_eq!((ids, page["next_after"].as_u64()), (vec![1, 2, 3], Some(3)));
        let page = get(port, "/v1/imports?after=3&limit=3").await.json();
        let ids: Vec<u64> =
            page["imports"].as_array().unwrap().iter().map(|j| j["id"].as_u64().unwrap()).collect();
        assert_eq!((ids, page["next_after"].as_u64()), (vec![4], None));
        assert_eq!(page["imports"][0]["created_by"], "ana");
        assert_eq!(get(port, "/v1/imports/99").await.status, 404);
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_is_refused_by_state() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed) = federation("imports-undo-refused", 1);
        fed.start_all().await.unwrap();
        let (port, _server) = serve_api(fed.node(0).unwrap(), "M0").await;
        let refused = create(&fed, JobState::Refused).await;
        let queued = create(&fed, JobState::Queued).await;
        let applying = create(&fed, JobState::Applying).await;
        let undone = create(&fed, JobState::Undone).await;
        let cases = [
            (refused, 409, "not_undoable"),
            (queued, 409, "import_running"),
            (applying, 409, "import_running"),
            (undone, 409, "not_undoable"),
            (99, 404, "not_found"),
        ];
        for (id, status, expected) in cases {
            let path = format!("/v1/imports/{id}/undo");
            let reply = post(port, &path, Some(ANALYST_TOKEN), Vec::new()).await;
            assert_eq!((reply.status, code(&reply).as_str()), (status, expected), "{path}");
        }
        let reply = post(port, "/v1/imports/1/undo", Some(MONITOR_TOKEN), Vec::new()).await;
        assert_eq!(reply.status, 403);
        // Nothing changed state.
        assert_eq!(state_of(port, refused).await.0, "refused");
        assert_eq!(state_of(port, undone).await.0, "undone");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_runs_to_its_end_when_its_request_is_dropped_and_stray_jobs_are_taken_up() {
    tokio::time::timeout(LIMIT, async {
        let (_dir, mut fed) = federation("imports-undo-dropped", 1);
        fed.start_all().await.unwrap();
        let (port, _server) = serve_api(fed.node(0).unwrap(), "M0").await;
        let done = create(&fed, JobState::Done).await;
        // Stored `undoing` while the task knows nothing of it: what a request dropped between
        // the undo's audit line and the task's wake-up used to leave.
        let stray = create(&fed, JobState::Undoing).await;
        let node = fed.node(0).unwrap().clone();
        // Polled once, then dropped, as the request of a client that gave up is.
        let mut undo = Box::pin(node.undo_import(done, false, "ben".into()));
        let polled = futures_util::FutureExt::now_or_never(&mut undo);
        assert!(polled.is_none(), "ended at once");
        drop(undo);
        wait_until("both undos end", WAIT, || async {
            state_of(port, done).await.0 == "undone" && state_of(port, stray).await.0 == "undone"
        })
        .await
        .unwrap();
        // The undo's audit line names who undid it, not who imported ("ana").
        let log = std::fs::read_to_string(
            fed.data_dir(0).join("audit").join(crossmatch_node::audit::LOG_FILE_NAME),
        )
        .unwrap();
        let subject = format!("import:{done}_undo_d0_k0");
        let line = log.lines().find(|line| line.contains(&subject)).expect("the undo's line");
        assert!(line.split('\t').any(|field| field == "ben"), "{line}");
        assert!(!line.split('\t').any(|field| field == "ana"), "{line}");
        fed.stop_all().await.unwrap();
    })
    .await
    .expect("the test timed out");
}
