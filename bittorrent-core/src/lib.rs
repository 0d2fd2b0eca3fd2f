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
//! ## Magnet links and events
//!
//! [`Session::add`] takes a magnet link as well
//! ([`AddTorrent::magnet`]): the torrent shows in phase
//! [`Phase::Metadata`] until its info dictionary arrives from peers (the
//! link's `x.pe`, the given peers, its trackers, the DHT, LSD; re-dialled
//! after 1 s, 2 s, 4 s ...), then downloads. [`Session::events`] gives a
//! channel of [`Event`]s (added, metadata received, checked, completed,
//! error, removed, paused, resumed, tracker announces) to wait on instead
//! of polling. See `examples/` for whole programs.
//!
//! ## The public surface
//!
//! | item | what |
//! |---|---|
//! | [`Session`], [`Config`], [`AddTorrent`], [`TorrentSource`] | the engine: start, add, pause, resume, remove, restore, shut down |
//! | [`TorrentStatus`], [`Phase`], [`TrackerStatus`] | snapshots (copied, never waiting on the engine) |
//! | [`Event`] | what happened, for subscribers |
//! | [`Metainfo`], [`InfoHash`], [`Magnet`] | torrents and magnet links |
//! | [`Error`], [`StorageError`] | typed errors |
//! | [`create`] | building `.torrent` files |
//! | [`proto`] | the pure protocol codecs (fuzzed): bencode, metainfo, magnet links, peer wire, extension messages, compact peers, KRPC, LSD announces, tracker messages, MSE handshake, resume data |
//! | [`tracker_server`] | the tracker embedded in every peer, request bytes in, response bytes out |
//!
//! Everything else (the torrent, peer, metadata and announcer threads,
//! the picker, the choker, storage, the tracker client, the DHT node, LSD)
//! is internal; `docs/ARCHITECTURE.md` describes it.
//!
//! ## BEPs
//!
//! | BEP | what | public codec |
//! |---|---|---|
//! | 3 | metainfo, peer wire, HTTP tracker | [`proto::metainfo`], [`proto::wire`], [`proto::tracker`] |
//! | 5 | DHT | [`proto::krpc`] |
//! | 6 | fast extension | [`proto::wire`] |
//! | 9, 10 | magnet links, metadata exchange, extension protocol | [`proto::magnet`], [`proto::extension`] |
//! | 11 | peer exchange | [`proto::extension`] |
//! | 12, 15, 23 | multitracker, UDP tracker, compact peers | [`proto::tracker`], [`proto::compact`] |
//! | 14 | local service discovery | [`proto::lsd`] |
//! | 27, 47 | private torrents, pad files | [`proto::metainfo`] |
#![warn(missing_docs)]

pub mod create;
pub(crate) mod discovery;
pub(crate) mod engine;
mod error;
pub(crate) mod portmap;
pub mod proto;
pub(crate) mod state;
pub(crate) mod util;

/// The pieces of the receive path, for its micro-benchmark
/// (`examples/receive_path.rs`) only: not a stable API.
#[doc(hidden)]
pub mod bench {
    pub use crate::engine::storage::hasher::sha1_of_blocks;
    pub use crate::engine::storage::piece_buffer::{Complete, MemoryBudget, PieceBuffers, Stored};
    pub use crate::engine::storage::Storage;
}

/// DHT bootstrap routers (BEP 5): [`Config::dht_routers`] and
/// [`Config::dht_resolver`].
pub mod dht_bootstrap {
    pub use crate::discovery::dht::bootstrap::{
        default_routers, parse_list, routers_from, routers_from_env, Resolver, Router, RouterError,
        DEFAULT_ROUTERS, ENV_VAR, RESOLVE_TIMEOUT,
    };
}

/// Choosing the files of a torrent: priorities, glob patterns on the paths inside it, index
/// lists as `peer info` shows them, and the `Selector` a magnet link applies once its
/// metadata arrives.
pub mod selection {
    pub use crate::engine::torrent::selection::*;
}

/// The tracker embedded in every peer (BEP 3, 15, 48): a small in-memory
/// tracker whose request handling is a state machine (request bytes in,
/// response bytes out: [`TrackerServer::handle_http`](tracker_server::TrackerServer::handle_http),
/// [`TrackerServer::handle_udp`](tracker_server::TrackerServer::handle_udp)), so
/// embedders and fuzz targets can drive it without sockets. A service, not a
/// codec: the messages it parses and writes are in [`proto::tracker`]. (Before
/// this module these names were under `proto::tracker`.)
pub mod tracker_server {
    pub use crate::discovery::tracker::server::{
        looks_like_http, read_http_request, TrackerConfig, TrackerServer, MAX_HTTP_REQUEST,
    };
}

/// The demultiplexing rule of the UDP port shared by the embedded tracker
/// (BEP 15), uTP (BEP 29) and the DHT (BEP 5), for fuzz targets and
/// embedders: see [`route`](udp_demux::route).
pub mod udp_demux {
    pub use crate::discovery::udp::{is_tracker_request, route, Route};
}
/// uTP (BEP 29) endpoints and streams on a socket of their own, for `tests/utp_stream.rs`
/// (the session runs its endpoint on its shared UDP port); not a stable API.
#[doc(hidden)]
pub mod utp {
    pub use crate::engine::net::utp::conn::{Closed, State, Timeouts};
    pub use crate::engine::net::utp::endpoint::{UtpSocket, UtpStream};
}
pub use discovery::tracker::TrackerConfig;
pub use engine::conn::peer::PeerLimits;
pub use engine::net::congestion::{CongestionError, TcpCongestion};
pub use engine::net::mse::Encryption;
pub use engine::net::rate_limit::parse_rate;
pub use engine::net::transport::{Transport, TransportPolicy};
pub use engine::session::config::{Config, CorruptSettings};
pub use engine::session::events::{Event, EVENT_QUEUE};
pub use engine::session::external::{ExternalAddress, ExternalSource, MAX_EXTERNAL_ADDRESSES};
pub use portmap::{PortMapState, PortMapStatus};

/// Port mapping (UPnP IGD, NAT-PMP): the switch for the whole process.
pub mod port_map {
    pub use crate::portmap::{
        disabled_by_env, lease_asked, PortMapState, PortMapStatus, Protocol, ENV_VAR, LEASE,
        LEASE_ENV_VAR, RETRY_FIRST, RETRY_MAX,
    };
}
pub use engine::session::{AddTorrent, FileReader, FileStatus, Session, TorrentSource};
pub use engine::storage::file_pool::raise_nofile_limit;
pub use engine::storage::StorageError;
pub use engine::torrent::selection::FilePriority;
pub use engine::torrent::status::{
    PeerInfo, Phase, PieceOrderPrefs, SeedGoal, SeedLimit, SeedLimits, TorrentStatus,
    TrackerStatus, WebSeedState, WebSeedStatus,
};
pub use error::{Error, Result};
pub use proto::magnet::Magnet;
pub use proto::metainfo::{InfoHash, Metainfo};
