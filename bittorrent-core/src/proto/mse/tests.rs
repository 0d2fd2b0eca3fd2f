#![allow(clippy::unwrap_used)]
//! Known answers (computed independently with Python's `pow` and a textbook
//! RC4), both machines against each other in every policy combination in
//! memory, and hostile input. Over loopback sockets: `engine/net/mse/tests.rs`.

use super::crypto::{hash, DhKey, Rc4Cipher, KEY_LEN};
use super::handshake::{MAX_PAD, REQ1_WINDOW, VC_WINDOW};
use super::*;

/// The methods the session's `prefer` and `require` policies offer
/// (`Encryption::methods` in the engine).
const PREFER: u32 = CRYPTO_PLAINTEXT | CRYPTO_RC4;
const REQUIRE: u32 = CRYPTO_RC4;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const XA: [u8; 20] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
];
const YA: &str = "96e112dab29e8c5272accb9b17b26887ce54a144a4e3b697c7d159b7a817e556b0918db2b4c658e02a87f7e5fb14b18a553e084cbf3dad2d30f16596ccb982d406258c61b30c5c1dae2ddc60bdbd48d79896312aad63238c39e1a633821eb693";
const YB: &str = "84b23a1e8480b595426889ed448dfc92dc2c293006e0cf39657f70c3eca33cb50bd62ca343a558ca8489018d6986a1d347686b3343453259367421bd5cf35c60d834afa278f71223a4c79cdb9a1bc918e09099b4f5aabd652c226edbb75f88f7";
const S: &str = "1aea23a0431eeac96cfe444068c2674f97b4ac97054382d31445f162f8b1e576cf94207839779de0a37f42501cf321226af0d346b0b7cdb8ff4a0123b228b38dc7e696ead6b6f17264c28d21f1dc74536a94993f7943401a06e4b2f99febf21a";

fn xb() -> [u8; 20] {
    let mut x = [0u8; 20];
    for (i, b) in x.iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    x
}

fn skey() -> [u8; 20] {
    let mut k = [0u8; 20];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    k
}

fn lookup_for(ihs: Vec<[u8; 20]>) -> impl FnMut(&[u8; 20]) -> Option<[u8; 20]> {
    move |h| ihs.iter().find(|ih| req2_hash(ih) == *h).copied()
}

#[test]
fn rc4_known_answer() {
    // The crate's own vector, then our 1024-byte discard on top.
    use rc4::{KeyInit, StreamCipher};
    let mut c = rc4::Rc4::new_from_slice(b"Key").unwrap();
    let mut d = *b"Plaintext";
    c.apply_keystream(&mut d);
    assert_eq!(d.to_vec(), hex("bbf316e8d940af0ad3"));
    let key = hex("0c99649d9fc35843d7cdc8e98a6f7c64732b7c49");
    let mut raw = rc4::Rc4::new_from_slice(&key).unwrap();
    let mut skipped = [0u8; 1032];
    raw.apply_keystream(&mut skipped);
    let mut ours = Rc4Cipher::new(&key.clone().try_into().unwrap());
    let mut z = [0u8; 8];
    ours.apply(&mut z);
    assert_eq!(z, skipped[1024..]);
}

#[test]
fn diffie_hellman_known_answer() {
    let a = DhKey::from_private(&XA);
    let b = DhKey::from_private(&xb());
    assert_eq!(a.public().to_vec(), hex(YA));
    assert_eq!(b.public().to_vec(), hex(YB));
    let s1 = a.shared_secret(b.public()).unwrap();
    let s2 = b.shared_secret(a.public()).unwrap();
    assert_eq!(s1, s2);
    assert_eq!(s1.to_vec(), hex(S));
    assert_eq!(
        hash(&[b"req1", &s1]).to_vec(),
        hex("cd2c416b7ef2eda2576f714f8293a5fcaa97f838")
    );
    assert_eq!(
        hash(&[b"keyA", &s1, &skey()]).to_vec(),
        hex("0c99649d9fc35843d7cdc8e98a6f7c64732b7c49")
    );
    assert_eq!(
        hash(&[b"keyB", &s1, &skey()]).to_vec(),
        hex("411b6f74ca00e935f2d4c01e0caaf6bf34be3642")
    );
}

#[test]
fn bad_public_keys_refused() {
    let a = DhKey::from_private(&XA);
    let p = hex("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563");
    let mut one = [0u8; KEY_LEN];
    one[KEY_LEN - 1] = 1;
    let mut p_minus_1 = p.clone();
    p_minus_1[KEY_LEN - 1] -= 1;
    for bad in [
        vec![0u8; KEY_LEN],
        one.to_vec(),
        p_minus_1,
        p,
        vec![0xff; KEY_LEN],
        vec![2; 10],
    ] {
        assert_eq!(a.shared_secret(&bad), Err(MseError::BadPublicKey));
    }
}

#[test]
fn handshake_bytes_known_answer() {
    // A with XA, no PadA, offers both, IA "abcd"; B with XB, no PadB, RC4 only.
    let (mut a, first) = Initiator::with_key(
        DhKey::from_private(&XA),
        Vec::new(),
        skey(),
        3,
        b"abcd".to_vec(),
    )
    .unwrap();
    assert_eq!(first, hex(YA));
    let mut b = Responder::with_key(DhKey::from_private(&xb()), Vec::new(), CRYPTO_RC4);
    let mut look = lookup_for(vec![[9; 20], skey()]);
    let mut to_a = Vec::new();
    assert!(b.feed(&first, &mut to_a, &mut look).unwrap().is_none());
    assert_eq!(to_a, hex(YB));
    let mut to_b = Vec::new();
    assert!(a.feed(&to_a, &mut to_b).unwrap().is_none());
    let mut want = hex("cd2c416b7ef2eda2576f714f8293a5fcaa97f838");
    want.extend(hex("5e03f4458e2fc717662e16a51bb823d56c3454d1"));
    want.extend(hex("4f5ec8edff0380ad5cab88c3a693497d86f64801"));
    assert_eq!(to_b, want);
    let mut step4 = Vec::new();
    let eb = b.feed(&to_b, &mut step4, &mut look).unwrap().unwrap();
    assert_eq!(step4, hex("b61e39be0a2bf3cea7a1d8871478"));
    assert_eq!(eb.method, Method::Rc4);
    assert_eq!(eb.info_hash, skey());
    assert_eq!(eb.payload, b"abcd");
    let ea = a.feed(&step4, &mut Vec::new()).unwrap().unwrap();
    assert_eq!(ea.method, Method::Rc4);
    assert!(ea.payload.is_empty());
}

/// Run both machines in memory, delivering `chunk` bytes at a time, with
/// `extra_a`/`extra_b` payload following each side's handshake.
fn run_pair(
    provide: u32,
    accept: u32,
    chunk: usize,
) -> (Result<Established, MseError>, Result<Established, MseError>) {
    let ia = b"\x13BitTorrent protocol-handshake".to_vec();
    let (mut a, mut to_b) = Initiator::new(skey(), provide, ia).unwrap();
    let mut b = Responder::new(accept);
    let mut look = lookup_for(vec![[7; 20], skey(), [8; 20]]);
    let mut to_a: Vec<u8> = Vec::new();
    let (mut ra, mut rb) = (None, None);
    for _ in 0..10_000 {
        if rb.is_none() && !to_b.is_empty() {
            let n = chunk.min(to_b.len());
            let piece: Vec<u8> = to_b.drain(..n).collect();
            match b.feed(&piece, &mut to_a, &mut look) {
                Ok(Some(e)) => rb = Some(Ok(e)),
                Ok(None) => {}
                Err(e) => rb = Some(Err(e)),
            }
        }
        if ra.is_none() && !to_a.is_empty() {
            let n = chunk.min(to_a.len());
            let piece: Vec<u8> = to_a.drain(..n).collect();
            match a.feed(&piece, &mut to_b) {
                Ok(Some(e)) => ra = Some(Ok(e)),
                Ok(None) => {}
                Err(e) => ra = Some(Err(e)),
            }
        }
        if matches!(rb, Some(Err(_))) {
            return (ra.unwrap_or(Err(MseError::Closed)), rb.unwrap());
        }
        if ra.is_some() && rb.is_some() {
            break;
        }
    }
    (
        ra.unwrap_or(Err(MseError::Closed)),
        rb.unwrap_or(Err(MseError::Closed)),
    )
}

#[test]
fn every_policy_combination_in_memory() {
    for (ours, theirs, want) in [
        (PREFER, PREFER, Some(Method::Plaintext)),
        (PREFER, REQUIRE, Some(Method::Rc4)),
        (REQUIRE, PREFER, Some(Method::Rc4)),
        (REQUIRE, REQUIRE, Some(Method::Rc4)),
    ] {
        for chunk in [1, 7, 100, 4096] {
            let (a, b) = run_pair(ours, theirs, chunk);
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(
                Some(a.method),
                want,
                "{ours:#x} -> {theirs:#x}, chunk {chunk}"
            );
            assert_eq!(b.method, a.method);
            assert_eq!(b.info_hash, skey());
            assert_eq!(b.payload, b"\x13BitTorrent protocol-handshake");
            assert_eq!(a.ciphers.is_some(), a.method == Method::Rc4);
        }
    }
    // An initiator offering only plaintext meets a responder requiring RC4.
    let (_, b) = run_pair(CRYPTO_PLAINTEXT, CRYPTO_RC4, 64);
    assert_eq!(b.unwrap_err(), MseError::NoCommonMethod(CRYPTO_PLAINTEXT));
}

#[test]
fn unknown_torrent_refused() {
    let (mut a, first) = Initiator::new([0xee; 20], 3, Vec::new()).unwrap();
    let mut b = Responder::new(3);
    let mut look = lookup_for(vec![skey()]);
    let mut to_a = Vec::new();
    b.feed(&first, &mut to_a, &mut look).unwrap();
    let mut to_b = Vec::new();
    a.feed(&to_a, &mut to_b).unwrap();
    assert_eq!(
        b.feed(&to_b, &mut Vec::new(), &mut look).unwrap_err(),
        MseError::UnknownTorrent
    );
}

#[test]
fn garbage_and_long_padding_refused_within_limits() {
    // Random bytes: no req1 within the window. The responder must decide
    // by REQ1_WINDOW bytes, not later.
    let mut garbage = vec![0u8; 4096];
    crypto::fill_random(&mut garbage);
    garbage[0] = 0x80; // a valid-looking key
    let mut b = Responder::new(3);
    let mut out = Vec::new();
    let mut look = lookup_for(vec![skey()]);
    let mut fed = 0;
    let err = loop {
        match b.feed(&garbage[fed..fed + 1], &mut out, &mut look) {
            Ok(None) => fed += 1,
            Ok(Some(_)) => panic!("garbage accepted"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, MseError::SyncNotFound("req1"));
    assert_eq!(fed + 1, REQ1_WINDOW);

    // A real initiator with a PadA one byte too long.
    let (mut a, mut first) =
        Initiator::with_key(DhKey::generate(), vec![0; MAX_PAD], skey(), 3, Vec::new()).unwrap();
    first.push(0);
    let mut b = Responder::new(3);
    let mut to_a = Vec::new();
    b.feed(&first, &mut to_a, &mut look).unwrap();
    let mut to_b = Vec::new();
    a.feed(&to_a, &mut to_b).unwrap();
    assert_eq!(
        b.feed(&to_b, &mut Vec::new(), &mut look).unwrap_err(),
        MseError::SyncNotFound("req1")
    );

    // The initiator: a responder answering with Yb and then only padding.
    let (mut a, _) = Initiator::new(skey(), 3, Vec::new()).unwrap();
    let mut reply = DhKey::generate().public().to_vec();
    reply.extend(vec![0u8; 1000]);
    let mut out = Vec::new();
    let mut fed = 0;
    let err = loop {
        match a.feed(&reply[fed..fed + 1], &mut out) {
            Ok(None) => fed += 1,
            Ok(Some(_)) => panic!("accepted"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, MseError::SyncNotFound("VC"));
    assert_eq!(fed + 1, VC_WINDOW);
}

/// A responder done by hand, to send A wrong step-4 fields.
fn step4_to(select: u32, pad_len: u16) -> Result<Option<Established>, MseError> {
    let (mut a, first) = Initiator::new(skey(), CRYPTO_RC4, Vec::new()).unwrap();
    let b = DhKey::generate();
    let s = b.shared_secret(&first[..KEY_LEN]).unwrap();
    let mut c = crypto::Ciphers::derive(&s, &skey(), false);
    let mut reply = b.public().to_vec();
    let mut tail = [0u8; 14];
    tail[8..12].copy_from_slice(&select.to_be_bytes());
    tail[12..].copy_from_slice(&pad_len.to_be_bytes());
    c.enc.apply(&mut tail);
    reply.extend_from_slice(&tail);
    a.feed(&reply, &mut Vec::new())
}

#[test]
fn bad_select_and_long_pad_d_refused() {
    assert!(step4_to(CRYPTO_RC4, 0).unwrap().is_some());
    assert_eq!(
        step4_to(CRYPTO_PLAINTEXT, 0).unwrap_err(),
        MseError::BadSelect(1)
    );
    assert_eq!(step4_to(3, 0).unwrap_err(), MseError::BadSelect(3));
    assert_eq!(step4_to(0, 0).unwrap_err(), MseError::BadSelect(0));
    assert_eq!(
        step4_to(CRYPTO_RC4, 513).unwrap_err(),
        MseError::TooLong("PadD")
    );
    // 512 bytes of PadD is allowed: the machine waits for them.
    assert!(step4_to(CRYPTO_RC4, 512).unwrap().is_none());
}

#[test]
fn bad_vc_and_long_pad_c_refused() {
    for (vc_byte, padc, want) in [
        (1u8, 0u16, MseError::BadVc),
        (0, 513, MseError::TooLong("PadC")),
    ] {
        let a = DhKey::generate();
        let mut b = Responder::new(3);
        let mut look = lookup_for(vec![skey()]);
        let mut yb = Vec::new();
        b.feed(a.public(), &mut yb, &mut look).unwrap();
        let s = a.shared_secret(&yb[..KEY_LEN]).unwrap();
        let mut c = crypto::Ciphers::derive(&s, &skey(), true);
        let mut msg = hash(&[b"req1", &s]).to_vec();
        let r2 = req2_hash(&skey());
        let r3 = hash(&[b"req3", &s]);
        msg.extend(r2.iter().zip(r3).map(|(x, y)| x ^ y));
        let mut tail = [0u8; 14];
        tail[0] = vc_byte;
        tail[8..12].copy_from_slice(&3u32.to_be_bytes());
        tail[12..].copy_from_slice(&padc.to_be_bytes());
        c.enc.apply(&mut tail);
        msg.extend_from_slice(&tail);
        assert_eq!(b.feed(&msg, &mut Vec::new(), &mut look).unwrap_err(), want);
    }
}

#[test]
fn random_input_never_panics_and_stays_bounded() {
    // Both machines, fed random bytes in random chunks, after a valid start
    // (so the encrypted fields see random values) or from the beginning.
    let a = DhKey::from_private(&XA);
    let b = DhKey::from_private(&xb());
    let s = a.shared_secret(b.public()).unwrap();
    let mut valid = a.public().to_vec();
    valid.extend_from_slice(&hash(&[b"req1", &s]));
    let r3 = hash(&[b"req3", &s]);
    valid.extend(req2_hash(&skey()).iter().zip(r3).map(|(x, y)| x ^ y));
    let mut rng = [0u8; 4096];
    for round in 0..300 {
        crypto::fill_random(&mut rng);
        let len = usize::from(rng[0]) * 8 + usize::from(rng[1]);
        let chunk = usize::from(rng[2] % 64) + 1;
        let mut input = Vec::new();
        if round % 2 == 0 {
            input.extend_from_slice(&valid);
        }
        input.extend_from_slice(&rng[3..3 + len.min(4000)]);
        let mut r = Responder::with_key(b.clone(), Vec::new(), 3);
        let mut look = lookup_for(vec![skey()]);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            match r.feed(piece, &mut out, &mut look) {
                Ok(None) => {}
                Ok(Some(e)) => {
                    assert!(e.payload.len() <= input.len());
                    break;
                }
                Err(_) => break,
            }
        }
        assert!(out.len() <= KEY_LEN + 14);
        let (mut i, _) = Initiator::with_key(a.clone(), Vec::new(), skey(), 3, Vec::new()).unwrap();
        let mut reply = if round % 2 == 0 {
            b.public().to_vec()
        } else {
            Vec::new()
        };
        reply.extend_from_slice(&rng[3..3 + len.min(4000)]);
        let mut out = Vec::new();
        for piece in reply.chunks(chunk) {
            match i.feed(piece, &mut out) {
                Ok(None) => {}
                Ok(Some(e)) => {
                    assert!(e.payload.len() <= reply.len());
                    break;
                }
                Err(_) => break,
            }
        }
        assert!(out.len() <= 20 + 20 + 16);
    }
}
