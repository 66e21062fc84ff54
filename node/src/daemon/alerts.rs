//! The node's alerts: pages of them resolved against the roster, acknowledgement, and the
//! in-process subscription to their changes.

use super::{AlertEvent, AlertPage, AlertQuery, AlertView, Lane, Node, Result};
use crate::engine;

impl Node {
    /// A page of alerts in id order, each counterpart resolved from the roster.
    pub async fn alerts(&self, query: AlertQuery) -> Result<AlertPage> {
        let AlertQuery { state, since_ms, after_id, limit } = query;
        let mut alerts = self
            .call(Lane::Api, move |engine| {
                let alerts = engine.alerts(state, since_ms)?;
                Ok::<_, engine::Error>(
                    alerts
                        .into_iter()
                        .filter(|alert| alert.id > after_id)
                        .take(limit.saturating_add(1))
                        .collect::<Vec<_>>(),
                )
            })
            .await??;
        let more = alerts.len() > limit;
        alerts.truncate(limit);
        let roster = self.roster.current();
        let alerts: Vec<AlertView> =
            alerts.into_iter().map(|alert| AlertView::new(alert, &roster)).collect();
        let next_after_id = if more { alerts.last().map(|alert| alert.id) } else { None };
        Ok(AlertPage { alerts, next_after_id })
    }

    /// Acknowledges an alert; false if there is none with that id.
    pub async fn acknowledge(&self, alert_id: u64, user: String) -> Result<bool> {
        Ok(self.call(Lane::Api, move |engine| engine.acknowledge(alert_id, &user)).await??)
    }

    /// Subscribes to alert changes (bounded; a slow subscriber is told it lagged).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AlertEvent> {
        self.alerts.subscribe()
    }
}
