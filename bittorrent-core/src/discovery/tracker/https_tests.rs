#![allow(clippy::unwrap_used)]
//! The HTTP(S) announce client (`ureq` + `rustls`): announces and scrapes
//! over TLS to a peer's embedded tracker behind a TLS terminator whose
//! certificate is trusted through `SSL_CERT_FILE` only; an untrusted
//! certificate is refused; redirects (also http → https), gzip bodies, the
//! body size limit (plain and gzip-compressed) and a hanging TLS server.

use super::tls_test_support as tls;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::discovery::tracker::{
    announce_with, scrape, AnnounceEvent, AnnounceOptions, AnnounceRequest, TrackerError,
};
use crate::{Config, InfoHash, Session};
use tls::{forward_to, ok_response, request_path, TestCa, TestServer};

/// The CA every HTTPS server of this binary uses, trusted through
/// `SSL_CERT_FILE` (set once, before the first HTTPS request of the process
/// loads the trust roots).
fn trusted_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let ca = TestCa::new();
        let dir = std::env::temp_dir().join(format!("peer-tls-test-{}", std::process::id()));
        let file = ca.write_ca(&dir);
        std::env::set_var("SSL_CERT_FILE", &file);
        std::env::remove_var("SSL_CERT_DIR");
        ca
    })
}

fn ih() -> InfoHash {
    InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap()
}

fn req(id: u8, port: u16) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: ih(),
        peer_id: [id; 20],
        port,
        uploaded: 0,
        downloaded: 0,
        left: 100,
        event: AnnounceEvent::Started,
        numwant: 50,
        key: u32::from(id),
    }
}

fn opts(ms: u64) -> AnnounceOptions {
    AnnounceOptions {
        timeout: Duration::from_millis(ms),
        udp_base_timeout: Duration::from_millis(200),
        udp_max_retries: 1,
        source: Default::default(),
    }
}

/// A bencoded announce response with one compact peer, 10.1.2.3:4567.
fn canned_announce() -> Vec<u8> {
    let mut b = b"d8:intervali900e5:peers6:".to_vec();
    b.extend_from_slice(&[10, 1, 2, 3, 0x11, 0xd7]);
    b.push(b'e');
    b
}

fn canned_peer() -> SocketAddr {
    "10.1.2.3:4567".parse().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn https_announce_and_scrape_reach_an_embedded_tracker() {
    let ca = trusted_ca();
    let mut config = Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        ..Config::default()
    };
    config.tracker.open = true;
    config.tracker.max_requests_per_sec_per_ip = 10_000;
    let session = Session::start(config).unwrap();
    let front = TestServer::https(ca, forward_to(session.local_addr()));
    let url = format!("https://localhost:{}/announce", front.addr.port());
    let first = announce_with(&url, &req(1, 7401), &opts(5000)).unwrap();
    assert!(first.peers.is_empty(), "{:?}", first.peers);
    let second = announce_with(&url, &req(2, 7402), &opts(5000)).unwrap();
    assert_eq!(
        second.peers,
        vec![SocketAddr::from(([127, 0, 0, 1], 7401))],
        "the second announce over TLS hears of the first"
    );
    // The IP literal is in the certificate too.
    let ip_url = format!("https://127.0.0.1:{}/announce", front.addr.port());
    announce_with(&ip_url, &req(3, 7403), &opts(5000)).unwrap();
    let s = scrape(&url, &[ih()], &opts(5000)).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, ih());
    assert_eq!(s[0].1.incomplete, 3);
    session.shutdown();
}

#[test]
fn untrusted_certificate_is_refused() {
    let _trusted = trusted_ca();
    let stranger = TestCa::new();
    let front = TestServer::https(
        &stranger,
        Arc::new(|_: &[u8]| ok_response("", &canned_announce())),
    );
    let url = format!("https://localhost:{}/announce", front.addr.port());
    let e = announce_with(&url, &req(1, 7501), &opts(5000)).unwrap_err();
    assert!(matches!(e, TrackerError::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[test]
fn redirects_are_followed_across_schemes_up_to_a_limit() {
    let ca = trusted_ca();
    let target = TestServer::https(
        ca,
        Arc::new(|r: &[u8]| {
            // The query survives the redirects.
            assert!(request_path(r).contains("info_hash="));
            ok_response("", &canned_announce())
        }),
    );
    let tport = target.addr.port();
    let hops = TestServer::http(Arc::new(move |r: &[u8]| {
        let path = request_path(r);
        let rest = path.split_once('?').map_or("", |(_, q)| q).to_string();
        let location = if path.starts_with("/a") {
            format!("/b?{rest}") // relative
        } else if path.starts_with("/b") {
            format!("https://localhost:{tport}/announce?{rest}") // http -> https
        } else {
            format!("/loop?{rest}") // forever
        };
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .into_bytes()
    }));
    let r = announce_with(
        &format!("http://127.0.0.1:{}/a", hops.addr.port()),
        &req(1, 7601),
        &opts(5000),
    )
    .unwrap();
    assert_eq!(r.peers, vec![canned_peer()]);
    let start = Instant::now();
    let e = announce_with(
        &format!("http://127.0.0.1:{}/loop", hops.addr.port()),
        &req(1, 7601),
        &opts(5000),
    )
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("redirect"), "{e}");
}

#[test]
fn gzip_bodies_are_decoded() {
    let ca = trusted_ca();
    let body = gzip(&canned_announce());
    let h: tls::Handler = Arc::new(move |r: &[u8]| {
        let text = String::from_utf8_lossy(r).to_ascii_lowercase();
        assert!(text.contains("accept-encoding: gzip"), "{text}");
        ok_response("Content-Encoding: gzip\r\n", &body)
    });
    let plain = TestServer::http(h.clone());
    let secure = TestServer::https(ca, h);
    for url in [
        format!("http://127.0.0.1:{}/announce", plain.addr.port()),
        format!("https://localhost:{}/announce", secure.addr.port()),
    ] {
        let r = announce_with(&url, &req(1, 7701), &opts(3000)).unwrap();
        assert_eq!(r.peers, vec![canned_peer()], "{url}");
    }
}

#[test]
fn oversized_bodies_are_refused() {
    let ca = trusted_ca();
    // 3 MiB of padding in a valid bencoded dictionary.
    let mut big = b"d7:padding3145728:".to_vec();
    big.resize(big.len() + 3 * 1024 * 1024, b'x');
    big.push(b'e');
    let big = Arc::new(big);
    let b2 = big.clone();
    let plain = TestServer::https(ca, Arc::new(move |_: &[u8]| ok_response("", &b2)));
    let e = announce_with(
        &format!("https://localhost:{}/announce", plain.addr.port()),
        &req(1, 7801),
        &opts(5000),
    )
    .unwrap_err();
    assert!(matches!(e, TrackerError::TooLarge), "{e:?}");
    // A small gzip body that inflates past the limit (a "zip bomb").
    let bomb = gzip(&big);
    assert!(bomb.len() < 64 * 1024);
    let zipped = TestServer::http(Arc::new(move |_: &[u8]| {
        ok_response("Content-Encoding: gzip\r\n", &bomb)
    }));
    let e = announce_with(
        &format!("http://127.0.0.1:{}/announce", zipped.addr.port()),
        &req(1, 7801),
        &opts(5000),
    )
    .unwrap_err();
    assert!(matches!(e, TrackerError::TooLarge), "{e:?}");
}

#[test]
fn a_silent_https_tracker_times_out() {
    let ca = trusted_ca();
    let silent = TestServer::https(
        ca,
        Arc::new(|_: &[u8]| {
            std::thread::sleep(Duration::from_secs(3));
            Vec::new()
        }),
    );
    let start = Instant::now();
    let e = announce_with(
        &format!("https://localhost:{}/announce", silent.addr.port()),
        &req(1, 7901),
        &opts(1000),
    )
    .unwrap_err();
    assert!(matches!(e, TrackerError::Timeout { .. }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1700),
        "{:?}",
        start.elapsed()
    );
}
