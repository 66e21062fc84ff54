//! Member records on the records topic (docs/PROTOCOL.md §3.7): each is judged before anything
//! is stored or forwarded. A new valid record is taken and forwarded (Accept); an older or
//! equal seq is a free Ignore; a newer one past its member's pace (`records/pace.rs`) is an
//! Ignore drawn on the sender's budget of ignorable gossip; a record of a member outside the roster, or with an address the
//! mesh cannot dial, is an Ignore drawn on the sender's budget of ignorable gossip (a member
//! outside the roster only from a sender on this node's roster); one that does not decode, or
//! that is forged (not signed by the member's node key, from a sender on this node's roster;
//! another federation, from any) is Rejected, which costs the sender as any invalid gossip.

use crossmatch_protocol::SignedMemberRecord;

use super::{Count, Judged, Via};
use crate::daemon::Node;
use crate::mesh::Verdict;

/// The verdict on a record gossiped, and whether it draws on the sender's budget of ignorable
/// gossip, from what [`Node::take_member_records`] judged.
fn verdict_of(judged: Option<Judged>, same_roster: bool) -> (Verdict, bool) {
    match judged {
        Some(Judged::New) => (Verdict::Accept, false),
        // Gossipsub drops a message it saw already, so an honest stale record is rare (one
        // taken by a pull first): it fits the budget's burst, and junk claims are not free.
        Some(Judged::Stale) => (Verdict::Ignore, true),
        // A relay took it within its own pace, which may differ from this node's by a record
        // or two; a flood of them is the member's, and its sender pays.
        Some(Judged::Paced) => (Verdict::Ignore, true),
        Some(Judged::NotTaken) => (Verdict::Ignore, same_roster),
        Some(Judged::Forged) if same_roster => (Verdict::Reject, false),
        // A peer on another roster may relay a record signed by a key this roster does not
        // name yet: not rejected, but each costs a signature check, so the sender pays.
        Some(Judged::Forged) => (Verdict::Ignore, true),
        // Not judged (another adoption under way, no signed roster, a failed write): the
        // record comes again at a pull.
        None => (Verdict::Ignore, false),
    }
}

impl Node {
    /// A member record gossiped by a peer (`same_roster`: the peer is known to run this node's
    /// roster version and hash): judged, taken when new, and answered with its verdict and
    /// whether it draws on the sender's budget of ignorable gossip.
    pub(in crate::daemon) async fn on_record_gossip(
        &self,
        data: &[u8],
        same_roster: bool,
    ) -> (Verdict, bool) {
        let pace = &self.rosters.pace;
        pace.count(Count::Gossiped, 1);
        let (verdict, draws) = self.judge_record_gossip(data, same_roster).await;
        if draws {
            pace.count(Count::Charged, 1);
        }
        (verdict, draws)
    }

    async fn judge_record_gossip(&self, data: &[u8], same_roster: bool) -> (Verdict, bool) {
        let record = match SignedMemberRecord::from_wire(data) {
            Ok(record) => record,
            // Nothing an honest member forwards: it forwards only what it decoded and verified.
            Err(_) => return (Verdict::Reject, false),
        };
        let federation = self.rosters.held().map(|held| held.current.body().federation_id);
        if federation.is_some_and(|federation| federation != record.record.federation_id) {
            return (Verdict::Reject, false);
        }
        let judged = self
            .take_member_records(vec![record], Via::Gossip)
            .await
            .and_then(|verdicts| verdicts.first().copied());
        if judged.is_none() {
            self.rosters.pace.count(Count::NotJudged, 1);
        }
        if judged == Some(Judged::Forged) {
            tracing::warn!(same_roster, "a gossiped member record is not signed by its member");
        }
        verdict_of(judged, same_roster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_forgery_from_a_peer_on_this_roster_is_rejected_and_only_new_records_forwarded() {
        for same_roster in [false, true] {
            assert_eq!(verdict_of(Some(Judged::New), same_roster), (Verdict::Accept, false));
            assert_eq!(verdict_of(Some(Judged::Stale), same_roster), (Verdict::Ignore, true));
            assert_eq!(verdict_of(None, same_roster), (Verdict::Ignore, false));
            assert_eq!(verdict_of(Some(Judged::Paced), same_roster), (Verdict::Ignore, true));
            assert_eq!(
                verdict_of(Some(Judged::NotTaken), same_roster),
                (Verdict::Ignore, same_roster)
            );
        }
        assert_eq!(verdict_of(Some(Judged::Forged), true), (Verdict::Reject, false));
        assert_eq!(verdict_of(Some(Judged::Forged), false), (Verdict::Ignore, true));
    }
}
