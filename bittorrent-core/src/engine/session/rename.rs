//! Renaming a file or folder of a torrent ([`Session::rename_path`]): on
//! disk, in the file list, and in the state directory (`state::renames`);
//! editing its trackers ([`Session::set_trackers`]).

use super::*;
use crate::engine::storage::safe_fs;
use crate::proto::metainfo::FilePath;
use crate::state::renames;
use std::path::Path;

fn invalid(what: String, why: &str) -> Error {
    Error::io(
        what,
        std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
    )
}

impl Session {
    /// Rename the file or folder `path` of a torrent (elements joined with
    /// `/`, the torrent's name first in a multi-file torrent, as
    /// [`FileStatus::path`](crate::FileStatus) shows it) to `name` (one
    /// path element: not empty, not `.` or `..`, no `/`). Renaming the
    /// first element renames the torrent. What is on disk is renamed (a
    /// file or folder not there yet is just given the new name); the
    /// torrent stops while this happens (its peers are dropped) and goes
    /// on paused or not as before, with its limits, file selection and
    /// resume data (nothing is checked again). The new names are kept in
    /// the state directory: they hold after a restart. The info-hash and
    /// the metadata sent to peers never change. Refused: a name taken by
    /// another file or folder of the torrent or by something on disk, and
    /// v2 or hybrid torrents (their file tree is not renamed yet).
    pub fn rename_path(&self, ih: &InfoHash, path: &str, name: &str) -> Result<()> {
        let what = format!("rename {path}");
        if !renames::safe_element(name) {
            return Err(invalid(
                what,
                "the new name must be one path element (not empty, not . or .., no /)",
            ));
        }
        let old: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        if !old.iter().all(|e| renames::safe_element(e)) {
            return Err(invalid(what, "not a path of the torrent"));
        }
        let inner = &self.inner;
        let t = inner.entry(ih)?;
        if t.metainfo.v2.is_some() {
            return Err(invalid(
                what,
                "renaming the files of a v2 or hybrid torrent is not supported yet",
            ));
        }
        let k = old.len();
        let mut new: Vec<&str> = old.clone();
        new[k - 1] = name;
        let starts = |p: &FilePath, with: &[&str]| {
            let el: Vec<&str> = p.iter().collect();
            el.len() >= with.len() && el[..with.len()] == *with
        };
        let files = &t.metainfo.info.files;
        if !files.iter().any(|f| starts(&f.path, &old)) {
            return Err(invalid(what, "no such file or folder in the torrent"));
        }
        if name == old[k - 1] {
            return Ok(());
        }
        if files.iter().any(|f| starts(&f.path, &new)) {
            return Err(invalid(
                what,
                "the torrent has a file or folder of that name already",
            ));
        }
        let mut m = t.metainfo.clone();
        for f in &mut m.info.files {
            if starts(&f.path, &old) {
                let mut el = f.path.to_vec();
                el[k - 1] = name.to_string();
                f.path = FilePath::from_elements(&el);
            }
        }
        if k == 1 {
            m.info.name = name.to_string();
        }
        let root = t.peer_ctx.storage.root().to_path_buf();
        let from = root.join(old.join("/"));
        let to = root.join(new.join("/"));
        let st = inner.stop_for_restart(&t);
        let renamed = move_on_disk(&root, &from, &to).map_err(|e| Error::io(what, e));
        if renamed.is_err() {
            let m = t.metainfo.clone();
            inner.start_again(t, m, &st, &root)?;
            return renamed;
        }
        if let Some(dir) = inner.state_dir() {
            if let Err(e) = renames::save(dir, &m) {
                log::warn!("{ih}: cannot keep the new names in the state directory: {e}");
            }
        }
        inner.start_again(t, m, &st, &root)?;
        log::info!("{ih}: {path} renamed to {name}");
        Ok(())
    }
}

impl Session {
    /// Make `tiers` a torrent's trackers (BEP 12 tiers, in order; empty
    /// tiers are dropped; at most 200 URLs of at most 2048 bytes, each
    /// `http://`, `https://` or `udp://`). The torrent restarts (its peers
    /// are dropped, its resume data kept; the announcer starts over with
    /// the new list). Kept in the state directory: the list holds after a
    /// restart; the `.torrent` and the info-hash never change.
    pub fn set_trackers(&self, ih: &InfoHash, tiers: Vec<Vec<String>>) -> Result<()> {
        let what = "set the trackers".to_string();
        if tiers.iter().map(Vec::len).sum::<usize>() > renames::MAX_TRACKERS {
            return Err(invalid(what, "more than 200 trackers"));
        }
        for u in tiers.iter().flatten() {
            let scheme_ok = ["http://", "https://", "udp://"]
                .iter()
                .any(|s| u.len() > s.len() && u[..s.len()].eq_ignore_ascii_case(s));
            if !scheme_ok
                || u.len() > renames::MAX_TRACKER_URL
                || u.chars().any(char::is_whitespace)
            {
                return Err(invalid(
                    what,
                    "a tracker is an http://, https:// or udp:// URL (at most 2048 bytes)",
                ));
            }
        }
        let inner = &self.inner;
        let t = inner.entry(ih)?;
        let mut m = t.metainfo.clone();
        renames::set_trackers(&mut m, tiers);
        if m.announce == t.metainfo.announce && m.announce_list == t.metainfo.announce_list {
            return Ok(());
        }
        let root = t.peer_ctx.storage.root().to_path_buf();
        let st = inner.stop_for_restart(&t);
        if let Some(dir) = inner.state_dir() {
            if let Err(e) = renames::save_trackers(dir, ih, &m.announce_list) {
                log::warn!("{ih}: cannot keep the trackers in the state directory: {e}");
            }
        }
        inner.start_again(t, m, &st, &root)?;
        log::info!("{ih}: trackers edited");
        Ok(())
    }
}

/// Rename `from` to `to` (both below `root`, no symbolic link on the way);
/// nothing to do when `from` is not there; never over something.
fn move_on_disk(root: &Path, from: &Path, to: &Path) -> std::io::Result<()> {
    let sym = |e: safe_fs::FsError| std::io::Error::other(e.to_string());
    let there = safe_fs::check(root, from).map_err(sym)?;
    if safe_fs::check(root, to).map_err(sym)? {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists already", to.display()),
        ));
    }
    if !there {
        return Ok(());
    }
    std::fs::rename(from, to)
}
