//! The torrent thread's inboxes: each turn of its loop takes everything
//! queued in them (control events first, then blocks, hash verdicts, disk
//! completions, web-seed events and the session's commands) before it waits on its doorbell
//! again (`util::doorbell`).

use super::*;
use crossbeam_channel::TryRecvError;

/// Hash verdicts, disk completions and commands taken per inbox per turn
/// (control events and blocks: their channels' capacities).
const INBOX_BATCH: usize = 64;

impl Torrent {
    /// Serve the control events queued now (as many as the channel holds),
    /// before any more blocks. Whether any was; `None` once every sender
    /// is gone.
    pub(super) fn take_control(&mut self) -> Option<bool> {
        let mut took = false;
        for _ in 0..peer::CONTROL_CAPACITY {
            match self.from_peers.control.try_recv() {
                Ok((key, ev)) => {
                    self.on_event(key, ev);
                    took = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        Some(took)
    }

    /// Take the blocks queued now (a departing peer's come before its
    /// `Left`). Whether there were any.
    /// Peer threads that held events for want of room in the channels
    /// (`PeerCounters::held`): wake them, now that there is some.
    pub(super) fn wake_held(&self) {
        for c in self.conns.values() {
            let held = &c.counters.held;
            if held.load(Ordering::Relaxed) && held.swap(false, Ordering::SeqCst) {
                c.inbox.wake();
            }
        }
    }

    pub(super) fn take_blocks(&mut self) -> bool {
        let mut took = false;
        for _ in 0..peer::DATA_CAPACITY {
            match self.from_peers.data.try_recv() {
                Ok((key, blocks)) => {
                    self.on_blocks(key, blocks);
                    took = true;
                }
                Err(_) => break,
            }
        }
        took
    }

    /// The hashers' verdicts queued now (at most [`INBOX_BATCH`]).
    pub(super) fn take_hashed(&mut self) -> bool {
        let mut took = false;
        for _ in 0..INBOX_BATCH {
            match self.hash_rx.try_recv() {
                Ok(done) => {
                    self.hash_jobs.set(self.hash_jobs.get().saturating_sub(1));
                    self.on_hashed(done);
                    took = true;
                }
                Err(_) => break,
            }
        }
        took
    }

    /// The disk writer's completions queued now (at most [`INBOX_BATCH`]).
    pub(super) fn take_disk_done(&mut self) -> bool {
        let mut took = false;
        for _ in 0..INBOX_BATCH {
            match self.disk.done.try_recv() {
                Ok(done) => {
                    self.on_disk_done(done);
                    took = true;
                }
                Err(_) => break,
            }
        }
        took
    }

    /// The web seeds' events queued now (at most [`INBOX_BATCH`]).
    pub(super) fn take_web(&mut self) -> bool {
        let mut took = false;
        for _ in 0..INBOX_BATCH {
            match self.web.events.try_recv() {
                Ok((key, ev)) => {
                    self.on_web_event(key, ev);
                    took = true;
                }
                Err(_) => break,
            }
        }
        took
    }

    /// The session's commands queued now (at most [`INBOX_BATCH`]); `None`
    /// once the thread must end (shut down, removed, or the session gone).
    pub(super) fn take_commands(&mut self) -> Option<bool> {
        let mut took = false;
        for _ in 0..INBOX_BATCH {
            match self.commands_rx.try_recv() {
                Ok(Command::Shutdown(done)) => {
                    self.shutdown();
                    let _ = done.send(());
                    return None;
                }
                Ok(Command::Remove(done)) => {
                    // Removed: answer at once; the writer drops what is
                    // queued and closes the files in the background.
                    self.abandon_disk();
                    self.close_all();
                    let _ = done.send(());
                    return None;
                }
                Ok(cmd) => {
                    self.on_command(cmd);
                    took = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.shutdown();
                    return None;
                }
            }
        }
        Some(took)
    }
}
