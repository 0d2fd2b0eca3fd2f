//! A torrent's disk writer: one thread per torrent thread, started and
//! joined by it, that performs every write, sync and resume-file save of
//! that torrent in the order they were queued. It runs only while the
//! torrent has disk work (started by a job, ended when idle).
//!
//! The torrent thread never waits on the disk: it sends [`DiskJob`]s over
//! an unbounded channel (bounded in bytes by the torrent thread itself, see
//! `engine::torrent::disk`) and gets one [`DiskDone`] back per job, on a
//! channel that is one more arm of its `select!`. Jobs run strictly in
//! order, so a [`DiskJob::SaveResume`] syncs every write queued before it,
//! and a [`DiskJob::Barrier`] answers only once the writes queued before it
//! are done (a spilled piece is read back for hashing only after that).

use crate::engine::storage::{Storage, StorageError};
use crate::engine::torrent::selection::FilePriority;
use crate::proto::resume::ResumeData;
use crate::proto::wire::BlockRef;
use crate::util::doorbell::Rung;
use crossbeam_channel::{Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Stack size of a disk writer thread (the data is on the heap).
const WRITER_STACK: usize = 128 * 1024;

/// Work for the disk writer, run in the order sent.
pub(crate) enum DiskJob {
    /// Write a verified piece held in memory (its blocks, in order).
    Piece {
        piece: u32,
        offset: u64,
        blocks: Vec<Vec<u8>>,
    },
    /// Write one block of a spilled piece (not verified yet).
    Block {
        block: BlockRef,
        offset: u64,
        data: Vec<u8>,
    },
    /// Answer once every job before it is done.
    Barrier { piece: u32 },
    /// Sync the data, then write the resume data (its file stamps and the
    /// part file's stamp are taken here, after the sync) atomically to
    /// `path`. Without a path, only sync.
    SaveResume {
        path: Option<PathBuf>,
        resume: Box<ResumeData>,
    },
    /// Whether the disk under `root` has at least `min_free` bytes free
    /// (`statvfs`; `true` when it cannot tell).
    Probe { root: PathBuf, min_free: u64 },
    /// A new file selection: create the files now wanted (preallocated,
    /// their bytes moved out of the part file), `Storage::want_files`.
    WantFiles { priorities: Vec<FilePriority> },
}

/// What a job did, one per job, in order.
pub(crate) enum DiskDone {
    Piece {
        piece: u32,
        blocks: Vec<Vec<u8>>,
        result: Result<(), StorageError>,
    },
    Block {
        block: BlockRef,
        data: Vec<u8>,
        result: Result<(), StorageError>,
    },
    Barrier {
        piece: u32,
    },
    /// The data was synced and the resume data saved, or why not.
    Saved {
        result: Result<(), String>,
    },
    Probed {
        room: bool,
    },
    WantedFiles {
        result: Result<(), StorageError>,
    },
}

/// The writer's handle, owned by the torrent thread. The thread runs only
/// while there is disk work: it is started by the first job queued
/// ([`DiskWriter::send`]) and ended by [`DiskWriter::retire`] once the
/// torrent thread has had every completion back and nothing came for a
/// while, so an idle torrent (a seeded one, a paused one) holds no disk
/// thread (issue 23: 10,000 torrents were 20,000 threads).
pub(crate) struct DiskWriter {
    name: String,
    storage: Arc<Storage>,
    done: Rung<DiskDone>,
    running: Option<Running>,
    /// The torrent is removed: no job runs any more.
    abandoned: bool,
    /// Threads started so far (for the tests and the logs).
    started: u32,
    /// Shutting down: a job that finds no thread running runs on the
    /// caller's thread instead of starting one.
    no_new_thread: bool,
}

/// A running writer thread.
struct Running {
    jobs: Sender<DiskJob>,
    /// Set when the torrent is removed: jobs not started are dropped.
    abandon: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl DiskWriter {
    /// The writer of `storage` (no thread yet); completions go to `done`
    /// (each rings the torrent thread).
    pub(crate) fn new(name: &str, storage: Arc<Storage>, done: Rung<DiskDone>) -> DiskWriter {
        DiskWriter {
            name: name.to_string(),
            storage,
            done,
            running: None,
            abandoned: false,
            started: 0,
            no_new_thread: false,
        }
    }

    fn start(&mut self) -> std::io::Result<()> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let abandon = Arc::new(AtomicBool::new(false));
        let (stop, storage, done) = (abandon.clone(), self.storage.clone(), self.done.clone());
        let handle = std::thread::Builder::new()
            .name(format!("disk {}", self.name))
            .stack_size(WRITER_STACK)
            .spawn(move || run(storage, rx, done, stop))?;
        self.started += 1;
        self.running = Some(Running {
            jobs: tx,
            abandon,
            handle,
        });
        Ok(())
    }

    /// Queue a job (never blocks on the disk), starting the thread if it
    /// is not running. `false` if the torrent is removed. When no thread
    /// can be started (the system is out of threads), the job runs here,
    /// on the calling thread, and its completion is queued all the same:
    /// slower, but nothing is lost and the order holds (no thread means
    /// no job in flight).
    pub(crate) fn send(&mut self, job: DiskJob) -> bool {
        if self.abandoned {
            return false;
        }
        if self.running.is_none() {
            let started = if self.no_new_thread {
                false
            } else {
                match self.start() {
                    Ok(()) => true,
                    Err(e) => {
                        log::warn!(
                            "{}: cannot start a disk writer thread ({e}); writing on the torrent thread",
                            self.name
                        );
                        false
                    }
                }
            };
            if !started {
                let _ = self.done.send_lazy(perform(&self.storage, job));
                return true;
            }
        }
        match &self.running {
            Some(r) => r.jobs.send(job).is_ok(),
            None => false,
        }
    }

    /// From now on a job that finds no thread running runs on the calling
    /// thread (a torrent shutting down saves its resume data itself
    /// rather than start a thread for it: 10,000 torrents stopping at
    /// once would otherwise ask for 10,000 threads more).
    pub(crate) fn no_new_thread(&mut self) {
        self.no_new_thread = true;
    }

    /// Whether the thread is running.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// How many threads were started so far.
    #[cfg(test)]
    pub(crate) fn started(&self) -> u32 {
        self.started
    }

    /// End the thread (the next job starts a new one). Only when every
    /// job's completion is back: the thread is then waiting for work and
    /// ends at once.
    pub(crate) fn retire(&mut self) {
        if let Some(r) = self.running.take() {
            drop(r.jobs);
            let _ = r.handle.join();
        }
    }

    /// Let the queued jobs finish, then wait for the thread to end.
    pub(crate) fn finish(&mut self) {
        self.retire();
    }

    /// Drop the jobs not started and let the thread end in the background
    /// (a write in progress finishes; the files close when it is done).
    pub(crate) fn abandon(&mut self) {
        self.abandoned = true;
        if let Some(r) = self.running.take() {
            r.abandon.store(true, Ordering::SeqCst);
            drop(r.jobs); // the thread is detached
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        // A torrent thread that ends without `finish` (a panic) does not
        // wait on the disk either.
        if self.running.is_some() {
            self.abandon();
        }
    }
}

fn run(
    storage: Arc<Storage>,
    jobs: Receiver<DiskJob>,
    done: Rung<DiskDone>,
    abandon: Arc<AtomicBool>,
) {
    while let Ok(job) = jobs.recv() {
        if abandon.load(Ordering::SeqCst) {
            continue; // dropped unrun; the torrent is gone
        }
        // The torrent thread is gone (it dropped its receiver): nothing to
        // report, but the remaining jobs still run unless abandoned.
        let _ = done.send_lazy(perform(&storage, job));
    }
}

/// Run one job.
fn perform(storage: &Storage, job: DiskJob) -> DiskDone {
    match job {
        DiskJob::Piece {
            piece,
            offset,
            blocks,
        } => {
            let result = storage.write_blocks(offset, &blocks);
            DiskDone::Piece {
                piece,
                blocks,
                result,
            }
        }
        DiskJob::Block {
            block,
            offset,
            data,
        } => {
            let result = storage.write(offset, &data);
            DiskDone::Block {
                block,
                data,
                result,
            }
        }
        DiskJob::Barrier { piece } => DiskDone::Barrier { piece },
        DiskJob::SaveResume { path, resume } => DiskDone::Saved {
            result: save_resume(storage, path.as_deref(), *resume),
        },
        DiskJob::Probe { root, min_free } => DiskDone::Probed {
            room: has_room(&root, min_free),
        },
        DiskJob::WantFiles { priorities } => DiskDone::WantedFiles {
            result: storage.want_files(&priorities),
        },
    }
}

/// Sync, then write `resume` (stamped now) atomically.
fn save_resume(
    storage: &Storage,
    path: Option<&Path>,
    mut resume: ResumeData,
) -> Result<(), String> {
    storage.sync().map_err(|e| e.to_string())?;
    let Some(path) = path else {
        return Ok(());
    };
    resume.files = storage.stamps();
    resume.part_file = storage.part_stamp();
    crate::state::write_atomically(path, &resume.encode())
        .map_err(|e| format!("saving resume data to {}: {e}", path.display()))
}

/// Whether the disk under `root` may have room again: `statvfs` says at
/// least `min_free` bytes are free, or cannot tell.
pub(crate) fn has_room(root: &Path, min_free: u64) -> bool {
    // The torrent's directory may not exist yet: ask for the nearest one
    // that does.
    let Some(dir) = root.ancestors().find(|d| d.exists()) else {
        return true;
    };
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return true;
    };
    // The counts are `c_ulong`: 32 bits on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    free >= min_free
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::doorbell::Doorbell;
    use std::time::Duration;

    #[test]
    fn the_thread_runs_only_while_there_is_work() {
        let dir = std::env::temp_dir().join(format!("peer-writer-lazy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let info = crate::proto::metainfo::test_info(&[("w/a", 32, false)], 16);
        let storage = Arc::new(Storage::open(&dir, &info).unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut w = DiskWriter::new("test", storage.clone(), Rung::new(tx, Doorbell::new()));
        // No work yet: no thread.
        assert!(!w.is_running());
        assert_eq!(w.started(), 0);
        // A job starts it, and runs.
        let job = DiskJob::Block {
            block: BlockRef {
                index: 0,
                begin: 0,
                length: 16,
            },
            offset: 0,
            data: vec![7; 16],
        };
        assert!(w.send(job));
        assert!(w.is_running());
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            DiskDone::Block { result, .. } => result.unwrap(),
            _ => panic!("not a block completion"),
        }
        // Retired once idle; the next job starts another thread, in order.
        w.retire();
        assert!(!w.is_running());
        assert!(w.send(DiskJob::Barrier { piece: 1 }));
        assert_eq!(w.started(), 2);
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            DiskDone::Barrier { piece: 1 }
        ));
        let mut back = vec![0; 16];
        storage.read(0, &mut back).unwrap();
        assert_eq!(back, vec![7; 16]);
        // Shutting down: with no thread running, a job runs here.
        w.retire();
        w.no_new_thread();
        assert!(w.send(DiskJob::Barrier { piece: 3 }));
        assert!(!w.is_running());
        assert_eq!(w.started(), 2);
        assert!(matches!(
            rx.try_recv().unwrap(),
            DiskDone::Barrier { piece: 3 }
        ));
        // Abandoned (the torrent is removed): nothing runs any more.
        w.abandon();
        assert!(!w.send(DiskJob::Barrier { piece: 2 }));
        w.finish();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
