//! The announce client: HTTP and HTTPS (BEP 3, 7, 23, 48; the transport is
//! `ureq` with `rustls`, see [`super::http`]) and UDP (BEP 15) trackers,
//! and [`TrackerList`] for BEP 12 tiers.
//!
//! Everything is blocking with a deadline: [`announce`] never takes longer
//! than its `timeout` (for UDP, plus DNS resolution of a host name, which
//! the standard library cannot bound).

use crate::util::source::SourceAddrs;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use super::error::{TimeoutPhase, TrackerError};
use crate::proto::metainfo::{normalize_announce_url, InfoHash};
use crate::proto::tracker::url::{percent_encode, Url};
use crate::proto::tracker::{
    parse_announce_response, parse_scrape_response, parse_udp_announce_response, ResponseError,
};
pub use crate::proto::tracker::{
    AnnounceResponse, ScrapeEntry, MAX_RESPONSE_BODY, MIN_INTERVAL_FLOOR, UDP_PROTOCOL_ID,
};

/// How long a UDP connection id is reused (BEP 15: one minute).
pub const UDP_CONNECTION_ID_TTL: Duration = Duration::from_secs(60);

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AnnounceEvent {
    /// A regular periodic announce (no `event` parameter).
    #[default]
    None,
    /// The first announce of a download.
    Started,
    /// The download just completed.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

impl AnnounceEvent {
    /// The HTTP `event` value (`None` for a regular announce).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            AnnounceEvent::None => None,
            AnnounceEvent::Started => Some("started"),
            AnnounceEvent::Completed => Some("completed"),
            AnnounceEvent::Stopped => Some("stopped"),
        }
    }
    /// The BEP 15 event number (0 none, 1 completed, 2 started, 3 stopped).
    pub fn udp_code(self) -> u32 {
        match self {
            AnnounceEvent::None => 0,
            AnnounceEvent::Completed => 1,
            AnnounceEvent::Started => 2,
            AnnounceEvent::Stopped => 3,
        }
    }
}

/// What an announce tells the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Our peer wire (TCP) port.
    pub port: u16,
    /// Bytes uploaded since `started`.
    pub uploaded: u64,
    /// Bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// The event, if any.
    pub event: AnnounceEvent,
    /// How many peers we would like.
    pub numwant: u32,
    /// A random key identifying us across IP changes.
    pub key: u32,
}

/// Tuning of one announce or scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceOptions {
    /// Cap on the whole exchange (all retries included).
    pub timeout: Duration,
    /// BEP 15 base retransmission timeout: attempt `n` waits `base * 2^n`
    /// (the spec's 15 s by default; tests use much less).
    pub udp_base_timeout: Duration,
    /// BEP 15 retransmissions after the first attempt (spec: up to 8).
    pub udp_max_retries: u32,
    /// Where the UDP tracker's socket is bound (`--bind`, per family).
    pub source: SourceAddrs,
}

impl AnnounceOptions {
    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// The spec's UDP schedule, capped by `timeout`.
    pub fn with_timeout(timeout: Duration) -> AnnounceOptions {
        AnnounceOptions {
            timeout,
            udp_base_timeout: Duration::from_secs(15),
            udp_max_retries: 8,
            source: SourceAddrs::default(),
        }
    }
}

/// `now + d`, saturating at about a year from `now` (never panics).
fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(Duration::from_secs(365 * 86400)))
        .unwrap_or(now)
}

#[cfg_attr(not(test), allow(dead_code))] // used by tests only
/// Announce to the tracker at `url` (`http://`, `https://`, `udp://`, or a bare
/// `IP:PORT`, which means `http://IP:PORT/announce`), giving up after
/// `timeout` in total. UDP retransmits on the BEP 15 schedule (15 s base);
/// use [`announce_with`] for a shorter base.
pub fn announce(
    url: &str,
    req: &AnnounceRequest,
    timeout: Duration,
) -> Result<AnnounceResponse, TrackerError> {
    announce_with(url, req, &AnnounceOptions::with_timeout(timeout))
}

fn parse_url(url: &str) -> Result<Url, TrackerError> {
    let norm = normalize_announce_url(url);
    let u = Url::parse(&norm).ok_or_else(|| TrackerError::InvalidUrl(url.to_string()))?;
    match u.scheme.as_str() {
        "http" | "https" => Ok(u),
        "udp" if u.port != 0 => Ok(u),
        "udp" => Err(TrackerError::InvalidUrl(format!(
            "{url}: UDP tracker URL without a port"
        ))),
        other => Err(TrackerError::UnsupportedScheme(other.to_string())),
    }
}

/// [`announce`] with explicit [`AnnounceOptions`].
pub fn announce_with(
    url: &str,
    req: &AnnounceRequest,
    opts: &AnnounceOptions,
) -> Result<AnnounceResponse, TrackerError> {
    let deadline = deadline_after(Instant::now(), opts.timeout);
    let u = parse_url(url)?;
    if u.scheme == "udp" {
        return udp_announce(&u, req, opts, deadline);
    }
    let mut target = u.clone();
    target.path_and_query = announce_path(&u.path_and_query, req);
    let (status, body) = super::http::get(
        &target.to_string(),
        deadline,
        MAX_RESPONSE_BODY,
        opts.source,
    )?;
    match parse_announce_response(&body) {
        Ok(r) if status == 200 => Ok(r),
        Err(ResponseError::Failure(f)) => Err(TrackerError::Failure(f)),
        Ok(_) => Err(TrackerError::Http(status)),
        Err(_) if status != 200 => Err(TrackerError::Http(status)),
        Err(e) => Err(e.into()),
    }
}

/// Path and query of an HTTP announce: `base` (which may carry its own query,
/// such as a passkey) plus the BEP 3 / BEP 23 parameters.
pub fn announce_path(base: &str, req: &AnnounceRequest) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut q = format!(
        "{base}{sep}info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        percent_encode(&req.info_hash.0),
        percent_encode(&req.peer_id),
        req.port,
        req.uploaded,
        req.downloaded,
        req.left
    );
    if let Some(ev) = req.event.as_str() {
        q.push_str("&event=");
        q.push_str(ev);
    }
    q.push_str(&format!("&numwant={}&key={:08x}", req.numwant, req.key));
    q
}

#[cfg_attr(not(test), allow(dead_code))] // used by tests only
/// Scrape `info_hashes` at the tracker whose *announce* URL is `announce_url`
/// (HTTP: BEP 48 URL rule; UDP: BEP 15 scrape). At most 74 hashes are sent.
pub fn scrape(
    announce_url: &str,
    info_hashes: &[InfoHash],
    opts: &AnnounceOptions,
) -> Result<Vec<(InfoHash, ScrapeEntry)>, TrackerError> {
    let deadline = deadline_after(Instant::now(), opts.timeout);
    let hashes = &info_hashes[..info_hashes.len().min(74)];
    let u = parse_url(announce_url)?;
    if u.scheme == "udp" {
        return udp_scrape(&u, hashes, opts, deadline);
    }
    let s = crate::proto::tracker::url::scrape_url(&normalize_announce_url(announce_url))
        .ok_or(TrackerError::ScrapeUnsupported)?;
    let mut target = Url::parse(&s).ok_or(TrackerError::ScrapeUnsupported)?;
    for (i, ih) in hashes.iter().enumerate() {
        let sep = if i == 0 && !target.path_and_query.contains('?') {
            '?'
        } else {
            '&'
        };
        target.path_and_query.push(sep);
        target.path_and_query.push_str("info_hash=");
        target.path_and_query.push_str(&percent_encode(&ih.0));
    }
    let (status, body) = super::http::get(
        &target.to_string(),
        deadline,
        MAX_RESPONSE_BODY,
        opts.source,
    )?;
    match parse_scrape_response(&body) {
        Ok(r) if status == 200 => Ok(r),
        Err(ResponseError::Failure(f)) => Err(TrackerError::Failure(f)),
        Ok(_) => Err(TrackerError::Http(status)),
        Err(_) if status != 200 => Err(TrackerError::Http(status)),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- UDP (BEP 15)

/// Resolve `url`'s host (blocking; literals resolve immediately).
fn resolve(url: &Url) -> Result<Vec<SocketAddr>, TrackerError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = url
        .host_port()
        .to_socket_addrs()
        .map_err(|e| TrackerError::Resolve(format!("{}: {e}", url.host)))?
        .collect();
    if addrs.is_empty() {
        return Err(TrackerError::Resolve(format!("{}: no addresses", url.host)));
    }
    Ok(addrs)
}

/// Connection ids cached per tracker address, valid for one minute.
static UDP_CONNECTIONS: Mutex<Option<HashMap<SocketAddr, (u64, Instant)>>> = Mutex::new(None);

fn cached_connection(addr: SocketAddr) -> Option<u64> {
    let g = UDP_CONNECTIONS.lock();
    let (id, at) = g.as_ref()?.get(&addr)?;
    (at.elapsed() < UDP_CONNECTION_ID_TTL).then_some(*id)
}

fn cache_connection(addr: SocketAddr, id: Option<u64>) {
    let mut g = UDP_CONNECTIONS.lock();
    let map = g.get_or_insert_with(HashMap::new);
    map.retain(|_, (_, at)| at.elapsed() < UDP_CONNECTION_ID_TTL);
    match id {
        Some(id) if map.len() < 4096 => {
            map.insert(addr, (id, Instant::now()));
        }
        _ => {
            map.remove(&addr);
        }
    }
}

struct UdpExchange {
    sock: UdpSocket,
    addr: SocketAddr,
    base: Duration,
    retries: u32,
    deadline: Instant,
}

impl UdpExchange {
    fn open(
        u: &Url,
        opts: &AnnounceOptions,
        deadline: Instant,
    ) -> Result<UdpExchange, TrackerError> {
        let addrs = resolve(u)?;
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .copied()
            .unwrap_or(addrs[0]);
        let bind = opts.source.udp_local_for(addr).map_err(TrackerError::Io)?;
        let sock = UdpSocket::bind(bind).map_err(TrackerError::Io)?;
        sock.connect(addr).map_err(TrackerError::Io)?;
        Ok(UdpExchange {
            sock,
            addr,
            base: opts.udp_base_timeout.max(Duration::from_millis(10)),
            retries: opts.udp_max_retries.min(8),
            deadline,
        })
    }

    /// Send `packet` and wait for a reply carrying `tid` with action
    /// `action` (or 3, error), retransmitting on the BEP 15 schedule.
    fn exchange(
        &self,
        packet: &[u8],
        tid: u32,
        action: u32,
        phase: TimeoutPhase,
    ) -> Result<Vec<u8>, TrackerError> {
        let mut buf = vec![0u8; 65536];
        for n in 0..=self.retries {
            let now = Instant::now();
            if now >= self.deadline {
                break;
            }
            let wait = self.base.saturating_mul(1 << n);
            let attempt_end = deadline_after(now, wait).min(self.deadline);
            self.sock.send(packet).map_err(TrackerError::Io)?;
            loop {
                let now = Instant::now();
                if now >= attempt_end {
                    break;
                }
                self.sock
                    .set_read_timeout(Some(attempt_end - now))
                    .map_err(TrackerError::Io)?;
                let len = match self.sock.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(TrackerError::Io(e)),
                };
                let p = &buf[..len];
                if len < 8 || be32(p, 4) != tid {
                    continue; // not ours: keep waiting
                }
                let got = be32(p, 0);
                if got == 3 {
                    cache_connection(self.addr, None);
                    return Err(TrackerError::Failure(
                        String::from_utf8_lossy(&p[8..]).into_owned(),
                    ));
                }
                if got != action {
                    return Err(TrackerError::Malformed(format!(
                        "UDP tracker answered action {got}, expected {action}"
                    )));
                }
                return Ok(p.to_vec());
            }
        }
        Err(TrackerError::Timeout { phase })
    }

    fn connection_id(&self) -> Result<u64, TrackerError> {
        if let Some(id) = cached_connection(self.addr) {
            return Ok(id);
        }
        let tid = crate::util::rng::random_u64() as u32;
        let mut p = Vec::with_capacity(16);
        p.extend_from_slice(&UDP_PROTOCOL_ID.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&tid.to_be_bytes());
        let r = self.exchange(&p, tid, 0, TimeoutPhase::UdpConnect)?;
        if r.len() < 16 {
            return Err(TrackerError::Malformed("short UDP connect response".into()));
        }
        let id = u64::from_be_bytes(r[8..16].try_into().unwrap_or_default());
        cache_connection(self.addr, Some(id));
        Ok(id)
    }
}

use crate::proto::tracker::be32;

/// The 98-byte BEP 15 announce request.
pub fn udp_announce_packet(connection_id: u64, tid: u32, req: &AnnounceRequest) -> Vec<u8> {
    let mut p = Vec::with_capacity(98);
    p.extend_from_slice(&connection_id.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(&req.info_hash.0);
    p.extend_from_slice(&req.peer_id);
    p.extend_from_slice(&req.downloaded.to_be_bytes());
    p.extend_from_slice(&req.left.to_be_bytes());
    p.extend_from_slice(&req.uploaded.to_be_bytes());
    p.extend_from_slice(&req.event.udp_code().to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // ip: the sender's
    p.extend_from_slice(&req.key.to_be_bytes());
    let numwant = i32::try_from(req.numwant).unwrap_or(-1);
    p.extend_from_slice(&numwant.to_be_bytes());
    p.extend_from_slice(&req.port.to_be_bytes());
    p
}

fn udp_announce(
    u: &Url,
    req: &AnnounceRequest,
    opts: &AnnounceOptions,
    deadline: Instant,
) -> Result<AnnounceResponse, TrackerError> {
    let ex = UdpExchange::open(u, opts, deadline)?;
    let cid = ex.connection_id()?;
    let tid = crate::util::rng::random_u64() as u32;
    let r = ex.exchange(
        &udp_announce_packet(cid, tid, req),
        tid,
        1,
        TimeoutPhase::UdpRequest,
    )?;
    Ok(parse_udp_announce_response(&r, ex.addr.is_ipv6())?)
}

#[cfg_attr(not(test), allow(dead_code))] // used by tests only
fn udp_scrape(
    u: &Url,
    hashes: &[InfoHash],
    opts: &AnnounceOptions,
    deadline: Instant,
) -> Result<Vec<(InfoHash, ScrapeEntry)>, TrackerError> {
    let ex = UdpExchange::open(u, opts, deadline)?;
    let cid = ex.connection_id()?;
    let tid = crate::util::rng::random_u64() as u32;
    let mut p = Vec::with_capacity(16 + 20 * hashes.len());
    p.extend_from_slice(&cid.to_be_bytes());
    p.extend_from_slice(&2u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    for ih in hashes {
        p.extend_from_slice(&ih.0);
    }
    let r = ex.exchange(&p, tid, 2, TimeoutPhase::UdpRequest)?;
    Ok(hashes
        .iter()
        .zip(r[8..].chunks_exact(12))
        .map(|(ih, c)| {
            (
                *ih,
                ScrapeEntry {
                    complete: be32(c, 0),
                    downloaded: be32(c, 4),
                    incomplete: be32(c, 8),
                },
            )
        })
        .collect())
}

// ---------------------------------------------------------------- BEP 12 tiers

/// The trackers of a torrent in BEP 12 tiers, with announce scheduling.
///
/// Trackers are shuffled within each tier once; an announce tries tier by
/// tier, tracker by tracker, and a tracker that answers moves to the front of
/// its tier. After a success the next announce is due after the tracker's
/// interval; after a total failure it backs off exponentially (1 min … 1 h).
#[derive(Debug, Clone)]
pub struct TrackerList {
    tiers: Vec<Vec<String>>,
    next_announce: Instant,
    min_interval: Option<Duration>,
    last_announce: Option<Instant>,
    failures: u32,
}

impl TrackerList {
    /// Build from `announce-list` tiers (use `vec![vec![announce]]` when a
    /// torrent has only `announce`). Empty tiers and duplicate URLs are dropped.
    pub fn new(tiers: Vec<Vec<String>>) -> TrackerList {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Vec<String>> = Vec::new();
        for tier in tiers {
            let mut t: Vec<String> = tier
                .into_iter()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty() && seen.insert(u.clone()))
                .collect();
            crate::util::rng::shuffle(&mut t);
            if !t.is_empty() {
                out.push(t);
            }
        }
        TrackerList {
            tiers: out,
            next_announce: Instant::now(),
            min_interval: None,
            last_announce: None,
            failures: 0,
        }
    }

    /// From a torrent's `announce-list`, or its `announce` when the list is empty.
    pub fn from_metainfo(m: &crate::Metainfo) -> TrackerList {
        if m.announce_list.iter().any(|t| !t.is_empty()) {
            TrackerList::new(m.announce_list.clone())
        } else {
            TrackerList::new(m.announce.iter().map(|a| vec![a.clone()]).collect())
        }
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// The tiers in their current order.
    pub fn tiers(&self) -> &[Vec<String>] {
        &self.tiers
    }

    /// True when there is no tracker at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Move tracker `index` of `tier` to the front of its tier.
    pub fn promote(&mut self, tier: usize, index: usize) {
        if let Some(t) = self.tiers.get_mut(tier) {
            if index < t.len() {
                let u = t.remove(index);
                t.insert(0, u);
            }
        }
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// When the next regular announce is due.
    pub fn next_announce(&self) -> Instant {
        self.next_announce
    }

    /// True when a regular announce is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_announce
    }

    /// Bring the next announce forward to the earliest time the tracker
    /// allows (its `min interval` after the last one, else
    /// `MIN_INTERVAL_FLOOR`; at once when none got through yet).
    pub fn announce_soon(&mut self) {
        let at = self.earliest_announce().max(Instant::now());
        self.next_announce = self.next_announce.min(at);
    }

    /// Earliest time an extra (out-of-schedule) announce is allowed, honouring
    /// the tracker's `min interval`.
    pub fn earliest_announce(&self) -> Instant {
        match (self.last_announce, self.min_interval) {
            (Some(at), Some(min)) => at + min,
            (Some(at), None) => at + MIN_INTERVAL_FLOOR,
            _ => Instant::now(),
        }
    }

    /// Record a successful announce at `now`.
    pub fn record_success(&mut self, resp: &AnnounceResponse, now: Instant) {
        self.failures = 0;
        self.last_announce = Some(now);
        self.min_interval = resp.min_interval;
        self.next_announce = now + resp.interval;
    }

    /// Record that every tracker failed at `now`: back off 1, 2, 4 … 60 min.
    pub fn record_failure(&mut self, now: Instant) {
        // 5 s, 10 s, 20 s ... up to an hour: a tracker that is only starting
        // up (a LAN announcer launched at the same moment) is retried soon.
        let backoff = Duration::from_secs(5u64.saturating_mul(1 << self.failures.min(10)))
            .min(Duration::from_secs(3600));
        self.failures = self.failures.saturating_add(1);
        self.next_announce = now + backoff;
    }

    /// Announce per BEP 12 with `opts` per tracker, stopping after `overall`.
    /// Returns the URL that answered and its response; records the outcome
    /// for scheduling and promotes the tracker that answered. A `Stopped`
    /// event is not recorded for scheduling.
    pub fn announce(
        &mut self,
        req: &AnnounceRequest,
        opts: &AnnounceOptions,
        overall: Duration,
    ) -> Result<(String, AnnounceResponse), TrackerError> {
        let start = Instant::now();
        let end = deadline_after(start, overall);
        let mut last_err = TrackerError::Failure("no trackers".into());
        for ti in 0..self.tiers.len() {
            for i in 0..self.tiers[ti].len() {
                let now = Instant::now();
                if now >= end {
                    if req.event != AnnounceEvent::Stopped {
                        self.record_failure(now);
                    }
                    return Err(last_err);
                }
                let url = self.tiers[ti][i].clone();
                let o = AnnounceOptions {
                    timeout: opts.timeout.min(end - now),
                    ..*opts
                };
                match announce_with(&url, req, &o) {
                    Ok(r) => {
                        self.promote(ti, i);
                        if req.event != AnnounceEvent::Stopped {
                            self.record_success(&r, Instant::now());
                        }
                        return Ok((url, r));
                    }
                    Err(e) => {
                        log::debug!("tracker {url}: {e}");
                        last_err = e;
                    }
                }
            }
        }
        if req.event != AnnounceEvent::Stopped {
            self.record_failure(Instant::now());
        }
        Err(last_err)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vector(tsv: &str, name: &str) -> String {
        tsv.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split('\t')
            .nth(1)
            .unwrap()
            .to_string()
    }

    const HTTP: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/vectors/http_tracker.tsv"
    ));
    const UDP: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/vectors/udp_tracker_bep15.tsv"
    ));

    fn req() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap(),
            peer_id: *b"-PE0001-abcdefghijkl",
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 425,
            event: AnnounceEvent::Started,
            numwant: 50,
            key: 0xdeadbeef,
        }
    }

    #[test]
    fn announce_query_matches_vector() {
        let q = announce_path("/announce", &req());
        let want = vector(HTTP, "announce query");
        assert!(q.starts_with(&want.replace("&event=started", "")), "{q}");
        assert!(q.contains("&event=started"));
        assert_eq!(
            announce_path("/a.php?passkey=x", &req()).split('&').next(),
            Some("/a.php?passkey=x")
        );
    }

    #[test]
    fn udp_packets_match_vectors() {
        let p = udp_announce_packet(
            0x0123456789abcdef,
            0x12345678,
            &AnnounceRequest {
                numwant: u32::MAX,
                ..req()
            },
        );
        assert_eq!(p, unhex(&vector(UDP, "announce request")));
        let r =
            parse_udp_announce_response(&unhex(&vector(UDP, "announce response")), false).unwrap();
        assert_eq!((r.complete, r.incomplete), (Some(2), Some(1)));
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.peers.len(), 2);
        assert!(parse_udp_announce_response(&[0, 0, 0, 1], false).is_err());
    }

    #[test]
    fn unsupported_and_invalid_urls() {
        let t = Duration::from_millis(100);
        assert!(matches!(
            announce("wss://x/announce", &req(), t),
            Err(TrackerError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            announce("nonsense", &req(), t),
            Err(TrackerError::InvalidUrl(_))
        ));
        assert!(matches!(
            announce("udp://host", &req(), t),
            Err(TrackerError::InvalidUrl(_))
        ));
    }

    #[test]
    fn tracker_list_tiers() {
        let mut l = TrackerList::new(vec![
            vec!["a".into(), "b".into(), "a".into()],
            vec![],
            vec!["c".into()],
        ]);
        assert_eq!(l.tiers().len(), 2);
        assert_eq!(l.tiers()[0].len(), 2);
        let second = l.tiers()[0][1].clone();
        l.promote(0, 1);
        assert_eq!(l.tiers()[0][0], second);
        let now = Instant::now();
        l.record_failure(now);
        assert_eq!(l.next_announce(), now + Duration::from_secs(5));
        l.record_failure(now);
        assert_eq!(l.next_announce(), now + Duration::from_secs(10));
        l.record_success(
            &AnnounceResponse {
                interval: Duration::from_secs(900),
                ..Default::default()
            },
            now,
        );
        assert_eq!(l.next_announce(), now + Duration::from_secs(900));
        assert!(!l.is_due(now));
    }

    #[test]
    fn announce_soon_honours_the_min_interval() {
        let mut l = TrackerList::new(vec![vec!["a".into()]]);
        // Nothing got through yet: due at once.
        l.announce_soon();
        assert!(l.is_due(Instant::now()));
        let now = Instant::now();
        l.record_success(
            &AnnounceResponse {
                interval: Duration::from_secs(1800),
                min_interval: Some(Duration::from_secs(120)),
                ..Default::default()
            },
            now,
        );
        l.announce_soon();
        assert_eq!(l.next_announce(), now + Duration::from_secs(120));
        // Without a min interval: MIN_INTERVAL_FLOOR after the last one.
        l.record_success(
            &AnnounceResponse {
                interval: Duration::from_secs(1800),
                ..Default::default()
            },
            now,
        );
        l.announce_soon();
        assert_eq!(l.next_announce(), now + MIN_INTERVAL_FLOOR);
        // Never later than the regular schedule.
        l.record_failure(now);
        l.announce_soon();
        assert_eq!(l.next_announce(), now + Duration::from_secs(5));
    }
}
