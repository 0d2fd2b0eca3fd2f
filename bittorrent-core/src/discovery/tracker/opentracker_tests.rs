#![allow(clippy::unwrap_used)]
//! Interop: our announce client against opentracker (Debian's build:
//! whitelist-only, chroots to `tracker.rootdir` and drops privileges).
//!
//! Skipped with a loud message when opentracker is not installed, unless
//! `CI=true`, in which case its absence is a failure.
#![cfg(unix)]

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::discovery::tracker::{
    announce_with, AnnounceEvent, AnnounceOptions, AnnounceRequest, AnnounceResponse,
};
use crate::InfoHash;

/// Kills the opentracker we started (by its pid) and removes its directory,
/// even when the test fails.
struct Guard {
    child: Child,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_opentracker() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("opentracker"))
        .find(|p| p.is_file())
}

/// A port free for both TCP and UDP on 127.0.0.1 (small race accepted).
fn free_port() -> u16 {
    for _ in 0..50 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn write_world_readable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn start(bin: &Path, ih: InfoHash) -> (Guard, u16) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("peer-opentracker-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_world_readable(&dir.join("whitelist.txt"), &format!("{}\n", ih.to_hex()));
    // The whitelist path is relative: opentracker chroots to `tracker.rootdir`
    // (when root) before reading it; otherwise it is relative to the cwd.
    let conf = format!(
        "listen.tcp 127.0.0.1:{port}\nlisten.udp 127.0.0.1:{port}\naccess.whitelist whitelist.txt\ntracker.rootdir {}\ntracker.user nobody\n",
        dir.display()
    );
    let conf_path = dir.join("opentracker.conf");
    write_world_readable(&conf_path, &conf);
    let child = Command::new(bin)
        .arg("-f")
        .arg(&conf_path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard { child, dir };
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = guard.child.try_wait().unwrap() {
            panic!("opentracker exited early: {status}");
        }
        if TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            break;
        }
        assert!(Instant::now() < end, "opentracker did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, port)
}

fn req(ih: InfoHash, id: u8, port: u16, event: AnnounceEvent) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: ih,
        peer_id: [id; 20],
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event,
        numwant: 50,
        key: u32::from(id) * 7919,
    }
}

fn has(r: &AnnounceResponse, port: u16) -> bool {
    r.peers.contains(&SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn interop_with_opentracker() {
    let Some(bin) = find_opentracker() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("opentracker not installed, and CI=true requires it");
        }
        eprintln!("\n\n*** SKIP: opentracker not installed ***\n");
        return;
    };
    let ih = InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap();
    let (_guard, port) = start(&bin, ih);
    let opts = AnnounceOptions {
        timeout: Duration::from_secs(5),
        udp_base_timeout: Duration::from_millis(500),
        udp_max_retries: 3,
        source: Default::default(),
    };
    let http = format!("http://127.0.0.1:{port}/announce");
    let udp = format!("udp://127.0.0.1:{port}/announce");

    // HTTP: two peers see each other.
    // opentracker loads its whitelist in a worker thread after it starts
    // listening: until then it refuses every torrent. Retry briefly.
    let end = Instant::now() + Duration::from_secs(10);
    let a = loop {
        match announce_with(&http, &req(ih, 1, 40001, AnnounceEvent::Started), &opts) {
            Err(crate::discovery::tracker::TrackerError::Failure(f)) if Instant::now() < end => {
                eprintln!("opentracker not ready yet: {f}");
                std::thread::sleep(Duration::from_millis(50));
            }
            r => break r.unwrap(),
        }
    };
    assert!(a.interval > Duration::ZERO);
    let b = announce_with(&http, &req(ih, 2, 40002, AnnounceEvent::Started), &opts).unwrap();
    assert!(has(&b, 40001), "{b:?}");
    assert_eq!(b.incomplete, Some(2));
    let a = announce_with(&http, &req(ih, 1, 40001, AnnounceEvent::None), &opts).unwrap();
    assert!(has(&a, 40002), "{a:?}");

    // UDP: two more peers, seeing everyone.
    let c = announce_with(&udp, &req(ih, 3, 40003, AnnounceEvent::Started), &opts).unwrap();
    assert!(has(&c, 40001) && has(&c, 40002), "{c:?}");
    let d = announce_with(&udp, &req(ih, 4, 40004, AnnounceEvent::Started), &opts).unwrap();
    assert!(has(&d, 40003), "{d:?}");
    assert_eq!(d.incomplete, Some(4));

    // Stopped removes (over UDP), seen over HTTP.
    announce_with(&udp, &req(ih, 4, 40004, AnnounceEvent::Stopped), &opts).unwrap();
    let a = announce_with(&http, &req(ih, 1, 40001, AnnounceEvent::None), &opts).unwrap();
    assert!(!has(&a, 40004), "{a:?}");

    // Scrape over both transports.
    let s = crate::discovery::tracker::scrape(&http, &[ih], &opts).unwrap();
    assert_eq!(s[0].1.incomplete, 3, "{s:?}");
    let s = crate::discovery::tracker::scrape(&udp, &[ih], &opts).unwrap();
    assert_eq!(s[0].1.incomplete, 3, "{s:?}");

    // A torrent not on the whitelist is refused with a failure reason.
    let other = InfoHash([0x55; 20]);
    let e = announce_with(&http, &req(other, 5, 40005, AnnounceEvent::Started), &opts).unwrap_err();
    assert!(
        matches!(e, crate::discovery::tracker::TrackerError::Failure(_)),
        "{e:?}"
    );
}
