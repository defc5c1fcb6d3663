//! CEF encoder: header and extension escaping exactly per the ArcSight "Common Event Format (CEF) Implementation Standard"
//! (https://www.microfocus.com/documentation/arcsight/arcsight-smartconnectors/pdfdoc/common-event-format-v25/common-event-format-v25.pdf), written in one
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
    let mut i = 0;
    while i < b.len() {
        // Eight bytes at a time while none of them needs escaping (the common case).
        if let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !needs_work8(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        i += 1;
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
        out.extend_from_slice(&b[from..i - 1]);
        out.extend_from_slice(rep);
        from = i;
    }
    out.extend_from_slice(&b[from..]);
}

/// True when one of the eight bytes of `w` is a control, DEL, `\\` or `=` (may also say true
/// for a chunk that turns out clean: the byte loop then decides; it never says false wrongly).
#[inline]
fn needs_work8(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20, and bytes equal to 0x7f, `\\` or `=`.
    let below = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let eq = |c: u64| {
        let x = w ^ (ONES * c);
        x.wrapping_sub(ONES) & !x & HIGH
    };
    (below | eq(0x7f) | eq(u64::from(b'\\')) | eq(u64::from(b'='))) != 0
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
    fn chunked_scan_finds_every_special_byte() {
        // Each special byte at each position of a long clean run, and non-ASCII neighbours.
        for special in ["\\", "=", "\n", "\r", "\t", "\u{0}", "\u{7f}", "\u{1f}"] {
            for at in 0..20 {
                let s = format!("{}{special}{}é😀", "a".repeat(at), "b".repeat(19 - at));
                let mut want = Vec::new();
                for c in s.chars() {
                    match c {
                        '\\' => want.extend_from_slice(b"\\\\"),
                        '=' => want.extend_from_slice(b"\\="),
                        '\n' => want.extend_from_slice(b"\\n"),
                        '\r' => want.extend_from_slice(b"\\r"),
                        c if c.is_control() && c.is_ascii() => want.push(b' '),
                        c => want.extend_from_slice(c.to_string().as_bytes()),
                    }
                }
                let mut out = Vec::new();
                escape_value(&mut out, &s);
                assert_eq!(out, want, "{s:?}");
            }
        }
        for w in [
            u64::from_le_bytes(*b"abcdefgh"),
            u64::from_le_bytes(*b"\xff\xfe !~|ab"),
        ] {
            assert!(!needs_work8(w));
        }
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
