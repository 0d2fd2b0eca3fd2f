//! The files of a torrent on disk: nothing through a symlink, nothing
//! created before it is written, nothing left behind by a failed add.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::os::unix::fs::symlink;
use std::time::Duration;

/// Every path under `dir` (files, directories, links), relative.
fn tree(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `remove --delete-data` on a torrent whose directory was swapped for a
/// symlink to somewhere else deletes nothing there, and says which path.
#[test]
fn delete_data_never_follows_a_symlink() {
    let files = [
        ("a.bin", pseudo_random(40_000, 1)),
        ("sub/b.bin", pseudo_random(30_000, 2)),
    ];
    let (mi, seed_dir) = multi_file_torrent("del", &files, 16384);
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(30));
    // Someone replaces `del/sub` by a link to a directory of their own that
    // holds a file of the same name.
    let outside = temp_dir("del-outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("b.bin"), b"not yours").unwrap();
    std::fs::remove_dir_all(seed_dir.join("del/sub")).unwrap();
    symlink(&outside, seed_dir.join("del/sub")).unwrap();
    let err = s.remove(&mi.info_hash, true).unwrap_err().to_string();
    assert!(
        err.contains("del/sub") && err.contains("symbolic link"),
        "error does not name the link: {err}"
    );
    assert_eq!(std::fs::read(outside.join("b.bin")).unwrap(), b"not yours");
    // The rest was deleted; the link itself is left alone.
    assert!(!seed_dir.join("del/a.bin").exists());
    assert!(seed_dir.join("del/sub").symlink_metadata().is_ok());
}

/// A symlinked file or directory inside the download directory stops the
/// add with an error naming it; the target is untouched.
#[test]
fn symlinks_in_the_download_dir_are_refused() {
    let files = [
        ("a.bin", pseudo_random(20_000, 3)),
        ("sub/b.bin", pseudo_random(20_000, 4)),
    ];
    let (mi, _seed) = multi_file_torrent("lnk", &files, 16384);
    let s = session();
    let outside = temp_dir("lnk-outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"precious").unwrap();
    // A file symlink.
    let dir = temp_dir("lnk-file");
    std::fs::create_dir_all(dir.join("lnk")).unwrap();
    symlink(outside.join("victim"), dir.join("lnk/a.bin")).unwrap();
    let err = s
        .add(AddTorrent::new(mi.clone(), &dir))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lnk/a.bin") && err.contains("symbolic link"),
        "{err}"
    );
    // A directory symlink.
    let dir2 = temp_dir("lnk-dir");
    std::fs::create_dir_all(dir2.join("lnk")).unwrap();
    symlink(&outside, dir2.join("lnk/sub")).unwrap();
    let err = s
        .add(AddTorrent::new(mi.clone(), &dir2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lnk/sub") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(tree(&outside), vec!["victim".to_string()]);
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"precious");
    assert!(s.torrents().is_empty());
}

/// A symlink planted after the add (while downloading) stops the torrent
/// with an error naming it; nothing is written through it.
#[test]
fn symlink_planted_while_downloading_stops_the_torrent() {
    let data = pseudo_random(256 * 1024, 5);
    let (mi, seed_dir) = single_file_torrent("late", &data, 16384);
    let dir = temp_dir("late-leech");
    let outside = temp_dir("late-outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"precious").unwrap();
    let leecher = session();
    leecher.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    symlink(outside.join("victim"), dir.join("late")).unwrap();
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4()])
        .unwrap();
    let failed = wait_until(Duration::from_secs(30), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| matches!(s.phase, Phase::Failed(_)))
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(failed, "{st:?}");
    let Phase::Failed(why) = st.phase else {
        unreachable!()
    };
    assert!(
        why.contains("late") && why.contains("symbolic link"),
        "{why}"
    );
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"precious");
}

/// Adding a torrent of 100,000 files creates none of them (each appears when
/// its first block is written), opens none, and fails for no descriptor
/// limit.
#[test]
fn a_hundred_thousand_file_add_creates_nothing() {
    let n = 100_000;
    let list: Vec<(String, u64)> = (0..n).map(|i| (format!("d{}/f{i}", i / 1000), 1)).collect();
    let all = vec![7u8; n];
    let mi = build_metainfo("many", &list, &all, 64 * 1024, true);
    let dir = temp_dir("many-leech");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Downloading, Duration::from_secs(60));
    assert!(
        tree(&dir).is_empty(),
        "files created at add: {:?}",
        &tree(&dir)[..5.min(tree(&dir).len())]
    );
    s.remove(&mi.info_hash, true).unwrap();
    assert!(tree(&dir).is_empty());
}

/// An add that fails half-way through creating its (zero-length) files
/// removes the ones it created.
#[test]
fn failed_add_removes_what_it_created() {
    let list: Vec<(String, u64)> = vec![
        ("a/e1".into(), 0),
        ("a/e2".into(), 0),
        ("b/e3".into(), 0),
        ("data".into(), 1000),
    ];
    let all = vec![1u8; 1000];
    let mi = build_metainfo("half", &list, &all, 16384, true);
    let dir = temp_dir("half-leech");
    // `half/b` is a file, so `half/b/e3` cannot be created.
    std::fs::create_dir_all(dir.join("half")).unwrap();
    std::fs::write(dir.join("half/b"), b"in the way").unwrap();
    let s = session();
    let err = s
        .add(AddTorrent::new(mi.clone(), &dir))
        .unwrap_err()
        .to_string();
    assert!(err.contains("half/b"), "{err}");
    assert_eq!(tree(&dir), vec!["half".to_string(), "half/b".to_string()]);
}
