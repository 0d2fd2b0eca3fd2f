//! Pure protocol codecs: bytes in, values out. No sockets, no files, no threads, no channels.
//!
//! Everything a peer, a tracker, a DHT node, a LAN announce, a resume file or a `.torrent`
//! file can send us is parsed here, with limits, so this module is what the fuzz targets and
//! the protocol tests exercise. The codecs whose code sits beside the component that uses
//! them (KRPC in the DHT, LSD announces, tracker messages, resume data) are re-exported here,
//! so that this is the one public door to all of them.

pub mod bencode;
pub mod bitfield;
pub mod compact;
pub mod extension;
pub mod krpc;
pub mod layout;
pub mod lsd;
pub mod magnet;
pub mod metainfo;
pub mod mse;
mod node_id;
pub mod resume;
pub mod safe_path;
pub mod wire;

/// Tracker messages (BEP 3, 7, 15, 23, 48): announce and scrape responses
/// over HTTP and UDP, percent-encoding, and the
/// embedded tracker's request handling as a state machine (request bytes
/// in, response bytes out: `TrackerServer::handle_http`,
/// `TrackerServer::handle_udp`).
pub mod tracker {
    pub use crate::discovery::tracker::client::{
        parse_announce_response, parse_scrape_response, parse_udp_announce_response,
        AnnounceResponse, ScrapeEntry, TrackerError, MAX_RESPONSE_BODY, UDP_PROTOCOL_ID,
    };
    pub use crate::discovery::tracker::server::{
        looks_like_http, read_http_request, TrackerConfig, TrackerServer, MAX_HTTP_REQUEST,
    };
    pub use crate::discovery::tracker::url::percent_encode;
}
