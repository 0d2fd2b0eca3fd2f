//! # bittorrent-core
//!
//! A synchronous BitTorrent engine: one OS thread per peer socket, a
//! piece-picker thread per torrent that owns the piece state, the disk
//! writer and the resume data, all coordinated over `crossbeam-channel`.
//!
//! See `docs/ARCHITECTURE.md` for the threads and the messages between them.
#![warn(missing_docs)]

pub mod bencode;
pub mod create;
pub mod error;
pub mod extension;
pub mod magnet;
pub mod metainfo;
pub mod tracker;

pub use error::{Error, Result};
pub use metainfo::{InfoHash, Metainfo};
