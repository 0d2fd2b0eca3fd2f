//! The per-target checks, shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`)
//! and by the regression replay test (`bittorrent-core/tests/regressions.rs`),
//! which both include this file with `#[path = ...] mod targets_common;`.
//!
//! Every function takes arbitrary bytes, runs them through one family of
//! parsers and panics (a "crash") if a parser panics or a stated property
//! does not hold. Nothing here may depend on a fuzzer.

use bittorrent_core::proto::bencode;
use bittorrent_core::proto::extension::{
    ExtHandshake, MetadataMessage, PexMessage, METADATA_PIECE_SIZE,
};
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::proto::tracker;
use bittorrent_core::proto::wire::{
    FrameDecoder, Handshake, Message, BLOCK_SIZE, HANDSHAKE_LEN, MAX_FRAME,
};
use bittorrent_core::tracker_server::{self, TrackerConfig, TrackerServer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The fuzz targets, by name (the directory names under `fuzz/corpus/` and
/// `fixtures/regressions/`).
pub const TARGETS: &[&str] = &[
    "bencode",
    "metainfo",
    "magnet",
    "wire",
    "extension",
    "tracker_response",
    "tracker_request",
    "resume",
    "lsd",
    "krpc",
    "mse",
    "metainfo_v2",
    "utp",
    "web_seed",
    "holepunch",
];

/// Run the check of target `name` on `data`. Returns false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "bencode" => check_bencode(data),
        "metainfo" => check_metainfo(data),
        "magnet" => check_magnet(data),
        "wire" => check_wire(data),
        "extension" => check_extension(data),
        "tracker_response" => check_tracker_response(data),
        "tracker_request" => check_tracker_request(data),
        "resume" => check_resume(data),
        "lsd" => check_lsd(data),
        "krpc" => check_krpc(data),
        "mse" => check_mse(data),
        "metainfo_v2" => check_metainfo_v2(data),
        "utp" => check_utp(data),
        "holepunch" => check_holepunch(data),
        "web_seed" => check_web_seed(data),
        _ => return false,
    }
    true
}

/// MSE (Message Stream Encryption) handshake parsing, both sides. The first
/// byte picks the side and the chunk size the rest is fed in: 0 responder
/// from the start, 1 responder after a valid Ya + req1 + req2^req3 (so the
/// fuzzed bytes reach the encrypted VC / crypto_provide / PadC / IA
/// parsing), 2 initiator from the start, 3 initiator after a valid Yb.
/// Never a panic; what is sent back stays within the specification's sizes;
/// the payload handed on is never more than what came in.
pub fn check_mse(data: &[u8]) {
    use bittorrent_core::proto::mse::{hash, req2_hash, DhKey, Initiator, Responder};
    use std::sync::OnceLock;
    static KEYS: OnceLock<(DhKey, DhKey, Vec<u8>)> = OnceLock::new();
    let ih = [0x11u8; 20];
    let (a, b, prefix) = KEYS.get_or_init(|| {
        let a = DhKey::from_private(&[0x5a; 20]);
        let b = DhKey::from_private(&[0xa5; 20]);
        let s = a.shared_secret(b.public()).expect("valid keys");
        let mut p = a.public().to_vec();
        p.extend_from_slice(&hash(&[b"req1", &s]));
        let r3 = hash(&[b"req3", &s]);
        p.extend(req2_hash(&ih).iter().zip(r3).map(|(x, y)| x ^ y));
        (a, b, p)
    });
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode >> 2) + 1;
    let mut input = Vec::new();
    match mode & 3 {
        1 => input.extend_from_slice(prefix),
        3 => input.extend_from_slice(b.public()),
        _ => {}
    }
    input.extend_from_slice(rest);
    let mut out = Vec::new();
    if mode & 3 < 2 {
        let mut r = Responder::with_key(b.clone(), vec![0; 7], 3);
        let mut lookup = |h: &[u8; 20]| (req2_hash(&ih) == *h).then_some(ih);
        for piece in input.chunks(chunk) {
            match r.feed(piece, &mut out, &mut lookup) {
                Ok(None) => {}
                Ok(Some(e)) => {
                    assert!(e.payload.len() <= input.len());
                    assert_eq!(e.info_hash, ih);
                    break;
                }
                Err(_) => break,
            }
        }
        // Yb + PadB, then VC + crypto_select + len(PadD).
        assert!(
            out.len() <= 96 + 7 + 14,
            "responder sent {} bytes",
            out.len()
        );
    } else {
        let (mut i, _) = Initiator::with_key(a.clone(), Vec::new(), ih, 3, b"ia".to_vec())
            .expect("valid initiator");
        for piece in input.chunks(chunk) {
            match i.feed(piece, &mut out) {
                Ok(None) => {}
                Ok(Some(e)) => {
                    assert!(e.payload.len() <= input.len());
                    break;
                }
                Err(_) => break,
            }
        }
        // req1, req2^req3, VC + provide + len(PadC) + len(IA) + IA.
        assert!(
            out.len() <= 20 + 20 + 16 + 2,
            "initiator sent {} bytes",
            out.len()
        );
    }
}

/// uTP packets (BEP 29) and the shared UDP port's demultiplexer: decoding
/// never panics; what decodes re-encodes (unknown extensions dropped) to at
/// most as many bytes, which decode to the same packet; the route agrees
/// with the parsers (uTP only for a valid packet, answered with a RESET only
/// when unclaimed and neither a SYN nor a RESET, the DHT only for `d`...`e`,
/// the tracker only for 16 bytes or more), and tracker, then uTP, then DHT
/// is the order whatever the uTP side claims.
pub fn check_utp(data: &[u8]) {
    use bittorrent_core::proto::utp::{Packet, PacketType};
    use bittorrent_core::udp_demux::{is_tracker_request, route, Route};
    let decoded = Packet::decode(data);
    if let Ok(p) = &decoded {
        let bytes = p.encode();
        assert!(bytes.len() <= data.len(), "re-encoding grew");
        assert_eq!(Packet::decode(&bytes).expect("re-encoded uTP decodes"), *p);
    }
    for claim in [false, true] {
        let r = route(data, |_| claim);
        match r {
            Route::Tracker => assert!(is_tracker_request(data) && data.len() >= 16),
            Route::Utp => {
                let p = decoded.as_ref().expect("uTP route for an invalid packet");
                assert!(claim || p.header.kind == PacketType::Syn);
                assert!(!is_tracker_request(data));
            }
            Route::Dht => {
                assert!(data.first() == Some(&b'd') && data.last() == Some(&b'e'));
                assert!(decoded.is_err() && !is_tracker_request(data));
            }
            Route::UtpUnknown => {
                let p = decoded.as_ref().expect("uTP route for an invalid packet");
                assert!(!claim && !matches!(p.header.kind, PacketType::Syn | PacketType::Reset));
                assert!(!is_tracker_request(data));
            }
            Route::Drop => {
                assert!(!is_tracker_request(data));
                // Not uTP, or a RESET for no connection of ours (never answered).
                assert!(decoded
                    .as_ref()
                    .map_or(true, |p| !claim && p.header.kind == PacketType::Reset));
            }
        }
    }
}

/// KRPC (BEP 5 DHT messages): decoding never panics; what decodes
/// re-encodes to a message that decodes to the same value.
pub fn check_krpc(data: &[u8]) {
    use bittorrent_core::proto::krpc::Message;
    match Message::decode(data) {
        Ok(m) => {
            let again = Message::decode(&m.encode()).expect("re-encoded KRPC decodes");
            assert_eq!(format!("{again:?}"), format!("{m:?}"));
        }
        Err(e) => {
            let _ = e.reply();
        }
    }
}

/// LSD announces (BEP 14): parsing never panics; what parses re-formats to
/// a packet that parses to the same port and info-hashes.
pub fn check_lsd(data: &[u8]) {
    use bittorrent_core::proto::lsd::{format_announce, parse_announce, HOST_V4};
    if let Ok(a) = parse_announce(data) {
        let again = format_announce(HOST_V4, a.port, &a.info_hashes, "cookie");
        let b = parse_announce(&again).expect("formatted announce parses");
        assert_eq!((b.port, &b.info_hashes), (a.port, &a.info_hashes));
    }
}

/// Resume data: decoding never panics, and what decodes re-encodes to data
/// that decodes to the same value.
pub fn check_resume(data: &[u8]) {
    use bittorrent_core::proto::resume::ResumeData;
    if let Ok(r) = ResumeData::decode(data) {
        let again = ResumeData::decode(&r.encode()).expect("re-encoded resume data decodes");
        assert_eq!(again, r);
    }
}

/// Tolerant and strict decoding. Whatever the tolerant decoder accepts
/// re-encodes to canonical (strictly valid) bencode; a strictly valid input
/// is canonical, so re-encoding it must give back the input byte for byte.
pub fn check_bencode(data: &[u8]) {
    if let Ok(v) = bencode::decode(data) {
        let b = v.to_owned_value().to_bytes();
        assert!(
            bencode::decode_strict(&b).is_ok(),
            "tolerant decode re-encodes to non-canonical bencode: {:?}",
            String::from_utf8_lossy(&b)
        );
    }
    let _ = bencode::decode_prefix(data);
    let _ = bencode::decode_strict_prefix(data);
    if let Ok(v) = bencode::decode_strict(data) {
        let again = v.to_owned_value().to_bytes();
        assert!(
            again == data,
            "strict decode then encode is not the identity: {:?} -> {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&again)
        );
    }
}

/// `.torrent` parsing: every file path component must be a plain name.
pub fn check_metainfo(data: &[u8]) {
    fn check(m: &Metainfo) {
        assert!(!m.info.files.is_empty(), "a torrent without files");
        for f in &m.info.files {
            assert!(!f.path.is_empty(), "empty path: {f:?}");
            for c in &f.path {
                assert!(
                    !c.is_empty()
                        && c != "."
                        && c != ".."
                        && !c.contains('/')
                        && !c.contains('\\')
                        && !c.contains('\0'),
                    "unsafe path component {c:?} in {:?}",
                    f.path
                );
            }
        }
        let _ = Magnet::of(m).to_uri();
        let _ = m.trackers();
        check_v2(m);
    }
    // BEP 52: the v2 hash is over the original bytes, every layer kept
    // hashes up to its root, files follow each other in the piece space,
    // and a hybrid's two views list the same files.
    fn check_v2(m: &Metainfo) {
        use bittorrent_core::proto::merkle;
        use bittorrent_core::proto::metainfo::Format;
        let Some(v2) = &m.v2 else {
            assert_eq!(m.format(), Format::V1);
            assert!(m.info_hash_v2.is_none());
            return;
        };
        let ih2 = m.info_hash_v2.expect("a v2 torrent has a v2 hash");
        assert_eq!(ih2.0, merkle::sha256(&m.info_bytes));
        if m.format() == Format::V2 {
            assert_eq!(m.info_hash, ih2.truncated());
        }
        assert!(v2.piece_length.is_power_of_two() && v2.piece_length >= 16384);
        let mut next = 0;
        for (i, f) in v2.files.iter().enumerate() {
            assert_eq!(f.first_piece, next);
            next += f.length.div_ceil(v2.piece_length);
            if let Some(layer) = &v2.piece_layers[i] {
                let root = merkle::root_from_piece_layer(layer, v2.piece_length);
                assert_eq!(Some(root), f.pieces_root, "layer of file {i}");
            }
        }
        assert_eq!(next, v2.num_pieces);
        if m.format() == Format::Hybrid {
            let real: Vec<_> = m.info.files.iter().filter(|f| !f.pad).collect();
            assert_eq!(real.len(), v2.files.len());
            assert_eq!(m.info.pieces.len() as u64, v2.num_pieces);
        }
    }
    if let Ok(m) = Metainfo::from_bytes(data) {
        check(&m);
    }
    if let Ok(m) = Metainfo::from_info_bytes(data) {
        check(&m);
    }
}

/// BEP 52 `file tree` parsing, focused: `data` is the value of an info
/// dictionary's `file tree` (the rest of a v2 info dictionary is fixed), so
/// every mutation lands in the tree. Checked as an info dictionary (as after
/// a magnet link) and as a torrent with an empty `piece layers` (layers
/// missing), with every check of [`check_metainfo`] (paths, v2 invariants).
pub fn check_metainfo_v2(data: &[u8]) {
    let mut info = b"d9:file tree".to_vec();
    info.extend_from_slice(data);
    info.extend_from_slice(b"12:meta versioni2e4:name4:fuzz12:piece lengthi16384ee");
    check_metainfo(&info);
    let mut torrent = b"d4:info".to_vec();
    torrent.extend_from_slice(&info);
    torrent.extend_from_slice(b"12:piece layersdee");
    check_metainfo(&torrent);
}

/// Magnet links: whatever parses must survive `to_uri` and parse again to
/// the same magnet (so the same info-hash, name, trackers and peers).
pub fn check_magnet(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Magnet::parse(&text) {
        let uri = m.to_uri();
        match Magnet::parse(&uri) {
            Ok(again) => assert_eq!(again, m, "magnet round trip via {uri}"),
            Err(e) => panic!("to_uri of a parsed magnet does not parse: {uri}: {e}"),
        }
    }
}

/// Peer wire: the handshake, one message, and a frame stream fed in chunks
/// whose size is taken from the first byte. Every decoded message must
/// re-encode to the exact bytes it was decoded from.
pub fn check_wire(data: &[u8]) {
    if let Ok(h) = Handshake::decode(data) {
        assert_eq!(
            &h.encode()[..],
            &data[..HANDSHAKE_LEN],
            "handshake round trip"
        );
        let _ = (h.supports_extensions(), h.supports_fast());
    }
    if let Ok(m) = Message::decode(data) {
        assert_eq!(&m.to_bytes()[4..], data, "message round trip: {m:?}");
    }
    // BEP 52 hash messages (ids 21-23, proto::hash_msg): what decodes
    // re-encodes to the same bytes and keeps its limits.
    if let Some((&id, payload)) = data.split_first() {
        use bittorrent_core::proto::hash_msg::{HashMessage, MAX_LENGTH};
        if let Ok(m) = HashMessage::decode(id, payload) {
            assert_eq!(&m.to_frame()[4..], data, "hash message round trip: {m:?}");
            let r = match &m {
                HashMessage::Request(r) | HashMessage::Reject(r) => r,
                HashMessage::Hashes { request, .. } => request,
            };
            assert!(r.length <= MAX_LENGTH && r.length.is_power_of_two());
        }
    }
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut off = 0usize;
    for piece in stream.chunks(chunk) {
        dec.feed(piece);
        loop {
            match dec.next_message() {
                Ok(Some(m)) => {
                    let len = u32::from_be_bytes([
                        stream[off],
                        stream[off + 1],
                        stream[off + 2],
                        stream[off + 3],
                    ]) as usize;
                    let frame = &stream[off..off + 4 + len];
                    assert_eq!(m.to_bytes(), frame, "framed round trip: {m:?}");
                    off += 4 + len;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(dec.buffered(), stream.len() - off, "buffered byte count");
    check_direct_reads(first, stream);
}

/// A reader handing out `data` in reads of sizes drawn from `seed`,
/// filling vectored reads buffer after buffer as a socket does, with a
/// timeout now and then.
struct Choppy<'a> {
    data: &'a [u8],
    at: usize,
    seed: u32,
    calls: u32,
}

impl std::io::Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_vectored(&mut [std::io::IoSliceMut::new(buf)])
    }
    fn read_vectored(&mut self, bufs: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
        // Every third read times out (nothing read), as a socket's may.
        self.calls += 1;
        if self.calls % 3 == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let mut budget = (1 + (self.seed >> 8) as usize % 70_000).min(self.data.len() - self.at);
        let mut n = 0;
        for b in bufs.iter_mut() {
            let k = b.len().min(budget);
            b[..k].copy_from_slice(&self.data[self.at..self.at + k]);
            self.at += k;
            n += k;
            budget -= k;
        }
        Ok(n)
    }
}

/// `FrameDecoder::read_blocks_from` (payloads read straight into block
/// buffers) yields the same messages, and fails at the same place, as
/// feeding the same stream: the fuzz input interleaved with whole-block
/// `piece` messages, so that both its fast and its fallback paths run.
fn check_direct_reads(first: u8, input: &[u8]) {
    let mut stream = Vec::new();
    for (i, c) in input.chunks(8).enumerate() {
        if c[0] & 1 == 1 {
            Message::Piece {
                index: i as u32,
                begin: u32::from(c[0]),
                data: vec![c[0]; BLOCK_SIZE as usize],
            }
            .encode(&mut stream);
        }
        stream.extend_from_slice(c);
    }
    let plain = {
        let mut dec = FrameDecoder::new(MAX_FRAME);
        dec.feed(&stream);
        let mut out = Vec::new();
        drain(&mut dec, &mut out);
        out
    };
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut r = Choppy {
        data: &stream,
        at: 0,
        seed: u32::from(first),
        calls: 0,
    };
    let max = [16 * 1024, 40_000, 256 * 1024][usize::from(first) % 3];
    let mut take = || vec![0u8; BLOCK_SIZE as usize];
    let mut direct = Vec::new();
    while drain(&mut dec, &mut direct) {
        match dec.read_blocks_from(&mut r, max, &mut take) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    assert!(plain == direct, "direct reads decode differently");
}

/// Every whole message `dec` holds into `out`; false once one was an error
/// (pushed as its text).
fn drain(dec: &mut FrameDecoder, out: &mut Vec<Result<Message, String>>) -> bool {
    loop {
        match dec.next_message() {
            Ok(Some(m)) => out.push(Ok(m)),
            Ok(None) => return true,
            Err(e) => {
                out.push(Err(e.to_string()));
                return false;
            }
        }
    }
}

/// BEP 10 handshake, BEP 11 PEX and BEP 9 metadata messages.
pub fn check_extension(data: &[u8]) {
    if let Ok(h) = ExtHandshake::decode(data) {
        let _ = h.encode();
        let _ = h.id_of("ut_metadata");
    }
    if let Ok(p) = PexMessage::decode(data) {
        let _ = p.encode();
    }
    if let Ok(m) = MetadataMessage::decode(data) {
        if let MetadataMessage::Data { data: d, .. } = &m {
            assert!(
                d.len() <= METADATA_PIECE_SIZE,
                "metadata piece of {} bytes",
                d.len()
            );
        }
        let _ = m.encode();
    }
}

/// Tracker answers: bencoded HTTP announce and scrape bodies, UDP announce
/// replies (IPv4 and IPv6), and raw HTTP responses.
pub fn check_tracker_response(data: &[u8]) {
    let _ = tracker::parse_announce_response(data);
    let _ = tracker::parse_scrape_response(data);
    let _ = tracker::parse_udp_announce_response(data, false);
    let _ = tracker::parse_udp_announce_response(data, true);
    let _ = bittorrent_core::proto::compact::parse_v4(data);
    let _ = bittorrent_core::proto::compact::parse_v6(data);
}

fn fuzz_server() -> TrackerServer {
    TrackerServer::new(TrackerConfig {
        open: true,
        max_swarms: 16,
        max_peers_per_swarm: 16,
        max_numwant: 8,
        max_requests_per_sec_per_ip: u32::MAX,
        interval: Duration::from_secs(1800),
        min_interval: Duration::from_secs(300),
        peer_timeout: Duration::from_secs(3700),
        max_peers_per_ip_per_swarm: 8,
        max_new_swarms_per_ip_per_min: u32::MAX,
        trust_local: false,
    })
}

/// Our embedded tracker: an HTTP request and a UDP packet from a fixed
/// address. For UDP the packet is also replayed with a valid connection id
/// (obtained with a real connect first), so announce and scrape parsing are
/// reached. Must never panic.
pub fn check_tracker_request(data: &[u8]) {
    let remote = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 6881);
    let server = fuzz_server();
    let _ = tracker_server::looks_like_http(data);
    let _ = server.handle_http(data, remote);
    let _ = tracker_server::read_http_request(
        &mut &data[..],
        tracker_server::MAX_HTTP_REQUEST,
        std::time::Instant::now() + Duration::from_secs(5),
    );
    let _ = server.handle_udp(data, remote);
    if data.len() >= 16 {
        let mut connect = Vec::with_capacity(16);
        connect.extend_from_slice(&tracker::UDP_PROTOCOL_ID.to_be_bytes());
        connect.extend_from_slice(&0u32.to_be_bytes());
        connect.extend_from_slice(&data[12..16]);
        if let Some(reply) = server.handle_udp(&connect, remote) {
            if reply.len() >= 16 {
                let mut p = data.to_vec();
                p[..8].copy_from_slice(&reply[8..16]);
                let _ = server.handle_udp(&p, remote);
            }
        }
    }
}

/// BEP 19 web seeds: a `Content-Range` value, and the check of an answer
/// against a range (first 16 bytes: start and length). Whatever parses
/// is a range that starts where it says and is not empty; an accepted
/// `206` covers at least the bytes asked for.
pub fn check_web_seed(data: &[u8]) {
    use bittorrent_core::proto::web_seed::{check_response, parse_content_range};
    let (head, rest) = data.split_at(data.len().min(16));
    let mut n = [0u8; 16];
    n[..head.len()].copy_from_slice(head);
    let start = u64::from_le_bytes(n[..8].try_into().unwrap_or([0; 8])) >> 1;
    let len = (u64::from_le_bytes(n[8..].try_into().unwrap_or([0; 8])) >> 1).max(1);
    let text = String::from_utf8_lossy(rest);
    if let Ok((first, last)) = parse_content_range(&text) {
        assert!(first <= last, "{text:?}");
        if check_response(206, Some(&text), start, len).is_ok() {
            assert_eq!(first, start);
            assert!((last - first).saturating_add(1) >= len);
        }
    }
    let _ = check_response(200, None, start, len);
}

/// BEP 55 `ut_holepunch` payloads: only 12- or 24-byte payloads decode, and a
/// decoded message re-encodes to exactly the input.
pub fn check_holepunch(data: &[u8]) {
    use bittorrent_core::proto::holepunch::HolepunchMessage;
    if let Ok(m) = HolepunchMessage::decode(data) {
        assert!(
            data.len() == 12 || data.len() == 24,
            "decoded {} bytes",
            data.len()
        );
        assert_eq!(m.encode(), data, "holepunch round trip");
    }
}
