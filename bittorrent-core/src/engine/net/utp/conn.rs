//! One uTP connection (BEP 29): the state machine that ties the codec (`proto::utp`) to the
//! send window, the receive buffer and the congestion control. Pure and clock-injected: the
//! caller feeds datagrams with [`Conn::on_packet`], the clock with [`Conn::tick`], the
//! application's bytes with [`Conn::write`] / [`Conn::read`], and takes the datagrams to send
//! with [`Conn::take_outgoing`]. **Not yet wired** into the session (see the module above);
//! the endpoint in `endpoint.rs` drives it over a real socket.
//!
//! - Handshake, libtorrent's numbering: the initiator picks `recv_id`, sends `ST_SYN` with
//!   `connection_id = recv_id` and its first `seq_nr` (the SYN takes a sequence number) and
//!   sends on `recv_id + 1`. The acceptor receives on `syn.connection_id + 1`, sends on
//!   `syn.connection_id`, acknowledges the SYN with an `ST_STATE` whose `seq_nr` is its
//!   first (random) sequence number, not consumed; the initiator is connected when that
//!   STATE acknowledges the SYN. A repeated SYN is answered with the same STATE.
//! - Data: written bytes wait in a send buffer (bounded, [`SEND_BUFFER`]) and leave as
//!   packets of at most [`MAX_PAYLOAD`] bytes while LEDBAT's window and the peer's
//!   advertised window allow. Each packet is kept until ACKed, for retransmission.
//! - ACKs: every packet's `ack_nr` (and selective ACK) goes through [`SendWindow::on_ack`];
//!   a reported loss is resent at once (the window halved at most once per RTT); the
//!   retransmission timer resends the oldest unACKed packet and collapses the window.
//!   We ACK every batch of data with an `ST_STATE` carrying a selective ACK when packets
//!   past a hole are kept, and announce a reopened receive window.
//! - `ST_FIN` takes a sequence number; the reader sees end of stream once everything
//!   before it is in order. `ST_RESET` ends the connection at once.
//! - Timeouts: the SYN is resent on the retransmission timer and the connection fails after
//!   `connect_timeout`; a connection that hears nothing for `idle_timeout` (or has data
//!   unACKed that long) is closed; an idle connection sends a keep-alive STATE.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::congestion::{BaseDelay, Ledbat, Rtt};
use super::recv::{copy_front, RecvBuffer};
use super::send::SendWindow;
use crate::proto::utp::{Header, Packet, PacketType, SelectiveAck};

/// Largest payload per packet: a 1,400-byte datagram minus the header.
pub const MAX_PAYLOAD: usize = 1_400 - crate::proto::utp::HEADER_LEN;
/// Bytes written and not yet sent that a connection keeps.
pub const SEND_BUFFER: usize = 1 << 20;
/// Bytes a connection keeps for its reader (in order and out of order together).
pub const RECV_BUFFER: usize = 1 << 20;

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The handshake must finish within this.
    pub connect: Duration,
    /// Nothing heard (or data unACKed) for this long closes the connection.
    pub idle: Duration,
    /// An idle connection sends a keep-alive this often.
    pub keepalive: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            keepalive: Duration::from_secs(29),
        }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// SYN sent, no STATE yet.
    SynSent,
    /// Handshake done.
    Connected,
    /// Ended (see [`Closed`]).
    Closed(Closed),
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Both FINs sent and ACKed / received.
    Done,
    /// The peer sent `ST_RESET`.
    Reset,
    /// The handshake did not finish in time.
    ConnectTimeout,
    /// Nothing heard for `idle_timeout`.
    TimedOut,
}

#[derive(Debug)]
struct Unacked {
    seq: u16,
    kind: PacketType,
    payload: Vec<u8>,
}

/// One connection (see the module docs).
#[derive(Debug)]
pub struct Conn {
    state: State,
    recv_id: u16,
    send_id: u16,
    epoch: Instant,
    timeouts: Timeouts,
    created: Instant,
    last_heard: Instant,
    last_sent: Instant,
    /// When an ACK last released bytes (or the window was last empty).
    last_progress: Instant,
    send: SendWindow,
    unacked: VecDeque<Unacked>,
    outbuf: VecDeque<u8>,
    /// Sequence number that STATE packets carry (the next one to be used).
    next_seq: u16,
    recv: RecvBuffer,
    rtt: Rtt,
    base: BaseDelay,
    ledbat: Ledbat,
    peer_window: u32,
    reply_micro: u32,
    retransmit_at: Option<Instant>,
    last_loss: Option<Instant>,
    /// When the retransmission timer last fired.
    last_rto: Option<Instant>,
    need_ack: bool,
    last_wnd_sent: u32,
    /// The application will write no more: send a FIN once the buffer is out.
    closing: bool,
    fin_seq: Option<u16>,
    peer_fin: Option<u16>,
    outgoing: Vec<Vec<u8>>,
    /// Packets resent (timeouts and fast retransmits), for tests and statistics.
    pub retransmissions: u64,
}

fn seq_le(a: u16, b: u16) -> bool {
    b.wrapping_sub(a) < 0x8000
}

impl Conn {
    fn new(recv_id: u16, send_id: u16, first_seq: u16, ack_nr: u16, now: Instant) -> Conn {
        Conn {
            state: State::SynSent,
            recv_id,
            send_id,
            epoch: now,
            timeouts: Timeouts::default(),
            created: now,
            last_heard: now,
            last_sent: now,
            last_progress: now,
            send: SendWindow::new(first_seq),
            unacked: VecDeque::new(),
            outbuf: VecDeque::new(),
            next_seq: first_seq,
            recv: RecvBuffer::new(ack_nr, RECV_BUFFER),
            rtt: Rtt::default(),
            base: BaseDelay::default(),
            ledbat: Ledbat::default(),
            peer_window: MAX_PAYLOAD as u32,
            reply_micro: 0,
            retransmit_at: None,
            last_loss: None,
            last_rto: None,
            need_ack: false,
            last_wnd_sent: 0,
            closing: false,
            fin_seq: None,
            peer_fin: None,
            outgoing: Vec::new(),
            retransmissions: 0,
        }
    }

    /// Open a connection: receive on `recv_id`, first sequence number `first_seq` (random
    /// in practice). The SYN is in [`Conn::take_outgoing`].
    pub fn connect(recv_id: u16, first_seq: u16, timeouts: Timeouts, now: Instant) -> Conn {
        let mut c = Conn::new(recv_id, recv_id.wrapping_add(1), first_seq, 0, now);
        c.timeouts = timeouts;
        c.send_new(PacketType::Syn, Vec::new(), now);
        c
    }

    /// Accept the SYN `syn` with our first sequence number `first_seq` (random in
    /// practice). The STATE that answers it is in [`Conn::take_outgoing`].
    pub fn accept(syn: &Header, first_seq: u16, timeouts: Timeouts, now: Instant) -> Conn {
        let recv_id = syn.connection_id.wrapping_add(1);
        let mut c = Conn::new(recv_id, syn.connection_id, first_seq, syn.seq_nr, now);
        c.timeouts = timeouts;
        c.state = State::Connected;
        c.note_timestamps(syn, now);
        c.peer_window = syn.wnd_size;
        c.send_state(now);
        c
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests
    /// The id our packets arrive with.
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// The id a SYN from the peer carried (the acceptor's `send_id`).
    pub fn send_id(&self) -> u16 {
        self.send_id
    }

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Our FIN was ACKed (or the connection ended): nothing of ours is left to deliver.
    pub fn fin_acked(&self) -> bool {
        self.is_closed() || (self.fin_seq.is_some() && self.send.is_empty())
    }

    /// The peer's stream ended and every byte before its FIN was read.
    pub fn eof(&self) -> bool {
        self.peer_fin == Some(self.recv.ack_nr()) && self.recv.readable() == 0
    }

    /// Bytes ready for [`Conn::read`].
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests
    /// Bytes of every kind this connection holds (buffers and packets kept).
    pub fn memory(&self) -> usize {
        self.outbuf.len()
            + self.recv.readable()
            + self.unacked.iter().map(|u| u.payload.len()).sum::<usize>()
    }

    /// Room in the send buffer.
    pub fn writable(&self) -> usize {
        if self.closing || self.is_closed() {
            0
        } else {
            SEND_BUFFER - self.outbuf.len()
        }
    }

    /// Datagrams to send, in order.
    pub fn take_outgoing(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outgoing)
    }

    fn now_us(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }

    fn packet(&mut self, kind: PacketType, seq: u16, payload: &[u8], now: Instant) -> Vec<u8> {
        let wnd = self.recv.window();
        self.last_wnd_sent = wnd;
        self.last_sent = now;
        let sack = if kind == PacketType::State {
            self.recv.sack()
        } else {
            None
        };
        let header = Header {
            kind,
            connection_id: if kind == PacketType::Syn {
                self.recv_id
            } else {
                self.send_id
            },
            timestamp_us: self.now_us(now),
            timestamp_diff_us: self.reply_micro,
            wnd_size: wnd,
            seq_nr: seq,
            ack_nr: self.recv.ack_nr(),
        };
        Packet {
            header,
            sack,
            payload,
        }
        .encode()
    }

    fn send_state(&mut self, now: Instant) {
        let p = self.packet(PacketType::State, self.next_seq, &[], now);
        self.outgoing.push(p);
        self.need_ack = false;
    }

    /// Send a new packet that takes a sequence number; false when the send window is full.
    fn send_new(&mut self, kind: PacketType, payload: Vec<u8>, now: Instant) -> bool {
        if self.send.is_empty() {
            self.last_progress = now;
        }
        let Some(seq) = self.send.push(payload.len() as u32, now) else {
            return false;
        };
        self.next_seq = seq.wrapping_add(1);
        let p = self.packet(kind, seq, &payload, now);
        self.outgoing.push(p);
        self.unacked.push_back(Unacked { seq, kind, payload });
        if self.retransmit_at.is_none() {
            self.retransmit_at = Some(now + self.rtt.timeout());
        }
        if kind == PacketType::Data {
            // A data packet carries our ack_nr; a selective ACK still needs a STATE.
            self.need_ack = self.recv.sack().is_some();
        }
        true
    }

    fn resend(&mut self, seq: u16, now: Instant) {
        let Some(i) = self.unacked.iter().position(|u| u.seq == seq) else {
            return;
        };
        let (kind, payload) = (
            self.unacked[i].kind,
            std::mem::take(&mut self.unacked[i].payload),
        );
        let p = self.packet(kind, seq, &payload, now);
        self.unacked[i].payload = payload;
        self.outgoing.push(p);
        self.send.resent(seq, now);
        self.retransmissions += 1;
    }

    fn note_timestamps(&mut self, h: &Header, now: Instant) {
        self.reply_micro = self.now_us(now).wrapping_sub(h.timestamp_us);
        self.last_heard = now;
    }

    /// Take a datagram addressed to this connection (its `connection_id` is our `recv_id`,
    /// or it is a repeated SYN from the peer).
    pub fn on_packet(&mut self, p: &Packet<'_>, now: Instant) {
        let h = &p.header;
        if self.state == State::Closed(Closed::Done) && h.kind == PacketType::Fin {
            // Our ACK of the peer's FIN was lost: it sends the FIN again.
            self.send_state(now);
            return;
        }
        if self.is_closed() {
            return;
        }
        self.note_timestamps(h, now);
        match h.kind {
            PacketType::Reset => {
                self.state = State::Closed(Closed::Reset);
                self.outbuf.clear();
                return;
            }
            PacketType::Syn => {
                // The initiator did not get our STATE: answer again.
                if h.seq_nr == self.recv.ack_nr() {
                    self.send_state(now);
                }
                return;
            }
            _ => {}
        }
        if self.state == State::SynSent {
            if h.kind != PacketType::State || h.ack_nr != self.send.first_unacked().unwrap_or(0) {
                return;
            }
            self.state = State::Connected;
            self.recv = RecvBuffer::new(h.seq_nr.wrapping_sub(1), RECV_BUFFER);
        }
        self.peer_window = h.wnd_size;
        self.on_ack(h, p.sack.as_ref(), now);
        match h.kind {
            PacketType::Data => {
                if self.peer_fin.is_some_and(|f| !seq_le(h.seq_nr, f)) {
                    return; // nothing comes after a FIN
                }
                self.recv.on_data(h.seq_nr, p.payload);
                self.need_ack = true;
            }
            PacketType::Fin => {
                if self.peer_fin.is_none() {
                    self.peer_fin = Some(h.seq_nr);
                }
                self.recv.on_data(h.seq_nr, &[]);
                self.need_ack = true;
            }
            _ => {}
        }
        self.check_done();
    }

    fn on_ack(&mut self, h: &Header, sack: Option<&SelectiveAck>, now: Instant) {
        let out = self.send.on_ack(h.ack_nr, sack, now);
        if out.bogus {
            return;
        }
        while self.unacked.len() > self.send.len() {
            self.unacked.pop_front();
        }
        for s in &out.rtt_samples {
            self.rtt.sample(*s);
        }
        if out.acked_bytes > 0 {
            let our_delay = if h.timestamp_diff_us != 0 {
                self.base.sample(now, h.timestamp_diff_us)
            } else {
                0
            };
            self.ledbat.on_ack(out.acked_bytes, our_delay);
        }
        if out.acked_bytes > 0 || !out.rtt_samples.is_empty() {
            self.last_progress = now;
            self.retransmit_at = (!self.send.is_empty()).then(|| now + self.rtt.timeout());
        }
        // After a timeout, a cumulative ACK that stops at another packet sent before the
        // timeout shows that one lost too: resend it now rather than after another timeout.
        if out.acked_bytes > 0 && out.lost.is_none() {
            if let (Some(rto), Some(sent), Some(seq)) = (
                self.last_rto,
                self.send.oldest_sent_at(),
                self.send.first_unacked(),
            ) {
                if sent <= rto {
                    self.resend(seq, now);
                }
            }
        }
        if let Some(lost) = out.lost {
            let rtt = self.rtt.rtt().unwrap_or(Duration::from_millis(100));
            if self
                .last_loss
                .is_none_or(|t| now.saturating_duration_since(t) >= rtt)
            {
                self.ledbat.on_loss();
                self.last_loss = Some(now);
            }
            self.resend(lost, now);
        }
        // Every other hole with three packets selectively ACKed past it, not resent within
        // the last RTT, goes again too (one hole per RTT would crawl after a burst of loss).
        if sack.is_some() {
            let rtt = self.rtt.rtt().unwrap_or(Duration::from_millis(100));
            for seq in self.send.holes(now.checked_sub(rtt).unwrap_or(now)) {
                self.resend(seq, now);
            }
        }
    }

    fn check_done(&mut self) {
        if self.fin_acked() && self.peer_fin.is_some_and(|f| seq_le(f, self.recv.ack_nr())) {
            self.state = State::Closed(Closed::Done);
        }
    }

    /// Queue bytes to send; how many were taken (0 when the send buffer is full or the
    /// connection is closing). They leave on the next [`Conn::flush`].
    pub fn write(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.writable());
        self.outbuf.extend(&buf[..n]);
        n
    }

    /// Copy bytes for the reader; the count (0 when none is ready).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        self.recv.read(buf)
    }

    /// The application will write no more: a FIN follows the buffered bytes.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Send what the windows allow, and the ACK that is due.
    pub fn flush(&mut self, now: Instant) {
        if self.state != State::Connected {
            // A FIN that closed the connection still deserves its ACK.
            if self.state == State::Closed(Closed::Done) && self.need_ack {
                self.send_state(now);
            }
            return;
        }
        while !self.outbuf.is_empty() {
            let size = self.outbuf.len().min(MAX_PAYLOAD);
            if !self
                .ledbat
                .can_send(self.send.in_flight(), size as u32, self.peer_window)
            {
                break;
            }
            let mut payload = vec![0u8; size];
            copy_front(&self.outbuf, &mut payload);
            if !self.send_new(PacketType::Data, payload, now) {
                break; // the packet count bound: the bytes stay in the buffer
            }
            self.outbuf.drain(..size);
        }
        if self.closing && self.outbuf.is_empty() && self.fin_seq.is_none() {
            let seq = self.next_seq;
            if self.send_new(PacketType::Fin, Vec::new(), now) {
                self.fin_seq = Some(seq);
            }
        }
        // A reader that freed a quarter of the buffer reopens the window.
        if self.recv.window() >= self.last_wnd_sent.saturating_add(RECV_BUFFER as u32 / 4) {
            self.need_ack = true;
        }
        if self.need_ack {
            self.send_state(now);
        }
        self.check_done();
    }

    /// Run the timers: retransmission, connect and idle timeouts, keep-alive.
    pub fn tick(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.state == State::SynSent
            && now.saturating_duration_since(self.created) >= self.timeouts.connect
        {
            self.state = State::Closed(Closed::ConnectTimeout);
            return;
        }
        let stalled = !self.send.is_empty()
            && now.saturating_duration_since(self.last_progress) >= self.timeouts.idle;
        if stalled || now.saturating_duration_since(self.last_heard) >= self.timeouts.idle {
            self.state = State::Closed(Closed::TimedOut);
            self.outbuf.clear();
            self.unacked.clear();
            return;
        }
        if self.retransmit_at.is_some_and(|t| now >= t) {
            if let Some(seq) = self.send.first_unacked() {
                self.rtt.on_timeout();
                if self.state == State::Connected {
                    self.ledbat.on_timeout();
                }
                self.resend(seq, now);
                self.last_rto = Some(now);
                self.retransmit_at = Some(now + self.rtt.timeout());
            } else {
                self.retransmit_at = None;
            }
        }
        if self.state == State::Connected
            && now.saturating_duration_since(self.last_sent) >= self.timeouts.keepalive
        {
            self.send_state(now);
        }
    }

    #[allow(dead_code)] // for an endpoint that sleeps until the next timer
    /// When [`Conn::tick`] should run next at the latest.
    pub fn next_timer(&self) -> Option<Instant> {
        self.retransmit_at
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
