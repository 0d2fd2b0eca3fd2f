//! A peer thread's uploads: the requests a peer makes (checked, queued), and serving
//! them from a kept piece's blocks or from one read of the requested run (the upload
//! cache), within the upload rate limit.

use super::*;

impl Connection<'_> {
    pub(super) fn serve_uploads(&mut self) -> Result<(), CloseReason> {
        // Bound the bytes queued per loop turn so reads stay responsive.
        // Upload limit: a send quantum of the queued blocks is reserved at
        // once; short of credit, wait (in `run`) for its slot.
        let limited = !self.ctx.throttle.unlimited(Direction::Upload);
        while self.out.len() < UPLOAD_BURST {
            let Some(len) = self.upload_queue.front().map(|b| u64::from(b.length)) else {
                break;
            };
            if limited {
                let quantum = self.ctx.throttle.upload_quantum();
                let queued: u64 = self
                    .upload_queue
                    .iter()
                    .take(16)
                    .map(|b| u64::from(b.length))
                    .sum();
                let t = &self.ctx.throttle;
                if !self
                    .up_credit
                    .take(t, Direction::Upload, len, queued.min(quantum))
                {
                    break;
                }
            }
            let Some(b) = self.upload_queue.pop_front() else {
                break;
            };
            let (source, at) = match self.upload_source(&b) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("upload read failed: {e}");
                    if self.fast {
                        self.send(&Message::Reject(b));
                    }
                    continue;
                }
            };
            // The payload stays where it is until the socket takes it.
            let end = at + b.length as usize;
            self.out.push_piece(b.index, b.begin, source, at, end);
            self.counters
                .uploaded
                .fetch_add(u64::from(b.length), Ordering::Relaxed);
            self.up_credit.spend(u64::from(b.length));
        }
        if self.upload_queue.is_empty() {
            self.up_credit
                .release(&self.ctx.throttle, Direction::Upload);
            // Cached briefly: only while requests keep coming.
            self.upload_cache = None;
            self.out.drop_spare();
        }
        Ok(())
    }

    /// Where the bytes of requested block `b` are, and where `b` starts
    /// there: a block of a verified piece the torrent keeps in memory (no
    /// read), or else the upload cache (`cache_block`).
    pub(super) fn upload_source(
        &mut self,
        b: &BlockRef,
    ) -> Result<(Source, usize), crate::engine::storage::StorageError> {
        if let Some((block, at)) = self.ctx.recent.block(b.index, b.begin, b.length) {
            self.ctx.recent.count_sent(u64::from(b.length));
            return Ok((Source::Kept(block), at));
        }
        let (start, chunk) = self.cache_block(b)?;
        Ok((Source::Chunk(chunk), (b.begin - start) as usize))
    }

    /// Make sure the upload cache holds block `b`, and return it (its
    /// offset in the piece, and its bytes): one read from `b` to the end of
    /// the run of requests queued right behind it (the same piece, each
    /// beginning where the one before ends), at most `UPLOAD_CHUNK`. Only
    /// requested bytes are read: a peer that takes some blocks of a piece
    /// from us and the rest from others costs no read of the rest.
    pub(super) fn cache_block(
        &mut self,
        b: &BlockRef,
    ) -> Result<(u32, Rc<Vec<u8>>), crate::engine::storage::StorageError> {
        if let Some((i, start, data)) = &self.upload_cache {
            if *i == b.index && b.begin >= *start && b.begin + b.length <= start + data.len() as u32
            {
                return Ok((*start, data.clone()));
            }
        }
        let piece_len = self.ctx.layout.piece_len(b.index);
        let start = b.begin;
        let len = requested_run(b, self.upload_queue.iter(), UPLOAD_CHUNK).min(piece_len - start);
        // The old chunk's buffer again, unless queued messages still use it.
        let old = self
            .upload_cache
            .take()
            .and_then(|(_, _, v)| Rc::try_unwrap(v).ok());
        let mut data = match old.or_else(|| self.out.take_spare()) {
            Some(mut v) => {
                v.resize(len as usize, 0);
                v
            }
            None => vec![0u8; len as usize],
        };
        let offset = self.ctx.layout.piece_offset(b.index) + u64::from(start);
        self.ctx.storage.read(offset, &mut data)?;
        let data = Rc::new(data);
        self.upload_cache = Some((b.index, start, data.clone()));
        Ok((start, data))
    }

    pub(super) fn on_request(&mut self, b: BlockRef) -> Result<(), CloseReason> {
        // An invalid request (out of range, past the piece end, longer than
        // 16 KiB) is rejected, not fatal: libtorrent answers it the same way.
        if !self.ctx.layout.valid_request(&b) {
            log::debug!("peer: invalid request {b:?} rejected");
            if self.fast {
                self.send(&Message::Reject(b));
            }
            return Ok(());
        }
        let have = self.ctx.have.read().get(b.index as usize);
        let allowed = !self.am_choking || self.allowed_fast.contains(&b.index);
        if !allowed || !have || self.upload_queue.len() >= self.ctx.limits.max_upload_queue {
            if self.fast {
                self.send(&Message::Reject(b));
            }
            return Ok(());
        }
        if !self.upload_queue.contains(&b) {
            // Seeding once: a piece sent already this round is refused
            // once per block (the fast extension), then served.
            if self.steer.on_request(&self.ctx.spread, &b, self.fast) == Verdict::Refuse {
                self.send(&Message::Reject(b));
                return Ok(());
            }
            let _ = self.upload_queue.push_back(b);
        }
        Ok(())
    }
}
