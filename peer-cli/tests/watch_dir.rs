//! The watch folder of `peer daemon` (issue 23): a `.torrent` dropped there
//! (written slowly, in two parts) is added once complete and downloads from a
//! real seeder; a `.magnet` file is added; a bad file is renamed `*.invalid`
//! with the reason in the log; `watch-dir-delete` (settings.json) deletes
//! the files it added instead of renaming them.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const NAME: &str = "watched";

fn our_torrents(state: &Path) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("control.json")).unwrap())
            .unwrap();
    let (port, token) = (
        v["port"].as_u64().unwrap() as u16,
        v["token"].as_str().unwrap().to_string(),
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str::<Value>(body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn start_daemon(state: &Path, cwd: &Path, extra: &[&std::ffi::OsStr]) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.current_dir(cwd)
        .arg("daemon")
        .arg("--state")
        .arg(state)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(extra);
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("web interface: http://", LONG_WAIT),
        "daemon did not start\n{}",
        d.output()
    );
    d
}

#[test]
fn dropped_files_are_added_renamed_or_refused() {
    let tmp = TempDir::new("p23-watch");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let seed_port = free_port();
    peer_create_torrent(
        &src,
        &torrent,
        &["--announce", &format!("127.0.0.1:{seed_port}")],
    );
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &seed_port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        seed_port
    ))
    .is_ok()));

    let state = tmp.subdir("state");
    let down = tmp.subdir("down");
    let watch = tmp.subdir("watch");
    let mut daemon = start_daemon(&state, &down, &["--watch-dir".as_ref(), watch.as_os_str()]);

    // Written in two parts, 1.2 s apart (the folder waits for 3 s of quiet): the first part alone is not a
    // torrent, and must not be read (or refused) early.
    let bytes = std::fs::read(&torrent).unwrap();
    let dropped = watch.join("show.torrent");
    let mut f = std::fs::File::create(&dropped).unwrap();
    f.write_all(&bytes[..bytes.len() / 2]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    f.write_all(&bytes[bytes.len() / 2..]).unwrap();
    f.flush().unwrap();
    drop(f);
    // A bad file, a magnet link, a file that is neither.
    std::fs::write(watch.join("broken.torrent"), b"d4:infoi3ee").unwrap();
    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=from-magnet\n";
    std::fs::write(watch.join("m.magnet"), magnet).unwrap();
    std::fs::write(watch.join("notes.txt"), b"left alone").unwrap();

    assert!(
        wait_until(Duration::from_secs(30), || watch
            .join("show.torrent.added")
            .exists()
            && watch.join("m.magnet.added").exists()
            && watch.join("broken.torrent.invalid").exists()),
        "{:?}\n{}",
        std::fs::read_dir(&watch)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>(),
        daemon.output()
    );
    assert!(!dropped.exists());
    assert!(watch.join("notes.txt").exists());
    assert!(
        daemon.logged("broken.torrent is not usable: not a torrent"),
        "{}",
        daemon.output()
    );
    // It downloads, with the daemon's defaults (saved under its working directory).
    let done = wait_until(LONG_WAIT, || {
        our_torrents(&state)
            .iter()
            .any(|t| t["name"] == NAME && t["progress"] == 1.0)
    });
    assert!(
        done,
        "{:?}\n{}\n{}",
        our_torrents(&state),
        daemon.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    assert!(our_torrents(&state)
        .iter()
        .any(|t| t["name"] == "from-magnet"));
    assert_eq!(our_torrents(&state).len(), 2);
    daemon.kill();

    // watch-dir-delete in settings.json: the added file is deleted.
    let state2 = tmp.subdir("state2");
    let watch2 = tmp.subdir("watch2");
    std::fs::write(
        state2.join("settings.json"),
        format!(
            r#"{{"watch-dir":{:?},"watch-dir-delete":true}}"#,
            watch2.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut daemon2 = start_daemon(&state2, &down, &[]);
    std::fs::write(watch2.join("m.magnet"), magnet).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !watch2
            .join("m.magnet")
            .exists()),
        "{}",
        daemon2.output()
    );
    assert!(!watch2.join("m.magnet.added").exists());
    assert_eq!(our_torrents(&state2).len(), 1);
    daemon2.kill();
    seeder.kill();
}
