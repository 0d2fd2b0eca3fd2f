//! Streaming reads (issue 24): [`Session::file_reader`] opens a
//! [`FileReader`] on one file of a torrent; [`FileReader::read_at`] reads a
//! byte range of it once every piece under the range is verified, waiting
//! for them (at most a timeout).
//!
//! While a reader waits, its position steers the download: the torrent
//! thread gets the piece every reader waits for, or reads next
//! ([`Command::SetReaders`]), and fetches each reader's next pieces by
//! deadline, nearest first, a window per reader sized by the download rate
//! (`torrent::sequence`, as libtorrent's `set_piece_deadline`). A reader
//! that is dropped (the HTTP client went away) releases its position and
//! its window; when no reader is left, the torrent's own order applies
//! again.
//!
//! Waiting is a check of the verified pieces every [`POLL`]: a reader is a
//! player's HTTP connection, a few at a time, and the check is one read
//! lock on the bitfield.

use super::*;
use crate::engine::session::shared::Readers;
use std::time::Instant;

/// The most reader positions that steer a torrent's download (the
/// lowest); readers past them still read, as pieces come.
pub const MAX_READERS: usize = 64;

/// How often a waiting read looks at the verified pieces again.
pub const POLL: Duration = Duration::from_millis(20);

/// A reader of one file of a torrent (see the module's documentation).
/// Dropping it releases its position.
pub struct FileReader {
    session: Weak<Shared>,
    t: Arc<TorrentShared>,
    id: u64,
    /// The file's first byte in the torrent's byte stream.
    start: u64,
    len: u64,
}

impl Session {
    /// A reader of file `index` of a torrent (the index in
    /// [`Session::files`]). [`Error::UnknownTorrent`], [`Error::NoMetadata`],
    /// or [`Error::NoSuchFile`] for an index past the last file (or a pad
    /// file).
    pub fn file_reader(&self, ih: &InfoHash, index: usize) -> Result<FileReader> {
        let t = self.inner.entry(ih)?;
        let (start, len) = match t.metainfo.info.files.get(index) {
            Some(f) if !f.pad => (f.offset, f.length),
            _ => {
                return Err(Error::NoSuchFile {
                    info_hash: *ih,
                    index,
                    files: t.metainfo.info.files.len(),
                })
            }
        };
        let id = {
            let mut r = t.readers.lock();
            r.next_id += 1;
            r.next_id
        };
        Ok(FileReader {
            session: Arc::downgrade(&self.inner.shared),
            t,
            id,
            start,
            len,
        })
    }
}

impl FileReader {
    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fill `buf` from byte `offset` of the file, once every piece under
    /// it is verified; until then this reader's position steers the
    /// download. [`Error::ReadPastEnd`] if the range passes the end of the
    /// file, [`Error::ReadTimeout`] if the pieces are not all verified
    /// within `timeout`, [`Error::UnknownTorrent`] if the torrent is
    /// removed meanwhile, [`Error::Storage`] if the disk read fails.
    pub fn read_at(&self, offset: u64, buf: &mut [u8], timeout: Duration) -> Result<()> {
        let ih = self.t.metainfo.info_hash;
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::ReadPastEnd {
                info_hash: ih,
                offset,
                len: buf.len() as u64,
                file_len: self.len,
            });
        }
        if buf.is_empty() {
            return Ok(());
        }
        let layout = self.t.peer_ctx.layout;
        let at = self.start + offset;
        let first = (at / layout.piece_length) as u32;
        let last = ((at + buf.len() as u64 - 1) / layout.piece_length) as u32;
        let deadline = Instant::now() + timeout;
        loop {
            let missing = {
                let have = self.t.peer_ctx.have.read();
                (first..=last).find(|&i| !have.get(i as usize))
            };
            let Some(piece) = missing else { break };
            self.set_position(Some(piece));
            if Instant::now() >= deadline {
                return Err(Error::ReadTimeout {
                    info_hash: ih,
                    piece,
                });
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
            self.still_there()?;
        }
        self.t
            .peer_ctx
            .storage
            .read(at, buf)
            .map_err(|source| Error::Storage {
                name: self.t.metainfo.info.name.clone(),
                source,
            })?;
        // Read ahead: the next piece is where this reader goes next.
        let next = last + 1;
        let file_last = ((self.start + self.len.max(1) - 1) / layout.piece_length) as u32;
        self.set_position((next <= file_last).then_some(next));
        Ok(())
    }

    /// [`Error::Stopped`] if the session stops, [`Error::UnknownTorrent`]
    /// if the torrent was removed (or removed and added again).
    fn still_there(&self) -> Result<()> {
        let shared = self.session.upgrade().ok_or(Error::Stopped)?;
        if shared.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::Stopped);
        }
        let ih = self.t.metainfo.info_hash;
        let same = shared
            .registry
            .read()
            .get(&ih.0)
            .is_some_and(|t| Arc::ptr_eq(t, &self.t));
        if same {
            Ok(())
        } else {
            Err(Error::UnknownTorrent(ih))
        }
    }

    /// Record where this reader waits (`None`: nowhere) and tell the
    /// torrent thread when the lowest position changes.
    fn set_position(&self, piece: Option<u32>) {
        let mut r = self.t.readers.lock();
        match piece {
            Some(p) => {
                r.at.insert(self.id, p);
            }
            None => {
                r.at.remove(&self.id);
            }
        }
        send_head(&self.t, &mut r);
    }
}

/// Send the readers' positions (ascending, no repeats, at most
/// [`MAX_READERS`]: the lowest) if they changed (under the lock: the
/// commands arrive in the order of the changes).
fn send_head(t: &TorrentShared, r: &mut Readers) {
    let mut at: Vec<u32> = r.at.values().copied().collect();
    at.sort_unstable();
    at.dedup();
    at.truncate(MAX_READERS);
    if at != r.sent {
        r.sent = at.clone();
        let _ = t.commands.send(Command::SetReaders(at));
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        self.set_position(None);
    }
}
