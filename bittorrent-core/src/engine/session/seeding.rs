//! Seeding limits at run time: a torrent's own
//! ([`Session::set_seed_limits`]) and the session's defaults
//! ([`Session::set_seed_defaults`]).

use super::*;

/// A ratio limit must be a number of 0 or more.
fn check_ratio(r: f64) -> Result<()> {
    if !r.is_finite() || r < 0.0 {
        return Err(Error::BadSeedRatio(r));
    }
    Ok(())
}

impl Session {
    /// Give a torrent its own seeding limits (ratio and idle time; each the
    /// session's, none, or its own). They apply at once (a seeding torrent
    /// past its new limit stops seeding, as with `--seed-ratio`), and are
    /// kept in the state directory. A torrent already `Finished` stays so
    /// until resumed. The seeding time goal (`seed_time`) is unchanged.
    pub fn set_seed_limits(&self, ih: &InfoHash, limits: SeedLimits) -> Result<()> {
        if let SeedLimit::Limit(r) = limits.ratio {
            check_ratio(r)?;
        }
        let t = self.inner.entry(ih)?;
        t.status.lock().seed_limits = limits;
        self.inner.apply_seed_limits(&t)?;
        self.inner.save_entry(&t)
    }

    /// Change the session's seeding limits (ratio, idle time; `None`: no
    /// limit), the defaults of every torrent whose own limit is the
    /// session's ([`SeedLimit::Session`]). They apply at once to those
    /// torrents. Not saved: [`Config::seed_ratio`] and
    /// [`Config::seed_idle`] give them at the next start.
    pub fn set_seed_defaults(&self, ratio: Option<f64>, idle: Option<Duration>) -> Result<()> {
        if let Some(r) = ratio {
            check_ratio(r)?;
        }
        *self.inner.shared.seed_defaults.lock() = (ratio, idle);
        let all: Vec<Arc<TorrentShared>> = self
            .inner
            .shared
            .registry
            .read()
            .values()
            .cloned()
            .collect();
        for t in all {
            let own = t.status.lock().seed_limits;
            if own.ratio == SeedLimit::Session || own.idle == SeedLimit::Session {
                // A torrent that ended meanwhile is no error here.
                let _ = self.inner.apply_seed_limits(&t);
            }
        }
        Ok(())
    }

    /// The session's seeding limits in force: (ratio, idle time).
    pub fn seed_defaults(&self) -> (Option<f64>, Option<Duration>) {
        *self.inner.shared.seed_defaults.lock()
    }
}

impl Inner {
    /// Send a torrent the goal made of its own limits and the session's.
    fn apply_seed_limits(&self, t: &TorrentShared) -> Result<()> {
        let goal = {
            let st = t.status.lock();
            let (ratio, idle) = *self.shared.seed_defaults.lock();
            SeedGoal {
                ratio: st.seed_limits.ratio.resolve(ratio),
                time: st.seed_goal.time,
                idle: st.seed_limits.idle.resolve(idle),
            }
        };
        t.commands
            .send(Command::SetSeedGoal(goal))
            .map_err(|_| Error::Stopped)
    }
}
