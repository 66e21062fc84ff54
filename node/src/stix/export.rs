//! The STIX 2.1 export's writer (docs/STIX.md §4): pure functions from the unit's records, its
//! alerts' sightings and the tombstones of gone ones, with their stored ids, to the bytes of one
//! streamed bundle. It reads no clock, store or randomness: ids and times are given.
//!
//! - Each record is one `indicator` (its handling code's marking, whatever the code; no notes;
//!   no `confidence`) and one observable per identifier that has one, each observable once per
//!   bundle. Phone numbers appear only in patterns (`x-crossmatch-phone`).
//! - Each alert's counterpart member is one `sighting` of the indicator, where that member's
//!   identity saw it; a counterpart whose add is H2 (not to be disseminated) is left out
//!   ([`sighted_by`]).
//! - Tokens travel only when asked, in the tokens extension; a gone object is `revoked`, under
//!   the marking it was last exported with.

use std::collections::HashSet;

use crossmatch_protocol::{Canonical, FederationId, Handling, Kind};
use serde_json::{Value, json};

use super::{
    EXTENSIONS, FIXED_TIMESTAMP, HANDLING_MARKINGS, PHONE_EXTENSION, PROJECT_IDENTITY_ID,
    PROJECT_IDENTITY_NAME, TOKENS_EXTENSION, WITHDRAWN_EXTENSION, account_type,
    handling_marking_id, object_id, sco_id, timestamp,
};
use crate::store::Record;
use crate::store::imports::{StixIds, StixKind, StixTombstone};

/// Where the extension definitions' schemas are written down.
const SCHEMA_TEXT: &str = "crossmatch docs/STIX.md, section 5 (extension definitions)";

/// Whether an alert's counterpart, whose add carries `handling`, is exported as a sighting: an
/// H2 add may not be passed on, so it is left out (as is its sighting id).
pub fn sighted_by(handling: Handling) -> bool {
    handling != Handling::H2
}

/// A sighting's marking: the stricter of the local record's code and the counterpart's add's.
pub fn sighting_handling(own: Handling, counterpart: Handling) -> Handling {
    own.max(counterpart)
}

/// An identity the bundle names: the unit's own, or a counterpart member's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityIn {
    /// Its stored ids.
    pub ids: StixIds,
    /// The member id (`DE`).
    pub name: String,
    /// The member's contact, as the roster gives it.
    pub contact: String,
}

/// One sighting: a counterpart member that holds the token of an alert on a local record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SightingIn<'a> {
    /// Its stored ids.
    pub ids: &'a StixIds,
    /// The UUID of the indicator it is a sighting of (the alert's lowest record).
    pub indicator: [u8; 16],
    /// The UUID of the counterpart member's identity.
    pub member: [u8; 16],
    /// When this node first received the member's add (Unix ms).
    pub first_seen_ms: u64,
    /// When it last received one (Unix ms).
    pub last_seen_ms: u64,
    /// The local record's handling code.
    pub own_handling: Handling,
    /// The counterpart's add's handling code.
    pub counterpart_handling: Handling,
}

/// What the writer has written, for the audit line and the caller's checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Objects written, fixed ones included.
    pub objects: u64,
    /// Indicators of records.
    pub indicators: u64,
    /// Observables.
    pub observables: u64,
    /// Sightings.
    pub sightings: u64,
    /// Revoked objects.
    pub revoked: u64,
    /// Records and sightings left out: no identifier the writer can express, or an H2 add.
    pub left_out: u64,
}

/// Writes one bundle as a sequence of byte chunks: [`BundleWriter::head`] first, then any
/// number of records, sightings and revoked objects, then [`BundleWriter::tail`].
#[derive(Debug)]
pub struct BundleWriter {
    /// The unit's identity id (`identity--…`): `created_by_ref` of what the unit makes.
    unit: String,
    /// With tokens: the federation they were computed in.
    tokens: Option<FederationId>,
    /// Observables written (their UUIDs): each once per bundle.
    seen: HashSet<[u8; 16]>,
    written: Written,
}

impl BundleWriter {
    /// A writer for the unit whose identity has `unit_uuid`; `tokens`: the federation id, when
    /// tokens were asked for.
    pub fn new(unit_uuid: &[u8; 16], tokens: Option<FederationId>) -> Self {
        Self {
            unit: object_id("identity", unit_uuid),
            tokens,
            seen: HashSet::new(),
            written: Written::default(),
        }
    }

    /// What was written so far.
    pub fn written(&self) -> Written {
        self.written
    }

    /// The bundle's opening, then the fixed objects (the project's identity, the four handling
    /// markings, the extension definitions: the tokens one only with tokens) and `identities`
    /// (the unit's first), each with its stored `created` and `modified`.
    pub fn head(&mut self, bundle_uuid: &[u8; 16], identities: &[IdentityIn]) -> Vec<u8> {
        let mut out = format!(
            "{{\"type\":\"bundle\",\"id\":\"{}\",\"objects\":[",
            object_id("bundle", bundle_uuid)
        )
        .into_bytes();
        let mut objects = vec![json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": PROJECT_IDENTITY_ID,
            "created": FIXED_TIMESTAMP,
            "modified": FIXED_TIMESTAMP,
            "name": PROJECT_IDENTITY_NAME,
            "identity_class": "system",
        })];
        for marking in HANDLING_MARKINGS {
            objects.push(json!({
                "type": "marking-definition",
                "spec_version": "2.1",
                "id": marking.id,
                "created": FIXED_TIMESTAMP,
                "created_by_ref": PROJECT_IDENTITY_ID,
                "name": format!("crossmatch handling {}", marking.handling),
                "definition_type": "statement",
                "definition": { "statement": marking.statement },
            }));
        }
        for extension in EXTENSIONS {
            if extension == TOKENS_EXTENSION && self.tokens.is_none() {
                continue;
            }
            objects.push(json!({
                "type": "extension-definition",
                "spec_version": "2.1",
                "id": extension.id,
                "created": FIXED_TIMESTAMP,
                "modified": FIXED_TIMESTAMP,
                "created_by_ref": PROJECT_IDENTITY_ID,
                "name": extension.name,
                "description": extension.description,
                "schema": SCHEMA_TEXT,
                "version": "1.0",
                "extension_types": [extension.extension_type],
            }));
        }
        for identity in identities {
            let ids = &identity.ids;
            let mut object = json!({
                "type": "identity",
                "spec_version": "2.1",
                "id": object_id("identity", &ids.uuid),
                "created": timestamp(ids.created_ms),
                "modified": timestamp(ids.modified_ms.max(ids.created_ms)),
                "created_by_ref": PROJECT_IDENTITY_ID,
                "name": identity.name,
                "identity_class": "organization",
            });
            if !identity.contact.is_empty() {
                object["contact_information"] = Value::from(identity.contact.as_str());
            }
            objects.push(object);
        }
        for object in &objects {
            self.push(&mut out, object);
        }
        out
    }

    /// A record: its observables not written yet, then its indicator; nothing when none of its
    /// identifiers can be expressed (counted as left out).
    pub fn record(&mut self, ids: &StixIds, record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        let identifiers: Vec<(Canonical, &crate::store::StoredIdentifier)> = record
            .identifiers
            .iter()
            .filter_map(|stored| Some((stored.canonical.parse::<Canonical>().ok()?, stored)))
            .collect();
        if identifiers.is_empty() {
            self.written.left_out += 1;
            return out;
        }
        let marking = handling_marking_id(record.handling);
        for (canonical, _) in &identifiers {
            let Some((id, object)) = observable(canonical) else { continue };
            let Some((_, uuid)) = super::parse_object_id(&id) else { continue };
            if self.seen.insert(uuid) {
                let mut object = object;
                object["object_marking_refs"] = json!([marking]);
                self.push(&mut out, &object);
                self.written.observables += 1;
            }
        }
        let pattern = identifiers
            .iter()
            .map(|(canonical, _)| observation(canonical))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut indicator = json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": object_id("indicator", &ids.uuid),
            "created": timestamp(ids.created_ms),
            "modified": timestamp(ids.modified_ms.max(ids.created_ms)),
            "created_by_ref": self.unit,
            "name": format!("crossmatch record {}", record.id),
            "description": description(record),
            "pattern": pattern,
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": timestamp(record.created_at_ms),
            "object_marking_refs": [marking],
        });
        if record.expires_at_ms > record.created_at_ms {
            indicator["valid_until"] = Value::from(timestamp(record.expires_at_ms));
        }
        if let Some(federation) = &self.tokens {
            let tokens: Vec<String> =
                identifiers.iter().map(|(_, stored)| stored.token.to_string()).collect();
            let epoch = identifiers.first().map_or(0, |(_, stored)| stored.epoch);
            indicator["extensions"] = json!({ TOKENS_EXTENSION.id: {
                "extension_type": "property-extension",
                "federation_id": federation.to_string(),
                "epoch": epoch,
                "tokens": tokens,
            }});
        }
        self.push(&mut out, &indicator);
        self.written.indicators += 1;
        out
    }

    /// A sighting of a local indicator by a counterpart member, marked with the stricter of
    /// both codes; nothing for an H2 add (counted as left out).
    pub fn sighting(&mut self, sighting: &SightingIn<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        if !sighted_by(sighting.counterpart_handling) {
            self.written.left_out += 1;
            return out;
        }
        let handling = sighting_handling(sighting.own_handling, sighting.counterpart_handling);
        let first = sighting.first_seen_ms.min(sighting.last_seen_ms);
        let object = json!({
            "type": "sighting",
            "spec_version": "2.1",
            "id": object_id("sighting", &sighting.ids.uuid),
            "created": timestamp(sighting.ids.created_ms),
            "modified": timestamp(sighting.ids.modified_ms.max(sighting.ids.created_ms)),
            "created_by_ref": self.unit,
            "description": "A member of the federation holds this indicator's token too.",
            "first_seen": timestamp(first),
            "last_seen": timestamp(sighting.last_seen_ms),
            "sighting_of_ref": object_id("indicator", &sighting.indicator),
            "where_sighted_refs": [object_id("identity", &sighting.member)],
            "object_marking_refs": [handling_marking_id(handling)],
        });
        self.push(&mut out, &object);
        self.written.sightings += 1;
        out
    }

    /// A gone indicator or sighting, `revoked`, marked with the code it was last exported
    /// under (never a less strict one). A revoked indicator's pattern is the placeholder naming
    /// it (its identifiers went with its record); a sighting whose indicator is unknown is left
    /// out.
    pub fn revoked(&mut self, uuid: &[u8; 16], tombstone: &StixTombstone) -> Vec<u8> {
        let mut out = Vec::new();
        let created = timestamp(tombstone.created_ms);
        let modified = timestamp(tombstone.modified_ms.max(tombstone.created_ms));
        let marking = handling_marking_id(tombstone.handling);
        let object = match tombstone.kind {
            StixKind::Indicator => json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": object_id("indicator", uuid),
                "created": created,
                "modified": modified,
                "created_by_ref": self.unit,
                "revoked": true,
                "name": "crossmatch withdrawn indicator",
                "description": "Withdrawn: the record it stood for was removed, and its \
                                identifiers with it.",
                "pattern": withdrawn_pattern(uuid),
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": created,
                "object_marking_refs": [marking],
            }),
            StixKind::Sighting => {
                let Some(indicator) = tombstone.sighting_of else {
                    self.written.left_out += 1;
                    return out;
                };
                json!({
                    "type": "sighting",
                    "spec_version": "2.1",
                    "id": object_id("sighting", uuid),
                    "created": created,
                    "modified": modified,
                    "created_by_ref": self.unit,
                    "revoked": true,
                    "sighting_of_ref": object_id("indicator", &indicator),
                    "object_marking_refs": [marking],
                })
            }
        };
        self.push(&mut out, &object);
        self.written.revoked += 1;
        out
    }

    /// The bundle's closing.
    pub fn tail(&self) -> Vec<u8> {
        b"]}\n".to_vec()
    }

    fn push(&mut self, out: &mut Vec<u8>, object: &Value) {
        if self.written.objects > 0 {
            out.push(b',');
        }
        // Serialising a `Value` into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, object);
        self.written.objects += 1;
    }
}

/// The placeholder pattern of a revoked indicator: `x-crossmatch-withdrawn` naming it.
pub fn withdrawn_pattern(uuid: &[u8; 16]) -> String {
    let id = object_id("indicator", uuid);
    let uuid = id.trim_start_matches("indicator--");
    format!("[{}:indicator_id = '{uuid}']", WITHDRAWN_EXTENSION.name)
}

/// A record's description: category, evaluation in words, status and backlog. Never its notes,
/// and the evaluation is not mapped onto `confidence`.
fn description(record: &Record) -> String {
    let mut text = format!(
        "Category: {}. Evaluation: source reliability {}, information credibility {}.",
        record.category,
        record.evaluation.source(),
        record.evaluation.information()
    );
    if let Some((status, _)) = record.status {
        text.push_str(&format!(" Status: {status}."));
    }
    if !(record.shared || record.pending_share) {
        text.push_str(" Watched, not shared.");
    }
    if record.backlog {
        text.push_str(" Backlog (from an import of old lists).");
    }
    text
}

/// A string in a pattern's quotes: `'` and `\` escaped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// One identifier's observation expression.
fn observation(canonical: &Canonical) -> String {
    let value = quoted(canonical.value());
    match canonical.kind() {
        Kind::Account | Kind::AccountId => {
            let platform = quoted(account_type(canonical.platform().unwrap_or_default()));
            let property =
                if canonical.kind() == Kind::Account { "account_login" } else { "user_id" };
            format!(
                "[user-account:account_type = {platform} AND user-account:{property} = {value}]"
            )
        }
        Kind::Email => format!("[email-addr:value = {value}]"),
        Kind::Url => format!("[url:value = {value}]"),
        Kind::Domain => format!("[domain-name:value = {value}]"),
        Kind::Phone => format!("[{}:value = {value}]", PHONE_EXTENSION.name),
    }
}

/// An identifier's observable, with its deterministic id; none for a phone number.
fn observable(canonical: &Canonical) -> Option<(String, Value)> {
    let value = canonical.value();
    let (kind, props): (&str, Vec<(&str, &str)>) = match canonical.kind() {
        Kind::Account => (
            "user-account",
            vec![
                ("account_type", account_type(canonical.platform().unwrap_or_default())),
                ("account_login", value),
            ],
        ),
        Kind::AccountId => (
            "user-account",
            vec![
                ("account_type", account_type(canonical.platform().unwrap_or_default())),
                ("user_id", value),
            ],
        ),
        Kind::Email => ("email-addr", vec![("value", value)]),
        Kind::Url => ("url", vec![("value", value)]),
        Kind::Domain => ("domain-name", vec![("value", value)]),
        Kind::Phone => return None,
    };
    let id = sco_id(kind, &props);
    let mut object = json!({ "type": kind, "spec_version": "2.1", "id": id });
    for (name, value) in props {
        object[name] = Value::from(value);
    }
    Some((id, object))
}

#[cfg(test)]
mod tests;
