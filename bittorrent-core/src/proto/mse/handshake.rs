//! The MSE handshake as two pure state machines, [`Initiator`] (A, the side
//! that dialled) and [`Responder`] (B). They take bytes and give bytes: no
//! sockets, so they are tested and fuzzed without I/O. Every buffer they
//! keep is bounded by the limits of the specification.

use super::crypto::{fill_random, hash, random_upto, Ciphers, DhKey, KEY_LEN};
use super::MseError;

/// The verification constant: 8 zero bytes.
pub const VC: [u8; 8] = [0; 8];
/// `crypto_provide` / `crypto_select` bit: the payload in clear.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
/// `crypto_provide` / `crypto_select` bit: the payload RC4-encrypted.
pub const CRYPTO_RC4: u32 = 0x02;
/// Longest padding (PadA, PadB, PadC, PadD).
pub const MAX_PAD: usize = 512;
/// Longest initial payload (its length is a 16-bit field).
pub const MAX_IA: usize = u16::MAX as usize;
/// B gives up if `HASH('req1', S)` has not begun within this many bytes
/// of the start (Ya, PadA, then the 20-byte hash: 96 + 512 + 20).
pub const REQ1_WINDOW: usize = KEY_LEN + MAX_PAD + 20;
/// A gives up if `ENCRYPT(VC)` has not ended within this many bytes of the
/// start (Yb, PadB, then the 8 bytes: 96 + 512 + 8).
pub const VC_WINDOW: usize = KEY_LEN + MAX_PAD + 8;

/// How the payload travels after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// In clear (the handshake only obfuscated the start).
    Plaintext,
    /// RC4, continuing the handshake's streams.
    Rc4,
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// The method both sides use from now on.
    pub method: Method,
    /// The torrent (SKEY) the connection is for.
    pub info_hash: [u8; 20],
    /// The RC4 streams, positioned for the payload (`Some` for [`Method::Rc4`]).
    pub ciphers: Option<Ciphers>,
    /// Payload bytes that arrived with the handshake, already decrypted: for
    /// a responder the initiator's initial payload (IA) first.
    pub payload: Vec<u8>,
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn xor20(a: &[u8], b: &[u8; 20]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = a[i] ^ b[i];
    }
    out
}

fn random_pad() -> Vec<u8> {
    let mut pad = vec![0u8; random_upto(MAX_PAD)];
    fill_random(&mut pad);
    pad
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Finish: what is left in `buf` is payload (decrypted with RC4).
fn established(
    method: Method,
    info_hash: [u8; 20],
    mut ciphers: Ciphers,
    mut buf: Vec<u8>,
) -> Established {
    match method {
        Method::Rc4 => {
            ciphers.dec.apply(&mut buf);
            Established {
                method,
                info_hash,
                ciphers: Some(ciphers),
                payload: buf,
            }
        }
        Method::Plaintext => Established {
            method,
            info_hash,
            ciphers: None,
            payload: buf,
        },
    }
}

enum IState {
    /// Waiting for Yb (96 bytes).
    Yb,
    /// Scanning PadB for ENCRYPT(VC); `skipped` bytes of Yb+PadB are gone.
    Vc {
        enc_vc: [u8; 8],
        skipped: usize,
    },
    /// crypto_select and len(PadD): 6 bytes.
    Select,
    /// PadD.
    PadD {
        select: u32,
        len: usize,
    },
    Done,
}

/// The side that opened the connection (A).
pub struct Initiator {
    dh: DhKey,
    skey: [u8; 20],
    provide: u32,
    ia: Vec<u8>,
    buf: Vec<u8>,
    state: IState,
    ciphers: Option<Ciphers>,
}

impl Initiator {
    /// A handshake for torrent `skey` offering the methods in `provide`
    /// (`CRYPTO_PLAINTEXT` and/or `CRYPTO_RC4`), with `ia` (usually our
    /// BitTorrent handshake) as the initial payload. Returns the machine and
    /// the first message to send (Ya, PadA).
    pub fn new(
        skey: [u8; 20],
        provide: u32,
        ia: Vec<u8>,
    ) -> Result<(Initiator, Vec<u8>), MseError> {
        Initiator::with_key(DhKey::generate(), random_pad(), skey, provide, ia)
    }

    /// Like [`Initiator::new`] with a given key and PadA (for tests).
    pub fn with_key(
        dh: DhKey,
        pad: Vec<u8>,
        skey: [u8; 20],
        provide: u32,
        ia: Vec<u8>,
    ) -> Result<(Initiator, Vec<u8>), MseError> {
        if ia.len() > MAX_IA {
            return Err(MseError::TooLong("initial payload"));
        }
        if pad.len() > MAX_PAD {
            return Err(MseError::TooLong("padding"));
        }
        if provide & (CRYPTO_PLAINTEXT | CRYPTO_RC4) == 0 {
            return Err(MseError::NoCommonMethod(provide));
        }
        let mut first = dh.public().to_vec();
        first.extend_from_slice(&pad);
        let me = Initiator {
            dh,
            skey,
            provide,
            ia,
            buf: Vec::new(),
            state: IState::Yb,
            ciphers: None,
        };
        Ok((me, first))
    }

    /// Take bytes from B; whatever must be sent goes to `out`. Returns the
    /// result once the handshake is complete (then feed no more).
    pub fn feed(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Established>, MseError> {
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.state {
                IState::Yb => {
                    if self.buf.len() < KEY_LEN {
                        return Ok(None);
                    }
                    let s = self.dh.shared_secret(&self.buf[..KEY_LEN])?;
                    let mut c = Ciphers::derive(&s, &self.skey, true);
                    out.extend_from_slice(&hash(&[b"req1", &s]));
                    out.extend_from_slice(&xor20(
                        &hash(&[b"req2", &self.skey]),
                        &hash(&[b"req3", &s]),
                    ));
                    let start = out.len();
                    out.extend_from_slice(&VC);
                    out.extend_from_slice(&self.provide.to_be_bytes());
                    out.extend_from_slice(&0u16.to_be_bytes()); // len(PadC)
                    out.extend_from_slice(&(self.ia.len() as u16).to_be_bytes());
                    out.extend_from_slice(&self.ia);
                    c.enc.apply(&mut out[start..]);
                    self.ia = Vec::new();
                    let mut enc_vc = VC;
                    c.dec.apply(&mut enc_vc);
                    self.ciphers = Some(c);
                    self.buf.drain(..KEY_LEN);
                    self.state = IState::Vc {
                        enc_vc,
                        skipped: KEY_LEN,
                    };
                }
                IState::Vc { enc_vc, skipped } => {
                    if let Some(p) = find(&self.buf, &enc_vc[..]) {
                        if *skipped + p + 8 > VC_WINDOW {
                            return Err(MseError::SyncNotFound("VC"));
                        }
                        self.buf.drain(..p + 8);
                        self.state = IState::Select;
                    } else if *skipped + self.buf.len() >= VC_WINDOW {
                        return Err(MseError::SyncNotFound("VC"));
                    } else {
                        // Keep the last 7 bytes (a VC may straddle reads).
                        let drop = self.buf.len().saturating_sub(7);
                        *skipped += drop;
                        self.buf.drain(..drop);
                        return Ok(None);
                    }
                }
                IState::Select => {
                    if self.buf.len() < 6 {
                        return Ok(None);
                    }
                    let Some(c) = self.ciphers.as_mut() else {
                        return Err(MseError::Internal);
                    };
                    let mut h = [0u8; 6];
                    h.copy_from_slice(&self.buf[..6]);
                    c.dec.apply(&mut h);
                    let select = be_u32(&h[..4]);
                    let len = be_u16(&h[4..]);
                    // Exactly one method, and one we offered.
                    if !(select == CRYPTO_PLAINTEXT || select == CRYPTO_RC4)
                        || select & self.provide == 0
                    {
                        return Err(MseError::BadSelect(select));
                    }
                    if len > MAX_PAD {
                        return Err(MseError::TooLong("PadD"));
                    }
                    self.buf.drain(..6);
                    self.state = IState::PadD { select, len };
                }
                IState::PadD { select, len } => {
                    if self.buf.len() < *len {
                        return Ok(None);
                    }
                    let (select, len) = (*select, *len);
                    let Some(mut c) = self.ciphers.take() else {
                        return Err(MseError::Internal);
                    };
                    c.dec.apply(&mut self.buf[..len]);
                    self.buf.drain(..len);
                    self.state = IState::Done;
                    let method = if select == CRYPTO_RC4 {
                        Method::Rc4
                    } else {
                        Method::Plaintext
                    };
                    let rest = std::mem::take(&mut self.buf);
                    return Ok(Some(established(method, self.skey, c, rest)));
                }
                IState::Done => return Err(MseError::Internal),
            }
        }
    }
}

enum RState {
    /// Waiting for Ya (96 bytes).
    Ya,
    /// Scanning PadA for HASH('req1', S); `skipped` bytes are gone.
    Req1 {
        req1: [u8; 20],
        skipped: usize,
    },
    /// HASH('req2', SKEY) xor HASH('req3', S): 20 bytes.
    Skey,
    /// VC, crypto_provide, len(PadC): 14 bytes.
    Header,
    /// PadC.
    PadC {
        len: usize,
    },
    /// len(IA): 2 bytes.
    IaLen,
    /// IA.
    Ia {
        len: usize,
    },
    Done,
}

/// The side that accepted the connection (B).
pub struct Responder {
    dh: DhKey,
    pad: Vec<u8>,
    accept: u32,
    buf: Vec<u8>,
    state: RState,
    secret: [u8; KEY_LEN],
    skey: [u8; 20],
    provide: u32,
    ciphers: Option<Ciphers>,
    ia: Vec<u8>,
}

impl Responder {
    /// A responder accepting the methods in `accept`. When the initiator
    /// offers both and we accept both, the payload goes in clear (as
    /// libtorrent does by default: bulk transfers cost no cipher).
    pub fn new(accept: u32) -> Responder {
        Responder::with_key(DhKey::generate(), random_pad(), accept)
    }

    /// Like [`Responder::new`] with a given key and PadB (for tests and fuzzing).
    pub fn with_key(dh: DhKey, pad: Vec<u8>, accept: u32) -> Responder {
        let mut pad = pad;
        pad.truncate(MAX_PAD);
        Responder {
            dh,
            pad,
            accept,
            buf: Vec::new(),
            state: RState::Ya,
            secret: [0; KEY_LEN],
            skey: [0; 20],
            provide: 0,
            ciphers: None,
            ia: Vec::new(),
        }
    }

    /// Take bytes from A; whatever must be sent goes to `out`. `lookup` maps
    /// `HASH('req2', SKEY)` to the info-hash of one of our torrents (see
    /// [`super::req2_hash`]). Returns the result once complete.
    pub fn feed(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        lookup: &mut dyn FnMut(&[u8; 20]) -> Option<[u8; 20]>,
    ) -> Result<Option<Established>, MseError> {
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.state {
                RState::Ya => {
                    if self.buf.len() < KEY_LEN {
                        return Ok(None);
                    }
                    self.secret = self.dh.shared_secret(&self.buf[..KEY_LEN])?;
                    out.extend_from_slice(self.dh.public());
                    out.extend_from_slice(&self.pad);
                    self.pad = Vec::new();
                    self.buf.drain(..KEY_LEN);
                    let req1 = hash(&[b"req1", &self.secret]);
                    self.state = RState::Req1 {
                        req1,
                        skipped: KEY_LEN,
                    };
                }
                RState::Req1 { req1, skipped } => {
                    if let Some(p) = find(&self.buf, &req1[..]) {
                        if *skipped + p + 20 > REQ1_WINDOW {
                            return Err(MseError::SyncNotFound("req1"));
                        }
                        self.buf.drain(..p + 20);
                        self.state = RState::Skey;
                    } else if *skipped + self.buf.len() >= REQ1_WINDOW {
                        return Err(MseError::SyncNotFound("req1"));
                    } else {
                        let drop = self.buf.len().saturating_sub(19);
                        *skipped += drop;
                        self.buf.drain(..drop);
                        return Ok(None);
                    }
                }
                RState::Skey => {
                    if self.buf.len() < 20 {
                        return Ok(None);
                    }
                    let req2 = xor20(&self.buf[..20], &hash(&[b"req3", &self.secret]));
                    let skey = lookup(&req2).ok_or(MseError::UnknownTorrent)?;
                    self.skey = skey;
                    self.ciphers = Some(Ciphers::derive(&self.secret, &skey, false));
                    self.buf.drain(..20);
                    self.state = RState::Header;
                }
                RState::Header => {
                    if self.buf.len() < 14 {
                        return Ok(None);
                    }
                    let c = self.ciphers.as_mut().ok_or(MseError::Internal)?;
                    let mut h = [0u8; 14];
                    h.copy_from_slice(&self.buf[..14]);
                    c.dec.apply(&mut h);
                    if h[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    self.provide = be_u32(&h[8..12]);
                    let len = be_u16(&h[12..]);
                    if len > MAX_PAD {
                        return Err(MseError::TooLong("PadC"));
                    }
                    // Fail before reading more if there is nothing in common.
                    self.select()?;
                    self.buf.drain(..14);
                    self.state = RState::PadC { len };
                }
                RState::PadC { len } => {
                    if self.buf.len() < *len {
                        return Ok(None);
                    }
                    let len = *len;
                    let c = self.ciphers.as_mut().ok_or(MseError::Internal)?;
                    c.dec.apply(&mut self.buf[..len]);
                    self.buf.drain(..len);
                    self.state = RState::IaLen;
                }
                RState::IaLen => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    let c = self.ciphers.as_mut().ok_or(MseError::Internal)?;
                    let mut h = [0u8; 2];
                    h.copy_from_slice(&self.buf[..2]);
                    c.dec.apply(&mut h);
                    self.buf.drain(..2);
                    self.state = RState::Ia { len: be_u16(&h) };
                }
                RState::Ia { len } => {
                    if self.buf.len() < *len {
                        return Ok(None);
                    }
                    let len = *len;
                    let method = self.select()?;
                    let mut c = self.ciphers.take().ok_or(MseError::Internal)?;
                    let mut ia: Vec<u8> = self.buf.drain(..len).collect();
                    c.dec.apply(&mut ia);
                    self.ia = ia;
                    // Step 4: ENCRYPT(VC, crypto_select, len(PadD)), no PadD.
                    let start = out.len();
                    out.extend_from_slice(&VC);
                    let select = if method == Method::Rc4 {
                        CRYPTO_RC4
                    } else {
                        CRYPTO_PLAINTEXT
                    };
                    out.extend_from_slice(&select.to_be_bytes());
                    out.extend_from_slice(&0u16.to_be_bytes());
                    c.enc.apply(&mut out[start..]);
                    self.state = RState::Done;
                    let rest = std::mem::take(&mut self.buf);
                    let mut e = established(method, self.skey, c, rest);
                    let mut payload = std::mem::take(&mut self.ia);
                    payload.extend_from_slice(&e.payload);
                    e.payload = payload;
                    return Ok(Some(e));
                }
                RState::Done => return Err(MseError::Internal),
            }
        }
    }

    /// The method for the initiator's offer: clear if both allow it, else RC4.
    fn select(&self) -> Result<Method, MseError> {
        let common = self.provide & self.accept;
        if common & CRYPTO_PLAINTEXT != 0 {
            Ok(Method::Plaintext)
        } else if common & CRYPTO_RC4 != 0 {
            Ok(Method::Rc4)
        } else {
            Err(MseError::NoCommonMethod(self.provide))
        }
    }
}
