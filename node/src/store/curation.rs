//! The analysts' curation in the store: curated communities (`L`, with the counters under id
//! 0) and "not a target" marks (`N`), written durably with the change that made them and read
//! back whole at open. The value types are `hunt::curation`'s.

use crate::hunt::curation::{Changed, CuratedCommunity, Curation, CurationMeta, NotATarget};

use super::{Result, Store, Txn, keys};

/// The id under which the counters are kept (no community has id 0).
const META_ID: u64 = 0;

impl Txn<'_> {
    /// Writes (or deletes, for `None`) what a curation changed, with the counters.
    pub fn put_curation(&mut self, changed: &Changed) {
        for (id, community) in &changed.communities {
            match community {
                Some(community) => self.put(keys::curated_community(*id), community),
                None => self.remove(keys::curated_community(*id)),
            }
        }
        for (account, mark) in &changed.marks {
            match mark {
                Some(mark) => self.put(keys::not_a_target(account), mark),
                None => self.remove(keys::not_a_target(account)),
            }
        }
        self.put(keys::curated_community(META_ID), &changed.meta);
    }
}

impl Store {
    /// The curation held. A key that does not parse is skipped; a value that does not decode
    /// is an error (the store is damaged).
    pub fn curation(&self) -> Result<Curation> {
        let meta: CurationMeta = self.get(&keys::curated_community(META_ID))?.unwrap_or_default();
        let mut communities = Vec::new();
        for key in self.scan_keys(&[keys::prefix::CURATED_COMMUNITY])? {
            if let Some(id) = keys::parse_curated_community(&key).filter(|&id| id != META_ID)
                && let Some(community) = self.get::<CuratedCommunity>(&key)?
            {
                communities.push((id, community));
            }
        }
        let mut marks = Vec::new();
        for (key, mark) in self.scan::<NotATarget>(&[keys::prefix::NOT_A_TARGET])? {
            if let Some(account) = keys::parse_not_a_target(&key) {
                marks.push((account.to_owned(), mark));
            }
        }
        Ok(Curation::from_rows(communities, marks, meta))
    }
}
