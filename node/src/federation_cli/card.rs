//! The member's public card (`member.toml`), which `crossmatch init` writes for the member to
//! send to the coordinator: id, node key, governance key, the sealing key converted from the
//! node key, and the keys' fingerprints for the phone check. `federation add-member` reads it
//! and refuses a card whose sealing key or fingerprints do not follow from its keys.

use std::path::Path;

use crossmatch_protocol::PublicKey;
use serde::Deserialize;

use super::Error;
use crate::init_cli::toml_string;

/// The card's file name in the member's directory.
pub const CARD_FILE: &str = "member.toml";

/// A member's public card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The member id.
    pub id: String,
    /// The node key.
    pub node_key: PublicKey,
    /// The governance key.
    pub governance_key: PublicKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardText {
    id: String,
    node_key: String,
    node_fingerprint: String,
    governance_key: String,
    governance_fingerprint: String,
    sealing_key: String,
}

impl Card {
    /// The card's text: commented TOML.
    pub fn render(&self) -> String {
        format!(
            "# The public card of member {id}, written by `crossmatch init`: send it to the\n\
             # coordinator, and read the fingerprints to them by phone. It holds no secret.\n\
             id = {quoted}\n\
             # Signs this member's batches and records; its identity on the mesh.\n\
             node_key = \"{node}\"\n\
             node_fingerprint = \"{node_fingerprint}\"\n\
             # Signs roster versions; kept offline.\n\
             governance_key = \"{governance}\"\n\
             governance_fingerprint = \"{governance_fingerprint}\"\n\
             # X25519, converted from the node key: the federation secret is sealed to it.\n\
             sealing_key = \"{sealing}\"\n",
            id = self.id,
            quoted = toml_string(&self.id),
            node = self.node_key,
            node_fingerprint = self.node_key.fingerprint(),
            governance = self.governance_key,
            governance_fingerprint = self.governance_key.fingerprint(),
            sealing = hex::encode(self.node_key.to_x25519()),
        )
    }

    /// Parses a card, refusing unknown keys, bad keys, and a sealing key or fingerprint that
    /// does not follow from the keys.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let card: CardText =
            toml::from_str(text).map_err(|error| Error::Input(error.message().to_owned()))?;
        let bad = |what: &str| Error::Input(format!("the card's {what}"));
        if !crossmatch_protocol::is_valid_member_id(&card.id) {
            return Err(bad("id is not 1-32 of A-Z a-z 0-9 - _"));
        }
        let node_key: PublicKey =
            card.node_key.parse().map_err(|_| bad("node_key is not an ed25519 public key"))?;
        let governance_key: PublicKey = card
            .governance_key
            .parse()
            .map_err(|_| bad("governance_key is not an ed25519 public key"))?;
        if node_key == governance_key {
            return Err(bad("node and governance keys are the same key"));
        }
        if card.sealing_key != hex::encode(node_key.to_x25519()) {
            return Err(bad("sealing_key is not the conversion of its node_key"));
        }
        if card.node_fingerprint != node_key.fingerprint().to_string()
            || card.governance_fingerprint != governance_key.fingerprint().to_string()
        {
            return Err(bad("fingerprints are not those of its keys"));
        }
        Ok(Self { id: card.id, node_key, governance_key })
    }

    /// Reads and parses a card file (at most 16 KiB).
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = super::read_small(path, 16 * 1024)?;
        Self::parse(&text).map_err(|error| Error::Input(format!("{}: {error}", path.display())))
    }
}
