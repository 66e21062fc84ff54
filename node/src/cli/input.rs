//! Bounded reads of what the analyst gives on stdin or in a file: at most the limit and one
//! byte more is ever read, so an input past its limit is refused after reading little more than
//! the limit, whatever its size (a pipe from `yes` included). Every reader of the command line's
//! inputs goes through here.

use std::io::Read;
use std::path::Path;

use super::{CliError, Exit};

/// Reads `reader` to its end if that is at most `limit` bytes: `None` past it, having read at
/// most `limit + 1` bytes.
pub(super) fn read_at_most(reader: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// The whole input of `file` (`-` is stdin), at most `limit` bytes; past it, refused (exit 2)
/// saying the limit, never the content.
pub(super) fn read_input(file: &Path, limit: u64) -> Result<Vec<u8>, CliError> {
    let read = if file.as_os_str() == "-" {
        read_at_most(std::io::stdin().lock(), limit)
    } else {
        std::fs::File::open(file).and_then(|file| read_at_most(file, limit))
    };
    read.map_err(|error| CliError::new(Exit::Usage, format!("reading the input: {error}")))?
        .ok_or_else(|| CliError::new(Exit::Usage, format!("the input is over {limit} bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that counts the bytes taken from it.
    struct Counting<R> {
        inner: R,
        taken: u64,
    }

    impl<R: Read> Read for &mut Counting<R> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let read = self.inner.read(buffer)?;
            self.taken += read as u64;
            Ok(read)
        }
    }

    #[test]
    fn an_input_at_the_limit_is_read_and_one_past_it_is_refused() {
        assert_eq!(read_at_most(&b"abcd"[..], 4).unwrap(), Some(b"abcd".to_vec()));
        assert_eq!(read_at_most(&b"abcde"[..], 4).unwrap(), None);
        assert_eq!(read_at_most(&b""[..], 0).unwrap(), Some(Vec::new()));
    }

    #[test]
    fn an_endless_input_is_refused_after_the_limit_and_one_byte() {
        let mut endless = Counting { inner: std::io::repeat(b'a'), taken: 0 };
        assert_eq!(read_at_most(&mut endless, 64 * 1024).unwrap(), None);
        assert_eq!(endless.taken, 64 * 1024 + 1);
    }

    #[test]
    fn a_file_past_the_limit_is_refused_without_its_content() {
        let dir = crate::test_support::TempDir::new("cli-input");
        let path = dir.path().join("input");
        std::fs::write(&path, "secret_handle\n").unwrap();
        assert_eq!(read_input(&path, 14).unwrap(), b"secret_handle\n");
        let error = read_input(&path, 13).unwrap_err();
        assert_eq!(error.exit, Exit::Usage);
        assert!(error.message.contains("over 13 bytes"), "{}", error.message);
        assert!(!error.message.contains("secret"), "{}", error.message);
        assert_eq!(read_input(&dir.path().join("missing"), 13).unwrap_err().exit, Exit::Usage);
    }
}
