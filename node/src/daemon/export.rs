//! The STIX 2.1 export in the running node ([`Node::export_stix`]): the stored ids are
//! reconciled first (ids of gone records, and of sightings the alerts no longer give, become
//! tombstones), what the export holds is counted and audited under the user (`export`, `stix:r<records>_a<sightings>_v<revoked>_t<0|1>`),
//! and only then does a blocking producer write the bundle (`stix::export`) page by page into a
//! bounded channel: records in id order with their indicator ids (assigned and stored durably a
//! page at a time), then the alerts' sightings, then the revoked objects. A reader that goes
//! away stops the producer at its next chunk.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use crossmatch_protocol::Handling;
use tokio::sync::mpsc;

use super::view::{AlertView, Roster};
use super::{Lane, Node, Result};
use crate::engine::{self, Engine, StixSighting};
use crate::stix::export::{BundleWriter, IdentityIn, SightingIn, sighted_by, sighting_handling};
use crate::store::imports::{StixIds, StixKind, StixTombstone, fingerprint};
use crate::store::{self, Record, RecordId, Store, keys};

/// Records read (and their indicator ids assigned) per turn of the engine lock.
pub const EXPORT_PAGE_RECORDS: usize = 500;
/// Chunks of the bundle waiting for the reader; the producer waits when they are taken.
pub const EXPORT_CHUNKS: usize = 16;

/// What an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StixExportQuery {
    /// The unit's records, as observables and indicators.
    pub records: bool,
    /// Its alerts, as sightings.
    pub alerts: bool,
    /// Only what was created or changed at or after this time (Unix ms); with it, what went
    /// since is exported as `revoked`.
    pub since_ms: Option<u64>,
    /// Each indicator's tokens, in the tokens extension.
    pub tokens: bool,
}

/// What an export holds, counted before it streams (the audit line's counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StixExportCounts {
    /// Records exported as indicators.
    pub records: u64,
    /// Sightings (an alert's counterpart member each; none from an H2 add).
    pub sightings: u64,
    /// Revoked objects.
    pub revoked: u64,
}

/// One chunk of the bundle, or the error that cut it short.
pub type StixChunk = io::Result<Vec<u8>>;

impl Node {
    /// Exports the unit's records and alerts as one STIX 2.1 bundle (docs/STIX.md §4), for
    /// `user` (the API checks the admin role), the unit being the roster member `unit`. The
    /// audit line is written before anything is read out; the bundle then arrives in chunks on
    /// the receiver, and a failure part-way ends it with an error.
    pub async fn export_stix(
        &self,
        query: StixExportQuery,
        unit: String,
        user: String,
    ) -> Result<(StixExportCounts, mpsc::Receiver<StixChunk>)> {
        // One reading of the roster names the alerts' members and the bundle's identities.
        let roster = self.roster.current();
        // The alerts, read before anything is reconciled: a sighting whose ids are stored
        // after this time was given out by another export and is not revoked by this one.
        let read_at_ms = self.now_ms();
        let alerts = self.export_alerts(query, &roster).await?;
        let live = query.alerts.then(|| Arc::new(live_sightings(&alerts)));
        let mut after = None;
        loop {
            let live = live.clone();
            after = self
                .call(Lane::Api, move |engine| {
                    let live = live.as_deref().map(|live| (live, read_at_ms));
                    engine.stix_reconcile_step(after, live)
                })
                .await??;
            if after.is_none() {
                break;
            }
        }
        let store = self.events.store().clone();
        let (counts, alerts) =
            tokio::task::spawn_blocking(move || Ok((count(&store, query, &alerts)?, alerts)))
                .await
                .map_err(|_| super::Error::EngineTask)?
                .map_err(|error: store::Error| engine::Error::from(error))?;
        let revoked = match query.since_ms {
            Some(since) => self.blocking(move |engine| engine.stix_tombstones(since)).await??,
            None => Vec::new(),
        };
        // Only what was asked for: revoked indicators with the records, sightings with alerts.
        let revoked: Vec<_> = revoked
            .into_iter()
            .filter(|(_, _, tombstone)| match tombstone.kind {
                StixKind::Indicator => query.records,
                StixKind::Sighting => query.alerts,
            })
            .collect();
        let counts = StixExportCounts { revoked: revoked.len() as u64, ..counts };
        let subject = format!(
            "stix:r{}_a{}_v{}_t{}",
            counts.records,
            counts.sightings,
            counts.revoked,
            u8::from(query.tokens)
        );
        self.call(Lane::Api, move |engine| {
            engine.audit_hunt(&user, crate::audit::Action::Export, &subject)
        })
        .await??;
        let (chunks, receiver) = mpsc::channel(EXPORT_CHUNKS);
        let producer = Producer {
            node: self.clone(),
            store: self.events.store().clone(),
            query,
            unit,
            contacts: roster.contacts(),
            alerts,
            revoked,
            chunks,
        };
        tokio::task::spawn_blocking(move || producer.run());
        Ok((counts, receiver))
    }

    /// The alerts whose sightings an export may hold: all of them, as a sighting changes
    /// with its record's marking too (which leaves its alert as it was); `--since` selects
    /// sightings one by one ([`sighting_selected`]).
    async fn export_alerts(
        &self,
        query: StixExportQuery,
        roster: &Roster,
    ) -> Result<Vec<AlertView>> {
        if !query.alerts {
            return Ok(Vec::new());
        }
        let alerts = self.call(Lane::Api, move |engine| engine.alerts(None, None)).await??;
        Ok(alerts.into_iter().map(|alert| AlertView::new(alert, roster)).collect())
    }
}

/// A counterpart member as one sighting shows it: from its adds that are not H2 only.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberSeen {
    /// The member id.
    member: String,
    /// When this node first received one of those adds (Unix ms).
    first_seen_ms: u64,
    /// When it last received one (Unix ms).
    last_seen_ms: u64,
    /// The strictest of their codes.
    handling: Handling,
}

/// The counterparts of `alert` exported as sightings: on the roster, and from their adds that
/// are not H2 (an H2 add's timing and code are never passed on), by member id.
fn members_seen(alert: &AlertView) -> Vec<MemberSeen> {
    let mut seen: Vec<MemberSeen> = Vec::new();
    for counterpart in &alert.counterparts {
        let Ok(handling) = counterpart.handling.parse::<Handling>() else { continue };
        let Some(member) = counterpart.member_id.as_deref().filter(|_| sighted_by(handling)) else {
            continue;
        };
        let at = counterpart.received_at_ms;
        match seen.iter_mut().find(|seen| seen.member == member) {
            Some(seen) => {
                seen.first_seen_ms = seen.first_seen_ms.min(at);
                seen.last_seen_ms = seen.last_seen_ms.max(at);
                seen.handling = seen.handling.max(handling);
            }
            None => seen.push(MemberSeen {
                member: member.to_owned(),
                first_seen_ms: at,
                last_seen_ms: at,
                handling,
            }),
        }
    }
    seen.sort_unstable_by(|a, b| a.member.cmp(&b.member));
    seen
}

/// The (alert, member) of every sighting the alerts give now: a stored sighting that is not
/// among them (its member withdrew, left the roster or holds it under H2 only) is revoked. An
/// alert's members alone decide it, not the record its sightings are of, which may change.
fn live_sightings(alerts: &[AlertView]) -> HashSet<(u64, String)> {
    alerts
        .iter()
        .flat_map(|alert| members_seen(alert).into_iter().map(|seen| (alert.id, seen.member)))
        .collect()
}

/// An alert's sightings' sources: the alert's lowest local record (its indicator is what was
/// sighted) and the members seen; none when there is no such record or member.
fn alert_sightings(
    store: &Store,
    alert: &AlertView,
) -> store::Result<Option<(Record, Vec<MemberSeen>)>> {
    let Some(&lowest) = alert.records.iter().min() else { return Ok(None) };
    let members = members_seen(alert);
    if members.is_empty() {
        return Ok(None);
    }
    Ok(store.get::<Record>(&keys::record(lowest))?.map(|record| (record, members)))
}

/// The sightings of `alert` of `record`'s indicator `indicator`, one per member seen.
fn sightings(
    alert: u64,
    record: &Record,
    indicator: [u8; 16],
    members: &[MemberSeen],
) -> Vec<StixSighting> {
    members
        .iter()
        .map(|seen| StixSighting {
            alert,
            member: seen.member.clone(),
            indicator,
            first_seen_ms: seen.first_seen_ms,
            last_seen_ms: seen.last_seen_ms,
            handling: sighting_handling(record.handling, seen.handling),
        })
        .collect()
}

/// Whether a sighting is in an export since `since_ms`: never exported, or its `modified` is
/// at or after it, or it changed now (`indicator`: none when the record's indicator has no
/// ids yet, so the sighting is new or changes).
fn sighting_selected(
    store: &Store,
    sighting: &StixSighting,
    indicator_known: bool,
    since_ms: Option<u64>,
) -> store::Result<bool> {
    let Some(since) = since_ms else { return Ok(true) };
    if !indicator_known {
        return Ok(true);
    }
    let key = keys::stix_sighting(sighting.alert, &sighting.member);
    Ok(match store.get::<StixIds>(&key)? {
        None => true,
        Some(ids) => ids.modified_ms >= since || ids.fingerprint != sighting.fingerprint(),
    })
}

/// Whether a record is in an export since `since_ms`: created since, never exported (its
/// indicator is new), exported and changed since, or changed now.
fn selected(store: &Store, record: &Record, since_ms: Option<u64>) -> store::Result<bool> {
    let Some(since) = since_ms else { return Ok(true) };
    if record.created_at_ms >= since {
        return Ok(true);
    }
    Ok(match store.get::<StixIds>(&keys::stix_indicator(record.id))? {
        None => true,
        Some(ids) => ids.modified_ms >= since || ids.fingerprint != fingerprint(record),
    })
}

/// A page of records with an id above `after`.
fn records_page(store: &Store, after: RecordId) -> store::Result<Vec<Record>> {
    let (from, to) = keys::records_after(after);
    let mut records = Vec::new();
    for key in store.range_keys(&from, &to, EXPORT_PAGE_RECORDS)? {
        if let Some(record) = store.get::<Record>(&key)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// Counts what an export holds, from the store without the engine lock.
fn count(
    store: &Store,
    query: StixExportQuery,
    alerts: &[AlertView],
) -> store::Result<StixExportCounts> {
    let mut counts = StixExportCounts::default();
    if query.records {
        let mut after = 0;
        loop {
            let page = records_page(store, after)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for record in &page {
                counts.records += u64::from(selected(store, record, query.since_ms)?);
            }
        }
    }
    for alert in alerts {
        let Some((record, members)) = alert_sightings(store, alert)? else { continue };
        let indicator = store.get::<StixIds>(&keys::stix_indicator(record.id))?;
        let uuid = indicator.map_or([0; 16], |ids| ids.uuid);
        for sighting in sightings(alert.id, &record, uuid, &members) {
            let selected =
                sighting_selected(store, &sighting, indicator.is_some(), query.since_ms)?;
            counts.sightings += u64::from(selected);
        }
    }
    Ok(counts)
}

/// The blocking side of an export: writes the bundle into `chunks`.
struct Producer {
    node: Node,
    store: Store,
    query: StixExportQuery,
    unit: String,
    /// The roster's members as the alerts were read: the bundle's identities.
    contacts: Vec<super::Contact>,
    /// The alerts counted, whose sightings it writes.
    alerts: Vec<AlertView>,
    revoked: Vec<([u8; 16], u64, StixTombstone)>,
    chunks: mpsc::Sender<StixChunk>,
}

/// Why a producer stopped early.
enum Stop {
    /// The reader went away.
    Gone,
    /// Reading or assigning failed: the bundle ends with this error.
    Failed(io::Error),
}

impl From<engine::Error> for Stop {
    fn from(error: engine::Error) -> Self {
        tracing::warn!(%error, "the STIX export failed");
        Stop::Failed(io::Error::other("the export failed; see the node's log"))
    }
}

impl From<store::Error> for Stop {
    fn from(error: store::Error) -> Self {
        Stop::from(engine::Error::from(error))
    }
}

impl Producer {
    fn run(mut self) {
        match self.write() {
            Ok(()) | Err(Stop::Gone) => {}
            Err(Stop::Failed(error)) => {
                let _ = self.chunks.blocking_send(Err(error));
            }
        }
    }

    fn send(&self, chunk: Vec<u8>) -> std::result::Result<(), Stop> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.chunks.blocking_send(Ok(chunk)).map_err(|_| Stop::Gone)
    }

    /// Runs `work` under the engine lock.
    fn engine<R>(
        &self,
        work: impl FnOnce(&mut Engine) -> engine::Result<R>,
    ) -> std::result::Result<R, Stop> {
        let mut engine = self
            .node
            .engine
            .lock()
            .map_err(|_| Stop::Failed(io::Error::other("the node's engine failed")))?;
        Ok(work(&mut engine)?)
    }

    fn write(&mut self) -> std::result::Result<(), Stop> {
        let contacts = std::mem::take(&mut self.contacts);
        let mut members: Vec<String> =
            contacts.iter().map(|contact| contact.member_id.clone()).collect();
        if !members.contains(&self.unit) {
            members.insert(0, self.unit.clone());
        }
        let contact = |member: &str| {
            contacts.iter().find(|c| c.member_id == member).map(|c| c.contact.clone())
        };
        let named: Vec<(String, String)> = members
            .iter()
            .map(|member| (member.clone(), contact(member).unwrap_or_default()))
            .collect();
        let ids = {
            let named = named.clone();
            self.engine(move |engine| engine.stix_identity_ids(&named))?
        };
        if ids.len() != named.len() {
            return Err(missing("identities"));
        }
        let mut named: Vec<IdentityIn> = named
            .into_iter()
            .zip(ids)
            .map(|((name, contact), ids)| IdentityIn { ids, name, contact })
            .collect();
        // The unit's own identity first.
        named.sort_by_key(|identity| identity.name != self.unit);
        let identities: HashMap<String, [u8; 16]> =
            named.iter().map(|identity| (identity.name.clone(), identity.ids.uuid)).collect();
        let unit_uuid = identities[&self.unit];
        let federation = match self.query.tokens {
            true => Some(self.engine(|engine| Ok(engine.federation_id()))?),
            false => None,
        };
        let mut writer = BundleWriter::new(&unit_uuid, federation);
        self.send(writer.head(&crate::stix::new_uuid(), &named))?;
        if self.query.records {
            self.write_records(&mut writer)?;
        }
        if self.query.alerts {
            self.write_sightings(&mut writer, &identities)?;
        }
        for (uuid, _gone_ms, tombstone) in std::mem::take(&mut self.revoked) {
            self.send(writer.revoked(&uuid, &tombstone))?;
        }
        self.send(writer.tail())
    }

    fn write_records(&self, writer: &mut BundleWriter) -> std::result::Result<(), Stop> {
        let mut after = 0;
        loop {
            let page = records_page(&self.store, after)?;
            let Some(last) = page.last() else { return Ok(()) };
            after = last.id;
            let mut chosen = Vec::with_capacity(page.len());
            for record in page {
                if selected(&self.store, &record, self.query.since_ms)? {
                    chosen.push(record);
                }
            }
            let (records, ids) = self.engine(move |engine| {
                let ids = engine.stix_record_ids(&chosen)?;
                Ok((chosen, ids))
            })?;
            if ids.len() != records.len() {
                return Err(missing("indicator"));
            }
            let mut chunk = Vec::new();
            for (record, ids) in records.iter().zip(&ids) {
                chunk.extend(writer.record(ids, record));
            }
            self.send(chunk)?;
        }
    }

    fn write_sightings(
        &self,
        writer: &mut BundleWriter,
        identities: &HashMap<String, [u8; 16]>,
    ) -> std::result::Result<(), Stop> {
        for page in self.alerts.chunks(EXPORT_PAGE_RECORDS) {
            let mut wanted = Vec::new();
            for alert in page {
                if let Some((record, members)) = alert_sightings(&self.store, alert)? {
                    wanted.push((alert.id, record, members));
                }
            }
            let records: Vec<Record> = wanted.iter().map(|(_, record, _)| record.clone()).collect();
            let known: Vec<bool> = records
                .iter()
                .map(|record| self.store.get_raw(&keys::stix_indicator(record.id)))
                .map(|row| row.map(|row| row.is_some()))
                .collect::<store::Result<_>>()?;
            let indicator_ids = self.engine(move |engine| engine.stix_record_ids(&records))?;
            if indicator_ids.len() != wanted.len() {
                return Err(missing("indicator"));
            }
            // The sightings chosen, and the codes (own, counterpart's) each is marked from.
            let (mut chosen, mut codes) = (Vec::new(), Vec::new());
            for (((alert, record, members), indicator), known) in
                wanted.iter().zip(&indicator_ids).zip(known)
            {
                let of = sightings(*alert, record, indicator.uuid, members);
                for (sighting, seen) in of.into_iter().zip(members) {
                    if sighting_selected(&self.store, &sighting, known, self.query.since_ms)? {
                        chosen.push(sighting);
                        codes.push((record.handling, seen.handling));
                    }
                }
            }
            let (chosen, ids) = self.engine(move |engine| {
                let ids = engine.stix_sighting_ids(&chosen)?;
                Ok((chosen, ids))
            })?;
            if ids.len() != chosen.len() {
                return Err(missing("sighting"));
            }
            let mut chunk = Vec::new();
            for ((sighting, ids), (own, theirs)) in chosen.iter().zip(&ids).zip(codes) {
                let Some(&member) = identities.get(&sighting.member) else { continue };
                chunk.extend(writer.sighting(&SightingIn {
                    ids,
                    indicator: sighting.indicator,
                    member,
                    first_seen_ms: sighting.first_seen_ms,
                    last_seen_ms: sighting.last_seen_ms,
                    own_handling: own,
                    counterpart_handling: theirs,
                }));
            }
            self.send(chunk)?;
        }
        Ok(())
    }
}

/// The engine gave fewer ids than asked: the export cannot name its objects.
fn missing(what: &str) -> Stop {
    tracing::warn!(what, "the STIX export got fewer ids than it asked for");
    Stop::Failed(io::Error::other("the export could not assign its object ids"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::view::CounterpartView;
    use crate::store::AlertState;
    use crossmatch_protocol::Token;

    fn counterpart(member: &str, handling: Handling, received_at_ms: u64) -> CounterpartView {
        CounterpartView {
            member_id: Some(member.into()),
            contact: None,
            origin: format!("{member}-key-{received_at_ms}"),
            retro: false,
            kind: "account".into(),
            category: "propaganda".into(),
            handling: handling.as_str().into(),
            evaluation: "B2".into(),
            activity_per_day: None,
            algorithmic: false,
            expires_at_ms: 10_000,
            created_at_ms: received_at_ms,
            received_at_ms,
            status: None,
        }
    }

    #[test]
    fn a_sighting_s_times_and_code_come_from_its_member_s_adds_that_are_not_h2() {
        // FR's adds came at 200 (H0) and, under its next key, 300 (H1); NL's H2 add at 900 is
        // what last changed the alert: its time and code are never passed on.
        let alert = AlertView {
            id: 4,
            token: Token([1; 32]),
            state: AlertState::Updated,
            acknowledged: false,
            records: vec![7],
            counterparts: vec![
                counterpart("FR", Handling::H0, 200),
                counterpart("NL", Handling::H2, 900),
                counterpart("FR", Handling::H1, 300),
                counterpart("BE", Handling::H2, 250),
                counterpart("BE", Handling::H0, 400),
            ],
            opened_at_ms: 200,
            updated_at_ms: 900,
            version: 3,
        };
        let seen = members_seen(&alert);
        let at = |member: &str| seen.iter().find(|seen| seen.member == member).cloned();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let fr = at("FR").unwrap();
        assert_eq!((fr.first_seen_ms, fr.last_seen_ms, fr.handling), (200, 300, Handling::H1));
        let be = at("BE").unwrap();
        assert_eq!((be.first_seen_ms, be.last_seen_ms, be.handling), (400, 400, Handling::H0));
        assert!(at("NL").is_none(), "an H2 add alone is no sighting");
    }
}
