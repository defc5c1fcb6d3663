//! The read-only view of one event that rendering works on: a parsed `serde_json::Value`, or the
//! values a single-pass scan of the JSON bytes collected (`scan.rs`). Both answer the same
//! questions (what is at this path, is it present, what is its text) with the same results.

use std::fmt::Write as _;

use serde_json::Value;

use super::path::Path;

/// What a path points at: a string (borrowed from the event bytes when it had no escapes), or any
/// other JSON value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    Str(&'a str),
    Val(&'a Value),
}

/// An event that paths rooted at the event can be resolved against.
pub(crate) trait Doc {
    /// The value at `p` (a path compiled from the mapping file), if every step exists.
    fn at(&self, p: &Path) -> Option<Node<'_>>;

    /// Every value `p` reaches, in order: one at most for a path without `[*]`.
    fn each<'a>(&'a self, p: &Path, f: &mut dyn FnMut(Node<'a>));
}

impl Doc for Value {
    #[inline]
    fn at(&self, p: &Path) -> Option<Node<'_>> {
        p.get(self).map(Node::Val)
    }

    fn each<'a>(&'a self, p: &Path, f: &mut dyn FnMut(Node<'a>)) {
        p.each_from(self, 0, &mut |v| f(Node::Val(v)));
    }
}

/// True when `v` would render as non-empty text.
pub(crate) fn is_present(v: Option<Node<'_>>) -> bool {
    match v {
        None => false,
        Some(Node::Str(s)) => !s.is_empty(),
        Some(Node::Val(v)) => value_is_present(v),
    }
}

fn value_is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(value_is_present),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// [`is_present`] for a plain JSON value (array elements, `select` results).
pub(crate) fn present_value(v: &Value) -> bool {
    value_is_present(v)
}

/// Text of a JSON value: strings borrowed, everything else written into `scratch`.
pub(crate) fn text_of<'a>(
    v: Option<Node<'a>>,
    join: &str,
    scratch: &'a mut String,
) -> Option<&'a str> {
    match v? {
        Node::Str(s) => Some(s),
        Node::Val(Value::Null) => None,
        Node::Val(Value::String(s)) => Some(s),
        Node::Val(Value::Bool(b)) => Some(if *b { "true" } else { "false" }),
        Node::Val(other) => {
            scratch.clear();
            append_value(other, join, scratch);
            Some(scratch.as_str())
        }
    }
}

/// Appends the text of `v`: arrays joined by `join` (nulls skipped), objects as compact JSON.
pub(crate) fn append(v: Node<'_>, join: &str, out: &mut String) {
    match v {
        Node::Str(s) => out.push_str(s),
        Node::Val(v) => append_value(v, join, out),
    }
}

fn append_value(v: &Value, join: &str, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Array(a) => {
            let mut first = true;
            for x in a.iter().filter(|x| value_is_present(x)) {
                if !first {
                    out.push_str(join);
                }
                first = false;
                match x {
                    Value::Array(_) | Value::Object(_) => {
                        let _ = write!(out, "{x}");
                    }
                    _ => append_value(x, join, out),
                }
            }
        }
        Value::Object(_) => {
            let _ = write!(out, "{v}");
        }
    }
}

/// Compares a JSON scalar with condition text: strings ASCII-case-insensitively, numbers and
/// booleans by value.
pub(crate) fn scalar_eq(v: Node<'_>, want: &str) -> bool {
    match v {
        Node::Str(s) => s.eq_ignore_ascii_case(want),
        Node::Val(v) => value_eq(v, want),
    }
}

/// [`scalar_eq`] for a plain JSON value.
pub(crate) fn value_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s.eq_ignore_ascii_case(want),
        Value::Number(n) => {
            if let (Some(a), Ok(b)) = (n.as_i64(), want.parse::<i64>()) {
                a == b
            } else {
                matches!((n.as_f64(), want.parse::<f64>()), (Some(a), Ok(b)) if a == b)
            }
        }
        Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        _ => false,
    }
}
