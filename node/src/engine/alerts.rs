//! Alerts: one per token held here that another origin also added. The state machine is a pure
//! function, [`next_alert`], from the previous alert and what the store says of the token now to
//! the next alert; the engine gathers its inputs, stores its answer and announces it. Every
//! write of an alert row appends one event to the alert event log (`E`, `store/events.rs`) in
//! the same write, through [`Engine::stage_alert_event`].

use crossmatch_protocol::{PublicKey, Token};

use super::{ALERT_COUNTER, AlertEvent, AlertSink, Engine, MIN_EVENT_LOG_KEEP, Result};
use crate::audit::{Action, AuditSubject, AuditUser};
use crate::store::events::high_water::{
    HighWater, HighWaterFile, read_high_water, write_high_water,
};
use crate::store::events::{
    EVENT_HIGH_WATER_WRITTEN, EVENT_INCARNATION, EVENT_INCARNATION_FROM, EVENT_SEQ, EventAlert,
    EventBody, EventKind, EventTakedown, StoredEvent,
};
use crate::store::{Alert, AlertState, Counterpart, RecordId, RemoteAdd, Txn, keys};

/// The kind of event an alert row's change is: opened (no previous row), closed (deleted, or
/// its state became closed), reopened (its state became reopened), else updated.
pub fn alert_event_kind(previous: Option<&Alert>, alert: &Alert, deleted: bool) -> EventKind {
    match previous {
        None => EventKind::AlertOpened,
        Some(_) if deleted => EventKind::AlertClosed,
        Some(old) if alert.state == AlertState::Closed && old.state != AlertState::Closed => {
            EventKind::AlertClosed
        }
        Some(old) if alert.state == AlertState::Reopened && old.state != AlertState::Reopened => {
            EventKind::AlertReopened
        }
        Some(_) => EventKind::AlertUpdated,
    }
}

/// What the store says of one token now: the input of [`next_alert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFacts {
    /// The token.
    pub token: Token,
    /// The local records holding it, in id order.
    pub holdings: Vec<RecordId>,
    /// Other origins' live adds of it in the current epoch, in origin order.
    pub remote_adds: Vec<(PublicKey, RemoteAdd)>,
    /// The change comes from a local add: a counterpart found now is a retro match.
    pub local_add: bool,
    /// Now (Unix ms).
    pub now_ms: u64,
    /// The id a newly raised alert takes (ignored when there is a previous alert).
    pub new_id: u64,
}

/// What becomes of a token's alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertChange {
    /// Nothing to store or announce.
    Unchanged,
    /// Store and announce this alert: raised, or changed.
    Store(Alert),
    /// Announce this alert as closed, then delete it: no local record holds the token any more,
    /// so the token's last local trace goes with it.
    Delete(Alert),
}

/// The alert state machine: open → updated (members join or leave, or report a status) →
/// closed (no counterpart left) → reopened. Acknowledgement lasts while the state does.
pub fn next_alert(previous: Option<&Alert>, facts: AlertFacts) -> AlertChange {
    let AlertFacts { token, holdings, remote_adds, local_add, now_ms, new_id } = facts;
    let counterparts: Vec<Counterpart> = remote_adds
        .into_iter()
        .map(|(origin, add)| {
            let earlier = previous.and_then(|a| a.counterparts.iter().find(|c| c.origin == origin));
            let retro = earlier.map_or(local_add, |c| c.retro);
            Counterpart { origin, add, retro }
        })
        .collect();
    let Some(old) = previous else {
        if holdings.is_empty() || counterparts.is_empty() {
            return AlertChange::Unchanged;
        }
        return AlertChange::Store(Alert {
            id: new_id,
            token,
            state: AlertState::Open,
            records: holdings,
            counterparts,
            opened_at_ms: now_ms,
            updated_at_ms: now_ms,
            acknowledged: false,
            version: 1,
        });
    };
    if holdings.is_empty() {
        return AlertChange::Delete(Alert {
            state: AlertState::Closed,
            records: holdings,
            counterparts: Vec::new(),
            updated_at_ms: now_ms,
            version: old.version + 1,
            ..old.clone()
        });
    }
    let matched = !counterparts.is_empty();
    let same_members = old.counterparts.len() == counterparts.len()
        && old.records == holdings
        && old
            .counterparts
            .iter()
            .zip(&counterparts)
            .all(|(a, b)| a.origin == b.origin && a.add.status == b.add.status);
    let state = match (old.state, matched) {
        (_, false) => AlertState::Closed,
        (AlertState::Closed, true) => AlertState::Reopened,
        (state, true) if same_members => state,
        (_, true) => AlertState::Updated,
    };
    if state == old.state && old.records == holdings && old.counterparts == counterparts {
        return AlertChange::Unchanged;
    }
    AlertChange::Store(Alert {
        state,
        records: holdings,
        counterparts,
        updated_at_ms: now_ms,
        version: old.version + 1,
        acknowledged: old.acknowledged && state == old.state,
        ..old.clone()
    })
}

impl Engine {
    /// Alerts, optionally filtered by state and by last change at or after `since_ms`.
    pub fn alerts(&self, state: Option<AlertState>, since_ms: Option<u64>) -> Result<Vec<Alert>> {
        let mut alerts: Vec<Alert> = self
            .store
            .scan::<Alert>(&keys::all_alerts())?
            .into_iter()
            .map(|(_, alert)| alert)
            .filter(|a| {
                state.is_none_or(|s| a.state == s) && since_ms.is_none_or(|t| a.updated_at_ms >= t)
            })
            .collect();
        alerts.sort_by_key(|a| a.id);
        Ok(alerts)
    }

    /// Acknowledges an alert by id for `user`, audited (an alert handled); false if there is
    /// none. The store is flushed before the audit line names the alert: an alert raised by
    /// ingest is written without a flush, and its id must be durable (so never issued again to
    /// another alert) before the audit log names it.
    ///
    /// Acknowledging bumps the alert's version and appends an `alert.acknowledged` event in
    /// the same durable write; acknowledging it again changes nothing but the audit log.
    pub fn acknowledge(&mut self, alert_id: u64, user: &str) -> Result<bool> {
        let user = AuditUser::new(user)?;
        let Some((key, mut alert)) = self
            .store
            .scan::<Alert>(&keys::all_alerts())?
            .into_iter()
            .find(|(_, a)| a.id == alert_id)
        else {
            return Ok(false);
        };
        self.store.flush()?;
        self.store.check_space()?;
        self.audit.append(&user, Action::Alert, &AuditSubject::alert(alert_id))?;
        if alert.acknowledged {
            return Ok(true);
        }
        alert.acknowledged = true;
        alert.version += 1;
        let mut txn = self.store.txn();
        txn.put(key, &alert);
        let at_ms = self.clock.now_ms();
        let body = EventBody::Alert(EventAlert::of(&alert));
        let seq = self.stage_event(&mut txn, EventKind::AlertAcknowledged, body, at_ms)?;
        txn.commit_durable()?;
        if let Some(AlertSink(announce)) = &mut self.alert_sink {
            announce(AlertEvent { alert, seq });
        }
        Ok(true)
    }

    /// Whether an event was staged (for any write, announced or not: a rotation's token move
    /// is not) since the last call, which clears it. The daemon asks after every engine call
    /// and wakes the event pump, which then reads what was committed; a staged write that did
    /// not commit costs the pump one look.
    pub fn take_events_staged(&self) -> bool {
        self.events_staged.replace(false)
    }

    /// Sets how many events the alert event log keeps (at least [`MIN_EVENT_LOG_KEEP`]).
    pub fn set_event_log_keep(&mut self, keep: u64) {
        self.event_log_keep = keep.max(MIN_EVENT_LOG_KEEP);
    }

    /// Stages the event of an alert row's change in `txn`, the write that changes the row:
    /// `previous` is the row before (none: a new alert), `alert` the row after (or, when
    /// `deleted`, the alert as it ends). Returns the event's seq.
    pub(super) fn stage_alert_event(
        &self,
        txn: &mut Txn<'_>,
        previous: Option<&Alert>,
        alert: &Alert,
        deleted: bool,
    ) -> Result<u64> {
        let kind = alert_event_kind(previous, alert, deleted);
        let body = EventBody::Alert(EventAlert::of(alert));
        self.stage_event(txn, kind, body, alert.updated_at_ms)
    }

    /// Appends one event to the log in `txn`: the next seq (read from and written to
    /// `m/event-seq` in the same write, so events of one write take consecutive seqs), and the
    /// row that falls out of the ring deleted.
    fn stage_event(
        &self,
        txn: &mut Txn<'_>,
        kind: EventKind,
        body: EventBody,
        at_ms: u64,
    ) -> Result<u64> {
        let seq = txn.get::<u64>(&keys::meta(EVENT_SEQ))?.unwrap_or(0) + 1;
        txn.put(keys::meta(EVENT_SEQ), &seq);
        self.events_staged.set(true);
        txn.put(keys::event(seq), &StoredEvent { kind, at_ms, body });
        if seq > self.event_log_keep {
            txn.remove(keys::event(seq - self.event_log_keep));
        }
        Ok(seq)
    }

    /// Appends takedown warnings to the event log in one durable write. Returns the last seq
    /// (0 when there was nothing to append).
    pub fn append_takedown_events(&mut self, warnings: Vec<EventTakedown>) -> Result<u64> {
        if warnings.is_empty() {
            return Ok(0);
        }
        let at_ms = self.clock.now_ms();
        let mut txn = self.store.txn();
        let mut last = 0;
        for warning in warnings {
            let body = EventBody::Takedown(warning);
            last = self.stage_event(&mut txn, EventKind::TakedownWarning, body, at_ms)?;
        }
        txn.commit_durable()?;
        Ok(last)
    }

    /// At open: draws a new event incarnation when events readers were given may be missing
    /// from this store: none is stored (a first start), the own-feed log was missing (a restore
    /// done by the runbook), the store came from a backup, or the high-water file beside the
    /// store (`store/events/high_water.rs`) names another incarnation or a seq the store's
    /// `event-seq` is behind (a store put back over a live data directory, or restored with its
    /// `own-feed.log`), is missing although the store says it was written (`m` key
    /// `event-high-water-written`: a store restored into a directory without it), or is not
    /// one the node wrote. A missing file on a store without that flag is the first start of a
    /// version that writes it: the incarnation is kept. Durable. The file is then made to name
    /// what the store holds, and the flag set, so a later start judges against it. A store and
    /// file copied together from one instant cannot be told from a restart here: the backup
    /// runbook leaves the file out of the copy.
    pub(super) fn settle_event_incarnation(&mut self, own_log_missing: bool) -> Result<()> {
        let stored = self.store.get::<u64>(&keys::meta(EVENT_INCARNATION))?.unwrap_or(0);
        let seq = self.store.get::<u64>(&keys::meta(EVENT_SEQ))?.unwrap_or(0);
        let file_written =
            self.store.get::<bool>(&keys::meta(EVENT_HIGH_WATER_WRITTEN))?.unwrap_or(false);
        let high_water = read_high_water(&self.dir).map_err(crate::store::Error::Io)?;
        let renew = if stored == 0 {
            Some("none stored")
        } else if own_log_missing || self.restored {
            Some("the data directory was restored")
        } else {
            match high_water {
                HighWaterFile::At(mark) if mark.incarnation != stored || mark.seq > seq => {
                    Some("the store is behind the event log's high-water mark")
                }
                HighWaterFile::Unreadable => Some("the event log's high-water file is unreadable"),
                HighWaterFile::Missing if file_written => {
                    Some("the event log's high-water file is missing")
                }
                HighWaterFile::At(_) | HighWaterFile::Missing => None,
            }
        };
        let incarnation = match renew {
            None => stored,
            Some(reason) => {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).map_err(|_| {
                    crate::store::Error::Io(std::io::Error::other(
                        "no randomness for an incarnation",
                    ))
                })?;
                let incarnation = u64::from_be_bytes(bytes).max(1);
                let mut txn = self.store.txn();
                txn.put(keys::meta(EVENT_INCARNATION), &incarnation);
                txn.put(keys::meta(EVENT_INCARNATION_FROM), &(seq + 1));
                txn.commit_durable()?;
                if stored != 0 {
                    tracing::warn!(
                        reason,
                        "event log: new incarnation; stream and webhook readers resync"
                    );
                }
                incarnation
            }
        };
        let mark = HighWater { incarnation, seq };
        if high_water != HighWaterFile::At(mark) {
            // Every event up to `seq` is durable before the file names it.
            self.store.flush()?;
            write_high_water(&self.dir, mark).map_err(crate::store::Error::Io)?;
        }
        if !file_written {
            // Only once the file is in place: a crash before this leaves a file and no flag,
            // which the next start takes as written now.
            let mut txn = self.store.txn();
            txn.put(keys::meta(EVENT_HIGH_WATER_WRITTEN), &true);
            txn.commit_durable()?;
        }
        Ok(())
    }

    /// How many other members currently hold a live add of `token` (a member under its old
    /// and its new key once; this node under a retired key not at all).
    pub fn remote_holders(&self, token: &Token) -> Result<usize> {
        let keys = self.store.scan_keys(&keys::remote_adds(token))?;
        let origins = keys.iter().filter_map(|key| keys::parse_remote_add(key)).map(|(_, o)| o);
        Ok(self.origins.count_members(origins))
    }

    /// Recomputes the alert of `token` from the local holdings and live remote adds, and stages
    /// the result in `txn`. Returns the change to announce once `txn` commits.
    pub(super) fn refresh_alert(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        now_ms: u64,
        local_add: bool,
    ) -> Result<Option<AlertEvent>> {
        // During a rotation, a held token's old-epoch twin is answered for by its new token.
        let token = &self.alert_token(txn, token)?;
        let holdings = self.holding_records(txn, token)?;
        self.refresh_alert_of(txn, token, holdings, now_ms, local_add)
    }

    /// [`refresh_alert`](Self::refresh_alert) of a running token whose local holdings, as
    /// `txn` sees them, the caller has read already: a new record's staging reads them once
    /// for its `add` and its alert both.
    pub(super) fn refresh_alert_of(
        &self,
        txn: &mut Txn<'_>,
        token: &Token,
        holdings: Vec<RecordId>,
        now_ms: u64,
        local_add: bool,
    ) -> Result<Option<AlertEvent>> {
        let previous: Option<Alert> = txn.get(&keys::alert(token))?;
        if holdings.is_empty() && previous.is_none() {
            // Not held here and never alerted: the common case on ingest, decided with two
            // look-ups and no scan of other origins' adds.
            return Ok(None);
        }
        // One counterpart per member other than this node (`origins.rs`), whichever of its keys
        // it published under.
        let mut current = Vec::new();
        for (key, add) in txn.scan::<RemoteAdd>(&keys::remote_adds(token))? {
            let Some((_, origin)) = keys::parse_remote_add(&key) else { continue };
            if add.epoch == self.config.epoch && !self.withdrawn(&origin) {
                current.push((origin, add));
            }
        }
        let mut remote_adds = self.origins.per_member(current);
        // During a rotation's grace period, a member's add under the old epoch counts as long
        // as it has none under the new one: one counterpart per member, whichever epoch.
        let grace = self.grace_adds(txn, token, now_ms)?;
        let grace = grace.into_iter().filter(|(origin, _)| !self.withdrawn(origin));
        for (member, add) in self.origins.per_member(grace) {
            if !remote_adds.iter().any(|(key, _)| *key == member) {
                remote_adds.push((member, add));
            }
        }
        remote_adds.sort_by_key(|(key, _)| key.to_bytes());
        // The previous alert's counterparts by member too: a member's key change alone changes
        // nothing of its alert.
        let previous = previous.map(|mut alert| {
            for counterpart in &mut alert.counterparts {
                if let Some(member) = self.origins.member_key(&counterpart.origin.to_bytes()) {
                    counterpart.origin = member;
                }
            }
            alert
        });
        // The id a new alert would take; it is taken only if one is raised.
        let new_id = match &previous {
            Some(alert) => alert.id,
            // No alert and no counterpart: none is raised (`next_alert`), no counter is read.
            None if remote_adds.is_empty() => 0,
            None => txn.get::<u64>(&keys::meta(ALERT_COUNTER))?.unwrap_or(0) + 1,
        };
        let facts = AlertFacts { token: *token, holdings, remote_adds, local_add, now_ms, new_id };
        match next_alert(previous.as_ref(), facts) {
            AlertChange::Unchanged => Ok(None),
            AlertChange::Store(alert) => {
                if previous.is_none() {
                    txn.put(keys::meta(ALERT_COUNTER), &new_id);
                }
                txn.put(keys::alert(token), &alert);
                let seq = self.stage_alert_event(txn, previous.as_ref(), &alert, false)?;
                Ok(Some(AlertEvent { alert, seq }))
            }
            AlertChange::Delete(alert) => {
                txn.remove(keys::alert(token));
                let seq = self.stage_alert_event(txn, previous.as_ref(), &alert, true)?;
                Ok(Some(AlertEvent { alert, seq }))
            }
        }
    }

    /// Records committed alert changes in the audit log and hands them to the sink.
    pub(super) fn announce(&mut self, events: Vec<AlertEvent>) {
        for event in events {
            if let Err(error) = self.audit.append(
                &AuditUser::node(),
                Action::Alert,
                &AuditSubject::token(&event.alert.token),
            ) {
                // The alert is stored; a failing audit log is reported loudly, not hidden.
                tracing::error!(%error, alert = event.alert.id, "audit log: alert not recorded");
            }
            if let Some(AlertSink(announce)) = &mut self.alert_sink {
                announce(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crossmatch_protocol::{Handling, Kind, SigningKey, Status};

    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn member(n: u8) -> PublicKey {
        SigningKey::from_seed(&[n; 32]).public_key()
    }

    fn add(status: Option<Status>) -> RemoteAdd {
        RemoteAdd {
            generation: 1,
            seq: 1,
            index: 0,
            epoch: 1,
            kind: Kind::Account,
            category: "propaganda".into(),
            handling: Handling::H1,
            evaluation: "B2".parse().expect("evaluation"),
            activity_per_day: None,
            expires_at_ms: T0 + 1_000_000,
            created_at_ms: T0,
            received_at_ms: T0,
            status: status.map(|status| (status, T0)),
            algorithmic: false,
            touched_at_ms: T0,
        }
    }

    fn facts(holdings: &[RecordId], members: &[u8], local_add: bool, now_ms: u64) -> AlertFacts {
        AlertFacts {
            token: Token([5; 32]),
            holdings: holdings.to_vec(),
            remote_adds: members.iter().map(|&n| (member(n), add(None))).collect(),
            local_add,
            now_ms,
            new_id: 17,
        }
    }

    fn stored(change: AlertChange) -> Alert {
        match change {
            AlertChange::Store(alert) => alert,
            other => panic!("expected an alert to store, got {other:?}"),
        }
    }

    #[test]
    fn nothing_is_raised_without_both_a_holding_and_a_counterpart() {
        assert_eq!(next_alert(None, facts(&[], &[2], false, T0)), AlertChange::Unchanged);
        assert_eq!(next_alert(None, facts(&[1], &[], true, T0)), AlertChange::Unchanged);
    }

    #[test]
    fn a_match_opens_an_alert_and_a_local_add_marks_it_retro() {
        let alert = stored(next_alert(None, facts(&[1], &[2], true, T0)));
        assert_eq!((alert.id, alert.state, alert.version), (17, AlertState::Open, 1));
        assert_eq!((alert.opened_at_ms, alert.records.as_slice()), (T0, &[1][..]));
        assert!(alert.counterparts[0].retro);
        // A counterpart keeps how it was found, whatever the later change.
        let later = stored(next_alert(Some(&alert), facts(&[1], &[2, 3], false, T0 + 5)));
        assert!(later.counterparts[0].retro && !later.counterparts[1].retro);
    }

    #[test]
    fn members_joining_or_leaving_update_it_and_the_last_leaving_closes_it() {
        let open = stored(next_alert(None, facts(&[1], &[2], false, T0)));
        let mut acknowledged = open.clone();
        acknowledged.acknowledged = true;
        let updated = stored(next_alert(Some(&acknowledged), facts(&[1], &[2, 3], false, T0 + 1)));
        assert_eq!(
            (updated.state, updated.version, updated.updated_at_ms),
            (AlertState::Updated, 2, T0 + 1)
        );
        assert!(!updated.acknowledged, "a new state needs a new acknowledgement");
        let closed = stored(next_alert(Some(&updated), facts(&[1], &[], false, T0 + 2)));
        assert_eq!((closed.state, closed.version), (AlertState::Closed, 3));
        assert_eq!(closed.opened_at_ms, T0, "opening time and id are kept");
        assert_eq!(closed.id, 17);
        let reopened = stored(next_alert(Some(&closed), facts(&[1], &[4], false, T0 + 3)));
        assert_eq!(reopened.state, AlertState::Reopened);
    }

    #[test]
    fn a_counterparts_status_is_a_change_and_nothing_new_is_none() {
        let open = stored(next_alert(None, facts(&[1], &[2], false, T0)));
        assert_eq!(
            next_alert(Some(&open), facts(&[1], &[2], false, T0 + 9)),
            AlertChange::Unchanged
        );
        let mut referred = facts(&[1], &[2], false, T0 + 9);
        referred.remote_adds[0].1 = add(Some(Status::Referred));
        let updated = stored(next_alert(Some(&open), referred));
        assert_eq!(updated.state, AlertState::Updated);
    }

    #[test]
    fn a_closed_alert_stays_closed_and_acknowledged_while_nothing_changes() {
        let open = stored(next_alert(None, facts(&[1], &[2], false, T0)));
        let mut closed = stored(next_alert(Some(&open), facts(&[1], &[], false, T0 + 1)));
        closed.acknowledged = true;
        assert_eq!(
            next_alert(Some(&closed), facts(&[1], &[], false, T0 + 2)),
            AlertChange::Unchanged
        );
        let more_records = stored(next_alert(Some(&closed), facts(&[1, 2], &[], false, T0 + 2)));
        assert_eq!(more_records.state, AlertState::Closed);
        assert!(more_records.acknowledged);
    }

    #[test]
    fn the_last_local_record_going_ends_the_alert() {
        let open = stored(next_alert(None, facts(&[1], &[2], false, T0)));
        match next_alert(Some(&open), facts(&[], &[2], false, T0 + 1)) {
            AlertChange::Delete(alert) => {
                assert_eq!((alert.state, alert.version), (AlertState::Closed, 2));
                assert!(alert.records.is_empty() && alert.counterparts.is_empty());
            }
            other => panic!("expected the alert to end, got {other:?}"),
        }
    }
}
