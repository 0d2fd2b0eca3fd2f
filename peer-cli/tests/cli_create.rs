#![allow(clippy::unwrap_used)]
//! `peer create` end to end: run the binary, read back what it wrote.

use bittorrent_core::proto::bencode::{decode_strict, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_create-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn peer(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peer"))
        .current_dir(cwd)
        .arg("create")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// SHA-1 of the raw `info` dictionary bytes, recomputed independently.
fn info_hash_hex(torrent: &[u8]) -> String {
    let doc = decode_strict(torrent).unwrap();
    let raw = doc.get(b"info").and_then(Value::as_dict).unwrap().raw;
    sha1_smol::Sha1::from(raw).digest().to_string()
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn single_file_default_output_and_announce() {
    let dir = scratch("single");
    fs::write(dir.join("movie.mkv"), bytes(100_000)).unwrap();
    let out = peer(&dir, &["movie.mkv", "--announce", "10.0.0.1:6881"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let torrent = fs::read(dir.join("movie.mkv.torrent")).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    assert_eq!(
        doc.get(b"announce").and_then(Value::as_str),
        Some("http://10.0.0.1:6881/announce")
    );
    let info = doc.get(b"info").unwrap();
    assert_eq!(info.get(b"length").and_then(Value::as_int), Some(100_000));
    assert!(info.get(b"private").is_none());
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    assert_eq!(first.len(), 40);
    assert!(first
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    assert_eq!(first, info_hash_hex(&torrent));
    assert!(text.lines().nth(1).unwrap().contains("movie.mkv.torrent"));
    // Not a terminal: no progress bar on stderr.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn directory_private_web_seed_and_output_path() {
    let dir = scratch("dir");
    fs::create_dir_all(dir.join("album/cd1")).unwrap();
    fs::write(dir.join("album/cd1/01.flac"), bytes(40_000)).unwrap();
    fs::write(dir.join("album/cover.jpg"), bytes(5_000)).unwrap();
    let out = peer(
        &dir,
        &[
            "album",
            "-o",
            "x.torrent",
            "--private",
            "--web-seed",
            "http://mirror.example/pub/",
            "--piece-length",
            "16K",
            "--comment",
            "test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let torrent = fs::read(dir.join("x.torrent")).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    assert_eq!(
        doc.get(b"url-list").and_then(Value::as_str),
        Some("http://mirror.example/pub/")
    );
    assert_eq!(doc.get(b"comment").and_then(Value::as_str), Some("test"));
    let info = doc.get(b"info").unwrap();
    assert_eq!(info.get(b"name").and_then(Value::as_str), Some("album"));
    assert_eq!(info.get(b"private").and_then(Value::as_int), Some(1));
    assert_eq!(
        info.get(b"piece length").and_then(Value::as_int),
        Some(16384)
    );
    let files = info.get(b"files").and_then(Value::as_list).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        info.get(b"pieces").and_then(Value::as_bytes).unwrap().len(),
        3 * 20
    );
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        info_hash_hex(&torrent)
    );
    assert!(stdout(&out).contains("private"));
    // No temporary file left behind.
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn several_announce_urls_make_tiers() {
    let dir = scratch("tiers");
    fs::write(dir.join("f"), bytes(10)).unwrap();
    let out = peer(
        &dir,
        &["f", "--announce", "udp://a:1", "--announce", "10.0.0.2:80"],
    );
    assert!(out.status.success());
    let torrent = fs::read(dir.join("f.torrent")).unwrap();
    let doc = decode_strict(&torrent).unwrap();
    assert_eq!(
        doc.get(b"announce").and_then(Value::as_str),
        Some("udp://a:1")
    );
    let tiers = doc.get(b"announce-list").and_then(Value::as_list).unwrap();
    assert_eq!(tiers.len(), 2);
    assert_eq!(
        tiers[1].as_list().unwrap()[0].as_str(),
        Some("http://10.0.0.2:80/announce")
    );
}

#[test]
fn bad_piece_length_is_usage_error() {
    let dir = scratch("badpl");
    fs::write(dir.join("f"), bytes(10)).unwrap();
    for bad in ["1000", "8K", "huge"] {
        let out = peer(&dir, &["f", "--piece-length", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--piece-length"));
    }
    assert!(!dir.join("f.torrent").exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch("usage");
    assert_eq!(peer(&dir, &[]).status.code(), Some(2));
    assert_eq!(peer(&dir, &["a", "b"]).status.code(), Some(2));
    assert_eq!(peer(&dir, &["a", "--bogus"]).status.code(), Some(2));
}

#[test]
fn missing_path_exits_1_with_one_line() {
    let dir = scratch("missing");
    let out = peer(&dir, &["no-such-file"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-file"), "{err}");
}

#[test]
fn empty_directory_exits_1() {
    let dir = scratch("emptydir");
    fs::create_dir_all(dir.join("empty")).unwrap();
    let out = peer(&dir, &["empty"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to share"));
}

#[test]
fn existing_output_needs_force() {
    let dir = scratch("force");
    fs::write(dir.join("a.bin"), bytes(300_000)).unwrap();
    fs::write(dir.join("a.bin.torrent"), b"keep me").unwrap();
    // The default name and -o alike: refused, exit 1, file untouched.
    for args in [vec!["a.bin"], vec!["a.bin", "-o", "a.bin.torrent"]] {
        let out = peer(&dir, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(fs::read(dir.join("a.bin.torrent")).unwrap(), b"keep me");
    }
    let out = peer(&dir, &["a.bin", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let torrent = fs::read(dir.join("a.bin.torrent")).unwrap();
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        info_hash_hex(&torrent)
    );
    // One size format across commands: create and info agree.
    let text = stdout(&out);
    assert!(text.contains("293.0 KiB"), "{text}");
    let info = Command::new(env!("CARGO_BIN_EXE_peer"))
        .current_dir(&dir)
        .args(["info", "a.bin.torrent"])
        .output()
        .unwrap();
    assert!(stdout(&info).contains("293.0 KiB"), "{}", stdout(&info));
}

#[test]
fn info_shows_what_create_wrote_about_the_torrent() {
    let dir = scratch("extras");
    fs::write(dir.join("b.bin"), bytes(1000)).unwrap();
    let out = peer(
        &dir,
        &[
            "b.bin",
            "--comment",
            "hello there",
            "--web-seed",
            "http://mirror.example/b.bin",
            "--private",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_peer"));
        c.current_dir(&dir).args(["info", "b.bin.torrent"]);
        if json {
            c.arg("--json");
        }
        stdout(&c.output().unwrap())
    };
    let text = info(false);
    for want in [
        "comment:      hello there",
        "created by:   peer/",
        "created on:   20",
        "web seeds:    http://mirror.example/b.bin",
        "private:      yes",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let v: serde_json::Value = serde_json::from_str(&info(true)).unwrap();
    assert_eq!(v["comment"], "hello there");
    assert!(v["created_by"].as_str().unwrap().starts_with("peer/"));
    assert!(v["creation_date"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(
        v["web_seeds"],
        serde_json::json!(["http://mirror.example/b.bin"])
    );
    assert_eq!(v["private"], true);
    assert_eq!(v["source"], serde_json::Value::Null);
}

/// `--v2` and `--hybrid` (BEP 52): what is printed, what is written, and
/// that the two flags exclude each other.
#[test]
fn v2_and_hybrid_flags() {
    use bittorrent_core::proto::merkle::sha256;
    let dir = scratch("v2");
    fs::create_dir_all(dir.join("d")).unwrap();
    fs::write(dir.join("d/a.bin"), bytes(70_000)).unwrap();
    fs::write(dir.join("d/b.bin"), bytes(1_000)).unwrap();
    let raw_info = |t: &[u8]| {
        let doc = decode_strict(t).unwrap();
        doc.get(b"info")
            .and_then(Value::as_dict)
            .unwrap()
            .raw
            .to_vec()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();

    let o = peer(
        &dir,
        &["d", "--v2", "-o", "v2.torrent", "--piece-length", "16K"],
    );
    assert!(o.status.success(), "{o:?}");
    let t = fs::read(dir.join("v2.torrent")).unwrap();
    let v2 = hex(&sha256(&raw_info(&t)));
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some(v2.as_str()), "{out}");
    assert!(out.lines().nth(1).unwrap().ends_with(", v2"), "{out}");
    let doc = decode_strict(&t).unwrap();
    let info = doc.get(b"info").unwrap();
    assert_eq!(info.get(b"meta version").and_then(Value::as_int), Some(2));
    assert!(info.get(b"pieces").is_none() && info.get(b"files").is_none());
    assert!(doc.get(b"piece layers").is_some());

    let o = peer(
        &dir,
        &["d", "--hybrid", "-o", "h.torrent", "--piece-length", "16K"],
    );
    assert!(o.status.success(), "{o:?}");
    let t = fs::read(dir.join("h.torrent")).unwrap();
    let out = stdout(&o);
    assert_eq!(
        out.lines().next(),
        Some(info_hash_hex(&t).as_str()),
        "{out}"
    );
    let v2 = hex(&sha256(&raw_info(&t)));
    assert!(
        out.contains(&format!("hybrid (v2 info hash {v2})")),
        "{out}"
    );
    let doc = decode_strict(&t).unwrap();
    let files = doc
        .get(b"info")
        .unwrap()
        .get(b"files")
        .and_then(Value::as_list);
    // a.bin, its pad (70,000 is not a multiple of 16 KiB), b.bin, its pad.
    assert_eq!(files.map(<[_]>::len), Some(4));

    let o = peer(&dir, &["d", "--v2", "--hybrid", "-o", "x.torrent"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(!dir.join("x.torrent").exists());
}
