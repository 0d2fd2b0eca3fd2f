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
//! ## Layout
//!
//! | module | what |
//! |---|---|
//! | [`proto`] | pure codecs: bencode, metainfo, magnet links, peer wire, extension messages, bitfields, piece geometry, safe paths |
//! | [`discovery`] | trackers (client and embedded server), DHT, Local Service Discovery, the announcer |
//! | [`engine`] | the session, torrent (piece-picker) threads, peer threads, picker, choker, hasher, storage, metadata exchange |
//! | [`state`] | what is kept on disk between runs (resume data) |
//! | [`create`] | building `.torrent` files |
//!
//! ## BEPs
//!
//! | BEP | what | module |
//! |---|---|---|
//! | 3 | metainfo, peer wire, HTTP tracker | [`metainfo`](crate::proto::metainfo), [`wire`](crate::proto::wire), [`peer`](crate::engine::peer), [`torrent`](crate::engine::torrent), [`tracker`](crate::discovery::tracker) |
//! | 5 | DHT | [`dht`](crate::discovery::dht) |
//! | 6 | fast extension | [`wire`](crate::proto::wire), [`peer`](crate::engine::peer) |
//! | 9, 10 | magnet links, metadata exchange, extension protocol | [`magnet`](crate::proto::magnet), [`metadata`](crate::engine::metadata), [`extension`](crate::proto::extension) |
//! | 11 | peer exchange | [`extension`](crate::proto::extension), [`torrent`](crate::engine::torrent) |
//! | 12, 15, 23 | multitracker, UDP tracker, compact peers | [`tracker`](crate::discovery::tracker), [`announcer`](crate::discovery::announcer) |
//! | 14 | local service discovery | [`lsd`](crate::discovery::lsd) |
//! | 27, 47 | private torrents, pad files | [`metainfo`](crate::proto::metainfo), [`storage`](crate::engine::storage) |
#![warn(missing_docs)]

pub mod create;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod proto;
pub mod state;
pub(crate) mod util;

pub use discovery::tracker::TrackerConfig;
pub use engine::config::Config;
pub use engine::events::{Event, EVENT_QUEUE};
pub use engine::mse::Encryption;
pub use engine::peer::PeerLimits;
pub use engine::session::{AddTorrent, Session, TorrentSource};
pub use engine::status::{PeerInfo, Phase, SeedGoal, TorrentStatus, TrackerStatus};
pub use engine::storage::StorageError;
pub use error::{Error, Result};
pub use proto::magnet::Magnet;
pub use proto::metainfo::{InfoHash, Metainfo};
