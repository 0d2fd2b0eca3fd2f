//! A daemon with many torrents (issue 23): 1,000 one-piece torrents written
//! into the state directory come back when `peer daemon` starts, and the
//! Transmission RPC and our own `GET /torrents` list every one of them.
//! Before issue 23's fix a daemon held two threads per torrent (its torrent
//! thread and a disk writer) and, with 10,000 torrents, ran out of threads
//! and aborted while loading them: its RPC never answered. So this also
//! checks that an idle torrent holds one thread only (the disk writer ends
//! once its work is done). Nothing here is timed.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use support::rpc::*;
use support::*;

const N: usize = 1000;

fn ben_str(s: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", s.len()).into_bytes();
    v.extend_from_slice(s);
    v
}

/// `N` one-piece torrents (no data anywhere) in `state/torrents`, as a
/// daemon leaves them: `<info-hash>.torrent` and `<info-hash>.add`.
fn write_torrents(state: &Path, data: &Path) -> HashSet<String> {
    let dir = state.join("torrents");
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = HashSet::new();
    for i in 0..N {
        let name = format!("many-{i:04}.bin");
        let pieces = sha1_smol::Sha1::from(format!("{i}")).digest().bytes();
        let mut info = b"d6:lengthi16384e4:name".to_vec();
        info.extend(ben_str(name.as_bytes()));
        info.extend_from_slice(b"12:piece lengthi16384e6:pieces");
        info.extend(ben_str(&pieces));
        info.push(b'e');
        let ih = sha1_smol::Sha1::from(&info).digest().to_string();
        let mut torrent = b"d4:info".to_vec();
        torrent.extend(&info);
        torrent.push(b'e');
        std::fs::write(dir.join(format!("{ih}.torrent")), torrent).unwrap();
        let mut add = b"d6:pausedi0e9:save path".to_vec();
        add.extend(ben_str(data.to_str().unwrap().as_bytes()));
        add.push(b'e');
        std::fs::write(dir.join(format!("{ih}.add")), add).unwrap();
        names.insert(name);
    }
    names
}

fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX)
}

#[test]
fn a_daemon_with_1000_torrents_lists_them_all_and_holds_a_thread_each() {
    let tmp = TempDir::new("p23-many");
    let state = tmp.subdir("state");
    let data = tmp.subdir("data");
    let names = write_torrents(&state, &data);
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    assert!(
        daemon.logged(&format!("({N} torrents restored)")),
        "{}",
        daemon.output()
    );

    // The Transmission RPC answers with every torrent.
    let mut rpc = Rpc::new(port, None);
    let fields = ["id", "name", "status", "percentDone", "rateUpload", "eta"];
    let list = rpc.torrents(&fields);
    assert_eq!(list.len(), N);
    let got: HashSet<String> = list
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, names);
    let ids: HashSet<u64> = list.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), N, "ids are unique");
    // The table format too (a header row, then one row per torrent).
    let table = rpc.ok(
        "torrent-get",
        serde_json::json!({"fields": fields, "format": "table"}),
    );
    assert_eq!(table["torrents"].as_array().unwrap().len(), N + 1);

    // Our own API lists them all as well.
    let ours = our_torrents(&state);
    assert_eq!(ours.len(), N);
    assert!(
        ours.iter()
            .all(|t| t["state"] == "downloading" || t["state"] == "checking"),
        "{ours:?}"
    );

    // Idle, each torrent holds its torrent thread only: the disk writers
    // that saved the first resume data end once idle (a few seconds).
    let pid = daemon.id();
    let limit = N + 64;
    assert!(
        wait_until(Duration::from_secs(60), || threads(pid) <= limit),
        "{} threads for {N} idle torrents (at most {limit} expected)",
        threads(pid)
    );
    // And the daemon still answers.
    assert_eq!(rpc.torrents(&["id"]).len(), N);
    daemon.kill();
}
