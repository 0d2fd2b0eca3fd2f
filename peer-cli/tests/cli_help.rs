//! The command line itself: `--help` per subcommand with examples,
//! `peer help CMD`, `--version`, shell completions, suggestions on typos,
//! and the exit statuses (0 ok, 1 failure, 2 usage error).

mod support;

use support::*;

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_for_every_subcommand_with_examples() {
    for cmd in [
        "daemon",
        "add",
        "list",
        "status",
        "pause",
        "resume",
        "verify",
        "remove",
        "demo",
        "info",
        "create",
        "completions",
    ] {
        for args in [vec![cmd, "--help"], vec!["help", cmd]] {
            let out = run_peer(&args);
            let (stdout, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
            assert!(
                stdout.contains(&format!("Usage: peer {cmd}")),
                "{args:?}: {stdout}"
            );
            assert!(stdout.contains("Examples:"), "{args:?}: {stdout}");
        }
    }
    let out = run_peer(&["--help"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    for flag in [
        "--seed-ratio",
        "--seed-time",
        "--once",
        "--peer",
        "--encryption",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from peer --help");
    }
    // `peer` alone is a usage error: the help on stderr, exit 2.
    let out = run_peer::<&str>(&[]);
    assert_eq!(out.status.code(), Some(2));
    let (stdout, stderr) = text(&out);
    assert!(stderr.contains("Usage: peer"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn version() {
    let out = run_peer(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out).0.trim(),
        format!("peer {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_for_bash_zsh_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef peer"),
        ("fish", "complete -c peer"),
    ] {
        let out = run_peer(&["completions", shell]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {stderr}");
        assert!(stdout.contains(marker), "{shell}: {stdout:.300}");
        assert!(stdout.contains("seed-ratio"), "{shell}");
        assert!(stdout.contains("create"), "{shell}");
    }
    let out = run_peer(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn typos_get_suggestions_and_exit_2() {
    let out = run_peer(&["daemn"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'daemon'"), "{stderr}");
    let out = run_peer(&["create", "x", "--privat"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--private"), "{stderr}");
    let out = run_peer(&["x.torrent", "--prot", "1"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_failures_exit_1() {
    for args in [
        vec!["--port", "7000"],           // no torrent
        vec!["x.torrent", "--port", "x"], // not a port
        vec!["x.torrent", "--seed-ratio", "-1"],
        vec!["x.torrent", "--seed-time", "soon"],
        vec!["x.torrent", "--encryption", "maybe"],
        vec!["demo", "--leechers", "0"],
        vec!["demo", "--size", "5000"],
        vec!["pause"],
        vec!["remove", "a", "b"],
        vec!["add"],
        vec!["info"],
        vec!["daemon", "extra"],
        vec!["x.torrent", "--dht-bootstrap", "nohostport"],
        vec!["x.torrent", "--dht-bootstrap", "::1:6881"],
    ] {
        let out = run_peer(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out).1);
    }
    let tmp = TempDir::new("cli-help");
    let missing = tmp.path().join("missing.torrent");
    let out = run_peer(&[
        missing.as_os_str(),
        "--no-lsd".as_ref(),
        "--no-dht".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let (_, stderr) = text(&out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}
