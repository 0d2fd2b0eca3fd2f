//! Interop (issue 22): hybrid (BEP 52 v1+v2) torrents made by `peer create
//! --hybrid` transfer between `peer` and libtorrent 2.0 in both directions,
//! found through our embedded tracker, which answers announces under both
//! info-hashes (the v1 SHA-1 and the v2 SHA-256 truncated to 20 bytes):
//! scrapes of both show our peer and libtorrent.
//!
//! Needs `python3-libtorrent` (see `.ci/run`). Missing: SKIP by hand,
//! failure under `CI=true`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const NAME: &str = "hybrid data";

/// A scratch directory `tag` with the test data in its `seed` (the data
/// directory, and the data's path); `None` (SKIP) without libtorrent.
fn seed_data(tag: &str) -> Option<(TempDir, PathBuf, PathBuf)> {
    if !require_tool("libtorrent") {
        return None;
    }
    let tmp = TempDir::new(tag);
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    Some((tmp, seed_dir, src))
}

/// A hybrid torrent of a multi-file directory announcing to
/// `127.0.0.1:port`; its two info-hashes (v1, truncated v2) in hex.
fn hybrid_torrent(src: &Path, torrent: &Path, port: u16) -> (String, String) {
    let v1 = peer_create_torrent(
        src,
        torrent,
        &[
            "--hybrid",
            "--announce",
            &format!("127.0.0.1:{port}"),
            "--piece-length",
            "16K",
        ],
    );
    let v = peer_info_json(torrent);
    let v2 = v
        .get("info_hash_v2")
        .and_then(Json::as_str)
        .expect("a hybrid has a v2 hash");
    (v1, v2[..40].to_string())
}

#[test]
fn libtorrent_leeches_a_hybrid_from_peer() {
    let Some((tmp, seed_dir, src)) = seed_data("p22-hy-seed") else {
        return;
    };
    let port = free_port();
    let torrent = tmp.path().join("h.torrent");
    let (v1, v2) = hybrid_torrent(&src, &torrent, port);

    let mut seeder = clients::our_seeder(&torrent, &seed_dir, port);
    // Our seeder announced itself to its own tracker under both hashes.
    for h in [&v1, &v2] {
        assert!(
            wait_until(LONG_WAIT, || clients::tracker_peers(
                SocketAddr::from(([127, 0, 0, 1], port)),
                h
            ) > 0),
            "not tracked under {h}\n{}",
            seeder.output()
        );
    }
    let down = tmp.subdir("down");
    let mut leech = clients::lt_leecher(
        &torrent,
        &down,
        &["--stay"],
        &seeder,
        "the hybrid from peer",
    );
    assert_same_data(&src, &down.join(NAME));
    // libtorrent announced under both hashes too, and was answered.
    for h in [&v1, &v2] {
        assert!(
            wait_until(LONG_WAIT, || clients::tracker_peers(
                SocketAddr::from(([127, 0, 0, 1], port)),
                h
            ) >= 2),
            "libtorrent not tracked under {h}\n{}",
            leech.output()
        );
    }
    clients::no_lt_tracker_errors("libtorrent", &leech.output());
    leech.kill();
    seeder.kill();
}

#[test]
fn peer_leeches_a_hybrid_from_libtorrent() {
    let Some((tmp, seed_dir, src)) = seed_data("p22-hy-leech") else {
        return;
    };
    // The torrent names our leecher's own tracker: libtorrent finds us there.
    let port = free_port();
    let torrent = tmp.path().join("h.torrent");
    let (v1, v2) = hybrid_torrent(&src, &torrent, port);

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
    for h in [&v1, &v2] {
        assert!(
            wait_until(LONG_WAIT, || clients::tracker_peers(
                SocketAddr::from(([127, 0, 0, 1], port)),
                h
            ) > 0),
            "our leecher not tracked under {h}\n{}",
            leech.output()
        );
    }
    let mut seeder = clients::lt_seed(&torrent, &seed_dir, free_port(), 120, &[]);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "peer did not download the hybrid from libtorrent\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    clients::no_lt_tracker_errors("libtorrent", &seeder.output());
    if leech.logged("named by its v2 info-hash") {
        eprintln!("libtorrent dialled us with the v2 info-hash");
    }
    seeder.kill();
}

/// libtorrent starts from a hybrid's magnet link carrying both hashes
/// (`xt=urn:btih:...&xt=urn:btmh:1220...`, no metadata, no piece layers)
/// and downloads from `peer` byte-identical: the info dictionary by
/// `ut_metadata` (checked against both hashes), then the pieces (and the
/// piece layers, if it asks for them: we answer BEP 52 hash requests for
/// hybrids too).
#[test]
fn libtorrent_leeches_a_hybrid_magnet_link_from_peer() {
    let Some((tmp, seed_dir, src)) = seed_data("h22-hy-magnet") else {
        return;
    };
    let port = free_port();
    let torrent = tmp.path().join("h.torrent");
    let (v1, _) = hybrid_torrent(&src, &torrent, port);
    let v = peer_info_json(&torrent);
    let v2 = v
        .get("info_hash_v2")
        .and_then(Json::as_str)
        .expect("a hybrid has a v2 hash")
        .to_string();

    let mut seeder = clients::our_seeder(&torrent, &seed_dir, port);
    let magnet = format!("magnet:?xt=urn:btih:{v1}&xt=urn:btmh:1220{v2}&dn=hybrid%20data");
    let down = tmp.subdir("down");
    let mut leech = clients::lt_leecher(
        &magnet,
        &down,
        &["--peer", &format!("127.0.0.1:{port}")],
        &seeder,
        "the hybrid magnet link from peer",
    );
    assert_same_data(&src, &down.join(NAME));
    leech.kill();
    seeder.kill();
}

/// BEP 52's upgrade path with libtorrent 2.0.8, both ways, on a hybrid
/// without trackers (each side knows the other only by address, so every
/// dial names the v1 hash): libtorrent dials our seeder with the v1 hash
/// and the v2 bit, we answer with the truncated v2 hash (libtorrent
/// accepts it and marks the peer as v2); our leecher dials libtorrent
/// with the v1 hash and the v2 bit (in the clear: libtorrent looks at the
/// bit only on a connection it has not tied to a torrent yet, which MSE
/// does first) and libtorrent answers with the v2 hash. Both transfers
/// byte-identical.
#[test]
fn the_upgrade_to_v2_works_with_libtorrent_both_ways() {
    let Some((tmp, seed_dir, src)) = seed_data("h22-hy-upgrade") else {
        return;
    };
    let torrent = tmp.path().join("h.torrent");
    peer_create_torrent(&src, &torrent, &["--hybrid", "--piece-length", "16K"]);
    let debug = "info,bittorrent_core::engine::net::listener=debug,\
                 bittorrent_core::engine::conn::peer::handshake=debug";

    // libtorrent dials us.
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", debug);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let down = tmp.subdir("down-lt");
    let mut leech = clients::lt_leecher(
        &torrent,
        &down,
        &["--peer", &format!("127.0.0.1:{port}")],
        &seeder,
        "from peer",
    );
    assert_same_data(&src, &down.join(NAME));
    assert!(
        seeder.logged("hybrid connection upgraded to v2"),
        "libtorrent's connection was not upgraded\n{}",
        seeder.output()
    );
    leech.kill();
    seeder.kill();

    // We dial libtorrent.
    let lt_port = free_port();
    let mut lt_seeder = clients::lt_seeder(&torrent, &seed_dir, lt_port, 120, &[]);
    let down = tmp.subdir("down-peer");
    let mut cmd = clients::our_leecher_cmd(&torrent, &down, &format!("127.0.0.1:{lt_port}"));
    cmd.args(["--encryption", "off", "--transport", "tcp", "--once"])
        .env("RUST_LOG", debug);
    let mut leech = Child::spawn("peer leech", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "peer did not download from libtorrent\n{}\n{}",
        leech.output(),
        lt_seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    assert!(
        leech.logged("connection upgraded to v2"),
        "libtorrent did not take the upgrade\n{}",
        leech.output()
    );
    lt_seeder.kill();
}

/// `peer` starts from a hybrid's `btih`+`btmh` magnet link seeded by
/// libtorrent 2.0.8: the info dictionary by `ut_metadata`, the download at
/// once over the v1 wire, and the piece layers by hash requests from
/// libtorrent (dialled under the truncated v2 hash with the v2 bit, which
/// libtorrent takes as a v2 connection), each verified against its
/// file's root; byte-identical.
#[test]
fn peer_fetches_a_hybrid_magnet_links_piece_layers_from_libtorrent() {
    let Some((tmp, seed_dir, src)) = seed_data("h22-hy-lt-layers") else {
        return;
    };
    let torrent = tmp.path().join("h.torrent");
    let v1 = peer_create_torrent(&src, &torrent, &["--hybrid", "--piece-length", "16K"]);
    let v = peer_info_json(&torrent);
    let v2 = v
        .get("info_hash_v2")
        .and_then(Json::as_str)
        .expect("a hybrid has a v2 hash")
        .to_string();
    let layers = v
        .get("piece_layers_missing")
        .and_then(Json::as_i128)
        .unwrap_or(0);
    assert_eq!(layers, 0, "our creator writes the layers");
    let lt_port = free_port();
    let mut lt_seeder = clients::lt_seeder(&torrent, &seed_dir, lt_port, 120, &[]);
    let magnet = format!("magnet:?xt=urn:btih:{v1}&xt=urn:btmh:1220{v2}&dn=hybrid%20data");
    let down = tmp.subdir("down");
    let cmd = clients::our_leecher_cmd(&magnet, &down, &format!("127.0.0.1:{lt_port}"));
    let mut leech = Child::spawn("peer leech", cmd);
    assert!(
        leech.wait_for_output("every piece layer verified", LONG_WAIT),
        "no piece layers from libtorrent\n{}\n{}",
        leech.output(),
        lt_seeder.output()
    );
    assert!(
        leech.wait_for_output("download complete", LONG_WAIT),
        "not downloaded\n{}",
        leech.output()
    );
    assert_same_data(&src, &down.join(NAME));
    assert!(
        !leech.logged("refused for piece layers"),
        "{}",
        leech.output()
    );
    leech.kill();
    lt_seeder.kill();
}
