//! Member records by sync (docs/PROTOCOL.md §3.7): how a node that was offline catches up with
//! the records it missed, with no admin step.
//!
//! - At the end of every pull (after the roster exchange and the feeds), the puller asks
//!   `record_seqs`: the seq of the newest record the peer holds per member (at most one per
//!   member of its roster). Only when
//!   the peer holds a newer record of a member of the puller's roster than the puller does, it
//!   asks `member_records { members }` for those members, at most
//!   [`MAX_RECORDS_PER_REQUEST`] per request, and judges each record before anything is stored.
//! - What costs the peer a penalty (once per pull, with the rest of the pull): more pairs than
//!   members, an answer of the wrong kind, more records than asked or one not asked for, and a
//!   forged record when the peer runs this node's roster. A record that does not decode is
//!   logged and skipped (newer software), and an older one than held is no fault.
//! - Answers come from the records held in memory, never the engine or the store.

use std::collections::BTreeSet;

use crossmatch_protocol::{
    MAX_RECORD_SEQS, MAX_RECORDS_PER_REQUEST, MemberSeq, SignedMemberRecord,
};

use super::{Judged, Via};
use crate::daemon::Node;
use crate::daemon::roster::sync::fill_answer;
use crate::daemon::sync::{PullBudget, ask, penalise};
use crate::mesh::{PeerKey, SyncRequest, SyncResponse};

impl Node {
    /// The answer to a peer's `record_seqs` or `member_records` request; `None` for any other.
    pub(in crate::daemon) fn answer_record_request(
        &self,
        request: &SyncRequest,
    ) -> Option<SyncResponse> {
        let held = self.rosters.held();
        let records = held.as_ref().map(|held| &held.records);
        match request {
            SyncRequest::RecordSeqs => Some(SyncResponse::RecordSeqs(
                records
                    .into_iter()
                    .flatten()
                    .take(MAX_RECORD_SEQS)
                    .map(|(member, record)| MemberSeq {
                        member: member.clone(),
                        seq: record.record.seq,
                    })
                    .collect(),
            )),
            SyncRequest::MemberRecords { members } => {
                let asked: BTreeSet<&String> =
                    members.iter().take(MAX_RECORDS_PER_REQUEST).collect();
                let wires = asked
                    .into_iter()
                    .filter_map(|member| records.and_then(|records| records.get(member)))
                    .map(|record| record.to_wire());
                Some(fill_answer(SyncResponse::MemberRecords, wires))
            }
            _ => None,
        }
    }

    /// Asks `peer` which members' records it holds and fetches those newer than this node's
    /// (module docs). Part of a pull: it spends the pull's `budget`, and penalises the peer at
    /// most once with the rest of the pull.
    pub(in crate::daemon) async fn exchange_records(&self, peer: PeerKey, budget: &mut PullBudget) {
        let seqs = match ask(self, peer, SyncRequest::RecordSeqs, budget).await {
            Some((SyncResponse::RecordSeqs(seqs), _)) if seqs.len() <= MAX_RECORD_SEQS => seqs,
            Some(_) => {
                penalise(
                    self,
                    peer,
                    budget,
                    "a record_seqs answer out of bounds or of the wrong kind",
                )
                .await;
                return;
            }
            None => return,
        };
        let Some(held) = self.rosters.held() else { return };
        let wanted: BTreeSet<String> = seqs
            .into_iter()
            .filter(|pair| held.current.body().member(&pair.member).is_some())
            .filter(|pair| held.records.get(&pair.member).is_none_or(|r| r.record.seq < pair.seq))
            .map(|pair| pair.member)
            .collect();
        drop(held);
        let wanted: Vec<String> = wanted.into_iter().collect();
        let same_roster = self.roster.same_roster(&peer);
        for members in wanted.chunks(MAX_RECORDS_PER_REQUEST) {
            let request = SyncRequest::MemberRecords { members: members.to_vec() };
            let wires = match ask(self, peer, request, budget).await {
                Some((SyncResponse::MemberRecords(wires), _)) if wires.len() <= members.len() => {
                    wires
                }
                Some(_) => {
                    penalise(self, peer, budget, "a member_records answer out of bounds").await;
                    return;
                }
                None => return,
            };
            let mut offered = Vec::with_capacity(wires.len());
            for wire in wires {
                match SignedMemberRecord::from_wire(&wire) {
                    Ok(record) if members.contains(&record.record.member) => offered.push(record),
                    Ok(_) => {
                        penalise(self, peer, budget, "a member record not asked for").await;
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(peer = %peer, %error, "a peer's member record does not decode with this node's software; skipped");
                    }
                }
            }
            let Some(verdicts) = self.take_member_records(offered, Via::Pull).await else { return };
            if same_roster && verdicts.contains(&Judged::Forged) {
                tracing::warn!(peer = %peer, "a peer served a member record not signed by its member");
                penalise(self, peer, budget, "a forged member record").await;
                return;
            }
        }
    }
}
