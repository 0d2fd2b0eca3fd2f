//! A bounded pool of open file handles, least recently used closed first
//! (libtorrent's file pool).
//!
//! A torrent with thousands of files must not hold a descriptor per file:
//! the usual soft limit is 1024 and sockets need descriptors too. Every
//! `Storage` of the process shares one pool,
//! keyed by (storage id, file index); handles are `Arc<File>`, so a handle
//! evicted while a reader still uses it is closed when that reader is done.
//! The capacity is derived from `RLIMIT_NOFILE` at first use: a quarter of
//! the soft limit, at most [`MAX_OPEN_FILES`], at least 8.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Most files the pool keeps open at once.
pub const MAX_OPEN_FILES: usize = 256;

/// (storage id, file index).
pub type FileKey = (u64, usize);

struct Entry {
    file: Arc<File>,
    writable: bool,
    used: u64,
}

struct Inner {
    open: HashMap<FileKey, Entry>,
    clock: u64,
}

/// The pool.
pub struct FilePool {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// A fresh id for a storage's keys.
pub fn next_storage_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The soft `RLIMIT_NOFILE` of the process, if it can be read.
pub fn nofile_soft_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (call once at start).
/// Returns the new soft limit.
pub fn raise_nofile_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// The pool's capacity for a soft descriptor limit.
pub fn capacity_for(soft_limit: Option<u64>) -> usize {
    match soft_limit {
        Some(l) => ((l / 4) as usize).clamp(8, MAX_OPEN_FILES),
        None => 64,
    }
}

/// The process-wide pool.
pub fn global() -> &'static FilePool {
    static POOL: OnceLock<FilePool> = OnceLock::new();
    POOL.get_or_init(|| FilePool::new(capacity_for(nofile_soft_limit())))
}

impl FilePool {
    /// A pool of at most `capacity` open files.
    pub fn new(capacity: usize) -> FilePool {
        FilePool {
            inner: Mutex::new(Inner {
                open: HashMap::new(),
                clock: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    /// The capacity.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files open now.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn len(&self) -> usize {
        self.inner.lock().open.len()
    }

    /// Whether no file is open.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The handle for `key`, opening it with `open` if it is not in the pool
    /// (or is there read-only and `write` is asked). `open` returns `None`
    /// for a file that does not exist (nothing is cached then) and says
    /// whether the handle is writable. The pool lock is not held while
    /// `open` runs.
    pub fn get<E>(
        &self,
        key: FileKey,
        write: bool,
        open: impl FnOnce() -> Result<Option<(File, bool)>, E>,
    ) -> Result<Option<(Arc<File>, bool)>, E> {
        {
            let mut g = self.inner.lock();
            g.clock += 1;
            let now = g.clock;
            if let Some(e) = g.open.get_mut(&key) {
                if e.writable || !write {
                    e.used = now;
                    return Ok(Some((e.file.clone(), e.writable)));
                }
            }
        }
        let Some((file, writable)) = open()? else {
            return Ok(None);
        };
        let file = Arc::new(file);
        // Handles that leave the pool are closed after the lock is released.
        let mut evicted = Vec::new();
        let mut g = self.inner.lock();
        g.clock += 1;
        let now = g.clock;
        if !g.open.contains_key(&key) && g.open.len() >= self.capacity {
            // Least recently used first.
            if let Some(old) = g.open.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) {
                evicted.extend(g.open.remove(&old));
            }
        }
        evicted.extend(g.open.insert(
            key,
            Entry {
                file: file.clone(),
                writable,
                used: now,
            },
        ));
        drop(g);
        drop(evicted);
        Ok(Some((file, writable)))
    }

    /// The handle for `key` if it is open (no open, no LRU update).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn peek(&self, key: FileKey) -> Option<Arc<File>> {
        self.inner.lock().open.get(&key).map(|e| e.file.clone())
    }

    /// Close every file of storage `id`. The handles are taken out under
    /// the lock and closed after it is released: a `close` that waits on a
    /// slow disk (NFS, FUSE, a USB drive flushing) holds up no other
    /// torrent's file access.
    pub fn close_storage(&self, id: u64) {
        let closing: Vec<Entry> = {
            let mut g = self.inner.lock();
            let keys: Vec<FileKey> = g.open.keys().filter(|k| k.0 == id).copied().collect();
            keys.iter().filter_map(|k| g.open.remove(k)).collect()
        };
        drop(closing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_is_bounded_and_evicts_oldest() {
        let dir = std::env::temp_dir().join(format!("peer-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = FilePool::new(3);
        let opens = std::cell::Cell::new(0);
        let get = |i: usize| {
            pool.get::<std::io::Error>((1, i), true, || {
                opens.set(opens.get() + 1);
                let f = File::create(dir.join(format!("f{i}")))?;
                Ok(Some((f, true)))
            })
            .unwrap()
            .unwrap()
        };
        for i in 0..3 {
            get(i);
        }
        assert_eq!(opens.get(), 3);
        get(0); // 0 is now the most recent; 1 is the oldest
        assert_eq!(opens.get(), 3);
        get(3);
        assert_eq!(pool.len(), 3);
        assert!(pool.peek((1, 1)).is_none());
        assert!(pool.peek((1, 0)).is_some());
        get(1);
        assert_eq!(opens.get(), 5);
        assert!(pool.peek((1, 2)).is_none());
        pool.close_storage(1);
        assert!(pool.is_empty());
        let missing = pool
            .get::<std::io::Error>((2, 0), false, || Ok(None))
            .unwrap();
        assert!(missing.is_none() && pool.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn capacity_follows_the_limit() {
        assert_eq!(capacity_for(Some(1024)), 256);
        assert_eq!(capacity_for(Some(256)), 64);
        assert_eq!(capacity_for(Some(20)), 8);
        assert_eq!(capacity_for(Some(1 << 20)), MAX_OPEN_FILES);
    }
}
