//! The web interface in a real browser: headless Chromium driven by
//! `tests/web/browser.py` (Python selenium with the system chromedriver)
//! logs in with the URL `peer daemon` prints, adds a torrent by `.torrent`
//! upload and one by magnet link, watches both reach seeding against a local
//! `peer` seeder, opens the detail view, pauses and resumes, checks that
//! requests without the cookie or from another origin are refused, and
//! removes both (one with its data), then adds one by URL (served on loopback).
//!
//! Needs `/usr/bin/chromium`, `/usr/bin/chromedriver` and selenium for
//! `/usr/bin/python3` (`.ci/run` installs them): SKIP by hand, FAIL under CI.
//! `PEER_WEB_SCREENSHOT=PATH` saves a screenshot of the main view there.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn browser_available() -> bool {
    let mut ok = true;
    for (path, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            ok = skip_or_fail(path, &format!("apt-get install {pkg}"));
        }
    }
    let selenium = Command::new(SYSTEM_PYTHON)
        .args(["-c", "import selenium"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !selenium {
        ok = skip_or_fail(
            "selenium",
            "/usr/bin/python3 -m pip install --break-system-packages selenium",
        ) && ok;
    }
    ok
}

#[test]
fn web_interface_in_chromium() {
    if !browser_available() {
        return;
    }
    let tmp = TempDir::new("web-browser");
    let seed_dir = tmp.subdir("seed");
    let seed_port = free_port();
    let announce = format!("127.0.0.1:{seed_port}");
    // A multi-file torrent to upload, a single file to add by magnet link.
    let multi = make_multi_file_dir(&seed_dir, "web upload");
    let upload = tmp.path().join("upload.torrent");
    peer_create_torrent(&multi, &upload, &["--announce", &announce]);
    let single = make_single_file(&seed_dir, "web magnet.bin", 3 * 1024 * 1024 + 12_345);
    let by_magnet = tmp.path().join("magnet.torrent");
    let ih = peer_create_torrent(&single, &by_magnet, &["--announce", &announce]);
    let magnet = format!("magnet:?xt=urn:btih:{ih}&dn=web%20magnet.bin&x.pe={announce}");

    let mut seed = Command::new(peer_bin());
    seed.arg(&upload)
        .arg(&by_magnet)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &seed_port.to_string(), "--no-lsd", "--no-dht"]);
    let seeder = Child::spawn("peer seed", seed);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect(("127.0.0.1", seed_port))
            .is_ok()),
        "seeder did not listen\n{}",
        seeder.output()
    );

    let state = tmp.subdir("state");
    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon").arg("--state").arg(&state).args([
        "--port",
        &free_port().to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut daemon = Child::spawn("peer daemon", cmd);
    assert!(
        daemon.wait_for_output("web interface: http://", LONG_WAIT),
        "daemon did not start\n{}",
        daemon.output()
    );
    let out = daemon.output();
    let login = out
        .split("web interface: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();

    let cfg = serde_json::json!({
        "login": login,
        "torrent": upload,
        "torrent_name": "web upload",
        "magnet": magnet,
        "magnet_name": "web magnet.bin",
        "dir": down,
        "screenshot": std::env::var("PEER_WEB_SCREENSHOT").ok(),
    });
    let mut py = Command::new(SYSTEM_PYTHON);
    py.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/browser.py"))
        .arg(cfg.to_string());
    let run = run_bounded("browser.py", py, Duration::from_secs(400));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if run.status.code() == Some(77) {
        skip_or_fail("selenium", &stdout);
        return;
    }
    assert!(
        run.status.success() && stdout.contains("PASS"),
        "browser test failed:\n{stdout}\n{stderr}\n--- daemon ---\n{}\n--- seeder ---\n{}",
        daemon.output(),
        seeder.output()
    );
    loud(&format!("web interface in Chromium:\n{stdout}"));
    // The data arrived byte for byte before removal kept the upload's files
    // and deleted the magnet's.
    assert_same_data(&multi, &down.join("web upload"));
    assert!(
        !down.join("web magnet.bin").exists(),
        "remove with data left the file"
    );
}
