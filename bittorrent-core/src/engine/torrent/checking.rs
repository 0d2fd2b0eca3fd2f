//! The torrent thread, checking and resume data: the start-up check of the data on
//! disk (fed to the hashing pool a few pieces at a time) and loading the resume file
//! (saving it goes through the disk writer: `disk.rs`).

use super::*;

impl Torrent {
    pub(super) fn feed_checks(&mut self) {
        let limit = 2 * self.shared.config.hasher_threads as u32 + 2;
        while self.phase == Phase::Checking
            && self.check_in_flight < limit
            && self.check_next < self.layout.num_pieces
        {
            let i = self.check_next;
            self.check_next += 1;
            let off = self.layout.piece_offset(i);
            let len = self.layout.piece_len(i);
            if !self.me.peer_ctx.storage.has_data(off, u64::from(len)) {
                continue;
            }
            self.submit_hash(i);
            self.check_in_flight += 1;
            self.checked_pieces += 1;
        }
        if self.phase == Phase::Checking
            && self.check_in_flight == 0
            && self.check_next >= self.layout.num_pieces
        {
            self.recount_wanted();
            self.phase = if self.is_finished() {
                Phase::Seeding
            } else {
                Phase::Downloading
            };
            log::info!(
                "{}: {} of {} pieces present; {:?}",
                self.me.metainfo.info.name,
                self.picker.have().count(),
                self.layout.num_pieces,
                self.phase
            );
            self.publish_status();
            self.emit(Event::Checked {
                info_hash: self.me.metainfo.info_hash,
                pieces_have: self.picker.have().count() as u32,
                pieces_total: self.layout.num_pieces,
            });
            self.connect_candidates();
            self.feed_web_seeds();
            self.check_ended();
        }
    }

    pub(super) fn resume_path(&self) -> Option<std::path::PathBuf> {
        let dir = self.shared.config.state_dir.as_ref()?;
        Some(
            dir.join("torrents")
                .join(format!("{}.resume", self.me.metainfo.info_hash)),
        )
    }

    /// Trust saved resume data if every file still matches it. Returns
    /// whether it was used (then no check is needed).
    pub(super) fn load_resume(&mut self) -> bool {
        let Some(path) = self.resume_path() else {
            return false;
        };
        let name = self.me.metainfo.info.name.clone();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                log::warn!(
                    "{name}: cannot read resume data {}: {e}; rechecking",
                    path.display()
                );
                return false;
            }
        };
        let r = match ResumeData::decode(&bytes) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{name}: {e}; rechecking");
                return false;
            }
        };
        let storage = &self.me.peer_ctx.storage;
        let why_not = if r.info_hash != self.me.metainfo.info_hash {
            Some("it is for another torrent")
        } else if r.num_pieces != self.layout.num_pieces {
            Some("the piece count differs")
        } else if r.save_path != storage.root().to_string_lossy() {
            Some("the save path differs")
        } else if r.files != storage.stamps() {
            Some("a file changed since it was saved (size or modification time)")
        } else if r.part_file != storage.part_stamp() {
            Some("the part file changed since it was saved")
        } else {
            None
        };
        if let Some(why) = why_not {
            log::info!("{name}: resume data not used: {why}; rechecking");
            return false;
        }
        let Ok(bf) = Bitfield::from_bytes(&r.pieces, self.layout.num_pieces as usize) else {
            return false;
        };
        for i in bf.ones() {
            self.picker.mark_have(i as u32);
            self.me.peer_ctx.have.write().set(i);
        }
        self.check_next = self.layout.num_pieces;
        self.resumed = true;
        self.recount_wanted();
        log::info!(
            "{name}: resumed from {}: {} of {} pieces",
            path.display(),
            bf.count(),
            self.layout.num_pieces
        );
        true
    }
}
