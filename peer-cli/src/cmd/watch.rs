//! The watch folder of `peer daemon --watch-dir DIR` (or `watch-dir` in
//! `STATE/settings.json`): a `.torrent` or `.magnet` file dropped there is
//! added with the daemon's defaults (saved under the RPC's download
//! directory, started), then renamed `NAME.added` (or deleted with
//! `--watch-dir-delete`); a file that is not a torrent is renamed
//! `NAME.invalid` and the reason logged.
//!
//! One thread scans the folder every [`SCAN_EVERY`]. A file is read only
//! once its size and modification time were the same at two scans in a
//! row and it was last modified [`SETTLE`] ago or more, so a file still
//! being written is not read early. Each scan looks at
//! no more than [`MAX_ENTRIES`] entries, and files larger than their limit
//! are refused unread.

use bittorrent_core::{AddTorrent, Error, Magnet, Metainfo, Session};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// How often the folder is scanned.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);
/// A file is read only once it was last modified at least this long ago
/// (and held still between two scans).
pub const SETTLE: Duration = Duration::from_secs(3);
/// Most directory entries looked at per scan.
pub const MAX_ENTRIES: usize = 1000;
/// Largest `.torrent` file read.
pub const MAX_TORRENT: u64 = crate::fetch::MAX_TORRENT as u64;
/// Largest `.magnet` file read.
pub const MAX_MAGNET: u64 = 64 * 1024;

/// What the watcher does with a file it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Rename it `*.added`.
    Rename,
    /// Delete it.
    Delete,
}

/// The watcher of one folder.
pub struct Watcher {
    dir: PathBuf,
    done: Done,
    /// Size and modification time of each candidate at the last scan.
    last: HashMap<PathBuf, (u64, SystemTime)>,
    /// How long ago a file must have been modified to be read.
    settle: Duration,
}

/// What became of one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Added (or already in the session).
    Added(String),
    /// Not a torrent: the reason.
    Invalid(String),
}

impl Watcher {
    /// A watcher of `dir`.
    pub fn new(dir: PathBuf, done: Done) -> Watcher {
        Watcher {
            dir,
            done,
            last: HashMap::new(),
            settle: SETTLE,
        }
    }

    /// One scan: the files whose size and time held still since the last
    /// scan are handed to `add` and then renamed (or deleted).
    pub fn scan(&mut self, add: &dyn Fn(&Path) -> Outcome) -> Vec<(PathBuf, Outcome)> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("watch folder {}: {e}", self.dir.display());
                return Vec::new();
            }
        };
        let mut now = HashMap::new();
        for e in entries.take(MAX_ENTRIES).flatten() {
            let p = e.path();
            let ext = p
                .extension()
                .and_then(|x| x.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("torrent" | "magnet")) {
                continue;
            }
            // Not following links: a link is a file someone else controls.
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            now.insert(p, (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        }
        let mut out = Vec::new();
        let settled = |t: SystemTime| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|d| d >= self.settle)
        };
        for (p, stamp) in &now {
            if self.last.get(p) != Some(stamp) || !settled(stamp.1) {
                continue;
            }
            let outcome = add(p);
            match &outcome {
                Outcome::Added(what) => {
                    log::info!("watch folder: added {} ({what})", p.display());
                    eprintln!("watch folder: added {} ({what})", p.display());
                    let r = match self.done {
                        Done::Delete => std::fs::remove_file(p),
                        Done::Rename => std::fs::rename(p, suffixed(p, "added")),
                    };
                    if let Err(e) = r {
                        log::warn!("watch folder: {}: {e}", p.display());
                    }
                }
                Outcome::Invalid(why) => {
                    log::warn!("watch folder: {} is not usable: {why}", p.display());
                    eprintln!("watch folder: {} is not usable: {why}", p.display());
                    if let Err(e) = std::fs::rename(p, suffixed(p, "invalid")) {
                        log::warn!("watch folder: {}: {e}", p.display());
                    }
                }
            }
            out.push((p.clone(), outcome));
        }
        for (p, _) in &out {
            now.remove(p);
        }
        self.last = now;
        out
    }
}

/// `a.torrent` -> `a.torrent.SUFFIX`.
fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// Add one file of the folder to the session, saved under `dir`.
pub fn add_file(session: &Session, path: &Path, dir: &Path) -> Outcome {
    let is_magnet = path
        .extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("magnet"));
    let limit = if is_magnet { MAX_MAGNET } else { MAX_TORRENT };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limit => {
            return Outcome::Invalid(format!("larger than {limit} bytes"));
        }
        Ok(_) => {}
        Err(e) => return Outcome::Invalid(e.to_string()),
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let add = if is_magnet {
        let text = String::from_utf8_lossy(&bytes);
        let uri = text.trim();
        match Magnet::parse(uri) {
            Ok(m) => AddTorrent::magnet(m, dir),
            Err(e) => return Outcome::Invalid(format!("not a magnet link: {e}")),
        }
    } else {
        match Metainfo::from_bytes(&bytes) {
            Ok(mi) => AddTorrent::new(mi, dir).torrent_bytes(bytes),
            Err(e) => return Outcome::Invalid(format!("not a torrent: {e}")),
        }
    };
    let ih = add.source.info_hash();
    match session.add(add) {
        Ok(_) => Outcome::Added(ih.to_hex()),
        Err(Error::AlreadyAdded(_)) => Outcome::Added(format!("{} was already there", ih.to_hex())),
        Err(e) => Outcome::Invalid(e.to_string()),
    }
}

/// Start the watch folder's thread; it ends when `stop` is set or the
/// session is gone.
pub fn spawn(
    dir: PathBuf,
    done: Done,
    session: Weak<Session>,
    download_dir: Arc<dyn Fn() -> PathBuf + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("watch folder".into())
        .spawn(move || {
            let mut w = Watcher::new(dir, done);
            while !stop.load(Ordering::SeqCst) {
                let Some(session) = session.upgrade() else {
                    return;
                };
                let target = download_dir();
                w.scan(&|p| add_file(&session, p, &target));
                drop(session);
                std::thread::sleep(SCAN_EVERY);
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_file_is_taken_once_it_holds_still() {
        let dir = std::env::temp_dir().join(format!("peer-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut w = Watcher::new(dir.clone(), Done::Rename);
        w.settle = Duration::ZERO;
        let seen = RefCell::new(Vec::new());
        let add = |p: &Path| {
            seen.borrow_mut().push(p.to_path_buf());
            if p.to_string_lossy().contains("bad") {
                Outcome::Invalid("bad".into())
            } else {
                Outcome::Added("x".into())
            }
        };
        std::fs::write(dir.join("a.torrent"), b"part").expect("write");
        std::fs::write(dir.join("bad.magnet"), b"nope").expect("write");
        std::fs::write(dir.join("other.txt"), b"x").expect("write");
        // First scan: only noted.
        assert!(w.scan(&add).is_empty());
        // Still being written: noted again, not taken.
        std::fs::write(dir.join("a.torrent"), b"partly more").expect("write");
        let out = w.scan(&add);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(dir.join("bad.magnet.invalid").exists());
        let out = w.scan(&add);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(dir.join("a.torrent.added").exists());
        assert!(dir.join("other.txt").exists());
        assert_eq!(seen.borrow().len(), 2);
        assert!(w.scan(&add).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
