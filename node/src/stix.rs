//! STIX 2.1 as crossmatch writes and reads it (docs/STIX.md): the fixed, published objects
//! (the project identity, a marking definition per handling code, the extension definitions),
//! the TLP marking ids and what each means here, object ids (deterministic UUIDv5 for
//! observables, UUIDv4 for everything else), timestamps, and the platform's `account_type`.
//! The import's reader (`import/stix.rs`) and the export's writer (`stix/export.rs`) share it.

pub mod export;

use std::collections::BTreeMap;

use crossmatch_protocol::Handling;
use uuid::{Builder, Uuid};

/// The namespace of observables' deterministic ids (STIX 2.1 §2.9).
pub const SCO_NAMESPACE: &str = "00abedb4-aa42-466c-9c01-fed23315a9b7";
const SCO_NAMESPACE_UUID: Uuid = uuid::uuid!("00abedb4-aa42-466c-9c01-fed23315a9b7");

/// `created` and `modified` of every fixed object.
pub const FIXED_TIMESTAMP: &str = "2026-01-01T00:00:00.000Z";
/// [`FIXED_TIMESTAMP`] in Unix ms.
pub const FIXED_TIMESTAMP_MS: u64 = 1_767_225_600_000;

/// The project's identity, which creates the fixed objects.
pub const PROJECT_IDENTITY_ID: &str = "identity--4afb678d-4128-421e-91a5-36b62c4dccd3";
/// Its `name` (`identity_class`: `system`).
pub const PROJECT_IDENTITY_NAME: &str = "crossmatch";

/// A handling code's marking definition (`definition_type: statement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlingMarking {
    /// The code.
    pub handling: Handling,
    /// Its fixed id.
    pub id: &'static str,
    /// The statement, in docs/DESIGN.md's words.
    pub statement: &'static str,
}

/// The four handling codes' marking definitions, in code order.
pub const HANDLING_MARKINGS: [HandlingMarking; 4] = [
    HandlingMarking {
        handling: Handling::H0,
        id: "marking-definition--4e2c8bad-945a-4163-9711-975618a05204",
        statement: "Europol handling code H0: law-enforcement use only.",
    },
    HandlingMarking {
        handling: Handling::H1,
        id: "marking-definition--cc6d57b7-1f5e-4f22-8be8-1d77606cc08f",
        statement: "Europol handling code H1: not for use as evidence without permission.",
    },
    HandlingMarking {
        handling: Handling::H2,
        id: "marking-definition--4c3ed6d2-07f5-4618-ae49-c228f36b668b",
        statement: "Europol handling code H2: not to be disseminated without permission.",
    },
    HandlingMarking {
        handling: Handling::H3,
        id: "marking-definition--ff9c8716-0931-46e2-8415-9cf7d96e6836",
        statement: "Europol handling code H3: other restrictions; not shared.",
    },
];

/// The fixed marking definition id of a handling code.
pub fn handling_marking_id(handling: Handling) -> &'static str {
    match handling {
        Handling::H0 => HANDLING_MARKINGS[0].id,
        Handling::H1 => HANDLING_MARKINGS[1].id,
        Handling::H2 => HANDLING_MARKINGS[2].id,
        Handling::H3 => HANDLING_MARKINGS[3].id,
    }
}

/// One of the project's extension definitions (docs/STIX.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionDefinition {
    /// Its fixed id.
    pub id: &'static str,
    /// Its `name`.
    pub name: &'static str,
    /// Its `extension_types` (one).
    pub extension_type: &'static str,
    /// Its `description`.
    pub description: &'static str,
}

/// `x-crossmatch-phone`: a phone number (E.164), which has no STIX observable; in patterns only.
pub const PHONE_EXTENSION: ExtensionDefinition = ExtensionDefinition {
    id: "extension-definition--2955fb0e-a111-4b7c-84e7-88c961177866",
    name: "x-crossmatch-phone",
    extension_type: "new-sco",
    description: "A phone number in E.164 form, as crossmatch canonicalises it.",
};
/// The tokens of an indicator's identifiers, with the federation id and epoch.
pub const TOKENS_EXTENSION: ExtensionDefinition = ExtensionDefinition {
    id: "extension-definition--a0d0ecf1-be4c-4695-9b67-3de2eff8175d",
    name: "crossmatch tokens",
    extension_type: "property-extension",
    description: "The keyed tokens of an indicator's identifiers, in pattern order, with the \
                  federation id and token epoch they were computed under.",
};
/// `x-crossmatch-withdrawn`: the placeholder pattern of a revoked indicator.
pub const WITHDRAWN_EXTENSION: ExtensionDefinition = ExtensionDefinition {
    id: "extension-definition--9a52d586-2c1d-4dcf-b04f-d99150236b04",
    name: "x-crossmatch-withdrawn",
    extension_type: "new-sco",
    description: "Names a withdrawn indicator in the pattern of its revoked version, whose \
                  identifiers went with its record.",
};
/// Every extension definition.
pub const EXTENSIONS: [ExtensionDefinition; 3] =
    [PHONE_EXTENSION, TOKENS_EXTENSION, WITHDRAWN_EXTENSION];

/// A TLP level (1.0 WHITE is 2.0 CLEAR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tlp {
    /// 1.0 WHITE, 2.0 CLEAR.
    Clear,
    /// GREEN.
    Green,
    /// AMBER.
    Amber,
    /// 2.0 AMBER+STRICT.
    AmberStrict,
    /// RED.
    Red,
}

impl Tlp {
    /// The handling code it imports as (docs/STIX.md §2): CLEAR and GREEN H0, AMBER H2,
    /// AMBER+STRICT and RED H3, a watch (the audited overrides make them H2, shared).
    pub const fn handling(self) -> Handling {
        match self {
            Tlp::Clear | Tlp::Green => Handling::H0,
            Tlp::Amber => Handling::H2,
            Tlp::AmberStrict | Tlp::Red => Handling::H3,
        }
    }

    /// Its name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }
}

/// The TLP 1.0 and 2.0 marking definitions, by their fixed ids.
pub const TLP_MARKINGS: [(&str, Tlp); 9] = [
    ("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", Tlp::Clear),
    ("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", Tlp::Clear),
    ("marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", Tlp::Green),
    ("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", Tlp::Green),
    ("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", Tlp::Amber),
    ("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", Tlp::Amber),
    ("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", Tlp::AmberStrict),
    ("marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", Tlp::Red),
    ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", Tlp::Red),
];

/// What a marking definition id means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marking {
    /// A TLP 1.0 or 2.0 marking.
    Tlp(Tlp),
    /// One of this project's handling markings.
    Handling(Handling),
    /// Anything else: the strictest code, reported.
    Unknown,
}

/// The meaning of the marking definition `id` (`marking-definition--<uuid>`).
pub fn marking(id: &str) -> Marking {
    if let Some((_, tlp)) = TLP_MARKINGS.iter().find(|(tlp_id, _)| *tlp_id == id) {
        return Marking::Tlp(*tlp);
    }
    HANDLING_MARKINGS
        .iter()
        .find(|marking| marking.id == id)
        .map_or(Marking::Unknown, |marking| Marking::Handling(marking.handling))
}

/// An observable's deterministic id: `<kind>--` UUIDv5 in [`SCO_NAMESPACE`] over the JSON
/// canonicalisation (RFC 8785) of its contributing properties. Only string properties are
/// written, with ASCII names, so JCS is `serde_json` of the sorted map.
pub fn sco_id(kind: &str, props: &[(&str, &str)]) -> String {
    let sorted: BTreeMap<&str, &str> = props.iter().copied().collect();
    // Serialising a map of strings cannot fail.
    let json = serde_json::to_vec(&sorted).unwrap_or_default();
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(SCO_NAMESPACE_UUID.as_bytes());
    context.update(&json);
    let digest = context.finish();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    format!("{kind}--{}", Builder::from_sha1_bytes(bytes).into_uuid())
}

/// A fresh random UUIDv4 (the node's randomness; should the system refuse it, a hash of the
/// time, the process and a counter, unique in the process).
pub fn new_uuid() -> [u8; 16] {
    let mut bytes = [0; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static FALLBACK: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let mut hasher = blake3::Hasher::new_derive_key("crossmatch stix uuid fallback v1");
        hasher.update(&now.to_be_bytes());
        hasher.update(&std::process::id().to_be_bytes());
        hasher.update(&FALLBACK.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        hasher.finalize_xof().fill(&mut bytes);
    }
    *Builder::from_random_bytes(bytes).into_uuid().as_bytes()
}

/// An object id: `<kind>--<uuid>`, lower-case and hyphenated.
pub fn object_id(kind: &str, uuid: &[u8; 16]) -> String {
    format!("{kind}--{}", Uuid::from_bytes(*uuid))
}

/// The UUID of an object id `<kind>--<uuid>`, if it is one.
pub fn parse_object_id(id: &str) -> Option<(&str, [u8; 16])> {
    let (kind, uuid) = id.split_once("--")?;
    Some((kind, *Uuid::try_parse(uuid).ok()?.as_bytes()))
}

/// Latest time a STIX timestamp can carry (9999-12-31T23:59:59.999Z), in Unix ms.
const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// A STIX timestamp, UTC with exactly three fraction digits (`2026-01-01T00:00:00.000Z`);
/// times past the year 9999 are written as its last millisecond.
pub fn timestamp(ms: u64) -> String {
    let ms = ms.min(MAX_TIMESTAMP_MS);
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            ms % 1000
        ),
        // Unreachable within the bound above.
        Err(_) => "9999-12-31T23:59:59.999Z".to_owned(),
    }
}

/// A STIX timestamp (RFC 3339 in UTC, `Z`, any number of fraction digits) in Unix ms, digits
/// past the millisecond dropped; `None` for anything else or a time before 1970.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    if !text.ends_with('Z') {
        return None;
    }
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The STIX `account_type` of a platform: `x` is `twitter` (in STIX's open vocabulary
/// `account-type-ov`), every other platform as crossmatch names it (facebook is in the
/// vocabulary; telegram, instagram, youtube, tiktok and domains are not, which is why the
/// validator's check 244 is off in CI).
pub fn account_type(platform: &str) -> &str {
    match platform {
        "x" => "twitter",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmatch_protocol::{Kind, canonicalize};

    #[test]
    fn observable_ids_are_the_standard_uuidv5_vectors() {
        assert_eq!(SCO_NAMESPACE_UUID.to_string(), SCO_NAMESPACE);
        assert_eq!(
            sco_id("domain-name", &[("value", "example.com")]),
            "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7"
        );
        assert_eq!(
            sco_id("email-addr", &[("value", "jdoe@example.com")]),
            "email-addr--6deb37bd-12b7-54ae-805f-5f7146f3d171"
        );
        assert_eq!(
            sco_id("url", &[("value", "https://example.com/")]),
            "url--be22e93a-5e33-5678-b19f-8b4ea06df0bd"
        );
        // Property order does not matter: JCS sorts them.
        let account = "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598";
        let login = ("account_login", "example_handle");
        assert_eq!(sco_id("user-account", &[login, ("account_type", "twitter")]), account);
        assert_eq!(sco_id("user-account", &[("account_type", "twitter"), login]), account);
        assert_eq!(
            sco_id("user-account", &[("user_id", "123456789"), ("account_type", "telegram")]),
            "user-account--41516365-9ad7-5140-acc9-0db7b8de381d"
        );
    }

    #[test]
    fn fresh_uuids_are_version_4_and_differ() {
        let (a, b) = (new_uuid(), new_uuid());
        assert_ne!(a, b);
        for uuid in [a, b] {
            let uuid = Uuid::from_bytes(uuid);
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        }
        let id = object_id("indicator", &a);
        assert!(id.starts_with("indicator--") && id.len() == "indicator--".len() + 36, "{id}");
        assert_eq!(parse_object_id(&id), Some(("indicator", a)));
        assert_eq!(parse_object_id("indicator--not-a-uuid"), None);
        assert_eq!(parse_object_id("indicator"), None);
    }

    #[test]
    fn timestamps_have_three_fraction_digits_and_parse_back() {
        assert_eq!(timestamp(FIXED_TIMESTAMP_MS), FIXED_TIMESTAMP);
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_767_225_600_007), "2026-01-01T00:00:00.007Z");
        assert_eq!(timestamp(u64::MAX), "9999-12-31T23:59:59.999Z");
        for ms in [0, 1, 999, FIXED_TIMESTAMP_MS, 1_800_000_000_123, MAX_TIMESTAMP_MS] {
            assert_eq!(parse_timestamp(&timestamp(ms)), Some(ms));
        }
        assert_eq!(parse_timestamp("2026-01-01T00:00:00Z"), Some(FIXED_TIMESTAMP_MS));
        assert_eq!(parse_timestamp("2026-01-01T00:00:00.123456Z"), Some(FIXED_TIMESTAMP_MS + 123));
        for refused in ["2026-01-01T01:00:00+01:00", "2026-01-01", "1969-12-31T23:59:59Z", ""] {
            assert_eq!(parse_timestamp(refused), None, "{refused}");
        }
    }

    #[test]
    fn markings_are_recognised_by_their_fixed_ids() {
        let tlp = |id: &str| match marking(&format!("marking-definition--{id}")) {
            Marking::Tlp(tlp) => Some(tlp.handling()),
            _ => None,
        };
        assert_eq!(tlp("613f2e26-407d-48c7-9eca-b8e91df99dc9"), Some(Handling::H0));
        assert_eq!(tlp("bab4a63c-aed9-4cf5-a766-dfca5abac2bb"), Some(Handling::H0));
        assert_eq!(tlp("55d920b0-5e8b-4f79-9ee9-91f868d9b421"), Some(Handling::H2));
        assert_eq!(tlp("939a9414-2ddd-4d32-a0cd-375ea402b003"), Some(Handling::H3));
        assert_eq!(tlp("e828b379-4e03-4974-9ac4-e53a884c97c1"), Some(Handling::H3));
        assert_eq!(tlp("5e57c739-391a-4eb3-b6be-7d15ca92d5ed"), Some(Handling::H3));
        // OpenCTI's own AMBER+STRICT definition is not one of the fixed ids.
        assert_eq!(
            marking("marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"),
            Marking::Unknown
        );
        for handling in Handling::ALL {
            assert_eq!(marking(handling_marking_id(*handling)), Marking::Handling(*handling));
        }
        let mut ids: Vec<&str> = TLP_MARKINGS.iter().map(|(id, _)| *id).collect();
        ids.extend(HANDLING_MARKINGS.iter().map(|m| m.id));
        ids.extend(EXTENSIONS.iter().map(|e| e.id));
        ids.push(PROJECT_IDENTITY_ID);
        for id in &ids {
            let (_, uuid) = parse_object_id(id).expect("a fixed id parses");
            assert_eq!(object_id(id.split("--").next().unwrap(), &uuid), *id, "lower-case");
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 9 + 4 + 3 + 1, "fixed ids are distinct");
    }

    #[test]
    fn account_types_name_the_platform_canonicalize_reads_back() {
        assert_eq!(account_type("x"), "twitter");
        for platform in
            ["x", "telegram", "facebook", "instagram", "youtube", "tiktok", "example.org"]
        {
            let canonical =
                canonicalize(Kind::Account, Some(account_type(platform)), None, "handleone")
                    .expect("a handle every platform takes");
            assert_eq!(canonical.platform(), Some(platform));
        }
    }
}
