//! The short-lived connections of a metadata thread (`metadata.rs`):
//! dial one peer for one torrent, read its handshake, then read what it
//! sends with a deadline. Used to fetch the info dictionary
//! (`ut_metadata`) and the piece layers (hash requests, `layers.rs`)
//! before a torrent thread exists.

use crate::engine::conn::peer::{dial_with, read_handshake, PeerLimits};
use crate::engine::net::mse::{Encryption, PeerStream};
use crate::engine::net::transport::Dialer;
use crate::proto::metainfo::InfoHash;
use crate::proto::wire::{FrameDecoder, Handshake, MAX_FRAME, RESERVED_V2};
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Dial `addr` for the torrent `ih` (with BEP 52's v2 bit when `v2`) and
/// read its handshake, which must name `ih`: the stream, the decoder with
/// what came after the handshake, and the handshake.
pub(crate) fn open(
    addr: SocketAddr,
    (ih, v2): (InfoHash, bool),
    peer_id: [u8; 20],
    (encryption, dialer): (Encryption, &Dialer),
    deadline: Instant,
) -> Result<(PeerStream, FrameDecoder, Handshake), String> {
    // Through MSE as the session's policy says (with `prefer`, plaintext if
    // the peer does not speak it), like any other connection.
    let limits = PeerLimits {
        connect_timeout: left(deadline).min(Duration::from_secs(5)),
        handshake_timeout: left(deadline).min(Duration::from_secs(10)),
        write_timeout: Duration::from_secs(5),
        ..PeerLimits::default()
    };
    let mut hs = Handshake::new(ih.0, peer_id);
    if v2 {
        hs.reserved[RESERVED_V2.0] |= RESERVED_V2.1;
    }
    let (mut s, rest) = dial_with(addr, ih.0, &hs.encode(), encryption, &limits, dialer)
        .map_err(|e| e.to_string())?;
    let (hs, rest) = read_handshake(&mut s, rest, left(deadline)).map_err(|e| e.to_string())?;
    if hs.info_hash != ih.0 {
        return Err("wrong info-hash".into());
    }
    let mut dec = FrameDecoder::new(MAX_FRAME);
    dec.feed(&rest);
    Ok((s, dec, hs))
}

/// Time left until `d`.
pub(crate) fn left(d: Instant) -> Duration {
    d.saturating_duration_since(Instant::now())
}

/// Read what the peer sent within 250 ms (at most until `deadline`) into
/// `dec`; an error when it closed or the socket failed.
pub(crate) fn pump(
    s: &mut PeerStream,
    dec: &mut FrameDecoder,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), String> {
    let _ = s.set_read_timeout(Some(
        left(deadline).clamp(Duration::from_millis(1), Duration::from_millis(250)),
    ));
    match s.read(buf) {
        Ok(0) => Err("peer closed".into()),
        Ok(n) => {
            dec.feed(&buf[..n]);
            Ok(())
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
