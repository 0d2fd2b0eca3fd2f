//! The DHT routing table kept in the state directory (`dht.benc`: the
//! nodes as compact node infos), so that a restart bootstraps from the
//! nodes it knew.

use crate::proto::krpc::NodeId;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The DHT routing table kept in the state directory (compact node infos),
/// so a restart bootstraps from the nodes it knew.
pub(crate) fn save(path: &Path, nodes: &[(NodeId, SocketAddr)]) {
    use crate::proto::bencode::OwnedValue;
    let mut compact = Vec::new();
    for (id, addr) in nodes {
        if let SocketAddr::V4(v4) = addr {
            compact.extend_from_slice(&id.0);
            compact.extend_from_slice(&v4.ip().octets());
            compact.extend_from_slice(&v4.port().to_be_bytes());
        }
    }
    let v = OwnedValue::Dict(vec![(b"nodes".to_vec(), OwnedValue::Bytes(compact))]);
    if let Err(e) = crate::state::write_atomically(path, &v.to_bytes()) {
        log::warn!("saving the DHT routing table: {e}");
    }
}

/// The node addresses saved by [`save`] (at most 1,000); none when the
/// file is missing or unreadable.
pub(crate) fn load(path: &Path) -> Vec<SocketAddr> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(v) = crate::proto::bencode::decode(&bytes) else {
        return Vec::new();
    };
    let Some(nodes) = v
        .get(b"nodes")
        .and_then(crate::proto::bencode::Value::as_bytes)
    else {
        return Vec::new();
    };
    nodes
        .chunks_exact(26)
        .take(1000)
        .map(|c| {
            let ip = std::net::Ipv4Addr::new(c[20], c[21], c[22], c[23]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([c[24], c[25]]))
        })
        .collect()
}
