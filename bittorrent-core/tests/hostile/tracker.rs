//! Hostile clients of the embedded tracker: huge and endless requests,
//! announce floods, garbage UDP.

use crate::harness::*;
use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn announce_request(ih: &[u8; 20], n: u32) -> String {
    use bittorrent_core::proto::tracker::percent_encode;
    format!(
        "GET /announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=0&compact=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        percent_encode(ih),
        percent_encode(&peer_id(n)),
        10_000 + n % 50_000
    )
}

/// Send one raw HTTP request; the whole answer (the server closes), empty
/// if it closed without one.
fn http(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The tracker still answers a proper announce for the seeder's torrent.
fn tracker_answers(sd: &Seed, n: u32) {
    let r = http(sd.addr(), announce_request(&sd.ih(), n).as_bytes());
    assert!(
        r.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(
        contains(&r, b"8:interval"),
        "{}",
        String::from_utf8_lossy(&r)
    );
}

#[test]
fn tracker_refuses_a_100_kib_request_line() {
    let _g = serial();
    let sd = seed("h-trk-long");
    let before = threads();
    let mut line = b"GET /announce?x=".to_vec();
    line.resize(100 * 1024, b'a');
    line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let t0 = Instant::now();
    let r = http(sd.addr(), &line);
    // Closed without an answer (or with an error status), and promptly.
    assert!(
        r.is_empty() || r.starts_with(b"HTTP/1.0 4"),
        "{}",
        String::from_utf8_lossy(&r[..r.len().min(200)])
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    tracker_answers(&sd, 1);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

/// Slowloris: a request dribbled one byte every 200 ms, never finished. The
/// deadline (the handshake timeout, 10 s, from the connection's start) cuts
/// it off. Not serialised: one connection for ~10 s is within thread slack.
#[test]
fn tracker_cuts_off_a_request_that_never_ends() {
    let sd = seed("h-trk-slow");
    let mut s = TcpStream::connect(sd.addr()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let t0 = Instant::now();
    let dribble = b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = None;
    for b in dribble.iter().cycle().take(100) {
        if s.write_all(&[*b]).is_err() || is_disconnected(&mut s, Duration::from_millis(200)) {
            cut = Some(t0.elapsed());
            break;
        }
    }
    drop(s);
    let cut = cut.expect("a slowloris request was never cut off");
    assert!(
        cut >= Duration::from_secs(8) && cut <= Duration::from_secs(14),
        "cut off after {cut:?}"
    );
    tracker_answers(&sd, 2);
    still_serves(&sd.s, &sd.mi, &sd.data);
}

/// 1,000 announces from one address within about a second: beyond the
/// per-IP rate limit (20/s) each gets a bencoded failure, not service; a
/// second later a proper announce is answered again.
#[test]
fn tracker_rate_limits_an_announce_flood() {
    let _g = serial();
    // On loopback the flooder is this machine, which the tracker trusts
    // by default: play a remote host.
    let sd = seed_with("h-trk-flood", LEN, |c| c.tracker.trust_local = false);
    let before = threads();
    let (addr, ih) = (sd.addr(), sd.ih());
    let t0 = Instant::now();
    let workers: Vec<_> = (0..4u32)
        .map(|w| {
            std::thread::spawn(move || {
                let (mut ok, mut limited, mut other) = (0u32, 0u32, 0u32);
                for i in 0..250 {
                    let r = http(addr, announce_request(&ih, w * 1000 + i).as_bytes());
                    if contains(&r, b"rate limit") {
                        limited += 1;
                    } else if contains(&r, b"8:interval") {
                        ok += 1;
                    } else {
                        other += 1;
                    }
                }
                (ok, limited, other)
            })
        })
        .collect();
    let (mut ok, mut limited, mut other) = (0, 0, 0);
    for w in workers {
        let (a, b, c) = w.join().unwrap();
        ok += a;
        limited += b;
        other += c;
    }
    let secs = t0.elapsed().as_secs() as u32 + 1;
    assert_eq!(other, 0, "{other} announces got neither answer");
    assert!(
        ok <= 20 * (secs + 1),
        "{ok} announces served in {secs} s (limit 20/s); {limited} limited"
    );
    assert!(limited >= 1000 - 20 * (secs + 1));
    std::thread::sleep(Duration::from_millis(1100));
    tracker_answers(&sd, 5000);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

fn udp_connect(sock: &UdpSocket, to: SocketAddr, tid: u32) -> Option<Vec<u8>> {
    let mut p = 0x0417_2710_1980u64.to_be_bytes().to_vec();
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    sock.send_to(&p, to).unwrap();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 8 && buf[4..8] == tid.to_be_bytes() {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

/// Garbage datagrams to the tracker's UDP port: each is ignored or answered
/// with an error (action 3), never larger than it (no amplification); a
/// proper BEP 15 connect is answered afterwards.
#[test]
fn tracker_survives_garbage_udp() {
    let _g = serial();
    let sd = seed("h-trk-udp");
    let before = threads();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let to = sd.addr();
    let mut replies = 0;
    let mut buf = [0u8; 2048];
    for i in 0..300u64 {
        let mut p = pseudo_random((i as usize * 37) % 1500, i + 1);
        if i % 3 == 0 && p.len() >= 16 {
            p[8..12].copy_from_slice(&((i % 5) as u32).to_be_bytes()); // plausible actions
        }
        sock.send_to(&p, to).unwrap();
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            replies += 1;
            assert!(n >= 8, "a {n}-byte reply");
            assert_eq!(buf[..4], 3u32.to_be_bytes(), "a non-error reply to garbage");
        }
    }
    // The rate limit (20/s per IP) covers UDP too: wait it out, then connect.
    std::thread::sleep(Duration::from_millis(1100));
    let mut answer = None;
    for tid in 0..3u32 {
        answer = udp_connect(&sock, to, 0xabc0 + tid);
        if answer.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let a = answer.expect("no answer to a proper UDP connect");
    assert_eq!(a.len(), 16);
    assert_eq!(a[..4], 0u32.to_be_bytes());
    eprintln!("{replies} error replies to 300 garbage datagrams");
    tracker_answers(&sd, 6000);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}
