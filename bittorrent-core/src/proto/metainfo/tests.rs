#![allow(clippy::unwrap_used)]
use super::*;
use crate::proto::bencode::OwnedValue as O;
use MetainfoError as E;

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
    let m =
        Metainfo::from_bytes(&torrent(files(vec![file(1, &["a"]), file(1, &deepest)]))).unwrap();
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
    let v2 = dict(vec![("meta version", O::Int(2)), ("name", O::bytes("x"))]);
    assert_eq!(err(v2), E::MissingKey("piece length"));
    let bad_name = dict(vec![("name", O::Int(1))]);
    assert_eq!(err(bad_name), E::MissingKey("pieces"));
    for e in [
        E::V2Only,
        E::LengthOverflow,
        E::MissingKey("name"),
        E::PadFileInV2,
    ] {
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

/// A v2 file tree entry of `data` (its root) and its piece layer.
fn v2_file(data: &[u8], piece_length: u64) -> (O, Vec<u8>, Vec<u8>) {
    let leaves = crate::proto::merkle::leaf_hashes(data);
    let (layer, root) = crate::proto::merkle::layer_and_root(&leaves, piece_length);
    let entry = dict(vec![(
        "",
        dict(vec![
            ("length", O::Int(data.len() as i64)),
            ("pieces root", O::Bytes(root.to_vec())),
        ]),
    )]);
    (entry, root.to_vec(), layer.concat())
}

fn v2_torrent(tree: O, piece_length: i64, layers: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let info = dict(vec![
        ("file tree", tree),
        ("meta version", O::Int(2)),
        ("name", O::bytes("t")),
        ("piece length", O::Int(piece_length)),
    ]);
    let layers = O::Dict(layers.into_iter().map(|(k, v)| (k, O::Bytes(v))).collect());
    dict(vec![("info", info), ("piece layers", layers)]).to_bytes()
}

#[test]
fn loads_a_v2_torrent_and_checks_its_layers() {
    let a: Vec<u8> = (0..80_000u32).map(|i| (i % 253) as u8).collect();
    let b = vec![9u8; 100];
    let (fa, ra, la) = v2_file(&a, 32768);
    let (fb, _, lb) = v2_file(&b, 32768);
    assert!(lb.is_empty(), "a one-piece file has no layer");
    assert_eq!(la.len(), 3 * 32);
    let tree = |fa: O, fb: O| dict(vec![("a", fa), ("d", dict(vec![("b", fb)]))]);
    let bytes = v2_torrent(
        tree(fa.clone(), fb.clone()),
        32768,
        vec![(ra.clone(), la.clone())],
    );
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.format(), Format::V2);
    let ih2 = m.info_hash_v2.unwrap();
    assert_eq!(ih2.0, crate::proto::merkle::sha256(&m.info_bytes));
    assert_eq!(m.info_hash, ih2.truncated());
    assert_eq!(InfoHashV2::from_hex(&ih2.to_hex()), Some(ih2));
    let v2 = m.v2.as_ref().unwrap();
    assert_eq!(v2.files[0].path, ["t", "a"]);
    assert_eq!(v2.files[1].path, ["t", "d", "b"]);
    assert_eq!((v2.files[1].first_piece, v2.num_pieces), (3, 4));
    assert_eq!(v2.missing_layers(), 0);
    assert_eq!(m.info.total_length, 80_100);
    assert!(m.info.pieces.is_empty());

    use super::v2::PieceLayerError as P;
    let layer_err = |layers| {
        Metainfo::from_bytes(&v2_torrent(tree(fa.clone(), fb.clone()), 32768, layers)).unwrap_err()
    };
    let mut bad = la.clone();
    bad[40] ^= 1;
    assert!(matches!(
        layer_err(vec![(ra.clone(), bad)]),
        E::PieceLayer(P::RootMismatch { .. })
    ));
    assert!(matches!(
        layer_err(vec![(ra.clone(), la[..64].to_vec())]),
        E::PieceLayer(P::WrongCount {
            expected: 3,
            actual: 2,
            ..
        })
    ));
    assert!(matches!(
        layer_err(vec![(ra.clone(), la[..63].to_vec())]),
        E::PieceLayer(P::NotMultipleOf32(63))
    ));
    assert!(matches!(
        layer_err(vec![(vec![1; 32], la.clone())]),
        E::PieceLayer(P::UnknownRoot(_))
    ));
    // No layers at all: loads, the layer is to be fetched from peers.
    let m = Metainfo::from_bytes(&v2_torrent(tree(fa, fb), 32768, vec![])).unwrap();
    assert_eq!(m.v2.unwrap().missing_layers(), 1);
}

#[test]
fn v2_rules_have_their_errors() {
    let (f, _, _) = v2_file(b"x", 16384);
    let tree = dict(vec![("x", f.clone())]);
    let info = |mv: i64, pl: i64| {
        dict(vec![
            ("file tree", tree.clone()),
            ("meta version", O::Int(mv)),
            ("name", O::bytes("x")),
            ("piece length", O::Int(pl)),
        ])
    };
    assert!(Metainfo::from_bytes(&torrent(info(2, 16384))).is_ok());
    assert_eq!(err(info(3, 16384)), E::UnsupportedMetaVersion(3));
    assert_eq!(err(info(2, 20000)), E::V2PieceLength(20000));
    assert_eq!(err(info(2, 8192)), E::V2PieceLength(8192));
    // Keys out of order (written by hand: the encoder sorts) and a leading
    // zero: the decoder tolerates both for v1, BEP 52 does not.
    let canonical = torrent(info(2, 16384));
    assert!(Metainfo::from_bytes(&canonical).is_ok());
    let replace = |from: &[u8], to: &[u8]| -> Vec<u8> {
        let at = canonical
            .windows(from.len())
            .position(|w| w == from)
            .unwrap();
        [&canonical[..at], to, &canonical[at + from.len()..]].concat()
    };
    let moved = replace(b"4:name1:x", b"");
    let at = moved.windows(11).position(|w| w == b"9:file tree").unwrap();
    let swapped = [&moved[..at], b"4:name1:x", &moved[at..]].concat();
    assert!(matches!(
        Metainfo::from_bytes(&swapped),
        Err(E::NotCanonical(_))
    ));
    let zero = replace(b"i16384e", b"i016384e");
    assert!(matches!(
        Metainfo::from_bytes(&zero),
        Err(E::NotCanonical(_))
    ));
    let file_with = |props: Vec<(&str, O)>| {
        let tree = dict(vec![("x", dict(vec![("", dict(props))]))]);
        let mut i = info(2, 16384);
        if let O::Dict(d) = &mut i {
            d[0].1 = tree;
        }
        match err(i) {
            E::InFileTree { error, .. } => *error,
            e => e,
        }
    };
    assert_eq!(file_with(vec![("length", O::Int(5))]), E::MissingPiecesRoot);
    assert_eq!(
        file_with(vec![
            ("length", O::Int(5)),
            ("pieces root", O::Bytes(vec![0; 32]))
        ]),
        E::ZeroPiecesRoot
    );
    assert_eq!(
        file_with(vec![
            ("length", O::Int(5)),
            ("pieces root", O::Bytes(vec![1; 31]))
        ]),
        E::BadPiecesRoot(31)
    );
    assert_eq!(
        file_with(vec![("attr", O::bytes("p")), ("length", O::Int(5))]),
        E::PadFileInV2
    );
    assert_eq!(
        file_with(vec![
            ("length", O::Int(1 << 44)),
            ("pieces root", O::Bytes(vec![1; 32]))
        ]),
        E::V2FileTooLarge(1 << 44)
    );
    // A file with a sibling beside its "" entry.
    let mut sib = info(2, 16384);
    if let O::Dict(d) = &mut sib {
        d[0].1 = dict(vec![(
            "x",
            dict(vec![
                ("", dict(vec![("length", O::Int(0))])),
                ("y", f.clone()),
            ]),
        )]);
    }
    assert_eq!(err(sib), E::BadFileTree("a file has siblings"));
}

#[test]
fn hybrid_views_must_agree() {
    let data = vec![3u8; 20_000];
    let (f, _, _) = v2_file(&data, 32768);
    let pieces = sha1_smol::Sha1::from(&data[..]).digest().bytes().to_vec();
    let hybrid = |length: i64, key: &str| {
        dict(vec![
            ("file tree", dict(vec![(key, f.clone())])),
            ("length", O::Int(length)),
            ("meta version", O::Int(2)),
            ("name", O::bytes("x")),
            ("piece length", O::Int(32768)),
            ("pieces", O::Bytes(pieces.clone())),
        ])
    };
    let m = Metainfo::from_bytes(&torrent(hybrid(20_000, "x"))).unwrap();
    assert_eq!(m.format(), Format::Hybrid);
    assert_eq!(
        m.info_hash.0,
        sha1_smol::Sha1::from(&m.info_bytes).digest().bytes()
    );
    assert!(m.info_hash_v2.is_some());
    use super::v2::HybridMismatch as H;
    assert!(matches!(
        err(hybrid(20_001, "x")),
        E::HybridMismatch(H::Length { index: 0, .. })
    ));
    assert!(matches!(
        err(hybrid(20_000, "y")),
        E::HybridMismatch(H::Path { index: 0, .. })
    ));
}

#[test]
fn a_v2_torrent_is_transferred_piece_aligned() {
    // a: 80,000 bytes (3 pieces of 32 KiB, the last short), e: empty,
    // b: 100 bytes (one piece), z: 5 bytes (one piece, the last: padded to
    // a whole piece too).
    let a: Vec<u8> = (0..80_000u32).map(|i| (i % 253) as u8).collect();
    let (fa, ra, la) = v2_file(&a, 32768);
    let (fb, _, _) = v2_file(&[7u8; 100], 32768);
    let (fz, _, _) = v2_file(b"zzzzz", 32768);
    let fe = dict(vec![("", dict(vec![("length", O::Int(0))]))]);
    let tree = dict(vec![("a", fa), ("b", fb), ("e", fe), ("z", fz)]);
    let m = Metainfo::from_bytes(&v2_torrent(tree, 32768, vec![(ra, la)])).unwrap();
    let v2 = m.v2.as_ref().unwrap();
    let view = super::v2::aligned_view(&m.info, v2);
    let shape: Vec<(String, u64, u64, bool)> = view
        .files
        .iter()
        .map(|f| (f.path.to_string(), f.offset, f.length, f.pad))
        .collect();
    assert_eq!(
        shape,
        [
            ("t/a".to_string(), 0, 80_000, false),
            ("t/.pad/0".to_string(), 80_000, 3 * 32768 - 80_000, true),
            ("t/b".to_string(), 3 * 32768, 100, false),
            // An empty file takes no piece: it stays where it is, the pad
            // goes before the next file with data.
            ("t/e".to_string(), 3 * 32768 + 100, 0, false),
            ("t/.pad/1".to_string(), 3 * 32768 + 100, 32768 - 100, true),
            ("t/z".to_string(), 4 * 32768, 5, false),
            ("t/.pad/2".to_string(), 4 * 32768 + 5, 32768 - 5, true),
        ]
    );
    assert_eq!(view.total_length, 5 * 32768);
    let layout = crate::proto::layout::Layout::of(&view);
    assert_eq!(u64::from(layout.num_pieces), v2.num_pieces);
    // Every piece of the view is the v2 piece of the same number.
    let bytes_of = |p: u32| -> Vec<u8> {
        let (start, len) = (layout.piece_offset(p), u64::from(layout.piece_len(p)));
        (start..start + len)
            .map(|o| match o {
                o if o < 80_000 => a[o as usize],
                o if (3 * 32768..3 * 32768 + 100).contains(&o) => 7,
                o if (4 * 32768..4 * 32768 + 5).contains(&o) => b'z',
                _ => 0,
            })
            .collect()
    };
    for p in 0..layout.num_pieces {
        let check = v2.piece_check(u64::from(p)).unwrap();
        assert!(check.verify([bytes_of(p).as_slice()]), "piece {p}");
    }
    assert!(!v2.piece_check(0).unwrap().verify([bytes_of(1).as_slice()]));
}
