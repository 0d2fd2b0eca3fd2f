//! Pure protocol codecs: bytes in, values out. No sockets, no files, no threads, no channels.
//!
//! Everything a peer, a tracker or a `.torrent` file can send us is parsed here, with limits,
//! so these modules are what the fuzz targets exercise.

pub mod bencode;
pub mod bitfield;
pub mod extension;
pub mod layout;
pub mod magnet;
pub mod metainfo;
pub mod safe_path;
pub mod wire;
