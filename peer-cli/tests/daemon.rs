//! `peer daemon` and the control commands: add a torrent to a running daemon,
//! watch it complete, pause and resume it, stop the daemon with SIGTERM,
//! start it again on the same state directory (the torrent is back, complete,
//! without the seeder), remove it with its data; the API refuses requests
//! without the token.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const NAME: &str = "daemon data";

fn peer_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = run_peer(args);
    assert!(
        out.status.success(),
        "peer {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// `peer list --json --state S` as a list of torrents (None if it failed).
fn list(state: &Path) -> Option<Vec<Value>> {
    let out = run_peer(&[os("list"), os("--json"), os("--state"), state.as_os_str()]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array().cloned()
}

fn start_daemon(name: &str, state: &Path, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(state)
        .args(["--port", &port.to_string(), "--no-lsd"])
        .env("RUST_LOG", "info");
    let mut d = Child::spawn(name, cmd);
    assert!(
        d.wait_for_output("control API on", LONG_WAIT),
        "daemon did not start\n{}",
        d.output()
    );
    assert!(
        wait_until(Duration::from_secs(10), || list(state).is_some()),
        "daemon does not answer\n{}",
        d.output()
    );
    d
}

fn sigterm(child: &mut Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon did not exit 0 within 10 s of SIGTERM: {status:?}\n{}",
        child.output()
    );
}

fn control_port(state: &Path) -> u16 {
    let text = std::fs::read_to_string(state.join("control.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    u16::try_from(v["port"].as_u64().unwrap()).unwrap()
}

fn raw_request(port: u16, req: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn daemon_add_pause_resume_restart_remove() {
    let tmp = TempDir::new("daemon");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let seed_port = free_port();
    // The seeder's embedded tracker tells the daemon where the seeder is.
    let mut create = Command::new(peer_bin());
    create
        .arg("create")
        .arg(&src)
        .arg("-o")
        .arg(&torrent)
        .args(["--announce", &format!("127.0.0.1:{seed_port}")]);
    let out = run_bounded("peer create", create, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");

    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &seed_port.to_string(),
        "--no-lsd",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        seed_port
    ))
    .is_ok()));

    let state = tmp.subdir("state");
    let down = tmp.subdir("down");
    let s = state.as_os_str();

    // No daemon yet.
    let out = run_peer(&[os("list"), os("--state"), s]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running peer daemon"));

    let mut daemon = start_daemon("peer daemon", &state, free_port());
    // control.json is private.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("control.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second daemon on the same state directory is refused.
    let mut second = Command::new(peer_bin());
    second.arg("daemon").arg("--state").arg(&state).args([
        "--port",
        &free_port().to_string(),
        "--no-lsd",
    ]);
    let out = run_bounded("second daemon", second, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{out:?}"
    );

    // Requests without (or with a wrong) token: 401.
    let port = control_port(&state);
    let r = raw_request(
        port,
        "GET /torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = raw_request(
        port,
        "GET /torrents HTTP/1.1\r\nAuthorization: Bearer 0000\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");

    let added = peer_ok(&[
        os("add"),
        torrent.as_os_str(),
        os("--dir"),
        down.as_os_str(),
        os("--state"),
        s,
    ]);
    assert!(added.starts_with("added "), "{added}");
    let complete = |t: &Value| t["progress"].as_f64() == Some(1.0) && t["state"] == "seeding";
    let mut id = String::new();
    let done = wait_until(LONG_WAIT, || {
        let Some(l) = list(&state) else { return false };
        match l.as_slice() {
            [t] => {
                id = t["id"].as_str().unwrap_or_default().to_string();
                assert_eq!(t["name"], NAME);
                complete(t)
            }
            _ => false,
        }
    });
    assert!(
        done,
        "not complete: {:?}\n{}\n{}",
        list(&state),
        daemon.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    let short = &id[..8];

    // The human-readable list and status.
    let table = peer_ok(&[os("list"), os("--state"), s]);
    assert!(table.contains(short) && table.contains(NAME), "{table}");
    let status = peer_ok(&[os("status"), os("--json"), os("--state"), s]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["torrents"], 1);
    let human = peer_ok(&[os("status"), os("--state"), s]);
    assert!(
        human.contains("port mapping: off (PEER_PORT_MAP=off)"),
        "{human}"
    );

    // Pause and resume by a prefix of the info-hash.
    peer_ok(&[os("pause"), os(short), os("--state"), s]);
    let l = list(&state).unwrap();
    assert_eq!(l[0]["paused"], true, "{l:?}");
    assert_eq!(l[0]["state"], "paused", "{l:?}");
    peer_ok(&[os("resume"), os(short), os("--state"), s]);
    let l = list(&state).unwrap();
    assert_eq!(l[0]["paused"], false, "{l:?}");
    // An unknown ID fails.
    let out = run_peer(&[os("pause"), os("ffffffff"), os("--state"), s]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A clean stop, then a restart without the seeder: the torrent is back,
    // complete from its resume data (nothing to download from anyone).
    sigterm(&mut daemon);
    assert!(!state.join("control.json").exists());
    seeder.kill();
    let mut daemon = start_daemon("peer daemon (restart)", &state, free_port());
    let back = wait_until(Duration::from_secs(30), || {
        list(&state).is_some_and(|l| l.len() == 1 && l[0]["id"] == id.as_str() && complete(&l[0]))
    });
    assert!(back, "{:?}\n{}", list(&state), daemon.output());
    assert_eq!(list(&state).unwrap()[0]["downloaded"], 0);

    // Remove with the data.
    peer_ok(&[
        os("remove"),
        os(short),
        os("--delete-data"),
        os("--state"),
        s,
    ]);
    assert_eq!(list(&state).unwrap().len(), 0);
    let left = files_under(&down);
    assert!(left.is_empty(), "files left after --delete-data: {left:?}");

    sigterm(&mut daemon);
    let out = run_peer(&[os("list"), os("--state"), s]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// `peer FILE.torrent --state DIR` brings back the torrents of earlier runs on
/// that state directory, and giving a torrent that is already there is fine.
#[test]
fn run_with_state_restores_earlier_torrents() {
    let tmp = TempDir::new("run-state");
    let data = tmp.subdir("data");
    let a = make_single_file(&data, "first.bin", 300_000);
    let b = data.join("second.bin");
    write_file(&b, &pseudo_random(200_000, 7));
    let state = tmp.subdir("state");
    let mut torrents = Vec::new();
    for src in [&a, &b] {
        let t = tmp.path().join(format!(
            "{}.torrent",
            src.file_name().unwrap().to_string_lossy()
        ));
        let mut create = Command::new(peer_bin());
        create.arg("create").arg(src).arg("-o").arg(&t);
        let out = run_bounded("peer create", create, Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}");
        torrents.push(t);
    }
    let run = |t: &Path| {
        let mut c = Command::new(peer_bin());
        c.arg(t)
            .arg("--dir")
            .arg(&data)
            .arg("--state")
            .arg(&state)
            .args(["--port", &free_port().to_string(), "--once", "--no-lsd"])
            .env("RUST_LOG", "info");
        let out = run_bounded("peer --once", c, Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    run(&torrents[0]);
    // Only the second torrent is named; the first comes back from the state dir.
    let err = run(&torrents[1]);
    assert!(
        err.contains("first.bin: resumed from"),
        "first torrent not restored:\n{err}"
    );
    assert!(err.contains("second.bin"), "{err}");
    // Naming one that is already recorded is not an error.
    let err = run(&torrents[0]);
    assert!(err.contains("second.bin: resumed from"), "{err}");
}

/// A magnet link whose only peer (`x.pe`) is not up yet stays in phase
/// `metadata`; the daemon is stopped and started again on the same state
/// directory, the magnet link is back, and it completes once the seeder runs.
#[test]
fn daemon_restarted_while_a_magnet_is_pending_finishes_it() {
    let tmp = TempDir::new("daemon-magnet");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let hash = peer_create_torrent(&src, &torrent, &[]);
    let seed_port = free_port();
    let magnet = format!("magnet:?xt=urn:btih:{hash}&dn=pending&x.pe=127.0.0.1:{seed_port}");
    let state = tmp.subdir("state");
    let down = tmp.subdir("down");
    let s = state.as_os_str();

    let mut daemon = start_daemon("peer daemon", &state, free_port());
    let added = peer_ok(&[
        os("add"),
        os(&magnet),
        os("--dir"),
        down.as_os_str(),
        os("--state"),
        s,
    ]);
    assert!(added.contains(&hash[..8]), "{added}");
    let pending =
        |l: &[Value]| l.len() == 1 && l[0]["state"] == "metadata" && l[0]["name"] == "pending";
    assert!(pending(&list(&state).unwrap()), "{:?}", list(&state));
    // Nothing to fetch from yet: still pending a few back-offs later.
    std::thread::sleep(Duration::from_secs(3));
    assert!(pending(&list(&state).unwrap()), "{:?}", list(&state));
    assert!(state.join(format!("torrents/{hash}.magnet")).exists());
    sigterm(&mut daemon);

    // The seeder comes up, then the daemon again: the magnet link carries on.
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &seed_port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    let mut daemon = start_daemon("peer daemon (again)", &state, free_port());
    let done = wait_until(LONG_WAIT, || {
        list(&state).is_some_and(|l| {
            l.len() == 1 && l[0]["state"] == "seeding" && l[0]["progress"].as_f64() == Some(1.0)
        })
    });
    assert!(
        done,
        "the restored magnet link did not complete: {:?}\n{}\n{}",
        list(&state),
        daemon.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    // The metadata is kept as a .torrent; the .magnet is gone.
    assert!(state.join(format!("torrents/{hash}.torrent")).exists());
    assert!(!state.join(format!("torrents/{hash}.magnet")).exists());
    sigterm(&mut daemon);
    seeder.kill();
}

/// A damaged `session.benc` is kept beside itself (renamed
/// `session.benc.corrupt-<seconds>`), the daemon says so with the file's
/// name and what it uses instead, and starts.
#[test]
fn corrupt_session_benc_is_kept_and_reported() {
    let tmp = TempDir::new("daemon-corrupt-settings");
    let state = tmp.subdir("state");
    let garbage = b"d11:listen porti6881e3:xyz".to_vec();
    write_file(&state.join("session.benc"), &garbage);
    let mut d = start_daemon("peer daemon corrupt", &state, free_port());
    sigterm(&mut d);
    let out = d.output();
    let kept: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("session.benc.corrupt-"))
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}\n{out}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage);
    assert!(out.contains("session.benc is unusable"), "{out}");
    assert!(
        out.contains(&format!("kept as {}", kept[0].display())),
        "{out}"
    );
    assert!(out.contains("using the default settings"), "{out}");
}
