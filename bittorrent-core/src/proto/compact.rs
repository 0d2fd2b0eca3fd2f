//! Compact peer addresses, the one codec shared by tracker responses
//! (BEP 23 `peers`, BEP 7 `peers6`), peer exchange (BEP 11 `added`,
//! `added6`, `dropped`) and the DHT (BEP 5 `values`, and the address part
//! of compact node infos): an IPv4 address and a big-endian port in 6
//! bytes, an IPv6 address and a port in 18.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Length of one compact IPv4 peer.
pub const V4_LEN: usize = 6;
/// Length of one compact IPv6 peer.
pub const V6_LEN: usize = 18;

/// One 6-byte compact IPv4 peer (`None` unless `b` is exactly 6 bytes).
pub fn peer_v4(b: &[u8]) -> Option<SocketAddrV4> {
    let b: &[u8; V4_LEN] = b.try_into().ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    ))
}

/// One 18-byte compact IPv6 peer (`None` unless `b` is exactly 18 bytes).
pub fn peer_v6(b: &[u8]) -> Option<SocketAddrV6> {
    let b: &[u8; V6_LEN] = b.try_into().ok()?;
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[..16]);
    Some(SocketAddrV6::new(
        Ipv6Addr::from(ip),
        u16::from_be_bytes([b[16], b[17]]),
        0,
        0,
    ))
}

/// The 6-byte form of an IPv4 peer.
pub fn encode_v4(a: &SocketAddrV4) -> [u8; V4_LEN] {
    let o = a.ip().octets();
    let p = a.port().to_be_bytes();
    [o[0], o[1], o[2], o[3], p[0], p[1]]
}

/// A list of compact IPv4 peers (a trailing partial entry is ignored),
/// skipping port 0.
pub fn parse_v4(b: &[u8]) -> Vec<SocketAddr> {
    b.chunks_exact(V4_LEN)
        .filter_map(peer_v4)
        .map(SocketAddr::V4)
        .filter(|a| a.port() != 0)
        .collect()
}

/// A list of compact IPv6 peers (a trailing partial entry is ignored),
/// skipping port 0.
pub fn parse_v6(b: &[u8]) -> Vec<SocketAddr> {
    b.chunks_exact(V6_LEN)
        .filter_map(peer_v6)
        .map(SocketAddr::V6)
        .filter(|a| a.port() != 0)
        .collect()
}

/// The compact form of `addr`: 6 bytes for IPv4, 18 for IPv6.
pub fn encode(addr: &SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// `a` with a v4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack
/// socket reports for an IPv4 peer) turned back into plain IPv4: the form
/// every address is compared, counted and encoded in.
pub fn canonical(a: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families_and_skips_port_zero() {
        let a: SocketAddr = "10.1.2.3:6881".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "[2001:db8::7]:51413"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(encode(&a), [10, 1, 2, 3, 0x1a, 0xe1]);
        assert_eq!(parse_v4(&encode(&a)), [a]);
        assert_eq!(parse_v6(&encode(&b)), [b]);
        let mut two = encode(&a);
        two.extend_from_slice(&[1, 2, 3, 4, 0, 0]); // port 0: skipped
        two.extend_from_slice(&[9, 9, 9]); // partial: ignored
        assert_eq!(parse_v4(&two), [a]);
        let SocketAddr::V4(a4) = a else {
            unreachable!()
        };
        assert_eq!(peer_v4(&encode_v4(&a4)), Some(a4));
        assert_eq!(peer_v4(&[1, 2, 3]), None);
        assert_eq!(peer_v6(&[0; 17]), None);
    }
}
