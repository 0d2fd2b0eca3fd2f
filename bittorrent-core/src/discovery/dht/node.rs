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

use super::bootstrap::{self, Resolved, Resolver, Router, RESOLVE_TIMEOUT};
pub use super::family::MAX_LOOKUP_TIME;
use super::family::{bound_answer, compact_nodes, own_ip_towards, usable_nodes};
use super::routing::{Contact, NodeId, RoutingTable, K};
use super::token::Tokens;
use crate::proto::krpc::{self, Body, Message, Query, Response, Want, ERROR_PROTOCOL, MAX_VALUES};
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

/// Announced peers per info-hash, with expiry; bounded both ways.
struct PeerStore {
    map: HashMap<InfoHash, Vec<(SocketAddr, Instant)>>,
    max_hashes: usize,
    max_peers: usize,
}

impl PeerStore {
    fn add(&mut self, ih: InfoHash, peer: SocketAddr, now: Instant) {
        let expires = now + PEER_TTL;
        if !self.map.contains_key(&ih) {
            if self.map.len() >= self.max_hashes {
                self.purge(now);
            }
            if self.map.len() >= self.max_hashes || self.max_peers == 0 {
                return;
            }
        }
        let v = self.map.entry(ih).or_default();
        if let Some(e) = v.iter_mut().find(|(p, _)| *p == peer) {
            e.1 = expires;
            return;
        }
        if v.len() >= self.max_peers {
            if let Some(oldest) = v
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                v.swap_remove(oldest);
            }
        }
        v.push((peer, expires));
    }

    fn get(&self, ih: &InfoHash, now: Instant, max: usize) -> Vec<SocketAddr> {
        self.map
            .get(ih)
            .map(|v| {
                v.iter()
                    .filter(|(_, t)| *t > now)
                    .take(max)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn purge(&mut self, now: Instant) {
        self.map.retain(|_, v| {
            v.retain(|(_, t)| *t > now);
            !v.is_empty()
        });
    }
}

struct Pending {
    addr: SocketAddr,
    id: Option<NodeId>,
    sent: Instant,
    lookup: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CState {
    New,
    InFlight,
    Answered,
    Failed,
}

struct Candidate {
    id: Option<NodeId>,
    addr: SocketAddr,
    state: CState,
    token: Option<Vec<u8>>,
}

enum Purpose {
    FindNode,
    GetPeers {
        reply: Option<Sender<Vec<SocketAddr>>>,
        announce: Option<u16>,
    },
}

struct Lookup {
    target: NodeId,
    purpose: Purpose,
    candidates: Vec<Candidate>,
    deadline: Instant,
    sent: usize,
    peers: Vec<SocketAddr>,
}

impl Lookup {
    fn key(&self, c: &Candidate) -> [u8; 20] {
        c.id.map(|id| id.distance(&self.target))
            .unwrap_or([0xff; 20])
    }

    fn add_candidate(&mut self, own: &NodeId, id: Option<NodeId>, addr: SocketAddr) {
        if id.as_ref() == Some(own) || addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        if self
            .candidates
            .iter()
            .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return;
        }
        self.candidates.push(Candidate {
            id,
            addr,
            state: CState::New,
            token: None,
        });
        let mut cs = std::mem::take(&mut self.candidates);
        cs.sort_by_key(|c| self.key(c));
        cs.truncate(MAX_CANDIDATES);
        self.candidates = cs;
    }

    fn in_flight(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| c.state == CState::InFlight)
            .count()
    }

    /// Indexes of New candidates among the K closest not failed.
    fn next_to_query(&self) -> Vec<usize> {
        self.candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state != CState::Failed)
            .take(K)
            .filter(|(_, c)| c.state == CState::New)
            .map(|(i, _)| i)
            .collect()
    }
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
    fn new(socket: UdpSocket, id: NodeId, mut cfg: DhtConfig) -> Node {
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

    fn run(mut self, rx: Receiver<Command>) {
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

    /// Look up our own id through the configured nodes (the saved table
    /// first); the routers are asked at once when there is nothing else,
    /// else after [`ROUTER_GRACE`] if the table is still small.
    fn bootstrap(&mut self, now: Instant) {
        self.last_bootstrap = now;
        let seeds = self.cfg.bootstrap.clone();
        if !seeds.is_empty() || !self.table.is_empty() {
            self.start_lookup(self.id, Purpose::FindNode, BOOTSTRAP_TIME, &seeds, now);
        }
        if seeds.is_empty() && self.table.len() < K {
            self.ask_routers(now);
        } else {
            self.routers_due = Some(now + ROUTER_GRACE);
        }
    }

    /// `""` for the IPv4 node, `" (IPv6)"` for the IPv6 one (BEP 32): two
    /// nodes of one session resolve the same routers, and the log tells
    /// their lines apart.
    fn family_tag(&self) -> &'static str {
        match self.socket.local_addr() {
            Ok(a) if a.is_ipv6() => " (IPv6)",
            _ => "",
        }
    }

    /// Resolve the routers (on a `dht-resolve` thread) unless that is in
    /// progress; [`Node::poll_routers`] starts a lookup through each.
    fn ask_routers(&mut self, now: Instant) {
        self.routers_due = None;
        if self.resolving.is_some() {
            return;
        }
        if self.cfg.routers.is_empty() {
            if !self.logged_no_routers {
                self.logged_no_routers = true;
                log::info!("DHT bootstrap{}: no routers configured", self.family_tag());
            }
            return;
        }
        let names: Vec<String> = self.cfg.routers.iter().map(Router::to_string).collect();
        log::info!(
            "DHT bootstrap{}: asking routers {}",
            self.family_tag(),
            names.join(", ")
        );
        let routers = self.cfg.routers.clone();
        match bootstrap::spawn_resolution(routers.clone(), self.cfg.resolver.clone()) {
            Ok(rx) => self.resolving = Some((rx, now + RESOLVE_TIMEOUT, routers)),
            Err(e) => log::warn!(
                "DHT bootstrap{}: cannot start the resolver thread: {e}",
                self.family_tag()
            ),
        }
    }

    /// Take the routers resolved so far and look up our id through them.
    fn poll_routers(&mut self, now: Instant) {
        if self.routers_due.is_some_and(|t| now >= t) {
            self.routers_due = None;
            if self.table.len() < K {
                self.ask_routers(now);
            }
        }
        let Some((rx, deadline, mut waiting)) = self.resolving.take() else {
            return;
        };
        let mut done = false;
        loop {
            match rx.try_recv() {
                Ok((router, got)) => {
                    waiting.retain(|r| *r != router);
                    self.router_resolved(router, got, now);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    done = true;
                    break;
                }
            }
        }
        if done || waiting.is_empty() {
            return;
        }
        if now >= deadline {
            for r in waiting {
                let e = io::Error::new(io::ErrorKind::TimedOut, "name resolution timed out");
                self.router_resolved(r, Err(e), now);
            }
            return;
        }
        self.resolving = Some((rx, deadline, waiting));
    }

    fn router_resolved(&mut self, router: Router, got: io::Result<Vec<SocketAddr>>, now: Instant) {
        let v4_socket = self.socket.local_addr().map_or(true, |a| a.is_ipv4());
        let addrs: Vec<SocketAddr> = match got {
            Ok(a) => a
                .into_iter()
                .filter(|a| a.is_ipv4() == v4_socket)
                .take(K)
                .collect(),
            Err(e) => {
                if self.router_failures.insert(router.clone()) {
                    log::warn!(
                        "DHT bootstrap{}: cannot resolve router {router}: {e}",
                        self.family_tag()
                    );
                } else {
                    log::debug!(
                        "DHT bootstrap{}: cannot resolve router {router}: {e}",
                        self.family_tag()
                    );
                }
                return;
            }
        };
        if addrs.is_empty() {
            if self.router_failures.insert(router.clone()) {
                log::warn!(
                    "DHT bootstrap{}: router {router} has no address of our IP version",
                    self.family_tag()
                );
            }
            return;
        }
        log::debug!(
            "DHT bootstrap{}: router {router} is {addrs:?}",
            self.family_tag()
        );
        if self.router_addrs.len() + addrs.len() > MAX_ROUTER_ADDRS {
            self.router_addrs.clear();
        }
        self.router_addrs.extend(addrs.iter().copied());
        self.start_lookup(self.id, Purpose::FindNode, BOOTSTRAP_TIME, &addrs, now);
    }

    fn command(&mut self, c: Command, now: Instant) {
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

    /// BEP 42: take an id derived from our public external address
    /// (unless ours already is), keep the routing table's nodes, and look
    /// the new id up so the nodes near it learn of us.
    fn external_ip(&mut self, ip: IpAddr, now: Instant) {
        let ip = ip.to_canonical();
        if !crate::proto::bep42::is_public(ip) || crate::proto::bep42::is_valid(&self.id, ip) {
            return;
        }
        let id = crate::proto::bep42::random_secure_id(ip);
        log::info!("DHT: external address {ip}: new node id {id:?} (BEP 42)");
        self.id = id;
        *self.shared_id.lock() = id;
        self.table = self.table.rebuilt(id, now);
        if !self.table.is_empty() {
            self.start_lookup(id, Purpose::FindNode, BOOTSTRAP_TIME, &[], now);
        }
    }

    fn send(&self, msg: &Message, to: SocketAddr) {
        if let Err(e) = self.socket.send_to(&msg.encode(), to) {
            log::debug!("dht send to {to}: {e}");
        }
    }

    fn send_query(
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

    fn start_lookup(
        &mut self,
        target: NodeId,
        purpose: Purpose,
        timeout: Duration,
        seeds: &[SocketAddr],
        now: Instant,
    ) {
        let mut l = Lookup {
            target,
            purpose,
            candidates: Vec::new(),
            deadline: now + timeout.min(MAX_LOOKUP_TIME),
            sent: 0,
            peers: Vec::new(),
        };
        if self.lookups.len() >= MAX_LOOKUPS {
            self.finish(l, now);
            return;
        }
        let known = self.table.closest(&target, K * 2, now);
        // A young table (the bootstrap has not answered yet): ask the
        // bootstrap nodes too, so a lookup right after start still works.
        let young = known.len() < K;
        for (id, addr) in known {
            l.add_candidate(&self.id, Some(id), addr);
        }
        let bootstrap: Vec<SocketAddr> = if young {
            let routers = self.router_addrs.iter().copied();
            self.cfg
                .bootstrap
                .iter()
                .copied()
                .chain(routers)
                .take(K)
                .collect()
        } else {
            Vec::new()
        };
        for addr in seeds.iter().chain(bootstrap.iter()) {
            l.add_candidate(&self.id, None, *addr);
        }
        let key = self.next_lookup;
        self.next_lookup = self.next_lookup.wrapping_add(1);
        self.lookups.insert(key, l);
        self.step(key, now);
    }

    /// Send queries for lookup `key` and finish it if it is done.
    fn step(&mut self, key: u64, now: Instant) {
        let Some(mut l) = self.lookups.remove(&key) else {
            return;
        };
        let mut in_flight = l.in_flight();
        for i in l.next_to_query() {
            if in_flight >= ALPHA || l.sent >= MAX_LOOKUP_QUERIES {
                break;
            }
            let q = match l.purpose {
                Purpose::FindNode => Query::FindNode {
                    id: self.id,
                    target: l.target,
                    want: Want::default(),
                },
                Purpose::GetPeers { .. } => Query::GetPeers {
                    id: self.id,
                    info_hash: InfoHash(l.target.0),
                    want: Want::default(),
                },
            };
            let c = &mut l.candidates[i];
            if self.send_query(c.addr, c.id, q, Some(key), now) {
                c.state = CState::InFlight;
                l.sent += 1;
                in_flight += 1;
            } else {
                break;
            }
        }
        // Converged: the K closest live candidates have all answered
        // (slower, farther nodes still in flight are not waited for).
        let converged = l
            .candidates
            .iter()
            .filter(|c| c.state != CState::Failed)
            .take(K)
            .all(|c| c.state == CState::Answered);
        let exhausted = l.next_to_query().is_empty() || l.sent >= MAX_LOOKUP_QUERIES;
        if converged || (in_flight == 0 && exhausted) || now >= l.deadline {
            self.finish(l, now);
        } else {
            self.lookups.insert(key, l);
        }
    }

    fn finish(&mut self, l: Lookup, now: Instant) {
        let Purpose::GetPeers { reply, announce } = l.purpose else {
            return;
        };
        if let Some(reply) = reply {
            let mut peers = l.peers;
            for p in self.store.get(&InfoHash(l.target.0), now, MAX_VALUES) {
                if !peers.contains(&p) {
                    peers.push(p);
                }
            }
            let _ = reply.try_send(peers);
        }
        if let Some(port) = announce {
            let targets: Vec<(SocketAddr, Option<NodeId>, Vec<u8>)> = l
                .candidates
                .iter()
                .filter(|c| c.state == CState::Answered)
                .filter(|c| !self.router_addrs.contains(&c.addr))
                .filter_map(|c| c.token.clone().map(|t| (c.addr, c.id, t)))
                .take(K)
                .collect();
            log::debug!("dht announce to {} nodes", targets.len());
            for (addr, id, token) in targets {
                let q = Query::AnnouncePeer {
                    id: self.id,
                    info_hash: InfoHash(l.target.0),
                    port,
                    token,
                    implied_port: false,
                };
                self.send_query(addr, id, q, None, now);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let expired: Vec<[u8; 2]> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.sent) >= QUERY_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for tid in expired {
            if let Some(p) = self.pending.remove(&tid) {
                if let Some(id) = p.id {
                    self.table.failed(&id, now);
                }
                if let Some(key) = p.lookup {
                    self.lookup_failed(key, p.addr, now);
                }
            }
        }
        let late: Vec<u64> = self
            .lookups
            .iter()
            .filter(|(_, l)| now >= l.deadline)
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            if let Some(l) = self.lookups.remove(&key) {
                self.finish(l, now);
            }
        }
        self.poll_routers(now);
        if now.saturating_duration_since(self.last_maintenance) >= MAINTENANCE_EVERY {
            self.last_maintenance = now;
            self.maintenance(now);
        }
    }

    fn maintenance(&mut self, now: Instant) {
        self.tokens.maybe_rotate(now);
        self.store.purge(now);
        self.rate
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < Duration::from_secs(1));
        if self.table.is_empty() {
            if now.saturating_duration_since(self.last_bootstrap) >= BOOTSTRAP_RETRY {
                self.bootstrap(now);
            }
            return;
        }
        let busy: HashSet<SocketAddr> = self.pending.values().map(|p| p.addr).collect();
        for (id, addr) in self.table.questionable(PINGS_PER_MAINTENANCE, now) {
            if !busy.contains(&addr) {
                self.send_query(addr, Some(id), Query::Ping { id: self.id }, None, now);
            }
        }
        if let Some(depth) = self.table.stale_buckets(1, now).first().copied() {
            self.table.touch_bucket(depth, now);
            let target = self.id.random_with_prefix(depth);
            self.start_lookup(target, Purpose::FindNode, BOOTSTRAP_TIME, &[], now);
        }
    }

    fn lookup_failed(&mut self, key: u64, addr: SocketAddr, now: Instant) {
        if let Some(l) = self.lookups.get_mut(&key) {
            if let Some(c) = l.candidates.iter_mut().find(|c| c.addr == addr) {
                c.state = CState::Failed;
            }
            self.step(key, now);
        }
    }

    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let limit = self.cfg.max_queries_per_ip_per_sec;
        if limit == 0 {
            return true;
        }
        if self.rate.len() >= MAX_RATE_ENTRIES && !self.rate.contains_key(&ip) {
            self.rate
                .retain(|_, (t, _)| now.saturating_duration_since(*t) < Duration::from_secs(1));
            if self.rate.len() >= MAX_RATE_ENTRIES {
                self.rate.clear();
            }
        }
        let e = self.rate.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= Duration::from_secs(1) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= limit
    }

    fn packet(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("dht: bad packet from {from}: {e}");
                if let Some(reply) = e.reply() {
                    if self.allow(from.ip(), now) {
                        self.send(&reply, from);
                    }
                }
                return;
            }
        };
        match msg.body {
            Body::Query(q) => {
                if self.allow(from.ip(), now) {
                    self.query(msg.tid, q, from, data.len(), now);
                }
            }
            Body::Response(r) => self.response(&msg.tid, r, from, now),
            Body::Error(e) => {
                let Some(p) = self.take_pending(&msg.tid, from) else {
                    return;
                };
                log::debug!("dht: error {} {:?} from {from}", e.code, e.msg);
                if let Some(key) = p.lookup {
                    self.lookup_failed(key, from, now);
                }
            }
        }
    }

    fn take_pending(&mut self, tid: &[u8], from: SocketAddr) -> Option<Pending> {
        let tid: [u8; 2] = tid.try_into().ok()?;
        if self.pending.get(&tid)?.addr != from {
            return None;
        }
        self.pending.remove(&tid)
    }

    fn query(&mut self, tid: Vec<u8>, q: Query, from: SocketAddr, size: usize, now: Instant) {
        let qid = q.id();
        // A querier whose address answered one of our queries is verified;
        // anyone else may be spoofing a victim's address, so its answer is
        // kept within MAX_AMPLIFICATION times its query.
        let verified = self
            .table
            .get(&qid)
            .is_some_and(|e| e.responded && e.addr == from);
        if qid != self.id && !self.router_addrs.contains(&from) {
            self.table.insert(qid, from, Contact::Queried, now);
        }
        let body = match q {
            Query::Ping { .. } => Body::Response(Response::id_only(self.id)),
            Query::FindNode { target, want, .. } => {
                let closest = self.table.closest(&target, K, now);
                let (nodes, nodes6) = compact_nodes(closest, self.v6, want);
                Body::Response(Response {
                    nodes,
                    nodes6,
                    ..Response::id_only(self.id)
                })
            }
            Query::GetPeers {
                info_hash, want, ..
            } => {
                // Peers of the querier's family only (BEP 32).
                let mut values: Vec<SocketAddr> = self
                    .store
                    .get(&info_hash, now, MAX_VALUES)
                    .into_iter()
                    .filter(|p| p.is_ipv6() == from.is_ipv6())
                    .collect();
                if let Some(&port) = self.own.get(&info_hash) {
                    if let Some(me) = own_ip_towards(from) {
                        values.insert(0, SocketAddr::new(me, port));
                        values.truncate(MAX_VALUES);
                    }
                }
                let closest = self.table.closest(&info_hash.into(), K, now);
                let (nodes, nodes6) = compact_nodes(closest, self.v6, want);
                Body::Response(Response {
                    id: self.id,
                    nodes,
                    nodes6,
                    values,
                    token: Some(self.tokens.token(from.ip(), now)),
                })
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                token,
                implied_port,
                ..
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.verify(from.ip(), &token, now) {
                    protocol_error("Bad token")
                } else if port == 0 {
                    protocol_error("Bad port")
                } else {
                    self.store
                        .add(info_hash, SocketAddr::new(from.ip(), port), now);
                    Body::Response(Response::id_only(self.id))
                }
            }
        };
        let mut msg = Message { tid, body };
        if !verified {
            bound_answer(&mut msg, size.saturating_mul(MAX_AMPLIFICATION));
        }
        self.send(&msg, from);
    }

    fn response(&mut self, tid: &[u8], r: Response, from: SocketAddr, now: Instant) {
        let Some(p) = self.take_pending(tid, from) else {
            return;
        };
        if r.id == self.id {
            return;
        }
        // Routers answer but store nothing: never in the table.
        if !self.router_addrs.contains(&from) {
            self.table.insert(r.id, from, Contact::Responded, now);
        }
        let Some(key) = p.lookup else {
            return;
        };
        let own = self.id;
        let nodes = usable_nodes(&r, self.v6);
        let Some(l) = self.lookups.get_mut(&key) else {
            return;
        };
        if let Some(c) = l.candidates.iter_mut().find(|c| c.addr == from) {
            c.state = CState::Answered;
            c.id = Some(r.id);
            c.token = r.token;
        }
        for (id, addr) in nodes {
            l.add_candidate(&own, Some(id), addr);
        }
        for v in r.values {
            if l.peers.len() < MAX_LOOKUP_PEERS && !l.peers.contains(&v) {
                l.peers.push(v);
            }
        }
        // The answering node's id may have moved it in the order.
        let mut cs = std::mem::take(&mut l.candidates);
        cs.sort_by_key(|c| l.key(c));
        l.candidates = cs;
        self.step(key, now);
    }
}

fn protocol_error(msg: &str) -> Body {
    Body::Error(krpc::Error {
        code: ERROR_PROTOCOL,
        msg: msg.to_string(),
    })
}
