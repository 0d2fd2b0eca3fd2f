//! The crate-level error type used by the session API.

use std::fmt;

/// Errors returned by the public API of this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A `.torrent` file was refused.
    Metainfo(crate::proto::metainfo::MetainfoError),
    /// An I/O operation failed; `context` names what was being done.
    Io {
        /// What was being done (for example `open /data/file.bin`).
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Something else the message explains (invalid argument, unknown torrent...).
    Other(String),
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
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Metainfo(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Other(_) => None,
        }
    }
}

impl From<crate::proto::metainfo::MetainfoError> for Error {
    fn from(e: crate::proto::metainfo::MetainfoError) -> Self {
        Error::Metainfo(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
