//! Pure protocol codecs: bytes in, values out. No sockets, no files, no threads, no channels.
//!
//! Everything a peer, a tracker, a DHT node, a LAN announce, a resume file or a `.torrent`
//! file can send us is parsed here, with limits, so this module is what the fuzz targets and
//! the protocol tests exercise: the one public door to all of them. The components that
//! speak these formats (the DHT node, the LSD thread, the tracker client and the embedded
//! tracker, the MSE drivers, the state directory) use them from here; nothing in `proto`
//! imports from `discovery`, `engine` or `state` (checked by a test in this module).

pub mod bencode;
pub mod bep42;
pub mod bitfield;
pub mod block_layer;
pub mod compact;
pub mod extension;
pub mod hash_msg;
pub mod holepunch;
pub mod krpc;
pub mod layer_plan;
pub mod layout;
pub mod lsd;
pub mod magnet;
pub mod merkle;
pub mod metainfo;
pub mod mse;
mod node_id;
pub mod piece_tree;
pub mod resume;
pub mod safe_path;
pub mod tracker;
pub mod utp;
pub mod web_seed;
pub mod wire;

/// `proto` is the floor of the crate: bytes in, values out. It may use `util`, std and
/// external crates, never the layers above it (`discovery`, `engine`, `state`), so that the
/// codecs can be read, tested and fuzzed alone. This walks `src/proto/**/*.rs`.
#[cfg(test)]
mod floor_tests {
    #![allow(clippy::unwrap_used)]
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The first name after a `crate::` on a line of code that is not `proto`, `util` or a
    /// crate-root re-export of a proto type.
    fn upward(code: &str) -> Option<String> {
        const ALLOWED: [&str; 5] = ["proto", "util", "InfoHash", "Metainfo", "Magnet"];
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !ALLOWED.contains(&name.as_str()) {
                return Some(name);
            }
        }
        None
    }

    #[test]
    fn proto_imports_nothing_above_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        assert!(files.len() > 10, "found only {files:?}");
        let escape2 = ["super"; 2].join("::");
        let escape3 = ["super"; 3].join("::");
        let mut bad = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            // From a file directly in proto, or a folder's mod.rs, two `super`s reach the
            // crate root; from any other file in a folder (or a test module), three do.
            let depth = f.strip_prefix(&root).unwrap().components().count();
            let shallow = depth == 1 || f.ends_with("mod.rs");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let leaves = code.contains(&escape3) || (shallow && code.contains(&escape2));
                if leaves || upward(code).is_some() {
                    bad.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(bad.is_empty(), "proto imports upward:\n{}", bad.join("\n"));
    }

    #[test]
    fn the_check_sees_upward_imports() {
        assert_eq!(upward("use crate::proto::bencode;"), None);
        assert_eq!(upward("let x = crate::InfoHash::from_hex(s);"), None);
        let up = ["discovery", "engine", "state"].map(|m| format!("use crate::{m}::x;"));
        for u in &up {
            assert!(upward(u).is_some(), "{u}");
        }
    }
}
