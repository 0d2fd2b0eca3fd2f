//! The `listener` thread and the connection threads it spawns: each
//! accepted socket is sniffed (a BitTorrent handshake goes to its torrent
//! by info-hash and the thread becomes that peer's thread; an HTTP request
//! goes to the embedded tracker).

use crate::engine::mse::{self, Encryption, PeerStream, Sniffed};
use crate::engine::peer;
use crate::engine::shared::Shared;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Handshakes in flight per remote IP address.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

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
        // Sockets still in the handshake count too: silent connections
        // must not each get a thread beyond the limit.
        let busy =
            shared.connections.load(Ordering::Relaxed) + shared.handshaking.load(Ordering::Relaxed);
        if busy >= shared.config.max_connections {
            continue; // dropped: closes the socket
        }
        // One host gets a few handshakes at a time: its silent sockets
        // cannot hold every slot while others wait.
        let Ok(remote) = stream.peer_addr() else {
            continue;
        };
        let ip = remote.ip().to_canonical();
        {
            let mut m = per_ip.lock();
            let n = m.entry(ip).or_insert(0);
            if *n >= shared.config.max_handshakes_per_ip {
                log::debug!("incoming {remote}: too many handshakes in flight from {ip}");
                continue;
            }
            *n += 1;
        }
        shared.handshaking.fetch_add(1, Ordering::Relaxed);
        let guard = Handshaking {
            shared: shared.clone(),
            per_ip: per_ip.clone(),
            ip,
        };
        let _ = std::thread::Builder::new()
            .name("peer (incoming)".into())
            .spawn(move || handle_incoming(stream, guard));
    }
}

/// Counts an accepted socket as handshaking (in the session and for its
/// IP address) until dropped.
struct Handshaking {
    shared: Arc<Shared>,
    per_ip: PerIp,
    ip: IpAddr,
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.shared.handshaking.fetch_sub(1, Ordering::Relaxed);
        let mut m = self.per_ip.lock();
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Sniff the first bytes: a BitTorrent handshake goes to its torrent.
fn handle_incoming(mut stream: TcpStream, guard: Handshaking) {
    let shared = guard.shared.clone();
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
