//! The receive low-water mark (`SO_RCVLOWAT`): a socket that streams blocks
//! wakes its thread once a useful amount has arrived, not for every
//! segment.
//!
//! With the mark at `n` bytes, `poll` reports the socket readable only once
//! `n` bytes are queued (or at end of stream, an error, or memory pressure:
//! the kernel never holds back a full window). A peer thread that
//! downloads sets it to about 20 ms of the connection's data (see
//! `peer::Connection::lowat_target`), so that one wake-up reads many
//! blocks; small messages then wait for the mark or for the thread's
//! bounded wait, whichever comes first.
//!
//! The mark is kept at a quarter of the receive buffer at most: on Linux a
//! mark past half the buffer grows the buffer and clamps the advertised
//! window to the mark (`tcp_set_rcvlowat`), which would cap the connection's
//! throughput on a long path.

use nix::sys::socket::{getsockopt, setsockopt, sockopt::RcvBuf};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

nix::sockopt_impl!(
    /// `SO_RCVLOWAT`, in bytes (1 = wake for any byte).
    RcvLowat,
    Both,
    nix::libc::SOL_SOCKET,
    nix::libc::SO_RCVLOWAT,
    usize
);
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};

/// Set the socket's receive low-water mark to `bytes` (at least 1).
pub fn set<F: AsFd>(socket: &F, bytes: usize) -> std::io::Result<()> {
    setsockopt(socket, RcvLowat, &bytes.max(1)).map_err(std::io::Error::from)
}

/// The socket's receive buffer, in bytes (as the kernel counts it).
pub fn receive_buffer<F: AsFd>(socket: &F) -> std::io::Result<usize> {
    getsockopt(socket, RcvBuf).map_err(std::io::Error::from)
}

/// A socket the mark is set on: a TCP socket (`SO_RCVLOWAT`), or a uTP stream, whose
/// eventfd says readable only once the mark is buffered (`UtpStream::set_recv_lowat`).
pub trait MarkSocket {
    /// Set the receive low-water mark to `bytes` (at least 1).
    fn set_mark(&self, bytes: usize) -> std::io::Result<()>;
    /// The receive buffer, in bytes.
    fn receive_buffer(&self) -> std::io::Result<usize>;
}

impl MarkSocket for std::net::TcpStream {
    fn set_mark(&self, bytes: usize) -> std::io::Result<()> {
        set(self, bytes)
    }

    fn receive_buffer(&self) -> std::io::Result<usize> {
        receive_buffer(self)
    }
}

/// The mark: about this much of the connection's data (1/50 s: 20 ms), at
/// most `MAX`, at most half the requests outstanding and a quarter of the
/// receive buffer; below `MIN` it is off (1 byte).
const PER_SECOND: u64 = 50;
const MIN: usize = 32 * 1024;
const MAX: usize = 256 * 1024;
/// How often the receive rate and the receive buffer are measured.
const RATE_WINDOW: Duration = Duration::from_millis(200);

/// One connection's receive low-water mark, sized from its receive rate.
#[derive(Debug)]
pub struct ReceiveMark {
    /// The mark set on the socket now (1 = off).
    mark: usize,
    /// Bytes a second over the last `RATE_WINDOW`, and the window counted.
    rate: u64,
    window_start: Instant,
    window_bytes: u64,
    /// The socket's receive buffer, read once per `RATE_WINDOW`.
    rcvbuf: usize,
    /// The largest mark set, and the largest receive buffer seen (logged).
    pub(crate) most: (usize, usize),
}

impl ReceiveMark {
    pub fn new(now: Instant) -> ReceiveMark {
        ReceiveMark {
            mark: 1,
            rate: 0,
            window_start: now,
            window_bytes: 0,
            rcvbuf: 0,
            most: (1, 0),
        }
    }

    /// A mark above one byte is set: a wait may end below it (and should
    /// read without blocking).
    pub fn is_set(&self) -> bool {
        self.mark > 1
    }

    /// The mark set now.
    pub fn mark(&self) -> usize {
        self.mark
    }

    /// Count `n` bytes read; once per `RATE_WINDOW`, update the rate and
    /// the receive buffer's size.
    pub fn count<S: MarkSocket>(&mut self, socket: &S, n: usize) {
        self.window_bytes += n as u64;
        let dt = self.window_start.elapsed();
        if dt >= RATE_WINDOW {
            let ms = u64::try_from(dt.as_millis()).unwrap_or(u64::MAX).max(1);
            self.rate = self.window_bytes.saturating_mul(1000) / ms;
            self.window_bytes = 0;
            self.window_start = Instant::now();
            self.rcvbuf = socket.receive_buffer().unwrap_or(0);
            self.most.1 = self.most.1.max(self.rcvbuf);
        }
    }

    /// The connection went quiet: the rate starts again from nothing.
    pub fn forget_rate(&mut self) {
        self.rate = 0;
    }

    /// The mark for a connection with `requested` bytes outstanding: about
    /// 20 ms of its data, at most half of what is requested (so the peer
    /// always has requests left while we sleep), a quarter of the receive
    /// buffer and `MAX`; 1 (off) below `MIN`.
    pub fn target(&self, requested: usize) -> usize {
        let t = usize::try_from(self.rate / PER_SECOND)
            .unwrap_or(usize::MAX)
            .min(requested / 2)
            .min(self.rcvbuf / 4)
            .min(MAX);
        if t < MIN {
            1
        } else {
            t
        }
    }

    /// Set the socket's mark to `target`, unless it is within a quarter of
    /// the mark set already (a system call saved per wait).
    pub fn set<S: MarkSocket>(&mut self, socket: &S, target: usize) {
        let close = target > 1 && self.mark > 1 && target.abs_diff(self.mark) <= self.mark / 4;
        if target == self.mark || close {
            return;
        }
        match socket.set_mark(target) {
            Ok(()) => {
                self.mark = target;
                self.most.0 = self.most.0.max(target);
            }
            Err(e) => log::debug!("SO_RCVLOWAT: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_follows_the_rate_the_requests_and_the_buffer() {
        let mut m = ReceiveMark::new(Instant::now());
        // Nothing measured yet: off.
        assert_eq!(m.target(1 << 20), 1);
        m.rate = 10 << 20; // 10 MiB/s: 20 ms is 200 KiB
        m.rcvbuf = 4 << 20;
        assert_eq!(m.target(8 << 20), (10 << 20) / 50);
        // Half of what is requested at most.
        assert_eq!(m.target(256 << 10), 128 << 10);
        // Below MIN: off (a slow connection wakes for every message).
        assert_eq!(m.target(48 << 10), 1);
        // A quarter of the receive buffer at most.
        m.rcvbuf = 256 << 10;
        assert_eq!(m.target(8 << 20), 64 << 10);
        // MAX at most.
        m.rate = 1 << 30;
        m.rcvbuf = 64 << 20;
        assert_eq!(m.target(64 << 20), MAX);
        m.forget_rate();
        assert_eq!(m.target(64 << 20), 1);
    }

    #[test]
    fn set_skips_small_changes_and_turns_off() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let mut m = ReceiveMark::new(Instant::now());
        m.set(&b, 64 * 1024);
        assert!(m.is_set());
        assert_eq!(getsockopt(&b, RcvLowat).unwrap(), 64 * 1024);
        // Within a quarter: not changed (no system call).
        m.set(&b, 70 * 1024);
        assert_eq!(getsockopt(&b, RcvLowat).unwrap(), 64 * 1024);
        m.set(&b, 128 * 1024);
        assert_eq!(getsockopt(&b, RcvLowat).unwrap(), 128 * 1024);
        m.set(&b, 1);
        assert!(!m.is_set());
        assert_eq!(getsockopt(&b, RcvLowat).unwrap(), 1);
    }
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn readable(s: &TcpStream) -> bool {
        let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(50u8)).unwrap_or(0) > 0
    }

    #[test]
    fn a_socket_is_readable_only_once_the_mark_is_reached() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        assert!(receive_buffer(&b).unwrap() >= 16 * 1024);
        set(&b, 16 * 1024).unwrap();
        assert_eq!(getsockopt(&b, RcvLowat).unwrap(), 16 * 1024);
        a.write_all(&[1u8; 100]).unwrap();
        assert!(!readable(&b), "100 bytes are below the mark");
        a.write_all(&[1u8; 16 * 1024]).unwrap();
        assert!(readable(&b), "past the mark");
        // Back to 1: any byte wakes.
        set(&b, 0).unwrap();
        assert_eq!(getsockopt(&b, RcvLowat).unwrap(), 1);
        assert!(readable(&b));
    }
}
