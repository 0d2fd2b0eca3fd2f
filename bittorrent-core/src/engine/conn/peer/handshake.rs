//! Setting up a connection: our handshake, dialling (plaintext or MSE, by the
//! encryption policy), reading the peer's handshake, and handing the connected socket to
//! the peer loop ([`run_connected`]).

use super::*;
use crate::engine::net::transport::{Dialer, PeerSocket};

/// Our handshake for this torrent: extension protocol and fast extension,
/// the DHT bit when we run a DHT node (not for private torrents), and
/// BEP 52's v2 bit for a v2-only torrent and for a hybrid (under its v1
/// hash the bit offers the upgrade to v2, as libtorrent 2.0 sends it).
pub fn our_handshake(ctx: &PeerContext) -> Handshake {
    let mut h = Handshake::new(ctx.info_hash, ctx.our_id);
    if ctx.v2 || ctx.v2_alias.is_some() {
        h.reserved[crate::proto::wire::RESERVED_V2.0] |= crate::proto::wire::RESERVED_V2.1;
    }
    if ctx.dht.is_some() && !ctx.private {
        h.reserved[crate::proto::wire::RESERVED_DHT.0] |= crate::proto::wire::RESERVED_DHT.1;
    }
    h
}

/// The info-hash to answer an incoming handshake `theirs` with (BEP 52
/// "Upgrade Path"): a hybrid named by its v1 hash with the v2 bit set is
/// upgraded, answered with its v2 hash truncated to 20 bytes (libtorrent
/// 2.0 does the same, and sends hash requests only on such a connection);
/// otherwise the hash the peer named, so a v1-only peer of a hybrid sees
/// the v1 hash.
pub fn answer_hash(ctx: &PeerContext, theirs: &Handshake) -> [u8; 20] {
    match ctx.v2_alias {
        Some(alias) if theirs.info_hash == ctx.info_hash && theirs.supports_v2() => alias,
        _ => theirs.info_hash,
    }
}

/// Whether a connection speaks v2 once the handshakes are exchanged: every
/// connection of a v2-only torrent; for a hybrid, one whose handshakes name
/// its truncated v2 hash (`hs` is the peer's handshake: when we dialled,
/// its reply, which names the v2 hash when it took our upgrade; when it
/// dialled, what it named, upgraded by [`answer_hash`] if it set the bit).
pub fn speaks_v2(ctx: &PeerContext, hs: &Handshake, outgoing: bool) -> bool {
    match ctx.v2_alias {
        _ if ctx.v2 => true,
        Some(alias) if hs.info_hash == alias => true,
        Some(_) => !outgoing && hs.supports_v2(),
        None => false,
    }
}

/// Read at least one byte (to sniff what the connection speaks).
pub fn read_some(stream: &mut impl TimedRead, timeout: Duration) -> Result<Vec<u8>, CloseReason> {
    let _ = stream.set_read_timeout(Some(timeout));
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(CloseReason::PeerClosed),
            Ok(n) => return Ok(chunk[..n].to_vec()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(CloseReason::BadHandshake("timed out".into()))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(CloseReason::Io(e.to_string())),
        }
    }
}

/// A byte stream whose read timeout can be set: a socket, or a socket
/// behind MSE ([`PeerStream`]).
pub trait TimedRead: Read {
    /// Set the read timeout of the underlying socket.
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl TimedRead for std::net::TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, t)
    }
}

impl TimedRead for PeerSocket {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        PeerSocket::set_read_timeout(self, t)
    }
}

impl TimedRead for PeerStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        PeerStream::set_read_timeout(self, t)
    }
}

/// Read a handshake with a deadline; returns it and any bytes read past it.
pub fn read_handshake(
    stream: &mut impl TimedRead,
    mut buf: Vec<u8>,
    timeout: Duration,
) -> Result<(Handshake, Vec<u8>), CloseReason> {
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    while buf.len() < HANDSHAKE_LEN {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CloseReason::BadHandshake("timed out".into()));
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Err(CloseReason::PeerClosed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(CloseReason::Io(e.to_string())),
        }
        if buf.first().is_some_and(|&b| b != 19) {
            return Err(CloseReason::BadHandshake("not BitTorrent".into()));
        }
    }
    let hs = Handshake::decode(&buf).map_err(|e| CloseReason::BadHandshake(e.to_string()))?;
    Ok((hs, buf.split_off(HANDSHAKE_LEN)))
}

/// Dial `addr`, exchange handshakes and run the connection (outgoing).
pub fn run_outgoing(
    addr: SocketAddr,
    key: PeerKey,
    ctx: Arc<PeerContext>,
    torrent: ToTorrent,
    utp_only: bool,
) {
    let result = (|| {
        let (mut stream, rest) = dial(addr, &ctx, utp_only)?;
        let (hs, rest) = read_handshake(&mut stream, rest, ctx.limits.handshake_timeout)?;
        // A hybrid's peer may take the upgrade our v2 bit offers and answer
        // with the truncated v2 hash (BEP 52).
        if hs.info_hash != ctx.info_hash && Some(hs.info_hash) != ctx.v2_alias {
            return Err(CloseReason::BadHandshake("wrong info-hash".into()));
        }
        if Some(hs.info_hash) == ctx.v2_alias {
            log::debug!("peer {addr}: connection upgraded to v2");
        }
        Ok((stream, hs, rest))
    })();
    match result {
        Ok((stream, hs, rest)) => run_connected(stream, addr, true, hs, rest, key, &ctx, &torrent),
        Err(reason) => {
            let _ = torrent.send_control(key, PeerEvent::Left(reason));
        }
    }
}

/// Connect to `addr` and send our handshake, through MSE as the policy
/// says: `Prefer` tries MSE first and redials in clear if the MSE handshake
/// fails (the peer may not speak it); `Require` only MSE; `Off` only clear.
/// Returns the stream and the bytes already received past the MSE
/// handshake (the start of the peer's BitTorrent handshake).
fn dial(
    addr: SocketAddr,
    ctx: &PeerContext,
    utp_only: bool,
) -> Result<(PeerStream, Vec<u8>), CloseReason> {
    let ours = our_handshake(ctx).encode();
    // BEP 55 `connect`: uTP whatever the policy (the punched path is UDP).
    let utp;
    let dialer = if utp_only {
        utp = crate::engine::net::transport::Dialer {
            policy: crate::engine::net::transport::TransportPolicy::Utp,
            utp: ctx.dialer.utp.clone(),
            source: ctx.dialer.source,
        };
        &utp
    } else {
        &*ctx.dialer
    };
    dial_with(
        addr,
        ctx.info_hash,
        &ours,
        ctx.encryption,
        &ctx.limits,
        dialer,
    )
}

/// [`dial`] for any caller: connect to `addr` (by `dialer`'s transport policy;
/// `limits.connect_timeout`, `limits.write_timeout` on the socket) and send the BitTorrent handshake
/// `ours` for `info_hash`, inside MSE as `policy` says (the MSE exchange
/// bounded by `limits.handshake_timeout`). Also used to fetch metadata.
pub(crate) fn dial_with(
    addr: SocketAddr,
    info_hash: [u8; 20],
    ours: &[u8],
    policy: Encryption,
    limits: &PeerLimits,
    dialer: &Dialer,
) -> Result<(PeerStream, Vec<u8>), CloseReason> {
    let connect = || {
        let stream = (dialer.connect(addr, limits.connect_timeout, limits.tcp_congestion))
            .map_err(|e| CloseReason::ConnectFailed(e.to_string()))?;
        let _ = stream.set_write_timeout(Some(limits.write_timeout));
        Ok::<_, CloseReason>(stream)
    };
    if policy != Encryption::Off {
        let deadline = Instant::now() + limits.handshake_timeout;
        match mse::initiate(connect()?, info_hash, policy.methods(), ours, deadline) {
            Ok(x) => return Ok(x),
            Err(e) if policy == Encryption::Prefer => {
                log::debug!("peer {addr}: {e}; redialling in clear");
            }
            Err(e) => return Err(CloseReason::BadHandshake(e.to_string())),
        }
    }
    let mut stream = connect()?;
    stream
        .write_all(ours)
        .map_err(|e| CloseReason::Io(e.to_string()))?;
    Ok((PeerStream::plain(stream), Vec::new()))
}

/// Run an established connection (the handshakes are done on both sides)
/// until it ends; always finishes with a `Left` event.
#[allow(clippy::too_many_arguments)]
pub fn run_connected(
    stream: PeerStream,
    addr: SocketAddr,
    outgoing: bool,
    hs: Handshake,
    leftover: Vec<u8>,
    key: PeerKey,
    ctx: &PeerContext,
    torrent: &ToTorrent,
) {
    let reason = match Connection::new(stream, addr, outgoing, hs, leftover, key, ctx, torrent) {
        Ok(mut conn) => {
            let r = match conn.run() {
                Ok(()) => CloseReason::Shutdown,
                Err(r) => r,
            };
            if log::log_enabled!(log::Level::Debug) {
                // This thread's own context switches (`/proc`: no unsafe).
                let st = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
                let switches = |k: &str| {
                    st.lines()
                        .find(|l| l.starts_with(k))
                        .and_then(|l| l.split_whitespace().last())
                        .unwrap_or("?")
                        .to_string()
                };
                log::debug!(
                    "peer {addr}: waits and reads: {:?}, largest mark and receive buffer {:?}, \
                     switches {} voluntary, {} involuntary",
                    conn.wakes,
                    conn.mark.most,
                    switches("voluntary_ctxt_switches"),
                    switches("nonvoluntary_ctxt_switches")
                );
            }
            let hb = &conn.hash_budget;
            if hb.answered + hb.rejected > 0 {
                log::info!(
                    "peer {addr}: hash requests answered {}, rejected {}",
                    hb.answered,
                    hb.rejected
                );
            }
            let _ = conn.flush_all();
            let _ = conn.stream.shutdown(Shutdown::Both);
            // Its blocks reach the torrent thread before its `Left`.
            conn.pending_blocks_to_outbox();
            conn.outbox.hand_over_rest(key, torrent);
            r
        }
        Err(r) => r,
    };
    log::debug!("peer {addr}: closed: {reason}");
    let _ = torrent.send_control(key, PeerEvent::Left(reason));
}
