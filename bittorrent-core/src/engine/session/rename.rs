//! Renaming a file or folder of a torrent ([`Session::rename_path`]): on
//! disk, in the file list, and in the state directory (`state::renames`).

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
