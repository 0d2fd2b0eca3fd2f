//! The bytes queued for one peer's socket, in order: encoded messages, and
//! the payloads of `piece` messages as ranges of the upload chunk they were
//! read into, or of a block of a verified piece the torrent keeps in memory
//! (shared, not copied). One vectored write sends messages and payloads
//! together, so an uploaded block is copied once in user space (by the
//! `pread` of its chunk), or not at all (a kept piece), instead of twice.

use crate::engine::torrent::recent_pieces::{self, KeptBlock};
use crate::proto::wire::{piece_head, BlockRef, Message};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Slices handed to one vectored write at most (Linux takes 1,024).
const MAX_SLICES: usize = 64;
/// Sent chunks kept for reuse: the queue (128 KiB) holds payloads of the
/// cached chunk and at most one before it, so one spare is enough.
const MAX_SPARE: usize = 1;

/// Where the bytes of a piece payload are.
#[derive(Debug)]
pub(crate) enum Source {
    /// An upload chunk this connection read from disk.
    Chunk(Rc<Vec<u8>>),
    /// A block of a verified piece the torrent keeps in memory.
    Kept(KeptBlock),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Chunk(c) => c,
            Source::Kept(b) => b,
        }
    }
}

/// A piece payload: `data[start..end]`, sent right after `bytes[..at]`.
#[derive(Debug)]
struct Payload {
    at: usize,
    data: Source,
    start: usize,
    end: usize,
}

/// The output queue of one connection (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    /// Encoded messages and piece headers; `bytes[..head]` are sent.
    bytes: Vec<u8>,
    head: usize,
    /// Payloads in stream order, each placed at a position of `bytes`.
    payloads: VecDeque<Payload>,
    /// Unsent payload bytes.
    payload_len: usize,
    /// Chunks whose payloads are all sent, for the next upload reads (saves
    /// zeroing a new one); at most `MAX_SPARE`.
    spare: Vec<Vec<u8>>,
    /// Where each queued `request` message starts in `bytes` (those before
    /// `head` are sent and pruned), so that a choke can take back the ones
    /// not sent yet.
    requests: Vec<usize>,
}

/// A `request` message on the wire: length, id, index, begin, length.
const REQUEST_LEN: usize = 17;

impl OutQueue {
    /// Bytes queued and not yet sent.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.head + self.payload_len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queue a message.
    pub(crate) fn push(&mut self, m: &Message) {
        m.encode(&mut self.bytes);
    }

    /// Queue a `request`, remembering where it is (see
    /// [`OutQueue::retract_requests`]).
    pub(crate) fn push_request(&mut self, b: BlockRef) {
        if self.requests.first().is_some_and(|&at| at < self.head) {
            let head = self.head;
            self.requests.retain(|&at| at >= head);
        }
        // Bounded by the bytes queued: one entry per 17 unsent bytes.
        self.requests.push(self.bytes.len());
        Message::Request(b).encode(&mut self.bytes);
    }

    /// Take back every queued `request` no byte of which is sent yet (the
    /// peer choked us: they would reach it after its choke). Returns how
    /// many were taken back.
    pub(crate) fn retract_requests(&mut self) -> usize {
        let head = self.head;
        let unsent: Vec<usize> = self.requests.drain(..).filter(|&at| at >= head).collect();
        for &at in unsent.iter().rev() {
            self.bytes.drain(at..at + REQUEST_LEN);
            // A payload placed after these bytes moves with them; one
            // placed right before them (`p.at == at`) stays.
            for p in self.payloads.iter_mut().filter(|p| p.at > at) {
                p.at -= REQUEST_LEN;
            }
        }
        unsent.len()
    }

    /// Queue a `piece` message whose payload is bytes `start..end` of
    /// `data`.
    pub(crate) fn push_piece(
        &mut self,
        index: u32,
        begin: u32,
        data: Source,
        start: usize,
        end: usize,
    ) {
        self.bytes
            .extend_from_slice(&piece_head(index, begin, (end - start) as u32));
        self.payload_len += end - start;
        self.payloads.push_back(Payload {
            at: self.bytes.len(),
            data,
            start,
            end,
        });
    }

    /// One vectored write of what is queued, from the front; returns what
    /// `w` took (its errors as they come).
    pub(crate) fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_SLICES);
        let mut pos = self.head;
        let mut end = self.bytes.len();
        for p in &self.payloads {
            if slices.len() + 2 > MAX_SLICES {
                // The rest next time: nothing past this payload's place.
                end = p.at;
                break;
            }
            if p.at > pos {
                slices.push(IoSlice::new(&self.bytes[pos..p.at]));
            }
            slices.push(IoSlice::new(&p.data.bytes()[p.start..p.end]));
            pos = p.at;
        }
        if pos < end {
            slices.push(IoSlice::new(&self.bytes[pos..end]));
        }
        if slices.is_empty() {
            return Ok(0);
        }
        let n = w.write_vectored(&slices)?;
        drop(slices);
        self.consume(n);
        Ok(n)
    }

    /// Drop the first `n` queued bytes (they were sent).
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let next_at = self.payloads.front().map_or(self.bytes.len(), |p| p.at);
            if self.head < next_at {
                let k = n.min(next_at - self.head);
                self.head += k;
                n -= k;
                continue;
            }
            let Some(p) = self.payloads.front_mut() else {
                break;
            };
            let k = n.min(p.end - p.start);
            p.start += k;
            self.payload_len -= k;
            n -= k;
            if p.start == p.end {
                match self.payloads.pop_front().map(|p| p.data) {
                    Some(Source::Chunk(c)) => {
                        if let Ok(chunk) = Rc::try_unwrap(c) {
                            if self.spare.len() < MAX_SPARE {
                                self.spare.push(chunk);
                            }
                        }
                    }
                    Some(Source::Kept(b)) => recent_pieces::release(b),
                    None => {}
                }
            }
        }
        if self.head == self.bytes.len() && self.payloads.is_empty() {
            self.bytes.clear();
            self.requests.clear();
            self.head = 0;
        } else if self.head >= 64 * 1024 && self.head * 2 >= self.bytes.len() {
            // Mostly sent: move the rest to the front.
            self.bytes.drain(..self.head);
            for p in &mut self.payloads {
                p.at -= self.head;
            }
            let head = self.head;
            self.requests.retain(|&at| at >= head);
            for at in &mut self.requests {
                *at -= head;
            }
            self.head = 0;
        }
    }

    /// Give memory back once nothing is queued and the buffer grew past
    /// `keep` bytes.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.is_empty() && self.bytes.capacity() > keep {
            self.bytes = Vec::new();
        }
    }

    /// A chunk buffer the queue let go of, if any.
    pub(crate) fn take_spare(&mut self) -> Option<Vec<u8>> {
        self.spare.pop()
    }

    /// Free the chunk buffers kept for reuse (uploads have stopped).
    pub(crate) fn drop_spare(&mut self) {
        self.spare = Vec::new();
    }

    /// Everything queued as one buffer (the connection is closing).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len());
        let mut pos = self.head;
        for p in &self.payloads {
            all.extend_from_slice(&self.bytes[pos..p.at]);
            all.extend_from_slice(&p.data.bytes()[p.start..p.end]);
            pos = p.at;
        }
        all.extend_from_slice(&self.bytes[pos..]);
        *self = OutQueue::default();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::FrameDecoder;
    use std::sync::Arc;

    /// A writer that takes at most `max` bytes per call.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(self.max - n);
                self.got.extend_from_slice(&b[..k]);
                n += k;
                if n == self.max {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn fill(q: &mut OutQueue, chunk: &Rc<Vec<u8>>, expect: &mut Vec<Message>) {
        let kept: Vec<KeptBlock> = vec![Arc::new(vec![1u8; 3000]), Arc::new(vec![2u8; 5000])];
        // More payloads than one vectored write takes; every third one
        // from a kept piece.
        for i in 0..(MAX_SLICES as u32) {
            let m = Message::Have(i);
            q.push(&m);
            expect.push(m);
            let start = (i as usize * 97) % 2000;
            let end = start + 1 + (i as usize * 31) % 1000;
            let (source, bytes) = if i % 3 == 2 {
                let k = (i as usize / 3) % 2;
                let block = kept[k][start..end].to_vec();
                (Source::Kept(kept[k].clone()), block)
            } else {
                (Source::Chunk(chunk.clone()), chunk[start..end].to_vec())
            };
            q.push_piece(i, i * 3, source, start, end);
            expect.push(Message::Piece {
                index: i,
                begin: i * 3,
                data: bytes,
            });
        }
    }

    #[test]
    fn messages_and_payloads_go_out_in_order_through_partial_writes() {
        let chunk = Rc::new((0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        for max in [1, 7, 13, 100, 4096, 1 << 20] {
            let mut q = OutQueue::default();
            let mut expect = Vec::new();
            let mut w = Trickle {
                got: Vec::new(),
                max,
            };
            fill(&mut q, &chunk, &mut expect);
            // Writes interleaved with more queueing.
            for _ in 0..3 {
                q.write_to(&mut w).unwrap();
            }
            fill(&mut q, &chunk, &mut expect);
            q.push(&Message::Cancel(BlockRef {
                index: 1,
                begin: 2,
                length: 3,
            }));
            expect.push(Message::Cancel(BlockRef {
                index: 1,
                begin: 2,
                length: 3,
            }));
            while !q.is_empty() {
                assert!(q.write_to(&mut w).unwrap() > 0);
            }
            assert_eq!(q.write_to(&mut w).unwrap(), 0);
            let mut d = FrameDecoder::new(1 << 20);
            d.feed(&w.got);
            let mut got = Vec::new();
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            assert_eq!(got, expect, "max {max}");
            assert_eq!(Rc::strong_count(&chunk), 1, "payloads let go of the chunk");
        }
    }

    #[test]
    fn take_all_returns_the_unsent_rest() {
        let chunk = Rc::new(vec![9u8; 5000]);
        let mut q = OutQueue::default();
        let mut expect = Vec::new();
        fill(&mut q, &chunk, &mut expect);
        let mut w = Trickle {
            got: Vec::new(),
            max: 555,
        };
        q.write_to(&mut w).unwrap();
        let mut all = w.got;
        all.extend(q.take_all());
        assert!(q.is_empty());
        let mut want = Vec::new();
        for m in &expect {
            m.encode(&mut want);
        }
        assert_eq!(all, want);
    }

    #[test]
    fn a_choke_takes_back_only_the_requests_not_sent() {
        let chunk = Rc::new((0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let req = |i: u32| BlockRef {
            index: i,
            begin: 0,
            length: 16384,
        };
        for max in [1, 5, 17, 40, 100, 1000, 1 << 20] {
            let mut q = OutQueue::default();
            let mut w = Trickle {
                got: Vec::new(),
                max,
            };
            // piece, request 0, request 1, piece, request 2, have
            q.push_piece(7, 0, Source::Chunk(chunk.clone()), 0, 30);
            q.push_request(req(0));
            q.push_request(req(1));
            q.push_piece(8, 0, Source::Chunk(chunk.clone()), 100, 120);
            q.push_request(req(2));
            q.push(&Message::Have(5));
            q.write_to(&mut w).unwrap();
            let sent = w.got.len();
            let retracted = q.retract_requests();
            while !q.is_empty() {
                q.write_to(&mut w).unwrap();
            }
            let mut d = FrameDecoder::new(1 << 20);
            d.feed(&w.got);
            let mut got = Vec::new();
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            let requests: Vec<u32> = got
                .iter()
                .filter_map(|m| match m {
                    Message::Request(b) => Some(b.index),
                    _ => None,
                })
                .collect();
            // Every request that had begun to go out is complete; none of
            // the others went out; nothing else was lost.
            assert_eq!(requests.len() + retracted, 3, "max {max}");
            let started = [13 + 30, 13 + 30 + 17, 13 + 30 + 34 + 13 + 20]
                .iter()
                .filter(|&&at| at < sent)
                .count();
            assert_eq!(requests.len(), started, "max {max}, {sent} sent");
            assert_eq!(got.len(), 3 + requests.len(), "max {max}: {got:?}");
            assert_eq!(got.last(), Some(&Message::Have(5)));
            assert!(
                matches!(&got[0], Message::Piece { index: 7, data, .. } if data[..] == chunk[0..30])
            );
        }
    }
}
