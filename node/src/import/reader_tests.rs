//! The readers' tests: CSV (`;` and `,`, a BOM, subjects), JSON lines, detection, resuming from
//! every cursor, and refusals that never echo their input.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crossmatch_protocol::Handling;

/// A file of `bytes` in the temporary directory, removed on drop.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "crossmatch-import-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) fn options(format: Format, defaults: Defaults) -> ImportOptions {
    ImportOptions {
        format,
        source: "leak".into(),
        defaults,
        overrides: Overrides::default(),
        spread: false,
    }
}

pub(crate) fn full_defaults() -> Defaults {
    Defaults {
        category: Some("propaganda".into()),
        handling: Some(Handling::H0),
        evaluation: Some("B2".parse().unwrap()),
        expires_in_days: Some(30),
        share: true,
    }
}

/// Every item of the file with the cursor after it.
pub(crate) fn read_all(file: &TempFile, o: &ImportOptions) -> Vec<(Item, Cursor)> {
    let mut rows = open(&file.0, o, None).unwrap();
    let mut items = Vec::new();
    while let Some(item) = rows.next() {
        items.push((item.unwrap(), rows.cursor()));
        assert!(items.len() < 10_000, "the reader does not end");
    }
    items
}

/// Resuming from each yielded cursor gives exactly the items after it.
pub(crate) fn assert_resumes(file: &TempFile, o: &ImportOptions) {
    let all = read_all(file, o);
    for (n, (_, cursor)) in all.iter().enumerate() {
        let rest: Vec<Item> =
            open(&file.0, o, Some(*cursor)).unwrap().map(|item| item.unwrap()).collect();
        let expected: Vec<Item> = all[n + 1..].iter().map(|(item, _)| item.clone()).collect();
        assert_eq!(rest, expected, "resuming after item {n} at {cursor:?}");
    }
}

fn items(bytes: &[u8], format: Format, defaults: Defaults) -> Vec<Item> {
    let file = TempFile::new(bytes);
    read_all(&file, &options(format, defaults)).into_iter().map(|(item, _)| item).collect()
}

fn row(item: &Item) -> &ImportRow {
    match item {
        Item::Row(row) => row,
        other => panic!("not a row: {other:?}"),
    }
}

fn refusal(item: &Item) -> Refusal {
    match item {
        Item::Refused(refusal) => *refusal,
        other => panic!("not a refusal: {other:?}"),
    }
}

fn forms(row: &ImportRow) -> Vec<&str> {
    row.identifiers.iter().map(|c| c.as_str()).collect()
}

const MIXED_SEMICOLON: &str = "\u{feff}subject;kind;platform;region;value;category;handling;notes\r\n\
    s1;account;x;;Alpha_1;propaganda;H2;\"quoted; with separator\"\r\n\
    s1;email;;;Alpha@Example.org;;;\r\n\
    s1;phone;;FR;06 12 34 56 78;;;\r\n\
    ;domain;;;Example.net;;;\r\n\
    s2;account;telegram;;beta_channel;;;\r\n";

#[test]
fn semicolon_csv_with_a_bom_makes_one_record_per_subject() {
    let items = items(MIXED_SEMICOLON.as_bytes(), Format::Csv, full_defaults());
    assert_eq!(items.len(), 3, "{items:?}");
    let first = row(&items[0]);
    assert_eq!(first.position, Position::Line(2));
    assert_eq!(first.subject, Subject::Named("s1".into()));
    assert_eq!(
        forms(first),
        ["v1|account|x|alpha_1", "v1|email|alpha@example.org", "v1|phone|+33612345678"]
    );
    assert_eq!(first.notes, "quoted; with separator");
    assert_eq!((first.handling, first.share), (Handling::H2, true));
    let second = row(&items[1]);
    assert_eq!((second.subject.clone(), second.position), (Subject::Content, Position::Line(5)));
    assert_eq!(forms(second), ["v1|domain|example.net"]);
    assert_eq!(row(&items[2]).handling, Handling::H0, "the default");
    assert_resumes(
        &TempFile::new(MIXED_SEMICOLON.as_bytes()),
        &options(Format::Csv, full_defaults()),
    );
}

#[test]
fn comma_csv_reads_the_same_records() {
    let comma = MIXED_SEMICOLON
        .replace(';', ",")
        .replace("\"quoted, with separator\"", "\"quoted; with separator\"");
    let semicolon = items(MIXED_SEMICOLON.as_bytes(), Format::Csv, full_defaults());
    assert_eq!(items(comma.as_bytes(), Format::Csv, full_defaults()), semicolon);
}

#[test]
fn subjects_must_be_adjacent_agree_and_hold_at_most_32() {
    let mut csv = String::from("kind,platform,value,subject,category\n");
    csv.push_str("account,x,alpha_1,s1,propaganda\n");
    csv.push_str("account,x,beta_1,s2,propaganda\n");
    csv.push_str("account,x,gamma_1,s1,propaganda\n"); // line 4: s1 again, not adjacent
    csv.push_str("account,x,delta_1,s3,propaganda\n");
    csv.push_str("account,x,epsilon_1,s3,satire\n"); // line 6: differs
    for n in 0..33 {
        csv.push_str(&format!("account,x,many_{n},s4,\n")); // lines 7..=39
    }
    csv.push_str("account,x,zeta_1,s5,\n");
    let items = items(csv.as_bytes(), Format::Csv, full_defaults());
    let positions: Vec<String> = items
        .iter()
        .map(|item| match item {
            Item::Row(row) => format!("row {}", row.position),
            Item::Refused(refusal) => format!("{} {}", refusal.position, refusal.rule.code()),
            Item::Notice(..) => "notice".into(),
        })
        .collect();
    assert_eq!(
        positions,
        [
            "row line 2",
            "row line 3",
            "line 4 subject_not_adjacent",
            "line 6 fields_differ",
            "line 39 too_many_identifiers",
            "row line 40"
        ]
    );
    let file = TempFile::new(csv.as_bytes());
    assert_resumes(&file, &options(Format::Csv, full_defaults()));
}

#[test]
fn empty_fields_take_the_defaults_and_missing_ones_are_refused() {
    let csv = "kind,platform,value,category,handling,evaluation,expires_in_days,share\n\
        account,x,alpha_1,,,,,\n\
        account,x,beta_1,satire,H1,A1,7,false\n\
        account,x,gamma_1,,H9,,,\n\
        account,x,delta_1,,,,0,\n\
        account,x,eps_1,,,,,maybe\n\
        account,x,no way!,,,,,\n\
        fax,,123,,,,,\n";
    let items = items(csv.as_bytes(), Format::Csv, full_defaults());
    let first = row(&items[0]);
    assert_eq!(
        (first.category.as_str(), first.expires_in_days, first.share),
        ("propaganda", 30, true)
    );
    let second = row(&items[1]);
    assert_eq!(
        (
            second.category.as_str(),
            second.handling,
            second.evaluation.to_string(),
            second.expires_in_days,
            second.share
        ),
        ("satire", Handling::H1, "A1".to_owned(), 7, false)
    );
    let rules: Vec<&str> = items[2..].iter().map(|item| refusal(item).rule.code()).collect();
    assert_eq!(rules, ["handling", "expiry", "share", "x-handle", "unknown_kind"]);
    let bare = items_without_defaults(csv);
    assert_eq!(refusal(&bare[0]).rule, RowRule::CategoryMissing);
    assert!(matches!(bare[1], Item::Row(_)), "its own fields need no default: {bare:?}");
}

fn items_without_defaults(csv: &str) -> Vec<Item> {
    items(csv.as_bytes(), Format::Csv, Defaults::default())
}

#[test]
fn rows_past_the_line_limit_are_refused_and_an_open_quote_stops_the_file() {
    let long = format!(
        "kind,value\naccount,{}\ndomain,example.org\n",
        "a".repeat(limits::MAX_LINE_BYTES + 10)
    );
    let items = items(long.as_bytes(), Format::Csv, full_defaults());
    assert_eq!(refusal(&items[0]), Refusal { position: Position::Line(2), rule: RowRule::TooLong });
    assert_eq!(row(&items[1]).position, Position::Line(3));
    let open_quote =
        format!("kind,value\ndomain,example.org\ndomain,\"{}\n", "b\n".repeat(1 << 20));
    let file = TempFile::new(open_quote.as_bytes());
    let mut rows = open(&file.0, &options(Format::Csv, full_defaults()), None).unwrap();
    assert!(matches!(rows.next(), Some(Ok(Item::Row(_)))));
    let error = rows.next().unwrap().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(!error.to_string().contains("bbb"));
}

#[test]
fn a_header_of_other_columns_refuses_the_file() {
    for header in ["kind,value,colour\naccount,x\n", "handle\nalpha\n", "kind;platform\n"] {
        let items = items(header.as_bytes(), Format::Csv, full_defaults());
        assert_eq!(
            items,
            [Item::Refused(Refusal { position: Position::Line(1), rule: RowRule::MissingColumn })]
        );
    }
}

#[test]
fn json_lines_read_the_api_shape_with_a_subject() {
    let long =
        format!("{{\"identifiers\":[],\"notes\":\"{}\"}}", "n".repeat(limits::MAX_LINE_BYTES));
    let jsonl = format!(
        "{}\n\n{}\n{}\n{}\n{}\n{}\n{}\n",
        r#"{"subject":"s1","identifiers":[{"kind":"account","platform":"x","value":"Alpha_1"},{"kind":"url","value":"https://Example.org/a"}],"handling":"H2"}"#,
        r#"{"identifiers":[{"kind":"domain","value":"example.net"}],"expires_in_days":5,"share":false}"#,
        r#"{"identifiers":[{"kind":"domain","value":"secret-value.example"}],"#,
        r#"{"identifiers":[{"kind":"domain","value":"secret-value.example"}],"colour":"red"}"#,
        r#"{"subject":"s1","identifiers":[{"kind":"domain","value":"example.com"}]}"#,
        long,
        r#"{"identifiers":[{"kind":"domain","value":"example.com"}],"category":"satire"}"#,
    );
    let mut jsonl = jsonl.into_bytes();
    jsonl.extend_from_slice(b"{\"identifiers\":[],\"notes\":\"\xff\"}\n");
    let items = items(&jsonl, Format::Jsonl, full_defaults());
    let first = row(&items[0]);
    assert_eq!(forms(first), ["v1|account|x|alpha_1", "v1|url|https://example.org/a"]);
    assert_eq!((first.position, first.handling), (Position::Line(1), Handling::H2));
    let second = row(&items[1]);
    assert_eq!(
        (second.position, second.expires_in_days, second.share),
        (Position::Line(3), 5, false)
    );
    let refused: Vec<String> = items[2..6].iter().map(|item| refusal(item).to_string()).collect();
    assert_eq!(
        refused,
        [
            "line 4: the line or object is not well-formed JSON",
            "line 5: not a JSON object of the expected shape",
            "line 6: the subject appears more than once in the file",
            "line 7: the line or object is longer than its limit",
        ]
    );
    assert_eq!(row(&items[6]).category, "satire");
    assert_eq!(refusal(&items[7]).to_string(), "line 9: the line is not UTF-8");
    assert_eq!(items.len(), 8);
    assert_resumes(&TempFile::new(&jsonl), &options(Format::Jsonl, full_defaults()));
}

/// A line refused before its subject counts (an unknown field) does not make a later line with
/// that subject a duplicate, whether the file is read straight or resumed past it.
#[test]
fn a_refused_line_claims_no_subject_straight_or_resumed() {
    let jsonl = concat!(
        r#"{"subject":"s9","identifiers":[{"kind":"domain","value":"example.com"}],"colour":"red"}"#,
        "\n",
        r#"{"subject":"s9","identifiers":[{"kind":"domain","value":"example.net"}]}"#,
        "\n",
    );
    let items = items(jsonl.as_bytes(), Format::Jsonl, full_defaults());
    assert_eq!(refusal(&items[0]).rule, RowRule::NotAnObject);
    assert_eq!(forms(row(&items[1])), ["v1|domain|example.net"]);
    assert_resumes(&TempFile::new(jsonl.as_bytes()), &options(Format::Jsonl, full_defaults()));
}

#[test]
fn the_format_is_detected_from_the_content() {
    assert_eq!(detect(b""), None);
    assert_eq!(detect(b"  \n"), None);
    assert_eq!(detect(MIXED_SEMICOLON.as_bytes()), Some(Format::Csv));
    assert_eq!(detect(b"kind,value\naccount,x\n"), Some(Format::Csv));
    assert_eq!(detect(b"{\"identifiers\":[]}\n{\"identifiers\":[]}\n"), Some(Format::Jsonl));
    assert_eq!(
        detect(b"\xef\xbb\xbf{\"type\":\"bundle\",\"id\":\"bundle--1\",\"objects\":[]}"),
        Some(Format::Stix)
    );
    let pretty = b"{\n  \"id\": \"bundle--1\",\n  \"type\": \"bundle\",\n  \"objects\": [\n";
    assert_eq!(detect(pretty), Some(Format::Stix));
    // `type` nested deeper is not the bundle's.
    let nested = b"{\n  \"objects\": [{\"type\": \"bundle\"}";
    assert_eq!(detect(nested), None);
    // A JSON line whose own type is not bundle.
    assert_eq!(detect(b"{\"type\":\"indicator\"}\n"), Some(Format::Jsonl));
}

#[test]
fn refusals_name_a_position_and_a_rule_never_the_input() {
    let secrets =
        ["Secret_Handle_1!", "secret@@example", "06 99 not a phone", "ftp://secret.example/"];
    let csv = format!(
        "subject,kind,platform,value,category\n\
         subject-secret-1,account,x,{},propaganda\n\
         subject-secret-2,email,,{},propaganda\n\
         subject-secret-3,phone,,{},propaganda\n\
         subject-secret-4,url,,{},propaganda\n\
         subject-secret-5,account,x,ok_handle,propaganda-secret!\n\
         subject-secret-1,account,x,other_1,propaganda\n",
        secrets[0], secrets[1], secrets[2], secrets[3]
    );
    let items = items(csv.as_bytes(), Format::Csv, full_defaults());
    assert_eq!(items.len(), 6);
    for item in &items {
        let refusal = refusal(item);
        let shown = format!("{refusal} {} {refusal:?}", refusal.rule.code());
        for secret in secrets
            .iter()
            .chain(["subject-secret", "propaganda-secret", "ok_handle", "other_1"].iter())
        {
            assert!(
                !shown.to_lowercase().contains(&secret.to_lowercase()),
                "{shown} echoes {secret}"
            );
        }
    }
}
