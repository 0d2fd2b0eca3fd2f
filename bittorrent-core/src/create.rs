//! Creating `.torrent` files.
