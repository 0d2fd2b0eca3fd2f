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
//!
//! File selection: a file that is not wanted (and does not exist yet) is
//! not created. Bytes of it that share a piece with a wanted file go to
//! the torrent's part file ([`PartFile`]) instead; the rest is never
//! written. [`Storage::want_files`] creates a file when it becomes wanted,
//! copying in what the part file holds of it first.

use crate::engine::partfile::PartFile;
use crate::engine::selection::FilePriority;
use crate::proto::metainfo::Info;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

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
    pad: bool,
    /// The open file; empty for pad files, zero-length files and files
    /// not created (not wanted). Set once, by `open` or `want_files`.
    file: OnceLock<File>,
}

/// A torrent's files, opened.
#[derive(Debug)]
pub struct Storage {
    files: Vec<StorageFile>,
    total_length: u64,
    piece_length: u64,
    root: PathBuf,
    /// Where bytes of files not created go (shared pieces only).
    part: Option<PartFile>,
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
        Storage::open_selected(dir, info, &[], None)
    }

    /// Open with a file selection: files whose priority is `Skip` are not
    /// created (one that exists already is used as it is), and bytes of
    /// theirs in pieces shared with other files go to the part file at
    /// `part` (created on the first such write). A missing priority means
    /// `Normal`. A wanted file that is created now gets what the part file
    /// holds of it.
    pub fn open_selected(
        dir: &Path,
        info: &Info,
        priorities: &[FilePriority],
        part: Option<PathBuf>,
    ) -> Result<Storage, StorageError> {
        let mut files = Vec::with_capacity(info.files.len());
        for f in &info.files {
            files.push(StorageFile {
                path: safe_join(dir, &f.path)?,
                offset: f.offset,
                length: f.length,
                pad: f.pad,
                file: OnceLock::new(),
            });
        }
        let s = Storage {
            files,
            total_length: info.total_length,
            piece_length: info.piece_length,
            root: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            part: part.map(|p| PartFile::new(p, info)),
        };
        for (i, f) in s.files.iter().enumerate() {
            if f.pad || f.file.get().is_some() {
                continue;
            }
            let wanted = priorities.get(i).is_none_or(|p| p.is_wanted());
            if wanted || s.part.is_none() || f.path.exists() {
                s.create(i)?;
            }
        }
        Ok(s)
    }

    /// Open (creating it sparse if missing) file `i`, first copying in
    /// what the part file holds of it when it is new. Only the torrent
    /// thread (or `open`) calls this, so nothing writes meanwhile.
    fn create(&self, i: usize) -> Result<(), StorageError> {
        let f = &self.files[i];
        let existed = f.path.exists();
        let handle = open_file(&f.path, f.length)?;
        if f.length == 0 {
            return Ok(());
        }
        if let (Some(part), false) = (&self.part, existed) {
            let mut buf = Vec::new();
            for (s, len) in self.part_spans(f) {
                buf.resize(len as usize, 0);
                part.read(s, &mut buf)?;
                if buf.iter().any(|&b| b != 0) {
                    handle
                        .write_all_at(&buf, s - f.offset)
                        .map_err(|e| io_err(&f.path, "write", e))?;
                }
            }
        }
        // Readers switch to the file only now that it holds everything.
        let _ = f.file.set(handle);
        Ok(())
    }

    /// The ranges of file `f` in pieces the part file has room for:
    /// (torrent offset, length).
    fn part_spans(&self, f: &StorageFile) -> Vec<(u64, u64)> {
        let Some(part) = &self.part else {
            return Vec::new();
        };
        let pl = self.piece_length;
        let end = f.offset + f.length;
        part.pieces()
            .iter()
            .filter_map(|&p| {
                let ps = u64::from(p) * pl;
                let s = ps.max(f.offset);
                let e = (ps + pl).min(end);
                (s < e).then(|| (s, e - s))
            })
            .collect()
    }

    /// Create every file that `priorities` wants and that is not created
    /// yet (with what the part file holds of it). Files no longer wanted
    /// keep their data. Once every file exists the part file is deleted.
    pub fn want_files(&self, priorities: &[FilePriority]) -> Result<(), StorageError> {
        for (i, f) in self.files.iter().enumerate() {
            let wanted = priorities.get(i).is_none_or(|p| p.is_wanted());
            if wanted && !f.pad && f.file.get().is_none() {
                self.create(i)?;
            }
        }
        if let Some(part) = &self.part {
            let all = self
                .files
                .iter()
                .all(|f| f.pad || f.length == 0 || f.file.get().is_some());
            if all {
                part.remove()?;
            }
        }
        Ok(())
    }

    /// Whether file `i` (an index into `info.files`) exists on disk for
    /// this torrent (created or found).
    pub fn is_created(&self, i: usize) -> bool {
        self.files
            .get(i)
            .is_some_and(|f| f.file.get().is_some() || (f.length == 0 && f.path.exists()))
    }

    /// The part file's path, if the torrent has one.
    pub fn part_path(&self) -> Option<&Path> {
        self.part.as_ref().map(|p| p.path())
    }

    /// The part file's size and modification time (`None` if there is none).
    pub fn part_stamp(&self) -> Option<crate::state::resume::FileStamp> {
        self.part.as_ref().and_then(|p| p.stamp())
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
            .filter(|f| !f.pad)
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
            let part = &data[buf_at as usize..(buf_at + len) as usize];
            if let Some(file) = f.file.get() {
                file.write_all_at(part, at)
                    .map_err(|e| io_err(&f.path, "write", e))?;
            } else if let (Some(p), false) = (&self.part, f.pad) {
                // A file not created: its bytes in shared pieces.
                p.write(f.offset + at, part)?;
            }
        }
        Ok(())
    }

    /// Fill `buf` from torrent offset `offset`. Pad files and bytes past
    /// the end of a short file read as zeros.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        buf.fill(0);
        for (f, at, len, buf_at) in self.spans(offset, buf.len() as u64) {
            let part = &mut buf[buf_at as usize..(buf_at + len) as usize];
            if let Some(file) = f.file.get() {
                read_full_at(file, part, at).map_err(|e| io_err(&f.path, "read", e))?;
            } else if let (Some(p), false) = (&self.part, f.pad) {
                p.read(f.offset + at, part)?;
            }
        }
        Ok(())
    }

    /// Whether any byte of the range lies in a file that exists with data
    /// (a cheap test to skip hashing pieces of a brand-new download).
    pub fn has_data(&self, offset: u64, len: u64) -> bool {
        self.spans(offset, len)
            .any(|(f, at, l, _)| match f.file.get() {
                Some(h) => h
                    .metadata()
                    .ok()
                    .is_some_and(|m| m.len() > at && m.blocks() > 0),
                None => {
                    !f.pad
                        && self
                            .part
                            .as_ref()
                            .is_some_and(|p| p.has_data(f.offset + at, l))
                }
            })
    }

    /// Flush written data of every file to disk.
    pub fn sync(&self) -> Result<(), StorageError> {
        for f in &self.files {
            if let Some(file) = f.file.get() {
                file.sync_data().map_err(|e| io_err(&f.path, "sync", e))?;
            }
        }
        if let Some(p) = &self.part {
            p.sync()?;
        }
        Ok(())
    }

    /// The paths of the files (pad files excluded; some may not exist).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files
            .iter()
            .filter(|f| !f.pad)
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
    fn skipped_files_are_not_created_and_shared_bytes_go_to_the_part_file() {
        use crate::engine::selection::FilePriority::{Normal as N, Skip as S};
        let dir = tmp("select");
        // Pieces of 16: a = [0,20), b = [20,40), c = [40,60); pieces 1 and
        // 2 are shared.
        let inf = info(&[("t/a", 20, false), ("t/b", 20, false), ("t/c", 20, false)]);
        let part = dir.join(".ih.parts");
        let s = Storage::open_selected(&dir, &inf, &[N, S, N], Some(part.clone())).unwrap();
        assert!(dir.join("t/a").exists() && dir.join("t/c").exists());
        assert!(!dir.join("t/b").exists(), "a skipped file is not created");
        assert!(!part.exists(), "no part file before it is needed");
        assert!(!s.is_created(1) && s.is_created(0));
        let data: Vec<u8> = (100..160).collect();
        s.write(0, &data).unwrap();
        assert!(!dir.join("t/b").exists());
        assert!(part.exists());
        let mut back = vec![0; 60];
        s.read(0, &mut back).unwrap();
        // Piece 1 ([16,32)) and piece 2 ([32,48)) read back whole; b's bytes
        // outside the shared pieces ([20,40) is all inside them here).
        assert_eq!(back, data);
        assert!(s.has_data(16, 16));
        assert_eq!(s.stamps().len(), 3);
        assert_eq!(s.stamps()[1], None);
        // Selecting b later: it is created with the bytes of the part file.
        s.want_files(&[N, N, N]).unwrap();
        assert_eq!(std::fs::read(dir.join("t/b")).unwrap(), &data[20..40]);
        assert!(!part.exists(), "every file exists: the part file is gone");
        let mut again = vec![0; 60];
        s.read(0, &mut again).unwrap();
        assert_eq!(again, data);
        // A restart with a new selection copies from the part file too.
        drop(s);
        let dir2 = tmp("select2");
        let part2 = dir2.join(".ih.parts");
        let s2 = Storage::open_selected(&dir2, &inf, &[N, S, S], Some(part2.clone())).unwrap();
        s2.write(0, &data[..48]).unwrap();
        assert!(!dir2.join("t/c").exists());
        drop(s2);
        let s3 = Storage::open_selected(&dir2, &inf, &[N, N, N], Some(part2)).unwrap();
        let mut b = vec![0; 48];
        s3.read(0, &mut b).unwrap();
        assert_eq!(b, &data[..48]);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
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
