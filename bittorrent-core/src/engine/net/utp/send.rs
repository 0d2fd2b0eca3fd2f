//! A uTP connection's send side, pure and clock-injected: the packets in flight, and what an
//! incoming ACK (cumulative `ack_nr` plus an optional selective ACK) does to them. **Not yet
//! wired** (see the module above); the caller feeds the results to `congestion`.
//!
//! - A cumulative ACK releases every packet up to `ack_nr`; a selective ACK marks packets
//!   past a hole as received (their bytes leave the window, the packets stay until the hole
//!   is filled, since uTP cannot repackage).
//! - An ACK for a packet never sent (outside `oldest - 1 ..= newest`) is ignored and counted.
//! - RTT samples come only from packets sent once (BEP 29, Karn's rule).
//! - The first unACKed packet is reported lost (for a fast retransmit) after 3 duplicate
//!   ACKs, or when 3 packets past it are selectively ACKed; once per hole.
//! - At most [`MAX_IN_FLIGHT_PACKETS`] packets are kept: a peer that never ACKs cannot make
//!   the window grow without bound.

use crate::proto::utp::SelectiveAck;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most packets in flight per connection.
pub const MAX_IN_FLIGHT_PACKETS: usize = 4_096;
/// Duplicate ACKs (or selectively ACKed packets past a hole) that mark the hole lost.
pub const DUP_ACK_THRESHOLD: u32 = 3;

#[derive(Debug, Clone)]
struct Sent {
    seq: u16,
    len: u32,
    sent_at: Instant,
    transmissions: u32,
    sacked: bool,
}

/// What one ACK did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AckOutcome {
    /// Bytes newly ACKed (cumulatively or selectively), for LEDBAT.
    pub acked_bytes: u32,
    /// RTTs of newly ACKed packets that were sent once.
    pub rtt_samples: Vec<Duration>,
    /// A packet to retransmit now (fast retransmit), if the ACK revealed a loss.
    pub lost: Option<u16>,
    /// The ACK was for a packet never sent, and was ignored.
    pub bogus: bool,
}

/// The packets in flight (see the module docs).
#[derive(Debug, Clone)]
pub struct SendWindow {
    packets: VecDeque<Sent>,
    next_seq: u16,
    dup_acks: u32,
    /// The sequence number last reported lost (so a hole is reported once).
    reported: Option<u16>,
    in_flight: u32,
    /// ACKs ignored because they named packets never sent.
    pub bogus_acks: u64,
}

impl SendWindow {
    /// A window whose first packet will carry `first_seq`.
    pub fn new(first_seq: u16) -> SendWindow {
        SendWindow {
            packets: VecDeque::new(),
            next_seq: first_seq,
            dup_acks: 0,
            reported: None,
            in_flight: 0,
            bogus_acks: 0,
        }
    }

    /// Bytes sent and neither cumulatively nor selectively ACKed.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Packets kept (ACKed selectively or not at all).
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// When the oldest packet still kept was last sent (for the retransmission timer).
    pub fn oldest_sent_at(&self) -> Option<Instant> {
        self.packets.front().map(|p| p.sent_at)
    }

    /// Record a new packet of `len` payload bytes sent at `now`; its sequence number, or
    /// `None` when [`MAX_IN_FLIGHT_PACKETS`] are already kept.
    pub fn push(&mut self, len: u32, now: Instant) -> Option<u16> {
        if self.packets.len() >= MAX_IN_FLIGHT_PACKETS {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.packets.push_back(Sent {
            seq,
            len,
            sent_at: now,
            transmissions: 1,
            sacked: false,
        });
        self.in_flight = self.in_flight.saturating_add(len);
        Some(seq)
    }

    /// Packet `seq` was sent again at `now` (after a loss or a timeout).
    pub fn resent(&mut self, seq: u16, now: Instant) {
        if let Some(p) = self.packets.iter_mut().find(|p| p.seq == seq) {
            p.transmissions += 1;
            p.sent_at = now;
        }
    }

    /// The oldest packet not selectively ACKed (what a timeout resends first).
    pub fn first_unacked(&self) -> Option<u16> {
        self.packets.iter().find(|p| !p.sacked).map(|p| p.seq)
    }

    /// Packets presumed lost: not ACKed, with at least [`DUP_ACK_THRESHOLD`] packets after
    /// them selectively ACKed, and last sent at or before `sent_before` (so a packet resent
    /// less than an RTT ago is not resent again). Oldest first.
    pub fn holes(&self, sent_before: Instant) -> Vec<u16> {
        let mut sacked_after = 0u32;
        let mut out = Vec::new();
        for p in self.packets.iter().rev() {
            if p.sacked {
                sacked_after += 1;
            } else if sacked_after >= DUP_ACK_THRESHOLD && p.sent_at <= sent_before {
                out.push(p.seq);
            }
        }
        out.reverse();
        out
    }

    /// Apply an incoming ACK at `now`.
    pub fn on_ack(&mut self, ack_nr: u16, sack: Option<&SelectiveAck>, now: Instant) -> AckOutcome {
        let mut out = AckOutcome::default();
        let Some(oldest) = self.packets.front().map(|p| p.seq) else {
            // Nothing in flight: only an ACK of the last packet sent is legitimate.
            if ack_nr != self.next_seq.wrapping_sub(1) {
                self.bogus_acks += 1;
                out.bogus = true;
            }
            return out;
        };
        // How many packets the ACK releases: ack_nr - (oldest - 1), within what is kept.
        let released = usize::from(ack_nr.wrapping_sub(oldest.wrapping_sub(1)));
        if released > self.packets.len() {
            self.bogus_acks += 1;
            out.bogus = true;
            return out;
        }
        let sample = |p: &Sent, out: &mut AckOutcome| {
            if p.transmissions == 1 {
                out.rtt_samples
                    .push(now.saturating_duration_since(p.sent_at));
            }
        };
        for p in self.packets.drain(..released) {
            if !p.sacked {
                out.acked_bytes = out.acked_bytes.saturating_add(p.len);
                sample(&p, &mut out);
            }
        }
        let mut sacked_past_hole = 0u32;
        if let Some(s) = sack {
            for p in self.packets.iter_mut() {
                if s.acks(ack_nr, p.seq) {
                    if !p.sacked {
                        p.sacked = true;
                        out.acked_bytes = out.acked_bytes.saturating_add(p.len);
                        sample(p, &mut out);
                    }
                    sacked_past_hole += 1;
                }
            }
        }
        self.in_flight = self.in_flight.saturating_sub(out.acked_bytes);
        if released > 0 {
            self.dup_acks = 0;
        } else if !self.packets.is_empty() {
            self.dup_acks += 1;
        }
        let hole = self.packets.front().filter(|p| !p.sacked).map(|p| p.seq);
        if let Some(h) = hole {
            let lost = self.dup_acks >= DUP_ACK_THRESHOLD || sacked_past_hole >= DUP_ACK_THRESHOLD;
            if lost && self.reported != Some(h) {
                self.reported = Some(h);
                out.lost = Some(h);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn window_of(n: u16, first: u16, t0: Instant) -> SendWindow {
        let mut w = SendWindow::new(first);
        for i in 0..n {
            assert_eq!(
                w.push(1_000, t0 + u32::from(i) * MS),
                Some(first.wrapping_add(i))
            );
        }
        w
    }

    #[test]
    fn cumulative_acks_release_packets_and_sample_rtt() {
        let t0 = Instant::now();
        let mut w = window_of(5, 10, t0);
        assert_eq!(w.in_flight(), 5_000);
        let o = w.on_ack(12, None, t0 + 50 * MS);
        assert_eq!(o.acked_bytes, 3_000);
        assert_eq!(o.rtt_samples, vec![50 * MS, 49 * MS, 48 * MS]);
        assert_eq!((o.lost, o.bogus), (None, false));
        assert_eq!((w.len(), w.in_flight()), (2, 2_000));
        let o = w.on_ack(14, None, t0 + 60 * MS);
        assert_eq!(o.acked_bytes, 2_000);
        assert!(w.is_empty());
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut w = window_of(4, 0xfffe, t0);
        let o = w.on_ack(0, None, t0 + 10 * MS); // releases 0xfffe, 0xffff, 0
        assert_eq!(o.acked_bytes, 3_000);
        assert_eq!(w.first_unacked(), Some(1));
    }

    #[test]
    fn acks_for_data_never_sent_are_ignored() {
        let t0 = Instant::now();
        let mut w = window_of(3, 100, t0);
        for bogus in [103u16, 200, 50, 98] {
            let o = w.on_ack(bogus, None, t0);
            assert!(o.bogus, "{bogus}");
            assert_eq!(o.acked_bytes, 0);
        }
        assert_eq!((w.len(), w.in_flight(), w.bogus_acks), (3, 3_000, 4));
        // ack_nr = oldest - 1 is a plain duplicate ACK, not bogus.
        assert!(!w.on_ack(99, None, t0).bogus);
        let mut empty = SendWindow::new(7);
        assert!(!empty.on_ack(6, None, t0).bogus);
        assert!(empty.on_ack(7, None, t0).bogus);
    }

    #[test]
    fn three_duplicate_acks_report_the_hole_once() {
        let t0 = Instant::now();
        let mut w = window_of(6, 1, t0);
        w.on_ack(1, None, t0 + 10 * MS); // packet 2 lost
        assert_eq!(w.on_ack(1, None, t0 + 11 * MS).lost, None);
        assert_eq!(w.on_ack(1, None, t0 + 12 * MS).lost, None);
        assert_eq!(w.on_ack(1, None, t0 + 13 * MS).lost, Some(2));
        assert_eq!(w.on_ack(1, None, t0 + 14 * MS).lost, None, "reported once");
        // Resent packets give no RTT sample (Karn), and the ACK moves on.
        w.resent(2, t0 + 15 * MS);
        let o = w.on_ack(6, None, t0 + 40 * MS);
        assert_eq!(o.acked_bytes, 5_000);
        assert_eq!(o.rtt_samples.len(), 4);
        assert!(w.is_empty());
    }

    #[test]
    fn holes_are_every_gap_with_three_acked_past_it() {
        let t0 = Instant::now();
        let mut w = window_of(10, 1, t0);
        // 1 arrived; 2 and 5 missing; 3, 4, 6, 7, 8 arrived; 9 and 10 not yet.
        let s = SelectiveAck::from_received(1, &[3, 4, 6, 7, 8]).unwrap();
        w.on_ack(1, Some(&s), t0 + 30 * MS);
        assert_eq!(w.holes(t0 + 30 * MS), vec![2, 5]);
        // A hole resent after the cut-off is not reported again.
        w.resent(2, t0 + 31 * MS);
        assert_eq!(w.holes(t0 + 30 * MS), vec![5]);
        assert_eq!(w.holes(t0 + 31 * MS), vec![2, 5]);
    }

    #[test]
    fn selective_acks_after_reordering_and_loss() {
        let t0 = Instant::now();
        let mut w = window_of(8, 10, t0);
        // 10 arrived; 11 missing; 12 and 14 arrived (reordered/lost in between).
        let s = SelectiveAck::from_received(10, &[12, 14]).unwrap();
        let o = w.on_ack(10, Some(&s), t0 + 30 * MS);
        assert_eq!(o.acked_bytes, 3_000);
        assert_eq!(o.rtt_samples.len(), 3);
        assert_eq!(o.lost, None, "two past the hole is not enough");
        assert_eq!(w.in_flight(), 5_000);
        assert_eq!(w.first_unacked(), Some(11));
        // The same SACK again counts nothing twice; a third packet past the hole: 11 lost.
        let s = SelectiveAck::from_received(10, &[12, 14, 15]).unwrap();
        let o = w.on_ack(10, Some(&s), t0 + 31 * MS);
        assert_eq!(o.acked_bytes, 1_000);
        assert_eq!(o.lost, Some(11));
        // 11 resent and received: the cumulative ACK jumps to 12, 13 is the next hole.
        w.resent(11, t0 + 32 * MS);
        let s = SelectiveAck::from_received(12, &[14, 15]).unwrap();
        let o = w.on_ack(12, Some(&s), t0 + 60 * MS);
        assert_eq!(o.acked_bytes, 1_000, "only 11's bytes are new");
        assert!(o.rtt_samples.is_empty(), "11 was sent twice");
        assert_eq!(w.first_unacked(), Some(13));
        assert_eq!(w.in_flight(), 3_000); // 13, 16, 17
        let o = w.on_ack(17, None, t0 + 70 * MS);
        assert_eq!(o.acked_bytes, 3_000);
        assert!(w.is_empty());
    }

    #[test]
    fn a_peer_that_never_acks_cannot_grow_the_window_without_bound() {
        let t0 = Instant::now();
        let mut w = SendWindow::new(0);
        for _ in 0..MAX_IN_FLIGHT_PACKETS {
            assert!(w.push(1_400, t0).is_some());
        }
        assert_eq!(w.push(1_400, t0), None);
        assert_eq!(w.len(), MAX_IN_FLIGHT_PACKETS);
        assert_eq!(w.oldest_sent_at(), Some(t0));
    }
}
