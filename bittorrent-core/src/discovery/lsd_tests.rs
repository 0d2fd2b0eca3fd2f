//! Local Service Discovery over real multicast: two `Lsd` instances in one
//! process (sharing UDP port 6771 through SO_REUSEADDR, multicast loopback
//! on) announcing the same torrent on different ports find each other.
//!
//! If this machine cannot do multicast, the test prints
//! `SKIP: multicast not available (...)` and passes, unless `CI=true`, where
//! it fails. To prove the code on a machine whose only route to 224.0.0.0/4 is
//! missing, run the test binary in a network namespace:
//!
//! ```text
//! ip netns add lsdtest
//! ip -n lsdtest link set lo up
//! ip -n lsdtest route add 224.0.0.0/4 dev lo
//! ip netns exec lsdtest target/debug/deps/lsd-<hash> --nocapture
//! ```

use crate::discovery::lsd::{Lsd, LsdConfig};
use crate::InfoHash;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

fn skip(why: &str) {
    let msg = format!("SKIP: multicast not available ({why})");
    if in_ci() {
        panic!("{msg}; CI=true, so this is a failure");
    }
    eprintln!("\n************************************************************");
    eprintln!("{msg}");
    eprintln!("************************************************************\n");
}

/// An info-hash no other test run shares.
fn unique_hash(tag: &str) -> InfoHash {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("lsd-test-{tag}-{}-{nanos}", std::process::id());
    InfoHash(sha1_smol::Sha1::from(seed.as_bytes()).digest().bytes())
}

fn config(port: u16, ipv6: bool) -> LsdConfig {
    LsdConfig {
        port,
        interval: Duration::from_secs(1),
        min_gap: Duration::from_millis(500),
        ipv6,
        multicast_loop: true,
        bind_ip: None,
        bind_ip6: None,
        // TTL 0: delivered to this host only (looped back), never sent on the LAN.
        multicast_ttl: 0,
    }
}

/// Wait until `rx` reports `want` on `port`; every other report is returned
/// for checking.
fn wait_for(
    rx: &Receiver<(InfoHash, SocketAddr)>,
    want: InfoHash,
    port: u16,
    deadline: Instant,
    others: &mut Vec<(InfoHash, SocketAddr)>,
) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((h, a)) if h == want && a.port() == port => return true,
            Ok(other) => others.push(other),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

#[test]
fn two_instances_find_each_other() {
    find_each_other(false, 41001);
}

/// The same with IPv6 on: a failure to set up IPv6 must not stop IPv4.
#[test]
fn two_instances_find_each_other_ipv6_enabled() {
    find_each_other(true, 41011);
}

fn find_each_other(ipv6: bool, base: u16) {
    let _ = env_logger::builder().is_test(true).try_init();
    let shared = unique_hash(&format!("shared-{ipv6}"));
    let only_c = unique_hash(&format!("only-c-{ipv6}"));
    let (a_port, b_port, c_port) = (base, base + 1, base + 2);

    let (a_tx, a_rx) = crossbeam_channel::bounded(64);
    let (b_tx, b_rx) = crossbeam_channel::bounded(64);
    let (c_tx, _c_rx) = crossbeam_channel::bounded(64);
    let a = match Lsd::start(config(a_port, ipv6), a_tx) {
        Ok(l) => l,
        Err(e) => return skip(&format!("first instance: {e}")),
    };
    let b = match Lsd::start(config(b_port, ipv6), b_tx) {
        Ok(l) => l,
        Err(e) => return skip(&format!("second instance on the shared port 6771: {e}")),
    };
    // A third instance announces a torrent the others do not have: never
    // reported to them.
    let c = match Lsd::start(config(c_port, ipv6), c_tx) {
        Ok(l) => l,
        Err(e) => return skip(&format!("third instance: {e}")),
    };
    assert_ne!(a.cookie(), b.cookie());
    if ipv6 {
        assert!((1..=2).contains(&a.groups().len()), "{:?}", a.groups());
    } else {
        assert_eq!(a.groups(), [crate::proto::lsd::HOST_V4]);
    }
    a.set_torrents(vec![shared]);
    b.set_torrents(vec![shared]);
    c.set_torrents(vec![only_c]);

    let deadline = Instant::now() + Duration::from_secs(8);
    let mut a_others = Vec::new();
    let mut b_others = Vec::new();
    let a_saw_b = wait_for(&a_rx, shared, b_port, deadline, &mut a_others);
    let b_saw_a = wait_for(&b_rx, shared, a_port, deadline, &mut b_others);

    // Let a few more periodic announces arrive, then look at everything.
    std::thread::sleep(Duration::from_millis(1500));
    a_others.extend(a_rx.try_iter());
    b_others.extend(b_rx.try_iter());

    let t = Instant::now();
    a.stop();
    b.stop();
    c.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );

    if !a_saw_b && !b_saw_a {
        return skip("no announce arrived within 8 s; no multicast route or loopback?");
    }
    assert!(a_saw_b, "A never heard B (got {a_others:?})");
    assert!(b_saw_a, "B never heard A (got {b_others:?})");
    for (h, addr) in a_others.iter().chain(&b_others) {
        assert_eq!(*h, shared, "reported a torrent we do not have: {addr}");
    }
    assert!(
        a_others.iter().all(|(_, addr)| addr.port() != a_port),
        "A heard itself: {a_others:?}"
    );
    assert!(
        b_others.iter().all(|(_, addr)| addr.port() != b_port),
        "B heard itself: {b_others:?}"
    );
    let v6 = a_others
        .iter()
        .chain(&b_others)
        .filter(|(_, addr)| addr.is_ipv6())
        .count();
    eprintln!(
        "lsd (ipv6 {ipv6}): A heard B and B heard A; later reports: A {}, B {}, over IPv6 {v6}",
        a_others.len(),
        b_others.len()
    );
}
