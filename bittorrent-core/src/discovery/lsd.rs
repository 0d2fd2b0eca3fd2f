//! Local Service Discovery (BEP 14): announcing our torrents to the LAN over
//! UDP multicast and learning about peers on the LAN that announce theirs.
//!
//! Two parts:
//!
//! * pure functions [`format_announce`] and [`parse_announce`] for the
//!   `BT-SEARCH * HTTP/1.1` datagram, and
//! * [`Lsd`], one thread named `lsd` that owns the multicast socket(s),
//!   announces the current set of torrents (every [`LsdConfig::interval`], and
//!   soon after the set changes, never more often than [`LsdConfig::min_gap`])
//!   and reports every peer it hears about for one of our torrents on a
//!   `crossbeam-channel` as `(info_hash, peer_address)`.
//!
//! The socket is bound to `0.0.0.0:6771` with `SO_REUSEADDR` (through
//! `socket2`, since `std` cannot set it before `bind`), so several clients on
//! one host — or several [`Lsd`]s in one process — can share the port; each of
//! them receives every multicast datagram. Our own announces, looped back by
//! the kernel, are recognised by their `cookie` and ignored.

use crate::proto::metainfo::InfoHash;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The UDP port of LSD.
pub const LSD_PORT: u16 = 6771;
/// The IPv4 multicast group (org-local).
pub const LSD_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 multicast group (site-local).
pub const LSD_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// The `Host` header value of announces sent to the IPv4 group.
pub const HOST_V4: &str = "239.192.152.143:6771";
/// The `Host` header value of announces sent to the IPv6 group.
pub const HOST_V6: &str = "[ff15::efc0:988f]:6771";
/// Largest announce we send or accept, in bytes (BEP 14: "should not exceed
/// 1400 bytes").
pub const MAX_PACKET: usize = 1400;
/// Most info-hashes we put in one announce and accept from one announce.
pub const MAX_INFO_HASHES: usize = 16;

/// How often the thread looks at its stop flag and its command channel.
const TICK: Duration = Duration::from_millis(200);
/// Longest cookie we send; longer cookies are cut.
const MAX_COOKIE: usize = 64;

/// A parsed LSD announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdAnnounce {
    /// The port the announcing client listens on for BitTorrent connections.
    pub port: u16,
    /// The announced torrents, in packet order, without duplicates (1 to
    /// [`MAX_INFO_HASHES`]).
    pub info_hashes: Vec<InfoHash>,
    /// The sender's opaque cookie, if it sent one.
    pub cookie: Option<String>,
}

/// Why a datagram is not a valid LSD announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsdError {
    /// The datagram is longer than [`MAX_PACKET`] bytes (its length).
    TooLarge(usize),
    /// The datagram is not UTF-8 text.
    NotText,
    /// The first line is not `BT-SEARCH * HTTP/1.x`.
    BadRequestLine,
    /// There is no `Port` header.
    MissingPort,
    /// The `Port` header is not a port number from 1 to 65535.
    BadPort,
    /// There is no `Infohash` header.
    MissingInfoHash,
    /// An `Infohash` header is not 40 hex digits.
    BadInfoHash,
    /// More than [`MAX_INFO_HASHES`] distinct `Infohash` headers.
    TooManyInfoHashes,
}

impl fmt::Display for LsdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LsdError::TooLarge(n) => {
                write!(f, "LSD announce of {n} bytes is longer than {MAX_PACKET}")
            }
            LsdError::NotText => f.write_str("LSD announce is not UTF-8 text"),
            LsdError::BadRequestLine => {
                f.write_str("LSD announce does not start with `BT-SEARCH * HTTP/1.1`")
            }
            LsdError::MissingPort => f.write_str("LSD announce has no Port header"),
            LsdError::BadPort => f.write_str("LSD announce has an invalid Port header"),
            LsdError::MissingInfoHash => f.write_str("LSD announce has no Infohash header"),
            LsdError::BadInfoHash => {
                f.write_str("LSD announce has an Infohash header that is not 40 hex digits")
            }
            LsdError::TooManyInfoHashes => {
                write!(
                    f,
                    "LSD announce has more than {MAX_INFO_HASHES} info-hashes"
                )
            }
        }
    }
}

impl std::error::Error for LsdError {}

/// Format an announce datagram (BEP 14).
///
/// `host` is the group the datagram is sent to, [`HOST_V4`] or [`HOST_V6`];
/// `port` the port we listen on for BitTorrent connections. Each info-hash gets
/// its own `Infohash` header (40 lowercase hex digits). The `cookie` header is
/// left out when `cookie` is empty; control characters are removed from it and
/// it is cut to 64 bytes, so it cannot break the header structure.
///
/// The caller keeps `info_hashes` to at most [`MAX_INFO_HASHES`] so that the
/// datagram stays under [`MAX_PACKET`] bytes and is accepted by
/// [`parse_announce`]; the `lsd` thread splits larger sets.
pub fn format_announce(host: &str, port: u16, info_hashes: &[InfoHash], cookie: &str) -> Vec<u8> {
    let host: String = host.chars().filter(|c| !c.is_control()).collect();
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {port}\r\n");
    for h in info_hashes {
        s.push_str("Infohash: ");
        s.push_str(&h.to_hex());
        s.push_str("\r\n");
    }
    let cookie = clean_cookie(cookie);
    if !cookie.is_empty() {
        s.push_str("cookie: ");
        s.push_str(&cookie);
        s.push_str("\r\n");
    }
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

/// `cookie` without control characters, at most [`MAX_COOKIE`] bytes, trimmed.
fn clean_cookie(cookie: &str) -> String {
    let mut out = String::new();
    for c in cookie.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_COOKIE {
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// Parse an announce datagram.
///
/// Tolerant where it costs nothing: header names in any case, `\n` or `\r\n`
/// line ends, spaces around values, unknown headers (including `Host`) are
/// ignored, as are header lines without a colon, and the headers end at the
/// first empty line or at the end of the datagram. Repeated info-hashes are
/// kept once; the first `Port` and `cookie` headers count. Strict where it
/// matters: at most [`MAX_PACKET`] bytes, a `BT-SEARCH * HTTP/1.x` request
/// line, a port from 1 to 65535, 1 to [`MAX_INFO_HASHES`] info-hashes of 40
/// hex digits each. Never panics.
pub fn parse_announce(packet: &[u8]) -> Result<LsdAnnounce, LsdError> {
    if packet.len() > MAX_PACKET {
        return Err(LsdError::TooLarge(packet.len()));
    }
    let text = std::str::from_utf8(packet).map_err(|_| LsdError::NotText)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    let request = lines.next().unwrap_or("");
    let mut words = request.split_whitespace();
    let ok = matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(m), Some("*"), Some(v), None)
            if m.eq_ignore_ascii_case("BT-SEARCH")
                && v.len() >= 7
                && v.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("HTTP/1."))
    );
    if !ok {
        return Err(LsdError::BadRequestLine);
    }

    let mut port: Option<Result<u16, LsdError>> = None;
    let mut info_hashes: Vec<InfoHash> = Vec::new();
    let mut cookie: Option<String> = None;
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("port") {
            if port.is_none() {
                port = Some(match value.parse::<u16>() {
                    Ok(p) if p != 0 => Ok(p),
                    _ => Err(LsdError::BadPort),
                });
            }
        } else if name.eq_ignore_ascii_case("infohash") {
            let h = InfoHash::from_hex(value).ok_or(LsdError::BadInfoHash)?;
            if !info_hashes.contains(&h) {
                if info_hashes.len() == MAX_INFO_HASHES {
                    return Err(LsdError::TooManyInfoHashes);
                }
                info_hashes.push(h);
            }
        } else if name.eq_ignore_ascii_case("cookie") && cookie.is_none() {
            cookie = Some(value.to_string());
        }
    }
    let port = port.ok_or(LsdError::MissingPort)??;
    if info_hashes.is_empty() {
        return Err(LsdError::MissingInfoHash);
    }
    Ok(LsdAnnounce {
        port,
        info_hashes,
        cookie,
    })
}

/// Settings of the [`Lsd`] thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdConfig {
    /// Our BitTorrent listening port, announced to the LAN.
    pub port: u16,
    /// How often the current torrents are announced (BEP 14: every 5
    /// minutes). Values under 1 s are raised to 1 s.
    pub interval: Duration,
    /// Smallest gap between two announces (BEP 14: at most one per minute).
    /// A change of the torrent set is announced at once unless the last
    /// announce is more recent than this, then as soon as the gap has passed.
    /// Tests set it low.
    pub min_gap: Duration,
    /// Also announce and listen on the IPv6 group `[ff15::efc0:988f]:6771`.
    /// A failure to set up IPv6 is logged and LSD continues IPv4-only.
    pub ipv6: bool,
    /// Let the kernel loop our multicast datagrams back to sockets on this
    /// host, so other clients on the same machine hear us (our own announces
    /// are filtered by cookie). Tests on one machine need it.
    pub multicast_loop: bool,
    /// The IPv4 interface to join the group on and send from; `None` lets
    /// the kernel choose (the interface of the route to the group).
    pub bind_ip: Option<Ipv4Addr>,
    /// IP TTL / hop limit of our datagrams. BEP 14 suggests more than 1
    /// since the groups have a wider scope than the link.
    pub multicast_ttl: u32,
}

impl Default for LsdConfig {
    /// Port 6881, interval 5 min, min_gap 60 s, IPv4 only, loop on, default
    /// interface, TTL 2.
    fn default() -> Self {
        LsdConfig {
            port: 6881,
            interval: Duration::from_secs(300),
            min_gap: Duration::from_secs(60),
            ipv6: false,
            multicast_loop: true,
            bind_ip: None,
            multicast_ttl: 2,
        }
    }
}

/// A running LSD thread (named `lsd`). Stop it with [`Lsd::stop`]; dropping
/// it stops it too.
#[derive(Debug)]
pub struct Lsd {
    torrents: Sender<Vec<InfoHash>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    cookie: String,
}

impl Lsd {
    /// Bind the multicast socket(s) and start the `lsd` thread.
    ///
    /// Peers announcing one of our torrents (see [`Lsd::set_torrents`]) are
    /// sent on `found` as `(info_hash, source_ip:announced_port)` with
    /// `try_send`: if the channel is full or closed, the peer is dropped.
    ///
    /// Errors if the IPv4 socket cannot be bound to port 6771 or cannot join
    /// the group (for example, no multicast route). IPv6 failures are only
    /// logged.
    pub fn start(cfg: LsdConfig, found: Sender<(InfoHash, SocketAddr)>) -> io::Result<Lsd> {
        let v4 = open_v4(&cfg)?;
        let v6 = if cfg.ipv6 {
            match open_v6(&cfg) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::warn!("lsd: IPv6 multicast unavailable, IPv4 only: {e}");
                    None
                }
            }
        } else {
            None
        };
        let cookie = new_cookie();
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cfg,
            v4,
            v6,
            cookie: cookie.clone(),
            found,
            commands: rx,
            stop: stop.clone(),
            torrents: BTreeSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("lsd".into())
            .stack_size(crate::util::SERVICE_STACK)
            .spawn(move || worker.run())?;
        Ok(Lsd {
            torrents: tx,
            stop,
            thread: Some(thread),
            cookie,
        })
    }

    /// Replace the set of torrents we announce and want peers for. A changed
    /// set is announced at once (subject to [`LsdConfig::min_gap`]); an empty
    /// set stops announcing and reporting.
    pub fn set_torrents(&self, hashes: Vec<InfoHash>) {
        // The thread only ends through `stop`/drop, which consume `self`.
        let _ = self.torrents.send(hashes);
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// The cookie this instance puts in its announces.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Stop the thread and wait for it (at most about 200 ms).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("lsd: thread panicked");
            }
        }
    }
}

impl Drop for Lsd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A cookie unique to this process and instance.
fn new_cookie() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let digest = sha1_smol::Sha1::from(seed.as_bytes()).digest().bytes();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn open_v4(cfg: &LsdConfig) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LSD_PORT));
    sock.bind(&any.into())?;
    let iface = cfg.bind_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    sock.join_multicast_v4(&LSD_GROUP_V4, &iface)?;
    if let Some(ip) = cfg.bind_ip {
        sock.set_multicast_if_v4(&ip)?;
    }
    sock.set_multicast_loop_v4(cfg.multicast_loop)?;
    sock.set_multicast_ttl_v4(cfg.multicast_ttl)?;
    let udp: UdpSocket = sock.into();
    udp.set_read_timeout(Some(TICK))?;
    Ok(udp)
}

fn open_v6(cfg: &LsdConfig) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_only_v6(true)?;
    sock.set_reuse_address(true)?;
    let any = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, LSD_PORT, 0, 0));
    sock.bind(&any.into())?;
    sock.join_multicast_v6(&LSD_GROUP_V6, 0)?;
    sock.set_multicast_loop_v6(cfg.multicast_loop)?;
    sock.set_multicast_hops_v6(cfg.multicast_ttl)?;
    let udp: UdpSocket = sock.into();
    // Two sockets share the tick: each waits half of it.
    udp.set_read_timeout(Some(TICK / 2))?;
    Ok(udp)
}

struct Worker {
    cfg: LsdConfig,
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    cookie: String,
    found: Sender<(InfoHash, SocketAddr)>,
    commands: Receiver<Vec<InfoHash>>,
    stop: Arc<AtomicBool>,
    torrents: BTreeSet<InfoHash>,
}

impl Worker {
    fn run(mut self) {
        if self.v6.is_some() {
            if let Err(e) = self.v4.set_read_timeout(Some(TICK / 2)) {
                log::warn!("lsd: cannot set read timeout: {e}");
            }
        }
        let interval = self.cfg.interval.max(Duration::from_secs(1));
        let mut last_sent: Option<Instant> = None;
        let mut changed = false;
        let mut buf = [0u8; MAX_PACKET + 1];
        log::debug!("lsd: started, cookie {}", self.cookie);
        while !self.stop.load(Ordering::Relaxed) {
            loop {
                match self.commands.try_recv() {
                    Ok(hashes) => {
                        let set: BTreeSet<InfoHash> = hashes.into_iter().collect();
                        if set != self.torrents {
                            self.torrents = set;
                            changed = true;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }

            let now = Instant::now();
            let due = changed || last_sent.is_none_or(|t| now.duration_since(t) >= interval);
            let allowed = last_sent.is_none_or(|t| now.duration_since(t) >= self.cfg.min_gap);
            if due && allowed {
                if !self.torrents.is_empty() {
                    self.announce();
                    last_sent = Some(now);
                }
                changed = false;
            }

            // Someone on the LAN announced one of our torrents: it may be a
            // newcomer that missed our last announce (a magnet link looking
            // for its first peers), so announce again as soon as allowed.
            changed |= self.receive(false, &mut buf);
            if self.v6.is_some() {
                changed |= self.receive(true, &mut buf);
            }
        }
        log::debug!("lsd: stopped");
    }

    fn announce(&self) {
        let hashes: Vec<InfoHash> = self.torrents.iter().copied().collect();
        for chunk in hashes.chunks(MAX_INFO_HASHES) {
            let packet = format_announce(HOST_V4, self.cfg.port, chunk, &self.cookie);
            let to = SocketAddr::V4(SocketAddrV4::new(LSD_GROUP_V4, LSD_PORT));
            if let Err(e) = self.v4.send_to(&packet, to) {
                log::debug!("lsd: send to {to}: {e}");
            }
            if let Some(v6) = &self.v6 {
                let packet = format_announce(HOST_V6, self.cfg.port, chunk, &self.cookie);
                let to = SocketAddr::V6(SocketAddrV6::new(LSD_GROUP_V6, LSD_PORT, 0, 0));
                if let Err(e) = v6.send_to(&packet, to) {
                    log::debug!("lsd: send to {to}: {e}");
                }
            }
        }
        log::debug!(
            "lsd: announced {} torrent(s) on port {}",
            hashes.len(),
            self.cfg.port
        );
    }

    /// Read datagrams from one socket until its read timeout expires.
    /// Returns whether any datagram was another peer's announce of one of
    /// our torrents.
    fn receive(&self, v6: bool, buf: &mut [u8]) -> bool {
        let sock = if v6 { self.v6.as_ref() } else { Some(&self.v4) };
        let Some(sock) = sock else { return false };
        let mut ours = false;
        // Bounded so a flood cannot keep us from the stop flag and commands.
        for _ in 0..64 {
            match sock.recv_from(buf) {
                Ok((n, from)) => ours |= self.handle(buf.get(..n).unwrap_or(&[]), from),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return ours;
                }
                Err(e) => {
                    log::debug!("lsd: recv: {e}");
                    return ours;
                }
            }
        }
        ours
    }

    /// Returns whether the packet was another peer's announce of one of
    /// our torrents.
    fn handle(&self, packet: &[u8], from: SocketAddr) -> bool {
        let ann = match parse_announce(packet) {
            Ok(a) => a,
            Err(e) => {
                log::trace!("lsd: ignoring datagram from {from}: {e}");
                return false;
            }
        };
        if ann.cookie.as_deref() == Some(self.cookie.as_str()) {
            return false;
        }
        let mut peer = from;
        peer.set_port(ann.port);
        let mut ours = false;
        for h in ann.info_hashes {
            if self.torrents.contains(&h) {
                log::debug!("lsd: peer {peer} for {h}");
                let _ = self.found.try_send((h, peer));
                ours = true;
            }
        }
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn round_trip() {
        let hashes = [ih(1), ih(0xab), ih(0xff)];
        let p = format_announce(HOST_V4, 6881, &hashes, "xyz");
        let a = parse_announce(&p).expect("parses");
        assert_eq!(a.port, 6881);
        assert_eq!(a.info_hashes, hashes.to_vec());
        assert_eq!(a.cookie.as_deref(), Some("xyz"));
    }

    #[test]
    fn format_exact_bytes() {
        let p = format_announce(HOST_V6, 1, &[ih(0x12)], "c");
        let want = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:988f]:6771\r\nPort: 1\r\n\
             Infohash: {}\r\ncookie: c\r\n\r\n\r\n",
            "12".repeat(20)
        );
        assert_eq!(String::from_utf8(p).expect("utf8"), want);
    }

    #[test]
    fn format_without_cookie_and_sanitised_cookie() {
        let p = format_announce(HOST_V4, 2, &[ih(3)], "");
        let s = String::from_utf8(p).expect("utf8");
        assert!(!s.to_ascii_lowercase().contains("cookie"));
        let p = format_announce(HOST_V4, 2, &[ih(3)], "a\r\nPort: 9\r\n");
        let a = parse_announce(&p).expect("parses");
        assert_eq!(a.port, 2);
        assert_eq!(a.cookie.as_deref(), Some("aPort: 9"));
        let long = "é".repeat(100);
        let p = format_announce(HOST_V4, 2, &[ih(3)], &long);
        let a = parse_announce(&p).expect("parses");
        assert!(a.cookie.expect("cookie").len() <= MAX_COOKIE);
    }

    #[test]
    fn bep_example() {
        let p = b"BT-SEARCH * HTTP/1.1\r\n\
                  Host: 239.192.152.143:6771\r\n\
                  Port: 6881\r\n\
                  Infohash: 0123456789abcdef0123456789ABCDEF01234567\r\n\
                  cookie: deadbeef\r\n\
                  \r\n\
                  \r\n";
        let a = parse_announce(p).expect("parses");
        assert_eq!(a.port, 6881);
        assert_eq!(
            a.info_hashes,
            vec![InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").expect("hex")]
        );
        assert_eq!(a.cookie.as_deref(), Some("deadbeef"));
    }

    #[test]
    fn tolerant_case_newlines_unknown_headers() {
        let h = "aa".repeat(20);
        let p = format!(
            "bt-search * http/1.1\nHOST: x\nX-Unknown: 1\nnonsense line\n  pOrT :  51413 \n\
             INFOHASH:{h}\ninfohash: {h}\nCOOKIE: q\n"
        );
        let a = parse_announce(p.as_bytes()).expect("parses");
        assert_eq!(a.port, 51413);
        assert_eq!(a.info_hashes, vec![ih(0xaa)]);
        assert_eq!(a.cookie.as_deref(), Some("q"));
        // Headers after the blank line are not headers.
        let p = format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\nInfohash: {h}\r\n");
        assert_eq!(parse_announce(p.as_bytes()), Err(LsdError::MissingInfoHash));
    }

    #[test]
    fn errors() {
        let h = "aa".repeat(20);
        let ok_tail = format!("Port: 1\r\nInfohash: {h}\r\n\r\n");
        for bad in [
            "",
            "\r\n",
            "GET / HTTP/1.1\r\n",
            "BT-SEARCH / HTTP/1.1\r\n",
            "BT-SEARCH * HTTP/2\r\n",
            "BT-SEARCH * HTTP/1.1 extra\r\n",
            "NOTIFY * HTTP/1.1\r\n",
        ] {
            let p = format!("{bad}{ok_tail}");
            assert_eq!(
                parse_announce(p.as_bytes()),
                Err(LsdError::BadRequestLine),
                "{bad:?}"
            );
        }
        let req = "BT-SEARCH * HTTP/1.1\r\n";
        let cases = [
            (format!("Infohash: {h}\r\n"), LsdError::MissingPort),
            (format!("Port: 0\r\nInfohash: {h}\r\n"), LsdError::BadPort),
            (
                format!("Port: 65536\r\nInfohash: {h}\r\n"),
                LsdError::BadPort,
            ),
            (format!("Port: -1\r\nInfohash: {h}\r\n"), LsdError::BadPort),
            (format!("Port:\r\nInfohash: {h}\r\n"), LsdError::BadPort),
            ("Port: 5\r\n".to_string(), LsdError::MissingInfoHash),
            ("Port: 5\r\nInfohash: abc\r\n".into(), LsdError::BadInfoHash),
            (
                format!("Port: 5\r\nInfohash: {}zz\r\n", "a".repeat(38)),
                LsdError::BadInfoHash,
            ),
            (
                format!("Port: 5\r\nInfohash: {}é\r\n", "a".repeat(38)),
                LsdError::BadInfoHash,
            ),
        ];
        for (tail, want) in cases {
            assert_eq!(
                parse_announce(format!("{req}{tail}").as_bytes()),
                Err(want.clone()),
                "{tail:?}"
            );
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(parse_announce(&[0xff, 0xfe, 0]), Err(LsdError::NotText));
    }

    #[test]
    fn limits() {
        let max: Vec<InfoHash> = (0..MAX_INFO_HASHES as u8).map(ih).collect();
        let p = format_announce(HOST_V6, 65535, &max, &"c".repeat(200));
        assert!(p.len() <= MAX_PACKET, "{} bytes", p.len());
        assert_eq!(parse_announce(&p).expect("parses").info_hashes, max);

        let too_many: Vec<InfoHash> = (0..=MAX_INFO_HASHES as u8).map(ih).collect();
        let p = format_announce(HOST_V4, 1, &too_many, "");
        assert_eq!(parse_announce(&p), Err(LsdError::TooManyInfoHashes));

        // Repeats of one hash do not count against the limit.
        let same = vec![ih(7); 20];
        let p = format_announce(HOST_V4, 1, &same, "");
        assert_eq!(parse_announce(&p).expect("parses").info_hashes, vec![ih(7)]);

        let mut big = format_announce(HOST_V4, 1, &[ih(1)], "");
        big.truncate(big.len() - 2);
        big.extend(std::iter::repeat_n(b'x', MAX_PACKET));
        assert_eq!(parse_announce(&big), Err(LsdError::TooLarge(big.len())));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic generator: mutations of a valid packet and
        // random bytes.
        let valid = format_announce(HOST_V4, 6881, &[ih(1), ih(2)], "abc");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut p = valid.clone();
            let r = next();
            match r % 4 {
                0 => {
                    let len = (next() % 1500) as usize;
                    p = (0..len).map(|_| next() as u8).collect();
                }
                1 => {
                    for _ in 0..(r >> 8) % 8 {
                        let i = (next() as usize) % p.len();
                        p[i] = next() as u8;
                    }
                }
                2 => {
                    let n = (next() as usize) % (p.len() + 1);
                    p.truncate(n);
                }
                _ => {
                    let i = (next() as usize) % p.len();
                    p.insert(i, b"\r\n:*"[(next() % 4) as usize]);
                }
            }
            let _ = parse_announce(&p);
        }
    }

    #[test]
    fn cookies_differ() {
        assert_ne!(new_cookie(), new_cookie());
        assert_eq!(new_cookie().len(), 16);
    }
}
