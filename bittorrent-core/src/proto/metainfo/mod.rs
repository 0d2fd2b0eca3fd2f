//! Metainfo (`.torrent`) files: BEP 3, BEP 12 (announce-list), BEP 52 (v2)
//! and hybrid torrents (BEP 52 with BEP 47 pad files; the v2 half is in
//! [`v2`]).
//!
//! Parsing is done over the tolerant decoder in [`crate::proto::bencode`]
//! (a v2 or hybrid info dictionary must also be canonical); the v1
//! info-hash is the SHA-1 of the original bytes of the `info` dictionary,
//! the v2 one their SHA-256.
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
    /// SHA-1 of the original bytes of `info` (v1 and hybrid torrents); for
    /// a v2-only torrent, the v2 info-hash truncated to 20 bytes (the form
    /// the wire, trackers and the DHT use).
    pub info_hash: InfoHash,
    /// SHA-256 of the original bytes of `info` (v2 and hybrid torrents).
    pub info_hash_v2: Option<InfoHashV2>,
    /// The v2 file tree and piece layers (v2 and hybrid torrents).
    pub v2: Option<Box<V2Info>>,
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

mod error;
pub mod v2;
pub use error::MetainfoError;
pub use v2::{Format, InfoHashV2, PieceCheck, V2File, V2Info};

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
        if let Some(v2) = meta.v2.as_deref_mut() {
            v2::parse_piece_layers(v2, root.get(b"piece layers"))?;
        }
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
        let sha1 = InfoHash(sha1_smol::Sha1::from(info.raw).digest().bytes());
        let (info_hash, info_hash_v2, info_v1, v2) = if v2::is_v2(info) {
            v2::check_version(info)?;
            let ih2 = InfoHashV2(crate::proto::merkle::sha256(info.raw));
            if info.get(b"pieces").is_some() {
                let v1 = Info::from_dict(info, &sha1)?;
                let tree = v2::parse_file_tree(info, &v1.name, Some(v1.multi_file))?;
                v2::check_hybrid(&v1, &tree)?;
                (sha1, Some(ih2), v1, Some(Box::new(tree)))
            } else {
                let ih = ih2.truncated();
                let name = info_name(info, &ih)?;
                let tree = v2::parse_file_tree(info, &name, None)?;
                let private = opt_int(info, "private").ok().flatten() == Some(1);
                let v1 = v2::v1_view(name, &tree, private);
                (ih, Some(ih2), v1, Some(Box::new(tree)))
            }
        } else {
            (sha1, None, Info::from_dict(info, &sha1)?, None)
        };
        Ok(Metainfo {
            info_hash,
            info_hash_v2,
            v2,
            info: info_v1,
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

    /// Which protocol versions the torrent serves.
    pub fn format(&self) -> Format {
        match (&self.v2, self.info.pieces.is_empty()) {
            (None, _) => Format::V1,
            (Some(_), true) => Format::V2,
            (Some(_), false) => Format::Hybrid,
        }
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
            None => return Err(MetainfoError::MissingKey("pieces")),
            Some(v) => v.as_bytes().ok_or(wrong("pieces", "a string"))?,
        };
        let name = info_name(d, info_hash)?;
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

/// The sanitised `name` (`name.utf-8` preferred); the info-hash in hex
/// when it sanitises to nothing (as libtorrent does).
fn info_name(d: &Dict<'_>, info_hash: &InfoHash) -> MResult<String> {
    let raw_name = match preferred(d, "name", "name.utf-8") {
        None => return Err(MetainfoError::MissingKey("name")),
        Some(v) => v.as_bytes().ok_or(wrong("name", "a string"))?,
    };
    if raw_name.contains(&0) {
        return Err(MetainfoError::NulInName("name"));
    }
    Ok(crate::proto::safe_path::sanitize_component(raw_name).unwrap_or_else(|| info_hash.to_hex()))
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
mod tests;

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
