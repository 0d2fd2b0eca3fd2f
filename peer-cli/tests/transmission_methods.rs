#![allow(clippy::unwrap_used)]
//! Transmission RPC methods beyond the basics (issue 23): `torrent-verify`
//! (a real check of the data on disk: a damaged piece is found and
//! downloaded again), also through our JSON API and `peer verify`;
//! `torrent-reannounce` (an announce out of schedule, at most one per 10 s
//! per torrent), counted by a tracker of the test's own; `port-test`
//! answering only what it saw (a peer on loopback proves nothing).

mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::rpc::*;
use support::*;

const NAME: &str = "methodsdata";

/// Copy the tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    for (rel, data) in read_tree(from) {
        write_file(&to.join(rel), &data);
    }
}

/// `percentDone`, `status` and `leftUntilDone` of the one torrent.
fn progress(rpc: &mut Rpc) -> (f64, u64, u64) {
    let t = rpc.torrents(&["percentDone", "status", "leftUntilDone"]);
    if t.len() != 1 {
        // Restarting for a check: not listed for a moment.
        return (-1.0, 99, 0);
    }
    (
        t[0]["percentDone"].as_f64().unwrap(),
        t[0]["status"].as_u64().unwrap(),
        t[0]["leftUntilDone"].as_u64().unwrap(),
    )
}

#[test]
fn verify_finds_a_damaged_piece_and_downloads_it_again() {
    let tmp = TempDir::new("h23-verify");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let seed_port = free_port();
    peer_create_torrent(
        &src,
        &torrent,
        &["--announce", &format!("127.0.0.1:{seed_port}")],
    );
    // The daemon has the whole data already: it seeds at once.
    let down = tmp.subdir("down");
    copy_tree(&src, &down.join(NAME));
    let state = tmp.subdir("state");
    let port = free_port();
    let daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let added = rpc.ok(
        "torrent-add",
        json!({"filename": torrent, "download-dir": down}),
    );
    let id = added["torrent-added"]["id"].as_u64().unwrap();
    let hash = added["torrent-added"]["hashString"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        wait_until(LONG_WAIT, || progress(&mut rpc).0 == 1.0
            && progress(&mut rpc).1 == 6),
        "{:?}\n{}",
        progress(&mut rpc),
        daemon.output()
    );
    // Unknown ids: an error, nothing checked.
    let e = rpc.err("torrent-verify", json!({"ids": [999]}));
    assert!(e.contains("999"), "{e}");

    // Damage one byte on disk, behind the daemon's back (no peer has the
    // piece: the seeder is not started yet).
    let victim = down.join(NAME).join("docs/deep/beta.dat");
    let mut data = std::fs::read(&victim).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&victim, &data).unwrap();
    // Nothing notices until the check.
    assert_eq!(progress(&mut rpc).0, 1.0);
    rpc.ok("torrent-verify", json!({"ids": [id]}));
    // The check finds the bad piece: below 100 %, downloading, what is
    // left is one piece at most.
    let mut seen = (0.0, 0, 0);
    assert!(
        wait_until(Duration::from_secs(60), || {
            seen = progress(&mut rpc);
            seen.0 >= 0.0 && seen.0 < 1.0 && seen.1 == 4
        }),
        "{seen:?}\n{}",
        daemon.output()
    );
    let piece_len = rpc.torrents(&["pieceSize"])[0]["pieceSize"]
        .as_u64()
        .unwrap();
    assert!(seen.2 > 0 && seen.2 <= piece_len, "{seen:?} {piece_len}");
    // The check counted every piece, and the fields of a check are there.
    let t = &rpc.torrents(&["recheckProgress", "status", "id"])[0];
    assert_eq!(t["id"], id, "the id stays the same");
    assert_eq!(t["recheckProgress"], 0.0, "not checking any more: {t}");

    // A seeder comes up: the piece is downloaded again, byte-identical.
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &seed_port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let seeder = Child::spawn("peer seed", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        seed_port
    ))
    .is_ok()));
    assert!(
        wait_until(LONG_WAIT, || {
            let p = progress(&mut rpc);
            p.0 == 1.0 && p.1 == 6
        }),
        "{:?}\n{}\n{}",
        progress(&mut rpc),
        daemon.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));

    // Our JSON API (through `peer verify`): checked again, still whole.
    let out = run_peer(&["verify", &hash[..8], "--state", state.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("checking {}", &hash[..8])), "{text}");
    assert!(wait_until(Duration::from_secs(60), || {
        let p = progress(&mut rpc);
        p.0 == 1.0 && p.1 == 6
    }));
    // A stopped torrent is checked too, and stays stopped.
    rpc.ok("torrent-stop", json!({"ids": [id]}));
    assert!(wait_until(Duration::from_secs(20), || progress(&mut rpc).1 == 0));
    rpc.ok("torrent-verify", json!({"ids": [id]}));
    assert!(wait_until(Duration::from_secs(60), || {
        let p = progress(&mut rpc);
        p.0 == 1.0 && p.1 == 0
    }));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(progress(&mut rpc).1, 0, "still stopped");
    drop(seeder);
}

/// An HTTP tracker that counts announces and answers with no peers, an
/// interval of 30 minutes and a `min interval` of 1 s; returns its port.
fn counting_tracker() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            if req.starts_with("GET /announce") {
                c.fetch_add(1, Ordering::SeqCst);
            }
            let body = "d8:completei0e10:incompletei0e8:intervali1800e12:min intervali1e5:peers0:e";
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, count)
}

#[test]
fn reannounce_announces_at_once_but_never_floods() {
    let tmp = TempDir::new("h23-reannounce");
    let src = make_multi_file_dir(&tmp.subdir("src"), NAME);
    let (tport, count) = counting_tracker();
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(
        &src,
        &torrent,
        &["--announce", &format!("http://127.0.0.1:{tport}/announce")],
    );
    let state = tmp.subdir("state");
    let port = free_port();
    let daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let down = tmp.subdir("down");
    let added = rpc.ok(
        "torrent-add",
        json!({"filename": torrent, "download-dir": down}),
    );
    let id = added["torrent-added"]["id"].as_u64().unwrap();
    // The first announce (`started`); the next regular one is 30 min away.
    assert!(
        wait_until(Duration::from_secs(30), || count.load(Ordering::SeqCst)
            >= 1),
        "{}",
        daemon.output()
    );
    std::thread::sleep(Duration::from_secs(2));
    let first = count.load(Ordering::SeqCst);
    assert_eq!(first, 1, "one announce only");
    // Unknown ids: an error.
    let e = rpc.err("torrent-reannounce", json!({"ids": [999]}));
    assert!(e.contains("999"), "{e}");
    // A manual announce goes out at once (the tracker's min interval is
    // long past).
    rpc.ok("torrent-reannounce", json!({"ids": [id]}));
    assert!(
        wait_until(Duration::from_secs(10), || count.load(Ordering::SeqCst)
            == 2),
        "{}",
        daemon.output()
    );
    // Asked again and again at once: ignored, nothing floods the tracker.
    for _ in 0..5 {
        rpc.ok("torrent-reannounce", json!({"ids": [id]}));
    }
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // port-test: a peer connecting over loopback proves nothing about the
    // internet, so the answer is "cannot tell", never a guess.
    let hash = added["torrent-added"]["hashString"].as_str().unwrap();
    let peer_port = rpc.ok("session-get", json!({}))["peer-port"]
        .as_u64()
        .unwrap() as u16;
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    hs.extend((0..20).map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap()));
    hs.extend_from_slice(b"-XX0000-portprobe123");
    let mut c = TcpStream::connect(("127.0.0.1", peer_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&hs).unwrap();
    let mut reply = [0u8; 68];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(
        &reply[28..48],
        &hs[28..48],
        "the daemon answered the handshake"
    );
    let e = rpc.err("port-test", json!({}));
    assert!(
        e.contains("cannot tell") && e.contains("port mapping is off"),
        "{e}"
    );
    let e = rpc.err("port-test", json!({"ipProtocol": "ipx"}));
    assert!(e.contains("ipProtocol"), "{e}");
    drop(c);

    // Through transmission-remote, once the 10 s have passed.
    if require_tool("transmission-remote") {
        std::thread::sleep(Duration::from_secs(7));
        let mut cmd = Command::new("transmission-remote");
        cmd.arg(format!("127.0.0.1:{port}"))
            .args(["-t", &id.to_string(), "--reannounce"]);
        let out = run_bounded("transmission-remote", cmd, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success() && text.contains("success"), "{text}");
        assert!(
            wait_until(Duration::from_secs(10), || count.load(Ordering::SeqCst)
                == 3),
            "{}",
            daemon.output()
        );
    }
}
