//! Roster fixtures: members with node and governance keys from seeds, and a founding roster
//! file signed by all of them, with each member's own record, as the ceremony's tools make it.

use crossmatch_protocol::{
    FederationId, FederationSecret, KeyChange, MemberRecord, RosterBody, RosterMember,
    SignedRoster, SigningKey, secret_fingerprint, sign_roster,
};

use crate::roster_file::RosterFile;

/// One member of a test roster, with its private keys.
#[derive(Debug, Clone)]
pub struct Seat {
    /// The member id.
    pub id: String,
    /// The node key.
    pub node_key: SigningKey,
    /// The governance key.
    pub governance_key: SigningKey,
    /// Mesh addresses for its record.
    pub addresses: Vec<String>,
    /// Contact for its record.
    pub contact: String,
}

/// Member `id` with keys derived from `seed` (node key seed `[seed; 32]`, governance key
/// seed `[seed ^ 0x80; 32]`) and the given addresses.
pub fn seat(id: &str, seed: u8, addresses: &[String]) -> Seat {
    Seat {
        id: id.to_owned(),
        node_key: SigningKey::from_seed(&[seed; 32]),
        governance_key: SigningKey::from_seed(&[seed ^ 0x80; 32]),
        addresses: addresses.to_vec(),
        contact: format!("desk@{}.example", id.to_ascii_lowercase()),
    }
}

/// The roster member of `seat`.
pub fn roster_member(seat: &Seat) -> RosterMember {
    let node_key = seat.node_key.public_key();
    RosterMember {
        id: seat.id.clone(),
        name: format!("Member {}", seat.id),
        node_key,
        governance_key: seat.governance_key.public_key(),
        sealing_key: node_key.to_x25519(),
        retired_node_keys: Vec::new(),
    }
}

/// An unsigned version-1 body of `seats` (sorted by id), threshold the least majority,
/// expiring at `expires_at_ms`.
pub fn body(
    federation_id: FederationId,
    secret: &FederationSecret,
    seats: &[Seat],
    expires_at_ms: u64,
) -> RosterBody {
    let mut members: Vec<RosterMember> = seats.iter().map(roster_member).collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let threshold = u32::try_from(members.len() / 2 + 1).unwrap_or(u32::MAX);
    RosterBody {
        federation_id,
        version: 1,
        epoch: 1,
        expires_at_ms,
        threshold,
        max_retention_days: 180,
        quota_entries_per_day: 1_000_000,
        quota_bytes_per_day: 1_000_000_000,
        secret_fingerprint: secret_fingerprint(secret),
        rotation: None,
        members,
    }
}

/// `body` signed by the governance keys of `signers`, with each seat's record (seq 1).
pub fn signed_file(body: RosterBody, seats: &[Seat], signers: &[&Seat]) -> RosterFile {
    let mut roster = SignedRoster { body, signatures: Vec::new(), key_changes: Vec::new() };
    for signer in signers {
        roster.add_signature(sign_roster(&roster.body, &signer.id, &signer.governance_key));
    }
    let mut file = RosterFile { roster, records: Vec::new() };
    for seat in seats {
        let record = MemberRecord {
            federation_id: file.roster.body.federation_id,
            member: seat.id.clone(),
            seq: 1,
            addresses: seat.addresses.clone(),
            contact: seat.contact.clone(),
        };
        if let Ok(signed) = record.sign(&seat.node_key) {
            file.set_record(signed);
        }
    }
    file
}

/// A founding roster file of `seats`: version 1, signed by every member, each with its record.
pub fn founding_file(
    federation_id: FederationId,
    secret: &FederationSecret,
    seats: &[Seat],
    expires_at_ms: u64,
) -> RosterFile {
    let signers: Vec<&Seat> = seats.iter().collect();
    signed_file(body(federation_id, secret, seats, expires_at_ms), seats, &signers)
}

/// A key change of `seat` from its node key to `new_key`, signed by both, the old feed ending
/// at `final_head`.
pub fn key_change(
    federation_id: &FederationId,
    seat: &Seat,
    new_key: &SigningKey,
    final_head: Option<crossmatch_protocol::FinalHead>,
) -> KeyChange {
    KeyChange::sign(federation_id, &seat.id, &seat.node_key, new_key, final_head)
}

/// Member `id` of a directory `crossmatch init` set up: its node and governance key files.
pub fn seat_of_dir(id: &str, dir: &std::path::Path, addresses: &[String]) -> Seat {
    let read = |file: &str| {
        crate::keyfile::read_signing_key(&dir.join(file))
            .unwrap_or_else(|error| panic!("reading {file} in {}: {error}", dir.display()))
    };
    Seat {
        id: id.to_owned(),
        node_key: read(crate::init_cli::NODE_KEY_FILE),
        governance_key: read(crate::init_cli::GOVERNANCE_KEY_FILE),
        addresses: addresses.to_vec(),
        contact: format!("desk@{}.example", id.to_ascii_lowercase()),
    }
}

/// Writes to `path` a founding roster file of `seats` (federation `[0xab; 32]`) for `secret`,
/// expiring a year from now.
pub fn write_founding(path: &std::path::Path, secret: &FederationSecret, seats: &[Seat]) {
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let file =
        founding_file(FederationId([0xab; 32]), secret, seats, now + 365 * crate::clock::DAY_MS);
    std::fs::write(path, crate::roster_file::render(&file))
        .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
}
