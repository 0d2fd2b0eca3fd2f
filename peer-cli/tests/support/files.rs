//! Scratch directories, test data, and byte-for-byte comparison of trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch directory, removed on drop unless `KEEP_TMP=1`.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh empty directory under the system temp dir, named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "peer-interop-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TMP").is_some() {
            eprintln!("KEEP_TMP: leaving {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Write a file, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small multi-file directory `ROOT/NAME/...` (odd sizes, a nested dir, a 1-byte
/// file) and returns `ROOT/NAME`. Total about 600 KiB.
pub fn make_multi_file_dir(root: &Path, name: &str) -> PathBuf {
    let top = root.join(name);
    write_file(&top.join("alpha.bin"), &pseudo_random(300_001, 1));
    write_file(
        &top.join("docs/readme.txt"),
        b"hello from the peer interop tests\n",
    );
    write_file(&top.join("docs/deep/beta.dat"), &pseudo_random(262_144, 2));
    write_file(&top.join("docs/deep/one"), b"x");
    write_file(&top.join("gamma.bin"), &pseudo_random(54_321, 3));
    top
}

/// A single file `ROOT/NAME` of `len` pseudo-random bytes; returns its path.
pub fn make_single_file(root: &Path, name: &str, len: usize) -> PathBuf {
    let p = root.join(name);
    write_file(&p, &pseudo_random(len, 42));
    p
}

/// Every regular file under `dir`, relative path -> bytes.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let rd =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(base)
                    .expect("under base")
                    .to_string_lossy()
                    .replace('\\', "/");
                let data =
                    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.insert(rel, data);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Assert that the file or directory `got` has exactly the bytes of `want`
/// (every file present, same length, same content; no extra files).
pub fn assert_same_data(want: &Path, got: &Path) {
    if want.is_file() {
        let a = std::fs::read(want).unwrap_or_else(|e| panic!("read {}: {e}", want.display()));
        let b = std::fs::read(got).unwrap_or_else(|e| panic!("read {}: {e}", got.display()));
        assert_eq!(a.len(), b.len(), "length of {}", got.display());
        assert!(a == b, "{} differs from {}", got.display(), want.display());
        return;
    }
    let a = read_tree(want);
    let b = read_tree(got);
    let names_a: Vec<_> = a.keys().collect();
    let names_b: Vec<_> = b.keys().collect();
    assert_eq!(
        names_a,
        names_b,
        "file lists of {} and {}",
        want.display(),
        got.display()
    );
    for (k, va) in &a {
        let vb = &b[k];
        assert_eq!(va.len(), vb.len(), "length of {k}");
        assert!(va == vb, "content of {k} differs");
    }
}
