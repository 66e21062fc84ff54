//! The rotation of the secret and epoch in a roster draft (docs/PROTOCOL.md §5): `federation
//! remove-member --secret-out FILE` (a removal that rotates, as a removal should) and
//! `federation rotate` (a rotation alone). A new random secret is written 0600 (never over an
//! existing file); the draft gets the next epoch, the new secret's fingerprint and a
//! `rotation` naming the epoch and fingerprint it replaces, the changeover time and the grace
//! period. Then `crossmatch secret seal --roster <the sealed roster> --secret FILE` seals the
//! new secret to the members that remain.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use crossmatch_protocol::{
    FederationSecret, MAX_GRACE_MS, RosterBody, Rotation, secret_fingerprint,
    secret_fingerprint_phone_form,
};

use super::{EditTarget, Error, open_for_edit, say, write_roster};
use crate::clock::DAY_MS;
use crate::keyfile;
use crate::roster_file::{format_time, parse_time};

/// Hours from now to the changeover when `--changeover` is not given: a day, for every member
/// to adopt the roster and receive its sealed secret first.
pub const DEFAULT_CHANGEOVER_HOURS: u64 = 24;

/// Days of grace when `--grace` is not given: a week in which the previous epoch still counts.
pub const DEFAULT_GRACE_DAYS: u32 = 7;

/// The options of a rotation.
#[derive(Debug, Args)]
pub struct RotationArgs {
    /// Rotate the secret and epoch: write a new random secret to this file (0600, never
    /// overwritten). Required by `rotate`; on `remove-member` from a roster in force, required
    /// unless --no-rotate is given.
    #[arg(long)]
    pub secret_out: Option<PathBuf>,
    /// When nodes change over to the new epoch (RFC 3339). Default: 24 hours from now.
    #[arg(long, requires = "secret_out")]
    pub changeover: Option<String>,
    /// Days after the changeover in which the previous epoch's entries still count.
    #[arg(long, default_value_t = DEFAULT_GRACE_DAYS)]
    pub grace: u32,
}

/// `federation rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub target: EditTarget,
    #[command(flatten)]
    pub rotation: RotationArgs,
}

/// `federation rotate`: the next version's draft with a new secret and epoch, members kept.
pub fn rotate(args: &RotateArgs, out: &mut dyn Write, now_ms: u64) -> Result<(), Error> {
    if args.rotation.secret_out.is_none() {
        return Err(Error::Input("rotate needs --secret-out FILE for the new secret".into()));
    }
    let (mut file, path, replace) = open_for_edit(&args.target)?;
    apply(&mut file.roster.body, &args.rotation, out, now_ms)?;
    write_roster(&path, &file, replace)?;
    say(
        out,
        format_args!(
            "version {} draft with the rotation written to {}",
            file.roster.body.version,
            path.display()
        ),
    );
    Ok(())
}

/// Puts a rotation into `body` when `--secret-out` was given: the new secret written, the
/// next epoch, its fingerprint and the rotation from the body's epoch and secret. Refused on a
/// founding draft (version 1: its secret is the first one). A draft rotated twice is caught by
/// `federation seal`, which checks it as a node will (its rotation must start from the epoch
/// and secret in force).
pub fn apply(
    body: &mut RosterBody,
    args: &RotationArgs,
    out: &mut dyn Write,
    now_ms: u64,
) -> Result<(), Error> {
    let Some(secret_out) = &args.secret_out else { return Ok(()) };
    if body.version <= 1 {
        return Err(Error::Input(
            "a founding roster has no previous secret to rotate from; rotate in a later version"
                .into(),
        ));
    }
    let changeover_at_ms = match &args.changeover {
        Some(text) => parse_time(text, "--changeover")?,
        // Whole seconds: the file shows it as an RFC 3339 time.
        None => (now_ms / 1000 * 1000).saturating_add(DEFAULT_CHANGEOVER_HOURS * 3_600_000),
    };
    let grace_ms = u64::from(args.grace).saturating_mul(DAY_MS);
    let max_days = body.max_retention_days.min((MAX_GRACE_MS / DAY_MS) as u32);
    if args.grace > max_days {
        return Err(Error::Input(format!("--grace is at most the retention, {max_days} days")));
    }
    let epoch = body
        .epoch
        .checked_add(1)
        .ok_or_else(|| Error::Input("the roster's epoch cannot grow".into()))?;
    let secret = FederationSecret::from_bytes(keyfile::random_32().map_err(|_| Error::Randomness)?);
    keyfile::write_federation_secret(secret_out, &secret)?;
    let fingerprint = secret_fingerprint(&secret);
    body.rotation = Some(Rotation {
        previous_epoch: body.epoch,
        previous_secret_fingerprint: body.secret_fingerprint,
        changeover_at_ms,
        grace_ms,
    });
    body.epoch = epoch;
    body.secret_fingerprint = fingerprint;
    say(
        out,
        format_args!(
            "new secret for epoch {epoch} written to {}; fingerprint {}",
            secret_out.display(),
            secret_fingerprint_phone_form(&fingerprint)
        ),
    );
    say(
        out,
        format_args!(
            "changeover at {}, grace {} days; once sealed, `crossmatch secret seal --roster \
             <sealed roster> --secret {}` seals it to the remaining members",
            format_time(changeover_at_ms),
            args.grace,
            secret_out.display()
        ),
    );
    Ok(())
}
