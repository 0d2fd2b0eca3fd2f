#![allow(clippy::unwrap_used)]

use super::*;
use crate::proto::bencode::{decode_strict, Value};
use std::sync::Mutex;

/// A fresh scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("peer-create-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn no_progress(_: u64, _: u64) {}

fn opts(piece_length: u64, threads: usize) -> CreateOptions {
    CreateOptions {
        piece_length: Some(piece_length),
        threads: Some(threads),
        creation_date: Some(1_700_000_000),
        ..CreateOptions::default()
    }
}

fn expected_pieces(stream: &[u8], piece_length: usize) -> Vec<u8> {
    stream
        .chunks(piece_length)
        .flat_map(|c| sha1_smol::Sha1::from(c).digest().bytes())
        .collect()
}

fn info<'a>(doc: &'a Value<'a>) -> &'a Value<'a> {
    doc.get(b"info").unwrap()
}

#[test]
fn single_file_short_last_piece() {
    let s = Scratch::new("single");
    let bytes = data(3 * 16384 + 100, 1);
    let path = s.write("file.bin", &bytes);
    for threads in 1..=5 {
        let torrent = create_torrent(&path, &opts(16384, threads), &no_progress).unwrap();
        let doc = decode_strict(&torrent).unwrap();
        let info = info(&doc);
        assert_eq!(info.get(b"name").unwrap().as_str(), Some("file.bin"));
        assert_eq!(
            info.get(b"length").unwrap().as_int(),
            Some(bytes.len() as i64)
        );
        assert_eq!(info.get(b"piece length").unwrap().as_int(), Some(16384));
        assert!(info.get(b"files").is_none());
        let pieces = info.get(b"pieces").unwrap().as_bytes().unwrap();
        assert_eq!(pieces.len(), 4 * 20, "threads={threads}");
        assert_eq!(pieces, expected_pieces(&bytes, 16384), "threads={threads}");
    }
}

#[test]
fn multi_file_piece_spans_files() {
    let s = Scratch::new("multi");
    let a = data(10_000, 2);
    let b = data(30_000, 3);
    let z = data(5_000, 4);
    s.write("root/a/x.bin", &a);
    s.write("root/b.bin", &b);
    s.write("root/c/d/empty", b"");
    s.write("root/z", &z);
    let torrent = create_torrent(&s.0.join("root"), &opts(16384, 2), &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    let info = info(&doc);
    assert_eq!(info.get(b"name").unwrap().as_str(), Some("root"));
    assert!(info.get(b"length").is_none());
    let files: Vec<(Vec<&str>, i64)> = info
        .get(b"files")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f.get(b"path").unwrap().as_list().unwrap();
            let path = path.iter().map(|c| c.as_str().unwrap()).collect();
            (path, f.get(b"length").unwrap().as_int().unwrap())
        })
        .collect();
    assert_eq!(
        files,
        vec![
            (vec!["a", "x.bin"], 10_000),
            (vec!["b.bin"], 30_000),
            (vec!["c", "d", "empty"], 0),
            (vec!["z"], 5_000),
        ]
    );
    let stream = [a, b, z].concat();
    let pieces = info.get(b"pieces").unwrap().as_bytes().unwrap();
    assert_eq!(pieces, expected_pieces(&stream, 16384));
}

#[test]
fn order_is_by_path_components() {
    let s = Scratch::new("order");
    s.write("r/a-c", b"1");
    s.write("r/a/b", b"2");
    s.write("r/B", b"3");
    s.write("r/.hidden", b"4");
    let torrent = create_torrent(&s.0.join("r"), &opts(16384, 1), &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    let names: Vec<String> = info(&doc)
        .get(b"files")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .map(|f| {
            let p = f.get(b"path").unwrap().as_list().unwrap();
            p.iter()
                .map(|c| c.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert_eq!(names, [".hidden", "B", "a/b", "a-c"]);
}

#[test]
fn symlinks_to_files_followed_to_dirs_skipped() {
    let s = Scratch::new("links");
    s.write("r/real", b"hello");
    fs::create_dir_all(s.0.join("r/sub")).unwrap();
    std::os::unix::fs::symlink("real", s.0.join("r/link")).unwrap();
    std::os::unix::fs::symlink("sub", s.0.join("r/dirlink")).unwrap();
    std::os::unix::fs::symlink("missing", s.0.join("r/dangling")).unwrap();
    let torrent = create_torrent(&s.0.join("r"), &opts(16384, 1), &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    let files = info(&doc).get(b"files").unwrap().as_list().unwrap();
    assert_eq!(files.len(), 2);
    let pieces = info(&doc).get(b"pieces").unwrap().as_bytes().unwrap();
    assert_eq!(pieces, expected_pieces(b"hellohello", 16384));
}

#[test]
fn auto_piece_length_table() {
    const K: u64 = 1024;
    const M: u64 = 1024 * K;
    const G: u64 = 1024 * M;
    let table = [
        (1, 16 * K),
        (16 * K * 2000, 16 * K),
        (16 * K * 2000 + 1, 32 * K),
        (100 * M, 64 * K),
        (700 * M, 512 * K),
        (2 * G, 2 * M),
        (4 * G, 4 * M),
        (50 * G, 16 * M),
        (10_000 * G, 16 * M),
    ];
    for (total, want) in table {
        assert_eq!(auto_piece_length(total), want, "total={total}");
    }
    for total in [20 * M, 300 * M, 3 * G, 20 * G] {
        let n = total.div_ceil(auto_piece_length(total));
        assert!((1000..=2000).contains(&n), "total={total} pieces={n}");
    }
}

#[test]
fn invalid_piece_lengths_refused() {
    let s = Scratch::new("badpl");
    let path = s.write("f", b"x");
    for bad in [0, 1, 8192, 16384 + 1, 3 * 16384, 2 * MAX_PIECE_LENGTH] {
        let err = create_torrent(&path, &opts(bad, 1), &no_progress).unwrap_err();
        assert!(matches!(err, CreateError::InvalidPieceLength(n) if n == bad));
    }
}

#[test]
fn empty_directory_and_only_empty_files_refused() {
    let s = Scratch::new("empty");
    fs::create_dir_all(s.0.join("d/e")).unwrap();
    let err = create_torrent(&s.0.join("d"), &opts(16384, 1), &no_progress).unwrap_err();
    assert!(matches!(err, CreateError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("nothing to share"));
    s.write("d/e/zero", b"");
    let err = create_torrent(&s.0.join("d"), &opts(16384, 1), &no_progress).unwrap_err();
    assert!(matches!(err, CreateError::Empty { .. }), "{err}");
}

#[test]
fn missing_path_is_io_error_with_source() {
    let s = Scratch::new("missing");
    let err = create_torrent(&s.0.join("nope"), &opts(16384, 1), &no_progress).unwrap_err();
    assert!(matches!(err, CreateError::Io { .. }));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn metadata_fields_and_canonical_round_trip() {
    let s = Scratch::new("fields");
    let path = s.write("f.iso", &data(40_000, 5));
    let o = CreateOptions {
        announce: vec!["10.0.0.1:6881".into(), "udp://t.example:80".into()],
        private: true,
        comment: Some("hi".into()),
        web_seeds: vec!["http://mirror.example/f.iso".into()],
        ..opts(16384, 2)
    };
    let torrent = create_torrent(&path, &o, &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    // Canonical: re-encoding what we decoded gives the very same bytes.
    assert_eq!(doc.to_owned_value().to_bytes(), torrent);
    let info_raw = info(&doc).as_dict().unwrap().raw;
    assert_eq!(
        info_hash_of(&torrent).unwrap().0,
        sha1_smol::Sha1::from(info_raw).digest().bytes()
    );
    let s = |k: &[u8]| doc.get(k).unwrap().as_str().unwrap().to_string();
    assert_eq!(s(b"announce"), "http://10.0.0.1:6881/announce");
    assert_eq!(s(b"comment"), "hi");
    assert_eq!(s(b"url-list"), "http://mirror.example/f.iso");
    assert_eq!(
        s(b"created by"),
        format!("peer/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        doc.get(b"creation date").unwrap().as_int(),
        Some(1_700_000_000)
    );
    let tiers: Vec<Vec<&str>> = doc
        .get(b"announce-list")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_list()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        tiers,
        [["http://10.0.0.1:6881/announce"], ["udp://t.example:80"]]
    );
    assert_eq!(info(&doc).get(b"private").unwrap().as_int(), Some(1));
}

#[test]
fn minimal_torrent_has_no_optional_keys() {
    let s = Scratch::new("minimal");
    let path = s.write("f", b"abc");
    let torrent = create_torrent(&path, &opts(16384, 1), &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    for k in [&b"announce"[..], b"announce-list", b"url-list", b"comment"] {
        assert!(doc.get(k).is_none());
    }
    assert!(info(&doc).get(b"private").is_none());
}

#[test]
fn progress_reaches_total() {
    let s = Scratch::new("progress");
    let path = s.write("f", &data(100_000, 6));
    let seen = Mutex::new(Vec::new());
    let cb = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
    create_torrent(&path, &opts(16384, 3), &cb).unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last(), Some(&(100_000, 100_000)));
    assert!(seen.iter().all(|(d, t)| d <= t));
}

#[test]
fn short_read_reports_changed_file() {
    let s = Scratch::new("changed");
    let path = s.write("f", &data(50_000, 7));
    let (mut files, _) = scan(&path).unwrap();
    files[0].length = 60_000; // as if the file shrank after the scan
    let err = hash_pieces(&files, 16384, 2, &no_progress).unwrap_err();
    assert!(
        matches!(
            err,
            CreateError::FileChanged {
                expected: 60_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        check_unchanged(&files),
        Err(CreateError::FileChanged { .. })
    ));
}

#[test]
fn non_utf8_name_refused() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new("utf8");
    s.write("r/ok", b"1");
    fs::write(
        s.0.join("r").join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        b"2",
    )
    .unwrap();
    let err = create_torrent(&s.0.join("r"), &opts(16384, 1), &no_progress).unwrap_err();
    assert!(matches!(err, CreateError::NotUtf8Path(_)), "{err}");
}

#[test]
fn special_files_skipped_inside_refused_at_top() {
    let s = Scratch::new("special");
    s.write("r/data", b"abc");
    let sock = s.0.join("r/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let torrent = create_torrent(&s.0.join("r"), &opts(16384, 1), &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    assert_eq!(
        info(&doc).get(b"files").unwrap().as_list().unwrap().len(),
        1
    );
    let err = create_torrent(&sock, &opts(16384, 1), &no_progress).unwrap_err();
    assert!(matches!(err, CreateError::NotAFile(_)), "{err}");
}

#[test]
fn dot_is_named_after_the_directory() {
    let s = Scratch::new("dot");
    s.write("named/f", b"abc");
    let torrent = create_torrent(&s.0.join("named/."), &opts(16384, 1), &no_progress).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    assert_eq!(info(&doc).get(b"name").unwrap().as_str(), Some("named"));
    let torrent = create_torrent(&s.0.join("named/f/.."), &opts(16384, 1), &no_progress);
    assert!(torrent.is_err(), "f is not a directory");
}
