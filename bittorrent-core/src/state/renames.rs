//! A torrent's renamed files in the state directory, `torrents/<ih>.paths`:
//! a bencoded list, the torrent's name first, then every file's path
//! (elements joined with `/`, pad files included) in torrent order. The
//! `.torrent` keeps its original bytes (the info-hash and what peers are
//! sent never change); these names are laid over its file list when the
//! torrent is added; `state::torrents::remove` forgets them with the torrent.
//! Edited tracker lists (`Session::set_trackers`) are kept the same way in
//! `torrents/<ih>.trackers`.

use crate::proto::bencode::{self, OwnedValue};
use crate::proto::metainfo::{FilePath, InfoHash, Metainfo};
use crate::state::write_atomically;
use std::io;
use std::path::{Path, PathBuf};

/// At most this many bytes are read from a `.paths` file.
const MAX_PATHS_FILE: u64 = 64 << 20;

fn file(dir: &Path, ih: &InfoHash) -> PathBuf {
    dir.join("torrents").join(format!("{ih}.paths"))
}

/// Write the names of `m` (its name and file paths).
pub(crate) fn save(dir: &Path, m: &Metainfo) -> io::Result<()> {
    let mut l = Vec::with_capacity(m.info.files.len() + 1);
    l.push(OwnedValue::bytes(&m.info.name));
    l.extend(
        m.info
            .files
            .iter()
            .map(|f| OwnedValue::bytes(f.path.as_str())),
    );
    write_atomically(&file(dir, &m.info_hash), &OwnedValue::List(l).to_bytes())
}

/// Whether a torrent has renamed names.
pub(crate) fn exists(dir: &Path, ih: &InfoHash) -> bool {
    file(dir, ih).exists()
}

/// The bytes of `path` when it exists and is at most `MAX_PATHS_FILE` long
/// (an unreadable or oversized file: a warning, and `None`).
fn read_small(path: &Path) -> Option<Vec<u8>> {
    match std::fs::metadata(path) {
        Ok(md) if md.len() <= MAX_PATHS_FILE => std::fs::read(path)
            .map_err(|e| log::warn!("{}: {e}", path.display()))
            .ok(),
        Ok(_) => {
            log::warn!("{}: too large, ignored", path.display());
            None
        }
        Err(_) => None,
    }
}

/// Lay the saved names over `m` (nothing when there are none). A file
/// that does not fit `m` (another count of files, an unsafe path) is
/// ignored with a warning: the torrent keeps its original names.
pub(crate) fn apply(dir: &Path, m: &mut Metainfo) {
    let path = file(dir, &m.info_hash);
    let Some(bytes) = read_small(&path) else {
        return;
    };
    match parse(&bytes, m) {
        Some((name, paths)) => {
            m.info.name = name;
            for (f, p) in m.info.files.iter_mut().zip(paths) {
                f.path = p;
            }
        }
        None => log::warn!("{}: does not fit the torrent, ignored", path.display()),
    }
}

fn parse(bytes: &[u8], m: &Metainfo) -> Option<(String, Vec<FilePath>)> {
    let v = bencode::decode(bytes).ok()?;
    let l = v.as_list()?;
    let (name, files) = l.split_first()?;
    if files.len() != m.info.files.len() {
        return None;
    }
    let name = name.as_str()?.to_string();
    if !safe_element(&name) {
        return None;
    }
    let mut paths = Vec::with_capacity(files.len());
    for (f, old) in files.iter().zip(&m.info.files) {
        let p = f.as_str()?;
        if !p.split('/').all(safe_element) || p.split('/').count() != old.path.len() {
            return None;
        }
        paths.push(FilePath::from_elements(p.split('/')));
    }
    Some((name, paths))
}

/// A name usable as one path element: not empty, not `.` or `..`, no `/`,
/// `\` or NUL.
pub(crate) fn safe_element(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// At most this many trackers in a torrent's edited list.
pub(crate) const MAX_TRACKERS: usize = 200;
/// At most this many bytes per tracker URL.
pub(crate) const MAX_TRACKER_URL: usize = 2048;

fn trackers_file(dir: &Path, ih: &InfoHash) -> PathBuf {
    dir.join("torrents").join(format!("{ih}.trackers"))
}

/// Write a torrent's edited tracker tiers (`<ih>.trackers`, a bencoded
/// list of lists of URLs).
pub(crate) fn save_trackers(dir: &Path, ih: &InfoHash, tiers: &[Vec<String>]) -> io::Result<()> {
    let l = tiers
        .iter()
        .map(|t| OwnedValue::List(t.iter().map(OwnedValue::bytes).collect()))
        .collect();
    write_atomically(&trackers_file(dir, ih), &OwnedValue::List(l).to_bytes())
}

/// Lay the edited tracker tiers over `m` (nothing when there are none; a
/// file that cannot be read is ignored with a warning).
pub(crate) fn apply_trackers(dir: &Path, m: &mut Metainfo) {
    let path = trackers_file(dir, &m.info_hash);
    let Some(bytes) = read_small(&path) else {
        return;
    };
    let tiers = bencode::decode(&bytes).ok().and_then(|v| {
        v.as_list()?
            .iter()
            .map(|t| {
                t.as_list()?
                    .iter()
                    .map(|u| u.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
            })
            .collect::<Option<Vec<Vec<String>>>>()
    });
    match tiers {
        Some(t) if t.iter().map(Vec::len).sum::<usize>() <= MAX_TRACKERS => set_trackers(m, t),
        _ => log::warn!("{}: not a tracker list, ignored", path.display()),
    }
}

/// Make `tiers` the trackers of `m` (`announce` is the first URL).
pub(crate) fn set_trackers(m: &mut Metainfo, tiers: Vec<Vec<String>>) {
    let tiers: Vec<Vec<String>> = tiers.into_iter().filter(|t| !t.is_empty()).collect();
    m.announce = tiers.first().and_then(|t| t.first()).cloned();
    m.announce_list = tiers;
}
