//! Trackers: the announce client (BEP 3, 7, 12, 15, 23, 48) and the tracker
//! embedded in every peer.
//!
//! * [`client`]: [`announce`] / [`scrape`] over HTTP and UDP, and
//!   [`TrackerList`] for BEP 12 tiers and announce scheduling.
//! * [`server`]: [`TrackerServer`], a small in-memory tracker answering HTTP
//!   (on the peer's TCP port, sniffed with [`looks_like_http`]) and BEP 15 UDP.
//! * [`url`]: percent-encoding and URL helpers.

pub mod client;
mod http;
pub mod server;
pub mod url;

pub use client::{
    announce, announce_with, scrape, AnnounceEvent, AnnounceOptions, AnnounceRequest,
    AnnounceResponse, ScrapeEntry, TimeoutPhase, TrackerError, TrackerList,
};
pub use server::{looks_like_http, read_http_request, TrackerConfig, TrackerServer};

/// A random `u64` from the standard library's per-process random hash keys
/// mixed with the clock and a counter (not cryptographic, but unpredictable
/// enough for transaction ids, keys and shuffling).
pub(crate) fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(nanos);
    h.finish()
}

/// Fisher–Yates shuffle with [`random_u64`].
pub(crate) fn shuffle<T>(v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = (random_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
