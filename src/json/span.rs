//! Where a JSON value ends, found without parsing it: for splitting a document into the
//! records it holds (Event Hubs messages, storage archive blobs) and for stepping over what
//! the mapping walk does not need (`mapping::scan::walk`).

/// Where the JSON value starting at `b[i]` ends (the index after it), found by its quotes and
/// brackets alone: a well-formed value's brackets balance, and only strings can hide one.
/// Nothing is checked. `None` when the value does not end within `b` (a part of a document
/// still being read, or not JSON). Strings are crossed by `memchr` for the next quote or
/// backslash.
pub(crate) fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    let string = |i: usize| -> Option<usize> {
        let mut i = i + 1;
        loop {
            i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
            if b[i] == b'"' {
                return Some(i + 1);
            }
            i += 2;
        }
    };
    match *b.get(i)? {
        b'"' => string(i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = string(i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while let Some(c) = b.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::value_end;

    #[test]
    fn values_end_where_their_brackets_balance_outside_strings() {
        let doc = br#"{"a":"}]\"{","b":[1,{"c":"\\"}]} , 7"#;
        let end = value_end(doc, 0).unwrap();
        assert_eq!(&doc[..end], &br#"{"a":"}]\"{","b":[1,{"c":"\\"}]}"#[..]);
        assert_eq!(value_end(doc, doc.len() - 1), Some(doc.len()));
        assert_eq!(value_end(b"\"x\\\"y\" ", 0), Some(6));
        assert_eq!(value_end(b"true]", 0), Some(4));
        // Not within the bytes: every cut of the object, including inside an escape.
        for cut in 0..end {
            assert_eq!(value_end(&doc[..cut], 0), None, "cut at {cut}");
        }
        assert_eq!(value_end(b"]", 0), None);
        assert_eq!(value_end(b"", 0), None);
    }
}
