//! A doorbell: one thread waits for any of its several inboxes at once,
//! without `select!`.
//!
//! The torrent thread has five inboxes (its peers' control events and
//! blocks, the hashers' verdicts, the disk writer's completions, the
//! session's commands). A blocking `select!` over crossbeam channels
//! registers with, and unregisters from, the waker of every one of them on
//! every wait, and a sender's `notify` then takes that waker's mutex: with
//! one event every few hundred microseconds, about a third of the torrent
//! thread's wake-ups were hand-offs of those mutexes, not messages (issue
//! 31, `perf record -e sched:sched_wakeup`), and the senders (peer threads)
//! blocked on them too.
//!
//! With a doorbell the thread never blocks in a channel: it takes what its
//! inboxes hold with `try_recv`, and when they are all empty it parks
//! ([`Doorbell::wait`]). Every sender is a [`Rung`]: it queues, then rings
//! ([`Doorbell::ring`], `Thread::unpark`: an atomic swap, and a `futex`
//! wake only if the thread is parked). A ring that comes before the thread
//! parks leaves the park token set, so the next park returns at once: no
//! message is slept through. Rings while the thread works cost no context
//! switch; everything queued meanwhile is taken in the same wake-up.
//!
//! Lazy senders ([`Rung::send_lazy`]: the hashers' verdicts, the disk
//! writer's completions) ring only if the thread is not *napping*: a thread
//! that waits while such answers are due naps ([`Doorbell::nap`]) for a
//! few milliseconds at most, and takes them with whatever wakes it first.
//! While blocks stream in (a peer's read every millisecond or so) a verdict
//! and a completion then cost the torrent thread no wake-up of their own;
//! when nothing else comes, the nap's end takes them, a few milliseconds
//! late.
//!
//! Other code on the waiting thread that parks (a blocking crossbeam send,
//! say) may take the token; so the thread checks its inboxes once more
//! right before it parks (`wait`'s `has_work`), and a ring after that check
//! sets the token again.

use crossbeam_channel::{SendError, SendTimeoutError, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Instant;

/// The waiting side: the thread to unpark, known once it runs.
#[derive(Debug, Default)]
pub struct Doorbell {
    thread: OnceLock<Thread>,
    /// The thread waits with a bounded nap: lazy senders do not ring.
    napping: AtomicBool,
}

impl Doorbell {
    pub fn new() -> Arc<Doorbell> {
        Arc::new(Doorbell::default())
    }

    /// Called by the waiting thread before its first wait: rings wake it.
    /// (Rings before that are not lost: the thread looks at its inboxes
    /// before it first waits.)
    pub fn bind_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Wake the waiting thread (or have its next wait return at once).
    pub fn ring(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Wake the waiting thread unless it naps (its nap ends soon anyway).
    pub fn ring_lazy(&self) {
        if !self.napping.load(Ordering::SeqCst) {
            self.ring();
        }
    }

    /// [`Doorbell::wait`] until `until` at the latest (the caller keeps it
    /// short), during which lazy senders do not ring.
    pub fn nap(&self, until: Instant, has_work: impl FnOnce() -> bool) {
        self.napping.store(true, Ordering::SeqCst);
        self.wait(Some(until), has_work);
        self.napping.store(false, Ordering::SeqCst);
    }

    /// Park until rung or until `until` (`None`: no deadline), unless
    /// `has_work` says an inbox holds something already. May return early
    /// (a ring consumed before, a spurious wake-up): the caller loops.
    pub fn wait(&self, until: Option<Instant>, has_work: impl FnOnce() -> bool) {
        if has_work() {
            return;
        }
        match until {
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    std::thread::park_timeout(left);
                }
            }
            None => std::thread::park(),
        }
    }
}

/// A sender that rings its receiver's doorbell after each message queued.
#[derive(Debug)]
pub struct Rung<T> {
    tx: Sender<T>,
    bell: Arc<Doorbell>,
}

impl<T> Clone for Rung<T> {
    fn clone(&self) -> Self {
        Rung {
            tx: self.tx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> Rung<T> {
    pub fn new(tx: Sender<T>, bell: Arc<Doorbell>) -> Rung<T> {
        Rung { tx, bell }
    }

    /// A sender whose receiver waits on the channel itself (tests, and
    /// receivers that block in `recv`): rings nobody.
    #[cfg(test)]
    pub fn plain(tx: Sender<T>) -> Rung<T> {
        Rung::new(tx, Doorbell::new())
    }

    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        self.tx.send(v)?;
        self.bell.ring();
        Ok(())
    }

    /// Queue `v`; ring only if the receiver does not nap.
    pub fn send_lazy(&self, v: T) -> Result<(), SendError<T>> {
        self.tx.send(v)?;
        self.bell.ring_lazy();
        Ok(())
    }

    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(v)?;
        self.bell.ring();
        Ok(())
    }

    pub fn send_deadline(&self, v: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.tx.send_deadline(v, deadline)?;
        self.bell.ring();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ring_wakes_a_parked_thread_and_an_early_ring_is_not_lost() {
        let bell = Doorbell::new();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let rung = Rung::new(tx, bell.clone());
        // Rung before the thread waits: the wait returns at once.
        let b = bell.clone();
        let waiter = std::thread::spawn(move || {
            b.bind_current();
            let mut got = Vec::new();
            let t0 = Instant::now();
            while got.len() < 3 && t0.elapsed() < Duration::from_secs(10) {
                while let Ok(v) = rx.try_recv() {
                    got.push(v);
                }
                if got.len() < 3 {
                    b.wait(Some(Instant::now() + Duration::from_secs(20)), || {
                        !rx.is_empty()
                    });
                }
            }
            (got, t0.elapsed())
        });
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            rung.send(i).unwrap();
        }
        let (got, took) = waiter.join().unwrap();
        assert_eq!(got, vec![0, 1, 2]);
        assert!(
            took < Duration::from_secs(5),
            "woken by the rings, not the deadline"
        );
    }

    #[test]
    fn a_lazy_send_rings_a_waiting_thread_but_not_a_napping_one() {
        let bell = Doorbell::new();
        bell.bind_current();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let rung = Rung::new(tx, bell.clone());
        // Napping: a lazy send leaves no token, the nap runs to its end.
        bell.napping.store(true, Ordering::SeqCst);
        rung.send_lazy(1).unwrap();
        bell.napping.store(false, Ordering::SeqCst);
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(30);
        while Instant::now() < until {
            bell.wait(Some(until), || false);
        }
        assert!(t0.elapsed() >= Duration::from_millis(30));
        // Not napping: a lazy send rings (the token makes the wait return).
        rung.send_lazy(2).unwrap();
        let t0 = Instant::now();
        bell.wait(Some(t0 + Duration::from_secs(20)), || false);
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_wait_ends_at_its_deadline() {
        let bell = Doorbell::new();
        bell.bind_current();
        let t0 = Instant::now();
        // Spurious wake-ups are allowed: loop until the deadline.
        let until = t0 + Duration::from_millis(30);
        while Instant::now() < until {
            bell.wait(Some(until), || false);
        }
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
