#![allow(clippy::unwrap_used)]
//! The download queue through the Transmission RPC: `download-queue-size`
//! downloads at a time in queue order, the others queued (status 3);
//! `queue-move-*`, `torrent-stop`, `torrent-start-now`, `queuePosition`;
//! the queue survives a restart. The torrents have no seeder, so they stay
//! downloading for as long as the test needs.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::rpc::*;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// (status, queuePosition) of each id.
fn queue_state(rpc: &mut Rpc, ids: &[u64]) -> Vec<(u64, u64)> {
    let all = rpc.torrents(&["id", "status", "queuePosition"]);
    ids.iter()
        .map(|id| {
            let t: &Value = all.iter().find(|t| t["id"] == *id).unwrap();
            (
                t["status"].as_u64().unwrap(),
                t["queuePosition"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Wait until the statuses of `ids` are `want`; the last state otherwise.
fn wait_statuses(rpc: &mut Rpc, ids: &[u64], want: &[u64]) -> Vec<(u64, u64)> {
    let mut last = Vec::new();
    let ok = wait_until(WAIT, || {
        last = queue_state(rpc, ids);
        last.iter().map(|(s, _)| *s).collect::<Vec<_>>() == want
    });
    assert!(ok, "statuses {last:?}, want {want:?}");
    last
}

#[test]
fn download_queue_runs_size_torrents_in_order_and_survives_a_restart() {
    let tmp = TempDir::new("p23-queue");
    let src = tmp.subdir("src");
    let down = tmp.subdir("down");
    let state = tmp.subdir("state");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let s = rpc.ok("session-get", json!({}));
    assert_eq!(s["download-queue-enabled"], false);
    rpc.ok(
        "session-set",
        json!({"download-queue-enabled": true, "download-queue-size": 1}),
    );
    assert!(rpc
        .err("session-set", json!({"download-queue-size": 0}))
        .contains("download-queue-size"));
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let name = format!("q{i}.bin");
        let file = make_single_file(&src, &name, 200_000 + usize::from(i));
        let torrent = tmp.path().join(format!("q{i}.torrent"));
        peer_create_torrent(&file, &torrent, &[]);
        let added = rpc.ok(
            "torrent-add",
            json!({"filename": torrent, "download-dir": down}),
        );
        ids.push(added["torrent-added"]["id"].as_u64().unwrap());
    }
    let (b, c) = (ids[1], ids[2]);
    // One downloads (4), the others wait their turn (3), in the order added.
    let st = wait_statuses(&mut rpc, &ids, &[4, 3, 3]);
    assert_eq!(st.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 1, 2]);
    // The last to the top: it takes the slot.
    rpc.ok("queue-move-top", json!({"ids": [c]}));
    let st = wait_statuses(&mut rpc, &ids, &[3, 3, 4]);
    assert_eq!(st.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2, 0]);
    rpc.ok("queue-move-down", json!({"ids": [c]}));
    let st = wait_statuses(&mut rpc, &ids, &[4, 3, 3]);
    assert_eq!(st.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 2, 1]);
    rpc.ok("torrent-set", json!({"ids": [b], "queuePosition": 0}));
    let st = wait_statuses(&mut rpc, &ids, &[3, 4, 3]);
    assert_eq!(st.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 0, 2]);
    // Stopped by its user: out of the queue's hands, the next one runs.
    rpc.ok("torrent-stop", json!({"ids": [b]}));
    wait_statuses(&mut rpc, &ids, &[4, 0, 3]);
    // torrent-start goes through the queue: b waits.
    rpc.ok("torrent-start", json!({"ids": [b]}));
    wait_statuses(&mut rpc, &ids, &[3, 4, 3]);
    rpc.ok("torrent-stop", json!({"ids": [b]}));
    wait_statuses(&mut rpc, &ids, &[4, 0, 3]);
    // torrent-start-now runs outside the queue.
    rpc.ok("torrent-start-now", json!({"ids": [c]}));
    wait_statuses(&mut rpc, &ids, &[4, 0, 4]);
    rpc.ok("queue-move-bottom", json!({"ids": [b]}));
    rpc.ok("queue-move-up", json!({"ids": [c]}));
    let st = wait_statuses(&mut rpc, &ids, &[4, 0, 4]);
    assert_eq!(st.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2, 0]);

    // Kept in the state directory: the order, what is queued, what the
    // user stopped (start-now lasts one run: c is first, it takes the slot).
    daemon.kill();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    assert!(wait_until(LONG_WAIT, || rpc.torrents(&["id"]).len() == 3));
    let by_name = |rpc: &mut Rpc, name: &str| -> u64 {
        rpc.torrents(&["id", "name"])
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let ids: Vec<u64> = ["q0.bin", "q1.bin", "q2.bin"]
        .iter()
        .map(|n| by_name(&mut rpc, n))
        .collect();
    let s = rpc.ok("session-get", json!({}));
    assert_eq!(
        (
            s["download-queue-enabled"].clone(),
            s["download-queue-size"].clone()
        ),
        (json!(true), json!(1))
    );
    let st = wait_statuses(&mut rpc, &ids, &[3, 0, 4]);
    assert_eq!(st.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2, 0]);
    // A bigger queue: the next one starts; off: every one starts.
    rpc.ok("session-set", json!({"download-queue-size": 2}));
    wait_statuses(&mut rpc, &ids, &[4, 0, 4]);
    rpc.ok("torrent-start", json!({"ids": [ids[1]]}));
    wait_statuses(&mut rpc, &ids, &[4, 3, 4]);
    rpc.ok("session-set", json!({"download-queue-enabled": false}));
    wait_statuses(&mut rpc, &ids, &[4, 4, 4]);
    daemon.kill();
}
