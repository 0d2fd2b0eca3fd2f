//! A peer thread's way up to its torrent thread: two bounded channels, one for
//! control events (everything a peer says but blocks) and one for blocks, and
//! what the thread holds while they are full.
//!
//! The thread never blocks on either while it runs: it hands events over with
//! `try_send`, control first, and keeps what does not fit in its [`Outbox`].
//! So a torrent thread that falls behind on blocks never stops a peer thread
//! from serving uploads or executing commands, and control events never wait
//! behind blocks: the torrent thread serves its control channel first. Memory
//! stays bounded: past [`DATA_HOLD`] bytes of blocks or [`CONTROL_HOLD`]
//! events held, the thread stops reading its socket (TCP then slows the peer
//! down) until the torrent thread takes some; uploads and commands go on.
//! Only `Joined` (before the loop) and `Left` (after it, once the rest was
//! handed over within [`HANDOVER_AT_EXIT`]) are blocking sends.

use super::*;
use crate::util::doorbell::{Doorbell, Rung};
use std::collections::VecDeque;

/// The blocks of one socket read, in order.
pub type Blocks = Vec<(BlockRef, Vec<u8>)>;

/// Capacity of a torrent's control channel (a bounded channel allocates its
/// slots up front, so it stays small: a seed of 10,000 torrents has 10,000).
pub const CONTROL_CAPACITY: usize = 64;
/// Capacity of a torrent's block channel, in batches (one socket read each,
/// up to 256 KiB).
pub const DATA_CAPACITY: usize = 64;
/// Bytes of blocks a peer thread holds before it stops reading its socket.
pub const DATA_HOLD: usize = 1024 * 1024;
/// Control events a peer thread holds before it stops reading its socket.
pub const CONTROL_HOLD: usize = 256;
/// How often a thread that holds events tries to hand them over, at the
/// least: the torrent thread wakes it when it has taken some
/// (`PeerCounters::held`), so this is a safety net.
pub(super) const HOLD_RETRY: Duration = Duration::from_millis(50);
/// How long a closing connection may wait to hand over what it holds before
/// its `Left`.
const HANDOVER_AT_EXIT: Duration = Duration::from_secs(2);

/// The sending ends of a torrent's two peer channels (cloned into every peer
/// thread); each send rings the torrent thread's doorbell.
#[derive(Debug, Clone)]
pub struct ToTorrent {
    control: Rung<(PeerKey, PeerEvent)>,
    data: Rung<(PeerKey, Blocks)>,
}

/// The receiving ends, owned by the torrent thread.
pub struct FromPeers {
    /// Control events: served before blocks.
    pub control: Receiver<(PeerKey, PeerEvent)>,
    /// Blocks.
    pub data: Receiver<(PeerKey, Blocks)>,
}

/// A torrent's two peer channels, ringing `bell` (the torrent thread's).
pub fn channels(bell: &Arc<Doorbell>) -> (ToTorrent, FromPeers) {
    let (control, control_rx) = crossbeam_channel::bounded(CONTROL_CAPACITY);
    let (data, data_rx) = crossbeam_channel::bounded(DATA_CAPACITY);
    (
        ToTorrent {
            control: Rung::new(control, bell.clone()),
            data: Rung::new(data, bell.clone()),
        },
        FromPeers {
            control: control_rx,
            data: data_rx,
        },
    )
}

impl ToTorrent {
    /// A blocking send of a control event (`Joined` before the loop, `Left`
    /// after it). `Err` if the torrent thread is gone.
    pub(crate) fn send_control(&self, key: PeerKey, e: PeerEvent) -> Result<(), CloseReason> {
        self.control
            .send((key, e))
            .map_err(|_| CloseReason::Shutdown)
    }
}

/// What a peer thread could not hand over yet, in order within each kind.
#[derive(Default)]
pub(super) struct Outbox {
    control: VecDeque<PeerEvent>,
    data: VecDeque<Blocks>,
    data_bytes: usize,
}

impl Outbox {
    pub(super) fn push_control(&mut self, e: PeerEvent) {
        self.control.push_back(e);
    }

    pub(super) fn push_data(&mut self, blocks: Blocks) {
        self.data_bytes += blocks.iter().map(|(_, d)| d.len()).sum::<usize>();
        self.data.push_back(blocks);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty()
    }

    /// Whether the thread may read its socket: it holds less than its limits.
    pub(super) fn room(&self) -> bool {
        self.data_bytes < DATA_HOLD && self.control.len() < CONTROL_HOLD
    }

    /// Hand over what the channels take now, control first, never waiting.
    /// `Err` if the torrent thread is gone.
    pub(super) fn pump(&mut self, key: PeerKey, to: &ToTorrent) -> Result<(), CloseReason> {
        use crossbeam_channel::TrySendError;
        while let Some(e) = self.control.pop_front() {
            match to.control.try_send((key, e)) {
                Ok(()) => {}
                Err(TrySendError::Full((_, e))) => {
                    self.control.push_front(e);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return Err(CloseReason::Shutdown),
            }
        }
        while let Some(b) = self.data.pop_front() {
            let bytes: usize = b.iter().map(|(_, d)| d.len()).sum();
            match to.data.try_send((key, b)) {
                Ok(()) => self.data_bytes -= bytes,
                Err(TrySendError::Full((_, b))) => {
                    self.data.push_front(b);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return Err(CloseReason::Shutdown),
            }
        }
        Ok(())
    }

    /// The connection is over: hand over the rest (blocks first, so that
    /// the torrent thread has them when `Left` arrives), waiting at most
    /// [`HANDOVER_AT_EXIT`]; what is left after that is dropped (its
    /// requests go back to the picker with the `Left`).
    pub(super) fn hand_over_rest(&mut self, key: PeerKey, to: &ToTorrent) {
        let deadline = Instant::now() + HANDOVER_AT_EXIT;
        while let Some(b) = self.data.pop_front() {
            if to.data.send_deadline((key, b), deadline).is_err() {
                break;
            }
        }
        while let Some(e) = self.control.pop_front() {
            if to.control.send_deadline((key, e), deadline).is_err() {
                break;
            }
        }
        for b in self.data.drain(..) {
            block_pool::global().give_back(b.into_iter().map(|(_, d)| d));
        }
        self.control.clear();
        self.data_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: usize) -> Blocks {
        (0..n)
            .map(|i| {
                (
                    BlockRef {
                        index: 0,
                        begin: (i * 16384) as u32,
                        length: 16384,
                    },
                    vec![0u8; 16384],
                )
            })
            .collect()
    }

    #[test]
    fn control_is_handed_over_while_the_block_channel_is_full() {
        let (to, from) = channels(&Doorbell::new());
        let mut out = Outbox::default();
        // The torrent thread takes no blocks: the channel fills, the rest is held.
        for _ in 0..DATA_CAPACITY + 3 {
            out.push_data(blocks(1));
            out.pump(7, &to).unwrap();
        }
        assert_eq!(from.data.len(), DATA_CAPACITY);
        assert!(!out.is_empty());
        assert!(out.room(), "three blocks held is under the limit");
        // A control event still goes through at once.
        out.push_control(PeerEvent::Have(3));
        out.pump(7, &to).unwrap();
        assert!(matches!(
            from.control.try_recv(),
            Ok((7, PeerEvent::Have(3)))
        ));
        // Past the hold limit the thread must stop reading.
        while out.room() {
            out.push_data(blocks(16));
            out.pump(7, &to).unwrap();
        }
        assert!(out.data_bytes >= DATA_HOLD);
        // The torrent thread catches up: everything held goes, in order.
        let mut got = 0;
        while !out.is_empty() {
            while let Ok((k, b)) = from.data.try_recv() {
                assert_eq!(k, 7);
                got += b.len();
            }
            out.pump(7, &to).unwrap();
        }
        while let Ok((_, b)) = from.data.try_recv() {
            got += b.len();
        }
        assert_eq!(out.data_bytes, 0);
        assert!(got >= DATA_CAPACITY + 3 + DATA_HOLD / 16384);
    }

    #[test]
    fn a_gone_torrent_thread_ends_the_connection() {
        let (to, from) = channels(&Doorbell::new());
        drop(from);
        let mut out = Outbox::default();
        out.push_control(PeerEvent::Interested(true));
        assert_eq!(out.pump(1, &to), Err(CloseReason::Shutdown));
    }
}
