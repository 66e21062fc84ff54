//! Sync requests in flight, and which links answer: when each request went out, and when each
//! peer last answered a ping. A request that timed out over a link that answered no ping since
//! it went out failed with the link (a partition, silent: no reset, no error), not through the
//! peer's fault, and is reported as closed, which costs the peer no penalty; one that timed out
//! while the peer answered pings is the peer's, and is reported as a timeout.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{RequestError, SyncResponse};

/// Where a request's answer goes.
pub(super) type Reply = oneshot::Sender<Result<SyncResponse, RequestError>>;

/// The requests in flight by id (at most the event loop's bound) and, per connected peer, its
/// last answered ping.
pub(super) struct Outbound<Id> {
    requests: HashMap<Id, (Reply, Instant)>,
    answered: HashMap<PeerId, Instant>,
}

impl<Id> Default for Outbound<Id> {
    fn default() -> Self {
        Self { requests: HashMap::new(), answered: HashMap::new() }
    }
}

impl<Id: Hash + Eq> Outbound<Id> {
    /// Requests in flight.
    pub(super) fn len(&self) -> usize {
        self.requests.len()
    }

    /// A request sent now.
    pub(super) fn sent(&mut self, id: Id, reply: Reply, now: Instant) {
        self.requests.insert(id, (reply, now));
    }

    /// The request's reply, once it is answered.
    pub(super) fn answered(&mut self, id: Id) -> Option<Reply> {
        self.requests.remove(&id).map(|(reply, _)| reply)
    }

    /// The request's reply once it failed, with its error: a timeout over a link that
    /// answered no ping since the request went out is reported as closed.
    pub(super) fn failed(
        &mut self,
        id: Id,
        peer: &PeerId,
        error: RequestError,
    ) -> Option<(Reply, RequestError)> {
        let (reply, sent_at) = self.requests.remove(&id)?;
        let silent = self.answered.get(peer).is_none_or(|last| *last < sent_at);
        let error = match error {
            RequestError::Timeout if silent => RequestError::ConnectionClosed,
            error => error,
        };
        Some((reply, error))
    }

    /// `peer` answered a ping now.
    pub(super) fn pinged(&mut self, peer: PeerId, now: Instant) {
        self.answered.insert(peer, now);
    }

    /// `peer` has no connection left: its pings are forgotten.
    pub(super) fn gone(&mut self, peer: &PeerId) {
        self.answered.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_timeout_is_the_peer_s_only_when_it_answered_a_ping_since_the_request() {
        let peer = PeerId::random();
        let start = Instant::now();
        let mut outbound = Outbound::default();
        let ids = [1_u64, 2, 3];
        for (n, id) in ids.iter().enumerate() {
            let (reply, _) = oneshot::channel();
            outbound.sent(*id, reply, start + Duration::from_secs(n as u64 * 10));
        }
        assert_eq!(outbound.len(), 3);
        // No ping answered at all: the link is silent.
        let (_, error) = outbound.failed(ids[0], &peer, RequestError::Timeout).unwrap();
        assert!(matches!(error, RequestError::ConnectionClosed), "{error:?}");
        // A ping answered after the second request went out: the peer's timeout.
        outbound.pinged(peer, start + Duration::from_secs(15));
        let (_, error) = outbound.failed(ids[1], &peer, RequestError::Timeout).unwrap();
        assert!(matches!(error, RequestError::Timeout), "{error:?}");
        // The last ping came before the third went out: silent since.
        let (_, error) = outbound.failed(ids[2], &peer, RequestError::Timeout).unwrap();
        assert!(matches!(error, RequestError::ConnectionClosed), "{error:?}");
        assert!(outbound.failed(ids[2], &peer, RequestError::Timeout).is_none(), "taken once");
        outbound.gone(&peer);
        assert!(outbound.answered.is_empty());
    }
}
