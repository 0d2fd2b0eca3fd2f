//! Small helpers every layer may use (they import nothing from the crate).

pub(crate) mod doorbell;
pub(crate) mod local;
pub(crate) mod rng;
pub(crate) mod source;
pub(crate) mod udp_batch;

/// Stack size of the session's service threads (listener, udp, dht, lsd,
/// announcer): their buffers are on the heap.
pub(crate) const SERVICE_STACK: usize = 512 * 1024;
