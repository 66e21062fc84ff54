//! Checks canonicalisation and tokens against `tests/vectors/tokens.json`, the vectors every
//! implementation of the token rules must reproduce.

use crossmatch_protocol::{
    Canonical, EpochKey, FederationId, FederationSecret, Kind, canonicalize,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Vectors {
    federation_id_hex: String,
    secret_hex: String,
    epoch: u32,
    cases: Vec<Case>,
    rejects: Vec<Reject>,
}

#[derive(Debug, Deserialize)]
struct Case {
    kind: String,
    platform: Option<String>,
    region: Option<String>,
    input: String,
    canonical: String,
    token_hex: String,
}

#[derive(Debug, Deserialize)]
struct Reject {
    kind: String,
    platform: Option<String>,
    region: Option<String>,
    input: String,
    rule: String,
}

fn vectors() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/tokens.json");
    let text = std::fs::read_to_string(path).expect("reading the token vectors");
    serde_json::from_str(&text).expect("parsing the token vectors")
}

fn kind(name: &str) -> Kind {
    name.parse().unwrap_or_else(|error| panic!("{name}: {error}"))
}

#[test]
fn every_case_canonicalises_and_tokenises_as_recorded() {
    let vectors = vectors();
    let secret: [u8; 32] =
        hex::decode(&vectors.secret_hex).expect("secret hex").try_into().expect("32 bytes");
    let key = EpochKey::derive(
        &vectors.federation_id_hex.parse::<FederationId>().expect("federation id hex"),
        &FederationSecret::from_bytes(secret),
        vectors.epoch,
    );
    let mut failures = Vec::new();
    for case in &vectors.cases {
        let result = canonicalize(
            kind(&case.kind),
            case.platform.as_deref(),
            case.region.as_deref(),
            &case.input,
        );
        let canonical = match result {
            Ok(canonical) => canonical,
            Err(error) => {
                failures.push(format!("{:?}: refused: {error}", case.input));
                continue;
            }
        };
        if canonical.as_str() != case.canonical {
            failures
                .push(format!("{:?}: got {canonical}, expected {}", case.input, case.canonical));
            continue;
        }
        let token = key.token(&canonical).to_string();
        if token != case.token_hex {
            failures
                .push(format!("{}: token {token}, expected {}", case.canonical, case.token_hex));
        }
        // Every recorded canonical form is itself accepted as one.
        if case.canonical.parse::<Canonical>().as_ref() != Ok(&canonical) {
            failures.push(format!("{}: not a fixed point", case.canonical));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        vectors.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_reject_is_refused_by_the_recorded_rule_without_echoing_the_input() {
    let vectors = vectors();
    let mut failures = Vec::new();
    for reject in &vectors.rejects {
        let result = canonicalize(
            kind(&reject.kind),
            reject.platform.as_deref(),
            reject.region.as_deref(),
            &reject.input,
        );
        match result {
            Ok(canonical) => failures.push(format!("{:?}: accepted as {canonical}", reject.input)),
            Err(error) if error.rule.code() != reject.rule => failures.push(format!(
                "{:?}: refused by {}, expected {}",
                reject.input,
                error.rule.code(),
                reject.rule
            )),
            Err(error) => {
                assert_eq!(error.input, reject.input);
                let trimmed = reject.input.trim();
                let message = error.to_string();
                assert!(trimmed.len() < 3 || !message.contains(trimmed), "{message}");
            }
        }
    }
    assert!(failures.is_empty(), "{} rejects failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_vectors_cover_every_kind_and_platform() {
    let vectors = vectors();
    assert!(vectors.cases.len() >= 80);
    assert!(vectors.rejects.len() >= 25);
    let covered =
        |prefix: String| vectors.cases.iter().any(|case| case.canonical.starts_with(&prefix));
    for kind in Kind::ALL {
        assert!(covered(format!("v1|{kind}|")), "{kind}");
    }
    for platform in ["x", "telegram", "facebook", "instagram", "youtube", "tiktok", "vk.com"] {
        assert!(covered(format!("v1|account|{platform}|")), "{platform}");
        assert!(covered(format!("v1|account_id|{platform}|")), "{platform} id");
    }
}
