//! The default gateway (IPv4) and our address towards it.

use super::MapError;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
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
    mut decode: impl FnMut(&[u8]) -> Result<Option<T>, MapError>,
) -> Result<T, MapError> {
    let to = SocketAddr::from((gateway, port));
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(MapError::Io)?;
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
                // Only the gateway's own port speaks for it.
                Ok((n, from)) if from == to => {
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

#[cfg(test)]
mod tests {
    use super::*;

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
