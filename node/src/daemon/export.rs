//! The STIX 2.1 export in the running node ([`Node::export_stix`]): the stored ids are
//! reconciled first (ids of gone records and alerts become tombstones), what the export holds is
//! counted and audited under the user (`export`, `stix:r<records>_a<sightings>_v<revoked>_t<0|1>`),
//! and only then does a blocking producer write the bundle (`stix::export`) page by page into a
//! bounded channel: records in id order with their indicator ids (assigned and stored durably a
//! page at a time), then the alerts' sightings, then the revoked objects. A reader that goes
//! away stops the producer at its next chunk.

use std::collections::HashMap;
use std::io;

use crossmatch_protocol::Handling;
use tokio::sync::mpsc;

use super::view::AlertView;
use super::{Lane, Node, Result};
use crate::engine::{self, Engine};
use crate::stix::export::{BundleWriter, IdentityIn, SightingIn, sighted_by};
use crate::store::imports::{StixIds, StixTombstone, fingerprint};
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
        let mut after = None;
        loop {
            after = self.call(Lane::Api, move |engine| engine.stix_reconcile_step(after)).await??;
            if after.is_none() {
                break;
            }
        }
        let alerts = self.export_alerts(query).await?;
        let store = self.events.store().clone();
        let counts = tokio::task::spawn_blocking(move || count(&store, query, &alerts))
            .await
            .map_err(|_| super::Error::EngineTask)?
            .map_err(engine::Error::from)?;
        let revoked = match query.since_ms {
            Some(since) => self.blocking(move |engine| engine.stix_tombstones(since)).await??,
            None => Vec::new(),
        };
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
            revoked,
            chunks,
        };
        tokio::task::spawn_blocking(move || producer.run());
        Ok((counts, receiver))
    }

    /// The alerts whose sightings an export holds: changed since the query's time.
    async fn export_alerts(&self, query: StixExportQuery) -> Result<Vec<AlertView>> {
        if !query.alerts {
            return Ok(Vec::new());
        }
        let since = query.since_ms;
        let alerts = self.call(Lane::Api, move |engine| engine.alerts(None, since)).await??;
        let roster = self.roster.current();
        Ok(alerts.into_iter().map(|alert| AlertView::new(alert, &roster)).collect())
    }
}

/// The counterparts of `alert` exported as sightings: on the roster, and not an H2 add.
fn sighting_members(alert: &AlertView) -> Vec<&str> {
    let mut members: Vec<&str> = alert
        .counterparts
        .iter()
        .filter(|counterpart| counterpart.handling.parse::<Handling>().is_ok_and(sighted_by))
        .filter_map(|counterpart| counterpart.member_id.as_deref())
        .collect();
    members.sort_unstable();
    members.dedup();
    members
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
    counts.sightings = alerts.iter().map(|alert| sighting_members(alert).len() as u64).sum();
    Ok(counts)
}

/// The blocking side of an export: writes the bundle into `chunks`.
struct Producer {
    node: Node,
    store: Store,
    query: StixExportQuery,
    unit: String,
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
        let contacts = self.node.contacts();
        let mut members: Vec<String> =
            contacts.iter().map(|contact| contact.member_id.clone()).collect();
        if !members.contains(&self.unit) {
            members.insert(0, self.unit.clone());
        }
        let uuids = {
            let members = members.clone();
            self.engine(move |engine| engine.stix_identity_ids(&members))?
        };
        let identities = ids_for(&members, uuids, "identities")?;
        let unit_uuid = identities[&self.unit];
        let federation = match self.query.tokens {
            true => Some(self.engine(|engine| Ok(engine.federation_id()))?),
            false => None,
        };
        let mut writer = BundleWriter::new(&unit_uuid, federation);
        let contact = |member: &str| {
            contacts.iter().find(|c| c.member_id == member).map(|c| c.contact.clone())
        };
        let mut named: Vec<IdentityIn> = members
            .iter()
            .map(|member| IdentityIn {
                uuid: identities[member],
                name: member.clone(),
                contact: contact(member).unwrap_or_default(),
            })
            .collect();
        // The unit's own identity first.
        named.sort_by_key(|identity| identity.name != self.unit);
        let now_ms = self.node.now_ms();
        self.send(writer.head(&crate::stix::new_uuid(), now_ms, &named))?;
        if self.query.records {
            self.write_records(&mut writer)?;
        }
        if self.query.alerts {
            self.write_sightings(&mut writer, &identities)?;
        }
        for (uuid, gone_ms, tombstone) in std::mem::take(&mut self.revoked) {
            self.send(writer.revoked(&uuid, gone_ms, &tombstone))?;
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
        let alerts = self.node_alerts()?;
        for page in alerts.chunks(EXPORT_PAGE_RECORDS) {
            // Each alert's lowest record: its indicator is what was sighted.
            let mut wanted = Vec::new();
            for alert in page {
                let Some(&record) = alert.records.iter().min() else { continue };
                let members = sighting_members(alert);
                if members.is_empty() {
                    continue;
                }
                if let Some(record) = self.store.get::<Record>(&keys::record(record))? {
                    wanted.push((alert, record, members));
                }
            }
            let records: Vec<Record> = wanted.iter().map(|(_, record, _)| record.clone()).collect();
            let sightings: Vec<(u64, String, u64)> = wanted
                .iter()
                .flat_map(|(alert, _, members)| {
                    members
                        .iter()
                        .map(|member| (alert.id, (*member).to_owned(), alert.opened_at_ms))
                })
                .collect();
            let (indicator_ids, sighting_ids) = {
                let sightings = sightings.clone();
                self.engine(move |engine| {
                    Ok((engine.stix_record_ids(&records)?, engine.stix_sighting_ids(&sightings)?))
                })?
            };
            if indicator_ids.len() != wanted.len() || sighting_ids.len() != sightings.len() {
                return Err(missing("sighting"));
            }
            let mut chunk = Vec::new();
            let mut next = sighting_ids.iter();
            for ((alert, record, members), indicator) in wanted.iter().zip(&indicator_ids) {
                for member in members {
                    let Some(ids) = next.next() else { return Err(missing("sighting")) };
                    let Some(&member_uuid) = identities.get(*member) else { continue };
                    let own = record.handling;
                    let theirs = alert
                        .counterparts
                        .iter()
                        .filter(|c| c.member_id.as_deref() == Some(*member))
                        .filter_map(|c| c.handling.parse::<Handling>().ok())
                        .filter(|handling| sighted_by(*handling))
                        .max()
                        .unwrap_or(Handling::H3);
                    chunk.extend(writer.sighting(&SightingIn {
                        ids,
                        indicator: indicator.uuid,
                        member: member_uuid,
                        first_seen_ms: alert.opened_at_ms,
                        last_seen_ms: alert.updated_at_ms,
                        own_handling: own,
                        counterpart_handling: theirs,
                    }));
                }
            }
            self.send(chunk)?;
        }
        Ok(())
    }

    /// The alerts the export holds, resolved against the roster.
    fn node_alerts(&self) -> std::result::Result<Vec<AlertView>, Stop> {
        let since = self.query.since_ms;
        let alerts = self.engine(move |engine| engine.alerts(None, since))?;
        let roster = self.node.roster.current();
        Ok(alerts.into_iter().map(|alert| AlertView::new(alert, &roster)).collect())
    }
}

/// The ids the engine gave, by member; an error when it gave fewer than asked.
fn ids_for(
    members: &[String],
    uuids: Vec<[u8; 16]>,
    what: &str,
) -> std::result::Result<HashMap<String, [u8; 16]>, Stop> {
    if uuids.len() != members.len() {
        return Err(missing(what));
    }
    Ok(members.iter().cloned().zip(uuids).collect())
}

/// The engine gave fewer ids than asked: the export cannot name its objects.
fn missing(what: &str) -> Stop {
    tracing::warn!(what, "the STIX export got fewer ids than it asked for");
    Stop::Failed(io::Error::other("the export could not assign its object ids"))
}
