//! Origins resolved to members: the one place that says which member an origin key belongs to
//! (a member signs its feed with its current node key, and its older feeds stay signed by its
//! retired keys), whether an origin is this node under any of its keys, and where a retired
//! key's feed ends. Every member count, every alert's counterparts and every "is this me" of
//! matching goes through [`Origins`]: a member that published a token under its old and its new
//! key holds it once, and this node's own retired feed never matches this node.

use std::collections::{HashMap, HashSet};

use crossmatch_protocol::{BatchHash, FinalHead, PublicKey};

use super::{Engine, Member};
use crate::store::RemoteAdd;

/// The member of each accepted origin, this node's own keys, and the retired keys' final heads.
#[derive(Debug, Clone, Default)]
pub(super) struct Origins {
    /// Each member's node key and retired keys → the member's current node key.
    member_key: HashMap<[u8; 32], PublicKey>,
    /// This node's keys: its node key and the retired keys of the member it is.
    own: HashSet<[u8; 32]>,
    /// Each retired key → where its feed ends. A retired key without one accepts no batch.
    final_heads: HashMap<[u8; 32], Option<FinalHead>>,
}

impl Origins {
    /// The origins of `members`, this node being the member whose node key is `own_key` (or,
    /// with a roster not yet showing this node's new key, whose retired key it is not: only
    /// `own_key` itself then).
    pub(super) fn new(members: &[Member], own_key: &[u8; 32]) -> Self {
        let mut origins = Self::default();
        for member in members {
            let keys = std::iter::once(&member.key).chain(&member.retired_keys);
            let is_own = member.key.to_bytes() == *own_key;
            for key in keys {
                origins.member_key.insert(key.to_bytes(), member.key);
                if is_own {
                    origins.own.insert(key.to_bytes());
                }
            }
            for key in &member.retired_keys {
                let head =
                    member.retired_heads.iter().find(|(k, _)| k == key).and_then(|(_, h)| *h);
                origins.final_heads.insert(key.to_bytes(), head);
            }
        }
        origins.own.insert(*own_key);
        origins
    }

    /// The member `origin` belongs to, as the member's current node key; an origin outside the
    /// roster (a member since removed) stands for itself.
    pub(super) fn member_key(&self, origin: &[u8; 32]) -> Option<PublicKey> {
        match self.member_key.get(origin) {
            Some(key) => Some(*key),
            None => PublicKey::from_bytes(origin).ok(),
        }
    }

    /// Whether `origin` is this node, under its node key or one of its retired keys.
    pub(super) fn is_self(&self, origin: &[u8; 32]) -> bool {
        self.own.contains(origin)
    }

    /// Whether a batch of `origin` at (`generation`, `seq`) may be accepted on its claim: any
    /// batch of a key that is not retired, and a retired key's only at or before its final head.
    pub(super) fn admits_position(&self, origin: &[u8; 32], generation: u32, seq: u64) -> bool {
        match self.final_heads.get(origin) {
            None => true,
            Some(head) => head.is_some_and(|head| head.admits_position(generation, seq)),
        }
    }

    /// [`Origins::admits_position`], and at a retired key's final head only that very batch.
    pub(super) fn admits(
        &self,
        origin: &[u8; 32],
        generation: u32,
        seq: u64,
        hash: &BatchHash,
    ) -> bool {
        match self.final_heads.get(origin) {
            None => true,
            Some(head) => head.is_some_and(|head| head.admits(generation, seq, hash)),
        }
    }

    /// One add per member other than this node, from other origins' adds of a token: a
    /// member's add under its current node key wins over one under a retired key. Keyed and
    /// sorted by the member's current node key.
    pub(super) fn per_member(
        &self,
        adds: impl IntoIterator<Item = ([u8; 32], RemoteAdd)>,
    ) -> Vec<(PublicKey, RemoteAdd)> {
        let mut chosen: HashMap<[u8; 32], (PublicKey, RemoteAdd, bool)> = HashMap::new();
        for (origin, add) in adds {
            if self.is_self(&origin) {
                continue;
            }
            let Some(member) = self.member_key(&origin) else { continue };
            let current = member.to_bytes() == origin;
            let slot = chosen.entry(member.to_bytes());
            match slot {
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert((member, add, current));
                }
                std::collections::hash_map::Entry::Occupied(mut held) => {
                    if current && !held.get().2 {
                        held.insert((member, add, current));
                    }
                }
            }
        }
        let mut adds: Vec<(PublicKey, RemoteAdd)> =
            chosen.into_values().map(|(member, add, _)| (member, add)).collect();
        adds.sort_by_key(|(member, _)| member.to_bytes());
        adds
    }

    /// How many members other than this node are among `origins`.
    pub(super) fn count_members(&self, origins: impl IntoIterator<Item = [u8; 32]>) -> usize {
        origins
            .into_iter()
            .filter(|origin| !self.is_self(origin))
            .filter_map(|origin| self.member_key(&origin).map(|key| key.to_bytes()))
            .collect::<HashSet<_>>()
            .len()
    }
}

impl Engine {
    /// The origins of the configured members, resolved again (at open, and when the members
    /// change).
    pub(super) fn resolve_origins(&mut self) {
        self.origins = Origins::new(&self.config.members, &self.own_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RemoteAdd;

    fn key(n: u8) -> PublicKey {
        crossmatch_protocol::SigningKey::from_seed(&[n; 32]).public_key()
    }

    fn member(id: &str, key: PublicKey, retired: &[(PublicKey, Option<FinalHead>)]) -> Member {
        Member {
            id: id.into(),
            key,
            retired_keys: retired.iter().map(|(key, _)| *key).collect(),
            retired_heads: retired.to_vec(),
            contact: String::new(),
        }
    }

    fn add(expires_at_ms: u64) -> RemoteAdd {
        RemoteAdd {
            generation: 1,
            seq: 1,
            index: 0,
            epoch: 1,
            kind: crossmatch_protocol::Kind::Account,
            category: "propaganda".into(),
            handling: crossmatch_protocol::Handling::H1,
            evaluation: "B2".parse().expect("evaluation"),
            activity_per_day: None,
            expires_at_ms,
            created_at_ms: 1,
            received_at_ms: 1,
            status: None,
            algorithmic: false,
            touched_at_ms: 1,
        }
    }

    fn head() -> FinalHead {
        FinalHead { generation: 1, seq: 3, hash: BatchHash([3; 32]) }
    }

    #[test]
    fn a_member_under_its_old_and_new_key_is_one_member() {
        // A (this node) changed key 1 → 11; B changed key 2 → 12; C never did.
        let members = [
            member("A", key(11), &[(key(1), Some(head()))]),
            member("B", key(12), &[(key(2), Some(head()))]),
            member("C", key(3), &[]),
        ];
        let origins = Origins::new(&members, &key(11).to_bytes());
        assert!(origins.is_self(&key(1).to_bytes()) && origins.is_self(&key(11).to_bytes()));
        assert!(!origins.is_self(&key(2).to_bytes()));
        assert_eq!(origins.member_key(&key(2).to_bytes()), Some(key(12)));
        let all = [1, 11, 2, 12, 3].map(|n| key(n).to_bytes());
        assert_eq!(origins.count_members(all), 2, "B once, C once, this node not at all");
        // B's add under its new key wins, whichever comes first.
        let adds = vec![(key(2).to_bytes(), add(2)), (key(12).to_bytes(), add(12))];
        let picked = origins.per_member(adds.clone());
        assert_eq!(picked.len(), 1);
        assert_eq!((picked[0].0, picked[0].1.expires_at_ms), (key(12), 12));
        let reversed = origins.per_member(adds.into_iter().rev());
        assert_eq!((reversed[0].0, reversed[0].1.expires_at_ms), (key(12), 12));
        // Under the old key alone, B still holds it, as B.
        let old_only =
            origins.per_member([(key(2).to_bytes(), add(2)), (key(1).to_bytes(), add(1))]);
        assert_eq!(
            old_only.iter().map(|(k, a)| (*k, a.expires_at_ms)).collect::<Vec<_>>(),
            [(key(12), 2)]
        );
    }

    #[test]
    fn a_retired_key_is_admitted_up_to_its_final_head_only() {
        let members = [
            member("A", key(11), &[(key(1), Some(head()))]),
            member("B", key(12), &[(key(2), None)]),
            Member { retired_heads: Vec::new(), ..member("C", key(13), &[(key(3), None)]) },
        ];
        let origins = Origins::new(&members, &key(11).to_bytes());
        let (old_a, old_b, old_c) = (key(1).to_bytes(), key(2).to_bytes(), key(3).to_bytes());
        assert!(origins.admits(&old_a, 1, 2, &BatchHash([0; 32])));
        assert!(origins.admits(&old_a, 1, 3, &BatchHash([3; 32])));
        assert!(!origins.admits(&old_a, 1, 3, &BatchHash([4; 32])));
        assert!(!origins.admits_position(&old_a, 1, 4) && !origins.admits_position(&old_a, 2, 1));
        // A retired key that never signed, or whose final head is not known, admits nothing.
        assert!(!origins.admits_position(&old_b, 1, 1) && !origins.admits_position(&old_c, 1, 1));
        // Current keys are not limited.
        assert!(origins.admits_position(&key(12).to_bytes(), 9, 9_000));
    }
}
