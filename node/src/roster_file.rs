//! The roster file: a TOML carrier of a [`SignedRoster`] (the body's fields, the members, the
//! governance signatures and the key changes) plus the members' own signed records (addresses
//! and contact). Keys, ids, fingerprints and signatures are hex; times are RFC 3339 (UTC, at
//! most millisecond precision). The roster hash never depends on these bytes: it is computed
//! over the body's canonical CBOR, so nodes holding different sets of signatures agree on it.
//!
//! [`parse`] checks the file's shape only (unknown keys refused, every key a usable Ed25519
//! key, every value in its type's range); the body's own rules and the signatures are judged by
//! `RosterBody::validate` and the protocol's verify functions, so that the tools can read and
//! write drafts (no members yet, no signatures). [`render`] writes a commented file that is a
//! function of the roster alone: the same roster renders to the same bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use crossmatch_protocol::{
    FederationId, GovernanceSignature, KeyChange, MemberRecord, PublicKey, RosterBody,
    RosterMember, Rotation, SignedMemberRecord, SignedRoster,
};
use serde::Deserialize;

/// Largest roster file read, in bytes: a roster's wire form is at most 256 KiB, and its hex
/// in TOML at most about three times that.
pub const MAX_ROSTER_FILE_BYTES: u64 = 1024 * 1024;

/// Most member records one file carries: one per member.
pub const MAX_RECORDS: usize = crossmatch_protocol::MAX_MEMBERS;

/// Why a roster file was refused. Messages name fields, member ids and rules, never key or
/// signature bytes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ROSTER_FILE_BYTES`].
    #[error("{path} is larger than {MAX_ROSTER_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A problem inside the file read from `path`.
    #[error("{path}: {problem}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its text.
        problem: Box<Error>,
    },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A value that does not decode or is out of its range.
    #[error("{field}: {rule}")]
    Field {
        /// Where: `federation_id`, `members[DE].node_key`, `signatures[2]`, ….
        field: String,
        /// The rule it breaks.
        rule: &'static str,
    },
}

/// A roster file: the signed roster and the members' own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterFile {
    /// The roster with the signatures and key changes it carries.
    pub roster: SignedRoster,
    /// The members' own records (addresses, contact), each signed by its member's node key.
    pub records: Vec<SignedMemberRecord>,
}

impl RosterFile {
    /// The record of member `id`, if the file carries one (the highest seq when several).
    pub fn record(&self, id: &str) -> Option<&SignedMemberRecord> {
        self.records.iter().filter(|r| r.record.member == id).max_by_key(|r| r.record.seq)
    }

    /// Puts `record` in place of any earlier record of the same member; records stay sorted by
    /// member id.
    pub fn set_record(&mut self, record: SignedMemberRecord) {
        self.records.retain(|r| r.record.member != record.record.member);
        self.records.push(record);
        self.records.sort_by(|a, b| a.record.member.cmp(&b.record.member));
    }
}

/// Reads and parses a roster file of at most [`MAX_ROSTER_FILE_BYTES`].
pub fn read(path: &Path) -> Result<RosterFile, Error> {
    let io = |source| Error::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(MAX_ROSTER_FILE_BYTES + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > MAX_ROSTER_FILE_BYTES {
        return Err(Error::TooLarge { path: path.to_owned() });
    }
    parse(&text).map_err(|problem| Error::InFile { path: path.to_owned(), problem: problem.into() })
}

/// Parses a roster file's text: shape, types, hex and times; unknown keys refused.
pub fn parse(text: &str) -> Result<RosterFile, Error> {
    let file: FileText =
        toml::from_str(text).map_err(|error| Error::Syntax(error.message().to_owned()))?;
    file.decode()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    federation_id: String,
    version: u64,
    epoch: u32,
    expires_at: String,
    threshold: u32,
    max_retention_days: u32,
    quota_entries_per_day: u64,
    quota_bytes_per_day: u64,
    secret_fingerprint: String,
    rotation: Option<RotationText>,
    #[serde(default)]
    members: Vec<MemberText>,
    #[serde(default)]
    signatures: Vec<SignatureText>,
    #[serde(default)]
    key_changes: Vec<KeyChangeText>,
    #[serde(default)]
    member_records: Vec<RecordText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationText {
    previous_epoch: u32,
    previous_secret_fingerprint: String,
    changeover_at: String,
    grace_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberText {
    id: String,
    name: String,
    node_key: String,
    governance_key: String,
    sealing_key: String,
    #[serde(default)]
    retired_node_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureText {
    member: String,
    signature: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChangeText {
    member: String,
    old_key: String,
    new_key: String,
    /// The old key's final head (all three, or none when the old key never signed a batch).
    #[serde(default)]
    final_generation: Option<u32>,
    #[serde(default)]
    final_seq: Option<u64>,
    #[serde(default)]
    final_hash: Option<String>,
    old_signature: String,
    new_signature: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordText {
    member: String,
    seq: u64,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    contact: String,
    signature: String,
}

fn field(field: impl Into<String>, rule: &'static str) -> Error {
    Error::Field { field: field.into(), rule }
}

fn hex_array<const N: usize>(text: &str, name: impl Into<String>) -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| {
        field(
            name,
            match N {
                32 => "must be 64 hex digits",
                64 => "must be 128 hex digits",
                _ => "wrong length of hex digits",
            },
        )
    })?;
    Ok(bytes)
}

fn public_key(text: &str, name: impl Into<String>) -> Result<PublicKey, Error> {
    text.parse().map_err(|_| field(name, "must be a usable ed25519 public key in 64 hex digits"))
}

fn member_id(id: &str, name: impl Into<String>) -> Result<String, Error> {
    if !crossmatch_protocol::is_valid_member_id(id) {
        return Err(field(name, "a member id is 1-32 of A-Z a-z 0-9 - _"));
    }
    Ok(id.to_owned())
}

impl FileText {
    fn decode(self) -> Result<RosterFile, Error> {
        let federation_id = FederationId(hex_array(&self.federation_id, "federation_id")?);
        let rotation = match self.rotation {
            None => None,
            Some(rotation) => Some(Rotation {
                previous_epoch: rotation.previous_epoch,
                previous_secret_fingerprint: hex_array(
                    &rotation.previous_secret_fingerprint,
                    "rotation.previous_secret_fingerprint",
                )?,
                changeover_at_ms: parse_time(&rotation.changeover_at, "rotation.changeover_at")?,
                grace_ms: rotation.grace_ms,
            }),
        };
        if self.members.len() > crossmatch_protocol::MAX_MEMBERS {
            return Err(field("members", "a roster lists at most 256 members"));
        }
        let members = self.members.into_iter().map(MemberText::decode).collect::<Result<_, _>>()?;
        if self.signatures.len() > crossmatch_protocol::MAX_ROSTER_SIGNATURES {
            return Err(field("signatures", "too many signatures"));
        }
        let signatures = self
            .signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(GovernanceSignature {
                    member: member_id(&s.member, format!("signatures[{i}].member"))?,
                    signature: hex_array(&s.signature, format!("signatures[{i}].signature"))?,
                })
            })
            .collect::<Result<_, Error>>()?;
        if self.key_changes.len() > crossmatch_protocol::MAX_KEY_CHANGES {
            return Err(field("key_changes", "too many key changes"));
        }
        let key_changes = self
            .key_changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = |what: &str| format!("key_changes[{i}].{what}");
                Ok(KeyChange {
                    federation_id,
                    member: member_id(&c.member, at("member"))?,
                    old_key: public_key(&c.old_key, at("old_key"))?,
                    new_key: public_key(&c.new_key, at("new_key"))?,
                    final_head: match (c.final_generation, c.final_seq, &c.final_hash) {
                        (None, None, None) => None,
                        (Some(generation), Some(seq), Some(hash)) => {
                            Some(crossmatch_protocol::FinalHead {
                                generation,
                                seq,
                                hash: crossmatch_protocol::BatchHash(hex_array(
                                    hash,
                                    at("final_hash"),
                                )?),
                            })
                        }
                        _ => {
                            return Err(field(
                                at("final_seq"),
                                "final_generation, final_seq and final_hash go together",
                            ));
                        }
                    },
                    old_signature: hex_array(&c.old_signature, at("old_signature"))?,
                    new_signature: hex_array(&c.new_signature, at("new_signature"))?,
                })
            })
            .collect::<Result<_, Error>>()?;
        if self.member_records.len() > MAX_RECORDS {
            return Err(field("member_records", "at most one record per member"));
        }
        let mut records = Vec::with_capacity(self.member_records.len());
        for (i, r) in self.member_records.into_iter().enumerate() {
            let at = |what: &str| format!("member_records[{i}].{what}");
            let record = MemberRecord {
                federation_id,
                member: member_id(&r.member, at("member"))?,
                seq: r.seq,
                addresses: r.addresses,
                contact: r.contact,
            };
            if record.check_bounds().is_err() {
                return Err(field(
                    at("member"),
                    "a record has seq >= 1, at most 8 addresses of 1-256 bytes and a contact of \
                     at most 256 characters",
                ));
            }
            if records.iter().any(|held: &SignedMemberRecord| held.record.member == record.member) {
                return Err(field(at("member"), "a member has at most one record in the file"));
            }
            records.push(SignedMemberRecord {
                record,
                signature: hex_array(&r.signature, at("signature"))?,
            });
        }
        let body = RosterBody {
            federation_id,
            version: self.version,
            epoch: self.epoch,
            expires_at_ms: parse_time(&self.expires_at, "expires_at")?,
            threshold: self.threshold,
            max_retention_days: self.max_retention_days,
            quota_entries_per_day: self.quota_entries_per_day,
            quota_bytes_per_day: self.quota_bytes_per_day,
            secret_fingerprint: hex_array(&self.secret_fingerprint, "secret_fingerprint")?,
            rotation,
            members,
        };
        Ok(RosterFile { roster: SignedRoster { body, signatures, key_changes }, records })
    }
}

impl MemberText {
    fn decode(self) -> Result<RosterMember, Error> {
        let id = member_id(&self.id, "members.id")?;
        let at = |what: &str| format!("members[{id}].{what}");
        if self.retired_node_keys.len() > crossmatch_protocol::MAX_RETIRED_NODE_KEYS {
            return Err(field(at("retired_node_keys"), "at most 4 retired node keys"));
        }
        Ok(RosterMember {
            name: self.name,
            node_key: public_key(&self.node_key, at("node_key"))?,
            governance_key: public_key(&self.governance_key, at("governance_key"))?,
            sealing_key: hex_array(&self.sealing_key, at("sealing_key"))?,
            retired_node_keys: self
                .retired_node_keys
                .iter()
                .map(|key| public_key(key, at("retired_node_keys")))
                .collect::<Result<_, _>>()?,
            id,
        })
    }
}

/// Parses an RFC 3339 time into Unix milliseconds: not before 1970, at most millisecond
/// precision (so that the file renders back to the same text).
pub fn parse_time(text: &str, name: &str) -> Result<u64, Error> {
    let refused = || field(name, "must be an RFC 3339 time after 1970 with at most milliseconds");
    let moment = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| refused())?;
    let nanos = moment.unix_timestamp_nanos();
    if nanos < 0 || nanos % 1_000_000 != 0 {
        return Err(refused());
    }
    u64::try_from(nanos / 1_000_000).map_err(|_| refused())
}

/// Unix milliseconds as RFC 3339 in UTC (`2026-05-01T12:00:00Z`, with `.mmm` when the
/// milliseconds are not zero).
pub fn format_time(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(moment) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    let fraction = match ms % 1000 {
        0 => String::new(),
        millis => format!(".{millis:03}"),
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second()
    )
}

/// A TOML basic string.
fn string(text: &str) -> String {
    crate::init_cli::toml_string(text)
}

/// Renders a roster file: a commented TOML that is a function of `file` alone (members in body
/// order, signatures, key changes and records as held), so the same file renders to the same
/// bytes and [`parse`] reads it back to the same value.
pub fn render(file: &RosterFile) -> String {
    use std::fmt::Write;
    let body = &file.roster.body;
    let mut out = String::new();
    let _ = write!(
        out,
        "# The federation's roster (crossmatch `federation` commands write it). The members'\n\
         # governance signatures cover the roster hash, computed over the body's canonical CBOR,\n\
         # never over this file's bytes: `crossmatch federation show` prints it.\n\
         # Roster hash: {hash}\n\n\
         # The federation's random id, fixed for its life.\n\
         federation_id = \"{federation}\"\n\
         # Each change is the next version, signed by at least `threshold` current members.\n\
         version = {version}\n\
         # The token epoch in force.\n\
         epoch = {epoch}\n\
         # Past this time nodes raise an alarm until a newer version arrives.\n\
         expires_at = \"{expires}\"\n\
         # k: the governance signatures of current members a successor needs (2k > n, k <= n).\n\
         threshold = {threshold}\n\
         # Nobody keeps an entry longer than this; each node may configure less.\n\
         max_retention_days = {retention}\n\
         # What one origin may add per day at each peer (entries and batch bytes).\n\
         quota_entries_per_day = {entries}\n\
         quota_bytes_per_day = {bytes}\n\
         # The fingerprint of this epoch's federation secret (members check it by phone).\n\
         secret_fingerprint = \"{fingerprint}\"\n",
        hash = hex::encode(body.hash()),
        federation = body.federation_id,
        version = body.version,
        epoch = body.epoch,
        expires = format_time(body.expires_at_ms),
        threshold = body.threshold,
        retention = body.max_retention_days,
        entries = body.quota_entries_per_day,
        bytes = body.quota_bytes_per_day,
        fingerprint = hex::encode(body.secret_fingerprint),
    );
    if let Some(rotation) = &body.rotation {
        let _ = write!(
            out,
            "\n# The change of epoch and secret this version carries out.\n[rotation]\n\
             previous_epoch = {}\nprevious_secret_fingerprint = \"{}\"\n\
             changeover_at = \"{}\"\ngrace_ms = {}\n",
            rotation.previous_epoch,
            hex::encode(rotation.previous_secret_fingerprint),
            format_time(rotation.changeover_at_ms),
            rotation.grace_ms
        );
    }
    if !body.members.is_empty() {
        out.push_str(
            "\n# The members, sorted by id: node key (signs batches; the mesh identity),\n\
             # governance key (signs roster versions; kept offline), sealing key (X25519, the\n\
             # conversion of the node key, that the secret is sealed to).\n",
        );
    }
    for member in &body.members {
        let _ = write!(
            out,
            "\n[[members]]\nid = {}\nname = {}\nnode_key = \"{}\"\ngovernance_key = \"{}\"\n\
             sealing_key = \"{}\"\n",
            string(&member.id),
            string(&member.name),
            member.node_key,
            member.governance_key,
            hex::encode(member.sealing_key)
        );
        if !member.retired_node_keys.is_empty() {
            let keys: Vec<String> =
                member.retired_node_keys.iter().map(|k| format!("\"{k}\"")).collect();
            let _ = writeln!(out, "retired_node_keys = [{}]", keys.join(", "));
        }
    }
    if !file.roster.signatures.is_empty() {
        out.push_str("\n# Governance signatures over the roster hash.\n");
    }
    for signature in &file.roster.signatures {
        let _ = write!(
            out,
            "\n[[signatures]]\nmember = {}\nsignature = \"{}\"\n",
            string(&signature.member),
            hex::encode(signature.signature)
        );
    }
    if !file.roster.key_changes.is_empty() {
        out.push_str("\n# Routine node key changes, signed by the old and the new key.\n");
    }
    for change in &file.roster.key_changes {
        let final_head = change.final_head.map_or(String::new(), |head| {
            format!(
                "final_generation = {}\nfinal_seq = {}\nfinal_hash = \"{}\"\n",
                head.generation,
                head.seq,
                hex::encode(head.hash.as_bytes())
            )
        });
        let _ = write!(
            out,
            "\n[[key_changes]]\nmember = {}\nold_key = \"{}\"\nnew_key = \"{}\"\n{}\
             old_signature = \"{}\"\nnew_signature = \"{}\"\n",
            string(&change.member),
            change.old_key,
            change.new_key,
            final_head,
            hex::encode(change.old_signature),
            hex::encode(change.new_signature)
        );
    }
    if !file.records.is_empty() {
        out.push_str(
            "\n# Each member's own record (where to reach it, whom to call), signed by its node\n\
             # key; the highest seq wins. Changing it needs no governance signatures.\n",
        );
    }
    for signed in &file.records {
        out.push('\n');
        out.push_str(&render_record(signed));
    }
    out
}

/// One `[[member_records]]` table (as [`render`] writes it).
pub fn render_record(signed: &SignedMemberRecord) -> String {
    let record = &signed.record;
    let addresses: Vec<String> = record.addresses.iter().map(|a| string(a)).collect();
    format!(
        "[[member_records]]\nmember = {}\nseq = {}\naddresses = [{}]\ncontact = {}\n\
         signature = \"{}\"\n",
        string(&record.member),
        record.seq,
        addresses.join(", "),
        string(&record.contact),
        hex::encode(signed.signature)
    )
}

#[cfg(test)]
mod tests;
