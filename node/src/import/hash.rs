//! A row's idempotency key and content hash: BLAKE3 keyed by the node's import key (`m`
//! `import-key`, 32 random bytes drawn at the first import) over length-prefixed fields, so
//! neither reveals a subject, a source or an identifier to whoever reads the store.
//!
//! The key names the row: the source and subject (CSV, JSON lines), the sorted canonical forms
//! when there is no subject, or the STIX object id (the source ignored, so the same bundle from
//! another source is still the same rows). The content hash covers the sorted canonical forms
//! and every record field after defaults, with the expiry as `expires_in_days`, never the
//! absolute time: the same row imported again later hashes the same.

use super::{ImportRow, Subject};

/// The context of a row key.
pub const ROW_KEY_CONTEXT: &str = "crossmatch import row v1";
/// The context of a content hash.
pub const CONTENT_HASH_CONTEXT: &str = "crossmatch import content v1";

/// The row's idempotency key, from `source` and its subject.
pub fn row_key(key: &[u8; 32], source: &str, row: &ImportRow) -> [u8; 32] {
    let mut hasher = Fields::new(key, ROW_KEY_CONTEXT);
    match &row.subject {
        Subject::Named(subject) => {
            hasher.tag(0);
            hasher.field(source.as_bytes());
            hasher.field(subject.as_bytes());
        }
        Subject::Content => {
            hasher.tag(1);
            hasher.field(source.as_bytes());
            hasher.canonicals(row);
        }
        Subject::Stix(id) => {
            hasher.tag(2);
            hasher.field(id.as_bytes());
        }
    }
    *hasher.0.finalize().as_bytes()
}

/// The row's content hash: its canonical forms and record fields, after defaults.
pub fn content_hash(key: &[u8; 32], row: &ImportRow) -> [u8; 16] {
    let mut hasher = Fields::new(key, CONTENT_HASH_CONTEXT);
    hasher.canonicals(row);
    hasher.field(row.category.as_bytes());
    hasher.field(row.handling.as_str().as_bytes());
    hasher.field(row.evaluation.to_string().as_bytes());
    hasher.field(row.notes.as_bytes());
    match row.activity_per_day {
        None => hasher.tag(0),
        Some(activity) => {
            hasher.tag(1);
            hasher.field(&activity.to_be_bytes());
        }
    }
    hasher.field(&row.expires_in_days.to_be_bytes());
    hasher.tag(u8::from(row.share));
    let mut out = [0; 16];
    hasher.0.finalize_xof().fill(&mut out);
    out
}

/// A keyed hasher fed length-prefixed fields, so no two field lists hash alike.
struct Fields(blake3::Hasher);

impl Fields {
    fn new(key: &[u8; 32], context: &str) -> Self {
        let mut fields = Self(blake3::Hasher::new_keyed(key));
        fields.field(context.as_bytes());
        fields
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn tag(&mut self, tag: u8) {
        self.0.update(&[tag]);
    }

    /// The sorted, distinct canonical forms, with their count.
    fn canonicals(&mut self, row: &ImportRow) {
        let mut forms: Vec<&str> = row.identifiers.iter().map(|c| c.as_str()).collect();
        forms.sort_unstable();
        forms.dedup();
        self.field(&(forms.len() as u64).to_be_bytes());
        for form in forms {
            self.field(form.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{Position, StixVersion};
    use crossmatch_protocol::{Handling, Kind, canonicalize};

    const KEY: [u8; 32] = [7; 32];

    fn account(handle: &str) -> crossmatch_protocol::Canonical {
        canonicalize(Kind::Account, Some("x"), None, handle).unwrap()
    }

    fn row(subject: Subject, handles: &[&str]) -> ImportRow {
        ImportRow {
            position: Position::Line(2),
            subject,
            identifiers: handles.iter().map(|h| account(h)).collect(),
            category: "propaganda".into(),
            handling: Handling::H0,
            evaluation: "B2".parse().unwrap(),
            notes: String::new(),
            activity_per_day: None,
            expires_in_days: 30,
            share: true,
            stix: None,
        }
    }

    #[test]
    fn a_row_key_names_source_and_subject_only() {
        let named = |source: &str, subject: &str, handles: &[&str]| {
            row_key(&KEY, source, &row(Subject::Named(subject.into()), handles))
        };
        let base = named("leak", "s1", &["alpha"]);
        // Content is not part of the key: the same subject with other identifiers is the same row.
        assert_eq!(base, named("leak", "s1", &["beta", "gamma"]));
        assert_ne!(base, named("leak2", "s1", &["alpha"]));
        assert_ne!(base, named("leak", "s2", &["alpha"]));
        // Length prefixes: moving bytes between source and subject makes another key.
        assert_ne!(named("ab", "c", &["alpha"]), named("a", "bc", &["alpha"]));
        assert_ne!(base, row_key(&[8; 32], "leak", &row(Subject::Named("s1".into()), &["alpha"])));
    }

    #[test]
    fn without_a_subject_the_row_is_its_sorted_identifiers() {
        let content = |handles: &[&str]| row_key(&KEY, "leak", &row(Subject::Content, handles));
        assert_eq!(content(&["alpha", "beta"]), content(&["beta", "alpha"]));
        assert_eq!(content(&["alpha", "beta"]), content(&["beta", "alpha", "beta"]));
        assert_ne!(content(&["alpha", "beta"]), content(&["alpha"]));
        assert_ne!(content(&["alpha"]), row_key(&KEY, "other", &row(Subject::Content, &["alpha"])));
    }

    #[test]
    fn a_stix_row_key_ignores_the_source() {
        let stix = |source: &str| {
            let mut row = row(Subject::Stix("indicator--1".into()), &["alpha"]);
            row.stix = Some(StixVersion { modified_ms: Some(5), ..StixVersion::default() });
            row_key(&KEY, source, &row)
        };
        assert_eq!(stix("a"), stix("b"));
        // Never the same key as a named subject of the same text.
        assert_ne!(
            stix("a"),
            row_key(&KEY, "", &row(Subject::Named("indicator--1".into()), &["alpha"]))
        );
    }

    #[test]
    fn the_content_hash_covers_every_record_field_and_not_the_subject() {
        let base = row(Subject::Named("s1".into()), &["alpha", "beta"]);
        let hash = content_hash(&KEY, &base);
        let mut reordered = base.clone();
        reordered.identifiers.reverse();
        reordered.subject = Subject::Named("s2".into());
        reordered.position = Position::Line(9);
        assert_eq!(content_hash(&KEY, &reordered), hash);
        let changes: [fn(&mut ImportRow); 9] = [
            |r| r.identifiers.push(account("gamma")),
            |r| r.category = "other".into(),
            |r| r.handling = Handling::H2,
            |r| r.evaluation = "A1".parse().unwrap(),
            |r| r.notes = "n".into(),
            |r| r.activity_per_day = Some(0),
            |r| r.expires_in_days = 31,
            |r| r.share = false,
            |r| r.identifiers.truncate(1),
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(content_hash(&KEY, &changed), hash, "change {n} went unnoticed");
        }
        assert_ne!(content_hash(&[8; 32], &base), hash);
    }
}
