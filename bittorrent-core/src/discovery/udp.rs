//! One UDP socket for everything UDP: the `udp` thread reads the socket
//! bound to the listening port number and hands each datagram to its
//! protocol, told apart by the first byte.
//!
//! - **DHT (BEP 5).** KRPC messages are bencoded dictionaries: the first
//!   byte is `d`. They go to the `dht` thread over a bounded channel
//!   (`try_send`: a full channel drops the datagram, as a full socket
//!   buffer would); the DHT thread sends its own datagrams through a clone of
//!   the same socket, so peers see one port for the DHT and the tracker.
//! - **UDP tracker (BEP 15).** Everything else. A request starts with a
//!   connection id: the protocol id `0x41727101980` (first byte 0) for
//!   `connect`, otherwise an id we issued, and the ids we issue never begin
//!   with `d` nor look like a uTP header (see [`tracker_first_byte`]).
//! - Anything later (uTP, BEP 29: first byte `type << 4 | 1`) gets its own
//!   arm here.

use crate::discovery::tracker::TrackerServer;
use crossbeam_channel::Sender;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest datagram read; a datagram that fills the buffer was truncated
/// and is dropped (KRPC and BEP 15 messages are far smaller).
pub const MAX_DATAGRAM: usize = 4096;
/// How often the tracker's stale peers are expired.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// A datagram for the DHT thread: bytes and sender.
pub type Datagram = (Vec<u8>, SocketAddr);

/// Which protocol a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpKind {
    /// A KRPC message (BEP 5): a bencoded dictionary.
    Dht,
    /// A BEP 15 tracker request (or anything not claimed by another protocol).
    Tracker,
}

impl UdpKind {
    /// Classify a datagram by its first byte.
    pub fn of(datagram: &[u8]) -> UdpKind {
        match datagram.first() {
            Some(b'd') => UdpKind::Dht,
            _ => UdpKind::Tracker,
        }
    }
}

/// Force the first byte of a connection id we issue into a form no other
/// protocol on the socket uses: low nibble 8 (so never `d` = 0x64, never a
/// uTP header `x1`).
pub fn tracker_first_byte(b: u8) -> u8 {
    (b & 0xf0) | 0x08
}

/// The `udp` thread: read `socket` until `stop` (checked every 100 ms) and
/// hand each datagram to the DHT (`dht`) or the tracker (`tracker`); a
/// protocol that is off gets nothing. Also expires the tracker's stale
/// entries every 10 s.
pub fn run(
    socket: &UdpSocket,
    tracker: Option<Arc<TrackerServer>>,
    dht: Option<Sender<Datagram>>,
    stop: &AtomicBool,
) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_expire = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let (Some(t), true) = (&tracker, last_expire.elapsed() >= EXPIRE_EVERY) {
            last_expire = Instant::now();
            t.expire(last_expire);
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
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
            Err(e) => return Err(e),
        };
        if n == 0 || n >= buf.len() {
            continue;
        }
        let packet = &buf[..n];
        match UdpKind::of(packet) {
            UdpKind::Dht => {
                if let Some(tx) = &dht {
                    let _ = tx.try_send((packet.to_vec(), from));
                }
            }
            UdpKind::Tracker => {
                if let Some(reply) = tracker.as_ref().and_then(|t| t.handle_udp(packet, from)) {
                    if let Err(e) = socket.send_to(&reply, from) {
                        log::debug!("tracker UDP send to {from}: {e}");
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(UdpKind::of(b"d1:ad2:id20:"), UdpKind::Dht);
        // BEP 15 connect: the protocol id 0x41727101980 starts with 0.
        let connect = 0x0417_2710_1980u64.to_be_bytes();
        assert_eq!(UdpKind::of(&connect), UdpKind::Tracker);
        assert_eq!(UdpKind::of(&[]), UdpKind::Tracker);
        for b in 0..=255u8 {
            let f = tracker_first_byte(b);
            assert_ne!(f, b'd');
            assert_eq!(UdpKind::of(&[f, 0, 0]), UdpKind::Tracker);
            assert_ne!(f & 0x0f, 1, "looks like a uTP header");
        }
    }
}
