//! The events of an input file found at byte level, in the shapes `event::read_documents` reads
//! (a JSON array, a `value`/`records` envelope, one object, or NDJSON of those), without building
//! a `Value`: each event is a slice of the input, and its JSON is checked when it is rendered.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::DocumentError;
use crate::json::visit::scalars_give;

/// One item of the input: an event's JSON text and the input line it starts on (1 for the items
/// of a whole-file document), or why an item is unusable.
pub(crate) type Piece<'a> = Result<(&'a [u8], usize), DocumentError>;

/// Calls `f` on each item of `input` in order, as [`crate::event::read_documents`] finds them:
/// the whole input as one document first, else line by line. An NDJSON line holding one object
/// that cannot be an envelope is handed over as it is, without a parse here (rendering parses
/// it, strictly, once).
pub(crate) fn for_each<'a>(input: &'a [u8], mut f: impl FnMut(Piece<'a>)) {
    let trimmed = input.trim_ascii();
    if trimmed.is_empty() {
        return;
    }
    match parse(trimmed) {
        Ok(top) => return expand(trimmed, top, 1, &mut f),
        Err(e) if trimmed[0] == b'[' => {
            return f(Err(not_json(e.line(), &e)));
        }
        Err(_) => {}
    }
    for (i, line) in lines(input).enumerate() {
        let line_no = i + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if line[0] == b'{' && !may_be_envelope(line) {
            f(Ok((line, line_no)));
            continue;
        }
        match parse(line) {
            Ok(top) => expand(line, top, line_no, &mut f),
            Err(e) => f(Err(not_json(line_no, &e))),
        }
    }
}

/// Calls `f` on each message of `input`, for Event Hubs message bodies: the elements of a JSON
/// array, the whole input when it is one object, else each non-blank line. A message's JSON is
/// read by the Event Hubs decoder, which reports what is wrong with it.
pub(crate) fn for_each_message<'a>(input: &'a [u8], mut f: impl FnMut(Piece<'a>)) {
    let trimmed = input.trim_ascii();
    if trimmed.is_empty() {
        return;
    }
    match parse(trimmed) {
        Ok(Top::Array(items)) => {
            for item in items {
                f(Ok((item.get().as_bytes(), 1)));
            }
            return;
        }
        Ok(_) => return f(Ok((trimmed, 1))),
        Err(e) if trimmed[0] == b'[' => {
            return f(Err(not_json(e.line(), &e)));
        }
        Err(_) => {}
    }
    for (i, line) in lines(input).enumerate() {
        let line = line.trim_ascii();
        if !line.is_empty() {
            f(Ok((line, i + 1)));
        }
    }
}

/// The lines of `input` split at every LF, as `input.split(|b| *b == b'\n')` gives them.
fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', input)
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |end| {
            let end = end.unwrap_or(input.len());
            let line = &input[start..end];
            start = end + 1;
            line
        })
}

/// Whether the JSON object in `line` may be a `{"value":[…]}` / `{"records":[…]}` envelope:
/// `false` only when no top-level key is spelled `value` or `records` or holds an escape (which
/// could spell them). Strings are skipped whole, so braces inside them do not count. Invalid
/// JSON may get either answer: rendering rejects it anyway.
pub(crate) fn may_be_envelope(line: &[u8]) -> bool {
    let n = line.len();
    let mut depth = 0usize;
    let mut i = 0;
    while i < n {
        match line[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                loop {
                    match memchr::memchr2(b'"', b'\\', &line[j.min(n)..]) {
                        None => return true,
                        Some(p) if line[j + p] == b'\\' => {
                            escaped = true;
                            j += p + 2;
                        }
                        Some(p) => {
                            j += p;
                            break;
                        }
                    }
                }
                if depth == 1 {
                    let key = &line[start..j];
                    if escaped || key == b"value" || key == b"records" {
                        let next = line[j + 1..].iter().find(|b| !b.is_ascii_whitespace());
                        if next == Some(&b':') {
                            return true;
                        }
                    }
                }
                i = j + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    false
}

/// A document read for its shape only: values are checked for syntax and kept as text.
enum Top<'a> {
    Array(Vec<&'a RawValue>),
    /// An object; its `value` array, else its `records` array (the last occurrence of each key
    /// counts, as in a `Value`).
    Object(Option<Vec<&'a RawValue>>),
    /// Anything else, by its name ("a string", …).
    Scalar(&'static str),
}

/// The error of a document (or line) that is not JSON.
fn not_json(line: usize, e: &serde_json::Error) -> DocumentError {
    DocumentError {
        line,
        message: format!("not valid JSON: {e}"),
    }
}

fn parse(json: &[u8]) -> serde_json::Result<Top<'_>> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let top = de.deserialize_any(TopVisitor)?;
    de.end()?;
    Ok(top)
}

/// The items of the document `doc`, read as `top`.
fn expand<'a>(doc: &'a [u8], top: Top<'a>, line: usize, f: &mut impl FnMut(Piece<'a>)) {
    match top {
        Top::Array(items) | Top::Object(Some(items)) => {
            for item in items {
                let text = item.get();
                match type_name(text) {
                    "an object" => f(Ok((text.as_bytes(), line))),
                    found => f(Err(DocumentError {
                        line,
                        message: format!("expected an event object, found {found}"),
                    })),
                }
            }
        }
        Top::Object(None) => f(Ok((doc, line))),
        Top::Scalar(found) => f(Err(DocumentError {
            line,
            message: format!("expected a JSON object or array, found {found}"),
        })),
    }
}

/// The kind of a JSON text, in the words of `event::read_documents`.
pub(crate) fn type_name(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Scalar("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Scalar("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Scalar("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Scalar("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Scalar("a string"))
    }
    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::Scalar("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Top::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let (mut value, mut records) = (None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "value" => value = map.next_value_seed(MaybeArray)?,
                "records" => records = map.next_value_seed(MaybeArray)?,
                _ => {
                    map.next_value::<&'de RawValue>()?;
                }
            }
        }
        Ok(Top::Object(value.or(records)))
    }
}

/// A member's elements when it is an array, `None` for any other value.
struct MaybeArray;

impl<'de> DeserializeSeed<'de> for MaybeArray {
    type Value = Option<Vec<&'de RawValue>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MaybeArray {
    type Value = Option<Vec<&'de RawValue>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    scalars_give!(None);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Some(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, &'de RawValue>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
