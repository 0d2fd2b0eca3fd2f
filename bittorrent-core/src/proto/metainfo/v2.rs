//! BitTorrent v2 metainfo (BEP 52) and hybrid torrents (BEP 52's upgrade
//! path with BEP 47 pad files).
//!
//! A v2 info dictionary has `meta version` 2 and a `file tree`: nested
//! dictionaries keyed by path element, each file a dictionary under the
//! empty key holding `length` and, when non-empty, `pieces root` (the root
//! of the file's SHA-256 merkle tree, see [`crate::proto::merkle`]). Outside
//! the info dictionary, `piece layers` maps each root to the file's piece
//! layer; each layer is checked here against its root. A hybrid also has
//! v1 `pieces` and `files` with pad files aligning every file to a piece;
//! both views must list the same files, sizes and order.
//!
//! Bounded against hostile input: nesting by the decoder's depth limit
//! (100), file sizes by [`MAX_V2_FILE_LENGTH`], the piece count by
//! [`MAX_PIECES`](super::MAX_PIECES), paths by the limits of
//! [`crate::proto::safe_path`], piece layers by their exact expected size.

use super::{FileEntry, FilePath, Info, InfoHash, MResult, MetainfoError};
use crate::proto::bencode::{Dict, Value};
use crate::proto::merkle::{self, Hash256};
use crate::proto::safe_path::{UniquePaths, MAX_PATH_BYTES, MAX_PATH_DEPTH};
use std::fmt;

/// Largest v2 file: 2^43 bytes (8 TiB), 2^29 leaves, so that a file's
/// whole merkle tree (2^30 - 1 nodes) is indexed by a 32-bit integer, as in
/// libtorrent. The corpus's `v2_large_file` (2^44 - 16 KiB) is refused.
pub const MAX_V2_FILE_LENGTH: u64 = 1 << 43;

/// The SHA-256 info-hash of a v2 or hybrid torrent. `Display` is 64
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHashV2(pub [u8; 32]);

impl InfoHashV2 {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The first 20 bytes: the form trackers, the DHT and the handshake use.
    pub fn truncated(&self) -> InfoHash {
        let mut h = [0u8; 20];
        h.copy_from_slice(&self.0[..20]);
        InfoHash(h)
    }
    /// Parse 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<InfoHashV2> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(InfoHashV2(out))
    }
    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({})", self.to_hex())
    }
}

/// Which protocol versions a torrent's info dictionary serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// BEP 3 only (`pieces`).
    V1,
    /// BEP 52 only (`file tree`, `meta version` 2).
    V2,
    /// Both in one info dictionary.
    Hybrid,
}

impl Format {
    /// `v1`, `v2` or `hybrid`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::V2 => "v2",
            Format::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file of the `file tree`, in tree order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2File {
    /// Sanitised path (the torrent's name first in a multi-file torrent).
    pub path: FilePath,
    /// Length in bytes (0 for symlinks).
    pub length: u64,
    /// The merkle root (absent for empty files and symlinks).
    pub pieces_root: Option<Hash256>,
    /// Index of the file's first piece in the v2 piece space (each
    /// non-empty file starts on a piece boundary).
    pub first_piece: u64,
    /// `attr` has `l`.
    pub symlink: bool,
    /// `attr` has `x`.
    pub executable: bool,
}

/// The v2 half of a torrent: the file tree and the piece layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Info {
    /// Bytes per piece (a power of two, at least 16 KiB).
    pub piece_length: u64,
    /// Files in tree order.
    pub files: Vec<V2File>,
    /// Pieces of all files (each file's last piece may be short).
    pub num_pieces: u64,
    /// Each file's piece layer, checked against its root; `None` for a
    /// file that fits in one piece (it has none) or whose layer is not
    /// known yet (see [`V2Info::missing_layers`]).
    pub piece_layers: Vec<Option<Vec<Hash256>>>,
}

impl V2Info {
    /// Whether file `index` needs a piece layer (it spans several pieces).
    pub fn needs_layer(&self, index: usize) -> bool {
        self.files
            .get(index)
            .is_some_and(|f| f.pieces_root.is_some() && f.length > self.piece_length)
    }
    /// Files that need a piece layer the torrent did not carry (they are
    /// to be fetched from peers, as after a magnet link).
    pub fn missing_layers(&self) -> usize {
        (0..self.files.len())
            .filter(|&i| self.needs_layer(i) && self.piece_layers[i].is_none())
            .count()
    }

    /// What v2 says piece `piece` must hash to, if known: the piece's
    /// node of its file's tree (its piece-layer hash, or the file's root
    /// for a file of one piece).
    pub fn piece_check(&self, piece: u64) -> Option<PieceCheck> {
        let after = self.files.partition_point(|f| f.first_piece <= piece);
        let f = self.files.get(after.checked_sub(1)?)?;
        let root = f.pieces_root?;
        let j = piece - f.first_piece;
        let start = j.checked_mul(self.piece_length)?;
        if start >= f.length {
            return None;
        }
        let real_len = (f.length - start).min(self.piece_length);
        if f.length <= self.piece_length {
            return Some(PieceCheck {
                expected: root,
                real_len,
                whole_file: true,
                piece_length: self.piece_length,
            });
        }
        let layer = self.piece_layers.get(after - 1)?.as_ref()?;
        Some(PieceCheck {
            expected: *layer.get(usize::try_from(j).ok()?)?,
            real_len,
            whole_file: false,
            piece_length: self.piece_length,
        })
    }
}

/// The v2 check of one piece ([`V2Info::piece_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceCheck {
    /// The hash the piece's bytes must give.
    pub expected: Hash256,
    /// Bytes of the piece that are file data (the rest, in a hybrid's v1
    /// piece, is a pad file's zeros).
    pub real_len: u64,
    /// The file fits in this one piece: `expected` is its root, the tree
    /// over its own blocks (else the subtree of `piece length / 16 KiB`
    /// leaves, zero-padded).
    pub whole_file: bool,
    /// The torrent's piece length.
    pub piece_length: u64,
}

impl PieceCheck {
    /// Whether `data` (the piece's bytes, at least `real_len` of them, in
    /// 16 KiB-aligned chunks: whole 16 KiB blocks, or one buffer) passes.
    pub fn verify<'a>(&self, chunks: impl IntoIterator<Item = &'a [u8]>) -> bool {
        use crate::proto::merkle::{root_of_layer, sha256, BLOCK_LEN};
        let mut leaves = Vec::new();
        let mut left = self.real_len;
        for c in chunks {
            for b in c.chunks(BLOCK_LEN as usize) {
                if left == 0 {
                    break;
                }
                let n = usize::try_from(left).map_or(b.len(), |l| l.min(b.len()));
                leaves.push(sha256(&b[..n]));
                left -= n as u64;
            }
        }
        if left != 0 {
            return false;
        }
        if !self.whole_file {
            let per_piece = usize::try_from(self.piece_length / BLOCK_LEN).unwrap_or(1);
            leaves.resize(per_piece.max(leaves.len()), [0; 32]);
        }
        root_of_layer(&leaves, 0) == self.expected
    }
}

/// Why a `piece layers` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceLayerError {
    /// `piece layers` is not a dictionary.
    NotADict,
    /// A layer is not a byte string.
    NotAString,
    /// A layer's length (given) is not a multiple of 32.
    NotMultipleOf32(usize),
    /// A key (hex) is the root of no file.
    UnknownRoot(String),
    /// A layer has the wrong number of hashes for its file.
    WrongCount {
        /// The file's path.
        file: String,
        /// Pieces of the file.
        expected: u64,
        /// Hashes in the layer.
        actual: u64,
    },
    /// The layer does not hash up to the file's `pieces root`.
    RootMismatch {
        /// The file's path.
        file: String,
    },
}

impl fmt::Display for PieceLayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PieceLayerError as E;
        match self {
            E::NotADict => f.write_str("not a dictionary"),
            E::NotAString => f.write_str("a layer is not a string"),
            E::NotMultipleOf32(n) => write!(f, "a layer of {n} bytes, not a multiple of 32"),
            E::UnknownRoot(h) => write!(f, "{h} is the root of no file"),
            E::WrongCount {
                file,
                expected,
                actual,
            } => write!(
                f,
                "{actual} hashes for {file:?}, which has {expected} pieces"
            ),
            E::RootMismatch { file } => {
                write!(
                    f,
                    "the layer of {file:?} does not hash up to its pieces root"
                )
            }
        }
    }
}

/// How the v1 and v2 views of a hybrid differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HybridMismatch {
    /// Different numbers of (non-pad) files.
    FileCount {
        /// Files in `files` (pad files left out).
        v1: usize,
        /// Files in `file tree`.
        v2: usize,
    },
    /// File `index` has another path.
    Path {
        /// Index among the non-pad files.
        index: usize,
        /// The v1 path.
        v1: String,
        /// The v2 path.
        v2: String,
    },
    /// File `index` has another length.
    Length {
        /// Index among the non-pad files.
        index: usize,
        /// The v1 length.
        v1: u64,
        /// The v2 length.
        v2: u64,
    },
    /// File `index` does not start where its v2 piece starts (the pad
    /// files do not align it).
    Misaligned {
        /// Index among the non-pad files.
        index: usize,
        /// Its offset in the v1 byte stream.
        offset: u64,
    },
    /// The two views have different piece counts.
    PieceCount {
        /// Hashes in `pieces`.
        v1: u64,
        /// Pieces of the file tree.
        v2: u64,
    },
}

impl fmt::Display for HybridMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HybridMismatch as M;
        match self {
            M::FileCount { v1, v2 } => write!(f, "{v1} files in v1, {v2} in v2"),
            M::Path { index, v1, v2 } => write!(f, "file #{index} is {v1:?} in v1, {v2:?} in v2"),
            M::Length { index, v1, v2 } => {
                write!(f, "file #{index} is {v1} bytes in v1, {v2} in v2")
            }
            M::Misaligned { index, offset } => write!(
                f,
                "file #{index} starts at byte {offset}, not at its v2 piece (pad files wrong)"
            ),
            M::PieceCount { v1, v2 } => write!(f, "{v1} pieces in v1, {v2} in v2"),
        }
    }
}

/// A v2 info dictionary: `meta version` 2 or a `file tree`.
pub(super) fn is_v2(d: &Dict<'_>) -> bool {
    d.get(b"meta version").is_some() || d.get(b"file tree").is_some()
}

/// The checks BEP 52 puts first: the version, then canonical bencoding.
pub(super) fn check_version(d: &Dict<'_>) -> MResult<()> {
    match d.get(b"meta version") {
        None => return Err(MetainfoError::MissingKey("meta version")),
        Some(v) => match v.as_int() {
            Some(2) => {}
            Some(n) => return Err(MetainfoError::UnsupportedMetaVersion(n)),
            None => return Err(super::wrong("meta version", "an integer")),
        },
    }
    crate::proto::bencode::decode_strict(d.raw).map_err(MetainfoError::NotCanonical)?;
    Ok(())
}

/// The v2 piece length: a power of two, at least 16 KiB, at most
/// [`MAX_PIECE_LENGTH`](super::MAX_PIECE_LENGTH).
pub(super) fn piece_length(d: &Dict<'_>) -> MResult<u64> {
    let n = super::parse_piece_length(d)?;
    if n < merkle::BLOCK_LEN || !n.is_power_of_two() {
        return Err(MetainfoError::V2PieceLength(n));
    }
    Ok(n)
}

/// A file found in the tree: its raw path elements and its `""` dictionary.
struct Leaf<'a, 'd> {
    raw: Vec<&'a [u8]>,
    props: &'d Dict<'a>,
}

/// Parse the `file tree`. `name` is the sanitised torrent name; `multi`
/// says whether paths are prefixed with it (the v1 view's choice for a
/// hybrid; for a v2-only torrent, unless the tree is one file at its root).
pub(super) fn parse_file_tree(d: &Dict<'_>, name: &str, multi: Option<bool>) -> MResult<V2Info> {
    let piece_length = piece_length(d)?;
    let tree = match d.get(b"file tree") {
        None => return Err(MetainfoError::MissingKey("file tree")),
        Some(v) => v
            .as_dict()
            .ok_or(super::wrong("file tree", "a dictionary"))?,
    };
    let mut leaves = Vec::new();
    walk(tree, &mut Vec::new(), &mut leaves)?;
    if leaves.is_empty() {
        return Err(MetainfoError::BadFileTree("it holds no file"));
    }
    let single_at_root = leaves.len() == 1 && leaves[0].raw.len() == 1;
    let multi = multi.unwrap_or(!single_at_root);
    let mut unique = UniquePaths::new();
    let mut files = Vec::with_capacity(leaves.len());
    let mut num_pieces = 0u64;
    let mut total = 0u64;
    for leaf in &leaves {
        let lossy = || {
            leaf.raw
                .iter()
                .map(|e| String::from_utf8_lossy(e))
                .collect::<Vec<_>>()
                .join("/")
        };
        let in_file = |e| MetainfoError::InFileTree {
            path: lossy(),
            error: Box::new(e),
        };
        let mut file = parse_leaf(leaf, name, multi, &mut unique).map_err(in_file)?;
        file.first_piece = num_pieces;
        num_pieces = num_pieces.saturating_add(file.length.div_ceil(piece_length));
        if num_pieces > super::MAX_PIECES {
            return Err(MetainfoError::TooManyPieces(num_pieces));
        }
        total = total
            .checked_add(file.length)
            .ok_or(MetainfoError::LengthOverflow)?;
        files.push(file);
    }
    if total == 0 {
        return Err(MetainfoError::ZeroTotalLength);
    }
    let piece_layers = vec![None; files.len()];
    Ok(V2Info {
        piece_length,
        files,
        num_pieces,
        piece_layers,
    })
}

/// Collect the files under `dir`, depth first in key order. Recursion is
/// bounded by the decoder's nesting limit.
fn walk<'a, 'd>(
    dir: &'d Dict<'a>,
    path: &mut Vec<&'a [u8]>,
    out: &mut Vec<Leaf<'a, 'd>>,
) -> MResult<()> {
    for (key, value) in &dir.entries {
        if key.is_empty() {
            return Err(if path.is_empty() && value.get(b"length").is_some() {
                MetainfoError::BadFileTree("the root is a file")
            } else {
                MetainfoError::EmptyFileName
            });
        }
        let node = value
            .as_dict()
            .ok_or(MetainfoError::BadFileTree("an entry is not a dictionary"))?;
        if path.len() >= MAX_PATH_DEPTH {
            return Err(MetainfoError::PathTooDeep(path.len() + 1));
        }
        path.push(key);
        match node.get(b"") {
            Some(props) => {
                if node.entries.len() != 1 {
                    return Err(MetainfoError::BadFileTree("a file has siblings"));
                }
                let props = props
                    .as_dict()
                    .ok_or(MetainfoError::BadFileTree("a file is not a dictionary"))?;
                out.push(Leaf {
                    raw: path.clone(),
                    props,
                });
            }
            None => walk(node, path, out)?,
        }
        path.pop();
    }
    Ok(())
}

/// One file's `""` dictionary.
fn parse_leaf(
    leaf: &Leaf<'_, '_>,
    name: &str,
    multi: bool,
    unique: &mut UniquePaths,
) -> MResult<V2File> {
    let d = leaf.props;
    let attr = super::opt_bytes(d, "attr")?.unwrap_or(b"");
    if attr.contains(&b'p') {
        return Err(MetainfoError::PadFileInV2);
    }
    let symlink = attr.contains(&b'l');
    let length = super::length_of(super::req_int(d, "length")?)?;
    if length > MAX_V2_FILE_LENGTH {
        return Err(MetainfoError::V2FileTooLarge(length));
    }
    if symlink && d.get(b"symlink path").and_then(Value::as_list).is_none() {
        return Err(MetainfoError::MissingKey("symlink path"));
    }
    let length = if symlink { 0 } else { length };
    let pieces_root = match (length, super::opt_bytes(d, "pieces root")?) {
        (0, _) => None,
        (_, None) => return Err(MetainfoError::MissingPiecesRoot),
        (_, Some(r)) if r.len() != 32 => return Err(MetainfoError::BadPiecesRoot(r.len())),
        (_, Some(r)) if r.iter().all(|&b| b == 0) => return Err(MetainfoError::ZeroPiecesRoot),
        (_, Some(r)) => {
            let mut h = [0u8; 32];
            h.copy_from_slice(r);
            Some(h)
        }
    };
    if leaf.raw.iter().any(|e| e.contains(&0)) {
        return Err(MetainfoError::NulInName("file tree"));
    }
    let mut path = Vec::with_capacity(leaf.raw.len() + 1);
    if multi {
        path.push(name.to_string());
    }
    path.extend(crate::proto::safe_path::sanitize_path(
        leaf.raw.iter().copied(),
    ));
    let path = unique.insert(path);
    let bytes = path.iter().map(|e| e.len() + 1).sum::<usize>() - 1;
    if bytes > MAX_PATH_BYTES {
        return Err(MetainfoError::PathTooLong(bytes));
    }
    Ok(V2File {
        path: path.into(),
        length,
        pieces_root,
        first_piece: 0,
        symlink,
        executable: attr.contains(&b'x'),
    })
}

/// Read `piece layers` (outside the info dictionary) into `v2`, checking
/// every layer against its file's root. An absent key leaves the layers
/// to be fetched from peers.
pub(super) fn parse_piece_layers(v2: &mut V2Info, layers: Option<&Value<'_>>) -> MResult<()> {
    let Some(layers) = layers else {
        return Ok(());
    };
    let bad = MetainfoError::PieceLayer;
    let layers = layers.as_dict().ok_or(bad(PieceLayerError::NotADict))?;
    for (key, value) in &layers.entries {
        let value = value.as_bytes().ok_or(bad(PieceLayerError::NotAString))?;
        if value.len() % 32 != 0 {
            return Err(bad(PieceLayerError::NotMultipleOf32(value.len())));
        }
        let owners: Vec<usize> = (0..v2.files.len())
            .filter(|&i| v2.files[i].pieces_root.is_some_and(|r| r[..] == key[..]))
            .collect();
        if owners.is_empty() {
            return Err(bad(PieceLayerError::UnknownRoot(hex(key))));
        }
        for i in owners {
            if !v2.needs_layer(i) {
                continue; // a file of one piece: its root is its only hash
            }
            let file = &v2.files[i];
            let expected = file.length.div_ceil(v2.piece_length);
            let actual = (value.len() / 32) as u64;
            if expected != actual {
                return Err(bad(PieceLayerError::WrongCount {
                    file: file.path.to_string(),
                    expected,
                    actual,
                }));
            }
            let layer: Vec<Hash256> = value
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect();
            if Some(merkle::root_from_piece_layer(&layer, v2.piece_length)) != file.pieces_root {
                return Err(bad(PieceLayerError::RootMismatch {
                    file: file.path.to_string(),
                }));
            }
            v2.piece_layers[i] = Some(layer);
        }
    }
    Ok(())
}

/// The two halves of a hybrid must agree: the same files (pad files left
/// out) with the same paths and sizes in the same order, each non-empty
/// file starting at its v2 piece, and the same number of pieces.
pub(super) fn check_hybrid(v1: &Info, v2: &V2Info) -> MResult<()> {
    let bad = |m| Err(MetainfoError::HybridMismatch(m));
    let real: Vec<&FileEntry> = v1.files.iter().filter(|f| !f.pad).collect();
    if real.len() != v2.files.len() {
        return bad(HybridMismatch::FileCount {
            v1: real.len(),
            v2: v2.files.len(),
        });
    }
    for (index, (a, b)) in real.iter().zip(&v2.files).enumerate() {
        if a.path != b.path {
            return bad(HybridMismatch::Path {
                index,
                v1: a.path.to_string(),
                v2: b.path.to_string(),
            });
        }
        if a.length != b.length {
            return bad(HybridMismatch::Length {
                index,
                v1: a.length,
                v2: b.length,
            });
        }
        if b.length > 0 && a.offset != b.first_piece.saturating_mul(v2.piece_length) {
            return bad(HybridMismatch::Misaligned {
                index,
                offset: a.offset,
            });
        }
    }
    let v1_pieces = v1.pieces.len() as u64;
    if v1_pieces != v2.num_pieces || v1.piece_length != v2.piece_length {
        return bad(HybridMismatch::PieceCount {
            v1: v1_pieces,
            v2: v2.num_pieces,
        });
    }
    Ok(())
}

/// The v1-shaped view of a v2-only torrent, for the parts of the program
/// that list files: the files end to end (no padding), no piece hashes
/// (SHA-1 pieces do not exist). The engine transfers the piece-aligned
/// view of [`aligned_view`] instead.
pub(super) fn v1_view(name: String, v2: &V2Info, private: bool) -> Info {
    let mut offset = 0u64;
    let files: Vec<FileEntry> = v2
        .files
        .iter()
        .map(|f| {
            let e = FileEntry {
                path: f.path.clone(),
                length: f.length,
                offset,
                pad: false,
            };
            offset += f.length;
            e
        })
        .collect();
    Info {
        name,
        piece_length: v2.piece_length,
        pieces: Vec::new(),
        multi_file: files.len() > 1 || files.first().is_some_and(|f| f.path.len() > 1),
        files,
        total_length: offset,
        private,
    }
}

/// The piece-aligned view of a v2-only torrent, the one the engine
/// transfers: the files of `info` (the end-to-end view of `v1_view`) with
/// an implicit pad entry wherever the next non-empty file starts a new
/// piece, so that piece `p` of this byte stream is piece `p` of the v2
/// piece space ([`V2Info::piece_check`]). Pad entries take piece space
/// only: they are never written to disk and read as zeros; the last
/// file's last piece is padded too (every piece is whole, as libtorrent
/// 2.0 requests them). `pieces` stays empty (there is no SHA-1): the
/// engine counts pieces from the length (`Layout`, in `proto/layout.rs`).
pub fn aligned_view(info: &Info, v2: &V2Info) -> Info {
    let mut files = Vec::with_capacity(v2.files.len() * 2);
    let mut offset = 0u64;
    let mut pads = 0usize;
    let mut pad_to = |files: &mut Vec<FileEntry>, offset: &mut u64, to: u64| {
        if to > *offset {
            let mut path = Vec::new();
            if info.multi_file {
                path.push(info.name.clone());
            }
            path.extend([".pad".to_string(), pads.to_string()]);
            pads += 1;
            files.push(FileEntry {
                path: FilePath::from_elements(path),
                length: to - *offset,
                offset: *offset,
                pad: true,
            });
            *offset = to;
        }
    };
    for f in &v2.files {
        if f.length > 0 {
            pad_to(
                &mut files,
                &mut offset,
                f.first_piece.saturating_mul(v2.piece_length),
            );
        }
        files.push(FileEntry {
            path: f.path.clone(),
            length: f.length,
            offset,
            pad: false,
        });
        offset += f.length;
    }
    // The last piece is a whole piece too, as libtorrent 2.0 sees it (it
    // requests the last piece's blocks at full length).
    let end = offset
        .div_ceil(v2.piece_length)
        .saturating_mul(v2.piece_length);
    pad_to(&mut files, &mut offset, end);
    Info {
        name: info.name.clone(),
        piece_length: v2.piece_length,
        pieces: Vec::new(),
        files,
        total_length: offset,
        private: info.private,
        multi_file: info.multi_file,
    }
}
