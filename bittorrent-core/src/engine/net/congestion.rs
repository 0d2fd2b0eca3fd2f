//! TCP congestion control per socket (`TCP_CONGESTION`, Linux): the
//! algorithm our peer connections use, when [`Config::tcp_congestion`]
//! names one (`--tcp-congestion NAME`); otherwise the system's default
//! (`net.ipv4.tcp_congestion_control`) applies, as for any program.
//!
//! It matters on long fat links: the algorithm decides how fast one
//! connection fills a path of large bandwidth x round trip, and how it
//! treats queueing delay (docs/BENCHMARKS.md, "Long fat links").
//!
//! A name the kernel does not offer, or does not allow this process
//! (`net.ipv4.tcp_allowed_congestion_control` for processes without
//! `CAP_NET_ADMIN`), is refused when the session starts
//! ([`TcpCongestion::check`]) with both lists in the message, so a typo or
//! a missing module is one clear error, not a silent default. Later
//! failures on one socket (which a checked name should not have) are
//! logged at debug level and the socket keeps the system's default.
//!
//! [`Config::tcp_congestion`]: crate::Config::tcp_congestion

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

/// Longest name the kernel takes (`TCP_CA_NAME_MAX` is 16 with the NUL).
pub const MAX_NAME: usize = 15;

/// A congestion-control algorithm's name (`cubic`, `bbr`, `reno`, ...):
/// 1 to 15 bytes (`MAX_NAME`) of ASCII letters, digits, `_` and `-`. Only the
/// form is checked by [`TcpCongestion::parse`]; whether this kernel has it
/// is [`TcpCongestion::check`]'s question.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpCongestion {
    name: [u8; MAX_NAME],
    len: u8,
}

/// Why a congestion-control name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CongestionError {
    /// Not a name: empty, too long, or with characters no algorithm has.
    BadName(String),
    /// The kernel refused it on a socket: not built or loadable, or not
    /// allowed for this process. `available` and `allowed` are the
    /// kernel's lists (empty when unreadable).
    Unavailable {
        /// The name asked for.
        name: String,
        /// The kernel's error.
        reason: String,
        /// `net.ipv4.tcp_available_congestion_control`.
        available: String,
        /// `net.ipv4.tcp_allowed_congestion_control`.
        allowed: String,
    },
}

impl fmt::Display for CongestionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CongestionError::BadName(n) => write!(
                f,
                "{n:?} is not a TCP congestion control name (1 to {MAX_NAME} letters, digits, _ or -)"
            ),
            CongestionError::Unavailable {
                name,
                reason,
                available,
                allowed,
            } => write!(
                f,
                "TCP congestion control {name:?} cannot be used here ({reason}); \
                 available: {}; allowed without CAP_NET_ADMIN: {}",
                if available.is_empty() { "?" } else { available },
                if allowed.is_empty() { "?" } else { allowed },
            ),
        }
    }
}

impl std::error::Error for CongestionError {}

impl TcpCongestion {
    /// The name, checked for form only.
    pub fn parse(s: &str) -> Result<TcpCongestion, CongestionError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_NAME
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
        if !ok {
            return Err(CongestionError::BadName(s.chars().take(40).collect()));
        }
        let mut name = [0u8; MAX_NAME];
        name[..b.len()].copy_from_slice(b);
        Ok(TcpCongestion {
            name,
            len: b.len() as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `parse`).
        std::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or("")
    }

    /// Set it on `socket` (a TCP socket, before or after connecting).
    pub fn apply<S: AsFd>(&self, socket: &S) -> std::io::Result<()> {
        SockRef::from(socket).set_tcp_congestion(self.as_str().as_bytes())
    }

    /// Whether this kernel lets this process use it: set on a fresh TCP
    /// socket, with the kernel's lists in the error.
    pub fn check(&self) -> Result<(), CongestionError> {
        let probe = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .or_else(|_| Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)));
        let result = probe.and_then(|s| self.apply(&s));
        result.map_err(|e| {
            let list = |k: &str| {
                std::fs::read_to_string(format!("/proc/sys/net/ipv4/{k}"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            CongestionError::Unavailable {
                name: self.as_str().to_string(),
                reason: e.to_string(),
                available: list("tcp_available_congestion_control"),
                allowed: list("tcp_allowed_congestion_control"),
            }
        })
    }
}

impl fmt::Debug for TcpCongestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpCongestion({:?})", self.as_str())
    }
}

impl fmt::Display for TcpCongestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TcpCongestion {
    type Err = CongestionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TcpCongestion::parse(s)
    }
}

/// Connect to `addr` within `timeout`, with `congestion` set before the
/// SYN (the system's default when `None`, or when the kernel refuses it on
/// this socket: logged at debug level), from `source` when given (the
/// `--bind` address of `addr`'s family; a v4-mapped `addr` is dialled as
/// IPv4).
pub fn connect(
    addr: SocketAddr,
    timeout: Duration,
    congestion: Option<TcpCongestion>,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    if congestion.is_none() && source.is_none() {
        return TcpStream::connect_timeout(&addr, timeout);
    }
    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(cc) = congestion {
        if let Err(e) = cc.apply(&s) {
            log::debug!("peer {addr}: TCP congestion control {cc}: {e}");
        }
    }
    if let Some(ip) = source {
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    /// The algorithm `socket` uses now.
    fn current<S: AsFd>(socket: &S) -> std::io::Result<String> {
        let raw = SockRef::from(socket).tcp_congestion()?;
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    #[test]
    fn names_are_checked_for_form() {
        for good in [
            "cubic",
            "bbr",
            "reno",
            "dctcp",
            "htcp",
            "a_b-c",
            "x23456789012345",
        ] {
            assert_eq!(TcpCongestion::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "x234567890123456",
            "cu bic",
            "bbr\0",
            "bbr;",
            "émoji",
            "../x",
        ] {
            assert!(
                matches!(TcpCongestion::parse(bad), Err(CongestionError::BadName(_))),
                "{bad:?}"
            );
        }
    }

    /// `reno` is always built in and always allowed: it must take, on a
    /// dialled socket and on one a listener accepts (which inherits the
    /// listener's), and a name no kernel has must be refused with the lists.
    #[test]
    fn reno_is_set_on_dialled_and_accepted_sockets_and_a_bogus_name_is_refused() {
        let reno = TcpCongestion::parse("reno").unwrap();
        reno.check().expect("reno is always available");
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        reno.apply(&l).unwrap();
        let addr = l.local_addr().unwrap();
        let c = connect(addr, Duration::from_secs(5), Some(reno), None).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(current(&c).unwrap(), "reno");
        assert_eq!(current(&s).unwrap(), "reno", "accepted sockets inherit");
        // Without a setting: the system's default, whatever it is.
        let plain = connect(addr, Duration::from_secs(5), None, None).unwrap();
        let sys = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control");
        if let Ok(sys) = sys {
            assert_eq!(current(&plain).unwrap(), sys.trim());
        }
        let bogus = TcpCongestion::parse("no_such_cc").unwrap();
        let e = bogus.check().unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CongestionError::Unavailable { .. }), "{text}");
        assert!(
            text.contains("no_such_cc") && text.contains("reno"),
            "{text}"
        );
    }
}
