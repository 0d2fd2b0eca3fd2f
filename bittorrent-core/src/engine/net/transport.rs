//! Transports behind one stream type: a peer connection runs over TCP or over uTP (BEP 29),
//! and the wire code (handshake sniffing, MSE, the BitTorrent handshake, the peer thread)
//! reads and writes a [`PeerSocket`] without knowing which. [`Dialer`] opens outgoing
//! connections by the session's [`TransportPolicy`].

use crate::engine::net::congestion::{self, TcpCongestion};
use crate::engine::net::utp::endpoint::{UtpCloser, UtpSocket, UtpStream};
use crate::util::source::SourceAddrs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `both` waits for a uTP handshake before it dials TCP too.
pub const UTP_HEAD_START: Duration = Duration::from_millis(500);
/// How long `both` waits for a uTP handshake at most (when TCP failed meanwhile).
pub const UTP_FIRST_TIMEOUT: Duration = Duration::from_secs(3);

/// The transport of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Transport {
    /// TCP.
    #[default]
    Tcp,
    /// uTP (BEP 29) over the session's UDP port.
    Utp,
}

impl Transport {
    /// `"tcp"` or `"utp"` (the peer list's `transport` key).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Utp => "utp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which transport outgoing connections use (incoming ones are accepted on both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportPolicy {
    /// TCP only.
    Tcp,
    /// uTP only.
    Utp,
    /// uTP first: when its handshake has not completed within 500 ms (`UTP_HEAD_START`)
    /// (or the peer resets it), TCP is dialled too, and the first of the two connected wins
    /// (uTP if both are by the time TCP's dial returns; the loser is closed); uTP is waited
    /// for at most 3 s (`UTP_FIRST_TIMEOUT`) in all. The default.
    #[default]
    Both,
}

impl TransportPolicy {
    /// The name used on the command line and in saved configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportPolicy::Tcp => "tcp",
            TransportPolicy::Utp => "utp",
            TransportPolicy::Both => "both",
        }
    }
}

impl std::fmt::Display for TransportPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TransportPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<TransportPolicy, String> {
        match s {
            "tcp" => Ok(TransportPolicy::Tcp),
            "utp" => Ok(TransportPolicy::Utp),
            "both" => Ok(TransportPolicy::Both),
            _ => Err(format!("transport must be tcp, utp or both (got {s:?})")),
        }
    }
}

/// A connected peer socket: TCP or uTP, with the same timeouts and modes.
#[derive(Debug)]
pub enum PeerSocket {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A uTP connection.
    Utp(UtpStream),
}

impl From<TcpStream> for PeerSocket {
    fn from(s: TcpStream) -> PeerSocket {
        PeerSocket::Tcp(s)
    }
}

impl From<UtpStream> for PeerSocket {
    fn from(s: UtpStream) -> PeerSocket {
        PeerSocket::Utp(s)
    }
}

impl PeerSocket {
    /// Which transport this is.
    pub fn transport(&self) -> Transport {
        match self {
            PeerSocket::Tcp(_) => Transport::Tcp,
            PeerSocket::Utp(_) => Transport::Utp,
        }
    }

    /// The TCP socket, if this is one (for TCP-only socket options).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            PeerSocket::Tcp(s) => Some(s),
            PeerSocket::Utp(_) => None,
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            PeerSocket::Tcp(s) => s.peer_addr(),
            PeerSocket::Utp(s) => Ok(s.peer_addr()),
        }
    }

    /// Set the read timeout (None: forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            PeerSocket::Tcp(s) => s.set_read_timeout(t),
            PeerSocket::Utp(s) => {
                s.set_read_timeout(t);
                Ok(())
            }
        }
    }

    /// Set the write timeout (None: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            PeerSocket::Tcp(s) => s.set_write_timeout(t),
            PeerSocket::Utp(s) => {
                s.set_write_timeout(t);
                Ok(())
            }
        }
    }

    /// Switch non-blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            PeerSocket::Tcp(s) => s.set_nonblocking(on),
            PeerSocket::Utp(s) => {
                s.set_nonblocking(on);
                Ok(())
            }
        }
    }

    /// Shut the connection down.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            PeerSocket::Tcp(s) => s.shutdown(how),
            PeerSocket::Utp(s) => {
                s.shutdown(how);
                Ok(())
            }
        }
    }

    /// A handle that shuts the connection down from another thread.
    pub fn closer(&self) -> io::Result<Closer> {
        match self {
            PeerSocket::Tcp(s) => s.try_clone().map(Closer::Tcp),
            PeerSocket::Utp(s) => Ok(Closer::Utp(s.closer())),
        }
    }
}

/// The receive low-water mark: `SO_RCVLOWAT` on TCP; on uTP, the stream's eventfd waits
/// for the mark (`UtpStream::set_recv_lowat`), so a peer thread streaming blocks over uTP
/// wakes once per mark, not once per datagram.
impl crate::engine::net::lowat::MarkSocket for PeerSocket {
    fn set_mark(&self, bytes: usize) -> io::Result<()> {
        match self {
            PeerSocket::Tcp(s) => s.set_mark(bytes),
            PeerSocket::Utp(s) => {
                s.set_recv_lowat(bytes);
                Ok(())
            }
        }
    }

    fn receive_buffer(&self) -> io::Result<usize> {
        match self {
            PeerSocket::Tcp(s) => s.receive_buffer(),
            PeerSocket::Utp(_) => Ok(UtpStream::RECEIVE_BUFFER),
        }
    }
}

/// Readable for `poll(2)` when a read would return at once.
impl AsFd for PeerSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            PeerSocket::Tcp(s) => s.as_fd(),
            PeerSocket::Utp(s) => s.as_fd(),
        }
    }
}

impl Read for PeerSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PeerSocket::Tcp(s) => s.read(buf),
            PeerSocket::Utp(s) => s.read(buf),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            PeerSocket::Tcp(s) => s.read_vectored(bufs),
            PeerSocket::Utp(s) => s.read_vectored(bufs),
        }
    }
}

impl Write for PeerSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PeerSocket::Tcp(s) => s.write(buf),
            PeerSocket::Utp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            PeerSocket::Tcp(s) => s.write_vectored(bufs),
            PeerSocket::Utp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            PeerSocket::Tcp(s) => s.flush(),
            PeerSocket::Utp(s) => s.flush(),
        }
    }
}

/// Shuts a [`PeerSocket`] down from another thread (the torrent thread closing a peer).
#[derive(Debug)]
pub enum Closer {
    /// A clone of the TCP socket.
    Tcp(TcpStream),
    /// The uTP stream's closer.
    Utp(UtpCloser),
}

impl Closer {
    /// Shut the connection down: the peer thread's blocked read or write returns.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Closer::Tcp(s) => s.shutdown(how),
            Closer::Utp(c) => {
                c.shutdown(how);
                Ok(())
            }
        }
    }
}

/// Opens outgoing peer connections by the session's [`TransportPolicy`]: TCP, or uTP
/// through the session's endpoints (IPv4 and, beside a dual-stack listener, IPv6).
#[derive(Default)]
pub struct Dialer {
    /// Which transport to use.
    pub policy: TransportPolicy,
    /// The uTP endpoints on the session's UDP ports.
    pub utp: Vec<Arc<UtpSocket>>,
    /// Where TCP connections leave from (`--bind`, per family).
    pub source: SourceAddrs,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("policy", &self.policy)
            .field("utp endpoints", &self.utp.len())
            .field("source", &self.source)
            .finish()
    }
}

impl Dialer {
    fn utp_endpoint(&self, addr: SocketAddr) -> io::Result<&Arc<UtpSocket>> {
        let want_v4 = addr.ip().to_canonical().is_ipv4();
        self.utp
            .iter()
            .find(|e| e.local_addr().is_ipv4() == want_v4)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "no uTP endpoint for this address family",
                )
            })
    }

    fn utp_connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<UtpStream> {
        self.utp_endpoint(addr)?.connect(addr, timeout)
    }

    /// `both`: uTP with a head start, then TCP beside it (see [`TransportPolicy::Both`]).
    fn race(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        tcp: impl FnOnce() -> io::Result<PeerSocket>,
    ) -> io::Result<PeerSocket> {
        let start = Instant::now();
        let utp_timeout = timeout.min(UTP_FIRST_TIMEOUT);
        let mut pending =
            match (self.utp_endpoint(addr)).and_then(|ep| ep.start_connect(addr, utp_timeout)) {
                Ok(p) => p,
                Err(e) => {
                    log::debug!("peer {addr}: uTP: {e}; dialling TCP");
                    return tcp();
                }
            };
        // The head start: a uTP peer on the LAN or nearby answers well within it.
        match pending.wait(start + UTP_HEAD_START.min(utp_timeout)) {
            Ok(s) => return Ok(PeerSocket::Utp(s)),
            Err(e) if e.kind() != io::ErrorKind::TimedOut => {
                log::debug!("peer {addr}: uTP: {e}; dialling TCP");
                return tcp();
            }
            Err(_) => log::debug!("peer {addr}: no uTP handshake yet; dialling TCP beside it"),
        }
        match tcp() {
            // uTP finished meanwhile: it wins (the TCP connection is closed unused).
            Ok(t) if pending.is_connected() => match pending.wait(Instant::now()) {
                Ok(u) => Ok(PeerSocket::Utp(u)),
                Err(_) => Ok(t),
            },
            Ok(t) => Ok(t), // the pending uTP connection is closed on drop
            Err(e) => pending
                .wait(start + utp_timeout)
                .map(PeerSocket::Utp)
                .map_err(|u| {
                    log::debug!("peer {addr}: uTP: {u}");
                    e
                }),
        }
    }

    /// Connect to `addr` within `timeout`, by the policy; a TCP connection
    /// uses the congestion control `congestion` (`None`: the system's).
    pub fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        congestion: Option<TcpCongestion>,
    ) -> io::Result<PeerSocket> {
        let tcp = || {
            let source = self.source.for_dest(addr.ip())?;
            let s = congestion::connect(addr, timeout, congestion, source)?;
            let _ = s.set_nodelay(true);
            Ok(PeerSocket::Tcp(s))
        };
        match self.policy {
            TransportPolicy::Tcp => tcp(),
            TransportPolicy::Utp => self.utp_connect(addr, timeout).map(PeerSocket::Utp),
            TransportPolicy::Both => self.race(addr, timeout, tcp),
        }
    }
}
