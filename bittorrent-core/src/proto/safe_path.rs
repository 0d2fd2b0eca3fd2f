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

use std::collections::{HashMap, HashSet};

/// Longest element we produce, in bytes (libtorrent uses 240 too; most
/// file systems allow 255).
pub const MAX_COMPONENT_BYTES: usize = 240;

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
/// earlier file is renamed the same way. Linear in the number of files
/// (no quadratic search for a free number).
#[derive(Debug, Default)]
pub struct UniquePaths {
    files: HashSet<Vec<String>>,
    dirs: HashSet<Vec<String>>,
    next_number: HashMap<Vec<String>, u64>,
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
        for k in 0..last {
            if self.files.contains(&path[..=k]) {
                let taken = |p: &[String], s: &Self| s.files.contains(p);
                self.rename_at(&mut path, k, taken);
            }
        }
        if self.files.contains(&path) || self.dirs.contains(&path) {
            let taken = |p: &[String], s: &Self| s.files.contains(p) || s.dirs.contains(p);
            self.rename_at(&mut path, last, taken);
        }
        for k in 0..last {
            self.dirs.insert(path[..=k].to_vec());
        }
        self.files.insert(path.clone());
        path
    }

    /// Rename element `k` of `path` to the first numbered name not `taken`.
    fn rename_at(
        &mut self,
        path: &mut [String],
        k: usize,
        taken: impl Fn(&[String], &Self) -> bool,
    ) {
        let base = path[..=k].to_vec();
        let mut n = self.next_number.get(&base).copied().unwrap_or(1);
        let original = path[k].clone();
        loop {
            path[k] = numbered_name(&original, n);
            n += 1;
            if !taken(&path[..=k], self) {
                break;
            }
        }
        self.next_number.insert(base, n);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
}
