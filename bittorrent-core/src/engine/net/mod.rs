//! How bytes reach a peer: the listener, the stream types (TCP, Message Stream Encryption) and rate limits.

pub(crate) mod bind;
pub(crate) mod listener;
pub(crate) mod lowat;
pub mod mse;
pub mod rate_limit;
