//! Storage: a torrent's files on disk, addressed as one byte stream.
//!
//! Files are created sparse at their full size; blocks are written at their
//! offset with positional I/O (`FileExt::write_at`), so a piece spanning
//! several files is just several writes. Pad files (BEP 47) are never
//! created: they read as zeros and writes to them are dropped.
//!
//! Positional reads and writes take `&self`, so one `Storage` is shared
//! (in an `Arc`) by the torrent thread (the only writer), the hashing pool
//! and the peer threads (uploads read verified pieces).

use crate::proto::metainfo::Info;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

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
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::DiskFull { path } => write!(f, "disk full writing {}", path.display()),
            StorageError::Io { path, op, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            StorageError::UnsafePath(p) => write!(f, "unsafe path in torrent: {p}"),
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

fn io_err(path: &Path, op: &'static str, source: std::io::Error) -> StorageError {
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

#[derive(Debug)]
struct StorageFile {
    path: PathBuf,
    offset: u64,
    length: u64,
    /// `None` for pad files and zero-length files.
    file: Option<File>,
}

/// A torrent's files, opened.
#[derive(Debug)]
pub struct Storage {
    files: Vec<StorageFile>,
    #[allow(dead_code)] // not used by the engine yet
    total_length: u64,
    root: PathBuf,
}

/// Join sanitised torrent path components under `dir`, refusing anything
/// that is not a plain relative component (defence in depth: metainfo
/// parsing already sanitises).
pub fn safe_join(dir: &Path, components: &[String]) -> Result<PathBuf, StorageError> {
    let mut p = dir.to_path_buf();
    if components.is_empty() {
        return Err(StorageError::UnsafePath(String::new()));
    }
    for c in components {
        let mut comps = Path::new(c).components();
        match (comps.next(), comps.next()) {
            (Some(Component::Normal(_)), None) if !c.contains('/') && !c.contains('\\') => {
                p.push(c)
            }
            _ => return Err(StorageError::UnsafePath(components.join("/"))),
        }
    }
    Ok(p)
}

impl Storage {
    /// Open (creating sparse where missing) every file of `info` under `dir`.
    /// Existing files are never truncated; a file that cannot be opened for
    /// writing is opened read-only (enough to seed).
    pub fn open(dir: &Path, info: &Info) -> Result<Storage, StorageError> {
        let mut files = Vec::with_capacity(info.files.len());
        for f in &info.files {
            let path = safe_join(dir, &f.path)?;
            let handle = if f.pad {
                None
            } else {
                Some(open_file(&path, f.length)?)
            };
            files.push(StorageFile {
                path,
                offset: f.offset,
                length: f.length,
                file: handle.filter(|_| f.length > 0),
            });
        }
        Ok(Storage {
            files,
            total_length: info.total_length,
            root: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        })
    }

    /// The directory the files live under (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Size and modification time of every file (pad files excluded), as
    /// they are on disk now; `None` for a file that is missing.
    pub fn stamps(&self) -> Vec<Option<crate::state::resume::FileStamp>> {
        self.files
            .iter()
            .filter(|f| f.file.is_some() || f.length == 0)
            .map(|f| {
                std::fs::metadata(&f.path)
                    .ok()
                    .map(|m| crate::state::resume::FileStamp {
                        length: m.len(),
                        mtime: m.mtime(),
                        mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
                    })
            })
            .collect()
    }

    #[allow(dead_code)] // not used by the engine yet
    /// Total bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// The files overlapping `[offset, offset + len)`, with the part of each.
    fn spans(&self, offset: u64, len: u64) -> impl Iterator<Item = (&StorageFile, u64, u64, u64)> {
        // (file, offset in file, length, offset in the caller's buffer)
        let start = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        let end = offset + len;
        self.files[start..]
            .iter()
            .take_while(move |f| f.offset < end)
            .filter(|f| f.length > 0)
            .map(move |f| {
                let s = offset.max(f.offset);
                let e = end.min(f.offset + f.length);
                (f, s - f.offset, e - s, s - offset)
            })
    }

    /// Write `data` at torrent offset `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        for (f, at, len, buf_at) in self.spans(offset, data.len() as u64) {
            if let Some(file) = &f.file {
                let part = &data[buf_at as usize..(buf_at + len) as usize];
                file.write_all_at(part, at)
                    .map_err(|e| io_err(&f.path, "write", e))?;
            }
        }
        Ok(())
    }

    /// Fill `buf` from torrent offset `offset`. Pad files and bytes past
    /// the end of a short file read as zeros.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        buf.fill(0);
        for (f, at, len, buf_at) in self.spans(offset, buf.len() as u64) {
            if let Some(file) = &f.file {
                let part = &mut buf[buf_at as usize..(buf_at + len) as usize];
                read_full_at(file, part, at).map_err(|e| io_err(&f.path, "read", e))?;
            }
        }
        Ok(())
    }

    /// Whether any byte of the range lies in a file that exists with data
    /// (a cheap test to skip hashing pieces of a brand-new download).
    pub fn has_data(&self, offset: u64, len: u64) -> bool {
        self.spans(offset, len).any(|(f, at, _, _)| {
            f.file
                .as_ref()
                .and_then(|h| h.metadata().ok())
                .is_some_and(|m| m.len() > at && m.blocks() > 0)
        })
    }

    /// Flush written data of every file to disk.
    pub fn sync(&self) -> Result<(), StorageError> {
        for f in &self.files {
            if let Some(file) = &f.file {
                file.sync_data().map_err(|e| io_err(&f.path, "sync", e))?;
            }
        }
        Ok(())
    }

    /// The paths of the files (pad files excluded).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files
            .iter()
            .filter(|f| f.file.is_some() || f.length == 0)
            .map(|f| f.path.as_path())
    }
}

use std::os::unix::fs::MetadataExt;

fn open_file(path: &Path, length: u64) -> Result<File, StorageError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, "create directory", e))?;
    }
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(path).map_err(|e| io_err(path, "open", e))?
        }
        Err(e) => return Err(io_err(path, "open", e)),
    };
    let cur = file.metadata().map_err(|e| io_err(path, "stat", e))?.len();
    if cur < length {
        // Sparse preallocation: no blocks are allocated until written.
        if let Err(e) = file.set_len(length) {
            if e.kind() != std::io::ErrorKind::PermissionDenied {
                return Err(io_err(path, "preallocate", e));
            }
        }
    }
    Ok(file)
}

fn read_full_at(file: &File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, at) {
            Ok(0) => return Ok(()), // past EOF: leave zeros
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::{FileEntry, Info};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("peer-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn info(files: &[(&str, u64, bool)]) -> Info {
        let mut off = 0;
        let entries = files
            .iter()
            .map(|(p, l, pad)| {
                let e = FileEntry {
                    path: p.split('/').map(String::from).collect(),
                    length: *l,
                    offset: off,
                    pad: *pad,
                };
                off += l;
                e
            })
            .collect();
        Info {
            name: "t".into(),
            piece_length: 16,
            pieces: vec![[0; 20]; off.div_ceil(16) as usize],
            files: entries,
            total_length: off,
            private: false,
            multi_file: true,
        }
    }

    #[test]
    fn write_and_read_across_files_and_pads() {
        let dir = tmp("span");
        let inf = info(&[
            ("t/a", 10, false),
            ("t/pad", 6, true),
            ("t/b", 0, false),
            ("t/c", 20, false),
        ]);
        let s = Storage::open(&dir, &inf).unwrap();
        let data: Vec<u8> = (0..36).collect();
        s.write(0, &data).unwrap();
        let mut back = vec![0xff; 36];
        s.read(0, &mut back).unwrap();
        let mut expected = data.clone();
        expected[10..16].fill(0);
        assert_eq!(back, expected);
        assert_eq!(std::fs::read(dir.join("t/a")).unwrap(), &data[..10]);
        assert_eq!(std::fs::read(dir.join("t/c")).unwrap(), &data[16..]);
        assert!(dir.join("t/b").exists());
        assert!(!dir.join("t/pad").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn safe_join_refuses_escapes() {
        let d = Path::new("/tmp/x");
        assert!(safe_join(d, &["..".into()]).is_err());
        assert!(safe_join(d, &["/etc".into()]).is_err());
        assert!(safe_join(d, &["a/b".into()]).is_err());
        assert!(safe_join(d, &["".into()]).is_err());
        assert_eq!(
            safe_join(d, &["a".into(), "b".into()]).unwrap(),
            d.join("a/b")
        );
    }
}
