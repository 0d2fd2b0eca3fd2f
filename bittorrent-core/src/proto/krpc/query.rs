//! KRPC queries (`y` = `q`): `ping`, `find_node`, `get_peers`,
//! `announce_peer`, and BEP 32 `want`.

use super::dict::{get_20, get_bytes, get_dict, key};
use super::error::DecodeErrorKind;
use super::{NodeId, MAX_TOKEN_LEN};
use crate::proto::bencode::{Dict, OwnedValue, Value};
use crate::proto::metainfo::InfoHash;

/// Most strings read from a `want` list (the rest are ignored).
const MAX_WANT: usize = 8;

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

/// Append `want` (keys stay sorted: the caller pushes it last).
pub(super) fn push_want(a: &mut Vec<(Vec<u8>, OwnedValue)>, want: &Want) {
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
pub(super) fn read_want(a: &Dict<'_>) -> Want {
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

pub(super) fn decode_query(top: &Dict<'_>) -> Result<Query, DecodeErrorKind> {
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
