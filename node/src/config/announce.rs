//! What the config announces in this member's own signed record (`announce_addresses`,
//! `contact`; docs/PROTOCOL.md §3.7): checked at load as a member record's bounds and the mesh
//! check them, and handed to the node, which signs the record itself. A config names both or
//! neither: one alone is refused at load, since the record the node signs replaces the member's
//! whole record at every peer, and a missing field would wipe the addresses peers dial (or the
//! contact they call) there.

use super::{ConfigFile, Loaded};

/// Checks what the config announces in the member's own record as the record's bounds and the
/// mesh check them: at most 8 addresses, each a multiaddr the mesh can dial of at most 256
/// bytes, and a contact of at most 256 characters.
pub(super) fn check_announce(config: &ConfigFile) -> Result<(), &'static str> {
    if config.announce_addresses.is_some() != config.contact.is_some() {
        return Err(
            "announce_addresses and contact go together: the record they sign replaces this member's whole record at every peer, so name both (the current ones for the one that does not change) or neither",
        );
    }
    let addresses = config.announce_addresses.as_deref().unwrap_or_default();
    if addresses.len() > crossmatch_protocol::MAX_RECORD_ADDRESSES {
        return Err("announce_addresses names at most 8 addresses");
    }
    if addresses.iter().any(|address| {
        address.len() > crossmatch_protocol::MAX_RECORD_ADDRESS_BYTES
            || crate::mesh::validate_address(address).is_err()
    }) {
        return Err(
            "announce_addresses must be multiaddrs such as /dns4/host/tcp/7400 or /ip4/10.0.0.5/tcp/7400, each at most 256 bytes",
        );
    }
    let contact = config.contact.as_deref().unwrap_or_default();
    if contact.chars().count() > crossmatch_protocol::MAX_RECORD_CONTACT_CHARS {
        return Err("contact is at most 256 characters");
    }
    Ok(())
}

impl Loaded {
    /// What the node announces in its own signed record, (addresses, contact), when the config
    /// names both (checked at load: never one alone); `None`: it signs none.
    pub fn announce(&self) -> Option<(Vec<String>, String)> {
        let config = &self.config;
        Some((config.announce_addresses.clone()?, config.contact.clone()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_details_are_checked_as_a_member_records_bounds() {
        let config = |announce: &str| -> ConfigFile {
            toml::from_str(&format!(
                "member_id = \"DE\"\ndata_dir = \"d\"\nkey_file = \"k\"\nsecret_file = \"s\"\n\
                 roster_file = \"r\"\nlisten_addresses = [\"/ip4/0.0.0.0/tcp/7400\"]\n{announce}"
            ))
            .unwrap()
        };
        assert_eq!(check_announce(&config("")), Ok(()));
        let good = config(
            "announce_addresses = [\"/dns4/node.example/tcp/7400\", \"/ip4/10.0.0.5/tcp/7400\"]\n\
             contact = \"duty desk\"",
        );
        assert_eq!(check_announce(&good), Ok(()));
        assert_eq!(good.announce_addresses.as_ref().map(Vec::len), Some(2));
        let desk = "\ncontact = \"desk\"";
        let bad = format!("announce_addresses = [\"node.example:7400\"]{desk}");
        assert!(check_announce(&config(&bad)).is_err());
        let nine = ["\"/ip4/10.0.0.5/tcp/7400\""; 9].join(", ");
        assert!(check_announce(&config(&format!("announce_addresses = [{nine}]{desk}"))).is_err());
        let long = "x".repeat(257);
        let addresses = "announce_addresses = []\n";
        assert!(check_announce(&config(&format!("{addresses}contact = \"{long}\""))).is_err());
        let fits = format!("{addresses}contact = \"{}\"", &long[1..]);
        assert_eq!(check_announce(&config(&fits)), Ok(()));
        // One alone would wipe the other at every peer: refused.
        let alone = check_announce(&config("contact = \"desk\"")).unwrap_err();
        assert!(alone.contains("go together"), "{alone}");
        let alone = "announce_addresses = [\"/ip4/10.0.0.5/tcp/7400\"]";
        assert!(check_announce(&config(alone)).is_err());
    }
}
