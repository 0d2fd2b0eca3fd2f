//! A torrent's own seeding limits at run time ([`Session::set_seed_limits`]).

use super::*;

impl Session {
    /// Give a torrent its own seeding limits (ratio and idle time; each the
    /// session's, none, or its own). They apply at once (a seeding torrent
    /// past its new limit stops seeding, as with `--seed-ratio`), and are
    /// kept in the state directory. A torrent already `Finished` stays so
    /// until resumed. The seeding time goal (`seed_time`) is unchanged.
    pub fn set_seed_limits(&self, ih: &InfoHash, limits: SeedLimits) -> Result<()> {
        if let SeedLimit::Limit(r) = limits.ratio {
            if !r.is_finite() || r < 0.0 {
                return Err(Error::BadSeedRatio(r));
            }
        }
        let t = self.inner.entry(ih)?;
        let goal = {
            let mut st = t.status.lock();
            st.seed_limits = limits;
            let c = &self.inner.shared.config;
            SeedGoal {
                ratio: limits.ratio.resolve(c.seed_ratio),
                time: st.seed_goal.time,
                idle: limits.idle.resolve(None),
            }
        };
        t.commands
            .send(Command::SetSeedGoal(goal))
            .map_err(|_| Error::Stopped)?;
        self.inner.save_entry(&t)
    }
}
