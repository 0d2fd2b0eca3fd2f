//! What the embedded tracker's unit tests share: a server, requests and
//! the parts of its answers.
#![allow(clippy::unwrap_used)]

use super::*;
pub(super) use crate::discovery::tracker::client::{udp_announce_packet, AnnounceRequest};
pub(super) use crate::proto::bencode::{decode, Value};
pub(super) use crate::proto::tracker::{
    parse_announce_response, parse_udp_announce_response, percent_encode,
};

pub(super) fn ih() -> InfoHash {
    InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap()
}

/// Only loopback is this machine's in these tests (whatever addresses
/// the host running them has).
pub(super) fn loopback_only(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

pub(super) fn open_server() -> TrackerServer {
    TrackerServer::new(TrackerConfig {
        open: true,
        max_requests_per_sec_per_ip: 1000,
        ..Default::default()
    })
    .with_local_rule(loopback_only)
}

pub(super) fn get(s: &TrackerServer, query: &str, remote: &str) -> (u16, Vec<u8>) {
    let req = format!("GET /announce?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = s.handle_http(req.as_bytes(), remote.parse().unwrap());
    let (status, body) = split_response(&resp);
    (status, body)
}

/// Status and body of one of our server's responses (it always sends
/// `Content-Length`).
pub(super) fn split_response(resp: &[u8]) -> (u16, Vec<u8>) {
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&resp[..end]).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap();
    let body = resp[end + 4..].to_vec();
    assert_eq!(body.len(), len);
    (status, body)
}

pub(super) fn announce_q(id: u8, port: u16, extra: &str) -> String {
    format!(
        "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=10{extra}",
        percent_encode(&ih().0),
        percent_encode(&[id; 20])
    )
}

/// An announce for swarm `n` (info-hash `[n; 20]`) from `remote`, at `at`.
pub(super) fn announce_at(
    s: &TrackerServer,
    n: u8,
    port: u16,
    remote: &str,
    at: Instant,
) -> Vec<u8> {
    let q = announce_q(1, port, "").replace(&percent_encode(&ih().0), &percent_encode(&[n; 20]));
    let req = format!("GET /announce?{q} HTTP/1.0\r\n\r\n");
    let resp = s.handle_http_at(req.as_bytes(), remote.parse().unwrap(), at);
    split_response(&resp).1
}

pub(super) fn refused(body: &[u8]) -> bool {
    matches!(
        parse_announce_response(body),
        Err(crate::proto::tracker::ResponseError::Failure(_))
    )
}

/// An announce for `ih()` by peer `n` (its own peer id) on `port` from
/// `remote` at `at`, asking for 200 peers: the answer's body.
pub(super) fn announce_n(
    s: &TrackerServer,
    n: u32,
    port: u16,
    remote: &str,
    at: Instant,
) -> Vec<u8> {
    let mut id = [b'p'; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    let q = format!(
        "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=10&numwant=200&compact=1",
        percent_encode(&ih().0),
        percent_encode(&id)
    );
    let req = format!("GET /announce?{q} HTTP/1.0\r\n\r\n");
    split_response(&s.handle_http_at(req.as_bytes(), remote.parse().unwrap(), at)).1
}
