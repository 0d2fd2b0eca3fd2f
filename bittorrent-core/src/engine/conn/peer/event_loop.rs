//! The peer thread's loop: decode what was read, hand it over, run the
//! torrent thread's commands, serve uploads, write, then wait (`waker`) for
//! the socket or a command until the next deadline, and read.

use super::*;

impl Connection<'_> {
    pub(super) fn run(&mut self) -> Result<(), CloseReason> {
        loop {
            // Frames already buffered (the handshake read may have left some).
            // Block payloads go into recycled buffers (`block_pool`).
            while let Some(m) = self
                .decoder
                .next_message_with(&mut |d: &[u8]| block_pool::global().copy_of(d))
                .map_err(|e| CloseReason::Protocol(e.to_string()))?
            {
                self.on_message(m)?;
            }
            self.flush_blocks()?;
            self.drain_inbox()?;
            self.serve_uploads()?;
            if self.out.is_empty() && self.last_send.elapsed() > KEEPALIVE {
                self.last_send = Instant::now();
                self.send(&Message::KeepAlive);
            }
            self.flush()?;
            if self.last_recv.elapsed() > self.ctx.limits.idle_timeout {
                return Err(CloseReason::Timeout);
            }
            // With uploads waiting, never sit in `read`: take what has
            // arrived without waiting and go back to sending (the blocking
            // write in `flush` is where a busy connection waits). Otherwise
            // wait (`waker`) for bytes or a command, until the next deadline.
            // Uploads waiting for their rate-limit slot do not make the
            // connection busy: it waits (socket, inbox) until the slot.
            let slot = self.up_credit.wait();
            let busy = (!self.upload_queue.is_empty() && slot.is_none())
                || !self.out.is_empty()
                || self.stream.has_pending();
            if self.out.len() > 2 * UPLOAD_BURST {
                // The peer is not reading what we send: stop reading what it
                // sends (TCP then slows it down) until our output drains or
                // the write timeout closes the connection.
                continue;
            }
            // Events held (the torrent thread's channels were full): try
            // again soon. Holding all we may: no socket reads until the
            // torrent thread takes some; commands and uploads go on.
            let holding = !self.outbox.is_empty();
            let held = if !holding {
                if self.counters.held.load(Ordering::Relaxed) {
                    self.counters.held.store(false, Ordering::Relaxed);
                }
                Duration::MAX
            } else {
                // Woken by the torrent thread once it takes some (the
                // flag is set before the wait, so a take after this sees
                // it); the retry is a safety net.
                self.counters.held.store(true, Ordering::SeqCst);
                outbox::HOLD_RETRY
            };
            if !self.outbox.room() {
                if !busy {
                    let (inbox, counters) = (&self.inbox, &self.counters);
                    self.waker
                        .wait_inbox(held.min(slot.unwrap_or(Duration::MAX)), || {
                            // Taken since (the torrent thread cleared the
                            // flag): no wait.
                            !inbox.is_empty() || !counters.held.load(Ordering::SeqCst)
                        })
                        .map_err(|e| CloseReason::Io(e.to_string()))?;
                }
                // Waiting on our own torrent thread is not the peer's silence.
                self.last_recv = Instant::now();
                continue;
            }
            let limited = !self.ctx.throttle.unlimited(Direction::Download);
            let mut nonblocking = busy;
            if !busy {
                // Requests outstanding: the socket wakes us soon, so lazy
                // commands wait for that (within STREAMING_WAIT), and while
                // the blocks stream in, the low-water mark has one wake-up
                // read many of them.
                let streaming = !self.peer_choking && !self.sent_requests.is_empty();
                let target = if streaming && !limited {
                    self.mark
                        .target(self.sent_requests.len() * crate::proto::wire::BLOCK_SIZE as usize)
                } else {
                    1
                };
                // TCP: `SO_RCVLOWAT`; uTP: the stream's eventfd waits for it.
                self.mark.set(self.stream.socket(), target);
                let mut timeout = self
                    .next_deadline()
                    .min(slot.unwrap_or(Duration::MAX))
                    .min(held);
                if self.mark.is_set() {
                    timeout = timeout.min(LOWAT_WAIT);
                } else if streaming {
                    timeout = timeout.min(STREAMING_WAIT);
                }
                let (inbox, counters) = (&self.inbox, &self.counters);
                let woken = self
                    .waker
                    .wait(self.stream.socket().as_fd(), timeout, streaming, || {
                        !inbox.is_empty() || (holding && !counters.held.load(Ordering::SeqCst))
                    })
                    .map_err(|e| CloseReason::Io(e.to_string()))?;
                match woken {
                    Woken::Socket => self.wakes.socket += 1,
                    Woken::Inbox => self.wakes.inbox += 1,
                    Woken::Queued => self.wakes.queued += 1,
                    Woken::Timeout => self.wakes.timeout += 1,
                }
                if self.mark.is_set() {
                    // Take what is there, below the mark too (a choke), without
                    // waiting: a read would otherwise wait for the mark.
                    nonblocking = true;
                } else if woken != Woken::Socket {
                    self.give_back_if_quiet();
                    continue;
                }
            }
            // Download limit: reserve a chunk, sleep once until it is paid
            // for (capped: the inbox is served in between), read at most it.
            let mut max = self.read_size;
            if limited {
                let want = self.ctx.throttle.chunk(Direction::Download, self.read_size) as u64;
                let (t, credit) = (&self.ctx.throttle, &mut self.down_credit);
                if !credit.take(t, Direction::Download, want / 2, want) {
                    let t0 = Instant::now();
                    std::thread::sleep(credit.wait().unwrap_or_default().min(THROTTLE_SLICE));
                    // Time spent waiting on our own limit is not the peer's silence.
                    self.last_recv += t0.elapsed();
                    if !credit.take(t, Direction::Download, want / 2, want) {
                        continue;
                    }
                }
                max = max
                    .min(usize::try_from(credit.available()).unwrap_or(max))
                    .max(1);
            }
            if nonblocking {
                let _ = self.stream.set_nonblocking(true);
            }
            // Block payloads straight into recycled buffers (`block_pool`).
            let r = self
                .decoder
                .read_blocks_from(&mut self.stream, max, &mut || {
                    block_pool::global().take_block()
                });
            if nonblocking {
                let _ = self.stream.set_nonblocking(false);
            }
            match r {
                Ok(0) => return Err(CloseReason::PeerClosed),
                Ok(n) => {
                    self.last_recv = Instant::now();
                    if limited {
                        self.down_credit.spend(n as u64);
                    }
                    // Within a block message of what was asked: full (a
                    // read into block buffers holds whole messages, so it
                    // seldom returns exactly `max`).
                    if n + READ_SLOT > max && n >= max / 2 {
                        self.read_size = (self.read_size * 2).min(MAX_READ);
                        self.wakes.full += 1;
                    }
                    self.mark.count(self.stream.socket(), n);
                    self.wakes.reads += 1;
                    self.wakes.bytes += n as u64;
                    if self.mark.is_set() && n < self.mark.mark() {
                        self.wakes.early += 1;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if !busy {
                        self.give_back_if_quiet();
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e.to_string())),
            }
        }
    }

    /// Quiet for `QUIET`: keep little memory per connection. (Not after
    /// every short pause: a download that waits a few milliseconds for its
    /// next requests would free and fault in its read buffer again and
    /// again.)
    fn give_back_if_quiet(&mut self) {
        if self.last_recv.elapsed() >= QUIET {
            self.mark.forget_rate();
            self.read_size = MIN_READ;
            self.decoder.shrink(2 * MIN_READ);
        }
    }

    /// How long an idle connection may wait for bytes or a command: until
    /// its next keep-alive is due, its idle timeout, or (buffers not yet
    /// given back) the end of `QUIET`.
    fn next_deadline(&self) -> Duration {
        let mut t = KEEPALIVE.saturating_sub(self.last_send.elapsed());
        t = t.min(
            self.ctx
                .limits
                .idle_timeout
                .saturating_sub(self.last_recv.elapsed()),
        );
        if self.read_size > MIN_READ {
            t = t.min(QUIET.saturating_sub(self.last_recv.elapsed()));
        }
        // Past a deadline by a hair: wake a moment later, not in a loop.
        t.max(Duration::from_millis(1))
    }
}
