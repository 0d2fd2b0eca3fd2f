//! Moving a torrent's files to another directory ([`Storage::move_files`]),
//! for `Session::move_data`.

use super::{fs_err, io_err, safe_fs, Storage, StorageError};
use std::fs;
use std::path::Path;

/// Move one file: a rename, or across file systems a copy that keeps the
/// modification time (so the resume data still matches) and then the
/// removal of the original.
fn move_file(from: &Path, to: &Path) -> Result<(), StorageError> {
    match fs::rename(from, to) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() != Some(nix::libc::EXDEV) => {
            return Err(io_err(from, "move", e))
        }
        Err(_) => {}
    }
    let mtime = fs::metadata(from)
        .and_then(|m| m.modified())
        .map_err(|e| io_err(from, "move", e))?;
    fs::copy(from, to).map_err(|e| io_err(to, "copy", e))?;
    fs::File::options()
        .write(true)
        .open(to)
        .and_then(|f| f.set_modified(mtime))
        .map_err(|e| io_err(to, "copy", e))?;
    fs::remove_file(from).map_err(|e| io_err(from, "remove", e))
}

impl Storage {
    /// Move every file of the torrent that exists (and its part file) from
    /// the storage's root to the same places under `new_root`, creating
    /// directories as needed (no symlink followed below either root); the
    /// directories left empty at the old root are removed. Only while no
    /// one reads or writes this storage (the torrent thread has stopped);
    /// the storage is not usable afterwards: open a new one on `new_root`.
    /// A file already at the target is an error (nothing is overwritten).
    pub fn move_files(&self, new_root: &Path) -> Result<(), StorageError> {
        self.pool.close_storage(self.id);
        fs::create_dir_all(new_root).map_err(|e| io_err(new_root, "create", e))?;
        for f in self.files.iter().filter(|f| !f.pad) {
            if !safe_fs::check(&self.root, &f.path).map_err(fs_err)? {
                continue; // never created
            }
            // Paths are kept joined to the root.
            let rel = f.path.strip_prefix(&self.root).unwrap_or(&f.path);
            let to = new_root.join(rel);
            if let Some(parent) = to.parent() {
                safe_fs::create_dirs(new_root, parent).map_err(fs_err)?;
            }
            if to.symlink_metadata().is_ok() {
                return Err(io_err(
                    &to,
                    "move",
                    std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                ));
            }
            move_file(&self.root.join(rel), &to)?;
            if let Some(parent) = f.path.parent() {
                safe_fs::remove_empty_dirs(&self.root, parent);
            }
        }
        if let Some(p) = &self.part {
            let from = p.path();
            if from.exists() {
                if let Some(name) = from.file_name() {
                    move_file(from, &new_root.join(name))?;
                }
            }
        }
        Ok(())
    }
}
