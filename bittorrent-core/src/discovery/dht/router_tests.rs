//! Bootstrap routers against a resolver the test controls: names resolved
//! on the DHT's own resolver thread, failures survived, routers kept out of
//! the routing table, none asked when there are none, the saved table first.
#![allow(clippy::unwrap_used)]

use crate::discovery::dht::bootstrap::{Resolver, Router};
use crate::discovery::dht::{Dht, DhtConfig};
use crate::proto::krpc::{Body, Message, NodeId, Query, Response};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A resolver that knows `router.test` (at `addr`) and nothing else, and
/// counts the names it was asked for.
fn resolver(addr: SocketAddr, calls: Arc<AtomicUsize>) -> Resolver {
    Resolver::new(move |host, _port| {
        calls.fetch_add(1, Ordering::SeqCst);
        match host {
            "router.test" => Ok(vec![addr]),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "unknown host")),
        }
    })
}

fn cfg(bootstrap: Vec<SocketAddr>, routers: &[&str], res: Resolver) -> DhtConfig {
    DhtConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        bootstrap,
        routers: routers
            .iter()
            .map(|r| r.parse::<Router>().unwrap())
            .collect(),
        resolver: res,
        max_queries_per_ip_per_sec: 0,
        ..DhtConfig::default()
    }
}

/// Wait for a `find_node` on `s` and answer it as a router would.
fn answer_find_node(s: &UdpSocket, within: Duration) -> Option<(SocketAddr, NodeId)> {
    let end = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        let Ok((n, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::decode(&buf[..n]) else {
            continue;
        };
        if let Body::Query(Query::FindNode { target, .. }) = m.body {
            let reply = Message {
                tid: m.tid,
                body: Body::Response(Response::id_only(NodeId::random())),
            };
            s.send_to(&reply.encode(), from).unwrap();
            return Some((from, target));
        }
    }
    None
}

/// A fake router on loopback (a socket the test answers from) and a
/// resolver that maps `router.test` to it (other names fail), counting calls.
fn fake_router() -> (UdpSocket, Arc<AtomicUsize>, Resolver) {
    let router = UdpSocket::bind("127.0.0.1:0").unwrap();
    router
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let res = resolver(router.local_addr().unwrap(), calls.clone());
    (router, calls, res)
}

#[test]
fn names_resolved_failures_survived_routers_kept_out_of_the_table() {
    let (router, calls, res) = fake_router();
    let node = Dht::start(cfg(vec![], &["gone.test:6881", "router.test:6881"], res)).unwrap();
    // Nothing else to bootstrap from: the routers are asked at once, the
    // failing name does not stop the good one.
    let (from, target) =
        answer_find_node(&router, Duration::from_secs(5)).expect("the router was never asked");
    assert_eq!(from, node.local_addr());
    assert_eq!(target, node.id(), "a bootstrap looks up our own id");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "both names resolved once");
    std::thread::sleep(Duration::from_millis(300));
    let table = node.routing_table_nodes();
    assert!(
        table
            .iter()
            .all(|(_, a)| *a != router.local_addr().unwrap()),
        "a router entered the routing table: {table:?}"
    );
    node.stop();
}

#[test]
fn no_routers_none_asked() {
    let (router, calls, res) = fake_router();
    let node = Dht::start(cfg(vec![], &[], res)).unwrap();
    assert!(answer_find_node(&router, Duration::from_secs(1)).is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    node.stop();
}

#[test]
fn saved_table_first_then_routers_while_it_is_small() {
    let (router, calls, res) = fake_router();
    let other = Dht::start(cfg(vec![], &[], res.clone())).unwrap();
    let node = Dht::start(cfg(vec![other.local_addr()], &["router.test:1"], res)).unwrap();
    // The known node answers first; the routers wait their grace period.
    assert!(answer_find_node(&router, Duration::from_secs(3)).is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(!node.routing_table_nodes().is_empty());
    // One node is a small table: then the routers are asked too.
    assert!(answer_find_node(&router, Duration::from_secs(6)).is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    node.stop();
    other.stop();
}
