//! One UDP socket for everything UDP: the `udp` thread reads the socket
//! bound to the listening port number and hands each datagram to its
//! protocol. Which protocol is decided in ONE place, [`route`], in
//! libtorrent's order:
//!
//! 1. **UDP tracker (BEP 15)**: a request to the embedded tracker: 16 bytes
//!    or more, and either a `connect` (the protocol id `0x41727101980`,
//!    action 0) or an `announce`/`scrape` (action 1 or 2) whose connection
//!    id has the form we issue (see [`tracker_first_byte`]). Our tracker
//!    *client* uses its own ephemeral socket, so its transactions never
//!    arrive here.
//! 2. **uTP (BEP 29)**: a datagram that parses as a uTP version 1 packet
//!    (header and extension chain, [`crate::proto::utp::Packet::decode`]) and
//!    either is an `ST_SYN` or carries a connection id the uTP side owns
//!    for that sender. This thread hands it to the session's uTP endpoint
//!    ([`UtpRoute`], `UtpSocket::deliver`) with the other uTP datagrams of the
//!    same read (up to 32 per `recvmmsg`, `util::udp_batch`): the endpoint's
//!    packet work for inbound datagrams runs here, with no copy and no thread
//!    hop; the endpoint sends through a clone of the same socket. A uTP packet
//!    (not a SYN nor a RESET) for no connection of ours is answered with an
//!    `ST_RESET`, at most [`RESETS_PER_SOURCE_PER_SEC`] per source per second.
//! 3. **DHT (BEP 5)**: a bencoded dictionary (`d` ... `e`). It goes to the
//!    `dht` thread over a bounded channel (`try_send`: a full channel drops
//!    the datagram, as a full socket buffer would); the DHT thread sends its
//!    own datagrams through a clone of the same socket, so peers see one
//!    port for the DHT, the tracker and (later) uTP.
//! 4. Everything else is dropped and counted ([`UdpCounts`]).
//!
//! The first bytes of the three protocols never overlap: a KRPC dictionary
//! starts with `d` (0x64), a BEP 15 request with 0x00 (connect) or a byte
//! whose low nibble is 8 (our connection ids), a uTP packet with a byte whose
//! low nibble is 1 (the version).

use crate::discovery::tracker::TrackerServer;
use crate::proto::tracker::UDP_PROTOCOL_ID;
use crate::proto::utp;
use crate::util::udp_batch::RecvBatch;
use crossbeam_channel::Sender;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest datagram read; a datagram that fills the buffer was truncated
/// and is dropped (KRPC and BEP 15 messages are far smaller).
pub const MAX_DATAGRAM: usize = 4096;
/// `ST_RESET`s sent per source address per second at most (answers to uTP packets for
/// connections we do not have).
pub const RESETS_PER_SOURCE_PER_SEC: u32 = 10;
/// Source addresses whose RESET count is kept (the table is cleared when it grows past).
const MAX_RESET_SOURCES: usize = 4_096;
/// How often the tracker's stale peers are expired.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// A datagram for the DHT thread (or the uTP endpoint): bytes and sender.
pub type Datagram = (Vec<u8>, SocketAddr);

/// The uTP endpoint's ownership test: is a non-SYN packet from this sender with this
/// header for one of its connections?
pub type OwnsUtp = Box<dyn Fn(SocketAddr, &utp::Header) -> bool + Send>;

/// The uTP endpoint's intake: the uTP datagrams of one read, with their senders.
pub type DeliverUtp = Box<dyn Fn(&[(&[u8], SocketAddr)]) + Send>;

/// Where uTP datagrams go: the endpoint's ownership test (is this non-SYN packet for one of
/// its connections?) and its inbound channel.
pub struct UtpRoute {
    /// Whether a packet from this sender with this header is for a connection the endpoint
    /// owns (the endpoint's `UtpSocket::owns`).
    pub owns: OwnsUtp,
    /// Hands the endpoint the uTP datagrams of one read of the socket, on this thread
    /// (the endpoint's `UtpSocket::deliver`).
    pub deliver: DeliverUtp,
}

/// Where a datagram on the shared socket goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A BEP 15 request for the embedded tracker.
    Tracker,
    /// A uTP packet: an `ST_SYN`, or a packet for a connection the uTP side owns.
    Utp,
    /// A uTP packet (DATA, STATE or FIN) for no connection of ours: answered with an
    /// `ST_RESET` where uTP is on (at most `RESETS_PER_SOURCE_PER_SEC` (10) per source address
    /// per second), else dropped.
    UtpUnknown,
    /// A KRPC message (BEP 5): a bencoded dictionary.
    Dht,
    /// None of the above: dropped and counted.
    Drop,
}

/// Whether `packet` is a BEP 15 request our tracker could answer: a connect
/// (protocol id, action 0) or an announce/scrape (action 1/2) under a
/// connection id of the form we issue.
pub fn is_tracker_request(packet: &[u8]) -> bool {
    let Some(head) = packet.get(..16) else {
        return false;
    };
    let cid = u64::from_be_bytes([
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
    ]);
    let action = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    match action {
        0 => cid == UDP_PROTOCOL_ID,
        1 | 2 => tracker_first_byte(head[0]) == head[0],
        _ => false,
    }
}

/// The demultiplexing rule of the shared UDP port (see the module docs):
/// tracker request, then uTP (`ST_SYN`, or `owns_utp(header)` says the
/// connection id is one of ours for this sender), then a bencoded
/// dictionary for the DHT, else drop.
pub fn route(packet: &[u8], owns_utp: impl FnOnce(&utp::Header) -> bool) -> Route {
    if is_tracker_request(packet) {
        return Route::Tracker;
    }
    if let Ok(p) = utp::Packet::decode(packet) {
        if p.header.kind == utp::PacketType::Syn || owns_utp(&p.header) {
            return Route::Utp;
        }
        // A RESET for nothing of ours is not answered (two endpoints would ping-pong).
        if p.header.kind != utp::PacketType::Reset {
            return Route::UtpUnknown;
        }
    }
    if packet.len() >= 2 && packet.first() == Some(&b'd') && packet.last() == Some(&b'e') {
        return Route::Dht;
    }
    Route::Drop
}

/// What the `udp` thread did with the datagrams it read (logged at debug
/// level every 10 s when they changed, and when the thread ends).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UdpCounts {
    /// Handed to the embedded tracker.
    pub tracker: u64,
    /// Handed to the DHT thread.
    pub dht: u64,
    /// Handed to the uTP endpoint.
    pub utp: u64,
    /// Routed to uTP and dropped: no uTP endpoint here.
    pub utp_unserved: u64,
    /// uTP packets for no connection of ours answered with an `ST_RESET`.
    pub utp_reset: u64,
    /// Routed to a protocol that is off here, or whose channel was full.
    pub unserved: u64,
    /// Matched no protocol ([`Route::Drop`]), or empty / truncated.
    pub dropped: u64,
}

/// A count of events per source address per second, bounded in sources.
struct PerSource {
    per_sec: u32,
    max_sources: usize,
    seen: std::collections::HashMap<std::net::IpAddr, (Instant, u32)>,
}

impl PerSource {
    fn new(per_sec: u32, max_sources: usize) -> PerSource {
        PerSource {
            per_sec,
            max_sources,
            seen: std::collections::HashMap::new(),
        }
    }

    /// Count one from `ip` at `now`: whether it is within the limit.
    fn allow(&mut self, ip: std::net::IpAddr, now: Instant) -> bool {
        if self.seen.len() >= self.max_sources && !self.seen.contains_key(&ip) {
            self.seen
                .retain(|_, (t, _)| now.saturating_duration_since(*t) < Duration::from_secs(1));
            if self.seen.len() >= self.max_sources {
                return false; // a flood from many sources: answer none of the new ones
            }
        }
        let (start, count) = self.seen.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= Duration::from_secs(1) {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        *count <= self.per_sec
    }
}

/// Force the first byte of a connection id we issue into a form no other
/// protocol on the socket uses: low nibble 8 (so never `d` = 0x64, never a
/// uTP header `x1`).
pub fn tracker_first_byte(b: u8) -> u8 {
    (b & 0xf0) | 0x08
}

/// The `udp` thread: read `socket` until `stop` (checked every 100 ms) and
/// hand each datagram where [`route`] says: the DHT (`dht`), the tracker
/// (`tracker`), the uTP endpoint (`utp`), or nowhere (a protocol that is
/// off gets nothing), counting each in [`UdpCounts`]. Also expires the
/// tracker's stale entries every 10 s.
pub fn run(
    socket: &UdpSocket,
    tracker: Option<Arc<TrackerServer>>,
    dht: Option<Sender<Datagram>>,
    utp: Option<UtpRoute>,
    stop: &AtomicBool,
) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    // GRO: a train of uTP datagrams (a GSO send) arrives as one message.
    let mut batch = RecvBatch::with_gro(socket, MAX_DATAGRAM);
    let mut resets = PerSource::new(RESETS_PER_SOURCE_PER_SEC, MAX_RESET_SOURCES);
    let mut last_expire = Instant::now();
    let mut counts = UdpCounts::default();
    let mut logged = counts;
    while !stop.load(Ordering::Relaxed) {
        if last_expire.elapsed() >= EXPIRE_EVERY {
            last_expire = Instant::now();
            if let Some(t) = &tracker {
                t.expire(last_expire);
            }
            if counts != logged {
                log::debug!("udp port: {counts:?}");
                logged = counts;
            }
        }
        let got = match batch.recv(socket, true) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        // ICMP errors from earlier sends surface here.
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue
            }
            Err(e) => {
                log::debug!("udp port: {counts:?}");
                return Err(e);
            }
        };
        // The uTP datagrams of this read, handed over together (one ACK per connection).
        let mut to_utp: Vec<(&[u8], SocketAddr)> = Vec::new();
        for i in 0..got {
            let (packet, from) = batch.get(i);
            if packet.is_empty() || packet.len() >= MAX_DATAGRAM {
                counts.dropped += 1;
                continue;
            }
            let owns = |h: &utp::Header| utp.as_ref().is_some_and(|u| (u.owns)(from, h));
            match route(packet, owns) {
                Route::Dht => match &dht {
                    Some(tx) if tx.try_send((packet.to_vec(), from)).is_ok() => counts.dht += 1,
                    _ => counts.unserved += 1,
                },
                Route::Tracker => {
                    let Some(t) = &tracker else {
                        counts.unserved += 1;
                        continue;
                    };
                    counts.tracker += 1;
                    if let Some(reply) = t.handle_udp(packet, from) {
                        if let Err(e) = socket.send_to(&reply, from) {
                            log::debug!("tracker UDP send to {from}: {e}");
                        }
                    }
                }
                Route::Utp if utp.is_some() => to_utp.push((packet, from)),
                Route::Utp => counts.utp_unserved += 1,
                Route::UtpUnknown if utp.is_some() && resets.allow(from.ip(), Instant::now()) => {
                    counts.utp_reset += 1;
                    let reset =
                        utp::Packet::decode(packet).map(|p| utp::Packet::reset_for(&p.header));
                    if let Ok(r) = reset {
                        if let Err(e) = socket.send_to(&r, from) {
                            log::debug!("uTP RESET to {from}: {e}");
                        }
                    }
                }
                Route::UtpUnknown => counts.dropped += 1,
                Route::Drop => {
                    counts.dropped += 1;
                    log::trace!(
                        "udp port: dropped {} bytes from {from}: {:02x?} ({:?})",
                        packet.len(),
                        &packet[..packet.len().min(24)],
                        utp::Packet::decode(packet).map(|p| p.header)
                    );
                }
            }
        }
        if let Some(u) = utp.as_ref().filter(|_| !to_utp.is_empty()) {
            counts.utp += to_utp.len() as u64;
            (u.deliver)(&to_utp);
        }
    }
    log::debug!("udp port: {counts:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::utp::{Header, Packet, PacketType, SelectiveAck};

    fn connect() -> Vec<u8> {
        let mut p = UDP_PROTOCOL_ID.to_be_bytes().to_vec();
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p
    }

    fn tracker_req(first: u8, action: u32) -> Vec<u8> {
        let mut p = vec![first, 1, 2, 3, 4, 5, 6, 7];
        p.extend_from_slice(&action.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(&[0; 82]);
        p
    }

    fn utp(kind: PacketType, connection_id: u16) -> Vec<u8> {
        Packet {
            header: Header {
                kind,
                connection_id,
                timestamp_us: 1,
                timestamp_diff_us: 0,
                wnd_size: 1 << 20,
                seq_nr: 1,
                ack_nr: 0,
            },
            sack: None,
            payload: b"",
        }
        .encode()
    }

    const NONE: fn(&Header) -> bool = |_| false;

    #[test]
    fn tracker_requests_go_to_the_tracker() {
        assert_eq!(route(&connect(), NONE), Route::Tracker);
        for b in 0..=255u8 {
            let first = tracker_first_byte(b);
            assert_eq!(route(&tracker_req(first, 1), NONE), Route::Tracker);
            assert_eq!(route(&tracker_req(first, 2), NONE), Route::Tracker);
            // Never a `d` nor a uTP version nibble.
            assert_ne!(first, b'd');
            assert_ne!(first & 0x0f, utp::VERSION);
        }
        // Too short, an unknown action, a connect without the protocol id,
        // an announce under an id we never issue: not the tracker's.
        assert_eq!(route(&connect()[..15], NONE), Route::Drop);
        assert_eq!(route(&tracker_req(0x18, 3), NONE), Route::Drop);
        assert_eq!(route(&tracker_req(0x18, 0), NONE), Route::Drop);
        assert_eq!(route(&tracker_req(0x17, 1), NONE), Route::Drop);
    }

    #[test]
    fn utp_syn_or_owned_connection_goes_to_utp() {
        assert_eq!(route(&utp(PacketType::Syn, 7), NONE), Route::Utp);
        for kind in [
            PacketType::Data,
            PacketType::Fin,
            PacketType::State,
            PacketType::Reset,
        ] {
            let p = utp(kind, 7);
            // For no connection: answered with a RESET, but a RESET is not answered.
            let unknown = if kind == PacketType::Reset {
                Route::Drop
            } else {
                Route::UtpUnknown
            };
            assert_eq!(route(&p, NONE), unknown, "{kind:?} for no connection");
            assert_eq!(route(&p, |h| h.connection_id == 7), Route::Utp);
            assert_eq!(route(&p, |h| h.connection_id == 8), unknown);
        }
        // With a selective ACK and a payload.
        let p = Packet {
            header: Header::decode(&utp(PacketType::State, 9)).unwrap(),
            sack: SelectiveAck::from_received(0, &[3]),
            payload: b"",
        }
        .encode();
        assert_eq!(route(&p, |h| h.connection_id == 9), Route::Utp);
        // A header with version 2, or a truncated extension chain, is not uTP.
        let mut v2 = utp(PacketType::Syn, 7);
        v2[0] = 0x42;
        assert_eq!(route(&v2, NONE), Route::Drop);
        let mut cut = utp(PacketType::Syn, 7);
        cut[1] = 1;
        assert_eq!(route(&cut, |_| true), Route::Drop);
        // The ownership check is not even asked for a SYN or a non-uTP datagram.
        let asked = std::cell::Cell::new(false);
        let _ = route(b"d1:y1:qe", |_| {
            asked.set(true);
            true
        });
        assert!(!asked.get());
    }

    #[test]
    fn bencoded_dictionaries_go_to_the_dht() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(route(ping, NONE), Route::Dht);
        assert_eq!(route(b"de", NONE), Route::Dht);
        assert_eq!(route(b"d", NONE), Route::Drop);
        assert_eq!(route(b"d1:y1:q", NONE), Route::Drop);
        assert_eq!(route(b"l1:ae", NONE), Route::Drop);
        assert_eq!(route(b"", NONE), Route::Drop);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n", NONE), Route::Drop);
    }

    /// libtorrent's order: a datagram that is a tracker request and could
    /// also be read as something else goes to the tracker first.
    #[test]
    fn the_order_is_tracker_then_utp_then_dht() {
        // A 20-byte uTP SYN is never a tracker request (its action field is
        // the timestamp_diff, and its first byte has version nibble 1).
        let syn = utp(PacketType::Syn, 0x1234);
        assert!(!is_tracker_request(&syn));
        // A BEP 15 announce whose bytes from 16 on are arbitrary still goes
        // to the tracker even if the owner check would claim anything.
        assert_eq!(route(&tracker_req(0x08, 1), |_| true), Route::Tracker);
        // A bencoded dictionary never decodes as uTP ('d' = version 4).
        assert!(utp::Packet::decode(b"d1:y1:q1:t20:xxxxxxxxxxxxxxxxxxxxe").is_err());
    }

    #[test]
    fn run_counts_and_drops_what_it_cannot_serve() {
        use std::net::Ipv4Addr;
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = sock.local_addr().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(8);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (sock, stop) = (sock.try_clone().unwrap(), Arc::clone(&stop));
            std::thread::spawn(move || run(&sock, None, Some(tx), None, &stop))
        };
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client.send_to(&utp(PacketType::Syn, 1), addr).unwrap();
        client.send_to(b"junk", addr).unwrap();
        client.send_to(&connect(), addr).unwrap();
        client.send_to(b"d1:y1:qe", addr).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got.0, b"d1:y1:qe");
        assert!(
            rx.try_recv().is_err(),
            "only the KRPC datagram reaches the DHT"
        );
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn a_utp_packet_for_no_connection_is_reset_within_the_limit() {
        use std::net::Ipv4Addr;
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = {
            let (sock, stop, n) = (
                sock.try_clone().unwrap(),
                Arc::clone(&stop),
                Arc::clone(&delivered),
            );
            let route = UtpRoute {
                owns: Box::new(|_, _| false),
                deliver: Box::new(move |d| {
                    n.fetch_add(d.len(), Ordering::Relaxed);
                }),
            };
            std::thread::spawn(move || run(&sock, None, None, Some(route), &stop))
        };
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        for _ in 0..50 {
            client.send_to(&utp(PacketType::Data, 77), addr).unwrap();
        }
        client.send_to(&utp(PacketType::Reset, 78), addr).unwrap();
        let mut buf = [0u8; 64];
        let mut resets = 0;
        while let Ok((n, _)) = client.recv_from(&mut buf) {
            let h = utp::Packet::decode(&buf[..n]).unwrap().header;
            assert_eq!(
                (h.kind, h.connection_id, h.ack_nr),
                (PacketType::Reset, 77, 1)
            );
            resets += 1;
        }
        // The limit, or twice it when a loaded machine spread the burst over two seconds;
        // never one per packet, and none for the RESET.
        let max = RESETS_PER_SOURCE_PER_SEC as usize;
        assert!((max..=2 * max).contains(&resets), "{resets} resets");
        assert_eq!(
            delivered.load(Ordering::Relaxed),
            0,
            "nothing for the endpoint"
        );
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn per_source_limit_and_bound() {
        let now = Instant::now();
        let mut p = PerSource::new(2, 3);
        let ip = |i: u8| std::net::IpAddr::from([10, 0, 0, i]);
        assert!(p.allow(ip(1), now) && p.allow(ip(1), now) && !p.allow(ip(1), now));
        assert!(p.allow(ip(1), now + Duration::from_secs(1)), "a new second");
        assert!(p.allow(ip(2), now) && p.allow(ip(3), now));
        assert!(!p.allow(ip(4), now), "the table is full");
        assert!(
            p.allow(ip(4), now + Duration::from_secs(2)),
            "old entries expire"
        );
        assert!(p.seen.len() <= 3);
    }
}
