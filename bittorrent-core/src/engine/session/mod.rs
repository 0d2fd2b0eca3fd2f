//! The session: any number of torrents behind one listening port.
//!
//! Threads: one `listener` (accepts, sniffs the first bytes, routes a
//! BitTorrent handshake to its torrent by info-hash), one torrent thread and
//! one announcer thread per torrent, one metadata thread (and its announcer)
//! per magnet link still without its metadata, one thread per peer socket,
//! a shared hashing pool, and the `udp`, `lsd`, `lsd-router` and `dht`
//! threads.
//!
//! The [`Session`] handle is the only owner of the thread handles; every
//! call on it takes `&self`, so it can be shared (`Arc<Session>`) by a
//! control server and stopped from anywhere with [`Session::shutdown`].

// The rest of this room.
pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod external;
pub(crate) mod shared;

mod add;
mod dht_nodes;
mod hybrid;
mod hybrid_layers;
mod local_discovery;
mod port_map;
mod relocate;
mod rename;
mod seeding;
mod stream;
mod v2_only;
pub use add::{AddTorrent, TorrentSource};
pub use stream::FileReader;

use crate::discovery::announcer::{self, AnnounceTarget};
use crate::discovery::lsd::Lsd;
use crate::discovery::tracker::TrackerServer;
use crate::engine::net::listener::accept_loop;
use crate::engine::net::mse::Encryption;
use crate::engine::net::rate_limit::RatePair;
use crate::engine::session::config::Config;
use crate::engine::session::events::{Event, EventBus};
use crate::engine::session::shared::{Command, MagnetShared, Shared, StatusCell, TorrentShared};
use crate::engine::storage::hasher::HasherPool;
use crate::engine::storage::piece_buffer::MemoryBudget;
use crate::engine::storage::Storage;
use crate::engine::torrent;
use crate::engine::torrent::metadata;
use crate::engine::torrent::selection::{self, FilePriority, Selector};
use crate::engine::torrent::status::{SeedGoal, SeedLimit, SeedLimits, TorrentStatus};
use crate::error::{Error, Result};
use crate::proto::magnet::Magnet;
use crate::proto::metainfo::{InfoHash, Metainfo};
use crate::state::torrents as saved;
use crossbeam_channel::Receiver;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) use crate::util::SERVICE_STACK;

/// The threads a session owns (taken out, then joined, by `stop`).
#[derive(Default)]
struct Threads {
    listener: Option<JoinHandle<()>>,
    /// The second listener (`Config::extra_listen_addrs`).
    listener2: Option<JoinHandle<()>>,
    udp: Option<JoinHandle<()>>,
    udp6: Option<JoinHandle<()>>,
    /// One per uTP endpoint: accepted uTP connections into the listener's path.
    utp_accept: Vec<JoinHandle<()>>,
    lsd_router: Option<JoinHandle<()>>,
    hasher: Option<HasherPool>,
    torrents: Vec<(InfoHash, JoinHandle<()>)>,
    /// The session's one announcer thread (every torrent's trackers, DHT
    /// announces, our own tracker's newcomers).
    announcer: Option<announcer::Announcer>,
    /// Metadata threads (magnet links), running or finished.
    magnets: Vec<(InfoHash, JoinHandle<()>)>,
}

/// The session behind the handle (metadata threads keep a `Weak` to it,
/// to add the torrent they resolved).
struct Inner {
    shared: Arc<Shared>,
    threads: Mutex<Threads>,
    lsd: Mutex<Option<Lsd>>,
    announcer: announcer::AnnouncerClient,
    /// The UDP sockets' addresses: tracker and DHT first, then the IPv6
    /// tracker socket beside a dual-stack listener.
    udp_addrs: Vec<SocketAddr>,
    /// The `portmap` thread, when port mapping is on.
    portmap: Mutex<Option<crate::portmap::PortMapper>>,
    /// The second TCP listener's address (`Config::extra_listen_addrs`).
    second_addr: Option<SocketAddr>,
}

/// A running session. Dropping it shuts it down.
pub struct Session {
    inner: Arc<Inner>,
}

fn random_peer_id(prefix: &str) -> [u8; 20] {
    const ALPHA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = [0u8; 20];
    let p = prefix.as_bytes();
    let n = p.len().min(20);
    id[..n].copy_from_slice(&p[..n]);
    for b in id.iter_mut().skip(n) {
        *b = ALPHA[crate::util::rng::below(ALPHA.len() as u64) as usize];
    }
    id
}

impl Session {
    /// Bind the listening port and start the shared threads.
    pub fn start(mut config: Config) -> Result<Session> {
        // A congestion control this kernel cannot give us is refused here,
        // before anything is bound (engine/net/congestion.rs).
        if let Some(cc) = config.tcp_congestion {
            cc.check().map_err(Error::Congestion)?;
        }
        config.peer_limits.tcp_congestion = config.tcp_congestion;
        let bind = SocketAddr::new(config.listen_addr, config.listen_port);
        let (listener, listener2) = crate::engine::net::bind::tcp_listeners(
            bind.ip(),
            bind.port(),
            &config.extra_listen_addrs,
        )
        .map_err(|e| Error::io(format!("listen on {bind}"), e))?;
        // Accepted sockets inherit the listener's congestion control.
        if let Some(cc) = config.tcp_congestion {
            for l in std::iter::once(&listener).chain(&listener2) {
                cc.apply(l)
                    .map_err(|e| Error::io(format!("TCP congestion control {cc}"), e))?;
            }
        }
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("listening address", e))?;
        let second_addr = listener2
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()
            .map_err(|e| Error::io("listening address", e))?;
        if let Err(e) = config.save(local_addr.port()) {
            log::warn!("cannot save the session configuration: {e}");
        }
        let hasher = HasherPool::start(config.hasher_threads)
            .map_err(|e| Error::io("start hashing threads", e))?;
        let config_tracker = config.tracker.clone();
        // One UDP socket on the listening port number for the UDP tracker
        // (BEP 15) and the DHT, told apart by their first byte by the `udp`
        // thread (`discovery::udp`). So `--dht-bootstrap IP:PORT` with a
        // peer's listening address joins its DHT.
        // With a dual-stack listener that socket is IPv4 (`0.0.0.0`) and a
        // second, IPv6-only socket serves the UDP tracker over IPv6 and the
        // IPv6 DHT (BEP 32).
        // uTP (BEP 29) shares that port too: incoming uTP connections are
        // accepted whenever it is open, and a transport policy other than
        // `tcp` opens it for outgoing ones.
        let want_udp = config.enable_tracker
            || config.dht
            || config.transport != crate::engine::net::transport::TransportPolicy::Tcp;
        let (udp_socket, udp6_socket) = if want_udp {
            let second = second_addr.map(|a| a.ip());
            let (s, s6) = crate::engine::net::bind::udp_sockets(local_addr, second)
                .map_err(|e| Error::io(format!("bind UDP on {local_addr}"), e))?;
            (Some(s), s6)
        } else {
            (None, None)
        };
        let udp_addrs: Vec<SocketAddr> = udp_socket
            .iter()
            .chain(&udp6_socket)
            .filter_map(|s| s.local_addr().ok())
            .collect();
        let (dht_in_tx, dht_in_rx) = crossbeam_channel::bounded(1024);
        let (dht6_in_tx, dht6_in_rx) = crossbeam_channel::bounded(1024);
        let dht = udp_socket
            .as_ref()
            .filter(|_| config.dht)
            .and_then(|s| dht_nodes::start(&config, s, dht_in_rx, None));
        // BEP 32: the IPv6 DHT beside a dual-stack listener, same node id.
        let dht6 = udp6_socket
            .as_ref()
            .filter(|_| config.dht)
            .and_then(|s| dht_nodes::start(&config, s, dht6_in_rx, dht.as_ref().map(|d| d.id())));
        // The uTP endpoints: each sends through a clone of its UDP socket and
        // is fed by that socket's `udp` thread (`discovery::udp::UtpRoute`,
        // `UtpSocket::deliver` on that thread).
        let mut utp_routes = Vec::new();
        let mut utp_endpoints = Vec::new();
        for sock in udp_socket.iter().chain(&udp6_socket) {
            let send = sock
                .try_clone()
                .map_err(|e| Error::io("clone the UDP socket", e))?;
            let ep = Arc::new(
                crate::engine::net::utp::endpoint::UtpSocket::attach(send, Default::default())
                    .map_err(|e| Error::io("start the uTP endpoint", e))?,
            );
            let (owner, taker) = (ep.clone(), ep.clone());
            utp_routes.push(crate::discovery::udp::UtpRoute {
                owns: Box::new(move |from, h| owner.owns(from, h)),
                deliver: Box::new(move |d| taker.deliver(d)),
            });
            utp_endpoints.push(ep);
        }
        let mut utp_routes = utp_routes.into_iter();
        let dialer = Arc::new(crate::engine::net::transport::Dialer {
            policy: config.transport,
            utp: utp_endpoints,
            source: crate::util::source::SourceAddrs::from_listen(
                config.listen_addr,
                &config.extra_listen_addrs,
            ),
        });
        let shared = Arc::new(Shared {
            dialer,
            rates: Arc::new(RatePair::new(
                config.max_download_rate,
                config.max_upload_rate,
            )),
            peer_id: random_peer_id(&config.peer_id_prefix),
            seed_defaults: parking_lot::Mutex::new((config.seed_ratio, config.seed_idle)),
            piece_memory: MemoryBudget::new(config.piece_buffer_memory),
            kept_memory: MemoryBudget::new(
                crate::engine::torrent::recent_pieces::SESSION_KEEP_MEMORY,
            ),
            config,
            hasher: hasher.sender(),
            connections: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
            inbound_internet: Default::default(),
            next_key: AtomicU64::new(1),
            status_changes: Arc::new(AtomicU64::new(0)),
            registry: RwLock::new(HashMap::new()),
            magnets: RwLock::new(HashMap::new()),
            aliases: RwLock::new(HashMap::new()),
            local_addr,
            shutting_down: Arc::new(AtomicBool::new(false)),
            tracker: Arc::new(TrackerServer::new(config_tracker)),
            dht,
            dht6,
            events: EventBus::default(),
            external: Mutex::new(external::ExternalAddresses::default()),
            own_v6: crate::engine::net::own_v6::probe_own_v6(
                std::iter::once(local_addr)
                    .chain(second_addr)
                    .find(|a| a.is_ipv6())
                    .map_or(local_addr.ip(), |a| a.ip()),
            ),
        });
        // Our own entry in our tracker is never evicted to make room.
        shared.tracker.set_own_peer_id(shared.peer_id);
        let mut threads = Threads {
            hasher: Some(hasher),
            ..Threads::default()
        };
        // The `udp` thread: BEP 15 and the DHT on the same port number.
        if let Some(sock) = udp_socket {
            let tracker = shared.config.enable_tracker.then(|| shared.tracker.clone());
            let to_dht = shared.dht.is_some().then_some(dht_in_tx);
            let utp = utp_routes.next();
            let stop = shared.shutting_down.clone();
            threads.udp = Some(
                std::thread::Builder::new()
                    .name("udp".into())
                    .stack_size(SERVICE_STACK)
                    .spawn(move || {
                        if let Err(e) =
                            crate::discovery::udp::run(&sock, tracker, to_dht, utp, &stop)
                        {
                            log::warn!("UDP socket stopped: {e}");
                        }
                    })
                    .map_err(|e| Error::io("start UDP thread", e))?,
            );
        }
        // The IPv6 UDP tracker (BEP 15 over IPv6) and the IPv6 DHT (BEP
        // 32), when the listener is dual stack.
        if let Some(sock) = udp6_socket {
            let tracker = shared.config.enable_tracker.then(|| shared.tracker.clone());
            let to_dht = shared.dht6.is_some().then_some(dht6_in_tx);
            let utp = utp_routes.next();
            let stop = shared.shutting_down.clone();
            threads.udp6 = Some(
                std::thread::Builder::new()
                    .name("udp6".into())
                    .stack_size(SERVICE_STACK)
                    .spawn(move || {
                        if let Err(e) =
                            crate::discovery::udp::run(&sock, tracker, to_dht, utp, &stop)
                        {
                            log::warn!("IPv6 UDP socket stopped: {e}");
                        }
                    })
                    .map_err(|e| Error::io("start UDP thread", e))?,
            );
        }
        // BEP 14: the lsd thread, and its router to the torrents.
        let listens: Vec<SocketAddr> = std::iter::once(local_addr).chain(second_addr).collect();
        let (lsd, lsd_router) = local_discovery::start(&shared, &listens)?;
        threads.lsd_router = lsd_router;
        if let Some(l2) = listener2 {
            let s2 = shared.clone();
            threads.listener2 = Some(
                std::thread::Builder::new()
                    .name("listener".into())
                    .stack_size(SERVICE_STACK)
                    .spawn(move || accept_loop(l2, s2))
                    .map_err(|e| Error::io("start listener thread", e))?,
            );
        }
        // uTP: one `utp-accept` thread per endpoint, into the listener's path.
        for ep in &shared.dialer.utp {
            let (ep, s2) = (ep.clone(), shared.clone());
            threads.utp_accept.push(
                std::thread::Builder::new()
                    .name("utp-accept".into())
                    .stack_size(SERVICE_STACK)
                    .spawn(move || crate::engine::net::listener::utp_accept_loop(ep, s2))
                    .map_err(|e| Error::io("start uTP accept thread", e))?,
            );
        }
        let s2 = shared.clone();
        threads.listener = Some(
            std::thread::Builder::new()
                .name("listener".into())
                .stack_size(SERVICE_STACK)
                .spawn(move || accept_loop(listener, s2))
                .map_err(|e| Error::io("start listener thread", e))?,
        );
        match second_addr {
            Some(a) => log::info!("listening on {local_addr} and {a}"),
            None => log::info!("listening on {local_addr}"),
        }
        let a = announcer::Announcer::start(shared.clone())
            .map_err(|e| Error::io("start announcer thread", e))?;
        let client = a.client();
        threads.announcer = Some(a);
        let portmap = port_map::start_port_mapper(&shared, second_addr);
        Ok(Session {
            inner: Arc::new(Inner {
                portmap: Mutex::new(portmap),
                shared,
                threads: Mutex::new(threads),
                lsd: Mutex::new(lsd),
                announcer: client,
                udp_addrs,
                second_addr,
            }),
        })
    }

    /// The address the session listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.local_addr
    }

    /// Every address the session listens on (TCP): [`Session::local_addr`],
    /// then the second address of `Config::extra_listen_addrs` if any.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.inner.shared.local_addr)
            .chain(self.inner.second_addr)
            .collect()
    }

    /// One line saying what the session listens on: TCP (peer wire and,
    /// when on, the HTTP tracker), UDP (tracker and DHT, one socket on the
    /// same port number) and LSD. For the CLI's start-up line.
    pub fn listening(&self) -> String {
        let a = self.inner.shared.local_addr;
        let c = &self.inner.shared.config;
        let mut tcp = vec!["peer wire"];
        let mut udp = Vec::new();
        if c.enable_tracker {
            tcp.push("HTTP tracker");
            udp.push("UDP tracker");
        }
        if self.inner.shared.dht.is_some() {
            udp.push("DHT");
        }
        let mut line = format!("TCP {a} ({})", tcp.join(" + "));
        if let Some(a2) = self.inner.second_addr {
            line.push_str(&format!(", TCP {a2} ({})", tcp.join(" + ")));
        }
        for (i, u) in self.inner.udp_addrs.iter().enumerate() {
            // The second socket (IPv6 beside a dual-stack listener): the
            // tracker and the IPv6 DHT.
            let what = if i == 0 {
                udp.join(" + ")
            } else {
                let mut w = Vec::new();
                if c.enable_tracker {
                    w.push("UDP tracker");
                }
                if self.inner.shared.dht6.is_some() {
                    w.push("DHT");
                }
                w.join(" + ")
            };
            if !what.is_empty() {
                line.push_str(&format!(", UDP {u} ({what})"));
            }
        }
        if let Some(l) = self.inner.lsd.lock().as_ref() {
            line.push_str(&format!(", LSD {}", l.groups().join(" + ")));
        }
        line
    }

    /// The DHT node's UDP address, when the DHT runs (the listening
    /// address: the DHT shares the UDP socket with the tracker).
    pub fn dht_addr(&self) -> Option<SocketAddr> {
        self.inner.shared.dht.as_ref().map(|d| d.local_addr())
    }

    /// Peers of `ih` found through the DHT (blocking up to `timeout`);
    /// empty without a DHT.
    pub fn dht_get_peers(&self, ih: &InfoHash, timeout: Duration) -> Vec<SocketAddr> {
        let s = &self.inner.shared;
        let dhts: Vec<&crate::discovery::dht::Dht> =
            s.dht.iter().chain(&s.dht6).map(|d| &**d).collect();
        crate::discovery::dht::lookup_all(&dhts, *ih, timeout, None)
    }

    /// The IPv6 DHT node's UDP address (BEP 32), when it runs: beside a
    /// dual-stack listener, on the IPv6 socket of the same port number.
    pub fn dht6_addr(&self) -> Option<SocketAddr> {
        self.inner.shared.dht6.as_ref().map(|d| d.local_addr())
    }

    /// Our peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.inner.shared.peer_id
    }

    /// The encryption policy in force (MSE, both directions).
    pub fn encryption(&self) -> Encryption {
        self.inner.shared.config.encryption
    }

    /// A new subscription to the session's [`Event`]s, from now on.
    ///
    /// Each subscriber has its own queue of
    /// [`EVENT_QUEUE`](crate::EVENT_QUEUE) events; a subscriber that lets
    /// it fill up loses the newest events (the engine never waits for a
    /// subscriber and never holds more). Dropping the receiver ends the
    /// subscription.
    pub fn events(&self) -> Receiver<Event> {
        self.inner.shared.events.subscribe()
    }

    /// Add a torrent or a magnet link. A torrent opens its files, checks
    /// what is there, then downloads what is missing and seeds; a magnet
    /// link first fetches its info dictionary from peers (phase
    /// [`Phase::Metadata`](crate::Phase::Metadata)), for as long as it
    /// takes, then goes on as a torrent. With a state directory it is
    /// remembered there (and [`Session::restore`] brings it back).
    pub fn add(&self, add: AddTorrent) -> Result<InfoHash> {
        match add.source {
            TorrentSource::Metainfo(_) => self.inner.add_torrent(add, true),
            TorrentSource::Magnet(_) => self.inner.add_magnet(add),
        }
    }

    /// Stop exchanging data for a torrent (kept, with its data) until
    /// [`Session::resume`]. Remembered in the state directory.
    pub fn pause(&self, ih: &InfoHash) -> Result<()> {
        self.inner.set_paused(ih, true)
    }

    /// Undo [`Session::pause`].
    pub fn resume(&self, ih: &InfoHash) -> Result<()> {
        self.inner.set_paused(ih, false)
    }

    /// Remove a torrent (or a magnet link still without its metadata) from
    /// the session and from the state directory; with `delete_data`, its
    /// files are deleted too.
    pub fn remove(&self, ih: &InfoHash, delete_data: bool) -> Result<()> {
        self.inner.remove(ih, delete_data)
    }

    /// Change which files of a torrent are downloaded: one priority per
    /// entry of `info.files` (the indices `peer info` shows). Files that
    /// become wanted are created (with the bytes the part file holds of
    /// them) and fetched; a finished torrent goes back to downloading.
    /// Files no longer wanted keep the data they have. Saved in the
    /// torrent's resume data.
    pub fn set_file_priorities(&self, ih: &InfoHash, priorities: Vec<FilePriority>) -> Result<()> {
        let t = self.inner.entry(ih)?;
        selection::check(&t.metainfo.info, &priorities).map_err(|source| Error::Selection {
            name: t.metainfo.info.name.clone(),
            source,
        })?;
        *t.priorities.lock() = priorities.clone();
        t.commands
            .send(Command::SetFilePriorities(priorities))
            .map_err(|_| Error::Stopped)
    }

    /// Turn sequential download and first/last-piece priority of a
    /// torrent on or off ([`PieceOrderPrefs`](crate::PieceOrderPrefs));
    /// takes effect with the next requests. The status shows it
    /// ([`TorrentStatus::sequential`], [`TorrentStatus::first_last_piece`]).
    /// Not kept in the resume data. [`Error::UnknownTorrent`] for an
    /// unknown torrent, [`Error::NoMetadata`] for a magnet link still
    /// fetching its metadata (give it with [`AddTorrent::piece_order`]).
    pub fn set_piece_order(
        &self,
        ih: &InfoHash,
        order: crate::engine::torrent::status::PieceOrderPrefs,
    ) -> Result<()> {
        let t = self.inner.entry(ih)?;
        let mut o = t.piece_order.lock();
        *o = order;
        // Sent under the lock: commands arrive in the order of the writes.
        t.commands
            .send(Command::SetPieceOrder(order))
            .map_err(|_| Error::Stopped)
    }

    /// The piece order last asked for ([`Session::set_piece_order`] or
    /// [`AddTorrent::piece_order`]), at once (the status shows it once the
    /// torrent thread applied it). `None` for an unknown torrent or a
    /// magnet link without its metadata.
    pub fn piece_order(
        &self,
        ih: &InfoHash,
    ) -> Option<crate::engine::torrent::status::PieceOrderPrefs> {
        let t = self.inner.entry(ih).ok()?;
        let o = *t.piece_order.lock();
        Some(o)
    }

    /// The files of a torrent with their selection and progress (`None`
    /// for an unknown torrent or a magnet link without its metadata).
    pub fn files(&self, ih: &InfoHash) -> Option<Vec<FileStatus>> {
        let t = self.inner.shared.registry.read().get(&ih.0).cloned()?;
        let info = &t.metainfo.info;
        let prios = t.priorities.lock().clone();
        let have = t.peer_ctx.have.read().clone();
        let pl = info.piece_length.max(1);
        Some(
            info.files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut bytes_have = 0;
                    if let Some((a, b)) = selection::file_pieces(info, i) {
                        for p in a..=b {
                            if have.get(p as usize) {
                                let ps = u64::from(p) * pl;
                                let s = ps.max(f.offset);
                                let e = (ps + pl).min(f.offset + f.length);
                                bytes_have += e.saturating_sub(s);
                            }
                        }
                    }
                    FileStatus {
                        index: i,
                        path: f.path.join("/"),
                        length: f.length,
                        pad: f.pad,
                        priority: prios.get(i).copied().unwrap_or_default(),
                        bytes_have,
                        created: t.peer_ctx.storage.is_created(i),
                    }
                })
                .collect(),
        )
    }

    /// Change the session-wide rate limits (bytes per second, 0: none).
    /// They apply at once to every peer thread and are saved in the state
    /// directory's `session.benc`.
    pub fn set_rate_limits(&self, max_download_rate: u64, max_upload_rate: u64) -> Result<()> {
        let shared = &self.inner.shared;
        shared.rates.download.set_rate(max_download_rate);
        shared.rates.upload.set_rate(max_upload_rate);
        let mut c = shared.config.clone();
        c.max_download_rate = max_download_rate;
        c.max_upload_rate = max_upload_rate;
        c.save(shared.local_addr.port())
            .map_err(|e| Error::io("save the session configuration", e))
    }

    /// The session-wide limits in force: (download, upload), bytes per
    /// second, 0 meaning none.
    pub fn rate_limits(&self) -> (u64, u64) {
        let r = &self.inner.shared.rates;
        (r.download.rate(), r.upload.rate())
    }

    /// Change one torrent's own rate limits (bytes per second, 0: none);
    /// the session's limits apply too. Remembered in the state directory.
    pub fn set_torrent_rate_limits(
        &self,
        ih: &InfoHash,
        max_download_rate: u64,
        max_upload_rate: u64,
    ) -> Result<()> {
        let t = self.inner.entry(ih)?;
        t.rates.download.set_rate(max_download_rate);
        t.rates.upload.set_rate(max_upload_rate);
        {
            let mut st = t.status.lock();
            st.max_download_rate = max_download_rate;
            st.max_upload_rate = max_upload_rate;
        }
        self.inner.save_entry(&t)
    }

    /// Bring back every torrent and magnet link recorded in the state
    /// directory (as added by an earlier session), paused ones paused; a
    /// magnet link goes on looking for its metadata. One that cannot be
    /// loaded is skipped with a warning. Returns the info-hashes added.
    pub fn restore(&self) -> Result<Vec<InfoHash>> {
        let Some(dir) = self.inner.shared.config.state_dir.clone() else {
            return Ok(Vec::new());
        };
        let list = saved::load_all(&dir).map_err(|e| Error::io("read the state directory", e))?;
        let mut added = Vec::new();
        for entry in list {
            let t = match entry {
                Ok(t) => t,
                Err((path, e)) => {
                    log::warn!("{}: cannot restore: {e}", path.display());
                    continue;
                }
            };
            let add = match t.source {
                saved::SavedSource::Torrent(bytes) => match Metainfo::from_bytes(&bytes) {
                    Ok(mi) => AddTorrent::new(mi, t.save_path).torrent_bytes(bytes),
                    Err(e) => {
                        log::warn!("{}: cannot restore: {e}", t.save_path.display());
                        continue;
                    }
                },
                saved::SavedSource::Magnet(uri) => match Magnet::parse(&uri) {
                    Ok(m) => AddTorrent::magnet(m, t.save_path),
                    Err(e) => {
                        log::warn!("{uri}: cannot restore: {e}");
                        continue;
                    }
                },
            };
            let mut add = add.paused(t.paused);
            (add.max_download_rate, add.max_upload_rate) = t.limits;
            add.seed_limits = t.seed;
            match self.add(add) {
                Ok(ih) => added.push(ih),
                Err(e) => log::warn!("cannot restore a torrent: {e}"),
            }
        }
        Ok(added)
    }

    /// Give a torrent (or a magnet link looking for its metadata) more
    /// peers to dial.
    pub fn add_peers(&self, ih: &InfoHash, peers: Vec<SocketAddr>) -> Result<()> {
        if self.inner.shared.add_peers(ih, peers) {
            Ok(())
        } else {
            Err(Error::UnknownTorrent(*ih))
        }
    }

    /// A number that changes whenever a torrent's snapshot changes or a
    /// torrent is added or removed: a caller that shows every torrent (the
    /// daemon's display, its download queue) copies the snapshots only
    /// when it moved, so an idle session of thousands of torrents costs
    /// nothing.
    pub fn status_version(&self) -> u64 {
        self.inner.shared.status_changes.load(Ordering::Acquire)
    }

    /// Snapshots of every torrent, magnet links in their metadata phase
    /// included.
    pub fn torrents(&self) -> Vec<TorrentStatus> {
        let shared = &self.inner.shared;
        let reg = shared.registry.read();
        let mut all: Vec<TorrentStatus> = reg.values().map(|t| t.status.lock().clone()).collect();
        all.extend(
            shared
                .magnets
                .read()
                .iter()
                .filter(|(ih, _)| !reg.contains_key(&ih.0))
                .map(|(_, m)| m.status.lock().clone()),
        );
        all
    }

    /// The snapshot of one torrent (or magnet link).
    pub fn status(&self, ih: &InfoHash) -> Option<TorrentStatus> {
        let shared = &self.inner.shared;
        if let Some(t) = shared.registry.read().get(&ih.0) {
            return Some(t.status.lock().clone());
        }
        shared
            .magnets
            .read()
            .get(ih)
            .map(|m| m.status.lock().clone())
    }

    /// The metainfo of a torrent in the session (not of a magnet link
    /// still fetching it).
    pub fn metainfo(&self, ih: &InfoHash) -> Option<Metainfo> {
        self.inner
            .shared
            .registry
            .read()
            .get(&ih.0)
            .map(|t| t.metainfo.clone())
    }

    /// A torrent's trackers, by tier (BEP 12 `announce-list`, else its
    /// `announce`); cheaper than [`Session::metainfo`] for a list of many
    /// torrents. `None` for an unknown torrent or a magnet link without
    /// its metadata.
    pub fn trackers(&self, ih: &InfoHash) -> Option<Vec<Vec<String>>> {
        let t = self.inner.shared.registry.read().get(&ih.0).cloned()?;
        let mi = &t.metainfo;
        Some(if mi.announce_list.is_empty() {
            mi.announce.iter().map(|a| vec![a.clone()]).collect()
        } else {
            mi.announce_list.clone()
        })
    }

    /// The verified pieces of a torrent.
    pub fn pieces(&self, ih: &InfoHash) -> Option<crate::proto::bitfield::Bitfield> {
        self.inner
            .shared
            .registry
            .read()
            .get(&ih.0)
            .map(|t| t.peer_ctx.have.read().clone())
    }

    /// The connected peers of a torrent: its torrent thread answers (waits
    /// at most `timeout`; `None` for an unknown torrent or no answer).
    pub fn peers(
        &self,
        ih: &InfoHash,
        timeout: Duration,
    ) -> Option<Vec<crate::engine::torrent::status::PeerInfo>> {
        let commands = self
            .inner
            .shared
            .registry
            .read()
            .get(&ih.0)?
            .commands
            .clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        commands
            .send(crate::engine::session::shared::Command::Peers(tx))
            .ok()?;
        rx.recv_timeout(timeout).ok()
    }

    /// Stop every torrent (closing connections and flushing data), every
    /// metadata fetch, the listener and the hashing pool, and wait for
    /// their threads. Later calls (and dropping the session) do nothing;
    /// other calls then fail with [`Error::Stopped`].
    pub fn shutdown(&self) {
        self.inner.stop();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.inner.stop();
    }
}

impl Inner {
    fn state_dir(&self) -> Option<&std::path::Path> {
        self.shared.config.state_dir.as_deref()
    }

    fn set_paused(&self, ih: &InfoHash, paused: bool) -> Result<()> {
        let t = self.shared.registry.read().get(&ih.0).cloned();
        let Some(t) = t else {
            if self.shared.magnets.read().contains_key(ih) {
                return Err(Error::NoMetadata(*ih));
            }
            return Err(Error::UnknownTorrent(*ih));
        };
        t.commands
            .send(if paused {
                Command::Pause
            } else {
                Command::Resume
            })
            .map_err(|_| Error::Stopped)?;
        t.status.lock().paused = paused;
        self.save_entry(&t)
    }

    /// A torrent with its metadata, or why not.
    fn entry(&self, ih: &InfoHash) -> Result<Arc<TorrentShared>> {
        if let Some(t) = self.shared.registry.read().get(&ih.0) {
            return Ok(t.clone());
        }
        if self.shared.magnets.read().contains_key(ih) {
            return Err(Error::NoMetadata(*ih));
        }
        Err(Error::UnknownTorrent(*ih))
    }

    /// The file selection saved in a torrent's resume data, if any.
    fn saved_priorities(&self, ih: &InfoHash) -> Option<Vec<FilePriority>> {
        let dir = self.state_dir()?;
        let bytes = std::fs::read(dir.join("torrents").join(format!("{ih}.resume"))).ok()?;
        let r = crate::proto::resume::ResumeData::decode(&bytes).ok()?;
        (r.info_hash == *ih && !r.file_priorities.is_empty()).then_some(r.file_priorities)
    }

    /// Write `torrents/<ih>.add` (save path, paused) in the state directory.
    fn save_entry(&self, t: &TorrentShared) -> Result<()> {
        let Some(dir) = self.state_dir() else {
            return Ok(());
        };
        let st = t.status.lock().clone();
        let limits = (t.rates.download.rate(), t.rates.upload.rate());
        saved::save_entry(
            dir,
            &st.info_hash,
            &st.save_path,
            st.paused,
            limits,
            st.seed_limits,
        )
        .map_err(|e| Error::io("save the torrent list", e))
    }

    fn remove(&self, ih: &InfoHash, delete_data: bool) -> Result<()> {
        let magnet = self.shared.magnets.write().remove(ih);
        let torrent = self.shared.registry.write().remove(&ih.0);
        self.shared.torrents_changed();
        if magnet.is_none() && torrent.is_none() {
            return Err(Error::UnknownTorrent(*ih));
        }
        self.update_lsd();
        if let Some(m) = magnet {
            m.stop.store(true, Ordering::SeqCst);
            let handle = {
                let mut th = self.threads.lock();
                let i = th.magnets.iter().position(|(h, _)| h == ih);
                i.map(|i| th.magnets.remove(i))
            };
            if let Some((_, h)) = handle {
                let _ = h.join();
            }
        }
        if let Some(t) = &torrent {
            self.shared.tracker.disallow(*ih);
            if let Some(v2) = hybrid::v2_alias(t) {
                self.shared.aliases.write().remove(&v2.0);
                self.shared.tracker.disallow(v2);
                self.announcer.remove(v2);
            }
            let handle = {
                let mut th = self.threads.lock();
                let h = th.torrents.iter().position(|(h, _)| h == ih);
                h.map(|i| th.torrents.remove(i))
            };
            self.announcer.remove(*ih);
            let (tx, rx) = crossbeam_channel::bounded(1);
            if t.commands.send(Command::Remove(tx)).is_ok() {
                let _ = rx.recv_timeout(Duration::from_secs(10));
            }
            if let Some((_, h)) = handle {
                let _ = h.join();
            }
        }
        if let Some(dir) = self.state_dir() {
            saved::remove(dir, ih);
        }
        if let (Some(t), true) = (&torrent, delete_data) {
            delete_files(&t.peer_ctx.storage, &t.metainfo.info.name)?;
        }
        log::info!(
            "{ih}: removed{}",
            if delete_data { " with its data" } else { "" }
        );
        self.shared
            .events
            .publish(Event::Removed { info_hash: *ih });
        Ok(())
    }

    /// Tell the LSD thread which torrents to announce (never private ones),
    /// and the info-hashes of magnet links looking for their metadata.
    fn update_lsd(&self) {
        if let Some(l) = &*self.lsd.lock() {
            let mut hashes: Vec<InfoHash> = self
                .shared
                .registry
                .read()
                .values()
                .filter(|t| !t.metainfo.info.private)
                .map(|t| t.metainfo.info_hash)
                .collect();
            hashes.extend(self.shared.magnets.read().keys().copied());
            hashes.sort();
            hashes.dedup();
            l.set_torrents(hashes);
        }
    }

    fn stop(&self) {
        if self.shared.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut th = std::mem::take(&mut *self.threads.lock());
        // The port mapper removes its mappings while the rest stops.
        if let Some(p) = self.portmap.lock().as_mut() {
            p.request_stop();
        }
        // Metadata threads first: none of them adds a torrent after this.
        for m in self.shared.magnets.read().values() {
            m.stop.store(true, Ordering::SeqCst);
        }
        for (_, h) in th.magnets.drain(..) {
            let _ = h.join();
        }
        // The announcer sends `stopped` (bounded by a few seconds, several
        // at once) while the torrents shut down.
        self.announcer.request_stop();
        let torrents: Vec<Arc<TorrentShared>> =
            self.shared.registry.read().values().cloned().collect();
        let mut waits = Vec::new();
        for t in &torrents {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if t.commands.send(Command::Shutdown(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for rx in waits {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
        // Torrents added while we stopped (their handles came late).
        th.torrents.append(&mut self.threads.lock().torrents);
        for (_, h) in th.torrents.drain(..) {
            let _ = h.join();
        }
        if let Some(a) = th.announcer.as_mut() {
            a.join();
        }
        self.shared.registry.write().clear();
        self.shared.aliases.write().clear();
        // Wake the blocked accepts with a connection to ourselves.
        for mut wake in std::iter::once(self.shared.local_addr).chain(self.second_addr) {
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
        for h in [th.listener.take(), th.listener2.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.join();
        }
        if let Some(h) = th.udp.take() {
            let _ = h.join();
        }
        if let Some(h) = th.udp6.take() {
            let _ = h.join();
        }
        for h in th.utp_accept.drain(..) {
            let _ = h.join();
        }
        for ep in &self.shared.dialer.utp {
            ep.shutdown();
        }
        if let Some(l) = self.lsd.lock().take() {
            l.stop();
        }
        if let Some(dir) = &self.shared.config.state_dir {
            if self.shared.dht.is_some() || self.shared.dht6.is_some() {
                dht_nodes::save(dir, [self.shared.dht.as_ref(), self.shared.dht6.as_ref()]);
            }
        }
        if let Some(h) = th.lsd_router.take() {
            let _ = h.join();
        }
        if let Some(h) = th.hasher.take() {
            h.shutdown();
        }
        if let Some(p) = self.portmap.lock().as_mut() {
            p.stop();
        }
    }
}

/// Delete a torrent's files and the empty directories it created, up to
/// the save path, never through a symbolic link (a path with one is left
/// alone and reported).
fn delete_files(storage: &Storage, name: &str) -> Result<()> {
    storage.remove_files().map_err(|e| Error::Storage {
        name: name.to_string(),
        source: e,
    })
}

/// One file of a torrent, as [`Session::files`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// Its index in `info.files` (as `peer info` shows it).
    pub index: usize,
    /// Its path inside the torrent, joined with `/`.
    pub path: String,
    /// Its length in bytes.
    pub length: u64,
    /// A pad file (never stored).
    pub pad: bool,
    /// Whether it is downloaded.
    pub priority: FilePriority,
    /// Bytes of it in verified pieces.
    pub bytes_have: u64,
    /// Whether it exists on disk for this torrent.
    pub created: bool,
}
