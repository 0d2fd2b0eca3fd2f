//! Metainfo (`.torrent`) files: BEP 3 and BEP 12 (announce-list).
//!
//! Parsing is done over the tolerant decoder in [`crate::proto::bencode`]; the
//! info-hash is the SHA-1 of the original bytes of the `info` dictionary.
//! File paths are sanitised so that no entry can lead outside the
//! download directory.

use crate::proto::bencode::{Dict, Value};
use std::fmt;

/// The SHA-1 info-hash of a torrent (v1). `Display` is 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
    /// Parse 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        let b = s.as_bytes();
        if b.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(InfoHash(out))
    }
    /// 40 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// A file's sanitised path: its elements joined with `/` in one string (no
/// element contains a `/`, is empty, `.` or `..`). One allocation per file,
/// not one per element: a million files cost tens of megabytes, not
/// hundreds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(Box<str>);

impl FilePath {
    /// The path of these elements (each already sanitised).
    pub fn from_elements<S: AsRef<str>>(elements: impl IntoIterator<Item = S>) -> FilePath {
        let mut joined = String::new();
        for (i, e) in elements.into_iter().enumerate() {
            if i > 0 {
                joined.push('/');
            }
            joined.push_str(e.as_ref());
        }
        FilePath(joined.into_boxed_str())
    }
    /// The elements joined with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The elements, first (the torrent's name in a multi-file torrent)
    /// to last.
    pub fn iter(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.0.split('/').count()
    }
    /// Never true for a path of a torrent (kept for symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The elements joined with `sep` (`join("/")` is [`FilePath::as_str`]).
    pub fn join(&self, sep: &str) -> String {
        if sep == "/" {
            return self.0.to_string();
        }
        self.iter().collect::<Vec<_>>().join(sep)
    }
    /// The elements, each its own string.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(String::from).collect()
    }
    /// The last element (the file's name).
    pub fn last(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

impl From<Vec<String>> for FilePath {
    fn from(elements: Vec<String>) -> FilePath {
        FilePath::from_elements(elements)
    }
}

impl<'a> IntoIterator for &'a FilePath {
    type Item = &'a str;
    type IntoIter = std::str::Split<'a, char>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<const N: usize> PartialEq<[&str; N]> for FilePath {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file of a torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised path components relative to the download directory. For a
    /// multi-file torrent the first component is the torrent's (sanitised)
    /// name; for a single-file torrent it is just the name.
    pub path: FilePath,
    /// Length in bytes (0 for symlinks).
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 pad file (or an old `_____padding_file_`): takes piece space,
    /// is never written to disk and reads as zeros.
    pub pad: bool,
}

/// The `info` dictionary, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name (sanitised for use as a file or directory name).
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u64,
    /// The SHA-1 of each piece.
    pub pieces: Vec<[u8; 20]>,
    /// Files in torrent order (a single-file torrent has one entry).
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths (pad files included).
    pub total_length: u64,
    /// BEP 27 private flag.
    pub private: bool,
    /// Whether the info dictionary had `files` (multi-file layout).
    pub multi_file: bool,
}

/// A parsed and validated `.torrent` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the original bytes of `info`.
    pub info_hash: InfoHash,
    /// The validated info dictionary.
    pub info: Info,
    /// The exact bytes of the `info` dictionary as found in the file
    /// (served to peers with `ut_metadata`).
    pub info_bytes: Vec<u8>,
    /// `announce` (a bare `IP:PORT` is normalised to `http://IP:PORT/announce`).
    pub announce: Option<String>,
    /// `announce-list` tiers (BEP 12).
    pub announce_list: Vec<Vec<String>>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date` (seconds since the epoch).
    pub creation_date: Option<i64>,
    /// `url-list` web seeds (BEP 19).
    pub url_list: Vec<String>,
}

impl Info {
    /// Number of pieces.
    pub fn num_pieces(&self) -> usize {
        self.pieces.len()
    }
    /// Length of piece `index` (the last one may be short).
    pub fn piece_len(&self, index: usize) -> u64 {
        let start = index as u64 * self.piece_length;
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }
}

/// Largest `piece length` accepted: 1 GiB. The corpus's `large_piece_size`
/// (536,854,528 bytes) must load; libtorrent refuses more than `INT_MAX / 2`.
pub const MAX_PIECE_LENGTH: u64 = 1 << 30;

/// Largest number of pieces accepted: 2^22 (80 MiB of hashes; 4 TiB at
/// 1 MiB pieces). The corpus's `many_pieces` (over 100 million) is refused.
pub const MAX_PIECES: u64 = 1 << 22;

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
    /// A BitTorrent v2-only torrent (BEP 52 without v1 `pieces`).
    V2Only,
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
            E::V2Only => f.write_str("BitTorrent v2-only torrents are not supported"),
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

type MResult<T> = Result<T, MetainfoError>;

fn wrong(key: &'static str, expected: &'static str) -> MetainfoError {
    MetainfoError::WrongType { key, expected }
}

/// An optional integer: absent is `None`, another type is an error.
fn opt_int(d: &Dict<'_>, key: &'static str) -> MResult<Option<i64>> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(wrong(key, "an integer")),
    }
}

/// A required integer.
fn req_int(d: &Dict<'_>, key: &'static str) -> MResult<i64> {
    opt_int(d, key)?.ok_or(MetainfoError::MissingKey(key))
}

/// An optional byte string: absent is `None`, another type is an error.
fn opt_bytes<'a>(d: &Dict<'a>, key: &'static str) -> MResult<Option<&'a [u8]>> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_bytes().map(Some).ok_or(wrong(key, "a string")),
    }
}

/// A free-text field, lossily decoded; absent or of another type is `None`.
fn lenient_text(d: &Dict<'_>, key: &str) -> Option<String> {
    d.get(key.as_bytes())
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// `key.utf-8` when it is a valid string, else `key`.
fn preferred<'a, 'd>(d: &'d Dict<'a>, key: &str, utf8_key: &str) -> Option<&'d Value<'a>> {
    match d.get(utf8_key.as_bytes()) {
        Some(v @ Value::Bytes(b)) if std::str::from_utf8(b).is_ok() => Some(v),
        _ => d.get(key.as_bytes()),
    }
}

/// A non-negative length from an integer.
fn length_of(n: i64) -> MResult<u64> {
    u64::try_from(n).map_err(|_| MetainfoError::NegativeLength(n))
}

impl Metainfo {
    /// Parse and validate a `.torrent` file.
    ///
    /// Tolerates what real torrents contain (unsorted keys, trailing bytes);
    /// the info-hash is the SHA-1 of the original bytes of `info`. Never
    /// panics, whatever the input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        // `info`'s `files` is read one entry at a time (see `parse_files`).
        let root = crate::proto::bencode::decode_lazy(bytes, b"files", 1)
            .map_err(MetainfoError::Bencode)?;
        let root = root.as_dict().ok_or(MetainfoError::NotADict)?;
        let info = match root.get(b"info") {
            None => return Err(MetainfoError::MissingKey("info")),
            Some(v) => v.as_dict().ok_or(wrong("info", "a dictionary"))?,
        };
        let mut meta = Metainfo::from_info_dict(info)?;
        meta.announce = lenient_text(root, "announce")
            .map(|s| normalize_announce_url(&s))
            .filter(|s| !s.is_empty());
        meta.announce_list = parse_announce_list(root.get(b"announce-list"));
        meta.comment = lenient_text(root, "comment");
        meta.created_by = lenient_text(root, "created by");
        meta.creation_date = root.get(b"creation date").and_then(Value::as_int);
        meta.url_list = parse_url_list(root.get(b"url-list"));
        Ok(meta)
    }

    /// Build a torrent from the bytes of an `info` dictionary alone (as
    /// fetched from peers with `ut_metadata` after a magnet link); trackers
    /// and the other top-level fields are empty. The info-hash covers the
    /// dictionary's bytes only; compare it with the hash the metadata was
    /// requested for before trusting the result.
    pub fn from_info_bytes(info_bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let value = crate::proto::bencode::decode_lazy(info_bytes, b"files", 0)
            .map_err(MetainfoError::Bencode)?;
        let dict = value.as_dict().ok_or(MetainfoError::NotADict)?;
        Metainfo::from_info_dict(dict)
    }

    fn from_info_dict(info: &Dict<'_>) -> Result<Metainfo, MetainfoError> {
        let info_hash = InfoHash(sha1_smol::Sha1::from(info.raw).digest().bytes());
        Ok(Metainfo {
            info_hash,
            info: Info::from_dict(info, &info_hash)?,
            info_bytes: info.raw.to_vec(),
            announce: None,
            announce_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            url_list: Vec::new(),
        })
    }

    /// The info dictionary's `source` (private trackers set it to make
    /// their info-hash differ), when it is non-empty text. Read from
    /// `info_bytes` with the `files` list left undecoded.
    pub fn source(&self) -> Option<String> {
        let v = crate::proto::bencode::decode_lazy(&self.info_bytes, b"files", 0).ok()?;
        let s = v.get(b"source").and_then(Value::as_str)?;
        (!s.is_empty()).then(|| s.to_string())
    }

    /// Files whose path in the torrent was not safe or portable as it was
    /// and were given another name: `(as written in the torrent, joined
    /// with "/", lossily decoded; the path used)`. Pad files are left out.
    pub fn renamed_files(&self) -> Vec<(String, String)> {
        let Ok(v) = crate::proto::bencode::decode_lazy(&self.info_bytes, b"files", 0) else {
            return Vec::new();
        };
        let Some(d) = v.as_dict() else {
            return Vec::new();
        };
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let raw_name = preferred(d, "name", "name.utf-8")
            .and_then(Value::as_bytes)
            .map(lossy)
            .unwrap_or_default();
        let raw_of = |f: &Value<'_>| -> Option<String> {
            let fd = f.as_dict()?;
            let parts = preferred(fd, "path", "path.utf-8")?.as_list()?;
            let mut p = raw_name.clone();
            for part in parts.iter().filter_map(Value::as_bytes) {
                p.push('/');
                p.push_str(&String::from_utf8_lossy(part));
            }
            Some(p)
        };
        // One entry of `files` at a time, beside the files it gave.
        let raws: Box<dyn Iterator<Item = Option<String>>> = match d.get(b"files") {
            None => Box::new(std::iter::once(Some(raw_name.clone()))),
            Some(list) => Box::new(list_entries(list).map(|f| f.ok().as_ref().and_then(raw_of))),
        };
        self.info
            .files
            .iter()
            .zip(raws)
            .filter(|(f, _)| !f.pad)
            .filter_map(|(f, raw)| {
                let used = f.path.join("/");
                let raw = raw?;
                (raw != used).then_some((raw, used))
            })
            .collect()
    }

    /// Tracker tiers to use: `announce-list` if it has any URL, else
    /// `[[announce]]`, else nothing.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }
}

/// BEP 12 tiers; entries that are not strings and empty tiers are dropped.
fn parse_announce_list(v: Option<&Value<'_>>) -> Vec<Vec<String>> {
    let Some(tiers) = v.and_then(Value::as_list) else {
        return Vec::new();
    };
    tiers
        .iter()
        .filter_map(Value::as_list)
        .map(|tier| {
            tier.iter()
                .filter_map(Value::as_bytes)
                .map(|b| normalize_announce_url(&String::from_utf8_lossy(b)))
                .filter(|s| !s.is_empty())
                .collect::<Vec<String>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// BEP 19 `url-list`: a string or a list of strings; other entries, empty
/// strings and repeats are dropped.
fn parse_url_list(v: Option<&Value<'_>>) -> Vec<String> {
    let items: Vec<&Value<'_>> = match v {
        Some(Value::List(l)) => l.iter().collect(),
        Some(s @ Value::Bytes(_)) => vec![s],
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for url in items.into_iter().filter_map(Value::as_bytes) {
        let url = String::from_utf8_lossy(url).trim().to_string();
        if !url.is_empty() && !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

impl Info {
    /// Validate an `info` dictionary. `info_hash` names the torrent when its
    /// `name` sanitises to nothing (as libtorrent does).
    fn from_dict(d: &Dict<'_>, info_hash: &InfoHash) -> MResult<Info> {
        let pieces = match d.get(b"pieces") {
            None if is_v2(d) => return Err(MetainfoError::V2Only),
            None => return Err(MetainfoError::MissingKey("pieces")),
            Some(v) => v.as_bytes().ok_or(wrong("pieces", "a string"))?,
        };
        let raw_name = match preferred(d, "name", "name.utf-8") {
            None => return Err(MetainfoError::MissingKey("name")),
            Some(v) => v.as_bytes().ok_or(wrong("name", "a string"))?,
        };
        if raw_name.contains(&0) {
            return Err(MetainfoError::NulInName("name"));
        }
        let name = crate::proto::safe_path::sanitize_component(raw_name)
            .unwrap_or_else(|| info_hash.to_hex());
        let piece_length = parse_piece_length(d)?;
        let pieces = split_pieces(pieces)?;
        let multi_file = d.get(b"files").is_some();
        let files = if multi_file {
            parse_files(d, &name)?
        } else {
            let length = length_of(req_int(d, "length")?)?;
            vec![FileEntry {
                path: FilePath::from_elements([&name]),
                length,
                offset: 0,
                pad: false,
            }]
        };
        let total_length = files
            .iter()
            .try_fold(0u64, |acc, f| acc.checked_add(f.length))
            .ok_or(MetainfoError::LengthOverflow)?;
        check_piece_count(total_length, piece_length, pieces.len())?;
        Ok(Info {
            name,
            piece_length,
            pieces,
            files: with_offsets(files),
            total_length,
            private: opt_int(d, "private").ok().flatten() == Some(1),
            multi_file,
        })
    }

    /// The SHA-1 of piece `index`, if it exists.
    pub fn piece_hash(&self, index: usize) -> Option<&[u8; 20]> {
        self.pieces.get(index)
    }
}

/// A v2 info dictionary (`meta version` 2 or a `file tree`).
fn is_v2(d: &Dict<'_>) -> bool {
    d.get(b"meta version").and_then(Value::as_int) == Some(2) || d.get(b"file tree").is_some()
}

fn parse_piece_length(d: &Dict<'_>) -> MResult<u64> {
    let n = req_int(d, "piece length")?;
    let n = u64::try_from(n).map_err(|_| MetainfoError::NegativePieceLength(n))?;
    match n {
        0 => Err(MetainfoError::ZeroPieceLength),
        n if n > MAX_PIECE_LENGTH => Err(MetainfoError::AbsurdPieceLength(n)),
        n => Ok(n),
    }
}

fn split_pieces(pieces: &[u8]) -> MResult<Vec<[u8; 20]>> {
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
    }
    Ok(pieces
        .chunks_exact(20)
        .map(|c| {
            let mut h = [0u8; 20];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

fn check_piece_count(total: u64, piece_length: u64, actual: usize) -> MResult<()> {
    if total == 0 {
        return Err(MetainfoError::ZeroTotalLength);
    }
    let expected = total.div_ceil(piece_length);
    if expected > MAX_PIECES {
        return Err(MetainfoError::TooManyPieces(expected));
    }
    let actual = actual as u64;
    if expected != actual {
        return Err(MetainfoError::PieceCountMismatch { expected, actual });
    }
    Ok(())
}

fn with_offsets(mut files: Vec<FileEntry>) -> Vec<FileEntry> {
    let mut offset = 0u64;
    for f in &mut files {
        f.offset = offset;
        // Cannot overflow: the total was computed with checked arithmetic.
        offset = offset.saturating_add(f.length);
    }
    files
}

/// The multi-file `files` list, sanitised and made unique.
fn parse_files(d: &Dict<'_>, name: &str) -> MResult<Vec<FileEntry>> {
    let list = match d.get(b"files") {
        Some(v @ (Value::List(_) | Value::LazyList { .. })) => v,
        _ => return Err(wrong("files", "a list")),
    };
    let mut unique = crate::proto::safe_path::UniquePaths::new();
    let files = list_entries(list)
        .enumerate()
        .map(|(index, v)| {
            let v = v.map_err(MetainfoError::Bencode)?;
            parse_file(&v, name, &mut unique).map_err(|e| MetainfoError::InFile {
                index,
                error: Box::new(e),
            })
        })
        .collect::<MResult<Vec<FileEntry>>>()?;
    if files.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    Ok(files)
}

/// The entries of a list, decoded or lazy (see
/// [`decode_lazy`](crate::proto::bencode::decode_lazy)), one at a time.
fn list_entries<'a, 'v>(
    list: &'v Value<'a>,
) -> Box<dyn Iterator<Item = Result<Value<'a>, crate::proto::bencode::BencodeError>> + 'v> {
    match list {
        Value::LazyList { raw, depth } => Box::new(crate::proto::bencode::list_items(raw, *depth)),
        Value::List(items) => Box::new(items.iter().cloned().map(Ok)),
        _ => Box::new(std::iter::empty()),
    }
}

/// One entry of `files`.
fn parse_file(
    v: &Value<'_>,
    name: &str,
    unique: &mut crate::proto::safe_path::UniquePaths,
) -> MResult<FileEntry> {
    let d = v
        .as_dict()
        .ok_or(wrong("files", "a list of dictionaries"))?;
    let attr = opt_bytes(d, "attr").ok().flatten().unwrap_or(b"");
    let symlink = attr.contains(&b'l');
    let length = match (symlink, opt_int(d, "length")?) {
        (true, _) => 0,
        (false, None) => return Err(MetainfoError::MissingKey("length")),
        (false, Some(n)) => length_of(n)?,
    };
    let raw_path = match preferred(d, "path", "path.utf-8") {
        Some(p) => Some(path_elements(p)?),
        None => None,
    };
    let padding_name = raw_path
        .as_ref()
        .and_then(|p| p.last())
        .is_some_and(|last| last.starts_with(b"_____padding_file_"));
    let pad = attr.contains(&b'p') || padding_name;
    let mut path = vec![name.to_string()];
    match raw_path {
        Some(p) => path.extend(crate::proto::safe_path::sanitize_path(p)),
        None if pad => path.extend([".pad".to_string(), length.to_string()]),
        None => return Err(MetainfoError::MissingKey("path")),
    }
    let path = unique.insert(path);
    // Elements and the `/` between them.
    let bytes = path
        .iter()
        .map(|e| e.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    if bytes > crate::proto::safe_path::MAX_PATH_BYTES {
        return Err(MetainfoError::PathTooLong(bytes));
    }
    Ok(FileEntry {
        path: path.into(),
        length,
        offset: 0,
        pad,
    })
}

/// The elements of a `path` list, which must all be strings.
fn path_elements<'a>(v: &Value<'a>) -> MResult<Vec<&'a [u8]>> {
    let list = v.as_list().ok_or(wrong("path", "a list"))?;
    if list.len() > crate::proto::safe_path::MAX_PATH_DEPTH {
        return Err(MetainfoError::PathTooDeep(list.len()));
    }
    list.iter()
        .map(|e| match e.as_bytes() {
            None => Err(wrong("path", "a list of strings")),
            Some(b) if b.contains(&0) => Err(MetainfoError::NulInName("path")),
            Some(b) => Ok(b),
        })
        .collect()
}

/// Normalise a tracker address: a bare `IP:PORT` or `HOST:PORT` (the
/// announcer's own address, as `peer create --announce` accepts it) becomes
/// `http://IP:PORT/announce`; anything with a scheme is returned unchanged
/// (trimmed).
pub fn normalize_announce_url(s: &str) -> String {
    let s = s.trim();
    if s.contains("://") {
        return s.to_string();
    }
    // [v6]:port or host:port with a numeric port and nothing else.
    if let Some((host, port)) = s.rsplit_once(':') {
        let host_ok = !host.is_empty() && !host.contains('/');
        if host_ok && !port.is_empty() && port.parse::<u16>().is_ok() {
            return format!("http://{s}/announce");
        }
    }
    s.to_string()
}

#[cfg(test)]
mod normalize_tests {
    use crate::proto::metainfo::normalize_announce_url;

    #[test]
    fn bare_ip_port_becomes_http_url() {
        assert_eq!(
            normalize_announce_url("192.168.1.5:6881"),
            "http://192.168.1.5:6881/announce"
        );
        assert_eq!(
            normalize_announce_url("[::1]:6881"),
            "http://[::1]:6881/announce"
        );
        assert_eq!(
            normalize_announce_url("udp://t.example:80"),
            "udp://t.example:80"
        );
        assert_eq!(normalize_announce_url("nonsense"), "nonsense");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::bencode::OwnedValue as O;

    fn dict(entries: Vec<(&str, O)>) -> O {
        O::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    fn single(length: i64, piece_length: i64, hashes: usize) -> O {
        dict(vec![
            ("name", O::bytes("f")),
            ("length", O::Int(length)),
            ("piece length", O::Int(piece_length)),
            ("pieces", O::Bytes(vec![7; 20 * hashes])),
        ])
    }

    fn torrent(info: O) -> Vec<u8> {
        dict(vec![
            ("announce", O::bytes("10.0.0.1:6881")),
            ("info", info),
        ])
        .to_bytes()
    }

    fn err(info: O) -> MetainfoError {
        Metainfo::from_bytes(&torrent(info)).unwrap_err()
    }

    fn files(entries: Vec<O>) -> O {
        dict(vec![
            ("name", O::bytes("t")),
            ("files", O::List(entries)),
            ("piece length", O::Int(16384)),
            ("pieces", O::Bytes(vec![7; 20])),
        ])
    }

    fn file(length: i64, path: &[&str]) -> O {
        let path = path.iter().map(O::bytes).collect();
        dict(vec![("length", O::Int(length)), ("path", O::List(path))])
    }

    #[test]
    fn loads_a_single_file_torrent() {
        let m = Metainfo::from_bytes(&torrent(single(20000, 16384, 2))).unwrap();
        assert_eq!(m.info.total_length, 20000);
        assert_eq!(m.info.num_pieces(), 2);
        assert_eq!(m.info.piece_len(1), 20000 - 16384);
        assert_eq!(m.info.files[0].path, ["f"]);
        assert!(!m.info.multi_file);
        assert_eq!(m.trackers(), [["http://10.0.0.1:6881/announce"]]);
        let hash = sha1_smol::Sha1::from(&m.info_bytes).digest().bytes();
        assert_eq!(m.info_hash.0, hash);
        let again = Metainfo::from_info_bytes(&m.info_bytes).unwrap();
        assert_eq!(again.info, m.info);
        let magnet =
            crate::proto::magnet::Magnet::parse(&crate::proto::magnet::Magnet::of(&m).to_uri())
                .unwrap();
        assert_eq!(magnet.info_hash, m.info_hash);
        assert_eq!(magnet.trackers, ["http://10.0.0.1:6881/announce"]);
    }

    #[test]
    fn path_limits() {
        use crate::proto::safe_path::{MAX_PATH_BYTES, MAX_PATH_DEPTH};
        use MetainfoError as E;
        let in_file = |e: E| E::InFile {
            index: 1,
            error: Box::new(e),
        };
        // 10,000 levels: refused before anything is sanitised.
        let deep: Vec<&str> = vec!["d"; 10_000];
        assert_eq!(
            err(files(vec![file(1, &["a"]), file(1, &deep)])),
            in_file(E::PathTooDeep(10_000))
        );
        // The deepest path that fits: "t" and 2,047 one-byte elements make
        // 4,095 bytes.
        let deepest: Vec<&str> = vec!["d"; MAX_PATH_DEPTH - 1];
        let m = Metainfo::from_bytes(&torrent(files(vec![file(1, &["a"]), file(1, &deepest)])))
            .unwrap();
        assert_eq!(m.info.files[1].path.len(), MAX_PATH_DEPTH);
        // One element more is refused by depth; as many longer elements by
        // length (the error names the path's bytes).
        let over: Vec<&str> = vec!["d"; MAX_PATH_DEPTH + 1];
        assert_eq!(
            err(files(vec![file(1, &["a"]), file(1, &over)])),
            in_file(E::PathTooDeep(MAX_PATH_DEPTH + 1))
        );
        let long: Vec<&str> = vec!["dd"; 1400];
        assert_eq!(
            err(files(vec![file(1, &["a"]), file(1, &long)])),
            in_file(E::PathTooLong(1 + 1400 * 3))
        );
        const { assert!(1 + 1400 * 3 > MAX_PATH_BYTES) };
        let text = err(files(vec![file(1, &["a"]), file(1, &long)])).to_string();
        assert!(text.contains("4096 bytes (PATH_MAX)"), "{text}");
    }

    #[test]
    fn multi_file_offsets() {
        let m = Metainfo::from_bytes(&torrent(files(vec![
            file(10, &["a"]),
            file(0, &["b", "c"]),
            file(5, &["d"]),
        ])))
        .unwrap();
        let offsets: Vec<u64> = m.info.files.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 10, 10]);
        assert_eq!(m.info.files[1].path, ["t", "b", "c"]);
        assert_eq!(m.info.total_length, 15);
    }

    #[test]
    fn each_rule_has_its_error() {
        use MetainfoError as E;
        assert!(matches!(
            Metainfo::from_bytes(b"d4:info"),
            Err(E::Bencode(_))
        ));
        assert_eq!(Metainfo::from_bytes(b"i1e"), Err(E::NotADict));
        assert_eq!(Metainfo::from_bytes(b"de"), Err(E::MissingKey("info")));
        assert_eq!(err(single(1, 0, 1)), E::ZeroPieceLength);
        assert_eq!(err(single(1, -5, 1)), E::NegativePieceLength(-5));
        assert_eq!(err(single(1, 1 << 31, 1)), E::AbsurdPieceLength(1 << 31));
        assert_eq!(err(single(-1, 16384, 1)), E::NegativeLength(-1));
        assert_eq!(err(single(0, 16384, 0)), E::ZeroTotalLength);
        assert_eq!(
            err(single(40000, 16384, 2)),
            E::PieceCountMismatch {
                expected: 3,
                actual: 2
            }
        );
        assert_eq!(err(single(1 << 40, 16384, 1)), E::TooManyPieces(1 << 26));
        assert_eq!(err(files(vec![])), E::NoFiles);
        let big = i64::MAX;
        assert_eq!(
            err(files(vec![
                file(big, &["a"]),
                file(big, &["b"]),
                file(big, &["c"])
            ])),
            E::LengthOverflow
        );
        assert_eq!(
            err(files(vec![
                file(1, &["a"]),
                dict(vec![("length", O::Int(1))])
            ])),
            E::InFile {
                index: 1,
                error: Box::new(E::MissingKey("path"))
            }
        );
        let mut odd = single(1, 16384, 1);
        if let O::Dict(d) = &mut odd {
            d.retain(|(k, _)| k != b"pieces");
            d.push((b"pieces".to_vec(), O::Bytes(vec![0; 21])));
        }
        assert_eq!(err(odd), E::PiecesNotMultipleOf20(21));
        let v2 = dict(vec![("name", O::bytes("x")), ("meta version", O::Int(2))]);
        assert_eq!(err(v2), E::V2Only);
        let bad_name = dict(vec![("name", O::Int(1))]);
        assert_eq!(err(bad_name), E::MissingKey("pieces"));
        for e in [E::V2Only, E::LengthOverflow, E::MissingKey("name")] {
            assert!(!e.to_string().is_empty());
        }
    }

    /// Random sequences of bencode-ish tokens never panic.
    #[test]
    fn random_token_soup_never_panics() {
        const TOKENS: [&[u8]; 14] = [
            b"d",
            b"l",
            b"e",
            b"i-1e",
            b"i0e",
            b"i16384e",
            b"4:info",
            b"5:files",
            b"4:path",
            b"6:length",
            b"12:piece length",
            b"6:pieces20:aaaaaaaaaaaaaaaaaaaa",
            b"4:name2:..",
            b"4:attr1:p",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut input = b"d4:infod".to_vec();
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                input.extend_from_slice(TOKENS[(state % TOKENS.len() as u64) as usize]);
            }
            let _ = Metainfo::from_bytes(&input);
            let _ = Metainfo::from_info_bytes(&input[7..]);
            let _ = crate::proto::magnet::Magnet::parse(&String::from_utf8_lossy(&input));
        }
    }

    /// Truncations and byte flips of corpus files never panic.
    #[test]
    fn mangled_input_never_panics() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/corpus/valid/");
        for name in ["sample.torrent", "symlink1.torrent", "v2_hybrid.torrent"] {
            let bytes = std::fs::read(format!("{dir}{name}")).unwrap();
            let step = (bytes.len() / 400).max(1);
            for cut in (0..bytes.len()).step_by(step) {
                let _ = Metainfo::from_bytes(&bytes[..cut]);
                let mut flipped = bytes.clone();
                flipped[cut] ^= 0x5a;
                let _ = Metainfo::from_bytes(&flipped);
            }
        }
    }
}

/// An `Info` of the given files `(path, length, pad)`, laid end to end with
/// zero piece hashes: the test fixture of the engine's file-level tests.
#[cfg(test)]
pub(crate) fn test_info(files: &[(&str, u64, bool)], piece_length: u64) -> Info {
    let mut off = 0;
    let entries = files
        .iter()
        .map(|(p, l, pad)| {
            let e = FileEntry {
                path: FilePath::from_elements(p.split('/')),
                length: *l,
                offset: off,
                pad: *pad,
            };
            off += l;
            e
        })
        .collect();
    Info {
        name: "t".into(),
        piece_length,
        pieces: vec![[0; 20]; off.div_ceil(piece_length) as usize],
        files: entries,
        total_length: off,
        private: false,
        multi_file: true,
    }
}
