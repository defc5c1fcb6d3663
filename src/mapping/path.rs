//! Small JSON paths compiled once at load: `a.b[0].c`, `claims["http://x/upn"]`, optional `$.`,
//! and in a field's `path` every element of an array, `alerts[*].id`.
//! Lookup is a walk over pre-split segments with no allocation; templates (`"{a.b} on {c}"`) are
//! split into literal text and paths here too.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(Box<str>),
    Index(usize),
    /// `[*]`: every element of an array (a path with one reaches many values).
    Each,
}

/// A compiled path into a JSON event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    segs: Box<[Seg]>,
    text: Box<str>,
    /// Index into the mapping's scan plan (see `scan.rs`), set once after compilation for paths
    /// rooted at the event; [`Path::UNPLANNED`] for paths relative to an array element.
    pub(crate) id: u32,
}

/// Why a path did not compile; `offset` is the byte offset inside the path text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

impl Path {
    /// Compiles `text`. Grammar: `[$ [.]] seg (('.' name) | '[' digits ']' | '["' quoted '"]')*`
    /// where a name is any run of characters other than `.`, `[`, `]`, `"` and whitespace.
    /// `[*]` is refused: only a field's `path` may reach many values ([`Path::parse_each`]).
    pub(crate) fn parse(text: &str) -> Result<Path, PathError> {
        let p = Path::parse_each(text)?;
        match p.segs.iter().position(|s| *s == Seg::Each) {
            Some(_) => Err(PathError {
                offset: text.find("[*]").unwrap_or(0),
                message: "'[*]' (every element) is allowed only in a field's `path`".into(),
            }),
            None => Ok(p),
        }
    }

    /// The path of object keys `keys` from the top of the event (any key text).
    pub(crate) fn of_keys(keys: &[&str]) -> Path {
        Path {
            segs: keys.iter().map(|k| Seg::Key((*k).into())).collect(),
            text: keys.join(".").into(),
            id: Path::UNPLANNED,
        }
    }

    /// [`Path::parse`], also taking `[*]` steps: every element of an array.
    pub(crate) fn parse_each(text: &str) -> Result<Path, PathError> {
        let err = |offset: usize, message: &str| PathError {
            offset,
            message: message.into(),
        };
        let b = text.as_bytes();
        let mut i = 0;
        let mut segs = Vec::new();
        if b.first() == Some(&b'$') {
            i = 1;
            if i == b.len() {
                return Err(err(0, "the path '$' selects the whole event; name a field"));
            }
        }
        let mut expect_name = i == 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    if expect_name && i != 1 {
                        return Err(err(i, "empty path segment (two dots, or a leading dot)"));
                    }
                    i += 1;
                    expect_name = true;
                    if i == b.len() {
                        return Err(err(i - 1, "the path ends with '.'"));
                    }
                }
                b'[' => {
                    if expect_name && !segs.is_empty() {
                        return Err(err(i, "'[' cannot follow '.'; write a[0] or a[\"key\"]"));
                    }
                    if b.get(i + 1) == Some(&b'"') {
                        let start = i + 2;
                        let Some(rel) = text[start..].find('"') else {
                            return Err(err(i, "unterminated quoted key; close it with \"]"));
                        };
                        let end = start + rel;
                        if b.get(end + 1) != Some(&b']') {
                            return Err(err(end + 1, "expected ']' after the quoted key"));
                        }
                        if end == start {
                            return Err(err(i, "empty quoted key"));
                        }
                        segs.push(Seg::Key(text[start..end].into()));
                        i = end + 2;
                    } else if text[i..].starts_with("[*]") {
                        segs.push(Seg::Each);
                        i += 3;
                    } else {
                        let start = i + 1;
                        let Some(rel) = text[start..].find(']') else {
                            return Err(err(i, "unterminated '['; close it with ']'"));
                        };
                        let digits = &text[start..start + rel];
                        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                            return Err(err(
                                start,
                                "array index must be a number or *; quote keys as [\"key\"]",
                            ));
                        }
                        let Ok(n) = digits.parse::<usize>() else {
                            return Err(err(start, "array index is too large"));
                        };
                        segs.push(Seg::Index(n));
                        i = start + rel + 1;
                    }
                    expect_name = false;
                }
                _ => {
                    if !expect_name {
                        return Err(err(i, "expected '.' or '[' between path segments"));
                    }
                    let start = i;
                    while i < b.len() && !matches!(b[i], b'.' | b'[' | b']' | b'"') {
                        if b[i].is_ascii_whitespace() {
                            return Err(err(
                                i,
                                "whitespace in a path; quote such keys as [\"key name\"]",
                            ));
                        }
                        i += 1;
                    }
                    if i < b.len() && matches!(b[i], b']' | b'"') {
                        return Err(err(i, "unexpected character in a path"));
                    }
                    segs.push(Seg::Key(text[start..i].into()));
                    expect_name = false;
                }
            }
        }
        if segs.is_empty() {
            return Err(err(0, "empty path"));
        }
        Ok(Path {
            segs: segs.into(),
            text: text.into(),
            id: Path::UNPLANNED,
        })
    }

    /// `id` of a path that has no entry in a scan plan.
    pub(crate) const UNPLANNED: u32 = u32::MAX;

    /// The steps of this path.
    pub(crate) fn segs(&self) -> &[Seg] {
        &self.segs
    }

    /// The steps up to the first `[*]` (all of them when there is none): what one value of
    /// the event holds every value this path reaches.
    pub(crate) fn single_segs(&self) -> &[Seg] {
        let end = self
            .segs
            .iter()
            .position(|s| *s == Seg::Each)
            .unwrap_or(self.segs.len());
        &self.segs[..end]
    }

    /// True when the path has a `[*]` step and so reaches any number of values.
    pub(crate) fn fans_out(&self) -> bool {
        self.single_segs().len() < self.segs.len()
    }

    /// Calls `f` on every value the steps of this path from `skip` on reach from `v`, in order:
    /// a `[*]` step goes into each element of an array (nothing when it is not one).
    pub(crate) fn each_from<'a>(&self, v: &'a Value, skip: usize, f: &mut dyn FnMut(&'a Value)) {
        let Some(rest) = self.segs.get(skip..) else {
            return;
        };
        let mut v = v;
        for (i, s) in rest.iter().enumerate() {
            v = match (s, v) {
                (Seg::Key(k), Value::Object(m)) => match m.get(&**k) {
                    Some(x) => x,
                    None => return,
                },
                (Seg::Index(n), Value::Array(a)) => match a.get(*n) {
                    Some(x) => x,
                    None => return,
                },
                (Seg::Each, Value::Array(a)) => {
                    for item in a {
                        self.each_from(item, skip + i + 1, f);
                    }
                    return;
                }
                _ => return,
            };
        }
        f(v);
    }

    /// The value at this path, if every step exists.
    #[inline]
    pub(crate) fn get<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.get_from(v, 0)
    }

    /// The value at the steps of this path from `skip` on, starting at `v`.
    #[inline]
    pub(crate) fn get_from<'a>(&self, mut v: &'a Value, skip: usize) -> Option<&'a Value> {
        for s in self.segs.get(skip..)?.iter() {
            v = match (s, v) {
                (Seg::Key(k), Value::Object(m)) => m.get(&**k)?,
                (Seg::Index(n), Value::Array(a)) => a.get(*n)?,
                // Many values: see `each_from`.
                _ => return None,
            };
        }
        Some(v)
    }

    /// The path as written in the mapping file.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(Box<str>),
    Path(Path),
}

/// Splits `"text {path} text"`; `{{` and `}}` are literal braces.
pub(crate) fn parse_template(text: &str) -> Result<Vec<Part>, PathError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                lit.push('{');
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                lit.push('}');
                i += 2;
            }
            b'{' => {
                let Some(rel) = text[i + 1..].find('}') else {
                    return Err(PathError {
                        offset: i,
                        message: "unclosed '{' in template; write '{{' for a literal brace".into(),
                    });
                };
                let inner = &text[i + 1..i + 1 + rel];
                let path = Path::parse(inner.trim()).map_err(|e| PathError {
                    offset: i + 1 + e.offset,
                    message: e.message,
                })?;
                if !lit.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut lit).into()));
                }
                parts.push(Part::Path(path));
                i += rel + 2;
            }
            b'}' => {
                return Err(PathError {
                    offset: i,
                    message: "unmatched '}' in template; write '}}' for a literal brace".into(),
                })
            }
            _ => {
                let start = i;
                while i < b.len() && b[i] != b'{' && b[i] != b'}' {
                    i += 1;
                }
                lit.push_str(&text[start..i]);
            }
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Text(lit.into()));
    }
    if !parts.iter().any(|p| matches!(p, Part::Path(_))) {
        return Err(PathError {
            offset: 0,
            message: "template has no {path}; use value = \"...\" for a literal".into(),
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_walks() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}, "claims": {"http://s/upn": "u"}, "@odata.type": "t"});
        assert_eq!(Path::parse("a.b[1].c").unwrap().get(&v), Some(&json!("x")));
        assert_eq!(Path::parse("$.a.b[0]").unwrap().get(&v), Some(&json!(10)));
        assert_eq!(
            Path::parse("claims[\"http://s/upn\"]").unwrap().get(&v),
            Some(&json!("u"))
        );
        assert_eq!(
            Path::parse("[\"@odata.type\"]").unwrap().get(&v),
            Some(&json!("t"))
        );
        assert_eq!(Path::parse("a.zz").unwrap().get(&v), None);
        assert_eq!(Path::parse("a.b.c").unwrap().get(&v), None);
        assert_eq!(Path::parse("a.b[7]").unwrap().get(&v), None);
    }

    #[test]
    fn rejects_bad_paths() {
        for (p, off) in [
            ("", 0),
            ("a..b", 2),
            (".a", 0),
            ("a.", 1),
            ("a[x]", 2),
            ("a[1", 1),
            ("a b", 1),
            ("a[\"b", 1),
            ("$", 0),
            ("a.[0]", 2),
            ("a]", 1),
        ] {
            let e = Path::parse(p).expect_err(p);
            assert_eq!(e.offset, off, "{p}: {}", e.message);
        }
    }

    #[test]
    fn templates() {
        let t = parse_template("{a} on {{x}} {b.c}").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1], Part::Text(" on {x} ".into()));
        assert!(parse_template("no paths").is_err());
        assert_eq!(parse_template("x {a").unwrap_err().offset, 2);
        assert_eq!(parse_template("x } ").unwrap_err().offset, 2);
        assert_eq!(parse_template("{a..b}").unwrap_err().offset, 3);
    }
}
