//! Key and secret files: written once with mode 0600, refused when group or others can read them;
//! and the one way a private file is replaced atomically ([`replace_private_file`]).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crossmatch_protocol::{FederationSecret, SigningKey};
use zeroize::Zeroize;

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
    /// The file is longer than its reader accepts.
    #[error("{path} is longer than {limit} bytes")]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// The most bytes accepted.
        limit: u64,
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

/// The most bytes [`read_private_text`] reads (16 KiB: a PEM key with its certificate chain
/// fits): a longer file is refused, never cut.
pub const PRIVATE_TEXT_LIMIT: u64 = 16 * 1024;

/// Reads a small private text file (a webhook secret, a TLS client key): refused when group or
/// others can read it, or when it is longer than [`PRIVATE_TEXT_LIMIT`] bytes.
pub fn read_private_text(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::TooOpen { path: path.to_owned(), mode });
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(PRIVATE_TEXT_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > PRIVATE_TEXT_LIMIT {
        return Err(Error::TooLarge { path: path.to_owned(), limit: PRIVATE_TEXT_LIMIT });
    }
    String::from_utf8(bytes).map_err(|error| {
        io(std::io::Error::new(std::io::ErrorKind::InvalidData, error.utf8_error()))
    })
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
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let mut text = format!("{}\n", hex::encode(key.seed()));
    let replaced =
        replace_private_file(path, Path::new(&temporary), text.as_bytes(), Existing::Replace);
    text.zeroize();
    replaced.map_err(|FileError { path, source }| Error::Io { path, source })
}

/// What [`replace_private_file`] does when the file is there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it.
    Replace,
    /// Leave it and fail with [`std::io::ErrorKind::AlreadyExists`].
    Refuse,
}

/// A step of [`replace_private_file`] failed: the path it failed on (the temporary file, the
/// file, or its directory) and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct FileError {
    /// The path the failed step acted on.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path`, mode 0600, atomically: into `temporary`, a new file in the same
/// directory (a stale one a crash left is removed first), synced, then renamed over `path`
/// (with [`Existing::Refuse`], linked to it instead, which fails if `path` exists), then the
/// directory synced. A crash leaves the old file or the new one, never a torn one; on an error
/// the temporary file is removed.
pub fn replace_private_file(
    path: &Path,
    temporary: &Path,
    bytes: &[u8],
    existing: Existing,
) -> Result<(), FileError> {
    match fs::remove_file(temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(failed_at(temporary)(error));
        }
        _ => {}
    }
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temporary)
            .map_err(failed_at(temporary))?;
        file.write_all(bytes).map_err(failed_at(temporary))?;
        file.sync_all().map_err(failed_at(temporary))?;
        drop(file);
        match existing {
            Existing::Replace => fs::rename(temporary, path).map_err(failed_at(path)),
            Existing::Refuse => {
                fs::hard_link(temporary, path).map_err(failed_at(path))?;
                // `path` is in place: a temporary name left behind is no failure of the call
                // (the next write through it clears a stale one first).
                if fs::remove_file(temporary).is_err() {
                    tracing::warn!("a private file's temporary name could not be removed");
                }
                Ok(())
            }
        }
    })();
    if written.is_err() {
        let _ = fs::remove_file(temporary);
    }
    written?;
    let dir = parent_dir(path);
    fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(failed_at(dir))
}

fn failed_at(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |source| FileError { path: path.to_owned(), source }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs the directory `dir`, so that the files just created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let io = |source| Error::Io { path: dir.to_owned(), source };
    fs::File::open(dir).map_err(io)?.sync_all().map_err(io)
}

/// Syncs the directory holding `path`.
pub fn sync_parent(path: &Path) -> Result<(), Error> {
    sync_dir(parent_dir(path))
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

    #[test]
    fn private_text_past_its_limit_is_refused_not_cut() {
        let temp = crate::test_support::TempDir::new("keyfile-private-text");
        let path = temp.path().join("token");
        let at_limit = "t".repeat(PRIVATE_TEXT_LIMIT as usize);
        write_private_text(&path, &at_limit).unwrap();
        assert_eq!(read_private_text(&path).unwrap(), at_limit);
        fs::remove_file(&path).unwrap();
        write_private_text(&path, &format!("{at_limit}x")).unwrap();
        let error = read_private_text(&path).unwrap_err();
        assert!(matches!(error, Error::TooLarge { limit: PRIVATE_TEXT_LIMIT, .. }), "{error:?}");
        assert!(error.to_string().contains("longer than 16384 bytes"), "{error}");
    }

    #[test]
    fn a_private_file_is_replaced_whole_with_mode_0600_and_no_temporary_left() {
        let temp = crate::test_support::TempDir::new("keyfile-replace");
        let (path, temporary) = (temp.path().join("cursor"), temp.path().join("cursor.new"));
        // A stale temporary (as a crash leaves it) with a wider mode is not reused.
        fs::write(&temporary, "stale and longer than the new content").unwrap();
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o644)).unwrap();
        replace_private_file(&path, &temporary, b"first\n", Existing::Replace).unwrap();
        replace_private_file(&path, &temporary, b"two\n", Existing::Replace).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!temporary.exists(), "the temporary file was renamed");
        let names: Vec<_> =
            fs::read_dir(temp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["cursor"]);

        // Refuse leaves an existing file as it was, and no temporary behind.
        let error =
            replace_private_file(&path, &temporary, b"three\n", Existing::Refuse).unwrap_err();
        assert_eq!(error.source.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(error.path, path);
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        assert!(!temporary.exists(), "the temporary file was removed");
        let fresh = temp.path().join("fresh");
        replace_private_file(&fresh, &temporary, b"new\n", Existing::Refuse).unwrap();
        assert_eq!(fs::read_to_string(&fresh).unwrap(), "new\n");
        assert_eq!(fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!temporary.exists());
    }

    #[test]
    fn a_failed_replacement_names_the_path_it_failed_on() {
        let temp = crate::test_support::TempDir::new("keyfile-replace-fails");
        let path = temp.path().join("missing-dir").join("file");
        let temporary = temp.path().join("missing-dir").join("file.new");
        let error = replace_private_file(&path, &temporary, b"x", Existing::Replace).unwrap_err();
        assert_eq!(error.path, temporary);
        assert_eq!(error.source.kind(), std::io::ErrorKind::NotFound);
    }
}
