//! `crossmatch secret seal` and `secret open`: the federation secret never travels as a plain
//! file. The coordinator seals it to each member's sealing key (X25519, the conversion of the
//! node key, listed in the roster) with fresh ephemeral randomness, one file per member; each
//! member opens its copy with its node key and checks the secret's fingerprint against the
//! roster's, whose phone form both sides read out.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use clap::Args;
use crossmatch_protocol::{
    SealedSecret, open_secret, seal_secret, secret_fingerprint, secret_fingerprint_phone_form,
};

use super::{Error, read_small, say};
use crate::keyfile;
use crate::roster_file;

/// `secret seal`.
#[derive(Debug, Args)]
pub struct SealArgs {
    /// The roster: its members' sealing keys, the federation and the epoch.
    #[arg(long)]
    pub roster: PathBuf,
    /// The federation secret; its fingerprint must be the roster's.
    #[arg(long)]
    pub secret: PathBuf,
    /// The directory to write `<member id>.sealed` into (created owner-only if missing).
    #[arg(long)]
    pub out_dir: PathBuf,
}

/// `secret open`.
#[derive(Debug, Args)]
pub struct SecretOpenArgs {
    /// This member's sealed copy (`<member id>.sealed`).
    #[arg(long)]
    pub sealed: PathBuf,
    /// This member's node key (`node.key`).
    #[arg(long)]
    pub key: PathBuf,
    /// The roster, whose secret fingerprint the opened secret must have.
    #[arg(long)]
    pub roster: PathBuf,
    /// Where to write the secret (mode 0600, never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Seals the secret to every member of the roster.
pub fn seal(args: &SealArgs, out: &mut dyn Write) -> Result<(), Error> {
    let file = roster_file::read(&args.roster)?;
    let body = &file.roster.body;
    body.validate().map_err(|problem| {
        Error::Input(format!("{}: not sealed to: {problem}", args.roster.display()))
    })?;
    let secret = keyfile::read_federation_secret(&args.secret)?;
    let fingerprint = secret_fingerprint(&secret);
    if fingerprint != body.secret_fingerprint {
        return Err(Error::Input(format!(
            "the secret's fingerprint {} is not the roster's {}: another secret",
            secret_fingerprint_phone_form(&fingerprint),
            secret_fingerprint_phone_form(&body.secret_fingerprint)
        )));
    }
    let io = |source| Error::Write { path: args.out_dir.clone(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&args.out_dir).map_err(io)?;
    for member in &body.members {
        let ephemeral = keyfile::random_32().map_err(|_| Error::Randomness)?;
        let sealed = seal_secret(
            &secret,
            &body.federation_id,
            body.epoch,
            &member.id,
            &member.sealing_key,
            &ephemeral,
        )
        .map_err(|error| Error::Input(format!("member {}: {error}", member.id)))?;
        let path = args.out_dir.join(format!("{}.sealed", member.id));
        keyfile::write_private_text(&path, &format!("{}\n", hex::encode(sealed.to_wire())))?;
        say(out, format_args!("sealed to {}: {}", member.id, path.display()));
    }
    say(
        out,
        format_args!(
            "secret fingerprint (epoch {}): {}",
            body.epoch,
            secret_fingerprint_phone_form(&fingerprint)
        ),
    );
    Ok(())
}

/// Opens this member's sealed copy and writes the secret, if its fingerprint is the roster's.
pub fn open(args: &SecretOpenArgs, out: &mut dyn Write) -> Result<(), Error> {
    let key = keyfile::read_signing_key(&args.key)?;
    let file = roster_file::read(&args.roster)?;
    let body = &file.roster.body;
    let text = read_small(&args.sealed, 4096)?;
    let not_sealed = || Error::Input(format!("{} is not a sealed secret", args.sealed.display()));
    let wire = hex::decode(text.trim()).map_err(|_| not_sealed())?;
    let sealed = SealedSecret::from_wire(&wire).map_err(|_| not_sealed())?;
    let own = key.public_key();
    let member = body.members.iter().find(|m| m.node_key == own).ok_or_else(|| {
        Error::Input(format!("{} does not list this node key", args.roster.display()))
    })?;
    if sealed.federation_id != body.federation_id || sealed.member != member.id {
        return Err(Error::Input(format!(
            "{} is sealed for another federation or member, not {}",
            args.sealed.display(),
            member.id
        )));
    }
    let secret = open_secret(&sealed, &key)
        .map_err(|error| Error::Input(format!("{}: {error}", args.sealed.display())))?;
    let fingerprint = secret_fingerprint(&secret);
    say(
        out,
        format_args!(
            "secret fingerprint (epoch {}): {}",
            sealed.epoch,
            secret_fingerprint_phone_form(&fingerprint)
        ),
    );
    let expected = if sealed.epoch == body.epoch {
        Some(body.secret_fingerprint)
    } else {
        body.rotation
            .filter(|rotation| rotation.previous_epoch == sealed.epoch)
            .map(|rotation| rotation.previous_secret_fingerprint)
    };
    match expected {
        Some(expected) if expected == fingerprint => {}
        Some(expected) => {
            return Err(Error::Input(format!(
                "not written: the roster's secret fingerprint for epoch {} is {}",
                sealed.epoch,
                secret_fingerprint_phone_form(&expected)
            )));
        }
        None => {
            return Err(Error::Input(format!(
                "not written: the roster names no secret of epoch {}",
                sealed.epoch
            )));
        }
    }
    keyfile::write_federation_secret(&args.out, &secret)?;
    say(
        out,
        format_args!(
            "written to {}; read the fingerprint to the coordinator by phone",
            args.out.display()
        ),
    );
    Ok(())
}
