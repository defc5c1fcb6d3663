//! CEF encoder: header and extension escaping exactly per cef-leef.md §1.4 and §7, written in one
//! pass into the caller's buffer. Header: `\`→`\\`, `|`→`\|`, controls → space. Extension values:
//! `\`→`\\`, `=`→`\=`, LF→`\n`, CR→`\r`, other controls → space; `|` is never escaped.

use super::text::{clip_header, clip_value};

/// Dictionary limits of the six string header fields: vendor, product, version, class id, name.
pub(crate) const HEADER_MAX: [usize; 5] = [63, 63, 31, 1023, 512];

/// Writes `CEF:0|` — the caller then writes fields with [`header_field`].
#[inline]
pub(crate) fn start(out: &mut Vec<u8>) {
    out.extend_from_slice(b"CEF:0|");
}

/// Writes one header field and its closing pipe; empty (after trimming) becomes `unknown`.
#[inline]
pub(crate) fn header_field(out: &mut Vec<u8>, s: &str, max_chars: usize) {
    let s = clip_header(s, max_chars);
    if s.is_empty() {
        out.extend_from_slice(b"unknown");
    } else {
        escape_header(out, s);
    }
    out.push(b'|');
}

/// Escapes an already clipped header value.
fn escape_header(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'\\' => b"\\\\",
            b'|' => b"\\|",
            0..=0x1f | 0x7f => b" ",
            _ => continue,
        };
        out.extend_from_slice(&b[from..i]);
        out.extend_from_slice(rep);
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
}

/// Writes ` key=value` (no leading space for the first pair). Returns false, writing nothing,
/// when the value is empty after truncation and trimming.
#[inline]
pub(crate) fn pair(
    out: &mut Vec<u8>,
    first: bool,
    key: &str,
    value: &str,
    max_chars: usize,
) -> bool {
    let v = clip_value(value, max_chars, b' ');
    if v.is_empty() {
        return false;
    }
    if !first {
        out.push(b' ');
    }
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    escape_value(out, v);
    true
}

/// Escapes an extension value in one pass.
#[inline]
pub(crate) fn escape_value(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        if !NEEDS_WORK[c as usize] {
            continue;
        }
        let rep: &[u8] = match c {
            b'\\' => b"\\\\",
            b'=' => b"\\=",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b" ",
        };
        out.extend_from_slice(&b[from..i]);
        out.extend_from_slice(rep);
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
}

/// Bytes an extension value cannot carry as-is: controls, DEL, `\` and `=`.
static NEEDS_WORK: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[0x7f] = true;
    t[b'\\' as usize] = true;
    t[b'=' as usize] = true;
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(s: &str) -> String {
        let mut out = Vec::new();
        header_field(&mut out, s, 63);
        String::from_utf8(out).unwrap()
    }

    fn val(s: &str) -> String {
        let mut out = Vec::new();
        pair(&mut out, true, "k", s, 1023);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_escaping() {
        assert_eq!(hdr(r"a\b|c=d"), r"a\\b\|c=d|");
        assert_eq!(hdr("line1\r\nline2"), "line1  line2|");
        assert_eq!(hdr("  \t "), "unknown|");
        assert_eq!(hdr("x\u{0}y"), "x y|");
    }

    #[test]
    fn value_escaping() {
        assert_eq!(val(r"a\b"), r"k=a\\b");
        assert_eq!(val("a=b"), r"k=a\=b");
        assert_eq!(val("a|b"), "k=a|b");
        assert_eq!(val("l1\nl2\rl3"), r"k=l1\nl2\rl3");
        assert_eq!(val("t\tab\u{0}\u{7f}x"), "k=t ab  x");
        assert_eq!(
            val("  lead kept, trail dropped  "),
            "k=  lead kept, trail dropped"
        );
        assert_eq!(val("emoji 😀 ok"), "k=emoji 😀 ok");
        assert_eq!(val(r"\="), r"k=\\\=");
    }

    #[test]
    fn empty_values_are_omitted() {
        let mut out = b"x".to_vec();
        assert!(!pair(&mut out, false, "k", " \n\t", 10));
        assert_eq!(out, b"x");
    }

    #[test]
    fn truncation_before_escaping() {
        let mut out = Vec::new();
        pair(&mut out, true, "k", "ab=cd", 3);
        assert_eq!(out, br"k=ab\=");
        let mut out = Vec::new();
        pair(&mut out, true, "k", "é\\é\\", 2);
        assert_eq!(String::from_utf8(out).unwrap(), r"k=é\\");
    }
}
