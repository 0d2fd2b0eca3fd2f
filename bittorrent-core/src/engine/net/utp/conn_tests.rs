#![allow(clippy::unwrap_used)]
use super::*;

const MS: Duration = Duration::from_millis(1);

/// Two connections joined by a link that a test can make lossy or reordering.
struct Pair {
    a: Conn,
    b: Conn,
    now: Instant,
    sent_a: Vec<u8>,
    got_b: Vec<u8>,
    /// Datagrams in flight: (from a, bytes).
    wire: Vec<(bool, Vec<u8>)>,
}

fn pair(t0: Instant) -> Pair {
    pair_with(t0, 500, 9000)
}

fn pair_with(t0: Instant, a_seq: u16, b_seq: u16) -> Pair {
    let mut a = Conn::connect(1000, a_seq, Timeouts::default(), t0);
    let syn = a.take_outgoing();
    assert_eq!(syn.len(), 1);
    let p = Packet::decode(&syn[0]).unwrap();
    assert_eq!(p.header.kind, PacketType::Syn);
    assert_eq!(p.header.connection_id, 1000);
    assert_eq!(p.header.seq_nr, a_seq);
    let mut b = Conn::accept(&p.header, b_seq, Timeouts::default(), t0);
    assert_eq!((b.recv_id(), b.send_id()), (1001, 1000));
    let st = b.take_outgoing();
    let p = Packet::decode(&st[0]).unwrap();
    assert_eq!(p.header.kind, PacketType::State);
    assert_eq!(p.header.connection_id, 1000);
    assert_eq!(p.header.ack_nr, a_seq);
    a.on_packet(&p, t0 + MS);
    assert_eq!(a.state(), State::Connected);
    Pair {
        a,
        b,
        now: t0 + MS,
        sent_a: Vec::new(),
        got_b: Vec::new(),
        wire: Vec::new(),
    }
}

impl Pair {
    /// One round: both flush, the datagrams pass `keep` (index, from_a, bytes) and arrive
    /// in the order `order` gives, time moves on, both tick, b's reader drains.
    fn round(&mut self, keep: &mut dyn FnMut(usize, bool, &[u8]) -> bool, reverse: bool) {
        self.a.flush(self.now);
        self.b.flush(self.now);
        for d in self.a.take_outgoing() {
            self.wire.push((true, d));
        }
        for d in self.b.take_outgoing() {
            self.wire.push((false, d));
        }
        let mut wire = std::mem::take(&mut self.wire);
        if reverse {
            wire.reverse();
        }
        self.now += 5 * MS;
        for (i, (from_a, d)) in wire.into_iter().enumerate() {
            if !keep(i, from_a, &d) {
                continue;
            }
            let p = Packet::decode(&d).unwrap();
            if from_a {
                assert_eq!(p.header.connection_id, 1001);
                self.b.on_packet(&p, self.now);
            } else {
                assert_eq!(p.header.connection_id, 1000);
                self.a.on_packet(&p, self.now);
            }
        }
        self.a.tick(self.now);
        self.b.tick(self.now);
        let mut buf = [0u8; 65536];
        loop {
            let n = self.b.read(&mut buf);
            if n == 0 {
                break;
            }
            self.got_b.extend_from_slice(&buf[..n]);
        }
    }

    fn send(&mut self, data: &[u8]) {
        let n = self.a.write(data);
        assert_eq!(n, data.len());
        self.sent_a.extend_from_slice(data);
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn handshake_uses_bep29_ids_and_data_arrives_in_order() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(&data(100_000));
    for _ in 0..200 {
        p.round(&mut |_, _, _| true, false);
        if p.got_b.len() == p.sent_a.len() {
            break;
        }
    }
    assert_eq!(p.got_b, p.sent_a);
    assert_eq!(p.a.retransmissions, 0);
    p.round(&mut |_, _, _| true, false);
    assert_eq!(p.a.memory(), 0, "everything ACKed");
}

#[test]
fn lost_syn_is_resent_and_repeated_syn_answered() {
    let t0 = Instant::now();
    let mut a = Conn::connect(7, 1, Timeouts::default(), t0);
    let syn1 = a.take_outgoing();
    a.tick(t0 + 500 * MS);
    assert!(
        a.take_outgoing().is_empty(),
        "no resend before the 1 s timeout"
    );
    a.tick(t0 + 1_001 * MS);
    let syn2 = a.take_outgoing();
    assert_eq!(syn2.len(), 1);
    let h = Packet::decode(&syn2[0]).unwrap().header;
    assert_eq!((h.kind, h.seq_nr), (PacketType::Syn, 1));
    let p1 = Packet::decode(&syn1[0]).unwrap();
    let mut b = Conn::accept(&p1.header, 77, Timeouts::default(), t0);
    let _lost_state = b.take_outgoing();
    b.on_packet(&Packet::decode(&syn2[0]).unwrap(), t0 + 1_002 * MS);
    let st = b.take_outgoing();
    assert_eq!(st.len(), 1);
    a.on_packet(&Packet::decode(&st[0]).unwrap(), t0 + 1_003 * MS);
    assert_eq!(a.state(), State::Connected);
}

#[test]
fn connect_times_out() {
    let t0 = Instant::now();
    let mut a = Conn::connect(7, 1, Timeouts::default(), t0);
    for s in 1..=10 {
        a.tick(t0 + Duration::from_secs(s));
    }
    assert_eq!(a.state(), State::Closed(Closed::ConnectTimeout));
}

#[test]
fn a_state_that_does_not_ack_the_syn_does_not_connect() {
    let t0 = Instant::now();
    let mut a = Conn::connect(7, 1, Timeouts::default(), t0);
    let syn = a.take_outgoing();
    let mut h = Packet::decode(&syn[0]).unwrap().header;
    h.seq_nr = 1; // as a bogus acceptor
    let mut b = Conn::accept(&h, 77, Timeouts::default(), t0);
    let st = b.take_outgoing();
    let mut p = Packet::decode(&st[0]).unwrap();
    p.header.ack_nr = 40;
    a.on_packet(&p, t0);
    assert_eq!(a.state(), State::SynSent);
}

#[test]
fn losses_are_repaired_by_fast_retransmit_and_timeout() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(&data(300_000));
    let mut n = 0usize;
    for _ in 0..2_000 {
        // Drop every 13th datagram from a, in both directions every 17th.
        p.round(
            &mut |_, from_a, _| {
                n += 1;
                !(from_a && n % 13 == 0) && n % 17 != 0
            },
            false,
        );
        if p.got_b.len() == p.sent_a.len() {
            break;
        }
    }
    assert_eq!(p.got_b.len(), p.sent_a.len());
    assert!(p.got_b == p.sent_a);
    assert!(p.a.retransmissions > 0);
}

#[test]
fn reordering_and_duplicates_are_harmless() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(&data(200_000));
    let mut dup: Vec<Vec<u8>> = Vec::new();
    for r in 0..2_000 {
        // Every round arrives in reverse order; every 5th round a's datagrams arrive twice.
        p.round(
            &mut |_, from_a, d| {
                if from_a && r % 5 == 0 {
                    dup.push(d.to_vec());
                }
                true
            },
            true,
        );
        for d in dup.drain(..) {
            let now = p.now;
            p.b.on_packet(&Packet::decode(&d).unwrap(), now);
        }
        if p.got_b.len() == p.sent_a.len() {
            break;
        }
    }
    assert!(p.got_b == p.sent_a);
}

#[test]
fn fin_ends_both_sides() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(b"hello");
    p.a.close();
    assert_eq!(p.a.write(b"more"), 0, "no writes after close");
    for _ in 0..10 {
        p.round(&mut |_, _, _| true, false);
    }
    assert_eq!(p.got_b, b"hello");
    assert!(p.b.eof());
    assert!(p.a.fin_acked());
    assert!(!p.b.is_closed(), "b may still write");
    p.b.write(b"bye");
    p.b.close();
    let mut got_a = Vec::new();
    for _ in 0..10 {
        p.round(&mut |_, _, _| true, false);
        let mut buf = [0u8; 64];
        let n = p.a.read(&mut buf);
        got_a.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got_a, b"bye");
    assert_eq!(p.a.state(), State::Closed(Closed::Done));
    assert_eq!(p.b.state(), State::Closed(Closed::Done));
}

#[test]
fn fin_waits_for_the_hole_before_it() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(&data(3_000));
    p.a.close();
    // Lose a's first data packet once.
    let mut first = true;
    p.round(
        &mut |_, from_a, d| {
            let k = Packet::decode(d).unwrap().header.kind;
            if from_a && k == PacketType::Data && first {
                first = false;
                return false;
            }
            true
        },
        false,
    );
    assert!(!p.b.eof(), "FIN arrived, a hole before it");
    for _ in 0..400 {
        p.round(&mut |_, _, _| true, false);
        if p.b.eof() {
            break;
        }
    }
    assert!(p.b.eof());
    assert_eq!(p.got_b, p.sent_a);
}

#[test]
fn reset_closes_at_once() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    let reset = Packet {
        header: Header {
            kind: PacketType::Reset,
            connection_id: 1000,
            timestamp_us: 0,
            timestamp_diff_us: 0,
            wnd_size: 0,
            seq_nr: 0,
            ack_nr: 0,
        },
        sack: None,
        payload: &[],
    };
    p.a.on_packet(&reset, p.now);
    assert_eq!(p.a.state(), State::Closed(Closed::Reset));
    assert_eq!(p.a.write(b"x"), 0);
}

#[test]
fn a_peer_that_never_acks_times_out_with_bounded_memory() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    let chunk = data(64 * 1024);
    let mut now = p.now;
    let mut max_mem = 0;
    // b keeps sending keep-alives that ACK nothing new; a's data is never ACKed.
    for i in 0..10_000u32 {
        while p.a.write(&chunk) > 0 {}
        p.a.flush(now);
        let _ = p.a.take_outgoing();
        if i % 100 == 0 {
            p.b.tick(now + Duration::from_secs(30));
            for d in p.b.take_outgoing() {
                p.a.on_packet(&Packet::decode(&d).unwrap(), now);
            }
        }
        p.a.tick(now);
        max_mem = max_mem.max(p.a.memory());
        if p.a.is_closed() {
            break;
        }
        now += 10 * MS;
    }
    assert_eq!(p.a.state(), State::Closed(Closed::TimedOut));
    assert!(max_mem <= SEND_BUFFER + 64 * 1024, "{max_mem}");
    assert_eq!(p.a.memory(), 0);
}

#[test]
fn window_reopens_after_the_reader_drains() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(&data(SEND_BUFFER));
    // b reads nothing for a while: a fills b's buffer and stops.
    for _ in 0..400 {
        p.a.flush(p.now);
        p.b.flush(p.now);
        p.now += 5 * MS;
        for d in p.a.take_outgoing() {
            p.b.on_packet(&Packet::decode(&d).unwrap(), p.now);
        }
        for d in p.b.take_outgoing() {
            p.a.on_packet(&Packet::decode(&d).unwrap(), p.now);
        }
    }
    assert!(p.b.readable() <= RECV_BUFFER);
    assert!(p.b.readable() > RECV_BUFFER / 2);
    for _ in 0..2_000 {
        p.round(&mut |_, _, _| true, false);
        if p.got_b.len() == p.sent_a.len() {
            break;
        }
    }
    assert!(p.got_b == p.sent_a);
}

#[test]
fn sequence_numbers_wrap_around() {
    let t0 = Instant::now();
    let mut p = pair_with(t0, 65_500, 65_530);
    p.send(&data(200_000));
    p.b.write(&data(50_000));
    let mut got_a = Vec::new();
    let mut n = 0usize;
    for _ in 0..2_000 {
        p.round(
            &mut |_, _, _| {
                n += 1;
                n % 23 != 0
            },
            false,
        );
        let mut buf = [0u8; 65536];
        let k = p.a.read(&mut buf);
        got_a.extend_from_slice(&buf[..k]);
        if p.got_b.len() == p.sent_a.len() && got_a.len() == 50_000 {
            break;
        }
    }
    assert!(p.got_b == p.sent_a);
    assert!(got_a == data(50_000));
}

#[test]
fn a_zero_window_forever_times_out() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    let chunk = data(64 * 1024);
    // b never reads: its window closes, and a must give up after the idle timeout although
    // b keeps answering.
    for _ in 0..20_000 {
        while p.a.write(&chunk) > 0 {}
        p.a.flush(p.now);
        p.b.flush(p.now);
        p.now += 5 * MS;
        for d in p.a.take_outgoing() {
            p.b.on_packet(&Packet::decode(&d).unwrap(), p.now);
        }
        for d in p.b.take_outgoing() {
            p.a.on_packet(&Packet::decode(&d).unwrap(), p.now);
        }
        p.a.tick(p.now);
        p.b.tick(p.now);
        assert!(p.b.readable() <= RECV_BUFFER);
        if p.a.is_closed() {
            break;
        }
    }
    assert_eq!(p.a.state(), State::Closed(Closed::TimedOut));
    assert!(p.now - t0 >= Timeouts::default().idle);
}

#[test]
fn acks_for_data_never_sent_are_ignored() {
    let t0 = Instant::now();
    let mut p = pair(t0);
    p.send(&data(20_000));
    p.a.flush(p.now);
    let in_flight = p.a.memory();
    let out = p.a.take_outgoing();
    assert!(!out.is_empty());
    // b "acknowledges" packets far past anything a sent, with a selective ACK too.
    let sack = SelectiveAck::from_received(40_000, &[40_002, 40_003, 40_004]).unwrap();
    let bogus = Packet {
        header: Header {
            kind: PacketType::State,
            connection_id: 1000,
            timestamp_us: 0,
            timestamp_diff_us: 0,
            wnd_size: 1 << 20,
            seq_nr: 9000,
            ack_nr: 40_000,
        },
        sack: Some(sack),
        payload: &[],
    };
    p.a.on_packet(&bogus, p.now);
    assert_eq!(p.a.memory(), in_flight, "nothing released");
    assert_eq!(p.a.state(), State::Connected);
    // The real packets still arrive and are ACKed normally.
    for d in out {
        p.wire.push((true, d));
    }
    for _ in 0..100 {
        p.round(&mut |_, _, _| true, false);
    }
    assert!(p.got_b == p.sent_a);
}
