//! Limits on inbound connections by remote IP address, taken before the Noise handshake, when
//! nothing but the address is known of the peer.
//!
//! - **Per address:** a remote address with [`MeshConfig::max_inbound_per_ip`] connections
//!   open or opening (pending and established together) is refused, so that one address cannot
//!   take the node's connection slots whatever peer ids it claims. IPv6 addresses count per
//!   /64, the block one host is usually given. Loopback may be exempted: a local federation
//!   (the demo, the tests) puts every member on 127.0.0.1.
//! - **Pending, from addresses of no member:** at most [`MeshConfig::max_pending_incoming`]
//!   connections being set up at once. Addresses known as a member's (the IPs its roster
//!   addresses name, and up to [`MAX_LEARNED_IPS_PER_MEMBER`] it last connected from or was
//!   reached at) do not count here: outsiders that hold every pending slot until the handshake
//!   timeout cannot keep a member out, as long as it connects from an address known here.
//!   They remain limited per address.
//!
//! [`MeshConfig::max_inbound_per_ip`]: super::MeshConfig::max_inbound_per_ip
//! [`MeshConfig::max_pending_incoming`]: super::MeshConfig::max_pending_incoming

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// IPs remembered per member from its connections, the most recent kept: a member may move
/// between a few addresses (a second uplink, a NAT pool).
pub(crate) const MAX_LEARNED_IPS_PER_MEMBER: usize = 4;

/// IPs taken from one member's roster addresses (and addresses added later), the most recent
/// kept.
const MAX_LISTED_IPS_PER_MEMBER: usize = 8;

/// Why an inbound connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Its address has too many connections already.
    #[error("too many inbound connections from one address (limit {limit})")]
    TooManyFromIp {
        /// The limit in force.
        limit: u32,
    },
    /// Too many connections from addresses of no member are being set up.
    #[error("too many pending inbound connections from addresses of no member (limit {limit})")]
    TooManyPending {
        /// The limit in force.
        limit: u32,
    },
}

/// One inbound connection as counted.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The address block it counts under; `None` when exempt (loopback).
    block: Option<IpAddr>,
    /// Whether it holds one of the pending slots of addresses of no member.
    pending_shared: bool,
}

/// The IPs (as blocks, see [`block_of`]) a member is known by.
#[derive(Debug, Default)]
struct MemberIps {
    listed: VecDeque<IpAddr>,
    learned: VecDeque<IpAddr>,
}

impl MemberIps {
    fn contains(&self, block: IpAddr) -> bool {
        self.listed.contains(&block) || self.learned.contains(&block)
    }
}

/// Remembers `block` in `ips`, most recent last, keeping at most `max`.
fn remember(ips: &mut VecDeque<IpAddr>, block: IpAddr, max: usize) {
    ips.retain(|ip| *ip != block);
    if ips.len() >= max {
        ips.pop_front();
    }
    ips.push_back(block);
}

/// Counts inbound connections per IP, and pending ones from addresses of no member.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    per_ip_limit: u32,
    pending_limit: u32,
    exempt_loopback: bool,
    per_ip: HashMap<IpAddr, u32>,
    connections: HashMap<ConnectionId, Slot>,
    pending_shared: u32,
    members: HashMap<PeerId, MemberIps>,
}

impl Counts {
    /// Limits of `per_ip_limit` connections per address and `pending_limit` pending ones from
    /// addresses of no member; `members` are the roster's peers with their listed addresses.
    pub(crate) fn new(
        per_ip_limit: u32,
        pending_limit: u32,
        exempt_loopback: bool,
        members: impl IntoIterator<Item = (PeerId, Vec<Multiaddr>)>,
    ) -> Self {
        let mut counts = Self { per_ip_limit, pending_limit, exempt_loopback, ..Self::default() };
        for (peer, addresses) in members {
            counts.members.entry(peer).or_default();
            for address in &addresses {
                counts.list_address(&peer, address);
            }
        }
        counts
    }

    /// Notes an address `peer` is listed at (ignored unless it names an IP and `peer` is a
    /// member).
    pub(crate) fn list_address(&mut self, peer: &PeerId, address: &Multiaddr) {
        if let (Some(ips), Some(ip)) = (self.members.get_mut(peer), ip_of(address)) {
            remember(&mut ips.listed, block_of(ip), MAX_LISTED_IPS_PER_MEMBER);
        }
    }

    /// Makes `peer` a member (a roster change added it), listed at `addresses`.
    pub(crate) fn add_member(&mut self, peer: &PeerId, addresses: &[Multiaddr]) {
        self.members.entry(*peer).or_default();
        for address in addresses {
            self.list_address(peer, address);
        }
    }

    /// Forgets member `peer` (a roster change removed it): its addresses are exempt no more.
    pub(crate) fn forget_member(&mut self, peer: &PeerId) {
        self.members.remove(peer);
    }

    /// Notes that member `peer` connected from, or was reached at, `ip`.
    fn learn(&mut self, peer: &PeerId, ip: IpAddr) {
        if let Some(ips) = self.members.get_mut(peer) {
            remember(&mut ips.learned, block_of(ip), MAX_LEARNED_IPS_PER_MEMBER);
        }
    }

    fn is_member_block(&self, block: IpAddr) -> bool {
        self.members.values().any(|ips| ips.contains(block))
    }

    /// Admits inbound connection `id` from `ip` (`None`: an address without one), or refuses
    /// it.
    pub(crate) fn admit(&mut self, id: ConnectionId, ip: Option<IpAddr>) -> Result<(), Refused> {
        let exempt = ip.is_none_or(|ip| self.exempt_loopback && ip.is_loopback());
        let block = ip.filter(|_| !exempt).map(block_of);
        // A member's address has its own allowance (per address only); exempt connections
        // share the pending slots, as everyone else does.
        let pending_shared = !block.is_some_and(|block| self.is_member_block(block));
        if let Some(block) = block
            && self.per_ip.get(&block).is_some_and(|count| *count >= self.per_ip_limit)
        {
            return Err(Refused::TooManyFromIp { limit: self.per_ip_limit });
        }
        if pending_shared && self.pending_shared >= self.pending_limit {
            return Err(Refused::TooManyPending { limit: self.pending_limit });
        }
        if let Some(block) = block {
            *self.per_ip.entry(block).or_default() += 1;
        }
        if pending_shared {
            self.pending_shared += 1;
        }
        self.connections.insert(id, Slot { block, pending_shared });
        Ok(())
    }

    /// Connection `id` finished its handshake: it no longer holds a pending slot.
    pub(crate) fn established(&mut self, id: ConnectionId) {
        if let Some(slot) = self.connections.get_mut(&id)
            && slot.pending_shared
        {
            slot.pending_shared = false;
            self.pending_shared = self.pending_shared.saturating_sub(1);
        }
    }

    /// Forgets connection `id` (closed, failed or refused elsewhere).
    pub(crate) fn release(&mut self, id: ConnectionId) {
        self.established(id);
        let Some(Slot { block: Some(block), .. }) = self.connections.remove(&id) else { return };
        if let Some(count) = self.per_ip.get_mut(&block) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&block);
            }
        }
    }

    /// Addresses with connections counted.
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> usize {
        self.per_ip.len()
    }

    /// Pending connections from addresses of no member.
    #[cfg(test)]
    pub(crate) fn pending_shared(&self) -> u32 {
        self.pending_shared
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
        self.0.admit(connection_id, ip_of(remote)).map_err(ConnectionDenied::new)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = ip_of(remote) {
            self.0.learn(&peer, ip);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        address: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = ip_of(address) {
            self.0.learn(&peer, ip);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { connection_id, .. }) => {
                self.0.established(connection_id);
            }
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
        let mut counts = Counts::new(2, 64, true, []);
        let (a, b, c, d) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
            ConnectionId::new_unchecked(4),
        );
        assert!(counts.admit(a, Some(ip(1))).is_ok());
        assert!(counts.admit(b, Some(ip(1))).is_ok());
        assert_eq!(counts.admit(c, Some(ip(1))), Err(Refused::TooManyFromIp { limit: 2 }));
        assert!(counts.admit(d, Some(ip(2))).is_ok(), "other addresses are not affected");
        counts.release(c); // never admitted: nothing to release
        counts.release(a);
        assert!(counts.admit(c, Some(ip(1))).is_ok());
        for id in [b, c, d] {
            counts.release(id);
        }
        assert_eq!(counts.addresses(), 0, "nothing is kept for addresses that left");
    }

    #[test]
    fn ipv6_addresses_count_per_64_block() {
        let mut counts = Counts::new(1, 64, true, []);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(counts.admit(ConnectionId::new_unchecked(1), Some(a)).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(2), Some(b)).is_err(), "same /64");
        assert!(counts.admit(ConnectionId::new_unchecked(3), Some(c)).is_ok(), "another /64");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(counts.admit(ConnectionId::new_unchecked(4), Some(ip(1))).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(5), Some(mapped)).is_err(), "same IPv4");
    }

    #[test]
    fn loopback_is_exempt_only_when_configured() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let mut exempt = Counts::new(1, 64, true, []);
        let mut strict = Counts::new(1, 64, false, []);
        for n in 0..5 {
            assert!(exempt.admit(ConnectionId::new_unchecked(n), Some(loopback)).is_ok());
        }
        assert!(strict.admit(ConnectionId::new_unchecked(0), Some(loopback)).is_ok());
        assert!(strict.admit(ConnectionId::new_unchecked(1), Some(loopback)).is_err());
    }

    fn peer(seed: u8) -> PeerId {
        let key = libp2p::identity::ed25519::SecretKey::try_from_bytes([seed; 32]).unwrap();
        libp2p::identity::PublicKey::from(libp2p::identity::ed25519::Keypair::from(key).public())
            .to_peer_id()
    }

    #[test]
    fn a_members_listed_address_does_not_wait_for_the_pending_slots_outsiders_hold() {
        let member = peer(1);
        let listed: Multiaddr = "/ip4/192.0.2.50/tcp/7400".parse().unwrap();
        let mut counts = Counts::new(2, 3, false, [(member, vec![listed])]);
        // Three outsider addresses hold every pending slot.
        for n in 0..3u8 {
            assert!(counts.admit(ConnectionId::new_unchecked(n.into()), Some(ip(n))).is_ok());
        }
        let refused = counts.admit(ConnectionId::new_unchecked(9), Some(ip(9)));
        assert_eq!(refused, Err(Refused::TooManyPending { limit: 3 }));
        // The member's address is admitted, up to its own per-address limit.
        assert!(counts.admit(ConnectionId::new_unchecked(10), Some(ip(50))).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(11), Some(ip(50))).is_ok());
        let over = counts.admit(ConnectionId::new_unchecked(12), Some(ip(50)));
        assert_eq!(over, Err(Refused::TooManyFromIp { limit: 2 }));
        assert_eq!(counts.pending_shared(), 3);
        // A finished handshake gives its pending slot back, though the connection still counts
        // for its address.
        counts.established(ConnectionId::new_unchecked(0));
        assert_eq!(counts.pending_shared(), 2);
        assert!(counts.admit(ConnectionId::new_unchecked(13), Some(ip(0))).is_ok());
        let third = counts.admit(ConnectionId::new_unchecked(14), Some(ip(0)));
        assert_eq!(third, Err(Refused::TooManyFromIp { limit: 2 }));
        for n in [0, 1, 2, 10, 11, 13] {
            counts.release(ConnectionId::new_unchecked(n));
        }
        assert_eq!((counts.pending_shared(), counts.addresses()), (0, 0));
    }

    #[test]
    fn a_member_added_later_is_exempt_and_a_removed_one_no_longer() {
        let (member, listed): (PeerId, Multiaddr) =
            (peer(2), "/ip4/192.0.2.60/tcp/7400".parse().unwrap());
        let mut counts = Counts::new(2, 1, false, []);
        assert!(counts.admit(ConnectionId::new_unchecked(0), Some(ip(1))).is_ok());
        // The one pending slot is held: the address is nobody's yet.
        let refused = counts.admit(ConnectionId::new_unchecked(1), Some(ip(60)));
        assert_eq!(refused, Err(Refused::TooManyPending { limit: 1 }));
        counts.add_member(&member, &[listed]);
        assert!(counts.admit(ConnectionId::new_unchecked(2), Some(ip(60))).is_ok());
        counts.forget_member(&member);
        let refused = counts.admit(ConnectionId::new_unchecked(3), Some(ip(60)));
        assert_eq!(refused, Err(Refused::TooManyPending { limit: 1 }));
    }

    #[test]
    fn addresses_a_member_connected_from_are_learned_within_bounds() {
        let member = peer(1);
        let mut counts = Counts::new(8, 1, false, [(member, vec![])]);
        assert!(counts.admit(ConnectionId::new_unchecked(0), Some(ip(0))).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(1), Some(ip(1))).is_err(), "pool full");
        counts.learn(&member, ip(1));
        counts.learn(&peer(2), ip(2)); // not a member: nothing learned
        assert!(counts.admit(ConnectionId::new_unchecked(2), Some(ip(1))).is_ok());
        assert!(counts.admit(ConnectionId::new_unchecked(3), Some(ip(2))).is_err());
        let mut latest = ip(1);
        for n in (10..).take(MAX_LEARNED_IPS_PER_MEMBER) {
            latest = ip(n);
            counts.learn(&member, latest);
        }
        assert!(counts.admit(ConnectionId::new_unchecked(4), Some(ip(1))).is_err(), "forgotten");
        assert!(counts.admit(ConnectionId::new_unchecked(5), Some(latest)).is_ok());
        // An address added to the roster later counts as listed.
        counts.list_address(&member, &"/ip4/192.0.2.77/tcp/1".parse().unwrap());
        assert!(counts.admit(ConnectionId::new_unchecked(6), Some(ip(77))).is_ok());
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
