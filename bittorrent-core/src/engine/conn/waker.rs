//! Waking a peer thread that waits: idle connections sleep until something
//! happens, not on a timer.
//!
//! A peer thread waits for two things at once: bytes on its socket and
//! commands from its torrent thread (its inbox, a crossbeam channel). A
//! blocking `read` cannot also wait for a channel, so the thread used to
//! read with a timeout (5 ms while downloading, 100 ms otherwise) and look
//! at its inbox in between: ten wake-ups a second for a connection with
//! nothing to do, about 0.02 % of a core each, so 1,000 idle connections
//! cost a fifth of a core. Now an idle thread waits in `poll(2)` on its
//! socket and on an `eventfd` ([`Waker`]); the torrent thread sends its
//! commands through an [`Inbox`], which writes the eventfd after queueing a
//! command if (and only if) the thread is waiting. The wait ends at the
//! thread's next deadline (keep-alive, idle timeout), so a quiet connection
//! wakes about once a minute.
//!
//! The handshake between the two sides: the waiting thread sets `waiting`,
//! then looks at its inbox once more before it calls `poll`; the sender
//! queues, then reads `waiting`. Both use sequentially consistent fences,
//! so at least one of them sees the other: either the thread finds the
//! command before it sleeps, or the sender writes the eventfd.
//!
//! Lazy commands (issue 31): a command that can wait for the thread's next
//! wake-up ([`Inbox::try_send_lazy`]: more requests for a peer that still has
//! plenty outstanding, a `have` for a peer that has the piece) wakes the
//! thread only if it waits *idle*. A thread that waits with data on the
//! way (`wait`'s `streaming`: requests outstanding) is woken by its socket
//! soon and takes the command then, so the command costs no context switch
//! of its own. Such a wait is bounded (`STREAMING_WAIT` in the peer thread),
//! so a lazy command waits a fraction of a second at most.
//!
//! Quiet commands ([`Inbox::try_send_quiet`]: a `have` for a peer that has
//! the piece) wake the thread not at all: they wait for its next wake-up of
//! any kind, or for `QUIET_BACKLOG` of them.
//!
//! Ownership: the eventfd is shared (`Arc`) by the peer thread and its
//! torrent thread's `Inbox`; it closes when both are gone. If no eventfd
//! can be made (descriptor limit), the thread falls back to timed waits.

use crossbeam_channel::{Sender, TrySendError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait without an eventfd: the old timed wait.
const FALLBACK_WAIT: Duration = Duration::from_millis(100);
/// Quiet commands ([`Inbox::try_send_quiet`]) queued before one wakes the
/// thread after all.
pub const QUIET_BACKLOG: usize = 64;

/// A peer thread's wake-up: an eventfd and whether the thread waits on it.
#[derive(Debug)]
pub struct Waker {
    fd: Option<EventFd>,
    waiting: AtomicBool,
    /// The thread waits with data on the way (its socket wakes it soon).
    streaming: AtomicBool,
}

/// What ended a [`Waker::wait`].
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// The socket has bytes (or an error, or end of stream) to read.
    Socket,
    /// The waker was woken (a command may be in the inbox).
    Inbox,
    /// The wait was not started: a command was in the inbox already.
    Queued,
    /// The timeout passed.
    Timeout,
}

impl Waker {
    /// A waker (without an eventfd if none can be made: waits then end
    /// after at most 100 ms).
    pub fn new() -> Arc<Waker> {
        let fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| log::debug!("no eventfd for a peer thread ({e}): timed waits"))
            .ok();
        Arc::new(Waker {
            fd,
            waiting: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
        })
    }

    /// Wake the thread if it waits (call after queueing its command).
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) {
            self.signal();
        }
    }

    /// Wake the thread only if it waits idle, not streaming (call after
    /// queueing a command that can wait for its next socket wake-up).
    pub fn wake_lazy(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && !self.streaming.load(Ordering::Relaxed) {
            self.signal();
        }
    }

    fn signal(&self) {
        if let Some(fd) = &self.fd {
            // EAGAIN: the counter is full, so the thread wakes anyway.
            let _ = fd.write(1);
        }
    }

    /// Wait until `socket` is readable, [`wake`](Waker::wake) is called, or
    /// `timeout` passes. `pending` is asked once more after the thread
    /// declared itself waiting: if it says there is work, no wait.
    /// `streaming`: data is on the way, so lazy commands do not wake this
    /// wait (the caller bounds `timeout`).
    pub fn wait(
        &self,
        socket: BorrowedFd<'_>,
        timeout: Duration,
        streaming: bool,
        pending: impl Fn() -> bool,
    ) -> std::io::Result<Woken> {
        self.wait_on(Some(socket), timeout, streaming, pending)
    }

    /// [`wait`](Waker::wait) without the socket: until a wake-up or the
    /// timeout (a thread that must not read its socket for now).
    pub fn wait_inbox(
        &self,
        timeout: Duration,
        pending: impl Fn() -> bool,
    ) -> std::io::Result<Woken> {
        self.wait_on(None, timeout, false, pending)
    }

    fn wait_on(
        &self,
        socket: Option<BorrowedFd<'_>>,
        timeout: Duration,
        streaming: bool,
        pending: impl Fn() -> bool,
    ) -> std::io::Result<Woken> {
        let timeout = match &self.fd {
            Some(_) => timeout,
            None => timeout.min(FALLBACK_WAIT),
        };
        self.streaming.store(streaming, Ordering::Relaxed);
        self.waiting.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let result = if pending() {
            Ok(Woken::Queued)
        } else {
            self.poll(socket, timeout)
        };
        self.waiting.store(false, Ordering::Relaxed);
        if let Some(fd) = &self.fd {
            // Reset the counter (EAGAIN when it was not written).
            let _ = fd.read();
        }
        result
    }

    fn poll(&self, socket: Option<BorrowedFd<'_>>, timeout: Duration) -> std::io::Result<Woken> {
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = Vec::with_capacity(2);
        if let Some(socket) = socket {
            fds.push(PollFd::new(socket, PollFlags::POLLIN));
        }
        if let Some(fd) = &self.fd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(timeout);
            return Ok(Woken::Timeout);
        }
        match poll(&mut fds, ms) {
            Ok(0) => Ok(Woken::Timeout),
            // Readable, or hung up or failed: the read will say which.
            Ok(_) if socket.is_some() && fds[0].any().unwrap_or(true) => Ok(Woken::Socket),
            Ok(_) => Ok(Woken::Inbox),
            Err(nix::errno::Errno::EINTR) => Ok(Woken::Inbox),
            Err(e) => Err(std::io::Error::from(e)),
        }
    }
}

/// The sending side of a peer thread's inbox: a command queued also wakes
/// the thread if it waits.
#[derive(Debug, Clone)]
pub struct Inbox<T> {
    tx: Sender<T>,
    waker: Arc<Waker>,
}

impl<T> Inbox<T> {
    /// The inbox of the thread that waits on `waker`.
    pub fn new(tx: Sender<T>, waker: Arc<Waker>) -> Inbox<T> {
        Inbox { tx, waker }
    }

    /// Queue `cmd` (never blocks) and wake the thread.
    pub fn try_send(&self, cmd: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(cmd)?;
        self.waker.wake();
        Ok(())
    }

    /// Queue `cmd` (never blocks); wake the thread only if it waits idle.
    /// A streaming thread takes it at its next wake-up, within its bounded
    /// wait. For commands that lose nothing by waiting that long.
    pub fn try_send_lazy(&self, cmd: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(cmd)?;
        self.waker.wake_lazy();
        Ok(())
    }

    /// Queue `cmd` (never blocks) without waking the thread: it goes out
    /// with whatever wakes the thread next (its socket, another command, its
    /// own deadlines). Only once `QUIET_BACKLOG` commands wait does it wake
    /// the thread, so quiet commands never pile up towards the inbox limit.
    /// For news that no one waits for (a `have` to a peer that has the piece).
    pub fn try_send_quiet(&self, cmd: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(cmd)?;
        if self.tx.len() >= QUIET_BACKLOG {
            self.waker.wake_lazy();
        }
        Ok(())
    }

    /// Wake the thread if it waits (no command: it has something else to
    /// do, e.g. hand over events it held).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Commands queued and not yet taken.
    pub fn len(&self) -> usize {
        self.tx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn a_wait_ends_on_socket_data_on_a_command_or_at_its_timeout() {
        let (mut a, b) = pair();
        let waker = Waker::new();
        assert!(waker.fd.is_some(), "eventfd available here");
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let inbox = Inbox::new(tx, waker.clone());

        // Nothing happens: the timeout ends it.
        let t = Instant::now();
        let w = waker.wait(b.as_fd(), Duration::from_millis(50), false, || {
            !rx.is_empty()
        });
        assert_eq!(w.unwrap(), Woken::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(45));

        // A command queued before the wait: no wait at all.
        inbox.try_send(1).unwrap();
        let t = Instant::now();
        let w = waker.wait(b.as_fd(), Duration::from_secs(10), false, || !rx.is_empty());
        assert_eq!(w.unwrap(), Woken::Queued);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(rx.try_recv(), Ok(1));

        // A command queued by another thread while it waits wakes it.
        let sender = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                inbox.try_send(2).unwrap();
            })
        };
        let t = Instant::now();
        let w = waker.wait(b.as_fd(), Duration::from_secs(10), false, || !rx.is_empty());
        assert_eq!(w.unwrap(), Woken::Inbox);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        sender.join().unwrap();
        assert_eq!(rx.try_recv(), Ok(2));

        // Bytes on the socket wake it.
        std::io::Write::write_all(&mut a, b"x").unwrap();
        let w = waker.wait(b.as_fd(), Duration::from_secs(10), false, || !rx.is_empty());
        assert_eq!(w.unwrap(), Woken::Socket);

        // So does the other side closing.
        let (a2, b2) = pair();
        drop(a2);
        let w = waker.wait(b2.as_fd(), Duration::from_secs(10), false, || false);
        assert_eq!(w.unwrap(), Woken::Socket);
    }

    /// Wait (`streaming` or not) while another thread sends `n` commands
    /// with `send` 30 ms in; what ended the wait and after how long.
    fn wait_while(
        streaming: bool,
        queued_before: usize,
        send: fn(&Inbox<u32>, u32) -> Result<(), TrySendError<u32>>,
    ) -> (Woken, Duration) {
        let (_a, b) = pair();
        let waker = Waker::new();
        let (tx, _rx) = crossbeam_channel::unbounded::<u32>();
        let inbox = Inbox::new(tx, waker.clone());
        for i in 0..queued_before {
            inbox.tx.try_send(i as u32).unwrap();
        }
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            send(&inbox, 7).unwrap();
        });
        let t = Instant::now();
        // `|| false`: the wait starts whatever is queued.
        let w = waker
            .wait(b.as_fd(), Duration::from_millis(400), streaming, || false)
            .unwrap();
        let took = t.elapsed();
        sender.join().unwrap();
        (w, took)
    }

    #[test]
    fn lazy_commands_wake_only_an_idle_wait_and_quiet_ones_none() {
        let fast = Duration::from_millis(300);
        // A lazy command wakes an idle wait at once, not a streaming one.
        let (w, took) = wait_while(false, 0, Inbox::try_send_lazy);
        assert_eq!(w, Woken::Inbox);
        assert!(took < fast, "{took:?}");
        let (w, took) = wait_while(true, 0, Inbox::try_send_lazy);
        assert_eq!(w, Woken::Timeout);
        assert!(took >= fast, "{took:?}");
        // An ordinary one wakes even a streaming wait.
        let (w, took) = wait_while(true, 0, Inbox::try_send);
        assert_eq!(w, Woken::Inbox);
        assert!(took < fast, "{took:?}");
        // A quiet one wakes no one...
        let (w, took) = wait_while(false, 0, Inbox::try_send_quiet);
        assert_eq!(w, Woken::Timeout);
        assert!(took >= fast, "{took:?}");
        // ... until QUIET_BACKLOG of them wait.
        let (w, took) = wait_while(false, QUIET_BACKLOG - 1, Inbox::try_send_quiet);
        assert_eq!(w, Woken::Inbox);
        assert!(took < fast, "{took:?}");
    }

    #[test]
    fn a_wait_without_the_socket_ignores_its_bytes() {
        let (mut a, _b) = pair();
        let waker = Waker::new();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let inbox = Inbox::new(tx, waker.clone());
        std::io::Write::write_all(&mut a, b"x").unwrap();
        // Bytes wait on the socket, but the thread holds all it may: only
        // the timeout or a command ends the wait.
        let w = waker.wait_inbox(Duration::from_millis(50), || !rx.is_empty());
        assert_eq!(w.unwrap(), Woken::Timeout);
        // A command already queued when the wait starts ends it at once.
        inbox.try_send(1).unwrap();
        let w = waker.wait_inbox(Duration::from_secs(10), || !rx.is_empty());
        assert_eq!(w.unwrap(), Woken::Queued);
    }

    #[test]
    fn many_commands_from_another_thread_are_never_missed() {
        let (_a, b) = pair();
        let waker = Waker::new();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let inbox = Inbox::new(tx, waker.clone());
        let n = 2000;
        let sender = std::thread::spawn(move || {
            for i in 0..n {
                inbox.try_send(i).unwrap();
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0;
        let t = Instant::now();
        while got < n {
            // A lost wake-up would sleep the full 10 s.
            let w = waker.wait(b.as_fd(), Duration::from_secs(10), false, || !rx.is_empty());
            assert_ne!(w.unwrap(), Woken::Timeout, "a wake-up was lost");
            while rx.try_recv().is_ok() {
                got += 1;
            }
        }
        sender.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
