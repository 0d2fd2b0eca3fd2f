//! The `listener` thread (TCP), the `utp-accept` thread (uTP connections
//! from the session's endpoint) and the connection threads they spawn: each
//! accepted socket is sniffed (a BitTorrent handshake goes to its torrent
//! by info-hash and the thread becomes that peer's thread; an HTTP request
//! over TCP goes to the embedded tracker). Both transports take the same
//! path from there ([`PeerSocket`]), under the same limits.

use crate::engine::conn::peer;
use crate::engine::net::mse::{self, Encryption, PeerStream, Sniffed};
use crate::engine::net::transport::PeerSocket;
use crate::engine::net::utp::endpoint::UtpSocket;
use crate::engine::session::shared::Shared;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Sockets in flight per remote IP address, by stage (see [`Stage`]).
type PerIp = Arc<Mutex<HashMap<IpAddr, Counts>>>;

/// Tracker requests on the peer port in flight from one remote address:
/// a budget of their own, so that a host's peer handshakes never crowd out
/// its announces (nor the reverse).
const MAX_HTTP_PER_IP: usize = 8;

/// Where an accepted socket is: its first bytes not read yet, a BitTorrent
/// (or MSE) handshake, or an HTTP request for the embedded tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Sniffing,
    Handshake,
    Http,
}

#[derive(Debug, Default)]
struct Counts {
    sniffing: usize,
    handshake: usize,
    http: usize,
}

impl Counts {
    fn of(&mut self, s: Stage) -> &mut usize {
        match s {
            Stage::Sniffing => &mut self.sniffing,
            Stage::Handshake => &mut self.handshake,
            Stage::Http => &mut self.http,
        }
    }

    fn is_empty(&self) -> bool {
        self.sniffing + self.handshake + self.http == 0
    }
}

/// Most sockets of one remote address in stage `s`.
fn stage_cap(shared: &Shared, s: Stage) -> usize {
    match s {
        Stage::Sniffing | Stage::Handshake => shared.config.max_handshakes_per_ip,
        Stage::Http => MAX_HTTP_PER_IP,
    }
}

/// Accept until the session stops (woken by a connection to ourselves).
pub(crate) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let per_ip: PerIp = Arc::default();
    for stream in listener.incoming() {
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors and the like: back off briefly.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let Ok(remote) = stream.peer_addr() else {
            continue;
        };
        admit(PeerSocket::Tcp(stream), remote, &shared, &per_ip);
    }
}

/// Accept uTP connections from the session's endpoint until the session stops.
pub(crate) fn utp_accept_loop(endpoint: Arc<UtpSocket>, shared: Arc<Shared>) {
    let per_ip: PerIp = Arc::default();
    while !shared.shutting_down.load(Ordering::SeqCst) {
        let Ok(stream) = endpoint.accept(Duration::from_millis(200)) else {
            continue;
        };
        let remote = stream.peer_addr();
        admit(PeerSocket::Utp(stream), remote, &shared, &per_ip);
    }
}

/// Give an accepted connection its thread, within the session's and the
/// address's limits (else drop it, which closes it).
fn admit(stream: PeerSocket, remote: SocketAddr, shared: &Arc<Shared>, per_ip: &PerIp) {
    {
        // Sockets still in the handshake count too: silent connections
        // must not each get a thread beyond the limit.
        let busy =
            shared.connections.load(Ordering::Relaxed) + shared.handshaking.load(Ordering::Relaxed);
        if busy >= shared.config.max_connections {
            return; // dropped: closes the socket
        }
        // One host gets a few handshakes at a time: its silent sockets
        // cannot hold every slot while others wait.
        let ip = remote.ip().to_canonical();
        // This machine's own peers (a classroom on one host) are not a
        // flooder: only the session-wide cap applies to them.
        let limited = !(shared.config.trust_local && crate::util::local::is_local(ip));
        if limited {
            let mut m = per_ip.lock();
            let n = m.entry(ip).or_default();
            if n.sniffing >= stage_cap(shared, Stage::Sniffing) {
                log::debug!("incoming {remote}: too many connections in flight from {ip}");
                return;
            }
            n.sniffing += 1;
        }
        shared.handshaking.fetch_add(1, Ordering::Relaxed);
        let guard = Handshaking {
            shared: shared.clone(),
            per_ip: per_ip.clone(),
            ip,
            stage: Stage::Sniffing,
            limited,
        };
        let _ = std::thread::Builder::new()
            .name("peer (incoming)".into())
            .stack_size(crate::engine::conn::peer::PEER_STACK)
            .spawn(move || handle_incoming(stream, guard));
    }
}

/// Counts an accepted socket as handshaking (in the session, and for its
/// IP address in its current stage unless the address is this machine's)
/// until dropped.
struct Handshaking {
    shared: Arc<Shared>,
    per_ip: PerIp,
    ip: IpAddr,
    stage: Stage,
    /// Subject to the per-address caps (a remote address).
    limited: bool,
}

impl Handshaking {
    /// Move to stage `to` (the first bytes told what the socket is); false,
    /// and the socket is to be closed, when its address has `to` full.
    fn enter(&mut self, to: Stage) -> bool {
        if !self.limited || to == self.stage {
            return true;
        }
        let cap = stage_cap(&self.shared, to);
        let mut m = self.per_ip.lock();
        let n = m.entry(self.ip).or_default();
        if *n.of(to) >= cap {
            return false;
        }
        *n.of(to) += 1;
        let from = n.of(self.stage);
        *from = from.saturating_sub(1);
        self.stage = to;
        true
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.shared.handshaking.fetch_sub(1, Ordering::Relaxed);
        if !self.limited {
            return;
        }
        let mut m = self.per_ip.lock();
        if let Some(n) = m.get_mut(&self.ip) {
            let k = n.of(self.stage);
            *k = k.saturating_sub(1);
            if n.is_empty() {
                m.remove(&self.ip);
            }
        }
    }
}

/// Sniff the first bytes: a BitTorrent handshake goes to its torrent.
fn handle_incoming(mut stream: PeerSocket, mut guard: Handshaking) {
    let shared = guard.shared.clone();
    // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`.
    let Ok(addr) = stream.peer_addr().map(crate::engine::net::bind::canonical) else {
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
        // The embedded tracker's HTTP is served over TCP only.
        let http = shared.config.enable_tracker && stream.tcp().is_some();
        match mse::sniff(&first, http) {
            Sniffed::NeedMore => {}
            kind => break kind,
        }
    };
    let stage = if kind == Sniffed::Http {
        Stage::Http
    } else {
        Stage::Handshake
    };
    if !guard.enter(stage) {
        log::debug!("incoming {addr}: too many {stage:?} sockets in flight from its address");
        return;
    }
    let (mut stream, hs, leftover, t) = match kind {
        Sniffed::NeedMore => return,
        Sniffed::Http => {
            let PeerSocket::Tcp(tcp) = &mut stream else {
                return;
            };
            if let Err(e) = shared.tracker.serve_http_connection(tcp, &first, deadline) {
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
            let torrent = shared.torrent_for(&hs.info_hash);
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
                let hashes = shared.known_hashes();
                hashes.into_iter().find(|ih| mse::req2_hash(ih) == *h)
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
            let torrent = shared.torrent_for(&ih);
            let (Some(t), true) = (torrent, hs.info_hash == ih) else {
                log::debug!("incoming {addr}: MSE and handshake name different torrents");
                return;
            };
            (stream, hs, leftover, t)
        }
    };
    // Answered with the hash the peer named (a hybrid's v2 hash, too), or
    // upgraded to the v2 hash when it named a hybrid's v1 hash with the v2
    // bit (BEP 52).
    let mut ours = peer::our_handshake(&t.peer_ctx);
    let answer = peer::answer_hash(&t.peer_ctx, &hs);
    if hs.info_hash != ours.info_hash {
        log::debug!("incoming {addr}: hybrid named by its v2 info-hash");
    } else if answer != hs.info_hash {
        log::debug!("incoming {addr}: hybrid connection upgraded to v2");
    }
    ours.info_hash = answer;
    if stream
        .write_all(&ours.encode())
        .and_then(|()| stream.flush())
        .is_err()
    {
        return;
    }
    if crate::proto::bep42::is_public(addr.ip()) {
        let family = usize::from(addr.ip().to_canonical().is_ipv6());
        shared.inbound_internet[family].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        &t.to_torrent,
    );
}
