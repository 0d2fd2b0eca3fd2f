//! Message Stream Encryption (MSE, also called PE), the pure parts: the
//! obfuscation handshake libtorrent, Transmission, qBittorrent, aria2 and
//! Vuze speak before the BitTorrent handshake (spec facts:
//! `shared/specs/mse.md`).
//!
//! * `crypto`: 768-bit Diffie-Hellman ([`DhKey`]), SHA-1 key derivation
//!   ([`hash`], [`req2_hash`]), RC4 with 1024 bytes discarded.
//! * `handshake`: the state machines of both sides, [`Initiator`] and
//!   [`Responder`] (bytes in, bytes out; fuzzed).
//!
//! The engine drives them over its sockets (`engine/net/mse/`: sniffing an
//! accepted connection, the blocking drivers with a deadline, and the
//! stream after the handshake, in clear or RC4).

pub(crate) mod crypto;
pub(crate) mod handshake;

pub use crypto::{hash, req2_hash, DhKey};
pub use handshake::{Established, Initiator, Method, Responder, CRYPTO_PLAINTEXT, CRYPTO_RC4};

/// Why an MSE handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MseError {
    /// The peer closed the connection during the handshake.
    Closed,
    /// The deadline passed.
    Timeout,
    /// A socket error.
    Io(String),
    /// The other side's public key is outside `2..P-1`.
    BadPublicKey,
    /// A sync point (`"req1"` or `"VC"`) was not found within its window:
    /// the padding was too long or the bytes are not MSE.
    SyncNotFound(&'static str),
    /// `HASH('req2', SKEY)` names none of our torrents.
    UnknownTorrent,
    /// The verification constant did not decrypt to zeros.
    BadVc,
    /// A field was longer than the specification allows (which one).
    TooLong(&'static str),
    /// The initiator offered no method we accept (its `crypto_provide`).
    NoCommonMethod(u32),
    /// The responder selected a method we did not offer, or several.
    BadSelect(u32),
    /// A handshake machine was used after it finished (a bug).
    Internal,
}

impl std::fmt::Display for MseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MseError::Closed => f.write_str("MSE: peer closed the connection"),
            MseError::Timeout => f.write_str("MSE: timed out"),
            MseError::Io(e) => write!(f, "MSE: {e}"),
            MseError::BadPublicKey => f.write_str("MSE: invalid Diffie-Hellman key"),
            MseError::SyncNotFound(what) => {
                write!(f, "MSE: {what} not found within the padding limit")
            }
            MseError::UnknownTorrent => f.write_str("MSE: unknown torrent"),
            MseError::BadVc => f.write_str("MSE: bad verification constant"),
            MseError::TooLong(what) => write!(f, "MSE: {what} too long"),
            MseError::NoCommonMethod(p) => write!(f, "MSE: no acceptable method offered ({p:#x})"),
            MseError::BadSelect(s) => write!(f, "MSE: peer selected an unoffered method ({s:#x})"),
            MseError::Internal => f.write_str("MSE: internal error"),
        }
    }
}

impl std::error::Error for MseError {}

#[cfg(test)]
mod tests;
