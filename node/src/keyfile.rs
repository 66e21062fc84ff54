//! Key and secret files: written once with mode 0600, refused when group or others can read them.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crossmatch_protocol::{FederationSecret, SigningKey};

/// Errors reading or writing key and secret files. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists already; keys are never overwritten.
    #[error("{path} already exists; refusing to overwrite a key or secret")]
    Exists {
        /// The path given.
        path: PathBuf,
    },
    /// The file is readable by group or others.
    #[error(
        "{path} has mode {mode:o}; key and secret files must not be readable by group or others (chmod 600)"
    )]
    TooOpen {
        /// The path given.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not 64 hex digits.
    #[error("{path} does not hold 64 hex digits (32 bytes)")]
    Malformed {
        /// The path given.
        path: PathBuf,
    },
    /// An I/O error.
    #[error("cannot access {path}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Generates 32 bytes from the operating system's random source.
pub fn random_32() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// Writes a new Ed25519 key file (the 32-byte seed as hex) with mode 0600.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), Error> {
    write_secret_hex(path, &key.seed())
}

/// Writes a new federation secret file (32 bytes as hex) with mode 0600.
pub fn write_federation_secret(path: &Path, secret: &FederationSecret) -> Result<(), Error> {
    write_secret_hex(path, secret.as_bytes())
}

/// Reads a key file written by [`write_signing_key`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, Error> {
    read_secret_hex(path).map(|seed| SigningKey::from_seed(&seed))
}

/// Reads a secret file written by [`write_federation_secret`].
pub fn read_federation_secret(path: &Path) -> Result<FederationSecret, Error> {
    read_secret_hex(path).map(FederationSecret::from_bytes)
}

/// Reads a small private text file (an API token): refused when group or others can read it.
pub fn read_private_text(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::TooOpen { path: path.to_owned(), mode });
    }
    let mut text = String::new();
    fs::File::open(path).map_err(io)?.take(4096).read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

/// Writes a new private text file (a config or an API tokens file) with mode 0600, synced;
/// never overwrites one.
pub fn write_private_text(path: &Path, text: &str) -> Result<(), Error> {
    write_new_private(path, text.as_bytes())
}

/// Replaces the key file at `path` with `key`, atomically: written to a new file beside it
/// (0600, synced), renamed over it, and the directory synced, so that a crash leaves the old key
/// or the new one, never neither.
pub fn replace_signing_key(path: &Path, key: &SigningKey) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(io(error)),
        _ => {}
    }
    write_signing_key(&temporary, key)?;
    fs::rename(&temporary, path).map_err(io)?;
    sync_parent(path)
}

/// Syncs the directory `dir`, so that the files just created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let io = |source| Error::Io { path: dir.to_owned(), source };
    fs::File::open(dir).map_err(io)?.sync_all().map_err(io)
}

/// Syncs the directory holding `path`.
pub fn sync_parent(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

fn write_secret_hex(path: &Path, bytes: &[u8; 32]) -> Result<(), Error> {
    write_new_private(path, format!("{}\n", hex::encode(bytes)).as_bytes())
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
        |source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Exists { path: path.to_owned() },
            _ => io(source),
        },
    )?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

fn read_secret_hex(path: &Path) -> Result<[u8; 32], Error> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::TooOpen { path: path.to_owned(), mode });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| Error::Malformed { path: path.to_owned() })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("crossmatch-keyfile-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&dir);
        dir
    }

    #[test]
    fn key_round_trips_with_mode_0600_and_is_never_overwritten() {
        let path = temp_path("key");
        let key = SigningKey::from_seed(&[3; 32]);
        write_signing_key(&path, &key).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_signing_key(&path).unwrap().seed(), key.seed());
        assert!(matches!(write_signing_key(&path, &key), Err(Error::Exists { .. })));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn readable_by_others_is_refused() {
        let path = temp_path("open");
        write_federation_secret(&path, &FederationSecret::from_bytes([1; 32])).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_federation_secret(&path), Err(Error::TooOpen { mode: 0o644, .. })));
        fs::remove_file(&path).unwrap();
    }
}
