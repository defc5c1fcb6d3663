//! A strict JSON lexer for the hot paths (rendering an event, reading its id and time): it
//! walks UTF-8 text, skips values it is not asked for while still checking them, and hands out
//! strings borrowed from the input. It is deliberately partial: whatever it is not certain to
//! treat exactly as `serde_json::from_slice::<Value>` would — any syntax error, an exponent, a
//! very long number, an escaped key, a lone surrogate, nesting past [`MAX_DEPTH`] — makes it give
//! up with [`Bail`], and the caller runs its serde_json path instead, so errors and edge cases
//! stay serde_json's by construction. Non-string values that are kept are parsed by serde_json
//! from their validated span, so they are serde_json's own `Value`s too.
//!
//! Written by hand because no crate does this job: serde_json's tokenizer is the cost being
//! removed (its visitor machinery checks each byte of a 1.5 KB event one at a time), and the
//! SIMD parsers either need a mutable copy of the input, build a whole tape or tree, or do not
//! validate the parts of a document a lookup skips.

use std::borrow::Cow;

/// The lexer met something it leaves to serde_json (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

pub(crate) type Lexed<T> = Result<T, Bail>;

/// Deeper than this, serde_json decides (its own limit is 128).
pub(crate) const MAX_DEPTH: u32 = 100;

/// Longest number text taken here; longer ones may overflow `f64` and are left to serde_json.
const MAX_NUMBER: usize = 100;

/// A cursor over one JSON text.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Marks (high bit of each byte) the bytes of `v` that end a plain string run: `"`, `\` or a
/// control character. Bits above the first marked byte may be wrong; the first one is exact.
#[inline]
fn specials(v: u64) -> u64 {
    let quote = v ^ (ONES * b'"' as u64);
    let backslash = v ^ (ONES * b'\\' as u64);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let control = v.wrapping_sub(ONES * 0x20) & !v;
    (zero(quote) | zero(backslash) | control) & HIGHS
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            text,
            pos: 0,
            depth: 0,
        }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace and returns the next byte without taking it.
    #[inline]
    pub(crate) fn peek(&mut self) -> Lexed<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.pos) {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                _ => return Ok(c),
            }
        }
        Err(Bail)
    }

    /// Takes `c` (after whitespace), or bails.
    #[inline]
    pub(crate) fn expect(&mut self, c: u8) -> Lexed<()> {
        if self.peek()? == c {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Succeeds when only whitespace is left.
    pub(crate) fn end(&mut self) -> Lexed<()> {
        match self.peek() {
            Err(Bail) => Ok(()),
            Ok(_) => Err(Bail),
        }
    }

    /// Enters an object or array whose opening bracket is next.
    #[inline]
    pub(crate) fn open(&mut self, bracket: u8) -> Lexed<()> {
        self.expect(bracket)?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Bail);
        }
        Ok(())
    }

    /// After `{` or a member: whether another member follows (taking its `,`), or the object
    /// ends (taking its `}`). `first` is true right after `{`.
    #[inline]
    pub(crate) fn next_member(&mut self, first: bool) -> Lexed<bool> {
        self.next_item(first, b'}')
    }

    /// The same for arrays.
    #[inline]
    pub(crate) fn next_element(&mut self, first: bool) -> Lexed<bool> {
        self.next_item(first, b']')
    }

    #[inline]
    fn next_item(&mut self, first: bool, close: u8) -> Lexed<bool> {
        let c = self.peek()?;
        if c == close {
            self.pos += 1;
            self.depth -= 1;
            return Ok(false);
        }
        if !first {
            if c != b',' {
                return Err(Bail);
            }
            self.pos += 1;
        }
        Ok(true)
    }

    /// An object key and its `:`. Keys with escapes are left to serde_json.
    #[inline]
    pub(crate) fn key(&mut self) -> Lexed<&'a str> {
        match self.string()? {
            Cow::Borrowed(k) => {
                self.expect(b':')?;
                Ok(k)
            }
            Cow::Owned(_) => Err(Bail),
        }
    }

    /// A string value: borrowed when it has no escapes, unescaped otherwise.
    pub(crate) fn string(&mut self) -> Lexed<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = self.plain_run(start)?;
        if self.bytes()[end] == b'"' {
            self.pos = end + 1;
            return Ok(Cow::Borrowed(&self.text[start..end]));
        }
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(&self.text[start..end]);
        self.pos = end;
        loop {
            // At a `\` (plain_run stops only at `"`, `\` or a control character).
            if self.bytes()[self.pos] != b'\\' {
                return Err(Bail);
            }
            self.escape(Some(&mut out))?;
            let run = self.pos;
            let end = self.plain_run(run)?;
            out.push_str(&self.text[run..end]);
            self.pos = end;
            if self.bytes()[end] == b'"' {
                self.pos = end + 1;
                return Ok(Cow::Owned(out));
            }
        }
    }

    /// Checks a string (its `"` next) without keeping it.
    fn skip_string(&mut self) -> Lexed<()> {
        self.expect(b'"')?;
        loop {
            let end = self.plain_run(self.pos)?;
            self.pos = end;
            match self.bytes()[end] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.escape(None)?,
                _ => return Err(Bail),
            }
        }
    }

    /// The end of the run of plain string bytes from `from`: the index of the next `"`, `\`
    /// or control character; bails at the end of the input. Short runs (keys, most values)
    /// end within the first two words; longer ones are searched with `memchr`'s SIMD and then
    /// checked for control characters in one branch-free pass.
    #[inline]
    fn plain_run(&self, from: usize) -> Lexed<usize> {
        let b = self.bytes();
        let mut i = from;
        for _ in 0..2 {
            let Some(chunk) = b.get(i..i + 8) else {
                break;
            };
            let v = u64::from_le_bytes(chunk.try_into().map_err(|_| Bail)?);
            let m = specials(v);
            if m != 0 {
                return Ok(i + (m.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        let rest = b.get(i..).ok_or(Bail)?;
        let end = memchr::memchr2(b'"', b'\\', rest).ok_or(Bail)?;
        let run = &rest[..end];
        if run.iter().fold(false, |any, &c| any | (c < 0x20)) {
            let at = run.iter().position(|&c| c < 0x20).ok_or(Bail)?;
            return Ok(i + at);
        }
        Ok(i + end)
    }

    /// One escape sequence at `\`; appends what it stands for to `out` when given.
    fn escape(&mut self, out: Option<&mut String>) -> Lexed<()> {
        let b = self.bytes();
        let c = *b.get(self.pos + 1).ok_or(Bail)?;
        self.pos += 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                match hi {
                    0xD800..=0xDBFF => {
                        // Only a well-formed pair is taken here; serde_json decides the rest.
                        if b.get(self.pos) != Some(&b'\\') || b.get(self.pos + 1) != Some(&b'u') {
                            return Err(Bail);
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(Bail);
                        }
                        let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(cp).ok_or(Bail)?
                    }
                    0xDC00..=0xDFFF => return Err(Bail),
                    _ => char::from_u32(hi).ok_or(Bail)?,
                }
            }
            _ => return Err(Bail),
        };
        if let Some(out) = out {
            out.push(ch);
        }
        Ok(())
    }

    fn hex4(&mut self) -> Lexed<u32> {
        let digits = self.bytes().get(self.pos..self.pos + 4).ok_or(Bail)?;
        let mut v = 0u32;
        for &d in digits {
            let n = (d as char).to_digit(16).ok_or(Bail)?;
            v = v * 16 + n;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Checks a number without keeping it. Exponents and very long numbers are left to
    /// serde_json (they may be out of `f64`'s range, which it reports as an error).
    fn skip_number(&mut self) -> Lexed<()> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return Err(Bail),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !b.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(Bail);
            }
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) || i - start > MAX_NUMBER {
            return Err(Bail);
        }
        self.pos = i;
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Lexed<()> {
        if self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Checks the next value, whatever it is, without keeping it.
    pub(crate) fn skip(&mut self) -> Lexed<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                self.open(b'{')?;
                let mut first = true;
                while self.next_member(first)? {
                    first = false;
                    self.skip_string()?;
                    self.expect(b':')?;
                    self.skip()?;
                }
                Ok(())
            }
            b'[' => {
                self.open(b'[')?;
                let mut first = true;
                while self.next_element(first)? {
                    first = false;
                    self.skip()?;
                }
                Ok(())
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.skip_number(),
        }
    }

    /// The text of the next value, checked.
    pub(crate) fn span(&mut self) -> Lexed<&'a str> {
        self.peek()?;
        let start = self.pos;
        self.skip()?;
        Ok(&self.text[start..self.pos])
    }

    /// The next value as serde_json's own `Value` (parsed by serde_json from its checked
    /// span, so it is exactly the `Value` the whole document would hold there).
    pub(crate) fn value(&mut self) -> Lexed<serde_json::Value> {
        serde_json::from_str(self.span()?).map_err(|_| Bail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn skip_all(text: &str) -> Lexed<()> {
        let mut lx = Lexer::new(text);
        lx.skip()?;
        lx.end()
    }

    #[test]
    fn specials_finds_the_first_quote_backslash_or_control_byte() {
        for (s, at) in [
            ("abcdefgh", None),
            ("abc\"efgh", Some(3)),
            ("\\bcdefgh", Some(0)),
            ("abcdefg\u{1f}", Some(7)),
            ("a\tc\"efgh", Some(1)),
            ("\u{7f}é\u{1}wxyz", Some(3)),
        ] {
            let v = u64::from_le_bytes(s.as_bytes()[..8].try_into().unwrap());
            let m = specials(v);
            let found = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
            assert_eq!(found, at, "{s:?}");
        }
    }

    #[test]
    fn strings_are_borrowed_or_unescaped() {
        let mut lx = Lexer::new(r#""plain text, long enough to use words""#);
        assert!(matches!(
            lx.string(),
            Ok(Cow::Borrowed("plain text, long enough to use words"))
        ));
        let mut lx = Lexer::new(r#""a\"b\\c\/d\n\u00e9\ud83d\ude00 end of it""#);
        assert_eq!(lx.string().unwrap(), "a\"b\\c/d\né\u{1F600} end of it");
    }

    #[test]
    fn what_serde_json_may_see_otherwise_is_left_to_it() {
        for text in [
            r#""\ud800""#,
            r#""\udc00x""#,
            r#""\ud800\u0041""#,
            "\"tab\there\"",
            r#""\x""#,
            "1e5",
            "01",
            "-",
            "1.",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[1 2]",
            "tru",
            "nul",
            "\"unterminated",
            "{} {}",
            "",
        ] {
            assert_eq!(skip_all(text), Err(Bail), "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        assert_eq!(skip_all(&deep), Err(Bail));
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(skip_all(&ok), Ok(()));
    }

    fn json_like() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("0".to_owned()),
            Just("-12.50".to_owned()),
            Just("1e3".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
            Just(r#""\u00e9\n\"x\\""#.to_owned()),
            Just(r#""\ud83d\ude00""#.to_owned()),
            Just(r#""\udc00""#.to_owned()),
            Just("\"a\u{1}b\"".to_owned()),
            Just("\"é€😀\"".to_owned()),
        ];
        atom.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-c\\\\\"]{0,3}", inner), 0..6).prop_map(|v| {
                    let members: Vec<String> =
                        v.into_iter().map(|(k, x)| format!("{k:?} :{x}")).collect();
                    format!("{{ {} }}", members.join(" ,"))
                }),
            ]
        })
    }

    proptest! {
        /// Whatever the lexer accepts, serde_json accepts; and a `Value` read from a span is
        /// the `Value` serde_json builds for the whole text.
        #[test]
        fn accepted_means_serde_json_accepts(text in json_like(), cut in 0usize..200, junk in "[ -~]{0,2}") {
            let mut variants = vec![text.clone()];
            let at = text.char_indices().map(|(i, _)| i).nth(cut % (text.len() + 1)).unwrap_or(text.len());
            variants.push(format!("{}{}{}", &text[..at], junk, &text[at..]));
            variants.push(text[..at].to_owned());
            for t in variants {
                let ours = Lexer::new(&t).value().ok().filter(|_| skip_all(&t).is_ok());
                let theirs = serde_json::from_str::<serde_json::Value>(&t).ok();
                if let Some(v) = ours {
                    prop_assert_eq!(Some(v), theirs, "{:?}", t);
                }
            }
        }
    }
}
