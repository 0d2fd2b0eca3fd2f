//! The torrent thread and file selection: which pieces are wanted, whether the wanted
//! files are complete, and changing a file's priority while the torrent runs.

use super::*;

impl Torrent {
    /// Whether every wanted piece is verified.
    pub(super) fn is_finished(&self) -> bool {
        self.wanted_missing == 0
    }

    pub(super) fn all_wanted_files(&self) -> bool {
        selection::all_wanted(&self.me.metainfo.info, &self.priorities)
    }

    pub(super) fn recount_wanted(&mut self) {
        let have = self.picker.have();
        self.wanted_missing = self.wanted.ones().filter(|&i| !have.get(i)).count() as u32;
    }

    /// A new selection: have the disk writer create the files now wanted
    /// (queued before any write to them), recompute the wanted pieces, each
    /// peer's usefulness and our interest, and go back to downloading (or
    /// on to seeding). A failure to create a file stalls (full disk) or
    /// fails the torrent when the writer reports it (`disk.rs`).
    pub(super) fn set_priorities(&mut self, priorities: Vec<FilePriority>) {
        let info = &self.me.metainfo.info;
        if priorities.len() != info.files.len() {
            return; // checked by the session
        }
        let name = info.name.clone();
        self.wanted = selection::wanted_pieces(info, &priorities);
        self.all_wanted = self.wanted.is_full();
        self.priorities = priorities;
        *self.me.priorities.lock() = self.priorities.clone();
        self.want_files();
        self.recount_wanted();
        self.set_order(self.order);
        log::info!(
            "{name}: file selection changed: {} of {} pieces wanted, {} missing",
            self.wanted.count(),
            self.layout.num_pieces,
            self.wanted_missing
        );
        // The pieces written, as `piece_verified` counts them down (peers.rs).
        let have = self.me.peer_ctx.have.read().clone();
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for &k in &keys {
            if let Some(c) = self.conns.get_mut(&k) {
                c.wanted = c
                    .bitfield
                    .ones()
                    .filter(|&i| !have.get(i) && self.wanted.get(i))
                    .count() as u32;
            }
        }
        match self.phase {
            Phase::Seeding if !self.is_finished() => {
                self.phase = Phase::Downloading;
                // Seeds we dropped while finished are worth dialling again.
                self.candidates.retry_all(Instant::now());
            }
            Phase::Downloading if self.is_finished() => self.phase = Phase::Seeding,
            _ => {}
        }
        for &k in &keys {
            self.update_interest(k);
            self.fill_requests(k);
        }
        if self.phase != Phase::Checking {
            self.save_resume();
        }
        self.connect_candidates();
        self.publish_status();
    }

    /// Apply the piece order preferences to the picker (again after a new
    /// file selection: the playhead and the first/last pieces follow the
    /// wanted files).
    pub(super) fn set_order(&mut self, order: PieceOrderPrefs) {
        self.order = order;
        let info = &self.me.metainfo.info;
        let urgent = if order.first_last_piece {
            let prios = &self.priorities;
            sequence::first_last_pieces(
                (0..info.files.len()).map(|i| {
                    if info.files[i].pad {
                        None
                    } else {
                        selection::file_pieces(info, i)
                    }
                }),
                |i| prios.get(i).copied().unwrap_or_default().is_wanted(),
            )
        } else {
            Vec::new()
        };
        let wanted = (!self.all_wanted).then(|| self.wanted.clone());
        let o = self.picker.order_mut();
        o.set_sequential(order.sequential);
        o.set_urgent(urgent);
        o.set_wanted(wanted);
    }
}
