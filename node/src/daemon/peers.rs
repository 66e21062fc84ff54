//! The roster's members as this node sees them (`Node::peers`, for `GET /v1/peers` and
//! `crossmatch peers`): connected or not, banned until when, the addresses it dials, the head
//! of each one's feed held here and its clock skew; and the mesh's address book (the listen
//! addresses, the members connected, an address added to dial).

use crossmatch_protocol::PublicKey;

use super::calls::Lane;
use super::{Error, FeedPosition, Node, Result};
use crate::engine;
use crate::mesh::PeerKey;

/// One roster member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// Member id (`DE`).
    pub member_id: String,
    /// Its contact, as the roster gives it.
    pub contact: String,
    /// Its node key.
    pub key: PublicKey,
    /// This node itself.
    pub this_node: bool,
    /// Connected now, with a matching roster.
    pub connected: bool,
    /// Banned until then (Unix ms), if a ban is in force.
    pub banned_until_ms: Option<u64>,
    /// The addresses this node dials it at: its signed record's, or those it was given.
    pub addresses: Vec<String>,
    /// The newest head of its current key's feed held here, if any.
    pub head: Option<FeedPosition>,
    /// Its estimated clock skew (ms; see `StatusView`), with the samples it is over.
    pub skew: Option<(i64, usize)>,
}

impl Node {
    /// Every roster member, in roster order, as this node sees it now.
    pub async fn peers(&self) -> Result<Vec<PeerView>> {
        let stats = self.mesh.stats().await.map_err(|_| Error::Closed)?;
        let (own_key, heads, skews) = self
            .call(Lane::Api, |engine| {
                Ok::<_, engine::Error>((
                    engine.own_public_key(),
                    engine.head_positions()?,
                    engine.clock_skews(),
                ))
            })
            .await??;
        let records = self.roster_view().map(|view| view.members).unwrap_or_default();
        Ok(self
            .roster
            .contacts()
            .into_iter()
            .map(|member| {
                let key = member.key.to_bytes();
                let peer = PeerKey(key);
                let mut addresses = records
                    .iter()
                    .find(|record| record.node_key == member.key)
                    .map(|record| record.record_addresses.clone())
                    .unwrap_or_default();
                if addresses.is_empty() {
                    addresses = self.rosters.known_addresses_of(&key);
                }
                PeerView {
                    this_node: member.key == own_key,
                    connected: stats.connected_peers.contains(&peer),
                    banned_until_ms: stats
                        .bans
                        .iter()
                        .filter(|ban| ban.peer == peer)
                        .map(|ban| ban.until_unix_ms)
                        .max(),
                    addresses,
                    head: heads
                        .iter()
                        .filter(|head| *head.origin() == key)
                        .max_by_key(|head| (head.generation(), head.seq))
                        .map(|head| FeedPosition { generation: head.generation(), seq: head.seq }),
                    skew: skews
                        .iter()
                        .find(|skew| skew.origin == key)
                        .map(|skew| (skew.median_ms, skew.samples)),
                    member_id: member.member_id,
                    contact: member.contact,
                    key: member.key,
                }
            })
            .collect())
    }

    /// The addresses the mesh listens on, once at least one is bound.
    pub async fn listen_addresses(&self) -> Result<Vec<String>> {
        self.mesh.listen_addresses().await.map_err(|_| Error::Closed)
    }

    /// Members connected now with a matching roster.
    pub async fn connected_members(&self) -> Result<usize> {
        Ok(self.mesh.connected_peers().await.map_err(|_| Error::Closed)?.len())
    }

    /// Adds an address to dial a roster member at, and dials it if it is not connected.
    pub async fn add_member_address(&self, member: &PublicKey, address: String) -> Result<()> {
        self.rosters.note_address(member, &address);
        Ok(self.mesh.add_address(PeerKey(member.to_bytes()), address).await?)
    }
}
