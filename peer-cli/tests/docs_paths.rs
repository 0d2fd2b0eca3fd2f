//! Every repository file the README and `docs/*.md` name exists: a path in
//! backticks or a link target that looks like a repository path (it has a
//! `/` and ends with a known extension, or ends with `/` for a directory)
//! must be found relative to the repository root, to the document's own
//! directory, or to one of the crate directories the text speaks of
//! (`bittorrent-core/src` and its `discovery`, `engine`, `bittorrent-core/tests`,
//! `peer-cli/src`, `peer-cli/tests`).

use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 14] = [
    "rs", "md", "toml", "sh", "py", "png", "txt", "json", "html", "js", "css", "yml", "yaml",
    "lock",
];
const BASES: [&str; 14] = [
    "",
    "bittorrent-core",
    "bittorrent-core/src",
    "bittorrent-core/src/discovery",
    "bittorrent-core/src/engine",
    "bittorrent-core/src/engine/conn",
    "bittorrent-core/src/engine/net",
    "bittorrent-core/src/engine/session",
    "bittorrent-core/src/engine/storage",
    "bittorrent-core/src/engine/torrent",
    "bittorrent-core/tests",
    "peer-cli",
    "peer-cli/src",
    "peer-cli/tests",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Backticked spans and `](target)` link targets of a Markdown text
/// (fenced code blocks are left out: commands, not names).
fn candidates(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let text = prose.as_str();
    let mut out = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push(part.to_string());
        }
    }
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Whether `s` looks like a path inside this repository.
fn looks_like_repo_path(s: &str) -> bool {
    let s = s.split('#').next().unwrap_or("");
    if s.is_empty()
        || !s.contains('/')
        || s.contains("://")
        || s.starts_with('/')
        || s.starts_with('~')
        || s.starts_with('$')
        || s.chars().any(|c| " <>*{}|$=\"'".contains(c))
        || s.contains("...")
    {
        return false;
    }
    // `STATE/session.benc`, `DIR/x`: a placeholder, not a repository path.
    let first = s.split('/').next().unwrap_or("");
    if first.len() > 1 && first.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return false;
    }
    if s.ends_with('/') {
        return true;
    }
    let ext = s.rsplit('.').next().unwrap_or("");
    s.contains('.') && EXTENSIONS.contains(&ext)
}

fn exists(root: &Path, doc_dir: &Path, s: &str) -> bool {
    let s = s.split('#').next().unwrap_or("");
    doc_dir.join(s).exists() || BASES.iter().any(|b| root.join(b).join(s).exists())
}

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents(&root) {
        let text = std::fs::read_to_string(&doc).expect("read doc");
        let dir = doc.parent().expect("doc dir").to_path_buf();
        for c in candidates(&text) {
            if looks_like_repo_path(&c) {
                checked += 1;
                if !exists(&root, &dir, &c) {
                    let name = doc
                        .strip_prefix(&root)
                        .unwrap_or(&doc)
                        .display()
                        .to_string();
                    missing.push(format!("{name}: {c}"));
                }
            }
        }
    }
    // The README alone names dozens: finding few means the scan is broken.
    assert!(checked > 50, "only {checked} paths found");
    assert!(
        missing.is_empty(),
        "paths named but missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_check_itself_tells_paths_from_other_text() {
    for yes in [
        "bittorrent-core/tests/corpus.rs",
        "docs/web.png",
        "peer-cli/tests/",
        "fixtures/corpus/README-shared.md",
    ] {
        assert!(looks_like_repo_path(yes), "{yes}");
    }
    for no in [
        "peer info",
        "https://rustup.rs",
        "/usr/bin/python3",
        "STATE/session.benc",
        "torrents/<info-hash>.resume",
        "~/.local/share/peer",
        "target/release/peer",
        "corpus.rs",
    ] {
        assert!(!looks_like_repo_path(no), "{no}");
    }
    let root = root();
    assert!(exists(&root, &root, "peer-cli/tests/docs_paths.rs"));
    assert!(!exists(&root, &root, "bittorrent-core/tests/tracker.rs"));
    assert_eq!(
        candidates("a `x/y.rs` [t](docs/API.md)\n```sh\nrun `q/r.rs`\n```\nb `z/w.md`"),
        ["x/y.rs", "z/w.md", "docs/API.md"]
    );
}
