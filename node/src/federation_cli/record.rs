//! `crossmatch member-record`: a member's own record (where to reach its node, whom to call),
//! signed by its node key with a seq above the one held, put into the roster file (or
//! printed). Changing it needs no governance signatures: it is outside the roster's body.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use crossmatch_protocol::MemberRecord;

use super::{Error, say, write_roster};
use crate::keyfile;
use crate::roster_file;

/// `member-record`.
#[derive(Debug, Args)]
pub struct MemberRecordArgs {
    /// The member's node key (`node.key`).
    #[arg(long)]
    pub key: PathBuf,
    /// The roster file: names the federation and the member, and receives the record.
    #[arg(long)]
    pub roster: PathBuf,
    /// The record's sequence number, above any record of this member before (from 1).
    #[arg(long)]
    pub seq: u64,
    /// A multiaddr the node is reached at (repeat: at most 8).
    #[arg(long = "address")]
    pub addresses: Vec<String>,
    /// Whom to call about a match (at most 256 characters).
    #[arg(long, default_value = "")]
    pub contact: String,
    /// Print the record's `[[member_records]]` table instead of writing it into the roster.
    #[arg(long)]
    pub print: bool,
}

/// Signs the record and writes it into the roster file (or prints it).
pub fn run(args: &MemberRecordArgs, out: &mut dyn Write) -> Result<(), Error> {
    for address in &args.addresses {
        if crate::mesh::validate_address(address).is_err() {
            return Err(Error::Input(format!(
                "--address {address:?} is not a multiaddr such as /dns4/host/tcp/7400 or /ip4/10.0.0.5/tcp/7400"
            )));
        }
    }
    let key = keyfile::read_signing_key(&args.key)?;
    let mut file = roster_file::read(&args.roster)?;
    let own = key.public_key();
    let member = file
        .roster
        .body
        .members
        .iter()
        .find(|member| member.node_key == own)
        .map(|member| member.id.clone())
        .ok_or_else(|| {
            Error::Input(format!("{} does not list this node key", args.roster.display()))
        })?;
    if let Some(held) = file.record(&member)
        && held.record.seq >= args.seq
    {
        return Err(Error::Input(format!(
            "member {member}'s record in the roster has seq {}; give a higher --seq",
            held.record.seq
        )));
    }
    let record = MemberRecord {
        federation_id: file.roster.body.federation_id,
        member: member.clone(),
        seq: args.seq,
        addresses: args.addresses.clone(),
        contact: args.contact.clone(),
    };
    let signed = record.sign(&key).map_err(|problem| Error::Input(problem.to_string()))?;
    if args.print {
        let _ = write!(out, "{}", roster_file::render_record(&signed));
        return Ok(());
    }
    file.set_record(signed);
    write_roster(&args.roster, &file, true)?;
    say(
        out,
        format_args!(
            "member {member}'s record seq {} ({} addresses) written to {}",
            args.seq,
            args.addresses.len(),
            args.roster.display()
        ),
    );
    Ok(())
}
