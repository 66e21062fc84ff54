//! `crossmatch hunt export`: the latest analytics as a file (`GET /v1/analytics/export`):
//! GraphML or GEXF for Gephi, `accounts.csv` or `links.csv` for i2, all communities or one,
//! carrying the node's handling mark. The file holds raw handles, so `--out` writes it owner-only
//! (0600), through a new file beside it that is synced and then linked into place, never over an
//! existing file unless `--force` (then renamed over it); without `--out` it goes to stdout.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use hyper::Method;
use serde_json::json;

use super::hunt::Query;
use super::output::print_json_line;
use super::{Api, CliError, Exit};
use crate::keyfile::{self, Existing};

/// What to export and where.
#[derive(Debug)]
pub(super) struct ExportRequest {
    /// graphml, gexf, accounts.csv or links.csv.
    pub format: String,
    /// One community only.
    pub community: Option<u64>,
    /// The file to write; stdout without it.
    pub out: Option<PathBuf>,
    /// Replace `out` if it exists.
    pub force: bool,
}

/// Runs `hunt export`.
pub(super) async fn run(api: &Api, request: ExportRequest) -> Result<Exit, CliError> {
    let mut query = Query::default();
    query.word("format", Some(&request.format))?;
    query.number("community", request.community);
    // Refused before the node is asked (and audits an export nobody keeps).
    if let Some(out) = &request.out
        && !request.force
        && std::fs::symlink_metadata(out).is_ok()
    {
        return Err(exists(out));
    }
    let answer =
        api.call(Method::GET, &format!("/v1/analytics/export{}", query.text()), None).await?;
    let Some(out) = &request.out else {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&answer.body)
            .and_then(|()| stdout.flush())
            .map_err(|error| CliError::new(Exit::Failure, format!("writing stdout: {error}")))?;
        return Ok(Exit::Ok);
    };
    write_private(out, &answer.body, request.force).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            exists(out)
        } else {
            CliError::new(Exit::Failure, format!("writing {}: {error}", out.display()))
        }
    })?;
    if api.json {
        print_json_line(&json!({
            "format": request.format,
            "community": request.community,
            "out": out.display().to_string(),
            "bytes": answer.body.len(),
        }));
    } else {
        println!("{} bytes of {} written to {}", answer.body.len(), request.format, out.display());
    }
    Ok(Exit::Ok)
}

fn exists(out: &Path) -> CliError {
    CliError::new(Exit::Usage, format!("{} exists: give --force to replace it", out.display()))
}

/// Writes `bytes` to `out`, mode 0600: a new file beside it, synced, then linked to `out`
/// (which fails if `out` exists) or with `replace` renamed over it; then the directory synced.
/// A crash leaves `out` as it was or whole.
fn write_private(out: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    let name = out.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.new", std::process::id()));
    let temporary = out.with_file_name(temporary);
    let existing = if replace { Existing::Replace } else { Existing::Refuse };
    keyfile::replace_private_file(out, &temporary, bytes, existing).map_err(|error| error.source)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_export_is_written_owner_only_and_replaces_a_file_only_when_told() {
        let dir = crate::test_support::TempDir::new("cli-export");
        let out = dir.path().join("accounts.csv");
        write_private(&out, b"account\n", false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"account\n");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let error = write_private(&out, b"other\n", false).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&out).unwrap(), b"account\n", "left as it was");
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&out, b"other\n", true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"other\n");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a replaced file is owner-only too");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
    }
}
