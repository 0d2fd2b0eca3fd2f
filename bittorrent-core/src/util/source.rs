//! The source address of our outgoing traffic (`--bind`): a session
//! listening on a given address sends from it too, per address family:
//! dialled peers over TCP, UDP and HTTP trackers, web seeds. (uTP and the
//! DHT already leave from the listening UDP sockets.)

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where one address family's outgoing traffic leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The system chooses by route (the listener is a wildcard).
    #[default]
    Any,
    /// From this address.
    Ip(IpAddr),
    /// Not at all: the session is bound to an address of the other
    /// family only.
    Off,
}

/// The source of outgoing traffic for each family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceAddrs {
    /// For IPv4 destinations.
    pub v4: Source,
    /// For IPv6 destinations.
    pub v6: Source,
}

impl SourceAddrs {
    /// The sources that listening on `first` and then `more` (at most one
    /// more, of the other family) imply: `[::]` first is both families,
    /// `0.0.0.0` or `[::]` beside another address is its family's wildcard,
    /// a specific address is its family's source, and a family with no
    /// listening address is not used.
    pub fn from_listen(first: IpAddr, more: &[IpAddr]) -> SourceAddrs {
        let mut s = SourceAddrs {
            v4: Source::Off,
            v6: Source::Off,
        };
        if first == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
            return SourceAddrs::default();
        }
        for ip in std::iter::once(first).chain(more.iter().copied()) {
            let ip = ip.to_canonical();
            let src = if ip.is_unspecified() {
                Source::Any
            } else {
                Source::Ip(ip)
            };
            if ip.is_ipv4() {
                s.v4 = src;
            } else {
                s.v6 = src;
            }
        }
        s
    }

    /// The source for a destination `dst` (judged canonical: a v4-mapped
    /// address is IPv4): `Ok(None)` lets the system choose; an error when
    /// the family is not used.
    pub fn for_dest(&self, dst: IpAddr) -> io::Result<Option<IpAddr>> {
        let v4 = dst.to_canonical().is_ipv4();
        match if v4 { self.v4 } else { self.v6 } {
            Source::Any => Ok(None),
            Source::Ip(ip) => Ok(Some(ip)),
            Source::Off => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "bound to no {} address: not sending to {dst}",
                    if v4 { "IPv4" } else { "IPv6" }
                ),
            )),
        }
    }

    /// The local address for a UDP socket talking to `dst`: the family's
    /// source (port 0), else its wildcard.
    pub fn udp_local_for(&self, dst: SocketAddr) -> io::Result<SocketAddr> {
        let ip = match self.for_dest(dst.ip())? {
            Some(ip) => ip,
            None if dst.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Ok(SocketAddr::new(ip, 0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_follow_the_listening_addresses() {
        let dual = SourceAddrs::from_listen(ip("::"), &[]);
        assert_eq!(dual, SourceAddrs::default());
        assert_eq!(dual.for_dest(ip("10.0.0.1")).unwrap(), None);
        let one = SourceAddrs::from_listen(ip("10.0.0.2"), &[]);
        assert_eq!(one.for_dest(ip("10.0.0.1")).unwrap(), Some(ip("10.0.0.2")));
        assert_eq!(
            one.for_dest(ip("::ffff:10.0.0.1")).unwrap(),
            Some(ip("10.0.0.2"))
        );
        let e = one.for_dest(ip("2001:db8::1")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable);
        let both = SourceAddrs::from_listen(ip("0.0.0.0"), &[ip("fd00::2")]);
        assert_eq!(both.for_dest(ip("10.0.0.1")).unwrap(), None);
        assert_eq!(both.for_dest(ip("fd00::1")).unwrap(), Some(ip("fd00::2")));
        let a = "[fd00::1]:6969".parse().unwrap();
        assert_eq!(
            both.udp_local_for(a).unwrap(),
            "[fd00::2]:0".parse().unwrap()
        );
        let a4 = "10.0.0.1:6969".parse().unwrap();
        assert_eq!(
            both.udp_local_for(a4).unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        let six = SourceAddrs::from_listen(ip("fd00::2"), &[]);
        assert!(six.for_dest(ip("10.0.0.1")).is_err());
    }
}
