#![allow(clippy::unwrap_used)]
//! `peer info`: JSON keys and values, magnets, and failures.

use serde_json::{json, Value};
use std::process::{Command, Output};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/corpus");

fn peer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peer"))
        .arg("info")
        .args(args)
        .output()
        .unwrap()
}

fn info_json(arg: &str) -> Value {
    let out = peer(&[arg, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    // The original keys, then the additions (comment .. web_seeds; format,
    // info_hash_v2, piece_layers_missing for BEP 52): keys are only ever
    // added, never renamed or removed.
    let expected = [
        "comment",
        "created_by",
        "creation_date",
        "files",
        "format",
        "info_hash",
        "info_hash_v2",
        "name",
        "num_pieces",
        "piece_layers_missing",
        "piece_length",
        "private",
        "source",
        "total_length",
        "trackers",
        "web_seeds",
    ];
    assert_eq!(keys, expected);
    v
}

#[test]
fn single_file_torrent_as_json() {
    let v = info_json(&format!("{CORPUS}/valid/base.torrent"));
    assert_eq!(v["name"], "temp");
    assert_eq!(v["info_hash"], "c0fda1edafdbdbb96443424e0b3899af7159d10e");
    assert_eq!(v["total_length"], 425);
    assert_eq!(v["piece_length"], 16384);
    assert_eq!(v["num_pieces"], 1);
    assert_eq!(v["private"], false);
    assert_eq!(
        v["files"],
        json!([{"index": 0, "path": "temp", "length": 425}])
    );
}

#[test]
fn multi_file_torrent_with_tiers_and_renames() {
    let v = info_json(&format!("{CORPUS}/valid/sample.torrent"));
    assert_eq!(v["info_hash"], "58d8d15a4eb3bd9afabc9cee2564f78192777edb");
    assert_eq!(v["total_length"], 16404);
    assert_eq!(v["num_pieces"], 2);
    assert_eq!(v["trackers"].as_array().unwrap().len(), 2);
    assert_eq!(v["files"][1]["path"], "sample/.____padding_file/0");
    assert_eq!(v["files"][1]["index"], 1);

    let v = info_json(&format!("{CORPUS}/valid/duplicate_files.torrent"));
    let paths: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["temp/foo/bar.txt", "temp/foo/bar.1.txt"]);
}

#[test]
fn magnet_as_json() {
    let v = info_json(
        "magnet:?xt=urn:btih:YD62D3NP3PN3SZCDIJHAWOEZV5YVTUIO&dn=temp&tr=udp%3A%2F%2Ft.example%3A6969",
    );
    assert_eq!(v["info_hash"], "c0fda1edafdbdbb96443424e0b3899af7159d10e");
    assert_eq!(v["name"], "temp");
    assert_eq!(v["trackers"], json!([["udp://t.example:6969"]]));
    assert_eq!(v["total_length"], Value::Null);
    assert_eq!(v["num_pieces"], Value::Null);
    assert_eq!(v["files"], json!([]));
}

#[test]
fn magnet_has_none_of_the_torrents_own_description() {
    let v = info_json("magnet:?xt=urn:btih:c0fda1edafdbdbb96443424e0b3899af7159d10e");
    for k in ["comment", "created_by", "creation_date", "source"] {
        assert_eq!(v[k], Value::Null, "{k}");
    }
    assert_eq!(v["web_seeds"], json!([]));
}

#[test]
fn comment_creator_date_web_seeds_and_source() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_info-extras");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.torrent");
    let mut t = b"d7:comment2:hi10:created by5:maker13:creation datei1700000000e".to_vec();
    t.extend_from_slice(b"4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:");
    t.extend_from_slice(&[7u8; 20]);
    t.extend_from_slice(b"7:privatei1e6:source3:SRCe8:url-listl13:http://w.ex/a13:http://w.ex/bee");
    std::fs::write(&path, &t).unwrap();
    let arg = path.to_str().unwrap();
    let v = info_json(arg);
    assert_eq!(v["comment"], "hi");
    assert_eq!(v["created_by"], "maker");
    assert_eq!(v["creation_date"], 1_700_000_000);
    assert_eq!(v["source"], "SRC");
    assert_eq!(v["private"], true);
    assert_eq!(v["web_seeds"], json!(["http://w.ex/a", "http://w.ex/b"]));
    let text = String::from_utf8(peer(&[arg]).stdout).unwrap();
    for want in [
        "comment:      hi\n",
        "created by:   maker\n",
        "created on:   2023-11-14 22:13:20 UTC\n",
        "source:       SRC\n",
        "web seeds:    http://w.ex/a\n              http://w.ex/b\n",
        "private:      yes\n",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}

#[test]
fn human_output_has_the_magnet_link() {
    let out = peer(&[&format!("{CORPUS}/valid/base.torrent")]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("c0fda1edafdbdbb96443424e0b3899af7159d10e"));
    assert!(text.contains("425 bytes"));
    assert!(text.contains("magnet:?xt=urn:btih:c0fda1edafdbdbb96443424e0b3899af7159d10e"));
}

fn assert_fails_on_one_line(args: &[&str], needle: &str) {
    let out = peer(args);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let bad = format!("{CORPUS}/invalid/unaligned_pieces.torrent");
    assert_fails_on_one_line(&[&bad, "--json"], "not a multiple of 20");
    let v2 = format!("{CORPUS}/invalid/v2_invalid_root_hash.torrent");
    assert_fails_on_one_line(&[&v2], "does not hash up to its pieces root");
    assert_fails_on_one_line(&["magnet:?xt=urn:btmh:1220ab"], "SHA-256 multihash");
    assert_fails_on_one_line(&["/nonexistent/x.torrent"], "cannot read");
    assert_fails_on_one_line(&["magnet:?dn=x"], "no xt");
}

/// BEP 52: the format, both hashes and the piece layers, for v1, v2-only and
/// hybrid torrents and magnet links (values from the corpus manifest).
#[test]
fn v2_and_hybrid_torrents() {
    let v1 = info_json(&format!("{CORPUS}/valid/base.torrent"));
    assert_eq!(v1["format"], "v1");
    assert_eq!(v1["info_hash_v2"], Value::Null);
    assert_eq!(v1["piece_layers_missing"], Value::Null);

    let v2 = info_json(&format!("{CORPUS}/valid/v2_only.torrent"));
    let h2 = "95e04d0c4bad94ab206efa884666fd89777dbe4f7bd9945af1829037a85c6192";
    assert_eq!(v2["format"], "v2");
    assert_eq!(v2["info_hash_v2"], h2);
    assert_eq!(v2["info_hash"], h2[..40]);
    assert_eq!(v2["num_pieces"], 16);
    assert_eq!(v2["piece_layers_missing"], 0);
    assert_eq!(
        v2["files"],
        json!([{"index": 0, "path": "test1MB", "length": 1048576}])
    );

    let hybrid = info_json(&format!("{CORPUS}/valid/v2_hybrid.torrent"));
    assert_eq!(hybrid["format"], "hybrid");
    assert_eq!(
        hybrid["info_hash"],
        "514c76c1f27ec61ca8b37851bcd1cbf0b26cf120"
    );
    assert_eq!(
        hybrid["info_hash_v2"],
        "518fbaf39b37020c896e8768a967da6d76bbd5ef7a02c761021b65a72c6cfa11"
    );
    assert_eq!(hybrid["files"].as_array().unwrap().len(), 18);

    let partial = info_json(&format!("{CORPUS}/valid/v2_incomplete_piece_layer.torrent"));
    assert_eq!(partial["piece_layers_missing"], 1);

    // Text: the format, both hashes, and a magnet link with both.
    let out = peer(&[&format!("{CORPUS}/valid/v2_hybrid.torrent")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("format:       hybrid"), "{text}");
    assert!(text.contains("info hash v2: 518fbaf39b37020c"), "{text}");
    assert!(text.contains(
        "magnet:?xt=urn:btih:514c76c1f27ec61ca8b37851bcd1cbf0b26cf120\
         &xt=urn:btmh:1220518fbaf39b37020c896e8768a967da6d76bbd5ef7a02c761021b65a72c6cfa11"
    ));

    // Magnet links: v2-only and hybrid.
    let m = info_json(&format!("magnet:?xt=urn:btmh:1220{h2}&dn=test1MB"));
    assert_eq!(
        (&m["format"], &m["info_hash_v2"]),
        (&json!("v2"), &json!(h2))
    );
    assert_eq!(m["info_hash"], h2[..40]);
    let both = "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac\
        &xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb";
    let m = info_json(both);
    assert_eq!(m["format"], "hybrid");
    assert_eq!(m["info_hash"], "631a31dd0a46257d5078c0dee4e66e26f73e42ac");
    assert_eq!(
        m["info_hash_v2"],
        "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
    );
}
