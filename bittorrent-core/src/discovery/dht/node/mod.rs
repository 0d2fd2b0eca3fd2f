//! A DHT node: one thread named `dht` owning the UDP socket, the routing
//! table, the token secrets and the peer store.
//!
//! The [`Dht`] handle talks to that thread over a `crossbeam-channel`;
//! blocking calls ([`Dht::get_peers`], [`Dht::routing_table_nodes`]) carry a
//! reply channel. The thread reads the socket with a 100 ms timeout, so it
//! notices commands, query timeouts and maintenance at least that often.
//! Every collection it keeps is bounded: outstanding queries, concurrent
//! lookups, candidates per lookup, queries per lookup, the peer store, the
//! per-IP rate-limit table.
//!
//! The thread's work, by concept: `maintenance` (bootstrap, the routers,
//! BEP 42 id changes, the periodic tick and routing-table upkeep),
//! `lookup` (iterative `find_node` / `get_peers` lookups and announces),
//! `incoming` (answering queries, taking responses and errors) and
//! `store` (the announced peers we keep).

mod incoming;
mod lookup;
mod maintenance;
mod store;

use lookup::{Lookup, Purpose};
use store::PeerStore;

use super::bootstrap::{Resolved, Resolver, Router};
pub use super::family::MAX_LOOKUP_TIME;
use super::routing::{NodeId, RoutingTable};
use super::token::Tokens;
use crate::proto::krpc::{Body, Message, Query};
use crate::proto::metainfo::InfoHash;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Parallel queries per lookup.
pub const ALPHA: usize = 3;
/// How long an outstanding query waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an announced peer is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// Most queries one lookup may send.
pub const MAX_LOOKUP_QUERIES: usize = 128;

const TICK: Duration = Duration::from_millis(100);
const MAINTENANCE_EVERY: Duration = Duration::from_secs(15);
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(30);
const BOOTSTRAP_TIME: Duration = Duration::from_secs(20);
/// How long the saved table and the configured nodes have to fill the
/// routing table before the routers are asked too.
const ROUTER_GRACE: Duration = Duration::from_secs(5);
/// Most router addresses remembered (so that they stay out of the table).
const MAX_ROUTER_ADDRS: usize = 64;
const ANNOUNCE_TIME: Duration = Duration::from_secs(30);
const MAX_OUTSTANDING: usize = 512;
const MAX_LOOKUPS: usize = 32;
const MAX_CANDIDATES: usize = 64;
const MAX_LOOKUP_PEERS: usize = 1000;
const MAX_RATE_ENTRIES: usize = 4096;
const COMMANDS_PER_TICK: usize = 64;
const PINGS_PER_MAINTENANCE: usize = 8;
const RECV_BUF: usize = 4096;
/// An answer to a querier whose address we have not verified is at most
/// this many times the size of its query (no amplification for spoofers).
pub const MAX_AMPLIFICATION: usize = 4;

/// Configuration of a [`Dht`] node.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// UDP address to bind (port 0 for any).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub bind: SocketAddr,
    /// Nodes to bootstrap from (`find_node` of our own id).
    pub bootstrap: Vec<SocketAddr>,
    /// Routers (BEP 5 bootstrap hosts) asked when the routing table is empty
    /// or small after the `bootstrap` nodes had their chance; resolved on
    /// every bootstrap, never put in the routing table (default: none).
    pub routers: Vec<Router>,
    /// Resolves the routers' names (default: the system's resolver).
    pub resolver: Resolver,
    /// Our node id; random when `None`.
    pub id: Option<NodeId>,
    /// Most peers stored per info-hash.
    pub max_peers_per_hash: usize,
    /// Most info-hashes stored.
    pub max_info_hashes: usize,
    /// Most queries answered per second per source IP (0 = unlimited).
    pub max_queries_per_ip_per_sec: u32,
}

impl Default for DhtConfig {
    fn default() -> DhtConfig {
        DhtConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            bootstrap: Vec::new(),
            routers: Vec::new(),
            resolver: Resolver::system(),
            id: None,
            max_peers_per_hash: 200,
            max_info_hashes: 5000,
            max_queries_per_ip_per_sec: 50,
        }
    }
}

enum Command {
    GetPeers {
        ih: InfoHash,
        timeout: Duration,
        reply: Sender<Vec<SocketAddr>>,
    },
    Announce {
        ih: InfoHash,
        port: u16,
    },
    AddNode(SocketAddr),
    ExternalIp(IpAddr),
    Nodes(Sender<Vec<(NodeId, SocketAddr)>>),
    Stop,
}

/// Handle to a running DHT node. Dropping it stops the node.
pub struct Dht {
    tx: Sender<Command>,
    /// Our node id, as the `dht` thread last set it (BEP 42 changes it
    /// with our external address).
    id: std::sync::Arc<parking_lot::Mutex<NodeId>>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Dht {
    /// Bind the socket and start the `dht` thread, which bootstraps from
    /// `cfg.bootstrap` by looking up our own id.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn start(cfg: DhtConfig) -> io::Result<Dht> {
        let socket = UdpSocket::bind(cfg.bind)?;
        socket.set_read_timeout(Some(TICK))?;
        Dht::spawn(socket, None, cfg)
    }

    /// Start the `dht` thread on a socket shared with other protocols
    /// (`cfg.bind` is ignored): it sends through `socket` (a clone of the
    /// shared one) and receives the KRPC datagrams another thread reads from
    /// it on `inbound` (see [`crate::discovery::udp`]).
    pub fn start_shared(
        cfg: DhtConfig,
        socket: UdpSocket,
        inbound: Receiver<(Vec<u8>, SocketAddr)>,
    ) -> io::Result<Dht> {
        Dht::spawn(socket, Some(inbound), cfg)
    }

    fn spawn(
        socket: UdpSocket,
        inbound: Option<Receiver<(Vec<u8>, SocketAddr)>>,
        cfg: DhtConfig,
    ) -> io::Result<Dht> {
        let local_addr = socket.local_addr()?;
        let id = cfg.id.unwrap_or_else(NodeId::random);
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let mut node = Node::new(socket, id, cfg);
        node.inbound = inbound;
        let shared_id = std::sync::Arc::clone(&node.shared_id);
        let thread = std::thread::Builder::new()
            .name(if local_addr.is_ipv6() { "dht6" } else { "dht" }.into())
            .stack_size(crate::util::SERVICE_STACK)
            .spawn(move || node.run(rx))?;
        Ok(Dht {
            tx,
            id: shared_id,
            local_addr,
            thread: Some(thread),
        })
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// Our node id.
    pub fn id(&self) -> NodeId {
        *self.id.lock()
    }

    /// Our external address as the session learned it (a gateway, a
    /// tracker, a peer's `yourip`): when it is a public address whose
    /// BEP 42 id is not ours, the node takes a new id derived from it and
    /// rebuilds its routing table around it (every node kept, with its
    /// state), then looks the new id up. Returns at once.
    pub fn set_external_ip(&self, ip: IpAddr) {
        let _ = self.tx.try_send(Command::ExternalIp(ip));
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Look up peers for `ih` (iterative `get_peers`), blocking until the
    /// lookup converges or `timeout` (capped at 60 s) passes. Peers we store
    /// ourselves are included. Empty if the node has stopped.
    #[allow(dead_code)] // the session looks up both families at once (`lookup_all`)
    pub fn get_peers(&self, ih: InfoHash, timeout: Duration) -> Vec<SocketAddr> {
        self.start_get_peers(ih, timeout)
            .and_then(|rx| {
                rx.recv_timeout(timeout.min(MAX_LOOKUP_TIME) + Duration::from_secs(1))
                    .ok()
            })
            .unwrap_or_default()
    }

    /// Start a `get_peers` lookup; its peers arrive on the receiver
    /// (within `timeout`, capped at 60 s). None if the node has stopped.
    pub(crate) fn start_get_peers(
        &self,
        ih: InfoHash,
        timeout: Duration,
    ) -> Option<Receiver<Vec<SocketAddr>>> {
        let timeout = timeout.min(MAX_LOOKUP_TIME);
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Command::GetPeers { ih, timeout, reply })
            .ok()?;
        Some(rx)
    }

    /// Announce that we serve `ih` on TCP `port`: a `get_peers` lookup,
    /// then `announce_peer` with their tokens to the closest nodes that
    /// answered. Returns at once; the work happens on the `dht` thread.
    pub fn announce(&self, ih: InfoHash, port: u16) {
        let _ = self.tx.send(Command::Announce { ih, port });
    }

    /// Ping `addr` (e.g. from a peer's PORT message); it enters the routing
    /// table if it answers.
    pub fn add_node(&self, addr: SocketAddr) {
        let _ = self.tx.try_send(Command::AddNode(addr));
    }

    /// The nodes in the routing table, for persistence. Empty if the node
    /// has stopped.
    pub fn routing_table_nodes(&self) -> Vec<(NodeId, SocketAddr)> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Command::Nodes(reply)).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// Stop the thread and wait for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Dht {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Pending {
    addr: SocketAddr,
    id: Option<NodeId>,
    sent: Instant,
    lookup: Option<u64>,
}

struct Node {
    socket: UdpSocket,
    /// Datagrams read by the session's `udp` thread when the socket is
    /// shared; `None`: this thread reads `socket` itself.
    inbound: Option<Receiver<(Vec<u8>, SocketAddr)>>,
    id: NodeId,
    /// `id`, for the handle ([`Dht::id`]).
    shared_id: std::sync::Arc<parking_lot::Mutex<NodeId>>,
    cfg: DhtConfig,
    table: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    /// Torrents we announce ourselves (TCP port): a `get_peers` for one of
    /// them is answered with our own address too, so a peer that reaches
    /// only us (a small or young DHT) still finds us.
    own: HashMap<InfoHash, u16>,
    pending: HashMap<[u8; 2], Pending>,
    next_tid: u16,
    lookups: HashMap<u64, Lookup>,
    next_lookup: u64,
    rate: HashMap<IpAddr, (Instant, u32)>,
    last_tick: Instant,
    last_maintenance: Instant,
    last_bootstrap: Instant,
    /// When to ask the routers if the table is still small.
    routers_due: Option<Instant>,
    /// The resolution of the routers in progress, and when it is given up.
    resolving: Option<(Resolved, Instant, Vec<Router>)>,
    /// Addresses the routers resolved to: never put in the routing table.
    router_addrs: HashSet<SocketAddr>,
    /// Routers whose failure was logged (each is logged once).
    router_failures: HashSet<Router>,
    logged_no_routers: bool,
    /// The node's family (BEP 32): IPv6 when its socket is.
    v6: bool,
}

impl Node {
    pub(super) fn new(socket: UdpSocket, id: NodeId, mut cfg: DhtConfig) -> Node {
        let now = Instant::now();
        let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        // Only nodes of our family can be reached from our socket.
        cfg.bootstrap.retain(|a| a.is_ipv6() == v6);
        Node {
            v6,
            socket,
            inbound: None,
            id,
            shared_id: std::sync::Arc::new(parking_lot::Mutex::new(id)),
            table: RoutingTable::new(id),
            tokens: Tokens::new(now),
            own: HashMap::new(),
            store: PeerStore {
                map: HashMap::new(),
                max_hashes: cfg.max_info_hashes,
                max_peers: cfg.max_peers_per_hash,
            },
            cfg,
            pending: HashMap::new(),
            next_tid: (crate::util::rng::random_u64() & 0xffff) as u16,
            lookups: HashMap::new(),
            next_lookup: 0,
            rate: HashMap::new(),
            last_tick: now,
            last_maintenance: now,
            last_bootstrap: now,
            routers_due: None,
            resolving: None,
            router_addrs: HashSet::new(),
            router_failures: HashSet::new(),
            logged_no_routers: false,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Command>) {
        self.bootstrap(Instant::now());
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            for _ in 0..COMMANDS_PER_TICK {
                match rx.try_recv() {
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                    Ok(c) => self.command(c, Instant::now()),
                    Err(TryRecvError::Empty) => break,
                }
            }
            let shared = self.inbound.as_ref().map(|i| i.recv_timeout(TICK));
            if let Some(got) = shared {
                match got {
                    Ok((p, from)) => self.packet(&p, from, Instant::now()),
                    Err(RecvTimeoutError::Timeout) => {}
                    // The reader stopped (session shutting down): wait for Stop.
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
                }
            } else {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        // A datagram filling the buffer was probably truncated.
                        if n < buf.len() {
                            self.packet(&buf[..n], from, Instant::now());
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => {
                        // E.g. ICMP port unreachable reported on some systems.
                        log::debug!("dht recv: {e}");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            let now = Instant::now();
            if now.saturating_duration_since(self.last_tick) >= TICK / 2 {
                self.last_tick = now;
                self.tick(now);
            }
        }
    }

    pub(super) fn command(&mut self, c: Command, now: Instant) {
        match c {
            Command::GetPeers { ih, timeout, reply } => {
                let purpose = Purpose::GetPeers {
                    reply: Some(reply),
                    announce: None,
                };
                self.start_lookup(ih.into(), purpose, timeout, &[], now);
            }
            Command::Announce { ih, port } => {
                if self.own.len() < 10_000 || self.own.contains_key(&ih) {
                    self.own.insert(ih, port);
                }
                let purpose = Purpose::GetPeers {
                    reply: None,
                    announce: Some(port),
                };
                self.start_lookup(ih.into(), purpose, ANNOUNCE_TIME, &[], now);
            }
            Command::AddNode(addr) => {
                let q = Query::Ping { id: self.id };
                self.send_query(addr, None, q, None, now);
            }
            Command::ExternalIp(ip) => self.external_ip(ip, now),
            Command::Nodes(reply) => {
                let _ = reply.try_send(self.table.nodes());
            }
            Command::Stop => {}
        }
    }

    pub(super) fn send(&self, msg: &Message, to: SocketAddr) {
        if let Err(e) = self.socket.send_to(&msg.encode(), to) {
            log::debug!("dht send to {to}: {e}");
        }
    }

    pub(super) fn send_query(
        &mut self,
        addr: SocketAddr,
        id: Option<NodeId>,
        q: Query,
        lookup: Option<u64>,
        now: Instant,
    ) -> bool {
        if self.pending.len() >= MAX_OUTSTANDING {
            return false;
        }
        // At most MAX_OUTSTANDING tids are taken, so this finds one quickly.
        let mut tid = self.next_tid.to_be_bytes();
        for _ in 0..=MAX_OUTSTANDING {
            tid = self.next_tid.to_be_bytes();
            self.next_tid = self.next_tid.wrapping_add(1);
            if !self.pending.contains_key(&tid) {
                break;
            }
        }
        let msg = Message {
            tid: tid.to_vec(),
            body: Body::Query(q),
        };
        self.send(&msg, addr);
        self.pending.insert(
            tid,
            Pending {
                addr,
                id,
                sent: now,
                lookup,
            },
        );
        true
    }
}
