//! File selection: which files of a torrent to download.
//!
//! Pure functions, no I/O. A torrent's selection is one [`FilePriority`]
//! per entry of `info.files` (pad files included, in torrent order: the
//! indices `peer info` shows). From it come the *wanted pieces* (every
//! piece that holds a byte of a wanted file; the picker asks only for
//! those) and, for the storage, the *shared pieces* (pieces holding bytes
//! of two or more files), whose bytes outside the wanted files are kept in
//! the part file (see `engine::partfile`).
//!
//! Files are chosen by glob ([`Glob`]), by index list ([`parse_indices`]),
//! or both ([`select`]).

use crate::proto::bitfield::Bitfield;
use crate::proto::metainfo::Info;

pub use crate::proto::resume::FilePriority;

/// Why a selection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionError {
    /// A glob pattern is malformed (an unclosed `[`).
    BadPattern(String),
    /// An index list is malformed or names a file that does not exist.
    BadIndex(String),
    /// The selection leaves no file to download.
    Empty,
    /// A priority list does not have one entry per file.
    WrongLength {
        /// Entries given.
        given: usize,
        /// Files in the torrent.
        files: usize,
    },
}

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectionError::BadPattern(p) => write!(f, "bad pattern {p:?} (an unclosed [)"),
            SelectionError::BadIndex(e) => write!(f, "{e}"),
            SelectionError::Empty => write!(f, "the selection leaves no file to download"),
            SelectionError::WrongLength { given, files } => write!(
                f,
                "{given} file priorities given for a torrent of {files} files"
            ),
        }
    }
}

impl std::error::Error for SelectionError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character, not `/`.
    One,
    /// `*`: any characters but `/`.
    Star,
    /// `**`: any characters, `/` included.
    AnyPath,
    /// `**/`: nothing, or anything ending with `/` (any directories).
    AnyDirs,
    /// `[...]` / `[!...]`: one character (not `/`) in (or not in) the ranges.
    Class(Vec<(char, char)>, bool),
}

/// A glob pattern on paths inside a torrent: `*` (anything within one path
/// component), `**` (anything, across components; `**/` also matches no
/// directory), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]`, and `\`
/// to escape. Case-sensitive.
///
/// A file matches when the pattern matches its path as `peer info` shows
/// it (`name/dir/file.txt` in a multi-file torrent), its path below the
/// torrent's directory (`dir/file.txt`), or, for a pattern without `/`,
/// its file name (`*.txt` matches at any depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
    has_slash: bool,
}

impl Glob {
    /// Compile a pattern.
    pub fn new(pattern: &str) -> Result<Glob, SelectionError> {
        let cs: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            match cs[i] {
                '*' if cs.get(i + 1) == Some(&'*') => {
                    i += 2;
                    while cs.get(i) == Some(&'*') {
                        i += 1;
                    }
                    if cs.get(i) == Some(&'/') {
                        i += 1;
                        toks.push(Tok::AnyDirs);
                    } else {
                        toks.push(Tok::AnyPath);
                    }
                    continue;
                }
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '\\' if i + 1 < cs.len() => {
                    i += 1;
                    toks.push(Tok::Lit(cs[i]));
                }
                '[' => {
                    let mut j = i + 1;
                    let negated = matches!(cs.get(j), Some('!' | '^'));
                    if negated {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = cs.get(j) else {
                            return Err(SelectionError::BadPattern(pattern.into()));
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if cs.get(j + 1) == Some(&'-') && cs.get(j + 2).is_some_and(|&e| e != ']') {
                            ranges.push((c, cs[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((c, c));
                            j += 1;
                        }
                    }
                    toks.push(Tok::Class(ranges, negated));
                    i = j;
                }
                c => toks.push(Tok::Lit(c)),
            }
            i += 1;
        }
        Ok(Glob {
            toks,
            has_slash: pattern.contains('/'),
        })
    }

    /// Whether the whole of `text` matches (dynamic programming: linear in
    /// pattern × text, never exponential).
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        let n = t.len();
        // next[j]: the pattern from token i+1 on matches t[j..].
        let mut next = vec![false; n + 1];
        next[n] = true;
        for tok in self.toks.iter().rev() {
            let mut cur = vec![false; n + 1];
            match tok {
                Tok::Star | Tok::AnyPath => {
                    cur[n] = next[n];
                    for j in (0..n).rev() {
                        let may_eat = *tok == Tok::AnyPath || t[j] != '/';
                        cur[j] = next[j] || (may_eat && cur[j + 1]);
                    }
                }
                Tok::AnyDirs => {
                    // Empty, or up to and including some later '/'.
                    let mut later = false;
                    for j in (0..=n).rev() {
                        if j < n && t[j] == '/' && next[j + 1] {
                            later = true;
                        }
                        cur[j] = next[j] || later;
                    }
                }
                _ => {
                    for j in 0..n {
                        let ok = match tok {
                            Tok::Lit(c) => t[j] == *c,
                            Tok::One => t[j] != '/',
                            Tok::Class(ranges, neg) => {
                                t[j] != '/'
                                    && ranges.iter().any(|&(a, b)| a <= t[j] && t[j] <= b) != *neg
                            }
                            _ => false,
                        };
                        cur[j] = ok && next[j + 1];
                    }
                }
            }
            next = cur;
        }
        next[0]
    }

    /// Whether a file of a torrent matches (see the rules on [`Glob`]).
    pub fn matches_file(&self, path: &[String], multi_file: bool) -> bool {
        let full = path.join("/");
        if self.matches(&full) {
            return true;
        }
        if multi_file && path.len() > 1 && self.matches(&path[1..].join("/")) {
            return true;
        }
        !self.has_slash && path.last().is_some_and(|name| self.matches(name))
    }
}

/// Read an index list such as `0,3-5` (indices into `info.files`, as `peer
/// info` shows them) for a torrent of `count` files.
pub fn parse_indices(list: &str, count: usize) -> Result<Vec<usize>, SelectionError> {
    let bad = |what: String| SelectionError::BadIndex(what);
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad(format!("empty entry in file list {list:?}")));
        }
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("not a file index: {s:?} (in {list:?})")))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let a = num(part)?;
                (a, a)
            }
        };
        if a > b {
            return Err(bad(format!("backwards range {part:?}")));
        }
        if b >= count {
            return Err(bad(format!(
                "no file {b}: the torrent has files 0 to {}",
                count.saturating_sub(1)
            )));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The priorities chosen by `--files`, `--only` and `--skip`: with neither
/// `files` nor `only`, every file is wanted; otherwise the files listed in
/// `files` and those matching an `only` pattern are. Then every file
/// matching a `skip` pattern is skipped. Pad files are always `Skip`. An
/// empty result is an error.
pub fn select(
    info: &Info,
    files: Option<&[usize]>,
    only: &[Glob],
    skip: &[Glob],
) -> Result<Vec<FilePriority>, SelectionError> {
    let restrict = files.is_some() || !only.is_empty();
    let prios: Vec<FilePriority> = info
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let listed = files.is_some_and(|l| l.contains(&i))
                || only
                    .iter()
                    .any(|g| g.matches_file(&f.path.to_vec(), info.multi_file));
            let skipped = skip
                .iter()
                .any(|g| g.matches_file(&f.path.to_vec(), info.multi_file));
            if f.pad || skipped || (restrict && !listed) {
                FilePriority::Skip
            } else {
                FilePriority::Normal
            }
        })
        .collect();
    let any = info
        .files
        .iter()
        .zip(&prios)
        .any(|(f, p)| !f.pad && p.is_wanted());
    if !any && info.files.iter().any(|f| !f.pad) {
        return Err(SelectionError::Empty);
    }
    Ok(prios)
}

/// A selection to apply once the torrent's file list is known (a magnet
/// link's metadata may arrive later): `--files`, `--only` and `--skip` as
/// given, resolved by [`select`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// An index list such as `0,3-5` (`None`: not given).
    pub files: Option<String>,
    /// Files to download (any pattern matching).
    pub only: Vec<Glob>,
    /// Files to leave out.
    pub skip: Vec<Glob>,
}

impl Selector {
    /// Whether nothing was given (every file wanted).
    pub fn is_empty(&self) -> bool {
        self.files.is_none() && self.only.is_empty() && self.skip.is_empty()
    }

    /// The priorities for `info`.
    pub fn priorities(&self, info: &Info) -> Result<Vec<FilePriority>, SelectionError> {
        let files = match &self.files {
            Some(l) => Some(parse_indices(l, info.files.len())?),
            None => None,
        };
        select(info, files.as_deref(), &self.only, &self.skip)
    }
}

/// Check a priority list against a torrent: one entry per file.
pub fn check(info: &Info, prios: &[FilePriority]) -> Result<(), SelectionError> {
    if prios.len() != info.files.len() {
        return Err(SelectionError::WrongLength {
            given: prios.len(),
            files: info.files.len(),
        });
    }
    Ok(())
}

/// Whether every real file is wanted (the usual case: no part file).
pub fn all_wanted(info: &Info, prios: &[FilePriority]) -> bool {
    info.files
        .iter()
        .zip(prios)
        .all(|(f, p)| f.pad || p.is_wanted())
}

/// The pieces `[first, last]` that hold bytes of a file (`None` when empty).
pub fn file_pieces(info: &Info, index: usize) -> Option<(u32, u32)> {
    let f = info.files.get(index)?;
    if f.length == 0 || info.piece_length == 0 {
        return None;
    }
    let first = f.offset / info.piece_length;
    let last = (f.offset + f.length - 1) / info.piece_length;
    Some((first as u32, last as u32))
}

/// The pieces to download: every piece holding a byte of a wanted file,
/// and pieces made only of pad files. A missing priority means `Normal`.
pub fn wanted_pieces(info: &Info, prios: &[FilePriority]) -> Bitfield {
    let n = crate::proto::layout::Layout::of(info).num_pieces as usize;
    if all_wanted(info, prios) {
        return Bitfield::full(n);
    }
    // 0: no real file seen, 1: only skipped files, 2: a wanted file.
    let mut state = vec![0u8; n];
    for (i, f) in info.files.iter().enumerate() {
        if f.pad {
            continue;
        }
        let Some((a, b)) = file_pieces(info, i) else {
            continue;
        };
        let wanted = prios.get(i).copied().unwrap_or_default().is_wanted();
        for s in &mut state[a as usize..=(b as usize).min(n.saturating_sub(1))] {
            *s = (*s).max(if wanted { 2 } else { 1 });
        }
    }
    let mut bf = Bitfield::new(n);
    for (i, s) in state.iter().enumerate() {
        if *s != 1 {
            bf.set(i);
        }
    }
    bf
}

/// The pieces holding bytes of two or more real files, in order: the only
/// pieces that can be partly wanted, so the only ones the part file keeps.
pub fn shared_pieces(info: &Info) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut last_piece_of_prev: Option<u32> = None;
    for i in 0..info.files.len() {
        if info.files[i].pad {
            continue;
        }
        let Some((a, b)) = file_pieces(info, i) else {
            continue;
        };
        if last_piece_of_prev == Some(a) && out.last() != Some(&a) {
            out.push(a);
        }
        last_piece_of_prev = Some(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(files: &[(&str, u64, bool)], piece_length: u64) -> Info {
        crate::proto::metainfo::test_info(files, piece_length)
    }

    fn g(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn glob_basics() {
        assert!(g("*.txt").matches("a.txt"));
        assert!(!g("*.txt").matches("d/a.txt"));
        assert!(g("*").matches(""));
        assert!(g("a?c").matches("abc"));
        assert!(!g("a?c").matches("a/c"));
        assert!(g("[ab]x").matches("bx"));
        assert!(!g("[!ab]x").matches("bx"));
        assert!(g("[!ab]x").matches("cx"));
        assert!(g("file[0-9].bin").matches("file7.bin"));
        assert!(!g("file[0-9].bin").matches("filex.bin"));
        assert!(g("[]]").matches("]"));
        assert!(g(r"\*").matches("*"));
        assert!(!g(r"\*").matches("a"));
        assert!(g("a*b*c").matches("aXXbYYc"));
        assert!(!g("a*b*c").matches("aXXbYY"));
        assert!(Glob::new("[abc").is_err());
    }

    #[test]
    fn glob_double_star() {
        assert!(g("**/*.txt").matches("a.txt"));
        assert!(g("**/*.txt").matches("d/e/a.txt"));
        assert!(g("d/**").matches("d/e/f"));
        assert!(g("d/**/f").matches("d/f"));
        assert!(g("d/**/f").matches("d/x/y/f"));
        assert!(!g("d/**/f").matches("dd/f"));
        assert!(g("**").matches("x/y"));
        assert!(g("a**").matches("ab/c"));
    }

    #[test]
    fn glob_is_not_exponential() {
        let p = g("*a*a*a*a*a*a*a*a*a*a*a*a*b");
        assert!(!p.matches(&"a".repeat(200)));
    }

    #[test]
    fn files_match_by_full_path_relative_path_or_name() {
        let path: Vec<String> = ["movie", "extras", "clip.mkv"].map(String::from).into();
        assert!(g("*.mkv").matches_file(&path, true));
        assert!(g("extras/*").matches_file(&path, true));
        assert!(g("movie/extras/*.mkv").matches_file(&path, true));
        assert!(g("**/clip.*").matches_file(&path, true));
        assert!(!g("clip/*").matches_file(&path, true));
        assert!(!g("*.txt").matches_file(&path, true));
        // A pattern with a slash never matches the name alone.
        assert!(!g("x/clip.mkv").matches_file(&path, true));
    }

    #[test]
    fn index_lists() {
        assert_eq!(parse_indices("1,3-5", 6).unwrap(), vec![1, 3, 4, 5]);
        assert_eq!(parse_indices(" 2 , 0 ,2", 3).unwrap(), vec![0, 2]);
        assert!(parse_indices("6", 6).is_err());
        assert!(parse_indices("3-1", 6).is_err());
        assert!(parse_indices("1,,2", 6).is_err());
        assert!(parse_indices("a", 6).is_err());
        assert!(parse_indices("-1", 6).is_err());
    }

    #[test]
    fn select_combines_files_only_and_skip() {
        let inf = info(
            &[
                ("t/a.txt", 10, false),
                ("t/pad", 6, true),
                ("t/b.bin", 10, false),
                ("t/sub/c.txt", 10, false),
            ],
            16,
        );
        use FilePriority::{Normal as N, Skip as S};
        assert_eq!(select(&inf, None, &[], &[]).unwrap(), vec![N, S, N, N]);
        assert_eq!(
            select(&inf, None, &[g("*.txt")], &[]).unwrap(),
            vec![N, S, S, N]
        );
        assert_eq!(
            select(&inf, Some(&[2]), &[g("sub/*")], &[]).unwrap(),
            vec![S, S, N, N]
        );
        assert_eq!(
            select(&inf, None, &[], &[g("*.txt")]).unwrap(),
            vec![S, S, N, S]
        );
        assert_eq!(
            select(&inf, None, &[g("*.txt")], &[g("sub/**")]).unwrap(),
            vec![N, S, S, S]
        );
        assert_eq!(
            select(&inf, None, &[g("*.iso")], &[]),
            Err(SelectionError::Empty)
        );
    }

    #[test]
    fn wanted_and_shared_pieces() {
        // Pieces of 16: a = [0,20) -> pieces 0-1; b = [20,40) -> 1-2;
        // pad [40,48) -> 2; c = [48,80) -> 3-4; d = [80,81) -> 5.
        let inf = info(
            &[
                ("t/a", 20, false),
                ("t/b", 20, false),
                ("t/pad", 8, true),
                ("t/c", 32, false),
                ("t/d", 1, false),
            ],
            16,
        );
        use FilePriority::{Normal as N, Skip as S};
        assert_eq!(shared_pieces(&inf), vec![1]);
        let ones = |bf: Bitfield| bf.ones().collect::<Vec<_>>();
        assert_eq!(
            ones(wanted_pieces(&inf, &[N, N, S, N, N])),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(ones(wanted_pieces(&inf, &[N, S, S, S, S])), vec![0, 1]);
        assert_eq!(ones(wanted_pieces(&inf, &[S, N, S, S, S])), vec![1, 2]);
        assert_eq!(ones(wanted_pieces(&inf, &[S, S, S, S, N])), vec![5]);
        assert!(all_wanted(&inf, &[N, N, S, N, N]));
        assert!(!all_wanted(&inf, &[N, S, N, N, N]));
        let inf2 = info(
            &[("t/a", 10, false), ("t/b", 10, false), ("t/c", 30, false)],
            8,
        );
        // a [0,10): 0-1; b [10,20): 1-2; c [20,50): 2-6.
        assert_eq!(shared_pieces(&inf2), vec![1, 2]);
        assert_eq!(file_pieces(&inf2, 2), Some((2, 6)));
    }

    #[test]
    fn priorities_parse() {
        assert_eq!(FilePriority::parse("skip"), Some(FilePriority::Skip));
        assert_eq!(FilePriority::parse("Normal"), Some(FilePriority::Normal));
        assert_eq!(FilePriority::parse("high"), None);
        assert_eq!(FilePriority::Skip.as_str(), "skip");
    }
}
