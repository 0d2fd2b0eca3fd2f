//! [`UtpStream`]: one uTP connection of an endpoint (`endpoint.rs`) as a blocking
//! `Read + Write` stream with read and write timeouts and a non-blocking mode, like a
//! `TcpStream`, so a peer thread reads it without knowing the transport; plus a file
//! descriptor that `poll(2)` sees readable while a read would return at once
//! ([`UtpStream::as_fd`]), and a [`UtpCloser`] that ends the stream from another thread
//! (what `TcpStream::try_clone` + `shutdown` do for TCP).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Closed, Conn, State};
use super::slot::{closed_error, Shared, Slot, TICK};

/// A timeout kept in an atomic (nanoseconds; 0 = none), so it can be set through `&self`.
#[derive(Debug, Default)]
struct Timeout(AtomicU64);

impl Timeout {
    fn set(&self, t: Option<Duration>) {
        let ns = t.map_or(0, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.0.store(ns, Ordering::Relaxed);
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

/// A uTP connection as a blocking stream (see the module docs). Reads and writes wait at
/// most their timeout (none: forever) and then fail with `TimedOut` (`WouldBlock` at once in
/// non-blocking mode); a read returns 0 at the peer's FIN. Dropping the stream closes the
/// connection.
pub struct UtpStream {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    read_timeout: Timeout,
    write_timeout: Timeout,
    nonblocking: AtomicBool,
}

impl std::fmt::Debug for UtpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpStream")
            .field("peer", &self.slot.addr)
            .finish_non_exhaustive()
    }
}

impl UtpStream {
    pub(super) fn new(slot: Arc<Slot>, shared: Arc<Shared>) -> UtpStream {
        UtpStream {
            slot,
            shared,
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
            nonblocking: AtomicBool::new(false),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.slot.addr
    }

    /// How long `read` waits (None: forever), like `TcpStream::set_read_timeout`.
    pub fn set_read_timeout(&self, t: Option<Duration>) {
        self.read_timeout.set(t);
    }

    /// How long `write` waits for room (None: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) {
        self.write_timeout.set(t);
    }

    /// Non-blocking mode: a read with nothing to read, or a write with no room, fails at
    /// once with `WouldBlock`.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    /// No more writes: a FIN follows the bytes written (the reading side stays open).
    pub fn shutdown_write(&self) {
        self.slot.conn.lock().close();
        self.shared.flush(&self.slot, Instant::now());
    }

    /// Like `TcpStream::shutdown`: `Write` sends a FIN after the bytes written; `Read` or
    /// `Both` also end this side's reads (they return 0) and make writes fail.
    pub fn shutdown(&self, how: Shutdown) {
        if how != Shutdown::Write {
            self.slot.shut.store(true, Ordering::Relaxed);
        }
        self.shutdown_write();
    }

    /// The receive buffer of a connection, in bytes (a low-water mark above a quarter of it
    /// is not useful: the peer's window shrinks as the bytes wait).
    pub const RECEIVE_BUFFER: usize = super::conn::RECV_BUFFER;

    /// The receive low-water mark, like `SO_RCVLOWAT`: the stream's file descriptor
    /// ([`UtpStream::as_fd`]) turns readable once `bytes` (at least 1) are buffered, or at
    /// the end of the stream or an error. Reads are not affected: they return what is
    /// there. A peer thread that streams blocks sets it so that one wake-up reads many
    /// datagrams (issue 31).
    pub fn set_recv_lowat(&self, bytes: usize) {
        let c = self.slot.conn.lock();
        self.slot.lowat.store(bytes.max(1), Ordering::Relaxed);
        self.slot.settle(&c);
    }

    /// A handle that shuts this stream down from another thread.
    pub fn closer(&self) -> UtpCloser {
        UtpCloser {
            slot: Arc::clone(&self.slot),
            shared: Arc::clone(&self.shared),
        }
    }

    fn wait(
        &self,
        c: &mut parking_lot::MutexGuard<'_, Conn>,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "utp: endpoint closed",
            ));
        }
        if self.nonblocking.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Wake at least every tick, so a stopped endpoint is noticed.
        let tick = Instant::now() + 10 * TICK;
        let until = deadline.map_or(tick, |d| d.min(tick));
        self.slot.cv.wait_until(c, until);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "utp: timed out"));
        }
        Ok(())
    }
}

/// Readable (for `poll`) while a read would return at once: bytes, the end, or an error.
impl AsFd for UtpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.slot.readable.as_fd()
    }
}

/// Shuts a [`UtpStream`] down from another thread ([`UtpStream::closer`]).
pub struct UtpCloser {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for UtpCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpCloser")
            .field("peer", &self.slot.addr)
            .finish_non_exhaustive()
    }
}

impl UtpCloser {
    /// [`UtpStream::shutdown`], from here: a blocked read or write of the stream returns.
    pub fn shutdown(&self, how: Shutdown) {
        if how != Shutdown::Write {
            self.slot.shut.store(true, Ordering::Relaxed);
        }
        self.slot.conn.lock().close();
        self.shared.flush(&self.slot, Instant::now());
    }
}

impl io::Read for UtpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.read_timeout.get().map(|t| Instant::now() + t);
        let mut c = self.slot.conn.lock();
        loop {
            if self.slot.shut.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let n = c.read(buf);
            if n > 0 {
                self.slot.settle(&c);
                drop(c);
                // The window may have reopened.
                self.shared.flush(&self.slot, Instant::now());
                return Ok(n);
            }
            if c.eof() {
                return Ok(0);
            }
            if let State::Closed(why) = c.state() {
                return match why {
                    Closed::Done => Ok(0),
                    w => Err(closed_error(w)),
                };
            }
            self.wait(&mut c, deadline)?;
        }
    }
}

impl io::Write for UtpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.write_timeout.get().map(|t| Instant::now() + t);
        let mut c = self.slot.conn.lock();
        loop {
            if self.slot.shut.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if let State::Closed(why) = c.state() {
                return Err(closed_error(why));
            }
            let n = c.write(buf);
            if n > 0 {
                let now = Instant::now();
                c.flush(now);
                let out = c.take_outgoing();
                drop(c);
                self.shared.send(self.slot.addr, out);
                return Ok(n);
            }
            self.wait(&mut c, deadline)?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for UtpStream {
    fn drop(&mut self) {
        self.slot.conn.lock().close();
        if !self.shared.stop.load(Ordering::Relaxed) {
            self.shared.flush(&self.slot, Instant::now());
        }
    }
}
