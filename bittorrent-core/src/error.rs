//! The crate-level error type used by the session API.
//!
//! Every variant is something a caller can act on without reading the
//! message: [`Error::AlreadyAdded`] and [`Error::UnknownTorrent`] name the
//! info-hash, [`Error::Storage`] the torrent whose files could not be
//! opened, [`Error::Stopped`] says the session (or the torrent's thread) is
//! gone. The `Display` text is a readable one-line message for people.

use crate::engine::storage::StorageError;
use crate::proto::magnet::MagnetError;
use crate::proto::metainfo::{InfoHash, MetainfoError};
use std::fmt;

/// Errors returned by the public API of this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A `.torrent` file (or a fetched info dictionary) was refused.
    Metainfo(MetainfoError),
    /// A magnet link was refused.
    Magnet(MagnetError),
    /// An I/O operation failed; `context` names what was being done.
    Io {
        /// What was being done (for example `listen on 0.0.0.0:6881`).
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The torrent (or magnet link) is already in the session.
    AlreadyAdded(InfoHash),
    /// No torrent (and no magnet link) with this info-hash is in the session.
    UnknownTorrent(InfoHash),
    /// The operation needs the torrent's metadata, which a magnet link
    /// still in its metadata phase does not have yet (pausing it, say).
    NoMetadata(InfoHash),
    /// The torrent's files could not be opened or created.
    Storage {
        /// The torrent's name.
        name: String,
        /// What went wrong.
        source: StorageError,
    },
    /// A file selection does not fit the torrent (a wrong number of
    /// priorities, an index past the last file, nothing left to download).
    Selection {
        /// The torrent's name.
        name: String,
        /// What is wrong.
        source: crate::engine::torrent::selection::SelectionError,
    },
    /// The session is shutting down (or the torrent's thread has ended).
    Stopped,
    /// `Config::tcp_congestion` names an algorithm this kernel does not
    /// offer or allow (refused by `Session::start`).
    Congestion(crate::engine::net::congestion::CongestionError),
    /// A seeding ratio limit that is negative or not a number.
    BadSeedRatio(f64),
    /// A file index past the torrent's last file (or a pad file's).
    NoSuchFile {
        /// The torrent.
        info_hash: InfoHash,
        /// The index asked for.
        index: usize,
        /// How many files the torrent has (pad files included).
        files: usize,
    },
    /// A read of a file's bytes that passes the end of the file.
    ReadPastEnd {
        /// The torrent.
        info_hash: InfoHash,
        /// The read's first byte in the file.
        offset: u64,
        /// The read's length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A streaming read waited its whole timeout for a piece.
    ReadTimeout {
        /// The torrent.
        info_hash: InfoHash,
        /// The first piece still missing.
        piece: u32,
    },
}

impl Error {
    /// Wrap an I/O error with a description of the operation.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Metainfo(e) => write!(f, "{e}"),
            Error::Magnet(e) => write!(f, "{e}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Congestion(e) => write!(f, "{e}"),
            Error::AlreadyAdded(ih) => write!(f, "torrent {ih} is already in the session"),
            Error::UnknownTorrent(ih) => write!(f, "no torrent {ih} in the session"),
            Error::NoMetadata(ih) => write!(f, "torrent {ih} has no metadata yet"),
            Error::Storage { name, source } => write!(f, "{name}: {source}"),
            Error::Selection { name, source } => write!(f, "{name}: {source}"),
            Error::BadSeedRatio(r) => write!(f, "not a seeding ratio: {r} (0 or more)"),
            Error::Stopped => f.write_str("the session is stopping"),
            Error::NoSuchFile {
                info_hash,
                index,
                files,
            } => write!(
                f,
                "torrent {info_hash} has no file {index} ({files} files, numbered from 0)"
            ),
            Error::ReadPastEnd {
                offset,
                len,
                file_len,
                ..
            } => write!(
                f,
                "bytes {offset}..{} pass the end of the file ({file_len} bytes)",
                offset.saturating_add(*len)
            ),
            Error::ReadTimeout { info_hash, piece } => write!(
                f,
                "piece {piece} of torrent {info_hash} is not downloaded yet (timed out waiting)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Metainfo(e) => Some(e),
            Error::Magnet(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Storage { source, .. } => Some(source),
            Error::Selection { source, .. } => Some(source),
            Error::Congestion(e) => Some(e),
            Error::AlreadyAdded(_)
            | Error::UnknownTorrent(_)
            | Error::NoMetadata(_)
            | Error::Stopped
            | Error::BadSeedRatio(_)
            | Error::NoSuchFile { .. }
            | Error::ReadPastEnd { .. }
            | Error::ReadTimeout { .. } => None,
        }
    }
}

impl From<MetainfoError> for Error {
    fn from(e: MetainfoError) -> Self {
        Error::Metainfo(e)
    }
}

impl From<MagnetError> for Error {
    fn from(e: MagnetError) -> Self {
        Error::Magnet(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
