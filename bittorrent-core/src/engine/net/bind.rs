//! Binding the listening sockets: by default one port number for both
//! address families (`[::]` with `IPV6_V6ONLY` off for TCP), falling back
//! to `0.0.0.0` on a host without IPv6. An explicit address binds only
//! that address.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

/// Backlog of the TCP listener.
const BACKLOG: i32 = 1024;

/// The TCP listener on `ip:port`. `[::]` is dual stack (IPv4 peers arrive
/// as `::ffff:a.b.c.d`; callers canonicalize them); when the host has no
/// IPv6 it falls back to `0.0.0.0`. A port already taken is an error in
/// both families (no fallback then).
pub(crate) fn tcp_listener(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    if ip != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return TcpListener::bind((ip, port));
    }
    match dual_stack_tcp(port) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(e),
        Err(e) => {
            log::info!("no IPv6 listener ({e}): listening on IPv4 only");
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        }
    }
}

fn dual_stack_tcp(port: u16) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    s.set_only_v6(false)?;
    s.set_reuse_address(true)?;
    let a = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    s.bind(&a.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// The UDP sockets beside a TCP listener on `tcp` (same port number): the
/// first carries the UDP tracker and the DHT; the second, when the
/// listener is dual stack, is an IPv6-only socket for the UDP tracker
/// (the DHT stays on IPv4, so its socket never sees a v4-mapped address).
pub(crate) fn udp_sockets(tcp: SocketAddr) -> io::Result<(UdpSocket, Option<UdpSocket>)> {
    if tcp.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return Ok((UdpSocket::bind(tcp)?, None));
    }
    let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, tcp.port()))?;
    let v6 = match v6_only_udp(tcp.port()) {
        Ok(s) => Some(s),
        Err(e) => {
            log::info!("no IPv6 UDP socket on port {} ({e})", tcp.port());
            None
        }
    };
    Ok((v4, v6))
}

fn v6_only_udp(port: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    let a = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    s.bind(&a.into())?;
    Ok(s.into())
}

pub use crate::proto::compact::canonical;

/// Whether a peer at `ip` can be dialled at all: not unspecified,
/// multicast, IPv4 broadcast, "this network" (`0.0.0.0/8`) or reserved
/// (`240.0.0.0/4`), nor IPv6 link-local (`fe80::/10`, which needs a scope
/// we do not have) or IPv4-compatible (`::a.b.c.d`, deprecated: what a
/// garbled v4-mapped address looks like). `ip` is canonical (see
/// [`canonical`]: `::ffff:a.b.c.d` is judged as `a.b.c.d`).
pub(crate) fn dialable_ip(ip: IpAddr) -> bool {
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.octets()[0] == 0 || v4.octets()[0] >= 240,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0) == 0xfe80 || (s[..6] == [0; 6] && !v6.is_loopback())
        }
    };
    !(bad || ip.is_unspecified() || ip.is_multicast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    #[test]
    fn dual_stack_accepts_both_families_on_one_port() {
        let l = tcp_listener(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).unwrap();
        let port = l.local_addr().unwrap().port();
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let mut c = TcpStream::connect((ip, port)).unwrap();
            let (mut s, from) = l.accept().unwrap();
            assert_eq!(canonical(from).ip(), ip);
            c.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
        }
        let (v4, v6) = udp_sockets(l.local_addr().unwrap()).unwrap();
        assert_eq!(v4.local_addr().unwrap().port(), port);
        assert!(v4.local_addr().unwrap().is_ipv4());
        assert_eq!(v6.map(|s| s.local_addr().unwrap().port()), Some(port));
    }

    #[test]
    fn explicit_address_binds_only_it() {
        let l = tcp_listener(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).unwrap();
        assert_eq!(l.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        let l6 = tcp_listener(IpAddr::V6(Ipv6Addr::LOCALHOST), 0).unwrap();
        let port = l6.local_addr().unwrap().port();
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
        let (u, none) = udp_sockets(l6.local_addr().unwrap()).unwrap();
        assert!(u.local_addr().unwrap().is_ipv6() && none.is_none());
    }

    #[test]
    fn never_dials_link_local_multicast_unspecified() {
        for bad in [
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
            "240.0.0.1",
            "::10.0.0.1",
            "::2",
        ] {
            assert!(!dialable_ip(bad.parse().unwrap()), "{bad}");
        }
        for good in ["::1", "2001:db8::1", "fec0::1", "127.0.0.1", "10.0.0.1"] {
            assert!(dialable_ip(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let a: SocketAddr = "[::ffff:10.1.2.3]:6881".parse().unwrap();
        assert_eq!(canonical(a), "10.1.2.3:6881".parse().unwrap());
        let b: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
        assert_eq!(canonical(b), b);
    }
}
