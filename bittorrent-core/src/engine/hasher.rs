//! The hashing pool: a few threads that read a piece back from storage and
//! check its SHA-1, so that hashing never stalls a torrent thread.
//!
//! Jobs arrive on one shared (MPMC) channel; each verdict goes back on the
//! channel named in the job.

use crate::engine::storage::{Storage, StorageError};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One piece to verify.
pub struct HashJob {
    /// Where the piece is.
    pub storage: Arc<Storage>,
    /// The piece index.
    pub piece: u32,
    /// Its offset in the torrent.
    pub offset: u64,
    /// Its length.
    pub len: u32,
    /// The expected SHA-1.
    pub expected: [u8; 20],
    /// Also return the SHA-1 of each 16 KiB block when the piece passes
    /// (smart ban; they are always returned when it fails).
    pub block_hashes: bool,
    /// Where to send the verdict.
    pub reply: Sender<HashDone>,
}

/// The verdict on one piece.
#[derive(Debug)]
pub struct HashDone {
    /// The piece index.
    pub piece: u32,
    /// Whether the data matched the expected hash.
    pub ok: bool,
    /// A read error, if the data could not be read.
    pub error: Option<StorageError>,
    /// The SHA-1 of each 16 KiB block as read: when the piece failed, or
    /// passed and the job asked for them; else empty.
    pub block_hashes: Vec<[u8; 20]>,
}

/// The pool's handle: submit jobs; dropping it lets the threads exit.
pub struct HasherPool {
    jobs: Sender<HashJob>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl HasherPool {
    /// Start `n` hashing threads.
    pub fn start(n: usize) -> std::io::Result<HasherPool> {
        let (jobs, rx) = crossbeam_channel::unbounded::<HashJob>();
        let mut threads = Vec::new();
        let stop = Arc::new(AtomicBool::new(false));
        for i in 0..n.max(1) {
            let rx: Receiver<HashJob> = rx.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("hasher-{i}"))
                    .spawn(move || worker(rx, &stop))?,
            );
        }
        Ok(HasherPool {
            jobs,
            threads,
            stop,
        })
    }

    /// A sender for jobs (cheap to clone).
    pub fn sender(&self) -> Sender<HashJob> {
        self.jobs.clone()
    }

    /// Stop the threads (jobs still queued are dropped) and wait for them.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.jobs);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Hash one piece now, on the calling thread.
pub fn check_piece(
    storage: &Storage,
    offset: u64,
    len: u32,
    expected: &[u8; 20],
) -> Result<bool, StorageError> {
    let mut buf = vec![0u8; len as usize];
    storage.read(offset, &mut buf)?;
    Ok(sha1_smol::Sha1::from(&buf).digest().bytes() == *expected)
}

fn worker(rx: Receiver<HashJob>, stop: &AtomicBool) {
    // Other senders (torrent threads) may outlive the pool's own handle, so
    // a stop flag, checked at least every 200 ms, ends the loop.
    while !stop.load(Ordering::SeqCst) {
        let job = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut buf = vec![0u8; job.len as usize];
        let (ok, error) = match job.storage.read(job.offset, &mut buf) {
            Ok(()) => (
                sha1_smol::Sha1::from(&buf).digest().bytes() == job.expected,
                None,
            ),
            Err(e) => (false, Some(e)),
        };
        let block_hashes = if error.is_none() && (!ok || job.block_hashes) {
            super::smart_ban::block_hashes(&buf, crate::proto::wire::BLOCK_SIZE as usize)
        } else {
            Vec::new()
        };
        let _ = job.reply.send(HashDone {
            piece: job.piece,
            ok,
            error,
            block_hashes,
        });
    }
}
