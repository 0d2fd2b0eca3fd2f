//! DHT node tests over loopback: a 20-node network, and hostile input.
#![allow(clippy::unwrap_used)]

use crate::discovery::dht::{Dht, DhtConfig};
use crate::proto::krpc::{Body, Message, NodeId, Query, Response, ERROR_PROTOCOL};
use crate::InfoHash;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn cfg(bootstrap: Vec<SocketAddr>) -> DhtConfig {
    DhtConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        bootstrap,
        // Every node is on 127.0.0.1: do not rate-limit the swarm itself.
        max_queries_per_ip_per_sec: 0,
        ..DhtConfig::default()
    }
}

#[test]
fn twenty_nodes_announce_and_get_peers() {
    let first = Dht::start(cfg(vec![])).unwrap();
    let boot = vec![first.local_addr()];
    let mut nodes = vec![first];
    for _ in 1..20 {
        nodes.push(Dht::start(cfg(boot.clone())).unwrap());
    }
    std::thread::sleep(Duration::from_secs(2));
    for (i, n) in nodes.iter().enumerate() {
        let known = n.routing_table_nodes();
        assert!(!known.is_empty(), "node {i} knows nobody");
    }

    let ih = InfoHash([0x5a; 20]);
    let want: SocketAddr = "127.0.0.1:4242".parse().unwrap();
    nodes[5].announce(ih, 4242);

    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    let mut found = Vec::new();
    while Instant::now() < deadline {
        found = nodes[17].get_peers(ih, Duration::from_secs(5));
        if found.contains(&want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        found.contains(&want),
        "node 17 did not find {want}: {found:?}"
    );
    eprintln!("found {want} after {:?}", start.elapsed());
    // An unannounced info-hash has no peers.
    assert!(nodes[3]
        .get_peers(InfoHash([0x11; 20]), Duration::from_secs(5))
        .is_empty());
    for n in nodes {
        n.stop();
    }
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn exchange(s: &UdpSocket, to: SocketAddr, m: &Message) -> Message {
    s.send_to(&m.encode(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    Message::decode(&buf[..n]).unwrap()
}

fn query(tid: &[u8], q: Query) -> Message {
    Message {
        tid: tid.to_vec(),
        body: Body::Query(q),
    }
}

#[test]
fn hostile_packets_and_tokens() {
    let dht = Dht::start(cfg(vec![])).unwrap();
    let to = dht.local_addr();
    let s = client();
    let me = NodeId([7; 20]);

    // Garbage and oversized packets: no answer, no panic.
    let mut deep = vec![b'l'; 5000];
    deep.extend(vec![b'e'; 5000]);
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        vec![0xff; 1400],
        vec![b'd'; 65000],
        deep,
        b"d1:rd2:id20:abcdefghij0123456789e1:t2:zz1:y1:re".to_vec(),
        b"d1:eli201e3:ohhe1:t2:aa1:y1:ee".to_vec(),
        b"i42e".to_vec(),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe".to_vec(),
    ];
    for j in &junk {
        s.send_to(j, to).unwrap();
    }
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(s.recv_from(&mut buf).is_err(), "junk was answered");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // Malformed queries with a readable tid: 203.
    for (tid, bad) in [
        (&b"xy"[..], &b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe"[..]),
        (b"aa", b"d1:t2:aa1:y1:qe"),
    ] {
        s.send_to(bad, to).unwrap();
        let (n, _) = s.recv_from(&mut buf).unwrap();
        let m = Message::decode(&buf[..n]).unwrap();
        assert_eq!(m.tid, tid);
        assert!(matches!(m.body, Body::Error(ref e) if e.code == ERROR_PROTOCOL));
    }

    // Still alive: ping.
    let r = exchange(&s, to, &query(b"p1", Query::Ping { id: me }));
    assert_eq!(r.tid, b"p1");
    assert_eq!(r.body, Body::Response(Response::id_only(dht.id())));

    let ih = InfoHash([0x42; 20]);
    // announce_peer with a bad token: 203.
    let bad = query(
        b"a1",
        Query::AnnouncePeer {
            id: me,
            info_hash: ih,
            port: 5555,
            token: b"nope".to_vec(),
            implied_port: false,
        },
    );
    let r = exchange(&s, to, &bad);
    assert!(
        matches!(r.body, Body::Error(ref e) if e.code == ERROR_PROTOCOL),
        "{r:?}"
    );

    // get_peers gives a token; announcing with it is accepted and stored.
    let r = exchange(
        &s,
        to,
        &query(
            b"g1",
            Query::GetPeers {
                id: me,
                info_hash: ih,
                want: Default::default(),
            },
        ),
    );
    let Body::Response(resp) = r.body else {
        panic!("{r:?}")
    };
    assert!(resp.values.is_empty());
    let token = resp.token.unwrap();
    let good = query(
        b"a2",
        Query::AnnouncePeer {
            id: me,
            info_hash: ih,
            port: 5555,
            token: token.clone(),
            implied_port: false,
        },
    );
    let r = exchange(&s, to, &good);
    assert_eq!(r.body, Body::Response(Response::id_only(dht.id())));
    let r = exchange(
        &s,
        to,
        &query(
            b"g2",
            Query::GetPeers {
                id: me,
                info_hash: ih,
                want: Default::default(),
            },
        ),
    );
    let Body::Response(resp) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(resp.values, vec!["127.0.0.1:5555".parse().unwrap()]);

    // The token may be used again from the same IP; implied_port stores
    // the UDP source port instead of `port`.
    let implied = query(
        b"a3",
        Query::AnnouncePeer {
            id: me,
            info_hash: ih,
            port: 1,
            token,
            implied_port: true,
        },
    );
    let r = exchange(&s, to, &implied);
    assert!(matches!(r.body, Body::Response(_)));
    let mine = s.local_addr().unwrap();
    let peers = dht.get_peers(ih, Duration::from_secs(1));
    assert!(peers.contains(&mine), "{peers:?}");

    // We queried it, so it knows us.
    let known = dht.routing_table_nodes();
    assert!(known.contains(&(me, mine)), "{known:?}");
    dht.stop();
}

#[test]
fn rate_limit_per_ip() {
    let dht = Dht::start(DhtConfig {
        max_queries_per_ip_per_sec: 5,
        ..cfg(vec![])
    })
    .unwrap();
    let to = dht.local_addr();
    let s = client();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for i in 0..40u8 {
        let m = query(
            &[i],
            Query::Ping {
                id: NodeId([1; 20]),
            },
        );
        s.send_to(&m.encode(), to).unwrap();
    }
    let mut answers = 0;
    let mut buf = [0u8; 4096];
    while s.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    // 5 per one-second window; the burst may straddle two windows.
    assert!((5..=10).contains(&answers), "{answers} answers");
    dht.stop();
}

#[test]
fn dead_bootstrap_and_add_node_are_bounded() {
    // A bootstrap address nobody answers on.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let a = Dht::start(cfg(vec![dead_addr])).unwrap();
    let start = Instant::now();
    let peers = a.get_peers(InfoHash([1; 20]), Duration::from_secs(2));
    assert!(peers.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(a.routing_table_nodes().is_empty());

    // add_node (as from a peer's PORT message) pings; the answer adds it.
    let b = Dht::start(cfg(vec![])).unwrap();
    a.add_node(b.local_addr());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.routing_table_nodes().contains(&(b.id(), b.local_addr())) {
        assert!(Instant::now() < deadline, "b never entered a's table");
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    a.stop();
    b.stop();
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn external_address_gives_a_bep42_id_and_the_table_survives() {
    let a = Dht::start(cfg(vec![])).unwrap();
    let b = Dht::start(cfg(vec![a.local_addr()])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.routing_table_nodes().contains(&(a.id(), a.local_addr())) {
        assert!(Instant::now() < deadline, "a never entered b's table");
        std::thread::sleep(Duration::from_millis(50));
    }
    let old = b.id();
    // A private address changes nothing (BEP 42 exempts it).
    b.set_external_ip("192.168.1.20".parse().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.id(), old);
    // A public one: a new id, valid for it, and `a` is still known.
    let ip: std::net::IpAddr = "124.31.75.21".parse().unwrap();
    b.set_external_ip(ip);
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.id() == old {
        assert!(Instant::now() < deadline, "the id never changed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(crate::proto::bep42::is_valid(&b.id(), ip));
    assert!(!crate::proto::bep42::is_valid(&old, ip));
    assert!(b.routing_table_nodes().contains(&(a.id(), a.local_addr())));
    // The same address again keeps the id; answers carry the new one.
    let new = b.id();
    b.set_external_ip(ip);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.id(), new);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ping = Message {
        tid: b"zz".to_vec(),
        body: Body::Query(Query::Ping {
            id: NodeId([7; 20]),
        }),
    };
    s.send_to(&ping.encode(), b.local_addr()).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    let r = Message::decode(&buf[..n]).unwrap();
    assert_eq!(r.body, Body::Response(Response::id_only(new)));
    a.stop();
    b.stop();
}

/// BEP 32 on the wire: an IPv6 node answers `find_node` with `nodes6`
/// (never `nodes`), `get_peers` with IPv6 values, and stores an IPv6
/// querier's announce under its IPv6 address.
#[test]
fn ipv6_node_answers_nodes6_and_ipv6_values() {
    use crate::proto::krpc::Want;
    if UdpSocket::bind("[::1]:0").is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no ::1 here");
        eprintln!("SKIP: no IPv6 loopback");
        return;
    }
    let v6cfg = |bootstrap| DhtConfig {
        bind: "[::1]:0".parse().unwrap(),
        ..cfg(bootstrap)
    };
    let dht = Dht::start(v6cfg(vec![])).unwrap();
    let to = dht.local_addr();
    // A second node joins, so the first has an IPv6 node to give.
    let other = Dht::start(v6cfg(vec![to])).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let s = UdpSocket::bind("[::1]:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = NodeId([9; 20]);
    for want in [Want::default(), Want { n4: true, n6: true }] {
        let r = exchange(
            &s,
            to,
            &query(
                b"f1",
                Query::FindNode {
                    id: me,
                    target: NodeId([1; 20]),
                    want,
                },
            ),
        );
        let Body::Response(r) = r.body else {
            panic!("{r:?}")
        };
        assert!(r.nodes.is_empty(), "{r:?}");
        let addrs: Vec<SocketAddr> = r.nodes6.iter().map(|n| SocketAddr::V6(n.addr)).collect();
        assert!(addrs.contains(&other.local_addr()), "{addrs:?}");
    }
    // Asking only for n4: an IPv6 node has no IPv4 table to offer.
    let only4 = Want {
        n4: true,
        n6: false,
    };
    let r = exchange(
        &s,
        to,
        &query(
            b"f2",
            Query::FindNode {
                id: me,
                target: NodeId([1; 20]),
                want: only4,
            },
        ),
    );
    let Body::Response(r) = r.body else {
        panic!("{r:?}")
    };
    assert!(r.nodes.is_empty() && r.nodes6.is_empty());
    let ih = InfoHash([0x66; 20]);
    let gp = |tid: &[u8]| {
        query(
            tid,
            Query::GetPeers {
                id: me,
                info_hash: ih,
                want: Want::default(),
            },
        )
    };
    let Body::Response(r) = exchange(&s, to, &gp(b"g1")).body else {
        panic!()
    };
    let token = r.token.unwrap();
    let ann = Query::AnnouncePeer {
        id: me,
        info_hash: ih,
        port: 7777,
        token,
        implied_port: false,
    };
    exchange(&s, to, &query(b"a1", ann));
    let Body::Response(r) = exchange(&s, to, &gp(b"g2")).body else {
        panic!()
    };
    assert_eq!(r.values, vec!["[::1]:7777".parse::<SocketAddr>().unwrap()]);
    dht.stop();
    other.stop();
}
