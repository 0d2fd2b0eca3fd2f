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

/// The TCP listener(s) of a session: `ip:port` (see [`tcp_listener`]) and
/// each of `more` on the same port number: at most one (see
/// [`check_second`]; refused before anything is bound).
pub(crate) fn tcp_listeners(
    ip: IpAddr,
    port: u16,
    more: &[IpAddr],
) -> io::Result<(TcpListener, Option<TcpListener>)> {
    let second = match more {
        [] => return Ok((tcp_listener(ip, port)?, None)),
        [s] => *s,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at most two listening addresses (an IPv4 and an IPv6 one)",
            ))
        }
    };
    check_second(ip, second)?;
    let first = tcp_listener(ip, port)?;
    let port = first.local_addr()?.port();
    Ok((first, Some(second_tcp_listener(second, port)?)))
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

/// Whether `second` may be listened on beside `first` (see
/// `Config::extra_listen_addrs`): the two are of different families, and
/// the first is not `[::]` (which is already both). Wildcards are fine
/// otherwise: `0.0.0.0` beside `fd00::1` is all of IPv4 and one IPv6
/// address; `[::]` second is IPv6 only.
fn check_second(first: IpAddr, second: IpAddr) -> io::Result<()> {
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot listen on {second} beside {first}: {why}"),
        ))
    };
    if first.is_ipv4() == second.is_ipv4() {
        return refuse("one address per family (an IPv4 and an IPv6 address)");
    }
    if first == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return refuse("[::] first already takes both families");
    }
    Ok(())
}

/// The TCP listener on `ip:port` beside the first (see [`check_second`]):
/// IPv6-only, so an IPv6 wildcard does not take IPv4 too.
fn second_tcp_listener(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    let IpAddr::V6(_) = ip else {
        return TcpListener::bind((ip, port));
    };
    let s = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::new(ip, port).into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// The UDP sockets beside a TCP listener on `tcp` (same port number), and
/// beside the second listener on `second` if there is one (the other
/// family): the first socket carries the UDP tracker and the DHT; the
/// second, when the listener is dual stack or there are two listeners, is
/// an IPv6-only socket for the UDP tracker over IPv6 and the IPv6 DHT (the
/// first DHT stays on IPv4, so its socket never sees a v4-mapped address).
pub(crate) fn udp_sockets(
    tcp: SocketAddr,
    second: Option<IpAddr>,
) -> io::Result<(UdpSocket, Option<UdpSocket>)> {
    if let Some(second) = second {
        let other = SocketAddr::new(second, tcp.port());
        let (v4, v6) = if tcp.is_ipv4() {
            (tcp, other)
        } else {
            (other, tcp)
        };
        return Ok((UdpSocket::bind(v4)?, Some(v6_only_udp(v6)?)));
    }
    if tcp.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return Ok((UdpSocket::bind(tcp)?, None));
    }
    let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, tcp.port()))?;
    let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), tcp.port());
    let v6 = match v6_only_udp(any6) {
        Ok(s) => Some(s),
        Err(e) => {
            log::info!("no IPv6 UDP socket on port {} ({e})", tcp.port());
            None
        }
    };
    Ok((v4, v6))
}

fn v6_only_udp(a: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
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
        let (v4, v6) = udp_sockets(l.local_addr().unwrap(), None).unwrap();
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
        let (u, none) = udp_sockets(l6.local_addr().unwrap(), None).unwrap();
        assert!(u.local_addr().unwrap().is_ipv6() && none.is_none());
    }

    #[test]
    fn two_addresses_one_per_family_share_the_port() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        check_second(v4, v6).unwrap();
        check_second(v6, IpAddr::V4(Ipv4Addr::UNSPECIFIED)).unwrap();
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        check_second(v4, any6).unwrap();
        for (a, b) in [(v4, v4), (v6, v6), (any6, v4)] {
            let e = check_second(a, b).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{a} {b}");
        }
        let three = tcp_listeners(v6, 0, &[v4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)]);
        assert_eq!(three.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let (l, l4) = tcp_listeners(v6, 0, &[v4]).unwrap();
        let l4 = l4.unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(l4.local_addr().unwrap(), SocketAddr::new(v4, port));
        for (ip, l) in [(v6, &l), (v4, &l4)] {
            let _c = TcpStream::connect((ip, port)).unwrap();
            let (_, from) = l.accept().unwrap();
            assert_eq!(from.ip(), ip);
        }
        let (u4, u6) = udp_sockets(l.local_addr().unwrap(), Some(v4)).unwrap();
        assert_eq!(u4.local_addr().unwrap(), SocketAddr::new(v4, port));
        let u6 = u6.map(|s| s.local_addr().unwrap());
        assert_eq!(u6, Some(SocketAddr::new(v6, port)));
        // An IPv6 wildcard beside an IPv4 address takes IPv6 only.
        let w6 = second_tcp_listener(any6, 0).unwrap();
        let p6 = w6.local_addr().unwrap().port();
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, p6)).is_err());
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
