//! Why a `.torrent` file was refused.

use super::{MAX_PIECES, MAX_PIECE_LENGTH};
use std::fmt;

/// Why a `.torrent` file was refused. One variant per validation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetainfoError {
    /// The file is not valid bencode.
    Bencode(crate::proto::bencode::BencodeError),
    /// The top-level value is not a dictionary.
    NotADict,
    /// A required key is absent (`info`, `name`, `piece length`, `pieces`,
    /// `length`, `path`).
    MissingKey(&'static str),
    /// A key holds the wrong kind of value.
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold (`integer`, `string`, `list`, `dictionary`).
        expected: &'static str,
    },
    /// `piece length` is 0.
    ZeroPieceLength,
    /// `piece length` is negative.
    NegativePieceLength(i64),
    /// `piece length` is larger than [`MAX_PIECE_LENGTH`].
    AbsurdPieceLength(u64),
    /// The `pieces` string's length (given) is not a multiple of 20.
    PiecesNotMultipleOf20(usize),
    /// The number of piece hashes differs from `ceil(total / piece length)`.
    PieceCountMismatch {
        /// Pieces the total length needs.
        expected: u64,
        /// Hashes in `pieces`.
        actual: u64,
    },
    /// A file `length` is negative.
    NegativeLength(i64),
    /// The file lengths add up to more than 2^64 - 1 bytes.
    LengthOverflow,
    /// The torrent needs more pieces (given) than [`MAX_PIECES`].
    TooManyPieces(u64),
    /// Every file is empty: there is nothing to download.
    ZeroTotalLength,
    /// A BitTorrent v2-only torrent (BEP 52 without v1 `pieces`) given to
    /// the engine without the piece layer of every multi-piece file: it
    /// loads (`peer info`) but cannot be transferred until piece layers are
    /// fetched from peers (hash requests, not built).
    V2Only,
    /// `meta version` is not 2 (a newer or unknown revision of BEP 52).
    UnsupportedMetaVersion(i64),
    /// A v2 `piece length` that is not a power of two of at least 16 KiB.
    V2PieceLength(u64),
    /// A v2 (or hybrid) info dictionary that is not canonical bencode
    /// (BEP 52: keys sorted, no leading zeros).
    NotCanonical(crate::proto::bencode::BencodeError),
    /// The `file tree` is malformed (the reason is given).
    BadFileTree(&'static str),
    /// An empty file or directory name in the `file tree`.
    EmptyFileName,
    /// A non-empty v2 file without a `pieces root`.
    MissingPiecesRoot,
    /// A `pieces root` of 32 zero bytes.
    ZeroPiecesRoot,
    /// A `pieces root` that is not 32 bytes (given).
    BadPiecesRoot(usize),
    /// A v2 file carrying the pad attribute `p` (pad files are a v1 thing).
    PadFileInV2,
    /// A v2 file larger (given) than
    /// [`MAX_V2_FILE_LENGTH`](super::v2::MAX_V2_FILE_LENGTH).
    V2FileTooLarge(u64),
    /// A problem with one file of the `file tree` (its path as written,
    /// lossily decoded).
    InFileTree {
        /// The file's path in the tree, elements joined with `/`.
        path: String,
        /// What is wrong with it.
        error: Box<MetainfoError>,
    },
    /// A `piece layers` entry is wrong.
    PieceLayer(super::v2::PieceLayerError),
    /// The v1 and v2 halves of a hybrid torrent describe different files.
    HybridMismatch(super::v2::HybridMismatch),
    /// The `files` list is empty.
    NoFiles,
    /// A `name` or `path` element contains a NUL byte (never legitimate;
    /// libtorrent refuses such names too).
    NulInName(&'static str),
    /// A file's path has more elements (given) than
    /// [`MAX_PATH_DEPTH`](crate::proto::safe_path::MAX_PATH_DEPTH).
    PathTooDeep(usize),
    /// A file's path, joined with `/` and the torrent's name included, is
    /// longer (given, in bytes) than
    /// [`MAX_PATH_BYTES`](crate::proto::safe_path::MAX_PATH_BYTES).
    PathTooLong(usize),
    /// A problem with one entry of the `files` list.
    InFile {
        /// Index of the entry in `files`.
        index: usize,
        /// What is wrong with it.
        error: Box<MetainfoError>,
    },
}

impl fmt::Display for MetainfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MetainfoError as E;
        match self {
            E::Bencode(e) => write!(f, "not a torrent: {e}"),
            E::NotADict => f.write_str("not a torrent: the top-level value is not a dictionary"),
            E::MissingKey(k) => write!(f, "invalid torrent: missing '{k}'"),
            E::WrongType { key, expected } => {
                write!(f, "invalid torrent: '{key}' is not {expected}")
            }
            E::ZeroPieceLength => f.write_str("invalid torrent: piece length is 0"),
            E::NegativePieceLength(n) => write!(f, "invalid torrent: negative piece length {n}"),
            E::AbsurdPieceLength(n) => write!(
                f,
                "invalid torrent: piece length {n} exceeds the limit of {MAX_PIECE_LENGTH} bytes"
            ),
            E::PiecesNotMultipleOf20(n) => write!(
                f,
                "invalid torrent: 'pieces' is {n} bytes, not a multiple of 20"
            ),
            E::PieceCountMismatch { expected, actual } => write!(
                f,
                "invalid torrent: {actual} piece hashes but the total length needs {expected}"
            ),
            E::NegativeLength(n) => write!(f, "invalid torrent: negative file length {n}"),
            E::LengthOverflow => f.write_str("invalid torrent: total length overflows 64 bits"),
            E::TooManyPieces(n) => write!(
                f,
                "invalid torrent: {n} pieces exceeds the limit of {MAX_PIECES}"
            ),
            E::ZeroTotalLength => f.write_str("invalid torrent: total length is 0"),
            E::V2Only => f.write_str(
                "this BitTorrent v2-only torrent lacks piece layers: it can be read but not \
                 yet downloaded (fetching piece layers from peers is not built; a complete \
                 .torrent file and hybrid torrents work)",
            ),
            E::UnsupportedMetaVersion(n) => write!(
                f,
                "unsupported torrent: meta version {n} (this client reads versions 1 and 2)"
            ),
            E::V2PieceLength(n) => write!(
                f,
                "invalid torrent: v2 piece length {n} is not a power of two of at least 16384"
            ),
            E::NotCanonical(e) => write!(
                f,
                "invalid torrent: a v2 info dictionary must be canonical bencode: {e}"
            ),
            E::BadFileTree(why) => write!(f, "invalid torrent: 'file tree': {why}"),
            E::EmptyFileName => f.write_str("invalid torrent: an empty name in 'file tree'"),
            E::MissingPiecesRoot => f.write_str("invalid torrent: missing 'pieces root'"),
            E::ZeroPiecesRoot => f.write_str("invalid torrent: 'pieces root' is all zeros"),
            E::BadPiecesRoot(n) => {
                write!(f, "invalid torrent: 'pieces root' is {n} bytes, not 32")
            }
            E::PadFileInV2 => f.write_str("invalid torrent: a pad file in a v2 'file tree'"),
            E::V2FileTooLarge(n) => write!(
                f,
                "invalid torrent: a v2 file of {n} bytes exceeds the limit of {} bytes",
                super::v2::MAX_V2_FILE_LENGTH
            ),
            E::InFileTree { path, error } => write!(f, "{error} (file {path:?})"),
            E::PieceLayer(e) => write!(f, "invalid torrent: 'piece layers': {e}"),
            E::HybridMismatch(e) => {
                write!(f, "invalid torrent: the v1 and v2 file lists differ: {e}")
            }
            E::NoFiles => f.write_str("invalid torrent: 'files' is empty"),
            E::NulInName(k) => write!(f, "invalid torrent: '{k}' contains a NUL byte"),
            E::PathTooDeep(n) => write!(
                f,
                "invalid torrent: a path of {n} elements exceeds the limit of {}",
                crate::proto::safe_path::MAX_PATH_DEPTH
            ),
            E::PathTooLong(n) => write!(
                f,
                "invalid torrent: a path of {n} bytes exceeds the limit of {} bytes (PATH_MAX)",
                crate::proto::safe_path::MAX_PATH_BYTES
            ),
            E::InFile { index, error } => write!(f, "{error} (file #{index})"),
        }
    }
}

impl std::error::Error for MetainfoError {}
