//! Bounded line reading for the `files` source: a line is taken into memory only up to the
//! event size limit; a longer one is discarded up to its newline without being held, so one
//! oversized record costs at most the limit in memory and never stops the source.

use std::io::{BufRead, Read};

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// End of input: nothing was read.
    Eof,
    /// A line of at most the limit, in the buffer with its newline when it has one (a line
    /// without one is the last of the input, perhaps still being written).
    Read(usize),
    /// A line longer than the limit, consumed but not kept: `bytes` read in all, `ended` when
    /// its newline was reached (otherwise the input ended in the middle of it); `start`: its
    /// first bytes (at most 64, after leading blanks), to tell what it is.
    TooLong {
        bytes: u64,
        ended: bool,
        start: Vec<u8>,
    },
}

/// Reads one line into `buf` (cleared first), holding at most `limit` bytes plus the newline.
pub fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let n = (&mut *reader)
        .take(limit as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if n <= limit || buf.last() == Some(&b'\n') {
        return Ok(Line::Read(n));
    }
    let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let start = buf[blank..][..(buf.len() - blank).min(64)].to_vec();
    // Give the memory back at once: the next line is most likely a short one.
    *buf = Vec::new();
    let (rest, ended) = skip_line(reader)?;
    Ok(Line::TooLong {
        bytes: n as u64 + rest,
        ended,
        start,
    })
}

/// Discards input up to and including the next newline: (bytes consumed, newline reached).
pub fn skip_line(reader: &mut impl BufRead) -> std::io::Result<(u64, bool)> {
    let mut total = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((total, false));
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok((total + i as u64 + 1, true));
        }
        let len = buf.len();
        reader.consume(len);
        total += len as u64;
    }
}

/// Whether the input is one JSON document (array, envelope, or an object spread over lines)
/// rather than NDJSON: it starts with `[`, or with an object whose first line is not a
/// complete JSON value followed by more lines. Reads at most the first line, holding at most
/// `limit` bytes of it: a longer first line is one document when it opens an array or a
/// `{"records":…}` / `{"value":…}` envelope, and otherwise an oversized NDJSON record.
pub fn is_single_document(input: impl Read, limit: usize) -> std::io::Result<bool> {
    let mut reader = std::io::BufReader::new(input);
    let mut first = Vec::new();
    loop {
        match read_line(&mut reader, &mut first, limit)? {
            Line::Eof => return Ok(false),
            Line::Read(_) if first.iter().all(|b| b.is_ascii_whitespace()) => continue,
            Line::Read(_) => break,
            Line::TooLong { start, .. } => return Ok(opens_document(&start)),
        }
    }
    match first.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Ok(true),
        Some(b'{') => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&first).is_err() {
                return Ok(true); // a pretty-printed object
            }
            // A complete object on the first line: NDJSON if anything follows it.
            only_blank_after(&mut reader, limit)
        }
        _ => Ok(false),
    }
}

/// Whether a line starting with `start` opens an array or an envelope object.
fn opens_document(start: &[u8]) -> bool {
    match start.split_first() {
        Some((b'[', _)) => true,
        Some((b'{', rest)) => {
            let rest = rest.trim_ascii_start();
            rest.starts_with(b"\"records\"") || rest.starts_with(b"\"value\"")
        }
        _ => false,
    }
}

/// Whether nothing but blank lines follow.
fn only_blank_after(reader: &mut impl BufRead, limit: usize) -> std::io::Result<bool> {
    let mut rest = Vec::new();
    loop {
        match read_line(reader, &mut rest, limit)? {
            Line::Eof => return Ok(true),
            Line::Read(_) if rest.iter().all(|b| b.is_ascii_whitespace()) => continue,
            _ => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> Vec<(Line, Vec<u8>)> {
        let mut reader = std::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut buf, limit).unwrap();
            if line == Line::Eof {
                return out;
            }
            out.push((line, buf.clone()));
        }
    }

    #[test]
    fn lines_up_to_the_limit_are_read_and_longer_ones_skipped_to_their_newline() {
        let got = lines(b"12345\n123456\n1234567\nab\n", 6);
        assert_eq!(
            got,
            [
                (Line::Read(6), b"12345\n".to_vec()),
                (Line::Read(7), b"123456\n".to_vec()),
                (
                    Line::TooLong {
                        bytes: 8,
                        ended: true,
                        start: b"1234567".to_vec()
                    },
                    vec![]
                ),
                (Line::Read(3), b"ab\n".to_vec()),
            ]
        );
    }

    #[test]
    fn an_oversized_last_line_is_consumed_and_said_unfinished() {
        let got = lines(b"ab\n{xxxxxxxxxxxxxxxxxxxxxxx", 6);
        assert_eq!(
            got[1],
            (
                Line::TooLong {
                    bytes: 24,
                    ended: false,
                    start: b"{xxxxxx".to_vec()
                },
                vec![]
            )
        );
        // A last line within the limit is returned without newline, for the caller to judge.
        assert_eq!(lines(b"abc", 6), [(Line::Read(3), b"abc".to_vec())]);
    }

    #[test]
    fn skipping_resumes_where_a_previous_read_stopped() {
        let mut reader = std::io::BufReader::with_capacity(3, &b"xxxxxxx\nok\n"[..]);
        assert_eq!(skip_line(&mut reader).unwrap(), (8, true));
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut reader, &mut buf, 6).unwrap(), Line::Read(3));
        assert_eq!(skip_line(&mut reader).unwrap(), (0, false));
    }

    #[test]
    fn single_documents_and_ndjson_are_told_apart_within_the_limit() {
        let single = |s: &str, limit| is_single_document(s.as_bytes(), limit).unwrap();
        let big = "x".repeat(100);
        // An over-long first line: an array or an envelope is one document, any other object
        // an oversized NDJSON record, alone or not.
        assert!(single(&format!("[{{\"a\":\"{big}\"}}]"), 50));
        assert!(single(&format!("{{\"records\":[\"{big}\"]}}\n\n"), 50));
        assert!(single(&format!("{{ \"value\":[\"{big}\"]}}"), 50));
        assert!(!single(&format!("{{\"a\":\"{big}\"}}\n{{\"a\":1}}\n"), 50));
        assert!(!single(&format!("{{\"a\":\"{big}\"}}"), 50));
        assert!(
            !single(&format!("{big}\n"), 50),
            "garbage is not a document"
        );
        // Within the limit, the usual rules.
        assert!(single("{\n  \"value\": []\n}\n", 50));
        assert!(!single("{\"a\":1}\n{\"a\":2}\n", 50));
    }
}
