//! A hybrid torrent (BEP 52 v1+v2) without its piece layers (from a
//! `btih`+`btmh` magnet link, or a `.torrent` lacking `piece layers`)
//! downloads at once over the v1 wire, checked by SHA-1, while its
//! `hybrid layers` thread fetches the layers from v2 peers with hash
//! requests: from our seeder they arrive, are verified against each
//! file's root and saved with the `.torrent` in the state directory; from
//! v1-only peers they never come and the download completes anyway; a
//! peer sending wrong layer hashes is refused (never asked again) and the
//! download goes on.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::hash_msg::{HashMessage, HashRequest};
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::proto::wire::{
    FrameDecoder, Handshake, Message, HANDSHAKE_LEN, MAX_FRAME, RESERVED_V2,
};
use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The files written: path and bytes.
type Files = Vec<(PathBuf, Vec<u8>)>;

/// A hybrid of directory `<dir>/t`: two files of several 16 KiB pieces
/// each (so two piece layers), a pad file between them.
fn hybrid(name: &str) -> (Metainfo, PathBuf, Files) {
    let (mi, dir, files, _) = hybrid_with_layers(name, 31);
    (mi, dir, files)
}

/// [`hybrid`] with data from `seed` (harness's `hybrid_seeded`, in `t`),
/// its piece layers all present; the torrent's bytes too.
fn hybrid_with_layers(name: &str, seed: u64) -> (Metainfo, PathBuf, Files, Vec<u8>) {
    let made = hybrid_seeded(name, "t", seed);
    assert_eq!(made.0.v2.as_ref().unwrap().missing_layers(), 0);
    made
}

/// `mi` as a `.torrent` without `piece layers` gives it.
fn without_layers(mi: &Metainfo) -> Metainfo {
    let mut bare = mi.clone();
    for l in bare.v2.as_mut().unwrap().piece_layers.iter_mut() {
        *l = None;
    }
    assert_eq!(bare.v2.as_ref().unwrap().missing_layers(), 2);
    bare
}

/// The torrent's v1 byte stream (pad files as zeros), for a scripted peer.
fn stream_of(mi: &Metainfo, dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &mi.info.files {
        if f.pad {
            out.resize(out.len() + f.length as usize, 0);
        } else {
            let rel: PathBuf = f.path.iter().collect();
            out.extend_from_slice(&std::fs::read(dir.join(rel)).unwrap());
        }
    }
    out
}

fn assert_same_files(from: &Path, to: &Path, files: &Files) {
    for (p, d) in files {
        let rel = p.strip_prefix(from).unwrap();
        assert_eq!(
            &std::fs::read(to.join(rel)).unwrap(),
            d,
            "{}",
            rel.display()
        );
    }
}

/// A hybrid's `btih`+`btmh` magnet link: the info dictionary from our
/// seeder, the download at once, the two piece layers by hash requests
/// (verified, counted in the status), and the `.torrent` saved in the
/// state directory carries them.
#[test]
fn a_hybrid_magnet_link_fetches_its_piece_layers_and_saves_them() {
    let (mi, dir, files) = hybrid("hyl-magnet");
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let uri = format!(
        "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}&dn=t",
        mi.info_hash,
        mi.info_hash_v2.unwrap()
    );
    let magnet = Magnet::parse(&uri).unwrap();
    let down = temp_dir("hyl-magnet-leech");
    let state = down.join("state");
    let st2 = state.clone();
    let leecher = session_with(move |c| c.state_dir = Some(st2));
    leecher
        .add(AddTorrent::magnet(magnet, &down).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_same_files(&dir, &down, &files);
    let fetched = wait_until(Duration::from_secs(30), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| (s.piece_layers_missing, s.piece_layers_fetched) == (0, 2))
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(fetched, "{st:?}");
    assert_eq!((st.hash_failures, st.banned), (0, 0), "{st:?}");
    let path = state
        .join("torrents")
        .join(format!("{}.torrent", mi.info_hash));
    let saved = wait_until(Duration::from_secs(10), || {
        std::fs::read(&path)
            .ok()
            .and_then(|b| Metainfo::from_bytes(&b).ok())
            .is_some_and(|back| back.v2 == mi.v2)
    });
    assert!(saved, "the saved .torrent lacks the piece layers");
    drop(leecher);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// Give-up path: a hybrid without layers whose only peer speaks v1 (it
/// answers every handshake with the v1 hash, so the v2 hash is refused)
/// downloads at once, byte-identical, checked by SHA-1; the layers stay
/// missing and nothing waits for them.
#[test]
fn a_hybrid_without_layers_completes_from_a_v1_only_peer() {
    let (mi, dir, files) = hybrid("hyl-v1only");
    let peer = scripted_peer(
        &mi,
        stream_of(&mi, &dir),
        Script::FirstPieces(mi.info.pieces.len() as u32),
    );
    let down = temp_dir("hyl-v1only-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(without_layers(&mi), &down).peers(vec![peer.addr]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_same_files(&dir, &down, &files);
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(
        (st.piece_layers_missing, st.piece_layers_fetched),
        (2, 0),
        "{st:?}"
    );
    drop(leecher);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// A peer that answers handshakes with `alias` (the hybrid's truncated v2
/// hash) and every hash request with hashes of the right count and wrong
/// values; counts the handshakes naming `alias` (the layer fetcher's: the
/// torrent's own connection names the v1 hash).
fn liar(alias: [u8; 20]) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let n = asked.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let n = n.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                let mut hs = [0u8; HANDSHAKE_LEN];
                let Ok(theirs) = c.read_exact(&mut hs).map(|()| Handshake::decode(&hs)) else {
                    return;
                };
                if theirs.is_ok_and(|h| h.info_hash == alias) {
                    n.fetch_add(1, Ordering::SeqCst);
                }
                let mut hello = Handshake::new(alias, *b"-XX0001-liarliarliar");
                hello.reserved[RESERVED_V2.0] |= RESERVED_V2.1;
                let _ = c.write_all(&hello.encode());
                let mut dec = FrameDecoder::new(MAX_FRAME);
                let mut buf = vec![0u8; 65536];
                loop {
                    while let Ok(Some(m)) = dec.next_message() {
                        if let Message::Hash { id: 21, payload } = m {
                            let request = HashRequest::header(&payload).unwrap();
                            let k = request.length as usize + request.uncles();
                            let reply = HashMessage::Hashes {
                                request,
                                hashes: vec![[0xAB; 32]; k],
                            };
                            let _ = c.write_all(&reply.to_frame());
                        }
                    }
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => dec.feed(&buf[..k]),
                    }
                }
            });
        }
    });
    (addr, asked)
}

/// A peer sending piece-layer hashes that do not prove against the file's
/// root is refused: asked once, never again, its hashes not used (the
/// layers stay missing); the download from a v1 peer is not stopped.
#[test]
fn wrong_layer_hashes_for_a_hybrid_are_refused_and_the_download_goes_on() {
    let (mi, dir, files) = hybrid("hyl-liar");
    let alias = mi.info_hash_v2.unwrap().truncated().0;
    let (bad, asked) = liar(alias);
    let peer = scripted_peer(
        &mi,
        stream_of(&mi, &dir),
        Script::FirstPieces(mi.info.pieces.len() as u32),
    );
    let down = temp_dir("hyl-liar-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(without_layers(&mi), &down).peers(vec![bad, peer.addr]))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || asked.load(Ordering::SeqCst)
            >= 1),
        "the liar was never asked for layers"
    );
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_same_files(&dir, &down, &files);
    // Long enough for a retry after a plain failure (1 s, then 2 s).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the liar was asked again");
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(
        (st.piece_layers_missing, st.piece_layers_fetched),
        (2, 0),
        "{st:?}"
    );
    assert_eq!(st.hash_failures, 0, "{st:?}");
    drop(leecher);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// One hash request to `to` on a v2 connection for the hybrid `mi` (named
/// by its truncated v2 hash, with the v2 bit): the first hash message back.
fn ask_hashes(to: SocketAddr, mi: &Metainfo, request: HashRequest) -> HashMessage {
    let alias = mi.info_hash_v2.unwrap().truncated().0;
    let mut c = v2_connect(to, alias, *b"-XX0001-thirdpeer001");
    c.write_all(&HashMessage::Request(request).to_frame())
        .unwrap();
    let mut dec = FrameDecoder::new(MAX_FRAME);
    hash_replies(&mut c, &mut dec, 1).remove(0)
}

/// The leecher of `mi` (given without its layers) completes from a v1-only
/// scripted peer serving `stream` by SHA-1 alone while its only v2 peer,
/// at a port still closed, cannot be reached; then our seeder of `seeded`
/// (with the layers) starts on that port and the layers come.
fn layers_after_completion(
    name: &str,
    mi: &Metainfo,
    stream: Vec<u8>,
    seeded: &Metainfo,
) -> (
    bittorrent_core::Session,
    bittorrent_core::Session,
    PathBuf,
    PathBuf,
) {
    let peer = scripted_peer(mi, stream, Script::FirstPieces(mi.info.pieces.len() as u32));
    // The seeder's session listens from the start (no port to race for
    // with the other tests' sessions) but holds no torrent yet: the
    // leecher's dials to it are refused until `seeded` is added.
    let seeder = session();
    let later: SocketAddr = ([127, 0, 0, 1], seeder.local_addr_v4().port()).into();
    let down = temp_dir(&format!("{name}-leech"));
    let leecher = session();
    leecher
        .add(AddTorrent::new(without_layers(mi), &down).peers(vec![peer.addr, later]))
        .unwrap();
    wait_phase(&leecher, mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.pieces_have, st.pieces_total, "{st:?}");
    assert_eq!(
        (st.piece_layers_fetched, st.pieces_v2_rechecked),
        (0, 0),
        "{st:?}"
    );
    let empty = temp_dir(&format!("{name}-seed"));
    // It holds the layers and wants no data: if it downloaded from the
    // leecher, the forged pieces would fail its own v2 check and it would
    // ban the leecher's address before the layers were asked of it.
    let mut add = AddTorrent::new(seeded.clone(), &empty);
    add.file_priorities = Some(vec![
        bittorrent_core::FilePriority::Skip;
        seeded.info.files.len()
    ]);
    seeder.add(add).unwrap();
    let fetched = wait_until(Duration::from_secs(90), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.piece_layers_fetched == 2)
    });
    assert!(fetched, "{:?}", leecher.status(&mi.info_hash));
    (leecher, seeder, down, empty)
}

/// Issue 22 h22c: a hybrid's pieces verified by SHA-1 before its layers
/// came are checked against them once they come (all 11 pieces: both files
/// span several pieces), nothing fails; and a third peer asking the
/// running leecher for a piece layer is refused before the layers came and
/// answered after, with hashes that match the torrent's layer.
#[test]
fn layers_arriving_late_recheck_verified_pieces_and_are_served() {
    let (mi, dir, files) = hybrid("hyl-late");
    let v2 = mi.v2.as_ref().unwrap();
    let root = v2.files[0].pieces_root.unwrap();
    // a.bin: 100,000 bytes, 7 pieces of 16 KiB (the piece layer is the
    // block layer, 8 wide padded); its proof: the 3 layers above.
    let whole = HashRequest {
        pieces_root: root,
        base_layer: 0,
        index: 0,
        length: 8,
        proof_layers: 2,
    };
    let peer = scripted_peer(
        &mi,
        stream_of(&mi, &dir),
        Script::FirstPieces(mi.info.pieces.len() as u32),
    );
    // The seeder's session has no torrent yet: the leecher answers
    // nothing.
    let seeder = session();
    let port = seeder.local_addr_v4().port();
    let down = temp_dir("hyl-late-leech");
    let leecher = session();
    leecher
        .add(
            AddTorrent::new(without_layers(&mi), &down)
                .peers(vec![peer.addr, ([127, 0, 0, 1], port).into()]),
        )
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let before = ask_hashes(leecher.local_addr_v4(), &mi, whole);
    assert!(matches!(before, HashMessage::Reject(_)), "{before:?}");
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    let rechecked = wait_until(Duration::from_secs(90), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.piece_layers_fetched == 2 && s.pieces_v2_rechecked == s.pieces_total)
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(rechecked, "{st:?}");
    assert_eq!(
        (st.pieces_have, st.hash_failures),
        (st.pieces_total, 0),
        "{st:?}"
    );
    assert_eq!(st.phase, Phase::Seeding);
    assert_same_files(&dir, &down, &files);
    let HashMessage::Hashes { hashes, .. } = ask_hashes(leecher.local_addr_v4(), &mi, whole) else {
        panic!("the running hybrid does not serve the layers it fetched");
    };
    let layer = v2.piece_layers[0].as_ref().unwrap();
    assert_eq!(&hashes[..7], &layer[..], "not the torrent's piece layer");
    drop((leecher, seeder));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// A planted inconsistency: a "hybrid" whose v1 `pieces` are those of
/// data B and whose v2 half (roots and layers) is that of data A. The
/// leecher completes with data B by SHA-1 alone; when the layers come
/// (from our seeder, which holds them and no data) every piece fails its
/// v2 hash: the views disagree, neither is trusted, the pieces are missing
/// again and the torrent is downloading, not seeding.
#[test]
fn a_piece_that_passed_sha1_but_fails_a_late_layer_is_fetched_again() {
    use bittorrent_core::proto::bencode::{decode, OwnedValue};
    let (mi_a, dir_a, _, bytes_a) = hybrid_with_layers("hyl-forge-a", 11);
    let (mi_b, dir_b, _, _) = hybrid_with_layers("hyl-forge-b", 41);
    let OwnedValue::Dict(mut top) = decode(&bytes_a).unwrap().to_owned_value() else {
        panic!("not a dict")
    };
    for (k, v) in top.iter_mut() {
        if let (b"info", OwnedValue::Dict(info)) = (k.as_slice(), v) {
            for (k, v) in info.iter_mut() {
                if k.as_slice() == b"pieces" {
                    *v = OwnedValue::Bytes(mi_b.info.pieces.concat());
                }
            }
        }
    }
    let forged = Metainfo::from_bytes(&OwnedValue::Dict(top).to_bytes()).unwrap();
    assert_eq!(forged.v2, mi_a.v2);
    let (leecher, seeder, down, empty) =
        layers_after_completion("hyl-forge", &forged, stream_of(&forged, &dir_b), &forged);
    let total = forged.info.pieces.len() as u32;
    let refused = wait_until(Duration::from_secs(30), || {
        leecher
            .status(&forged.info_hash)
            .is_some_and(|s| s.pieces_v2_rechecked == total && s.pieces_have == 0)
    });
    let st = leecher.status(&forged.info_hash).unwrap();
    assert!(refused, "{st:?}");
    assert!(st.hash_failures >= total, "{st:?}");
    assert_ne!(st.phase, Phase::Seeding, "{st:?}");
    drop((leecher, seeder));
    for d in [dir_a, dir_b, down, empty] {
        let _ = std::fs::remove_dir_all(d);
    }
}
