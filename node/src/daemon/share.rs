//! Across borders, in the running node: what the hunt lends to the records the node shares.
//! A shared record's `add` carries its account's observed activity, rounded down to a bucket,
//! unless the analyst stated a figure (docs/PROTOCOL.md §2.2, "Activity per day, when
//! measured"); the figure is taken when the record is added, from the latest analytics.

use crossmatch_protocol::Handling;

use super::{Error, NewRecord, Node, Result};

impl Node {
    /// Fills in `activity_per_day` of the shared records that state none and whose account the
    /// hunt observes (a blocking look-up under the hunt's lock, never the engine's).
    pub(super) async fn with_observed_activity(
        &self,
        mut records: Vec<NewRecord>,
    ) -> Result<Vec<NewRecord>> {
        let wanted: Vec<usize> = (0..records.len())
            .filter(|&i| {
                let record = &records[i];
                record.share && record.handling != Handling::H3 && record.activity_per_day.is_none()
            })
            .collect();
        if wanted.is_empty() {
            return Ok(records);
        }
        let accounts: Vec<_> = wanted.iter().map(|&i| records[i].identifiers.clone()).collect();
        let hunt = self.hunt.clone();
        let figures = tokio::task::spawn_blocking(move || hunt.observed_activity(&accounts))
            .await
            .map_err(|_| Error::EngineTask)??;
        for (index, figure) in wanted.into_iter().zip(figures) {
            records[index].activity_per_day = figure;
        }
        Ok(records)
    }
}
