//! The torrent thread, uploading: the choke rounds (regular and optimistic), turning
//! the seeding-once steering on and off (`seeding.rs`), and the seeding goals (ratio,
//! time) that end a torrent's seeding.

use super::*;

impl Torrent {
    /// Seeding once: steer requests to the least spread pieces while we
    /// seed and our upload is the bottleneck (`seeding::saturated`).
    pub(super) fn update_steering(&mut self) {
        let interested = self
            .conns
            .values()
            .filter(|c| c.peer_interested && !c.bitfield.is_full())
            .count();
        let up_rate: u64 = self.conns.values().map(|c| c.up_rate).sum();
        let ctx = &self.me.peer_ctx;
        let on = seeding::saturated(
            self.phase == Phase::Seeding && !self.paused,
            ctx.throttle.limit(Direction::Upload),
            up_rate,
            interested,
            self.shared.config.upload_slots,
        );
        if on != ctx.spread.active() {
            log::debug!(
                "{}: seeding once {}",
                self.me.metainfo.info.name,
                if on { "on" } else { "off" }
            );
            ctx.spread.set_active(on);
        }
        if on {
            ctx.spread.recount();
        }
    }

    /// Bytes uploaded in this run (closed connections and open ones).
    pub(super) fn uploaded(&self) -> u64 {
        self.uploaded_closed
            + self
                .conns
                .values()
                .map(|c| c.counters.uploaded.load(Ordering::Relaxed))
                .sum::<u64>()
    }

    /// Stop seeding once the seeding goal is reached: every connection is
    /// closed, none is accepted or dialled, the announcer says `stopped`.
    pub(super) fn check_seed_goal(&mut self) {
        let uploaded = self.uploaded();
        if self.phase != Phase::Seeding || self.paused || uploaded != self.idle_uploaded {
            // Idle time counts while seeding, from the last upload.
            self.idle_since = Instant::now();
            self.idle_uploaded = uploaded;
        }
        let idle_over = self
            .seed_goal
            .idle
            .is_some_and(|d| self.idle_since.elapsed() >= d);
        if self.phase != Phase::Seeding
            || self.paused
            || !self.seed_goal.is_set()
            || !(idle_over
                || self
                    .seed_goal
                    .reached(uploaded, self.layout.total_length, self.seeding_time))
        {
            return;
        }
        log::info!(
            "{}: seeding goal reached (uploaded {} bytes, seeded {} s); stopped seeding",
            self.me.metainfo.info.name,
            self.uploaded(),
            self.seeding_time.as_secs()
        );
        self.phase = Phase::Finished;
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
        self.save_resume();
    }

    pub(super) fn choke_round(&mut self, now: Instant) {
        self.last_choke = now;
        let cands: Vec<ChokeCandidate> = self
            .conns
            .iter()
            .map(|(k, c)| ChokeCandidate {
                key: *k,
                interested: c.peer_interested,
                download_rate: c.down_rate,
                upload_rate: c.up_rate,
                is_seed: c.bitfield.is_full(),
            })
            .collect();
        let seeding = self.phase == Phase::Seeding;
        let slots = self.shared.config.upload_slots;
        let regular = choker::unchoke_set(&cands, slots, seeding, None);
        if now - self.last_optimistic >= OPTIMISTIC_INTERVAL || self.optimistic.is_none() {
            self.last_optimistic = now;
            let r = self.rng.next_u64();
            self.optimistic = choker::next_optimistic(&cands, &regular, self.optimistic, r);
        }
        let unchoke = choker::unchoke_set(&cands, slots, seeding, self.optimistic);
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.set_choke(k, !unchoke.contains(&k));
        }
    }
}
