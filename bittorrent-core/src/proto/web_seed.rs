//! Web seeds (BEP 19, "GetRight style"): the pure part. Which URL holds
//! which bytes of a torrent, the `Range` header to ask for them, and the
//! check of the server's answer (`206` with a matching `Content-Range`, or
//! a `200` for a range that starts at 0). The thread that speaks HTTP is
//! `engine/conn/web_seed.rs`.
//!
//! URLs (BEP 19): for a single-file torrent the `url-list` entry is the
//! file's URL, unless it ends with `/`, when the torrent's name is
//! appended; for a multi-file torrent the entry is a directory and the URL
//! of a file is entry + `/` + name + `/` + path (each element
//! percent-encoded, one `/` between the entry and the name whether the
//! entry ends with one or not).

use crate::proto::metainfo::Info;
use std::fmt;

/// One contiguous part of a byte range of the torrent that lies in one
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Index into `Info::files`.
    pub file: usize,
    /// Offset of the first byte within that file.
    pub file_offset: u64,
    /// Bytes.
    pub len: u64,
    /// A BEP 47 pad file: zeros, never fetched.
    pub pad: bool,
}

/// Why a web seed's answer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebSeedError {
    /// The URL is not `http://` or `https://`.
    UnsupportedUrl(String),
    /// The server answered with this status (404, 500...).
    Status(u16),
    /// A `206` with no `Content-Range`, or one that does not parse.
    BadContentRange(String),
    /// A `206` for other bytes than those asked for.
    WrongRange {
        /// First byte asked for.
        asked: u64,
        /// First byte the server sent.
        got: u64,
    },
    /// A `200` (the whole file) to a request for bytes past its start: the
    /// server does not serve ranges.
    NoRanges,
    /// The body ended before the bytes asked for.
    Short {
        /// Bytes asked for.
        asked: u64,
        /// Bytes received.
        got: u64,
    },
}

impl fmt::Display for WebSeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSeedError::UnsupportedUrl(u) => write!(f, "not an http(s) URL: {u}"),
            WebSeedError::Status(s) => write!(f, "HTTP status {s}"),
            WebSeedError::BadContentRange(s) => write!(f, "bad Content-Range {s:?}"),
            WebSeedError::WrongRange { asked, got } => {
                write!(f, "asked for bytes from {asked}, got bytes from {got}")
            }
            WebSeedError::NoRanges => write!(f, "the server does not serve byte ranges"),
            WebSeedError::Short { asked, got } => {
                write!(f, "body ended after {got} of {asked} bytes")
            }
        }
    }
}

impl std::error::Error for WebSeedError {}

/// Whether `url` is one we can fetch from (`http://` or `https://`).
pub fn is_supported(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Percent-encode one path element (RFC 3986 unreserved characters stay).
pub fn encode_element(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of file `file` of `info` on the web seed `base`.
pub fn file_url(base: &str, info: &Info, file: usize) -> String {
    if !info.multi_file {
        if base.ends_with('/') {
            return format!("{base}{}", encode_element(&info.name));
        }
        return base.to_string();
    }
    let mut url = base.trim_end_matches('/').to_string();
    // The path's first element is the torrent's name.
    if let Some(f) = info.files.get(file) {
        for e in f.path.iter() {
            url.push('/');
            url.push_str(&encode_element(e));
        }
    }
    url
}

/// The parts of the torrent's bytes `[offset, offset + len)`, file by
/// file, in order (empty files skipped).
pub fn segments(info: &Info, offset: u64, len: u64) -> Vec<Segment> {
    let end = offset.saturating_add(len).min(info.total_length);
    let mut out = Vec::new();
    // The first file that ends after `offset`.
    let first = info
        .files
        .partition_point(|f| f.offset.saturating_add(f.length) <= offset);
    for (i, f) in info.files.iter().enumerate().skip(first) {
        if f.offset >= end {
            break;
        }
        let from = offset.max(f.offset);
        let to = end.min(f.offset.saturating_add(f.length));
        if to > from {
            out.push(Segment {
                file: i,
                file_offset: from - f.offset,
                len: to - from,
                pad: f.pad,
            });
        }
    }
    out
}

/// The `Range` header value for `len` (> 0) bytes from `start`.
pub fn range_header(start: u64, len: u64) -> String {
    format!("bytes={start}-{}", start.saturating_add(len.max(1) - 1))
}

/// A `Content-Range: bytes FIRST-LAST/TOTAL` value (`TOTAL` may be `*`).
/// Returns `(first, last)`.
pub fn parse_content_range(v: &str) -> Result<(u64, u64), WebSeedError> {
    let bad = || WebSeedError::BadContentRange(v.chars().take(80).collect());
    let rest = v.trim().strip_prefix("bytes").ok_or_else(bad)?.trim_start();
    let (range, _total) = rest.split_once('/').ok_or_else(bad)?;
    let (a, b) = range.trim().split_once('-').ok_or_else(bad)?;
    let first: u64 = a.trim().parse().map_err(|_| bad())?;
    let last: u64 = b.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok((first, last))
}

/// Check an answer to a request for `len` bytes from `start`: `Ok` when
/// its body starts with exactly those bytes (the caller then reads `len`
/// bytes and no more).
pub fn check_response(
    status: u16,
    content_range: Option<&str>,
    start: u64,
    len: u64,
) -> Result<(), WebSeedError> {
    match status {
        206 => {
            let v = content_range.ok_or_else(|| WebSeedError::BadContentRange(String::new()))?;
            let (first, last) = parse_content_range(v)?;
            if first != start {
                return Err(WebSeedError::WrongRange {
                    asked: start,
                    got: first,
                });
            }
            let got = (last - first).saturating_add(1);
            if got < len {
                return Err(WebSeedError::Short { asked: len, got });
            }
            Ok(())
        }
        // The whole file: usable only when we wanted its start.
        200 if start == 0 => Ok(()),
        200 => Err(WebSeedError::NoRanges),
        s => Err(WebSeedError::Status(s)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::metainfo::{FileEntry, FilePath};

    fn info(multi: bool, files: &[(&str, u64, bool)]) -> Info {
        let mut off = 0;
        let files: Vec<FileEntry> = files
            .iter()
            .map(|&(p, l, pad)| {
                let f = FileEntry {
                    path: FilePath::from_elements(p.split('/')),
                    length: l,
                    offset: off,
                    pad,
                };
                off += l;
                f
            })
            .collect();
        Info {
            name: "My Show".into(),
            piece_length: 16,
            pieces: vec![[0; 20]; off.div_ceil(16) as usize],
            files,
            total_length: off,
            private: false,
            multi_file: multi,
        }
    }

    #[test]
    fn urls_single_and_multi() {
        let single = info(false, &[("My Show", 10, false)]);
        assert_eq!(file_url("http://h/x.iso", &single, 0), "http://h/x.iso");
        assert_eq!(file_url("http://h/d/", &single, 0), "http://h/d/My%20Show");
        let multi = info(true, &[("My Show/a b/ü#?.mkv", 10, false)]);
        assert_eq!(
            file_url("http://h/d", &multi, 0),
            "http://h/d/My%20Show/a%20b/%C3%BC%23%3F.mkv"
        );
        assert_eq!(
            file_url("https://h/d/", &multi, 0),
            "https://h/d/My%20Show/a%20b/%C3%BC%23%3F.mkv"
        );
        assert!(is_supported("HTTP://h/") && is_supported("https://h"));
        assert!(!is_supported("ftp://h/") && !is_supported("h"));
    }

    #[test]
    fn segments_cross_files_and_pads() {
        let i = info(
            true,
            &[
                ("n/a", 10, false),
                ("n/e", 0, false),
                ("n/p", 6, true),
                ("n/b", 20, false),
            ],
        );
        let s = segments(&i, 8, 20);
        assert_eq!(
            s,
            vec![
                Segment {
                    file: 0,
                    file_offset: 8,
                    len: 2,
                    pad: false
                },
                Segment {
                    file: 2,
                    file_offset: 0,
                    len: 6,
                    pad: true
                },
                Segment {
                    file: 3,
                    file_offset: 0,
                    len: 12,
                    pad: false
                },
            ]
        );
        assert_eq!(s.iter().map(|s| s.len).sum::<u64>(), 20);
        // Past the end: clipped.
        assert_eq!(
            segments(&i, 30, 100),
            vec![Segment {
                file: 3,
                file_offset: 14,
                len: 6,
                pad: false
            }]
        );
        assert!(segments(&i, 36, 1).is_empty());
    }

    #[test]
    fn ranges_and_answers() {
        assert_eq!(range_header(0, 1), "bytes=0-0");
        assert_eq!(range_header(100, 50), "bytes=100-149");
        assert_eq!(
            parse_content_range("bytes 100-149/1000").unwrap(),
            (100, 149)
        );
        assert_eq!(parse_content_range("bytes 0-0/*").unwrap(), (0, 0));
        for bad in [
            "",
            "bytes */1000",
            "bytes 5-4/9",
            "items 0-1/2",
            "bytes a-b/3",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
        assert!(check_response(206, Some("bytes 100-149/1000"), 100, 50).is_ok());
        assert_eq!(
            check_response(206, Some("bytes 0-49/1000"), 100, 50),
            Err(WebSeedError::WrongRange { asked: 100, got: 0 })
        );
        assert_eq!(
            check_response(206, Some("bytes 100-119/1000"), 100, 50),
            Err(WebSeedError::Short { asked: 50, got: 20 })
        );
        assert!(matches!(
            check_response(206, None, 0, 5),
            Err(WebSeedError::BadContentRange(_))
        ));
        assert!(check_response(200, None, 0, 5).is_ok());
        assert_eq!(check_response(200, None, 5, 5), Err(WebSeedError::NoRanges));
        assert_eq!(
            check_response(404, None, 0, 5),
            Err(WebSeedError::Status(404))
        );
        assert_eq!(
            check_response(416, None, 0, 5),
            Err(WebSeedError::Status(416))
        );
    }
}
