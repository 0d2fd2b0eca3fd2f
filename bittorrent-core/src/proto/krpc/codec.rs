//! A whole KRPC message to and from canonical bencode.

use super::dict::{id_value, key};
use super::error::{decode_error, DecodeError, DecodeErrorKind};
use super::query::{decode_query, push_want, Query};
use super::response::decode_response;
use super::{Body, Message, COMPACT_NODE6_LEN, COMPACT_NODE_LEN, MAX_PACKET_LEN, MAX_TID_LEN};
use crate::proto::bencode::{decode_strict, Dict, OwnedValue, Value};

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
