//! The torrent thread, downloading: requests to fill each peer's pipeline, blocks into
//! piece buffers, pieces to the hashing pool, verdicts, verified pieces written and
//! announced; a full disk stalls the download and a failure ends it.

use super::*;

impl Torrent {
    /// Hash piece `i` by reading it back from disk.
    pub(super) fn submit_hash(&self, i: u32) {
        self.submit_hash_of(
            i,
            PieceData::Disk {
                storage: self.me.peer_ctx.storage.clone(),
                offset: self.layout.piece_offset(i),
                len: self.layout.piece_len(i),
            },
        );
    }

    pub(super) fn submit_hash_of(&self, i: u32, data: PieceData) {
        let job = HashJob {
            piece: i,
            data,
            // None for a v2-only torrent (no SHA-1 pieces).
            expected: self.me.metainfo.info.pieces.get(i as usize).copied(),
            // A hybrid: the same bytes against the v2 tree too; a v2-only
            // torrent: against it alone (the piece numbers of the v2 piece
            // space and of the engine's piece-aligned view are the same).
            v2: self.v2_view().and_then(|v2| v2.piece_check(u64::from(i))),
            block_hashes: self.smart_ban.watching(i),
            reply: self.hash_tx.clone(),
        };
        if self.shared.hasher.send(job).is_ok() {
            self.hash_jobs.set(self.hash_jobs.get() + 1);
        }
    }

    /// Every block of piece `i` is in: hash it from memory, or from disk if
    /// it was spilled.
    pub(super) fn piece_complete(&mut self, i: u32) {
        match self.buffers.take_complete(i) {
            Complete::Memory(blocks) => self.submit_hash_of(i, PieceData::Memory(blocks)),
            // Hashed once its queued block writes are done.
            Complete::Disk => self.spilled_complete(i),
            Complete::Incomplete => {
                log::warn!(
                    "{}: piece {i} incomplete in memory; fetching it again",
                    self.me.metainfo.info.name
                );
                self.picker.piece_hashed(i, false);
            }
        }
    }

    pub(super) fn on_hashed(&mut self, mut done: HashDone) {
        if let Some(e) = &done.error {
            log::warn!(
                "{}: reading piece {}: {e}",
                self.me.metainfo.info.name,
                done.piece
            );
        }
        if self.recheck.owns(done.piece) {
            self.on_rechecked(done);
            return;
        }
        if self.phase == Phase::Checking {
            self.check_in_flight = self.check_in_flight.saturating_sub(1);
            if done.ok {
                self.picker.mark_have(done.piece);
                // Peers that joined while we were checking learn of it too.
                self.piece_verified(done.piece);
            }
            self.feed_checks();
            return;
        }
        if let Some(blocks) = done.blocks.take() {
            // A piece hashed from memory: only now, verified, is it written,
            // by the disk writer; it is announced once written (disk.rs).
            if done.ok && matches!(self.phase, Phase::Downloading | Phase::Stalled(_)) {
                let contributors = self.picker.piece_hashed(done.piece, true);
                self.acquit(done.piece, &contributors, &done.block_hashes);
                self.write_verified(done.piece, blocks);
                return;
            }
            // A v2 piece from several peers: its block hashes tell which
            // blocks were bad (`block_verify.rs`); it keeps its buffer.
            let blocks = match done.ok {
                false => match self.try_block_check(done.piece, blocks, &done.block_hashes) {
                    Some(blocks) => blocks,
                    None => return,
                },
                true => blocks,
            };
            self.buffers.release(done.piece);
            block_pool::global().give_back(blocks);
            if done.ok {
                // Stopped meanwhile (failed): not written, so not verified
                // either.
                self.picker.piece_hashed(done.piece, false);
                return;
            }
        }
        let contributors = self.picker.piece_hashed(done.piece, done.ok);
        if done.ok {
            self.piece_verified(done.piece);
            self.acquit(done.piece, &contributors, &done.block_hashes);
        } else {
            self.hash_failures += 1;
            log::warn!(
                "{}: piece {} failed its hash check",
                self.me.metainfo.info.name,
                done.piece
            );
            self.web_seed_hash_failed(&contributors);
            self.blame(done.piece, contributors, &done.block_hashes);
        }
    }

    pub(super) fn piece_verified(&mut self, i: u32) {
        let newly = self.me.peer_ctx.have.write().set(i as usize);
        self.recheck_if_pending(i);
        if newly && self.wanted.get(i as usize) {
            self.wanted_missing = self.wanted_missing.saturating_sub(1);
            if self.wanted_missing == 0 {
                self.recount_wanted(); // cheap insurance, once
            }
        }
        self.resume_dirty = true;
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        let wanted = self.wanted.get(i as usize);
        for k in keys {
            // A peer that has the piece needs the `have` only as news: it
            // goes out with the thread's next wake-up, whatever wakes it
            // (a seed's thread would otherwise wake once per piece for it).
            if self
                .conns
                .get(&k)
                .is_some_and(|c| c.bitfield.get(i as usize))
            {
                self.send_quiet(k, PeerCmd::Have(i));
            } else {
                // One that lacks it learns of it with its next command, or
                // within `haves::HAVE_DELAY` (`haves.rs`).
                self.announce_have(k, i);
            }
            if let Some(c) = self.conns.get_mut(&k) {
                if newly && wanted && c.bitfield.get(i as usize) {
                    c.wanted = c.wanted.saturating_sub(1);
                }
            }
            self.update_interest(k);
        }
        if self.is_finished() && self.phase == Phase::Downloading {
            self.phase = Phase::Seeding;
            if self.picker.is_complete() {
                log::info!("{}: download complete, seeding", self.me.metainfo.info.name);
                log::debug!(
                    "{}: {} pieces spilled to disk (piece buffers full)",
                    self.me.metainfo.info.name,
                    self.buffers.spills()
                );
                let memory = self.me.peer_ctx.recent.sent();
                log::debug!(
                    "{}: uploaded {memory} bytes from kept pieces, {} read from disk",
                    self.me.metainfo.info.name,
                    self.uploaded().saturating_sub(memory),
                );
            } else {
                log::info!(
                    "{}: the selected files are complete, seeding them",
                    self.me.metainfo.info.name
                );
            }
            self.save_resume();
            let seeds: Vec<PeerKey> = self
                .conns
                .iter()
                .filter(|(_, c)| c.bitfield.is_full())
                .map(|(k, _)| *k)
                .collect();
            for k in seeds {
                self.close(k, CloseReason::BothSeeds);
            }
            self.publish_status();
            self.emit(Event::Completed {
                info_hash: self.me.metainfo.info_hash,
            });
            return;
        }
        self.publish_status();
    }

    pub(super) fn fill_requests(&mut self, key: PeerKey) {
        if self.paused || self.phase != Phase::Downloading || self.disk.behind() {
            return;
        }
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.am_interested || (c.peer_choking && c.allowed_fast.is_empty()) {
            return;
        }
        let depth = c.pipeline.depth();
        let out = c.outstanding.len();
        if out >= depth {
            return;
        }
        // The piece buffers bound the pieces requests touch, not the blocks
        // requested (issue 31): a new piece is started only while the
        // pieces in progress and those waiting for their hash or write fit
        // the budget (`pieces_room`; past it, pieces would spill to disk and
        // be read back to be hashed), and blocks within pieces in progress
        // cost nothing more. Each peer keeps at most its fair share of the
        // budget requested, and at least half a piece (`budget_floor`), so
        // that one deep pipeline does not take every piece in progress.
        let new_pieces = self.buffers.pieces_room(self.picker.pieces_in_progress());
        let fair = self.buffers.fair_share(self.conns.len());
        // What this peer may have outstanding now, and the batch: requests
        // go out once a refill of at least an eighth of that (and at least
        // `MIN_BATCH` blocks) is free, not one per block received.
        let floor = budget_floor(self.me.peer_ctx.layout.piece_length);
        let limit = depth.min(fair.max(floor));
        let room = limit.saturating_sub(out);
        let batch = (limit / 8).max(MIN_BATCH).min(limit);
        if room == 0 || (room < batch && out > 0) {
            return;
        }
        let blocks = if c.peer_choking {
            // Choked: only the pieces it allows us while choked (BEP 6);
            // sequential: only those near the playhead (not random pieces
            // far ahead).
            let mut allowed = Bitfield::new(c.bitfield.len());
            let near = self.picker.near_playhead();
            for &i in &c.allowed_fast {
                if c.bitfield.get(i as usize) && self.wanted.get(i as usize) && i < near {
                    allowed.set(i as usize);
                }
            }
            self.picker.pick_within(key, &allowed, room, new_pieces)
        } else {
            // Not the pieces it refused lately (`seeding::Refused`).
            let refused = c.refused.mask(&c.bitfield);
            let theirs = refused.as_ref().unwrap_or(&c.bitfield);
            if self.all_wanted {
                self.picker.pick_within(key, theirs, room, new_pieces)
            } else {
                // Skipped files: only the pieces of wanted files.
                let masked = mask(theirs, &self.wanted);
                self.picker.pick_within(key, &masked, room, new_pieces)
            }
        };
        if new_pieces == 0 && blocks.len() < room {
            self.budget_starved = true;
        }
        if blocks.is_empty() {
            return;
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        for b in &blocks {
            c.outstanding.insert(*b);
            c.requested.insert(b);
        }
        c.pipeline.on_sent(&blocks, Instant::now());
        let chokes = c.chokes;
        // Blocks still on the way: the peer thread is streaming, its socket
        // wakes it for the next of them and it takes the requests then (no
        // wake-up of their own). Its low-water mark is at most half of what
        // it has requested, so the pipeline never runs dry while it sleeps.
        if out >= MIN_BATCH {
            self.send_lazy(key, PeerCmd::Request { chokes, blocks });
        } else {
            self.send(key, PeerCmd::Request { chokes, blocks });
        }
    }

    /// Take one block from a peer (the caller refills its pipeline).
    pub(super) fn on_block(
        &mut self,
        key: PeerKey,
        block: crate::proto::wire::BlockRef,
        data: Vec<u8>,
    ) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        // Only a block we asked this very peer for is taken (endgame
        // duplicates and late answers to requests we gave up on included).
        // Anything else is dropped unread: a peer with no data must not
        // plant blocks in pieces that honest peers are filling. Only a
        // block never requested on this connection counts against the
        // sender (a second answer to a block asked for twice around a
        // choke is waste, not an attack).
        if !c.outstanding.remove(&block) && !c.given_up.take(&block) {
            if c.requested.contains(&block) {
                return;
            }
            c.unrequested += 1;
            let (addr, n) = (c.addr, c.unrequested);
            log::debug!("{addr} sent unrequested block {block:?} ({n})");
            if n > MAX_UNREQUESTED_BLOCKS {
                self.ban(addr, "sent blocks we never asked it for");
            }
            return;
        }
        c.last_block = Instant::now();
        c.pipeline.on_block(&block, c.last_block);
        self.accept_block(key, block, data);
    }

    /// Store a block asked of `key` (a peer or a web seed), now received:
    /// into the piece buffers, and to the hasher when its piece is whole.
    pub(super) fn accept_block(
        &mut self,
        key: PeerKey,
        block: crate::proto::wire::BlockRef,
        data: Vec<u8>,
    ) {
        if self.phase != Phase::Downloading {
            return;
        }
        if !self.wanted.get(block.index as usize) {
            // Its file was deselected after the request: not stored.
            self.picker.request_failed(key, &block);
            return;
        }
        match self.picker.block_received(key, &block) {
            Received::New {
                cancel,
                piece_complete,
            } => {
                let len = data.len() as u64;
                let spills = self.buffers.spills();
                if let Stored::Disk(data) = self.buffers.insert(&block, data) {
                    if self.buffers.spills() > spills {
                        self.log_spill(block.index);
                    }
                    self.write_spilled(block, data);
                }
                self.downloaded += len;
                for other in cancel {
                    if let Some(c) = self.conns.get_mut(&other) {
                        if c.outstanding.remove(&block) {
                            c.given_up.insert(block);
                        }
                    }
                    self.send(other, PeerCmd::Cancel(block));
                }
                if piece_complete {
                    self.piece_complete(block.index);
                }
            }
            Received::Unwanted => {}
        }
    }

    /// Piece `i` found the piece buffers spent and spills to disk: say why.
    fn log_spill(&self, i: u32) {
        let in_flight: usize = self.conns.values().map(|c| c.outstanding.len()).sum();
        log::debug!(
            "{}: piece {i} spills: {}; {} pieces in progress, {in_flight} blocks requested from {} peers, {} hash jobs, {} KiB queued for the disk",
            self.me.metainfo.info.name,
            self.buffers.describe(),
            self.picker.pieces_in_progress(),
            self.conns.len(),
            self.hash_jobs.get(),
            self.disk.bytes_waiting() >> 10,
        );
    }

    /// Pause downloading until the disk has room again (probed from the
    /// tick); verified data and the resume data stay as they are.
    /// Connections stay open and uploads go on, but nothing more is asked
    /// of the swarm: every outstanding request is cancelled (blocks that
    /// arrive anyway are dropped unstored) and peers are told we are not
    /// interested. So a full disk costs at most the requests and pieces in
    /// flight, once, not a refetch every few seconds.
    pub(super) fn stall(&mut self, reason: String) {
        // The first stall since a piece was written waits STALL_RETRY; each
        // further one twice as long as the last.
        self.stall_retry = if self.stall_retry.is_zero() {
            STALL_RETRY
        } else {
            (self.stall_retry * 2).min(STALL_RETRY_CAP)
        };
        log::error!(
            "{}: stopped: {reason}; retrying in {}s",
            self.me.metainfo.info.name,
            self.stall_retry.as_secs()
        );
        self.save_resume();
        self.phase = Phase::Stalled(reason.clone());
        self.stalled_at = Instant::now();
        self.stop_web_seeds();
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            let blocks: Vec<crate::proto::wire::BlockRef> = match self.conns.get_mut(&k) {
                Some(c) => {
                    let blocks: Vec<_> = c.outstanding.drain().collect();
                    for b in &blocks {
                        c.given_up.insert(*b);
                    }
                    blocks
                }
                None => continue,
            };
            for b in blocks {
                self.picker.request_failed(k, &b);
                self.send(k, PeerCmd::Cancel(b));
            }
            self.update_interest(k);
        }
        self.publish_status();
        self.emit(Event::Error {
            info_hash: self.me.metainfo.info_hash,
            message: reason,
            stalled: true,
        });
    }

    /// Stop the torrent on an error that makes progress impossible.
    pub(super) fn fail(&mut self, reason: String) {
        log::error!("{}: stopped: {reason}", self.me.metainfo.info.name);
        self.phase = Phase::Failed(reason.clone());
        self.stop_web_seeds();
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
        self.publish_status();
        self.emit(Event::Error {
            info_hash: self.me.metainfo.info_hash,
            message: reason,
            stalled: false,
        });
    }
}
