//! The swarm engine: the session, its torrent threads (the piece-picker threads), the peer
//! threads, the metadata threads of magnet links, the picker, the choker, the hashing pool and
//! storage.
//!
//! Five rooms, by what a reader comes looking for:
//! - [`session`]: the `Session` handle, `Config`, events and the state the threads share;
//! - [`torrent`]: the torrent thread (the piece-picker thread) and the pure state it decides
//!   with (picker, choker, smart ban, candidates, selection, status, kept pieces), and the
//!   metadata thread of a magnet link;
//! - [`conn`]: one peer connection: the peer thread, its output queue, request pipeline, waker
//!   and block pool;
//! - [`net`]: how bytes reach a peer: the listener, the streams (TCP, MSE) and rate limits;
//! - [`storage`]: a torrent's bytes on disk: storage, piece buffers, hashing, the part file, the
//!   file pool, safe paths, preallocation and write-back.
//!
//! Imports point down: `session` uses everything; `torrent`, `metadata` and the announcer use
//! `shared` (the state their threads share), `status`, `events` and `candidates`; `shared`
//! uses none of them.

pub(crate) mod conn;
pub(crate) mod net;
pub(crate) mod session;
pub(crate) mod storage;
pub(crate) mod torrent;
