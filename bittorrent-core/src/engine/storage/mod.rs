//! Storage: a torrent's files on disk, addressed as one byte stream.
//!
//! A file is created at its full size when its first block is written, not
//! when the torrent is added, with its blocks reserved
//! (`preallocate`) unless that is off; a missing file
//! reads as zeros.
//! Blocks are written at their offset with positional I/O
//! (`FileExt::write_at`), so a piece spanning several files is just several
//! writes. Pad files (BEP 47) are never created: they read as zeros and
//! writes to them are dropped. Zero-length files are created at open.
//!
//! Handles come from the process-wide [`FilePool`](crate::engine::storage::file_pool): at
//! most a bounded number of files are open at once, least recently used
//! closed first, so a torrent of thousands of files fits the usual
//! descriptor limit. Every path is opened, created and deleted through
//! [`safe_fs`]: no component below the download directory
//! may be a symbolic link (`StorageError::Symlink` names it).
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

// The rest of this room.
pub(crate) mod disk_writer;
pub mod file_pool;
pub mod hasher;
pub(crate) mod partfile;
pub mod piece_buffer;
pub(crate) mod preallocate;
mod relocate;
pub mod safe_fs;
pub(crate) mod storage_error;
pub(crate) mod writeback;

use crate::engine::storage::file_pool::FilePool;
use crate::engine::storage::partfile::PartFile;
use crate::engine::storage::preallocate::Reserved;
use crate::engine::storage::safe_fs::{FsError, Mode};
use crate::engine::torrent::selection::FilePriority;
use crate::proto::metainfo::Info;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::engine::storage::storage_error::io_err;
pub use crate::engine::storage::storage_error::StorageError;

fn fs_err(e: FsError) -> StorageError {
    match e {
        FsError::Symlink(p) => StorageError::Symlink(p),
        FsError::Io { path, op, source } => io_err(&path, op, source),
    }
}

#[derive(Debug)]
struct StorageFile {
    path: PathBuf,
    offset: u64,
    length: u64,
    /// A pad file: never on disk.
    pad: bool,
    /// Whether the file itself holds its bytes (wanted, found on disk, or
    /// the torrent has no part file). When false, its bytes in pieces
    /// shared with wanted files live in the part file. Turned on (never off)
    /// by `want_files`, only after the part file's bytes were copied in.
    use_file: AtomicBool,
}

impl StorageFile {
    /// Whether it holds data on disk (not a pad file, not empty).
    fn has_bytes(&self) -> bool {
        !self.pad && self.length > 0
    }
}

/// Blocks (16 KiB each at most) per positional write of `write_blocks`:
/// two. The kernel sizes the page-cache folios it allocates by the write:
/// 1 MiB writes make 1 MiB folios, 256 KiB writes 256 KiB ones. On a
/// virtual machine that hands free memory back to its host (as this one
/// does) such high-order pages are faulted in again from the host, and a
/// 1 GiB download paid 2.3 to 2.8 s of system time in 1 MiB or 256 KiB
/// writes against 0.6 s in 16 KiB writes (`scripts/bench-transfer.sh`,
/// same run; `dd` shows the same). 32 KiB writes halve the system calls
/// of 16 KiB ones and cost less again (the torrent thread's CPU, median of
/// 4 alternating runs: 0.38 s per GiB against 0.50 s); 64 KiB writes were
/// back in the expensive range (0.8 to 1.5 s).
const WRITE_CHUNK_PARTS: usize = 2;

/// A torrent's files.
pub struct Storage {
    files: Vec<StorageFile>,
    #[allow(dead_code)] // not used by the engine yet
    total_length: u64,
    piece_length: u64,
    root: PathBuf,
    /// Our keys in the file pool.
    id: u64,
    pool: &'static FilePool,
    /// Files written since the last `sync`.
    dirty: Mutex<BTreeSet<usize>>,
    /// Bytes written since the last early write-back kick (`writeback`).
    unkicked: AtomicU64,
    /// Where bytes of files not created go (shared pieces only).
    part: Option<PartFile>,
    /// Reserve the blocks of files created for writing (`preallocate`).
    preallocate: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root)
            .field("files", &self.files.len())
            .finish()
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.pool.close_storage(self.id);
    }
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
    /// The files of `info` under `dir`. Nothing is opened and only
    /// zero-length files are created (the others are created when first
    /// written); if that fails, what was created is removed again. A path
    /// with a symbolic link below `dir` is refused. Existing files are never
    /// truncated; a file that cannot be opened for writing is read
    /// read-only (enough to seed).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
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
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut files = Vec::with_capacity(info.files.len());
        for f in &info.files {
            let path = safe_join(&root, &f.path.to_vec())?;
            if !f.pad {
                safe_fs::check(&root, &path).map_err(fs_err)?;
            }
            files.push(StorageFile {
                path,
                offset: f.offset,
                length: f.length,
                pad: f.pad,
                use_file: AtomicBool::new(false),
            });
        }
        let storage = Storage {
            files,
            total_length: info.total_length,
            piece_length: info.piece_length,
            root,
            id: file_pool::next_storage_id(),
            pool: file_pool::global(),
            dirty: Mutex::new(BTreeSet::new()),
            unkicked: AtomicU64::new(0),
            part: part.map(|p| PartFile::new(p, info)),
            preallocate: true,
        };
        for (i, f) in storage.files.iter().enumerate() {
            let wanted = priorities.get(i).is_none_or(|p| p.is_wanted());
            let found = !f.pad && matches!(safe_fs::check(&storage.root, &f.path), Ok(true));
            if wanted || storage.part.is_none() || found {
                f.use_file.store(true, Ordering::Release);
            }
        }
        storage.create_empty_files()?;
        Ok(storage)
    }

    /// Whether files created for writing get their blocks reserved
    /// (`preallocate`; on by default).
    pub fn with_preallocation(mut self, on: bool) -> Storage {
        self.preallocate = on;
        self
    }

    /// Extend file `f`, just opened for writing, to its full length:
    /// reserving its blocks when preallocation is on and the file system
    /// allows, else sparse.
    fn extend(&self, file: &File, f: &StorageFile) -> Result<(), StorageError> {
        if self.preallocate {
            match preallocate::reserve(file, f.length) {
                Reserved::Yes => return Ok(()),
                Reserved::Skipped => {}
                Reserved::NoRoom { needed, free } => log::warn!(
                    "not enough free space to reserve {} ({needed} bytes needed, {free} free): \
                     writing it sparse",
                    f.path.display()
                ),
                Reserved::Failed(e) => {
                    log::debug!("preallocate {}: {e}; writing it sparse", f.path.display())
                }
            }
        }
        file.set_len(f.length)
            .map_err(|e| io_err(&f.path, "preallocate", e))
    }

    /// Create the zero-length files (they are never written); on failure,
    /// remove the ones created here.
    fn create_empty_files(&self) -> Result<(), StorageError> {
        let mut created: Vec<&Path> = Vec::new();
        let mut result = Ok(());
        for f in self
            .files
            .iter()
            .filter(|f| !f.pad && f.length == 0 && f.use_file.load(Ordering::Acquire))
        {
            match safe_fs::check(&self.root, &f.path) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    result = Err(fs_err(e));
                    break;
                }
            }
            match safe_fs::open(&self.root, &f.path, Mode::Write) {
                Ok(_) => created.push(&f.path),
                Err(e) => {
                    result = Err(fs_err(e));
                    break;
                }
            }
        }
        if result.is_err() {
            for p in created {
                let _ = safe_fs::remove_file(&self.root, p);
                if let Some(parent) = p.parent() {
                    safe_fs::remove_empty_dirs(&self.root, parent);
                }
            }
        }
        result
    }

    /// The handle of file `i` from the pool, opening it if needed. `None`:
    /// it does not exist yet (only when not `write`).
    fn handle(&self, i: usize, write: bool) -> Result<Option<std::sync::Arc<File>>, StorageError> {
        let f = &self.files[i];
        let got = self.pool.get((self.id, i), write, || {
            let mode = if write { Mode::Write } else { Mode::Read };
            let Some((file, writable)) =
                safe_fs::open(&self.root, &f.path, mode).map_err(fs_err)?
            else {
                return Ok(None);
            };
            if writable {
                let cur = file
                    .metadata()
                    .map_err(|e| io_err(&f.path, "stat", e))?
                    .len();
                if cur < f.length {
                    self.extend(&file, f)?;
                }
            }
            Ok(Some((file, writable)))
        })?;
        match got {
            Some((_, false)) if write => Err(io_err(
                &f.path,
                "write",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            )),
            Some((file, _)) => Ok(Some(file)),
            None => Ok(None),
        }
    }

    /// Make file `i` hold its own bytes: create it (through the pool) and
    /// copy in what the part file holds of it, then switch readers to it.
    /// Only the torrent thread (or `open`) calls this, so nothing writes
    /// meanwhile; readers use the part file until the switch.
    fn materialize(&self, i: usize) -> Result<(), StorageError> {
        let f = &self.files[i];
        if f.length > 0 {
            if let Some(part) = &self.part {
                let mut buf = Vec::new();
                for (s, len) in self.part_spans(f) {
                    buf.resize(len as usize, 0);
                    part.read(s, &mut buf)?;
                    if buf.iter().any(|&b| b != 0) {
                        let Some(file) = self.handle(i, true)? else {
                            continue;
                        };
                        self.dirty.lock().insert(i);
                        file.write_all_at(&buf, s - f.offset)
                            .map_err(|e| io_err(&f.path, "write", e))?;
                    }
                }
            }
        } else if !f.pad {
            safe_fs::open(&self.root, &f.path, Mode::Write).map_err(fs_err)?;
        }
        f.use_file.store(true, Ordering::Release);
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
            if wanted && !f.pad && !f.use_file.load(Ordering::Acquire) {
                self.materialize(i)?;
            }
        }
        if let Some(part) = &self.part {
            let all = self
                .files
                .iter()
                .all(|f| f.pad || f.use_file.load(Ordering::Acquire));
            if all {
                part.remove()?;
            }
        }
        Ok(())
    }

    /// Whether file `i` (an index into `info.files`) is a file of its own
    /// for this torrent (wanted or found; created on its first write), not
    /// kept in the part file.
    pub fn is_created(&self, i: usize) -> bool {
        self.files
            .get(i)
            .is_some_and(|f| !f.pad && f.use_file.load(Ordering::Acquire))
    }

    /// The part file's size and modification time (`None` if there is none).
    pub fn part_stamp(&self) -> Option<crate::proto::resume::FileStamp> {
        self.part.as_ref().and_then(|p| p.stamp())
    }

    /// The directory the files live under (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Size and modification time of every file (pad files excluded), as
    /// they are on disk now; `None` for a file that is missing.
    pub fn stamps(&self) -> Vec<Option<crate::proto::resume::FileStamp>> {
        self.files
            .iter()
            .filter(|f| !f.pad)
            .map(|f| {
                std::fs::symlink_metadata(&f.path)
                    .ok()
                    .map(|m| crate::proto::resume::FileStamp {
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
    fn spans(&self, offset: u64, len: u64) -> impl Iterator<Item = (usize, u64, u64, u64)> + '_ {
        // (file index, offset in file, length, offset in the caller's buffer)
        let start = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        let end = offset + len;
        self.files[start..]
            .iter()
            .enumerate()
            .take_while(move |(_, f)| f.offset < end)
            .filter(|(_, f)| f.has_bytes())
            .map(move |(i, f)| {
                let s = offset.max(f.offset);
                let e = end.min(f.offset + f.length);
                (start + i, s - f.offset, e - s, s - offset)
            })
    }

    /// Write `data` at torrent offset `offset` (creating files as needed).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        for (i, at, len, buf_at) in self.spans(offset, data.len() as u64) {
            let f = &self.files[i];
            let part = &data[buf_at as usize..(buf_at + len) as usize];
            if f.use_file.load(Ordering::Acquire) {
                let Some(file) = self.handle(i, true)? else {
                    continue;
                };
                self.dirty.lock().insert(i);
                file.write_all_at(part, at)
                    .map_err(|e| io_err(&f.path, "write", e))?;
                self.written(&file, len);
            } else if let Some(p) = &self.part {
                // A file not created: its bytes in shared pieces.
                p.write(f.offset + at, part)?;
            }
        }
        Ok(())
    }

    /// Count `len` bytes just written to `file`; every
    /// `writeback::WRITEBACK_EVERY` bytes, start flushing that file in the
    /// background so that the sync before a resume save (and the one at
    /// completion) finds little left to write.
    fn written(&self, file: &std::sync::Arc<File>, len: u64) {
        let before = self.unkicked.fetch_add(len, Ordering::Relaxed);
        if before + len >= writeback::WRITEBACK_EVERY {
            self.unkicked.store(0, Ordering::Relaxed);
            writeback::kick(file.clone());
        }
    }

    /// Write consecutive `blocks` (a verified piece, as received) at torrent
    /// offset `offset`: positional writes of `WRITE_CHUNK_PARTS` blocks
    /// (vectored, `pwritev`, when more than one), so the blocks are never
    /// copied into one buffer.
    pub fn write_blocks(&self, offset: u64, blocks: &[Vec<u8>]) -> Result<(), StorageError> {
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        for (i, at, len, buf_at) in self.spans(offset, total) {
            let (start, end) = (buf_at, buf_at + len);
            if !self.files[i].use_file.load(Ordering::Acquire) {
                // A file not created: its bytes in shared pieces go to the
                // part file, block by block.
                let Some(p) = &self.part else {
                    continue;
                };
                let mut pos = 0u64;
                for b in blocks {
                    let bl = b.len() as u64;
                    let (s, e) = (start.max(pos), end.min(pos + bl));
                    if s < e {
                        p.write(offset + s, &b[(s - pos) as usize..(e - pos) as usize])?;
                    }
                    pos += bl;
                }
                continue;
            }
            let Some(file) = self.handle(i, true)? else {
                continue;
            };
            self.dirty.lock().insert(i);
            let mut parts: Vec<&[u8]> = Vec::with_capacity(blocks.len());
            let mut pos = 0u64;
            for b in blocks {
                let bl = b.len() as u64;
                let (s, e) = (start.max(pos), end.min(pos + bl));
                if s < e {
                    parts.push(&b[(s - pos) as usize..(e - pos) as usize]);
                }
                pos += bl;
                if pos >= end {
                    break;
                }
            }
            // WRITE_CHUNK_PARTS blocks per write (see there).
            let mut pos = at;
            for chunk in parts.chunks(WRITE_CHUNK_PARTS) {
                write_all_vectored_at(&file, chunk, pos)
                    .map_err(|e| io_err(&self.files[i].path, "write", e))?;
                pos += chunk.iter().map(|p| p.len() as u64).sum::<u64>();
            }
            self.written(&file, len);
        }
        Ok(())
    }

    /// Fill `buf` from torrent offset `offset`. Pad files, files not
    /// created yet and bytes past the end of a short file read as zeros.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        // Only what no file fills is zeroed (pad files, missing files, past
        // the end of a file): zeroing the whole buffer first cost uploads
        // 3 % of their CPU.
        let mut done = 0;
        for (i, at, len, buf_at) in self.spans(offset, buf.len() as u64) {
            let (from, to) = (buf_at as usize, (buf_at + len) as usize);
            buf[done..from].fill(0);
            done = to;
            let f = &self.files[i];
            let part = &mut buf[from..to];
            if f.use_file.load(Ordering::Acquire) {
                match self.handle(i, false)? {
                    Some(file) => {
                        read_full_at(&file, part, at).map_err(|e| io_err(&f.path, "read", e))?
                    }
                    None => part.fill(0),
                }
            } else if let Some(p) = &self.part {
                p.read(f.offset + at, part)?;
            } else {
                part.fill(0);
            }
        }
        buf[done..].fill(0);
        Ok(())
    }

    /// Whether any byte of the range lies in a file that exists with data
    /// (a cheap test to skip hashing pieces of a brand-new download). A
    /// symbolic link is not a file with data.
    pub fn has_data(&self, offset: u64, len: u64) -> bool {
        self.spans(offset, len).any(|(i, at, l, _)| {
            let f = &self.files[i];
            if f.use_file.load(Ordering::Acquire) {
                std::fs::symlink_metadata(&f.path)
                    .is_ok_and(|m| m.is_file() && m.len() > at && m.blocks() > 0)
            } else {
                self.part
                    .as_ref()
                    .is_some_and(|p| p.has_data(f.offset + at, l))
            }
        })
    }

    /// Flush the data written since the last sync to disk (files closed by
    /// the pool in between are opened again for this).
    pub fn sync(&self) -> Result<(), StorageError> {
        let dirty: Vec<usize> = self.dirty.lock().iter().copied().collect();
        for i in dirty {
            if let Some(file) = self.handle(i, false)? {
                file.sync_data()
                    .map_err(|e| io_err(&self.files[i].path, "sync", e))?;
            }
            self.dirty.lock().remove(&i);
        }
        if let Some(p) = &self.part {
            p.sync()?;
        }
        Ok(())
    }

    /// Delete the torrent's files and the directories left empty below the
    /// download directory, never through a symbolic link: a path with one
    /// is left alone and reported (the first such error is returned, after
    /// everything else was deleted).
    pub fn remove_files(&self) -> Result<(), StorageError> {
        self.pool.close_storage(self.id);
        let mut first_err = None;
        if let Some(p) = &self.part {
            if let Err(e) = p.remove() {
                first_err = Some(e);
            }
        }
        for f in self.files.iter().filter(|f| !f.pad) {
            match safe_fs::remove_file(&self.root, &f.path) {
                Ok(()) => {
                    if let Some(parent) = f.path.parent() {
                        safe_fs::remove_empty_dirs(&self.root, parent);
                    }
                }
                Err(e) => {
                    log::warn!("not deleting {}: {e}", f.path.display());
                    first_err.get_or_insert(fs_err(e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

use std::os::unix::fs::MetadataExt;

/// Most buffers passed to one `pwritev` (Linux's `IOV_MAX` is 1024).
const MAX_IOV: usize = 512;

/// `pwritev` until every byte of `parts` is written at `at`.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut at: u64) -> std::io::Result<()> {
    use std::io::IoSlice;
    if let [one] = parts {
        // One slice: a plain positional write, nothing to allocate.
        return file.write_all_at(one, at);
    }
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let mut first = 0; // index of the first part not completely written
    while first < parts.len() {
        let iov: Vec<IoSlice<'_>> = parts[first..]
            .iter()
            .take(MAX_IOV)
            .map(|p| IoSlice::new(p))
            .collect();
        let off = i64::try_from(at).map_err(|_| std::io::Error::other("offset too large"))?;
        match nix::sys::uio::pwritev(file, &iov, off) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                at += n as u64;
                while n > 0 {
                    let p = parts[first];
                    if n >= p.len() {
                        n -= p.len();
                        first += 1;
                    } else {
                        parts[first] = &p[n..];
                        n = 0;
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from_raw_os_error(e as i32)),
        }
    }
    Ok(())
}

fn read_full_at(file: &File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, at) {
            Ok(0) => {
                // Past EOF (a file not written that far yet): zeros.
                buf.fill(0);
                return Ok(());
            }
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
    use crate::proto::metainfo::Info;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("peer-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn info(files: &[(&str, u64, bool)]) -> Info {
        crate::proto::metainfo::test_info(files, 16)
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
    fn files_are_created_when_first_written() {
        let dir = tmp("lazy");
        let inf = info(&[
            ("t/a", 20, false),
            ("t/sub/b", 12, false),
            ("t/e", 0, false),
        ]);
        let s = Storage::open(&dir, &inf).unwrap();
        assert!(!dir.join("t/a").exists() && !dir.join("t/sub").exists());
        assert!(dir.join("t/e").exists(), "empty files exist at once");
        let mut buf = [1u8; 32];
        s.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 32]);
        assert!(!s.has_data(0, 32));
        s.write(25, &[7; 2]).unwrap();
        assert!(!dir.join("t/a").exists());
        assert_eq!(std::fs::read(dir.join("t/sub/b")).unwrap()[5..7], [7, 7]);
        // Missing file, then data, then past the end of the file: zeros
        // wherever no byte was written, whatever the buffer held.
        let mut buf = [9u8; 32];
        s.read(0, &mut buf).unwrap();
        let mut want = [0u8; 32];
        want[25..27].copy_from_slice(&[7, 7]);
        assert_eq!(buf, want);
        s.sync().unwrap();
        assert!(s.has_data(16, 16));
        s.remove_files().unwrap();
        assert!(!dir.join("t").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn created_files_are_preallocated_unless_turned_off() {
        use std::os::unix::fs::MetadataExt;
        let len = 1u64 << 20;
        for on in [true, false] {
            let dir = tmp(&format!("prealloc-{on}"));
            let inf = info(&[("t/a", len, false)]);
            let s = Storage::open(&dir, &inf).unwrap().with_preallocation(on);
            s.write(0, &[5; 16]).unwrap();
            let path = dir.join("t/a");
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.len(), len, "full length either way");
            let allocated = meta.blocks() * 512;
            let probe = std::fs::File::create(dir.join("probe")).unwrap();
            match crate::engine::storage::preallocate::reserve(&probe, 4096) {
                // this file system preallocates (not tmpfs)
                Reserved::Yes if on => assert!(allocated >= len, "{allocated} bytes allocated"),
                Reserved::Yes => assert!(allocated < len, "sparse: {allocated} bytes allocated"),
                other => eprintln!("no preallocation on this file system: {other:?}"),
            }
            assert_eq!(std::fs::read(&path).unwrap()[..16], [5; 16]);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn vectored_block_writes_span_files_and_pads() {
        let dir = tmp("blocks");
        let inf = info(&[("t/a", 10, false), ("t/pad", 6, true), ("t/c", 20, false)]);
        let s = Storage::open(&dir, &inf).unwrap();
        let data: Vec<u8> = (100..136).collect();
        // Uneven blocks, crossing both file boundaries.
        let blocks: Vec<Vec<u8>> = vec![
            data[..7].to_vec(),
            data[7..30].to_vec(),
            data[30..].to_vec(),
        ];
        s.write_blocks(0, &blocks).unwrap();
        assert_eq!(std::fs::read(dir.join("t/a")).unwrap(), &data[..10]);
        assert_eq!(std::fs::read(dir.join("t/c")).unwrap(), &data[16..]);
        // At an offset inside the second file.
        s.write_blocks(20, &[vec![1, 2], vec![3]]).unwrap();
        assert_eq!(&std::fs::read(dir.join("t/c")).unwrap()[4..7], &[1, 2, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_below_the_root_are_refused() {
        use std::os::unix::fs::symlink;
        let dir = tmp("links");
        let outside = tmp("links-outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(dir.join("t")).unwrap();
        std::fs::write(outside.join("victim"), b"keep me").unwrap();
        // A file symlink: refused at open, naming the path.
        symlink(outside.join("victim"), dir.join("t/a")).unwrap();
        let inf = info(&[("t/a", 20, false)]);
        let err = Storage::open(&dir, &inf).unwrap_err();
        assert!(
            matches!(&err, StorageError::Symlink(p) if p.ends_with("t/a")),
            "{err}"
        );
        assert!(err.to_string().contains("t/a"));
        // Planted after open: the write fails, the victim is untouched.
        std::fs::remove_file(dir.join("t/a")).unwrap();
        let s = Storage::open(&dir, &inf).unwrap();
        symlink(outside.join("victim"), dir.join("t/a")).unwrap();
        let err = s.write(0, &[0; 20]).unwrap_err();
        assert!(matches!(err, StorageError::Symlink(_)), "{err}");
        // A directory symlink: nothing is created through it, and deleting
        // never follows it.
        let inf2 = info(&[("t/d/x", 20, false)]);
        let s2 = Storage::open(&dir, &inf2).unwrap();
        symlink(&outside, dir.join("t/d")).unwrap();
        assert!(matches!(
            s2.write(0, &[1; 20]),
            Err(StorageError::Symlink(_))
        ));
        std::fs::write(outside.join("x"), b"mine").unwrap();
        assert!(s2.remove_files().is_err());
        assert!(s.remove_files().is_err());
        assert_eq!(std::fs::read(outside.join("x")).unwrap(), b"mine");
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
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
