//! Replays the fuzz seed corpora (`fuzz/corpus/<target>/`) and every
//! crashing input kept under `fixtures/regressions/<target>/` through the
//! fuzz targets' checks, without any fuzzer. The checks themselves live in
//! `fuzz/targets_common.rs`, shared with the fuzz targets.
#![allow(clippy::unwrap_used)]

#[path = "../../fuzz/targets_common.rs"]
mod targets_common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Files directly under `dir` (none if it does not exist), README.md excluded.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    v.sort();
    v
}

fn replay(target: &str, dir: &Path) -> usize {
    let files = inputs(dir);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let r = std::panic::catch_unwind(|| targets_common::run(target, &data));
        match r {
            Ok(known) => assert!(known, "unknown target {target}"),
            Err(_) => panic!("target {target} fails on {}", f.display()),
        }
    }
    files.len()
}

#[test]
fn regression_inputs_do_not_crash() {
    for t in targets_common::TARGETS {
        let dir = root().join("fixtures/regressions").join(t);
        assert!(dir.is_dir(), "missing {}", dir.display());
        replay(t, &dir);
    }
}

#[test]
fn seed_corpora_do_not_crash() {
    let mut total = 0;
    for t in targets_common::TARGETS {
        let n = replay(t, &root().join("fuzz/corpus").join(t));
        assert!(n > 0, "no seeds for {t} (run fuzz/seeds.sh)");
        total += n;
    }
    assert!(total > 100, "only {total} seeds");
}

#[test]
fn checks_reject_what_they_should() {
    // The properties are live: a non-canonical but strictly valid-looking
    // input is refused by strict decoding, so the round trip holds.
    targets_common::check_bencode(b"d1:bi1e1:ai2ee");
    targets_common::check_bencode(b"i03e");
    // A crafted path is sanitised into plain names.
    let t = b"d4:infod5:filesld6:lengthi1e4:pathl2:..3:a/b0:1:\\eee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    targets_common::check_metainfo(t);
    assert!(bittorrent_core::Metainfo::from_bytes(t).is_ok());
}
