//! What the `peer` command says while it works (issue 32): one line per
//! magnet link while its metadata is fetched, and after checking an empty
//! directory, that nothing is on disk yet (not "0 of N pieces present").

mod support;

use std::process::Command;
use std::time::Duration;
use support::{peer_bin, Child, TempDir};

fn peer(args: &[&str]) -> Command {
    let mut cmd = Command::new(peer_bin());
    cmd.args(args)
        .args(["--no-dht", "--no-lsd", "--port", "0"])
        .env("PEER_DHT_BOOTSTRAP", "none");
    cmd
}

#[test]
fn an_empty_directory_says_nothing_on_disk_yet() {
    let tmp = TempDir::new("cli-messages");
    let src = support::make_single_file(tmp.path(), "data.bin", 300_000);
    let torrent = tmp.path().join("data.torrent");
    support::peer_create_torrent(&src, &torrent, &["--piece-length", "16384"]);
    let empty = tmp.subdir("empty");
    let (t, d) = (torrent.to_str().unwrap(), empty.to_str().unwrap());
    let mut child = Child::spawn("peer", peer(&[t, "--dir", d]));
    let said = child.wait_for_output("nothing on disk yet", Duration::from_secs(30));
    child.kill();
    let out = child.output();
    assert!(said, "{out}");
    assert!(!out.contains("0 of "), "{out}");
}

#[test]
fn a_magnet_link_says_once_that_it_fetches_its_metadata() {
    let tmp = TempDir::new("cli-magnet-line");
    let d = tmp.subdir("dl");
    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=nobody";
    let mut child = Child::spawn("peer", peer(&[magnet, "--dir", d.to_str().unwrap()]));
    let said = child.wait_for_output("metadata", Duration::from_secs(30));
    // Several progress periods go by with no peer to ask.
    std::thread::sleep(Duration::from_secs(4));
    child.kill();
    let out = child.output();
    assert!(said, "{out}");
    let lines = out.lines().filter(|l| l.contains("metadata")).count();
    assert_eq!(lines, 1, "{out}");
}
