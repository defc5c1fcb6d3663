//! Byte-level text helpers shared by the CEF and LEEF encoders: truncation by characters that
//! never splits a UTF-8 sequence, and trimming of blanks. Every special character in either
//! format is ASCII, so scanning bytes is exact on valid UTF-8.

/// Space, C0 controls and DEL: what becomes (or is) a space on the wire and is trimmed at the ends.
#[inline]
pub(crate) fn is_blank(b: u8) -> bool {
    b <= 0x20 || b == 0x7f
}

/// The first `max_chars` characters of `s` (Unicode scalar values), cut on a char boundary.
#[inline]
pub(crate) fn truncate_chars(s: &str, max_chars: usize) -> &str {
    if s.len() <= max_chars {
        return s;
    }
    let mut seen = 0usize;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b & 0xC0 != 0x80 {
            if seen == max_chars {
                return &s[..i];
            }
            seen += 1;
        }
    }
    s
}

/// Truncates to `max_chars`, then trims trailing blanks (and `extra`, a byte that the encoder
/// will turn into a space). The result is what gets escaped; empty means "omit the key".
#[inline]
pub(crate) fn clip_value(s: &str, max_chars: usize, extra: u8) -> &str {
    let s = truncate_chars(s, max_chars);
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && (is_blank(b[end - 1]) || b[end - 1] == extra) {
        end -= 1;
    }
    &s[..end]
}

/// Header form: blanks trimmed at both ends, truncated, trailing blanks trimmed again.
#[inline]
pub(crate) fn clip_header(s: &str, max_chars: usize) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() && is_blank(b[start]) {
        start += 1;
    }
    clip_value(&s[start..], max_chars, b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_chars() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("😀😀😀", 2), "😀😀");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abc", 0), "");
    }

    #[test]
    fn clipping_trims_blanks() {
        assert_eq!(clip_value("ab \t\r\n", 100, b' '), "ab");
        assert_eq!(clip_value("  ab", 100, b' '), "  ab");
        assert_eq!(clip_value("ab^^", 100, b'^'), "ab");
        assert_eq!(clip_value("abc  def", 4, b' '), "abc");
        assert_eq!(clip_header("\n  x y \u{7f}", 100), "x y");
        assert_eq!(clip_header("   ", 100), "");
    }
}
