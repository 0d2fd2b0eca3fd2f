//! Compact node infos (`nodes`, BEP 32 `nodes6`) and compact peer infos.

use super::{NodeId, COMPACT_NODE6_LEN, COMPACT_NODE_LEN, COMPACT_PEER_LEN};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

/// A node as carried in a `nodes` string: id and IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactNode {
    /// The node's id.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddrV4,
}

impl CompactNode {
    /// Parse exactly 26 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<CompactNode> {
        if b.len() != COMPACT_NODE_LEN {
            return None;
        }
        let mut id = [0u8; 20];
        id.copy_from_slice(&b[..20]);
        let addr = peer_from_bytes(&b[20..])?;
        Some(CompactNode {
            id: NodeId(id),
            addr,
        })
    }

    /// The 26-byte compact form.
    pub fn to_bytes(&self) -> [u8; COMPACT_NODE_LEN] {
        let mut out = [0u8; COMPACT_NODE_LEN];
        out[..20].copy_from_slice(&self.id.0);
        out[20..].copy_from_slice(&peer_to_bytes(&self.addr));
        out
    }
}

/// A node as carried in a `nodes6` string (BEP 32): id and IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactNode6 {
    /// The node's id.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddrV6,
}

impl CompactNode6 {
    /// Parse exactly 38 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<CompactNode6> {
        if b.len() != COMPACT_NODE6_LEN {
            return None;
        }
        let mut id = [0u8; 20];
        id.copy_from_slice(&b[..20]);
        let addr = crate::proto::compact::peer_v6(&b[20..])?;
        Some(CompactNode6 {
            id: NodeId(id),
            addr,
        })
    }

    /// The 38-byte compact form.
    pub fn to_bytes(&self) -> [u8; COMPACT_NODE6_LEN] {
        let mut out = [0u8; COMPACT_NODE6_LEN];
        out[..20].copy_from_slice(&self.id.0);
        out[20..].copy_from_slice(&crate::proto::compact::encode(&SocketAddr::V6(self.addr)));
        out
    }
}

/// Parse a 6-byte compact peer (IPv4 address, big-endian port).
pub fn peer_from_bytes(b: &[u8]) -> Option<SocketAddrV4> {
    crate::proto::compact::peer_v4(b)
}

/// The 6-byte compact form of a peer.
pub fn peer_to_bytes(a: &SocketAddrV4) -> [u8; COMPACT_PEER_LEN] {
    crate::proto::compact::encode_v4(a)
}
