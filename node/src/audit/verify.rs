//! Offline verification of an audit log against its head file and the node's public key.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crossmatch_protocol::PublicKey;

use super::line::{Line, parse_line};
use super::{AuditError, AuditHash, LOG_HEADER, MAX_LINE_BYTES, Problem, io_error, read_head_file};

/// What [`verify`] checked, when it found nothing wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked (all of them).
    pub records_checked: u64,
    /// Head lines checked, the genesis head included.
    pub heads_checked: u64,
    /// Seq of the last record (0: none).
    pub last_seq: u64,
    /// Seq of the last signed head, in the log or the head file.
    pub last_signed_seq: u64,
    /// Seq of the head in the head file.
    pub head_file_seq: u64,
    /// Records after the last signed head: protected by the hash chain alone.
    pub unsealed_records: u64,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "audit log intact")?;
        writeln!(f, "records checked:  {}", self.records_checked)?;
        writeln!(f, "heads checked:    {}", self.heads_checked)?;
        writeln!(f, "last record:      seq {}", self.last_seq)?;
        writeln!(
            f,
            "last signed head: seq {} (head file: seq {})",
            self.last_signed_seq, self.head_file_seq
        )?;
        write!(f, "unsealed records: {} (after the last signed head)", self.unsealed_records)
    }
}

/// Checks a whole audit log: the header, every record's hash, seq and prev, every head's seq,
/// hash and signature under `public_key`, and the head file: its signature, and that the log
/// reaches its seq with the same hash there. Returns the first problem found, naming its line.
pub fn verify(
    log_path: &Path,
    head_path: &Path,
    public_key: &PublicKey,
) -> Result<VerifyReport, AuditError> {
    verify_keys(log_path, head_path, std::slice::from_ref(public_key))
}

/// [`verify`] for a node that changed its key routinely: each head may be signed by any of
/// `public_keys` (its current key and the keys it retired).
pub fn verify_keys(
    log_path: &Path,
    head_path: &Path,
    public_keys: &[PublicKey],
) -> Result<VerifyReport, AuditError> {
    let stored = read_head_file(head_path)?.ok_or_else(|| AuditError::Io {
        path: head_path.to_owned(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    if !stored.verify_any(public_keys) {
        return Err(AuditError::BadHeadFile {
            path: head_path.to_owned(),
            problem: Problem::BadSignature,
        });
    }
    let head_mismatch = || AuditError::HeadMismatch {
        log: log_path.to_owned(),
        head: head_path.to_owned(),
        seq: stored.seq,
    };
    if stored.seq == 0 && stored.hash != AuditHash::ZERO {
        return Err(head_mismatch());
    }

    let file = File::open(log_path).map_err(io_error(log_path))?;
    let mut reader = BufReader::new(file);
    let mut buffer = Vec::with_capacity(MAX_LINE_BYTES);
    let mut line_number = 0u64;
    let mut torn_line = None;
    let mut report = VerifyReport {
        records_checked: 0,
        heads_checked: 0,
        last_seq: 0,
        last_signed_seq: 0,
        head_file_seq: stored.seq,
        unsealed_records: 0,
    };
    let mut last_hash = AuditHash::ZERO;
    loop {
        buffer.clear();
        let n_read = (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buffer)
            .map_err(io_error(log_path))?;
        if n_read == 0 {
            break;
        }
        line_number += 1;
        let tampered = |problem| AuditError::Tampered {
            path: log_path.to_owned(),
            line: line_number,
            problem,
        };
        let Some(line) = buffer.strip_suffix(b"\n") else {
            if buffer.len() >= MAX_LINE_BYTES {
                return Err(tampered(Problem::TooLong));
            }
            torn_line = Some(line_number);
            break;
        };
        if line_number == 1 {
            if line != LOG_HEADER.as_bytes() {
                return Err(tampered(Problem::MissingHeader));
            }
            continue;
        }
        match parse_line(line).map_err(tampered)? {
            Line::Header => return Err(tampered(Problem::MisplacedHeader)),
            Line::Record(record) => {
                let expected = report.last_seq + 1;
                if record.seq != expected {
                    return Err(tampered(Problem::SeqMismatch { expected, found: record.seq }));
                }
                if record.prev != last_hash {
                    return Err(tampered(Problem::PrevMismatch));
                }
                if record.seq == stored.seq && record.hash != stored.hash {
                    return Err(head_mismatch());
                }
                report.records_checked += 1;
                report.last_seq = record.seq;
                last_hash = record.hash;
            }
            Line::Head(head) => {
                if head.seq != report.last_seq {
                    return Err(tampered(Problem::HeadSeqMismatch {
                        expected: report.last_seq,
                        found: head.seq,
                    }));
                }
                if head.hash != last_hash {
                    return Err(tampered(Problem::HeadHashMismatch { seq: head.seq }));
                }
                if !head.verify_any(public_keys) {
                    return Err(tampered(Problem::BadSignature));
                }
                report.heads_checked += 1;
                report.last_signed_seq = head.seq;
            }
        }
    }

    if stored.seq > report.last_seq {
        return Err(AuditError::Truncated {
            log: log_path.to_owned(),
            head: head_path.to_owned(),
            last_seq: report.last_seq,
            head_seq: stored.seq,
        });
    }
    if line_number == 0 {
        return Err(AuditError::Tampered {
            path: log_path.to_owned(),
            line: 1,
            problem: Problem::MissingHeader,
        });
    }
    if let Some(line) = torn_line {
        return Err(AuditError::Tampered {
            path: log_path.to_owned(),
            line,
            problem: Problem::TornLine,
        });
    }
    report.last_signed_seq = report.last_signed_seq.max(stored.seq);
    report.unsealed_records = report.last_seq - report.last_signed_seq;
    Ok(report)
}
