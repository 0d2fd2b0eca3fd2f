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
        let files = self
            .files
            .iter()
            .map(|f| match f {
                Some(s) => OwnedValue::List(vec![
                    OwnedValue::Int(s.length as i64),
                    OwnedValue::Int(s.mtime),
                    OwnedValue::Int(i64::from(s.mtime_nsec)),
                ]),
                None => OwnedValue::List(Vec::new()),
            })
            .collect();
        OwnedValue::Dict(vec![
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
        ])
        .to_bytes()
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
        let mut files = Vec::with_capacity(list.len());
        for f in list {
            let parts = f.as_list().ok_or(ResumeError::Field("files"))?;
            if parts.is_empty() {
                files.push(None);
                continue;
            }
            let n = |i: usize| parts.get(i).and_then(Value::as_int);
            match (n(0), n(1), n(2)) {
                (Some(len), Some(mtime), Some(ns))
                    if len >= 0 && (0..1_000_000_000).contains(&ns) =>
                {
                    files.push(Some(FileStamp {
                        length: len as u64,
                        mtime,
                        mtime_nsec: ns as u32,
                    }))
                }
                _ => return Err(ResumeError::Field("files")),
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
        }
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
