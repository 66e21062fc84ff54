//! The keys of imports and exports (`M`, `R`, `j`, `Q`, `S`, and the `m` names `import` and
//! `import-key`): one builder and one parser per key. Their rows are in the layout table of
//! [`keys`](super); `pub use imports::*` keeps every path `keys::…`.

use super::{Reader, join, meta, prefix};
use crate::store::RecordId;
use crate::store::imports::ImportId;

/// `S` ‖ 1 ‖ record id: a record's indicator.
const STIX_INDICATOR: u8 = 1;
/// `S` ‖ 2 ‖ alert id ‖ member id: a sighting.
const STIX_SIGHTING: u8 = 2;
/// `S` ‖ 3 ‖ member id: a member's identity.
const STIX_IDENTITY: u8 = 3;
/// `S` ‖ 4 ‖ gone ms ‖ uuid: a tombstone.
const STIX_TOMBSTONE: u8 = 4;

/// The last import id issued (`m`).
pub fn last_import_id() -> Vec<u8> {
    meta("import")
}
/// The import key (`m`): 32 random bytes keying row keys and content hashes.
pub fn import_key() -> Vec<u8> {
    meta("import-key")
}

/// An import job.
pub fn import_job(id: ImportId) -> Vec<u8> {
    join(prefix::IMPORT_JOB, &[&id.to_be_bytes()])
}
/// Every import job with an id above `after`: the range `[from, to)`.
pub fn import_jobs_after(after: ImportId) -> (Vec<u8>, Vec<u8>) {
    match after.checked_add(1) {
        Some(first) => (import_job(first), vec![prefix::IMPORT_JOB + 1]),
        None => (vec![prefix::IMPORT_JOB + 1], vec![prefix::IMPORT_JOB + 1]),
    }
}
/// The id of an import job key.
pub fn parse_import_job(key: &[u8]) -> Option<ImportId> {
    let mut reader = Reader::new(key, prefix::IMPORT_JOB)?;
    let id = reader.u64()?;
    reader.end(id)
}

/// An import row's state, by its row key.
pub fn import_row(row_key: &[u8; 32]) -> Vec<u8> {
    join(prefix::IMPORT_ROW, &[row_key])
}
/// The row key of an import row key.
pub fn parse_import_row(key: &[u8]) -> Option<[u8; 32]> {
    let mut reader = Reader::new(key, prefix::IMPORT_ROW)?;
    let row_key = reader.take()?;
    reader.end(row_key)
}

/// A record an import created, as schema 2 kept it (only the migration to schema 3 reads
/// these, and tests write them).
pub fn imported_record(import: ImportId, record: RecordId) -> Vec<u8> {
    join(prefix::IMPORTED_RECORD, &[&import.to_be_bytes(), &record.to_be_bytes()])
}
/// Every schema 2 imported-record row.
pub fn all_imported_records() -> Vec<u8> {
    vec![prefix::IMPORTED_RECORD]
}
/// Every schema 2 imported-record row: the range `[from, to)`.
pub fn all_imported_records_range() -> (Vec<u8>, Vec<u8>) {
    (vec![prefix::IMPORTED_RECORD], vec![prefix::IMPORTED_RECORD + 1])
}
/// (import id, record id) of an imported-record key.
pub fn parse_imported_record(key: &[u8]) -> Option<(ImportId, RecordId)> {
    let mut reader = Reader::new(key, prefix::IMPORTED_RECORD)?;
    let (import, record) = (reader.u64()?, reader.u64()?);
    reader.end((import, record))
}

/// A spread record waiting for quota room.
pub fn pending_share(import: ImportId, record: RecordId) -> Vec<u8> {
    join(prefix::PENDING_SHARE, &[&import.to_be_bytes(), &record.to_be_bytes()])
}
/// Every pending share of `import`.
pub fn pending_shares_of(import: ImportId) -> Vec<u8> {
    join(prefix::PENDING_SHARE, &[&import.to_be_bytes()])
}
/// Every pending share, first in first out.
pub fn all_pending_shares() -> Vec<u8> {
    vec![prefix::PENDING_SHARE]
}
/// (import id, record id) of a pending-share key.
pub fn parse_pending_share(key: &[u8]) -> Option<(ImportId, RecordId)> {
    let mut reader = Reader::new(key, prefix::PENDING_SHARE)?;
    let (import, record) = (reader.u64()?, reader.u64()?);
    reader.end((import, record))
}

/// The STIX ids of a record's indicator.
pub fn stix_indicator(record: RecordId) -> Vec<u8> {
    join(prefix::STIX_ID, &[&[STIX_INDICATOR], &record.to_be_bytes()])
}
/// Every indicator's ids.
pub fn all_stix_indicators() -> Vec<u8> {
    vec![prefix::STIX_ID, STIX_INDICATOR]
}
/// The record id of an indicator key.
pub fn parse_stix_indicator(key: &[u8]) -> Option<RecordId> {
    let mut reader = Reader::new(key, prefix::STIX_ID)?;
    let [STIX_INDICATOR] = reader.take::<1>()? else { return None };
    let record = reader.u64()?;
    reader.end(record)
}

/// The STIX ids of an alert's sighting by one counterpart member.
pub fn stix_sighting(alert: u64, member: &str) -> Vec<u8> {
    join(prefix::STIX_ID, &[&[STIX_SIGHTING], &alert.to_be_bytes(), member.as_bytes()])
}
/// Every sighting's ids.
pub fn all_stix_sightings() -> Vec<u8> {
    vec![prefix::STIX_ID, STIX_SIGHTING]
}
/// (alert id, member id) of a sighting key.
pub fn parse_stix_sighting(key: &[u8]) -> Option<(u64, &str)> {
    let mut reader = Reader::new(key, prefix::STIX_ID)?;
    let [STIX_SIGHTING] = reader.take::<1>()? else { return None };
    let alert = reader.u64()?;
    let member = std::str::from_utf8(reader.rest()).ok().filter(|member| !member.is_empty())?;
    Some((alert, member))
}

/// The STIX ids of a member's identity.
pub fn stix_identity(member: &str) -> Vec<u8> {
    join(prefix::STIX_ID, &[&[STIX_IDENTITY], member.as_bytes()])
}
/// Every identity's ids.
pub fn all_stix_identities() -> Vec<u8> {
    vec![prefix::STIX_ID, STIX_IDENTITY]
}
/// The member id of an identity key.
pub fn parse_stix_identity(key: &[u8]) -> Option<&str> {
    let mut reader = Reader::new(key, prefix::STIX_ID)?;
    let [STIX_IDENTITY] = reader.take::<1>()? else { return None };
    std::str::from_utf8(reader.rest()).ok().filter(|member| !member.is_empty())
}

/// A tombstone: an exported object whose record or alert went at `gone_ms`.
pub fn stix_tombstone(gone_ms: u64, uuid: &[u8; 16]) -> Vec<u8> {
    join(prefix::STIX_ID, &[&[STIX_TOMBSTONE], &gone_ms.to_be_bytes(), uuid])
}
/// Tombstones gone at or after `since_ms`: the range `[from, to)`.
pub fn stix_tombstones_since(since_ms: u64) -> (Vec<u8>, Vec<u8>) {
    let from = join(prefix::STIX_ID, &[&[STIX_TOMBSTONE], &since_ms.to_be_bytes()]);
    (from, vec![prefix::STIX_ID, STIX_TOMBSTONE + 1])
}
/// Tombstones gone before `before_ms` (to purge): the range `[from, to)`.
pub fn stix_tombstones_before(before_ms: u64) -> (Vec<u8>, Vec<u8>) {
    let to = join(prefix::STIX_ID, &[&[STIX_TOMBSTONE], &before_ms.to_be_bytes()]);
    (vec![prefix::STIX_ID, STIX_TOMBSTONE], to)
}
/// (gone ms, uuid) of a tombstone key.
pub fn parse_stix_tombstone(key: &[u8]) -> Option<(u64, [u8; 16])> {
    let mut reader = Reader::new(key, prefix::STIX_ID)?;
    let [STIX_TOMBSTONE] = reader.take::<1>()? else { return None };
    let (gone_ms, uuid) = (reader.u64()?, reader.take()?);
    reader.end((gone_ms, uuid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::{record, records_after_until};

    #[test]
    fn import_keys_parse_back_and_keep_their_layout() {
        let row = [5; 32];
        assert_eq!(last_import_id(), b"mimport".to_vec());
        assert_eq!(import_key(), b"mimport-key".to_vec());
        assert_eq!(import_job(3), [&b"M"[..], &3u64.to_be_bytes()].concat());
        assert_eq!(parse_import_job(&import_job(3)), Some(3));
        assert_eq!(import_row(&row), [&b"R"[..], &row].concat());
        assert_eq!(parse_import_row(&import_row(&row)), Some(row));
        let j = [&b"j"[..], &3u64.to_be_bytes(), &9u64.to_be_bytes()].concat();
        assert_eq!(imported_record(3, 9), j);
        assert_eq!(parse_imported_record(&j), Some((3, 9)));
        assert!(j.starts_with(&all_imported_records()));
        let (from, to) = all_imported_records_range();
        assert!(from.as_slice() <= j.as_slice() && j.as_slice() < to.as_slice());
        assert!(
            import_job(u64::MAX).as_slice() < from.as_slice()
                || to.as_slice() <= import_job(0).as_slice()
        );
        assert_eq!(parse_pending_share(&pending_share(3, 9)), Some((3, 9)));
        assert!(pending_share(3, 9).starts_with(&pending_shares_of(3)));
        assert!(pending_shares_of(3).starts_with(&all_pending_shares()));
        // Parsers refuse another prefix, a scan prefix and a longer key.
        assert_eq!(parse_import_job(&import_row(&row)), None);
        assert_eq!(parse_imported_record(&j[..9]), None);
        assert_eq!(parse_pending_share(&imported_record(3, 9)), None);
        assert_eq!(parse_import_row(&[import_row(&row), vec![0]].concat()), None);
    }

    #[test]
    fn job_and_record_ranges_stop_where_they_should() {
        let (from, to) = import_jobs_after(4);
        let inside = |key: &[u8]| from.as_slice() <= key && key < to.as_slice();
        assert!(!inside(&import_job(4)) && inside(&import_job(5)) && inside(&import_job(u64::MAX)));
        let (from, to) = import_jobs_after(u64::MAX);
        assert_eq!(from, to, "nothing after the last id");
        let (from, to) = records_after_until(3, 9);
        let inside = |key: &[u8]| from.as_slice() <= key && key < to.as_slice();
        assert!(!inside(&record(3)) && inside(&record(4)) && inside(&record(9)));
        assert!(!inside(&record(10)) && !inside(&import_job(5)));
        let (from, to) = records_after_until(0, u64::MAX);
        let inside = |key: &[u8]| from.as_slice() <= key && key < to.as_slice();
        assert!(inside(&record(1)) && inside(&record(u64::MAX)) && !inside(&record(0)));
        assert!(!inside(&[&[prefix::RECORD + 1][..], &[0; 8]].concat()));
        for (after, last) in [(9, 9), (10, 9), (u64::MAX, u64::MAX)] {
            let (from, to) = records_after_until(after, last);
            assert_eq!(from, to, "nothing in ({after}, {last}]");
        }
    }

    #[test]
    fn stix_keys_parse_back_by_kind() {
        let uuid = [6; 16];
        assert_eq!(parse_stix_indicator(&stix_indicator(7)), Some(7));
        assert_eq!(parse_stix_sighting(&stix_sighting(8, "DE")), Some((8, "DE")));
        assert_eq!(parse_stix_identity(&stix_identity("FR")), Some("FR"));
        assert_eq!(parse_stix_tombstone(&stix_tombstone(10, &uuid)), Some((10, uuid)));
        assert!(stix_indicator(7).starts_with(&all_stix_indicators()));
        assert!(stix_sighting(8, "DE").starts_with(&all_stix_sightings()));
        assert!(stix_identity("FR").starts_with(&all_stix_identities()));
        // One kind's parser refuses the others'.
        assert_eq!(parse_stix_indicator(&stix_identity("FR")), None);
        assert_eq!(parse_stix_identity(&stix_indicator(7)), None);
        assert_eq!(parse_stix_sighting(&stix_tombstone(10, &uuid)), None);
        assert_eq!(parse_stix_identity(&all_stix_identities()), None, "no empty member");
        let (from, to) = stix_tombstones_since(10);
        let inside = |key: &[u8]| from.as_slice() <= key && key < to.as_slice();
        assert!(inside(&stix_tombstone(10, &uuid)) && inside(&stix_tombstone(u64::MAX, &uuid)));
        assert!(!inside(&stix_tombstone(9, &[0xff; 16])) && !inside(&stix_identity("A")));
        let (from, to) = stix_tombstones_before(10);
        let inside = |key: &[u8]| from.as_slice() <= key && key < to.as_slice();
        assert!(inside(&stix_tombstone(9, &[0xff; 16])) && !inside(&stix_tombstone(10, &[0; 16])));
    }
}
