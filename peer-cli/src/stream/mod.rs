//! Streaming over HTTP (issue 24, docs/API.md), served by the daemon on
//! its control port and by `peer FILE --stream` on a loopback port of its
//! own ([`local`]); the same routes for both:
//!
//! - `GET` / `HEAD /stream/<info-hash>/<file index>/<name>`: the file's
//!   bytes, with `Range` (one range: `206`, `Content-Range`; past the end:
//!   `416`), `Accept-Ranges: bytes` and a media `Content-Type` from the
//!   file's extension. Each chunk is sent once its pieces are verified,
//!   waiting (at most [`PIECE_WAIT`]) while the reader's position steers
//!   the download (`bittorrent_core::FileReader`). `<name>` is for the
//!   player only (any value).
//! - `GET /torrents/ID/streams`: each file's stream URL, with the stream
//!   token (`web::auth`).
//! - `GET /torrents/ID/playlist.m3u`: the same URLs as an M3U playlist
//!   (`audio/x-mpegurl`) for a player.
//!
//! At most [`MAX_STREAMS`] bodies are sent at once (each holds one of the
//! control server's worker threads; the others stay for the API); one more
//! gets `503` with `Retry-After`.

use crate::control::http::BodyStream;
use crate::control::{Request, Response};
use bittorrent_core::{Error, FileReader, InfoHash, Session};
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod local;

/// Most stream bodies sent at once.
pub const MAX_STREAMS: usize = 4;
/// How long one chunk waits for its pieces.
pub const PIECE_WAIT: Duration = Duration::from_secs(30);
/// Bytes read and sent at a time.
const CHUNK: usize = 256 * 1024;

/// The streams being sent, and how to name their URLs.
pub struct Streams {
    active: Arc<AtomicUsize>,
    token: String,
    addr: SocketAddr,
}

/// One file's stream, as listed.
struct Entry {
    index: usize,
    path: String,
    length: u64,
    url: String,
}

/// Counts a stream as active until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Streams {
    /// Streams served on `addr` (the control API's) with this stream token.
    pub fn new(token: String, addr: SocketAddr) -> Streams {
        Streams {
            active: Arc::new(AtomicUsize::new(0)),
            token,
            addr,
        }
    }

    /// Handle the requests of this module; `None` for any other request.
    /// `find` resolves a torrent ID (or answers the error).
    pub fn route(
        &self,
        session: &Session,
        r: &Request,
        find: &dyn Fn(&str) -> Result<InfoHash, Response>,
    ) -> Option<Response> {
        let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        Some(match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["torrents", id, "streams"]) => match find(id) {
                Ok(ih) => self.list(session, &ih),
                Err(e) => e,
            },
            ("GET", ["torrents", id, "playlist.m3u"]) => match find(id) {
                Ok(ih) => self.playlist(session, &ih),
                Err(e) => e,
            },
            (_, ["torrents", _, "streams" | "playlist.m3u"]) => {
                Response::error(405, format!("{} not allowed on {}", r.method, r.path))
            }
            ("GET" | "HEAD", ["stream", id, index, ..]) => match find(id) {
                Ok(ih) => self.serve(session, &ih, index, r),
                Err(e) => e,
            },
            ("GET" | "HEAD", ["stream", ..]) => Response::error(
                404,
                "a stream URL is /stream/<info-hash>/<file index>/<name>",
            ),
            (_, ["stream", ..]) => Response::error(
                405,
                format!("{} not allowed on a stream (GET or HEAD)", r.method),
            ),
            _ => return None,
        })
    }

    /// Each file's (not pad files') index, path, length and stream URL;
    /// `Err(409)` while the metadata is missing.
    fn entries(&self, session: &Session, ih: &InfoHash) -> Result<Vec<Entry>, Response> {
        let Some(mi) = session.metainfo(ih) else {
            return Err(Response::error(
                409,
                "the torrent's metadata is not here yet",
            ));
        };
        Ok(mi
            .info
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.pad)
            .map(|(i, f)| {
                let name = f.path.iter().next_back().unwrap_or_default();
                Entry {
                    index: i,
                    path: f.path.as_str().to_string(),
                    length: f.length,
                    url: format!(
                        "http://{}/stream/{}/{i}/{}?token={}",
                        self.addr,
                        ih.to_hex(),
                        percent_encode(name),
                        self.token
                    ),
                }
            })
            .collect())
    }

    /// Each file's path and stream URL (`None` while the metadata is
    /// missing).
    pub fn urls(&self, session: &Session, ih: &InfoHash) -> Option<Vec<(String, String)>> {
        let e = self.entries(session, ih).ok()?;
        Some(e.into_iter().map(|e| (e.path, e.url)).collect())
    }

    /// `GET /torrents/ID/streams`.
    fn list(&self, session: &Session, ih: &InfoHash) -> Response {
        let files: Vec<_> = match self.entries(session, ih) {
            Ok(e) => e
                .into_iter()
                .map(
                    |e| json!({"index": e.index, "path": e.path, "length": e.length, "url": e.url}),
                )
                .collect(),
            Err(resp) => return resp,
        };
        Response::ok(json!({"stream_token": self.token, "files": files}))
    }

    /// `GET /torrents/ID/playlist.m3u`: `#EXTM3U`, then per file
    /// `#EXTINF:-1,PATH` and its URL.
    fn playlist(&self, session: &Session, ih: &InfoHash) -> Response {
        let entries = match self.entries(session, ih) {
            Ok(e) => e,
            Err(resp) => return resp,
        };
        let mut out = String::from("#EXTM3U\n");
        for e in entries {
            // A title is one line: no line breaks from a torrent's names.
            let title: String = e
                .path
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            out.push_str(&format!("#EXTINF:-1,{title}\n{}\n", e.url));
        }
        Response::bytes("audio/x-mpegurl", out.into_bytes())
            .with_header("Content-Disposition", "inline; filename=\"playlist.m3u\"")
    }

    /// `GET` / `HEAD /stream/...`.
    fn serve(&self, session: &Session, ih: &InfoHash, index: &str, r: &Request) -> Response {
        let Ok(index) = index.parse::<usize>() else {
            return Response::error(404, format!("not a file index: {index}"));
        };
        let reader = match session.file_reader(ih, index) {
            Ok(f) => f,
            Err(e @ Error::NoSuchFile { .. }) => return Response::error(404, e.to_string()),
            Err(e @ Error::NoMetadata(_)) => return Response::error(409, e.to_string()),
            Err(e) => return Response::error(404, e.to_string()),
        };
        let name = session
            .metainfo(ih)
            .and_then(|m| m.info.files.get(index).map(|f| f.path.as_str().to_string()))
            .unwrap_or_default();
        let ctype = content_type(&name);
        let len = reader.len();
        let (status, start, end) = match r.header("range").map(|h| parse_range(h, len)) {
            None | Some(Range::Ignore) => (200, 0, len),
            Some(Range::Bytes(a, b)) => (206, a, b),
            Some(Range::Unsatisfiable) => {
                return Response::error(
                    416,
                    format!("the range is past the end of the file ({len} bytes)"),
                )
                .with_header("Content-Range", format!("bytes */{len}"))
                .with_header("Accept-Ranges", "bytes")
            }
        };
        let head = |status, write| {
            let resp = Response::streamed(
                status,
                BodyStream {
                    content_type: ctype,
                    len: end - start,
                    write,
                },
            )
            .with_header("Accept-Ranges", "bytes");
            if status == 206 {
                resp.with_header("Content-Range", format!("bytes {start}-{}/{len}", end - 1))
            } else {
                resp
            }
        };
        if r.method == "HEAD" || start == end {
            return head(status, None);
        }
        // A slot, or 503.
        let n = self.active.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.active.clone());
        if n >= MAX_STREAMS {
            return Response::error(
                503,
                format!("{MAX_STREAMS} streams are being sent already; try again"),
            )
            .with_header("Retry-After", "1");
        }
        // The first chunk before the head, so that a timeout is a clear error.
        let mut first = vec![0u8; CHUNK.min((end - start) as usize)];
        if let Err(e) = reader.read_at(start, &mut first, PIECE_WAIT) {
            let code = match e {
                Error::ReadTimeout { .. } => 504,
                Error::UnknownTorrent(_) => 404,
                _ => 500,
            };
            return Response::error(code, e.to_string());
        }
        head(
            status,
            Some(Box::new(move |w: &mut dyn Write| {
                send_body(w, &reader, first, start, end);
                drop(slot);
            })),
        )
    }
}

/// A torrent by its ID (4 to 40 hex characters of the info-hash, unique
/// among the session's torrents), or the `404` answer.
pub fn find(session: &Session, id: &str) -> Result<InfoHash, Response> {
    let id = id.to_ascii_lowercase();
    if id.len() < 4 || id.len() > 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Response::error(
            404,
            format!("no torrent {id} (an ID is 4 to 40 hex characters of the info-hash)"),
        ));
    }
    let mut hits: Vec<InfoHash> = session
        .torrents()
        .iter()
        .filter(|s| s.info_hash.to_hex().starts_with(&id))
        .map(|s| s.info_hash)
        .collect();
    match hits.len() {
        0 => Err(Response::error(404, format!("no torrent {id}"))),
        1 => Ok(hits.remove(0)),
        n => Err(Response::error(
            404,
            format!("ambiguous ID {id}: {n} torrents match"),
        )),
    }
}

/// Send bytes `start..end` of the file, `first` (read already) then chunk
/// by chunk; stop at the first error (the client sees a short body).
fn send_body(w: &mut dyn Write, reader: &FileReader, first: Vec<u8>, start: u64, end: u64) {
    let mut at = start + first.len() as u64;
    if w.write_all(&first).is_err() {
        return;
    }
    let mut buf = first;
    while at < end {
        let n = CHUNK.min((end - at) as usize);
        buf.truncate(n);
        if let Err(e) = reader.read_at(at, &mut buf, PIECE_WAIT) {
            log::info!("stream: {e}");
            return;
        }
        if w.write_all(&buf).is_err() {
            return;
        }
        at += n as u64;
    }
}

/// A `Range` header against a file of `len` bytes.
#[derive(Debug, PartialEq)]
enum Range {
    /// Bytes `a..b` (end exclusive).
    Bytes(u64, u64),
    /// Past the end: `416`.
    Unsatisfiable,
    /// Not one byte range we read (several ranges, another unit, bad
    /// syntax): the whole file, as RFC 9110 allows.
    Ignore,
}

fn parse_range(h: &str, len: u64) -> Range {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Range::Ignore;
    };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Ignore;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                Range::Unsatisfiable
            } else {
                Range::Bytes(len - n.min(len), len)
            }
        }
        (false, Some(a), None) if b.trim().is_empty() => {
            if a >= len {
                Range::Unsatisfiable
            } else {
                Range::Bytes(a, len)
            }
        }
        (false, Some(a), Some(b)) if a <= b => {
            if a >= len {
                Range::Unsatisfiable
            } else {
                Range::Bytes(a, b.saturating_add(1).min(len))
            }
        }
        _ => Range::Ignore,
    }
}

/// The media type of a file name, from its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "ts" | "m2ts" => "video/mp2t",
        "ogv" => "video/ogg",
        "mpg" | "mpeg" => "video/mpeg",
        "flv" => "video/x-flv",
        "wmv" => "video/x-ms-wmv",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "mka" => "audio/x-matroska",
        "srt" => "application/x-subrip",
        "vtt" => "text/vtt",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "txt" | "nfo" => "text/plain; charset=utf-8",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A path segment: every byte but unreserved ones (RFC 3986) as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Range::Bytes(0, 10));
        assert_eq!(parse_range("bytes=2-4", 10), Range::Bytes(2, 5));
        assert_eq!(parse_range("bytes=2-400", 10), Range::Bytes(2, 10));
        assert_eq!(parse_range("bytes=-3", 10), Range::Bytes(7, 10));
        assert_eq!(parse_range("bytes=-30", 10), Range::Bytes(0, 10));
        assert_eq!(parse_range("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=4-2", 10), Range::Ignore);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Range::Ignore);
        assert_eq!(parse_range("items=0-1", 10), Range::Ignore);
        assert_eq!(parse_range("bytes=x-1", 10), Range::Ignore);
    }

    #[test]
    fn media_types_and_names() {
        assert_eq!(content_type("a/B.MKV"), "video/x-matroska");
        assert_eq!(content_type("x.mp4"), "video/mp4");
        assert_eq!(content_type("x.webm"), "video/webm");
        assert_eq!(content_type("x.mp3"), "audio/mpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(percent_encode("a b/é.mp4"), "a%20b%2F%C3%A9.mp4");
    }
}
