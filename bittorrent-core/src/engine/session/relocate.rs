//! Restarting a torrent's thread at run time: moving its data to another
//! directory ([`Session::move_data`]) and checking its data again
//! ([`Session::verify`]); and an announce out of schedule
//! ([`Session::reannounce`]).

use super::*;
use std::path::Path;

impl Session {
    /// Save a torrent under `new_dir` from now on. With `move_files`, its
    /// files (and part file) are moved there first (renamed; across file
    /// systems copied with their modification times, then deleted), and its
    /// resume data follows, so nothing is checked again; without, the
    /// torrent looks for its data in `new_dir` (checking what it finds
    /// there). The torrent stops while this happens (its peers are
    /// dropped), then goes on paused or not as before, with its limits and
    /// file selection. `new_dir` must be an absolute path. If a file cannot
    /// be moved the torrent goes on from where it was and the error is
    /// returned (the files already moved stay in `new_dir`).
    pub fn move_data(&self, ih: &InfoHash, new_dir: &Path, move_files: bool) -> Result<()> {
        if !new_dir.is_absolute() {
            return Err(Error::io(
                format!("move to {}", new_dir.display()),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an absolute path"),
            ));
        }
        let inner = &self.inner;
        let t = inner.entry(ih)?;
        let old_dir = t.peer_ctx.storage.root().to_path_buf();
        if old_dir == new_dir {
            return Ok(());
        }
        let st = inner.stop_for_restart(&t);
        let moved = if move_files {
            t.peer_ctx
                .storage
                .move_files(new_dir)
                .map_err(|e| Error::Storage {
                    name: t.metainfo.info.name.clone(),
                    source: e,
                })
        } else {
            Ok(())
        };
        let target = if moved.is_ok() { new_dir } else { &old_dir };
        if let (Ok(()), true, Some(dir)) = (&moved, move_files, inner.state_dir()) {
            // The resume data follows the files.
            let path = dir.join("torrents").join(format!("{ih}.resume"));
            if let Ok(bytes) = std::fs::read(&path) {
                if let Ok(mut r) = crate::proto::resume::ResumeData::decode(&bytes) {
                    r.save_path = new_dir.to_string_lossy().into_owned();
                    if let Err(e) = crate::state::write_atomically(&path, &r.encode()) {
                        log::warn!("{}: {e}; the torrent will be checked", path.display());
                    }
                }
            }
        }
        let m = t.metainfo.clone();
        inner.start_again(t, m, &st, target)?;
        log::info!("{ih}: now saved under {}", target.display());
        moved
    }

    /// Check a torrent's data on disk again, every piece, as at its first
    /// start: the torrent thread stops (its peers are dropped), its resume
    /// data is set aside, and it starts again in phase
    /// [`Phase::Checking`](crate::Phase::Checking) (paused or not as
    /// before, with its limits and file selection;
    /// [`TorrentStatus::checked_pieces`] counts the pieces hashed). Pieces
    /// that no longer match their hash are downloaded again. While the
    /// thread restarts (at most a few seconds) the torrent is missing from
    /// [`Session::torrents`]. [`Error::NoMetadata`] for a magnet link still
    /// fetching its metadata.
    pub fn verify(&self, ih: &InfoHash) -> Result<()> {
        let inner = &self.inner;
        let t = inner.entry(ih)?;
        let st = inner.stop_for_restart(&t);
        if let Some(dir) = inner.state_dir() {
            // Without resume data the start-up check hashes every piece.
            let path = dir.join("torrents").join(format!("{ih}.resume"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("{}: cannot remove it: {e}", path.display()),
            }
        }
        let dir = t.peer_ctx.storage.root().to_path_buf();
        let m = t.metainfo.clone();
        inner.start_again(t, m, &st, &dir)?;
        log::info!("{ih}: checking its data again");
        Ok(())
    }
}

impl Session {
    /// Announce a torrent to its trackers as soon as they allow (their
    /// `min interval` after the last announce) and look it up on the DHT
    /// at once, instead of waiting for the next regular announce. Asking
    /// again within 10 seconds does nothing (no flood). A hybrid torrent's
    /// v2 swarm follows its regular schedule. [`Error::NoMetadata`] for a
    /// magnet link still fetching its metadata.
    pub fn reannounce(&self, ih: &InfoHash) -> Result<()> {
        self.inner.entry(ih)?;
        self.inner.announcer.reannounce(*ih);
        Ok(())
    }
}

impl Inner {
    /// Stop a torrent's thread (its resume data is saved) and forget it;
    /// returns its last status.
    pub(super) fn stop_for_restart(&self, t: &Arc<TorrentShared>) -> TorrentStatus {
        let ih = t.metainfo.info_hash;
        let st = t.status.lock().clone();
        self.shared.registry.write().remove(&ih.0);
        self.shared.torrents_changed();
        self.shared.tracker.disallow(ih);
        self.announcer.remove(ih);
        let handle = {
            let mut th = self.threads.lock();
            let i = th.torrents.iter().position(|(h, _)| *h == ih);
            i.map(|i| th.torrents.remove(i))
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        if t.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        if let Some((_, h)) = handle {
            let _ = h.join();
        }
        st
    }

    /// Start a torrent stopped by `stop_for_restart` again as `metainfo`
    /// (its own, or with files renamed), saved under `dir`, paused or not
    /// as before, with its limits and file selection.
    pub(super) fn start_again(
        self: &Arc<Self>,
        t: Arc<TorrentShared>,
        metainfo: Metainfo,
        st: &TorrentStatus,
        dir: &Path,
    ) -> Result<()> {
        let mut add = AddTorrent::new(metainfo, dir.to_path_buf()).paused(st.paused);
        (add.max_download_rate, add.max_upload_rate) =
            (t.rates.download.rate(), t.rates.upload.rate());
        add.seed_limits = st.seed_limits;
        add.file_priorities = Some(t.priorities.lock().clone());
        drop(t);
        self.add_torrent(add, false)?;
        Ok(())
    }
}
