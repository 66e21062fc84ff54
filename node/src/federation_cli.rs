//! The coordinator's and members' ceremony tools over the roster file: `federation new`,
//! `add-member`, `remove-member`, `sign` (with a signing log that refuses a second, different
//! roster of one version), `seal` (the signatures checked as a node will check them, with a
//! seal log that refuses a second, different roster of one version) and `show`; the logs in
//! `federation_cli/roster_log.rs`; `member-record` (a member's own signed record) in `federation_cli/record.rs`;
//! `secret seal` / `secret open` in `federation_cli/secret.rs`; the member's public card in
//! `federation_cli/card.rs`; a member's routine node key change (`node-key rotate` and
//! `federation key-change`) in `federation_cli/key_change.rs`. Every command prints what it
//! did; bad input is an
//! [`Error::exit_code`] of 2.

mod card;
mod key_change;
mod record;
mod roster_log;
mod rotate;
mod secret;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use crossmatch_protocol::{
    FederationId, ROSTER_SIGNATURE_CONTEXT, RosterBody, RosterMember, RosterProblem, SignedRoster,
    VerifiedRoster, secret_fingerprint, secret_fingerprint_phone_form, sign_roster,
    verify_founding, verify_successor,
};

pub use card::{CARD_FILE, Card};
pub use key_change::{KeyChangeArgs, NodeKeyRotateArgs, rotate as node_key_rotate};
pub use record::MemberRecordArgs;
pub use roster_log::{SEAL_LOG_FILE, seal_log_path, signing_log_path};
pub use secret::{SealArgs, SecretOpenArgs};

use self::roster_log::{RosterLog, log_roster};
use crate::clock::DAY_MS;
use crate::keyfile;
use crate::roster_file::{self, RosterFile, format_time};

/// Why a ceremony command refused or failed. Messages name files, member ids and versions,
/// never key or secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a file that does not hold what it must, a refused change.
    #[error("{0}")]
    Input(String),
    /// An input file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An output file cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The roster file.
    #[error(transparent)]
    Roster(#[from] roster_file::Error),
    /// A key or secret file.
    #[error(transparent)]
    Key(#[from] keyfile::Error),
    /// The operating system's random source failed.
    #[error("cannot read randomness")]
    Randomness,
}

impl Error {
    /// 2 for bad input (the command can be fixed by its caller), 1 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Write { .. } | Self::Randomness => 1,
            Self::Key(keyfile::Error::Io { .. }) => 1,
            _ => 2,
        }
    }
}

/// `crossmatch federation …`: the roster's life, at the coordinator and the members.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Start a federation: a roster draft with a random federation id, version 1, epoch 1, the
    /// secret's fingerprint and no members.
    New(NewArgs),
    /// Add a member from its card (`member.toml`, written by `crossmatch init`) to a draft.
    AddMember(AddMemberArgs),
    /// Remove a member from a draft; with --secret-out, the draft also rotates the secret and
    /// epoch, as removing a member should.
    RemoveMember(RemoveMemberArgs),
    /// Rotate the secret and epoch in the next version's draft, members kept.
    Rotate(RotateArgs),
    /// Sign a roster with a member's governance key. A log beside the key (`KEY.signed`)
    /// refuses a second, different roster of a version signed before.
    Sign(SignArgs),
    /// Check the signatures as a node will (founding: every member; with --previous: the
    /// threshold of the previous version's members) and write the final roster file. A log
    /// (`rosters.sealed` beside it) refuses a second, different roster of a version sealed
    /// before.
    Seal(SealRosterArgs),
    /// Print a roster: version, epoch, expiry, threshold, hash, members, signatures.
    Show(ShowArgs),
    // ---- a member's routine node key change ----
    /// Put a member's key change (`crossmatch node-key rotate`) in a draft: the old node key
    /// retired (its feed stays matchable), the new one in its place.
    KeyChange(KeyChangeArgs),
}

/// `federation new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The federation secret (`crossmatch secret new`); only its fingerprint goes in.
    #[arg(long)]
    pub secret: PathBuf,
    /// The roster draft to write (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// k: governance signatures a successor needs (2k > n, k <= n). Default: the least
    /// majority, kept so as members are added.
    #[arg(long)]
    pub threshold: Option<u32>,
    /// Days until the roster expires; a newer version must be signed before.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub expires_in_days: u32,
    /// The longest any member may keep an entry, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub max_retention_days: u32,
    /// Each origin's daily quota of entries at every peer.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub quota_entries_per_day: u64,
    /// Each origin's daily quota of batch bytes at every peer.
    #[arg(long, default_value_t = 1_000_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub quota_bytes_per_day: u64,
}

/// Where an edit of a roster goes.
#[derive(Debug, Args)]
pub struct EditTarget {
    /// The roster file.
    #[arg(long)]
    pub roster: PathBuf,
    /// Start the next version's draft from a signed roster: version + 1, signatures cleared,
    /// written to --out.
    #[arg(long, requires = "out")]
    pub next: bool,
    /// Write the edited roster here (default: the roster file itself; with --next, a new file).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Set k (2k > n, k <= n). Default: kept while valid, else the least majority.
    #[arg(long)]
    pub threshold: Option<u32>,
}

/// `federation add-member`.
#[derive(Debug, Args)]
pub struct AddMemberArgs {
    #[command(flatten)]
    pub target: EditTarget,
    /// The member's card (`member.toml`).
    #[arg(long)]
    pub card: PathBuf,
    /// The member's name (at most 128 characters; default: its id).
    #[arg(long)]
    pub name: Option<String>,
}

/// `federation remove-member`.
#[derive(Debug, Args)]
pub struct RemoveMemberArgs {
    #[command(flatten)]
    pub target: EditTarget,
    /// The member's id.
    #[arg(long)]
    pub id: String,
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Remove the member without rotating the secret and epoch. The removed member keeps the
    /// secret and can still compute the federation's tokens; without this, a removal from a
    /// roster in force needs --secret-out FILE.
    #[arg(long, conflicts_with = "secret_out")]
    pub no_rotate: bool,
}

/// `federation sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The roster file; the signature is added to it.
    #[arg(long)]
    pub roster: PathBuf,
    /// The member's governance key (`governance.key`).
    #[arg(long)]
    pub governance_key: PathBuf,
    /// The signing member's id.
    #[arg(long)]
    pub member: String,
    /// The version in force, when the signer is a member of it but not of this draft (a
    /// member signing its own removal).
    #[arg(long)]
    pub previous: Option<PathBuf>,
}

/// `federation seal`.
#[derive(Debug, Args)]
pub struct SealRosterArgs {
    /// The signed roster.
    #[arg(long)]
    pub roster: PathBuf,
    /// The versions before it, oldest first, from the founding roster (repeat the option); the
    /// last is the version in force. Absent: the roster is a founding roster.
    #[arg(long)]
    pub previous: Vec<PathBuf>,
    /// The final roster file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The log of the rosters sealed (default: `rosters.sealed` beside --out): a second,
    /// different roster of a version sealed before is refused.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// `federation show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The roster file.
    #[arg(long)]
    pub roster: PathBuf,
}

/// Runs a `federation` command at `now_ms`, printing to `out`.
pub fn run(command: FederationCommand, out: &mut dyn Write, now_ms: u64) -> Result<(), Error> {
    match command {
        FederationCommand::New(args) => new(&args, out, now_ms),
        FederationCommand::AddMember(args) => add_member(&args, out),
        FederationCommand::RemoveMember(args) => remove_member(&args, out, now_ms),
        FederationCommand::Rotate(args) => rotate::rotate(&args, out, now_ms),
        FederationCommand::Sign(args) => sign(&args, out),
        FederationCommand::Seal(args) => seal(&args, out, now_ms),
        FederationCommand::Show(args) => show(&args, out),
        FederationCommand::KeyChange(args) => key_change::add(&args, out),
    }
}

/// `crossmatch member-record`.
pub use record::run as member_record;
/// `crossmatch secret seal` and `secret open`.
pub use rotate::{DEFAULT_CHANGEOVER_HOURS, DEFAULT_GRACE_DAYS, RotateArgs, RotationArgs};
pub use secret::{open as secret_open, seal as secret_seal};

fn say(out: &mut dyn Write, text: std::fmt::Arguments<'_>) {
    // The command's work is done and written; a closed stdout loses only the report.
    let _ = writeln!(out, "{text}");
}

fn new(args: &NewArgs, out: &mut dyn Write, now_ms: u64) -> Result<(), Error> {
    let secret = keyfile::read_federation_secret(&args.secret)?;
    let federation_id = FederationId(keyfile::random_32().map_err(|_| Error::Randomness)?);
    let body = RosterBody {
        federation_id,
        version: 1,
        epoch: 1,
        // Whole seconds: the file shows it as an RFC 3339 time.
        expires_at_ms: (now_ms / 1000 * 1000)
            .saturating_add(u64::from(args.expires_in_days) * DAY_MS),
        threshold: args.threshold.unwrap_or(1),
        max_retention_days: args.max_retention_days,
        quota_entries_per_day: args.quota_entries_per_day,
        quota_bytes_per_day: args.quota_bytes_per_day,
        secret_fingerprint: secret_fingerprint(&secret),
        rotation: None,
        members: Vec::new(),
    };
    let file = RosterFile {
        roster: SignedRoster { body, signatures: Vec::new(), key_changes: Vec::new() },
        records: Vec::new(),
    };
    write_roster(&args.out, &file, false)?;
    say(
        out,
        format_args!(
            "federation {federation_id}: version 1 draft written to {}",
            args.out.display()
        ),
    );
    say(out, format_args!("expires at:         {}", format_time(file.roster.body.expires_at_ms)));
    say(
        out,
        format_args!(
            "secret fingerprint: {}",
            secret_fingerprint_phone_form(&file.roster.body.secret_fingerprint)
        ),
    );
    say(out, format_args!("next: `crossmatch federation add-member` with each member's card"));
    Ok(())
}

/// Reads the roster to edit and says where the edit goes: a draft is edited in place (or to
/// --out); a signed roster only with --next, which starts version + 1's draft in a new file.
fn open_for_edit(target: &EditTarget) -> Result<(RosterFile, PathBuf, bool), Error> {
    let mut file = roster_file::read(&target.roster)?;
    let version = file.roster.body.version;
    if target.next {
        let out = target.out.clone().ok_or_else(|| Error::Input("--next needs --out".into()))?;
        file.roster.body.version = version
            .checked_add(1)
            .ok_or_else(|| Error::Input("the roster's version cannot grow".into()))?;
        file.roster.signatures.clear();
        return Ok((file, out, false));
    }
    if !file.roster.signatures.is_empty() {
        return Err(Error::Input(format!(
            "{} is signed (version {version}): a signed roster is never edited; give --next \
             --out FILE to start version {}'s draft",
            target.roster.display(),
            version.saturating_add(1)
        )));
    }
    let out = target.out.clone().unwrap_or_else(|| target.roster.clone());
    let replace = out == target.roster;
    Ok((file, out, replace))
}

/// Sets k after a change of members: `--threshold` when given; else k is kept while
/// `2k > n`, raised to the least majority when not, and (on a removal) lowered to n when
/// above it. Says when it changed.
fn settle_threshold(
    body: &mut RosterBody,
    asked: Option<u32>,
    removal: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let n = u32::try_from(body.members.len()).unwrap_or(u32::MAX);
    let before = body.threshold;
    if let Some(k) = asked {
        if n > 0 && (2 * u64::from(k) <= u64::from(n) || k > n) {
            return Err(Error::Input(format!(
                "threshold {k} for {n} members: k needs 2k > n and k <= n"
            )));
        }
        body.threshold = k;
    } else if 2 * u64::from(body.threshold) <= u64::from(n) {
        body.threshold = n / 2 + 1;
    } else if removal && body.threshold > n {
        body.threshold = n.max(1);
    }
    if body.threshold != before {
        say(out, format_args!("threshold: {} of {n} members (was {before})", body.threshold));
    }
    Ok(())
}

fn add_member(args: &AddMemberArgs, out: &mut dyn Write) -> Result<(), Error> {
    let card = Card::read(&args.card)?;
    let (mut file, path, replace) = open_for_edit(&args.target)?;
    let body = &mut file.roster.body;
    if body.member(&card.id).is_some() {
        return Err(Error::Input(format!("member {} is on the roster already", card.id)));
    }
    let card_keys = [card.node_key, card.governance_key];
    if let Some(holder) = body.members.iter().find(|m| {
        [m.node_key, m.governance_key]
            .iter()
            .chain(&m.retired_node_keys)
            .any(|key| card_keys.contains(key))
    }) {
        return Err(Error::Input(format!(
            "a key of {}'s card is member {}'s already; every key in a roster is distinct",
            card.id, holder.id
        )));
    }
    if body.members.len() >= crossmatch_protocol::MAX_MEMBERS {
        return Err(Error::Input("a roster lists at most 256 members".into()));
    }
    let name = args.name.clone().unwrap_or_else(|| card.id.clone());
    if name.chars().count() > crossmatch_protocol::MAX_MEMBER_NAME_CHARS {
        return Err(Error::Input("a member's name is at most 128 characters".into()));
    }
    body.members.push(RosterMember {
        id: card.id.clone(),
        name,
        node_key: card.node_key,
        governance_key: card.governance_key,
        sealing_key: card.node_key.to_x25519(),
        retired_node_keys: Vec::new(),
    });
    body.members.sort_by(|a, b| a.id.cmp(&b.id));
    settle_threshold(body, args.target.threshold, false, out)?;
    write_roster(&path, &file, replace)?;
    let body = &file.roster.body;
    say(
        out,
        format_args!(
            "member {} added: version {} draft, {} members, threshold {}, written to {}",
            card.id,
            body.version,
            body.members.len(),
            body.threshold,
            path.display()
        ),
    );
    say(out, format_args!("node fingerprint:       {}", card.node_key.fingerprint()));
    say(out, format_args!("governance fingerprint: {}", card.governance_key.fingerprint()));
    Ok(())
}

fn remove_member(args: &RemoveMemberArgs, out: &mut dyn Write, now_ms: u64) -> Result<(), Error> {
    let (mut file, path, replace) = open_for_edit(&args.target)?;
    let body = &mut file.roster.body;
    let before = body.members.len();
    body.members.retain(|m| m.id != args.id);
    if body.members.len() == before {
        return Err(Error::Input(format!("member {} is not on the roster", args.id)));
    }
    file.roster.key_changes.retain(|change| change.member != args.id);
    file.records.retain(|record| record.record.member != args.id);
    if file.roster.body.version > 1 && args.rotation.secret_out.is_none() && !args.no_rotate {
        return Err(Error::Input(format!(
            "removing member {} from a roster in force needs --secret-out FILE (a new secret and \
             epoch, sealed to the remaining members) so that it cannot compute the tokens that \
             follow; --no-rotate removes it without, leaving it able to compute tokens",
            args.id
        )));
    }
    settle_threshold(&mut file.roster.body, args.target.threshold, true, out)?;
    rotate::apply(&mut file.roster.body, &args.rotation, out, now_ms)?;
    write_roster(&path, &file, replace)?;
    let body = &file.roster.body;
    say(
        out,
        format_args!(
            "member {} removed: version {} draft, {} members, threshold {}, written to {}",
            args.id,
            body.version,
            body.members.len(),
            body.threshold,
            path.display()
        ),
    );
    if body.version > 1 && args.rotation.secret_out.is_none() {
        say(
            out,
            format_args!(
                "warning: --no-rotate: {} still holds the secret of epoch {} and can compute \
                 the federation's tokens; rotate the secret and the epoch (federation rotate \
                 --secret-out FILE) so that it cannot compute the tokens that follow",
                args.id, body.epoch
            ),
        );
    }
    Ok(())
}

/// The members of `signers` whose governance signature over `roster`'s hash verifies.
pub fn valid_signers(roster: &SignedRoster, signers: &[RosterMember]) -> BTreeSet<String> {
    let message = [ROSTER_SIGNATURE_CONTEXT.as_bytes(), &roster.hash()].concat();
    roster
        .signatures
        .iter()
        .filter(|signature| {
            signers.iter().any(|member| {
                member.id == signature.member
                    && member.governance_key.verify_strict(&message, &signature.signature)
            })
        })
        .map(|signature| signature.member.clone())
        .collect()
}

fn sign(args: &SignArgs, out: &mut dyn Write) -> Result<(), Error> {
    let key = keyfile::read_signing_key(&args.governance_key)?;
    let mut file = roster_file::read(&args.roster)?;
    let body = &file.roster.body;
    body.validate().map_err(|problem| {
        Error::Input(format!("{}: not signed: {problem}", args.roster.display()))
    })?;
    let previous = match &args.previous {
        Some(path) => Some(roster_file::read(path)?),
        None => None,
    };
    let governance_key = key.public_key();
    let listed = body
        .member(&args.member)
        .or_else(|| previous.as_ref().and_then(|p| p.roster.body.member(&args.member)));
    match listed {
        None => {
            return Err(Error::Input(format!(
                "member {} is not on this roster{}",
                args.member,
                if previous.is_some() { " nor on the previous one" } else { "" }
            )));
        }
        Some(member) if member.governance_key != governance_key => {
            return Err(Error::Input(format!(
                "this is not member {}'s governance key on the roster",
                args.member
            )));
        }
        Some(_) => {}
    }
    let hash = body.hash();
    log_roster(RosterLog::Signed, &signing_log_path(&args.governance_key), body, &hash)?;
    let signature = sign_roster(body, &args.member, &key);
    file.roster.add_signature(signature);
    write_roster(&args.roster, &file, true)?;
    let body = &file.roster.body;
    say(
        out,
        format_args!(
            "signed version {} as {} (roster hash {}); {} signatures present",
            body.version,
            args.member,
            hex::encode(hash),
            file.roster.signatures.len()
        ),
    );
    Ok(())
}

fn seal(args: &SealRosterArgs, out: &mut dyn Write, now_ms: u64) -> Result<(), Error> {
    let file = roster_file::read(&args.roster)?;
    let refused = |problem: RosterProblem, signers: &[RosterMember], need: String| {
        let message = match problem {
            RosterProblem::MissingSignatures { .. } => {
                let signed = valid_signers(&file.roster, signers);
                let missing: Vec<&str> = signers
                    .iter()
                    .map(|m| m.id.as_str())
                    .filter(|id| !signed.contains(*id))
                    .collect();
                format!(
                    "{}: not sealed: {need}; {} valid, missing: {}",
                    args.roster.display(),
                    signed.len(),
                    missing.join(", ")
                )
            }
            problem => format!("{}: not sealed: {problem}", args.roster.display()),
        };
        Error::Input(message)
    };
    let verified = match args.previous.split_first() {
        None => verify_founding(&file.roster).map_err(|problem| {
            let members = &file.roster.body.members;
            refused(
                problem,
                members,
                format!("a founding roster needs all {} members", members.len()),
            )
        })?,
        Some((founding, later)) => {
            let current = previous_chain(founding, later)?;
            verify_successor(&current, &file.roster).map_err(|problem| {
                let members = &current.body().members;
                let need = format!(
                    "version {} needs {} of version {}'s {} members",
                    file.roster.body.version,
                    current.body().threshold,
                    current.body().version,
                    members.len()
                );
                refused(problem, members, need)
            })?
        }
    };
    if verified.expired(now_ms) {
        return Err(Error::Input(format!(
            "{}: not sealed: the roster has expired (expires_at is not in the future)",
            args.roster.display()
        )));
    }
    let log = args.log.clone().unwrap_or_else(|| seal_log_path(&args.out));
    log_roster(RosterLog::Sealed, &log, verified.body(), verified.hash())?;
    write_roster(&args.out, &file, true)?;
    say(
        out,
        format_args!(
            "version {} sealed (roster hash {}): written to {}",
            verified.body().version,
            hex::encode(verified.hash()),
            args.out.display()
        ),
    );
    Ok(())
}

/// The version in force from its chain: the founding roster, then each successor.
fn previous_chain(founding: &Path, later: &[PathBuf]) -> Result<VerifiedRoster, Error> {
    let chain_error = |path: &Path, problem: RosterProblem| {
        Error::Input(format!("{} (a previous version): {problem}", path.display()))
    };
    let first = roster_file::read(founding)?;
    let mut current =
        verify_founding(&first.roster).map_err(|problem| chain_error(founding, problem))?;
    for path in later {
        let next = roster_file::read(path)?;
        current = verify_successor(&current, &next.roster)
            .map_err(|problem| chain_error(path, problem))?;
    }
    Ok(current)
}

fn show(args: &ShowArgs, out: &mut dyn Write) -> Result<(), Error> {
    let file = roster_file::read(&args.roster)?;
    let body = &file.roster.body;
    say(out, format_args!("federation:         {}", body.federation_id));
    say(out, format_args!("version:            {}", body.version));
    say(out, format_args!("epoch:              {}", body.epoch));
    say(out, format_args!("expires at:         {}", format_time(body.expires_at_ms)));
    say(
        out,
        format_args!("threshold:          {} of {} members", body.threshold, body.members.len()),
    );
    say(out, format_args!("roster hash:        {}", hex::encode(body.hash())));
    say(
        out,
        format_args!(
            "secret fingerprint: {}",
            secret_fingerprint_phone_form(&body.secret_fingerprint)
        ),
    );
    if let Some(rotation) = &body.rotation {
        say(
            out,
            format_args!(
                "rotation:           from epoch {} at {}, grace {} h",
                rotation.previous_epoch,
                format_time(rotation.changeover_at_ms),
                rotation.grace_ms / 3_600_000
            ),
        );
    }
    if let Err(problem) = body.validate() {
        say(out, format_args!("not valid yet:      {problem}"));
    }
    say(out, format_args!("members:"));
    for member in &body.members {
        say(
            out,
            format_args!(
                "  {:<12} node {}  governance {}  {}",
                member.id,
                member.node_key.fingerprint(),
                member.governance_key.fingerprint(),
                member.name
            ),
        );
    }
    let valid = valid_signers(&file.roster, &body.members);
    say(out, format_args!("signatures:"));
    for signature in &file.roster.signatures {
        let verdict = if valid.contains(&signature.member) {
            "valid"
        } else if body.member(&signature.member).is_some() {
            "NOT VALID for this roster"
        } else {
            "not a member of this version (checked against the previous one when sealed)"
        };
        say(out, format_args!("  {:<12} {verdict}", signature.member));
    }
    let unsigned: Vec<&str> =
        body.members.iter().map(|m| m.id.as_str()).filter(|id| !valid.contains(*id)).collect();
    if !unsigned.is_empty() {
        say(out, format_args!("not signed by:      {}", unsigned.join(", ")));
    }
    for record in &file.records {
        say(
            out,
            format_args!(
                "record {}: seq {}, {} addresses, contact {}",
                record.record.member,
                record.record.seq,
                record.record.addresses.len(),
                record.record.contact
            ),
        );
    }
    Ok(())
}

/// Writes a roster file: whole, through a temporary file renamed into place; `replace` says
/// whether an existing file may be replaced.
pub fn write_roster(path: &Path, file: &RosterFile, replace: bool) -> Result<(), Error> {
    if !replace && path.exists() {
        return Err(Error::Input(format!("{} exists; it is never overwritten", path.display())));
    }
    let write = |source| Error::Write { path: path.to_owned(), source };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let mut out = std::fs::File::create(&temporary)?;
        out.write_all(roster_file::render(file).as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(write)
}

/// Reads a small text file, refusing one over `limit` bytes.
fn read_small(path: &Path, limit: u64) -> Result<String, Error> {
    let read = |source| Error::Read { path: path.to_owned(), source };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > limit {
        return Err(Error::Input(format!("{} is larger than {limit} bytes", path.display())));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
