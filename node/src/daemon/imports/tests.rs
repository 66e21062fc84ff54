//! Unit tests of the imports in the node: the room a share needs, the audit subjects, the
//! source labels.

use super::*;

fn planned(share_entries: u64) -> plan::Plan {
    plan::Plan {
        counts: ImportCounts { records: 1, added: 1, share_entries, ..ImportCounts::default() },
        tally: plan::Tally::default(),
        end: ReadEnd::Whole,
    }
}

#[test]
fn a_share_past_today_is_refused_unless_spread_and_a_spread_needs_daily_room() {
    let job = || ImportJob { spread: true, ..subject_job() };
    let own = |entries_per_day, left_today| OwnQuota {
        entries_per_day,
        bytes_per_day: u64::MAX / 2,
        left_today,
        ..OwnQuota::default()
    };
    let mut fits = job();
    settle_plan(&mut fits, planned(10), &own(1_000, 10));
    assert_eq!((fits.state, fits.reason), (JobState::Planning, None));
    let mut spread = job();
    settle_plan(&mut spread, planned(2_000), &own(1_000, 10));
    assert_eq!((spread.state, spread.quota.unwrap().days), (JobState::Planning, 4));
    let mut unspread = ImportJob { spread: false, ..job() };
    settle_plan(&mut unspread, planned(2_000), &own(1_000, 10));
    assert_eq!((unspread.state, unspread.reason.as_deref()), (JobState::Refused, Some("quota")));
    // No room a day: a spread would wait for ever.
    let mut never = job();
    settle_plan(&mut never, planned(11), &own(0, 10));
    assert_eq!((never.state, never.reason.as_deref()), (JobState::Refused, Some("quota")));
    assert_eq!(never.quota.unwrap().days, u32::MAX);
}

fn subject_job() -> ImportJob {
    let options = ImportOptions {
        format: Format::Csv,
        source: "leak".into(),
        defaults: Defaults::default(),
        overrides: Overrides::default(),
        spread: false,
    };
    ImportJob { id: 1, ..ImportJob::queued(options, "ana".into(), 0, 0) }
}

#[test]
fn audit_subjects_carry_counts_and_flags_only() {
    let mut job = ImportJob {
        id: 1_234_567,
        user: "ana".into(),
        created_at_ms: 0,
        updated_at_ms: 0,
        format: Format::Stix,
        source: "leak".into(),
        defaults: Defaults::default(),
        overrides: Overrides { red: true, amber_strict: false, unmarked: true },
        spread: true,
        state: JobState::Planning,
        reason: None,
        file_bytes: 0,
        cursor: None,
        plan: ImportCounts {
            added: 1_999_999,
            updated: 2,
            removed: 3,
            refused: 4,
            share_entries: 1_999_999,
            ..ImportCounts::default()
        },
        done: ImportCounts::default(),
        quota: None,
        refusals: Vec::new(),
        notices: Default::default(),
        undo: None,
        created: None,
    };
    let subject = import_subject(&job);
    assert_eq!(subject, "import:1234567_a1999999_u2_x3_r4_s1999999_SRM");
    assert!(subject.len() <= 64 && !subject.contains("leak"), "{subject}");
    crate::audit::AuditSubject::new(&subject).expect("a valid audit subject");
    (job.spread, job.overrides) = (false, Overrides::default());
    assert_eq!(import_subject(&job), "import:1234567_a1999999_u2_x3_r4_s1999999");
    let undo =
        UndoState { force: true, planned_remove: 5, planned_keep: 1, ..UndoState::default() };
    assert_eq!(undo_subject(7, &undo), "import:7_undo_d5_k1_F");
    crate::audit::AuditSubject::new(&undo_subject(7, &undo)).expect("a valid audit subject");
}

#[test]
fn source_labels_keep_to_their_charset_and_length() {
    assert!(valid_source("leak-2015.v2_final"));
    for bad in ["", "a/b", "a b", "bürger", "x@y", &"a".repeat(MAX_SOURCE_BYTES + 1)] {
        assert!(!valid_source(bad), "{bad:?}");
    }
    assert!(valid_source(&"a".repeat(MAX_SOURCE_BYTES)));
}
