//! Turning untrusted torrent path elements into safe relative paths.
//!
//! [`sanitize_component`] alone decides what one path element of a
//! `.torrent` file becomes on disk, in the spirit of anacrolix's
//! `safe-path.go` and of libtorrent's `sanitize_append_path_element` (whose
//! results the conformance corpus asserts):
//!
//! * invalid UTF-8 and control characters become `_`;
//! * `/` and `\` inside an element are removed, so they never create a
//!   separator (`abc/../../def` becomes `abc....def`); an element made only
//!   of separators becomes `_`;
//! * empty elements, `.` and `..` are dropped;
//! * overlong elements are shortened to [`MAX_COMPONENT_BYTES`], keeping a
//!   short extension;
//! * names that are invalid or reserved on some platform are made portable:
//!   `< > : " | ? *` become `_`, and device names (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`,
//!   with any extension, any case) get a leading `_`.
//!
//! [`UniquePaths`] then renames files whose sanitised paths collide
//! (`foo/bar.txt` twice becomes `foo/bar.txt` and `foo/bar.1.txt`).

use std::collections::HashMap;

/// Longest element we produce, in bytes (libtorrent uses 240 too; most
/// file systems allow 255).
pub const MAX_COMPONENT_BYTES: usize = 240;

/// Longest path we accept for a file, in bytes, elements joined with `/`
/// and the torrent's name included: Linux's `PATH_MAX`. No file system
/// call could take a longer one (joined to the download directory it is
/// longer still). A longer path is refused, not shortened.
pub const MAX_PATH_BYTES: usize = 4096;

/// Most elements a file's `path` list may have (as written, before empty,
/// `.` and `..` elements are dropped): a path within [`MAX_PATH_BYTES`]
/// has room for at most 2,048 elements (one byte and a `/` each), so more
/// can only be an attack on our memory or time.
pub const MAX_PATH_DEPTH: usize = MAX_PATH_BYTES / 2;

/// The name used for a file whose path elements were all dropped.
pub const PLACEHOLDER: &str = "_";

/// Sanitise one path element. Returns `None` when the element must be
/// dropped (empty, `.` or `..` after sanitising).
pub fn sanitize_component(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut had_separator = false;
    for c in text.chars() {
        match c {
            '/' | '\\' => had_separator = true,
            '\u{FFFD}' => out.push('_'),
            c if c.is_control() => out.push('_'),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return had_separator.then(|| PLACEHOLDER.to_string());
    }
    if out == "." || out == ".." {
        return None;
    }
    Some(shorten(portable(out)))
}

/// Device names Windows reserves, whatever the extension.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Make a (non-empty, not `.`/`..`) element valid on every common platform.
fn portable(s: String) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    // Trailing dots and spaces (invalid on Windows) are kept: the
    // conformance corpus asserts libtorrent's names, which keep them.
    let base = out.split('.').next().unwrap_or("");
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(base)) {
        out.insert(0, '_');
    }
    out
}

/// Shorten `s` to at most [`MAX_COMPONENT_BYTES`] bytes on a character
/// boundary, keeping an extension of up to 16 bytes.
fn shorten(s: String) -> String {
    if s.len() <= MAX_COMPONENT_BYTES {
        return s;
    }
    let ext = match s.rfind('.') {
        Some(i) if i > 0 && s.len() - i <= 16 => &s[i..],
        _ => "",
    };
    let mut cut = MAX_COMPONENT_BYTES - ext.len();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &s[..cut], ext)
}

/// Sanitise a list of path elements, dropping the ones
/// [`sanitize_component`] drops. An all-dropped path becomes
/// `[PLACEHOLDER]`, so the result is never empty.
pub fn sanitize_path<'a>(raw: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut out: Vec<String> = raw.into_iter().filter_map(sanitize_component).collect();
    if out.is_empty() {
        out.push(PLACEHOLDER.to_string());
    }
    out
}

/// `name` with `.n` inserted before its extension: `bar.txt` → `bar.1.txt`,
/// `foo` → `foo.1` (libtorrent's renaming scheme).
pub fn numbered_name(name: &str, n: u64) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{}.{n}{}", &name[..i], &name[i..]),
        _ => format!("{name}.{n}"),
    }
}

/// Hands out unique file paths: a path that collides with an earlier file
/// or directory gets a numbered name, and a directory that collides with an
/// earlier file is renamed the same way.
///
/// The paths are held as a tree: one node per distinct directory or file,
/// found by (parent node, name), each name stored once in one string. So
/// memory and time are linear in the total length of the paths inserted,
/// never in the square of a path's depth, and a file costs a few dozen
/// bytes. No quadratic search for a free number either: the next number
/// to try is remembered per (parent, name).
#[derive(Debug, Default)]
pub struct UniquePaths {
    /// Every node's name, end to end.
    names: String,
    /// Node `id` is `nodes[id - 1]` (0 is the root).
    nodes: Vec<Node>,
    /// Hash of (parent, name) → the newest node with that hash (older ones
    /// follow [`Node::next`]).
    index: HashMap<u64, u32>,
    hasher: std::collections::hash_map::RandomState,
    /// Next number to try when renaming (parent, name).
    next_number: HashMap<(u32, Box<str>), u64>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Its name: `names[start..start + len]`.
    start: usize,
    len: u32,
    parent: u32,
    /// The next node with the same hash (0: none).
    next: u32,
    file: bool,
}

impl UniquePaths {
    /// An empty set of paths.
    pub fn new() -> UniquePaths {
        UniquePaths::default()
    }

    /// Register the file `path` (non-empty), renaming it if needed; returns
    /// the path to use.
    pub fn insert(&mut self, mut path: Vec<String>) -> Vec<String> {
        if path.is_empty() {
            path.push(PLACEHOLDER.to_string());
        }
        let last = path.len() - 1;
        let mut parent = 0u32;
        for (k, element) in path.iter_mut().enumerate() {
            let is_file = k == last;
            match self.lookup(parent, element) {
                // A directory we descend into.
                Some((id, false)) if !is_file => {
                    parent = id;
                    continue;
                }
                // A directory named like a file (a file may share the
                // number of a directory: then we descend into it), or a
                // file named like anything.
                Some(_) => self.rename(parent, element, is_file),
                None => {}
            }
            match self.lookup(parent, element) {
                Some((id, false)) if !is_file => parent = id,
                _ => parent = self.add(parent, element, is_file),
            }
        }
        path
    }

    /// Distinct directories and files held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing was inserted yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn hash(&self, parent: u32, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((parent, name))
    }

    fn name(&self, n: &Node) -> &str {
        let end = n.start.saturating_add(n.len as usize);
        self.names.get(n.start..end).unwrap_or_default()
    }

    /// The node `name` in directory `parent`: its id and whether it is a
    /// file.
    fn lookup(&self, parent: u32, name: &str) -> Option<(u32, bool)> {
        let mut id = *self.index.get(&self.hash(parent, name))?;
        while let Some(n) = id.checked_sub(1).and_then(|i| self.nodes.get(i as usize)) {
            if n.parent == parent && self.name(n) == name {
                return Some((id, n.file));
            }
            id = n.next;
        }
        None
    }

    fn add(&mut self, parent: u32, name: &str, file: bool) -> u32 {
        let id = u32::try_from(self.nodes.len() + 1).unwrap_or(u32::MAX);
        let h = self.hash(parent, name);
        let next = self.index.insert(h, id).unwrap_or(0);
        self.nodes.push(Node {
            start: self.names.len(),
            len: u32::try_from(name.len()).unwrap_or(u32::MAX),
            parent,
            next,
            file,
        });
        self.names.push_str(name);
        id
    }

    /// Rename `name` (in directory `parent`) to its first numbered name not
    /// taken: by anything for a file, by a file for a directory.
    fn rename(&mut self, parent: u32, name: &mut String, is_file: bool) {
        let key = (parent, Box::from(name.as_str()));
        let mut n = self.next_number.get(&key).copied().unwrap_or(1);
        let original = std::mem::take(name);
        loop {
            *name = numbered_name(&original, n);
            n += 1;
            match self.lookup(parent, name) {
                None => break,
                Some((_, false)) if !is_file => break,
                Some(_) => {}
            }
        }
        self.next_number.insert(key, n);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn portable_names() {
        let s = |x: &str| sanitize_component(x.as_bytes());
        assert_eq!(s("a:b?c*.txt").as_deref(), Some("a_b_c_.txt"));
        assert_eq!(s("con").as_deref(), Some("_con"));
        assert_eq!(s("LPT1.log").as_deref(), Some("_LPT1.log"));
        assert_eq!(s("console").as_deref(), Some("console"));
    }

    #[test]
    fn components() {
        assert_eq!(sanitize_component(b"abc/../../def").unwrap(), "abc....def");
        assert_eq!(sanitize_component(b"/").unwrap(), "_");
        assert_eq!(sanitize_component(b"\\").unwrap(), "_");
        assert_eq!(sanitize_component(b"/foobar").unwrap(), "foobar");
        assert_eq!(sanitize_component(b"\x82est/MB").unwrap(), "_estMB");
        assert_eq!(sanitize_component(b"a\x00b").unwrap(), "a_b");
        assert_eq!(sanitize_component(b"..."), Some("...".to_string()));
        assert_eq!(sanitize_component(b".."), None);
        assert_eq!(sanitize_component(b"."), None);
        assert_eq!(sanitize_component(b""), None);
        assert_eq!(sanitize_component(b"foobar ").unwrap(), "foobar ");
    }

    #[test]
    fn long_component_keeps_extension() {
        let long = format!("{}.txt", "x".repeat(300));
        let s = sanitize_component(long.as_bytes()).unwrap();
        assert_eq!(s.len(), MAX_COMPONENT_BYTES);
        assert!(s.ends_with(".txt"));
        let wide = "é".repeat(200);
        assert!(sanitize_component(wide.as_bytes()).unwrap().len() <= MAX_COMPONENT_BYTES);
    }

    #[test]
    fn whole_paths() {
        let p = sanitize_path([&b".."[..], b"..", b"bar"]);
        assert_eq!(p, ["bar"]);
        assert_eq!(sanitize_path([&b""[..], b""]), ["_"]);
    }

    fn v(s: &str) -> Vec<String> {
        s.split('/').map(String::from).collect()
    }

    #[test]
    fn renames_collisions() {
        let mut u = UniquePaths::new();
        assert_eq!(u.insert(v("t/foo/bar.txt")), v("t/foo/bar.txt"));
        assert_eq!(u.insert(v("t/foo/bar.txt")), v("t/foo/bar.1.txt"));
        assert_eq!(u.insert(v("t/foo/bar.txt")), v("t/foo/bar.2.txt"));
        // A file named like an existing directory.
        assert_eq!(u.insert(v("t/foo")), v("t/foo.1"));
        // A directory named like an existing file.
        assert_eq!(u.insert(v("t/foo/bar.txt/x")), v("t/foo/bar.3.txt/x"));
    }

    #[test]
    fn many_duplicates_are_linear() {
        let mut u = UniquePaths::new();
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            assert!(seen.insert(u.insert(v("t/a"))));
        }
    }

    #[test]
    fn deep_path_is_held_once() {
        // 100,000 levels: the tree holds each element once (the old set of
        // prefixes held 5 * 10^9 of them).
        let depth = 100_000;
        let path: Vec<String> = (0..depth).map(|i| format!("d{}", i % 10)).collect();
        let mut u = UniquePaths::new();
        assert_eq!(u.insert(path.clone()), path);
        assert_eq!(u.len(), depth);
        assert_eq!(u.names.len(), 2 * depth);
        // The same path again: only the file is renamed.
        let again = u.insert(path.clone());
        assert_eq!(again[..depth - 1], path[..depth - 1]);
        assert_eq!(again[depth - 1], "d9.1");
        assert_eq!(u.len(), depth + 1);
        assert_eq!(u.names.len(), 2 * depth + 4);
    }

    #[test]
    fn directory_may_merge_into_numbered_directory() {
        let mut u = UniquePaths::new();
        assert_eq!(u.insert(v("t/a")), v("t/a"));
        assert_eq!(u.insert(v("t/a.1/x")), v("t/a.1/x"));
        // `a` is a file: the directory becomes `a.1`, which exists as a
        // directory, so it is shared.
        assert_eq!(u.insert(v("t/a/y")), v("t/a.1/y"));
        // The next number for `a` is 2 (as before this tree: numbers are
        // never searched from 1 again).
        assert_eq!(u.insert(v("t/a/x")), v("t/a.2/x"));
        assert_eq!(u.insert(v("t/a.1/x")), v("t/a.1/x.1"));
    }
}
