//! `--encryption prefer|require|off` on the command line: a bad value is a
//! usage error (exit 2); `peer daemon --encryption` shows in `peer status
//! --json` and is kept in the state directory for the next start.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

fn status(state: &Path) -> Option<Value> {
    let out = run_peer(&[
        "status".as_ref(),
        "--json".as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn daemon(state: &Path, extra: &[&str]) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(state)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(extra);
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("control API on", LONG_WAIT),
        "daemon did not start\n{}",
        d.output()
    );
    assert!(
        wait_until(Duration::from_secs(10), || status(state).is_some()),
        "daemon does not answer\n{}",
        d.output()
    );
    d
}

fn stop(mut d: Child) {
    let st = Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon did not exit 0: {status:?}\n{}",
        d.output()
    );
}

#[test]
fn a_bad_policy_is_a_usage_error() {
    for args in [
        vec!["x.torrent", "--encryption", "always"],
        vec!["daemon", "--encryption", "yes"],
        vec!["x.torrent", "--encryption"],
    ] {
        let out = run_peer(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--encryption"), "{args:?}: {err}");
    }
}

#[test]
fn daemon_policy_is_shown_and_kept() {
    let tmp = TempDir::new("cli-enc");
    let state = tmp.subdir("state");
    let d = daemon(&state, &["--encryption", "require"]);
    assert_eq!(status(&state).unwrap()["encryption"], "require");
    stop(d);
    // Started again without the flag: the saved policy applies.
    let d = daemon(&state, &[]);
    assert_eq!(status(&state).unwrap()["encryption"], "require");
    stop(d);
    // A flag wins over the saved policy (and is saved in turn).
    let d = daemon(&state, &["--encryption", "off"]);
    assert_eq!(status(&state).unwrap()["encryption"], "off");
    stop(d);
    let d = daemon(&state, &[]);
    assert_eq!(status(&state).unwrap()["encryption"], "off");
    stop(d);
    // A fresh state directory starts with the default.
    let fresh = tmp.subdir("fresh");
    let d = daemon(&fresh, &[]);
    assert_eq!(status(&fresh).unwrap()["encryption"], "prefer");
    stop(d);
}
