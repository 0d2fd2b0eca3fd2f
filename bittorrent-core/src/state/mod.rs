//! What the session keeps on disk between runs.

pub mod resume;
