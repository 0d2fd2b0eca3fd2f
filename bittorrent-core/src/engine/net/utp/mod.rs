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
//! What does not exist yet: the connection state machine that ties them together
//! (SYN/STATE handshake, FIN/RESET, timeouts, MTU), the endpoint on the UDP socket, and the
//! blocking stream handed to a peer thread. The packet codec is `proto::utp`.

pub mod congestion;
pub mod conn;
pub mod endpoint;
pub mod recv;
pub mod send;
