//! File selection and rate limits from the command line and the control
//! API: `peer info` lists indices, `peer FILE --only/--skip/--files --once`
//! downloads the chosen files and exits, the skipped ones are never
//! created; `peer daemon` adds a torrent with a selection, lists its files
//! and completes the skipped ones when they are selected through
//! `POST /torrents/ID/files`; rate limits through the API.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// A directory `sel` of files sized so that pieces of 16 KiB span them.
fn make_tree(root: &Path) -> PathBuf {
    let dir = root.join("sel");
    write_file(&dir.join("a.txt"), &pseudo_random(40_000, 31));
    write_file(&dir.join("big/b.bin"), &pseudo_random(90_001, 32));
    write_file(&dir.join("c.txt"), &pseudo_random(30_000, 33));
    write_file(&dir.join("d.bin"), &pseudo_random(20_000, 34));
    dir
}

/// A torrent of `src`; with `announce`, the seeder on that port is its
/// tracker (how the daemon finds it).
fn create_torrent(src: &Path, out: &Path, announce: Option<u16>) {
    let mut create = Command::new(peer_bin());
    create
        .arg("create")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--piece-length", "16K"]);
    if let Some(p) = announce {
        create.args(["--announce", &format!("127.0.0.1:{p}")]);
    }
    let o = run_bounded("peer create", create, Duration::from_secs(60));
    assert!(o.status.success(), "{o:?}");
}

fn seeder(torrent: &Path, dir: &Path, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut s = Child::spawn("peer seed", cmd);
    assert!(
        s.wait_for_output("pieces present", LONG_WAIT),
        "seeder did not start\n{}",
        s.output()
    );
    s
}

#[test]
fn info_lists_indices_and_once_downloads_only_the_selected_files() {
    let tmp = TempDir::new("select-cli");
    let seed_dir = tmp.subdir("seed");
    let src = make_tree(&seed_dir);
    let torrent = tmp.path().join("sel.torrent");
    create_torrent(&src, &torrent, None);

    let out = run_peer(&[
        std::ffi::OsStr::new("info"),
        torrent.as_os_str(),
        std::ffi::OsStr::new("--json"),
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    let paths: Vec<(u64, &str)> = files
        .iter()
        .map(|f| (f["index"].as_u64().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            (0, "sel/a.txt"),
            (1, "sel/big/b.bin"),
            (2, "sel/c.txt"),
            (3, "sel/d.bin")
        ]
    );
    let text = run_peer(&[std::ffi::OsStr::new("info"), torrent.as_os_str()]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("  1: sel/big/b.bin (90001 bytes)"), "{text}");

    let port = free_port();
    let _seed = seeder(&torrent, &seed_dir, port);
    // --only '*.txt' plus --files 3 (d.bin), minus nothing: a, c and d.
    let down = tmp.subdir("down");
    let mut c = Command::new(peer_bin());
    c.arg(&torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--only", "*.txt", "--files", "3", "--skip", "nothing*"])
        .args(["--max-download-rate", "4M", "--max-upload-rate", "1M"])
        .args([
            "--port",
            &free_port().to_string(),
            "--once",
            "--no-lsd",
            "--no-dht",
        ]);
    let out = run_bounded("peer --once --only", c, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["a.txt", "c.txt", "d.bin"] {
        assert_eq!(
            std::fs::read(down.join("sel").join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!down.join("sel/big/b.bin").exists(), "skipped file created");
    assert!(
        !down.join("sel/big").exists(),
        "skipped file's directory created"
    );

    // Bad selections are refused before anything starts.
    let bad = |args: &[&str], code: i32| {
        let mut c = Command::new(peer_bin());
        c.arg(&torrent)
            .arg("--dir")
            .arg(tmp.subdir("bad"))
            .args(args)
            .args([
                "--port",
                &free_port().to_string(),
                "--once",
                "--no-lsd",
                "--no-dht",
            ]);
        let out = run_bounded("peer bad selection", c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    };
    bad(&["--files", "9"], 2);
    bad(&["--only", "[x"], 2);
    bad(&["--only", "*.iso"], 1);
    bad(&["--max-download-rate", "fast"], 2);
}

fn api(port: u16, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status: u16 = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = out
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn daemon_selects_files_and_limits_rates_through_the_api() {
    let tmp = TempDir::new("select-api");
    let seed_dir = tmp.subdir("seed");
    let src = make_tree(&seed_dir);
    let torrent = tmp.path().join("sel.torrent");
    let seed_port = free_port();
    create_torrent(&src, &torrent, Some(seed_port));
    let _seed = seeder(&torrent, &seed_dir, seed_port);

    let state = tmp.subdir("state");
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(&state)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--max-upload-rate", "3M"])
        .env("RUST_LOG", "info");
    let mut daemon = Child::spawn("peer daemon", cmd);
    assert!(
        daemon.wait_for_output("control API on", LONG_WAIT),
        "{}",
        daemon.output()
    );
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("control.json")).unwrap())
            .unwrap();
    let port = u16::try_from(info["port"].as_u64().unwrap()).unwrap();
    let token = info["token"].as_str().unwrap().to_string();
    let call = |m: &str, p: &str, b: Option<Value>| api(port, &token, m, p, b);

    assert_eq!(
        call("GET", "/limits", None),
        (
            200,
            json!({"max_download_rate": null, "max_upload_rate": 3 << 20})
        )
    );
    let (code, v) = call(
        "POST",
        "/limits",
        Some(json!({"max_download_rate": "2M", "max_upload_rate": 0})),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        json!({"max_download_rate": 2 << 20, "max_upload_rate": null})
    );
    assert_eq!(
        call("POST", "/limits", Some(json!({"max_download_rate": "x"}))).0,
        400
    );

    let down = tmp.subdir("down");
    // `peer add` sends the selection and the limit as keys of POST /torrents.
    let out = run_peer(&[
        std::ffi::OsStr::new("add"),
        torrent.as_os_str(),
        std::ffi::OsStr::new("--dir"),
        down.as_os_str(),
        std::ffi::OsStr::new("--skip"),
        std::ffi::OsStr::new("*.bin"),
        std::ffi::OsStr::new("--max-upload-rate"),
        std::ffi::OsStr::new("512K"),
        std::ffi::OsStr::new("--json"),
        std::ffi::OsStr::new("--state"),
        state.as_os_str(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    // The seeder's embedded tracker tells the daemon where it is.
    let ok = wait_until(LONG_WAIT, || {
        let st = call("GET", &format!("/torrents/{id}"), None).1;
        st["selection_complete"] == json!(true) && st["state"] == "seeding"
    });
    let st = call("GET", &format!("/torrents/{id}"), None).1;
    assert!(ok, "not finished: {st}\n{}", daemon.output());
    assert_eq!(st["max_upload_rate"], json!(512 * 1024));
    assert!(st["pieces_wanted"].as_u64().unwrap() < st["pieces_total"].as_u64().unwrap());
    assert!(!down.join("sel/d.bin").exists() && !down.join("sel/big/b.bin").exists());

    let (code, files) = call("GET", &format!("/torrents/{id}/files"), None);
    assert_eq!(code, 200);
    let prios: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["priority"].as_str().unwrap())
        .collect();
    assert_eq!(prios, ["normal", "skip", "normal", "skip"]);
    assert_eq!(files["files"][0]["progress"], json!(1.0));

    // Select b.bin (and keep d.bin skipped): it is completed.
    let (code, v) = call(
        "POST",
        &format!("/torrents/{id}/files"),
        Some(json!({"files": [{"index": 1, "priority": "normal"}]})),
    );
    assert_eq!(code, 200, "{v}");
    let ok = wait_until(LONG_WAIT, || {
        call("GET", &format!("/torrents/{id}/files"), None).1["files"][1]["progress"] == json!(1.0)
    });
    assert!(ok, "b.bin not completed\n{}", daemon.output());
    assert_eq!(
        std::fs::read(down.join("sel/big/b.bin")).unwrap(),
        std::fs::read(src.join("big/b.bin")).unwrap()
    );
    assert!(!down.join("sel/d.bin").exists());
    let bad = call(
        "POST",
        &format!("/torrents/{id}/files"),
        Some(json!({"priorities": ["skip", "skip", "skip", "skip"]})),
    );
    assert_eq!(bad.0, 400, "{bad:?}");
    let (code, v) = call(
        "POST",
        &format!("/torrents/{id}/limits"),
        Some(json!({"max_download_rate": 1000000})),
    );
    assert_eq!(code, 200);
    assert_eq!(v["max_download_rate"], json!(1_000_000));
    assert_eq!(v["max_upload_rate"], json!(512 * 1024));
    daemon.kill();
}
