//! Creating BitTorrent v2 and hybrid torrents (BEP 52, BEP 47 pad files).
//!
//! Every non-empty file starts a new piece. Each piece is cut into 16 KiB
//! blocks hashed with SHA-256; a file of more than one piece gets a piece
//! layer (one hash per piece, the root of its `piece length / 16 KiB`
//! leaves padded with zero leaves), and its `pieces root` is the root of
//! that layer padded to a power of two ([`merkle`]). A file of one piece has
//! no layer; its root is the tree over its own leaves.
//!
//! A hybrid torrent also carries the v1 view of the same bytes: in a
//! multi-file torrent every non-empty file whose length is not a multiple of
//! the piece length is followed by a pad file (`attr` `p`, path
//! `.pad/<length>`, the last file included), as libtorrent 2.0 writes them,
//! so each v1 piece is one v2 piece followed by zero bytes. A single-file
//! hybrid has no pad (its last v1 piece is short). Empty files have no root,
//! no piece and no pad.
//!
//! Hashing is spread over threads like the v1 creator: the pieces of all
//! files, in order, are cut into contiguous ranges, one per worker, read
//! with positional reads.

use super::{changed, int, io_err, key, CreateError, SourceFile, PROGRESS_INTERVAL, READ_BUF};
use crate::proto::bencode::OwnedValue;
use crate::proto::merkle::{self, Hash256, BLOCK_LEN};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One v2 piece: `len` bytes of file `file` from byte `start`.
#[derive(Debug, Clone, Copy)]
struct Unit {
    file: usize,
    start: u64,
    len: u64,
}

/// What hashing one v2 piece gives.
#[derive(Debug, Clone, Copy, Default)]
struct PieceHashes {
    /// The piece's node of the file's tree: its piece-layer hash, or for a
    /// file of one piece, the file's root.
    node: Hash256,
    /// SHA-1 of the v1 piece (the same bytes, zero-padded), for a hybrid.
    sha1: [u8; 20],
}

/// The hashes of a v2 or hybrid torrent.
pub(super) struct V2Hashes {
    /// Per file: its `pieces root` (`None` for an empty file).
    roots: Vec<Option<Hash256>>,
    /// Per file: its piece layer (empty for files of at most one piece).
    layers: Vec<Vec<Hash256>>,
    /// The v1 piece hashes (filled only for a hybrid).
    v1_pieces: Vec<[u8; 20]>,
}

/// Hash `files` as v2 pieces of `piece_length` with up to `threads` workers;
/// with `hybrid`, the v1 SHA-1 of each piece too (zero-padded to a whole
/// piece in a `multi_file` torrent, where pad files follow the files).
pub(super) fn hash(
    files: &[SourceFile],
    piece_length: u64,
    threads: usize,
    hybrid: bool,
    multi_file: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<V2Hashes, CreateError> {
    let units: Vec<Unit> = files
        .iter()
        .enumerate()
        .flat_map(|(file, f)| {
            (0..f.length.div_ceil(piece_length)).map(move |p| Unit {
                file,
                start: p * piece_length,
                len: (f.length - p * piece_length).min(piece_length),
            })
        })
        .collect();
    let total = files.iter().map(|f| f.length).sum::<u64>();
    let mut out = vec![PieceHashes::default(); units.len()];
    let per_worker = units.len().div_ceil(threads.clamp(1, units.len().max(1)));
    let shared = Shared {
        files,
        piece_length,
        hybrid,
        pad_v1: multi_file,
        done: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    };
    let results = std::thread::scope(|s| {
        let (alive_tx, alive_rx) = crossbeam_channel::bounded::<()>(0);
        let handles: Vec<_> = units
            .chunks(per_worker.max(1))
            .zip(out.chunks_mut(per_worker.max(1)))
            .map(|(units, out)| {
                let shared = &shared;
                let alive = alive_tx.clone();
                s.spawn(move || {
                    let r = shared.hash_units(units, out);
                    if r.is_err() {
                        shared.failed.store(true, Ordering::Relaxed);
                    }
                    drop(alive);
                    r
                })
            })
            .collect();
        drop(alive_tx);
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            alive_rx.recv_timeout(PROGRESS_INTERVAL)
        {
            progress(shared.done.load(Ordering::Relaxed), total);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<_>>()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    progress(total, total);
    Ok(assemble(files, piece_length, &units, &out, hybrid))
}

/// Per file, its root and layer from the hashes of its pieces.
fn assemble(
    files: &[SourceFile],
    piece_length: u64,
    units: &[Unit],
    out: &[PieceHashes],
    hybrid: bool,
) -> V2Hashes {
    let mut nodes: Vec<Vec<Hash256>> = vec![Vec::new(); files.len()];
    for (u, h) in units.iter().zip(out) {
        nodes[u.file].push(h.node);
    }
    let mut roots = Vec::with_capacity(files.len());
    let mut layers = Vec::with_capacity(files.len());
    for layer in nodes {
        match layer.as_slice() {
            [] => {
                roots.push(None);
                layers.push(Vec::new());
            }
            [root] => {
                roots.push(Some(*root));
                layers.push(Vec::new());
            }
            _ => {
                roots.push(Some(merkle::root_from_piece_layer(&layer, piece_length)));
                layers.push(layer);
            }
        }
    }
    let v1_pieces = if hybrid {
        out.iter().map(|h| h.sha1).collect()
    } else {
        Vec::new()
    };
    V2Hashes {
        roots,
        layers,
        v1_pieces,
    }
}

/// What all hashing workers share.
struct Shared<'a> {
    files: &'a [SourceFile],
    piece_length: u64,
    hybrid: bool,
    /// Whether a v1 piece is padded with zeros to a whole piece (every v1
    /// piece of a multi-file hybrid: pad files follow each file).
    pad_v1: bool,
    done: AtomicU64,
    failed: AtomicBool,
}

impl Shared<'_> {
    fn hash_units(&self, units: &[Unit], out: &mut [PieceHashes]) -> Result<(), CreateError> {
        let mut open: Option<(usize, File)> = None;
        let mut buf = vec![0u8; READ_BUF];
        let per_piece = usize::try_from(self.piece_length / BLOCK_LEN).unwrap_or(1);
        let mut leaves: Vec<Hash256> = Vec::with_capacity(per_piece);
        for (u, slot) in units.iter().zip(out) {
            if self.failed.load(Ordering::Relaxed) {
                return Ok(()); // another worker's error is reported instead
            }
            let f = &self.files[u.file];
            let file = match &mut open {
                Some((i, file)) if *i == u.file => file,
                slot => {
                    let file = File::open(&f.disk_path).map_err(io_err(&f.disk_path))?;
                    &mut slot.insert((u.file, file)).1
                }
            };
            leaves.clear();
            let mut sha1 = sha1_smol::Sha1::new();
            let mut pos = 0u64;
            while pos < u.len {
                // READ_BUF is a multiple of 16 KiB: blocks never straddle reads.
                let want = usize::try_from(u.len - pos).map_or(READ_BUF, |r| r.min(READ_BUF));
                let chunk = &mut buf[..want];
                match file.read_exact_at(chunk, u.start + pos) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Err(changed(f))
                    }
                    Err(e) => return Err(io_err(&f.disk_path)(e)),
                }
                leaves.extend(chunk.chunks(BLOCK_LEN as usize).map(merkle::sha256));
                if self.hybrid {
                    sha1.update(chunk);
                }
                pos += want as u64;
                self.done.fetch_add(want as u64, Ordering::Relaxed);
            }
            if self.hybrid && self.pad_v1 {
                let zeros = [0u8; 4096];
                let mut left = self.piece_length - u.len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    sha1.update(&zeros[..n]);
                    left -= n as u64;
                }
            }
            slot.sha1 = sha1.digest().bytes();
            slot.node = if f.length <= self.piece_length {
                // The whole file: its tree is as wide as its own blocks.
                merkle::root_of_layer(&leaves, 0)
            } else {
                leaves.resize(per_piece, [0; 32]);
                merkle::root_of_layer(&leaves, 0)
            };
        }
        Ok(())
    }
}

/// The `info` dictionary of a v2 (`hybrid` false) or hybrid torrent.
pub(super) fn info_dict(
    name: &str,
    piece_length: u64,
    files: &[SourceFile],
    multi_file: bool,
    private: bool,
    h: &V2Hashes,
    hybrid: bool,
) -> OwnedValue {
    let tree = if multi_file {
        file_tree(files, &h.roots, 0)
    } else {
        let leaf = file_leaf(files.first().map_or(0, |f| f.length), h.roots.first());
        OwnedValue::Dict(vec![(key(name), leaf)])
    };
    let mut d = vec![
        (key("file tree"), tree),
        (key("meta version"), OwnedValue::Int(2)),
        (key("name"), OwnedValue::bytes(name)),
        (key("piece length"), int(piece_length)),
    ];
    if hybrid {
        d.push((key("pieces"), OwnedValue::Bytes(h.v1_pieces.concat())));
        if multi_file {
            d.push((
                key("files"),
                OwnedValue::List(v1_files(files, piece_length)),
            ));
        } else {
            d.push((key("length"), int(files.iter().map(|f| f.length).sum())));
        }
    }
    if private {
        d.push((key("private"), OwnedValue::Int(1)));
    }
    OwnedValue::Dict(d)
}

/// `{"": {"length": N, "pieces root": R}}` (no root for an empty file).
fn file_leaf(length: u64, root: Option<&Option<Hash256>>) -> OwnedValue {
    let mut entry = vec![(key("length"), int(length))];
    if let Some(Some(r)) = root {
        entry.push((key("pieces root"), OwnedValue::Bytes(r.to_vec())));
    }
    OwnedValue::Dict(vec![(Vec::new(), OwnedValue::Dict(entry))])
}

/// The nested `file tree` of `files` (sorted by path) from component `depth`.
fn file_tree(files: &[SourceFile], roots: &[Option<Hash256>], depth: usize) -> OwnedValue {
    let mut d: Vec<(Vec<u8>, OwnedValue)> = Vec::new();
    let mut i = 0;
    while i < files.len() {
        let Some(name) = files[i].rel.get(depth) else {
            i += 1; // not reached: a file's path is longer than its depth
            continue;
        };
        let end = i + files[i..]
            .iter()
            .take_while(|f| f.rel.get(depth) == Some(name))
            .count();
        let node = if files[i].rel.len() == depth + 1 {
            file_leaf(files[i].length, roots.get(i))
        } else {
            file_tree(&files[i..end], &roots[i..end], depth + 1)
        };
        d.push((key(name), node));
        i = end;
    }
    OwnedValue::Dict(d)
}

/// The v1 `files` list of a hybrid: each file, then its pad file.
fn v1_files(files: &[SourceFile], piece_length: u64) -> Vec<OwnedValue> {
    let mut list = Vec::new();
    for f in files {
        list.push(super::file_entry(f));
        let tail = f.length % piece_length;
        if tail != 0 {
            let pad = piece_length - tail;
            let path = vec![
                OwnedValue::bytes(".pad"),
                OwnedValue::bytes(pad.to_string()),
            ];
            list.push(OwnedValue::Dict(vec![
                (key("attr"), OwnedValue::bytes("p")),
                (key("length"), int(pad)),
                (key("path"), OwnedValue::List(path)),
            ]));
        }
    }
    list
}

/// The top-level `piece layers`: each file root with a layer, once (files
/// with the same content share a root).
pub(super) fn piece_layers(h: &V2Hashes) -> OwnedValue {
    let mut layers: BTreeMap<Hash256, &[Hash256]> = BTreeMap::new();
    for (root, layer) in h.roots.iter().zip(&h.layers) {
        if let (Some(root), false) = (root, layer.is_empty()) {
            layers.insert(*root, layer);
        }
    }
    let d = layers
        .into_iter()
        .map(|(root, layer)| (root.to_vec(), OwnedValue::Bytes(layer.concat())))
        .collect();
    OwnedValue::Dict(d)
}
