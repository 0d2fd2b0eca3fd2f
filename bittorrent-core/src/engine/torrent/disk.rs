//! The torrent thread's side of its disk writer
//! ([`storage::disk_writer`](crate::engine::storage::disk_writer)).
//!
//! Ordering rules:
//! - a verified piece is announced (`Have`, the shared "have" bitfield that
//!   lets peer threads upload it, the status, the wanted count) only once
//!   its write completed; until then it is in `unwritten`;
//! - resume data lists only pieces whose write had completed when the
//!   save was queued; the writer syncs before it writes the file, and jobs
//!   run in order, so every piece it lists is on the disk;
//! - a spilled piece is read back for hashing only after a barrier queued
//!   behind its block writes.
//!
//! Back-pressure: the bytes queued for the writer (verified pieces, still
//! reserved in the piece buffers, and spilled blocks, charged to the
//! session's piece-buffer budget) are bounded by [`WRITE_QUEUE_LIMIT`]:
//! past it no block is requested, so a disk that falls behind slows the
//! swarm down instead of growing memory.
//!
//! A full disk (issue 28) is part of the same design: a verified piece whose
//! write fails for lack of space is *parked* in memory (its bytes stay
//! reserved), the torrent stalls (requests cancelled, not interested), the
//! writer probes the disk with `statvfs` every few seconds (with back-off),
//! and once there is room the parked pieces are queued again. Nothing
//! verified is lost; memory stays bounded because a stalled torrent
//! requests nothing.

use super::{Phase, Torrent};
use crate::engine::conn::block_pool;
use crate::engine::storage::disk_writer::{DiskDone, DiskJob, DiskWriter};
use crate::engine::storage::piece_buffer::MemoryBudget;
use crate::engine::storage::StorageError;
use crate::proto::bitfield::Bitfield;
use crate::proto::resume::ResumeData;
use crate::proto::wire::BlockRef;
use crate::util::doorbell::{Doorbell, Rung};
use crossbeam_channel::Receiver;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes queued for the disk writer past which no block is requested.
/// (16 MiB: what a torrent's piece buffers held before they grew for long
/// fat links.)
pub(super) const WRITE_QUEUE_LIMIT: u64 = 16 << 20;
/// A queue that has not moved for this long is reported as waiting for
/// the disk.
const SLOW_DISK: Duration = Duration::from_secs(1);
/// The longest a shutting-down torrent waits for its queued writes before
/// it gives up on them (and on claiming them in the resume data).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(120);
/// A disk writer thread with nothing to do for this long ends (the next
/// job starts another): an idle torrent holds no disk thread.
const WRITER_IDLE: Duration = Duration::from_secs(5);

/// The disk writer and what is in flight with it.
pub(super) struct DiskSide {
    writer: DiskWriter,
    /// Completions: one of the torrent thread's inboxes.
    pub(super) done: Receiver<DiskDone>,
    /// Bytes of writes queued and not completed.
    queued: u64,
    /// Jobs queued and not completed.
    jobs: usize,
    /// The last completion, or when the queue last became non-empty.
    moved: Instant,
    /// Pieces verified but not written yet (queued or parked).
    unwritten: Bitfield,
    /// Verified pieces whose write failed on a full disk, kept for later.
    parked: Vec<(u32, Vec<Vec<u8>>)>,
    parked_bytes: u64,
    /// Spilled pieces complete and waiting for their barrier.
    barriers: HashSet<u32>,
    /// Spilled pieces a block write of which failed after they completed.
    spill_failed: HashSet<u32>,
    /// The session's piece-buffer budget, charged for spilled blocks queued.
    session: Arc<MemoryBudget>,
    /// Bytes charged to it so far and not given back.
    spill_charged: u64,
    /// A probe of a full disk is queued.
    probing: bool,
}

impl DiskSide {
    pub(super) fn new(
        name: &str,
        storage: Arc<crate::engine::storage::Storage>,
        num_pieces: usize,
        session: Arc<MemoryBudget>,
        bell: &Arc<Doorbell>,
    ) -> std::io::Result<DiskSide> {
        let (tx, done) = crossbeam_channel::unbounded();
        let tx = Rung::new(tx, bell.clone());
        Ok(DiskSide {
            writer: DiskWriter::new(name, storage, tx),
            done,
            queued: 0,
            jobs: 0,
            moved: Instant::now(),
            unwritten: Bitfield::new(num_pieces),
            parked: Vec::new(),
            parked_bytes: 0,
            barriers: HashSet::new(),
            spill_failed: HashSet::new(),
            session,
            spill_charged: 0,
            probing: false,
        })
    }

    fn queue(&mut self, job: DiskJob, bytes: u64) {
        if self.jobs == 0 {
            self.moved = Instant::now();
        }
        if self.writer.send(job) {
            self.jobs += 1;
            self.queued += bytes;
        }
    }

    /// When the writer thread, running with nothing queued, is to end.
    pub(super) fn writer_idle_deadline(&self) -> Option<Instant> {
        (self.writer.is_running() && self.jobs == 0).then(|| self.moved + WRITER_IDLE)
    }

    /// End the writer thread if it has been idle for [`WRITER_IDLE`]
    /// (every completion is back, so it waits for work and ends at once).
    pub(super) fn retire_idle_writer(&mut self) {
        if self
            .writer_idle_deadline()
            .is_some_and(|t| Instant::now() >= t)
        {
            self.writer.retire();
        }
    }

    /// Jobs queued and not completed: completions are due.
    pub(super) fn has_jobs(&self) -> bool {
        self.jobs > 0
    }

    fn completed(&mut self, bytes: u64) {
        self.jobs = self.jobs.saturating_sub(1);
        self.queued = self.queued.saturating_sub(bytes);
        self.moved = Instant::now();
    }

    /// Whether requests must wait for the writer to catch up.
    pub(super) fn behind(&self) -> bool {
        self.queued >= WRITE_QUEUE_LIMIT
    }

    /// Bytes waiting for the disk (queued or parked).
    pub(super) fn bytes_waiting(&self) -> u64 {
        self.queued + self.parked_bytes
    }

    /// The disk is what holds the torrent back: the queue is full, has not
    /// moved for a while, or verified pieces wait for space.
    pub(super) fn waiting(&self) -> bool {
        self.behind()
            || !self.parked.is_empty()
            || (self.jobs > 0 && self.moved.elapsed() >= SLOW_DISK)
    }
}

impl Drop for DiskSide {
    /// Spilled blocks still queued (a removed torrent drops them) give
    /// their bytes back to the session.
    fn drop(&mut self) {
        self.session.give(self.spill_charged);
    }
}

impl Torrent {
    /// Piece `piece` (verified, its blocks in memory) goes to the writer;
    /// it is announced once written ([`Torrent::on_disk_done`]).
    pub(super) fn write_verified(&mut self, piece: u32, blocks: Vec<Vec<u8>>) {
        self.disk.unwritten.set(piece as usize);
        let len = u64::from(self.layout.piece_len(piece));
        if matches!(self.phase, Phase::Stalled(_)) {
            self.disk.parked.push((piece, blocks));
            self.disk.parked_bytes += len;
            return;
        }
        let offset = self.layout.piece_offset(piece);
        self.disk.queue(
            DiskJob::Piece {
                piece,
                offset,
                blocks,
            },
            len,
        );
    }

    /// A block of a spilled piece goes to the writer.
    pub(super) fn write_spilled(&mut self, block: BlockRef, data: Vec<u8>) {
        let len = data.len() as u64;
        self.disk.session.charge(len);
        self.disk.spill_charged += len;
        let offset = self.layout.piece_offset(block.index) + u64::from(block.begin);
        self.disk.queue(
            DiskJob::Block {
                block,
                offset,
                data,
            },
            len,
        );
    }

    /// Every block of spilled piece `piece` is in: hash it once its writes
    /// are done.
    pub(super) fn spilled_complete(&mut self, piece: u32) {
        self.disk.barriers.insert(piece);
        self.disk.queue(DiskJob::Barrier { piece }, 0);
    }

    /// Queue a sync and a save of the resume data (pieces written so far).
    pub(super) fn save_resume(&mut self) {
        self.resume_dirty = false;
        self.last_resume_save = Instant::now();
        let resume = self.resume_snapshot();
        let path = self.resume_path();
        self.disk.queue(
            DiskJob::SaveResume {
                path,
                resume: Box::new(resume),
            },
            0,
        );
    }

    /// Queue a sync only (an interrupted check keeps the old resume data).
    pub(super) fn sync_disk(&mut self) {
        let resume = self.resume_snapshot();
        self.disk.queue(
            DiskJob::SaveResume {
                path: None,
                resume: Box::new(resume),
            },
            0,
        );
    }

    fn resume_snapshot(&self) -> ResumeData {
        let storage = &self.me.peer_ctx.storage;
        ResumeData {
            info_hash: self.me.metainfo.info_hash,
            num_pieces: self.layout.num_pieces,
            pieces: and_not(self.picker.have(), &self.disk.unwritten),
            save_path: storage.root().to_string_lossy().into_owned(),
            files: Vec::new(),
            uploaded: self.me.status.lock().uploaded,
            downloaded: self.downloaded,
            file_priorities: if self.all_wanted_files() {
                Vec::new()
            } else {
                self.priorities.clone()
            },
            part_file: None,
        }
    }

    /// Pieces verified and written, and their bytes.
    pub(super) fn written_counts(&self) -> (u32, u64) {
        let have = self.picker.have();
        let count = |bf: &Bitfield| -> (u32, u64) {
            let n = bf.count() as u64;
            let mut bytes = n * self.layout.piece_length;
            let last = self.layout.num_pieces.saturating_sub(1);
            if self.layout.num_pieces > 0 && bf.get(last as usize) {
                bytes = bytes - self.layout.piece_length + u64::from(self.layout.piece_len(last));
            }
            (n as u32, bytes)
        };
        let (n, bytes) = count(have);
        if self.disk.unwritten.count() == 0 {
            return (n, bytes);
        }
        let (un, ubytes) = count(&self.disk.unwritten);
        (n.saturating_sub(un), bytes.saturating_sub(ubytes))
    }

    /// A stalled torrent's retry is due: ask the writer whether the disk
    /// has room (the torrent thread never calls `statvfs` itself).
    pub(super) fn probe_disk(&mut self) {
        self.stalled_at = Instant::now();
        if self.disk.probing {
            return;
        }
        self.disk.probing = true;
        let root = self.me.peer_ctx.storage.root().to_path_buf();
        let min_free = self.layout.piece_length.min(self.layout.total_length);
        self.disk.queue(DiskJob::Probe { root, min_free }, 0);
    }

    /// Queue the creation of the files the selection now wants.
    pub(super) fn want_files(&mut self) {
        let priorities = self.priorities.clone();
        self.disk.queue(DiskJob::WantFiles { priorities }, 0);
    }

    /// A completion from the writer (one of the torrent thread's inboxes).
    pub(super) fn on_disk_done(&mut self, done: DiskDone) {
        let was_behind = self.disk.behind();
        match done {
            DiskDone::Piece {
                piece,
                blocks,
                result,
            } => {
                let len = u64::from(self.layout.piece_len(piece));
                self.disk.completed(len);
                match result {
                    Ok(()) => {
                        self.buffers.release(piece);
                        self.disk.unwritten.clear(piece as usize);
                        self.stall_retry = Duration::ZERO;
                        let i = piece as usize;
                        if self.conns.values().any(|c| !c.bitfield.get(i)) {
                            // A connected peer may soon ask for it (see recent_pieces).
                            self.me.peer_ctx.recent.keep(piece, blocks, Instant::now());
                        } else {
                            block_pool::global().give_back(blocks);
                        }
                        self.piece_verified(piece);
                        self.refill_starved();
                    }
                    Err(e @ StorageError::DiskFull { .. }) => {
                        // Kept (still reserved) until the disk has room.
                        self.disk.parked.push((piece, blocks));
                        self.disk.parked_bytes += len;
                        self.stall_once(e.to_string());
                    }
                    Err(e) => {
                        // Stays in `unwritten`: never claimed by resume data.
                        self.buffers.release(piece);
                        block_pool::global().give_back(blocks);
                        self.fail(e.to_string());
                    }
                }
            }
            DiskDone::Block {
                block,
                data,
                result,
            } => {
                let len = data.len() as u64;
                self.disk.completed(len);
                self.disk.session.give(len);
                self.disk.spill_charged = self.disk.spill_charged.saturating_sub(len);
                block_pool::global().give_back([data]);
                if let Err(e) = result {
                    // Nothing verified is touched: the block (or its
                    // piece) is simply wanted again.
                    if self.disk.barriers.contains(&block.index) {
                        self.disk.spill_failed.insert(block.index);
                    } else {
                        self.picker.write_failed(&block);
                    }
                    match e {
                        StorageError::DiskFull { .. } => self.stall_once(e.to_string()),
                        other => self.fail(other.to_string()),
                    }
                }
            }
            DiskDone::Barrier { piece } => {
                self.disk.completed(0);
                self.disk.barriers.remove(&piece);
                if self.disk.spill_failed.remove(&piece) {
                    // Not all of it reached the disk: fetch it again (no
                    // one is to blame).
                    self.picker.piece_hashed(piece, false);
                } else {
                    self.submit_hash(piece);
                }
            }
            DiskDone::Saved { result } => {
                self.disk.completed(0);
                if let Err(e) = result {
                    log::warn!("{}: {e}", self.me.metainfo.info.name);
                    self.resume_dirty = true;
                }
            }
            DiskDone::WantedFiles { result } => {
                self.disk.completed(0);
                match result {
                    Ok(()) => {}
                    Err(e @ StorageError::DiskFull { .. }) => self.stall_once(e.to_string()),
                    Err(e) => self.fail(e.to_string()),
                }
            }
            DiskDone::Probed { room } => {
                self.disk.completed(0);
                self.disk.probing = false;
                if room && matches!(self.phase, Phase::Stalled(_)) {
                    self.unstall();
                } else {
                    // Still full: look again later, without asking the swarm.
                    self.stalled_at = Instant::now();
                }
            }
        }
        if was_behind && !self.disk.behind() {
            // The writer caught up: ask the swarm again.
            let keys: Vec<_> = self.conns.keys().copied().collect();
            for k in keys {
                self.fill_requests(k);
            }
        }
    }

    /// A written piece gave its bytes back to the piece buffers: the peers
    /// that found no new piece to start may have one now.
    fn refill_starved(&mut self) {
        if !std::mem::take(&mut self.budget_starved) {
            return;
        }
        let keys: Vec<_> = self.conns.keys().copied().collect();
        for k in keys {
            self.fill_requests(k);
        }
    }

    /// Stall on a full disk, unless already stalled (each write queued
    /// before the first failure fails the same way).
    fn stall_once(&mut self, reason: String) {
        if !matches!(self.phase, Phase::Stalled(_) | Phase::Failed(_)) {
            self.stall(reason);
        }
    }

    /// The disk has room again: queue the parked pieces and download.
    fn unstall(&mut self) {
        log::info!(
            "{}: retrying after: {:?}",
            self.me.metainfo.info.name,
            self.phase
        );
        for (piece, blocks) in std::mem::take(&mut self.disk.parked) {
            let len = u64::from(self.layout.piece_len(piece));
            let offset = self.layout.piece_offset(piece);
            self.disk.queue(
                DiskJob::Piece {
                    piece,
                    offset,
                    blocks,
                },
                len,
            );
        }
        self.disk.parked_bytes = 0;
        // A file the selection wants may have failed to be created: again.
        self.want_files();
        self.phase = if self.is_finished() {
            Phase::Seeding
        } else {
            Phase::Downloading
        };
        self.candidates.retry_all(Instant::now());
        // The connections kept while stalled want blocks again.
        let keys: Vec<_> = self.conns.keys().copied().collect();
        for k in keys {
            self.update_interest(k);
            self.fill_requests(k);
        }
        self.publish_status();
    }

    /// Shutting down: let the queued writes finish (bounded), queue the
    /// last save (or only a sync after an interrupted check), and wait for
    /// the writer.
    pub(super) fn finish_disk(&mut self, save: bool) {
        let deadline = Instant::now() + SHUTDOWN_DRAIN;
        while self.disk.jobs > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.disk.done.recv_timeout(left) {
                Ok(done) => self.on_disk_done(done),
                Err(_) => {
                    log::warn!(
                        "{}: the disk did not finish its writes in {}s; leaving them",
                        self.me.metainfo.info.name,
                        SHUTDOWN_DRAIN.as_secs()
                    );
                    self.disk.writer.abandon();
                    return;
                }
            }
        }
        // No new writer thread for the last save (every torrent of the
        // session stops at once).
        self.disk.writer.no_new_thread();
        if save {
            self.save_resume();
        } else {
            self.sync_disk();
        }
        self.disk.writer.finish();
    }

    /// Removed: drop the queued jobs and let the writer end (and the files
    /// close) in the background.
    pub(super) fn abandon_disk(&mut self) {
        self.disk.writer.abandon();
    }
}

/// The BEP 3 bytes of `a` without the pieces of `b` (same length).
fn and_not(a: &Bitfield, b: &Bitfield) -> Vec<u8> {
    a.as_bytes()
        .iter()
        .zip(b.as_bytes())
        .map(|(x, y)| x & !y)
        .collect()
}
