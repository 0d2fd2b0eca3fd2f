//! uTP (BEP 29), the transport half. **NOT YET WIRED** (issue 25 is open): nothing in the
//! session uses this module yet; every peer connection is still TCP, and the shared UDP
//! port counts and drops what routes to uTP (`discovery::udp::route`).
//!
//! What exists, pure and clock-injected, unit-tested: [`congestion`] (the RTT /
//! retransmission timeout estimator, the base delay kept over two minutes, LEDBAT's window
//! with its 100 ms target) and [`send`] (the packets in flight: cumulative and selective
//! ACKs, RTT samples from packets sent once, loss after 3 duplicate ACKs or 3 packets
//! selectively ACKed past a hole, ACKs for data never sent ignored, a bound on packets kept)
//! and [`recv`] (the reordering buffer bounded in bytes and in packets, the advertised
//! window, the `ack_nr` and selective ACK we send back, duplicates refused).
//! [`conn`] ties them together: one connection's state machine (handshake, data, ACKs,
//! retransmission, FIN/RESET, timeouts), pure and clock-injected. [`endpoint`] runs
//! connections on **its own** UDP socket with one thread and hands them out as
//! [`endpoint::UtpStream`], a blocking `Read + Write` stream with timeouts; only tests use it.
//! What does not exist yet: the endpoint on the session's shared UDP port, path-MTU probing,
//! and the peer threads reading a `UtpStream`. The packet codec is `proto::utp`.

pub mod congestion;
pub mod conn;
pub mod endpoint;
pub mod recv;
pub mod send;
mod slot;
pub mod stream;
