//! Files below a download directory, never through a symlink.
//!
//! A torrent's files live under its save directory. Someone with write
//! access there could plant `DIR/data.bin -> /home/me/.bashrc` or
//! `DIR/sub -> /etc`: following such a link would write (or delete) outside
//! the directory. So every path below the root is walked component by
//! component with `symlink_metadata` before it is created, opened or
//! deleted, and the last component is opened with `O_NOFOLLOW` (an `ELOOP`
//! from the kernel, if a link appears between the check and the open, is
//! reported the same way). The root itself (the directory the user chose)
//! may be a symlink.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What went wrong below the root.
#[derive(Debug)]
pub enum FsError {
    /// `path` (a component below the root) is a symbolic link.
    Symlink(PathBuf),
    /// `op` on `path` failed.
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsError::Symlink(p) => write!(
                f,
                "{} is a symbolic link: refusing to follow it out of the download directory",
                p.display()
            ),
            FsError::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
        }
    }
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> FsError {
    // ELOOP from O_NOFOLLOW: the last component is a symlink.
    if source.raw_os_error() == Some(libc::ELOOP) {
        return FsError::Symlink(path.to_path_buf());
    }
    FsError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The existing components of `path` below `root` (each prefix, in order).
fn prefixes<'a>(root: &'a Path, path: &'a Path) -> impl Iterator<Item = PathBuf> + 'a {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut cur = root.to_path_buf();
    rel.components().map(move |c| {
        cur.push(c);
        cur.clone()
    })
}

/// Check that no component of `path` below `root` is a symlink. Components
/// that do not exist yet are fine. Returns whether the whole path exists.
pub fn check(root: &Path, path: &Path) -> Result<bool, FsError> {
    for p in prefixes(root, path) {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Err(FsError::Symlink(p)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&p, "stat", e)),
        }
    }
    Ok(true)
}

/// Create the directories of `dir` below `root`, one at a time, refusing
/// symlinks among them.
pub fn create_dirs(root: &Path, dir: &Path) -> Result<(), FsError> {
    if !root.exists() {
        std::fs::create_dir_all(root).map_err(|e| io_err(root, "create directory", e))?;
    }
    for p in prefixes(root, dir) {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Err(FsError::Symlink(p)),
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io_err(
                    &p,
                    "create directory",
                    io::Error::other("a file is in the way"),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Raced with another creator: check what is there now.
                    let m = std::fs::symlink_metadata(&p).map_err(|e| io_err(&p, "stat", e))?;
                    if m.file_type().is_symlink() {
                        return Err(FsError::Symlink(p));
                    }
                }
                Err(e) => return Err(io_err(&p, "create directory", e)),
            },
            Err(e) => return Err(io_err(&p, "stat", e)),
        }
    }
    Ok(())
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read only; a missing file is `Ok(None)`.
    Read,
    /// Read and write, creating the file (and its directories) if missing.
    Write,
}

/// Open `path` (below `root`) without following any symlink. With
/// `Mode::Read` a missing file gives `Ok(None)`; a file we may not write is
/// opened read-only (`writable` false) in either mode.
pub fn open(root: &Path, path: &Path, mode: Mode) -> Result<Option<(File, bool)>, FsError> {
    let exists = check(root, path)?;
    if !exists {
        if mode == Mode::Read {
            return Ok(None);
        }
        if let Some(parent) = path.parent() {
            create_dirs(root, parent)?;
        }
    }
    let mut o = OpenOptions::new();
    o.read(true)
        .write(true)
        .create(mode == Mode::Write)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW);
    match o.open(path) {
        Ok(f) => Ok(Some((f, true))),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| io_err(path, "open", e))?;
            Ok(Some((f, false)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && mode == Mode::Read => Ok(None),
        Err(e) => Err(io_err(path, "open", e)),
    }
}

/// Delete the file `path` below `root` (a missing file is fine), never
/// through a symlink: a symlink anywhere on the way (the file itself
/// included) is left alone and reported.
pub fn remove_file(root: &Path, path: &Path) -> Result<(), FsError> {
    if !check(root, path)? {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "delete", e)),
    }
}

/// Remove the empty directories from `dir` up to (not including) `root`,
/// never through a symlink.
pub fn remove_empty_dirs(root: &Path, dir: &Path) {
    let mut d = Some(dir);
    while let Some(p) = d {
        if p == root || !p.starts_with(root) || check(root, p).is_err() {
            return;
        }
        if std::fs::remove_dir(p).is_err() {
            return;
        }
        d = p.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("peer-safefs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_symlink_is_refused_and_victim_untouched() {
        let d = tmp("file");
        let root = d.join("dl");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(d.join("victim"), b"secret").unwrap();
        symlink(d.join("victim"), root.join("data.bin")).unwrap();
        let err = open(&root, &root.join("data.bin"), Mode::Write).unwrap_err();
        assert!(matches!(&err, FsError::Symlink(p) if p == &root.join("data.bin")));
        assert!(err.to_string().contains("data.bin"));
        assert!(remove_file(&root, &root.join("data.bin")).is_err());
        assert_eq!(std::fs::read(d.join("victim")).unwrap(), b"secret");
        assert!(root.join("data.bin").symlink_metadata().is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dir_symlink_is_refused() {
        let d = tmp("dir");
        let root = d.join("dl");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(d.join("outside")).unwrap();
        symlink(d.join("outside"), root.join("sub")).unwrap();
        let p = root.join("sub/deeper/f");
        let err = open(&root, &p, Mode::Write).unwrap_err();
        assert!(matches!(&err, FsError::Symlink(l) if l == &root.join("sub")));
        assert!(std::fs::read_dir(d.join("outside"))
            .unwrap()
            .next()
            .is_none());
        std::fs::write(d.join("outside/f"), b"x").unwrap();
        assert!(remove_file(&root, &root.join("sub/f")).is_err());
        assert!(d.join("outside/f").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn plain_paths_work_and_root_may_be_a_link() {
        let d = tmp("plain");
        std::fs::create_dir_all(d.join("real")).unwrap();
        symlink(d.join("real"), d.join("root")).unwrap();
        let root = d.join("root");
        assert!(open(&root, &root.join("a/b/c"), Mode::Read)
            .unwrap()
            .is_none());
        let (f, w) = open(&root, &root.join("a/b/c"), Mode::Write)
            .unwrap()
            .unwrap();
        assert!(w);
        drop(f);
        assert!(d.join("real/a/b/c").exists());
        remove_file(&root, &root.join("a/b/c")).unwrap();
        remove_empty_dirs(&root, &root.join("a/b"));
        assert!(!d.join("real/a").exists());
        assert!(d.join("real").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
