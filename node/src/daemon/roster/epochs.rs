//! The epochs of the adopted chain, as the secrets' code reads them: per version, oldest first,
//! its epoch, its secret's fingerprint and its rotation, with consecutive versions that say the
//! same merged into one step. Built by the one forward pass over the stored chain at start
//! (`stored.rs`, which verifies every version once) and extended by each adoption with the
//! version it verified, so answering what the rotation wait asks (which adopted roster rotates
//! from an epoch, which fingerprint the rosters name for one) reads memory and verifies nothing:
//! a node that waits for a secret does no work per timer tick that grows with the chain.

use crossmatch_protocol::{Rotation, VerifiedRoster};

/// What one adopted version says of epochs and secrets.
#[derive(Clone, Copy, PartialEq, Eq)]
struct EpochStep {
    epoch: u32,
    secret_fingerprint: [u8; 32],
    rotation: Option<Rotation>,
}

/// The epochs of the adopted chain (module docs). Bounded by the chain's changes of epoch or
/// rotation, not by its versions. Its `Debug` names epochs only, never a fingerprint.
#[derive(Clone, Default)]
pub(in crate::daemon) struct EpochChain {
    /// Oldest first; no two consecutive steps equal.
    steps: Vec<EpochStep>,
}

impl std::fmt::Debug for EpochChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let epochs: Vec<u32> = self.steps.iter().map(|step| step.epoch).collect();
        f.debug_struct("EpochChain").field("epochs", &epochs).finish()
    }
}

impl EpochChain {
    /// Appends `roster`, a verified version following the chain's last one.
    pub(in crate::daemon) fn push(&mut self, roster: &VerifiedRoster) {
        let body = roster.body();
        let step = EpochStep {
            epoch: body.epoch,
            secret_fingerprint: body.secret_fingerprint,
            rotation: body.rotation,
        };
        if self.steps.last() != Some(&step) {
            self.steps.push(step);
        }
    }

    /// The chain with `roster` appended.
    pub(in crate::daemon) fn with(&self, roster: &VerifiedRoster) -> Self {
        let mut chain = self.clone();
        chain.push(roster);
        chain
    }

    /// The adopted version whose rotation starts from `epoch`: the latest, or the newest
    /// earlier one still ahead of `epoch`. Its epoch, its secret's fingerprint and its rotation.
    pub(in crate::daemon) fn rotation_from(&self, epoch: u32) -> Option<(u32, [u8; 32], Rotation)> {
        for step in self.steps.iter().rev() {
            if step.epoch <= epoch {
                return None;
            }
            if let Some(rotation) = step.rotation.filter(|r| r.previous_epoch == epoch) {
                return Some((step.epoch, step.secret_fingerprint, rotation));
            }
        }
        None
    }

    /// The fingerprint the adopted versions name for `epoch`: the latest version's own epoch's,
    /// or its rotation's previous one; failing both, the newest earlier version's that names it.
    pub(in crate::daemon) fn named_fingerprint(&self, epoch: u32) -> Option<[u8; 32]> {
        for step in self.steps.iter().rev() {
            if step.epoch == epoch {
                return Some(step.secret_fingerprint);
            }
            if let Some(rotation) = step.rotation.filter(|r| r.previous_epoch == epoch) {
                return Some(rotation.previous_secret_fingerprint);
            }
            if step.epoch < epoch {
                return None;
            }
        }
        None
    }

    /// How many steps the chain keeps.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.steps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmatch_protocol::{RosterBody, secret_fingerprint};

    fn step(epoch: u32, fingerprint: u8, rotation_from: Option<(u32, u8)>) -> EpochStep {
        EpochStep {
            epoch,
            secret_fingerprint: [fingerprint; 32],
            rotation: rotation_from.map(|(previous_epoch, previous)| Rotation {
                previous_epoch,
                previous_secret_fingerprint: [previous; 32],
                changeover_at_ms: 1,
                grace_ms: 2,
            }),
        }
    }

    fn chain(steps: Vec<EpochStep>) -> EpochChain {
        EpochChain { steps }
    }

    #[test]
    fn a_rotation_is_found_from_the_epoch_it_starts_from() {
        // Epoch 1, then a rotation 1 → 2, then a version of epoch 2 without a rotation block,
        // then a rotation 2 → 3.
        let chain = chain(vec![
            step(1, 1, None),
            step(2, 2, Some((1, 1))),
            step(2, 2, None),
            step(3, 3, Some((2, 2))),
        ]);
        let from_one = chain.rotation_from(1).unwrap();
        assert_eq!((from_one.0, from_one.1), (2, [2; 32]));
        assert_eq!(from_one.2.previous_secret_fingerprint, [1; 32]);
        assert_eq!(chain.rotation_from(2).unwrap().0, 3);
        assert_eq!(chain.rotation_from(3), None, "nothing ahead of the latest epoch");
        assert_eq!(chain.rotation_from(0), None, "no version rotates from epoch 0");
    }

    #[test]
    fn the_fingerprint_named_for_an_epoch_is_the_newest_that_names_it() {
        let chain =
            chain(vec![step(1, 1, None), step(2, 2, Some((1, 1))), step(4, 4, Some((2, 2)))]);
        assert_eq!(chain.named_fingerprint(4), Some([4; 32]));
        assert_eq!(chain.named_fingerprint(2), Some([2; 32]), "the rotation's previous one");
        assert_eq!(chain.named_fingerprint(1), Some([1; 32]));
        assert_eq!(chain.named_fingerprint(3), None, "an epoch no version names");
        assert_eq!(chain.named_fingerprint(5), None, "an epoch ahead of the chain");
        assert_eq!(EpochChain::default().named_fingerprint(1), None);
    }

    #[test]
    fn versions_that_say_the_same_are_one_step_and_debug_shows_no_fingerprint() {
        use crate::test_support::roster_file::{body, seat, signed_file};
        use crossmatch_protocol::{
            FederationId, FederationSecret, verify_founding, verify_successor,
        };
        let seats = [seat("A", 1, &[]), seat("B", 2, &[])];
        let signers: Vec<_> = seats.iter().collect();
        let founding =
            body(FederationId([7; 32]), &FederationSecret::from_bytes([3; 32]), &seats, u64::MAX);
        let sign = |body: RosterBody| signed_file(body, &seats, &signers).roster;
        let first = verify_founding(&sign(founding.clone())).unwrap();
        let second =
            verify_successor(&first, &sign(RosterBody { version: 2, ..founding.clone() })).unwrap();
        let (old, new) =
            (FederationSecret::from_bytes([3; 32]), FederationSecret::from_bytes([9; 32]));
        let rotation = Rotation {
            previous_epoch: 1,
            previous_secret_fingerprint: secret_fingerprint(&old),
            changeover_at_ms: 5,
            grace_ms: 6,
        };
        let rotating = RosterBody {
            version: 3,
            epoch: 2,
            secret_fingerprint: secret_fingerprint(&new),
            rotation: Some(rotation),
            ..founding
        };
        let third = verify_successor(&second, &sign(rotating)).unwrap();
        let mut chain = EpochChain::default();
        chain.push(&first);
        chain.push(&second);
        assert_eq!(chain.len(), 1, "the same epoch and secret, no rotation");
        let extended = chain.with(&third);
        assert_eq!((chain.len(), extended.len()), (1, 2));
        assert_eq!(format!("{extended:?}"), "EpochChain { epochs: [1, 2] }");
        assert_eq!(extended.named_fingerprint(1), Some(secret_fingerprint(&old)));
        assert_eq!(extended.named_fingerprint(2), Some(secret_fingerprint(&new)));
        assert_eq!(extended.rotation_from(1), Some((2, secret_fingerprint(&new), rotation)));
    }
}
