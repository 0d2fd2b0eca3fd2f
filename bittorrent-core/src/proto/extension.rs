//! Extension protocol payloads: the BEP 10 extended handshake, BEP 11
//! `ut_pex` and BEP 9 `ut_metadata` messages.
//!
//! These are pure byte functions over the *payload* of an extended message
//! (the bytes after the message id 20 and the extended id); use
//! [`extended_message`] to frame one for the wire. Decoding uses the strict
//! (canonical) bencode decoder and never panics; every list a remote
//! controls is bounded.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::proto::bencode::{self, BencodeError, OwnedValue, Value};
use crate::proto::compact::{
    encode as compact_addr, parse_v4 as parse_compact_v4, parse_v6 as parse_compact_v6,
};

/// Peer wire message id of extended messages (BEP 10).
pub const EXTENDED_MESSAGE_ID: u8 = 20;
/// Extended id of the extended handshake itself.
pub const HANDSHAKE_EXT_ID: u8 = 0;
/// Most added (v4 + v6) and most dropped contacts [`PexMessage::encode`] puts in one message (BEP 11).
pub const PEX_MAX_PER_MESSAGE: usize = 50;
/// Most contacts per field [`PexMessage::decode`] accepts (an initial PEX message may exceed 50).
pub const PEX_MAX_DECODE: usize = 1000;
/// Most entries accepted in a handshake's `m` dictionary.
pub const MAX_EXTENSIONS: usize = 128;
/// BEP 9 metadata piece size.
pub const METADATA_PIECE_SIZE: usize = 16 * 1024;
/// Largest `v` (client name) kept from a handshake, in bytes.
const MAX_CLIENT_NAME: usize = 256;

/// Why an extension payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionError {
    /// Not canonical bencode.
    Bencode(BencodeError),
    /// Bencode, but not the expected shape; the text says what is wrong.
    Malformed(&'static str),
    /// A list or payload exceeds its limit.
    TooLarge(&'static str),
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::Bencode(e) => write!(f, "extension message: {e}"),
            ExtensionError::Malformed(s) => write!(f, "malformed extension message: {s}"),
            ExtensionError::TooLarge(s) => write!(f, "extension message too large: {s}"),
        }
    }
}

impl std::error::Error for ExtensionError {}

impl From<BencodeError> for ExtensionError {
    fn from(e: BencodeError) -> Self {
        ExtensionError::Bencode(e)
    }
}

/// Frame an extended message: `<len><20><ext_id><payload>`.
pub fn extended_message(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 2) as u32;
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(EXTENDED_MESSAGE_ID);
    out.push(ext_id);
    out.extend_from_slice(payload);
    out
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

/// The BEP 10 extended handshake dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtHandshake {
    /// `m`: extension name → the id the *sender* wants to receive it with
    /// (0 = disabled), sorted by name.
    pub m: Vec<(String, u8)>,
    /// `p`: the sender's listening port.
    pub p: Option<u16>,
    /// `v`: client name and version.
    pub v: Option<String>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub yourip: Option<IpAddr>,
    /// `ipv4`: the sender's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// `ipv6`: the sender's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// `reqq`: how many outstanding requests the sender accepts.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9): size of the info dictionary.
    pub metadata_size: Option<u64>,
    /// `upload_only` (BEP 21): the sender is a seed / partial seed.
    pub upload_only: bool,
}

impl ExtHandshake {
    /// The id the sender assigned to extension `name`, `None` if absent or disabled.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .filter(|id| *id != 0)
    }

    /// Canonical bencoding (the payload after `<20><0>`).
    pub fn encode(&self) -> Vec<u8> {
        let m = self
            .m
            .iter()
            .map(|(k, id)| (k.as_bytes().to_vec(), OwnedValue::Int((*id).into())))
            .collect();
        let mut d = vec![(b"m".to_vec(), OwnedValue::Dict(m))];
        if let Some(p) = self.p {
            d.push((b"p".to_vec(), OwnedValue::Int(p.into())));
        }
        if let Some(v) = &self.v {
            d.push((b"v".to_vec(), OwnedValue::bytes(v)));
        }
        if let Some(ip) = &self.yourip {
            d.push((b"yourip".to_vec(), OwnedValue::Bytes(ip_bytes(ip))));
        }
        if let Some(ip) = self.ipv4 {
            d.push((b"ipv4".to_vec(), OwnedValue::bytes(ip.octets())));
        }
        if let Some(ip) = self.ipv6 {
            d.push((b"ipv6".to_vec(), OwnedValue::bytes(ip.octets())));
        }
        if let Some(r) = self.reqq {
            d.push((b"reqq".to_vec(), OwnedValue::Int(r.into())));
        }
        if let Some(s) = self.metadata_size {
            d.push((
                b"metadata_size".to_vec(),
                OwnedValue::Int(s.min(i64::MAX as u64) as i64),
            ));
        }
        if self.upload_only {
            d.push((b"upload_only".to_vec(), OwnedValue::Int(1)));
        }
        OwnedValue::Dict(d).to_bytes()
    }

    /// Decode a handshake payload. Unknown keys are ignored; known keys of
    /// the wrong type or out of range are ignored too (as libtorrent does),
    /// except that `m` must be a dictionary if present.
    pub fn decode(payload: &[u8]) -> Result<ExtHandshake, ExtensionError> {
        let v = bencode::decode_strict(payload)?;
        let d = v
            .as_dict()
            .ok_or(ExtensionError::Malformed("handshake is not a dictionary"))?;
        let mut h = ExtHandshake::default();
        match d.get(b"m") {
            None => {}
            Some(Value::Dict(m)) => {
                if m.entries.len() > MAX_EXTENSIONS {
                    return Err(ExtensionError::TooLarge("too many extensions in m"));
                }
                for (k, id) in &m.entries {
                    let (Ok(name), Some(id)) = (
                        std::str::from_utf8(k),
                        id.as_int().and_then(|i| u8::try_from(i).ok()),
                    ) else {
                        continue;
                    };
                    h.m.push((name.to_string(), id));
                }
            }
            Some(_) => return Err(ExtensionError::Malformed("m is not a dictionary")),
        }
        h.p = d
            .get(b"p")
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        h.v = d
            .get(b"v")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(MAX_CLIENT_NAME)]).into_owned());
        h.yourip = d.get(b"yourip").and_then(Value::as_bytes).and_then(ip_from);
        h.ipv4 = match d.get(b"ipv4").and_then(Value::as_bytes).and_then(ip_from) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        h.ipv6 = match d.get(b"ipv6").and_then(Value::as_bytes).and_then(ip_from) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        h.reqq = d
            .get(b"reqq")
            .and_then(Value::as_int)
            .and_then(|r| u32::try_from(r).ok());
        h.metadata_size = d
            .get(b"metadata_size")
            .and_then(Value::as_int)
            .and_then(|s| u64::try_from(s).ok());
        h.upload_only = d
            .get(b"upload_only")
            .and_then(Value::as_int)
            .is_some_and(|u| u != 0);
        Ok(h)
    }
}

/// BEP 11 `ut_pex` flag: prefers encryption.
pub const PEX_FLAG_ENCRYPTION: u8 = 0x01;
/// BEP 11 `ut_pex` flag: seed / upload only.
pub const PEX_FLAG_SEED: u8 = 0x02;
/// BEP 11 `ut_pex` flag: supports uTP.
pub const PEX_FLAG_UTP: u8 = 0x04;
/// BEP 11 `ut_pex` flag: supports the holepunch extension.
pub const PEX_FLAG_HOLEPUNCH: u8 = 0x08;
/// BEP 11 `ut_pex` flag: reachable (an outgoing connection succeeded).
pub const PEX_FLAG_REACHABLE: u8 = 0x10;

/// A BEP 11 peer exchange message (IPv4 and IPv6 mixed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PexMessage {
    /// Peers newly connected.
    pub added: Vec<SocketAddr>,
    /// One flag byte per `added` entry (same order; missing flags are 0).
    pub added_flags: Vec<u8>,
    /// Peers disconnected.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Canonical bencoding. At most [`PEX_MAX_PER_MESSAGE`] added and as many
    /// dropped contacts are written (the rest are left out: send them in a
    /// later message). `added`, `added.f` and `dropped` are always present;
    /// the IPv6 keys only when there are IPv6 contacts.
    pub fn encode(&self) -> Vec<u8> {
        let (mut a4, mut f4, mut a6, mut f6, mut d4, mut d6) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        // A v4-mapped IPv6 address (`::ffff:a.b.c.d`) is IPv4: `added`, not `added6`.
        for (i, a) in self.added.iter().take(PEX_MAX_PER_MESSAGE).enumerate() {
            let a = &crate::proto::compact::canonical(*a);
            let f = self.added_flags.get(i).copied().unwrap_or(0);
            if a.is_ipv4() {
                a4.extend_from_slice(&compact_addr(a));
                f4.push(f);
            } else {
                a6.extend_from_slice(&compact_addr(a));
                f6.push(f);
            }
        }
        for a in self.dropped.iter().take(PEX_MAX_PER_MESSAGE) {
            let a = &crate::proto::compact::canonical(*a);
            if a.is_ipv4() {
                d4.extend_from_slice(&compact_addr(a));
            } else {
                d6.extend_from_slice(&compact_addr(a));
            }
        }
        let mut d = vec![
            (b"added".to_vec(), OwnedValue::Bytes(a4)),
            (b"added.f".to_vec(), OwnedValue::Bytes(f4)),
            (b"dropped".to_vec(), OwnedValue::Bytes(d4)),
        ];
        if !a6.is_empty() {
            d.push((b"added6".to_vec(), OwnedValue::Bytes(a6)));
            d.push((b"added6.f".to_vec(), OwnedValue::Bytes(f6)));
        }
        if !d6.is_empty() {
            d.push((b"dropped6".to_vec(), OwnedValue::Bytes(d6)));
        }
        OwnedValue::Dict(d).to_bytes()
    }

    /// Decode a `ut_pex` payload. Compact strings must be whole multiples of
    /// 6 (IPv4) or 18 (IPv6) bytes and hold at most [`PEX_MAX_DECODE`]
    /// contacts each; port-0 contacts are skipped.
    pub fn decode(payload: &[u8]) -> Result<PexMessage, ExtensionError> {
        let v = bencode::decode_strict(payload)?;
        let d = v
            .as_dict()
            .ok_or(ExtensionError::Malformed("ut_pex is not a dictionary"))?;
        let field = |key: &[u8], stride: usize| -> Result<&[u8], ExtensionError> {
            match d.get(key) {
                None => Ok(&[]),
                Some(Value::Bytes(b)) if b.len() % stride != 0 => Err(ExtensionError::Malformed(
                    "compact contacts of the wrong length",
                )),
                Some(Value::Bytes(b)) if b.len() / stride > PEX_MAX_DECODE => {
                    Err(ExtensionError::TooLarge("too many PEX contacts"))
                }
                Some(Value::Bytes(b)) => Ok(b),
                Some(_) => Err(ExtensionError::Malformed("PEX field is not a string")),
            }
        };
        let flags = |key: &[u8]| d.get(key).and_then(Value::as_bytes).unwrap_or(&[]);
        let mut m = PexMessage::default();
        for (key, fkey, stride) in [
            (&b"added"[..], &b"added.f"[..], 6),
            (b"added6", b"added6.f", 18),
        ] {
            let raw = field(key, stride)?;
            let f = flags(fkey);
            for (i, c) in raw.chunks_exact(stride).enumerate() {
                let parsed = if stride == 6 {
                    parse_compact_v4(c)
                } else {
                    parse_compact_v6(c)
                };
                if let Some(a) = parsed.into_iter().next() {
                    m.added.push(a);
                    m.added_flags.push(f.get(i).copied().unwrap_or(0));
                }
            }
        }
        m.dropped.extend(parse_compact_v4(field(b"dropped", 6)?));
        m.dropped.extend(parse_compact_v6(field(b"dropped6", 18)?));
        Ok(m)
    }
}

/// A BEP 9 `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: ask for a piece.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// `msg_type` 1: a piece, followed by its bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes (at most 16 KiB).
        data: Vec<u8>,
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
}

impl MetadataMessage {
    /// The payload: canonical dictionary, then the piece bytes for `Data`.
    pub fn encode(&self) -> Vec<u8> {
        let (t, piece) = match self {
            MetadataMessage::Request { piece } => (0, piece),
            MetadataMessage::Data { piece, .. } => (1, piece),
            MetadataMessage::Reject { piece } => (2, piece),
        };
        let mut d = vec![
            (b"msg_type".to_vec(), OwnedValue::Int(t)),
            (b"piece".to_vec(), OwnedValue::Int((*piece).into())),
        ];
        if let MetadataMessage::Data { total_size, .. } = self {
            d.push((
                b"total_size".to_vec(),
                OwnedValue::Int((*total_size).min(i64::MAX as u64) as i64),
            ));
        }
        let mut out = OwnedValue::Dict(d).to_bytes();
        if let MetadataMessage::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }

    /// Decode a payload. Unknown `msg_type`, missing `piece`, a `Data`
    /// without `total_size`, trailing bytes after `Request`/`Reject` or more
    /// than 16 KiB of data are refused.
    pub fn decode(payload: &[u8]) -> Result<MetadataMessage, ExtensionError> {
        let (v, used) = bencode::decode_strict_prefix(payload)?;
        let d = v
            .as_dict()
            .ok_or(ExtensionError::Malformed("ut_metadata is not a dictionary"))?;
        let piece = d
            .get(b"piece")
            .and_then(Value::as_int)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(ExtensionError::Malformed("missing or invalid piece"))?;
        let rest = payload.get(used..).unwrap_or(&[]);
        let msg_type = d.get(b"msg_type").and_then(Value::as_int);
        match msg_type {
            Some(0) | Some(2) if !rest.is_empty() => Err(ExtensionError::Malformed(
                "bytes after ut_metadata dictionary",
            )),
            Some(0) => Ok(MetadataMessage::Request { piece }),
            Some(2) => Ok(MetadataMessage::Reject { piece }),
            Some(1) => {
                let total_size = d
                    .get(b"total_size")
                    .and_then(Value::as_int)
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or(ExtensionError::Malformed("data without total_size"))?;
                if rest.len() > METADATA_PIECE_SIZE {
                    return Err(ExtensionError::TooLarge("metadata piece over 16 KiB"));
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest.to_vec(),
                })
            }
            _ => Err(ExtensionError::Malformed("unknown msg_type")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The whole framed message of a `peer_wire.tsv` row, and its payload
    /// (after length, id 20 and the extended id).
    fn row(name: &str) -> (Vec<u8>, u8, Vec<u8>) {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/peer_wire.tsv"
        ));
        let line = tsv.lines().find(|l| l.starts_with(name)).unwrap();
        let msg = unhex(line.split('\t').nth(1).unwrap());
        assert_eq!(msg[4], EXTENDED_MESSAGE_ID);
        assert_eq!(
            u32::from_be_bytes(msg[..4].try_into().unwrap()) as usize,
            msg.len() - 4
        );
        let payload = msg[6..].to_vec();
        (msg.clone(), msg[5], payload)
    }

    #[test]
    fn extended_handshake_vector() {
        let (msg, id, payload) = row("extended handshake");
        assert_eq!(id, HANDSHAKE_EXT_ID);
        let h = ExtHandshake::decode(&payload).unwrap();
        assert_eq!(h.id_of("ut_metadata"), Some(1));
        assert_eq!(h.id_of("ut_pex"), Some(2));
        assert_eq!(h.metadata_size, Some(31235));
        assert_eq!(h.p, Some(6881));
        assert_eq!(h.v.as_deref(), Some("peer 0.1.0"));
        assert_eq!(extended_message(0, &h.encode()), msg);
        let full = ExtHandshake {
            yourip: Some("203.0.113.7".parse().unwrap()),
            ipv6: Some("2001:db8::1".parse().unwrap()),
            reqq: Some(250),
            upload_only: true,
            ..h
        };
        assert_eq!(ExtHandshake::decode(&full.encode()).unwrap(), full);
        assert!(ExtHandshake::decode(b"d1:mi1ee").is_err());
        assert!(ExtHandshake::decode(b"d1:pi1e1:md1:xi1eee").is_err()); // unsorted
        assert!(ExtHandshake::decode(b"le").is_err());
        let h = ExtHandshake::decode(b"d1:md1:xi0e1:yi300eee").unwrap();
        assert_eq!(h.id_of("x"), None);
        assert_eq!(h.m.len(), 1);
    }

    #[test]
    fn metadata_vectors() {
        for (name, want) in [
            ("ut_metadata request", MetadataMessage::Request { piece: 0 }),
            (
                "ut_metadata data",
                MetadataMessage::Data {
                    piece: 0,
                    total_size: 5,
                    data: b"xxxxx".to_vec(),
                },
            ),
            ("ut_metadata reject", MetadataMessage::Reject { piece: 0 }),
        ] {
            let line_name = include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/vectors/peer_wire.tsv"
            ))
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .split('\t')
            .next()
            .unwrap()
            .to_string();
            let (msg, id, payload) = row(&line_name);
            assert_eq!(id, 3);
            assert_eq!(MetadataMessage::decode(&payload).unwrap(), want);
            assert_eq!(extended_message(3, &want.encode()), msg);
        }
        assert!(MetadataMessage::decode(b"d8:msg_typei5e5:piecei0ee").is_err());
        assert!(MetadataMessage::decode(b"d8:msg_typei0e5:piecei0eexx").is_err());
        assert!(MetadataMessage::decode(b"d8:msg_typei1e5:piecei0ee").is_err());
        let mut big = b"d8:msg_typei1e5:piecei0e10:total_sizei5ee".to_vec();
        big.extend(vec![0u8; METADATA_PIECE_SIZE + 1]);
        assert!(MetadataMessage::decode(&big).is_err());
    }

    #[test]
    fn pex_vector_and_limits() {
        let line = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/peer_wire.tsv"
        ))
        .lines()
        .find(|l| l.contains("ut_pex added"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
        let (msg, id, payload) = row(&line);
        let m = PexMessage::decode(&payload).unwrap();
        assert_eq!(m.added, vec!["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(m.added_flags, vec![PEX_FLAG_REACHABLE]);
        assert!(m.dropped.is_empty());
        assert_eq!(extended_message(id, &m.encode()), msg);

        let v6: SocketAddr = "[2001:db8::1]:51413".parse().unwrap();
        let m = PexMessage {
            added: (0..60u16)
                .map(|i| SocketAddr::from(([10, 0, 0, 1], 1000 + i)))
                .chain([v6])
                .collect(),
            added_flags: vec![1; 61],
            dropped: vec![v6, "10.1.1.1:1".parse().unwrap()],
        };
        let back = PexMessage::decode(&m.encode()).unwrap();
        assert_eq!(back.added.len(), PEX_MAX_PER_MESSAGE);
        assert_eq!(back.dropped.len(), 2);
        let m = PexMessage {
            added: vec![v6],
            added_flags: vec![PEX_FLAG_SEED],
            dropped: vec![],
        };
        assert_eq!(PexMessage::decode(&m.encode()).unwrap(), m);
        assert!(PexMessage::decode(b"d5:added5:abcdee").is_err());
        let mut huge = format!("d5:added{}:", 6 * (PEX_MAX_DECODE + 1)).into_bytes();
        huge.extend(vec![1u8; 6 * (PEX_MAX_DECODE + 1)]);
        huge.push(b'e');
        assert!(matches!(
            PexMessage::decode(&huge),
            Err(ExtensionError::TooLarge(_))
        ));
    }

    #[test]
    fn pex_added6_and_dropped6() {
        let a: Vec<SocketAddr> = [
            "10.0.0.1:6881",
            "[2001:db8::1]:6882",
            "[::ffff:10.0.0.2]:6883",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let m = PexMessage {
            added: a.clone(),
            added_flags: vec![1, 2, 3],
            dropped: vec!["[2001:db8::9]:7000".parse().unwrap()],
        };
        let bytes = m.encode();
        let v = bencode::decode_strict(&bytes).unwrap();
        let get = |k: &[u8]| v.get(k).and_then(Value::as_bytes).unwrap().to_vec();
        // The mapped address went to `added`, as IPv4; 18 bytes per IPv6 contact.
        assert_eq!(get(b"added").len(), 12);
        assert_eq!(get(b"added.f"), vec![1, 3]);
        assert_eq!(get(b"added6").len(), 18);
        assert_eq!(get(b"added6.f"), vec![2]);
        assert_eq!(get(b"dropped").len(), 0);
        assert_eq!(get(b"dropped6").len(), 18);
        let back = PexMessage::decode(&bytes).unwrap();
        assert_eq!(
            back.added,
            vec![a[0], "10.0.0.2:6883".parse().unwrap(), a[1]]
        );
        assert_eq!(back.added_flags, vec![1, 3, 2]);
        assert_eq!(back.dropped, m.dropped);
        // A hand-written added6: one contact, [::1]:6881, no flags.
        let mut p = b"d6:added618:".to_vec();
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&6881u16.to_be_bytes());
        p.push(b'e');
        let m = PexMessage::decode(&p).unwrap();
        assert_eq!(m.added, vec!["[::1]:6881".parse().unwrap()]);
        assert_eq!(m.added_flags, vec![0]);
        // 17 bytes: not a whole IPv6 contact.
        let mut short = b"d6:added617:".to_vec();
        short.extend_from_slice(&[7u8; 17]);
        short.push(b'e');
        assert!(PexMessage::decode(&short).is_err());
    }

    #[test]
    fn never_panics_on_truncations() {
        let (_, _, payload) = row("extended handshake");
        for i in 0..payload.len() {
            let _ = ExtHandshake::decode(&payload[..i]);
            let _ = PexMessage::decode(&payload[..i]);
            let _ = MetadataMessage::decode(&payload[..i]);
        }
    }
}
