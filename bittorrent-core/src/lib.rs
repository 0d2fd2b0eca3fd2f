//! # bittorrent-core
//!
//! A synchronous BitTorrent engine: one OS thread per peer socket, a
//! piece-picker thread per torrent that owns the piece state, the disk
//! writer and the resume data, all coordinated over `crossbeam-channel`.
//!
//! See `docs/ARCHITECTURE.md` for the threads and the messages between them.
#![warn(missing_docs)]

pub mod announcer;
pub mod bencode;
pub mod create;
pub mod dht;
pub mod error;
pub mod extension;
pub mod lsd;
pub mod magnet;
pub mod metadata;
pub mod metainfo;
pub mod safe_path;
pub mod tracker;

pub use error::{Error, Result};
pub use magnet::Magnet;
pub use metainfo::{InfoHash, Metainfo};
pub mod bitfield;
pub mod choker;
pub mod hasher;
pub mod layout;
pub mod peer;
pub mod picker;
pub mod resume;
pub mod session;
pub mod storage;
pub mod torrent;
pub mod wire;

pub use session::{AddTorrent, Config, Session};
pub use torrent::{Phase, TorrentStatus};
