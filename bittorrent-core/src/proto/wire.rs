//! The peer wire protocol (BEP 3) with the fast extension (BEP 6) and the
//! extension-protocol envelope (BEP 10): the handshake, the message enum,
//! and a frame decoder with a maximum message size.
//!
//! Pure byte functions: no sockets here. A peer thread feeds whatever it
//! read into [`FrameDecoder`] and takes whole messages out of it.

use std::collections::VecDeque;
use std::fmt;

/// The protocol string of the handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Length of a handshake in bytes.
pub const HANDSHAKE_LEN: usize = 68;
/// The largest block we request or serve (16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;
/// The largest frame we accept: a 16 KiB piece message with headroom, or a
/// bitfield for a torrent of up to ~1 M pieces, or a large extension message.
pub const MAX_FRAME: usize = 1 << 20;

/// Reserved bit: extension protocol (BEP 10), byte 5 bit 0x10.
pub const RESERVED_EXTENSION: (usize, u8) = (5, 0x10);
/// Reserved bit: fast extension (BEP 6), byte 7 bit 0x04.
pub const RESERVED_FAST: (usize, u8) = (7, 0x04);
/// Reserved bit: BitTorrent v2 support (BEP 52's upgrade bit, the 4th most
/// significant bit of the last byte), byte 7 bit 0x10.
pub const RESERVED_V2: (usize, u8) = (7, 0x10);
/// Reserved bit: DHT (BEP 5), byte 7 bit 0x01.
pub const RESERVED_DHT: (usize, u8) = (7, 0x01);

/// The 68-byte handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The 8 reserved bytes (extension bits).
    pub reserved: [u8; 8],
    /// The torrent's info-hash.
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Our handshake: extension protocol and fast extension bits set.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Handshake {
        let mut reserved = [0u8; 8];
        reserved[RESERVED_EXTENSION.0] |= RESERVED_EXTENSION.1;
        reserved[RESERVED_FAST.0] |= RESERVED_FAST.1;
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Parse the first 68 bytes of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Handshake, WireError> {
        if buf.len() < HANDSHAKE_LEN {
            return Err(WireError::Truncated);
        }
        if buf[0] != 19 || &buf[1..20] != PROTOCOL {
            return Err(WireError::BadProtocol);
        }
        let mut h = Handshake {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        h.reserved.copy_from_slice(&buf[20..28]);
        h.info_hash.copy_from_slice(&buf[28..48]);
        h.peer_id.copy_from_slice(&buf[48..68]);
        Ok(h)
    }

    /// Whether the sender supports the extension protocol (BEP 10).
    pub fn supports_extensions(&self) -> bool {
        self.reserved[RESERVED_EXTENSION.0] & RESERVED_EXTENSION.1 != 0
    }

    /// Whether the sender supports the fast extension (BEP 6).
    pub fn supports_fast(&self) -> bool {
        self.reserved[RESERVED_FAST.0] & RESERVED_FAST.1 != 0
    }

    /// Whether the sender set BEP 52's v2 bit (it speaks v2; on a hybrid's
    /// v1 info-hash: it asks to upgrade the connection to v2).
    pub fn supports_v2(&self) -> bool {
        self.reserved[RESERVED_V2.0] & RESERVED_V2.1 != 0
    }
}

/// A block: `length` bytes at `begin` within piece `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Piece index.
    pub index: u32,
    /// Byte offset within the piece.
    pub begin: u32,
    /// Length in bytes.
    pub length: u32,
}

/// A peer wire message (after the handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Zero-length frame.
    KeepAlive,
    /// id 0
    Choke,
    /// id 1
    Unchoke,
    /// id 2
    Interested,
    /// id 3
    NotInterested,
    /// id 4
    Have(u32),
    /// id 5: raw bitfield bytes (checked against the piece count by the caller).
    Bitfield(Vec<u8>),
    /// id 6
    Request(BlockRef),
    /// id 7
    Piece {
        /// Piece index.
        index: u32,
        /// Offset within the piece.
        begin: u32,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// id 8
    Cancel(BlockRef),
    /// id 9: the sender's DHT port (BEP 5).
    Port(u16),
    /// id 13 (BEP 6)
    SuggestPiece(u32),
    /// id 14 (BEP 6)
    HaveAll,
    /// id 15 (BEP 6)
    HaveNone,
    /// id 16 (BEP 6)
    Reject(BlockRef),
    /// id 17 (BEP 6)
    AllowedFast(u32),
    /// id 20 (BEP 10): extended message id and its payload.
    Extended {
        /// 0 = extended handshake, else the id we assigned in our handshake.
        id: u8,
        /// The bencoded payload (and any trailing data).
        payload: Vec<u8>,
    },
    /// ids 21-23 (BEP 52): `hash request`, `hashes`, `hash reject`, the
    /// payload as it came (read with [`crate::proto::hash_msg`]).
    Hash {
        /// 21, 22 or 23.
        id: u8,
        /// The bytes after the id.
        payload: Vec<u8>,
    },
}

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the message needs.
    Truncated,
    /// The handshake's protocol string is not "BitTorrent protocol".
    BadProtocol,
    /// A length prefix above [`MAX_FRAME`].
    FrameTooLarge(u32),
    /// A message id we do not know.
    UnknownMessage(u8),
    /// A message whose payload length does not fit its id.
    BadLength {
        /// The message id.
        id: u8,
        /// Its payload length.
        len: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated message"),
            WireError::BadProtocol => f.write_str("not a BitTorrent handshake"),
            WireError::FrameTooLarge(n) => write!(f, "frame of {n} bytes exceeds the limit"),
            WireError::UnknownMessage(id) => write!(f, "unknown message id {id}"),
            WireError::BadLength { id, len } => {
                write!(f, "message id {id} with a payload of {len} bytes")
            }
        }
    }
}

impl std::error::Error for WireError {}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn block(p: &[u8]) -> BlockRef {
    BlockRef {
        index: be32(&p[0..4]),
        begin: be32(&p[4..8]),
        length: be32(&p[8..12]),
    }
}

impl Message {
    /// Decode one message from its frame payload (id + body, without the
    /// length prefix). An empty payload is a keep-alive.
    pub fn decode(payload: &[u8]) -> Result<Message, WireError> {
        let Some((&id, body)) = payload.split_first() else {
            return Ok(Message::KeepAlive);
        };
        let want = |n: usize| {
            if body.len() == n {
                Ok(())
            } else {
                Err(WireError::BadLength {
                    id,
                    len: body.len(),
                })
            }
        };
        Ok(match id {
            0 => want(0).map(|_| Message::Choke)?,
            1 => want(0).map(|_| Message::Unchoke)?,
            2 => want(0).map(|_| Message::Interested)?,
            3 => want(0).map(|_| Message::NotInterested)?,
            4 => want(4).map(|_| Message::Have(be32(body)))?,
            5 => Message::Bitfield(body.to_vec()),
            6 => want(12).map(|_| Message::Request(block(body)))?,
            7 => {
                if body.len() < 8 {
                    return Err(WireError::BadLength {
                        id,
                        len: body.len(),
                    });
                }
                Message::Piece {
                    index: be32(&body[0..4]),
                    begin: be32(&body[4..8]),
                    data: body[8..].to_vec(),
                }
            }
            8 => want(12).map(|_| Message::Cancel(block(body)))?,
            9 => want(2).map(|_| Message::Port(u16::from_be_bytes([body[0], body[1]])))?,
            13 => want(4).map(|_| Message::SuggestPiece(be32(body)))?,
            14 => want(0).map(|_| Message::HaveAll)?,
            15 => want(0).map(|_| Message::HaveNone)?,
            16 => want(12).map(|_| Message::Reject(block(body)))?,
            17 => want(4).map(|_| Message::AllowedFast(be32(body)))?,
            20 => {
                let Some((&ext, rest)) = body.split_first() else {
                    return Err(WireError::BadLength { id, len: 0 });
                };
                Message::Extended {
                    id: ext,
                    payload: rest.to_vec(),
                }
            }
            21..=23 => Message::Hash {
                id,
                payload: body.to_vec(),
            },
            other => return Err(WireError::UnknownMessage(other)),
        })
    }

    /// Append the framed wire form (length prefix included) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn frame(out: &mut Vec<u8>, id: u8, parts: &[&[u8]]) {
            let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.push(id);
            for p in parts {
                out.extend_from_slice(p);
            }
        }
        fn blk(b: &BlockRef) -> [u8; 12] {
            let mut x = [0u8; 12];
            x[0..4].copy_from_slice(&b.index.to_be_bytes());
            x[4..8].copy_from_slice(&b.begin.to_be_bytes());
            x[8..12].copy_from_slice(&b.length.to_be_bytes());
            x
        }
        match self {
            Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
            Message::Choke => frame(out, 0, &[]),
            Message::Unchoke => frame(out, 1, &[]),
            Message::Interested => frame(out, 2, &[]),
            Message::NotInterested => frame(out, 3, &[]),
            Message::Have(i) => frame(out, 4, &[&i.to_be_bytes()]),
            Message::Bitfield(b) => frame(out, 5, &[b]),
            Message::Request(b) => frame(out, 6, &[&blk(b)]),
            Message::Piece { index, begin, data } => {
                frame(out, 7, &[&index.to_be_bytes(), &begin.to_be_bytes(), data])
            }
            Message::Cancel(b) => frame(out, 8, &[&blk(b)]),
            Message::Port(p) => frame(out, 9, &[&p.to_be_bytes()]),
            Message::SuggestPiece(i) => frame(out, 13, &[&i.to_be_bytes()]),
            Message::HaveAll => frame(out, 14, &[]),
            Message::HaveNone => frame(out, 15, &[]),
            Message::Reject(b) => frame(out, 16, &[&blk(b)]),
            Message::AllowedFast(i) => frame(out, 17, &[&i.to_be_bytes()]),
            Message::Extended { id, payload } => frame(out, 20, &[&[*id], payload]),
            Message::Hash { id, payload } => frame(out, *id, &[payload]),
        }
    }

    /// The framed wire form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// Accumulates bytes read from a socket and yields whole messages.
///
/// Never use `read_exact` on a socket with a timeout (a timeout loses the
/// bytes already read); append what `read` returned with [`feed`] and
/// call [`next_message`] until it returns `Ok(None)`.
///
/// [`feed`]: FrameDecoder::feed
/// [`next_message`]: FrameDecoder::next_message
///
/// [`FrameDecoder::read_blocks_from`] reads `piece` payloads of one block
/// straight into their own buffers (see there); the decoder then yields
/// them before the bytes it buffers, in stream order.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Initialised storage: bytes `start..end` are buffered, the rest is
    /// room for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: usize,
    /// Piece messages read whole into their own buffers; they come before
    /// everything in `buf`.
    ready: VecDeque<Message>,
    /// A piece message whose payload is being read into its own buffer:
    /// index, begin, the buffer, bytes of it filled. `buf` is empty then.
    direct: Option<(u32, u32, Vec<u8>, usize)>,
    /// Block buffers for the next direct read.
    spare: Vec<Vec<u8>>,
}

/// Bytes of a `piece` message before its payload.
pub const PIECE_HEAD: usize = 13;
/// The length prefix of a `piece` message carrying one whole block.
const BLOCK_FRAME_LEN: u32 = 9 + BLOCK_SIZE;

/// The bytes of a `piece` message before its payload of `len` bytes
/// (length prefix, id 7, index, begin).
pub fn piece_head(index: u32, begin: u32, len: u32) -> [u8; PIECE_HEAD] {
    let mut h = [0u8; PIECE_HEAD];
    h[..4].copy_from_slice(&(9 + len).to_be_bytes());
    h[4] = 7;
    h[5..9].copy_from_slice(&index.to_be_bytes());
    h[9..].copy_from_slice(&begin.to_be_bytes());
    h
}

/// Whether `p` can be the start of a `piece` message carrying one whole
/// block (every byte of it there is consistent with one).
fn starts_block_message(p: &[u8]) -> bool {
    (p.len() < 4 || be32(p) == BLOCK_FRAME_LEN) && (p.len() < 5 || p[4] == 7)
}
/// Room after the speculated blocks of a direct read, for whatever else
/// the peer sent.
const DIRECT_TAIL: usize = 4096;

impl FrameDecoder {
    /// A decoder refusing frames larger than `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
            ready: VecDeque::new(),
            direct: None,
            spare: Vec::new(),
        }
    }

    /// Make room for `want` more bytes after the buffered ones: move a
    /// partial frame to the front, grow only if that is not enough.
    fn reserve(&mut self, want: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
    }

    /// Append bytes read from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        self.undirect();
        self.reserve(data.len());
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// One `read` from `r` straight into the buffer (no intermediate copy),
    /// taking at most `max` bytes. Returns what `read` returned.
    pub fn read_from(&mut self, r: &mut impl std::io::Read, max: usize) -> std::io::Result<usize> {
        self.undirect();
        self.reserve(max);
        let n = r.read(&mut self.buf[self.end..self.end + max])?;
        self.end += n;
        Ok(n)
    }

    /// Give memory back when nothing is buffered and the buffer is larger
    /// than `keep` bytes (an idle connection keeps little).
    pub fn shrink(&mut self, keep: usize) {
        if self.start == self.end && self.buf.len() > keep {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
        self.spare = Vec::new();
    }

    /// Bytes buffered but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        let direct = self.direct.as_ref().map_or(0, |d| PIECE_HEAD + d.3);
        let ready: usize = self
            .ready
            .iter()
            .map(|m| match m {
                Message::Piece { data, .. } => PIECE_HEAD + data.len(),
                _ => 0,
            })
            .sum();
        self.end - self.start + direct + ready
    }

    /// A direct read in progress goes back into the buffer as plain bytes
    /// (before a plain read or `feed` appends more).
    fn undirect(&mut self) {
        if let Some((index, begin, data, filled)) = self.direct.take() {
            let mut head = piece_head(index, begin, BLOCK_SIZE).to_vec();
            head.extend_from_slice(&data[..filled]);
            self.spare.push(data);
            self.feed(&head);
        }
    }

    /// One read from `r` of at most `max` bytes, like
    /// [`read_from`](FrameDecoder::read_from), but one that reads the
    /// payloads of `piece` messages of one block straight into block
    /// buffers taken from `take` (each `BLOCK_SIZE` long), sparing the copy
    /// out of the read buffer that [`next_message_with`] makes.
    ///
    /// The read is vectored and speculative: it lays out the rest of the
    /// piece payload being read, then header and block slots for as many
    /// `piece` messages as fit `max`, then a small tail of the buffer. While
    /// the peer sends only whole blocks (what a download is) every byte
    /// lands in place; when a slot turns out to hold something else, the
    /// bytes from there on are copied back into the buffer in their order
    /// and decoded as usual. Call it only after `next_message_with` returned
    /// `Ok(None)` (the buffer then holds at most part of one frame);
    /// otherwise, or for a small `max`, it is a plain `read_from`.
    ///
    /// [`next_message_with`]: FrameDecoder::next_message_with
    pub fn read_blocks_from(
        &mut self,
        r: &mut impl std::io::Read,
        max: usize,
        take: &mut dyn FnMut() -> Vec<u8>,
    ) -> std::io::Result<usize> {
        const SLOT: usize = PIECE_HEAD + BLOCK_SIZE as usize;
        let block = BLOCK_SIZE as usize;
        // What is buffered: part of a block's payload (taken into a
        // buffer), part of a header (the first slot's), or else plain read.
        let mut head = [0u8; PIECE_HEAD];
        let mut head_have = 0;
        if self.direct.is_none() {
            let pending = &self.buf[self.start..self.end];
            if !self.ready.is_empty() || !starts_block_message(pending) || self.max_frame < SLOT - 4
            {
                return self.read_from(r, max);
            }
            if pending.len() >= PIECE_HEAD {
                if pending.len() >= SLOT {
                    return self.read_from(r, max);
                }
                let mut data = self.spare.pop().unwrap_or_else(&mut *take);
                data.resize(block, 0);
                let filled = pending.len() - PIECE_HEAD;
                data[..filled].copy_from_slice(&pending[PIECE_HEAD..]);
                self.direct = Some((be32(&pending[5..]), be32(&pending[9..]), data, filled));
            } else {
                head_have = pending.len();
                head[..head_have].copy_from_slice(pending);
            }
            self.start = 0;
            self.end = 0;
        }
        // Never more than `max` bytes in all (a rate limit may make it small).
        let direct_room = self.direct.as_ref().map_or(0, |d| (block - d.3).min(max));
        let slots = max.saturating_sub(direct_room) / SLOT;
        if slots == 0 && self.direct.is_none() {
            // No room for even one block: a plain read.
            self.feed(&head[..head_have]);
            return self.read_from(r, max);
        }
        while self.spare.len() < slots {
            let mut b = take();
            b.resize(block, 0);
            self.spare.push(b);
        }
        let mut heads = vec![[0u8; PIECE_HEAD]; slots];
        if let Some(h) = heads.first_mut() {
            *h = head;
        }
        let tail = DIRECT_TAIL.min(max.saturating_sub(direct_room + slots * SLOT));
        self.reserve(tail);
        let n = {
            let mut iov: Vec<std::io::IoSliceMut<'_>> = Vec::with_capacity(2 * slots + 2);
            if let Some((_, _, data, filled)) = self.direct.as_mut() {
                iov.push(std::io::IoSliceMut::new(
                    &mut data[*filled..*filled + direct_room],
                ));
            }
            for (k, (h, b)) in heads.iter_mut().zip(self.spare.iter_mut()).enumerate() {
                let from = if k == 0 { head_have } else { 0 };
                iov.push(std::io::IoSliceMut::new(&mut h[from..]));
                iov.push(std::io::IoSliceMut::new(&mut b[..block]));
            }
            if tail > 0 {
                iov.push(std::io::IoSliceMut::new(
                    &mut self.buf[self.end..self.end + tail],
                ));
            }
            r.read_vectored(&mut iov)
        };
        match n {
            Ok(n) => {
                self.place(n, &heads, head_have);
                Ok(n)
            }
            Err(e) => {
                // Nothing read (a timeout, most often): the part of a header
                // taken out of the buffer goes back (a block begun stays in
                // `direct`).
                self.feed(&head[..head_have]);
                Err(e)
            }
        }
    }

    /// Sort the `n` bytes a direct read put into the slots: whole blocks
    /// become messages, a block begun becomes `direct`, the rest is copied
    /// back into the buffer in stream order.
    fn place(&mut self, n: usize, heads: &[[u8; PIECE_HEAD]], head_have: usize) {
        let block = BLOCK_SIZE as usize;
        let mut rem = n;
        if let Some((index, begin, data, filled)) = self.direct.take() {
            let got = rem.min(block - filled);
            rem -= got;
            if filled + got < block {
                self.direct = Some((index, begin, data, filled + got));
                return;
            }
            self.ready.push_back(Message::Piece { index, begin, data });
        }
        // Bytes that are not where a whole block belongs, in stream order:
        // once one slot holds something else, so do all after it.
        let mut raw: Vec<u8> = Vec::new();
        let mut taken = 0; // buffers moved out of `spare` so far
        for (k, h) in heads.iter().enumerate() {
            let from = if k == 0 { head_have } else { 0 };
            let h_got = rem.min(PIECE_HEAD - from);
            let b_got = (rem - h_got).min(block);
            if from + h_got == 0 {
                break;
            }
            rem -= h_got + b_got;
            let slot = k - taken;
            let whole = from + h_got == PIECE_HEAD;
            if !raw.is_empty() || !whole || !starts_block_message(h) {
                raw.extend_from_slice(&h[..from + h_got]);
                raw.extend_from_slice(&self.spare[slot][..b_got]);
                continue;
            }
            let data = self.spare.remove(slot);
            taken += 1;
            let (index, begin) = (be32(&h[5..]), be32(&h[9..]));
            if b_got == block {
                self.ready.push_back(Message::Piece { index, begin, data });
            } else {
                self.direct = Some((index, begin, data, b_got));
            }
        }
        // The tail of the read is in `buf[end..end + rem]`.
        if raw.is_empty() {
            self.end += rem;
        } else {
            raw.extend_from_slice(&self.buf[self.end..self.end + rem]);
            self.feed(&raw);
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or an
    /// error (after which the connection should be closed).
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        self.next_message_with(&mut |data: &[u8]| data.to_vec())
    }

    /// Like [`FrameDecoder::next_message`], but the payload of a `piece`
    /// message is copied out by `copy` (a caller with a buffer pool hands
    /// out a recycled buffer instead of a fresh allocation).
    pub fn next_message_with(
        &mut self,
        copy: &mut dyn FnMut(&[u8]) -> Vec<u8>,
    ) -> Result<Option<Message>, WireError> {
        if let Some(m) = self.ready.pop_front() {
            return Ok(Some(m));
        }
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = be32(avail);
        if len as usize > self.max_frame {
            return Err(WireError::FrameTooLarge(len));
        }
        let total = 4 + len as usize;
        if avail.len() < total {
            return Ok(None);
        }
        let body = &avail[4..total];
        let msg = match body {
            [7, head @ ..] if head.len() >= 8 => Ok(Message::Piece {
                index: be32(&head[0..4]),
                begin: be32(&head[4..8]),
                data: copy(&head[8..]),
            }),
            _ => Message::decode(body),
        };
        self.start += total;
        msg.map(Some)
    }
}

/// The BEP 6 allowed-fast set for a peer at `ip`: `k` piece indices that
/// peer may request even while choked (canonical algorithm, only the /24 of
/// the address is used).
pub fn allowed_fast_set(
    k: usize,
    num_pieces: u32,
    info_hash: &[u8; 20],
    ip: std::net::Ipv4Addr,
) -> Vec<u32> {
    let k = k.min(num_pieces as usize);
    let mut out: Vec<u32> = Vec::with_capacity(k);
    if k == 0 {
        return out;
    }
    let masked = u32::from(ip) & 0xffff_ff00;
    let mut x: Vec<u8> = masked.to_be_bytes().to_vec();
    x.extend_from_slice(info_hash);
    while out.len() < k {
        x = sha1_smol::Sha1::from(&x).digest().bytes().to_vec();
        for i in 0..5 {
            if out.len() >= k {
                break;
            }
            let y = be32(&x[i * 4..i * 4 + 4]);
            let index = y % num_pieces;
            if !out.contains(&index) {
                out.push(index);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_fast_vectors() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/bep6_allowed_fast.tsv"
        ));
        for line in tsv.lines().skip(1) {
            let c: Vec<&str> = line.split('\t').collect();
            let k: usize = c[0].parse().unwrap();
            let n: u32 = c[1].parse().unwrap();
            let ih: Vec<u8> = (0..40)
                .step_by(2)
                .map(|i| u8::from_str_radix(&c[2][i..i + 2], 16).unwrap())
                .collect();
            let ih: [u8; 20] = ih.try_into().unwrap();
            let ip: std::net::Ipv4Addr = c[3].parse().unwrap();
            let want: Vec<u32> = c[4].split(',').map(|x| x.parse().unwrap()).collect();
            assert_eq!(allowed_fast_set(k, n, &ih, ip), want);
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn vectors_round_trip() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/peer_wire.tsv"
        ));
        let mut checked = 0;
        for line in tsv.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let bytes = unhex(cols[1]);
            if cols[0].starts_with("handshake") {
                let h = Handshake::decode(&bytes).unwrap();
                assert_eq!(h.encode().to_vec(), bytes);
                if cols[0].contains("extension+fast") {
                    assert!(h.supports_extensions() && h.supports_fast());
                }
                checked += 1;
                continue;
            }
            let mut d = FrameDecoder::new(MAX_FRAME);
            d.feed(&bytes);
            let m = d
                .next_message()
                .unwrap()
                .unwrap_or_else(|| panic!("{}", cols[0]));
            assert_eq!(m.to_bytes(), bytes, "{}", cols[0]);
            assert_eq!(d.next_message().unwrap(), None);
            checked += 1;
        }
        assert!(checked >= 20);
    }

    #[test]
    fn decoder_handles_byte_by_byte_and_limits() {
        let msgs = vec![
            Message::Have(7),
            Message::Piece {
                index: 1,
                begin: 16384,
                data: vec![9; 100],
            },
            Message::KeepAlive,
            Message::Request(BlockRef {
                index: 2,
                begin: 0,
                length: 16384,
            }),
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            m.encode(&mut wire);
        }
        let mut d = FrameDecoder::new(MAX_FRAME);
        let mut out = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, msgs);
        let mut d = FrameDecoder::new(MAX_FRAME);
        d.feed(&[0x80, 0, 0, 0]);
        assert_eq!(d.next_message(), Err(WireError::FrameTooLarge(0x8000_0000)));
        assert!(Message::decode(&[4, 0, 0]).is_err());
        assert!(Message::decode(&[99]).is_err());
        // BEP 52 hash messages come through raw (read by `hash_msg`).
        let h = Message::decode(&[21, 1, 2]).unwrap();
        assert_eq!(
            h,
            Message::Hash {
                id: 21,
                payload: vec![1, 2]
            }
        );
        assert_eq!(&h.to_bytes()[4..], &[21, 1, 2]);
    }

    /// A reader handing out a stream in pieces of pseudo-random sizes,
    /// filling vectored reads buffer after buffer as a socket does.
    struct Choppy {
        data: Vec<u8>,
        at: usize,
        seed: u64,
        max: usize,
        /// Every this many reads fails with `WouldBlock` (0: never).
        fail_every: u32,
        calls: u32,
    }

    impl Choppy {
        /// `data` in reads of 1 to `max` bytes, never failing.
        fn new(data: Vec<u8>, seed: u64, max: usize) -> Choppy {
            Choppy {
                data,
                at: 0,
                seed,
                max,
                fail_every: 0,
                calls: 0,
            }
        }

        fn next_len(&mut self) -> usize {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (self.seed >> 33) as usize % self.max
        }
    }

    impl std::io::Read for Choppy {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.read_vectored(&mut [std::io::IoSliceMut::new(buf)])
        }
        fn read_vectored(
            &mut self,
            bufs: &mut [std::io::IoSliceMut<'_>],
        ) -> std::io::Result<usize> {
            self.calls += 1;
            if self.fail_every > 0 && self.calls % self.fail_every == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let mut budget = self.next_len().min(self.data.len() - self.at);
            let mut n = 0;
            for b in bufs.iter_mut() {
                let k = b.len().min(budget);
                b[..k].copy_from_slice(&self.data[self.at..self.at + k]);
                self.at += k;
                n += k;
                budget -= k;
                if budget == 0 {
                    break;
                }
            }
            Ok(n)
        }
    }

    /// A download's stream: mostly whole blocks, with `have`s, keep-alives,
    /// short blocks and other messages between them.
    /// With `mixed` false, only one message in 50 is not a whole block.
    fn mixed_stream(seed: u64, count: u32, mixed: bool) -> (Vec<u8>, Vec<Message>) {
        let mut s = seed;
        let mut bytes = Vec::new();
        let mut msgs = Vec::new();
        for i in 0..count {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let kind = if mixed {
                (s >> 40) % 10
            } else {
                4 + u64::from(i % 50 == 49) * 6
            };
            let m = match kind {
                0 | 10 => Message::Have(i),
                1 => Message::KeepAlive,
                2 => Message::Piece {
                    index: i,
                    begin: 0,
                    data: vec![i as u8; 1 + (s >> 20) as usize % 20000],
                },
                3 => Message::Bitfield(vec![0xAA; (s >> 20) as usize % 300]),
                _ => Message::Piece {
                    index: i,
                    begin: BLOCK_SIZE * (i % 7),
                    data: (0..BLOCK_SIZE).map(|k| (k ^ i) as u8).collect(),
                },
            };
            m.encode(&mut bytes);
            msgs.push(m);
        }
        (bytes, msgs)
    }

    #[test]
    fn direct_block_reads_yield_the_same_messages_in_order() {
        for (seed, chunk, max) in [
            (1u64, 300_000usize, 256 * 1024usize),
            (2, 20_000, 256 * 1024),
            (3, 17, 256 * 1024),
            (4, 5000, 40 * 1024),
            (5, 100_000, 16 * 1024),
            (6, 16397, 16397),
            (7, 1, 64 * 1024),
        ] {
            let (bytes, want) = mixed_stream(seed, 300, seed != 1);
            let mut r = Choppy::new(bytes, seed, chunk);
            let mut d = FrameDecoder::new(MAX_FRAME);
            let mut got = Vec::new();
            let mut take = || vec![0xEE; BLOCK_SIZE as usize];
            let mut copies = 0;
            loop {
                while let Some(m) = d
                    .next_message_with(&mut |p: &[u8]| {
                        copies += 1;
                        p.to_vec()
                    })
                    .unwrap()
                {
                    got.push(m);
                }
                if d.read_blocks_from(&mut r, max, &mut take).unwrap() == 0 {
                    break;
                }
            }
            assert_eq!(got.len(), want.len(), "seed {seed}");
            assert!(got == want, "seed {seed}: messages differ");
            assert_eq!(d.buffered(), 0);
            if seed == 1 {
                // Large reads of a stream of mostly whole blocks: most
                // payloads were read in place, not copied.
                let blocks = want
                    .iter()
                    .filter(|m| matches!(m, Message::Piece { data, .. } if data.len() == BLOCK_SIZE as usize))
                    .count();
                assert!(copies < blocks / 4, "{copies} copies of {blocks} blocks");
            }
        }
    }

    #[test]
    fn a_failed_read_loses_nothing() {
        // Timeouts between reads that end anywhere, a header split
        // included; 1 to 20 byte reads split every header somewhere.
        for (seed, chunk, fail_every) in [(21u64, 20usize, 2u32), (22, 40_000, 3), (23, 13, 2)] {
            let (bytes, want) = mixed_stream(seed, 150, seed == 22);
            let mut r = Choppy {
                fail_every,
                ..Choppy::new(bytes, seed, chunk)
            };
            let mut d = FrameDecoder::new(MAX_FRAME);
            let mut got = Vec::new();
            let mut take = || vec![0; BLOCK_SIZE as usize];
            loop {
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
                match d.read_blocks_from(&mut r, 256 * 1024, &mut take) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
                }
            }
            assert!(got == want, "seed {seed}");
        }
    }

    #[test]
    fn a_read_never_takes_more_than_max() {
        // Small reads (a rate limit) right after large ones that left a
        // block half read.
        let (bytes, want) = mixed_stream(11, 200, false);
        let mut r = Choppy::new(bytes, 11, 1 << 20);
        let mut d = FrameDecoder::new(MAX_FRAME);
        let mut got = Vec::new();
        let mut take = || vec![0; BLOCK_SIZE as usize];
        for turn in 0usize.. {
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            let max = [100_000, 700, 5000, 20_000][turn % 4];
            let n = d.read_blocks_from(&mut r, max, &mut take).unwrap();
            assert!(n <= max, "read {n} bytes, at most {max} asked");
            if n == 0 {
                break;
            }
        }
        assert!(got == want);
    }

    #[test]
    fn a_plain_read_after_a_direct_one_keeps_the_order() {
        let (bytes, want) = mixed_stream(9, 200, true);
        let mut r = Choppy::new(bytes, 9, 30_000);
        let mut d = FrameDecoder::new(MAX_FRAME);
        let mut got = Vec::new();
        let mut take = || vec![0; BLOCK_SIZE as usize];
        for turn in 0.. {
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            let n = if turn % 3 == 0 {
                d.read_from(&mut r, 10_000).unwrap()
            } else {
                d.read_blocks_from(&mut r, 100_000, &mut take).unwrap()
            };
            if n == 0 {
                break;
            }
        }
        assert!(got == want);
    }

    #[test]
    fn read_from_fills_in_place_and_compacts() {
        let mut stream = Vec::new();
        for i in 0..50u32 {
            Message::Have(i).encode(&mut stream);
            Message::Piece {
                index: i,
                begin: 0,
                data: vec![i as u8; 1000 + i as usize],
            }
            .encode(&mut stream);
        }
        let mut d = FrameDecoder::new(MAX_FRAME);
        let mut r = std::io::Cursor::new(stream.clone());
        let mut got = Vec::new();
        // Odd read sizes split frames everywhere.
        while d.read_from(&mut r, 777).unwrap() > 0 {
            while let Some(m) = d.next_message().unwrap() {
                m.encode(&mut got);
            }
        }
        assert_eq!(got, stream);
        assert_eq!(d.buffered(), 0);
        d.shrink(0);
        assert_eq!(d.buffered(), 0);
        d.feed(&Message::Choke.to_bytes());
        assert_eq!(d.next_message().unwrap(), Some(Message::Choke));
    }
}
