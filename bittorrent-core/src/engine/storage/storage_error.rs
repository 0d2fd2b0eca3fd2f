//! The error of every disk operation of a torrent (its files and its part
//! file), naming the file and the operation.

use std::path::{Path, PathBuf};

/// A storage failure, naming the file and the operation.
#[derive(Debug)]
pub enum StorageError {
    /// The disk (or quota) is full while writing `path`.
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Any other I/O failure.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done (`create`, `open`, `read`, `write`, `sync`).
        op: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A torrent path that is not a plain relative path (refused, never joined).
    UnsafePath(String),
    /// A component of a file's path below the download directory is a
    /// symbolic link: nothing is written, read or deleted through it.
    Symlink(PathBuf),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::DiskFull { path } => write!(f, "disk full writing {}", path.display()),
            StorageError::Io { path, op, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            StorageError::UnsafePath(p) => write!(f, "unsafe path in torrent: {p}"),
            StorageError::Symlink(p) => write!(
                f,
                "{} is a symbolic link: refusing to follow it out of the download directory",
                p.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(crate) fn io_err(path: &Path, op: &'static str, source: std::io::Error) -> StorageError {
    if source.raw_os_error() == Some(28) || source.kind() == std::io::ErrorKind::StorageFull {
        return StorageError::DiskFull {
            path: path.to_path_buf(),
        };
    }
    StorageError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}
