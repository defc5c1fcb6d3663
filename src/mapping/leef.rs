//! LEEF 1.0/2.0 encoder per IBM's "Log Event Extended Format (LEEF)" documentation
//! (https://www.ibm.com/docs/en/dsm?topic=leef-overview). LEEF defines no escapes, so values are
//! made safe by substitution: the delimiter, each CRLF/CR/LF and other controls become one space;
//! `|` in header fields becomes `_`. `=` and `\` pass through (QRadar splits at the first `=`).

use super::text::{clip_header, clip_value};

/// IBM's EventID limit; applied to every LEEF header field.
pub(crate) const HEADER_MAX: usize = 255;

/// Writes `LEEF:1.0|` or `LEEF:2.0|`.
#[inline]
pub(crate) fn start(out: &mut Vec<u8>, v2: bool) {
    out.extend_from_slice(if v2 { b"LEEF:2.0|" } else { b"LEEF:1.0|" });
}

/// Writes one header field and its closing pipe; empty becomes `unknown`.
#[inline]
pub(crate) fn header_field(out: &mut Vec<u8>, s: &str) {
    let s = clip_header(s, HEADER_MAX);
    if s.is_empty() {
        out.extend_from_slice(b"unknown");
    } else {
        substitute(out, s, b'|', b'_');
    }
    out.push(b'|');
}

/// Writes the LEEF 2.0 delimiter field and its pipe: printable characters as themselves, others
/// as `xHH` (the form every LEEF 2.0 parser reads).
pub(crate) fn delimiter_field(out: &mut Vec<u8>, delim: u8) {
    if delim.is_ascii_graphic() {
        out.push(delim);
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.extend_from_slice(&[
            b'x',
            HEX[usize::from(delim >> 4)],
            HEX[usize::from(delim & 15)],
        ]);
    }
    out.push(b'|');
}

/// Writes `<delim>key=value` (no delimiter before the first pair). Returns false, writing nothing,
/// when the value is empty after truncation and trimming.
#[inline]
pub(crate) fn pair(
    out: &mut Vec<u8>,
    first: bool,
    delim: u8,
    key: &str,
    value: &str,
    max_chars: usize,
) -> bool {
    let v = clip_value(value, max_chars, delim);
    if v.is_empty() {
        return false;
    }
    if !first {
        out.push(delim);
    }
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    substitute(out, v, delim, b' ');
    true
}

/// Copies `s`, turning controls and DEL into a space (CRLF into one space), and `special`
/// into `with`.
#[inline]
fn substitute(out: &mut Vec<u8>, s: &str, special: u8, with: u8) {
    let b = s.as_bytes();
    let mut from = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c >= 0x20 && c != 0x7f && c != special {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[from..i]);
        out.push(if c == special { with } else { b' ' });
        i += if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        from = i;
    }
    out.extend_from_slice(&b[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str, delim: u8) -> String {
        let mut out = Vec::new();
        pair(&mut out, true, delim, "k", s, 4000);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values() {
        assert_eq!(val("a\tb", b'\t'), "k=a b");
        assert_eq!(val("a^b\tc", b'^'), "k=a b c");
        assert_eq!(val("l1\r\nl2\rl3\nl4", b'\t'), "k=l1 l2 l3 l4");
        assert_eq!(val(r"a=b\c|d", b'\t'), r"k=a=b\c|d");
        assert_eq!(val("x\u{0}\u{7f}😀", b'^'), "k=x  😀");
        assert_eq!(val("trail^^  ", b'^'), "k=trail");
    }

    #[test]
    fn header() {
        let mut out = Vec::new();
        start(&mut out, true);
        header_field(&mut out, "Micro|soft\n");
        delimiter_field(&mut out, b'^');
        delimiter_field(&mut out, b'\t');
        assert_eq!(out, b"LEEF:2.0|Micro_soft|^|x09|");
    }
}
