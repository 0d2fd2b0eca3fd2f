#![allow(clippy::unwrap_used)]
//! `torrent-rename-path` through the Transmission RPC: a file, a folder
//! and the torrent itself are renamed on disk and in `files[].name`; the
//! data stays byte-identical, the new names survive a restart, the torrent
//! verifies and seeds to a leecher that gets the original names; bad
//! arguments are refused with nothing renamed. (The installed
//! transmission-remote has no `--rename`: the RPC is called directly.)
//! And `torrent-set`'s tracker edits: the new tracker is announced to, the
//! list survives a restart (also through transmission-remote's `-td`/`-tr`).

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::rpc::*;
use support::*;

const NAME: &str = "renamedata";

/// `status`, `percentDone`, `name` and the file names of the one torrent
/// (`None` while it restarts).
fn state_of(rpc: &mut Rpc) -> Option<(u64, f64, String, Vec<String>)> {
    let l = rpc.torrents(&["status", "percentDone", "name", "files"]);
    let t: &Value = l.first()?;
    let files = t["files"].as_array()?;
    Some((
        t["status"].as_u64()?,
        t["percentDone"].as_f64()?,
        t["name"].as_str()?.to_string(),
        files
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect(),
    ))
}

fn seeding(rpc: &mut Rpc) -> bool {
    state_of(rpc).is_some_and(|s| s.0 == 6 && s.1 == 1.0)
}

/// `want` with its paths renamed as the test does.
fn renamed(want: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    want.iter()
        .map(|(k, v)| {
            let k = k
                .replace("docs/readme.txt", "docs/README.md")
                .replace("docs/", "documents/");
            (k, v.clone())
        })
        .collect()
}

#[test]
fn rename_path_renames_files_folders_and_the_torrent() {
    let tmp = TempDir::new("p23-rename");
    let data = tmp.subdir("data");
    let src = make_multi_file_dir(&data, NAME);
    let want = read_tree(&src);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let state = tmp.subdir("state");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let added = rpc.ok(
        "torrent-add",
        json!({"filename": torrent, "download-dir": data}),
    );
    let id = added["torrent-added"]["id"].as_u64().unwrap();
    assert!(wait_until(LONG_WAIT, || seeding(&mut rpc)));

    // Refused, nothing renamed.
    let readme = format!("{NAME}/docs/readme.txt");
    for (args, why) in [
        (
            json!({"ids": [id], "path": readme, "name": "a/b"}),
            "one path element",
        ),
        (
            json!({"ids": [id], "path": readme, "name": ".."}),
            "one path element",
        ),
        (
            json!({"ids": [id], "path": readme, "name": ""}),
            "one path element",
        ),
        (json!({"ids": [id], "path": readme}), "no name"),
        (json!({"ids": [id], "name": "x"}), "no path"),
        (
            json!({"ids": [id], "path": "nothere/x", "name": "y"}),
            "no such file",
        ),
        (
            json!({"ids": [id], "path": format!("{NAME}/../x"), "name": "y"}),
            "not a path",
        ),
        (
            json!({"ids": [id], "path": format!("{NAME}/gamma.bin"), "name": "alpha.bin"}),
            "already",
        ),
        (json!({"path": readme, "name": "x"}), "exactly one"),
        (json!({"ids": [999], "path": readme, "name": "x"}), "999"),
    ] {
        let e = rpc.err("torrent-rename-path", args);
        assert!(e.contains(why), "{e}");
    }
    assert_eq!(read_tree(&src), want);

    // A file, a folder, then the torrent.
    let r = rpc.ok(
        "torrent-rename-path",
        json!({"ids": [id], "path": readme, "name": "README.md"}),
    );
    assert_eq!(r, json!({"path": readme, "name": "README.md", "id": id}));
    rpc.ok(
        "torrent-rename-path",
        json!({"ids": id, "path": format!("{NAME}/docs"), "name": "documents"}),
    );
    rpc.ok(
        "torrent-rename-path",
        json!({"ids": [id], "path": NAME, "name": "renamed"}),
    );
    let new_root = data.join("renamed");
    assert!(!src.exists());
    assert_eq!(read_tree(&new_root), renamed(&want));
    let names: Vec<String> = renamed(&want)
        .keys()
        .map(|k| format!("renamed/{k}"))
        .collect();
    let check = |rpc: &mut Rpc| {
        assert!(wait_until(LONG_WAIT, || seeding(rpc)));
        let (_, _, name, mut files) = state_of(rpc).unwrap();
        files.sort();
        assert_eq!(name, "renamed");
        assert_eq!(files, names);
    };
    check(&mut rpc);

    // After a restart: the same names, complete without a check.
    daemon.kill();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    check(&mut rpc);
    // It verifies: every piece is hashed from the renamed files.
    // (The call returns once the torrent restarted without resume data.)
    rpc.ok("torrent-verify", json!({"ids": [id]}));
    check(&mut rpc);
    assert_eq!(read_tree(&new_root), renamed(&want));

    // It seeds: a leecher gets the torrent's own names, byte-identical.
    let peer_port = rpc.ok("session-get", json!({"fields": ["peer-port"]}))["peer-port"]
        .as_u64()
        .unwrap();
    let leech = tmp.subdir("leech");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&leech).args([
        "--peer",
        &format!("127.0.0.1:{peer_port}"),
        "--port",
        &free_port().to_string(),
        "--no-lsd",
        "--no-dht",
        "--once",
    ]);
    let mut leecher = Child::spawn("peer leech", cmd);
    let got = wait_until(LONG_WAIT, || {
        leech.join(NAME).exists() && read_tree(&leech.join(NAME)) == want
    });
    assert!(got, "{}", leecher.output());
    leecher.kill();
    daemon.kill();
}

/// An HTTP tracker that counts announces and answers with no peers;
/// returns its port.
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
            if buf[..n].starts_with(b"GET /announce") {
                c.fetch_add(1, Ordering::SeqCst);
            }
            let body = "d8:intervali1800e5:peers0:e";
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

fn tracker_list(rpc: &mut Rpc) -> Option<String> {
    let l = rpc.torrents(&["trackerList"]);
    Some(l.first()?["trackerList"].as_str()?.to_string())
}

#[test]
fn tracker_edits_are_announced_to_and_survive_a_restart() {
    let tmp = TempDir::new("p23-trackers");
    let data = tmp.subdir("data");
    let src = make_multi_file_dir(&data, NAME);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(
        &src,
        &torrent,
        &["--announce", "http://127.0.0.1:9/announce"],
    );
    let state = tmp.subdir("state");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let added = rpc.ok(
        "torrent-add",
        json!({"filename": torrent, "download-dir": data}),
    );
    let id = added["torrent-added"]["id"].as_u64().unwrap();
    assert!(wait_until(LONG_WAIT, || seeding(&mut rpc)));
    let (tport, count) = counting_tracker();
    let url = format!("http://127.0.0.1:{tport}/announce");
    // Bad edits: refused, nothing changes.
    for (args, why) in [
        (json!({"ids": [id], "trackerAdd": ["ftp://x/"]}), "http://"),
        (json!({"ids": [id], "trackerRemove": [5]}), "no tracker 5"),
        (json!({"ids": [id], "trackerReplace": [0]}), "pairs"),
    ] {
        let e = rpc.err("torrent-set", args);
        assert!(e.contains(why), "{e}");
    }
    assert_eq!(
        tracker_list(&mut rpc).unwrap(),
        "http://127.0.0.1:9/announce\n"
    );
    // Add ours, remove the dead one: it is announced to.
    rpc.ok("torrent-set", json!({"ids": [id], "trackerAdd": [url]}));
    rpc.ok("torrent-set", json!({"ids": [id], "trackerRemove": [0]}));
    let want = format!("{url}\n");
    assert!(wait_until(LONG_WAIT, || tracker_list(&mut rpc) == Some(want.clone())));
    assert!(
        wait_until(Duration::from_secs(30), || count.load(Ordering::SeqCst)
            >= 1),
        "{}",
        daemon.output()
    );
    // trackerList: two tiers.
    let list = format!("{url}\n\nudp://127.0.0.1:9\n");
    rpc.ok("torrent-set", json!({"ids": [id], "trackerList": list}));
    let trackers = |rpc: &mut Rpc| {
        let l = rpc.torrents(&["trackers"]);
        l.first().map(|t| t["trackers"].clone())
    };
    let expect = |t: &Value| {
        t[0]["announce"] == url.as_str()
            && t[0]["tier"] == 0
            && t[1]["announce"] == "udp://127.0.0.1:9"
            && t[1]["tier"] == 1
            && t[1]["id"] == 1
    };
    assert!(wait_until(LONG_WAIT, || trackers(&mut rpc).is_some_and(|t| expect(&t))));
    // transmission-remote's `-td` / `-tr` (trackerAdd, trackerRemove).
    if require_tool("transmission-remote") {
        let remote = |args: &[&str]| {
            let mut cmd = Command::new("transmission-remote");
            cmd.arg(format!("127.0.0.1:{port}"))
                .args(["-t", &id.to_string()])
                .args(args);
            let out = run_bounded("transmission-remote", cmd, Duration::from_secs(30));
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && !text.contains("Error"), "{text}");
            text
        };
        remote(&["-td", "http://127.0.0.1:9/extra"]);
        assert!(wait_until(LONG_WAIT, || tracker_list(&mut rpc)
            == Some(format!(
                "{url}\n\nudp://127.0.0.1:9\n\nhttp://127.0.0.1:9/extra\n"
            ))));
        let info = remote(&["-it"]);
        assert!(info.contains("Tracker 2: 127.0.0.1:9"), "{info}");
        remote(&["-tr", "2"]);
        assert!(wait_until(LONG_WAIT, || trackers(&mut rpc).is_some_and(
            |t| expect(&t) && t.as_array().is_some_and(|l| l.len() == 2)
        )));
    }
    // Kept across a restart, still complete.
    daemon.kill();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    assert!(wait_until(LONG_WAIT, || seeding(&mut rpc)));
    assert!(expect(&trackers(&mut rpc).unwrap()));
    daemon.kill();
}
