#![allow(clippy::unwrap_used)]
//! The announce client against the embedded tracker over loopback HTTP and
//! UDP, and against dead, garbage-answering and hanging trackers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::discovery::tracker::{
    announce, announce_with, looks_like_http, scrape, AnnounceEvent, AnnounceOptions,
    AnnounceRequest, TrackerConfig, TrackerError, TrackerServer,
};
use crate::InfoHash;

struct Harness {
    server: Arc<TrackerServer>,
    http: SocketAddr,
    udp: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn_tracker(cfg: TrackerConfig) -> Harness {
    let server = Arc::new(TrackerServer::new(cfg));
    let stop = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let http = listener.local_addr().unwrap();
    let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = udp_sock.local_addr().unwrap();
    let (s1, st1) = (server.clone(), stop.clone());
    let tcp_thread = thread::spawn(move || {
        // Bounded: runs until `stop`, polling every 10 ms.
        while !st1.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    let deadline = Instant::now() + Duration::from_secs(2);
                    let mut first = [0u8; 4];
                    let n = stream.read(&mut first).unwrap_or(0);
                    if n > 0 && looks_like_http(&first[..n]) {
                        let _ = s1.serve_http_connection(&mut stream, &first[..n], deadline);
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let (s2, st2) = (server.clone(), stop.clone());
    let udp_thread = thread::spawn(move || {
        s2.run_udp(&udp_sock, &st2).unwrap();
    });
    Harness {
        server,
        http,
        udp,
        stop,
        threads: vec![tcp_thread, udp_thread],
    }
}

fn ih() -> InfoHash {
    InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap()
}

fn req(id: u8, port: u16, event: AnnounceEvent) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: ih(),
        peer_id: [id; 20],
        port,
        uploaded: 0,
        downloaded: 0,
        left: 100,
        event,
        numwant: 50,
        key: u32::from(id),
    }
}

fn opts(ms: u64) -> AnnounceOptions {
    AnnounceOptions {
        timeout: Duration::from_millis(ms),
        udp_base_timeout: Duration::from_millis(200),
        udp_max_retries: 3,
        source: Default::default(),
    }
}

fn cfg() -> TrackerConfig {
    TrackerConfig {
        open: false,
        max_requests_per_sec_per_ip: 10_000,
        ..Default::default()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn sorted(mut v: Vec<SocketAddr>) -> Vec<SocketAddr> {
    v.sort();
    v
}

#[test]
fn three_peers_over_http_and_udp() {
    let h = spawn_tracker(cfg());
    h.server.allow(ih());
    let http = format!("http://{}/announce", h.http);
    let bare = h.http.to_string();
    let udp = format!("udp://{}", h.udp);
    let o = opts(5000);

    let a = announce_with(&http, &req(1, 7001, AnnounceEvent::Started), &o).unwrap();
    assert!(a.peers.is_empty());
    assert_eq!(a.interval, Duration::from_secs(1800));
    assert_eq!(a.min_interval, Some(Duration::from_secs(300)));

    let b = announce_with(&udp, &req(2, 7002, AnnounceEvent::Started), &o).unwrap();
    assert_eq!(b.peers, vec![addr(7001)]);

    let c = announce_with(&bare, &req(3, 7003, AnnounceEvent::Started), &o).unwrap();
    assert_eq!(sorted(c.peers), vec![addr(7001), addr(7002)]);
    assert_eq!((c.complete, c.incomplete), (Some(0), Some(3)));

    let a = announce(
        &http,
        &req(1, 7001, AnnounceEvent::None),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(sorted(a.peers), vec![addr(7002), addr(7003)]);
    let b = announce_with(&udp, &req(2, 7002, AnnounceEvent::None), &o).unwrap();
    assert_eq!(sorted(b.peers), vec![addr(7001), addr(7003)]);

    // Scrape over both transports.
    let s = scrape(&http, &[ih()], &o).unwrap();
    assert_eq!((s[0].0, s[0].1.incomplete), (ih(), 3));
    let s = scrape(&udp, &[ih()], &o).unwrap();
    assert_eq!(s[0].1.incomplete, 3);

    // `stopped` (over UDP) removes B.
    let b = announce_with(&udp, &req(2, 7002, AnnounceEvent::Stopped), &o).unwrap();
    assert!(b.peers.is_empty());
    assert_eq!(sorted(h.server.peers(&ih())), vec![addr(7001), addr(7003)]);
    let c = announce_with(&http, &req(3, 7003, AnnounceEvent::None), &o).unwrap();
    assert_eq!(c.peers, vec![addr(7001)]);

    // Unknown torrent: failure reason over both transports.
    let mut other = req(4, 7004, AnnounceEvent::Started);
    other.info_hash = InfoHash([7; 20]);
    match announce_with(&http, &other, &o) {
        Err(TrackerError::Failure(f)) => assert_eq!(f, "unregistered torrent"),
        r => panic!("{r:?}"),
    }
    match announce_with(&udp, &other, &o) {
        Err(TrackerError::Failure(f)) => assert_eq!(f, "unregistered torrent"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn expiry_forgets_silent_peers() {
    let h = spawn_tracker(cfg());
    h.server.allow(ih());
    let http = format!("http://{}/announce", h.http);
    announce_with(&http, &req(1, 7101, AnnounceEvent::Started), &opts(5000)).unwrap();
    announce_with(&http, &req(2, 7102, AnnounceEvent::Started), &opts(5000)).unwrap();
    assert_eq!(h.server.peers(&ih()).len(), 2);
    h.server
        .expire(Instant::now() + Duration::from_secs(3 * 3600));
    assert!(h.server.peers(&ih()).is_empty());
    let r = announce_with(&http, &req(3, 7103, AnnounceEvent::Started), &opts(5000)).unwrap();
    assert!(r.peers.is_empty());
}

#[test]
fn malformed_request_gets_400_with_failure_reason() {
    let h = spawn_tracker(cfg());
    let mut s = TcpStream::connect(h.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /announce?info_hash=short HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert!(text.contains("14:failure reason"), "{text}");
}

fn assert_fails_within(url: &str, o: &AnnounceOptions) -> TrackerError {
    let start = Instant::now();
    let r = announce_with(url, &req(1, 7201, AnnounceEvent::Started), o);
    let took = start.elapsed();
    assert!(
        took < o.timeout + Duration::from_millis(700),
        "{url} took {took:?}"
    );
    r.unwrap_err()
}

#[test]
fn dead_trackers_fail_fast() {
    let tcp_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let udp_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = assert_fails_within(
        &format!("http://127.0.0.1:{tcp_port}/announce"),
        &opts(2000),
    );
    assert!(
        matches!(e, TrackerError::Io(_) | TrackerError::Timeout { .. }),
        "{e:?}"
    );
    let e = assert_fails_within(&format!("udp://127.0.0.1:{udp_port}"), &opts(2000));
    assert!(
        matches!(e, TrackerError::Io(_) | TrackerError::Timeout { .. }),
        "{e:?}"
    );
}

#[test]
fn garbage_trackers_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = udp_sock.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nthis is not bencode");
    });
    let u = thread::spawn(move || {
        udp_sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok((n, from)) = udp_sock.recv_from(&mut buf) {
                let _ = udp_sock.send_to(&buf[..n.min(7)], from);
                let _ = udp_sock.send_to(b"\x00\x00\x00\x09garbage-garbage-garbage", from);
            }
        }
    });
    let e = assert_fails_within(&format!("http://{tcp}/announce"), &opts(2000));
    assert!(matches!(e, TrackerError::Malformed(_)), "{e:?}");
    let e = assert_fails_within(&format!("udp://{udp}"), &opts(1500));
    assert!(matches!(e, TrackerError::Timeout { .. }), "{e:?}");
    t.join().unwrap();
    u.join().unwrap();
}

#[test]
fn hanging_trackers_time_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = udp_sock.local_addr().unwrap();
    let t = thread::spawn(move || {
        // Accept, then say nothing until the client gave up.
        let (s, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(2500));
        drop(s);
    });
    let e = assert_fails_within(&format!("http://{tcp}/announce"), &opts(1000));
    assert!(matches!(e, TrackerError::Timeout { .. }), "{e:?}");
    let e = assert_fails_within(&format!("udp://{udp}"), &opts(1000));
    assert!(matches!(e, TrackerError::Timeout { .. }), "{e:?}");
    drop(udp_sock);
    t.join().unwrap();
}

#[test]
fn follows_http_redirects() {
    let h = spawn_tracker(cfg());
    h.server.allow(ih());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let redirector = listener.local_addr().unwrap();
    let target = h.http;
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap()
            .to_string();
        let path = line.split(' ').nth(1).unwrap().replace("/old", "/announce");
        let resp = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{target}{path}\r\nContent-Length: 0\r\n\r\n"
        );
        s.write_all(resp.as_bytes()).unwrap();
    });
    let r = announce_with(
        &format!("http://{redirector}/old"),
        &req(1, 7301, AnnounceEvent::Started),
        &opts(5000),
    )
    .unwrap();
    assert!(r.peers.is_empty());
    assert_eq!(h.server.peers(&ih()), vec![addr(7301)]);
    t.join().unwrap();
}

/// Issue 10: a client that announces `left=0` with no history (rqbit with a
/// magnet link and no metadata yet announces `event=started&left=0`) is not
/// trusted as a seeder: it is shown the seeders and is counted incomplete.
/// A peer that announced `left > 0` or `event=completed` before is a proven
/// seeder: it alone is spared the other seeders. Over HTTP and UDP alike.
#[test]
fn left_zero_without_history_still_gets_seeders() {
    let h = spawn_tracker(cfg());
    h.server.allow(ih());
    let o = opts(5000);
    for (i, url) in [
        format!("http://{}/announce", h.http),
        format!("udp://{}", h.udp),
    ]
    .iter()
    .enumerate()
    {
        let base = 7100 + 10 * i as u16;
        let seed = |n: u16| base + n;
        // A seeder that downloaded here: left > 0, then completed.
        let mut r = req(10 + i as u8, seed(1), AnnounceEvent::Started);
        announce_with(url, &r, &o).unwrap();
        r.left = 0;
        r.event = AnnounceEvent::Completed;
        announce_with(url, &r, &o).unwrap();
        // A magnet client: started, left=0, nothing before.
        let mut m = req(20 + i as u8, seed(2), AnnounceEvent::Started);
        m.left = 0;
        let got = announce_with(url, &m, &o).unwrap();
        assert!(
            got.peers.contains(&addr(seed(1))),
            "{url}: the magnet client was not shown the seeder: {:?}",
            got.peers
        );
        let (c, inc) = (got.complete.unwrap(), got.incomplete.unwrap());
        // The 3 proven seeders of the earlier turn stay in the swarm.
        assert_eq!((c, inc), (1 + 3 * i as u32, 1), "{url}");
        // A second proven seeder is spared the first one, not the magnet client.
        let mut s2 = req(30 + i as u8, seed(3), AnnounceEvent::Started);
        announce_with(url, &s2, &o).unwrap();
        s2.left = 0;
        s2.event = AnnounceEvent::Completed;
        let got = announce_with(url, &s2, &o).unwrap();
        assert!(got.peers.contains(&addr(seed(2))), "{url}: {:?}", got.peers);
        assert!(
            !got.peers.contains(&addr(seed(1))),
            "{url}: {:?}",
            got.peers
        );
        // The magnet client got the metadata (left > 0), then finished with a
        // plain left=0 announce: now a proven seeder, spared the others.
        m.event = AnnounceEvent::None;
        m.left = 50;
        let got = announce_with(url, &m, &o).unwrap();
        assert!(got.peers.contains(&addr(seed(1))) && got.peers.contains(&addr(seed(3))));
        m.left = 0;
        let got = announce_with(url, &m, &o).unwrap();
        assert!(
            !got.peers.contains(&addr(seed(1))) && !got.peers.contains(&addr(seed(3))),
            "{url}: {:?}",
            got.peers
        );
        assert_eq!(got.incomplete, Some(0), "{url}");
        assert_eq!(got.complete, Some(3 + 3 * i as u32), "{url}");
    }
}
