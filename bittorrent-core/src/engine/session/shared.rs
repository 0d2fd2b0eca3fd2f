//! What the session's threads share: the read-mostly [`Shared`] state, and
//! per torrent the [`TorrentShared`] handle (its command channel, the
//! context its peer threads read, its status snapshot), or, for a magnet
//! link still without its metadata, the [`MagnetShared`] handle.
//!
//! This module sits below the session, the torrent threads, the
//! announcers and the metadata threads: they all import it, it imports
//! none of them.

use crate::discovery::dht::Dht;
use crate::discovery::tracker::TrackerServer;
use crate::engine::conn::peer::{PeerContext, ToTorrent};
use crate::engine::session::config::Config;
use crate::engine::session::events::EventBus;
use crate::engine::storage::hasher::HashJob;
use crate::engine::torrent::picker::PeerKey;
use crate::engine::torrent::status::{TorrentStatus, TrackerStatus};
use crate::proto::magnet::Magnet;
use crate::proto::metainfo::{InfoHash, Metainfo};
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Commands from the session (and the announcer, the LSD router) to a
/// torrent thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Dial these addresses (from the user, a tracker, PEX...).
    AddPeers(Vec<SocketAddr>),
    /// Stop exchanging data (connections closed, nothing dialled or
    /// accepted) until `Resume`; the data and resume data stay.
    Pause,
    /// Undo `Pause`.
    Resume,
    /// Change the file selection (one priority per entry of `info.files`):
    /// files now wanted are created (with what the part file holds of
    /// them) and downloaded; a finished torrent goes back to downloading.
    SetFilePriorities(Vec<crate::engine::torrent::selection::FilePriority>),
    /// Turn sequential download and first/last-piece priority on or off.
    SetPieceOrder(crate::engine::torrent::status::PieceOrderPrefs),
    /// The pieces the streaming readers wait for (empty: no one reads):
    /// their next pieces are fetched by deadline (see `session::stream`,
    /// `torrent::sequence`).
    SetReaders(Vec<u32>),
    /// Close every connection, let the queued writes finish, save the
    /// resume data, and reply.
    Shutdown(Sender<()>),
    /// Close every connection and reply at once: the torrent is removed.
    /// Queued writes are dropped and the files close in the background
    /// (the disk writer ends by itself).
    Remove(Sender<()>),
    /// Replace the seeding goal (checked at once).
    SetSeedGoal(crate::engine::torrent::status::SeedGoal),
    /// A hybrid's v2 view with piece layers fetched from peers (verified
    /// against the files' roots): pieces hashed from now on are checked
    /// against them too.
    PieceLayers(Arc<crate::proto::metainfo::V2Info>),
    /// Reply with a snapshot of the connected peers.
    Peers(Sender<Vec<crate::engine::torrent::status::PeerInfo>>),
}

/// A torrent's status snapshot, behind its lock; every change to it
/// (through [`StatusGuard`]'s `DerefMut`) bumps the session's count of
/// status changes, so that a reader of every torrent's status (the
/// daemon's display and download queue) can tell that nothing changed
/// without copying 10,000 snapshots (`Session::status_version`).
pub(crate) struct StatusCell {
    status: Mutex<TorrentStatus>,
    changes: Arc<AtomicU64>,
}

impl StatusCell {
    pub(crate) fn new(status: TorrentStatus, changes: Arc<AtomicU64>) -> StatusCell {
        changes.fetch_add(1, Ordering::Relaxed);
        StatusCell {
            status: Mutex::new(status),
            changes,
        }
    }

    /// The snapshot, locked; a write through the guard counts as a change.
    pub(crate) fn lock(&self) -> StatusGuard<'_> {
        StatusGuard {
            guard: self.status.lock(),
            changes: &self.changes,
            changed: false,
        }
    }
}

/// The lock of a [`StatusCell`].
pub(crate) struct StatusGuard<'a> {
    guard: parking_lot::MutexGuard<'a, TorrentStatus>,
    changes: &'a AtomicU64,
    changed: bool,
}

impl std::ops::Deref for StatusGuard<'_> {
    type Target = TorrentStatus;
    fn deref(&self) -> &TorrentStatus {
        &self.guard
    }
}

impl std::ops::DerefMut for StatusGuard<'_> {
    fn deref_mut(&mut self) -> &mut TorrentStatus {
        self.changed = true;
        &mut self.guard
    }
}

impl Drop for StatusGuard<'_> {
    fn drop(&mut self) {
        if self.changed {
            self.changes.fetch_add(1, Ordering::Release);
        }
    }
}

/// Shared between the torrent thread and the rest of the session.
pub(crate) struct TorrentShared {
    /// The torrent's metainfo.
    pub(crate) metainfo: Metainfo,
    /// The snapshot the session reads (written by the torrent thread only).
    pub(crate) status: StatusCell,
    /// Commands for the torrent thread.
    pub(crate) commands: crate::util::doorbell::Rung<Command>,
    /// What peer threads read.
    pub(crate) peer_ctx: Arc<PeerContext>,
    /// The peer threads' two channels to the torrent thread (control
    /// events, blocks).
    pub(crate) to_torrent: ToTorrent,
    /// The announcer's last outcome (written by the announcer, copied
    /// into the snapshot by the torrent thread).
    pub(crate) tracker: Mutex<TrackerStatus>,
    /// The torrent's rate limits (its peer threads wait on them, and on
    /// the session's).
    pub(crate) rates: Arc<crate::engine::net::rate_limit::RatePair>,
    /// The file selection in force (written by the torrent thread and by
    /// `Session::set_file_priorities`).
    pub(crate) priorities: Mutex<Vec<crate::engine::torrent::selection::FilePriority>>,
    /// The piece order asked for last (written by `Session::set_piece_order`
    /// before its command is sent, so a read right after sees it).
    pub(crate) piece_order: Mutex<crate::engine::torrent::status::PieceOrderPrefs>,
    /// The streaming readers' positions (`session::stream`).
    pub(crate) readers: Mutex<Readers>,
}

/// The positions of a torrent's streaming readers, by reader id, and the
/// positions last sent to the torrent thread ([`Command::SetReaders`]).
#[derive(Debug, Default)]
pub(crate) struct Readers {
    pub(crate) next_id: u64,
    pub(crate) at: HashMap<u64, u32>,
    pub(crate) sent: Vec<u32>,
}

/// A magnet link in its metadata phase (see `engine::metadata`).
pub(crate) struct MagnetShared {
    /// The link (with the caller's peers added as `x.pe`).
    pub(crate) magnet: Magnet,
    /// Its snapshot (phase `Metadata`), written by its metadata thread.
    pub(crate) status: StatusCell,
    /// New addresses for the metadata thread (`try_send`: a full inbox
    /// drops them; the sources repeat themselves).
    pub(crate) found: Sender<Vec<SocketAddr>>,
    /// Set to stop the metadata thread (removal, shutdown).
    pub(crate) stop: Arc<AtomicBool>,
    /// The info dictionary when it is known already (a v2-only `.torrent`
    /// without its piece layers): the thread starts at fetching the
    /// layers. Taken by the thread.
    pub(crate) known: Mutex<Option<Box<Metainfo>>>,
}

/// Session-wide state that threads share (read-mostly).
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The session's seeding limits in force (ratio, idle time): the
    /// config's at start, changed by `Session::set_seed_defaults`.
    pub(crate) seed_defaults: parking_lot::Mutex<(Option<f64>, Option<std::time::Duration>)>,
    pub(crate) peer_id: [u8; 20],
    pub(crate) hasher: Sender<HashJob>,
    pub(crate) connections: AtomicUsize,
    /// Accepted sockets still in the handshake (not yet in `connections`).
    pub(crate) handshaking: AtomicUsize,
    /// BitTorrent connections accepted in this run from a public address
    /// (BEP 42's sense), over IPv4 and over IPv6: proof that the port is
    /// reachable from the internet (`Session::incoming_from_internet`).
    pub(crate) inbound_internet: [AtomicU64; 2],
    pub(crate) next_key: AtomicU64,
    /// Changes to any torrent's status snapshot, and torrents added or
    /// removed (`Session::status_version`).
    pub(crate) status_changes: Arc<AtomicU64>,
    /// The torrents that have their metadata, by info-hash.
    pub(crate) registry: RwLock<HashMap<[u8; 20], Arc<TorrentShared>>>,
    /// Magnet links still in their metadata phase, by info-hash.
    pub(crate) magnets: RwLock<HashMap<InfoHash, Arc<MagnetShared>>>,
    /// The v2 info-hashes (truncated) of hybrid torrents, to their v1
    /// info-hash (the `registry` key): peers may name a hybrid by either.
    pub(crate) aliases: RwLock<HashMap<[u8; 20], [u8; 20]>>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) shutting_down: Arc<AtomicBool>,
    pub(crate) tracker: Arc<TrackerServer>,
    pub(crate) dht: Option<Arc<Dht>>,
    /// The IPv6 DHT node (BEP 32) beside a dual-stack listener, on the
    /// `udp6` thread's socket; `dht` is then the IPv4 one.
    pub(crate) dht6: Option<Arc<Dht>>,
    /// How peer connections are dialled (`Config::transport`), with the uTP
    /// endpoints on the UDP ports (IPv4 first, then the IPv6 one beside a
    /// dual-stack listener).
    pub(crate) dialer: Arc<crate::engine::net::transport::Dialer>,
    /// Subscribers of `Session::events`.
    pub(crate) events: EventBus,
    /// Our external addresses as reported (`session::external`).
    pub(crate) external: Mutex<crate::engine::session::external::ExternalAddresses>,
    /// The session-wide rate limits, shared by every peer thread.
    pub(crate) rates: Arc<crate::engine::net::rate_limit::RatePair>,
    /// Piece data in memory, over every torrent (`Config::piece_buffer_memory`).
    pub(crate) piece_memory: Arc<crate::engine::storage::piece_buffer::MemoryBudget>,
    /// Verified pieces kept for uploading, over every torrent
    /// (`recent_pieces::SESSION_KEEP_MEMORY`).
    pub(crate) kept_memory: Arc<crate::engine::storage::piece_buffer::MemoryBudget>,
    /// Our own usable IPv6 address, found once at start (`ipv6` of the
    /// extended handshake).
    pub(crate) own_v6: Option<std::net::Ipv6Addr>,
}

impl Shared {
    /// A torrent was added or removed: readers of every status look again.
    pub(crate) fn torrents_changed(&self) {
        self.status_changes.fetch_add(1, Ordering::Release);
    }

    /// Our listening port (what we announce).
    pub(crate) fn local_port(&self) -> u16 {
        self.local_addr.port()
    }

    pub(crate) fn next_key(&self) -> PeerKey {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the session is stopping.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// `a` as an address worth dialling: v4-mapped turned into IPv4; None
    /// for port 0, unspecified, multicast, IPv4 broadcast, IPv6 link-local
    /// (`fe80::/10`, unreachable without a scope), our own listening
    /// address, and an address of a family we send nothing to (bound to an
    /// address of the other family only). Every candidate (tracker, PEX, DHT, LSD, `--peer`, `x.pe`)
    /// passes through here.
    pub(crate) fn dialable(&self, a: SocketAddr) -> Option<SocketAddr> {
        let a = crate::engine::net::bind::canonical(a);
        let ok = a.port() != 0 && crate::engine::net::bind::dialable_ip(a.ip());
        // A family with no `--bind` address is never sent to.
        let family = self.dialer.source.for_dest(a.ip()).is_ok();
        (ok && family && !self.is_own_address(&a)).then_some(a)
    }

    /// Whether `a` is our own listening address (never dial ourselves).
    pub(crate) fn is_own_address(&self, a: &SocketAddr) -> bool {
        let ip = a.ip().to_canonical();
        let listen = self.local_addr.ip().to_canonical();
        a.port() == self.local_addr.port()
            && (ip == listen
                || ip.is_loopback()
                || listen.is_unspecified() && is_local_ip(ip)
                || self.external.lock().is_confirmed(ip)
                || self.own_v6.is_some_and(|v6| ip == IpAddr::V6(v6)))
    }

    /// The torrent a handshake names: by its info-hash, or a hybrid by its
    /// truncated v2 info-hash.
    pub(crate) fn torrent_for(&self, ih: &[u8; 20]) -> Option<Arc<TorrentShared>> {
        let registry = self.registry.read();
        if let Some(t) = registry.get(ih) {
            return Some(t.clone());
        }
        let v1 = *self.aliases.read().get(ih)?;
        registry.get(&v1).cloned()
    }

    /// Every info-hash a peer may name a torrent by (for MSE's `req2` lookup).
    pub(crate) fn known_hashes(&self) -> Vec<[u8; 20]> {
        let mut all: Vec<[u8; 20]> = self.registry.read().keys().copied().collect();
        all.extend(self.aliases.read().keys().copied());
        all
    }

    /// Give addresses to a torrent or to a magnet link still looking for
    /// its metadata. False when the info-hash is unknown.
    pub(crate) fn add_peers(&self, ih: &InfoHash, peers: Vec<SocketAddr>) -> bool {
        if let Some(t) = self.registry.read().get(&ih.0) {
            let _ = t.commands.send(Command::AddPeers(peers));
            return true;
        }
        if let Some(m) = self.magnets.read().get(ih) {
            let _ = m.found.try_send(peers);
            return true;
        }
        false
    }
}

fn is_local_ip(ip: IpAddr) -> bool {
    // Binding to probe is the portable way to ask "is this address mine?".
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

impl Shared {
    /// Record our external address `ip` as reported by `by`; when the best
    /// IPv4 address changes the DHT takes a BEP 42 node id derived from it.
    pub(crate) fn record_external(
        &self,
        ip: std::net::IpAddr,
        by: crate::engine::session::external::Reporter,
    ) {
        let changed = self.external.lock().record(ip, by);
        if let Some(best) = changed {
            log::info!(
                "external address {best} (from the {})",
                by.source().as_str()
            );
            if let Some(d) = &self.dht {
                d.set_external_ip(best);
            }
        }
    }
}
