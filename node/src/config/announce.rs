//! What the config announces in this member's own signed record (`announce_addresses`,
//! `contact`; docs/PROTOCOL.md §3.7): checked at load as a member record's bounds and the mesh
//! check them, and handed to the node, which signs the record itself.

use super::{ConfigFile, Loaded};

/// Checks what the config announces in the member's own record as the record's bounds and the
/// mesh check them: at most 8 addresses, each a multiaddr the mesh can dial of at most 256
/// bytes, and a contact of at most 256 characters.
pub(super) fn check_announce(config: &ConfigFile) -> Result<(), &'static str> {
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
    /// names either (checked at load); `None`: it signs none.
    pub fn announce(&self) -> Option<(Vec<String>, String)> {
        let config = &self.config;
        if config.announce_addresses.is_none() && config.contact.is_none() {
            return None;
        }
        Some((
            config.announce_addresses.clone().unwrap_or_default(),
            config.contact.clone().unwrap_or_default(),
        ))
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
        assert!(check_announce(&config("announce_addresses = [\"node.example:7400\"]")).is_err());
        let nine = ["\"/ip4/10.0.0.5/tcp/7400\""; 9].join(", ");
        assert!(check_announce(&config(&format!("announce_addresses = [{nine}]"))).is_err());
        let long = "x".repeat(257);
        assert!(check_announce(&config(&format!("contact = \"{long}\""))).is_err());
        assert_eq!(check_announce(&config(&format!("contact = \"{}\"", &long[1..]))), Ok(()));
    }
}
