//! BEP 42 (DHT security extension): a node id derived from the node's
//! external IP address, so that one host cannot pick ids next to any
//! target it likes.
//!
//! The first 21 bits of the id are the top 21 bits of
//! `crc32c((ip & mask) | (r << 29))` (IPv4: mask `03 0f 3f ff`, r in the
//! top 3 bits of the first byte; IPv6: the first 8 bytes with mask
//! `01 03 07 0f 1f 3f 7f ff`), the last byte is `r` (any random byte, of
//! which only the low 3 bits enter the CRC), and the rest is random.
//!
//! Nodes on local addresses (10/8, 172.16/12, 192.168/16, 169.254/16,
//! 127/8, and for IPv6 loopback, link-local and unique-local) are exempt
//! from the check, as the BEP says.

use crate::proto::krpc::NodeId;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// CRC32-C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: it
/// runs on at most 8 bytes, once per id check.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0x82F6_3B78;
            }
        }
    }
    !crc
}

/// The CRC of `ip` masked as BEP 42 says, with `r`'s low 3 bits.
fn masked_crc(ip: IpAddr, r: u8) -> u32 {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip(V4_MASK) {
                *x &= m;
            }
            b[0] |= (r & 7) << 5;
            crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut b = [0u8; 8];
            for i in 0..8 {
                b[i] = o[i] & V6_MASK[i];
            }
            b[0] |= (r & 7) << 5;
            crc32c(&b)
        }
    }
}

/// A BEP 42 node id for external address `ip`: the first 21 bits from the
/// CRC, the last byte `r`, the rest from `random` (its bytes 2..19 are
/// used; byte 2 keeps its low 3 bits).
pub fn secure_id(ip: IpAddr, r: u8, random: &[u8; 20]) -> NodeId {
    let crc = masked_crc(ip, r).to_be_bytes();
    let mut id = *random;
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (random[2] & 0x07);
    id[19] = r;
    NodeId(id)
}

/// A random BEP 42 node id for external address `ip`.
pub fn random_secure_id(ip: IpAddr) -> NodeId {
    let random = NodeId::random().0;
    secure_id(ip, random[19], &random)
}

/// Whether `id` is what BEP 42 allows for a node at `ip` (always true for
/// a local address, which the BEP exempts).
pub fn is_valid(id: &NodeId, ip: IpAddr) -> bool {
    if is_exempt(ip) {
        return true;
    }
    let crc = masked_crc(ip, id.0[19]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && (id.0[2] & 0xf8) == (crc[2] & 0xf8)
}

/// Whether BEP 42 exempts `ip` (a local network address) from the check.
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => exempt_v4(v4),
        IpAddr::V6(v6) => exempt_v6(v6),
    }
}

fn exempt_v4(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.is_link_local() || ip.is_loopback() || ip.is_unspecified()
}

fn exempt_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xfe00) == 0xfc00 // unique local
}

/// Whether `ip` can be a public external address worth deriving an id
/// from (not local, multicast, documentation... just a global unicast
/// address as far as the standard library can tell on stable).
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            !(exempt_v4(v4)
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
                || v4.octets()[0] >= 240
                // 100.64.0.0/10: carrier-grade NAT, shared address space.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => !(exempt_v6(v6) || v6.is_multicast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// The five examples of BEP 42 (`fixtures/vectors/bep42_node_ids.tsv`).
    const VECTORS: &str = include_str!("../../../fixtures/vectors/bep42_node_ids.tsv");

    #[test]
    fn bep42_vectors() {
        let mut n = 0;
        for line in VECTORS.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let ip: IpAddr = f[0].parse().expect("ip");
            let r: u8 = f[1].parse().expect("rand");
            let example = NodeId(hex(f[2]));
            let crc = u32::from_str_radix(f[3], 16).expect("crc");
            assert_eq!(masked_crc(ip, r), crc, "{ip}");
            // The example id is valid for its address, and for no other.
            assert!(is_valid(&example, ip), "{ip}");
            let other: IpAddr = "8.8.4.4".parse().expect("ip");
            assert!(!is_valid(&example, other), "{ip}");
            // Our id for that address, from the example's random bytes, is
            // the example itself (bytes 0, 1, top of 2 from the CRC).
            assert_eq!(secure_id(ip, r, &example.0), example, "{ip}");
            // Any random id we derive is valid for the address.
            assert!(is_valid(&random_secure_id(ip), ip));
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn local_addresses_are_exempt_and_not_public() {
        let id = NodeId([0xab; 20]);
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.9.9",
            "127.0.0.1",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_valid(&id, ip), "{ip}");
            assert!(!is_public(ip), "{ip}");
        }
        let public: IpAddr = "124.31.75.21".parse().expect("ip");
        assert!(!is_valid(&id, public));
        assert!(is_public(public));
        assert!(!is_public("100.64.1.1".parse().expect("ip")));
        assert!(is_public("2a01:4f8::1".parse().expect("ip")));
        let v6: IpAddr = "2a01:4f8::1".parse().expect("ip");
        assert!(is_valid(&random_secure_id(v6), v6));
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
