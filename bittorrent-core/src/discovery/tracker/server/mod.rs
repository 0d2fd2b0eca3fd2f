//! The tracker embedded in every peer.
//!
//! It listens on the same port number as the peer wire protocol: a TCP
//! connection whose first bytes look like an HTTP request
//! ([`looks_like_http`]) is handed to [`TrackerServer::serve_http_connection`]
//! (or [`read_http_request`] + [`TrackerServer::handle_http`]); UDP packets on
//! the same port number go to [`TrackerServer::handle_udp`] (BEP 15).
//!
//! All state is in memory behind one `parking_lot::Mutex`; the server is
//! `Send + Sync` and meant to be shared through an `Arc`. Every size a remote
//! controls is bounded: swarms, peers per swarm, peers per answer, request
//! size, requests per second per IP.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::client::AnnounceEvent;
use crate::proto::bencode::OwnedValue;
use crate::proto::compact::encode as compact_addr;
use crate::proto::metainfo::InfoHash;
use crate::proto::tracker::url::parse_query;
use crate::proto::tracker::UDP_PROTOCOL_ID;

/// Largest HTTP request accepted by the embedded tracker (one request per connection).
pub const MAX_HTTP_REQUEST: usize = 8 * 1024;
/// Most header lines of a request (more: `400`).
const MAX_HTTP_HEADERS: usize = 64;
/// Most info-hashes answered in one scrape (BEP 15's packet limit is 74).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Width of the window in which a UDP connection id is minted.
const CONNECTION_ID_WINDOW_SECS: u64 = 60;

/// Settings of the embedded tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// `interval` sent to clients.
    pub interval: Duration,
    /// `min interval` sent to clients.
    pub min_interval: Duration,
    /// Peers that have not announced for this long are forgotten
    /// (should exceed `2 * interval`).
    pub peer_timeout: Duration,
    /// Track any info-hash (`true`) or only those passed to [`TrackerServer::allow`].
    pub open: bool,
    /// Most swarms tracked at once.
    pub max_swarms: usize,
    /// Most peers tracked per swarm.
    pub max_peers_per_swarm: usize,
    /// Most peers returned per announce (the client's `numwant` is clamped).
    pub max_numwant: usize,
    /// Most requests (HTTP or UDP, any kind) per second from one IP address
    /// (not counted for this machine's own addresses with `trust_local`).
    pub max_requests_per_sec_per_ip: u32,
    /// Most entries (ports) one remote IP address holds in one swarm; a new
    /// port beyond it replaces that address's least recently seen entry.
    /// With `trust_local`, this machine's own addresses hold any number
    /// (up to `max_peers_per_swarm`).
    pub max_peers_per_ip_per_swarm: usize,
    /// Requests from this machine (loopback, or an address of one of its
    /// interfaces) are neither rate-limited nor capped per address: many
    /// peers on one machine, a classroom, announce from one address, and
    /// the machine is not a flooder to defend against (default true).
    pub trust_local: bool,
    /// With `open`: most swarms one IP address may create per minute.
    pub max_new_swarms_per_ip_per_min: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            interval: Duration::from_secs(1800),
            min_interval: Duration::from_secs(300),
            peer_timeout: Duration::from_secs(3700),
            open: false,
            max_swarms: 10_000,
            max_peers_per_swarm: 5_000,
            max_numwant: 200,
            max_requests_per_sec_per_ip: 20,
            max_peers_per_ip_per_swarm: 16,
            trust_local: true,
            max_new_swarms_per_ip_per_min: 10,
        }
    }
}

#[derive(Debug, Clone)]
struct PeerEntry {
    peer_id: [u8; 20],
    /// A proven seeder: `left` is 0 now and the peer earlier announced
    /// `left > 0` or `event=completed`. A client that starts with `left=0`
    /// may have nothing at all (a magnet link without metadata announces
    /// that way), so it is not trusted as a seeder until then.
    seeder: bool,
    /// The peer has announced `left > 0` or `event=completed` at some point.
    leeched: bool,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: HashMap<SocketAddr, PeerEntry>,
    downloaded: u32,
    /// The last announce to it (the oldest swarm is evicted first).
    last_active: Option<Instant>,
}

impl Swarm {
    fn counts(&self) -> (u32, u32) {
        let seeders = self.peers.values().filter(|p| p.seeder).count() as u32;
        (seeders, self.peers.len() as u32 - seeders)
    }
}

#[derive(Debug, Default)]
struct Inner {
    swarms: HashMap<InfoHash, Swarm>,
    allowed: HashSet<InfoHash>,
    rate: HashMap<IpAddr, (Instant, u32)>,
    /// Swarms created per IP in the current minute (`open` trackers).
    new_swarms: HashMap<IpAddr, (Instant, u32)>,
    /// The peer id of the session this tracker is embedded in: its own
    /// entry (from a local address) is never evicted.
    own_peer_id: Option<[u8; 20]>,
}

/// One announce, from HTTP or UDP.
struct AnnounceParams {
    info_hash: InfoHash,
    peer_id: [u8; 20],
    port: u16,
    left: u64,
    event: AnnounceEvent,
    numwant: Option<usize>,
}

/// Result of an announce: peers to return and the swarm's counters.
struct AnnounceOutcome {
    peers: Vec<(SocketAddr, [u8; 20])>,
    complete: u32,
    incomplete: u32,
}

/// Which address family to return peers of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

/// The in-memory tracker. `Send + Sync`; share it with `Arc`.
#[derive(Debug)]
pub struct TrackerServer {
    cfg: TrackerConfig,
    inner: Mutex<Inner>,
    secret: [u8; 16],
    epoch: Instant,
    /// Announces recorded so far (see [`TrackerServer::changes`]).
    changes: std::sync::atomic::AtomicU64,
    /// Whether an address is this machine's (`util::local::is_local`;
    /// tests inject another rule).
    is_local: fn(IpAddr) -> bool,
}

use crate::proto::tracker::{be32, be64};

impl TrackerServer {
    /// A tracker with `cfg` and a fresh random secret for UDP connection ids.
    pub fn new(cfg: TrackerConfig) -> TrackerServer {
        let mut secret = [0u8; 16];
        secret[..8].copy_from_slice(&crate::util::rng::random_u64().to_le_bytes());
        secret[8..].copy_from_slice(&crate::util::rng::random_u64().to_le_bytes());
        TrackerServer {
            cfg,
            inner: Mutex::new(Inner::default()),
            secret,
            epoch: Instant::now(),
            changes: std::sync::atomic::AtomicU64::new(0),
            is_local: crate::util::local::is_local,
        }
    }

    /// The same tracker deciding which addresses are this machine's with
    /// `is_local` (tests: play a remote host on loopback, or the reverse).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn with_local_rule(mut self, is_local: fn(IpAddr) -> bool) -> TrackerServer {
        self.is_local = is_local;
        self
    }

    /// The peer id of the session this tracker runs in: its own entry is
    /// never evicted to make room for others.
    pub fn set_own_peer_id(&self, id: [u8; 20]) {
        self.inner.lock().own_peer_id = Some(id);
    }

    /// Whether `ip` is exempt from the per-address limits.
    fn trusted(&self, ip: IpAddr) -> bool {
        self.cfg.trust_local && (self.is_local)(ip)
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Track `ih` (needed unless the tracker is `open`).
    pub fn allow(&self, ih: InfoHash) {
        self.inner.lock().allowed.insert(ih);
    }

    /// Stop tracking `ih` and forget its swarm.
    pub fn disallow(&self, ih: InfoHash) {
        let mut g = self.inner.lock();
        g.allowed.remove(&ih);
        g.swarms.remove(&ih);
    }

    /// A counter that moves whenever a peer announces to a swarm: the
    /// session's announcer looks at the swarms only when it moved.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Current (not expired) peers of a swarm.
    pub fn peers(&self, ih: &InfoHash) -> Vec<SocketAddr> {
        let now = Instant::now();
        let g = self.inner.lock();
        g.swarms.get(ih).map_or_else(Vec::new, |s| {
            s.peers
                .iter()
                .filter(|(_, p)| now.saturating_duration_since(p.last_seen) < self.cfg.peer_timeout)
                .map(|(a, _)| *a)
                .collect()
        })
    }

    /// Forget peers that have not announced within `peer_timeout` of `now`,
    /// swarms left empty, and stale rate-limit entries.
    pub fn expire(&self, now: Instant) {
        let timeout = self.cfg.peer_timeout;
        let mut g = self.inner.lock();
        for s in g.swarms.values_mut() {
            s.peers
                .retain(|_, p| now.saturating_duration_since(p.last_seen) < timeout);
        }
        // A swarm with no live peer goes, whatever its counters say.
        g.swarms.retain(|_, s| !s.peers.is_empty());
        g.rate
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < Duration::from_secs(1));
        g.new_swarms
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < Duration::from_secs(60));
    }
}

mod http;
mod swarm;
#[cfg(test)]
mod test_support;
mod udp;

pub use http::{looks_like_http, read_http_request};
