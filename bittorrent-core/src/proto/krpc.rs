//! KRPC messages (BEP 5): bencoded dictionaries over UDP.
//!
//! Decoding is strict (canonical bencode, [`decode_strict`]) and bounded:
//! transaction ids of at most [`MAX_TID_LEN`] bytes, at most [`MAX_NODES`]
//! compact nodes, at most [`MAX_VALUES`] compact peers, tokens of at most
//! [`MAX_TOKEN_LEN`] bytes and packets of at most [`MAX_PACKET_LEN`] bytes.
//! Nothing here panics on any input. Encoding is canonical (keys sorted).
//!
//! BEP 32 (the IPv6 DHT): `nodes6` (38-byte compact IPv6 nodes, at most
//! [`MAX_NODES`]), `want` (`n4`, `n6`; other strings ignored) in
//! `find_node` and `get_peers`, and `values` lists that may mix 6-byte
//! IPv4 and 18-byte IPv6 peers.

pub use super::node_id::{NodeId, ID_BITS};
use crate::proto::bencode::{decode_strict, BencodeError, Dict, OwnedValue, Value};
use crate::proto::metainfo::InfoHash;
use std::fmt;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

/// Longest transaction id accepted.
pub const MAX_TID_LEN: usize = 16;
/// Most compact peers accepted in a `values` list.
pub const MAX_VALUES: usize = 100;
/// Most compact nodes accepted in a `nodes` string.
pub const MAX_NODES: usize = 16;
/// Longest `announce_peer` token accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// Longest error message accepted.
pub const MAX_ERROR_MSG_LEN: usize = 256;
/// Largest datagram decoded.
pub const MAX_PACKET_LEN: usize = 2048;
/// Length of one compact node info (20-byte id, IPv4, port).
pub const COMPACT_NODE_LEN: usize = 26;
/// Length of one compact peer info (IPv4, port).
pub const COMPACT_PEER_LEN: usize = 6;
/// Length of one compact IPv6 node info (BEP 32: 20-byte id, IPv6, port).
pub const COMPACT_NODE6_LEN: usize = 38;
/// Length of one compact IPv6 peer info (IPv6, port).
pub const COMPACT_PEER6_LEN: usize = 18;
/// Most strings read from a `want` list (the rest are ignored).
const MAX_WANT: usize = 8;

/// KRPC error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error code 203: protocol error (malformed packet, bad token...).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

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

/// BEP 32 `want`: which node lists a `find_node` or `get_peers` asks for.
/// Both false: no `want` key (the answer carries the querier's family).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// `n4`: a `nodes` key (IPv4).
    pub n4: bool,
    /// `n6`: a `nodes6` key (IPv6).
    pub n6: bool,
}

impl Want {
    /// Whether a `want` key was present with something we know.
    pub fn is_set(&self) -> bool {
        self.n4 || self.n6
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

/// A KRPC query (`y` = `q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping {
        /// The querying node's id.
        id: NodeId,
    },
    /// `find_node`.
    FindNode {
        /// The querying node's id.
        id: NodeId,
        /// The id whose closest nodes are wanted.
        target: NodeId,
        /// BEP 32 `want`.
        want: Want,
    },
    /// `get_peers`.
    GetPeers {
        /// The querying node's id.
        id: NodeId,
        /// The torrent whose peers are wanted.
        info_hash: InfoHash,
        /// BEP 32 `want`.
        want: Want,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The querying node's id.
        id: NodeId,
        /// The torrent being announced.
        info_hash: InfoHash,
        /// The peer's TCP port (ignored when `implied_port` is set).
        port: u16,
        /// The token received in an earlier `get_peers` response.
        token: Vec<u8>,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
    },
}

impl Query {
    /// The querying node's id.
    pub fn id(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. } => *id,
        }
    }

    /// The method name (`q` value).
    pub fn method(&self) -> &'static str {
        match self {
            Query::Ping { .. } => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

/// A KRPC response (`y` = `r`).
///
/// Responses do not name the method they answer (a `ping` response and an
/// `announce_peer` response are byte-identical), so this is one struct
/// whose optional parts are empty when absent; the caller knows which
/// query it sent from the transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The responding node's id.
    pub id: NodeId,
    /// Compact nodes (`nodes`), at most [`MAX_NODES`]; empty when absent.
    pub nodes: Vec<CompactNode>,
    /// Compact IPv6 nodes (`nodes6`, BEP 32), at most [`MAX_NODES`];
    /// empty when absent.
    pub nodes6: Vec<CompactNode6>,
    /// Compact peers (`values`), at most [`MAX_VALUES`]; empty when
    /// absent. IPv4 (6 bytes) or IPv6 (18 bytes, BEP 32).
    pub values: Vec<SocketAddr>,
    /// The `get_peers` token, if present.
    pub token: Option<Vec<u8>>,
}

impl Response {
    /// A response carrying only the responder's id (ping, announce_peer).
    pub fn id_only(id: NodeId) -> Response {
        Response {
            id,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
        }
    }
}

/// A KRPC error (`y` = `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The error code (201..=204 in BEP 5).
    pub code: i64,
    /// A human-readable message.
    pub msg: String,
}

/// The body of a KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query.
    Query(Query),
    /// A response.
    Response(Response),
    /// An error.
    Error(Error),
}

/// A KRPC message: transaction id and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id, echoed by the responder; at most [`MAX_TID_LEN`] bytes.
    pub tid: Vec<u8>,
    /// Query, response or error.
    pub body: Body,
}

/// Why a datagram is not a valid KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Longer than [`MAX_PACKET_LEN`].
    TooLong,
    /// Not strict, canonical bencode.
    Bencode(BencodeError),
    /// The top level (or `a`/`r`) is not a dictionary.
    NotADict,
    /// A required key is missing.
    Missing(&'static str),
    /// A key has the wrong type, length or range.
    Invalid(&'static str),
    /// More items than the limits allow in the named key.
    TooMany(&'static str),
    /// `y` is not `q`, `r` or `e`.
    UnknownType,
    /// A query with a method we do not know.
    UnknownMethod,
}

/// A decoding failure, with what is needed to answer it with a KRPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// The transaction id, if one could be read.
    pub tid: Option<Vec<u8>>,
    /// Whether the message said it was a query (`y` = `q`).
    pub is_query: bool,
}

impl DecodeError {
    /// The KRPC error to send back, if any: only queries with a readable
    /// transaction id are answered (203, or 204 for an unknown method).
    pub fn reply(&self) -> Option<Message> {
        if !self.is_query {
            return None;
        }
        let tid = self.tid.clone()?;
        let (code, msg) = match self.kind {
            DecodeErrorKind::UnknownMethod => (ERROR_METHOD_UNKNOWN, "Method Unknown"),
            _ => (ERROR_PROTOCOL, "Protocol Error"),
        };
        Some(Message {
            tid,
            body: Body::Error(Error {
                code,
                msg: msg.to_string(),
            }),
        })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DecodeErrorKind::TooLong => write!(f, "KRPC packet too long"),
            DecodeErrorKind::Bencode(e) => write!(f, "KRPC bencode error: {e}"),
            DecodeErrorKind::NotADict => write!(f, "KRPC message is not a dictionary"),
            DecodeErrorKind::Missing(k) => write!(f, "KRPC key {k:?} missing"),
            DecodeErrorKind::Invalid(k) => write!(f, "KRPC key {k:?} invalid"),
            DecodeErrorKind::TooMany(k) => write!(f, "KRPC key {k:?} has too many items"),
            DecodeErrorKind::UnknownType => write!(f, "KRPC message type unknown"),
            DecodeErrorKind::UnknownMethod => write!(f, "KRPC method unknown"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Append `want` (keys stay sorted: the caller pushes it last).
fn push_want(a: &mut Vec<(Vec<u8>, OwnedValue)>, want: &Want) {
    let mut l = Vec::new();
    if want.n4 {
        l.push(OwnedValue::bytes("n4"));
    }
    if want.n6 {
        l.push(OwnedValue::bytes("n6"));
    }
    if !l.is_empty() {
        a.push((key("want"), OwnedValue::List(l)));
    }
}

/// Read `want`: a list of strings; unknown strings, and a `want` that is
/// not a list, are ignored (BEP 32: "must be silently ignored"). At most
/// [`MAX_WANT`] items are looked at.
fn read_want(a: &Dict<'_>) -> Want {
    let mut w = Want::default();
    if let Some(l) = a.get(b"want").and_then(Value::as_list) {
        for item in l.iter().take(MAX_WANT) {
            match item.as_bytes() {
                Some(b"n4") => w.n4 = true,
                Some(b"n6") => w.n6 = true,
                _ => {}
            }
        }
    }
    w
}

fn id_value(id: &NodeId) -> OwnedValue {
    OwnedValue::bytes(id.0)
}

fn key(k: &str) -> Vec<u8> {
    k.as_bytes().to_vec()
}

impl Message {
    /// Canonical bencoding of this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut top: Vec<(Vec<u8>, OwnedValue)> = vec![(key("t"), OwnedValue::bytes(&self.tid))];
        match &self.body {
            Body::Query(q) => {
                top.push((key("y"), OwnedValue::bytes("q")));
                top.push((key("q"), OwnedValue::bytes(q.method())));
                let mut a = vec![(key("id"), id_value(&q.id()))];
                match q {
                    Query::Ping { .. } => {}
                    Query::FindNode { target, want, .. } => {
                        a.push((key("target"), id_value(target)));
                        push_want(&mut a, want);
                    }
                    Query::GetPeers {
                        info_hash, want, ..
                    } => {
                        a.push((key("info_hash"), OwnedValue::bytes(info_hash.0)));
                        push_want(&mut a, want);
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        token,
                        implied_port,
                        ..
                    } => {
                        a.push((key("info_hash"), OwnedValue::bytes(info_hash.0)));
                        a.push((key("port"), OwnedValue::Int(i64::from(*port))));
                        a.push((key("token"), OwnedValue::bytes(token)));
                        if *implied_port {
                            a.push((key("implied_port"), OwnedValue::Int(1)));
                        }
                    }
                }
                top.push((key("a"), OwnedValue::Dict(a)));
            }
            Body::Response(r) => {
                top.push((key("y"), OwnedValue::bytes("r")));
                let mut d = vec![(key("id"), id_value(&r.id))];
                if !r.nodes.is_empty() {
                    let mut nodes = Vec::with_capacity(r.nodes.len() * COMPACT_NODE_LEN);
                    for n in &r.nodes {
                        nodes.extend_from_slice(&n.to_bytes());
                    }
                    d.push((key("nodes"), OwnedValue::Bytes(nodes)));
                }
                if !r.nodes6.is_empty() {
                    let mut nodes = Vec::with_capacity(r.nodes6.len() * COMPACT_NODE6_LEN);
                    for n in &r.nodes6 {
                        nodes.extend_from_slice(&n.to_bytes());
                    }
                    d.push((key("nodes6"), OwnedValue::Bytes(nodes)));
                }
                if !r.values.is_empty() {
                    let values = r
                        .values
                        .iter()
                        .map(|p| OwnedValue::Bytes(crate::proto::compact::encode(p)))
                        .collect();
                    d.push((key("values"), OwnedValue::List(values)));
                }
                if let Some(t) = &r.token {
                    d.push((key("token"), OwnedValue::bytes(t)));
                }
                top.push((key("r"), OwnedValue::Dict(d)));
            }
            Body::Error(e) => {
                top.push((key("y"), OwnedValue::bytes("e")));
                top.push((
                    key("e"),
                    OwnedValue::List(vec![OwnedValue::Int(e.code), OwnedValue::bytes(&e.msg)]),
                ));
            }
        }
        OwnedValue::Dict(top).to_bytes()
    }

    /// Decode one datagram. Never panics; see the module limits.
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let mut err = DecodeError {
            kind: DecodeErrorKind::TooLong,
            tid: None,
            is_query: false,
        };
        if buf.len() > MAX_PACKET_LEN {
            return Err(err);
        }
        let v = match decode_strict(buf) {
            Ok(v) => v,
            Err(e) => {
                err.kind = DecodeErrorKind::Bencode(e);
                return Err(err);
            }
        };
        let Some(top) = v.as_dict() else {
            err.kind = DecodeErrorKind::NotADict;
            return Err(err);
        };
        // Read what is needed to answer with an error first.
        if let Some(t) = top.get(b"t").and_then(Value::as_bytes) {
            if t.len() <= MAX_TID_LEN {
                err.tid = Some(t.to_vec());
            }
        }
        let y = top.get(b"y").and_then(Value::as_bytes);
        err.is_query = y == Some(b"q");
        match decode_body(top, y) {
            Ok(body) => match err.tid {
                Some(tid) => Ok(Message { tid, body }),
                None => {
                    err.kind = if top.get(b"t").is_none() {
                        DecodeErrorKind::Missing("t")
                    } else {
                        DecodeErrorKind::Invalid("t")
                    };
                    Err(err)
                }
            },
            Err(kind) => {
                err.kind = kind;
                Err(err)
            }
        }
    }
}

fn decode_body(top: &Dict<'_>, y: Option<&[u8]>) -> Result<Body, DecodeErrorKind> {
    match y {
        Some(b"q") => decode_query(top).map(Body::Query),
        Some(b"r") => decode_response(top).map(Body::Response),
        Some(b"e") => decode_error(top).map(Body::Error),
        Some(_) => Err(DecodeErrorKind::UnknownType),
        None => Err(DecodeErrorKind::Missing("y")),
    }
}

fn get_dict<'d, 'a>(d: &'d Dict<'a>, k: &'static str) -> Result<&'d Dict<'a>, DecodeErrorKind> {
    d.get(k.as_bytes())
        .ok_or(DecodeErrorKind::Missing(k))?
        .as_dict()
        .ok_or(DecodeErrorKind::NotADict)
}

fn get_bytes<'a>(d: &Dict<'a>, k: &'static str) -> Result<&'a [u8], DecodeErrorKind> {
    d.get(k.as_bytes())
        .ok_or(DecodeErrorKind::Missing(k))?
        .as_bytes()
        .ok_or(DecodeErrorKind::Invalid(k))
}

fn get_20(d: &Dict<'_>, k: &'static str) -> Result<[u8; 20], DecodeErrorKind> {
    let b = get_bytes(d, k)?;
    <[u8; 20]>::try_from(b).map_err(|_| DecodeErrorKind::Invalid(k))
}

fn decode_query(top: &Dict<'_>) -> Result<Query, DecodeErrorKind> {
    let q = get_bytes(top, "q")?;
    let a = get_dict(top, "a")?;
    let id = NodeId(get_20(a, "id")?);
    match q {
        b"ping" => Ok(Query::Ping { id }),
        b"find_node" => Ok(Query::FindNode {
            id,
            target: NodeId(get_20(a, "target")?),
            want: read_want(a),
        }),
        b"get_peers" => Ok(Query::GetPeers {
            id,
            info_hash: InfoHash(get_20(a, "info_hash")?),
            want: read_want(a),
        }),
        b"announce_peer" => {
            let info_hash = InfoHash(get_20(a, "info_hash")?);
            let port = a
                .get(b"port")
                .ok_or(DecodeErrorKind::Missing("port"))?
                .as_int()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(DecodeErrorKind::Invalid("port"))?;
            let token = get_bytes(a, "token")?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(DecodeErrorKind::Invalid("token"));
            }
            let implied_port = match a.get(b"implied_port") {
                None => false,
                Some(v) => match v.as_int() {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return Err(DecodeErrorKind::Invalid("implied_port")),
                },
            };
            Ok(Query::AnnouncePeer {
                id,
                info_hash,
                port,
                token: token.to_vec(),
                implied_port,
            })
        }
        _ => Err(DecodeErrorKind::UnknownMethod),
    }
}

fn decode_response(top: &Dict<'_>) -> Result<Response, DecodeErrorKind> {
    let r = get_dict(top, "r")?;
    let id = NodeId(get_20(r, "id")?);
    let mut nodes = Vec::new();
    if let Some(v) = r.get(b"nodes") {
        let b = v.as_bytes().ok_or(DecodeErrorKind::Invalid("nodes"))?;
        if b.len() % COMPACT_NODE_LEN != 0 {
            return Err(DecodeErrorKind::Invalid("nodes"));
        }
        if b.len() / COMPACT_NODE_LEN > MAX_NODES {
            return Err(DecodeErrorKind::TooMany("nodes"));
        }
        for chunk in b.chunks_exact(COMPACT_NODE_LEN) {
            nodes.push(CompactNode::from_bytes(chunk).ok_or(DecodeErrorKind::Invalid("nodes"))?);
        }
    }
    let mut nodes6 = Vec::new();
    if let Some(v) = r.get(b"nodes6") {
        let b = v.as_bytes().ok_or(DecodeErrorKind::Invalid("nodes6"))?;
        if b.len() % COMPACT_NODE6_LEN != 0 {
            return Err(DecodeErrorKind::Invalid("nodes6"));
        }
        if b.len() / COMPACT_NODE6_LEN > MAX_NODES {
            return Err(DecodeErrorKind::TooMany("nodes6"));
        }
        for chunk in b.chunks_exact(COMPACT_NODE6_LEN) {
            nodes6.push(CompactNode6::from_bytes(chunk).ok_or(DecodeErrorKind::Invalid("nodes6"))?);
        }
    }
    let mut values = Vec::new();
    if let Some(v) = r.get(b"values") {
        let l = v.as_list().ok_or(DecodeErrorKind::Invalid("values"))?;
        if l.len() > MAX_VALUES {
            return Err(DecodeErrorKind::TooMany("values"));
        }
        for item in l {
            let b = item.as_bytes().ok_or(DecodeErrorKind::Invalid("values"))?;
            match b.len() {
                COMPACT_PEER_LEN => values.push(SocketAddr::V4(
                    peer_from_bytes(b).ok_or(DecodeErrorKind::Invalid("values"))?,
                )),
                // BEP 32: a list may mix IPv4 and IPv6 peers.
                COMPACT_PEER6_LEN => values.push(SocketAddr::V6(
                    crate::proto::compact::peer_v6(b).ok_or(DecodeErrorKind::Invalid("values"))?,
                )),
                _ => return Err(DecodeErrorKind::Invalid("values")),
            }
        }
    }
    let token = match r.get(b"token") {
        None => None,
        Some(v) => {
            let b = v.as_bytes().ok_or(DecodeErrorKind::Invalid("token"))?;
            if b.len() > MAX_TOKEN_LEN {
                return Err(DecodeErrorKind::Invalid("token"));
            }
            Some(b.to_vec())
        }
    };
    Ok(Response {
        id,
        nodes,
        nodes6,
        values,
        token,
    })
}

fn decode_error(top: &Dict<'_>) -> Result<Error, DecodeErrorKind> {
    let l = top
        .get(b"e")
        .ok_or(DecodeErrorKind::Missing("e"))?
        .as_list()
        .ok_or(DecodeErrorKind::Invalid("e"))?;
    let [code, msg] = l else {
        return Err(DecodeErrorKind::Invalid("e"));
    };
    let code = code.as_int().ok_or(DecodeErrorKind::Invalid("e"))?;
    let msg = msg.as_bytes().ok_or(DecodeErrorKind::Invalid("e"))?;
    if msg.len() > MAX_ERROR_MSG_LEN {
        return Err(DecodeErrorKind::Invalid("e"));
    }
    Ok(Error {
        code,
        msg: String::from_utf8_lossy(msg).into_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn id(s: &[u8]) -> NodeId {
        NodeId(s.try_into().unwrap())
    }

    fn ih(s: &[u8]) -> InfoHash {
        InfoHash(s.try_into().unwrap())
    }

    fn msg(body: Body) -> Message {
        Message {
            tid: b"aa".to_vec(),
            body,
        }
    }

    /// The expected decoding of each bencoded row, by its `message` column;
    /// `None` = must be rejected.
    fn expected(name: &str) -> Option<Message> {
        let a = id(b"abcdefghij0123456789");
        let m = id(b"mnopqrstuvwxyz123456");
        Some(match name {
            "error" => msg(Body::Error(Error {
                code: 201,
                msg: "A Generic Error Ocurred".into(),
            })),
            "ping query" => msg(Body::Query(Query::Ping { id: a })),
            "ping response" | "announce_peer response" => msg(Body::Response(Response::id_only(m))),
            "find_node query" => msg(Body::Query(Query::FindNode {
                id: a,
                target: m,
                want: Want::default(),
            })),
            "get_peers query" => msg(Body::Query(Query::GetPeers {
                id: a,
                info_hash: ih(b"mnopqrstuvwxyz123456"),
                want: Want::default(),
            })),
            "get_peers response with values" => msg(Body::Response(Response {
                id: a,
                nodes: vec![],
                nodes6: vec![],
                values: vec![
                    SocketAddr::V4(peer_from_bytes(b"axje.u").unwrap()),
                    SocketAddr::V4(peer_from_bytes(b"idhtnm").unwrap()),
                ],
                token: Some(b"aoeusnth".to_vec()),
            })),
            "announce_peer query" => msg(Body::Query(Query::AnnouncePeer {
                id: a,
                info_hash: ih(b"mnopqrstuvwxyz123456"),
                port: 6881,
                token: b"aoeusnth".to_vec(),
                implied_port: true,
            })),
            // The spec's `nodes` placeholder ("def456...", 9 bytes) is not a
            // whole number of 26-byte compact nodes: rejected.
            "find_node response" | "get_peers response with nodes" => return None,
            other => panic!("unexpected row {other}"),
        })
    }

    /// Every row of fixtures/vectors/krpc_bep5.tsv.
    #[test]
    fn vectors() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/krpc_bep5.tsv"
        ));
        let mut rows = 0;
        for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (name, data) = (cols[0], cols[1]);
            rows += 1;
            match name {
                "compact node info (authored)" => {
                    let b = unhex(data);
                    let n = CompactNode::from_bytes(&b).unwrap();
                    assert_eq!(n.id.0.to_vec(), (0u8..20).collect::<Vec<_>>());
                    assert_eq!(n.addr, "127.0.0.1:6881".parse().unwrap());
                    assert_eq!(n.to_bytes().to_vec(), b);
                }
                "compact peer info (authored)" => {
                    let b = unhex(data);
                    let p = peer_from_bytes(&b).unwrap();
                    assert_eq!(p, "10.0.0.2:51413".parse().unwrap());
                    assert_eq!(peer_to_bytes(&p).to_vec(), b);
                }
                _ => {
                    let got = Message::decode(data.as_bytes());
                    match expected(name) {
                        Some(want) => {
                            let got = got.unwrap();
                            assert_eq!(got, want, "{name}");
                            assert_eq!(got.encode(), data.as_bytes(), "{name} re-encoding");
                        }
                        None => {
                            let e = got.unwrap_err();
                            assert_eq!(e.kind, DecodeErrorKind::Invalid("nodes"), "{name}");
                            assert!(!e.is_query && e.reply().is_none());
                        }
                    }
                }
            }
        }
        assert_eq!(rows, 12);
    }

    #[test]
    fn nodes_roundtrip_and_limits() {
        let nodes: Vec<CompactNode> = (0..MAX_NODES as u8)
            .map(|i| CompactNode {
                id: NodeId([i; 20]),
                addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 1000 + u16::from(i)),
            })
            .collect();
        let m = msg(Body::Response(Response {
            id: NodeId([9; 20]),
            nodes: nodes.clone(),
            nodes6: vec![],
            values: vec![],
            token: Some(b"tok".to_vec()),
        }));
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        // One node too many.
        let mut raw = Vec::new();
        for n in nodes.iter().chain(nodes.first()) {
            raw.extend_from_slice(&n.to_bytes());
        }
        let too_many = OwnedValue::Dict(vec![
            (key("t"), OwnedValue::bytes("aa")),
            (key("y"), OwnedValue::bytes("r")),
            (
                key("r"),
                OwnedValue::Dict(vec![
                    (key("id"), OwnedValue::bytes([1; 20])),
                    (key("nodes"), OwnedValue::Bytes(raw)),
                ]),
            ),
        ])
        .to_bytes();
        assert_eq!(
            Message::decode(&too_many).unwrap_err().kind,
            DecodeErrorKind::TooMany("nodes")
        );
    }

    #[test]
    fn values_limit() {
        let values: Vec<SocketAddr> = (0..=MAX_VALUES as u16)
            .map(|i| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 2), i + 1)))
            .collect();
        let m = msg(Body::Response(Response {
            id: NodeId([9; 20]),
            nodes: vec![],
            nodes6: vec![],
            values: values[..MAX_VALUES].to_vec(),
            token: None,
        }));
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        let m = msg(Body::Response(Response {
            id: NodeId([9; 20]),
            nodes: vec![],
            nodes6: vec![],
            values,
            token: None,
        }));
        assert_eq!(
            Message::decode(&m.encode()).unwrap_err().kind,
            DecodeErrorKind::TooMany("values")
        );
    }

    /// BEP 32 (authored: the corpus has no IPv6 DHT vectors): `want`,
    /// `nodes6` and hybrid `values`, byte for byte.
    #[test]
    fn bep32_want_nodes6_and_hybrid_values() {
        let q = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe";
        let m = Message::decode(q).unwrap();
        assert_eq!(
            m.body,
            Body::Query(Query::FindNode {
                id: id(b"abcdefghij0123456789"),
                target: id(b"mnopqrstuvwxyz123456"),
                want: Want { n4: true, n6: true },
            })
        );
        assert_eq!(m.encode(), q.to_vec());
        // Unknown strings and a `want` that is not a list are ignored.
        let odd = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:wantl2:n52:n6i3eee1:q9:get_peers1:t2:aa1:y1:qe";
        let Body::Query(Query::GetPeers { want, .. }) = Message::decode(odd).unwrap().body else {
            panic!()
        };
        assert_eq!(
            want,
            Want {
                n4: false,
                n6: true
            }
        );
        let not_list = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:wanti1ee1:q9:get_peers1:t2:aa1:y1:qe";
        let Body::Query(Query::GetPeers { want, .. }) = Message::decode(not_list).unwrap().body
        else {
            panic!()
        };
        assert!(!want.is_set());
        // A response with nodes6 and a hybrid values list.
        let n6 = CompactNode6 {
            id: NodeId([7; 20]),
            addr: "[2001:db8::1]:6881".parse().unwrap(),
        };
        let mut raw = vec![7u8; 20];
        raw.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        raw.extend_from_slice(&[0x1a, 0xe1]);
        assert_eq!(n6.to_bytes().to_vec(), raw);
        assert_eq!(CompactNode6::from_bytes(&raw), Some(n6));
        let r = msg(Body::Response(Response {
            id: NodeId([9; 20]),
            nodes: vec![],
            nodes6: vec![n6],
            values: vec![
                "10.0.0.2:51413".parse().unwrap(),
                "[2001:db8::2]:51413".parse().unwrap(),
            ],
            token: Some(b"tok".to_vec()),
        }));
        let bytes = r.encode();
        let mut want = b"d1:rd2:id20:".to_vec();
        want.extend_from_slice(&[9; 20]);
        want.extend_from_slice(b"6:nodes638:");
        want.extend_from_slice(&raw);
        want.extend_from_slice(b"5:token3:tok6:valuesl6:");
        want.extend_from_slice(&[10, 0, 0, 2, 0xc8, 0xd5]);
        want.extend_from_slice(b"18:");
        want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&[0xc8, 0xd5]);
        want.extend_from_slice(b"ee1:t2:aa1:y1:re");
        assert_eq!(bytes, want);
        assert_eq!(Message::decode(&bytes).unwrap(), r);
    }

    /// `nodes6` of a wrong length or too many nodes: rejected, bounded.
    #[test]
    fn bad_nodes6_rejected() {
        let resp = |nodes6: Vec<u8>| {
            OwnedValue::Dict(vec![
                (key("t"), OwnedValue::bytes("aa")),
                (key("y"), OwnedValue::bytes("r")),
                (
                    key("r"),
                    OwnedValue::Dict(vec![
                        (key("id"), OwnedValue::bytes([1; 20])),
                        (key("nodes6"), OwnedValue::Bytes(nodes6)),
                    ]),
                ),
            ])
            .to_bytes()
        };
        for len in [26, 37, 39, 38 * 2 + 1] {
            assert_eq!(
                Message::decode(&resp(vec![0; len])).unwrap_err().kind,
                DecodeErrorKind::Invalid("nodes6"),
                "{len}"
            );
        }
        assert_eq!(
            Message::decode(&resp(vec![0; 38 * (MAX_NODES + 1)]))
                .unwrap_err()
                .kind,
            DecodeErrorKind::TooMany("nodes6")
        );
        assert!(Message::decode(&resp(vec![0; 38 * MAX_NODES])).is_ok());
        // A value that is neither 6 nor 18 bytes.
        let bad_value = b"d1:rd2:id20:abcdefghij01234567896:valuesl7:abcdefgee1:t2:aa1:y1:re";
        assert_eq!(
            Message::decode(bad_value).unwrap_err().kind,
            DecodeErrorKind::Invalid("values")
        );
    }

    #[test]
    fn rejects_and_error_replies() {
        // Too-long tid: rejected, and not answerable.
        let long = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe";
        let e = Message::decode(long).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Invalid("t"));
        assert!(e.reply().is_none());
        // Unknown method: 204.
        let unk = b"d1:ad2:id20:abcdefghij0123456789e1:q4:pong1:t2:aa1:y1:qe";
        let e = Message::decode(unk).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnknownMethod);
        let r = e.reply().unwrap();
        assert!(matches!(r.body, Body::Error(Error { code: 204, .. })));
        // Short id: 203.
        let short = b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe";
        let e = Message::decode(short).unwrap_err();
        assert!(matches!(
            e.reply().unwrap().body,
            Body::Error(Error { code: 203, .. })
        ));
        // Non-canonical bencode (unsorted keys) is rejected.
        let unsorted = b"d1:t2:aa1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe";
        assert!(matches!(
            Message::decode(unsorted).unwrap_err().kind,
            DecodeErrorKind::Bencode(_)
        ));
        // Port out of range.
        let port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
        assert_eq!(
            Message::decode(port).unwrap_err().kind,
            DecodeErrorKind::Invalid("port")
        );
        // Oversized packet.
        let big = vec![b'x'; MAX_PACKET_LEN + 1];
        assert_eq!(
            Message::decode(&big).unwrap_err().kind,
            DecodeErrorKind::TooLong
        );
    }

    #[test]
    fn never_panics_on_mutations() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/krpc_bep5.tsv"
        ));
        let mut seed = 0x1234_5678_9abc_def0u64;
        for line in tsv.lines().skip(1) {
            let data = line.split('\t').nth(1).unwrap_or("").as_bytes();
            for i in 0..data.len() {
                let _ = Message::decode(&data[..i]);
                for _ in 0..4 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let mut d = data.to_vec();
                    d[i] = seed as u8;
                    let _ = Message::decode(&d);
                }
            }
        }
    }
}
