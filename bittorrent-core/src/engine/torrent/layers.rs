//! The piece-layer stage of the metadata thread (BEP 52): a v2-only
//! torrent whose info dictionary is known (from a `btmh` magnet link, or a
//! `.torrent` without `piece layers`) but some of whose piece layers are
//! not fetches them with `hash request`s (id 21) before it is added.
//!
//! The metadata thread owns the plan ([`LayerPlan`]) and the verified
//! answers; it gives each `layers IP:PORT` thread (one socket, one peer)
//! the requests still missing, rotated so that peers asked at once start at
//! different places. The thread dials with the v2 bit and the truncated v2
//! hash, keeps at most [`OUTSTANDING`] requests in flight, checks each
//! `hashes` answer against the file's `pieces root` at once and brings
//! back the verified ones. A `hash reject` leaves the request to another
//! peer; a peer that sends hashes that do not prove against the root, or
//! answers it was not asked, is dropped at once and reported as lying
//! ([`Haul::lied`]): the metadata thread counts it as banned and never
//! dials it again for this torrent.

use super::fetch_conn::{open, pump};
use crate::engine::net::mse::Encryption;
use crate::engine::net::transport::Dialer;
use crate::proto::hash_msg::{HashMessage, HashRequest, HASHES, HASH_REJECT};
use crate::proto::layer_plan::LayerPlan;
use crate::proto::merkle::Hash256;
use crate::proto::metainfo::InfoHash;
use crate::proto::wire::Message;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Hash requests in flight per peer.
pub(crate) const OUTSTANDING: usize = 8;

/// What one peer gave.
#[derive(Debug, Default)]
pub(crate) struct Haul {
    /// Verified answers: the request and its base hashes.
    pub(crate) got: Vec<(HashRequest, Vec<Hash256>)>,
    /// Requests the peer rejected.
    pub(crate) rejected: usize,
    /// Why the peer is not to be trusted (wrong hashes or proof, an
    /// answer to nothing asked, a malformed hash message).
    pub(crate) lied: Option<String>,
}

/// Ask `addr` for the answers to `want` (until all are answered or
/// rejected, `deadline` or `stop`).
pub(crate) fn from_peer(
    addr: SocketAddr,
    (ih, peer_id): (InfoHash, [u8; 20]),
    net: (Encryption, &Dialer),
    (deadline, stop): (Instant, &AtomicBool),
    plan: &LayerPlan,
    want: Vec<HashRequest>,
) -> Result<Haul, String> {
    let (mut s, mut dec, hs) = open(addr, (ih, true), peer_id, net, deadline)?;
    if hs.supports_fast() {
        s.write_all(&Message::HaveNone.to_bytes())
            .map_err(|e| e.to_string())?;
    }
    let mut queue = want.into_iter();
    let mut in_flight: Vec<HashRequest> = Vec::new();
    let mut haul = Haul::default();
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let mut out = Vec::new();
        while in_flight.len() < OUTSTANDING {
            let Some(r) = queue.next() else { break };
            out.extend_from_slice(&HashMessage::Request(r).to_frame());
            in_flight.push(r);
        }
        if !out.is_empty() {
            s.write_all(&out)
                .and_then(|()| s.flush())
                .map_err(|e| e.to_string())?;
        }
        if in_flight.is_empty() {
            return Ok(haul);
        }
        while let Some(m) = dec.next_message().map_err(|e| e.to_string())? {
            let Message::Hash { id, payload } = m else {
                continue; // bitfield, have, extended...: not wanted here
            };
            match id {
                HASHES => {
                    if let Err(why) = take_hashes(id, &payload, plan, &mut in_flight, &mut haul) {
                        haul.lied = Some(why);
                        return Ok(haul);
                    }
                }
                HASH_REJECT => {
                    let header = HashRequest::header(&payload);
                    if let Some(i) = in_flight.iter().position(|r| Some(*r) == header) {
                        in_flight.swap_remove(i);
                        haul.rejected += 1;
                    }
                }
                _ => {} // their requests: we have no layers to give yet
            }
        }
        pump(&mut s, &mut dec, &mut buf, deadline)?;
    }
    Ok(haul)
}

/// Check one `hashes` message against what is in flight and the plan.
fn take_hashes(
    id: u8,
    payload: &[u8],
    plan: &LayerPlan,
    in_flight: &mut Vec<HashRequest>,
    haul: &mut Haul,
) -> Result<(), String> {
    let HashMessage::Hashes { request, hashes } =
        HashMessage::decode(id, payload).map_err(|e| format!("bad hashes message: {e}"))?
    else {
        return Err("bad hashes message".into());
    };
    let i = in_flight
        .iter()
        .position(|r| *r == request)
        .ok_or("hashes that were not asked for")?;
    in_flight.swap_remove(i);
    let base = plan
        .check(&request, &hashes)
        .ok_or("hashes that do not prove against the file's root")?;
    haul.got.push((request, base));
    Ok(())
}
