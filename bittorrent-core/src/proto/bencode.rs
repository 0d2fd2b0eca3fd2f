//! Bencoding (BEP 3).
//!
//! Two decoders over one parser:
//!
//! * [`decode`] is *tolerant*: it accepts what real `.torrent` files contain
//!   (dictionary keys out of order or repeated, integers with leading zeros,
//!   bytes after the top-level value) while still enforcing a nesting-depth
//!   limit and length limits. Every dictionary keeps the exact bytes it was
//!   decoded from ([`Dict::raw`]), so the info-hash is computed over the
//!   original bytes of `info`, never over a re-encoding.
//! * [`decode_strict`] accepts only the canonical form (sorted, unique keys,
//!   no leading zeros, no `-0`, nothing after the value). Use it where the
//!   protocol wants canonical input (wire extensions, KRPC).
//!
//! Everything we *write* is canonical and produced with `bendy`
//! (see [`OwnedValue::to_bytes`]).

use std::fmt;

/// Nesting depth limit (libtorrent stops at 100 levels too).
pub const MAX_DEPTH: usize = 100;

/// A decoded value borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i...e`
    Int(i64),
    /// `N:bytes`
    Bytes(&'a [u8]),
    /// `l...e`
    List(Vec<Value<'a>>),
    /// `d...e`
    Dict(Dict<'a>),
    /// A list left undecoded by [`decode_lazy`]: its raw bytes (`l` to `e`
    /// inclusive, checked well formed), read item by item with
    /// [`list_items`]. Never produced by the other decoders.
    LazyList {
        /// The list's bytes.
        raw: &'a [u8],
        /// Its nesting depth in the document (for [`MAX_DEPTH`]).
        depth: usize,
    },
}

/// A decoded dictionary: its entries in input order and its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dict<'a> {
    /// Key/value pairs in the order they appeared in the input.
    pub entries: Vec<(&'a [u8], Value<'a>)>,
    /// The exact input bytes of this dictionary, from `d` to `e` inclusive.
    pub raw: &'a [u8],
}

impl<'a> Dict<'a> {
    /// The value of the first entry whose key is `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The byte string as UTF-8, if it is a valid UTF-8 byte string.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    /// Shortcut for `self.as_dict()?.get(key)`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict().and_then(|d| d.get(key))
    }
    /// Convert into an owned value (for re-encoding canonically).
    pub fn to_owned_value(&self) -> OwnedValue {
        match self {
            Value::Int(i) => OwnedValue::Int(*i),
            Value::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Value::List(l) => OwnedValue::List(l.iter().map(Value::to_owned_value).collect()),
            Value::Dict(d) => OwnedValue::Dict(
                d.entries
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_owned_value()))
                    .collect(),
            ),
            Value::LazyList { raw, depth } => OwnedValue::List(
                list_items(raw, *depth)
                    .filter_map(Result::ok)
                    .map(|v| v.to_owned_value())
                    .collect(),
            ),
        }
    }
}

/// What went wrong while decoding, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BencodeError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What the problem is.
    pub kind: BencodeErrorKind,
}

/// The kinds of bencode decoding failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BencodeErrorKind {
    /// The input ended in the middle of a value.
    UnexpectedEof,
    /// A byte that cannot start a value.
    InvalidType(u8),
    /// An integer that is malformed (no digits, a sign without digits, a stray byte).
    InvalidInteger,
    /// An integer that does not fit in a signed 64-bit number.
    IntegerOverflow,
    /// Leading zero or `-0` (strict mode only).
    NonCanonicalInteger,
    /// A string length that is malformed or larger than the input.
    InvalidLength,
    /// A dictionary key that is not a byte string.
    KeyNotString,
    /// Dictionary keys not strictly ascending (strict mode only).
    UnsortedKeys,
    /// The same key twice in a dictionary (strict mode only).
    DuplicateKey,
    /// Nesting deeper than the limit.
    TooDeep,
    /// Bytes after the top-level value (strict mode only).
    TrailingData,
}

impl fmt::Display for BencodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            BencodeErrorKind::UnexpectedEof => "unexpected end of input".to_string(),
            BencodeErrorKind::InvalidType(b) => format!("unexpected byte 0x{b:02x}"),
            BencodeErrorKind::InvalidInteger => "malformed integer".to_string(),
            BencodeErrorKind::IntegerOverflow => "integer does not fit in 64 bits".to_string(),
            BencodeErrorKind::NonCanonicalInteger => "non-canonical integer".to_string(),
            BencodeErrorKind::InvalidLength => "invalid string length".to_string(),
            BencodeErrorKind::KeyNotString => "dictionary key is not a string".to_string(),
            BencodeErrorKind::UnsortedKeys => "dictionary keys not sorted".to_string(),
            BencodeErrorKind::DuplicateKey => "duplicate dictionary key".to_string(),
            BencodeErrorKind::TooDeep => format!("nesting deeper than {MAX_DEPTH} levels"),
            BencodeErrorKind::TrailingData => "data after the value".to_string(),
        };
        write!(f, "bencode: {what} at byte {}", self.offset)
    }
}

impl std::error::Error for BencodeError {}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    strict: bool,
    max_depth: usize,
    /// A dictionary key whose list value, in a dictionary at this depth, is
    /// left undecoded (see [`decode_lazy`]).
    lazy: Option<(&'a [u8], usize)>,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, kind: BencodeErrorKind) -> Result<T, BencodeError> {
        Err(BencodeError {
            offset: self.pos,
            kind,
        })
    }

    fn peek(&self) -> Result<u8, BencodeError> {
        match self.input.get(self.pos) {
            Some(b) => Ok(*b),
            None => self.err(BencodeErrorKind::UnexpectedEof),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, BencodeError> {
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.int_until(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' => {
                if depth >= self.max_depth {
                    return self.err(BencodeErrorKind::TooDeep);
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                if depth >= self.max_depth {
                    return self.err(BencodeErrorKind::TooDeep);
                }
                let start = self.pos;
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return self.err(BencodeErrorKind::KeyNotString);
                    }
                    let key_pos = self.pos;
                    let key = self.bytes()?;
                    if self.strict {
                        if let Some((prev, _)) = entries.last() {
                            if *prev == key {
                                return Err(BencodeError {
                                    offset: key_pos,
                                    kind: BencodeErrorKind::DuplicateKey,
                                });
                            }
                            if *prev > key {
                                return Err(BencodeError {
                                    offset: key_pos,
                                    kind: BencodeErrorKind::UnsortedKeys,
                                });
                            }
                        }
                    }
                    let lazy = self.lazy.is_some_and(|(k, d)| k == key && d == depth);
                    let v = if lazy && self.peek()? == b'l' {
                        let start = self.pos;
                        self.skip(depth + 1)?;
                        Value::LazyList {
                            raw: &self.input[start..self.pos],
                            depth: depth + 1,
                        }
                    } else {
                        self.value(depth + 1)?
                    };
                    entries.push((key, v));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict {
                    entries,
                    raw: &self.input[start..self.pos],
                }))
            }
            other => self.err(BencodeErrorKind::InvalidType(other)),
        }
    }

    /// Check one value and step over it, building nothing.
    fn skip(&mut self, depth: usize) -> Result<(), BencodeError> {
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                self.int_until(b'e')?;
            }
            b'0'..=b'9' => {
                self.bytes()?;
            }
            open @ (b'l' | b'd') => {
                if depth >= self.max_depth {
                    return self.err(BencodeErrorKind::TooDeep);
                }
                self.pos += 1;
                while self.peek()? != b'e' {
                    if open == b'd' {
                        if !self.peek()?.is_ascii_digit() {
                            return self.err(BencodeErrorKind::KeyNotString);
                        }
                        self.bytes()?;
                    }
                    self.skip(depth + 1)?;
                }
                self.pos += 1;
            }
            other => return self.err(BencodeErrorKind::InvalidType(other)),
        }
        Ok(())
    }

    /// Parse a decimal integer terminated by `end`; consumes the terminator.
    fn int_until(&mut self, end: u8) -> Result<i64, BencodeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let len = match rest.iter().position(|&b| b == end) {
            Some(l) => l,
            None => {
                // Either malformed or truncated: report which.
                if rest.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
                    return self.err(BencodeErrorKind::UnexpectedEof);
                }
                return self.err(BencodeErrorKind::InvalidInteger);
            }
        };
        let digits = &rest[..len];
        let (neg, body) = match digits.split_first() {
            Some((b'-', body)) => (true, body),
            _ => (false, digits),
        };
        if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
            return self.err(BencodeErrorKind::InvalidInteger);
        }
        if self.strict && ((body.len() > 1 && body[0] == b'0') || (neg && body == b"0")) {
            return self.err(BencodeErrorKind::NonCanonicalInteger);
        }
        let mut n: i64 = 0;
        for &d in body {
            let digit = i64::from(d - b'0');
            n = match n.checked_mul(10).and_then(|n| {
                if neg {
                    n.checked_sub(digit)
                } else {
                    n.checked_add(digit)
                }
            }) {
                Some(n) => n,
                None => return self.err(BencodeErrorKind::IntegerOverflow),
            };
        }
        self.pos = start + len + 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], BencodeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let len = match rest.iter().take(21).position(|&b| b == b':') {
            Some(l) => l,
            None => {
                if rest.len() < 21 && rest.iter().all(u8::is_ascii_digit) {
                    return self.err(BencodeErrorKind::UnexpectedEof);
                }
                return self.err(BencodeErrorKind::InvalidLength);
            }
        };
        let digits = &rest[..len];
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (self.strict && digits.len() > 1 && digits[0] == b'0')
        {
            return self.err(BencodeErrorKind::InvalidLength);
        }
        let mut n: usize = 0;
        for &d in digits {
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
            {
                Some(n) => n,
                None => return self.err(BencodeErrorKind::InvalidLength),
            };
        }
        let body_start = start + len + 1;
        let body_end = match body_start.checked_add(n) {
            Some(e) if e <= self.input.len() => e,
            _ => {
                return Err(BencodeError {
                    offset: body_start,
                    kind: BencodeErrorKind::UnexpectedEof,
                })
            }
        };
        self.pos = body_end;
        Ok(&self.input[start + len + 1..body_end])
    }
}

/// Tolerant decoding of the first value in `input`.
///
/// Returns the value and the number of bytes it used; bytes after it are
/// ignored. Accepts unsorted and duplicate keys and integers with leading
/// zeros; enforces [`MAX_DEPTH`] and that every length fits the input.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), BencodeError> {
    let mut p = Parser {
        input,
        pos: 0,
        strict: false,
        max_depth: MAX_DEPTH,
        lazy: None,
    };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

/// Tolerant decoding of a whole buffer whose first value is the document;
/// trailing bytes after the value are tolerated (real torrents have them).
pub fn decode(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    decode_prefix(input).map(|(v, _)| v)
}

/// Tolerant decoding like [`decode`], except that the list under `key` in
/// any dictionary at depth `dict_depth` (0 for the top level) is checked
/// but not decoded: it comes back as [`Value::LazyList`], to be read one
/// item at a time with [`list_items`]. A torrent's `files` list is read
/// so: a million files never exist as one tree of values.
pub fn decode_lazy<'a>(
    input: &'a [u8],
    key: &'a [u8],
    dict_depth: usize,
) -> Result<Value<'a>, BencodeError> {
    let mut p = Parser {
        input,
        pos: 0,
        strict: false,
        max_depth: MAX_DEPTH,
        lazy: Some((key, dict_depth)),
    };
    p.value(0)
}

/// The items of a list's raw bytes (`l...e`, as in [`Value::LazyList`]),
/// decoded one at a time; `depth` is the list's own depth. Yields an error
/// (and stops) where the bytes are not a well-formed list.
pub fn list_items(
    raw: &[u8],
    depth: usize,
) -> impl Iterator<Item = Result<Value<'_>, BencodeError>> {
    let mut p = Parser {
        input: raw,
        pos: 1,
        strict: false,
        max_depth: MAX_DEPTH,
        lazy: None,
    };
    let mut done = raw.first() != Some(&b'l');
    let mut first_error = done.then_some(BencodeError {
        offset: 0,
        kind: BencodeErrorKind::InvalidType(raw.first().copied().unwrap_or(0)),
    });
    std::iter::from_fn(move || {
        if let Some(e) = first_error.take() {
            return Some(Err(e));
        }
        if done {
            return None;
        }
        match p.peek() {
            Ok(b'e') => {
                done = true;
                None
            }
            Ok(_) => {
                let item = p.value(depth + 1);
                done = item.is_err();
                Some(item)
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// Strict (canonical) decoding of exactly one value filling `input`.
pub fn decode_strict(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    let (v, used) = decode_strict_prefix(input)?;
    if used != input.len() {
        return Err(BencodeError {
            offset: used,
            kind: BencodeErrorKind::TrailingData,
        });
    }
    Ok(v)
}

/// Strict decoding of the first value in `input`, returning the bytes used.
/// Used where a bencoded value is followed by raw data (BEP 9 `ut_metadata`).
pub fn decode_strict_prefix(input: &[u8]) -> Result<(Value<'_>, usize), BencodeError> {
    let mut p = Parser {
        input,
        pos: 0,
        strict: true,
        max_depth: MAX_DEPTH,
        lazy: None,
    };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

/// An owned bencode value, for building documents to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary; encoded with keys sorted, whatever the order here.
    Dict(Vec<(Vec<u8>, OwnedValue)>),
}

impl OwnedValue {
    /// A byte string from anything byte-like.
    pub fn bytes(b: impl AsRef<[u8]>) -> OwnedValue {
        OwnedValue::Bytes(b.as_ref().to_vec())
    }

    /// Canonical bencoding of this value (keys sorted, via `bendy`).
    pub fn to_bytes(&self) -> Vec<u8> {
        use bendy::encoding::ToBencode;
        // Encoding into a Vec cannot fail except for nesting deeper than
        // bendy's limit, which nothing we build reaches; fall back to our
        // own writer so this stays infallible.
        match ToBencode::to_bencode(self) {
            Ok(b) => b,
            Err(_) => {
                let mut out = Vec::new();
                self.write_canonical(&mut out);
                out
            }
        }
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            OwnedValue::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            OwnedValue::List(l) => {
                out.push(b'l');
                for v in l {
                    v.write_canonical(out);
                }
                out.push(b'e');
            }
            OwnedValue::Dict(d) => {
                let mut sorted: Vec<&(Vec<u8>, OwnedValue)> = d.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                sorted.dedup_by(|a, b| a.0 == b.0);
                out.push(b'd');
                for (k, v) in sorted {
                    out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                    out.extend_from_slice(k);
                    v.write_canonical(out);
                }
                out.push(b'e');
            }
        }
    }
}

impl bendy::encoding::ToBencode for OwnedValue {
    const MAX_DEPTH: usize = MAX_DEPTH;

    fn encode(
        &self,
        encoder: bendy::encoding::SingleItemEncoder,
    ) -> Result<(), bendy::encoding::Error> {
        match self {
            OwnedValue::Int(i) => encoder.emit_int(*i),
            OwnedValue::Bytes(b) => encoder.emit_bytes(b),
            OwnedValue::List(l) => encoder.emit_list(|e| {
                for v in l {
                    e.emit(v)?;
                }
                Ok(())
            }),
            OwnedValue::Dict(d) => encoder.emit_unsorted_dict(|e| {
                for (k, v) in d {
                    e.emit_pair(k, v)?;
                }
                Ok(())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_accepts_unsorted_and_trailing() {
        let v = decode(b"d1:bi1e1:ai2ee\n").unwrap();
        assert_eq!(v.get(b"a").and_then(Value::as_int), Some(2));
        assert!(decode_strict(b"d1:bi1e1:ai2ee").is_err());
        assert!(decode_strict(b"i1e\n").is_err());
    }

    #[test]
    fn dict_raw_span() {
        let input = b"d4:infod1:xi1eee";
        let v = decode(input).unwrap();
        let info = v.get(b"info").and_then(Value::as_dict).unwrap();
        assert_eq!(info.raw, b"d1:xi1ee");
    }

    #[test]
    fn depth_limit() {
        let mut deep = vec![b'l'; 1000];
        deep.extend(vec![b'e'; 1000]);
        assert_eq!(decode(&deep).unwrap_err().kind, BencodeErrorKind::TooDeep);
    }

    #[test]
    fn encode_sorts_keys() {
        let v = OwnedValue::Dict(vec![
            (b"b".to_vec(), OwnedValue::Int(1)),
            (b"a".to_vec(), OwnedValue::bytes("x")),
        ]);
        assert_eq!(v.to_bytes(), b"d1:a1:x1:bi1ee");
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The 41 edge cases of the shared corpus: strict verdicts must match.
    #[test]
    fn corpus_vectors_strict() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/bencode.tsv"
        ));
        let mut n = 0;
        for line in tsv.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let input = unhex(cols[1]);
            let ok = decode_strict(&input).is_ok();
            assert_eq!(
                ok,
                cols[2] == "ok",
                "strict verdict for {:?} ({})",
                cols[0],
                cols[5]
            );
            // The tolerant decoder never accepts what libtorrent calls an error.
            if cols[4] == "error" {
                assert!(decode(&input).is_err(), "tolerant accepted {:?}", cols[0]);
            }
            n += 1;
        }
        assert_eq!(n, 41);
    }

    #[test]
    fn lazy_list_is_read_item_by_item() {
        let doc = b"d4:infod5:filesld1:ai1eed1:ai2eee4:name1:xe5:filesli9eee";
        let v = decode_lazy(doc, b"files", 1).unwrap();
        // Only `files` in the dictionary at depth 1 is lazy.
        assert_eq!(v.get(b"files"), Some(&Value::List(vec![Value::Int(9)])));
        let info = v.get(b"info").unwrap();
        let Some(Value::LazyList { raw, depth }) = info.get(b"files") else {
            panic!("not lazy: {info:?}");
        };
        assert_eq!(*raw, &b"ld1:ai1eed1:ai2eee"[..]);
        assert_eq!(*depth, 2);
        let items: Vec<_> = list_items(raw, *depth).map(Result::unwrap).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].get(b"a"), Some(&Value::Int(2)));
        // The same document decoded whole gives the same values.
        let whole = decode(doc).unwrap();
        assert_eq!(
            whole.get(b"info").unwrap().get(b"files").unwrap().as_list(),
            Some(&items[..])
        );
        assert_eq!(
            info.as_dict().unwrap().raw,
            whole.get(b"info").unwrap().as_dict().unwrap().raw
        );
        // A lazy list is still checked: malformed or too deep is an error.
        assert!(decode_lazy(b"d5:filesli1e", b"files", 0).is_err());
        assert!(decode_lazy(b"d5:filesl1:e", b"files", 0).is_err());
        let mut deep = b"d5:files".to_vec();
        deep.extend(std::iter::repeat_n(b'l', MAX_DEPTH));
        deep.extend(std::iter::repeat_n(b'e', MAX_DEPTH));
        deep.push(b'e');
        assert_eq!(
            decode_lazy(&deep, b"files", 0).map(|_| ()),
            decode(&deep).map(|_| ())
        );
        assert!(decode(&deep).is_err());
        // Not a list: nothing.
        assert!(matches!(list_items(b"i1e", 0).next(), Some(Err(_))));
    }
}
