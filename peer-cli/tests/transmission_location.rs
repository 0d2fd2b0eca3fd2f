#![allow(clippy::unwrap_used)]
//! `torrent-set-location` through the Transmission RPC: the data moves,
//! the resume data follows (no check of the data again), the new place
//! survives a restart; bad locations are refused with nothing moved.

mod support;

use serde_json::json;
use std::path::Path;
use support::rpc::*;
use support::*;

const NAME: &str = "movedata";

/// `downloadDir` and `status` of the one torrent.
fn dir_and_status(rpc: &mut Rpc) -> (String, u64) {
    let t = &rpc.torrents(&["downloadDir", "status"])[0];
    (
        t["downloadDir"].as_str().unwrap().to_string(),
        t["status"].as_u64().unwrap(),
    )
}

#[test]
fn set_location_moves_the_data_and_the_resume_data_follows() {
    let tmp = TempDir::new("p23-location");
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
    assert!(wait_until(LONG_WAIT, || dir_and_status(&mut rpc).1 == 6));
    // Bad locations: refused, nothing moves.
    let state_str = state.to_str().unwrap();
    for (args, why) in [
        (
            json!({"ids": [id], "location": "relative/dir", "move": true}),
            "absolute",
        ),
        (
            json!({"ids": [id], "location": state_str, "move": true}),
            "state directory",
        ),
        (json!({"ids": [id]}), "no location"),
        (
            json!({"ids": [999], "location": "/tmp/x", "move": true}),
            "999",
        ),
    ] {
        let e = rpc.err("torrent-set-location", args);
        assert!(e.contains(why), "{e}");
    }
    assert_eq!(read_tree(&src), want);
    // Move it.
    let other = tmp.path().join("other/place");
    rpc.ok(
        "torrent-set-location",
        json!({"ids": [id], "location": other, "move": true}),
    );
    assert_eq!(read_tree(&other.join(NAME)), want);
    assert!(!src.exists(), "the old files are gone");
    let other_str = other.to_str().unwrap().to_string();
    assert!(wait_until(LONG_WAIT, || dir_and_status(&mut rpc)
        == (other_str.clone(), 6)));
    // The resume data follows (its save path and file stamps match), so
    // the data need not be checked again.
    let hash = rpc.torrents(&["hashString"])[0]["hashString"]
        .as_str()
        .unwrap()
        .to_string();
    let resume = std::fs::read(state.join(format!("torrents/{hash}.resume"))).unwrap();
    let resume = String::from_utf8_lossy(&resume);
    assert!(
        resume.contains(&format!("{}:{other_str}", other_str.len())),
        "{resume}"
    );
    assert_eq!(
        our_torrents(&state)[0]["save_path"].as_str().unwrap(),
        other_str
    );
    // After a restart it is still there, complete.
    daemon.kill();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    assert!(wait_until(LONG_WAIT, || !rpc.torrents(&["id"]).is_empty()));
    assert!(wait_until(LONG_WAIT, || dir_and_status(&mut rpc)
        == (other_str.clone(), 6)));
    assert_eq!(
        rpc.torrents(&["percentDone"])[0]["percentDone"].as_f64(),
        Some(1.0)
    );
    // Without `move`: it looks for its data in the new place (none there:
    // nothing complete), and the files stay where they are.
    let empty = tmp.subdir("empty");
    rpc.ok(
        "torrent-set-location",
        json!({"ids": [id], "location": empty}),
    );
    assert!(wait_until(LONG_WAIT, || {
        let t = &rpc.torrents(&["downloadDir", "percentDone"])[0];
        t["downloadDir"] == empty.to_str().unwrap() && t["percentDone"] == 0.0
    }));
    assert_eq!(read_tree(&other.join(NAME)), want);
    assert!(Path::new(&other).join(NAME).exists());
    // torrent-set location: the same, and back to the data.
    rpc.ok("torrent-set", json!({"ids": [id], "location": other}));
    assert!(wait_until(LONG_WAIT, || dir_and_status(&mut rpc)
        == (other_str.clone(), 6)));
    // Our API moves it too: POST /torrents/ID/move.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("control.json")).unwrap())
            .unwrap();
    let body = json!({"dir": data, "move": true}).to_string();
    let (status, _, text) = http(
        info["port"].as_u64().unwrap() as u16,
        &format!(
            "POST /torrents/{hash}/move HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n{body}",
            info["token"].as_str().unwrap(),
            body.len()
        ),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(read_tree(&src), want);
    assert!(!other.join(NAME).exists());
    assert_eq!(
        our_torrents(&state)[0]["save_path"].as_str().unwrap(),
        data.to_str().unwrap()
    );
    daemon.kill();
}
