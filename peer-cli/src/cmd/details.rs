//! `GET /torrents/ID/details` of the control API: a torrent's files with
//! their progress, its connected peers, its trackers and its pieces.

use bittorrent_core::proto::bitfield::Bitfield;
use bittorrent_core::{InfoHash, Metainfo, PeerInfo, Session, TorrentStatus, Transport};
use serde_json::{json, Value};
use std::time::Duration;

/// How long the torrent thread may take to list its peers.
const PEERS_TIMEOUT: Duration = Duration::from_secs(2);

/// The details of a torrent of the session, if it is there.
pub fn details(session: &Session, ih: &InfoHash) -> Option<Value> {
    let status = session.status(ih)?;
    let (Some(mi), Some(have)) = (session.metainfo(ih), session.pieces(ih)) else {
        // A magnet link still fetching its metadata.
        return Some(json!({
            "id": ih.to_hex(), "files": [], "peers": [], "trackers": [],
            "pieces": {"count": 0, "have": 0, "bitfield": ""},
        }));
    };
    let peers = session.peers(ih, PEERS_TIMEOUT).unwrap_or_default();
    Some(json!({
        "id": ih.to_hex(),
        "files": files_json(&mi, &have),
        "peers": peers.iter().map(|p| peer_json(p, status.pieces_total)).collect::<Vec<_>>(),
        "trackers": trackers_json(&mi, &status),
        "pieces": {
            "count": have.len(),
            "have": have.count(),
            "bitfield": hex(have.as_bytes()),
        },
    }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every file but BEP 47 padding, with the bytes of it that lie in
/// verified pieces.
fn files_json(mi: &Metainfo, have: &Bitfield) -> Vec<Value> {
    let plen = mi.info.piece_length.max(1);
    mi.info
        .files
        .iter()
        .filter(|f| !f.pad)
        .map(|f| {
            let (start, end) = (f.offset, f.offset + f.length);
            let mut done = 0u64;
            if f.length > 0 {
                let (first, last) = (start / plen, (end - 1) / plen);
                for p in first..=last {
                    if have.get(p as usize) {
                        let (ps, pe) = (p * plen, (p + 1) * plen);
                        done += pe.min(end) - ps.max(start);
                    }
                }
            }
            let progress = if f.length == 0 {
                1.0
            } else {
                done as f64 / f.length as f64
            };
            let path = if mi.info.multi_file {
                f.path.join("/")
            } else {
                mi.info.name.clone()
            };
            json!({"path": path, "length": f.length, "bytes_have": done, "progress": progress})
        })
        .collect()
}

/// The client of a peer: its extended handshake's name, else what its peer
/// id says (Azureus style `-XXvvvv-`), else `?`.
pub fn client_name(client: Option<&str>, peer_id: &[u8; 20]) -> String {
    if let Some(c) = client.filter(|c| !c.trim().is_empty()) {
        return c.chars().filter(|c| !c.is_control()).take(64).collect();
    }
    if peer_id[0] == b'-'
        && peer_id[7] == b'-'
        && peer_id[1..7].iter().all(u8::is_ascii_alphanumeric)
    {
        let code = std::str::from_utf8(&peer_id[1..3]).unwrap_or("??");
        let v = &peer_id[3..7];
        let name = match code {
            "PE" => "peer",
            "qB" => "qBittorrent",
            "TR" => "Transmission",
            "LT" | "lt" => "libtorrent",
            "UT" => "µTorrent",
            "DE" => "Deluge",
            "AZ" => "Azureus",
            "rQ" | "RQ" => "rqbit",
            "A2" => "aria2",
            "BT" => "BitTorrent",
            _ => return format!("-{}-", String::from_utf8_lossy(&peer_id[1..7])),
        };
        let version: Vec<String> = v.iter().map(|b| (*b as char).to_string()).collect();
        return format!("{name} {}", version.join("."));
    }
    "?".into()
}

/// Flags in the style of other clients: `D` we download from it, `d` we want
/// but it chokes us, `U` we upload to it, `u` it wants but we choke it, `O`
/// optimistic unchoke, `I` it connected to us, `S` a seed, `X` speaks PEX, `T` over uTP
/// (Transmission's letter).
pub fn flags(p: &PeerInfo, pieces_total: u32) -> String {
    let mut f = String::new();
    if p.am_interested {
        f.push(if p.peer_choking { 'd' } else { 'D' });
    }
    if p.peer_interested {
        f.push(if p.am_choking { 'u' } else { 'U' });
    }
    if p.optimistic {
        f.push('O');
    }
    if !p.outgoing {
        f.push('I');
    }
    if pieces_total > 0 && p.pieces >= pieces_total {
        f.push('S');
    }
    if p.pex {
        f.push('X');
    }
    if p.transport == Transport::Utp {
        f.push('T');
    }
    f
}

fn peer_json(p: &PeerInfo, pieces_total: u32) -> Value {
    let progress = if pieces_total == 0 {
        0.0
    } else {
        f64::from(p.pieces.min(pieces_total)) / f64::from(pieces_total)
    };
    json!({
        "address": p.addr.to_string(),
        "client": client_name(p.client.as_deref(), &p.peer_id),
        "flags": flags(p, pieces_total),
        "progress": progress,
        "download_rate": p.download_rate,
        "upload_rate": p.upload_rate,
        "downloaded": p.downloaded,
        "uploaded": p.uploaded,
        "am_choking": p.am_choking,
        "am_interested": p.am_interested,
        "peer_choking": p.peer_choking,
        "peer_interested": p.peer_interested,
        "incoming": !p.outgoing,
        "transport": p.transport.as_str(),
        "v2": p.v2,
    })
}

/// The torrent's trackers by tier; the one of the last announce carries its
/// outcome.
fn trackers_json(mi: &Metainfo, s: &TorrentStatus) -> Vec<Value> {
    let mut tiers = mi.announce_list.clone();
    if tiers.is_empty() {
        if let Some(a) = &mi.announce {
            tiers.push(vec![a.clone()]);
        }
    }
    let last = s.tracker.url.as_deref();
    let mut out: Vec<Value> = tiers
        .iter()
        .enumerate()
        .flat_map(|(tier, urls)| urls.iter().map(move |u| (tier, u)))
        .map(|(tier, url)| {
            if Some(url.as_str()) == last {
                json!({
                    "tier": tier, "url": url,
                    "last_announce": s.tracker.last_announce,
                    "peers_returned": s.tracker.peers_returned,
                    "error": s.tracker.error,
                })
            } else {
                json!({"tier": tier, "url": url, "last_announce": null,
                       "peers_returned": null, "error": null})
            }
        })
        .collect();
    if let Some(url) = last.filter(|u| !tiers.iter().flatten().any(|t| t == u)) {
        out.push(json!({
            "tier": tiers.len(), "url": url,
            "last_announce": s.tracker.last_announce,
            "peers_returned": s.tracker.peers_returned,
            "error": s.tracker.error,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_progress_counts_bytes_in_verified_pieces() {
        use bittorrent_core::create::{create_torrent, CreateOptions};
        let dir = std::env::temp_dir().join(format!("peer-details-{}", std::process::id()));
        let top = dir.join("two");
        std::fs::create_dir_all(&top).expect("mkdir");
        // 40,000 + 10,000 bytes in 16 KiB pieces: 0..16384, ..32768, ..49152, ..50000.
        std::fs::write(top.join("a.bin"), vec![1u8; 40_000]).expect("write");
        std::fs::write(top.join("b.bin"), vec![2u8; 10_000]).expect("write");
        let opts = CreateOptions {
            piece_length: Some(16_384),
            ..CreateOptions::default()
        };
        let bytes = create_torrent(&top, &opts, &|_, _| {}).expect("create");
        let _ = std::fs::remove_dir_all(&dir);
        let mi = Metainfo::from_bytes(&bytes).expect("parse");
        let mut have = Bitfield::new(4);
        let files = files_json(&mi, &have);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0]["path"], "two/a.bin");
        assert_eq!(files[0]["bytes_have"], 0);
        // Piece 2 (32768..49152) holds the end of a.bin and the start of b.bin.
        have.set(2);
        let files = files_json(&mi, &have);
        assert_eq!(files[0]["bytes_have"], 40_000 - 32_768);
        assert_eq!(files[1]["bytes_have"], 49_152 - 40_000);
        have.set(0);
        have.set(1);
        have.set(3);
        let files = files_json(&mi, &have);
        assert_eq!(files[0]["progress"], 1.0);
        assert_eq!(files[1]["bytes_have"], 10_000);
    }

    #[test]
    fn client_names() {
        assert_eq!(client_name(Some("Deluge 2.1"), &[0; 20]), "Deluge 2.1");
        let mut id = *b"-qB4650-abcdefghijkl";
        assert_eq!(client_name(None, &id), "qBittorrent 4.6.5.0");
        id[1] = b'Z';
        assert_eq!(client_name(None, &id), "-ZB4650-");
        assert_eq!(client_name(Some(" "), &[7; 20]), "?");
    }

    #[test]
    fn flag_letters() {
        let p = PeerInfo {
            addr: "127.0.0.1:1".parse().expect("addr"),
            peer_id: [0; 20],
            client: None,
            outgoing: false,
            pieces: 4,
            download_rate: 0,
            upload_rate: 0,
            downloaded: 0,
            uploaded: 0,
            am_choking: true,
            am_interested: true,
            peer_choking: false,
            peer_interested: true,
            optimistic: false,
            pex: true,
            transport: Transport::Tcp,
            v2: false,
        };
        assert_eq!(flags(&p, 4), "DuISX");
        assert_eq!(peer_json(&p, 4)["transport"], "tcp");
        assert_eq!(peer_json(&p, 4)["v2"], false);
        let u = PeerInfo {
            transport: Transport::Utp,
            v2: true,
            ..p.clone()
        };
        assert_eq!(flags(&u, 4), "DuISXT");
        assert_eq!(peer_json(&u, 4)["transport"], "utp");
        assert_eq!(peer_json(&u, 4)["v2"], true);
        // An IPv6 peer's address prints as [v6]:port.
        let p6 = PeerInfo {
            addr: "[2001:db8::7]:6881".parse().expect("addr"),
            ..p
        };
        assert_eq!(peer_json(&p6, 4)["address"], "[2001:db8::7]:6881");
    }
}
