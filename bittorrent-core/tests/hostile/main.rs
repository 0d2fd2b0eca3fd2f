//! Hostile peers and hostile tracker clients against a running session.
//!
//! Each case plays a misbehaving remote over a raw loopback socket against a
//! seeding session (or, for unsolicited pieces, a leeching one) and checks:
//! the offender is disconnected (or, where the protocol says to refuse or
//! ignore, correctly refused), the session keeps serving a normal leecher
//! byte-identically, and the process's thread count returns to where it was.
//!
//! Corrupted pieces are covered in `swarm.rs`
//! (`corrupting_peer_is_banned_and_download_completes`, which uses
//! `scripted_peer` with `Script::Corrupt`): the peer is banned after repeated
//! hash failures and the download completes from a good seeder.
//!
//! Thread counts are per process, so every case that measures them takes
//! the `serial()` lock; only the slowloris case (one connection held for
//! ~10 s, well inside the slack) runs beside the others.
//!
//! The cases, by kind of hostile remote: `malformed` (bad handshakes,
//! frames, bitfields, `have`s, garbage), `requests` (invalid requests and
//! request floods, full queues never read), `fake_seeders` (remotes that
//! push blocks nobody asked for, or choke and unchoke at once),
//! `connections` (peers that never read, hundreds of connections, idle
//! slot holders) and `tracker` (hostile clients of the embedded tracker);
//! `support` holds what they share.
#![allow(clippy::unwrap_used)]

#[path = "../harness/mod.rs"]
mod harness;
mod support;

mod connections;
mod fake_seeders;
mod malformed;
mod requests;
mod tracker;
