//! What the session keeps on disk between runs.

pub(crate) mod dht_table;
pub(crate) mod renames;
pub(crate) mod torrents;

/// Write `data` to `path` so that a crash leaves either the old file or the
/// new one: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    // `<name>.tmp` next to each target: writers of different files (the
    // torrent list, resume data) never share a temporary file.
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
