//! uTP packets (BEP 29, version 1): the 20-byte header, the extension chain and the selective
//! ACK extension. Pure codec: bytes in, values out; every length is checked before it is read.
//!
//! ```text
//! 0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! +-------+-------+---------------+---------------+---------------+
//! | timestamp_microseconds                                        |
//! | timestamp_difference_microseconds                             |
//! | wnd_size                                                      |
//! +---------------+---------------+---------------+---------------+
//! | seq_nr                        | ack_nr                        |
//! +---------------+---------------+---------------+---------------+
//! ```
//!
//! All fields are big-endian. After the header comes a linked list of extensions (each
//! `[next_type, len]` then `len` bytes; the header's `extension` byte is the first type, 0 ends
//! the list), then the payload. Extension 1 is the selective ACK: a bitmask of a multiple of
//! 4 bytes whose bit `i` (least significant bit of byte 0 first) acknowledges `ack_nr + 2 + i`.
//! Unknown extensions are skipped by their length, as the BEP asks.
//!
//! This module only parses and builds packets. The connection state machine (sequence
//! numbers, windows, retransmission, LEDBAT) and the socket are not here.

use std::fmt;

/// The only protocol version this codec speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 20;
/// Extension type of the selective ACK.
pub const EXT_SELECTIVE_ACK: u8 = 1;
/// Largest selective ACK bitmask accepted or built, in bytes (1,024 packets past `ack_nr + 1`;
/// libtorrent sends at most this much). A peer cannot make us walk a longer one.
pub const MAX_SACK_BYTES: usize = 128;
/// Most extensions followed in one packet (known and unknown together).
pub const MAX_EXTENSIONS: usize = 8;

/// The packet type (high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `ST_DATA` (0): a data packet.
    Data = 0,
    /// `ST_FIN` (1): the last packet of the connection.
    Fin = 1,
    /// `ST_STATE` (2): an ACK without data.
    State = 2,
    /// `ST_RESET` (3): terminate the connection.
    Reset = 3,
    /// `ST_SYN` (4): open a connection.
    Syn = 4,
}

impl PacketType {
    /// The type for the 4-bit value `v`, if it is one of the five.
    pub fn from_u8(v: u8) -> Option<PacketType> {
        Some(match v {
            0 => PacketType::Data,
            1 => PacketType::Fin,
            2 => PacketType::State,
            3 => PacketType::Reset,
            4 => PacketType::Syn,
            _ => return None,
        })
    }
}

/// Why a datagram is not a valid uTP version 1 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtpError {
    /// Shorter than the 20-byte header.
    TooShort(usize),
    /// The version nibble is not 1.
    Version(u8),
    /// The type nibble is not one of the five packet types.
    Type(u8),
    /// An extension header or its body runs past the end of the datagram.
    ExtensionTruncated,
    /// A selective ACK whose length is 0 or over [`MAX_SACK_BYTES`]. (BEP 29 asks for a
    /// multiple of 4; libtorrent 2.0 sends whole bytes, 1 byte and up, so any length is
    /// taken.)
    SackLength(u8),
    /// More than one selective ACK in a packet.
    DuplicateSack,
    /// More than [`MAX_EXTENSIONS`] extensions.
    TooManyExtensions,
}

impl fmt::Display for UtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UtpError::TooShort(n) => write!(f, "uTP packet of {n} bytes, shorter than the header"),
            UtpError::Version(v) => write!(f, "uTP version {v}, expected 1"),
            UtpError::Type(t) => write!(f, "unknown uTP packet type {t}"),
            UtpError::ExtensionTruncated => write!(f, "uTP extension runs past the packet"),
            UtpError::SackLength(n) => write!(f, "uTP selective ACK of {n} bytes"),
            UtpError::DuplicateSack => write!(f, "two uTP selective ACKs in one packet"),
            UtpError::TooManyExtensions => write!(f, "too many uTP extensions"),
        }
    }
}

impl std::error::Error for UtpError {}

/// The fixed 20-byte header (without the `extension` byte, which the codec derives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub kind: PacketType,
    /// Connection id (the SYN carries the receive id; later packets the send id).
    pub connection_id: u16,
    /// Sender's clock, low 32 bits of microseconds, when the packet was sent.
    pub timestamp_us: u32,
    /// The sender's latest one-way delay sample of our packets (0 until it has one).
    pub timestamp_diff_us: u32,
    /// Advertised receive window in bytes.
    pub wnd_size: u32,
    /// Sequence number of this packet.
    pub seq_nr: u16,
    /// Last sequence number received in order from the other side.
    pub ack_nr: u16,
}

impl Header {
    /// Parse only the fixed header (version and type checked; extensions not walked).
    pub fn decode(b: &[u8]) -> Result<Header, UtpError> {
        if b.len() < HEADER_LEN {
            return Err(UtpError::TooShort(b.len()));
        }
        let version = b[0] & 0x0f;
        if version != VERSION {
            return Err(UtpError::Version(version));
        }
        let t = b[0] >> 4;
        let kind = PacketType::from_u8(t).ok_or(UtpError::Type(t))?;
        let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Header {
            kind,
            connection_id: be16(2),
            timestamp_us: be32(4),
            timestamp_diff_us: be32(8),
            wnd_size: be32(12),
            seq_nr: be16(16),
            ack_nr: be16(18),
        })
    }
}

/// The selective ACK extension: bit `i` set means `ack_nr + 2 + i` was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectiveAck {
    mask: Vec<u8>,
}

impl SelectiveAck {
    /// A selective ACK from its raw bitmask (as on the wire).
    pub fn from_mask(mask: Vec<u8>) -> Result<SelectiveAck, UtpError> {
        let n = mask.len();
        if n == 0 || n > MAX_SACK_BYTES {
            return Err(UtpError::SackLength(n.min(255) as u8));
        }
        Ok(SelectiveAck { mask })
    }

    /// The selective ACK for `received` sequence numbers past `ack_nr + 1`; numbers outside
    /// `ack_nr + 2 ..= ack_nr + 1 + 8 * MAX_SACK_BYTES` (with wrap-around) are left out. The
    /// mask is as short as allows, at least 4 bytes. `None` if no number falls in the range.
    pub fn from_received(ack_nr: u16, received: &[u16]) -> Option<SelectiveAck> {
        let mut mask = vec![0u8; MAX_SACK_BYTES];
        let mut top = 0usize;
        for &s in received {
            let i = usize::from(s.wrapping_sub(ack_nr).wrapping_sub(2));
            if i < MAX_SACK_BYTES * 8 {
                mask[i / 8] |= 1 << (i % 8);
                top = top.max(i / 8 + 1);
            }
        }
        if top == 0 {
            return None;
        }
        mask.truncate(top.div_ceil(4) * 4);
        Some(SelectiveAck { mask })
    }

    /// The raw bitmask.
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }

    /// Whether the ACK covers `seq` (relative to the packet's `ack_nr`).
    pub fn acks(&self, ack_nr: u16, seq: u16) -> bool {
        let i = usize::from(seq.wrapping_sub(ack_nr).wrapping_sub(2));
        self.mask
            .get(i / 8)
            .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
    }

    /// Every sequence number the ACK covers, in order from `ack_nr + 2`.
    pub fn acked(&self, ack_nr: u16) -> impl Iterator<Item = u16> + '_ {
        (0..self.mask.len() * 8)
            .filter(|i| self.mask[i / 8] & (1 << (i % 8)) != 0)
            .map(move |i| ack_nr.wrapping_add(2).wrapping_add(i as u16))
    }
}

/// A whole uTP packet: header, optional selective ACK and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: Header,
    /// The selective ACK extension, if present.
    pub sack: Option<SelectiveAck>,
    /// Bytes after the header and extensions.
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parse a datagram: the header, then the extension chain (the selective ACK kept, unknown
    /// extensions skipped), then the payload. Every length is checked against the datagram.
    pub fn decode(b: &'a [u8]) -> Result<Packet<'a>, UtpError> {
        let header = Header::decode(b)?;
        let mut next = b[1];
        let mut at = HEADER_LEN;
        let mut sack = None;
        let mut count = 0;
        while next != 0 {
            count += 1;
            if count > MAX_EXTENSIONS {
                return Err(UtpError::TooManyExtensions);
            }
            let ext = b.get(at..at + 2).ok_or(UtpError::ExtensionTruncated)?;
            let (kind, len) = (next, usize::from(ext[1]));
            next = ext[0];
            let body = b
                .get(at + 2..at + 2 + len)
                .ok_or(UtpError::ExtensionTruncated)?;
            at += 2 + len;
            if kind == EXT_SELECTIVE_ACK {
                if sack.is_some() {
                    return Err(UtpError::DuplicateSack);
                }
                sack = Some(SelectiveAck::from_mask(body.to_vec())?);
            }
        }
        Ok(Packet {
            header,
            sack,
            payload: &b[at..],
        })
    }

    /// Append the packet's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        out.reserve(HEADER_LEN + self.payload.len() + 2 + MAX_SACK_BYTES);
        out.push(((h.kind as u8) << 4) | VERSION);
        out.push(if self.sack.is_some() {
            EXT_SELECTIVE_ACK
        } else {
            0
        });
        out.extend_from_slice(&h.connection_id.to_be_bytes());
        out.extend_from_slice(&h.timestamp_us.to_be_bytes());
        out.extend_from_slice(&h.timestamp_diff_us.to_be_bytes());
        out.extend_from_slice(&h.wnd_size.to_be_bytes());
        out.extend_from_slice(&h.seq_nr.to_be_bytes());
        out.extend_from_slice(&h.ack_nr.to_be_bytes());
        if let Some(s) = &self.sack {
            // The constructor bounds the mask to MAX_SACK_BYTES (< 256).
            out.push(0);
            out.push(s.mask.len() as u8);
            out.extend_from_slice(&s.mask);
        }
        out.extend_from_slice(self.payload);
    }

    /// The packet's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// The `ST_RESET` that answers a packet with header `h` for a connection we do not have
    /// (libtorrent's form: its connection id, `ack_nr` its `seq_nr`).
    pub fn reset_for(h: &Header) -> Vec<u8> {
        Packet {
            header: Header {
                kind: PacketType::Reset,
                connection_id: h.connection_id,
                timestamp_us: 0,
                timestamp_diff_us: 0,
                wnd_size: 0,
                seq_nr: 0,
                ack_nr: h.seq_nr,
            },
            sack: None,
            payload: &[],
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn header(kind: PacketType) -> Header {
        Header {
            kind,
            connection_id: 0x1234,
            timestamp_us: 0x0102_0304,
            timestamp_diff_us: 0x0a0b_0c0d,
            wnd_size: 0x0010_0000,
            seq_nr: 0xfffe,
            ack_nr: 0x0001,
        }
    }

    /// The header diagram of BEP 29, field by field: type/version nibbles, extension,
    /// connection_id, three 32-bit fields, seq_nr, ack_nr, all big-endian.
    #[test]
    fn syn_header_vector_from_the_bep() {
        let bytes = hex("41 00 1234 01020304 0a0b0c0d 00100000 fffe 0001");
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.header, header(PacketType::Syn));
        assert_eq!(p.sack, None);
        assert!(p.payload.is_empty());
        assert_eq!(p.encode(), bytes);
    }

    /// First byte = type << 4 | version 1, for the five types of the BEP.
    #[test]
    fn first_byte_of_each_type() {
        for (kind, b) in [
            (PacketType::Data, 0x01),
            (PacketType::Fin, 0x11),
            (PacketType::State, 0x21),
            (PacketType::Reset, 0x31),
            (PacketType::Syn, 0x41),
        ] {
            let p = Packet {
                header: header(kind),
                sack: None,
                payload: b"",
            };
            let e = p.encode();
            assert_eq!(e.len(), HEADER_LEN);
            assert_eq!(e[0], b);
            assert_eq!(Packet::decode(&e).unwrap(), p);
        }
    }

    #[test]
    fn data_packet_keeps_its_payload() {
        let bytes = hex("01 00 1235 00000001 00000002 0000ffff 0007 0003 68656c6c6f");
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.header.kind, PacketType::Data);
        assert_eq!(p.header.connection_id, 0x1235);
        assert_eq!(p.header.wnd_size, 0xffff);
        assert_eq!((p.header.seq_nr, p.header.ack_nr), (7, 3));
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.encode(), bytes);
    }

    /// The selective ACK diagram of the BEP: byte 0 holds ack_nr+9 (MSB) .. ack_nr+2 (LSB),
    /// byte 1 ack_nr+17 .. ack_nr+10, and so on.
    #[test]
    fn selective_ack_bit_order_from_the_bep() {
        // ack_nr = 100; received 102 (bit 0 of byte 0), 109 (bit 7 of byte 0),
        // 110 (bit 0 of byte 1), 133 (bit 7 of byte 3).
        let bytes = hex("21 01 1234 00000000 00000000 00010000 0005 0064 00 04 81010080");
        let p = Packet::decode(&bytes).unwrap();
        let s = p.sack.as_ref().unwrap();
        assert_eq!(s.mask(), &[0x81, 0x01, 0x00, 0x80]);
        assert_eq!(s.acked(100).collect::<Vec<_>>(), vec![102, 109, 110, 133]);
        assert!(s.acks(100, 102) && s.acks(100, 133));
        assert!(!s.acks(100, 101) && !s.acks(100, 103) && !s.acks(100, 134));
        assert!(!s.acks(100, 100) && !s.acks(100, 99));
        assert!(p.payload.is_empty());
        assert_eq!(p.encode(), bytes);
        let built = SelectiveAck::from_received(100, &[133, 102, 110, 109, 50, 101]).unwrap();
        assert_eq!(&built, s);
    }

    #[test]
    fn selective_ack_wraps_around_sequence_numbers() {
        let s = SelectiveAck::from_received(0xfffe, &[0, 1, 0x20]).unwrap();
        // 0xfffe + 2 = 0 -> bit 0; 1 -> bit 1; 0x20 -> bit 32 (byte 4): mask grows to 8 bytes.
        assert_eq!(s.mask(), &[0x03, 0, 0, 0, 0x01, 0, 0, 0]);
        assert_eq!(s.acked(0xfffe).collect::<Vec<_>>(), vec![0, 1, 0x20]);
        assert_eq!(SelectiveAck::from_received(5, &[5, 6]), None);
        let far = 5u16 + 2 + (MAX_SACK_BYTES * 8) as u16;
        assert_eq!(SelectiveAck::from_received(5, &[far]), None);
        let last = SelectiveAck::from_received(5, &[far - 1]).unwrap();
        assert_eq!(last.mask().len(), MAX_SACK_BYTES);
    }

    #[test]
    fn unknown_extensions_are_skipped_by_length() {
        // First extension type 7 (unknown, 3 bytes), then a selective ACK, then payload "x".
        let bytes =
            hex("01 07 0001 00000000 00000000 00000000 0001 0000 01 03 aabbcc 00 04 01000000 78");
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.sack.unwrap().mask(), &[1, 0, 0, 0]);
        assert_eq!(p.payload, b"x");
        // An unknown extension of length 0 is legal too.
        let bytes = hex("21 09 0001 00000000 00000000 00000000 0001 0000 00 00");
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.sack, None);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn every_length_is_checked() {
        let good = hex("41 00 1234 01020304 0a0b0c0d 00100000 fffe 0001");
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::decode(&good[..n]), Err(UtpError::TooShort(n)));
        }
        // Version 0 and 2, type 5 and 15.
        let mut b = good.clone();
        b[0] = 0x40;
        assert_eq!(Packet::decode(&b), Err(UtpError::Version(0)));
        b[0] = 0x42;
        assert_eq!(Packet::decode(&b), Err(UtpError::Version(2)));
        b[0] = 0x51;
        assert_eq!(Packet::decode(&b), Err(UtpError::Type(5)));
        b[0] = 0xf1;
        assert_eq!(Packet::decode(&b), Err(UtpError::Type(15)));
        // Extension announced but no room for its 2-byte header, or for its body.
        let mut b = good.clone();
        b[1] = 1;
        assert_eq!(Packet::decode(&b), Err(UtpError::ExtensionTruncated));
        b.push(0);
        assert_eq!(Packet::decode(&b), Err(UtpError::ExtensionTruncated));
        b.extend_from_slice(&[4, 0, 0, 0]);
        assert_eq!(Packet::decode(&b), Err(UtpError::ExtensionTruncated));
        b.push(0);
        assert!(Packet::decode(&b).unwrap().sack.is_some());
        // Selective ACK lengths: 0 and 132 refused; 1, 3 and 5 (libtorrent sends whole
        // bytes, not the multiple of 4 BEP 29 asks for) taken.
        for len in [1u8, 3, 5] {
            let mut b = good.clone();
            b[1] = 1;
            b.extend_from_slice(&[0, len]);
            b.extend(std::iter::repeat_n(0x80, usize::from(len)));
            let p = Packet::decode(&b).unwrap();
            assert_eq!(p.sack.unwrap().mask().len(), usize::from(len));
        }
        for len in [0u8, 132] {
            let mut b = good.clone();
            b[1] = 1;
            b.extend_from_slice(&[0, len]);
            b.extend(std::iter::repeat_n(0xff, usize::from(len)));
            assert_eq!(Packet::decode(&b), Err(UtpError::SackLength(len)));
        }
        // Two selective ACKs.
        let mut b = good.clone();
        b[1] = 1;
        b.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
        assert_eq!(Packet::decode(&b), Err(UtpError::DuplicateSack));
        // A chain longer than MAX_EXTENSIONS.
        let mut b = good.clone();
        b[1] = 9;
        for _ in 0..MAX_EXTENSIONS {
            b.extend_from_slice(&[9, 0]);
        }
        b.extend_from_slice(&[0, 0]);
        assert_eq!(Packet::decode(&b), Err(UtpError::TooManyExtensions));
        b.truncate(b.len() - 4);
        b.extend_from_slice(&[0, 0]);
        assert!(Packet::decode(&b).is_ok());
        assert!(SelectiveAck::from_mask(vec![0; MAX_SACK_BYTES + 4]).is_err());
        assert!(SelectiveAck::from_mask(vec![0; 6]).is_ok());
        assert!(SelectiveAck::from_mask(Vec::new()).is_err());
    }

    /// The other protocols on the shared port never parse as uTP: a KRPC dictionary starts
    /// with `d` (0x64: version nibble 4), a BEP 15 connect with 0x00 (version 0).
    #[test]
    fn dht_and_tracker_datagrams_are_not_utp() {
        let krpc = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(Packet::decode(krpc), Err(UtpError::Version(4)));
        let mut connect = 0x0417_2710_1980u64.to_be_bytes().to_vec();
        connect.extend_from_slice(&[0; 12]);
        assert_eq!(Packet::decode(&connect), Err(UtpError::Version(0)));
    }
}
