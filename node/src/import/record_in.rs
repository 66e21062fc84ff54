//! The API's record shape, shared by `POST /v1/records` ([`RecordIn`]) and JSON lines imports
//! ([`RecordLine`]: the same fields, the record fields optional, plus a `subject`), with one
//! validation: identifiers canonicalised by position, notes, handling, evaluation and expiry.
//! [`Fields`] completes a row's record fields with an import's defaults (CSV and JSON lines).
//! Faults name a field and a rule, never what the field held.

use crossmatch_protocol::limits::MAX_ACTIVITY_PER_DAY;
use crossmatch_protocol::{CanonError, Canonical, Evaluation, Handling, Kind, canonicalize};
use serde::Deserialize;

use super::{Defaults, ImportRow, Position, RowRule, Subject};

/// Most identifiers in one record.
pub const MAX_IDENTIFIERS_PER_RECORD: usize = 32;
/// Longest notes field, in bytes.
pub const MAX_NOTES_BYTES: usize = 4096;

/// `POST /v1/records`: a record to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    /// 1 to 32 identifiers.
    pub identifiers: Vec<IdentifierIn>,
    /// Category label.
    pub category: String,
    /// Handling code, `H0` to `H3` (H3 is never shared).
    pub handling: String,
    /// Evaluation, such as `B2`.
    pub evaluation: String,
    /// Free-text notes (local only), at most 4096 bytes.
    #[serde(default)]
    pub notes: String,
    /// Posts per day, if known.
    #[serde(default)]
    pub activity_per_day: Option<u64>,
    /// Days until the record expires, at least 1.
    pub expires_in_days: u64,
    /// Share with the federation (false: watch only).
    pub share: bool,
    /// From a bulk import of old lists: kept out of the takedown clock's budget figures.
    #[serde(default)]
    pub backlog: bool,
}

/// One identifier of a record, as typed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierIn {
    /// `account`, `account_id`, `email`, `phone`, `url` or `domain`.
    pub kind: String,
    /// The platform of an account or account id (`x`, `telegram`, or a domain).
    #[serde(default)]
    pub platform: Option<String>,
    /// The default region (ISO 3166 alpha-2) of a national-format phone number.
    #[serde(default)]
    pub region: Option<String>,
    /// The identifier.
    pub value: String,
}

/// A record that passed validation; its expiry is still relative.
#[derive(Debug, Clone)]
pub struct ValidRecord {
    /// Canonical identifiers, in input order.
    pub identifiers: Vec<Canonical>,
    /// Category label (checked by the engine).
    pub category: String,
    /// Handling code.
    pub handling: Handling,
    /// Evaluation.
    pub evaluation: Evaluation,
    /// Notes.
    pub notes: String,
    /// Posts per day.
    pub activity_per_day: Option<u64>,
    /// Days until expiry, at least 1.
    pub expires_in_days: u64,
    /// Shared or watched.
    pub share: bool,
    /// Backlog.
    pub backlog: bool,
}

/// Why a record was refused. The message names a field or an identifier's index and the
/// rule, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    /// Too few or too many identifiers.
    #[error("a record has 1 to {MAX_IDENTIFIERS_PER_RECORD} identifiers")]
    IdentifierCount,
    /// Notes past their limit.
    #[error("notes are at most {MAX_NOTES_BYTES} bytes")]
    Notes,
    /// An identifier of an unknown kind.
    #[error("identifiers[{0}]: unknown kind")]
    UnknownKind(usize),
    /// An identifier that broke a canonicalisation rule.
    #[error("identifiers[{0}]: {1}")]
    Identifier(usize, CanonError),
    /// Not a handling code.
    #[error("handling: {0}")]
    Handling(String),
    /// Not an evaluation.
    #[error("evaluation is a letter A, B, C or X and a digit 1-4")]
    Evaluation,
    /// No expiry.
    #[error("expires_in_days must be at least 1")]
    Expiry,
}

impl RecordFault {
    /// The API's error code.
    pub const fn code(&self) -> &'static str {
        match self {
            RecordFault::UnknownKind(_) => "unknown_kind",
            RecordFault::Identifier(..) => "identifier_refused",
            _ => "invalid_record",
        }
    }

    /// The rule an import row broke.
    pub fn rule(&self) -> RowRule {
        match self {
            RecordFault::IdentifierCount => RowRule::TooManyIdentifiers,
            RecordFault::Notes => RowRule::Notes,
            RecordFault::UnknownKind(_) => RowRule::UnknownKind,
            RecordFault::Identifier(_, error) => RowRule::Identifier(error.rule),
            RecordFault::Handling(_) => RowRule::Handling,
            RecordFault::Evaluation => RowRule::Evaluation,
            RecordFault::Expiry => RowRule::Expiry,
        }
    }
}

impl RecordIn {
    /// Checks the record and canonicalises its identifiers.
    pub fn validate(self) -> Result<ValidRecord, RecordFault> {
        if self.identifiers.is_empty() || self.identifiers.len() > MAX_IDENTIFIERS_PER_RECORD {
            return Err(RecordFault::IdentifierCount);
        }
        if self.notes.len() > MAX_NOTES_BYTES {
            return Err(RecordFault::Notes);
        }
        let identifiers = canonical_identifiers(&self.identifiers)?;
        let handling: Handling =
            self.handling.parse().map_err(|error| RecordFault::Handling(format!("{error}")))?;
        let evaluation = self.evaluation.parse().map_err(|_| RecordFault::Evaluation)?;
        if self.expires_in_days == 0 {
            return Err(RecordFault::Expiry);
        }
        Ok(ValidRecord {
            identifiers,
            category: self.category,
            handling,
            evaluation,
            notes: self.notes,
            activity_per_day: self.activity_per_day,
            expires_in_days: self.expires_in_days,
            share: self.share,
            backlog: self.backlog,
        })
    }
}

/// Canonicalises identifiers in order; the first fault names its index.
pub fn canonical_identifiers(list: &[IdentifierIn]) -> Result<Vec<Canonical>, RecordFault> {
    let mut identifiers = Vec::with_capacity(list.len());
    for (index, identifier) in list.iter().enumerate() {
        let kind: Kind = identifier.kind.parse().map_err(|_| RecordFault::UnknownKind(index))?;
        let canonical = canonicalize(
            kind,
            identifier.platform.as_deref(),
            identifier.region.as_deref(),
            &identifier.value,
        )
        .map_err(|error| RecordFault::Identifier(index, error))?;
        identifiers.push(canonical);
    }
    Ok(identifiers)
}

/// A JSON line of an import: the API's record with its record fields optional (the import's
/// defaults fill them), plus the `subject` that makes it the same row in a later import.
/// `backlog` is accepted and ignored: imported records are always backlog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLine {
    /// 1 to 32 identifiers.
    pub identifiers: Vec<IdentifierIn>,
    /// What makes the line the same row again (else its identifiers).
    #[serde(default)]
    pub subject: Option<String>,
    /// Category label.
    #[serde(default)]
    pub category: Option<String>,
    /// Handling code.
    #[serde(default)]
    pub handling: Option<String>,
    /// Evaluation.
    #[serde(default)]
    pub evaluation: Option<String>,
    /// Notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Posts per day.
    #[serde(default)]
    pub activity_per_day: Option<u64>,
    /// Days until expiry.
    #[serde(default)]
    pub expires_in_days: Option<u64>,
    /// Share or watch.
    #[serde(default)]
    pub share: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub backlog: Option<bool>,
}

impl RecordLine {
    /// The line as a row with the import's defaults, or the rule it broke.
    pub fn into_row(self, position: Position, defaults: &Defaults) -> Result<ImportRow, RowRule> {
        if self.identifiers.is_empty() {
            return Err(RowRule::NoIdentifiers);
        }
        if self.identifiers.len() > MAX_IDENTIFIERS_PER_RECORD {
            return Err(RowRule::TooManyIdentifiers);
        }
        let identifiers = canonical_identifiers(&self.identifiers).map_err(|f| f.rule())?;
        let fields = Fields {
            category: self.category.filter(|c| !c.is_empty()),
            handling: parse_optional(self.handling.as_deref(), RowRule::Handling)?,
            evaluation: parse_optional(self.evaluation.as_deref(), RowRule::Evaluation)?,
            expires_in_days: self.expires_in_days,
            share: self.share,
            notes: self.notes.unwrap_or_default(),
            activity_per_day: self.activity_per_day,
        };
        let subject = match self.subject.filter(|s| !s.is_empty()) {
            Some(subject) => Subject::Named(subject),
            None => Subject::Content,
        };
        fields.complete(position, subject, identifiers, defaults)
    }
}

/// An optional field parsed by name; empty is absent.
pub(super) fn parse_optional<T: std::str::FromStr>(
    text: Option<&str>,
    rule: RowRule,
) -> Result<Option<T>, RowRule> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| rule),
    }
}

/// A row's own record fields, each absent when the row leaves it to the import's default.
#[derive(Debug, Clone, Default)]
pub(super) struct Fields {
    pub(super) category: Option<String>,
    pub(super) handling: Option<Handling>,
    pub(super) evaluation: Option<Evaluation>,
    pub(super) expires_in_days: Option<u64>,
    pub(super) share: Option<bool>,
    pub(super) notes: String,
    pub(super) activity_per_day: Option<u64>,
}

impl Fields {
    /// The row with every default applied and every field checked. The import's share is a
    /// ceiling: a row's `share` may only turn sharing off, never on under `--watch`; H3 is never
    /// shared.
    pub(super) fn complete(
        self,
        position: Position,
        subject: Subject,
        identifiers: Vec<Canonical>,
        defaults: &Defaults,
    ) -> Result<ImportRow, RowRule> {
        let category =
            self.category.or_else(|| defaults.category.clone()).ok_or(RowRule::CategoryMissing)?;
        if !crossmatch_protocol::is_valid_category(&category) {
            return Err(RowRule::Category);
        }
        let handling = self.handling.or(defaults.handling).ok_or(RowRule::HandlingMissing)?;
        let evaluation =
            self.evaluation.or(defaults.evaluation).ok_or(RowRule::EvaluationMissing)?;
        let expires_in_days =
            self.expires_in_days.or(defaults.expires_in_days).ok_or(RowRule::ExpiryMissing)?;
        if expires_in_days == 0 {
            return Err(RowRule::Expiry);
        }
        if self.notes.len() > MAX_NOTES_BYTES {
            return Err(RowRule::Notes);
        }
        if self.activity_per_day.is_some_and(|activity| activity > MAX_ACTIVITY_PER_DAY) {
            return Err(RowRule::Activity);
        }
        let share = self.share.unwrap_or(true) && defaults.share && handling != Handling::H3;
        Ok(ImportRow {
            position,
            subject,
            identifiers,
            category,
            handling,
            evaluation,
            notes: self.notes,
            activity_per_day: self.activity_per_day,
            expires_in_days,
            share,
            stix: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str, defaults: &Defaults) -> Result<ImportRow, RowRule> {
        serde_json::from_str::<RecordLine>(json).unwrap().into_row(Position::Line(1), defaults)
    }

    #[test]
    fn the_api_record_keeps_its_messages_and_codes() {
        let record = |json: &str| serde_json::from_str::<RecordIn>(json).unwrap().validate();
        let base = r#""category":"propaganda","handling":"H2","evaluation":"B2","expires_in_days":30,"share":true"#;
        let ok = record(&format!(
            r#"{{"identifiers":[{{"kind":"account","platform":"x","value":"alpha_1"}}],{base}}}"#
        ))
        .unwrap();
        assert_eq!(ok.identifiers[0].as_str(), "v1|account|x|alpha_1");
        let fault = record(&format!(r#"{{"identifiers":[],{base}}}"#)).unwrap_err();
        assert_eq!(
            (fault.code(), fault.to_string().as_str()),
            ("invalid_record", "a record has 1 to 32 identifiers")
        );
        let fault = record(&format!(
            r#"{{"identifiers":[{{"kind":"email","value":"a@b.example"}},{{"kind":"account","platform":"x","value":"no way!"}}],{base}}}"#
        ))
        .unwrap_err();
        assert_eq!(fault.code(), "identifier_refused");
        let text = fault.to_string();
        assert!(text.starts_with("identifiers[1]: ") && !text.contains("no way"), "{text}");
        let fault = record(&format!(r#"{{"identifiers":[{{"kind":"fax","value":"1"}}],{base}}}"#))
            .unwrap_err();
        assert_eq!(
            (fault.code(), fault.to_string().as_str()),
            ("unknown_kind", "identifiers[0]: unknown kind")
        );
    }

    #[test]
    fn a_line_takes_the_defaults_and_refuses_what_is_missing() {
        let json = r#"{"identifiers":[{"kind":"domain","value":"example.org"}],"subject":"s1"}"#;
        assert_eq!(line(json, &Defaults::default()), Err(RowRule::CategoryMissing));
        let mut defaults = Defaults { category: Some("propaganda".into()), ..Defaults::default() };
        assert_eq!(line(json, &defaults), Err(RowRule::HandlingMissing));
        defaults.handling = Some(Handling::H0);
        assert_eq!(line(json, &defaults), Err(RowRule::EvaluationMissing));
        defaults.evaluation = Some("B2".parse().unwrap());
        assert_eq!(line(json, &defaults), Err(RowRule::ExpiryMissing));
        defaults.expires_in_days = Some(10);
        defaults.share = true;
        let row = line(json, &defaults).unwrap();
        assert_eq!(row.subject, Subject::Named("s1".into()));
        assert!(row.share && row.expires_in_days == 10 && row.handling == Handling::H0);
        // The line's own fields win; H3 is never shared.
        let own = r#"{"identifiers":[{"kind":"domain","value":"example.org"}],"handling":"H3","expires_in_days":3,"share":true}"#;
        let row = line(own, &defaults).unwrap();
        assert_eq!((row.handling, row.expires_in_days, row.share), (Handling::H3, 3, false));
        assert_eq!(row.subject, Subject::Content);
        // A line may turn sharing off, and never on when the import only watches.
        let watch = r#"{"identifiers":[{"kind":"domain","value":"example.org"}],"share":false}"#;
        assert!(!line(watch, &defaults).unwrap().share);
        let share = r#"{"identifiers":[{"kind":"domain","value":"example.org"}],"share":true}"#;
        assert!(line(share, &defaults).unwrap().share);
        defaults.share = false;
        assert!(!line(share, &defaults).unwrap().share);
        let bad = r#"{"identifiers":[{"kind":"domain","value":"example.org"}],"handling":"H7"}"#;
        assert_eq!(line(bad, &defaults), Err(RowRule::Handling));
        let none = r#"{"identifiers":[]}"#;
        assert_eq!(line(none, &defaults), Err(RowRule::NoIdentifiers));
    }
}
