//! A uTP connection's receive side, pure: packets that arrive out of order wait in a bounded
//! reordering buffer, in-order bytes wait for the reader, and the ACK we send back
//! (`ack_nr`, a selective ACK, the advertised window) is derived from them. **Not yet
//! wired** (see the module above).
//!
//! Bounds: the bytes kept (in order and out of order together) never exceed the capacity
//! given at creation, which is what we advertise as `wnd_size` minus what is kept; a packet
//! more than [`MAX_REORDER`] packets ahead of `ack_nr` is refused (a selective ACK could not
//! name it anyway).

use crate::proto::utp::{SelectiveAck, MAX_SACK_BYTES};
use std::collections::VecDeque;

/// Most packets past `ack_nr + 1` kept out of order (what a selective ACK can describe).
pub const MAX_REORDER: usize = MAX_SACK_BYTES * 8;

/// What happened to an incoming data packet (each still deserves an ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Kept (in order, or out of order in the reordering buffer).
    Accepted,
    /// Already received: a retransmission or a duplicate.
    Duplicate,
    /// Too far ahead of `ack_nr`.
    OutOfWindow,
    /// No room: the peer sent past our advertised window.
    WindowFull,
}

/// The receive side (see the module docs).
#[derive(Debug, Clone)]
pub struct RecvBuffer {
    ack_nr: u16,
    /// Out-of-order payloads: index `i` holds `ack_nr + 2 + i`.
    pending: VecDeque<Option<Vec<u8>>>,
    ready: VecDeque<u8>,
    kept: usize,
    capacity: usize,
}

impl RecvBuffer {
    /// A receive side whose last in-order packet is `ack_nr` (the peer's SYN, or our view of
    /// it), keeping at most `capacity` bytes.
    pub fn new(ack_nr: u16, capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ack_nr,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            kept: 0,
            capacity,
        }
    }

    /// The `ack_nr` to send: the last packet received in order.
    pub fn ack_nr(&self) -> u16 {
        self.ack_nr
    }

    /// The window to advertise: bytes we can still take.
    pub fn window(&self) -> u32 {
        u32::try_from(self.capacity.saturating_sub(self.kept)).unwrap_or(u32::MAX)
    }

    /// The selective ACK to send, if packets past a hole are kept.
    pub fn sack(&self) -> Option<SelectiveAck> {
        let seqs: Vec<u16> = (self.pending.iter().enumerate())
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| self.ack_nr.wrapping_add(2).wrapping_add(i as u16))
            .collect();
        SelectiveAck::from_received(self.ack_nr, &seqs)
    }

    /// Bytes ready for the reader.
    pub fn readable(&self) -> usize {
        self.ready.len()
    }

    /// Take a data packet `seq` with `payload`.
    pub fn on_data(&mut self, seq: u16, payload: &[u8]) -> Arrival {
        let ahead = seq.wrapping_sub(self.ack_nr);
        if ahead == 0 || ahead >= 0x8000 {
            return Arrival::Duplicate;
        }
        let ahead = usize::from(ahead);
        if ahead > MAX_REORDER + 1 {
            return Arrival::OutOfWindow;
        }
        if ahead >= 2 && self.pending.get(ahead - 2).is_some_and(|p| p.is_some()) {
            return Arrival::Duplicate;
        }
        if self.kept + payload.len() > self.capacity {
            return Arrival::WindowFull;
        }
        self.kept += payload.len();
        if ahead == 1 {
            self.ready.extend(payload);
            self.ack_nr = seq;
            // The slot of ack_nr + 2 is now the front: what follows in order goes to the
            // reader; popping the first empty slot (the next hole) re-indexes the rest.
            while let Some(Some(p)) = self.pending.pop_front() {
                self.ready.extend(&p);
                self.ack_nr = self.ack_nr.wrapping_add(1);
            }
        } else {
            if self.pending.len() < ahead - 1 {
                self.pending.resize(ahead - 1, None);
            }
            self.pending[ahead - 2] = Some(payload.to_vec());
        }
        Arrival::Accepted
    }

    /// Copy in-order bytes into `buf`; the count copied.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.ready.len());
        copy_front(&self.ready, &mut buf[..n]);
        self.ready.drain(..n);
        self.kept -= n;
        n
    }
}

/// Copy the first `out.len()` bytes of `q` (it has at least that many) into `out`, slice by
/// slice (a byte-by-byte `drain` cost a fifth of a sender's CPU, issue 25).
pub(super) fn copy_front(q: &VecDeque<u8>, out: &mut [u8]) {
    let n = out.len();
    let (a, b) = q.as_slices();
    let k = a.len().min(n);
    out[..k].copy_from_slice(&a[..k]);
    out[k..].copy_from_slice(&b[..n - k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut RecvBuffer) -> Vec<u8> {
        let mut buf = vec![0u8; r.readable()];
        let n = r.read(&mut buf);
        buf.truncate(n);
        buf
    }

    #[test]
    fn in_order_packets_are_readable_and_acked() {
        let mut r = RecvBuffer::new(100, 1_000);
        assert_eq!(r.on_data(101, b"abc"), Arrival::Accepted);
        assert_eq!(r.on_data(102, b"de"), Arrival::Accepted);
        assert_eq!((r.ack_nr(), r.window(), r.sack()), (102, 995, None));
        assert_eq!(read_all(&mut r), b"abcde");
        assert_eq!(r.window(), 1_000);
    }

    #[test]
    fn reordered_packets_wait_and_are_selectively_acked() {
        let mut r = RecvBuffer::new(0xfffe, 1_000);
        // 0xffff is late; 0, 1 and 3 arrive first (wrapping around).
        for (seq, p) in [(0u16, b"b"), (1, b"c"), (3, b"e")] {
            assert_eq!(r.on_data(seq, p), Arrival::Accepted);
        }
        assert_eq!(r.ack_nr(), 0xfffe);
        assert_eq!(r.readable(), 0);
        let s = r.sack().unwrap();
        assert_eq!(s.acked(0xfffe).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(r.window(), 997);
        // The hole fills: 0xffff, 0, 1 in order; 2 is the next hole.
        assert_eq!(r.on_data(0xffff, b"a"), Arrival::Accepted);
        assert_eq!(r.ack_nr(), 1);
        assert_eq!(read_all(&mut r), b"abc");
        assert_eq!(r.sack().unwrap().acked(1).collect::<Vec<_>>(), vec![3]);
        assert_eq!(r.on_data(2, b"d"), Arrival::Accepted);
        assert_eq!((r.ack_nr(), r.sack()), (3, None));
        assert_eq!(read_all(&mut r), b"de");
    }

    #[test]
    fn duplicates_far_packets_and_overflow_are_refused() {
        let mut r = RecvBuffer::new(10, 10);
        assert_eq!(r.on_data(11, b"12345"), Arrival::Accepted);
        assert_eq!(r.on_data(11, b"12345"), Arrival::Duplicate);
        assert_eq!(r.on_data(5, b"x"), Arrival::Duplicate);
        assert_eq!(r.on_data(13, b"abc"), Arrival::Accepted);
        assert_eq!(r.on_data(13, b"abc"), Arrival::Duplicate);
        assert_eq!(r.on_data(14, b"abc"), Arrival::WindowFull);
        // ack_nr is 11: ack_nr + 1 + MAX_REORDER is the last seq a selective ACK can name.
        let far = 11u16 + MAX_REORDER as u16 + 2;
        assert_eq!(r.on_data(far, b""), Arrival::OutOfWindow);
        assert_eq!(r.on_data(far - 1, b""), Arrival::Accepted);
        assert_eq!(r.window(), 2);
        assert_eq!(r.read(&mut [0u8; 3]), 3);
        assert_eq!(r.window(), 5);
    }

    #[test]
    fn copy_front_reads_across_the_wrap_of_the_buffer() {
        let mut q: VecDeque<u8> = VecDeque::with_capacity(8);
        q.extend([0u8; 6]);
        q.drain(..6);
        q.extend(1..=7u8); // starts near the end of the allocation: two slices
        let mut out = [0u8; 5];
        copy_front(&q, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5]);
        let mut r = RecvBuffer::new(0, 1 << 20);
        r.on_data(1, b"hello ");
        r.on_data(2, b"world");
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf), 8);
        assert_eq!(&buf, b"hello wo");
        assert_eq!(r.read(&mut buf), 3);
        assert_eq!(&buf[..3], b"rld");
    }
}
