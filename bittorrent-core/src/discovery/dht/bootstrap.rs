//! Bootstrap routers (BEP 5): the well-known host names that join a new
//! node to the public DHT. They answer `find_node` but store nothing, so
//! they are asked only while the routing table is empty or small and are
//! never put in it.
//!
//! A router is `HOST:PORT`, `[v6]:PORT` or `IP:PORT` ([`Router`]); a list is
//! `none` or comma-separated routers ([`parse_list`]). The names are
//! resolved by a [`Resolver`] (the system's by default; tests inject their
//! own) on a short-lived thread owned by the DHT thread, with a timeout, and
//! again on every later bootstrap.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The routers used when nothing else is configured: the ones libtorrent,
/// Transmission and qBittorrent ship.
pub const DEFAULT_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Environment variable that replaces [`DEFAULT_ROUTERS`]: `none`, or a
/// comma-separated list of routers. Read by `Config::default()`.
pub const ENV_VAR: &str = "PEER_DHT_BOOTSTRAP";

/// Longest a resolution of the routers may take before it is given up.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One bootstrap router: a host name or an IP address, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Router {
    host: String,
    port: u16,
}

/// Why a router (or a list of them) does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterError {
    /// No `:PORT` (or an IPv6 address without brackets).
    MissingPort(String),
    /// The port is not a number from 1 to 65535.
    BadPort(String),
    /// The host is empty, has a character no host name has, or is a
    /// bracketed string that is not an IPv6 address.
    BadHost(String),
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterError::MissingPort(s) => {
                write!(f, "`{s}` is not HOST:PORT, [IPv6]:PORT or `none`")
            }
            RouterError::BadPort(s) => write!(f, "`{s}`: the port must be 1-65535"),
            RouterError::BadHost(s) => write!(f, "`{s}`: not a host name or IP address"),
        }
    }
}

impl std::error::Error for RouterError {}

impl Router {
    /// The host name or IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address, when the host is an IP address (no resolution needed).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for Router {
    fn from(a: SocketAddr) -> Router {
        Router {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl fmt::Display for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Router {
    type Err = RouterError;

    fn from_str(s: &str) -> Result<Router, RouterError> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, port) = rest
                .split_once("]:")
                .ok_or_else(|| RouterError::MissingPort(s.into()))?;
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(RouterError::BadHost(s.into()));
            }
            (v6, port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| RouterError::MissingPort(s.into()))?;
            if host.contains(':') {
                // An IPv6 address needs brackets before its port.
                return Err(RouterError::MissingPort(s.into()));
            }
            let ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !ok {
                return Err(RouterError::BadHost(s.into()));
            }
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| RouterError::BadPort(s.into()))?;
        Ok(Router {
            host: host.to_string(),
            port,
        })
    }
}

/// Parse `none` (no routers) or a comma-separated list of routers (empty
/// items are ignored).
pub fn parse_list(s: &str) -> Result<Vec<Router>, RouterError> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// [`DEFAULT_ROUTERS`], parsed.
pub fn default_routers() -> Vec<Router> {
    DEFAULT_ROUTERS
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect()
}

/// The routers named by [`ENV_VAR`] when it is set (`none`: no routers),
/// else [`DEFAULT_ROUTERS`]. A value that does not parse is warned about
/// and means no routers (a typo must not reach the public DHT when the
/// intent was to stay off it).
pub fn routers_from_env() -> Vec<Router> {
    routers_from(std::env::var(ENV_VAR).ok().as_deref())
}

/// [`routers_from_env`] for a given value of the variable.
pub fn routers_from(var: Option<&str>) -> Vec<Router> {
    match var {
        None => default_routers(),
        Some(v) => parse_list(v).unwrap_or_else(|e| {
            log::warn!("{ENV_VAR}: {e}; no DHT bootstrap routers");
            Vec::new()
        }),
    }
}

/// Each router's resolution, as it is known.
pub(crate) type Resolved = crossbeam_channel::Receiver<(Router, io::Result<Vec<SocketAddr>>)>;

type ResolveFn = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Turns a router's host name into addresses: the system's resolver
/// (`getaddrinfo`) by default, or a function a test controls.
#[derive(Clone)]
pub struct Resolver(Arc<ResolveFn>);

impl Resolver {
    /// The system's resolver.
    pub fn system() -> Resolver {
        Resolver::new(|host, port| Ok((host, port).to_socket_addrs()?.collect()))
    }

    /// A resolver calling `f(host, port)`.
    pub fn new(
        f: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Resolver {
        Resolver(Arc::new(f))
    }

    /// The addresses of `router` (an IP address needs no resolution).
    pub fn resolve(&self, router: &Router) -> io::Result<Vec<SocketAddr>> {
        if let Some(a) = router.addr() {
            return Ok(vec![a]);
        }
        let addrs = (self.0)(router.host(), router.port())?;
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
        }
        Ok(addrs)
    }
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::system()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

/// Resolve `routers` on a new thread named `dht-resolve`, sending each
/// router's result on the returned channel as soon as it is known. The
/// receiver gives up after its own timeout; a resolution that hangs then
/// ends on its own and finds the channel gone.
pub(crate) fn spawn_resolution(routers: Vec<Router>, resolver: Resolver) -> io::Result<Resolved> {
    let (tx, rx) = crossbeam_channel::bounded(routers.len().max(1));
    std::thread::Builder::new()
        .name("dht-resolve".into())
        .stack_size(crate::util::SERVICE_STACK)
        .spawn(move || {
            for r in routers {
                let got = resolver.resolve(&r);
                if tx.send((r, got)).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ips_v6_and_none() {
        let r: Router = "router.bittorrent.com:6881".parse().unwrap();
        assert_eq!((r.host(), r.port()), ("router.bittorrent.com", 6881));
        assert_eq!(r.addr(), None);
        let r: Router = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(r.addr(), Some("127.0.0.1:7000".parse().unwrap()));
        let r: Router = "[::1]:6881".parse().unwrap();
        assert_eq!(r.host(), "::1");
        assert_eq!(r.addr(), Some("[::1]:6881".parse().unwrap()));
        assert_eq!(r.to_string(), "[::1]:6881");
        assert_eq!(parse_list("none").unwrap(), Vec::<Router>::new());
        assert_eq!(parse_list(" NONE ").unwrap(), Vec::<Router>::new());
        let l = parse_list("a.example:1, 10.0.0.1:2,[fe80::1]:3").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].to_string(), "10.0.0.1:2");
    }

    #[test]
    fn rejects_bad_routers() {
        for bad in [
            "router.bittorrent.com",
            "::1:6881",
            "[::1]6881",
            "[nothost]:1",
            "host:0",
            "host:65536",
            "host:x",
            ":6881",
            "a b:1",
        ] {
            assert!(bad.parse::<Router>().is_err(), "{bad} parsed");
        }
        assert!(parse_list("a:1,b").is_err());
    }

    #[test]
    fn env_value_replaces_defaults() {
        assert_eq!(routers_from(None).len(), 4);
        assert_eq!(routers_from(None)[0].to_string(), DEFAULT_ROUTERS[0]);
        assert!(routers_from(Some("none")).is_empty());
        assert!(routers_from(Some("garbage")).is_empty());
        let l = routers_from(Some("x.example:1,127.0.0.1:2"));
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].host(), "x.example");
    }

    #[test]
    fn resolver_is_injectable() {
        let res = Resolver::new(|host, port| match host {
            "good.example" => Ok(vec![SocketAddr::from(([10, 1, 2, 3], port))]),
            "empty.example" => Ok(Vec::new()),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        });
        let good: Router = "good.example:6881".parse().unwrap();
        assert_eq!(
            res.resolve(&good).unwrap(),
            vec![SocketAddr::from(([10, 1, 2, 3], 6881))]
        );
        assert!(res.resolve(&"empty.example:1".parse().unwrap()).is_err());
        assert!(res.resolve(&"bad.example:1".parse().unwrap()).is_err());
        // An IP address never reaches the resolver.
        let ip: Router = "[::1]:5".parse().unwrap();
        assert_eq!(res.resolve(&ip).unwrap(), vec!["[::1]:5".parse().unwrap()]);
        let rx = spawn_resolution(vec![good, "bad.example:2".parse().unwrap()], res).unwrap();
        let (r1, a1) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(r1.host(), "good.example");
        assert!(a1.is_ok());
        let (r2, a2) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(r2.host(), "bad.example");
        assert!(a2.is_err());
    }
}
