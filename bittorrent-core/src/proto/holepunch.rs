//! BEP 55 `ut_holepunch`: the payload of the holepunch extension message.
//!
//! ```text
//! msg_type  1 byte   0 rendezvous, 1 connect, 2 error
//! addr_type 1 byte   0 IPv4, 1 IPv6
//! addr      4 or 16  big-endian address
//! port      2 bytes  big-endian
//! err_code  4 bytes  big-endian; 0 in non-error messages
//! ```
//!
//! A payload is therefore exactly 12 (IPv4) or 24 (IPv6) bytes. Decoding is
//! strict: anything else (a short payload, trailing bytes, an unknown type, an
//! unknown address type) is refused with a [`HolepunchError`]. Error codes
//! outside 1-4 are kept as [`HolepunchErrorCode::Other`] so they can be
//! counted, never acted on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The extension's name in the BEP 10 handshake's `m` dictionary.
pub const HOLEPUNCH_EXTENSION: &str = "ut_holepunch";
/// Length of an IPv4 payload.
pub const HOLEPUNCH_V4_LEN: usize = 12;
/// Length of an IPv6 payload (the largest a holepunch message can be).
pub const HOLEPUNCH_V6_LEN: usize = 24;

/// `msg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolepunchKind {
    /// 0x00: ask the relay to send `connect` to both sides.
    Rendezvous,
    /// 0x01: dial the given endpoint over uTP.
    Connect,
    /// 0x02: the rendezvous could not be acted upon.
    Error,
}

impl HolepunchKind {
    fn byte(self) -> u8 {
        match self {
            HolepunchKind::Rendezvous => 0,
            HolepunchKind::Connect => 1,
            HolepunchKind::Error => 2,
        }
    }
}

/// `err_code` of an `error` message (BEP 55).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolepunchErrorCode {
    /// 0: not an error (rendezvous and connect carry this).
    None,
    /// 1: the target endpoint is invalid.
    NoSuchPeer,
    /// 2: the relay is not connected to the target.
    NotConnected,
    /// 3: the target does not support the holepunch extension.
    NoSupport,
    /// 4: the target endpoint is the relay itself.
    NoSelf,
    /// Any other value, kept as received.
    Other(u32),
}

impl HolepunchErrorCode {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            HolepunchErrorCode::None => 0,
            HolepunchErrorCode::NoSuchPeer => 1,
            HolepunchErrorCode::NotConnected => 2,
            HolepunchErrorCode::NoSupport => 3,
            HolepunchErrorCode::NoSelf => 4,
            HolepunchErrorCode::Other(c) => c,
        }
    }

    /// From the wire value.
    pub fn from_code(c: u32) -> HolepunchErrorCode {
        match c {
            0 => HolepunchErrorCode::None,
            1 => HolepunchErrorCode::NoSuchPeer,
            2 => HolepunchErrorCode::NotConnected,
            3 => HolepunchErrorCode::NoSupport,
            4 => HolepunchErrorCode::NoSelf,
            c => HolepunchErrorCode::Other(c),
        }
    }
}

/// One `ut_holepunch` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HolepunchMessage {
    /// `msg_type`.
    pub kind: HolepunchKind,
    /// `addr` and `port`.
    pub addr: SocketAddr,
    /// `err_code`.
    pub error: HolepunchErrorCode,
}

/// Why a holepunch payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolepunchError {
    /// Not 12 or 24 bytes, or not the length its `addr_type` implies.
    BadLength(usize),
    /// `msg_type` other than 0, 1, 2.
    UnknownType(u8),
    /// `addr_type` other than 0, 1.
    UnknownAddrType(u8),
}

impl fmt::Display for HolepunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HolepunchError::BadLength(n) => write!(f, "holepunch message of {n} bytes"),
            HolepunchError::UnknownType(t) => write!(f, "holepunch message type {t}"),
            HolepunchError::UnknownAddrType(t) => write!(f, "holepunch address type {t}"),
        }
    }
}

impl std::error::Error for HolepunchError {}

impl HolepunchMessage {
    /// A `rendezvous` for `target`.
    pub fn rendezvous(target: SocketAddr) -> Self {
        HolepunchMessage {
            kind: HolepunchKind::Rendezvous,
            addr: target,
            error: HolepunchErrorCode::None,
        }
    }

    /// A `connect` telling the receiver to dial `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        HolepunchMessage {
            kind: HolepunchKind::Connect,
            addr,
            error: HolepunchErrorCode::None,
        }
    }

    /// An `error` answering a rendezvous for `target` (same address, as BEP 55 asks).
    pub fn error(target: SocketAddr, code: HolepunchErrorCode) -> Self {
        HolepunchMessage {
            kind: HolepunchKind::Error,
            addr: target,
            error: code,
        }
    }

    /// The payload (after `<20><ext_id>`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HOLEPUNCH_V6_LEN);
        out.push(self.kind.byte());
        match self.addr.ip() {
            IpAddr::V4(a) => {
                out.push(0);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(1);
                out.extend_from_slice(&a.octets());
            }
        }
        out.extend_from_slice(&self.addr.port().to_be_bytes());
        out.extend_from_slice(&self.error.code().to_be_bytes());
        out
    }

    /// Parse a payload; strict about its length.
    pub fn decode(b: &[u8]) -> Result<HolepunchMessage, HolepunchError> {
        if b.len() != HOLEPUNCH_V4_LEN && b.len() != HOLEPUNCH_V6_LEN {
            return Err(HolepunchError::BadLength(b.len()));
        }
        let kind = match b[0] {
            0 => HolepunchKind::Rendezvous,
            1 => HolepunchKind::Connect,
            2 => HolepunchKind::Error,
            t => return Err(HolepunchError::UnknownType(t)),
        };
        let (ip, rest): (IpAddr, &[u8]) = match b[1] {
            0 if b.len() == HOLEPUNCH_V4_LEN => {
                (Ipv4Addr::new(b[2], b[3], b[4], b[5]).into(), &b[6..])
            }
            1 if b.len() == HOLEPUNCH_V6_LEN => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[2..18]);
                (Ipv6Addr::from(a).into(), &b[18..])
            }
            0 | 1 => return Err(HolepunchError::BadLength(b.len())),
            t => return Err(HolepunchError::UnknownAddrType(t)),
        };
        let port = u16::from_be_bytes([rest[0], rest[1]]);
        let code = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        Ok(HolepunchMessage {
            kind,
            addr: SocketAddr::new(ip, port),
            error: HolepunchErrorCode::from_code(code),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rendezvous_v4_layout_from_the_bep() {
        // msg_type 0, addr_type 0, 10.1.2.3, port 6881 (0x1ae1), err_code 0
        let bytes = [0, 0, 10, 1, 2, 3, 0x1a, 0xe1, 0, 0, 0, 0];
        let m = HolepunchMessage::decode(&bytes).unwrap();
        assert_eq!(m, HolepunchMessage::rendezvous(v4("10.1.2.3:6881")));
        assert_eq!(m.encode(), bytes);
    }

    #[test]
    fn connect_v6_layout_from_the_bep() {
        let addr: SocketAddr = "[2001:db8::1]:51413".parse().unwrap();
        let mut bytes = vec![1, 1];
        bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        bytes.extend_from_slice(&[0; 11]);
        bytes.push(1);
        bytes.extend_from_slice(&51413u16.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(bytes.len(), HOLEPUNCH_V6_LEN);
        let m = HolepunchMessage::decode(&bytes).unwrap();
        assert_eq!(m, HolepunchMessage::connect(addr));
        assert_eq!(m.encode(), bytes);
    }

    #[test]
    fn error_codes_one_to_four_and_unknown() {
        let t = v4("192.0.2.7:1");
        for (code, want) in [
            (1, HolepunchErrorCode::NoSuchPeer),
            (2, HolepunchErrorCode::NotConnected),
            (3, HolepunchErrorCode::NoSupport),
            (4, HolepunchErrorCode::NoSelf),
            (0x0100_0000, HolepunchErrorCode::Other(0x0100_0000)),
        ] {
            let mut b = vec![2, 0, 192, 0, 2, 7, 0, 1];
            b.extend_from_slice(&u32::to_be_bytes(code));
            let m = HolepunchMessage::decode(&b).unwrap();
            assert_eq!(m, HolepunchMessage::error(t, want));
            assert_eq!(m.encode(), b);
        }
    }

    #[test]
    fn malformed_payloads_refused() {
        let good = HolepunchMessage::rendezvous(v4("1.2.3.4:5")).encode();
        for n in 0..good.len() {
            assert_eq!(
                HolepunchMessage::decode(&good[..n]),
                Err(HolepunchError::BadLength(n))
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            HolepunchMessage::decode(&long),
            Err(HolepunchError::BadLength(13))
        );
        let mut t = good.clone();
        t[0] = 3;
        assert_eq!(
            HolepunchMessage::decode(&t),
            Err(HolepunchError::UnknownType(3))
        );
        let mut a = good.clone();
        a[1] = 2;
        assert_eq!(
            HolepunchMessage::decode(&a),
            Err(HolepunchError::UnknownAddrType(2))
        );
        // addr_type says IPv6 but the payload is IPv4-sized, and the reverse
        let mut a6 = good.clone();
        a6[1] = 1;
        assert_eq!(
            HolepunchMessage::decode(&a6),
            Err(HolepunchError::BadLength(12))
        );
        let mut b6 = HolepunchMessage::connect("[::1]:9".parse().unwrap()).encode();
        b6[1] = 0;
        assert_eq!(
            HolepunchMessage::decode(&b6),
            Err(HolepunchError::BadLength(24))
        );
        // a huge payload is refused without reading it
        assert_eq!(
            HolepunchMessage::decode(&[0u8; 1 << 16]),
            Err(HolepunchError::BadLength(1 << 16))
        );
    }
}
