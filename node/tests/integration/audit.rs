//! Integration tests of the audit log: appends, reopening, crash repair, every kind of tampering
//! `verify` must catch, and the `crossmatch audit verify` command's exit codes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossmatch_node::audit::{
    self, Action, AuditError, AuditLog, AuditOptions, AuditSubject, AuditUser, FieldError,
    HEAD_FILE_NAME, LOG_FILE_NAME, Problem, SignedHead, VerifyReport,
};
use crossmatch_node::clock::Clock;
use crossmatch_node::test_support::TempDir;
use crossmatch_protocol::{PublicKey, SigningKey};

/// A clock that starts at a fixed instant and advances one second per reading.
#[derive(Debug)]
struct StepClock(AtomicU64);

impl StepClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(1_767_225_600_000)))
    }
}

impl Clock for StepClock {
    fn now_ms(&self) -> u64 {
        self.0.fetch_add(1000, Ordering::Relaxed)
    }
}

/// Where a log in a test directory keeps its two files.
trait AuditFiles {
    fn log(&self) -> PathBuf;
    fn head(&self) -> PathBuf;
}

impl AuditFiles for TempDir {
    fn log(&self) -> PathBuf {
        self.path().join(LOG_FILE_NAME)
    }

    fn head(&self) -> PathBuf {
        self.path().join(HEAD_FILE_NAME)
    }
}

fn key() -> SigningKey {
    SigningKey::from_seed(&[11; 32])
}

fn public_key() -> PublicKey {
    key().public_key()
}

fn options(seal_interval_records: u64) -> AuditOptions {
    AuditOptions { seal_interval_records }
}

fn open(dir: &TempDir) -> AuditLog {
    AuditLog::open(dir.path(), key(), StepClock::new(), options(4)).unwrap()
}

/// Opens a log sealed every 4 records and appends `n` records by alternating users.
fn log_with(dir: &TempDir, n: u64) -> AuditLog {
    let mut log = open(dir);
    for i in 1..=n {
        let user = AuditUser::new(if i % 2 == 0 { "bob" } else { "alice smith" }).unwrap();
        let action = Action::ALL[(i as usize) % Action::ALL.len()];
        log.append(&user, action, &AuditSubject::record(i)).unwrap();
    }
    log
}

fn verify(dir: &TempDir) -> Result<VerifyReport, AuditError> {
    audit::verify(&dir.log(), &dir.head(), &public_key())
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
}

/// Index (0-based) of the line starting with `prefix`, e.g. `"record\t5\t"`.
fn index_of(lines: &[String], prefix: &str) -> usize {
    lines.iter().position(|line| line.starts_with(prefix)).unwrap()
}

fn assert_tampered(result: Result<VerifyReport, AuditError>, line: u64, problem: &Problem) {
    match result {
        Err(AuditError::Tampered { line: found_line, problem: found, .. }) => {
            assert_eq!((found_line, &found), (line, problem));
        }
        other => panic!("expected line {line}: {problem}, got {other:?}"),
    }
}

#[test]
fn appends_verify_and_heads_are_sealed_at_intervals() {
    let dir = TempDir::new("audit-intact");
    let mut log = log_with(&dir, 10);
    assert_eq!((log.last_seq(), log.last_signed_seq()), (10, 8));

    let report = verify(&dir).unwrap();
    assert_eq!(
        report,
        VerifyReport {
            records_checked: 10,
            heads_checked: 3, // genesis, 4, 8
            last_seq: 10,
            last_signed_seq: 8,
            head_file_seq: 8,
            unsealed_records: 2,
        }
    );
    assert!(report.to_string().contains("unsealed records: 2"));

    let head = log.seal().unwrap();
    assert_eq!((head.seq, head.hash), (10, log.last_hash()));
    assert!(head.verify(&public_key()));
    // Sealing again writes nothing new.
    let n_lines = read_lines(&dir.log()).len();
    assert_eq!(log.seal().unwrap(), head);
    assert_eq!(read_lines(&dir.log()).len(), n_lines);

    let report = verify(&dir).unwrap();
    assert_eq!(
        (report.last_signed_seq, report.head_file_seq, report.unsealed_records),
        (10, 10, 0)
    );
}

#[test]
fn the_log_is_readable_text_in_the_documented_layout() {
    let dir = TempDir::new("audit-layout");
    let mut log = open(&dir);
    let record = log.append(
        &AuditUser::new("alice").unwrap(),
        Action::ReadRecord,
        &AuditSubject::record(42),
    );
    let record = record.unwrap();
    let lines = read_lines(&dir.log());
    assert_eq!(lines[0], audit::LOG_HEADER);
    assert!(lines[1].starts_with(&format!("head\t0\t{}\t", "0".repeat(64))), "{}", lines[1]);
    assert_eq!(
        lines[2],
        format!(
            "record\t1\t1767225600000\talice\tread_record\trecord:42\t{}\t{}",
            "0".repeat(64),
            record.hash
        )
    );
    assert_eq!(record.prev, audit::AuditHash::ZERO);
}

#[test]
fn an_edited_field_is_detected() {
    let dir = TempDir::new("audit-edit");
    drop(log_with(&dir, 10));
    let original = read_lines(&dir.log());
    let at = index_of(&original, "record\t4\t");

    for (from, to) in [("\tbob\t", "\tmallory\t"), ("\trecord:4\t", "\trecord:3\t")] {
        let mut lines = original.clone();
        assert!(lines[at].contains(from), "{}", lines[at]);
        lines[at] = lines[at].replace(from, to);
        write_lines(&dir.log(), &lines);
        assert_tampered(verify(&dir), at as u64 + 1, &Problem::HashMismatch);
    }

    // The time, the second field.
    let mut lines = original.clone();
    let fields: Vec<&str> = lines[at].split('\t').collect();
    let edited_time = (fields[2].parse::<u64>().unwrap() + 1).to_string();
    lines[at] = [&fields[..2], &[edited_time.as_str()], &fields[3..]].concat().join("\t");
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 1, &Problem::HashMismatch);

    // A non-canonical spelling of an unchanged value is refused too.
    let mut lines = original;
    lines[at] = lines[at].replacen("record\t4\t", "record\t04\t", 1);
    write_lines(&dir.log(), &lines);
    assert!(matches!(
        verify(&dir),
        Err(AuditError::Tampered { problem: Problem::BadField { field: "seq", .. }, .. })
    ));
}

#[test]
fn a_removed_record_is_detected() {
    let dir = TempDir::new("audit-remove");
    drop(log_with(&dir, 10));
    let mut lines = read_lines(&dir.log());
    let at = index_of(&lines, "record\t6\t");
    lines.remove(at);
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 1, &Problem::SeqMismatch { expected: 6, found: 7 });
}

#[test]
fn a_removed_and_renumbered_record_is_detected() {
    let dir = TempDir::new("audit-renumber");
    drop(log_with(&dir, 10));
    let mut lines = read_lines(&dir.log());
    let at = index_of(&lines, "record\t6\t");
    lines.remove(at);
    // Renumbering the next record breaks its hash.
    lines[at] = lines[at].replacen("record\t7\t", "record\t6\t", 1);
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 1, &Problem::HashMismatch);
}

#[test]
fn reordered_records_are_detected() {
    let dir = TempDir::new("audit-swap");
    drop(log_with(&dir, 10));
    let mut lines = read_lines(&dir.log());
    let at = index_of(&lines, "record\t5\t");
    lines.swap(at, at + 1);
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 1, &Problem::SeqMismatch { expected: 5, found: 6 });
}

#[test]
fn a_duplicated_record_is_detected() {
    let dir = TempDir::new("audit-duplicate");
    drop(log_with(&dir, 3));
    let mut lines = read_lines(&dir.log());
    let at = index_of(&lines, "record\t2\t");
    lines.insert(at + 1, lines[at].clone());
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 2, &Problem::SeqMismatch { expected: 3, found: 2 });
}

#[test]
fn truncation_before_the_last_head_is_detected() {
    let dir = TempDir::new("audit-truncate");
    drop(log_with(&dir, 10));
    let lines = read_lines(&dir.log());

    // Cut at a line boundary, just before the head at seq 8 (and the records after it).
    let at = index_of(&lines, "head\t8\t");
    write_lines(&dir.log(), &lines[..at - 1]);
    let error = verify(&dir).unwrap_err();
    assert!(matches!(error, AuditError::Truncated { last_seq: 7, head_seq: 8, .. }), "{error:?}");
    assert!(error.is_tampering());
    assert!(error.to_string().contains("records were removed from its end"), "{error}");

    // The node refuses to resume a truncated log.
    let reopened = AuditLog::open(dir.path(), key(), StepClock::new(), options(4));
    assert!(matches!(reopened, Err(AuditError::Truncated { .. })), "{reopened:?}");

    // Cut in the middle of a line: truncation is still what is reported.
    let mut bytes = fs::read(dir.log()).unwrap();
    bytes.truncate(bytes.len() - 10);
    fs::write(dir.log(), &bytes).unwrap();
    assert!(matches!(verify(&dir), Err(AuditError::Truncated { .. })));
    // Refusing to open it leaves the evidence as it was: the partial line is not cut off.
    let reopened = AuditLog::open(dir.path(), key(), StepClock::new(), options(4));
    assert!(matches!(reopened, Err(AuditError::Truncated { .. })), "{reopened:?}");
    assert_eq!(fs::read(dir.log()).unwrap(), bytes);

    // An emptied log, too.
    fs::write(dir.log(), b"").unwrap();
    assert!(matches!(verify(&dir), Err(AuditError::Truncated { last_seq: 0, .. })));
}

#[test]
fn a_log_rewritten_under_its_head_is_detected() {
    // Another log of the same length, signed by the same key, cannot replace this one.
    let dir = TempDir::new("audit-rewrite");
    let other = TempDir::new("audit-rewrite-other");
    drop(log_with(&dir, 8));
    let mut log = AuditLog::open(other.path(), key(), StepClock::new(), options(4)).unwrap();
    for i in 1..=8 {
        log.append(&AuditUser::new("eve").unwrap(), Action::Export, &AuditSubject::record(i))
            .unwrap();
    }
    drop(log);
    fs::copy(other.log(), dir.log()).unwrap();
    let error = verify(&dir).unwrap_err();
    assert!(matches!(error, AuditError::HeadMismatch { seq: 8, .. }), "{error:?}");
}

#[test]
fn a_forged_head_is_detected() {
    let dir = TempDir::new("audit-forge");
    drop(log_with(&dir, 6));
    let original = read_lines(&dir.log());
    let at = index_of(&original, "head\t4\t");

    // An altered signature.
    let mut lines = original.clone();
    let last = lines[at].pop().unwrap();
    lines[at].push(if last == '0' { '1' } else { '0' });
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 1, &Problem::BadSignature);

    // A well-formed head signed by another key.
    let mut lines = original.clone();
    let fields: Vec<&str> = lines[at].split('\t').collect();
    let mut hash = [0u8; 32];
    hex::decode_to_slice(fields[2], &mut hash).unwrap();
    let hash = audit::AuditHash(hash);
    let forged = SignedHead::sign(&SigningKey::from_seed(&[12; 32]), 4, hash);
    lines[at] = format!("head\t4\t{}\t{}", forged.hash, hex::encode(forged.signature));
    write_lines(&dir.log(), &lines);
    assert_tampered(verify(&dir), at as u64 + 1, &Problem::BadSignature);

    // A head file signed by another key.
    write_lines(&dir.log(), &original);
    fs::write(dir.head(), format!("head\t4\t{}\t{}\n", forged.hash, hex::encode(forged.signature)))
        .unwrap();
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(error, AuditError::BadHeadFile { problem: Problem::BadSignature, .. }),
        "{error:?}"
    );
    assert!(error.is_tampering());

    // The right files checked against the wrong public key.
    let fresh = TempDir::new("audit-forge-wrong-key");
    drop(log_with(&fresh, 2));
    let wrong_key = SigningKey::from_seed(&[13; 32]).public_key();
    let result = audit::verify(&fresh.log(), &fresh.head(), &wrong_key);
    assert!(matches!(result, Err(AuditError::BadHeadFile { .. })), "{result:?}");
}

#[test]
fn a_torn_last_line_is_detected_then_repaired_on_reopen() {
    let dir = TempDir::new("audit-torn");
    drop(log_with(&dir, 5));
    let mut bytes = fs::read(dir.log()).unwrap();
    let torn = b"record\t6\t1767225605000\tbob\tsha";
    bytes.extend_from_slice(torn);
    fs::write(dir.log(), &bytes).unwrap();
    let n_lines = read_lines(&dir.log()).len() as u64;
    assert_tampered(verify(&dir), n_lines, &Problem::TornLine);

    let mut log = open(&dir);
    assert_eq!(log.torn_bytes_repaired(), Some(torn.len() as u64));
    assert_eq!(log.last_seq(), 6);
    let lines = read_lines(&dir.log());
    let repair = lines.last().unwrap();
    assert!(repair.contains(&format!("\t*node\trepair\ttorn-tail:{}\t", torn.len())), "{repair}");
    log.append(&AuditUser::new("bob").unwrap(), Action::Share, &AuditSubject::none()).unwrap();
    assert_eq!(verify(&dir).unwrap().records_checked, 7);
}

#[test]
fn a_torn_head_line_is_repaired_and_the_head_file_still_matches() {
    let dir = TempDir::new("audit-torn-head");
    drop(log_with(&dir, 4)); // ends with the head at seq 4
    let mut bytes = fs::read(dir.log()).unwrap();
    bytes.truncate(bytes.len() - 20); // the head file already holds seq 4: tear the log's line
    fs::write(dir.log(), &bytes).unwrap();
    // The head file's record is still there, so this is a torn line, not truncation.
    assert!(matches!(verify(&dir), Err(AuditError::Tampered { problem: Problem::TornLine, .. })));
    let log = open(&dir);
    assert_eq!(log.last_seq(), 5); // the repair record
    drop(log);
    verify(&dir).unwrap();
}

#[test]
fn reopening_resumes_the_chain() {
    let dir = TempDir::new("audit-reopen");
    let log = log_with(&dir, 6);
    let (last_seq, last_hash) = (log.last_seq(), log.last_hash());
    drop(log);

    let mut log = open(&dir);
    assert_eq!((log.last_seq(), log.last_hash(), log.last_signed_seq()), (last_seq, last_hash, 4));
    assert_eq!(log.torn_bytes_repaired(), None);
    let record = log
        .append(&AuditUser::new("carol").unwrap(), Action::Watch, &AuditSubject::none())
        .unwrap();
    assert_eq!((record.seq, record.prev), (7, last_hash));
    // Sealing resumes on schedule: 8 is 4 after the last head.
    log.append(&AuditUser::new("carol").unwrap(), Action::Unwatch, &AuditSubject::none()).unwrap();
    assert_eq!(log.last_signed_seq(), 8);
    drop(log);

    // Reopening an unchanged log adds nothing.
    let before = fs::read(dir.log()).unwrap();
    drop(open(&dir));
    assert_eq!(fs::read(dir.log()).unwrap(), before);

    let report = verify(&dir).unwrap();
    assert_eq!((report.records_checked, report.last_signed_seq), (8, 8));
}

#[test]
fn a_missing_head_file_is_resealed_and_recorded() {
    let dir = TempDir::new("audit-no-head");
    drop(log_with(&dir, 5));
    fs::remove_file(dir.head()).unwrap();
    let log = open(&dir);
    assert_eq!((log.last_seq(), log.last_signed_seq()), (6, 6));
    drop(log);
    let lines = read_lines(&dir.log());
    assert!(lines[lines.len() - 2].contains("\t*node\trepair\thead-file-missing\t"));
    verify(&dir).unwrap();
}

#[test]
fn a_new_log_is_sealed_at_seq_zero() {
    let dir = TempDir::new("audit-empty");
    drop(open(&dir));
    let report = verify(&dir).unwrap();
    assert_eq!((report.records_checked, report.heads_checked, report.last_signed_seq), (0, 1, 0));
}

#[test]
fn invalid_users_and_subjects_are_refused_with_a_clear_error() {
    let cases = [
        ("", FieldError::Empty),
        ("tab\there", FieldError::Forbidden { index: 3, allowed: "" }),
        ("line\nbreak", FieldError::Forbidden { index: 4, allowed: "" }),
        ("bell\u{7}", FieldError::Forbidden { index: 4, allowed: "" }),
        (" padded", FieldError::EdgeSpace),
        ("*node", FieldError::Reserved),
    ];
    for (name, expected) in cases {
        match AuditUser::new(name) {
            Err(AuditError::InvalidUser(error)) => {
                assert_eq!(std::mem::discriminant(&error), std::mem::discriminant(&expected));
                assert!(!error.to_string().is_empty());
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let long = "a".repeat(65);
    let error = AuditUser::new(&long).unwrap_err();
    assert_eq!(error.to_string(), "invalid audit user: 65 bytes, more than the maximum of 64");
    assert!(AuditUser::new("Åsa Öberg").is_ok());

    for subject in ["someone@example.org", "+33612345678", "https://x.example/a", "a b", ""] {
        let error = AuditSubject::new(subject).unwrap_err();
        assert!(matches!(error, AuditError::InvalidSubject(_)), "{subject:?}");
        // The message says what is accepted and never repeats the refused text.
        let message = error.to_string();
        assert!(!subject.is_empty() || message.contains("empty"), "{message}");
        if !subject.is_empty() {
            assert!(message.contains("accepted: ASCII letters, digits"), "{message}");
            assert!(!message.contains(subject), "{message}");
        }
    }
    assert!(AuditSubject::new("record:42").is_ok());
    assert!(AuditSubject::new("token:1a2b3c4d").is_ok());

    let error = AuditLog::open(&std::env::temp_dir(), key(), StepClock::new(), options(0));
    assert!(matches!(error, Err(AuditError::InvalidOptions(_))), "{error:?}");
}

#[test]
fn action_names_round_trip() {
    for action in Action::ALL {
        assert_eq!(action.name().parse::<Action>().unwrap(), action);
    }
    assert!("delete".parse::<Action>().is_err());
}

#[test]
fn the_verify_command_exits_0_when_intact_1_when_tampered_2_on_bad_usage() {
    let dir = TempDir::new("audit-cli");
    drop(log_with(&dir, 5));
    let run = |public_key: &str| {
        Command::new(env!("CARGO_BIN_EXE_crossmatch"))
            .args(["audit", "verify", "--log"])
            .arg(dir.log())
            .arg("--head")
            .arg(dir.head())
            .args(["--public-key", public_key])
            .output()
            .unwrap()
    };
    let key = public_key().to_string();

    let output = run(&key);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("audit log intact"));

    let output = run("not-a-key");
    assert_eq!(output.status.code(), Some(2), "{output:?}");

    let mut lines = read_lines(&dir.log());
    let at = index_of(&lines, "record\t2\t");
    lines[at] = lines[at].replace("\tbob\t", "\tmallory\t");
    write_lines(&dir.log(), &lines);
    let output = run(&key);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("line {}: record hash does not match", at + 1)), "{stdout}");

    fs::remove_file(dir.head()).unwrap();
    let output = run(&key);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
