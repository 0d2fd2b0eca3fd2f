//! Whether an address belongs to this machine: loopback, or an address one
//! of its interfaces has. A peer or tracker client there is the machine
//! itself (a classroom of peers on one host, a test swarm), not a remote
//! flooder: per-address limits do not apply to it (see `TrackerConfig::
//! trust_local` and `Config::trust_local`).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long an answer is reused (addresses of interfaces come and go).
const TTL: Duration = Duration::from_secs(60);
/// Answers remembered at most (a flood from many addresses clears it).
const MAX_CACHED: usize = 4096;

/// True for loopback and for any address this host can bind to: binding a
/// UDP socket to `ip` succeeds only if an interface has it (no packet is
/// sent). Cached for a minute.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return true;
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    static CACHE: OnceLock<Mutex<HashMap<IpAddr, (bool, Instant)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let now = Instant::now();
    if let Some(&(local, at)) = cache.lock().get(&ip) {
        if now.saturating_duration_since(at) < TTL {
            return local;
        }
    }
    let local = UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok();
    let mut c = cache.lock();
    if c.len() >= MAX_CACHED {
        c.clear();
    }
    c.insert(ip, (local, now));
    local
}

/// The index of the interface that has the IPv6 address `ip`, from Linux's
/// `/proc/net/if_inet6` (one line per address: 32 hex digits, the
/// interface index in hex, prefix length, scope, flags, name). None when
/// no interface has it, or off Linux. For joining a multicast group on the
/// interface of a bound address (LSD).
pub(crate) fn ipv6_interface_index(ip: std::net::Ipv6Addr) -> Option<u32> {
    use std::io::Read;
    let mut text = String::new();
    // The file is a line per address; 1 MiB is far beyond any host.
    std::fs::File::open("/proc/net/if_inet6")
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    index_in_if_inet6(&text, ip)
}

fn index_in_if_inet6(text: &str, ip: std::net::Ipv6Addr) -> Option<u32> {
    let want: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let addr = f.next()?;
        let index = f.next()?;
        addr.eq_ignore_ascii_case(&want)
            .then(|| u32::from_str_radix(index, 16).ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_interface_index_from_if_inet6() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\n\
                    fd21000a000000000000000000000002 1b 40 00 80  q21x0a1\n\
                    garbage\n";
        let ip = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!(index_in_if_inet6(text, ip("::1")), Some(1));
        assert_eq!(index_in_if_inet6(text, ip("fd21:a::2")), Some(0x1b));
        assert_eq!(index_in_if_inet6(text, ip("fd21:a::3")), None);
        // Live: the loopback interface has ::1 wherever IPv6 is on.
        if std::path::Path::new("/proc/net/if_inet6").exists() && is_local(ip("::1").into()) {
            assert!(ipv6_interface_index(ip("::1")).is_some());
        }
        assert_eq!(ipv6_interface_index(ip("2001:db8::7")), None);
    }

    #[test]
    fn loopback_and_own_addresses_are_local_others_are_not() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(is_local("127.9.8.7".parse().unwrap()));
        assert!(is_local("::1".parse().unwrap()));
        assert!(is_local("::ffff:127.0.0.1".parse().unwrap()));
        // TEST-NET-3 and the documentation prefix are never assigned here.
        assert!(!is_local("203.0.113.7".parse().unwrap()));
        assert!(!is_local("2001:db8::7".parse().unwrap()));
        assert!(!is_local("0.0.0.0".parse().unwrap()));
        // Whatever address the host has towards the outside is local.
        if let Ok(s) = UdpSocket::bind("0.0.0.0:0") {
            if s.connect("192.0.2.1:9").is_ok() {
                if let Ok(a) = s.local_addr() {
                    assert!(is_local(a.ip()), "{a}");
                }
            }
        }
    }
}
