//! Resume data: what a torrent had verified when it last saved, so that a
//! restart trusts it instead of re-hashing everything.
//!
//! Pure encode/decode (bencode; canonical output through `bendy`, input
//! read with the tolerant decoder and checked field by field). The torrent
//! thread owns the file and writes it atomically (temporary file, fsync,
//! rename) after syncing the data it describes. A piece is recorded only
//! after it was verified and written; each file's size and modification
//! time are recorded too, and a restart trusts the bitfield only if every
//! file still matches, so a file truncated, replaced or written after the
//! save (a crash) forces a recheck: a crash can lose recent progress,
//! never correctness.

use crate::proto::bencode::{self, OwnedValue, Value};
use crate::proto::metainfo::InfoHash;

/// How much a file is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FilePriority {
    /// Not downloaded; the file is not created.
    Skip,
    /// Downloaded.
    #[default]
    Normal,
}

impl FilePriority {
    /// `skip` or `normal` (the control API's names).
    pub fn as_str(self) -> &'static str {
        match self {
            FilePriority::Skip => "skip",
            FilePriority::Normal => "normal",
        }
    }

    /// Read `skip`/`normal` (also `0`/`1`, `false`/`true`, `wanted`).
    pub fn parse(s: &str) -> Option<FilePriority> {
        match s.to_ascii_lowercase().as_str() {
            "skip" | "0" | "false" | "off" | "none" => Some(FilePriority::Skip),
            "normal" | "1" | "true" | "on" | "wanted" => Some(FilePriority::Normal),
            _ => None,
        }
    }

    /// Whether the file is downloaded.
    pub fn is_wanted(self) -> bool {
        self != FilePriority::Skip
    }
}

/// Size and modification time of one file, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub length: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
}

/// One torrent's resume data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Number of pieces.
    pub num_pieces: u32,
    /// The verified pieces (BEP 3 bitfield bytes).
    pub pieces: Vec<u8>,
    /// The save path the data lives under.
    pub save_path: String,
    /// Stamps of the torrent's files (pad files excluded), in torrent order;
    /// `None` where the file did not exist.
    pub files: Vec<Option<FileStamp>>,
    /// Payload bytes uploaded, all sessions.
    pub uploaded: u64,
    /// Payload bytes downloaded, all sessions.
    pub downloaded: u64,
    /// The file selection the pieces were verified under: one priority
    /// per entry of `info.files` (empty: every file wanted). Saved as
    /// `file priority`, a list of 0 (skip) and 1 (normal).
    pub file_priorities: Vec<FilePriority>,
    /// The part file's stamp (`None`: there is none), checked like the
    /// files' stamps. Saved as `part file` when present.
    pub part_file: Option<FileStamp>,
}

/// Why resume data was not usable (the torrent is then rechecked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    /// Not bencode.
    Bencode(bencode::BencodeError),
    /// A field is missing or has the wrong type or size.
    Field(&'static str),
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::Bencode(e) => write!(f, "resume data: {e}"),
            ResumeError::Field(k) => write!(f, "resume data: bad or missing field {k:?}"),
        }
    }
}

impl std::error::Error for ResumeError {}

/// Most files a resume record may list (bounds the decoder's allocations).
const MAX_FILES: usize = 1 << 20;

impl ResumeData {
    /// Canonical bencoding.
    pub fn encode(&self) -> Vec<u8> {
        let stamp = |f: &Option<FileStamp>| match f {
            Some(s) => OwnedValue::List(vec![
                OwnedValue::Int(s.length as i64),
                OwnedValue::Int(s.mtime),
                OwnedValue::Int(i64::from(s.mtime_nsec)),
            ]),
            None => OwnedValue::List(Vec::new()),
        };
        let files = self.files.iter().map(stamp).collect();
        let mut d = vec![
            (
                b"file-format".to_vec(),
                OwnedValue::bytes("peer resume file"),
            ),
            (b"file-version".to_vec(), OwnedValue::Int(1)),
            (b"info-hash".to_vec(), OwnedValue::bytes(self.info_hash.0)),
            (
                b"num pieces".to_vec(),
                OwnedValue::Int(i64::from(self.num_pieces)),
            ),
            (b"pieces".to_vec(), OwnedValue::Bytes(self.pieces.clone())),
            (b"save path".to_vec(), OwnedValue::bytes(&self.save_path)),
            (b"files".to_vec(), OwnedValue::List(files)),
            (b"uploaded".to_vec(), OwnedValue::Int(self.uploaded as i64)),
            (
                b"downloaded".to_vec(),
                OwnedValue::Int(self.downloaded as i64),
            ),
        ];
        if !self.file_priorities.is_empty() {
            let prios = self
                .file_priorities
                .iter()
                .map(|p| OwnedValue::Int(i64::from(p.is_wanted())))
                .collect();
            d.push((b"file priority".to_vec(), OwnedValue::List(prios)));
        }
        if self.part_file.is_some() {
            d.push((b"part file".to_vec(), stamp(&self.part_file)));
        }
        // Canonical bencoding: keys sorted.
        d.sort_by(|a, b| a.0.cmp(&b.0));
        OwnedValue::Dict(d).to_bytes()
    }

    /// Decode and check resume data.
    pub fn decode(bytes: &[u8]) -> Result<ResumeData, ResumeError> {
        let v = bencode::decode(bytes).map_err(ResumeError::Bencode)?;
        let d = v.as_dict().ok_or(ResumeError::Field("(top level)"))?;
        let int = |k: &'static str| {
            d.get(k.as_bytes())
                .and_then(Value::as_int)
                .ok_or(ResumeError::Field(k))
        };
        let bytes_of = |k: &'static str| {
            d.get(k.as_bytes())
                .and_then(Value::as_bytes)
                .ok_or(ResumeError::Field(k))
        };
        if int("file-version")? != 1 {
            return Err(ResumeError::Field("file-version"));
        }
        let ih: [u8; 20] = bytes_of("info-hash")?
            .try_into()
            .map_err(|_| ResumeError::Field("info-hash"))?;
        let num_pieces =
            u32::try_from(int("num pieces")?).map_err(|_| ResumeError::Field("num pieces"))?;
        let pieces = bytes_of("pieces")?.to_vec();
        if crate::proto::bitfield::Bitfield::from_bytes(&pieces, num_pieces as usize).is_err() {
            return Err(ResumeError::Field("pieces"));
        }
        let save_path = String::from_utf8_lossy(bytes_of("save path")?).into_owned();
        let list = d
            .get(b"files")
            .and_then(Value::as_list)
            .ok_or(ResumeError::Field("files"))?;
        if list.len() > MAX_FILES {
            return Err(ResumeError::Field("files"));
        }
        let stamp = |f: &Value, field: &'static str| {
            let parts = f.as_list().ok_or(ResumeError::Field(field))?;
            if parts.is_empty() {
                return Ok(None);
            }
            let n = |i: usize| parts.get(i).and_then(Value::as_int);
            match (n(0), n(1), n(2)) {
                (Some(len), Some(mtime), Some(ns))
                    if len >= 0 && (0..1_000_000_000).contains(&ns) =>
                {
                    Ok(Some(FileStamp {
                        length: len as u64,
                        mtime,
                        mtime_nsec: ns as u32,
                    }))
                }
                _ => Err(ResumeError::Field(field)),
            }
        };
        let mut files = Vec::with_capacity(list.len());
        for f in list {
            files.push(stamp(f, "files")?);
        }
        let part_file = match d.get(b"part file") {
            Some(v) => stamp(v, "part file")?,
            None => None,
        };
        let mut file_priorities = Vec::new();
        if let Some(v) = d.get(b"file priority") {
            let l = v.as_list().ok_or(ResumeError::Field("file priority"))?;
            if l.len() > MAX_FILES {
                return Err(ResumeError::Field("file priority"));
            }
            for p in l {
                file_priorities.push(match p.as_int() {
                    Some(0) => FilePriority::Skip,
                    Some(1) => FilePriority::Normal,
                    _ => return Err(ResumeError::Field("file priority")),
                });
            }
        }
        let nonneg = |k: &'static str| {
            int(k).and_then(|x| u64::try_from(x).map_err(|_| ResumeError::Field(k)))
        };
        Ok(ResumeData {
            info_hash: InfoHash(ih),
            num_pieces,
            pieces,
            save_path,
            files,
            uploaded: nonneg("uploaded")?,
            downloaded: nonneg("downloaded")?,
            file_priorities,
            part_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResumeData {
        ResumeData {
            info_hash: InfoHash([7; 20]),
            num_pieces: 10,
            pieces: vec![0b1010_0000, 0b0100_0000],
            save_path: "/tmp/x".into(),
            files: vec![
                Some(FileStamp {
                    length: 5,
                    mtime: 1_700_000_000,
                    mtime_nsec: 12,
                }),
                None,
            ],
            uploaded: 3,
            downloaded: 4,
            file_priorities: Vec::new(),
            part_file: None,
        }
    }

    #[test]
    fn selection_and_part_file_round_trip() {
        use super::FilePriority::{Normal, Skip};
        let mut r = sample();
        r.file_priorities = vec![Normal, Skip];
        r.part_file = Some(FileStamp {
            length: 32768,
            mtime: 1_700_000_001,
            mtime_nsec: 5,
        });
        let bytes = r.encode();
        assert_eq!(ResumeData::decode(&bytes).unwrap(), r);
        // Older files without the new keys still load.
        assert_eq!(ResumeData::decode(&sample().encode()).unwrap(), sample());
        let bad = String::from_utf8_lossy(&bytes).replace("i0ei1e", "i0ei7e");
        assert!(ResumeData::decode(bad.as_bytes()).is_err());
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(ResumeData::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn damaged_input_is_an_error_never_a_panic() {
        let good = sample().encode();
        for cut in 0..good.len() {
            let _ = ResumeData::decode(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let _ = ResumeData::decode(&bad);
        }
        let mut spare = sample();
        spare.pieces = vec![0xff, 0xff];
        assert_eq!(
            ResumeData::decode(&spare.encode()),
            Err(ResumeError::Field("pieces"))
        );
        assert!(ResumeData::decode(b"garbage").is_err());
    }
}
