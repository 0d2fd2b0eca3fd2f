//! What can go wrong talking to a tracker (shared by the HTTP transport
//! and the announce client).

use std::{fmt, io};

/// Which phase of a tracker exchange ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Resolving the host name.
    Resolve,
    /// TCP connect.
    Connect,
    /// Sending the request.
    Send,
    /// Waiting for / reading the response.
    Receive,
    /// UDP connect exchange (BEP 15).
    UdpConnect,
    /// UDP announce or scrape exchange (BEP 15).
    UdpRequest,
}

/// Why an announce or scrape failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrackerError {
    /// A socket error (connection refused, reset...).
    Io(io::Error),
    /// The deadline passed during `phase`.
    Timeout {
        /// What was being done.
        phase: TimeoutPhase,
    },
    /// The host name did not resolve.
    Resolve(String),
    /// The HTTP status was not 200 (and the body carried no failure reason).
    Http(u16),
    /// The tracker refused: its `failure reason` (or BEP 15 error message).
    Failure(String),
    /// The response could not be understood.
    Malformed(String),
    /// The URL is not `http://`, `https://`, `udp://` or a bare `IP:PORT`.
    UnsupportedScheme(String),
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// The response exceeded `MAX_RESPONSE_BODY`.
    TooLarge,
    /// The tracker does not support scraping (BEP 48 URL rule).
    ScrapeUnsupported,
    /// The TLS handshake failed (for example an untrusted certificate).
    Tls(String),
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerError::Io(e) => write!(f, "tracker I/O error: {e}"),
            TrackerError::Timeout { phase } => write!(f, "tracker timed out ({phase:?})"),
            TrackerError::Resolve(s) => write!(f, "cannot resolve tracker host {s}"),
            TrackerError::Http(s) => write!(f, "tracker answered HTTP {s}"),
            TrackerError::Failure(s) => write!(f, "tracker refused: {s}"),
            TrackerError::Malformed(s) => write!(f, "malformed tracker response: {s}"),
            TrackerError::UnsupportedScheme(s) => write!(f, "unsupported tracker URL scheme: {s}"),
            TrackerError::InvalidUrl(s) => write!(f, "invalid tracker URL: {s}"),
            TrackerError::TooLarge => write!(f, "tracker response too large"),
            TrackerError::ScrapeUnsupported => write!(f, "tracker does not support scrape"),
            TrackerError::Tls(s) => write!(f, "tracker TLS error: {s}"),
        }
    }
}

impl std::error::Error for TrackerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrackerError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::proto::tracker::ResponseError> for TrackerError {
    fn from(e: crate::proto::tracker::ResponseError) -> TrackerError {
        match e {
            crate::proto::tracker::ResponseError::Failure(s) => TrackerError::Failure(s),
            crate::proto::tracker::ResponseError::Malformed(s) => TrackerError::Malformed(s),
        }
    }
}
