//! The own community snapshots' token lists moved to a rotation's new tokens at the end of its
//! matching (the `Retagging` stage, docs/PROTOCOL.md §5.2): at most [`SLICE_ROWS`] tokens per
//! step, each step one durable write with its cursor (the snapshot key and how many of its
//! tokens moved), so a snapshot longer than a slice moves over several steps and a crash
//! resumes where the last step ended. Moving a token twice changes nothing.

use super::{Stage, TokenPair};
use crate::engine::{Engine, Result, SLICE_ROWS};
use crate::store::{OwnSnapshot, Txn, keys};

impl Engine {
    /// Moves the next slice of the own snapshots' tokens to the new epoch (at most
    /// [`SLICE_ROWS`] tokens, each snapshot counting one at least); when none is left, the grace
    /// period (and republication) begins.
    pub(super) fn retag_slice(&mut self, from: &[u8], index: usize) -> Result<()> {
        let Some(mut plan) = self.rotation.clone() else { return Ok(()) };
        let store = self.store.clone();
        let mut txn = store.txn();
        let (mut from, to) = keys::own_snapshots_from(from);
        let mut index = index;
        let mut budget = SLICE_ROWS;
        let mut finished = false;
        while budget > 0 {
            let Some(key) = store.range_keys(&from, &to, 1)?.pop() else {
                finished = true;
                break;
            };
            let moved = match txn.get(&key)? {
                Some(snapshot) => {
                    Some(self.retag_own_snapshot(&mut txn, &key, snapshot, index, budget)?)
                }
                None => None,
            };
            match moved {
                // Part of a long snapshot: the rest at the next step.
                Some((next_index, taken)) if taken == budget => {
                    from = key;
                    index = next_index;
                    budget = 0;
                }
                Some((_, taken)) => {
                    budget -= taken.max(1);
                    (from, index) = ([key.as_slice(), &[0]].concat(), 0);
                }
                None => {
                    budget -= 1;
                    (from, index) = ([key.as_slice(), &[0]].concat(), 0);
                }
            }
        }
        if finished {
            plan.stage = Stage::Switched;
            plan.republishing = true;
            plan.republish_after = Some(0);
        } else {
            plan.stage = Stage::Retagging { from, index };
        }
        txn.put(keys::rotation_plan(), &plan);
        txn.commit_durable()?;
        self.rotation = Some(plan);
        Ok(())
    }

    /// Moves at most `budget` tokens of an own community snapshot's token list, from its
    /// `index`th on, to the new tokens (at the end of a rotation's matching): a token with no
    /// pair is no longer held and leaves the list. Idempotent (a new token's pair names it as
    /// new). Returns the index the next slice starts at and how many tokens it looked at.
    fn retag_own_snapshot(
        &self,
        txn: &mut Txn<'_>,
        key: &[u8],
        mut snapshot: OwnSnapshot,
        index: usize,
        budget: usize,
    ) -> Result<(usize, usize)> {
        let index = index.min(snapshot.tokens.len());
        let end = index.saturating_add(budget).min(snapshot.tokens.len());
        let mut tokens = snapshot.tokens[..index].to_vec();
        for token in &snapshot.tokens[index..end] {
            if let Some(pair) = txn.get::<TokenPair>(&keys::token_pair(token))? {
                tokens.push(pair.new);
            }
        }
        let next_index = tokens.len();
        tokens.extend_from_slice(&snapshot.tokens[end..]);
        snapshot.tokens = tokens;
        txn.put(key.to_vec(), &snapshot);
        Ok((next_index, end - index))
    }
}
