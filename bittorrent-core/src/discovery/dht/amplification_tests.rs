//! The DHT node is no amplifier: a `get_peers` or `find_node` from an
//! address that never answered one of our queries (so may be a spoofed
//! victim's) gets an answer at most 4 times the size of the query; a
//! verified node gets the full answer.
#![allow(clippy::unwrap_used)]

use crate::discovery::dht::{Dht, DhtConfig};
use crate::proto::krpc::{Body, Message, NodeId, Query, Response};
use crate::InfoHash;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Send `q` and return the answer with its tid (other packets, such as the
/// node's own queries, are skipped) and its size in bytes.
fn ask(s: &UdpSocket, to: SocketAddr, tid: &[u8], q: Query) -> (usize, usize, Response) {
    let m = Message {
        tid: tid.to_vec(),
        body: Body::Query(q),
    };
    let wire = m.encode();
    s.send_to(&wire, to).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        let Ok((n, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        if from != to {
            continue;
        }
        if let Ok(Message {
            tid: t,
            body: Body::Response(r),
        }) = Message::decode(&buf[..n])
        {
            if t == tid {
                return (wire.len(), n, r);
            }
        }
    }
    panic!("no answer to {tid:?}");
}

#[test]
fn unverified_queriers_get_bounded_answers() {
    let boot = client();
    let boot_id = NodeId([0x11; 20]);
    let dht = Dht::start(DhtConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        bootstrap: vec![boot.local_addr().unwrap()],
        max_queries_per_ip_per_sec: 0,
        ..DhtConfig::default()
    })
    .unwrap();
    let to = dht.local_addr();
    // The node bootstraps from `boot`: answering its query verifies `boot`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    let mut answered = false;
    while !answered && Instant::now() < deadline {
        let Ok((n, from)) = boot.recv_from(&mut buf) else {
            continue;
        };
        if let Ok(Message {
            tid,
            body: Body::Query(_),
        }) = Message::decode(&buf[..n])
        {
            let r = Message {
                tid,
                body: Body::Response(Response::id_only(boot_id)),
            };
            boot.send_to(&r.encode(), from).unwrap();
            answered = true;
        }
    }
    assert!(answered, "the node never queried its bootstrap node");
    // 60 peers announce a torrent.
    let ih = InfoHash([0x42; 20]);
    let filler = client();
    let me = NodeId([0x22; 20]);
    let (_, _, r) = ask(
        &filler,
        to,
        b"g0",
        Query::GetPeers {
            id: me,
            info_hash: ih,
            want: Default::default(),
        },
    );
    let token = r.token.unwrap();
    for i in 0..60u16 {
        ask(
            &filler,
            to,
            b"an",
            Query::AnnouncePeer {
                id: me,
                info_hash: ih,
                port: 10_000 + i,
                token: token.clone(),
                implied_port: false,
            },
        );
    }
    // A stranger (the spoofer's victim) asks: a bounded answer.
    let stranger = client();
    let (q, a, r) = ask(
        &stranger,
        to,
        b"s1",
        Query::GetPeers {
            id: NodeId([0x33; 20]),
            info_hash: ih,
            want: Default::default(),
        },
    );
    eprintln!(
        "unverified get_peers: query {q} bytes, answer {a} bytes ({:.1}x), {} values",
        a as f64 / q as f64,
        r.values.len()
    );
    assert!(a <= 4 * q, "answer {a} bytes to a {q}-byte query");
    assert!(!r.values.is_empty() && r.values.len() < 60);
    let (q, a, _) = ask(
        &stranger,
        to,
        b"s2",
        Query::FindNode {
            id: NodeId([0x33; 20]),
            target: NodeId([0x44; 20]),
            want: Default::default(),
        },
    );
    assert!(a <= 4 * q, "find_node answer {a} bytes to a {q}-byte query");
    // The verified node gets everything.
    let (q, a, r) = ask(
        &boot,
        to,
        b"v1",
        Query::GetPeers {
            id: boot_id,
            info_hash: ih,
            want: Default::default(),
        },
    );
    eprintln!(
        "verified get_peers: query {q} bytes, answer {a} bytes ({:.1}x), {} values",
        a as f64 / q as f64,
        r.values.len()
    );
    assert_eq!(r.values.len(), 60);
    assert!(a > 4 * q);
}
