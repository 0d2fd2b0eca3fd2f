//! Moving a torrent's data to another directory at run time
//! ([`Session::move_data`]).

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
        let st = t.status.lock().clone();
        // Stop the torrent thread (its resume data is saved) and forget it.
        inner.shared.registry.write().remove(&ih.0);
        inner.shared.tracker.disallow(*ih);
        inner.announcer.remove(*ih);
        let handle = {
            let mut th = inner.threads.lock();
            let i = th.torrents.iter().position(|(h, _)| h == ih);
            i.map(|i| th.torrents.remove(i))
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        if t.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        if let Some((_, h)) = handle {
            let _ = h.join();
        }
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
        let mut add = AddTorrent::new(t.metainfo.clone(), target.to_path_buf()).paused(st.paused);
        (add.max_download_rate, add.max_upload_rate) =
            (t.rates.download.rate(), t.rates.upload.rate());
        add.seed_limits = st.seed_limits;
        add.file_priorities = Some(t.priorities.lock().clone());
        drop(t);
        inner.add_torrent(add, false)?;
        log::info!("{ih}: now saved under {}", target.display());
        moved
    }
}
