//! `crossmatch init --member ID --dir DIR`, the member's first step of the setup ceremony: a new
//! owner-only directory with the node key, a separate governance key (meant to be kept offline;
//! `crossmatch run` never reads it), a commented config and an API tokens file with one admin,
//! whose bearer token is returned to be printed once and is never stored (only its hash), and
//! the member's public card (`member.toml`) to send to the coordinator. Also the `[[tokens]]`
//! entry that `api-token new` prints.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crossmatch_protocol::{PublicKey, SigningKey};

use crate::api::{self, Role};
use crate::keyfile;

/// The config file `init` writes.
pub const CONFIG_FILE: &str = "node.toml";
/// The node key: signs batches, is the mesh identity; stays on the node.
pub const NODE_KEY_FILE: &str = "node.key";
/// The governance key: signs roster changes; belongs offline.
pub const GOVERNANCE_KEY_FILE: &str = "governance.key";
/// The API tokens file, with the admin's token hash.
pub const TOKENS_FILE: &str = "api-tokens.toml";
/// The federation secret, which arrives later in the ceremony.
pub const SECRET_FILE: &str = "federation.secret";
/// The roster, which arrives later in the ceremony.
pub const ROSTER_FILE: &str = "roster.toml";
/// The data directory the config names (the node creates it, owner-only, at its first start).
pub const DATA_DIR: &str = "data";
/// The mesh address the config listens on.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7400";
/// The API address the config serves on (loopback only).
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7480";

/// Where the node `init` sets up listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The mesh's multiaddr.
    pub mesh: String,
    /// The API's address (loopback only).
    pub api: std::net::SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            mesh: DEFAULT_LISTEN.to_owned(),
            api: std::net::SocketAddr::from(([127, 0, 0, 1], 7480)),
        }
    }
}

/// Why `init` refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The member id is not one a roster accepts.
    #[error("a member id is 1-32 of A-Z a-z 0-9 - _")]
    MemberId,
    /// The API address is off loopback.
    #[error("the API listens on a loopback address only; put a TLS reverse proxy in front")]
    ApiNotLoopback,
    /// The directory holds something already (or is not a directory).
    #[error("{path} exists and is not an empty directory; init writes only into a new one")]
    NotEmpty {
        /// The directory given.
        path: PathBuf,
    },
    /// Creating or checking the directory failed.
    #[error("cannot create {path}")]
    Io {
        /// The directory given.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("cannot read randomness")]
    Randomness,
    /// Writing a key or file failed.
    #[error(transparent)]
    Key(#[from] keyfile::Error),
}

/// What `init` made: the public halves to send to the coordinator, and the admin's bearer
/// token, to be shown once.
#[derive(Debug)]
pub struct Initialized {
    /// The config file written.
    pub config_file: PathBuf,
    /// The node's public key.
    pub node_key: PublicKey,
    /// The governance public key.
    pub governance_key: PublicKey,
    /// The admin user's name (`admin-<id in lower case>`).
    pub admin_name: String,
    /// The admin's bearer token: not stored anywhere; print it once.
    pub admin_token: String,
}

/// Whether `id` is a member id a roster accepts: 1-32 of A-Z a-z 0-9 - _.
pub fn valid_member_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Sets up member `member_id` in `dir` listening where [`Listen::default`] says.
pub fn init(member_id: &str, dir: &Path) -> Result<Initialized, Error> {
    init_with(member_id, dir, &Listen::default())
}

/// Sets up member `member_id` in `dir`: created with mode 0700 (or taken when it exists empty),
/// then the node key, the governance key, the tokens file, the config and the public card
/// ([`crate::federation_cli::CARD_FILE`]), each 0600.
pub fn init_with(member_id: &str, dir: &Path, listen: &Listen) -> Result<Initialized, Error> {
    if !valid_member_id(member_id) {
        return Err(Error::MemberId);
    }
    if !listen.api.ip().is_loopback() {
        return Err(Error::ApiNotLoopback);
    }
    make_private_dir(dir)?;
    let node_key = SigningKey::from_seed(&keyfile::random_32().map_err(|_| Error::Randomness)?);
    let governance_key =
        SigningKey::from_seed(&keyfile::random_32().map_err(|_| Error::Randomness)?);
    keyfile::write_signing_key(&dir.join(NODE_KEY_FILE), &node_key)?;
    keyfile::write_signing_key(&dir.join(GOVERNANCE_KEY_FILE), &governance_key)?;
    let admin_name = format!("admin-{}", member_id.to_ascii_lowercase());
    let admin_token = api::new_bearer_token().map_err(|_| Error::Randomness)?;
    let tokens = format!(
        "# The local API's users: one [[tokens]] entry each, holding the hash of the user's bearer\n\
         # token, never the token (`crossmatch api-token new` prints new entries). Keep this file\n\
         # mode 0600; a running node reads it again on SIGHUP.\n\n{}",
        token_entry(&admin_name, Role::Admin, &api::token_hash(&admin_token))
    );
    keyfile::write_private_text(&dir.join(TOKENS_FILE), &tokens)?;
    let config_file = dir.join(CONFIG_FILE);
    keyfile::write_private_text(&config_file, &config_text(member_id, listen))?;
    let card = crate::federation_cli::Card {
        id: member_id.to_owned(),
        node_key: node_key.public_key(),
        governance_key: governance_key.public_key(),
    };
    keyfile::write_private_text(&dir.join(crate::federation_cli::CARD_FILE), &card.render())?;
    // Each file was synced as written; their names are durable once the directory is synced
    // (and the directory's own name once its parent is).
    keyfile::sync_dir(dir)?;
    keyfile::sync_parent(dir)?;
    Ok(Initialized {
        config_file,
        node_key: node_key.public_key(),
        governance_key: governance_key.public_key(),
        admin_name,
        admin_token,
    })
}

/// One `[[tokens]]` entry of the API tokens file: the user's name, role and token hash.
pub fn token_entry(name: &str, role: Role, hash: &[u8; 32]) -> String {
    format!(
        "[[tokens]]\nname = {}\nrole = \"{role}\"\nhash = \"{}\"\n",
        toml_string(name),
        hex::encode(hash)
    )
}

/// A TOML basic string: a JSON string uses only escapes TOML shares.
pub fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn make_private_dir(dir: &Path) -> Result<(), Error> {
    let io = |source| Error::Io { path: dir.to_owned(), source };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::NotEmpty { path: dir.to_owned() });
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            Err(Error::NotEmpty { path: dir.to_owned() })
        }
        Err(error) => Err(io(error)),
    }
}

fn config_text(member_id: &str, listen: &Listen) -> String {
    format!(
        r#"# The crossmatch node of member {member_id}, written by `crossmatch init`.
# Run it with `crossmatch run --config {CONFIG_FILE}`. Keep this file mode 0600.
# Paths are relative to this file's directory.

# This member's id in the federation's roster.
member_id = {id}
# The store, the own feed's log and the audit log (created owner-only at the first start).
data_dir = "{DATA_DIR}"
# The node key (Ed25519): signs this member's batches and is its identity on the mesh. It
# stays on this machine. (The governance key is not named here: `run` never reads it.)
key_file = "{NODE_KEY_FILE}"
# The federation secret: the coordinator sends it sealed to this node's key
# (`crossmatch secret open` writes it).
secret_file = "{SECRET_FILE}"
# The federation's roster: the coordinator sends it once this member is on it.
roster_file = "{ROSTER_FILE}"
# Where the other members reach this node (open the port to them only).
listen_addresses = [{mesh}]
# This member's own record, signed by the node key: the addresses the other members dial
# (this host's public name or IP, not 0.0.0.0) and whom they call. The node signs a new record
# at start whenever these change and spreads it to every member: no roster change is needed.
# Uncomment and fill in:
# announce_addresses = ["/dns4/node.example.org/tcp/7400"]
# contact = "duty desk, +00 000 0000"
# error, warn, info, debug or trace; RUST_LOG wins when it is set. SIGHUP reloads it.
log_level = "info"

# The local HTTP API: loopback only; TLS and remote access go through a reverse proxy.
[api]
listen = "{api}"
# The API's users and their token hashes (`crossmatch api-token new`). SIGHUP reloads it.
tokens_file = "{TOKENS_FILE}"
"#,
        id = toml_string(member_id),
        mesh = toml_string(&listen.mesh),
        api = listen.api,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_follow_the_rosters_rule() {
        for good in ["DE", "EUROPOL", "fr-2", "a_b", &"X".repeat(32)] {
            assert!(valid_member_id(good), "{good}");
        }
        for bad in ["", "D E", "DE/1", "ü", &"X".repeat(33), "DE\n"] {
            assert!(!valid_member_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_token_entry_parses_back_as_a_tokens_file() {
        let text = token_entry("ana \"the\" analyst", Role::Analyst, &[7; 32]);
        let file: crate::config::TokensFile = toml::from_str(&text).unwrap();
        assert_eq!(file.tokens.len(), 1);
        assert_eq!(file.tokens[0].name, "ana \"the\" analyst");
        assert_eq!(file.tokens[0].role, Role::Analyst);
        assert_eq!(file.tokens[0].hash, hex::encode([7; 32]));
    }
}
