//! Codec tests: the BEP 5 vectors, limits, BEP 32 and rejections.

#![allow(clippy::unwrap_used)]

use super::dict::key;
use super::*;
use crate::proto::bencode::OwnedValue;
use crate::proto::metainfo::InfoHash;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

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
    let Body::Query(Query::GetPeers { want, .. }) = Message::decode(not_list).unwrap().body else {
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
