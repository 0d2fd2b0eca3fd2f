//! Finding peers: trackers (client and the embedded server), the DHT, Local Service Discovery,
//! and the announcer that drives them for each torrent.

pub mod announcer;
pub mod dht;
pub mod lsd;
pub mod tracker;
pub mod udp;
