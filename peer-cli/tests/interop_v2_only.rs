//! Interop (issue 22): v2-only (BEP 52) torrents made by `peer create --v2`
//! (a `.torrent` with its piece layers) transfer between `peer` and
//! libtorrent 2.0 in both directions, found through our embedded tracker
//! under the v2 info-hash truncated to 20 bytes, byte for byte; and
//! libtorrent downloads one from `peer` by its v2 magnet link (`btmh`),
//! fetching the piece layers with BEP 52 hash requests we answer; and
//! `peer` downloads one from libtorrent by its `btmh` link, sending the
//! hash requests itself.
//!
//! Needs `python3-libtorrent` (see `.ci/run`). Missing: SKIP by hand,
//! failure under `CI=true`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const NAME: &str = "v2 data";

/// A v2-only torrent of a multi-file directory announcing to
/// `127.0.0.1:port`; its truncated v2 info-hash in hex (what the wire and
/// the tracker use).
fn v2_torrent(src: &Path, torrent: &Path, port: u16) -> String {
    v2_torrent_hashes(src, torrent, port).0
}

/// [`v2_torrent`], and the whole 32-byte v2 info-hash in hex.
fn v2_torrent_hashes(src: &Path, torrent: &Path, port: u16) -> (String, String) {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("create").arg(src).arg("-o").arg(torrent).args([
        "--v2",
        "--announce",
        &format!("127.0.0.1:{port}"),
        "--piece-length",
        "32K",
    ]);
    let made = run_bounded("peer create --v2", cmd, Duration::from_secs(60));
    assert!(made.status.success(), "{made:?}");
    let v = peer_info_json(torrent);
    assert_eq!(v.get("format").and_then(Json::as_str), Some("v2"));
    let v2 = v
        .get("info_hash_v2")
        .and_then(Json::as_str)
        .expect("a v2 torrent has a v2 hash");
    let ih = v
        .get("info_hash")
        .and_then(Json::as_str)
        .expect("peer info gives the info-hash");
    assert_eq!(ih, &v2[..40], "the 20-byte hash is the truncated v2 hash");
    (ih.to_string(), v2.to_string())
}

#[test]
fn libtorrent_leeches_a_v2_only_torrent_from_peer() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("p22b-v2-seed");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let port = free_port();
    let torrent = tmp.path().join("v2.torrent");
    let ih = v2_torrent(&src, &torrent, port);

    let mut seeder = clients::our_seeder(&torrent, &seed_dir, port);
    assert!(
        wait_until(LONG_WAIT, || clients::tracker_peers(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &ih
        ) > 0),
        "not tracked under {ih}\n{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    let mut leech = clients::lt_leecher(
        &torrent,
        &down,
        &["--stay"],
        &seeder,
        "the v2-only torrent from peer",
    );
    assert_same_data(&src, &down.join(NAME));
    assert!(
        wait_until(LONG_WAIT, || clients::tracker_peers(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &ih
        ) >= 2),
        "libtorrent not tracked under {ih}\n{}",
        leech.output()
    );
    clients::no_lt_tracker_errors("libtorrent", &leech.output());
    leech.kill();
    seeder.kill();
}

/// libtorrent starts from a v2 magnet link (`xt=urn:btmh:1220...`, no
/// piece layers): it gets the info dictionary from us by `ut_metadata`
/// (checked against the SHA-256 info-hash), then every multi-piece file's
/// piece layer by BEP 52 `hash request`s, which our peer thread answers
/// with `hashes` and their proofs; then it downloads, byte-identical.
#[test]
fn libtorrent_leeches_a_v2_only_magnet_link_from_peer() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("h22-v2-magnet");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    // A file of many pieces: its piece layer is 2 KiB of hashes to fetch.
    std::fs::write(
        src.join("many pieces.bin"),
        (0..2_000_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("write the big file");
    let port = free_port();
    let torrent = tmp.path().join("v2.torrent");
    let (ih, v2) = v2_torrent_hashes(&src, &torrent, port);

    let mut seeder = clients::our_seeder(&torrent, &seed_dir, port);
    let magnet = format!("magnet:?xt=urn:btmh:1220{v2}&dn=v2%20data");
    let down = tmp.subdir("down");
    let mut leech = clients::lt_leecher(
        &magnet,
        &down,
        &["--peer", &format!("127.0.0.1:{port}")],
        &seeder,
        &format!("the v2 magnet link ({ih}) from peer"),
    );
    assert_same_data(&src, &down.join(NAME));
    // Its connection closes with libtorrent: the count of hash requests
    // answered is logged then.
    leech.kill();
    assert!(
        seeder.wait_for_output("hash requests answered", Duration::from_secs(30)),
        "libtorrent fetched no piece layer from us\n{}",
        seeder.output()
    );
    seeder.kill();
}

#[test]
fn peer_leeches_a_v2_only_torrent_from_libtorrent() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("p22b-v2-leech");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    // The torrent names our leecher's own tracker: libtorrent finds us there.
    let port = free_port();
    let torrent = tmp.path().join("v2.torrent");
    let ih = v2_torrent(&src, &torrent, port);

    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&down)
        .args([
            "--port",
            &port.to_string(),
            "--no-lsd",
            "--no-dht",
            "--once",
        ])
        .env(
            "RUST_LOG",
            "info,bittorrent_core::engine::net::listener=debug",
        );
    let mut leech = Child::spawn("peer leech", cmd);
    assert!(
        wait_until(LONG_WAIT, || clients::tracker_peers(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &ih
        ) > 0),
        "our leecher not tracked under {ih}\n{}",
        leech.output()
    );
    let mut seeder = clients::lt_seed(&torrent, &seed_dir, free_port(), 120, &[]);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "peer did not download the v2-only torrent from libtorrent\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    clients::no_lt_tracker_errors("libtorrent", &seeder.output());
    seeder.kill();
}

/// `peer` starts from a v2 magnet link (`xt=urn:btmh:1220...` alone) and
/// libtorrent as the only peer: the info dictionary by `ut_metadata`
/// (checked against the SHA-256 info-hash), every multi-piece file's piece
/// layer by our BEP 52 hash requests (checked against the file's root),
/// then the download, byte-identical.
#[test]
fn peer_leeches_a_v2_only_magnet_link_from_libtorrent() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("h22-v2-magnet-leech");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    // A file of many pieces (62 of 32 KiB): a piece layer to fetch.
    std::fs::write(
        src.join("many pieces.bin"),
        (0..2_000_000u32)
            .map(|i| (i * 13 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("write the big file");
    let torrent = tmp.path().join("v2.torrent");
    // The tracker named is never started: libtorrent is given as a peer.
    let (ih, v2) = v2_torrent_hashes(&src, &torrent, free_port());

    let lt_port = free_port();
    let mut seeder = clients::lt_seeder(&torrent, &seed_dir, lt_port, 120, &[]);
    let magnet = format!("magnet:?xt=urn:btmh:1220{v2}&dn=v2%20data");
    let down = tmp.subdir("down");
    let mut cmd = clients::our_leecher_cmd(&magnet, &down, &format!("127.0.0.1:{lt_port}"));
    cmd.arg("--once");
    let mut leech = Child::spawn("peer leech", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "peer did not download the v2 magnet link ({ih}) from libtorrent\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    let out = leech.output();
    assert!(
        out.contains("every piece layer verified"),
        "no piece layer fetched\n{out}"
    );
    seeder.kill();
}
