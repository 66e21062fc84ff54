//! The stored roster chain at start (docs/PROTOCOL.md §4.4, "Persistence and the start-time
//! choice"): the chain under `V` checked again from its first version, and the choice between
//! its latest version and the roster the node was given.

use crossmatch_protocol::{
    RosterConflict, SignedRoster, VerifiedRoster, verify_conflict, verify_founding,
    verify_successor,
};

use std::sync::atomic::{AtomicU64, Ordering};

use super::epochs::EpochChain;
use super::removal::carry_unrotated_removal;
use super::{RosterError, STORED_PAGE};
use crate::store::{self, Store};

/// Reads the stored chain and checks it again from its first version: `verify_founding` for
/// the first, `verify_successor` for each next (expiry is no rule of validity: a roster that
/// expired while the node was down is still the one it runs, alarmed). A version that no
/// longer verifies ends the chain there, with an error log. Up to `last_version`: returns the
/// latest verified version up to it, the verified version before that and the epoch of a
/// removal without rotation since. Each version verified is counted in `verified`.
pub(super) fn load_stored(
    store: &Store,
    last_version: u64,
    verified: &AtomicU64,
) -> Result<Stored, RosterError> {
    load_stored_chain(store, last_version, verified).map(|(stored, _)| stored)
}

/// [`load_stored`], with the epochs of every version verified (`epochs.rs`), from the same
/// single pass.
pub(super) fn load_stored_chain(
    store: &Store,
    last_version: u64,
    verified: &AtomicU64,
) -> Result<(Stored, EpochChain), RosterError> {
    let mut current: Option<VerifiedRoster> = None;
    let mut previous: Option<VerifiedRoster> = None;
    let mut unrotated = None;
    let mut epochs = EpochChain::default();
    let mut from = 0;
    loop {
        let page = store.rosters_from(from, STORED_PAGE)?;
        let full = page.len() == STORED_PAGE;
        for (version, wire) in page {
            if version > last_version {
                return Ok(((current, previous, unrotated), epochs));
            }
            from = version.saturating_add(1);
            verified.fetch_add(1, Ordering::Relaxed);
            let checked = SignedRoster::from_wire(&wire).and_then(|signed| match &current {
                None => verify_founding(&signed),
                Some(current) => verify_successor(current, &signed),
            });
            match checked {
                Ok(verified) => {
                    if let Some(before) = &current {
                        unrotated = carry_unrotated_removal(unrotated, before, &verified);
                    }
                    epochs.push(&verified);
                    previous = current.replace(verified);
                }
                Err(error) => {
                    tracing::error!(version, %error, "a stored roster no longer verifies; the chain ends before it");
                    return Ok(((current, previous, unrotated), epochs));
                }
            }
        }
        if !full {
            return Ok(((current, previous, unrotated), epochs));
        }
    }
}

/// The stored chain's latest version, the version before it and an unrotated removal's epoch.
pub(super) type Stored = (Option<VerifiedRoster>, Option<VerifiedRoster>, Option<u32>);

/// The start-time choice between the stored latest roster and a given one; a given roster of
/// the version of `conflict` (the proved conflict loaded) is never adopted. A given roster of
/// the stored version with another hash is checked as a conflict against the stored version
/// before: a proved one (newer than `conflict`) is put in `txn` as evidence and replaces it.
/// Returns the roster the node runs, the verified version before it and an unrotated
/// removal's epoch. A verification of the given roster is counted in `verified`.
pub(super) fn choose(
    stored: VerifiedRoster,
    stored_previous: Option<VerifiedRoster>,
    unrotated: Option<u32>,
    given: &SignedRoster,
    conflict: &mut Option<RosterConflict>,
    txn: &mut store::Txn<'_>,
    verified: &AtomicU64,
) -> (VerifiedRoster, Option<VerifiedRoster>, Option<u32>) {
    let (have, offered) = (stored.body().version, given.body.version);
    let blocked = conflict.as_ref().map(RosterConflict::version);
    if offered <= have {
        if offered == have && given.hash() != *stored.hash() {
            tracing::warn!(
                version = have,
                "the given roster differs from the stored roster of its version; the stored one is kept"
            );
            // Checked as a conflict against the stored version before (when none of this
            // version or later is held): a valid one is stored as evidence and held.
            if let Some(before) = &stored_previous
                && blocked.is_none_or(|held| held < have)
            {
                verified.fetch_add(1, Ordering::Relaxed);
                if let Ok(proved) = verify_conflict(before, stored.signed(), given) {
                    tracing::error!(
                        version = have,
                        "roster conflict: the given roster and the stored one are two valid rosters of one version; the stored one is kept"
                    );
                    txn.put_roster_conflict(proved.to_wire());
                    *conflict = Some(proved);
                }
            }
        } else if offered < have {
            tracing::info!(
                stored = have,
                given = offered,
                "the stored roster is newer than the given one; the given one is ignored"
            );
        }
        return (stored, stored_previous, unrotated);
    }
    if offered > have.saturating_add(1) {
        tracing::warn!(
            stored = have,
            given = offered,
            "the given roster is more than one version ahead; starting on the stored roster, peers bring the versions between"
        );
        return (stored, stored_previous, unrotated);
    }
    if blocked == Some(offered) {
        tracing::error!(
            stored = have,
            given = offered,
            "the given roster's version is contested by a proved roster conflict; neither side is adopted, starting on the stored roster"
        );
        return (stored, stored_previous, unrotated);
    }
    verified.fetch_add(1, Ordering::Relaxed);
    match verify_successor(&stored, given) {
        Ok(next) => {
            txn.put_roster(offered, next.to_wire());
            tracing::info!(
                version = offered,
                "the given roster follows the stored one and is adopted"
            );
            (next.clone(), Some(stored.clone()), carry_unrotated_removal(unrotated, &stored, &next))
        }
        Err(error) => {
            tracing::warn!(stored = have, given = offered, %error, "the given roster does not follow the stored one; starting on the stored roster");
            (stored, stored_previous, unrotated)
        }
    }
}
