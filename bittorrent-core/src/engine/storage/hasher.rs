//! The hashing pool: a few threads that check pieces' SHA-1, so that
//! hashing never stalls a torrent thread.
//!
//! A downloaded piece arrives in memory (the blocks as they were received,
//! moved here by ownership) and is hashed from there; the blocks go back
//! with the verdict so that the torrent thread can write them to disk in
//! one vectored write, or drop them if the hash failed. Pieces found on
//! disk at start-up are read back and hashed.
//!
//! Jobs arrive on one shared (MPMC) channel; each verdict goes back on the
//! channel named in the job. The workers block on the job channel and on a
//! stop channel: an idle pool never wakes up.

use crate::engine::storage::{Storage, StorageError};
use crate::proto::metainfo::PieceCheck;
use crate::util::doorbell::Rung;
use crossbeam_channel::{select, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Stack size of a hashing thread: hashing needs only a few KiB of stack
/// (the read-back buffer is on the heap).
const HASHER_STACK: usize = 128 * 1024;

/// Where the bytes of a piece to verify are.
pub enum PieceData {
    /// On disk: read `len` bytes at torrent offset `offset`.
    Disk {
        /// Where the piece is.
        storage: Arc<Storage>,
        /// Its offset in the torrent.
        offset: u64,
        /// Its length.
        len: u32,
    },
    /// In memory: the piece's blocks in order (moved, never copied).
    Memory(Vec<Vec<u8>>),
}

/// One piece to verify.
pub struct HashJob {
    /// The piece index.
    pub piece: u32,
    /// Its bytes.
    pub data: PieceData,
    /// The expected SHA-1 (`None` for a v2-only torrent).
    pub expected: Option<[u8; 20]>,
    /// The piece's v2 hash (BEP 52): a hybrid's piece must match both, a
    /// v2-only piece this one. A piece with neither never passes.
    pub v2: Option<PieceCheck>,
    /// Also return the SHA-1 of each 16 KiB block when the piece passes
    /// (smart ban; they are always returned when it fails).
    pub block_hashes: bool,
    /// Where to send the verdict.
    pub reply: Rung<HashDone>,
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
    /// The blocks of an in-memory piece, handed back to be written (or
    /// dropped); `None` for a piece read from disk.
    pub blocks: Option<Vec<Vec<u8>>>,
}

/// The pool's handle: submit jobs; dropping it lets the threads exit.
pub struct HasherPool {
    jobs: Sender<HashJob>,
    threads: Vec<JoinHandle<()>>,
    /// Dropped by `shutdown`: the disconnect wakes every worker.
    stop: Sender<()>,
}

impl HasherPool {
    /// Start `n` hashing threads.
    pub fn start(n: usize) -> std::io::Result<HasherPool> {
        let (jobs, rx) = crossbeam_channel::unbounded::<HashJob>();
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rx: Receiver<HashJob> = rx.clone();
            let stop_rx = stop_rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("hasher-{i}"))
                    .stack_size(HASHER_STACK)
                    .spawn(move || worker(rx, stop_rx))?,
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
        drop(self.stop);
        drop(self.jobs);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[allow(dead_code)] // not used by the engine yet
/// Hash one piece on disk now, on the calling thread.
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

/// The SHA-1 of blocks taken in order, as one byte stream.
pub fn sha1_of_blocks(blocks: &[Vec<u8>]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    for b in blocks {
        h.update(b);
    }
    h.digest().bytes()
}

/// Whether a piece passes every hash the job knows of (at least one).
fn passes(
    expected: Option<[u8; 20]>,
    check: Option<PieceCheck>,
    sha1: impl FnOnce() -> [u8; 20],
    v2: impl FnOnce(&PieceCheck) -> bool,
) -> bool {
    match (&expected, &check) {
        (None, None) => false,
        (Some(e), check) => sha1() == *e && check.as_ref().is_none_or(v2),
        (None, Some(c)) => v2(c),
    }
}

fn hash_job(job: HashJob) {
    let (ok, error, block_hashes, blocks) = match job.data {
        PieceData::Disk {
            storage,
            offset,
            len,
        } => {
            let mut buf = vec![0u8; len as usize];
            match storage.read(offset, &mut buf) {
                Ok(()) => {
                    let ok = passes(
                        job.expected,
                        job.v2,
                        || sha1_smol::Sha1::from(&buf).digest().bytes(),
                        |c| c.verify([buf.as_slice()]),
                    );
                    let hashes = if !ok || job.block_hashes {
                        crate::engine::torrent::smart_ban::block_hashes(
                            &buf,
                            crate::proto::wire::BLOCK_SIZE as usize,
                        )
                    } else {
                        Vec::new()
                    };
                    (ok, None, hashes, None)
                }
                Err(e) => (false, Some(e), Vec::new(), None),
            }
        }
        PieceData::Memory(blocks) => {
            let ok = passes(
                job.expected,
                job.v2,
                || sha1_of_blocks(&blocks),
                |c| c.verify(blocks.iter().map(Vec::as_slice)),
            );
            // Each block is one 16 KiB block of the piece (the last shorter).
            let hashes = if !ok || job.block_hashes {
                blocks
                    .iter()
                    .map(|b| sha1_smol::Sha1::from(b).digest().bytes())
                    .collect()
            } else {
                Vec::new()
            };
            (ok, None, hashes, Some(blocks))
        }
    };
    // Lazy: a torrent thread that naps takes it when its nap ends.
    let _ = job.reply.send_lazy(HashDone {
        piece: job.piece,
        ok,
        error,
        block_hashes,
        blocks,
    });
}

fn worker(rx: Receiver<HashJob>, stop: Receiver<()>) {
    // Other senders (torrent threads) may outlive the pool's own handle, so
    // the stop channel ends the loop; both waits block (no polling).
    loop {
        select! {
            recv(rx) -> job => match job {
                Ok(job) => hash_job(job),
                Err(_) => return,
            },
            recv(stop) -> _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hash_like_the_whole_piece() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let blocks: Vec<Vec<u8>> = data.chunks(16384).map(<[u8]>::to_vec).collect();
        assert_eq!(
            sha1_of_blocks(&blocks),
            sha1_smol::Sha1::from(&data).digest().bytes()
        );
    }

    #[test]
    fn memory_jobs_come_back_with_their_blocks_and_idle_pool_stops() {
        let pool = HasherPool::start(2).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let blocks = vec![vec![1u8; 16384], vec![2u8; 100]];
        let good = sha1_of_blocks(&blocks);
        for (piece, expected) in [(0, good), (1, [0u8; 20])] {
            pool.sender()
                .send(HashJob {
                    piece,
                    data: PieceData::Memory(blocks.clone()),
                    expected: Some(expected),
                    v2: None,
                    block_hashes: false,
                    reply: Rung::plain(tx.clone()),
                })
                .unwrap();
        }
        let mut got: Vec<HashDone> = (0..2)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
            .collect();
        got.sort_by_key(|d| d.piece);
        assert!(got[0].ok && !got[1].ok);
        assert!(got[0].block_hashes.is_empty());
        assert_eq!(
            got[1].block_hashes.len(),
            2,
            "a failed piece: one hash per block"
        );
        assert_eq!(got[0].blocks.as_deref(), Some(&blocks[..]));
        assert_eq!(got[1].blocks.as_deref(), Some(&blocks[..]));
        let t = std::time::Instant::now();
        pool.shutdown();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_hybrid_piece_must_match_its_v2_hash_too() {
        use crate::proto::merkle::{hash_pair, sha256};
        // A 32 KiB piece: 16,484 bytes of a file, then pad zeros.
        let real: Vec<u8> = (0..16_484u32).map(|i| (i % 251) as u8).collect();
        let mut piece = real.clone();
        piece.resize(32768, 0);
        let blocks = vec![piece[..16384].to_vec(), piece[16384..].to_vec()];
        let sha1 = sha1_of_blocks(&blocks);
        let node = hash_pair(&sha256(&real[..16384]), &sha256(&real[16384..]));
        let check = |expected| PieceCheck {
            expected,
            real_len: real.len() as u64,
            whole_file: false,
            piece_length: 32768,
        };
        let pool = HasherPool::start(1).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut wrong = node;
        wrong[0] ^= 1;
        for (piece, v2) in [(0, Some(check(node))), (1, Some(check(wrong))), (2, None)] {
            pool.sender()
                .send(HashJob {
                    piece,
                    data: PieceData::Memory(blocks.clone()),
                    expected: Some(sha1),
                    v2,
                    block_hashes: false,
                    reply: Rung::plain(tx.clone()),
                })
                .unwrap();
        }
        let mut got: Vec<(u32, bool)> = (0..3)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
            .map(|d| (d.piece, d.ok))
            .collect();
        got.sort();
        assert_eq!(got, vec![(0, true), (1, false), (2, true)]);
        pool.shutdown();
    }
}
