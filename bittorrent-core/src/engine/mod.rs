//! The swarm engine: the session, its torrent threads (the piece-picker threads), the peer
//! threads, the picker, the choker, the hashing pool, storage and metadata exchange.

pub mod choker;
pub mod hasher;
pub mod metadata;
pub mod peer;
pub mod picker;
pub mod piece_buffer;
pub mod session;
pub mod storage;
pub mod torrent;
