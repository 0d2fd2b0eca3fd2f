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

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn be32(p: &[u8], at: usize) -> u32 {
    p.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

fn be64(p: &[u8], at: usize) -> u64 {
    p.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_be_bytes)
}

fn failure_body(reason: &str) -> Vec<u8> {
    OwnedValue::Dict(vec![(
        b"failure reason".to_vec(),
        OwnedValue::bytes(reason),
    )])
    .to_bytes()
}

fn http_response(status: u16, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn udp_error(tid: u32, msg: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + msg.len());
    p.extend_from_slice(&3u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(msg.as_bytes());
    p
}

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

    /// Count a new swarm created by `ip`; false when over the per-minute
    /// limit.
    fn new_swarm_ok(&self, g: &mut Inner, ip: IpAddr, now: Instant) -> bool {
        if g.new_swarms.len() > 100_000 {
            g.new_swarms
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < Duration::from_secs(60));
        }
        let e = g.new_swarms.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= Duration::from_secs(60) {
            *e = (now, 0);
        }
        if e.1 >= self.cfg.max_new_swarms_per_ip_per_min {
            return false;
        }
        e.1 += 1;
        true
    }

    /// Count a request from `ip`; false when over the per-second limit.
    fn rate_ok(&self, g: &mut Inner, ip: IpAddr, now: Instant) -> bool {
        if self.trusted(ip) {
            return true;
        }
        if g.rate.len() > 100_000 {
            g.rate
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < Duration::from_secs(1));
        }
        let e = g.rate.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= Duration::from_secs(1) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= self.cfg.max_requests_per_sec_per_ip
    }

    fn tracked(&self, g: &Inner, ih: &InfoHash) -> bool {
        self.cfg.open || g.allowed.contains(ih)
    }

    fn do_announce(
        &self,
        g: &mut Inner,
        p: &AnnounceParams,
        ip: IpAddr,
        family: Family,
        now: Instant,
    ) -> Result<AnnounceOutcome, String> {
        if !self.tracked(g, &p.info_hash) {
            return Err("unregistered torrent".into());
        }
        let me = SocketAddr::new(ip, p.port);
        if !g.swarms.contains_key(&p.info_hash) {
            if p.event == AnnounceEvent::Stopped {
                return Ok(AnnounceOutcome {
                    peers: Vec::new(),
                    complete: 0,
                    incomplete: 0,
                });
            }
            let ours = g.allowed.contains(&p.info_hash);
            if !ours && !self.new_swarm_ok(g, ip, now) {
                return Err("too many new torrents from your address; try again later".into());
            }
            if g.swarms.len() >= self.cfg.max_swarms {
                // Full: the least recently announced swarm that is not one
                // of our own torrents makes room.
                let oldest = g
                    .swarms
                    .iter()
                    .filter(|(ih, _)| !g.allowed.contains(*ih))
                    .min_by_key(|(_, s)| s.last_active)
                    .map(|(ih, _)| *ih);
                match oldest {
                    Some(ih) => {
                        g.swarms.remove(&ih);
                    }
                    None => return Err("tracker is full: too many torrents".into()),
                }
            }
        }
        let timeout = self.cfg.peer_timeout;
        let trusted = self.trusted(ip);
        let own_id = g.own_peer_id;
        let is_local = self.is_local;
        // The session's own entry (a local address, our peer id) is never
        // the one that makes room.
        let evictable = |a: &SocketAddr, e: &PeerEntry| {
            own_id.is_none_or(|id| id != e.peer_id) || !is_local(a.ip())
        };
        let swarm = g.swarms.entry(p.info_hash).or_default();
        swarm.last_active = Some(now);
        if p.event == AnnounceEvent::Stopped {
            swarm.peers.remove(&me);
        } else {
            if !trusted && !swarm.peers.contains_key(&me) {
                // One remote host holds at most a few ports: its least
                // recently seen entry makes room for a new one.
                let mine: Vec<(SocketAddr, Instant)> = swarm
                    .peers
                    .iter()
                    .filter(|(a, e)| a.ip() == ip && evictable(a, e))
                    .map(|(a, e)| (*a, e.last_seen))
                    .collect();
                if mine.len() >= self.cfg.max_peers_per_ip_per_swarm.max(1) {
                    if let Some((old, _)) = mine.iter().min_by_key(|(_, t)| *t) {
                        swarm.peers.remove(old);
                    }
                }
            }
            if !swarm.peers.contains_key(&me) && swarm.peers.len() >= self.cfg.max_peers_per_swarm {
                swarm
                    .peers
                    .retain(|_, e| now.saturating_duration_since(e.last_seen) < timeout);
                if swarm.peers.len() >= self.cfg.max_peers_per_swarm {
                    // Still full: the least recently seen entry makes room,
                    // so newcomers are never locked out.
                    let oldest = swarm
                        .peers
                        .iter()
                        .filter(|(a, e)| evictable(a, e))
                        .min_by_key(|(_, e)| e.last_seen)
                        .map(|(a, _)| *a);
                    if let Some(a) = oldest {
                        swarm.peers.remove(&a);
                    }
                }
            }
            if p.event == AnnounceEvent::Completed {
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let leeched = p.left > 0
                || p.event == AnnounceEvent::Completed
                || swarm.peers.get(&me).is_some_and(|e| e.leeched);
            swarm.peers.insert(
                me,
                PeerEntry {
                    peer_id: p.peer_id,
                    seeder: p.left == 0 && leeched,
                    leeched,
                    last_seen: now,
                },
            );
        }
        let (complete, incomplete) = swarm.counts();
        let want = p.numwant.unwrap_or(50).min(self.cfg.max_numwant);
        let mut peers: Vec<(SocketAddr, [u8; 20])> =
            if p.event == AnnounceEvent::Stopped || want == 0 {
                Vec::new()
            } else {
                // Only a proven seeder is spared the other seeders; an
                // announcer with `left=0` and no history may have nothing.
                let seeder = swarm.peers.get(&me).is_some_and(|e| e.seeder);
                swarm
                    .peers
                    .iter()
                    .filter(|(a, e)| {
                        **a != me
                            && e.peer_id != p.peer_id
                            && !(seeder && e.seeder)
                            && now.saturating_duration_since(e.last_seen) < timeout
                            && match family {
                                Family::Any => true,
                                Family::V4 => a.is_ipv4(),
                                Family::V6 => a.is_ipv6(),
                            }
                    })
                    .map(|(a, e)| (*a, e.peer_id))
                    .collect()
            };
        if peers.len() > want {
            // Partial Fisher–Yates: a random subset of `want` peers.
            for i in 0..want {
                let j = i + (crate::util::rng::random_u64() % (peers.len() - i) as u64) as usize;
                peers.swap(i, j);
            }
            peers.truncate(want);
        }
        Ok(AnnounceOutcome {
            peers,
            complete,
            incomplete,
        })
    }

    fn scrape_entry(&self, g: &Inner, ih: &InfoHash) -> (u32, u32, u32) {
        match g.swarms.get(ih) {
            Some(s) if self.tracked(g, ih) => {
                let (c, i) = s.counts();
                (c, s.downloaded, i)
            }
            _ => (0, 0, 0),
        }
    }

    /// Answer one HTTP request (the bytes up to and including the blank
    /// line) from `remote`: `GET /announce?…` or `GET /scrape?…`. Returns the
    /// complete HTTP/1.0 response. Tracker refusals are `200` with a
    /// bencoded `failure reason`; malformed requests are `400` with one.
    pub fn handle_http(&self, request: &[u8], remote: SocketAddr) -> Vec<u8> {
        self.handle_http_at(request, remote, Instant::now())
    }

    /// [`TrackerServer::handle_http`] at a given time (for tests).
    pub fn handle_http_at(&self, request: &[u8], remote: SocketAddr, now: Instant) -> Vec<u8> {
        let ip = canonical(remote.ip());
        // The request head, parsed by `httparse` (a partial head is fine:
        // only the request line matters here).
        let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(request);
        let (Some(method), Some(target), Some(_version)) = (req.method, req.path, req.version)
        else {
            let why = match parsed {
                Err(httparse::Error::Version) => "unsupported HTTP version",
                _ => "malformed request line",
            };
            return http_response(400, &failure_body(why));
        };
        if let Err(e) = parsed {
            return http_response(400, &failure_body(&format!("malformed request: {e}")));
        }
        if method != "GET" {
            return http_response(405, &failure_body("only GET is supported"));
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let last = path.rsplit('/').next().unwrap_or("");
        let params = parse_query(query, 256);
        let is_announce = last.starts_with("announce");
        let is_scrape = last.starts_with("scrape");
        if !is_announce && !is_scrape {
            return http_response(404, &failure_body("unknown path: use /announce or /scrape"));
        }
        let mut g = self.inner.lock();
        if !self.rate_ok(&mut g, ip, now) {
            return http_response(200, &failure_body("rate limit exceeded: slow down"));
        }
        if is_scrape {
            let mut files = Vec::new();
            for (_, v) in params
                .iter()
                .filter(|(k, _)| k == "info_hash")
                .take(MAX_SCRAPE_HASHES)
            {
                let Ok(ih) = <[u8; 20]>::try_from(v.as_slice()) else {
                    return http_response(400, &failure_body("info_hash must be 20 bytes"));
                };
                let (c, d, i) = self.scrape_entry(&g, &InfoHash(ih));
                files.push((
                    ih.to_vec(),
                    OwnedValue::Dict(vec![
                        (b"complete".to_vec(), OwnedValue::Int(c.into())),
                        (b"downloaded".to_vec(), OwnedValue::Int(d.into())),
                        (b"incomplete".to_vec(), OwnedValue::Int(i.into())),
                    ]),
                ));
            }
            let body =
                OwnedValue::Dict(vec![(b"files".to_vec(), OwnedValue::Dict(files))]).to_bytes();
            return http_response(200, &body);
        }
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_slice())
        };
        let num = |k: &str| {
            get(k)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let Some(info_hash) = get("info_hash").and_then(|v| <[u8; 20]>::try_from(v).ok()) else {
            return http_response(400, &failure_body("missing or invalid info_hash"));
        };
        let Some(peer_id) = get("peer_id").and_then(|v| <[u8; 20]>::try_from(v).ok()) else {
            return http_response(400, &failure_body("missing or invalid peer_id"));
        };
        let Some(port) = num("port")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            return http_response(400, &failure_body("missing or invalid port"));
        };
        let event = match get("event") {
            None | Some(b"") | Some(b"empty") | Some(b"paused") => AnnounceEvent::None,
            Some(b"started") => AnnounceEvent::Started,
            Some(b"completed") => AnnounceEvent::Completed,
            Some(b"stopped") => AnnounceEvent::Stopped,
            Some(_) => return http_response(400, &failure_body("invalid event")),
        };
        let params_a = AnnounceParams {
            info_hash: InfoHash(info_hash),
            peer_id,
            port,
            left: num("left").unwrap_or(1),
            event,
            numwant: num("numwant").map(|n| n.min(usize::MAX as u64) as usize),
        };
        let compact = get("compact") != Some(b"0");
        let no_peer_id = get("no_peer_id") == Some(b"1");
        let out = match self.do_announce(&mut g, &params_a, ip, Family::Any, now) {
            Ok(o) => o,
            Err(reason) => return http_response(200, &failure_body(&reason)),
        };
        drop(g);
        let mut d = vec![
            (
                b"interval".to_vec(),
                OwnedValue::Int(self.cfg.interval.as_secs() as i64),
            ),
            (
                b"min interval".to_vec(),
                OwnedValue::Int(self.cfg.min_interval.as_secs() as i64),
            ),
            (b"complete".to_vec(), OwnedValue::Int(out.complete.into())),
            (
                b"incomplete".to_vec(),
                OwnedValue::Int(out.incomplete.into()),
            ),
        ];
        if compact {
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for (a, _) in &out.peers {
                if a.is_ipv4() {
                    v4.extend_from_slice(&compact_addr(a));
                } else {
                    v6.extend_from_slice(&compact_addr(a));
                }
            }
            d.push((b"peers".to_vec(), OwnedValue::Bytes(v4)));
            if !v6.is_empty() {
                d.push((b"peers6".to_vec(), OwnedValue::Bytes(v6)));
            }
        } else {
            let list = out
                .peers
                .iter()
                .map(|(a, id)| {
                    let mut e = vec![
                        (b"ip".to_vec(), OwnedValue::bytes(a.ip().to_string())),
                        (b"port".to_vec(), OwnedValue::Int(a.port().into())),
                    ];
                    if !no_peer_id {
                        e.push((b"peer id".to_vec(), OwnedValue::bytes(id)));
                    }
                    OwnedValue::Dict(e)
                })
                .collect();
            d.push((b"peers".to_vec(), OwnedValue::List(list)));
        }
        http_response(200, &OwnedValue::Dict(d).to_bytes())
    }

    fn connection_id(&self, ip: IpAddr, window: u64) -> u64 {
        let mut h = sha1_smol::Sha1::new();
        h.update(&self.secret);
        match ip {
            IpAddr::V4(v4) => h.update(&v4.octets()),
            IpAddr::V6(v6) => h.update(&v6.octets()),
        }
        h.update(&window.to_be_bytes());
        let d = h.digest().bytes();
        // The UDP socket is shared with the DHT: an id we issue never begins
        // with `d` (a KRPC dictionary) nor like a uTP header.
        let first = crate::discovery::udp::tracker_first_byte(d[0]);
        u64::from_be_bytes([first, d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    fn window(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / CONNECTION_ID_WINDOW_SECS
    }

    /// Answer one BEP 15 packet from `remote`, or `None` to stay silent
    /// (too short, not a tracker packet, or an error reply to an
    /// unauthenticated packet that would be larger than it). Connection ids are derived from a
    /// secret, the client's IP and the minute, so no per-client state is kept;
    /// an id is accepted for two to three minutes.
    pub fn handle_udp(&self, packet: &[u8], remote: SocketAddr) -> Option<Vec<u8>> {
        self.handle_udp_at(packet, remote, Instant::now())
    }

    /// [`TrackerServer::handle_udp`] at a given time (for tests).
    pub fn handle_udp_at(
        &self,
        packet: &[u8],
        remote: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if packet.len() < 16 {
            return None;
        }
        let ip = canonical(remote.ip());
        let cid = be64(packet, 0);
        let action = be32(packet, 8);
        let tid = be32(packet, 12);
        if action == 0 && cid != UDP_PROTOCOL_ID {
            return None;
        }
        // Replies that precede authentication are never larger than the
        // request, so a spoofed source address cannot be used to amplify.
        let unauthenticated = |reply: Vec<u8>| (reply.len() <= packet.len()).then_some(reply);
        let mut g = self.inner.lock();
        if !self.rate_ok(&mut g, ip, now) {
            return unauthenticated(udp_error(tid, "rate limit exceeded: slow down"));
        }
        let w = self.window(now);
        if action == 0 {
            let mut p = Vec::with_capacity(16);
            p.extend_from_slice(&0u32.to_be_bytes());
            p.extend_from_slice(&tid.to_be_bytes());
            p.extend_from_slice(&self.connection_id(ip, w).to_be_bytes());
            return Some(p);
        }
        let valid = (0..3).any(|back| w >= back && self.connection_id(ip, w - back) == cid);
        if !valid {
            return unauthenticated(udp_error(tid, "invalid connection id"));
        }
        match action {
            1 => {
                if packet.len() < 98 {
                    return Some(udp_error(tid, "announce packet too short"));
                }
                let mut info_hash = [0u8; 20];
                info_hash.copy_from_slice(&packet[16..36]);
                let mut peer_id = [0u8; 20];
                peer_id.copy_from_slice(&packet[36..56]);
                let event = match be32(packet, 80) {
                    0 => AnnounceEvent::None,
                    1 => AnnounceEvent::Completed,
                    2 => AnnounceEvent::Started,
                    3 => AnnounceEvent::Stopped,
                    _ => return Some(udp_error(tid, "invalid event")),
                };
                let numwant = be32(packet, 92) as i32;
                let port = u16::from_be_bytes([packet[96], packet[97]]);
                if port == 0 {
                    return Some(udp_error(tid, "invalid port"));
                }
                let params = AnnounceParams {
                    info_hash: InfoHash(info_hash),
                    peer_id,
                    port,
                    left: be64(packet, 64),
                    event,
                    numwant: (numwant >= 0).then_some(numwant as usize),
                };
                let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
                let out = match self.do_announce(&mut g, &params, ip, family, now) {
                    Ok(o) => o,
                    Err(reason) => return Some(udp_error(tid, &reason)),
                };
                drop(g);
                let mut p = Vec::with_capacity(20 + 18 * out.peers.len());
                p.extend_from_slice(&1u32.to_be_bytes());
                p.extend_from_slice(&tid.to_be_bytes());
                p.extend_from_slice(
                    &(self.cfg.interval.as_secs().min(u32::MAX as u64) as u32).to_be_bytes(),
                );
                p.extend_from_slice(&out.incomplete.to_be_bytes());
                p.extend_from_slice(&out.complete.to_be_bytes());
                for (a, _) in &out.peers {
                    p.extend_from_slice(&compact_addr(a));
                }
                Some(p)
            }
            2 => {
                let mut p = Vec::with_capacity(8 + 12 * MAX_SCRAPE_HASHES);
                p.extend_from_slice(&2u32.to_be_bytes());
                p.extend_from_slice(&tid.to_be_bytes());
                for h in packet[16..].chunks_exact(20).take(MAX_SCRAPE_HASHES) {
                    let mut ih = [0u8; 20];
                    ih.copy_from_slice(h);
                    let (c, d, i) = self.scrape_entry(&g, &InfoHash(ih));
                    p.extend_from_slice(&c.to_be_bytes());
                    p.extend_from_slice(&d.to_be_bytes());
                    p.extend_from_slice(&i.to_be_bytes());
                }
                Some(p)
            }
            _ => Some(udp_error(tid, "unknown action")),
        }
    }

    /// Read one HTTP request from `stream` (whose first bytes, already read
    /// while sniffing, are `already_read`), answer it and flush. Gives up at
    /// `deadline`. The caller closes the stream afterwards.
    pub(crate) fn serve_http_connection(
        &self,
        stream: &mut TcpStream,
        already_read: &[u8],
        deadline: Instant,
    ) -> io::Result<()> {
        let remote = stream.peer_addr()?;
        // Short reads: `read_http_request` checks the deadline between them.
        let step = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        stream.set_read_timeout(Some(step))?;
        let mut prefixed = already_read.chain(&mut *stream);
        let request = read_http_request(&mut prefixed, MAX_HTTP_REQUEST, deadline)?;
        let response = self.handle_http(&request, remote);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        stream.set_write_timeout(Some(left))?;
        stream.write_all(&response)?;
        stream.flush()
    }

    /// Serve BEP 15 on `socket` until `stop` is set (checked every 100 ms).
    /// Also expires stale peers, swarms and rate-limit entries every 10 s
    /// (this thread is the tracker's housekeeper).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub(crate) fn run_udp(&self, socket: &UdpSocket, stop: &AtomicBool) -> io::Result<()> {
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut buf = [0u8; 2048];
        let mut last_expire = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_expire.elapsed() >= Duration::from_secs(10) {
                last_expire = Instant::now();
                self.expire(last_expire);
            }
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Some(reply) = self.handle_udp(&buf[..n], from) {
                        if let Err(e) = socket.send_to(&reply, from) {
                            log::debug!("tracker UDP send to {from}: {e}");
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // ICMP errors from earlier sends surface here on some systems.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// True when `first_bytes` (at least one byte) could begin an HTTP request
/// (`GET `, `HEAD `, `POST `) rather than a BitTorrent handshake (which
/// begins with byte 19 and `BitTorrent protocol`).
pub fn looks_like_http(first_bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 3] = [b"GET ", b"HEAD ", b"POST "];
    !first_bytes.is_empty()
        && METHODS.iter().any(|m| {
            let n = first_bytes.len().min(m.len());
            first_bytes[..n] == m[..n]
        })
}

/// Read an HTTP request head (through the blank line) from `stream`.
///
/// Fails with `InvalidData` past `limit` bytes, `TimedOut` at `deadline`,
/// `UnexpectedEof` if the peer closes first. If `stream` is a socket, give it
/// a short read timeout (the deadline is checked between reads).
pub fn read_http_request(
    stream: &mut impl Read,
    limit: usize,
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(p + 4);
            return Ok(buf);
        }
        if buf.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP request too large",
            ));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP request not received in time",
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the request ended",
                ))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::discovery::tracker::client::{udp_announce_packet, AnnounceRequest};
    use crate::proto::bencode::{decode, Value};
    use crate::proto::tracker::{
        parse_announce_response, parse_udp_announce_response, percent_encode,
    };

    fn ih() -> InfoHash {
        InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap()
    }

    /// Only loopback is this machine's in these tests (whatever addresses
    /// the host running them has).
    fn loopback_only(ip: IpAddr) -> bool {
        ip.to_canonical().is_loopback()
    }

    fn open_server() -> TrackerServer {
        TrackerServer::new(TrackerConfig {
            open: true,
            max_requests_per_sec_per_ip: 1000,
            ..Default::default()
        })
        .with_local_rule(loopback_only)
    }

    fn get(s: &TrackerServer, query: &str, remote: &str) -> (u16, Vec<u8>) {
        let req = format!("GET /announce?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = s.handle_http(req.as_bytes(), remote.parse().unwrap());
        let (status, body) = split_response(&resp);
        (status, body)
    }

    /// Status and body of one of our server's responses (it always sends
    /// `Content-Length`).
    fn split_response(resp: &[u8]) -> (u16, Vec<u8>) {
        let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&resp[..end]).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap();
        let body = resp[end + 4..].to_vec();
        assert_eq!(body.len(), len);
        (status, body)
    }

    fn announce_q(id: u8, port: u16, extra: &str) -> String {
        format!(
            "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=10{extra}",
            percent_encode(&ih().0),
            percent_encode(&[id; 20])
        )
    }

    #[test]
    fn http_announce_sees_others_not_self() {
        let s = open_server();
        let (st, b) = get(&s, &announce_q(1, 6881, "&event=started"), "10.0.0.1:5000");
        assert_eq!(st, 200);
        assert!(parse_announce_response(&b).unwrap().peers.is_empty());
        let (_, b) = get(&s, &announce_q(2, 6882, ""), "10.0.0.2:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
        assert_eq!(r.incomplete, Some(2));
        // Dictionary model with and without peer ids.
        let (_, b) = get(&s, &announce_q(2, 6882, "&compact=0"), "10.0.0.2:5000");
        let v = decode(&b).unwrap();
        let p = &v.get(b"peers").and_then(Value::as_list).unwrap()[0];
        assert_eq!(
            p.get(b"peer id").and_then(Value::as_bytes),
            Some(&[1u8; 20][..])
        );
        let (_, b) = get(
            &s,
            &announce_q(2, 6882, "&compact=0&no_peer_id=1"),
            "10.0.0.2:5000",
        );
        let v = decode(&b).unwrap();
        assert!(v.get(b"peers").and_then(Value::as_list).unwrap()[0]
            .get(b"peer id")
            .is_none());
        // IPv6 peer shows up in peers6.
        get(&s, &announce_q(3, 6883, ""), "[2001:db8::1]:5000");
        let (_, b) = get(&s, &announce_q(2, 6882, ""), "10.0.0.2:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers.len(), 2);
        assert!(decode(&b).unwrap().get(b"peers6").is_some());
        // Stopped removes.
        get(&s, &announce_q(1, 6881, "&event=stopped"), "10.0.0.1:5000");
        assert_eq!(s.peers(&ih()).len(), 2);
        // numwant clamps.
        let (_, b) = get(&s, &announce_q(2, 6882, "&numwant=0"), "10.0.0.2:5000");
        assert!(parse_announce_response(&b).unwrap().peers.is_empty());
    }

    #[test]
    fn http_errors_and_limits() {
        let s = TrackerServer::new(TrackerConfig {
            max_swarms: 1,
            max_peers_per_swarm: 1,
            max_requests_per_sec_per_ip: 1000,
            ..Default::default()
        });
        let fail = |(st, b): (u16, Vec<u8>)| match parse_announce_response(&b) {
            Err(crate::proto::tracker::ResponseError::Failure(f)) => (st, f),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fail(get(&s, &announce_q(1, 1, ""), "1.1.1.1:1")),
            (200, "unregistered torrent".into())
        );
        s.allow(ih());
        assert_eq!(get(&s, &announce_q(1, 1, ""), "1.1.1.1:1").0, 200);
        // A full swarm makes room: the least recently seen entry goes.
        assert_eq!(get(&s, &announce_q(2, 2, ""), "1.1.1.2:1").0, 200);
        assert_eq!(s.peers(&ih()), vec!["1.1.1.2:2".parse().unwrap()]);
        let (st, _) = fail(get(&s, "info_hash=abc&peer_id=x&port=1", "1.1.1.1:1"));
        assert_eq!(st, 400);
        let (st, _) = fail(get(&s, &announce_q(1, 0, ""), "1.1.1.1:1"));
        assert_eq!(st, 400);
        let r = s.handle_http(b"\x13BitTorrent protocol", "1.1.1.1:1".parse().unwrap());
        assert!(r.starts_with(b"HTTP/1.0 400"));
        let r = s.handle_http(b"GET /foo HTTP/1.0\r\n\r\n", "1.1.1.1:1".parse().unwrap());
        assert!(r.starts_with(b"HTTP/1.0 404"));
        let other = InfoHash([9; 20]);
        s.allow(other);
        let q = announce_q(1, 1, "").replace(&percent_encode(&ih().0), &percent_encode(&other.0));
        assert_eq!(
            fail(get(&s, &q, "1.1.1.1:1")).1,
            "tracker is full: too many torrents"
        );
        // Rate limit.
        let s = TrackerServer::new(TrackerConfig {
            open: true,
            max_requests_per_sec_per_ip: 2,
            ..Default::default()
        })
        .with_local_rule(loopback_only);
        get(&s, &announce_q(1, 1, ""), "1.1.1.1:1");
        get(&s, &announce_q(1, 1, ""), "1.1.1.1:1");
        assert!(fail(get(&s, &announce_q(1, 1, ""), "1.1.1.1:1"))
            .1
            .contains("rate limit"));
    }

    #[test]
    fn left_zero_announcers_are_not_hidden_from_each_other() {
        // A seeder that started complete and a magnet client without
        // metadata both announce `started` with `left=0`: neither is a
        // proven seeder, so each learns of the other and nobody is counted
        // complete (issue 10: rqbit never learned of the seeder).
        let s = open_server();
        let zero =
            |id: u8, port: u16| announce_q(id, port, "&event=started").replace("left=10", "left=0");
        get(&s, &zero(1, 6881), "10.0.0.1:5000");
        let (_, b) = get(&s, &zero(2, 6882), "10.0.0.2:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
        assert_eq!((r.complete, r.incomplete), (Some(0), Some(2)));
        // `completed` proves it: the first one is now a seeder, spared
        // nobody unproven, counted complete.
        let done = announce_q(1, 6881, "&event=completed").replace("left=10", "left=0");
        let (_, b) = get(&s, &done, "10.0.0.1:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.2:6882".parse().unwrap()]);
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
        // A later plain announce keeps the proof.
        let again = announce_q(1, 6881, "").replace("left=10", "left=0");
        let (_, b) = get(&s, &again, "10.0.0.1:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    }

    /// An announce for swarm `n` (info-hash `[n; 20]`) from `remote`, at `at`.
    fn announce_at(s: &TrackerServer, n: u8, port: u16, remote: &str, at: Instant) -> Vec<u8> {
        let q =
            announce_q(1, port, "").replace(&percent_encode(&ih().0), &percent_encode(&[n; 20]));
        let req = format!("GET /announce?{q} HTTP/1.0\r\n\r\n");
        let resp = s.handle_http_at(req.as_bytes(), remote.parse().unwrap(), at);
        split_response(&resp).1
    }

    fn refused(body: &[u8]) -> bool {
        matches!(
            parse_announce_response(body),
            Err(crate::proto::tracker::ResponseError::Failure(_))
        )
    }

    #[test]
    fn one_host_holds_a_few_ports_per_swarm() {
        let s = open_server();
        let t0 = Instant::now();
        // 144 ports from one remote host (the review's figure): 16 entries
        // stay, the most recent ones.
        for port in 1..=144u16 {
            let at = t0 + Duration::from_millis(u64::from(port));
            assert!(!refused(&announce_at(&s, 1, port, "10.9.9.9:1", at)));
        }
        let mut held: Vec<u16> = s
            .peers(&InfoHash([1; 20]))
            .iter()
            .map(|a| a.port())
            .collect();
        held.sort_unstable();
        assert_eq!(held, (129..=144).collect::<Vec<u16>>());
        // Others still get in; peers on this machine are not capped.
        assert!(!refused(&announce_at(&s, 1, 7000, "10.1.1.1:1", t0)));
        for port in 1..=40 {
            announce_at(&s, 1, port, "127.0.0.1:1", t0);
        }
        assert_eq!(s.peers(&InfoHash([1; 20])).len(), 16 + 1 + 40);
    }

    #[test]
    fn open_tracker_limits_new_swarms_per_host_and_evicts_oldest() {
        let s = TrackerServer::new(TrackerConfig {
            open: true,
            max_requests_per_sec_per_ip: 100_000,
            max_swarms: 12,
            ..Default::default()
        })
        .with_local_rule(loopback_only);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for n in 0..10 {
            assert!(!refused(&announce_at(
                &s,
                n,
                1,
                "10.0.0.1:1",
                ms(u64::from(n))
            )));
        }
        // The 11th new swarm in a minute from one host is refused...
        assert!(refused(&announce_at(&s, 10, 1, "10.0.0.1:1", ms(20))));
        // ...but announces to its existing swarms are fine, and so are
        // other hosts; a minute later it may create again.
        assert!(!refused(&announce_at(&s, 3, 2, "10.0.0.1:1", ms(30))));
        assert!(!refused(&announce_at(&s, 20, 1, "10.0.0.2:1", ms(40))));
        let later = t0 + Duration::from_secs(61);
        assert!(!refused(&announce_at(&s, 10, 1, "10.0.0.1:1", later)));
        // The table holds 12: each newcomer evicts the least recently
        // announced swarm (0, then 1) instead of being refused.
        assert!(!refused(&announce_at(&s, 21, 1, "10.0.0.3:1", later)));
        assert!(!refused(&announce_at(&s, 22, 1, "10.0.0.3:1", later)));
        assert!(s.peers(&InfoHash([0; 20])).is_empty());
        assert!(s.peers(&InfoHash([1; 20])).is_empty());
        assert!(!s.peers(&InfoHash([2; 20])).is_empty());
        assert!(!s.peers(&InfoHash([3; 20])).is_empty());
        assert_eq!(s.peers(&InfoHash([22; 20])).len(), 1);
    }

    #[test]
    fn a_completed_swarm_expires_with_its_last_peer() {
        let s = open_server();
        get(
            &s,
            &announce_q(1, 1, "&event=completed").replace("left=10", "left=0"),
            "1.1.1.1:1",
        );
        s.expire(Instant::now() + Duration::from_secs(4000));
        assert!(s.inner.lock().swarms.is_empty());
    }

    #[test]
    fn scrape_and_expiry() {
        let s = open_server();
        get(
            &s,
            &announce_q(1, 1, "&event=completed").replace("left=10", "left=0"),
            "1.1.1.1:1",
        );
        get(&s, &announce_q(2, 2, ""), "1.1.1.2:1");
        let req = format!(
            "GET /scrape?info_hash={} HTTP/1.0\r\n\r\n",
            percent_encode(&ih().0)
        );
        let resp = s.handle_http(req.as_bytes(), "1.1.1.1:1".parse().unwrap());
        let (_, b) = split_response(&resp);
        let r = crate::proto::tracker::parse_scrape_response(&b).unwrap();
        assert_eq!(r[0].1.complete, 1);
        assert_eq!(r[0].1.incomplete, 1);
        assert_eq!(r[0].1.downloaded, 1);
        assert_eq!(s.peers(&ih()).len(), 2);
        s.expire(Instant::now() + Duration::from_secs(4000));
        assert!(s.peers(&ih()).is_empty());
    }

    #[test]
    fn udp_connect_announce_scrape() {
        let s = open_server();
        let a: SocketAddr = "10.0.0.1:7000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7000".parse().unwrap();
        let mut conn = Vec::new();
        conn.extend_from_slice(&UDP_PROTOCOL_ID.to_be_bytes());
        conn.extend_from_slice(&0u32.to_be_bytes());
        conn.extend_from_slice(&7u32.to_be_bytes());
        let ra = s.handle_udp(&conn, a).unwrap();
        assert_eq!(ra.len(), 16);
        assert_eq!(be32(&ra, 4), 7);
        let cid_a = be64(&ra, 8);
        let cid_b = be64(&s.handle_udp(&conn, b).unwrap(), 8);
        assert_ne!(cid_a, cid_b);
        let mut req = AnnounceRequest {
            info_hash: ih(),
            peer_id: [1; 20],
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 5,
            event: AnnounceEvent::Started,
            numwant: 50,
            key: 1,
        };
        let r = s
            .handle_udp(&udp_announce_packet(cid_a, 9, &req), a)
            .unwrap();
        assert_eq!(be32(&r, 4), 9);
        assert!(parse_udp_announce_response(&r, false)
            .unwrap()
            .peers
            .is_empty());
        req.peer_id = [2; 20];
        let r = s
            .handle_udp(&udp_announce_packet(cid_b, 10, &req), b)
            .unwrap();
        assert_eq!(
            parse_udp_announce_response(&r, false).unwrap().peers,
            vec!["10.0.0.1:6881".parse().unwrap()]
        );
        // Wrong connection id (a's id used from b) → error action 3.
        let r = s
            .handle_udp(&udp_announce_packet(cid_a, 11, &req), b)
            .unwrap();
        assert_eq!(be32(&r, 0), 3);
        // Id expires after three windows.
        let later = Instant::now() + Duration::from_secs(240);
        let r = s
            .handle_udp_at(&udp_announce_packet(cid_b, 12, &req), b, later)
            .unwrap();
        assert_eq!(be32(&r, 0), 3);
        // Scrape.
        let mut sc = cid_a.to_be_bytes().to_vec();
        sc.extend_from_slice(&2u32.to_be_bytes());
        sc.extend_from_slice(&13u32.to_be_bytes());
        sc.extend_from_slice(&ih().0);
        let r = s.handle_udp(&sc, a).unwrap();
        assert_eq!(r.len(), 20);
        assert_eq!((be32(&r, 8), be32(&r, 16)), (0, 2));
        // No amplification: a 16-byte packet with a bad id gets no (longer) error.
        let mut bad = 1u64.to_be_bytes().to_vec();
        bad.extend_from_slice(&1u32.to_be_bytes());
        bad.extend_from_slice(&1u32.to_be_bytes());
        assert!(s.handle_udp(&bad, a).is_none());
        // Junk.
        assert!(s.handle_udp(b"short", a).is_none());
        assert!(s.handle_udp(&[0u8; 16], a).is_none());
        for n in 0..120 {
            let _ = s.handle_udp(&vec![0xAB; n], a);
        }
    }

    #[test]
    fn sniffing_and_reading() {
        assert!(looks_like_http(b"GET /announce"));
        assert!(looks_like_http(b"GE"));
        assert!(looks_like_http(b"HEAD "));
        assert!(!looks_like_http(b"\x13BitTorrent protocol"));
        assert!(!looks_like_http(b""));
        assert!(!looks_like_http(b"GETX"));
        let far = Instant::now() + Duration::from_secs(5);
        let mut r: &[u8] = b"GET / HTTP/1.0\r\nA: b\r\n\r\nextra";
        assert_eq!(
            read_http_request(&mut r, 100, far).unwrap(),
            b"GET / HTTP/1.0\r\nA: b\r\n\r\n"
        );
        let mut r: &[u8] = &[b'a'; 1000];
        assert_eq!(
            read_http_request(&mut r, 100, far).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut r: &[u8] = b"GET / HTTP/1.0\r\n";
        assert_eq!(
            read_http_request(&mut r, 100, far).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    /// An announce for `ih()` by peer `n` (its own peer id) on `port` from
    /// `remote` at `at`, asking for 200 peers: the answer's body.
    fn announce_n(s: &TrackerServer, n: u32, port: u16, remote: &str, at: Instant) -> Vec<u8> {
        let mut id = [b'p'; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        let q = format!(
            "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=10&numwant=200&compact=1",
            percent_encode(&ih().0),
            percent_encode(&id)
        );
        let req = format!("GET /announce?{q} HTTP/1.0\r\n\r\n");
        split_response(&s.handle_http_at(req.as_bytes(), remote.parse().unwrap(), at)).1
    }

    /// The mission's classroom: 200 peers on the tracker's own machine, all
    /// in the same instant (far past 20 requests a second and 16 entries
    /// per address), are all served and all listed.
    #[test]
    fn two_hundred_peers_on_this_machine_are_all_listed() {
        let s = TrackerServer::new(TrackerConfig::default()).with_local_rule(loopback_only);
        s.allow(ih());
        let t0 = Instant::now();
        for n in 0..200u32 {
            let body = announce_n(&s, n, 10_000 + n as u16, "127.0.0.1:40000", t0);
            let r = parse_announce_response(&body).unwrap();
            // Everyone before it, none dropped.
            assert_eq!(r.peers.len(), n as usize, "announce {n}");
        }
        assert_eq!(s.peers(&ih()).len(), 200);
        // A newcomer (here from another loopback address) hears of all 200.
        let body = announce_n(&s, 999, 9999, "127.0.0.2:1", t0);
        let mut ports: Vec<u16> = parse_announce_response(&body)
            .unwrap()
            .peers
            .iter()
            .map(|a| a.port())
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, (10_000..10_200).collect::<Vec<u16>>());
    }

    /// A remote host keeps today's protection: 20 requests a second, then
    /// refusals; 16 entries per swarm at most. And a tracker configured not
    /// to trust this machine treats loopback the same way.
    #[test]
    fn a_remote_host_is_still_rate_limited_and_capped() {
        let s = TrackerServer::new(TrackerConfig::default()).with_local_rule(loopback_only);
        s.allow(ih());
        let t0 = Instant::now();
        let served = (0..200u32)
            .filter(|&n| !refused(&announce_n(&s, n, 10_000 + n as u16, "203.0.113.7:1", t0)))
            .count();
        assert_eq!(served, 20);
        for n in 0..200u32 {
            let at = t0 + Duration::from_secs(2 + u64::from(n));
            assert!(!refused(&announce_n(
                &s,
                n,
                20_000 + n as u16,
                "203.0.113.7:1",
                at
            )));
        }
        assert_eq!(s.peers(&ih()).len(), 16);

        let strict = TrackerServer::new(TrackerConfig {
            trust_local: false,
            ..TrackerConfig::default()
        })
        .with_local_rule(loopback_only);
        strict.allow(ih());
        let served = (0..200u32)
            .filter(|&n| {
                !refused(&announce_n(
                    &strict,
                    n,
                    10_000 + n as u16,
                    "127.0.0.1:1",
                    t0,
                ))
            })
            .count();
        assert_eq!(served, 20);
        assert_eq!(strict.peers(&ih()).len(), 16);
    }

    /// The session's own entry stays, however full the swarm gets; the same
    /// peer id from a remote address is an ordinary entry.
    #[test]
    fn the_sessions_own_entry_is_never_evicted() {
        let s = TrackerServer::new(TrackerConfig {
            max_peers_per_swarm: 5,
            ..TrackerConfig::default()
        })
        .with_local_rule(loopback_only);
        s.allow(ih());
        let mut own = [b'p'; 20];
        own[..4].copy_from_slice(&7u32.to_be_bytes());
        s.set_own_peer_id(own);
        let t0 = Instant::now();
        announce_n(&s, 7, 6881, "127.0.0.1:1", t0);
        announce_n(&s, 7, 6881, "10.7.7.7:1", t0);
        for n in 0..50u32 {
            let at = t0 + Duration::from_secs(1 + u64::from(n));
            let ip = format!("10.0.{}.{}:1", n / 200, n % 200 + 1);
            assert!(!refused(&announce_n(&s, 100 + n, 7000, &ip, at)));
        }
        let peers = s.peers(&ih());
        assert_eq!(peers.len(), 5);
        assert!(peers.contains(&"127.0.0.1:6881".parse().unwrap()));
        assert!(!peers.contains(&"10.7.7.7:6881".parse().unwrap()));
    }
}
