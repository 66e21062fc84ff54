//! Members' signed records in the running node (docs/PROTOCOL.md §4.5, §3.7): a record is kept
//! only if every address is one the mesh can dial, so no record's address stops the node or its
//! member set; new records are stored durably under `W`, then applied live. Records travel:
//! this node signs its own (`records/own.rs`), gossips new ones (`records/gossip.rs`) and
//! fetches those it lacks at every pull (`records/exchange.rs`); each offered record is judged
//! here ([`Judged`]) before anything is stored or forwarded, and a member's new records are
//! taken at a bounded pace (`records/pace.rs`).

mod exchange;
mod gossip;
mod own;
mod pace;

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::Instant;

use crossmatch_protocol::{RosterProblem, SignedMemberRecord, VerifiedRoster};

pub(super) use self::own::OwnRecordState;
use self::pace::Count;
pub use self::pace::MemberRecordCounts;
pub(super) use self::pace::RecordPace;
use super::{Held, RosterError, membership_of, node_error};
use crate::daemon::{Error, Node};

/// What a node makes of a member record a peer offered (gossiped or served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Judged {
    /// Valid and newer than the one held: taken (stored, applied, forwarded).
    New,
    /// Of a seq this node holds already, or older: nothing new, and no fault at a pull (an
    /// honest relay may forward what sync brought first). Judged on its claim, before the
    /// signature.
    Stale,
    /// Newer than the one held, but past its member's pace of new records (`records/pace.rs`):
    /// not taken, not forwarded; no fault at a pull (the peer holds it honestly). Judged on its
    /// claim, before the signature.
    Paced,
    /// Of a member the held roster lacks (a peer on a newer roster may relay a newcomer's), or
    /// with an address this node's mesh cannot dial (newer software may know more forms):
    /// not taken, no fault of the peer.
    NotTaken,
    /// Not the member's: another federation, or not signed by the member's node key in the
    /// held roster (a fault of a peer on this node's roster; a peer on another roster may
    /// relay a record signed by a key this roster does not name yet).
    Forged,
}

/// Judges `record` against `roster` and the records `held` (module docs), the seq and the
/// member's pace (`paced`: past it) on its claim first, so a replay or a flood costs no
/// signature check.
fn judge(
    roster: &VerifiedRoster,
    held: &BTreeMap<String, SignedMemberRecord>,
    record: &SignedMemberRecord,
    paced: bool,
) -> Judged {
    let member = &record.record.member;
    if roster.body().member(member).is_none() {
        return Judged::NotTaken;
    }
    let held_seq = held.get(member).map(|held| held.record.seq);
    if held_seq.is_some_and(|held| record.record.seq <= held) {
        return Judged::Stale;
    }
    if paced {
        return Judged::Paced;
    }
    match record.verify(roster, held_seq) {
        Ok(()) if usable(record).is_ok() => Judged::New,
        Ok(()) => Judged::NotTaken,
        Err(RosterProblem::StaleRecord { .. }) => Judged::Stale,
        Err(RosterProblem::UnknownMember(_)) => Judged::NotTaken,
        Err(_) => Judged::Forged,
    }
}

/// Whether every address of `record` is one the mesh can dial (checked before a record is
/// kept or stored, so no record's address ever makes the member set refused).
pub(super) fn usable(record: &SignedMemberRecord) -> Result<(), RosterError> {
    match record.record.addresses.iter().position(|a| crate::mesh::validate_address(a).is_err()) {
        Some(index) => Err(RosterError::BadAddress { index }),
        None => Ok(()),
    }
}

/// `addresses` without those the mesh cannot dial, each dropped with a warning.
pub(super) fn dialable(addresses: Vec<String>) -> Vec<String> {
    let count = addresses.len();
    let kept: Vec<String> =
        addresses.into_iter().filter(|a| crate::mesh::validate_address(a).is_ok()).collect();
    if kept.len() < count {
        tracing::warn!(dropped = count - kept.len(), "a member's unusable addresses are dropped");
    }
    kept
}

/// How records reached the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Gossip: judged only when no other adoption holds the lock (the handler never waits).
    Gossip,
    /// A pull's `member_records` answer: waits for the lock.
    Pull,
}

impl Node {
    /// What this node did with the members' records peers offered since it started
    /// (`records/pace.rs`): what a test reads to tell gossip from pulls and to see a flood
    /// charged.
    pub fn member_record_counts(&self) -> MemberRecordCounts {
        self.rosters.pace.counts()
    }

    /// Judges records a peer offered and takes the new ones within their members' pace:
    /// stored durably in one write, then applied live (under the adopting lock; by gossip,
    /// `None` at once when another adoption holds it, so the gossip handler never waits).
    /// `None` too without a signed roster, or when storing or applying failed (logged; nothing
    /// was taken). When one of them is this node's own, its record is renewed if its announced
    /// details differ.
    pub(super) async fn take_member_records(
        &self,
        offered: Vec<SignedMemberRecord>,
        via: Via,
    ) -> Option<Vec<Judged>> {
        let taken_own = {
            let _one_at_a_time = match via {
                Via::Pull => self.rosters.adopting.lock().await,
                Via::Gossip => self.rosters.adopting.try_lock().ok()?,
            };
            let held = self.rosters.held()?;
            let judging = held.clone();
            let now = Instant::now();
            let pace = &self.rosters.pace;
            let paced: Vec<bool> =
                offered.iter().map(|r| !pace.allows(&r.record.member, now)).collect();
            let (mut verdicts, judged_new) = tokio::task::spawn_blocking(move || {
                let mut kept = judging.records.clone();
                let mut judged_new = Vec::new();
                let verdicts: Vec<Judged> = offered
                    .into_iter()
                    .zip(paced)
                    .map(|(record, paced)| {
                        let verdict = judge(&judging.current, &kept, &record, paced);
                        if verdict == Judged::New {
                            kept.insert(record.record.member.clone(), record.clone());
                            judged_new.push(record);
                        }
                        verdict
                    })
                    .collect();
                (verdicts, judged_new)
            })
            .await
            .ok()?;
            // Each new record spends one of its member's pace; two of one member in one answer
            // may find the second past it.
            let mut judged_new = judged_new.into_iter();
            let mut fresh = Vec::new();
            for verdict in verdicts.iter_mut().filter(|verdict| **verdict == Judged::New) {
                let Some(record) = judged_new.next() else { break };
                if pace.take(&held.current, &record.record.member, now) {
                    fresh.push(record);
                } else {
                    *verdict = Judged::Paced;
                }
            }
            let paced = verdicts.iter().filter(|verdict| **verdict == Judged::Paced).count();
            if paced > 0 {
                pace.count(Count::Paced, paced as u64);
                tracing::debug!(paced, "members' new records past their pace: not taken");
            }
            let own = self.rosters.own.member_of(&held.current);
            let taken_own = fresh.iter().any(|record| Some(&record.record.member) == own.as_ref());
            let count = fresh.len();
            if let Err(error) = self.store_and_apply_records(&held, fresh).await {
                tracing::warn!(%error, "member records not taken");
                return None;
            }
            if count > 0 {
                let taken =
                    if via == Via::Gossip { Count::TakenByGossip } else { Count::TakenBySync };
                pace.count(taken, count as u64);
                tracing::info!(count, "members' records taken from a peer");
            }
            (verdicts, taken_own)
        };
        let (verdicts, taken_own) = taken_own;
        if taken_own {
            // A peer held a newer record of this node's than its store (a store restored or
            // wiped): the next one this node signs must be newer still.
            self.renew_own_record().await;
        }
        Some(verdicts)
    }

    /// Stores `records` (verified against `held`'s roster, newer than those held) durably
    /// under `W`, then applies them live; the held roster takes them once applied. Called
    /// under the adopting lock.
    pub(super) async fn store_and_apply_records(
        &self,
        held: &Held,
        records: Vec<SignedMemberRecord>,
    ) -> Result<(), RosterError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut updated = held.clone();
        let wires: Vec<_> =
            records.iter().map(|record| (record.record.member.clone(), record.to_wire())).collect();
        let store = self.rosters.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = store.txn();
            for (member, wire) in wires {
                txn.put_member_record(&member, wire);
            }
            txn.commit_durable()
        })
        .await
        .map_err(|_| node_error(Error::EngineTask))??;
        for record in records {
            updated.records.insert(record.record.member.clone(), record);
        }
        let membership = {
            let known = self.rosters.known_addresses.read().unwrap_or_else(PoisonError::into_inner);
            membership_of(&updated, &known)
        };
        self.apply_membership(membership).await.map_err(node_error)?;
        self.rosters.set_held(updated);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crossmatch_protocol::{FederationId, MemberRecord, verify_founding};

    use super::*;
    use crate::local::LocalFederation;

    fn roster() -> (LocalFederation, VerifiedRoster) {
        let fed = LocalFederation::new(Path::new("/nonexistent"), &["A", "B"]);
        let signed = fed.sign_roster(fed.roster_body(&[0, 1], 1, 2, u64::MAX), &[0, 1]);
        let verified = verify_founding(&signed).unwrap();
        (fed, verified)
    }

    fn record(fed: &LocalFederation, member: &str, seq: u64, address: &str) -> MemberRecord {
        MemberRecord {
            federation_id: fed.federation_id(),
            member: member.into(),
            seq,
            addresses: vec![address.into()],
            contact: "desk".into(),
        }
    }

    #[test]
    fn offered_records_are_judged_on_their_seq_and_pace_first_then_signature_roster_and_addresses()
    {
        let (fed, roster) = roster();
        let (a_key, b_key) = (&fed.members()[0].key, &fed.members()[1].key);
        let good = record(&fed, "A", 2, "/ip4/10.0.0.5/tcp/7400").sign(a_key).unwrap();
        let mut held = BTreeMap::new();
        assert_eq!(judge(&roster, &held, &good, false), Judged::New);
        held.insert("A".to_owned(), good.clone());
        assert_eq!(judge(&roster, &held, &good, false), Judged::Stale, "the same seq again");
        // An older seq is stale on its claim, whatever its signature.
        let mut replay = record(&fed, "A", 1, "/ip4/10.0.0.5/tcp/7400").sign(b_key).unwrap();
        assert_eq!(judge(&roster, &held, &replay, false), Judged::Stale);
        replay.record.seq = 3;
        assert_eq!(judge(&roster, &held, &replay, false), Judged::Forged, "signed by B's key");
        let newer = record(&fed, "A", 3, "/dns4/a.example/tcp/7400").sign(a_key).unwrap();
        assert_eq!(judge(&roster, &held, &newer, false), Judged::New);
        assert_eq!(judge(&roster, &held, &newer, true), Judged::Paced, "past A's pace");
        assert_eq!(judge(&roster, &held, &good, true), Judged::Stale, "stale before paced");
        let undialable = record(&fed, "A", 3, "not a multiaddr").sign(a_key).unwrap();
        assert_eq!(judge(&roster, &held, &undialable, false), Judged::NotTaken);
        let outsider = record(&fed, "C", 1, "/ip4/10.0.0.6/tcp/7400").sign(b_key).unwrap();
        assert_eq!(judge(&roster, &held, &outsider, false), Judged::NotTaken);
        let mut other = record(&fed, "B", 1, "/ip4/10.0.0.7/tcp/7400");
        other.federation_id = FederationId([0x01; 32]);
        assert_eq!(judge(&roster, &held, &other.sign(b_key).unwrap(), false), Judged::Forged);
    }

    #[test]
    fn a_node_signs_its_own_record_only_when_its_announced_details_change() {
        let (fed, roster) = roster();
        let key = fed.key(0);
        let silent = OwnRecordState::new(key, None);
        assert_eq!(silent.member_of(&roster).as_deref(), Some("A"));
        assert!(silent.due(&roster, &BTreeMap::new()).is_none(), "nothing announced");
        let details = (vec!["/ip4/10.0.0.5/tcp/7400".to_owned()], "desk".to_owned());
        let own = OwnRecordState::new(key, Some(details.clone()));
        let first = own.due(&roster, &BTreeMap::new()).unwrap();
        assert_eq!((first.seq, first.member.as_str()), (1, "A"));
        assert_eq!((first.addresses.clone(), first.contact.clone()), details);
        let mut held = BTreeMap::new();
        held.insert("A".to_owned(), first.clone().sign(&fed.members()[0].key).unwrap());
        assert!(own.due(&roster, &held).is_none(), "the same details: nothing to sign");
        let moved = OwnRecordState::new(key, Some((vec![], "new desk".to_owned())));
        let next = moved.due(&roster, &held).unwrap();
        assert_eq!((next.seq, next.contact.as_str()), (2, "new desk"));
        assert!(OwnRecordState::new(fed.key(1), None).member_of(&roster).is_some());
    }
}
