//! The part file: where bytes of files that are not wanted go when they
//! share a piece with a wanted file.
//!
//! A piece is verified as a whole, so a wanted file's first and last piece
//! must be downloaded whole even when part of it belongs to a skipped file.
//! Those bytes are kept here, never in the skipped file (which is not
//! created): `<save path>/.<info-hash>.parts`. Only *shared pieces* (pieces
//! holding bytes of two or more files, [`selection::shared_pieces`]) have
//! room in it: shared piece number `k` (in torrent order) is stored at
//! offset `k × piece length`, so the layout depends on the torrent alone
//! and the file needs no index. The file is created on the first write
//! only, sparse, and holds at most about two pieces per file.
//!
//! When a skipped file is selected later, the storage copies its bytes out
//! of the part file into the new file before using it (see
//! `Storage::want_files`), so a piece verified earlier stays verified.
//!
//! [`selection::shared_pieces`]: crate::engine::torrent::selection::shared_pieces

use crate::engine::storage::storage_error::{io_err, StorageError};
use crate::proto::metainfo::Info;
use parking_lot::RwLock;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A torrent's part file (created lazily).
#[derive(Debug)]
pub struct PartFile {
    path: PathBuf,
    piece_length: u64,
    /// The shared pieces, in order; slot `k` holds `slots[k]`.
    slots: Vec<u32>,
    file: RwLock<Option<File>>,
}

impl PartFile {
    /// The part file of `info` at `path` (opened if it exists, else
    /// created on the first write).
    pub fn new(path: PathBuf, info: &Info) -> PartFile {
        // Never through a symbolic link planted in the download directory.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok();
        PartFile {
            path,
            piece_length: info.piece_length,
            slots: crate::engine::torrent::selection::shared_pieces(info),
            file: RwLock::new(file),
        }
    }

    /// Where it is.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether piece `piece` has room here (it is a shared piece).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn covers(&self, piece: u32) -> bool {
        self.slots.binary_search(&piece).is_ok()
    }

    /// The pieces with room here.
    pub fn pieces(&self) -> &[u32] {
        &self.slots
    }

    /// `[offset, offset + len)` of the torrent cut at piece boundaries:
    /// (position in the part file or `None` if that piece has no room,
    /// length, offset in the caller's buffer).
    fn spans(&self, offset: u64, len: u64) -> Vec<(Option<u64>, u64, u64)> {
        let mut out = Vec::new();
        let mut at = offset;
        let end = offset + len;
        let pl = self.piece_length.max(1);
        while at < end {
            let piece = at / pl;
            let piece_end = ((piece + 1) * pl).min(end);
            let slot = u32::try_from(piece)
                .ok()
                .and_then(|p| self.slots.binary_search(&p).ok());
            let pos = slot.map(|k| k as u64 * pl + (at - piece * pl));
            out.push((pos, piece_end - at, at - offset));
            at = piece_end;
        }
        out
    }

    /// Whether every byte of the range has room here.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn covers_range(&self, offset: u64, len: u64) -> bool {
        self.spans(offset, len)
            .iter()
            .all(|(pos, _, _)| pos.is_some())
    }

    fn open_for_write(&self) -> Result<(), StorageError> {
        if self.file.read().is_some() {
            return Ok(());
        }
        let mut w = self.file.write();
        if w.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", e))?;
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
                .map_err(|e| io_err(&self.path, "create", e))?;
            *w = Some(f);
        }
        Ok(())
    }

    /// Write the bytes of torrent range `[offset, offset + data.len())`.
    /// Bytes of pieces without room here are dropped (nothing wants them).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let spans = self.spans(offset, data.len() as u64);
        if spans.iter().all(|(pos, _, _)| pos.is_none()) {
            return Ok(());
        }
        self.open_for_write()?;
        let r = self.file.read();
        let Some(file) = r.as_ref() else {
            return Ok(());
        };
        for (pos, len, buf_at) in spans {
            if let Some(pos) = pos {
                let part = &data[buf_at as usize..(buf_at + len) as usize];
                file.write_all_at(part, pos)
                    .map_err(|e| io_err(&self.path, "write", e))?;
            }
        }
        Ok(())
    }

    /// Fill `buf` from torrent offset `offset`; what was never written
    /// reads as zeros.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        buf.fill(0);
        let r = self.file.read();
        let Some(file) = r.as_ref() else {
            return Ok(());
        };
        for (pos, len, buf_at) in self.spans(offset, buf.len() as u64) {
            if let Some(mut pos) = pos {
                let mut part = &mut buf[buf_at as usize..(buf_at + len) as usize];
                while !part.is_empty() {
                    match file.read_at(part, pos) {
                        Ok(0) => break,
                        Ok(n) => {
                            part = &mut part[n..];
                            pos += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_err(&self.path, "read", e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether anything may have been written in the range (a cheap test
    /// to skip hashing pieces of a new download).
    pub fn has_data(&self, offset: u64, len: u64) -> bool {
        let r = self.file.read();
        let Some(m) = r.as_ref().and_then(|f| f.metadata().ok()) else {
            return false;
        };
        self.spans(offset, len)
            .iter()
            .any(|(pos, _, _)| pos.is_some_and(|p| m.len() > p && m.blocks() > 0))
    }

    /// Flush it to disk (if it exists).
    pub fn sync(&self) -> Result<(), StorageError> {
        if let Some(f) = self.file.read().as_ref() {
            f.sync_data().map_err(|e| io_err(&self.path, "sync", e))?;
        }
        Ok(())
    }

    /// Size and modification time, for the resume data (`None` if absent).
    pub fn stamp(&self) -> Option<crate::proto::resume::FileStamp> {
        std::fs::metadata(&self.path)
            .ok()
            .map(|m| crate::proto::resume::FileStamp {
                length: m.len(),
                mtime: m.mtime(),
                mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
            })
    }

    /// Delete it (when nothing needs it any more).
    pub fn remove(&self) -> Result<(), StorageError> {
        let mut w = self.file.write();
        *w = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.path, "remove", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files `t/f0`, `t/f1`, ... of these lengths (the shared test fixture).
    fn info(files: &[u64], piece_length: u64) -> Info {
        let names: Vec<String> = (0..files.len()).map(|i| format!("t/f{i}")).collect();
        let spec: Vec<(&str, u64, bool)> = names
            .iter()
            .zip(files)
            .map(|(n, l)| (n.as_str(), *l, false))
            .collect();
        crate::proto::metainfo::test_info(&spec, piece_length)
    }

    #[test]
    fn stores_only_shared_pieces_compactly() {
        let dir = std::env::temp_dir().join(format!("peer-partfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Files of 20, 20, 40 bytes in pieces of 16: pieces 1 and 2 shared.
        let inf = info(&[20, 20, 40], 16);
        let p = PartFile::new(dir.join(".x.parts"), &inf);
        assert_eq!(p.pieces(), &[1, 2]);
        assert!(!p.path().exists(), "created only on the first write");
        assert!(!p.has_data(16, 16));
        // A write to an unshared piece is dropped and creates nothing.
        p.write(0, &[9; 16]).unwrap();
        assert!(!p.path().exists());
        // Bytes 18..40 span pieces 1 and 2.
        let data: Vec<u8> = (18..40).collect();
        p.write(18, &data).unwrap();
        assert!(p.path().exists());
        assert!(std::fs::metadata(p.path()).unwrap().len() <= 32);
        let mut back = vec![0xff; 22];
        p.read(18, &mut back).unwrap();
        assert_eq!(back, data);
        let mut zeros = vec![0xff; 4];
        p.read(0, &mut zeros).unwrap();
        assert_eq!(zeros, [0; 4]);
        assert!(p.has_data(16, 16));
        assert!(p.covers_range(16, 32));
        assert!(!p.covers_range(0, 20));
        assert!(p.stamp().is_some());
        p.remove().unwrap();
        assert!(!p.path().exists());
        let mut after = vec![0xff; 22];
        p.read(18, &mut after).unwrap();
        assert_eq!(after, [0; 22]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
