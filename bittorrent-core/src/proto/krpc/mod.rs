//! KRPC messages (BEP 5): bencoded dictionaries over UDP.
//!
//! Decoding is strict (canonical bencode, [`decode_strict`](crate::proto::bencode::decode_strict)) and bounded:
//! transaction ids of at most [`MAX_TID_LEN`] bytes, at most [`MAX_NODES`]
//! compact nodes, at most [`MAX_VALUES`] compact peers, tokens of at most
//! [`MAX_TOKEN_LEN`] bytes and packets of at most [`MAX_PACKET_LEN`] bytes.
//! Nothing here panics on any input. Encoding is canonical (keys sorted).
//!
//! BEP 32 (the IPv6 DHT): `nodes6` (38-byte compact IPv6 nodes, at most
//! [`MAX_NODES`]), `want` (`n4`, `n6`; other strings ignored) in
//! `find_node` and `get_peers`, and `values` lists that may mix 6-byte
//! IPv4 and 18-byte IPv6 peers.
//!
//! Files, by protocol concept: `nodes` (compact node and peer infos),
//! `query` (the four queries and BEP 32 `want`), `response`, `error`
//! (KRPC errors and decoding failures), `codec` (a whole message to and
//! from bencode) and `dict` (reading and writing its dictionary keys).

mod codec;
#[cfg(test)]
mod codec_tests;
mod dict;
mod error;
mod nodes;
mod query;
mod response;

pub use super::node_id::{NodeId, ID_BITS};
pub use error::{DecodeError, DecodeErrorKind, Error};
pub use nodes::{peer_from_bytes, peer_to_bytes, CompactNode, CompactNode6};
pub use query::{Query, Want};
pub use response::Response;

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

/// KRPC error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error code 203: protocol error (malformed packet, bad token...).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

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
