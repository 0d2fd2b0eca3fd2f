//! A torrent's renamed files in the state directory, `torrents/<ih>.paths`:
//! a bencoded list, the torrent's name first, then every file's path
//! (elements joined with `/`, pad files included) in torrent order. The
//! `.torrent` keeps its original bytes (the info-hash and what peers are
//! sent never change); these names are laid over its file list when the
//! torrent is added; `state::torrents::remove` forgets them with the torrent.

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

/// Lay the saved names over `m` (nothing when there are none). A file
/// that does not fit `m` (another count of files, an unsafe path) is
/// ignored with a warning: the torrent keeps its original names.
pub(crate) fn apply(dir: &Path, m: &mut Metainfo) {
    let path = file(dir, &m.info_hash);
    let bytes = match std::fs::metadata(&path) {
        Ok(md) if md.len() <= MAX_PATHS_FILE => match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => return log::warn!("{}: {e}", path.display()),
        },
        Ok(_) => return log::warn!("{}: too large, ignored", path.display()),
        Err(_) => return,
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
