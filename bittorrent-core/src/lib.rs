//! # bittorrent-core
//!
//! A synchronous BitTorrent engine: one OS thread per peer socket, a
//! piece-picker thread per torrent that owns the piece state, the disk
//! writer and the resume data, all coordinated over `crossbeam-channel`.
//!
//! See `docs/ARCHITECTURE.md` for the threads and the messages between them.
//!
//! ## Quick start: share a file between two sessions
//!
//! ```
//! use bittorrent_core::create::{create_torrent, CreateOptions};
//! use bittorrent_core::{AddTorrent, Config, Metainfo, Phase, Session};
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::{Duration, Instant};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = std::env::temp_dir().join(format!("bt-doc-{}", std::process::id()));
//! std::fs::create_dir_all(root.join("seed"))?;
//! std::fs::write(root.join("seed/hello.txt"), b"hello, swarm")?;
//!
//! // Make a torrent (on every core) and read it back.
//! let bytes = create_torrent(&root.join("seed/hello.txt"), &CreateOptions::default(), &|_, _| {})?;
//! let torrent = Metainfo::from_bytes(&bytes)?;
//!
//! // Two sessions on loopback: one seeds, the other downloads from it.
//! let config = || Config {
//!     listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
//!     listen_port: 0, // any free port
//!     ..Config::default()
//! };
//! let seeder = Session::start(config())?;
//! seeder.add(AddTorrent::new(torrent.clone(), root.join("seed")))?;
//! let leecher = Session::start(config())?;
//! let id = leecher.add(AddTorrent::new(torrent, root.join("down")).peers(vec![seeder.local_addr()]))?;
//!
//! // Status snapshots never wait on the engine's threads.
//! let deadline = Instant::now() + Duration::from_secs(30);
//! while leecher.status(&id).map(|s| s.phase) != Some(Phase::Seeding) && Instant::now() < deadline {
//!     std::thread::sleep(Duration::from_millis(20));
//! }
//! assert_eq!(std::fs::read(root.join("down/hello.txt"))?, b"hello, swarm");
//! leecher.shutdown();
//! seeder.shutdown();
//! # std::fs::remove_dir_all(&root)?;
//! # Ok(())
//! # }
//! ```
//!
//! ## BEPs
//!
//! | BEP | what | module |
//! |---|---|---|
//! | 3 | metainfo, peer wire, HTTP tracker | [`metainfo`], [`wire`], [`peer`], [`torrent`], [`tracker`] |
//! | 5 | DHT | [`dht`] |
//! | 6 | fast extension | [`wire`], [`peer`] |
//! | 9, 10 | magnet links, metadata exchange, extension protocol | [`magnet`], [`metadata`], [`extension`] |
//! | 11 | peer exchange | [`extension`], [`torrent`] |
//! | 12, 15, 23 | multitracker, UDP tracker, compact peers | [`tracker`], [`announcer`] |
//! | 14 | local service discovery | [`lsd`] |
//! | 27, 47 | private torrents, pad files | [`metainfo`], [`storage`] |
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
pub mod piece_buffer;
pub mod resume;
pub mod session;
pub mod storage;
pub mod torrent;
pub mod wire;

pub use session::{AddTorrent, Config, Session};
pub use torrent::{Phase, TorrentStatus};
