//! The session: any number of torrents behind one listening port.
//!
//! Threads: one `listener` (accepts, sniffs the first bytes, routes a
//! BitTorrent handshake to its torrent by info-hash), one torrent thread per
//! torrent, one thread per peer socket, and a shared hashing pool.

use crate::discovery::tracker::{TrackerConfig, TrackerServer};
use crate::engine::hasher::{HashJob, HasherPool};
use crate::engine::mse::{self, Encryption, PeerStream, Sniffed};
use crate::engine::peer::{self, PeerLimits};
use crate::engine::picker::PeerKey;
use crate::engine::storage::Storage;
use crate::engine::torrent::{self, Command, TorrentShared, TorrentStatus};
use crate::error::{Error, Result};
use crate::proto::metainfo::{InfoHash, Metainfo};
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Session configuration. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default `0.0.0.0`).
    pub listen_addr: IpAddr,
    /// Port to listen on (default 6881; 0 picks a free port).
    pub listen_port: u16,
    /// The first 8 bytes of our peer id (Azureus style, default `-PE0001-`).
    pub peer_id_prefix: String,
    /// Connected peers per torrent (default 50).
    pub max_peers_per_torrent: usize,
    /// Connections in the whole session (default 500).
    pub max_connections: usize,
    /// Regular upload slots per torrent; one optimistic slot is added (default 4).
    pub upload_slots: usize,
    /// Hashing threads (default: the number of cores).
    pub hasher_threads: usize,
    /// Per-peer limits and timeouts.
    pub peer_limits: PeerLimits,
    /// The tracker embedded in this peer (HTTP on the listening TCP port,
    /// BEP 15 on the same UDP port). By default it tracks only the
    /// session's torrents; `open` tracks any info-hash.
    pub tracker: TrackerConfig,
    /// Run the embedded tracker (default true).
    pub enable_tracker: bool,
    /// Local Service Discovery (BEP 14): announce our torrents by multicast
    /// on the LAN and hear other peers' announces (default false for
    /// embedders; the `peer` command turns it on unless `--no-lsd`).
    /// Private torrents are never announced.
    pub lsd: bool,
    /// Run a mainline DHT node (BEP 5) on its own UDP port (default false
    /// for embedders; the `peer` command turns it on unless `--no-dht`).
    /// Public torrents find peers through it; private ones never use it.
    pub dht: bool,
    /// DHT nodes to bootstrap from (besides the routing table saved in the
    /// state directory and peers' `port` messages).
    pub dht_bootstrap: Vec<SocketAddr>,
    /// Where resume data is kept (`torrents/<info-hash>.resume`); `None`
    /// (the default) keeps none, and every start rechecks the data on disk.
    pub state_dir: Option<PathBuf>,
    /// Message Stream Encryption (MSE/PE) for both directions (default
    /// [`Encryption::Prefer`]: accept MSE and plaintext, dial MSE first and
    /// fall back to plaintext; `Require`: MSE with RC4 only; `Off`:
    /// plaintext only).
    pub encryption: Encryption,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_port: 6881,
            peer_id_prefix: "-PE0001-".into(),
            max_peers_per_torrent: 50,
            max_connections: 500,
            upload_slots: 4,
            hasher_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            peer_limits: PeerLimits::default(),
            tracker: TrackerConfig {
                // A LAN swarm wants newcomers found in minutes, not half hours.
                interval: Duration::from_secs(120),
                min_interval: Duration::from_secs(30),
                peer_timeout: Duration::from_secs(300),
                ..TrackerConfig::default()
            },
            enable_tracker: true,
            state_dir: None,
            lsd: false,
            dht: false,
            dht_bootstrap: Vec::new(),
            encryption: Encryption::Prefer,
        }
    }
}

impl Config {
    /// The configuration saved in `state_dir/session.benc` by an earlier
    /// session (listen port, peer-id prefix, connection limits, upload
    /// slots), on top of the defaults, with `state_dir` set. `None` when
    /// there is none or it is unreadable (then the defaults apply).
    pub fn from_state_dir(state_dir: &std::path::Path) -> Option<Config> {
        use crate::proto::bencode::Value;
        let bytes = std::fs::read(state_dir.join("session.benc")).ok()?;
        let v = crate::proto::bencode::decode(&bytes).ok()?;
        let int = |k: &[u8]| v.get(k).and_then(Value::as_int);
        let mut c = Config {
            state_dir: Some(state_dir.to_path_buf()),
            ..Config::default()
        };
        if let Some(p) = int(b"listen port").and_then(|p| u16::try_from(p).ok()) {
            c.listen_port = p;
        }
        if let Some(s) = v.get(b"peer id prefix").and_then(Value::as_str) {
            c.peer_id_prefix = s.chars().take(8).collect();
        }
        let count = |k: &[u8]| {
            int(k)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
        };
        if let Some(n) = count(b"max connections") {
            c.max_connections = n.min(10_000);
        }
        if let Some(n) = count(b"max peers per torrent") {
            c.max_peers_per_torrent = n.min(10_000);
        }
        if let Some(n) = count(b"upload slots") {
            c.upload_slots = n.min(1_000);
        }
        if let Some(e) = v
            .get(b"encryption")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            c.encryption = e;
        }
        Some(c)
    }

    /// Write the persistent part of this configuration to
    /// `state_dir/session.benc` (atomically), with the port actually used.
    fn save(&self, listen_port: u16) -> std::io::Result<()> {
        use crate::proto::bencode::OwnedValue;
        let Some(dir) = &self.state_dir else {
            return Ok(());
        };
        let v = OwnedValue::Dict(vec![
            (
                b"listen port".to_vec(),
                OwnedValue::Int(i64::from(listen_port)),
            ),
            (
                b"peer id prefix".to_vec(),
                OwnedValue::bytes(&self.peer_id_prefix),
            ),
            (
                b"max connections".to_vec(),
                OwnedValue::Int(self.max_connections as i64),
            ),
            (
                b"max peers per torrent".to_vec(),
                OwnedValue::Int(self.max_peers_per_torrent as i64),
            ),
            (
                b"upload slots".to_vec(),
                OwnedValue::Int(self.upload_slots as i64),
            ),
            (
                b"encryption".to_vec(),
                OwnedValue::bytes(self.encryption.as_str()),
            ),
        ]);
        crate::engine::torrent::write_atomically(&dir.join("session.benc"), &v.to_bytes())
    }
}

/// A torrent to add to the session.
#[derive(Debug, Clone)]
pub struct AddTorrent {
    /// The torrent.
    pub metainfo: Metainfo,
    /// Directory its files live in (created if missing).
    pub dir: PathBuf,
    /// Peers to dial at once.
    pub peers: Vec<SocketAddr>,
    /// Start paused.
    pub paused: bool,
    /// The original `.torrent` bytes, kept in the state directory (when
    /// `None`, a torrent is written from the info dictionary and trackers).
    pub torrent_bytes: Option<Vec<u8>>,
}

impl AddTorrent {
    /// A torrent saved under `dir`.
    pub fn new(metainfo: Metainfo, dir: impl Into<PathBuf>) -> AddTorrent {
        AddTorrent {
            metainfo,
            dir: dir.into(),
            peers: Vec::new(),
            paused: false,
            torrent_bytes: None,
        }
    }
    /// Peers to dial at once.
    pub fn peers(mut self, peers: Vec<SocketAddr>) -> AddTorrent {
        self.peers = peers;
        self
    }
}

/// Session-wide state that threads share (read-mostly).
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) peer_id: [u8; 20],
    pub(crate) hasher: Sender<HashJob>,
    pub(crate) connections: AtomicUsize,
    /// Accepted sockets still in the handshake (not yet in `connections`).
    handshaking: AtomicUsize,
    next_key: AtomicU64,
    registry: RwLock<HashMap<[u8; 20], Arc<TorrentShared>>>,
    local_addr: SocketAddr,
    shutting_down: Arc<AtomicBool>,
    pub(crate) tracker: Arc<TrackerServer>,
    pub(crate) dht: Option<Arc<crate::discovery::dht::Dht>>,
    /// Info-hashes we look for by LSD without having the torrent yet (a
    /// magnet link), and the peers heard of so far.
    lsd_pending: Mutex<HashMap<InfoHash, Vec<SocketAddr>>>,
}

impl Shared {
    /// Our listening port (what we announce).
    pub(crate) fn local_port(&self) -> u16 {
        self.local_addr.port()
    }

    pub(crate) fn next_key(&self) -> PeerKey {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `a` is our own listening address (never dial ourselves).
    pub(crate) fn is_own_address(&self, a: &SocketAddr) -> bool {
        a.port() == self.local_addr.port()
            && (a.ip() == self.local_addr.ip()
                || a.ip().is_loopback()
                || self.local_addr.ip().is_unspecified() && is_local_ip(a.ip()))
    }
}

fn is_local_ip(ip: IpAddr) -> bool {
    // Binding to probe is the portable way to ask "is this address mine?".
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// A torrent's announcer thread: its torrent, its stop flag, its handle.
type Announcer = (InfoHash, Arc<AtomicBool>, JoinHandle<()>);

/// A running session. Dropping it shuts it down.
pub struct Session {
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
    udp: Option<JoinHandle<()>>,
    torrents: Mutex<Vec<(InfoHash, JoinHandle<()>)>>,
    announcers: Mutex<Vec<Announcer>>,
    lsd: Option<crate::discovery::lsd::Lsd>,
    lsd_router: Option<JoinHandle<()>>,
    hasher: Option<HasherPool>,
}

fn random_peer_id(prefix: &str) -> [u8; 20] {
    let mut id = [0u8; 20];
    let p = prefix.as_bytes();
    let n = p.len().min(20);
    id[..n].copy_from_slice(&p[..n]);
    let seed = std::collections::hash_map::RandomState::new();
    let mut x = std::hash::BuildHasher::hash_one(&seed, std::time::SystemTime::now()) | 1;
    const ALPHA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for b in id.iter_mut().skip(n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = ALPHA[(x % ALPHA.len() as u64) as usize];
    }
    id
}

impl Session {
    /// Bind the listening port and start the shared threads.
    pub fn start(config: Config) -> Result<Session> {
        let bind = SocketAddr::new(config.listen_addr, config.listen_port);
        let listener =
            TcpListener::bind(bind).map_err(|e| Error::io(format!("listen on {bind}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("listening address", e))?;
        if let Err(e) = config.save(local_addr.port()) {
            log::warn!("cannot save the session configuration: {e}");
        }
        let hasher = HasherPool::start(config.hasher_threads)
            .map_err(|e| Error::io("start hashing threads", e))?;
        let config_tracker = config.tracker.clone();
        let dht = if config.dht {
            let mut bootstrap = config.dht_bootstrap.clone();
            if let Some(dir) = &config.state_dir {
                bootstrap.extend(load_dht_nodes(&dir.join("dht.benc")));
            }
            let cfg = crate::discovery::dht::DhtConfig {
                bind: SocketAddr::new(config.listen_addr, 0),
                bootstrap,
                ..Default::default()
            };
            match crate::discovery::dht::Dht::start(cfg) {
                Ok(d) => {
                    log::info!("DHT node on {}", d.local_addr());
                    Some(Arc::new(d))
                }
                Err(e) => {
                    log::warn!("DHT disabled: {e}");
                    None
                }
            }
        } else {
            None
        };
        let shared = Arc::new(Shared {
            peer_id: random_peer_id(&config.peer_id_prefix),
            config,
            hasher: hasher.sender(),
            connections: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
            next_key: AtomicU64::new(1),
            registry: RwLock::new(HashMap::new()),
            local_addr,
            shutting_down: Arc::new(AtomicBool::new(false)),
            tracker: Arc::new(TrackerServer::new(config_tracker)),
            dht,
            lsd_pending: Mutex::new(HashMap::new()),
        });
        // BEP 15 on the same port number, UDP.
        let udp = if shared.config.enable_tracker {
            let sock = std::net::UdpSocket::bind(local_addr)
                .map_err(|e| Error::io(format!("bind UDP tracker on {local_addr}"), e))?;
            let (t, stop) = (shared.tracker.clone(), shared.shutting_down.clone());
            Some(
                std::thread::Builder::new()
                    .name("udp".into())
                    .spawn(move || {
                        if let Err(e) = t.run_udp(&sock, &stop) {
                            log::warn!("UDP tracker stopped: {e}");
                        }
                    })
                    .map_err(|e| Error::io("start UDP thread", e))?,
            )
        } else {
            None
        };
        // BEP 14: the lsd thread reports (info-hash, peer) pairs; a small
        // router thread hands them to the torrents as new candidates.
        let (lsd, lsd_router) = if shared.config.lsd {
            let (found_tx, found_rx) = crossbeam_channel::bounded(256);
            let cfg = crate::discovery::lsd::LsdConfig {
                port: local_addr.port(),
                // IPv6 too where the host has it (a failure to join is
                // logged and LSD goes on over IPv4).
                ipv6: true,
                ..Default::default()
            };
            match crate::discovery::lsd::Lsd::start(cfg, found_tx) {
                Ok(l) => {
                    let s3 = shared.clone();
                    let router = std::thread::Builder::new()
                        .name("lsd-router".into())
                        .spawn(move || route_lsd(found_rx, s3))
                        .map_err(|e| Error::io("start LSD router thread", e))?;
                    (Some(l), Some(router))
                }
                Err(e) => {
                    log::warn!("local service discovery disabled: {e}");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        let s2 = shared.clone();
        let handle = std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || accept_loop(listener, s2))
            .map_err(|e| Error::io("start listener thread", e))?;
        log::info!("listening on {local_addr}");
        Ok(Session {
            shared,
            listener: Some(handle),
            lsd,
            lsd_router,
            udp,
            torrents: Mutex::new(Vec::new()),
            announcers: Mutex::new(Vec::new()),
            hasher: Some(hasher),
        })
    }

    /// The address the session listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The DHT node's UDP address, when the DHT runs.
    pub fn dht_addr(&self) -> Option<SocketAddr> {
        self.shared.dht.as_ref().map(|d| d.local_addr())
    }

    /// Peers of `ih` found through the DHT (blocking up to `timeout`);
    /// empty without a DHT.
    pub fn dht_get_peers(&self, ih: &InfoHash, timeout: Duration) -> Vec<SocketAddr> {
        match &self.shared.dht {
            Some(d) => d.get_peers(*ih, timeout),
            None => Vec::new(),
        }
    }

    /// Our peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.shared.peer_id
    }

    /// The encryption policy in force (MSE, both directions).
    pub fn encryption(&self) -> Encryption {
        self.shared.config.encryption
    }

    /// Add a torrent: open its files, check what is there, then download
    /// what is missing and seed.
    pub fn add(&self, add: AddTorrent) -> Result<InfoHash> {
        let ih = add.metainfo.info_hash;
        if self.shared.registry.read().contains_key(&ih.0) {
            return Err(Error::Other(format!(
                "torrent {ih} is already in the session"
            )));
        }
        for (raw, used) in add.metainfo.renamed_files() {
            log::warn!(
                "{}: file {raw:?} is saved as {used:?}",
                add.metainfo.info.name
            );
        }
        let storage = Storage::open(&add.dir, &add.metainfo.info)
            .map_err(|e| Error::Other(format!("{}: {e}", add.metainfo.info.name)))?;
        let kept = self
            .shared
            .config
            .state_dir
            .as_ref()
            .map(|d| d.join("torrents").join(format!("{ih}.torrent")));
        if let Some(path) = kept.filter(|p| !p.exists()) {
            let bytes = add
                .torrent_bytes
                .clone()
                .unwrap_or_else(|| torrent_file_bytes(&add.metainfo));
            crate::engine::torrent::write_atomically(&path, &bytes)
                .map_err(|e| Error::io("save the torrent in the state directory", e))?;
        }
        let (t, handle) = torrent::spawn(
            self.shared.clone(),
            add.metainfo,
            Arc::new(storage),
            add.peers,
            add.paused,
        )
        .map_err(|e| Error::io("start torrent thread", e))?;
        self.shared.registry.write().insert(ih.0, t.clone());
        self.shared.tracker.allow(ih);
        self.torrents.lock().push((ih, handle));
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (self.shared.clone(), stop.clone());
        let a = std::thread::Builder::new()
            .name(format!("announcer {}", &ih.to_hex()[..8]))
            .spawn(move || crate::discovery::announcer::run(sh, t, st))
            .map_err(|e| Error::io("start announcer thread", e))?;
        self.announcers.lock().push((ih, stop, a));
        self.update_lsd();
        self.save_torrent_entry(ih)?;
        Ok(ih)
    }

    fn entry(&self, ih: &InfoHash) -> Result<Arc<TorrentShared>> {
        self.shared
            .registry
            .read()
            .get(&ih.0)
            .cloned()
            .ok_or_else(|| Error::Other(format!("no torrent {ih} in the session")))
    }

    /// Stop exchanging data for a torrent (kept, with its data) until
    /// [`Session::resume`]. Remembered in the state directory.
    pub fn pause(&self, ih: &InfoHash) -> Result<()> {
        let t = self.entry(ih)?;
        let _ = t.commands.send(Command::Pause);
        t.status.lock().paused = true;
        self.save_torrent_entry(*ih)
    }

    /// Undo [`Session::pause`].
    pub fn resume(&self, ih: &InfoHash) -> Result<()> {
        let t = self.entry(ih)?;
        let _ = t.commands.send(Command::Resume);
        t.status.lock().paused = false;
        self.save_torrent_entry(*ih)
    }

    /// Remove a torrent from the session (and from the state directory);
    /// with `delete_data`, its files are deleted too.
    pub fn remove(&self, ih: &InfoHash, delete_data: bool) -> Result<()> {
        let t = self
            .shared
            .registry
            .write()
            .remove(&ih.0)
            .ok_or_else(|| Error::Other(format!("no torrent {ih} in the session")))?;
        self.shared.tracker.disallow(*ih);
        self.update_lsd();
        let announcer = {
            let mut a = self.announcers.lock();
            a.iter().position(|(h, _, _)| h == ih).map(|i| a.remove(i))
        };
        if let Some((_, stop, h)) = announcer {
            stop.store(true, Ordering::SeqCst);
            let _ = h.join();
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        if t.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        let handle = {
            let mut ts = self.torrents.lock();
            ts.iter().position(|(h, _)| h == ih).map(|i| ts.remove(i))
        };
        if let Some((_, h)) = handle {
            let _ = h.join();
        }
        if let Some(dir) = &self.shared.config.state_dir {
            for ext in ["torrent", "resume", "add"] {
                let _ = std::fs::remove_file(dir.join("torrents").join(format!("{ih}.{ext}")));
            }
        }
        if delete_data {
            let storage = &t.peer_ctx.storage;
            for p in storage.paths() {
                if let Err(e) = std::fs::remove_file(p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(Error::io(format!("delete {}", p.display()), e));
                    }
                }
                // Empty directories the torrent created, up to the save path.
                let mut d = p.parent();
                while let Some(dir) = d {
                    if dir == storage.root() || std::fs::remove_dir(dir).is_err() {
                        break;
                    }
                    d = dir.parent();
                }
            }
        }
        log::info!(
            "{}: removed{}",
            t.metainfo.info.name,
            if delete_data { " with its data" } else { "" }
        );
        Ok(())
    }

    /// Write `torrents/<ih>.add` (save path, paused) in the state directory.
    fn save_torrent_entry(&self, ih: InfoHash) -> Result<()> {
        let Some(dir) = &self.shared.config.state_dir else {
            return Ok(());
        };
        let t = self.entry(&ih)?;
        let st = t.status.lock().clone();
        let v = crate::proto::bencode::OwnedValue::Dict(vec![
            (
                b"save path".to_vec(),
                crate::proto::bencode::OwnedValue::bytes(st.save_path.to_string_lossy().as_bytes()),
            ),
            (
                b"paused".to_vec(),
                crate::proto::bencode::OwnedValue::Int(i64::from(st.paused)),
            ),
        ]);
        let path = dir.join("torrents").join(format!("{ih}.add"));
        let bytes = v.to_bytes();
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(()); // unchanged (a restore): no write, no fsync
        }
        crate::engine::torrent::write_atomically(&path, &bytes)
            .map_err(|e| Error::io("save the torrent list", e))
    }

    /// Bring back every torrent recorded in the state directory (as added
    /// by an earlier session), paused ones paused. A torrent that cannot be
    /// loaded is skipped with a warning. Returns the torrents added.
    pub fn restore(&self) -> Result<Vec<InfoHash>> {
        let Some(dir) = self.shared.config.state_dir.clone() else {
            return Ok(Vec::new());
        };
        let list = match std::fs::read_dir(dir.join("torrents")) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read the state directory", e)),
        };
        let mut added = Vec::new();
        let mut entries: Vec<PathBuf> = list
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "add"))
            .collect();
        entries.sort();
        for entry in entries {
            let load = || -> std::result::Result<AddTorrent, String> {
                let add = std::fs::read(&entry).map_err(|e| e.to_string())?;
                let v = crate::proto::bencode::decode(&add).map_err(|e| e.to_string())?;
                let save = v
                    .get(b"save path")
                    .and_then(crate::proto::bencode::Value::as_bytes)
                    .ok_or("no save path")?;
                let paused = v
                    .get(b"paused")
                    .and_then(crate::proto::bencode::Value::as_int)
                    == Some(1);
                let bytes =
                    std::fs::read(entry.with_extension("torrent")).map_err(|e| e.to_string())?;
                let mi = Metainfo::from_bytes(&bytes).map_err(|e| e.to_string())?;
                let mut a = AddTorrent::new(
                    mi,
                    PathBuf::from(String::from_utf8_lossy(save).into_owned()),
                );
                a.paused = paused;
                a.torrent_bytes = Some(bytes);
                Ok(a)
            };
            match load() {
                Ok(a) => match self.add(a) {
                    Ok(ih) => added.push(ih),
                    Err(e) => log::warn!("{}: {e}", entry.display()),
                },
                Err(e) => log::warn!("{}: cannot restore: {e}", entry.display()),
            }
        }
        Ok(added)
    }

    /// Tell the LSD thread which torrents to announce (never private ones),
    /// and the info-hashes of magnet links being looked for.
    fn update_lsd(&self) {
        if let Some(l) = &self.lsd {
            let mut hashes: Vec<InfoHash> = self
                .shared
                .registry
                .read()
                .values()
                .filter(|t| !t.metainfo.info.private)
                .map(|t| t.metainfo.info_hash)
                .collect();
            hashes.extend(self.shared.lsd_pending.lock().keys().copied());
            l.set_torrents(hashes);
        }
    }

    /// Peers of `ih` found by Local Service Discovery, for a torrent not
    /// added yet (a magnet link): announces `ih` on the LAN and waits up to
    /// `timeout` for a peer that has it to announce it (peers answer a
    /// newcomer's announce within BEP 14's one-a-minute rate). Empty
    /// without LSD.
    pub fn lsd_find(&self, ih: &InfoHash, timeout: Duration) -> Vec<SocketAddr> {
        if self.lsd.is_none() {
            return Vec::new();
        }
        self.shared.lsd_pending.lock().insert(*ih, Vec::new());
        self.update_lsd();
        let deadline = std::time::Instant::now() + timeout;
        let mut found = Vec::new();
        while std::time::Instant::now() < deadline {
            found = self
                .shared
                .lsd_pending
                .lock()
                .get(ih)
                .cloned()
                .unwrap_or_default();
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.shared.lsd_pending.lock().remove(ih);
        self.update_lsd();
        found
    }

    /// Give a torrent more peers to dial.
    pub fn add_peers(&self, ih: &InfoHash, peers: Vec<SocketAddr>) -> Result<()> {
        let reg = self.shared.registry.read();
        let t = reg
            .get(&ih.0)
            .ok_or_else(|| Error::Other(format!("no torrent {ih}")))?;
        t.commands
            .send(Command::AddPeers(peers))
            .map_err(|_| Error::Other("torrent stopped".into()))
    }

    /// Snapshots of every torrent.
    pub fn torrents(&self) -> Vec<TorrentStatus> {
        self.shared
            .registry
            .read()
            .values()
            .map(|t| t.status.lock().clone())
            .collect()
    }

    /// The snapshot of one torrent.
    pub fn status(&self, ih: &InfoHash) -> Option<TorrentStatus> {
        self.shared
            .registry
            .read()
            .get(&ih.0)
            .map(|t| t.status.lock().clone())
    }

    /// The metainfo of a torrent in the session.
    pub fn metainfo(&self, ih: &InfoHash) -> Option<Metainfo> {
        self.shared
            .registry
            .read()
            .get(&ih.0)
            .map(|t| t.metainfo.clone())
    }

    /// The verified pieces of a torrent.
    pub fn pieces(&self, ih: &InfoHash) -> Option<crate::proto::bitfield::Bitfield> {
        self.shared
            .registry
            .read()
            .get(&ih.0)
            .map(|t| t.peer_ctx.have.read().clone())
    }

    /// The connected peers of a torrent: its torrent thread answers (waits
    /// at most `timeout`; `None` for an unknown torrent or no answer).
    pub fn peers(&self, ih: &InfoHash, timeout: Duration) -> Option<Vec<torrent::PeerInfo>> {
        let commands = self.shared.registry.read().get(&ih.0)?.commands.clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        commands.send(Command::Peers(tx)).ok()?;
        rx.recv_timeout(timeout).ok()
    }

    /// Stop every torrent (closing connections and flushing data), the
    /// listener and the hashing pool; waits for their threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        // Announcers send `stopped` (bounded by a few seconds) in parallel.
        let announcers: Vec<_> = self.announcers.lock().drain(..).collect();
        for (_, stop, _) in &announcers {
            stop.store(true, Ordering::SeqCst);
        }
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
        for (_, h) in self.torrents.lock().drain(..) {
            let _ = h.join();
        }
        for (_, _, h) in announcers {
            let _ = h.join();
        }
        self.shared.registry.write().clear();
        // Wake the blocked accept with a connection to ourselves.
        let mut wake = self.shared.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        if let Some(h) = self.udp.take() {
            let _ = h.join();
        }
        if let Some(l) = self.lsd.take() {
            l.stop();
        }
        if let (Some(d), Some(dir)) = (&self.shared.dht, &self.shared.config.state_dir) {
            save_dht_nodes(&dir.join("dht.benc"), &d.routing_table_nodes());
        }
        if let Some(h) = self.lsd_router.take() {
            let _ = h.join();
        }
        if let Some(h) = self.hasher.take() {
            h.shutdown();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors and the like: back off briefly.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // Sockets still in the handshake count too: silent connections
        // must not each get a thread beyond the limit.
        let busy =
            shared.connections.load(Ordering::Relaxed) + shared.handshaking.load(Ordering::Relaxed);
        if busy >= shared.config.max_connections {
            continue; // dropped: closes the socket
        }
        shared.handshaking.fetch_add(1, Ordering::Relaxed);
        let s = shared.clone();
        let _ = std::thread::Builder::new()
            .name("peer (incoming)".into())
            .spawn(move || handle_incoming(stream, s));
    }
}

/// Counts an accepted socket as handshaking until dropped.
struct Handshaking(Arc<Shared>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sniff the first bytes: a BitTorrent handshake goes to its torrent.
fn handle_incoming(mut stream: TcpStream, shared: Arc<Shared>) {
    let guard = Handshaking(shared.clone());
    let Ok(addr) = stream.peer_addr() else {
        return;
    };
    let limits = shared.config.peer_limits;
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    // Sniff: `\x13BitTorrent protocol` starts a plaintext handshake, "GET "
    // an HTTP request for the embedded tracker, anything else is taken for
    // an MSE handshake (its first bytes are a random key).
    let deadline = std::time::Instant::now() + limits.handshake_timeout;
    let policy = shared.config.encryption;
    let mut first = Vec::new();
    let kind = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match peer::read_some(&mut stream, left) {
            Ok(b) => first.extend_from_slice(&b),
            Err(reason) => {
                log::debug!("incoming {addr}: {reason}");
                return;
            }
        }
        match mse::sniff(&first, shared.config.enable_tracker) {
            Sniffed::NeedMore => {}
            kind => break kind,
        }
    };
    let (mut stream, hs, leftover, t) = match kind {
        Sniffed::NeedMore => return,
        Sniffed::Http => {
            if let Err(e) = shared
                .tracker
                .serve_http_connection(&mut stream, &first, deadline)
            {
                log::debug!("tracker request from {addr}: {e}");
            }
            return;
        }
        Sniffed::BitTorrent => {
            if policy == Encryption::Require {
                log::debug!("incoming {addr}: plaintext handshake refused (encryption required)");
                return;
            }
            let (hs, leftover) =
                match peer::read_handshake(&mut stream, first, limits.handshake_timeout) {
                    Ok(x) => x,
                    Err(reason) => {
                        log::debug!("incoming {addr}: {reason}");
                        return;
                    }
                };
            let torrent = shared.registry.read().get(&hs.info_hash).cloned();
            let Some(t) = torrent else {
                log::debug!("incoming {addr}: unknown info-hash");
                return;
            };
            (PeerStream::plain(stream), hs, leftover, t)
        }
        Sniffed::Mse => {
            if policy == Encryption::Off {
                log::debug!("incoming {addr}: not BitTorrent (encryption off)");
                return;
            }
            // The initiator names its torrent by HASH('req2', info-hash).
            let mut lookup = |h: &[u8; 20]| {
                let registry = shared.registry.read();
                registry.keys().find(|ih| mse::req2_hash(ih) == *h).copied()
            };
            let (mut stream, ih, payload) =
                match mse::respond(stream, &first, policy.methods(), &mut lookup, deadline) {
                    Ok(x) => x,
                    Err(e) => {
                        log::debug!("incoming {addr}: {e}");
                        return;
                    }
                };
            let (hs, leftover) =
                match peer::read_handshake(&mut stream, payload, limits.handshake_timeout) {
                    Ok(x) => x,
                    Err(reason) => {
                        log::debug!("incoming {addr} (MSE): {reason}");
                        return;
                    }
                };
            let torrent = shared.registry.read().get(&ih).cloned();
            let (Some(t), true) = (torrent, hs.info_hash == ih) else {
                log::debug!("incoming {addr}: MSE and handshake name different torrents");
                return;
            };
            (stream, hs, leftover, t)
        }
    };
    if stream
        .write_all(&peer::our_handshake(&t.peer_ctx).encode())
        .and_then(|()| stream.flush())
        .is_err()
    {
        return;
    }
    // This thread becomes the peer thread; `Joined` registers it (and
    // counts it in `connections`).
    let key = shared.next_key();
    drop(guard);
    drop(shared);
    peer::run_connected(
        stream,
        addr,
        false,
        hs,
        leftover,
        key,
        &t.peer_ctx,
        &t.events,
    );
}

/// Hand peers found by LSD to their torrents, until the session stops.
fn route_lsd(found: crossbeam_channel::Receiver<(InfoHash, SocketAddr)>, shared: Arc<Shared>) {
    while !shared.shutting_down.load(Ordering::SeqCst) {
        let Ok((ih, addr)) = found.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let t = shared.registry.read().get(&ih.0).cloned();
        if let Some(t) = t {
            if !t.metainfo.info.private {
                log::debug!("lsd: {addr} has {ih}");
                let _ = t.commands.send(Command::AddPeers(vec![addr]));
            }
        } else if let Some(peers) = shared.lsd_pending.lock().get_mut(&ih) {
            log::debug!("lsd: {addr} has {ih} (magnet)");
            if peers.len() < 50 && !peers.contains(&addr) {
                peers.push(addr);
            }
        }
    }
}

/// A `.torrent` written from a metainfo: its trackers and the original
/// bytes of its info dictionary (so the info-hash is unchanged).
fn torrent_file_bytes(m: &Metainfo) -> Vec<u8> {
    use crate::proto::bencode::OwnedValue;
    let mut out = b"d".to_vec();
    if let Some(a) = &m.announce {
        out.extend_from_slice(b"8:announce");
        out.extend_from_slice(&OwnedValue::bytes(a).to_bytes());
    }
    if !m.announce_list.is_empty() {
        out.extend_from_slice(b"13:announce-list");
        let tiers = OwnedValue::List(
            m.announce_list
                .iter()
                .map(|t| OwnedValue::List(t.iter().map(OwnedValue::bytes).collect()))
                .collect(),
        );
        out.extend_from_slice(&tiers.to_bytes());
    }
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(&m.info_bytes);
    out.push(b'e');
    out
}

/// The DHT routing table kept in the state directory (compact node infos),
/// so a restart bootstraps from the nodes it knew.
fn save_dht_nodes(path: &std::path::Path, nodes: &[(crate::discovery::dht::NodeId, SocketAddr)]) {
    use crate::proto::bencode::OwnedValue;
    let mut compact = Vec::new();
    for (id, addr) in nodes {
        if let SocketAddr::V4(v4) = addr {
            compact.extend_from_slice(&id.0);
            compact.extend_from_slice(&v4.ip().octets());
            compact.extend_from_slice(&v4.port().to_be_bytes());
        }
    }
    let v = OwnedValue::Dict(vec![(b"nodes".to_vec(), OwnedValue::Bytes(compact))]);
    if let Err(e) = crate::engine::torrent::write_atomically(path, &v.to_bytes()) {
        log::warn!("saving the DHT routing table: {e}");
    }
}

fn load_dht_nodes(path: &std::path::Path) -> Vec<SocketAddr> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(v) = crate::proto::bencode::decode(&bytes) else {
        return Vec::new();
    };
    let Some(nodes) = v
        .get(b"nodes")
        .and_then(crate::proto::bencode::Value::as_bytes)
    else {
        return Vec::new();
    };
    nodes
        .chunks_exact(26)
        .take(1000)
        .map(|c| {
            let ip = std::net::Ipv4Addr::new(c[20], c[21], c[22], c[23]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([c[24], c[25]]))
        })
        .collect()
}
