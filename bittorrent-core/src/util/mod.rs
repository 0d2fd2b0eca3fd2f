//! Small helpers every layer may use (they import nothing from the crate).

pub(crate) mod rng;
