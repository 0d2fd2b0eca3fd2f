//! uTP (BEP 29), the transport half. **NOT YET WIRED** (issue 25 is open): nothing in the
//! session uses this module yet; every peer connection is still TCP, and the shared UDP
//! port counts and drops what routes to uTP (`discovery::udp::route`).
//!
//! What exists: [`congestion`], the pure, clock-injected parts of a connection's sending
//! side: the RTT / retransmission timeout estimator, the base delay kept over two minutes,
//! and LEDBAT's congestion window (100 ms target). What does not exist yet: the connection
//! state machine (sequence and ACK numbers, receive window, selective ACK handling, fast
//! retransmit, FIN/RESET), the endpoint on the UDP socket, and the blocking stream handed
//! to a peer thread. The packet codec is `proto::utp`.

pub mod congestion;
