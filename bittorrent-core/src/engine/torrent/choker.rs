//! The choker: one pure function from peer statistics to the set of peers
//! we upload to (BEP 3's tit-for-tat).
//!
//! * Leeching: unchoke the `slots` interested peers that gave us the most
//!   data recently (tit-for-tat), plus one optimistic unchoke.
//! * Seeding: unchoke the `slots` interested peers we upload to fastest
//!   (keeps the pipe full), plus one optimistic unchoke.
//!
//! The optimistic peer is rotated by the caller every 30 s; the regular
//! set is recomputed every 10 s.

use crate::engine::torrent::picker::PeerKey;

/// What the choker needs to know about one connected peer.
#[derive(Debug, Clone, Copy)]
pub struct ChokeCandidate {
    /// The connection.
    pub key: PeerKey,
    /// Whether the peer wants data from us.
    pub interested: bool,
    /// Bytes per second it sent us recently.
    pub download_rate: u64,
    /// Bytes per second we sent it recently.
    pub upload_rate: u64,
    /// Whether it is a seed (never needs anything from us).
    pub is_seed: bool,
}

/// Decide who is unchoked. `optimistic` is the current optimistic pick
/// (kept unchoked if still interested). Returns the keys to unchoke.
pub fn unchoke_set(
    peers: &[ChokeCandidate],
    slots: usize,
    seeding: bool,
    optimistic: Option<PeerKey>,
) -> Vec<PeerKey> {
    let mut interested: Vec<&ChokeCandidate> = peers
        .iter()
        .filter(|p| p.interested && !p.is_seed)
        .collect();
    if seeding {
        interested.sort_by_key(|p| std::cmp::Reverse(p.upload_rate));
    } else {
        interested.sort_by_key(|p| std::cmp::Reverse(p.download_rate));
    }
    let mut out: Vec<PeerKey> = interested.iter().take(slots).map(|p| p.key).collect();
    if let Some(o) = optimistic {
        if !out.contains(&o) && interested.iter().any(|p| p.key == o) {
            out.push(o);
        }
    }
    out
}

/// Pick the next optimistic unchoke among interested peers not in
/// `regular`, rotating past `previous`. `r` is a random number.
pub fn next_optimistic(
    peers: &[ChokeCandidate],
    regular: &[PeerKey],
    previous: Option<PeerKey>,
    r: u64,
) -> Option<PeerKey> {
    let pool: Vec<PeerKey> = peers
        .iter()
        .filter(|p| p.interested && !p.is_seed && !regular.contains(&p.key))
        .map(|p| p.key)
        .filter(|k| Some(*k) != previous)
        .collect();
    if pool.is_empty() {
        return previous.filter(|p| peers.iter().any(|c| c.key == *p && c.interested));
    }
    Some(pool[(r % pool.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: PeerKey, interested: bool, down: u64, up: u64) -> ChokeCandidate {
        ChokeCandidate {
            key,
            interested,
            download_rate: down,
            upload_rate: up,
            is_seed: false,
        }
    }

    #[test]
    fn tit_for_tat_prefers_best_uploaders() {
        let peers = [
            c(1, true, 10, 0),
            c(2, true, 50, 0),
            c(3, false, 99, 0),
            c(4, true, 30, 0),
        ];
        assert_eq!(unchoke_set(&peers, 2, false, None), vec![2, 4]);
        assert_eq!(unchoke_set(&peers, 2, false, Some(1)), vec![2, 4, 1]);
        // Seeding ranks by our upload rate to them.
        let peers = [c(1, true, 0, 5), c(2, true, 0, 1)];
        assert_eq!(unchoke_set(&peers, 1, true, None), vec![1]);
    }

    #[test]
    fn optimistic_rotates() {
        let peers = [c(1, true, 0, 0), c(2, true, 0, 0), c(3, true, 0, 0)];
        let o = next_optimistic(&peers, &[1], Some(2), 0);
        assert_eq!(o, Some(3));
        assert_eq!(next_optimistic(&peers, &[1, 3], Some(2), 7), Some(2));
    }
}
