//! The rosters this node adopted (`V`: version → `SignedRoster` wire form) and the members'
//! signed records (`W`: member id → `SignedMemberRecord` wire form), and the first roster
//! conflict proved (`V`, a key after every version: `RosterConflict` wire form), written durably by the
//! adoption that verified them and read back at start, where the daemon verifies them again.
//! The values are the protocol's wire forms, so what is stored is exactly what was verified
//! and what peers are served.

use super::{Result, Store, Txn, keys};

impl Txn<'_> {
    /// Stores the wire form of the roster of `version` this node adopted.
    pub fn put_roster(&mut self, version: u64, wire: Vec<u8>) {
        self.put_raw(keys::roster(version), wire);
    }

    /// Stores the wire form of `member`'s newest verified record, replacing the one held.
    pub fn put_member_record(&mut self, member: &str, wire: Vec<u8>) {
        self.put_raw(keys::member_record(member), wire);
    }

    /// Stores the wire form of the roster conflict this node proved (the first only is kept).
    pub fn put_roster_conflict(&mut self, wire: Vec<u8>) {
        self.put_raw(keys::roster_conflict(), wire);
    }

    /// Deletes `member`'s record (a roster removed the member).
    pub fn remove_member_record(&mut self, member: &str) {
        self.remove(keys::member_record(member));
    }
}

impl Store {
    /// Every adopted roster with a version of at least `from_version`, in version order, at
    /// most `limit` of them: (version, wire form).
    pub fn rosters_from(&self, from_version: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut rosters = Vec::new();
        let keys =
            self.range_keys(&keys::roster(from_version), &[keys::prefix::ROSTER + 1], limit)?;
        for key in keys {
            if let Some(version) = keys::parse_roster(&key)
                && let Some(wire) = self.get_raw(&key)?
            {
                rosters.push((version, wire));
            }
        }
        Ok(rosters)
    }

    /// The wire form of the roster conflict this node proved, if any.
    pub fn roster_conflict(&self) -> Result<Option<Vec<u8>>> {
        self.get_raw(&keys::roster_conflict())
    }

    /// Every member record held: (member id, wire form), in id order.
    pub fn member_records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut records = Vec::new();
        for key in self.scan_keys(&[keys::prefix::MEMBER_RECORD])? {
            if let Some(member) = keys::parse_member_record(&key)
                && let Some(wire) = self.get_raw(&key)?
            {
                records.push((member.to_owned(), wire));
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rosters_come_back_in_version_order_from_a_version_and_records_by_member() {
        let dir =
            std::env::temp_dir().join(format!("crossmatch-store-roster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        let mut txn = store.txn();
        for version in [3u64, 1, 256, 2] {
            txn.put_roster(version, vec![version as u8]);
        }
        txn.put_member_record("FR", b"fr".to_vec());
        txn.put_member_record("DE", b"de-1".to_vec());
        txn.put_roster_conflict(b"pair".to_vec());
        txn.commit_durable().expect("commit");
        let mut txn = store.txn();
        txn.put_member_record("DE", b"de-2".to_vec());
        txn.put_member_record("NL", b"nl".to_vec());
        txn.commit_durable().expect("commit");
        let mut txn = store.txn();
        txn.remove_member_record("NL");
        txn.commit_durable().expect("commit");
        let versions = |from, limit| {
            store
                .rosters_from(from, limit)
                .expect("read")
                .into_iter()
                .map(|(v, _)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(0, 10), vec![1, 2, 3, 256]);
        assert_eq!(versions(2, 2), vec![2, 3]);
        assert_eq!(versions(257, 10), Vec::<u64>::new());
        assert_eq!(store.rosters_from(256, 1).expect("read"), vec![(256, vec![0])]);
        // The conflict's key sorts after every version and is no version.
        assert_eq!(store.rosters_from(256, 10).expect("read"), vec![(256, vec![0])]);
        assert_eq!(store.roster_conflict().expect("read"), Some(b"pair".to_vec()));
        assert_eq!(
            store.member_records().expect("read"),
            vec![("DE".to_owned(), b"de-2".to_vec()), ("FR".to_owned(), b"fr".to_vec())]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
