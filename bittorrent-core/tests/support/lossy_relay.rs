//! A lossy UDP relay for the uTP tests (`utp_stream.rs`, `utp_swarm.rs`): one
//! client on one side, `server` on the other.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A UDP relay to `server` (one client), on 127.0.0.1: drops `drop_per_mille` of the datagrams both ways
/// and delays every `reorder_every`-th one behind the next.
pub fn relay(
    server: SocketAddr,
    drop_per_mille: u64,
    reorder_every: u64,
) -> (SocketAddr, Arc<AtomicBool>, Arc<AtomicU64>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let (st, dr) = (Arc::clone(&stop), Arc::clone(&dropped));
    thread::spawn(move || {
        let mut client: Option<SocketAddr> = None;
        let mut buf = vec![0u8; 65_536];
        let mut held: Option<(Vec<u8>, SocketAddr)> = None;
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut n = 0u64;
        while !st.load(Ordering::Relaxed) {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                if let Some((d, to)) = held.take() {
                    let _ = sock.send_to(&d, to);
                }
                continue;
            };
            let to = if from == server {
                match client {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                client = Some(from);
                server
            };
            n += 1;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng % 1000 < drop_per_mille {
                dr.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let d = buf[..len].to_vec();
            if reorder_every > 0 && n % reorder_every == 0 && held.is_none() {
                held = Some((d, to));
                continue;
            }
            let _ = sock.send_to(&d, to);
            if let Some((h, hto)) = held.take() {
                let _ = sock.send_to(&h, hto);
            }
        }
    });
    (addr, stop, dropped)
}
