//! A hand-written walk of JSON bytes along a plan's trie, faster than driving serde_json's
//! deserializer over every byte, in two modes:
//!
//! - [`scan_checked`], for event bodies already checked as JSON when they entered the spool
//!   (spool event format 2, `EventView::checked`): what no path reaches is stepped over by its
//!   brackets and quotes alone, nothing is checked again. This is the sender's render scan.
//! - [`scan_checking`], for bytes not checked yet (the sources' id and time read): every byte
//!   is checked, and the walk answers only when it is sure serde_json's `Value` parse accepts
//!   the input; whatever it is not sure of (an exponent, a `\u` escape of a surrogate, nesting
//!   deeper than [`MAX_DEPTH`], any error) makes it answer `None`, and the caller falls back to
//!   serde_json's own parse, which decides exactly and words the error. [`top_members`] walks
//!   the envelope of an API page or an Event Hubs message in this mode, handing each record to
//!   a read of its own ([`scan_checking_at`]) that checks it and finds where it ends.
//!
//! Guarantee: where either scan answers on input that `serde_json::from_slice::<Value>`
//! accepts, the result is exactly [`super::scan`]'s; `scan_checking` never answers on input
//! serde_json rejects. Values a path captures are handed to serde_json itself (a `Value`, or a
//! string with escapes), so numbers and escapes are decoded by the same code as before. The
//! differential and property tests (`tests/it/mapping/json.rs`, `event::ident`) compare the
//! modes with serde_json on the same inputs, valid and broken. On input that is not JSON,
//! `scan_checked` answers `None` or some result, never panics; there is no `unsafe` here.
//!
//! Written by hand because no JSON crate walks a document by a set of paths while stepping over
//! the rest without building it; serde_json's visitors (the previous scan) cost about twice as
//! many instructions per byte for the same work (`benches/README.md`).

use std::borrow::Cow;

use serde_json::Value;

use super::{Leaf, Plan, Scanned};
use crate::json::span::value_end;

/// The deepest nesting the checking walk answers for (serde_json's `Value` parse refuses
/// nesting deeper than 128; deeper than this, the caller's fallback decides).
pub(crate) const MAX_DEPTH: u32 = 100;

/// Scans `json`, a body checked at ingest, keeping the values `plan` needs. `None` when the
/// bytes turn out not to be well-formed (the caller then scans them with full checks).
pub(crate) fn scan_checked<'p, 'de>(plan: &'p Plan, json: &'de [u8]) -> Option<Scanned<'p, 'de>> {
    // A checked body is UTF-8; checking it once as a whole (fast) makes every slice between
    // two ASCII delimiters a `&str` without a check per value.
    let text = std::str::from_utf8(json).ok()?;
    walk::<false>(plan, text)
}

/// Scans `json`, checking every byte: `Some` only when serde_json's `Value` parse surely
/// accepts it, with what [`super::scan`] would give.
pub(crate) fn scan_checking<'p, 'de>(plan: &'p Plan, json: &'de [u8]) -> Option<Scanned<'p, 'de>> {
    scan_checking_text(plan, std::str::from_utf8(json).ok()?)
}

/// [`scan_checking`] of bytes already known to be UTF-8 (not checked again).
pub(crate) fn scan_checking_text<'p, 'de>(
    plan: &'p Plan,
    text: &'de str,
) -> Option<Scanned<'p, 'de>> {
    walk::<true>(plan, text)
}

/// [`scan_checking_text`] of the JSON value that starts at byte `at` of `text`: what it found,
/// and where the value ends (what follows is not looked at).
pub(crate) fn scan_checking_at<'p, 'de>(
    plan: &'p Plan,
    text: &'de str,
    at: usize,
) -> Option<(Scanned<'p, 'de>, usize)> {
    walk_at::<true>(plan, text, at)
}

fn walk<'p, 'de, const CHECK: bool>(plan: &'p Plan, text: &'de str) -> Option<Scanned<'p, 'de>> {
    let at = text.len() - text.trim_start_matches([' ', '\t', '\n', '\r']).len();
    let (doc, end) = walk_at::<CHECK>(plan, text, at)?;
    let rest = &text.as_bytes()[end..];
    rest.iter()
        .all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        .then_some(doc)
}

/// Walks the value at byte `at` of `text`; answers where it ends.
fn walk_at<'p, 'de, const CHECK: bool>(
    plan: &'p Plan,
    text: &'de str,
    at: usize,
) -> Option<(Scanned<'p, 'de>, usize)> {
    let json = text.as_bytes();
    let mut slots = Vec::with_capacity(plan.slots as usize);
    slots.resize_with(plan.slots as usize, || None);
    let mut walk = Walk::<CHECK> {
        plan,
        text,
        b: json,
        i: at,
        depth: 0,
        slots: &mut slots,
    };
    let root = match *walk.b.get(walk.i)? {
        b'{' => {
            walk.object(Some(0))?;
            "an object"
        }
        b'[' => {
            walk.array(Some(0))?;
            "an array"
        }
        b'"' => {
            walk.string()?;
            "a string"
        }
        b't' | b'f' => {
            walk.scalar()?;
            "a boolean"
        }
        b'n' => {
            walk.scalar()?;
            "null"
        }
        _ => {
            walk.scalar()?;
            "a number"
        }
    };
    let end = walk.i;
    Some((Scanned { plan, slots, root }, end))
}

/// A cursor over the bytes, and the slots the trie's captures fill.
struct Walk<'s, 'de, const CHECK: bool> {
    plan: &'s Plan,
    /// The whole input, as text (`b` is its bytes).
    text: &'de str,
    b: &'de [u8],
    i: usize,
    depth: u32,
    slots: &'s mut Vec<Option<Leaf<'de>>>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of `x` that is below `n` (`n` ≤ 128); exact for the lowest such byte.
#[inline]
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
}

/// Bit 7 of each byte of `x` equal to `c`; exact for the lowest such byte.
#[inline]
fn equal(x: u64, c: u8) -> u64 {
    below(x ^ (ONES * u64::from(c)), 1)
}

impl<'de, const CHECK: bool> Walk<'_, 'de, CHECK> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Option<()> {
        (*self.b.get(self.i)? == c).then(|| self.i += 1)
    }

    /// The text of bytes `a..b`, which lie between ASCII delimiters.
    #[inline]
    fn str_at(&self, a: usize, b: usize) -> Option<&'de str> {
        self.text.get(a..b)
    }

    /// Moves the cursor to the next `"` or `\` (in the checking mode: or control character)
    /// of the string it is in: by `memchr`, or in the checking mode eight bytes at a time.
    #[inline]
    fn seek_special(&mut self) -> Option<u8> {
        if !CHECK {
            self.i += memchr::memchr2(b'"', b'\\', self.b.get(self.i..)?)?;
            return Some(self.b[self.i]);
        }
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().ok()?);
            let mut hits = equal(x, b'"') | equal(x, b'\\');
            if CHECK {
                hits |= below(x, 0x20);
            }
            if hits != 0 {
                self.i += (hits.trailing_zeros() / 8) as usize;
                return Some(self.b[self.i]);
            }
            self.i += 8;
        }
        loop {
            let c = *self.b.get(self.i)?;
            if c == b'"' || c == b'\\' || (CHECK && c < 0x20) {
                return Some(c);
            }
            self.i += 1;
        }
    }

    /// Steps over the string at the cursor; answers whether it holds an escape.
    #[inline]
    fn string(&mut self) -> Option<bool> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            match self.seek_special()? {
                b'"' => {
                    self.i += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    if CHECK {
                        self.escape()?;
                    } else {
                        self.i += 2;
                    }
                }
                // A control character: serde_json refuses it inside a string.
                _ => return None,
            }
        }
    }

    /// Checks the escape at the cursor (`\` and what follows) and steps over it. A `\u` escape
    /// of a surrogate is left to serde_json (it pairs them, and refuses lone ones).
    fn escape(&mut self) -> Option<()> {
        match *self.b.get(self.i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.i += 2;
                Some(())
            }
            b'u' => {
                let hex = std::str::from_utf8(self.b.get(self.i + 2..self.i + 6)?).ok()?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                let unit = u16::from_str_radix(hex, 16).ok()?;
                if (0xD800..=0xDFFF).contains(&unit) {
                    return None;
                }
                self.i += 6;
                Some(())
            }
            _ => None,
        }
    }

    /// Steps over a number, `true`, `false` or `null`. The checking mode takes only what it is
    /// sure of: the literals, and numbers without an exponent and with at most 300 digits
    /// before the point (so never out of `f64`'s range).
    #[inline]
    fn scalar(&mut self) -> Option<()> {
        let start = self.i;
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
        let token = self.b.get(start..self.i)?;
        if CHECK {
            return match token {
                b"true" | b"false" | b"null" => Some(()),
                _ => number(token),
            };
        }
        (!token.is_empty()).then_some(())
    }

    /// Steps over any value.
    fn skip(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' if CHECK => self.object(None),
            b'[' if CHECK => self.array(None),
            _ if CHECK => self.scalar(),
            _ => {
                self.i = value_end(self.b, self.i)?;
                Some(())
            }
        }
    }

    /// The value at the cursor, captured whole as [`super::Capture`] keeps it.
    fn capture(&mut self) -> Option<Leaf<'de>> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'"') {
            let escaped = self.string()?;
            return Some(if escaped {
                let whole = self.str_at(start, self.i)?;
                Leaf::Str(Cow::Owned(serde_json::from_str::<String>(whole).ok()?))
            } else {
                Leaf::Str(Cow::Borrowed(self.str_at(start + 1, self.i - 1)?))
            });
        }
        self.skip()?;
        let whole = self.str_at(start, self.i)?;
        Some(Leaf::Val(serde_json::from_str::<Value>(whole).ok()?))
    }

    /// The child `c` of a node gets a new value: what an earlier one collected is forgotten
    /// (a duplicate key: the last one wins), then it is captured or walked.
    fn child(&mut self, c: u32) -> Option<()> {
        let n = &self.plan.nodes[c as usize];
        for s in &mut self.slots[n.span.0 as usize..n.span.1 as usize] {
            *s = None;
        }
        match n.slot {
            Some(slot) => {
                let leaf = self.capture()?;
                self.slots[slot as usize] = Some(leaf);
                Some(())
            }
            None => match *self.b.get(self.i)? {
                b'{' => self.object(Some(c)),
                b'[' => self.array(Some(c)),
                _ => self.skip(),
            },
        }
    }

    /// One level deeper; the checking mode gives up past [`MAX_DEPTH`].
    #[inline]
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (!CHECK || self.depth <= MAX_DEPTH).then_some(())
    }

    /// The object at the cursor, at trie node `node` (none: every member is skipped).
    fn object(&mut self, node: Option<u32>) -> Option<()> {
        self.expect(b'{')?;
        self.enter()?;
        self.ws();
        if self.expect(b'}').is_none() {
            loop {
                self.ws();
                let start = self.i;
                let escaped = self.string()?;
                let pick = match node {
                    None => None,
                    Some(n) if escaped => {
                        let key = serde_json::from_str::<String>(self.str_at(start, self.i)?);
                        self.plan.pick(n, &key.ok()?)
                    }
                    Some(n) => self.plan.pick_bytes(n, self.b.get(start + 1..self.i - 1)?),
                };
                self.ws();
                self.expect(b':')?;
                self.ws();
                match pick {
                    Some(c) => self.child(c)?,
                    None => self.skip()?,
                }
                self.ws();
                match *self.b.get(self.i)? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// The array at the cursor, at trie node `node` (none: every element is skipped).
    fn array(&mut self, node: Option<u32>) -> Option<()> {
        self.expect(b'[')?;
        self.enter()?;
        self.ws();
        if self.expect(b']').is_none() {
            let plan = self.plan;
            let indices = node.map_or(&[][..], |n| &plan.nodes[n as usize].indices[..]);
            let mut i = 0usize;
            loop {
                self.ws();
                match indices.iter().find(|(ii, _)| *ii == i).map(|(_, c)| *c) {
                    Some(c) => self.child(c)?,
                    None => self.skip()?,
                }
                self.ws();
                match *self.b.get(self.i)? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
                i += 1;
            }
        }
        self.depth -= 1;
        Some(())
    }
}

/// The byte ranges of the elements of the array that is member `key` of the JSON object
/// `text` (an Event Hubs message's `records`), each element stepped over by `element` (see
/// [`top_members`]), which checks it and reads it on the way. Everything else is checked as
/// [`scan_checking`] checks it, and `None` whenever serde_json might read the object otherwise:
/// `key` missing, repeated or spelled with an escape, its value not an array, or anything the
/// checking walk leaves to serde_json.
pub(crate) fn array_member_elements(
    text: &str,
    key: &str,
    element: &mut dyn FnMut(usize) -> Option<usize>,
) -> Option<Vec<(usize, usize)>> {
    let mut found = None;
    for member in top_members(text, key, element)? {
        if member.key == key {
            match (member.value, &found) {
                (TopValue::Elements(spans), None) => found = Some(spans),
                _ => return None,
            }
        }
    }
    found
}

/// One member of a top-level object, as [`top_members`] found it.
#[derive(Debug)]
pub(crate) struct TopMember<'a> {
    /// The key as written (the walk gives up on a key with an escape).
    pub key: &'a str,
    pub value: TopValue,
}

/// The value of a [`TopMember`].
#[derive(Debug, PartialEq)]
pub(crate) enum TopValue {
    /// The array of the member named `elements_of`: the byte ranges of its elements, as
    /// [`top_members`]'s `element` found them.
    Elements(Vec<(usize, usize)>),
    /// A string: the byte range of its text with the quotes, and whether it holds an escape.
    Text { span: (usize, usize), escaped: bool },
    /// Anything else.
    Other,
}

/// The members of the JSON object `text`, in order (a repeated key each time). The elements of
/// the arrays of members named `elements_of` are stepped over by `element`, given where one
/// starts and answering where it ends (`None`: give up), which checks them as far as the
/// caller needs. Everything else is checked as [`scan_checking`] checks it: `None` when `text`
/// is not an object, when a key holds an escape, or on anything the checking walk leaves to
/// serde_json.
pub(crate) fn top_members<'a>(
    text: &'a str,
    elements_of: &str,
    element: &mut dyn FnMut(usize) -> Option<usize>,
) -> Option<Vec<TopMember<'a>>> {
    let plan = Plan::default();
    let mut slots = Vec::new();
    let mut w = Walk::<true> {
        plan: &plan,
        text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
        slots: &mut slots,
    };
    let mut members = Vec::new();
    w.ws();
    w.expect(b'{')?;
    w.enter()?;
    w.ws();
    if w.expect(b'}').is_none() {
        loop {
            w.ws();
            let start = w.i;
            if w.string()? {
                return None;
            }
            let key = text.get(start + 1..w.i - 1)?;
            w.ws();
            w.expect(b':')?;
            w.ws();
            let at = w.i;
            let value = match *w.b.get(at)? {
                b'[' if key == elements_of => TopValue::Elements(w.elements(element)?),
                b'"' => {
                    let escaped = w.string()?;
                    TopValue::Text {
                        span: (at, w.i),
                        escaped,
                    }
                }
                _ => {
                    w.skip()?;
                    TopValue::Other
                }
            };
            members.push(TopMember { key, value });
            w.ws();
            match *w.b.get(w.i)? {
                b',' => w.i += 1,
                b'}' => {
                    w.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    w.ws();
    (w.i == text.len()).then_some(members)
}

impl Walk<'_, '_, true> {
    /// The byte ranges of the elements of the array at the cursor, each stepped over by
    /// `element` (see [`top_members`]).
    fn elements(
        &mut self,
        element: &mut dyn FnMut(usize) -> Option<usize>,
    ) -> Option<Vec<(usize, usize)>> {
        self.expect(b'[')?;
        self.ws();
        let mut spans = Vec::new();
        if self.expect(b']').is_some() {
            return Some(spans);
        }
        loop {
            self.ws();
            let start = self.i;
            self.i = element(start).filter(|&end| end > start && end <= self.b.len())?;
            spans.push((start, self.i));
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(spans);
                }
                _ => return None,
            }
        }
    }
}

/// Whether `token` is a JSON number serde_json surely parses to a finite value: JSON's grammar
/// (`-? (0 | [1-9][0-9]*) (. [0-9]+)?`) without an exponent, at most 300 digits before the point.
fn number(token: &[u8]) -> Option<()> {
    let digits = |t: &[u8]| t.iter().take_while(|c| c.is_ascii_digit()).count();
    let t = token.strip_prefix(b"-").unwrap_or(token);
    let int = digits(t);
    if int == 0 || int > 300 || (int > 1 && t[0] == b'0') {
        return None;
    }
    match &t[int..] {
        [] => Some(()),
        [b'.', frac @ ..] if !frac.is_empty() && digits(frac) == frac.len() => Some(()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_taken_only_when_sure() {
        for ok in ["0", "-0", "7", "-12", "0.5", "-3.25", "10.0"] {
            assert!(number(ok.as_bytes()).is_some(), "{ok}");
            assert!(
                serde_json::from_str::<serde_json::Value>(ok).is_ok(),
                "{ok}"
            );
        }
        for unsure in [
            "", "-", "01", "1.", ".5", "1e5", "1E-2", "+1", "1.2.3", "0x1", "--1",
        ] {
            assert!(number(unsure.as_bytes()).is_none(), "{unsure}");
        }
        let long = "9".repeat(300);
        assert!(number(long.as_bytes()).is_some());
        assert!(serde_json::from_str::<serde_json::Value>(&long).is_ok());
        assert!(number("9".repeat(301).as_bytes()).is_none());
    }
}
