//! Creating `.torrent` files (BEP 3, with BEP 12 `announce-list`, BEP 19
//! `url-list` and BEP 27 `private`; v2 and hybrid torrents of BEP 52 in the
//! `v2` submodule, chosen by [`CreateOptions::format`]).
//!
//! [`create_torrent`] walks a file or a directory, hashes its bytes as one
//! stream cut into pieces, and returns the canonical bencoding of the
//! metainfo. Hashing is spread over several threads: each worker owns a
//! contiguous range of pieces and reads its bytes with positional reads
//! (`read_at`), so no worker ever waits for another.
//!
//! # Layout rules
//!
//! * A single regular file gives a single-file torrent (`length`).
//! * A directory gives a multi-file torrent (`files`), walked recursively.
//!   Files are ordered by their relative path compared component by
//!   component as bytes, so the same tree always gives the same torrent.
//!   Hidden files and empty files are included; only non-regular files
//!   (sockets, FIFOs, devices) are skipped.
//! * Symbolic links: the `path` given to [`create_torrent`] is followed.
//!   Inside a directory, a link to a regular file is followed (the file's
//!   bytes are shared under the link's name); links to directories are not
//!   followed (that could loop or leave the tree) and dangling links are
//!   skipped; both are logged at `warn` level.
//! * Every path component must be valid UTF-8 ([`CreateError::NotUtf8Path`]).
//! * A torrent with no bytes at all (empty directory, or only empty files)
//!   is refused ([`CreateError::Empty`]).

use crate::proto::bencode::OwnedValue;
use crate::proto::metainfo::{normalize_announce_url, InfoHash};
use std::fmt;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Smallest piece length accepted and chosen: 16 KiB.
pub const MIN_PIECE_LENGTH: u64 = 16 * 1024;
/// Largest piece length chosen automatically: 16 MiB.
pub const MAX_AUTO_PIECE_LENGTH: u64 = 16 * 1024 * 1024;
/// Largest piece length accepted when given explicitly: 1 GiB.
pub const MAX_PIECE_LENGTH: u64 = 1024 * 1024 * 1024;
/// The automatic piece length aims for at most this many pieces.
const TARGET_MAX_PIECES: u64 = 2000;
/// Size of each positional read done by a hashing worker.
const READ_BUF: usize = 1024 * 1024;
/// How often the progress callback is called while hashing.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What to put in the torrent besides the hashed data.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Tracker URLs (a bare `IP:PORT` becomes `http://IP:PORT/announce`).
    /// The first goes into `announce`; with more than one, all of them go
    /// into `announce-list`, one tier per URL (BEP 12).
    pub announce: Vec<String>,
    /// Bytes per piece: a power of two, at least 16 KiB. `None` chooses one
    /// with [`auto_piece_length`].
    pub piece_length: Option<u64>,
    /// Set the BEP 27 `private` flag.
    pub private: bool,
    /// `comment`.
    pub comment: Option<String>,
    /// BEP 19 web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    /// `created by`; defaults to `peer/<version>`.
    pub created_by: Option<String>,
    /// `creation date` in seconds since the epoch; defaults to now.
    pub creation_date: Option<i64>,
    /// Hashing threads; defaults to the number of available cores.
    pub threads: Option<usize>,
    /// v1 (the default), v2-only or hybrid (BEP 52).
    pub format: TorrentFormat,
}

/// Which kind of torrent to create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TorrentFormat {
    /// BitTorrent v1: SHA-1 pieces over the files as one stream.
    #[default]
    V1,
    /// BitTorrent v2 only (BEP 52): a `file tree` with per-file SHA-256
    /// merkle roots and `piece layers`.
    V2,
    /// Both (BEP 52 hybrid): the v2 fields plus a v1 view whose files are
    /// aligned to pieces by BEP 47 pad files.
    Hybrid,
}

/// Why a torrent could not be created.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading `path` (or its metadata, or a directory listing) failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// There is nothing to share: an empty directory, or only empty files.
    Empty {
        /// The path given to [`create_torrent`].
        path: PathBuf,
    },
    /// The piece length is not a power of two between 16 KiB and 1 GiB.
    InvalidPieceLength(u64),
    /// A file or directory name is not valid UTF-8.
    NotUtf8Path(PathBuf),
    /// The path is neither a regular file nor a directory.
    NotAFile(PathBuf),
    /// The path has no usable final component to name the torrent after.
    NoName(PathBuf),
    /// A file changed size while it was being hashed.
    FileChanged {
        /// The file that changed.
        path: PathBuf,
        /// Its size when the tree was scanned.
        expected: u64,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            CreateError::Empty { path } => write!(
                f,
                "{}: nothing to share (empty directory, or only empty files)",
                path.display()
            ),
            CreateError::InvalidPieceLength(n) => write!(
                f,
                "invalid piece length {n}: must be a power of two from 16 KiB to 1 GiB"
            ),
            CreateError::NotUtf8Path(p) => {
                write!(f, "{}: file name is not valid UTF-8", p.display())
            }
            CreateError::NotAFile(p) => {
                write!(f, "{}: not a regular file or directory", p.display())
            }
            CreateError::NoName(p) => write!(f, "{}: cannot name a torrent after it", p.display()),
            CreateError::FileChanged { path, expected } => write!(
                f,
                "{}: file changed size while hashing (was {expected} bytes)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CreateError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The piece length chosen when none is given: the smallest power of two
/// from 16 KiB to 16 MiB that cuts `total` bytes into at most 2000 pieces
/// (so, between the clamps, 1001 to 2000 pieces).
pub fn auto_piece_length(total: u64) -> u64 {
    let mut len = MIN_PIECE_LENGTH;
    while len < MAX_AUTO_PIECE_LENGTH && total.div_ceil(len) > TARGET_MAX_PIECES {
        len *= 2;
    }
    len
}

/// Check an explicitly given piece length: a power of two from 16 KiB to 1 GiB.
pub fn validate_piece_length(len: u64) -> Result<u64, CreateError> {
    if len.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&len) {
        Ok(len)
    } else {
        Err(CreateError::InvalidPieceLength(len))
    }
}

/// The info-hash of `.torrent` bytes: SHA-1 of the raw `info` dictionary.
/// `None` if the bytes do not decode or have no `info` dictionary.
pub fn info_hash_of(torrent: &[u8]) -> Option<InfoHash> {
    let doc = crate::proto::bencode::decode(torrent).ok()?;
    let info = doc.get(b"info")?.as_dict()?;
    Some(InfoHash(sha1_smol::Sha1::from(info.raw).digest().bytes()))
}

/// One file of the torrent, as found on disk.
#[derive(Debug)]
struct SourceFile {
    /// Where to read it.
    disk_path: PathBuf,
    /// Path components below the torrent root (empty for a single file).
    rel: Vec<String>,
    /// Size when scanned.
    length: u64,
    /// Offset of its first byte in the torrent's byte stream.
    offset: u64,
}

/// Create a `.torrent` for `path` (a file or a directory) and return its
/// canonical bencoding.
///
/// `progress(done, total)` is called from the calling thread about ten
/// times a second while hashing, then once with `done == total`.
pub fn create_torrent(
    path: &Path,
    opts: &CreateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<u8>, CreateError> {
    let piece_length = opts.piece_length.map(validate_piece_length).transpose()?;
    let name = torrent_name(path)?;
    let (files, multi_file) = scan(path)?;
    let total = files.iter().map(|f| f.length).sum::<u64>();
    if total == 0 {
        return Err(CreateError::Empty {
            path: path.to_path_buf(),
        });
    }
    let piece_length = piece_length.unwrap_or_else(|| auto_piece_length(total));
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    if opts.format != TorrentFormat::V1 {
        let hybrid = opts.format == TorrentFormat::Hybrid;
        let h = v2::hash(&files, piece_length, threads, hybrid, multi_file, progress)?;
        check_unchanged(&files)?;
        let info = v2::info_dict(
            &name,
            piece_length,
            &files,
            multi_file,
            opts.private,
            &h,
            hybrid,
        );
        let mut torrent = torrent_dict(info, opts);
        if let OwnedValue::Dict(d) = &mut torrent {
            d.push((key("piece layers"), v2::piece_layers(&h)));
        }
        return Ok(torrent.to_bytes());
    }
    let pieces = hash_pieces(&files, piece_length, threads, progress)?;
    check_unchanged(&files)?;
    let info = info_dict(
        &name,
        piece_length,
        &pieces,
        &files,
        multi_file,
        opts.private,
    );
    Ok(torrent_dict(info, opts).to_bytes())
}

/// The torrent's name: the last component of `path` (or of its canonical
/// form for `.` and `..`).
fn torrent_name(path: &Path) -> Result<String, CreateError> {
    let canonical;
    let file_name = match path.file_name() {
        Some(n) => n,
        None => {
            canonical = fs::canonicalize(path).map_err(io_err(path))?;
            canonical
                .file_name()
                .ok_or_else(|| CreateError::NoName(path.to_path_buf()))?
        }
    };
    file_name
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| CreateError::NotUtf8Path(path.to_path_buf()))
}

/// List the files to share, with their offsets; `true` for a directory.
fn scan(path: &Path) -> Result<(Vec<SourceFile>, bool), CreateError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let (mut files, multi) = if meta.is_file() {
        let file = SourceFile {
            disk_path: path.to_path_buf(),
            rel: Vec::new(),
            length: meta.len(),
            offset: 0,
        };
        (vec![file], false)
    } else if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut Vec::new(), &mut files)?;
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        (files, true)
    } else {
        return Err(CreateError::NotAFile(path.to_path_buf()));
    };
    let mut offset = 0u64;
    for f in &mut files {
        f.offset = offset;
        offset += f.length;
    }
    Ok((files, multi))
}

/// Recursively collect the regular files below `dir` (see the module docs
/// for what is followed and what is skipped).
fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<SourceFile>) -> Result<(), CreateError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| CreateError::NotUtf8Path(path.clone()))?;
        let file_type = entry.file_type().map_err(io_err(&path))?;
        rel.push(name);
        if file_type.is_dir() {
            walk(&path, rel, out)?;
        } else if file_type.is_file() {
            let length = entry.metadata().map_err(io_err(&path))?.len();
            push_file(out, path, rel, length);
        } else if file_type.is_symlink() {
            follow_link(path, rel, out);
        } else {
            log::warn!("skipping {}: not a regular file", path.display());
        }
        rel.pop();
    }
    Ok(())
}

fn push_file(out: &mut Vec<SourceFile>, disk_path: PathBuf, rel: &[String], length: u64) {
    out.push(SourceFile {
        disk_path,
        rel: rel.to_vec(),
        length,
        offset: 0,
    });
}

/// Include a symlink's target if it is a regular file; skip it otherwise.
fn follow_link(path: PathBuf, rel: &[String], out: &mut Vec<SourceFile>) {
    match fs::metadata(&path) {
        Ok(m) if m.is_file() => push_file(out, path, rel, m.len()),
        Ok(m) if m.is_dir() => {
            log::warn!("skipping {}: symlink to a directory", path.display())
        }
        Ok(_) => log::warn!("skipping {}: symlink to a special file", path.display()),
        Err(e) => log::warn!("skipping {}: dangling symlink ({e})", path.display()),
    }
}

/// After hashing, every file must still have the size it was scanned with.
fn check_unchanged(files: &[SourceFile]) -> Result<(), CreateError> {
    for f in files {
        let now = fs::metadata(&f.disk_path)
            .map_err(io_err(&f.disk_path))?
            .len();
        if now != f.length {
            return Err(changed(f));
        }
    }
    Ok(())
}

fn changed(f: &SourceFile) -> CreateError {
    CreateError::FileChanged {
        path: f.disk_path.clone(),
        expected: f.length,
    }
}

/// SHA-1 of every piece of the byte stream formed by `files`, computed by
/// up to `threads` workers each owning a contiguous range of pieces.
fn hash_pieces(
    files: &[SourceFile],
    piece_length: u64,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<[u8; 20]>, CreateError> {
    let total = files.iter().map(|f| f.length).sum::<u64>();
    let num_pieces = usize::try_from(total.div_ceil(piece_length)).unwrap_or(usize::MAX);
    let mut pieces = vec![[0u8; 20]; num_pieces];
    let per_worker = num_pieces.div_ceil(threads.clamp(1, num_pieces.max(1)));
    let shared = Shared {
        files,
        piece_length,
        total,
        done: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    };
    let results = std::thread::scope(|s| {
        let (alive_tx, alive_rx) = crossbeam_channel::bounded::<()>(0);
        let handles: Vec<_> = pieces
            .chunks_mut(per_worker)
            .enumerate()
            .map(|(i, out)| {
                let shared = &shared;
                let alive = alive_tx.clone();
                s.spawn(move || {
                    let r = shared.hash_range(i * per_worker, out);
                    if r.is_err() {
                        shared.failed.store(true, Ordering::Relaxed);
                    }
                    drop(alive);
                    r
                })
            })
            .collect();
        drop(alive_tx);
        // Every worker holds a sender; the channel disconnects when all end.
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            alive_rx.recv_timeout(PROGRESS_INTERVAL)
        {
            progress(shared.done.load(Ordering::Relaxed), total);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<_>>()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    progress(total, total);
    Ok(pieces)
}

/// What all hashing workers share.
struct Shared<'a> {
    files: &'a [SourceFile],
    piece_length: u64,
    total: u64,
    /// Bytes hashed so far, all workers together.
    done: AtomicU64,
    /// Set by a worker that failed, so that the others stop early.
    failed: AtomicBool,
}

impl Shared<'_> {
    /// Hash pieces `first..first + out.len()` into `out`.
    fn hash_range(&self, first: usize, out: &mut [[u8; 20]]) -> Result<(), CreateError> {
        let start = first as u64 * self.piece_length;
        let end = (start + out.len() as u64 * self.piece_length).min(self.total);
        let mut reader = RangeReader::new(self.files, start);
        let mut hasher = PieceHasher::new(self.piece_length, out);
        let mut buf = vec![0u8; READ_BUF];
        let mut pos = start;
        while pos < end {
            if self.failed.load(Ordering::Relaxed) {
                return Ok(()); // another worker's error is reported instead
            }
            let want = usize::try_from(end - pos).map_or(READ_BUF, |r| r.min(READ_BUF));
            reader.read_exact(&mut buf[..want])?;
            hasher.feed(&buf[..want]);
            pos += want as u64;
            self.done.fetch_add(want as u64, Ordering::Relaxed);
        }
        hasher.finish();
        Ok(())
    }
}

/// Reads the torrent's byte stream sequentially from a given offset,
/// crossing file boundaries, with positional reads on one open file at a time.
struct RangeReader<'a> {
    files: &'a [SourceFile],
    /// Index of the file holding `pos`.
    index: usize,
    /// Absolute position in the byte stream.
    pos: u64,
    /// The open file `index`, if opened yet.
    open: Option<File>,
}

impl<'a> RangeReader<'a> {
    fn new(files: &'a [SourceFile], pos: u64) -> RangeReader<'a> {
        // The last file whose offset is <= pos (zero-length files are skipped
        // by `read_exact` as it advances).
        let index = files.partition_point(|f| f.offset <= pos).saturating_sub(1);
        RangeReader {
            files,
            index,
            pos,
            open: None,
        }
    }

    /// Fill `buf` from the current position, moving across files as needed.
    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), CreateError> {
        while !buf.is_empty() {
            let Some(f) = self.files.get(self.index) else {
                return Err(self.past_the_end());
            };
            let in_file = self.pos - f.offset;
            if in_file >= f.length {
                self.index += 1;
                self.open = None;
                continue;
            }
            let n = usize::try_from(f.length - in_file).map_or(buf.len(), |r| r.min(buf.len()));
            let (now, rest) = buf.split_at_mut(n);
            self.read_in_file(now, in_file)?;
            self.pos += n as u64;
            buf = rest;
        }
        Ok(())
    }

    /// Reading beyond the last file: callers only ask for bytes the scan
    /// counted, so this cannot happen unless the file list is inconsistent.
    fn past_the_end(&self) -> CreateError {
        let path = self.files.last().map(|f| f.disk_path.clone());
        CreateError::Io {
            path: path.unwrap_or_default(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the last file",
            ),
        }
    }

    /// Fill `buf` from offset `at` of the current file.
    fn read_in_file(&mut self, buf: &mut [u8], at: u64) -> Result<(), CreateError> {
        let f = &self.files[self.index];
        let file = match &mut self.open {
            Some(file) => file,
            slot => slot.insert(File::open(&f.disk_path).map_err(io_err(&f.disk_path))?),
        };
        match file.read_exact_at(buf, at) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(changed(f)),
            Err(e) => Err(io_err(&f.disk_path)(e)),
        }
    }
}

/// Cuts a stream of bytes into pieces and writes each piece's SHA-1.
struct PieceHasher<'a> {
    piece_length: u64,
    out: &'a mut [[u8; 20]],
    next: usize,
    sha: sha1_smol::Sha1,
    /// Bytes of the current piece hashed so far.
    filled: u64,
}

impl<'a> PieceHasher<'a> {
    fn new(piece_length: u64, out: &'a mut [[u8; 20]]) -> PieceHasher<'a> {
        PieceHasher {
            piece_length,
            out,
            next: 0,
            sha: sha1_smol::Sha1::new(),
            filled: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.piece_length - self.filled;
            let n = usize::try_from(room).map_or(data.len(), |r| r.min(data.len()));
            self.sha.update(&data[..n]);
            self.filled += n as u64;
            data = &data[n..];
            if self.filled == self.piece_length {
                self.finish_piece();
            }
        }
    }

    fn finish_piece(&mut self) {
        if let Some(slot) = self.out.get_mut(self.next) {
            *slot = self.sha.digest().bytes();
        }
        self.next += 1;
        self.sha.reset();
        self.filled = 0;
    }

    /// Hash the short last piece, if any.
    fn finish(mut self) {
        if self.filled > 0 {
            self.finish_piece();
        }
    }
}

fn int(n: u64) -> OwnedValue {
    OwnedValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn key(k: &str) -> Vec<u8> {
    k.as_bytes().to_vec()
}

/// The `info` dictionary.
fn info_dict(
    name: &str,
    piece_length: u64,
    pieces: &[[u8; 20]],
    files: &[SourceFile],
    multi_file: bool,
    private: bool,
) -> OwnedValue {
    let mut d = vec![
        (key("name"), OwnedValue::bytes(name)),
        (key("piece length"), int(piece_length)),
        (key("pieces"), OwnedValue::Bytes(pieces.concat())),
    ];
    if multi_file {
        let list = files.iter().map(file_entry).collect();
        d.push((key("files"), OwnedValue::List(list)));
    } else {
        d.push((key("length"), int(files.iter().map(|f| f.length).sum())));
    }
    if private {
        d.push((key("private"), OwnedValue::Int(1)));
    }
    OwnedValue::Dict(d)
}

fn file_entry(f: &SourceFile) -> OwnedValue {
    let path = f.rel.iter().map(OwnedValue::bytes).collect();
    OwnedValue::Dict(vec![
        (key("length"), int(f.length)),
        (key("path"), OwnedValue::List(path)),
    ])
}

/// The top-level dictionary around `info`.
fn torrent_dict(info: OwnedValue, opts: &CreateOptions) -> OwnedValue {
    let announce: Vec<String> = opts
        .announce
        .iter()
        .map(|a| normalize_announce_url(a))
        .collect();
    let mut d = vec![(key("info"), info)];
    if let Some(first) = announce.first() {
        d.push((key("announce"), OwnedValue::bytes(first)));
    }
    if announce.len() > 1 {
        let tiers = announce
            .iter()
            .map(|a| OwnedValue::List(vec![OwnedValue::bytes(a)]))
            .collect();
        d.push((key("announce-list"), OwnedValue::List(tiers)));
    }
    match opts.web_seeds.as_slice() {
        [] => {}
        [one] => d.push((key("url-list"), OwnedValue::bytes(one))),
        many => {
            let list = many.iter().map(OwnedValue::bytes).collect();
            d.push((key("url-list"), OwnedValue::List(list)));
        }
    }
    if let Some(c) = &opts.comment {
        d.push((key("comment"), OwnedValue::bytes(c)));
    }
    let created_by = opts
        .created_by
        .clone()
        .unwrap_or_else(|| format!("peer/{}", env!("CARGO_PKG_VERSION")));
    d.push((key("created by"), OwnedValue::bytes(created_by)));
    let date = opts.creation_date.unwrap_or_else(now_secs);
    d.push((key("creation date"), OwnedValue::Int(date)));
    OwnedValue::Dict(d)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

mod v2;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
