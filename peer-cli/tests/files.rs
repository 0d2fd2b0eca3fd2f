//! Big torrents under a small descriptor limit, and symlinks in the
//! download directory, through the `peer` binary.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// `peer ARGS...` under `ulimit -n LIMIT` (soft and hard: `peer` cannot
/// raise it).
fn peer_limited(limit: u32, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(peer_bin())
        .args(args);
    c
}

/// A 1,500-file torrent downloads completely with 256 descriptors for the
/// seeder and 256 for the leecher (one descriptor per file would need
/// 1,500): the file pool keeps at most a quarter of the limit open.
#[test]
fn fifteen_hundred_files_under_ulimit_256() {
    let tmp = TempDir::new("ulimit");
    let src = tmp.subdir("src");
    let top = src.join("many");
    for i in 0..1500u64 {
        let len = 700 + (i * 37) % 1500;
        write_file(
            &top.join(format!("d{}/f{i}.bin", i / 100)),
            &pseudo_random(len as usize, i + 1),
        );
    }
    let torrent = tmp.path().join("many.torrent");
    peer_create_torrent(&top, &torrent, &["--piece-length", "32768"]);
    let port = free_port();
    let os = |s: &str| std::ffi::OsString::from(s);
    let t = torrent.as_os_str();
    let seed_args: Vec<std::ffi::OsString> = vec![
        t.to_os_string(),
        os("--dir"),
        src.clone().into_os_string(),
        os("--port"),
        os(&port.to_string()),
        os("--no-dht"),
        os("--no-lsd"),
    ];
    let seed_refs: Vec<&std::ffi::OsStr> = seed_args.iter().map(|a| a.as_os_str()).collect();
    let mut seeder = Child::spawn("seeder", peer_limited(256, &seed_refs));
    let leech = tmp.subdir("leech");
    let peer_addr = os(&format!("127.0.0.1:{port}"));
    let leech_port = os(&free_port().to_string());
    let leech_args: Vec<std::ffi::OsString> = vec![
        t.to_os_string(),
        os("--dir"),
        leech.clone().into_os_string(),
        os("--port"),
        leech_port,
        os("--peer"),
        peer_addr,
        os("--once"),
        os("--no-dht"),
        os("--no-lsd"),
    ];
    let leech_refs: Vec<&std::ffi::OsStr> = leech_args.iter().map(|a| a.as_os_str()).collect();
    let out = run_bounded(
        "leecher",
        peer_limited(256, &leech_refs),
        Duration::from_secs(240),
    );
    seeder.kill();
    assert!(
        out.status.success(),
        "leecher failed under ulimit -n 256: {}\nseeder: {}",
        String::from_utf8_lossy(&out.stderr),
        seeder.output()
    );
    assert_same_data(&top, &leech.join("many"));
}

/// `peer` with a symlink where a torrent file goes: exit 1, the error names
/// the link, the file it points to is untouched. The same for a directory.
#[test]
fn symlinks_in_the_download_dir_stop_peer() {
    let tmp = TempDir::new("symlink");
    let src = tmp.subdir("src");
    let top = make_multi_file_dir(&src, "tree");
    let torrent = tmp.path().join("tree.torrent");
    peer_create_torrent(&top, &torrent, &[]);
    let outside = tmp.subdir("outside");
    write_file(&outside.join("victim"), b"precious");
    for (link, target) in [
        ("tree/alpha.bin", outside.join("victim")),
        ("tree/docs", outside.clone()),
    ] {
        let dir = tmp.subdir(&format!("leech-{}", link.replace('/', "-")));
        let l = dir.join(link);
        std::fs::create_dir_all(l.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &l).unwrap();
        let out = run_peer(&[
            torrent.as_os_str(),
            "--dir".as_ref(),
            dir.as_os_str(),
            "--port".as_ref(),
            free_port().to_string().as_ref(),
            "--once".as_ref(),
            "--no-dht".as_ref(),
            "--no-lsd".as_ref(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(link) && err.contains("symbolic link"),
            "error does not name {link}: {err}"
        );
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"precious");
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            1,
            "something was created outside"
        );
        assert!(!Path::new(&dir.join("tree/gamma.bin")).exists());
    }
}
