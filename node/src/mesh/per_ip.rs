//! A limit on inbound connections per remote IP address, pending and established together, so
//! that one address cannot take the node's connection slots whatever peer ids it claims.
//!
//! Members reach each other with at most a couple of connections each; a remote address with
//! more than [`MeshConfig::max_inbound_per_ip`](super::MeshConfig) open or opening is refused
//! before the Noise handshake. IPv6 addresses count per /64, the block one host is usually
//! given. Loopback may be exempted: a local federation (the demo, the tests) puts every
//! member on 127.0.0.1.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Why a connection was refused: its address has too many connections already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many inbound connections from one address (limit {limit})")]
pub(crate) struct TooManyFromIp {
    /// The limit in force.
    pub(crate) limit: u32,
}

/// Counts inbound connections per IP.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    limit: u32,
    exempt_loopback: bool,
    per_ip: HashMap<IpAddr, u32>,
    connections: HashMap<ConnectionId, IpAddr>,
}

impl Counts {
    pub(crate) fn new(limit: u32, exempt_loopback: bool) -> Self {
        Self { limit, exempt_loopback, ..Self::default() }
    }

    /// Admits connection `id` from `ip`, or refuses it when `ip` is at the limit.
    pub(crate) fn admit(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), TooManyFromIp> {
        if self.exempt_loopback && ip.is_loopback() {
            return Ok(());
        }
        let ip = block_of(ip);
        let count = self.per_ip.entry(ip).or_default();
        if *count >= self.limit {
            return Err(TooManyFromIp { limit: self.limit });
        }
        *count += 1;
        self.connections.insert(id, ip);
        Ok(())
    }

    /// Forgets connection `id` (closed, failed or refused elsewhere).
    pub(crate) fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.connections.remove(&id) else { return };
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Addresses with connections counted.
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> usize {
        self.per_ip.len()
    }
}

/// What an address counts under: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn block_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The remote IP of a multiaddr such as `/ip4/192.0.2.1/tcp/4000`.
fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// The behaviour: [`Counts`] wired to the swarm's connection life cycle.
#[derive(Debug)]
pub(crate) struct Behaviour(pub(crate) Counts);

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) => self.0.admit(connection_id, ip).map_err(ConnectionDenied::new),
            None => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.0.release(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_at_the_limit_is_refused_until_one_of_its_connections_goes() {
        let mut counts = Counts::new(2, true);
        let (a, b, c, d) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
            ConnectionId::new_unchecked(4),
        );
        assert!(counts.admit(a, ip(1)).is_ok());
        assert!(counts.admit(b, ip(1)).is_ok());
        assert_eq!(counts.admit(c, ip(1)), Err(TooManyFromIp { limit: 2 }));
        assert!(counts.admit(d, ip(2)).is_ok(), "other addresses are not affected");
        counts.release(c); // never admitted: nothing to release
        counts.release(a);
        assert!(counts.admit(c, ip(1)).is_ok());
        for id in [b, c, d] {
            counts.release(id);
        }
        assert_eq!(counts.addresses(), 0, "nothing is kept for addresses that left");
    }

    #[test]
    fn ipv6_addresses_count_per_64_block() {
        let mut counts = Counts::new(1, true);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(counts.admit(ConnectionId::new_unchecked(1), a).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(2), b).is_err(), "same /64");
        assert!(counts.admit(ConnectionId::new_unchecked(3), c).is_ok(), "another /64");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(counts.admit(ConnectionId::new_unchecked(4), ip(1)).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(5), mapped).is_err(), "same IPv4");
    }

    #[test]
    fn loopback_is_exempt_only_when_configured() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let mut exempt = Counts::new(1, true);
        let mut strict = Counts::new(1, false);
        for n in 0..5 {
            assert!(exempt.admit(ConnectionId::new_unchecked(n), loopback).is_ok());
        }
        assert!(strict.admit(ConnectionId::new_unchecked(0), loopback).is_ok());
        assert!(strict.admit(ConnectionId::new_unchecked(1), loopback).is_err());
    }

    #[test]
    fn the_ip_is_read_from_the_remote_address() {
        let v4: Multiaddr = "/ip4/192.0.2.7/tcp/4000".parse().unwrap();
        let v6: Multiaddr = "/ip6/2001:db8::1/tcp/4000".parse().unwrap();
        let dns: Multiaddr = "/dns4/example.org/tcp/4000".parse().unwrap();
        assert_eq!(ip_of(&v4), Some(ip(7)));
        assert_eq!(ip_of(&v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(ip_of(&dns), None);
    }
}
