//! Metainfo (`.torrent`) files: BEP 3 and BEP 12 (announce-list).
//!
//! Parsing is done over the tolerant decoder in [`crate::bencode`]; the
//! info-hash is the SHA-1 of the original bytes of the `info` dictionary.
//! File paths are sanitised so that no entry can lead outside the
//! download directory.

use std::fmt;

/// The SHA-1 info-hash of a torrent (v1). `Display` is 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
    /// Parse 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        let b = s.as_bytes();
        if b.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(InfoHash(out))
    }
    /// 40 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// One file of a torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised path components relative to the download directory. For a
    /// multi-file torrent the first component is the torrent's (sanitised)
    /// name; for a single-file torrent it is just the name.
    pub path: Vec<String>,
    /// Length in bytes (0 for symlinks).
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 pad file (or an old `_____padding_file_`): takes piece space,
    /// is never written to disk and reads as zeros.
    pub pad: bool,
}

/// The `info` dictionary, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name (sanitised for use as a file or directory name).
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u64,
    /// The SHA-1 of each piece.
    pub pieces: Vec<[u8; 20]>,
    /// Files in torrent order (a single-file torrent has one entry).
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths (pad files included).
    pub total_length: u64,
    /// BEP 27 private flag.
    pub private: bool,
    /// Whether the info dictionary had `files` (multi-file layout).
    pub multi_file: bool,
}

/// A parsed and validated `.torrent` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the original bytes of `info`.
    pub info_hash: InfoHash,
    /// The validated info dictionary.
    pub info: Info,
    /// The exact bytes of the `info` dictionary as found in the file
    /// (served to peers with `ut_metadata`).
    pub info_bytes: Vec<u8>,
    /// `announce` (a bare `IP:PORT` is normalised to `http://IP:PORT/announce`).
    pub announce: Option<String>,
    /// `announce-list` tiers (BEP 12).
    pub announce_list: Vec<Vec<String>>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date` (seconds since the epoch).
    pub creation_date: Option<i64>,
    /// `url-list` web seeds (BEP 19).
    pub url_list: Vec<String>,
}

impl Info {
    /// Number of pieces.
    pub fn num_pieces(&self) -> usize {
        self.pieces.len()
    }
    /// Length of piece `index` (the last one may be short).
    pub fn piece_len(&self, index: usize) -> u64 {
        let start = index as u64 * self.piece_length;
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }
}

/// Why a `.torrent` file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetainfoError {
    /// The file is not valid bencode.
    Bencode(crate::bencode::BencodeError),
    /// The file parsed but violates a rule; the text says which.
    Invalid(String),
}

impl fmt::Display for MetainfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetainfoError::Bencode(e) => write!(f, "not a torrent: {e}"),
            MetainfoError::Invalid(s) => write!(f, "invalid torrent: {s}"),
        }
    }
}

impl std::error::Error for MetainfoError {}

/// Normalise a tracker address: a bare `IP:PORT` or `HOST:PORT` (the
/// announcer's own address, as `peer create --announce` accepts it) becomes
/// `http://IP:PORT/announce`; anything with a scheme is returned unchanged
/// (trimmed).
pub fn normalize_announce_url(s: &str) -> String {
    let s = s.trim();
    if s.contains("://") {
        return s.to_string();
    }
    // [v6]:port or host:port with a numeric port and nothing else.
    if let Some((host, port)) = s.rsplit_once(':') {
        let host_ok = !host.is_empty() && !host.contains('/');
        if host_ok && !port.is_empty() && port.parse::<u16>().is_ok() {
            return format!("http://{s}/announce");
        }
    }
    s.to_string()
}

#[cfg(test)]
mod normalize_tests {
    use super::normalize_announce_url;

    #[test]
    fn bare_ip_port_becomes_http_url() {
        assert_eq!(
            normalize_announce_url("192.168.1.5:6881"),
            "http://192.168.1.5:6881/announce"
        );
        assert_eq!(
            normalize_announce_url("[::1]:6881"),
            "http://[::1]:6881/announce"
        );
        assert_eq!(
            normalize_announce_url("udp://t.example:80"),
            "udp://t.example:80"
        );
        assert_eq!(normalize_announce_url("nonsense"), "nonsense");
    }
}
