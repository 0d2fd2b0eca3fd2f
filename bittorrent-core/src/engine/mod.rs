//! The swarm engine: the session, its torrent threads (the piece-picker threads), the peer
//! threads, the picker, the choker, the hashing pool, storage and metadata exchange.

pub mod choker;
pub mod hasher;
pub mod metadata;
pub mod mse;
pub mod partfile;
pub mod peer;
pub mod picker;
pub mod rate_limit;
pub mod selection;
pub mod session;
pub mod smart_ban;
pub mod storage;
pub mod torrent;
