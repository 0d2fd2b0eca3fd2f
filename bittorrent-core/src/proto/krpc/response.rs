//! KRPC responses (`y` = `r`): nodes, peers and tokens.

use super::dict::{get_20, get_dict};
use super::error::DecodeErrorKind;
use super::nodes::{peer_from_bytes, CompactNode, CompactNode6};
use super::{
    NodeId, COMPACT_NODE6_LEN, COMPACT_NODE_LEN, COMPACT_PEER6_LEN, COMPACT_PEER_LEN, MAX_NODES,
    MAX_TOKEN_LEN, MAX_VALUES,
};
use crate::proto::bencode::Dict;
use std::net::SocketAddr;

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

pub(super) fn decode_response(top: &Dict<'_>) -> Result<Response, DecodeErrorKind> {
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
