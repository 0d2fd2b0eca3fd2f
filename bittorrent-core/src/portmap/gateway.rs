//! The default gateway (IPv4 and IPv6) and our address towards it.

use super::MapError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

/// The route table the kernel shows (Linux).
const ROUTE_FILE: &str = "/proc/net/route";
/// Most lines of the route table read.
const MAX_ROUTES: usize = 4096;

/// The IPv4 default gateway: the default route with the lowest metric.
/// `None` when there is none (or the route table cannot be read).
pub(crate) fn default_gateway() -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string(ROUTE_FILE).ok()?;
    parse_route_table(&text)
}

/// The default gateway in a `/proc/net/route` text.
pub(crate) fn parse_route_table(text: &str) -> Option<Ipv4Addr> {
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in text.lines().skip(1).take(MAX_ROUTES) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(gw), Some(flags), Some(mask)) =
            (hex(f[1]), hex(f[2]), hex(f[3]), hex(f[7]))
        else {
            continue;
        };
        let metric: u32 = f[6].parse().unwrap_or(u32::MAX);
        // RTF_UP | RTF_GATEWAY, destination and mask 0.0.0.0.
        if dest != 0 || mask != 0 || flags & 0x3 != 0x3 || gw == 0 {
            continue;
        }
        // The file shows the address in host (little-endian) order.
        let ip = Ipv4Addr::from(gw.swap_bytes());
        if best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, ip));
        }
    }
    best.map(|(_, ip)| ip)
}

/// Our address on the interface that reaches `gateway` (a connected UDP
/// socket: nothing is sent).
pub(crate) fn local_addr_towards(gateway: Ipv4Addr) -> std::io::Result<Ipv4Addr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.connect(SocketAddr::from((gateway, 1900)))?;
    match s.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(std::io::Error::other("not an IPv4 address")),
    }
}

/// Send `request` to the gateway's UDP `port` and wait for an answer that
/// `decode` accepts, retransmitting after each wait of `retries` (NAT-PMP
/// and PCP share this rule, RFC 6886 / 6887). Only datagrams from the
/// gateway's own address and port count; `decode` returns `Ok(None)` for
/// one that is not an answer to this request. `Err(MapError::NoAnswer)`
/// when the gateway stays silent or its port is closed (ICMP unreachable).
pub(crate) fn udp_exchange<T, const N: usize>(
    gateway: Ipv4Addr,
    port: u16,
    request: &[u8],
    retries: &[Duration],
    decode: impl FnMut(&[u8]) -> Result<Option<T>, MapError>,
) -> Result<T, MapError> {
    let to = SocketAddr::from((gateway, port));
    udp_exchange_from::<T, N>(Ipv4Addr::UNSPECIFIED.into(), to, request, retries, decode)
}

/// [`udp_exchange`] from a socket bound to `bind` (PCP over IPv6: our
/// global address, so that the gateway sees the address we ask for, even
/// when it is reached at its link-local address) to `to`.
pub(crate) fn udp_exchange_from<T, const N: usize>(
    bind: IpAddr,
    to: SocketAddr,
    request: &[u8],
    retries: &[Duration],
    mut decode: impl FnMut(&[u8]) -> Result<Option<T>, MapError>,
) -> Result<T, MapError> {
    let sock = UdpSocket::bind((bind, 0)).map_err(MapError::Io)?;
    let mut buf = [0u8; N];
    for wait in retries {
        sock.send_to(request, to).map_err(MapError::Io)?;
        let deadline = Instant::now() + *wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left)).map_err(MapError::Io)?;
            match sock.recv_from(&mut buf) {
                // Only the gateway's own port speaks for it (the scope
                // of a link-local source is the interface we sent on).
                Ok((n, from)) if from.ip() == to.ip() && from.port() == to.port() => {
                    if let Some(a) = decode(&buf[..n])? {
                        return Ok(a);
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // ICMP port unreachable: nothing listens there.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(MapError::NoAnswer);
                }
                Err(e) => return Err(MapError::Io(e)),
            }
        }
    }
    Err(MapError::NoAnswer)
}

/// The IPv6 route table the kernel shows (Linux).
const ROUTE6_FILE: &str = "/proc/net/ipv6_route";
/// Our IPv6 addresses, one per line, with their interface (Linux).
const IF_INET6_FILE: &str = "/proc/net/if_inet6";

/// The IPv6 default router (the default route with the lowest metric)
/// and the index of the interface it is on. A link-local router address
/// comes with that index as its scope (port 0: the caller's).
pub(crate) fn default_gateway_v6() -> Option<(SocketAddrV6, u32)> {
    let routes = std::fs::read_to_string(ROUTE6_FILE).ok()?;
    let (gw, dev) = parse_route6_table(&routes)?;
    let ifs = std::fs::read_to_string(IF_INET6_FILE).ok()?;
    let index = interface_index(&ifs, &dev)?;
    let scope = if is_link_local(gw) { index } else { 0 };
    Some((SocketAddrV6::new(gw, 0, 0, scope), index))
}

/// `fe80::/10`.
pub(crate) fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The IPv6 default route with the lowest metric in a
/// `/proc/net/ipv6_route` text: the next hop and the interface's name.
pub(crate) fn parse_route6_table(text: &str) -> Option<(Ipv6Addr, String)> {
    let mut best: Option<(u32, Ipv6Addr, String)> = None;
    for line in text.lines().take(MAX_ROUTES) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Some(dest), Some(plen), Some(hop), Some(metric), Some(flags)) = (
            hex_v6(f[0]),
            u8::from_str_radix(f[1], 16).ok(),
            hex_v6(f[4]),
            u32::from_str_radix(f[5], 16).ok(),
            u32::from_str_radix(f[8], 16).ok(),
        ) else {
            continue;
        };
        // RTF_UP | RTF_GATEWAY, destination ::/0, a next hop.
        if !dest.is_unspecified() || plen != 0 || flags & 0x3 != 0x3 || hop.is_unspecified() {
            continue;
        }
        if best.as_ref().is_none_or(|(m, _, _)| metric < *m) {
            best = Some((metric, hop, f[9].to_string()));
        }
    }
    best.map(|(_, hop, dev)| (hop, dev))
}

/// The index of interface `dev` in a `/proc/net/if_inet6` text.
pub(crate) fn interface_index(text: &str, dev: &str) -> Option<u32> {
    text.lines().take(MAX_ROUTES).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 6 && f[5] == dev)
            .then(|| u32::from_str_radix(f[1], 16).ok())
            .flatten()
    })
}

/// 32 hex digits as an IPv6 address.
fn hex_v6(s: &str) -> Option<Ipv6Addr> {
    (s.len() == 32)
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
        .map(Ipv6Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_default_route_and_interface_index() {
        let routes = "\
fd770000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 h21ll
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe8000000000000054e596fffefa7c97 00000400 00000001 00000000 00000003 h21ll
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000009 00000500 00000001 00000000 00000003 eth9
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
junk
";
        let (gw, dev) = parse_route6_table(routes).expect("default route");
        assert_eq!(gw, "fe80::54e5:96ff:fefa:7c97".parse::<Ipv6Addr>().unwrap());
        assert_eq!(dev, "h21ll");
        assert!(is_link_local(gw));
        assert_eq!(parse_route6_table("00 00\n"), None);
        let ifs = "fd770000000000000000000000000002 05 40 00 80    h21ll\n\
                   00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(interface_index(ifs, "h21ll"), Some(5));
        assert_eq!(interface_index(ifs, "eth0"), None);
    }

    #[test]
    fn default_route_with_the_lowest_metric() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 wlan0\t00000000\t0101A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n\
                 junk line\n";
        assert_eq!(parse_route_table(t), Some(Ipv4Addr::new(192, 168, 1, 1)));
        let none = "Iface\tDestination\tGateway\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_route_table(none), None);
    }
}
