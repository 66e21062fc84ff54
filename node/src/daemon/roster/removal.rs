//! A removal without rotation (docs/PROTOCOL.md §4.4): a successor that drops a member and
//! keeps the epoch leaves the removed member able to compute the federation's tokens. The node
//! raises the `removal_without_rotation` alarm from such a version until a later version
//! rotates the epoch; it is worked out again from the stored chain at start.

use crossmatch_protocol::VerifiedRoster;

/// The epoch a member was removed under without rotation, carried from `before` to `next`:
/// set when `next` drops a member of `before` (by id) and keeps its epoch; cleared when `next`
/// runs a later epoch than the one recorded; otherwise kept.
pub(super) fn carry_unrotated_removal(
    recorded: Option<u32>,
    before: &VerifiedRoster,
    next: &VerifiedRoster,
) -> Option<u32> {
    let (old, new) = (before.body(), next.body());
    let dropped = old.members.iter().any(|member| new.member(&member.id).is_none());
    if dropped && new.epoch == old.epoch {
        tracing::warn!(
            version = new.version,
            epoch = new.epoch,
            "a member was removed without rotating the secret: it can still compute tokens until a later roster rotates the epoch"
        );
        return Some(new.epoch);
    }
    recorded.filter(|epoch| new.epoch <= *epoch)
}
