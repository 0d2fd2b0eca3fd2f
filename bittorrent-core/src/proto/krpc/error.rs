//! KRPC errors (`y` = `e`) and why a datagram failed to decode.

use super::{Body, Message, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, MAX_ERROR_MSG_LEN};
use crate::proto::bencode::{BencodeError, Dict};
use std::fmt;

/// A KRPC error (`y` = `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The error code (201..=204 in BEP 5).
    pub code: i64,
    /// A human-readable message.
    pub msg: String,
}

/// Why a datagram is not a valid KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Longer than [`MAX_PACKET_LEN`](super::MAX_PACKET_LEN).
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

pub(super) fn decode_error(top: &Dict<'_>) -> Result<Error, DecodeErrorKind> {
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
