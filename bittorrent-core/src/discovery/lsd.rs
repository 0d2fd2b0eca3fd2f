//! Local Service Discovery (BEP 14): announcing our torrents to the LAN over
//! UDP multicast and learning about peers on the LAN that announce theirs.
//!
//! The `BT-SEARCH * HTTP/1.1` datagram is formatted and parsed by the codec
//! in [`crate::proto::lsd`]; this module is [`Lsd`], one thread named `lsd`
//! that owns the multicast socket(s), announces the current set of torrents
//! (every [`LsdConfig::interval`], and soon after the set changes, never more
//! often than [`LsdConfig::min_gap`]) and reports every peer it hears about
//! for one of our torrents on a `crossbeam-channel` as
//! `(info_hash, peer_address)`.
//!
//! Two sockets, one per family: IPv4 joins `239.192.152.143:6771`, IPv6
//! (with [`LsdConfig::ipv6`]) joins `[ff15::efc0:988f]:6771`; either alone
//! is enough (an IPv6-only host announces and listens over IPv6 only).
//! Each socket is bound to the wildcard address of its family, port 6771,
//! with `SO_REUSEADDR` (through
//! `socket2`, since `std` cannot set it before `bind`), so several clients on
//! one host — or several [`Lsd`]s in one process — can share the port; each of
//! them receives every multicast datagram. Our own announces, looped back by
//! the kernel, are recognised by their `cookie` and ignored.

use crate::proto::lsd::{
    format_announce, parse_announce, HOST_V4, HOST_V6, MAX_INFO_HASHES, MAX_PACKET,
};
use crate::proto::metainfo::InfoHash;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeSet;
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
/// How often the thread looks at its stop flag and its command channel.
const TICK: Duration = Duration::from_millis(200);

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
    /// A failure to set up IPv6 is logged and LSD continues IPv4-only; on a
    /// host without IPv4 multicast (IPv6 only), LSD runs over IPv6 alone.
    pub ipv6: bool,
    /// Let the kernel loop our multicast datagrams back to sockets on this
    /// host, so other clients on the same machine hear us (our own announces
    /// are filtered by cookie). Tests on one machine need it.
    pub multicast_loop: bool,
    /// The IPv4 interface to join the group on and send from; `None` lets
    /// the kernel choose (the interface of the route to the group).
    pub bind_ip: Option<Ipv4Addr>,
    /// The IPv6 address whose interface joins the IPv6 group and sends on
    /// it; `None` (or an address no interface has, logged) lets the kernel
    /// choose.
    pub bind_ip6: Option<Ipv6Addr>,
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
            bind_ip6: None,
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
    /// The groups joined: [`HOST_V4`] and/or [`HOST_V6`].
    groups: Vec<&'static str>,
}

impl Lsd {
    /// Bind the multicast socket(s) and start the `lsd` thread.
    ///
    /// Peers announcing one of our torrents (see [`Lsd::set_torrents`]) are
    /// sent on `found` as `(info_hash, source_ip:announced_port)` with
    /// `try_send`: if the channel is full or closed, the peer is dropped.
    ///
    /// Errors if no socket can be bound to port 6771 and join its group
    /// (for example, no multicast route): the IPv4 one, or with
    /// [`LsdConfig::ipv6`] either of the two. On a host with only IPv6 (or
    /// only IPv4) the other family's failure is only logged.
    pub fn start(cfg: LsdConfig, found: Sender<(InfoHash, SocketAddr)>) -> io::Result<Lsd> {
        let v4 = open_v4(&cfg);
        let v6 = if cfg.ipv6 {
            match open_v6(&cfg) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::info!("lsd: IPv6 multicast unavailable: {e}");
                    None
                }
            }
        } else {
            None
        };
        let v4 = match (v4, &v6) {
            (Ok(s), _) => Some(s),
            (Err(e), None) => return Err(e),
            (Err(e), Some(_)) => {
                log::info!("lsd: IPv4 multicast unavailable, IPv6 only: {e}");
                None
            }
        };
        let groups = [(v4.is_some(), HOST_V4), (v6.is_some(), HOST_V6)]
            .into_iter()
            .filter_map(|(on, g)| on.then_some(g))
            .collect();
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
            groups,
        })
    }

    /// Replace the set of torrents we announce and want peers for. A changed
    /// set is announced at once (subject to [`LsdConfig::min_gap`]); an empty
    /// set stops announcing and reporting.
    pub fn set_torrents(&self, hashes: Vec<InfoHash>) {
        // The thread only ends through `stop`/drop, which consume `self`.
        let _ = self.torrents.send(hashes);
    }

    /// The multicast groups this instance announces to and listens on:
    /// `239.192.152.143:6771` and/or `[ff15::efc0:988f]:6771`.
    pub fn groups(&self) -> &[&'static str] {
        &self.groups
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
    let iface = match cfg.bind_ip6 {
        Some(ip) => crate::util::local::ipv6_interface_index(ip).unwrap_or_else(|| {
            log::info!("lsd: no interface has {ip}; the kernel chooses");
            0
        }),
        None => 0,
    };
    sock.join_multicast_v6(&LSD_GROUP_V6, iface)?;
    if iface != 0 {
        sock.set_multicast_if_v6(iface)?;
    }
    sock.set_multicast_loop_v6(cfg.multicast_loop)?;
    sock.set_multicast_hops_v6(cfg.multicast_ttl)?;
    let udp: UdpSocket = sock.into();
    // Two sockets share the tick: each waits half of it.
    udp.set_read_timeout(Some(TICK / 2))?;
    Ok(udp)
}

struct Worker {
    cfg: LsdConfig,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    cookie: String,
    found: Sender<(InfoHash, SocketAddr)>,
    commands: Receiver<Vec<InfoHash>>,
    stop: Arc<AtomicBool>,
    torrents: BTreeSet<InfoHash>,
}

impl Worker {
    fn run(mut self) {
        match (&self.v4, &self.v6) {
            (Some(v4), Some(_)) => {
                if let Err(e) = v4.set_read_timeout(Some(TICK / 2)) {
                    log::warn!("lsd: cannot set read timeout: {e}");
                }
            }
            // Alone, the IPv6 socket waits the whole tick.
            (None, Some(v6)) => {
                if let Err(e) = v6.set_read_timeout(Some(TICK)) {
                    log::warn!("lsd: cannot set read timeout: {e}");
                }
            }
            _ => {}
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
            if self.v4.is_some() {
                changed |= self.receive(false, &mut buf);
            }
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
            if let Some(v4) = &self.v4 {
                if let Err(e) = v4.send_to(&packet, to) {
                    log::debug!("lsd: send to {to}: {e}");
                }
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
        let sock = if v6 {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        };
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

    #[test]
    fn cookies_differ() {
        assert_ne!(new_cookie(), new_cookie());
        assert_eq!(new_cookie().len(), 16);
    }
}
