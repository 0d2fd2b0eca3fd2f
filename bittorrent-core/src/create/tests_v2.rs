//! `create_torrent` for v2-only and hybrid torrents: what it writes loads
//! back, with roots and layers computed independently here from the bytes.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::proto::merkle;
use crate::proto::metainfo::{Format, Metainfo};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peer-create-v2-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn make(path: &Path, format: TorrentFormat, piece_length: u64, threads: usize) -> Vec<u8> {
    let opts = CreateOptions {
        piece_length: Some(piece_length),
        threads: Some(threads),
        creation_date: Some(1_700_000_000),
        format,
        ..CreateOptions::default()
    };
    create_torrent(path, &opts, &|_, _| {}).unwrap()
}

/// The root and layer of `bytes` straight from the merkle module.
fn expected(bytes: &[u8], piece_length: u64) -> (Vec<merkle::Hash256>, merkle::Hash256) {
    merkle::layer_and_root(&merkle::leaf_hashes(bytes), piece_length)
}

#[test]
fn multi_file_v2_and_hybrid_load_with_their_roots() {
    let dir = scratch("multi");
    let pl = 32 * 1024;
    // Several pieces with a short tail; an empty file; exactly two pieces;
    // one block; a copy of the first (same root, one piece layer entry).
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.bin", data(3 * 32768 + 5000, 1)),
        ("d/empty", Vec::new()),
        ("d/even.bin", data(2 * 32768, 2)),
        ("d/small", data(100, 3)),
        ("z-copy.bin", data(3 * 32768 + 5000, 1)),
    ];
    for (rel, bytes) in &files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    for (format, want) in [
        (TorrentFormat::V2, Format::V2),
        (TorrentFormat::Hybrid, Format::Hybrid),
    ] {
        let t = make(&dir, format, pl, 3);
        // Threads change nothing.
        assert_eq!(t, make(&dir, format, pl, 1));
        let m = Metainfo::from_bytes(&t).unwrap();
        assert_eq!(m.format(), want);
        let v2 = m.v2.as_ref().unwrap();
        assert_eq!(v2.missing_layers(), 0);
        assert_eq!(v2.files.len(), files.len());
        for (i, (rel, bytes)) in files.iter().enumerate() {
            let f = &v2.files[i];
            assert!(
                f.path.as_str().ends_with(rel),
                "{} vs {rel}",
                f.path.as_str()
            );
            assert_eq!(f.length, bytes.len() as u64);
            if bytes.is_empty() {
                assert_eq!(f.pieces_root, None);
                continue;
            }
            let (layer, root) = expected(bytes, pl);
            assert_eq!(f.pieces_root, Some(root), "{rel}");
            let got = v2.piece_layers[i].clone().unwrap_or_default();
            assert_eq!(got, layer, "{rel}");
        }
        // 4 + 0 + 2 + 1 + 4 pieces.
        assert_eq!(v2.num_pieces, 11);
        assert_eq!(m.info_hash_v2.unwrap().0, merkle::sha256(&m.info_bytes));
        if want == Format::Hybrid {
            // The v1 view: each file padded to a whole piece (the last too).
            let mut stream = Vec::new();
            for (_, bytes) in &files {
                stream.extend_from_slice(bytes);
                let tail = bytes.len() as u64 % pl;
                if tail != 0 {
                    stream.resize(stream.len() + (pl - tail) as usize, 0);
                }
            }
            assert_eq!(m.info.total_length, stream.len() as u64);
            let pieces: Vec<[u8; 20]> = stream
                .chunks(pl as usize)
                .map(|c| sha1_smol::Sha1::from(c).digest().bytes())
                .collect();
            assert_eq!(m.info.pieces, pieces);
            let pads = m.info.files.iter().filter(|f| f.pad).count();
            assert_eq!(pads, 3); // not after the empty file nor the whole-piece one
            assert_ne!(m.info_hash, m.info_hash_v2.unwrap().truncated());
        } else {
            assert_eq!(m.info_hash, m.info_hash_v2.unwrap().truncated());
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn single_file_hybrid_has_no_pad_and_a_short_last_piece() {
    let dir = scratch("single");
    let bytes = data(5 * 16384 + 77, 9);
    let path = dir.join("one.bin");
    fs::write(&path, &bytes).unwrap();
    let t = make(&path, TorrentFormat::Hybrid, 16384, 2);
    let m = Metainfo::from_bytes(&t).unwrap();
    assert_eq!(m.format(), Format::Hybrid);
    assert!(!m.info.multi_file);
    assert_eq!(m.info.total_length, bytes.len() as u64);
    let pieces: Vec<[u8; 20]> = bytes
        .chunks(16384)
        .map(|c| sha1_smol::Sha1::from(c).digest().bytes())
        .collect();
    assert_eq!(m.info.pieces, pieces);
    let v2 = m.v2.as_ref().unwrap();
    assert_eq!(v2.files[0].pieces_root, Some(expected(&bytes, 16384).1));
    // A file of one piece: no layer, its root is its own tree.
    let t = make(&path, TorrentFormat::V2, 1 << 20, 2);
    let m = Metainfo::from_bytes(&t).unwrap();
    let v2 = m.v2.as_ref().unwrap();
    assert_eq!(v2.piece_layers[0], None);
    assert_eq!(v2.files[0].pieces_root, Some(expected(&bytes, 1 << 20).1));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn v1_stays_the_default() {
    let dir = scratch("default");
    let path = dir.join("f");
    fs::write(&path, data(40000, 4)).unwrap();
    let opts = CreateOptions {
        piece_length: Some(16384),
        ..CreateOptions::default()
    };
    let t = create_torrent(&path, &opts, &|_, _| {}).unwrap();
    let m = Metainfo::from_bytes(&t).unwrap();
    assert_eq!(m.format(), Format::V1);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn every_hybrid_piece_has_its_v2_check() {
    let dir = scratch("check");
    let top = dir.join("t");
    let files = [data(3 * 16384 + 100, 5), Vec::new(), data(700, 6)];
    for (i, d) in files.iter().enumerate() {
        fs::create_dir_all(&top).unwrap();
        fs::write(top.join(format!("f{i}")), d).unwrap();
    }
    let t = make(&top, TorrentFormat::Hybrid, 32768, 2);
    let m = Metainfo::from_bytes(&t).unwrap();
    let v2 = m.v2.as_ref().unwrap();
    // The v1 byte stream: each non-empty file padded to whole pieces.
    let mut stream = Vec::new();
    for d in &files {
        stream.extend_from_slice(d);
        stream.resize(stream.len().div_ceil(32768) * 32768, 0);
    }
    assert_eq!(m.info.num_pieces(), 3);
    for (i, piece) in stream.chunks(32768).enumerate() {
        let c = v2.piece_check(i as u64).unwrap();
        assert!(c.verify([piece]), "piece {i}");
        // In 16 KiB blocks too.
        assert!(c.verify(piece.chunks(16384)), "piece {i} in blocks");
        let mut bad = piece.to_vec();
        bad[0] ^= 1;
        assert!(!c.verify([bad.as_slice()]), "piece {i} tampered");
        // Short data fails, it does not panic.
        assert!(!c.verify([&piece[..10]]));
    }
    assert_eq!(v2.piece_check(3), None);
    let _ = fs::remove_dir_all(&dir);
}
