//! How bytes reach a peer: the listener, the stream types (TCP and uTP behind one
//! [`transport::PeerSocket`], Message Stream Encryption over either) and rate limits; `utp/`,
//! uTP: congestion control, the connection state machine, the endpoint on the shared UDP port
//! and its blocking stream.

pub(crate) mod bind;
pub mod congestion;
pub(crate) mod listener;
pub(crate) mod lowat;
pub mod mse;
pub mod own_v6;
pub mod rate_limit;
pub mod transport;
pub mod utp;
