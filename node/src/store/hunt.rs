//! The hunt's ledger in the store: a batch of observations' rows written in one durable write
//! with their seen post hashes, every row read back at open, and whole days dropped by key
//! range under retention. The row types are the ledger's (`hunt::ledger::*Row`); their keys are
//! the `n`, `l`, `d`, `y`, `s` and `g` rows of the layout table in [`super::keys`].

use crate::hunt::ledger::{Day, LedgerRows};

use super::{Result, Store, Txn, keys};

impl Txn<'_> {
    /// Writes (or deletes, for `None`) every row.
    pub fn put_hunt_rows(&mut self, rows: &LedgerRows) {
        fn put<T: serde::Serialize>(txn: &mut Txn<'_>, key: Vec<u8>, value: Option<&T>) {
            match value {
                Some(value) => txn.put(key, value),
                None => txn.remove(key),
            }
        }
        for (index, row) in &rows.accounts {
            put(self, keys::hunt_account(*index), row.as_ref());
        }
        for (alias, target) in &rows.aliases {
            put(self, keys::hunt_alias(alias), target.as_ref());
        }
        for ((day, account), row) in &rows.day_accounts {
            put(self, keys::hunt_day_account(day.0, *account), row.as_ref());
        }
        for ((day, from, to), row) in &rows.edges {
            put(self, keys::hunt_edge(day.0, *from, *to), row.as_ref());
        }
        for ((day, hash), row) in &rows.seen {
            put(self, keys::hunt_seen(day.0, *hash), row.as_ref());
        }
        for (account, row) in &rows.follows {
            put(self, keys::hunt_follows(*account), row.as_ref());
        }
    }

    /// Deletes every per-day hunt row (accounts' days, edges, seen posts) before `first_kept`.
    /// Returns how many rows it deleted.
    pub fn purge_hunt_days_before(&mut self, first_kept: Day) -> Result<usize> {
        let mut purged = 0;
        for prefix in
            [keys::prefix::HUNT_DAY_ACCOUNT, keys::prefix::HUNT_EDGE, keys::prefix::HUNT_SEEN]
        {
            let (from, to) = keys::hunt_days_before(prefix, first_kept.0);
            for key in self.range_keys(&from, &to)? {
                self.remove(key);
                purged += 1;
            }
        }
        Ok(purged)
    }
}

impl Store {
    /// Every hunt row held, for rebuilding the ledger at open. A key that does not parse is
    /// skipped; a value that does not decode is an error (the store is damaged).
    pub fn hunt_rows(&self) -> Result<LedgerRows> {
        let mut rows = LedgerRows::default();
        for (key, row) in self.scan(&[keys::prefix::HUNT_ACCOUNT])? {
            if let Some(index) = keys::parse_hunt_account(&key) {
                rows.accounts.push((index, Some(row)));
            }
        }
        for (key, target) in self.scan::<u32>(&[keys::prefix::HUNT_ALIAS])? {
            if let Some(alias) = keys::parse_hunt_alias(&key) {
                rows.aliases.push((alias.to_owned(), Some(target)));
            }
        }
        for (key, row) in self.scan(&[keys::prefix::HUNT_DAY_ACCOUNT])? {
            if let Some((day, account)) = keys::parse_hunt_day_account(&key) {
                rows.day_accounts.push(((Day(day), account), Some(row)));
            }
        }
        for (key, row) in self.scan(&[keys::prefix::HUNT_EDGE])? {
            if let Some((day, from, to)) = keys::parse_hunt_edge(&key) {
                rows.edges.push(((Day(day), from, to), Some(row)));
            }
        }
        for (key, row) in self.scan(&[keys::prefix::HUNT_SEEN])? {
            if let Some((day, hash)) = keys::parse_hunt_seen(&key) {
                rows.seen.push(((Day(day), hash), Some(row)));
            }
        }
        for (key, row) in self.scan(&[keys::prefix::HUNT_FOLLOWS])? {
            if let Some(account) = keys::parse_hunt_follows(&key) {
                rows.follows.push((account, Some(row)));
            }
        }
        Ok(rows)
    }
}
