//! The address family of a DHT node (BEP 32). There are two DHTs, IPv4 and
//! IPv6, each with its own routing table: the session runs one [`Dht`]
//! node per family, the IPv4 one on the `udp` thread's socket and the IPv6
//! one on the `udp6` thread's. A node speaks its own family: it answers
//! with `nodes` (IPv4) or `nodes6` (IPv6), honours `want` for its own
//! family (it has no table of the other one to offer), reads the list of
//! its own family from answers, and stores and returns peers of its
//! family (an `announce_peer` carries the querier's own address).
//!
//! [`Dht`]: super::Dht

use crate::proto::krpc::{Body, CompactNode, CompactNode6, Message, NodeId, Want};
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Look for peers of `ih` in every DHT given (IPv4 and IPv6 at once,
/// each lookup bounded by `timeout`), then announce `port` in each when
/// `port` is given. The peers of all, without duplicates.
/// Longest a lookup may run.
pub const MAX_LOOKUP_TIME: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) fn lookup_all(
    dhts: &[&super::Dht],
    ih: crate::proto::metainfo::InfoHash,
    timeout: std::time::Duration,
    announce: Option<u16>,
) -> Vec<SocketAddr> {
    let started: Vec<_> = dhts
        .iter()
        .filter_map(|d| d.start_get_peers(ih, timeout))
        .collect();
    let wait = timeout.min(MAX_LOOKUP_TIME) + std::time::Duration::from_secs(1);
    let mut found: Vec<SocketAddr> = Vec::new();
    for rx in started {
        for p in rx.recv_timeout(wait).unwrap_or_default() {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    if let Some(port) = announce {
        for d in dhts {
            d.announce(ih, port);
        }
    }
    found
}

/// The answer's `nodes`/`nodes6` for a querier that asked `want`
/// (none: its own family, which is ours since it reached our socket).
pub(super) fn compact_nodes(
    closest: Vec<(NodeId, SocketAddr)>,
    v6: bool,
    want: Want,
) -> (Vec<CompactNode>, Vec<CompactNode6>) {
    let ours = !want.is_set() || (if v6 { want.n6 } else { want.n4 });
    let (mut n4, mut n6) = (Vec::new(), Vec::new());
    if !ours {
        return (n4, n6);
    }
    for (id, addr) in closest {
        match addr {
            SocketAddr::V4(addr) if !v6 => n4.push(CompactNode { id, addr }),
            SocketAddr::V6(addr) if v6 => n6.push(CompactNode6 { id, addr }),
            _ => {}
        }
    }
    (n4, n6)
}

/// The nodes of an answer a node of family `v6` can use.
pub(super) fn usable_nodes(
    r: &crate::proto::krpc::Response,
    v6: bool,
) -> Vec<(NodeId, SocketAddr)> {
    if v6 {
        r.nodes6
            .iter()
            .map(|n| (n.id, SocketAddr::V6(n.addr)))
            .collect()
    } else {
        r.nodes
            .iter()
            .map(|n| (n.id, SocketAddr::V4(n.addr)))
            .collect()
    }
}

/// Shrink an answer (values first, then nodes) until it encodes to at most
/// `limit` bytes (or has neither left).
pub(super) fn bound_answer(msg: &mut Message, limit: usize) {
    loop {
        let len = msg.encode().len();
        if len <= limit {
            return;
        }
        let Body::Response(r) = &mut msg.body else {
            return;
        };
        let over = len - limit;
        if !r.values.is_empty() {
            // A compact peer is an 8- or 20-byte string (`6:` + 6 bytes,
            // `18:` + 18 bytes); count the smaller.
            let n = r.values.len().saturating_sub(over.div_ceil(8).max(1));
            r.values.truncate(n);
        } else if !r.nodes6.is_empty() {
            let n = r.nodes6.len().saturating_sub(over.div_ceil(38).max(1));
            r.nodes6.truncate(n);
        } else if !r.nodes.is_empty() {
            let n = r.nodes.len().saturating_sub(over.div_ceil(26).max(1));
            r.nodes.truncate(n);
        } else {
            return;
        }
    }
}

/// Our address as `to` would see it: loopback for loopback, else the
/// source address the kernel picks for a route to `to` (a connected UDP
/// socket sends nothing). Same family as `to`.
pub(super) fn own_ip_towards(to: SocketAddr) -> Option<IpAddr> {
    if to.ip().is_loopback() {
        return Some(to.ip());
    }
    let any: SocketAddr = if to.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(NodeId, SocketAddr)> {
        vec![
            (NodeId([1; 20]), "10.0.0.1:6881".parse().unwrap()),
            (NodeId([2; 20]), "[2001:db8::2]:6881".parse().unwrap()),
        ]
    }

    #[test]
    fn answers_in_the_nodes_own_family_and_honours_want() {
        let none = Want::default();
        let (n4, n6) = compact_nodes(table(), false, none);
        assert_eq!((n4.len(), n6.len()), (1, 0));
        let (n4, n6) = compact_nodes(table(), true, none);
        assert_eq!((n4.len(), n6.len()), (0, 1));
        assert_eq!(n6[0].addr, "[2001:db8::2]:6881".parse().unwrap());
        // An IPv6 querier of an IPv4 node asking only n6: nothing to give.
        let only6 = Want {
            n4: false,
            n6: true,
        };
        let (n4, n6) = compact_nodes(table(), false, only6);
        assert!(n4.is_empty() && n6.is_empty());
        let both = Want { n4: true, n6: true };
        assert_eq!(compact_nodes(table(), true, both).1.len(), 1);
    }

    #[test]
    fn own_address_has_the_family_of_the_destination() {
        assert_eq!(
            own_ip_towards("[::1]:1".parse().unwrap()),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            own_ip_towards("127.0.0.1:1".parse().unwrap()),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
