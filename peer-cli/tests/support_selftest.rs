//! Self-tests of the interop harness in `support/` (no external tools needed).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn json_parser_reads_what_lt_info_prints() {
    let v = Json::parse(
        r#"{"files": [{"length": 3, "path": "a/b\u00e9"}], "info_hash": "ab", "n": -1.5e2, "p": false, "x": null}"#,
    )
    .expect("parse");
    assert_eq!(v.get("info_hash").and_then(Json::as_str), Some("ab"));
    let files = v.get("files").and_then(Json::as_array).expect("files");
    assert_eq!(files[0].get("length").and_then(Json::as_i128), Some(3));
    assert_eq!(files[0].get("path").and_then(Json::as_str), Some("a/bé"));
    assert_eq!(v.get("p").and_then(Json::as_bool), Some(false));
    assert!(Json::parse("{\"a\":1} x").is_err());
    assert!(Json::parse("[1,2").is_err());
}

#[test]
fn support_helpers_work() {
    let t = TempDir::new("selftest");
    let top = make_multi_file_dir(t.path(), "m");
    let copy = t.path().join("copy");
    for (rel, data) in read_tree(&top) {
        write_file(&copy.join(rel), &data);
    }
    assert_same_data(&top, &copy);
    assert!(free_port() > 0);
    let start = Instant::now();
    assert!(!wait_until(Duration::from_millis(300), || false));
    assert!(start.elapsed() >= Duration::from_millis(300));
    let mut c = Child::spawn("sleep", {
        let mut c = Command::new("sleep");
        c.arg("30");
        c
    });
    assert!(c.wait_exit(Duration::from_millis(200)).is_none());
    c.kill();
    assert!(c.try_status().is_some());
}

#[test]
fn children_run_with_the_dht_routers_off_unless_the_test_chooses() {
    let echo = |tweak: &dyn Fn(&mut Command)| {
        let mut c = Command::new("sh");
        c.args(["-c", "echo \"[${PEER_DHT_BOOTSTRAP-unset}]\""]);
        tweak(&mut c);
        let mut child = Child::spawn("sh", c);
        child.wait_exit(Duration::from_secs(10)).expect("sh exits");
        String::from_utf8_lossy(&child.stdout_bytes())
            .trim()
            .to_string()
    };
    assert_eq!(echo(&|_| {}), "[none]");
    assert_eq!(
        echo(&|c| {
            c.env(DHT_ENV, "a.example:1");
        }),
        "[a.example:1]"
    );
    assert_eq!(
        echo(&|c| {
            c.env_remove(DHT_ENV);
        }),
        "[unset]"
    );
}

#[test]
fn children_run_with_port_mapping_off_unless_the_test_chooses() {
    let echo = |tweak: &dyn Fn(&mut Command)| {
        let mut c = Command::new("sh");
        c.args(["-c", "echo \"[${PEER_PORT_MAP-unset}]\""]);
        tweak(&mut c);
        let mut child = Child::spawn("sh", c);
        child.wait_exit(Duration::from_secs(10)).expect("sh exits");
        String::from_utf8_lossy(&child.stdout_bytes())
            .trim()
            .to_string()
    };
    assert_eq!(echo(&|_| {}), "[off]");
    assert_eq!(
        echo(&|c| {
            c.env(PORT_MAP_ENV, "on");
        }),
        "[on]"
    );
}
