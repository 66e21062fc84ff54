//! The ceremony tools' unit tests: a whole founding ceremony through the commands; the
//! signing log's and the seal log's refusals of a second roster of one version; seal refusing too few signatures
//! (naming who is missing) and checking a successor against the version in force; a signed
//! roster edited only as the next version's draft; `secret open` refusing a secret whose
//! fingerprint is not the roster's; a card whose sealing key does not follow from its keys;
//! `member-record` refusing an address that is not a multiaddr.

use super::*;
use crate::init_cli;
use crate::test_support::{T0, TempDir};
use crossmatch_protocol::FederationSecret;
use std::os::unix::fs::PermissionsExt;

struct Ceremony {
    dir: TempDir,
}

impl Ceremony {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn federation(&self, command: FederationCommand) -> Result<String, Error> {
        let mut out = Vec::new();
        run(command, &mut out, T0)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn target(&self, roster: &str) -> EditTarget {
        EditTarget { roster: self.path(roster), next: false, out: None, threshold: None }
    }

    /// Members `ids` set up by `init`, a secret and a version-1 draft with all of them.
    fn new(ids: &[&str]) -> Self {
        let ceremony = Self { dir: TempDir::new("federation-cli") };
        for id in ids {
            init_cli::init(id, &ceremony.path(id)).unwrap();
        }
        keyfile::write_federation_secret(
            &ceremony.path("federation.secret"),
            &FederationSecret::from_bytes([3; 32]),
        )
        .unwrap();
        ceremony
            .federation(FederationCommand::New(NewArgs {
                secret: ceremony.path("federation.secret"),
                out: ceremony.path("roster.toml"),
                threshold: None,
                expires_in_days: 365,
                max_retention_days: 365,
                quota_entries_per_day: 1000,
                quota_bytes_per_day: 1_000_000,
            }))
            .unwrap();
        for id in ids {
            ceremony
                .federation(FederationCommand::AddMember(AddMemberArgs {
                    target: ceremony.target("roster.toml"),
                    card: ceremony.path(id).join(CARD_FILE),
                    name: None,
                }))
                .unwrap();
        }
        ceremony
    }

    fn sign(&self, roster: &str, id: &str) -> Result<String, Error> {
        self.federation(FederationCommand::Sign(SignArgs {
            roster: self.path(roster),
            governance_key: self.path(id).join(init_cli::GOVERNANCE_KEY_FILE),
            member: id.into(),
            previous: None,
        }))
    }

    fn seal(&self, roster: &str, previous: &[&str], out: &str) -> Result<String, Error> {
        self.federation(FederationCommand::Seal(SealRosterArgs {
            roster: self.path(roster),
            previous: previous.iter().map(|p| self.path(p)).collect(),
            out: self.path(out),
            log: None,
        }))
    }
}

#[test]
fn a_founding_roster_is_sealed_only_with_every_members_signature() {
    let ceremony = Ceremony::new(&["DE", "FR", "NL"]);
    let draft = roster_file::read(&ceremony.path("roster.toml")).unwrap();
    assert_eq!(draft.roster.body.members.len(), 3);
    assert_eq!(draft.roster.body.threshold, 2, "the least majority of 3");
    ceremony.sign("roster.toml", "DE").unwrap();
    ceremony.sign("roster.toml", "NL").unwrap();
    let refused = ceremony.seal("roster.toml", &[], "sealed.toml").unwrap_err();
    assert_eq!(refused.exit_code(), 2);
    let message = refused.to_string();
    assert!(
        message.contains("needs all 3 members") && message.contains("missing: FR"),
        "{message}"
    );
    assert!(!ceremony.path("sealed.toml").exists());
    ceremony.sign("roster.toml", "FR").unwrap();
    let sealed = ceremony.seal("roster.toml", &[], "sealed.toml").unwrap();
    assert!(sealed.contains("version 1 sealed"), "{sealed}");
    let file = roster_file::read(&ceremony.path("sealed.toml")).unwrap();
    verify_founding(&file.roster).unwrap();
    // The show command lists every signature as valid and nobody missing.
    let shown = ceremony
        .federation(FederationCommand::Show(ShowArgs { roster: ceremony.path("sealed.toml") }))
        .unwrap();
    assert_eq!(shown.matches(" valid").count(), 3, "{shown}");
    assert!(!shown.contains("not signed by"), "{shown}");
    assert!(shown.contains(&hex::encode(file.roster.hash())), "{shown}");
}

#[test]
fn the_signing_log_refuses_a_second_roster_of_one_version() {
    let ceremony = Ceremony::new(&["DE", "FR"]);
    std::fs::copy(ceremony.path("roster.toml"), ceremony.path("other.toml")).unwrap();
    ceremony.sign("roster.toml", "DE").unwrap();
    // Signing the same roster again is harmless.
    ceremony.sign("roster.toml", "DE").unwrap();
    // A different roster of version 1 (another member's name) is refused by DE's log.
    let mut other = roster_file::read(&ceremony.path("other.toml")).unwrap();
    other.roster.body.members[1].name = "someone else".into();
    write_roster(&ceremony.path("other.toml"), &other, true).unwrap();
    let refused = ceremony.sign("other.toml", "DE").unwrap_err().to_string();
    assert!(refused.contains("signed a different roster of version 1"), "{refused}");
    assert!(roster_file::read(&ceremony.path("other.toml")).unwrap().roster.signatures.is_empty());
    // FR, who signed neither, may sign it; the log is beside the key, one line per roster.
    ceremony.sign("other.toml", "FR").unwrap();
    let log = std::fs::read_to_string(signing_log_path(
        &ceremony.path("DE").join(init_cli::GOVERNANCE_KEY_FILE),
    ))
    .unwrap();
    assert_eq!(log.lines().filter(|l| !l.starts_with('#')).count(), 1, "{log}");
    // Another member's governance key does not sign as DE.
    let refused = ceremony
        .federation(FederationCommand::Sign(SignArgs {
            roster: ceremony.path("roster.toml"),
            governance_key: ceremony.path("FR").join(init_cli::GOVERNANCE_KEY_FILE),
            member: "DE".into(),
            previous: None,
        }))
        .unwrap_err();
    assert!(refused.to_string().contains("not member DE's governance key"), "{refused}");
}

#[test]
fn the_seal_log_refuses_a_second_roster_of_one_version() {
    let ceremony = Ceremony::new(&["DE", "FR"]);
    std::fs::copy(ceremony.path("roster.toml"), ceremony.path("other.toml")).unwrap();
    let mut other = roster_file::read(&ceremony.path("other.toml")).unwrap();
    other.roster.body.members[1].name = "someone else".into();
    write_roster(&ceremony.path("other.toml"), &other, true).unwrap();
    // Both rosters of version 1 signed by every member: the members' signing logs were lost
    // between the two (as after a restore), so only the seal log stands between them.
    for roster in ["roster.toml", "other.toml"] {
        for id in ["DE", "FR"] {
            ceremony.sign(roster, id).unwrap();
            let key = ceremony.path(id).join(init_cli::GOVERNANCE_KEY_FILE);
            std::fs::remove_file(signing_log_path(&key)).unwrap();
        }
    }
    ceremony.seal("roster.toml", &[], "sealed.toml").unwrap();
    // Sealing the same roster again is harmless.
    ceremony.seal("roster.toml", &[], "sealed-again.toml").unwrap();
    let refused = ceremony.seal("other.toml", &[], "other.final.toml").unwrap_err();
    assert_eq!(refused.exit_code(), 2);
    let message = refused.to_string();
    assert!(message.contains("a different roster of version 1 was sealed before"), "{message}");
    assert!(!ceremony.path("other.final.toml").exists(), "nothing written");
    // The log is beside the sealed file, owner-only, one line per roster.
    let log_path = ceremony.path(SEAL_LOG_FILE);
    assert_eq!(log_path, seal_log_path(&ceremony.path("sealed.toml")));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(log.lines().filter(|l| !l.starts_with('#')).count(), 1, "{log}");
    assert!(log.contains(&hex::encode(
        roster_file::read(&ceremony.path("sealed.toml")).unwrap().roster.hash()
    )));
    assert_eq!(std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777, 0o600);
    // A damaged log refuses to seal anything.
    std::fs::write(&log_path, "not a log line\n").unwrap();
    let refused = ceremony.seal("roster.toml", &[], "sealed.toml").unwrap_err().to_string();
    assert!(refused.contains("is damaged") && refused.contains("refusing to seal"), "{refused}");
    // Another log (--log) knows nothing of the first.
    let sealed = ceremony.federation(FederationCommand::Seal(SealRosterArgs {
        roster: ceremony.path("other.toml"),
        previous: Vec::new(),
        out: ceremony.path("other.final.toml"),
        log: Some(ceremony.path("elsewhere.sealed")),
    }));
    assert!(sealed.unwrap().contains("version 1 sealed"));
}

#[test]
fn a_signed_roster_changes_only_as_the_next_versions_draft_with_k_signatures() {
    let ceremony = Ceremony::new(&["DE", "FR", "NL"]);
    for id in ["DE", "FR", "NL"] {
        ceremony.sign("roster.toml", id).unwrap();
    }
    ceremony.seal("roster.toml", &[], "v1.toml").unwrap();
    let remove = |next: bool, no_rotate: bool| RemoveMemberArgs {
        target: EditTarget {
            roster: ceremony.path("v1.toml"),
            next,
            out: next.then(|| ceremony.path("v2.toml")),
            threshold: None,
        },
        id: "NL".into(),
        rotation: RotationArgs { secret_out: None, changeover: None, grace: DEFAULT_GRACE_DAYS },
        no_rotate,
    };
    let refused =
        ceremony.federation(FederationCommand::RemoveMember(remove(false, true))).unwrap_err();
    assert!(refused.to_string().contains("--next"), "{refused}");
    // A removal from a roster in force rotates the secret, or says it does not.
    let refused =
        ceremony.federation(FederationCommand::RemoveMember(remove(true, false))).unwrap_err();
    let refused = refused.to_string();
    assert!(refused.contains("--secret-out FILE") && refused.contains("--no-rotate"), "{refused}");
    assert!(!ceremony.path("v2.toml").exists(), "nothing written");
    let said = ceremony.federation(FederationCommand::RemoveMember(remove(true, true))).unwrap();
    assert!(said.contains("still holds the secret") && said.contains("can compute"), "{said}");
    let v2 = roster_file::read(&ceremony.path("v2.toml")).unwrap();
    assert_eq!((v2.roster.body.version, v2.roster.body.members.len()), (2, 2));
    assert_eq!(v2.roster.body.threshold, 2, "2 members need both");
    assert!(v2.roster.signatures.is_empty());
    // k of version 1 (2 of 3) must sign version 2: one is too few, whoever it is.
    ceremony
        .federation(FederationCommand::Sign(SignArgs {
            roster: ceremony.path("v2.toml"),
            governance_key: ceremony.path("NL").join(init_cli::GOVERNANCE_KEY_FILE),
            member: "NL".into(),
            previous: Some(ceremony.path("v1.toml")),
        }))
        .unwrap();
    let refused = ceremony.seal("v2.toml", &["v1.toml"], "v2.sealed.toml").unwrap_err().to_string();
    assert!(refused.contains("needs 2 of version 1's 3 members"), "{refused}");
    assert!(refused.contains("missing: DE, FR"), "{refused}");
    ceremony.sign("v2.toml", "DE").unwrap();
    ceremony.seal("v2.toml", &["v1.toml"], "v2.sealed.toml").unwrap();
    // As a founding roster it is not enough: FR did not sign it.
    assert!(ceremony.seal("v2.toml", &[], "v2.founding.toml").is_err());
}

#[test]
fn a_removal_with_secret_out_rotates_and_its_sealed_successor_verifies() {
    let ceremony = Ceremony::new(&["DE", "FR", "NL"]);
    for id in ["DE", "FR", "NL"] {
        ceremony.sign("roster.toml", id).unwrap();
    }
    ceremony.seal("roster.toml", &[], "v1.toml").unwrap();
    let rotation = |secret: &str| RotationArgs {
        secret_out: Some(ceremony.path(secret)),
        changeover: Some("2026-03-01T00:00:00Z".into()),
        grace: 3,
    };
    // The founding roster has no secret to rotate from.
    let founding = ceremony.federation(FederationCommand::Rotate(RotateArgs {
        target: EditTarget { out: Some(ceremony.path("x.toml")), ..ceremony.target("roster.toml") },
        rotation: rotation("x.secret"),
    }));
    assert!(founding.is_err());
    let said = ceremony
        .federation(FederationCommand::RemoveMember(RemoveMemberArgs {
            target: EditTarget {
                roster: ceremony.path("v1.toml"),
                next: true,
                out: Some(ceremony.path("v2.toml")),
                threshold: None,
            },
            id: "NL".into(),
            rotation: rotation("epoch2.secret"),
            no_rotate: false,
        }))
        .unwrap();
    assert!(!said.contains("still holds the secret"), "{said}");
    let secret_path = ceremony.path("epoch2.secret");
    let mode = std::fs::metadata(&secret_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let new_secret = keyfile::read_federation_secret(&secret_path).unwrap();
    let v2 = roster_file::read(&ceremony.path("v2.toml")).unwrap();
    let body = &v2.roster.body;
    assert_eq!((body.version, body.epoch), (2, 2));
    assert_eq!(body.secret_fingerprint, secret_fingerprint(&new_secret));
    assert_eq!(
        body.rotation,
        Some(crossmatch_protocol::Rotation {
            previous_epoch: 1,
            previous_secret_fingerprint: secret_fingerprint(&FederationSecret::from_bytes([3; 32])),
            changeover_at_ms: roster_file::parse_time("2026-03-01T00:00:00Z", "t").unwrap(),
            grace_ms: 3 * DAY_MS,
        })
    );
    ceremony.sign("v2.toml", "DE").unwrap();
    ceremony.sign("v2.toml", "FR").unwrap();
    ceremony.seal("v2.toml", &["v1.toml"], "v2.sealed.toml").unwrap();
    // The new secret is sealed to the remaining members only.
    let mut out = Vec::new();
    secret_seal(
        &SealArgs {
            roster: ceremony.path("v2.sealed.toml"),
            secret: secret_path.clone(),
            out_dir: ceremony.path("sealed2"),
        },
        &mut out,
    )
    .unwrap();
    assert!(ceremony.path("sealed2").join("DE.sealed").exists());
    assert!(!ceremony.path("sealed2").join("NL.sealed").exists());
    // The secret file is never overwritten.
    let again = ceremony.federation(FederationCommand::Rotate(RotateArgs {
        target: EditTarget {
            roster: ceremony.path("v2.sealed.toml"),
            next: true,
            out: Some(ceremony.path("v3.toml")),
            threshold: None,
        },
        rotation: rotation("epoch2.secret"),
    }));
    assert!(again.is_err());
}

#[test]
fn secret_open_refuses_a_secret_whose_fingerprint_is_not_the_rosters() {
    let ceremony = Ceremony::new(&["DE", "FR"]);
    let sealed_dir = ceremony.path("sealed");
    let seal = |secret: &str| {
        let mut out = Vec::new();
        let result = secret_seal(
            &SealArgs {
                roster: ceremony.path("roster.toml"),
                secret: ceremony.path(secret),
                out_dir: sealed_dir.clone(),
            },
            &mut out,
        );
        result.map(|()| String::from_utf8(out).unwrap())
    };
    let open = |out: &str| {
        let mut printed = Vec::new();
        let result = secret_open(
            &SecretOpenArgs {
                sealed: sealed_dir.join("DE.sealed"),
                key: ceremony.path("DE").join(init_cli::NODE_KEY_FILE),
                roster: ceremony.path("roster.toml"),
                out: ceremony.path(out),
            },
            &mut printed,
        );
        (result, String::from_utf8(printed).unwrap())
    };
    // Sealing a secret the roster does not name is refused.
    keyfile::write_federation_secret(
        &ceremony.path("other.secret"),
        &FederationSecret::from_bytes([8; 32]),
    )
    .unwrap();
    assert!(seal("other.secret").unwrap_err().to_string().contains("another secret"));
    seal("federation.secret").unwrap();
    let (opened, printed) = open("de.secret");
    opened.unwrap();
    let expected =
        secret_fingerprint_phone_form(&secret_fingerprint(&FederationSecret::from_bytes([3; 32])));
    assert!(printed.contains(&expected), "{printed}");
    assert_eq!(
        keyfile::read_federation_secret(&ceremony.path("de.secret")).unwrap(),
        FederationSecret::from_bytes([3; 32])
    );
    // FR's node key does not open DE's copy.
    let mut out = Vec::new();
    let refused = secret_open(
        &SecretOpenArgs {
            sealed: sealed_dir.join("DE.sealed"),
            key: ceremony.path("FR").join(init_cli::NODE_KEY_FILE),
            roster: ceremony.path("roster.toml"),
            out: ceremony.path("fr.secret"),
        },
        &mut out,
    );
    assert!(refused.unwrap_err().to_string().contains("sealed for another"));
    // A roster naming another secret: the opened secret is not written, and both phone forms
    // are printed.
    let mut file = roster_file::read(&ceremony.path("roster.toml")).unwrap();
    file.roster.body.secret_fingerprint =
        secret_fingerprint(&FederationSecret::from_bytes([8; 32]));
    write_roster(&ceremony.path("roster.toml"), &file, true).unwrap();
    let (refused, printed) = open("de2.secret");
    let refused = refused.unwrap_err();
    assert_eq!(refused.exit_code(), 2);
    assert!(printed.contains(&expected), "{printed}");
    assert!(
        refused
            .to_string()
            .contains(&secret_fingerprint_phone_form(&file.roster.body.secret_fingerprint)),
        "{refused}"
    );
    assert!(!ceremony.path("de2.secret").exists());
}

#[test]
fn a_card_must_follow_from_its_keys() {
    let ceremony = Ceremony::new(&["DE"]);
    let text = std::fs::read_to_string(ceremony.path("DE").join(CARD_FILE)).unwrap();
    let card = Card::parse(&text).unwrap();
    assert_eq!(Card::parse(&card.render()).unwrap(), card);
    let other_sealing = text.replace(
        &hex::encode(card.node_key.to_x25519()),
        &hex::encode(card.governance_key.to_x25519()),
    );
    assert!(Card::parse(&other_sealing).unwrap_err().to_string().contains("sealing_key"));
    let unknown = format!("{text}address = \"/ip4/1.2.3.4/tcp/1\"\n");
    assert!(Card::parse(&unknown).is_err());
    // The same card twice is refused.
    let refused = ceremony
        .federation(FederationCommand::AddMember(AddMemberArgs {
            target: ceremony.target("roster.toml"),
            card: ceremony.path("DE").join(CARD_FILE),
            name: None,
        }))
        .unwrap_err();
    assert!(refused.to_string().contains("on the roster already"), "{refused}");
}

#[test]
fn member_record_refuses_an_address_that_is_not_a_multiaddr() {
    let ceremony = Ceremony::new(&["DE", "FR"]);
    let args = |address: &str| MemberRecordArgs {
        key: ceremony.path("DE").join(init_cli::NODE_KEY_FILE),
        roster: ceremony.path("roster.toml"),
        seq: 1,
        addresses: vec![address.to_owned()],
        contact: "desk@de.example".into(),
        print: true,
    };
    let mut out = Vec::new();
    let refused = member_record(&args("10.0.0.5:7400"), &mut out).unwrap_err();
    assert_eq!(refused.exit_code(), 2);
    assert!(refused.to_string().contains("is not a multiaddr"), "{refused}");
    assert!(out.is_empty());
    member_record(&args("/ip4/10.0.0.5/tcp/7400"), &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("/ip4/10.0.0.5/tcp/7400"));
}
