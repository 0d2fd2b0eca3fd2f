//! What an endpoint's thread and its streams share: [`Shared`] (the socket to send on, the
//! connections by address and id, the stop flag) and, per connection, [`Slot`] (the state
//! machine behind a mutex, the condition variable a stream waits on, the eventfd `poll`
//! sees). `endpoint.rs` runs them, `stream.rs` reads and writes them.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use parking_lot::{Condvar, Mutex};

use super::conn::{Closed, Conn, Timeouts};
use crate::util::udp_batch::send_many;

/// The endpoint thread's timer granularity.
pub const TICK: Duration = Duration::from_millis(10);
/// A connection's key: the peer's address and the id its packets carry.
pub(super) type Key = (SocketAddr, u16);

/// One connection.
pub(super) struct Slot {
    pub(super) conn: Mutex<Conn>,
    pub(super) cv: Condvar,
    pub(super) addr: SocketAddr,
    /// Readable (counter non-zero) while the stream has something to read: bytes, its end,
    /// or an error. Written and reset only with `conn` locked.
    pub(super) readable: EventFd,
    /// Shut down locally (by the stream's closer): reads end, writes fail.
    pub(super) shut: AtomicBool,
    /// What `readable` says now (changed only with `conn` locked).
    signalled: AtomicBool,
    /// The receive low-water mark: `readable` waits for this many bytes (or the end, an
    /// error), as `SO_RCVLOWAT` does for TCP; 1 = any byte. Changed with `conn` locked.
    pub(super) lowat: AtomicUsize,
}

impl Slot {
    pub(super) fn new(conn: Conn, addr: SocketAddr) -> io::Result<Slot> {
        let readable = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Slot {
            conn: Mutex::new(conn),
            cv: Condvar::new(),
            addr,
            readable,
            shut: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            lowat: AtomicUsize::new(1),
        })
    }

    /// Make the eventfd say whether a read would return at once (`c` is `conn`, locked).
    /// A system call only when that changes (the endpoint settles a connection after every
    /// batch of datagrams, the reader after every read).
    pub(super) fn settle(&self, c: &Conn) {
        let mark = self.lowat.load(Ordering::Relaxed).max(1);
        let ready =
            c.readable() >= mark || c.eof() || c.is_closed() || self.shut.load(Ordering::Relaxed);
        if ready == self.signalled.load(Ordering::Relaxed) {
            return;
        }
        self.signalled.store(ready, Ordering::Relaxed);
        if ready {
            let _ = self.readable.write(1);
        } else {
            // EAGAIN when the counter is already zero.
            let _ = self.readable.read();
        }
    }
}

pub(super) struct Shared {
    pub(super) socket: UdpSocket,
    pub(super) conns: Mutex<HashMap<Key, Arc<Slot>>>,
    pub(super) stop: AtomicBool,
    pub(super) timeouts: Timeouts,
}

impl Shared {
    /// Send a connection's datagrams, batched (`util::udp_batch`: GSO or `sendmmsg`).
    pub(super) fn send(&self, addr: SocketAddr, datagrams: Vec<Vec<u8>>) {
        if datagrams.is_empty() {
            return;
        }
        if let Err(e) = send_many(&self.socket, addr, &datagrams) {
            log::debug!("utp: send to {addr}: {e}");
        }
    }

    /// Flush a connection and send what it has; wake its stream.
    pub(super) fn flush(&self, slot: &Slot, now: Instant) {
        let out = {
            let mut c = slot.conn.lock();
            c.flush(now);
            slot.settle(&c);
            c.take_outgoing()
        };
        self.send(slot.addr, out);
        slot.cv.notify_all();
    }
}

pub(super) fn closed_error(why: Closed) -> io::Error {
    match why {
        Closed::Reset => io::Error::new(io::ErrorKind::ConnectionReset, "utp: reset by peer"),
        Closed::ConnectTimeout | Closed::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "utp: connection timed out")
        }
        Closed::Done => io::Error::new(io::ErrorKind::NotConnected, "utp: connection closed"),
    }
}
