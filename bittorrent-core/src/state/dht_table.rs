//! The DHT routing tables kept in the state directory (`dht.benc`), so
//! that a restart bootstraps from the nodes it knew: `nodes`, the IPv4
//! table as 26-byte compact node infos (BEP 5), and `nodes6`, the IPv6
//! table as 38-byte ones (BEP 32; files written before it have no
//! `nodes6` and still load).

use crate::proto::krpc::{CompactNode, CompactNode6, NodeId, COMPACT_NODE6_LEN, COMPACT_NODE_LEN};
use std::net::SocketAddr;
use std::path::Path;

/// Most nodes loaded per family.
const MAX_LOADED: usize = 1000;

/// Save the nodes, each under the key of its family.
pub(crate) fn save(path: &Path, nodes: &[(NodeId, SocketAddr)]) {
    if let Err(e) = crate::state::write_atomically(path, &encode(nodes)) {
        log::warn!("saving the DHT routing table: {e}");
    }
}

fn encode(nodes: &[(NodeId, SocketAddr)]) -> Vec<u8> {
    use crate::proto::bencode::OwnedValue;
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for &(id, addr) in nodes {
        match addr {
            SocketAddr::V4(addr) => v4.extend_from_slice(&CompactNode { id, addr }.to_bytes()),
            SocketAddr::V6(addr) => v6.extend_from_slice(&CompactNode6 { id, addr }.to_bytes()),
        }
    }
    let mut d = vec![(b"nodes".to_vec(), OwnedValue::Bytes(v4))];
    if !v6.is_empty() {
        d.push((b"nodes6".to_vec(), OwnedValue::Bytes(v6)));
    }
    OwnedValue::Dict(d).to_bytes()
}

/// The node addresses saved by [`save`] (at most 1,000 per family), IPv4
/// and IPv6; none when the file is missing or unreadable.
pub(crate) fn load(path: &Path) -> Vec<SocketAddr> {
    std::fs::read(path).map(|b| decode(&b)).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Vec<SocketAddr> {
    use crate::proto::bencode::Value;
    let Ok(v) = crate::proto::bencode::decode(bytes) else {
        return Vec::new();
    };
    let list = |k: &[u8]| v.get(k).and_then(Value::as_bytes).unwrap_or_default();
    let v4 = list(b"nodes")
        .chunks_exact(COMPACT_NODE_LEN)
        .filter_map(CompactNode::from_bytes)
        .take(MAX_LOADED)
        .map(|n| SocketAddr::V4(n.addr));
    let v6 = list(b"nodes6")
        .chunks_exact(COMPACT_NODE6_LEN)
        .filter_map(CompactNode6::from_bytes)
        .take(MAX_LOADED)
        .map(|n| SocketAddr::V6(n.addr));
    v4.chain(v6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip() {
        let nodes = vec![
            (NodeId([1; 20]), "10.0.0.1:6881".parse().unwrap()),
            (NodeId([2; 20]), "[2001:db8::2]:6882".parse().unwrap()),
        ];
        let got = decode(&encode(&nodes));
        assert_eq!(got, nodes.iter().map(|n| n.1).collect::<Vec<_>>());
    }

    #[test]
    fn a_file_from_before_ipv6_still_loads() {
        // What the IPv4-only version wrote: `nodes` alone.
        let mut old = b"d5:nodes26:".to_vec();
        old.extend_from_slice(&[7; 20]);
        old.extend_from_slice(&[192, 0, 2, 1, 0x1a, 0xe1]);
        old.push(b'e');
        assert_eq!(decode(&old), vec!["192.0.2.1:6881".parse().unwrap()]);
    }

    #[test]
    fn bad_nodes6_are_bounded() {
        use crate::proto::bencode::OwnedValue;
        // A trailing partial entry is ignored; a huge list is cut.
        let mut junk = vec![0x20u8; COMPACT_NODE6_LEN * 1500 + 5];
        junk[20] = 0x20;
        let d = OwnedValue::Dict(vec![(b"nodes6".to_vec(), OwnedValue::Bytes(junk))]);
        assert_eq!(decode(&d.to_bytes()).len(), MAX_LOADED);
        assert!(decode(b"garbage").is_empty());
    }
}
