//! A member's routine node key change (README.md, "A routine node key change", docs/PROTOCOL.md §4.5), in two
//! steps. At the member, with the node stopped, `crossmatch node-key rotate --config FILE
//! --out CHANGE` reads where the node's own feed ends, makes a new node key, writes a key
//! change signed by the old and the new key naming that final head, then replaces the key file
//! (atomically). At the coordinator, `crossmatch federation key-change --roster R --change
//! CHANGE --next --out R2` starts the next version's draft with the old key retired, the new key
//! (and its sealing key) in its place and the key change carried in `key_changes`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use crossmatch_protocol::{FinalHead, KeyChange, MAX_RETIRED_NODE_KEYS, SigningKey};
use serde::Deserialize;

use super::{EditTarget, Error, open_for_edit, read_small, say, settle_threshold, write_roster};
use crate::keyfile;

/// Largest key change file read.
const MAX_KEY_CHANGE_FILE_BYTES: u64 = 8 * 1024;

/// `crossmatch node-key rotate`.
#[derive(Debug, Args)]
pub struct NodeKeyRotateArgs {
    /// The node's config file (the node must be stopped).
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the key change for the coordinator (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// `crossmatch federation key-change`.
#[derive(Debug, Args)]
pub struct KeyChangeArgs {
    #[command(flatten)]
    pub target: EditTarget,
    /// The key change file `crossmatch node-key rotate` wrote at the member.
    #[arg(long)]
    pub change: PathBuf,
}

/// The key change file: the wire form is what counts; the rest is for people, and must agree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChangeFile {
    member: String,
    old_key: String,
    new_key: String,
    wire_hex: String,
}

/// Renders a key change file.
pub fn render(change: &KeyChange) -> String {
    let head = change.final_head.map_or_else(
        || "# The old key never signed a batch.\n".to_owned(),
        |FinalHead { generation, seq, .. }| {
            format!("# The old key's feed ends at generation {generation}, seq {seq}.\n")
        },
    );
    format!(
        "# A routine change of member {}'s node key, signed by the old and the new key. Give it\n\
         # to the coordinator: crossmatch federation key-change --roster R --change FILE --next\n\
         # --out R2.\n{head}\nmember = {}\nold_key = \"{}\"\nnew_key = \"{}\"\nwire_hex = \"{}\"\n",
        change.member,
        crate::init_cli::toml_string(&change.member),
        change.old_key,
        change.new_key,
        hex::encode(change.to_wire())
    )
}

/// Parses a key change file and checks both signatures.
pub fn parse(text: &str) -> Result<KeyChange, Error> {
    let file: KeyChangeFile =
        toml::from_str(text).map_err(|error| Error::Input(format!("key change file: {error}")))?;
    let bytes = hex::decode(file.wire_hex.trim())
        .map_err(|_| Error::Input("key change file: wire_hex is not hex".into()))?;
    let change = KeyChange::from_wire(&bytes)
        .map_err(|problem| Error::Input(format!("key change file: {problem}")))?;
    if change.member != file.member
        || change.old_key.to_string() != file.old_key
        || change.new_key.to_string() != file.new_key
    {
        return Err(Error::Input(
            "key change file: member, old_key and new_key do not agree with wire_hex".into(),
        ));
    }
    change.verify().map_err(|problem| Error::Input(format!("key change file: {problem}")))?;
    Ok(change)
}

/// `crossmatch node-key rotate`: reads the final head (the node stopped), writes the key change,
/// then replaces the node key.
pub fn rotate(args: &NodeKeyRotateArgs, out: &mut dyn Write) -> Result<(), Error> {
    let loaded = crate::config::load(&args.config)
        .map_err(|error| Error::Input(format!("{}: {error}", args.config.display())))?;
    if args.out.exists() {
        return Err(Error::Input(format!(
            "{} exists; it is never overwritten",
            args.out.display()
        )));
    }
    let federation_id = loaded.roster.roster.body.federation_id;
    let old = loaded.key.clone();
    let final_head = crate::engine::stored_own_final_head(
        &loaded.config.data_dir,
        &federation_id,
        &old.public_key(),
    )
    .map_err(|error| {
        Error::Input(format!(
            "reading the own feed in {} (is the node stopped?): {error}",
            loaded.config.data_dir.display()
        ))
    })?;
    let new = SigningKey::from_seed(&keyfile::random_32().map_err(|_| Error::Randomness)?);
    let change = KeyChange::sign(&federation_id, &loaded.config.member_id, &old, &new, final_head);
    keyfile::write_private_text(&args.out, &render(&change))?;
    keyfile::sync_parent(&args.out)?;
    keyfile::replace_signing_key(&loaded.config.key_file, &new)?;
    let public_key = new.public_key();
    say(out, format_args!("node key of {} changed", loaded.config.member_id));
    say(out, format_args!("new public key:  {public_key}"));
    say(out, format_args!("new fingerprint: {}", public_key.fingerprint()));
    match final_head {
        Some(head) => say(
            out,
            format_args!(
                "the old key's feed ends at generation {}, seq {}",
                head.generation, head.seq
            ),
        ),
        None => say(out, format_args!("the old key never signed a batch")),
    }
    say(out, format_args!("key change written to {}", args.out.display()));
    say(
        out,
        format_args!(
            "next: the coordinator runs `crossmatch federation key-change`, the members sign the \
             new version; put it in the config's roster file and start the node (it will not \
             start before: its new key is not on the current roster)"
        ),
    );
    Ok(())
}

/// `crossmatch federation key-change`: the old key retired, the new one in its place.
pub fn add(args: &KeyChangeArgs, out: &mut dyn Write) -> Result<(), Error> {
    let change = parse(&read_small(&args.change, MAX_KEY_CHANGE_FILE_BYTES)?)?;
    let (mut file, path, replace) = open_for_edit(&args.target)?;
    let body = &mut file.roster.body;
    if change.federation_id != body.federation_id {
        return Err(Error::Input("the key change is for another federation".into()));
    }
    let in_use = body.members.iter().any(|m| {
        m.node_key == change.new_key
            || m.governance_key == change.new_key
            || m.retired_node_keys.contains(&change.new_key)
    });
    if in_use {
        return Err(Error::Input("the key change's new key is already on the roster".into()));
    }
    let Some(member) = body.members.iter_mut().find(|m| m.id == change.member) else {
        return Err(Error::Input(format!("member {} is not on the roster", change.member)));
    };
    if member.node_key != change.old_key {
        return Err(Error::Input(format!(
            "the key change's old key is not member {}'s node key on this roster",
            change.member
        )));
    }
    if member.retired_node_keys.len() >= MAX_RETIRED_NODE_KEYS {
        return Err(Error::Input(format!(
            "member {} has {MAX_RETIRED_NODE_KEYS} retired keys already: drop the oldest (and its \
             key change) in a version of its own first",
            change.member
        )));
    }
    member.retired_node_keys.push(change.old_key);
    member.node_key = change.new_key;
    member.sealing_key = change.new_key.to_x25519();
    // The member's record was signed by its old key: it signs a new one with its new key.
    file.records.retain(|record| record.record.member != change.member);
    file.roster.key_changes.push(change.clone());
    settle_threshold(&mut file.roster.body, args.target.threshold, false, out)?;
    file.roster
        .body
        .validate()
        .map_err(|problem| Error::Input(format!("the roster would be invalid: {problem}")))?;
    write_roster(&path, &file, replace)?;
    say(
        out,
        format_args!(
            "member {}'s node key changed: version {} draft, the old key retired (its feed stays \
             matchable up to its final head), written to {}",
            change.member,
            file.roster.body.version,
            path.display()
        ),
    );
    say(
        out,
        format_args!(
            "next: members sign it (`crossmatch federation sign`); {} signs a new member record \
             with its new key (`crossmatch member-record`)",
            change.member
        ),
    );
    Ok(())
}
