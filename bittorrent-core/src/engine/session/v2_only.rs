//! v2-only torrents (BEP 52 without v1 `pieces`) given as a complete
//! `.torrent` file, in the engine.
//!
//! Every non-empty file of a v2 torrent starts a piece, so the engine
//! transfers the torrent's piece-aligned view
//! ([`crate::proto::metainfo::v2::aligned_view`]): the files with an
//! implicit pad entry after each file's last piece (never written to disk,
//! read as zeros, as a hybrid's pad files). Each piece is verified against its SHA-256 piece-layer hash,
//! or the file's root for a file of one piece
//! ([`crate::proto::metainfo::V2Info::piece_check`]). The wire uses the v2
//! info-hash truncated to 20 bytes (the torrent's `info_hash`) and our
//! handshake sets BEP 52's upgrade bit. Piece layers the `.torrent` does
//! not carry are fetched first with hash requests by a metadata thread
//! (`engine::torrent::layers`), as after a `btmh` magnet link.

use super::*;
use crate::proto::metainfo::{v2, Format, Info, Metainfo, MetainfoError};

/// A v2-only torrent some of whose piece layers are missing (a `.torrent`
/// without `piece layers`): they are fetched from peers before it is
/// added (`add::add_fetching`).
pub(super) fn lacks_layers(m: &Metainfo) -> bool {
    m.format() == Format::V2 && m.v2.as_deref().is_some_and(|t| t.missing_layers() > 0)
}

/// Replace a v2-only torrent's `info` by its piece-aligned view and return
/// the view it had (the files as listed, whose indices the caller's file
/// priorities use); `None` for v1 and hybrid torrents, left as they are.
pub(super) fn align(m: &mut Metainfo) -> Result<Option<Info>> {
    if m.format() != Format::V2 {
        return Ok(None);
    }
    let Some(tree) = m.v2.as_deref() else {
        return Ok(None);
    };
    if tree.missing_layers() > 0 {
        return Err(Error::Metainfo(MetainfoError::V2Only));
    }
    let aligned = v2::aligned_view(&m.info, tree);
    Ok(Some(std::mem::replace(&mut m.info, aligned)))
}

/// File priorities given per listed file, spread over `info`'s entries:
/// a pad entry of the aligned view gets `Normal` (pad entries are never
/// downloaded as files). Priorities already one per entry are kept.
pub(super) fn spread(info: &Info, given: &[FilePriority]) -> Vec<FilePriority> {
    if given.len() == info.files.len() {
        return given.to_vec();
    }
    let mut real = given.iter().copied();
    info.files
        .iter()
        .map(|f| match f.pad {
            true => FilePriority::Normal,
            false => real.next().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::{FileEntry, FilePath};

    #[test]
    fn priorities_per_listed_file_skip_the_pad_entries() {
        let e = |path: &str, pad| FileEntry {
            path: FilePath::from_elements(path.split('/')),
            length: 1,
            offset: 0,
            pad,
        };
        let info = Info {
            name: "t".into(),
            piece_length: 16384,
            pieces: Vec::new(),
            files: vec![e("t/a", false), e("t/.pad/0", true), e("t/b", false)],
            total_length: 3,
            private: false,
            multi_file: true,
        };
        let (n, s) = (FilePriority::Normal, FilePriority::Skip);
        assert_eq!(spread(&info, &[s, n]), [s, n, n]);
        assert_eq!(spread(&info, &[n, s]), [n, n, s]);
        assert_eq!(spread(&info, &[s, s, n]), [s, s, n]);
    }
}
