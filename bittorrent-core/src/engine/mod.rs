//! The swarm engine: the session, its torrent threads (the piece-picker threads), the peer
//! threads, the metadata threads of magnet links, the picker, the choker, the hashing pool and
//! storage.
//!
//! Imports point down: `session` uses everything; `torrent`, `metadata` and the announcer use
//! `shared` (the state their threads share), `status`, `events` and `candidates`; `shared`
//! uses none of them.

pub(crate) mod block_pool;
pub(crate) mod candidates;
pub mod choker;
pub(crate) mod config;
pub(crate) mod events;
pub mod file_pool;
pub mod hasher;
pub(crate) mod listener;
pub mod metadata;
pub mod mse;
pub(crate) mod out_queue;
pub(crate) mod partfile;
pub mod peer;
pub mod picker;
pub mod piece_buffer;
pub(crate) mod pipeline;
pub(crate) mod preallocate;
pub mod rate_limit;
pub(crate) mod recent_pieces;
pub mod safe_fs;
pub mod selection;
pub mod session;
pub(crate) mod shared;
pub mod smart_ban;
pub(crate) mod status;
pub mod storage;
pub(crate) mod storage_error;
pub mod torrent;
pub mod waker;
pub(crate) mod writeback;
