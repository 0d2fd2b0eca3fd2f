//! Our own IPv6 address, as we tell it to peers in the extended
//! handshake (BEP 10 `ipv6`): found once at start from the listening
//! address or the routing table. (What others report as our external
//! address is recorded in `engine::session::external`.)

use std::net::IpAddr;

/// Whether `ip` is worth telling peers as our IPv6 address (BEP 10's
/// `ipv6`): not loopback, unspecified, multicast or link-local.
pub fn advertisable_v6(ip: std::net::Ipv6Addr) -> bool {
    let ip = IpAddr::V6(ip);
    !ip.is_loopback() && crate::engine::net::bind::dialable_ip(ip) && ip.to_canonical() == ip
}

/// Our own IPv6 address for the extended handshake: the listening address
/// when it is a specific usable IPv6 address; else the source address the
/// routing table picks for a global destination (a UDP `connect` sends
/// nothing), when it is usable. None without IPv6.
pub fn probe_own_v6(listen: IpAddr) -> Option<std::net::Ipv6Addr> {
    match listen {
        IpAddr::V6(v6) if !v6.is_unspecified() => return advertisable_v6(v6).then_some(v6),
        IpAddr::V4(_) => return None,
        _ => {}
    }
    let s = std::net::UdpSocket::bind("[::]:0").ok()?;
    // 2001:db8::/32 is the documentation prefix: only the route is looked up.
    s.connect("[2001:db8::1]:6881").ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V6(v6) if advertisable_v6(v6) => Some(v6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_v6_never_loopback_or_link_local() {
        assert_eq!(probe_own_v6(ip("::1")), None);
        assert_eq!(probe_own_v6(ip("fe80::1")), None);
        assert_eq!(probe_own_v6(ip("127.0.0.1")), None);
        assert_eq!(
            probe_own_v6(ip("2001:db8::3")),
            Some("2001:db8::3".parse().unwrap())
        );
        if let Some(v6) = probe_own_v6(ip("::")) {
            assert!(advertisable_v6(v6));
        }
    }
}
