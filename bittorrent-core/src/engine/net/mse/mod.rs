//! Message Stream Encryption (MSE, also called PE): the obfuscation
//! handshake libtorrent, Transmission, qBittorrent, aria2 and Vuze speak
//! before the BitTorrent handshake (spec facts: `shared/specs/mse.md`).
//!
//! * [`crate::proto::mse`]: the pure parts, the codec floor: 768-bit
//!   Diffie-Hellman, SHA-1 key derivation, RC4 with 1024 bytes discarded,
//!   the state machines [`Initiator`] and [`Responder`] (bytes in, bytes
//!   out; fuzzed) and the [`MseError`] type.
//! * [`stream`]: [`PeerStream`], the connection after the handshake
//!   (`Read + Write`, in clear or RC4).
//! * this module: the [`Encryption`] policy, sniffing
//!   the first bytes of an accepted socket ([`sniff`]) and the blocking
//!   drivers [`initiate`] and [`respond`] that run a machine over a socket
//!   with a deadline.

pub mod stream;

pub use crate::proto::mse::{
    req2_hash, Established, Initiator, MseError, Responder, CRYPTO_PLAINTEXT, CRYPTO_RC4,
};
pub use stream::PeerStream;

use crate::engine::net::transport::PeerSocket;
use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

/// Which connections a session makes and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Accept MSE and plaintext; dial with MSE first (offering RC4 and
    /// clear payload), then in clear if that fails. The default.
    #[default]
    Prefer,
    /// Only MSE with an RC4 payload, both ways; a plaintext handshake is
    /// closed unanswered.
    Require,
    /// Only plaintext BitTorrent, both ways.
    Off,
}

impl Encryption {
    /// The name used on the command line and in saved configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Prefer => "prefer",
            Encryption::Require => "require",
            Encryption::Off => "off",
        }
    }

    /// The payload methods we offer or accept in an MSE handshake.
    pub fn methods(self) -> u32 {
        match self {
            Encryption::Prefer => CRYPTO_PLAINTEXT | CRYPTO_RC4,
            Encryption::Require => CRYPTO_RC4,
            Encryption::Off => 0,
        }
    }
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Encryption {
    type Err = String;
    fn from_str(s: &str) -> Result<Encryption, String> {
        match s {
            "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            "off" => Ok(Encryption::Off),
            _ => Err(format!(
                "encryption policy must be prefer, require or off (got {s:?})"
            )),
        }
    }
}

/// What the first bytes of an accepted connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A plaintext BitTorrent handshake (`\x13BitTorrent protocol`).
    BitTorrent,
    /// An HTTP request (for the embedded tracker).
    Http,
    /// Anything else: an MSE attempt.
    Mse,
    /// Too few bytes to tell.
    NeedMore,
}

/// The plaintext handshake's first 20 bytes.
const BT_PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

/// Tell a BitTorrent handshake, an HTTP request (only when `http` is
/// served) and an MSE attempt apart from the first bytes. MSE starts with a
/// random public key, which can begin with byte 19 or `G`: only the full
/// 20-byte prefix (or a full HTTP method) decides.
pub fn sniff(first: &[u8], http: bool) -> Sniffed {
    let n = first.len().min(BT_PREFIX.len());
    if first[..n] == BT_PREFIX[..n] {
        return if n == BT_PREFIX.len() {
            Sniffed::BitTorrent
        } else {
            Sniffed::NeedMore
        };
    }
    if http {
        for m in [&b"GET "[..], b"HEAD ", b"POST "] {
            let k = first.len().min(m.len());
            if first[..k] == m[..k] {
                return if k == m.len() {
                    Sniffed::Http
                } else {
                    Sniffed::NeedMore
                };
            }
        }
    }
    Sniffed::Mse
}

fn io_error(e: std::io::Error) -> MseError {
    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
        MseError::Timeout
    } else {
        MseError::Io(e.to_string())
    }
}

/// Read what is there (at most 4 KiB) before `deadline`.
fn read_chunk(
    stream: &mut PeerSocket,
    deadline: Instant,
    chunk: &mut [u8],
) -> Result<usize, MseError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MseError::Timeout);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(chunk) {
            Ok(0) => return Err(MseError::Closed),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(MseError::Io(e.to_string())),
        }
    }
}

fn wrap(stream: PeerSocket, e: Established) -> (PeerStream, Vec<u8>) {
    let s = match e.ciphers {
        Some(c) => PeerStream::rc4(stream, c),
        None => PeerStream::plain(stream),
    };
    (s, e.payload)
}

/// Run the initiator's side over a connected socket: offer `provide`
/// (see [`Encryption::methods`]) for torrent `info_hash`, with `ia` (our
/// BitTorrent handshake) as the initial payload. Returns the stream and the
/// payload bytes that already arrived (the start of the peer's handshake).
/// The socket's write timeout bounds each write; `deadline` bounds it all.
pub fn initiate(
    stream: impl Into<PeerSocket>,
    info_hash: [u8; 20],
    provide: u32,
    ia: &[u8],
    deadline: Instant,
) -> Result<(PeerStream, Vec<u8>), MseError> {
    let mut stream = stream.into();
    let (mut machine, first) = Initiator::new(info_hash, provide, ia.to_vec())?;
    stream.write_all(&first).map_err(io_error)?;
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = read_chunk(&mut stream, deadline, &mut chunk)?;
        let done = machine.feed(&chunk[..n], &mut out)?;
        if !out.is_empty() {
            stream.write_all(&out).map_err(io_error)?;
            out.clear();
        }
        if let Some(e) = done {
            return Ok(wrap(stream, e));
        }
    }
}

/// Run the responder's side over an accepted socket whose first bytes
/// (`first`, already read while sniffing) were not a plaintext handshake.
/// `lookup` maps `HASH('req2', SKEY)` to one of our info-hashes. Returns the
/// stream, the torrent and the payload that already arrived (the
/// initiator's IA first, normally its BitTorrent handshake).
pub fn respond(
    stream: impl Into<PeerSocket>,
    first: &[u8],
    accept: u32,
    lookup: &mut dyn FnMut(&[u8; 20]) -> Option<[u8; 20]>,
    deadline: Instant,
) -> Result<(PeerStream, [u8; 20], Vec<u8>), MseError> {
    let mut stream = stream.into();
    let mut machine = Responder::new(accept);
    let mut out = Vec::new();
    let mut done = machine.feed(first, &mut out, lookup)?;
    let mut chunk = [0u8; 4096];
    loop {
        if !out.is_empty() {
            stream.write_all(&out).map_err(io_error)?;
            out.clear();
        }
        if let Some(e) = done {
            let ih = e.info_hash;
            let (s, payload) = wrap(stream, e);
            return Ok((s, ih, payload));
        }
        let n = read_chunk(&mut stream, deadline, &mut chunk)?;
        done = machine.feed(&chunk[..n], &mut out, lookup)?;
    }
}

#[cfg(test)]
mod tests;
