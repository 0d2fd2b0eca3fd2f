//! Trackers: the announce client (BEP 3, 7, 12, 15, 23, 48) and the tracker
//! embedded in every peer.
//!
//! * [`client`]: [`announce`](client::announce) / [`scrape`](client::scrape) over HTTP(S) and UDP, and
//!   [`TrackerList`] for BEP 12 tiers and announce scheduling.
//! * [`server`]: [`TrackerServer`], a small in-memory tracker answering HTTP
//!   (on the peer's TCP port, sniffed with [`looks_like_http`](server::looks_like_http)) and BEP 15 UDP.
//!
//! The response parsers, percent-encoding and URL helpers are codecs, in
//! [`crate::proto::tracker`].

mod bound_tcp;
pub mod client;
mod error;
pub(crate) mod http;
pub mod server;

#[cfg(test)]
mod https_tests;
#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod opentracker_tests;
#[cfg(test)]
#[path = "../../../tests/tls/mod.rs"]
mod tls_test_support;

#[cfg(test)]
pub(crate) use client::{announce, announce_with, scrape};
pub use client::{AnnounceEvent, AnnounceOptions, AnnounceRequest, TrackerList};
pub(crate) use client::{AnnounceResponse, TrackerError};
#[cfg(test)]
pub(crate) use server::looks_like_http;
pub use server::{TrackerConfig, TrackerServer};

#[cfg(test)]
mod robustness {
    #![allow(clippy::unwrap_used)]
    //! Mutations of the test vectors thrown at every parser: none may panic.
    use std::net::SocketAddr;

    use super::*;
    use crate::proto::extension::{ExtHandshake, MetadataMessage, PexMessage};
    use crate::proto::tracker::{self, url};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn unhex(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for tsv in [
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/vectors/http_tracker.tsv"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/vectors/udp_tracker_bep15.tsv"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/vectors/peer_wire.tsv"
            )),
        ] {
            for line in tsv.lines().skip(1) {
                if let Some(v) = line.split('\t').nth(1) {
                    out.push(unhex(v).unwrap_or_else(|| v.as_bytes().to_vec()));
                }
            }
        }
        out.push(b"GET /announce?info_hash=%C0%FD%A1%ED%AF%DB%DB%B9dCBN%0B8%99%AFqY%D1%0E&peer_id=-PE0001-abcdefghijkl&port=6881&left=0&compact=0 HTTP/1.1\r\n\r\n".to_vec());
        out.push(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        );
        out
    }

    #[test]
    fn mutated_inputs_never_panic() {
        let server = TrackerServer::new(TrackerConfig {
            open: true,
            max_requests_per_sec_per_ip: u32::MAX,
            ..Default::default()
        });
        let remote: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seeds = seeds();
        for round in 0..20_000 {
            let mut b = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] = rng.next() as u8;
                    }
                    1 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b.truncate(i);
                    }
                    2 => {
                        let i = rng.below(b.len() + 1);
                        b.insert(i, b"0123456789:deil%\r\n"[rng.below(18)]);
                    }
                    _ if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b.remove(i);
                    }
                    _ => {}
                }
            }
            let _ = tracker::parse_announce_response(&b);
            let _ = tracker::parse_scrape_response(&b);
            let _ = tracker::parse_udp_announce_response(&b, round % 2 == 0);
            let _ = server.handle_http(&b, remote);
            let _ = server.handle_udp(&b, remote);
            let _ = looks_like_http(&b);
            let _ = url::Url::parse(&String::from_utf8_lossy(&b));
            let _ = url::scrape_url(&String::from_utf8_lossy(&b));
            let _ = url::percent_decode(&String::from_utf8_lossy(&b));
            for skip in [0, 6] {
                let p = b.get(skip..).unwrap_or(&[]);
                let _ = ExtHandshake::decode(p);
                let _ = PexMessage::decode(p);
                let _ = MetadataMessage::decode(p);
            }
        }
    }

    #[test]
    fn server_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<TrackerServer>();
    }
}
