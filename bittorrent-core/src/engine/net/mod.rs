//! How bytes reach a peer: the listener, the stream types (TCP, Message Stream Encryption) and rate
//! limits; `utp/`, uTP: congestion control, the connection state machine, an endpoint and a
//! blocking stream (not yet wired).

pub(crate) mod bind;
pub mod congestion;
pub(crate) mod listener;
pub(crate) mod lowat;
pub mod mse;
pub mod own_v6;
pub mod rate_limit;
// Not yet wired into the session (issue 25): nothing outside its tests uses it.
#[allow(dead_code)]
pub mod utp;
