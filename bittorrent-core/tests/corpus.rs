#![allow(clippy::unwrap_used)]
//! The 108 torrents of libtorrent's test suite (fixtures/corpus): every
//! verdict, info-hash, file count, total size and asserted sanitised path.

use bittorrent_core::proto::metainfo::{Metainfo, MetainfoError};
use std::path::{Component, Path, PathBuf};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/corpus");

/// One manifest row, by column name.
struct Row {
    cols: Vec<String>,
    header: Vec<String>,
}

impl Row {
    fn get(&self, name: &str) -> &str {
        let i = self.header.iter().position(|h| h == name).unwrap();
        self.cols.get(i).map(String::as_str).unwrap_or("")
    }
}

fn rows() -> Vec<Row> {
    let tsv = std::fs::read_to_string(format!("{CORPUS}/MANIFEST.tsv")).unwrap();
    let mut lines = tsv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(String::from)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| Row {
            cols: l.split('\t').map(String::from).collect(),
            header: header.clone(),
        })
        .collect()
}

fn load(row: &Row) -> Result<Metainfo, MetainfoError> {
    let bytes = std::fs::read(format!("{CORPUS}/{}", row.get("path"))).unwrap();
    Metainfo::from_bytes(&bytes)
}

fn joined(m: &Metainfo, i: usize) -> String {
    m.info.files[i].path.join("/")
}

/// The `pathN=`, `fileN renamed to`, `paths=` and `fileN is/not a pad
/// file` facts of `test_other`; returns how many were checked.
fn check_path_facts(row: &Row, m: &Metainfo) -> usize {
    let file = row.get("path");
    let mut checked = 0;
    for fact in row.get("test_other").split(';').map(str::trim) {
        let path_n = fact.strip_prefix("path").and_then(|r| r.split_once('='));
        if let Some((Ok(n), p)) = path_n.map(|(n, p)| (n.parse::<usize>(), p)) {
            if m.info.files[n].pad {
                // libtorrent puts pad files under a top-level `.pad/`; ours
                // live under the torrent's directory (never written anyway).
                assert!(joined(m, n).ends_with(p), "{file}: path{n}");
            } else {
                assert_eq!(joined(m, n), p, "{file}: path{n}");
            }
        } else if let Some((n, p)) = fact
            .strip_prefix("file")
            .and_then(|r| r.split_once(" renamed to "))
        {
            let n: usize = n.parse().unwrap();
            assert_eq!(joined(m, n), p, "{file}: file{n}");
        } else if let Some((n, pad)) = fact.strip_prefix("file").and_then(|r| r.split_once(' ')) {
            let n: usize = n.parse().unwrap();
            let expected = match pad {
                "is a pad file" => true,
                "not a pad file" => false,
                other => panic!("{file}: unknown fact {other:?}"),
            };
            assert_eq!(m.info.files[n].pad, expected, "{file}: file{n} pad");
        } else if let Some(list) = fact.strip_prefix("paths=") {
            let all: Vec<String> = (0..m.info.files.len()).map(|i| joined(m, i)).collect();
            assert_eq!(all.join(","), list, "{file}: paths");
        } else {
            continue;
        }
        checked += 1;
    }
    checked
}

/// The tracker, web seed and creation date facts of `test_other`.
fn check_other_facts(row: &Row, m: &Metainfo) {
    let file = row.get("path");
    for fact in row.get("test_other").split(';').map(str::trim) {
        if let Some(url) = fact.strip_prefix("tracker0=") {
            assert_eq!(m.trackers()[0][0], url, "{file}: tracker0");
        } else if let Some(date) = fact.strip_prefix("creation_date=") {
            assert_eq!(m.creation_date, Some(date.parse().unwrap()), "{file}");
        } else if fact == "creation_date absent" {
            assert_eq!(m.creation_date, None, "{file}");
        } else if let Some(n) = fact.strip_suffix(" after removing duplicates") {
            let n: usize = n.trim_start_matches("url_seeds=").parse().unwrap();
            assert_eq!(m.url_list.len(), n, "{file}: url seeds");
        } else if let Some(url) = fact.strip_prefix("url_seeds=") {
            // Multi-file seeds are completed (trailing '/', escaping) when
            // requests are built, not here.
            if !m.info.multi_file {
                assert_eq!(m.url_list, [url], "{file}: url seeds");
            }
        }
    }
}

/// Checks a loaded file; returns how many path facts were checked.
fn check_loaded(row: &Row, m: &Metainfo) -> usize {
    let file = row.get("path");
    assert_eq!(
        m.info_hash.to_hex(),
        row.get("infohash_v1"),
        "{file}: info-hash"
    );
    let files: usize = row.get("files").parse().unwrap();
    assert_eq!(m.info.files.len(), files, "{file}: file count");
    let total: u64 = row.get("total_size").parse().unwrap();
    assert_eq!(m.info.total_length, total, "{file}: total size");
    let piece_length: u64 = row.get("piece_length").parse().unwrap();
    assert_eq!(m.info.piece_length, piece_length, "{file}: piece length");
    let pads: usize = row.get("pad_files").parse().unwrap();
    let got_pads = m.info.files.iter().filter(|f| f.pad).count();
    assert_eq!(got_pads, pads, "{file}: pad files");
    if !row.get("test_name").is_empty() {
        assert_eq!(m.info.name, row.get("test_name"), "{file}: name");
    }
    let sum: u64 = m.info.files.iter().map(|f| f.length).sum();
    assert_eq!(sum, m.info.total_length);
    let last = m.info.files.last().unwrap();
    assert_eq!(last.offset + last.length, m.info.total_length);
    assert_eq!(m.info.num_pieces() as u64, total.div_ceil(piece_length));
    check_other_facts(row, m);
    check_path_facts(row, m)
}

#[test]
fn every_corpus_file_matches_the_manifest() {
    let rows = rows();
    assert_eq!(rows.len(), 108);
    let mut path_facts = 0;
    for row in &rows {
        let file = row.get("path");
        let result = load(row);
        match (row.get("v1_only_peer"), &result) {
            ("load", Err(e)) => panic!("{file} must load: {e}"),
            ("reject", Ok(_)) => panic!("{file} must be refused"),
            (_, Ok(m)) if !row.get("infohash_v1").is_empty() => path_facts += check_loaded(row, m),
            // An "either" file without computed columns (duplicate_files2
            // and the two hybrids with a broken v2 half): paths stay unique.
            (_, Ok(m)) => {
                let mut paths: Vec<&bittorrent_core::proto::metainfo::FilePath> =
                    m.info.files.iter().map(|f| &f.path).collect();
                paths.sort();
                paths.dedup();
                assert_eq!(paths.len(), m.info.files.len(), "{file}: unique paths");
            }
            ("either", Err(e)) if row.get("format") == "v2" => {
                assert_eq!(e, &MetainfoError::V2Only, "{file}");
            }
            _ => {}
        }
    }
    // path0/path1 (absolute_filename), 2 x duplicate_files, 2 x
    // invalid_directory_name, pad_file_no_path, sample, slash_path{,2,3},
    // symlink_filtered_path, v2; 2 x pad_file (is / is not a pad file).
    assert_eq!(path_facts, 15);
}

#[test]
fn v2_only_is_refused_with_a_clear_message() {
    let row = rows()
        .into_iter()
        .find(|r| r.get("path") == "valid/v2_only.torrent")
        .unwrap();
    let e = load(&row).unwrap_err();
    assert_eq!(
        e.to_string(),
        "BitTorrent v2-only torrents are not supported"
    );
}

/// Joining any file path of any loadable corpus torrent under a directory
/// stays inside it.
#[test]
fn every_path_stays_inside_the_download_dir() {
    let base = std::env::temp_dir().join("peer-corpus-paths");
    for row in rows() {
        let Ok(m) = load(&row) else { continue };
        for f in &m.info.files {
            assert!(!f.path.is_empty());
            let mut p = PathBuf::from(&base);
            for c in &f.path {
                assert!(!c.is_empty() && c != "." && c != "..", "{c:?}");
                assert!(!c.contains(['/', '\\']), "{c:?}");
                assert!(!c.chars().any(char::is_control), "{c:?}");
                assert!(c.len() <= 255, "{c:?}");
                p.push(c);
            }
            assert!(p.starts_with(&base), "{}", p.display());
            let rel = p.strip_prefix(&base).unwrap();
            assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
            assert_eq!(rel.components().count(), f.path.len());
            assert!(!Path::new(f.path.iter().next().unwrap()).is_absolute());
        }
    }
}

/// What is renamed is reported: hostile and colliding paths come back from
/// `renamed_files` with the name they are saved under.
#[test]
fn renamed_files_are_reported() {
    let load = |f: &str| {
        let b = std::fs::read(format!(
            "{}/../fixtures/corpus/valid/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        bittorrent_core::Metainfo::from_bytes(&b).unwrap()
    };
    let r = load("parent_path.torrent").renamed_files();
    assert!(
        r.iter()
            .any(|(raw, used)| raw.contains("..") && !used.contains("..")),
        "{r:?}"
    );
    let r = load("duplicate_files.torrent").renamed_files();
    assert!(
        r.iter().any(|(_, used)| used.ends_with("bar.1.txt")),
        "{r:?}"
    );
    assert!(load("base.torrent").renamed_files().is_empty());
}
