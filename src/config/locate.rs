//! Maps a key path inside the configuration (`destination[1].transport`) back to the line and
//! column of the TOML file it came from, so every problem can be reported as `FILE:LINE:COL`.
//! Values that came from `SIEMCAST_*` environment variables have no location in the file.

use std::fmt;
use std::ops::Range;

pub use crate::diag::Position;

/// One step of a key path: a table key or an index into an array of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path from the document root, e.g. `destination[1].transport`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// `self` extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// `self` extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    /// The last key of the path, if it ends in a key.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Removes the value at this path from a JSON tree; returns whether something was removed.
    pub fn remove_from(&self, root: &mut serde_json::Value) -> bool {
        let Some((last, parents)) = self.0.split_last() else {
            return false;
        };
        let mut node = root;
        for seg in parents {
            let next = match seg {
                Seg::Key(k) => node.get_mut(k.as_str()),
                Seg::Index(i) => node.get_mut(*i),
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        match (last, node) {
            (Seg::Key(k), serde_json::Value::Object(map)) => map.remove(k).is_some(),
            (Seg::Index(i), serde_json::Value::Array(items)) if *i < items.len() => {
                // Replace rather than remove, so later indices keep meaning the same entry.
                items[*i] = serde_json::Value::Object(Default::default());
                true
            }
            _ => false,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) if first => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Converts a `serde_path_to_error` path into a [`KeyPath`].
pub fn from_serde_path(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    KeyPath(
        path.iter()
            .filter_map(|seg| match seg {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                Segment::Unknown => None,
            })
            .collect(),
    )
}

/// Converts a `serde_ignored` path into a [`KeyPath`].
pub fn from_ignored_path(path: &serde_ignored::Path<'_>) -> KeyPath {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut segs = Vec::new();
    walk(path, &mut segs);
    KeyPath(segs)
}

/// A parsed TOML file kept only to answer "where is this key?".
#[derive(Debug)]
pub struct Locator {
    text: String,
    doc: Option<toml_edit::ImDocument<String>>,
}

impl Locator {
    /// Parses `text`; a syntax error is returned with its position.
    pub fn parse(text: &str) -> Result<Self, (Position, String)> {
        match toml_edit::ImDocument::parse(text.to_owned()) {
            Ok(doc) => Ok(Self {
                text: text.to_owned(),
                doc: Some(doc),
            }),
            Err(e) => {
                let pos = e
                    .span()
                    .map(|s| offset_to_position(text, s.start))
                    .unwrap_or(Position { line: 1, column: 1 });
                Err((pos, e.message().trim().to_owned()))
            }
        }
    }

    /// A locator that knows no file (configuration built in code).
    pub fn empty() -> Self {
        Self {
            text: String::new(),
            doc: None,
        }
    }

    /// Where `path` is written: the key itself if present, else the nearest enclosing table.
    pub fn find(&self, path: &KeyPath) -> Option<Position> {
        let doc = self.doc.as_ref()?;
        let span = locate(doc.as_table(), &path.0)?;
        Some(offset_to_position(&self.text, span.start))
    }
}

/// Walks `segs` from `table`, returning the span of the deepest key that exists.
fn locate(table: &toml_edit::Table, segs: &[Seg]) -> Option<Range<usize>> {
    let (first, rest) = segs.split_first()?;
    let Seg::Key(key) = first else { return None };
    let key_span = table.key(key).and_then(|k| k.span());
    let item = table.get(key)?;
    let deeper = match (item, rest.split_first()) {
        (_, None) => None,
        (toml_edit::Item::Table(t), Some(_)) => locate(t, rest),
        (toml_edit::Item::ArrayOfTables(arr), Some((Seg::Index(i), after))) => {
            let t = arr.get(*i)?;
            locate(t, after).or_else(|| t.span())
        }
        (toml_edit::Item::Value(toml_edit::Value::InlineTable(t)), Some(_)) => {
            locate_inline(t, rest)
        }
        (toml_edit::Item::Value(toml_edit::Value::Array(a)), Some((Seg::Index(i), after))) => {
            let v = a.get(*i)?;
            match v {
                toml_edit::Value::InlineTable(t) if !after.is_empty() => {
                    locate_inline(t, after).or_else(|| v.span())
                }
                _ => v.span(),
            }
        }
        _ => None,
    };
    deeper.or(key_span).or_else(|| item.span())
}

fn locate_inline(table: &toml_edit::InlineTable, segs: &[Seg]) -> Option<Range<usize>> {
    let (Seg::Key(key), _) = segs.split_first()? else {
        return None;
    };
    table
        .key(key)
        .and_then(|k| k.span())
        .or_else(|| table.get(key).and_then(|v| v.span()))
}

fn offset_to_position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    Position { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_arrays_of_tables() {
        let text = "state_dir = \"/x\"\n\n[[destination]]\nname = \"a\"\n\n[[destination]]\nname = \"b\"\ntransport = \"tpc\"\n";
        let loc = Locator::parse(text).unwrap();
        let path = KeyPath::root().key("destination").index(1).key("transport");
        assert_eq!(loc.find(&path), Some(Position { line: 8, column: 1 }));
        let missing = KeyPath::root().key("destination").index(1).key("address");
        assert_eq!(loc.find(&missing).map(|p| p.line), Some(6));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (pos, msg) = Locator::parse("a = 1\nb = \n").unwrap_err();
        assert_eq!(pos.line, 2);
        assert!(!msg.is_empty());
    }

    #[test]
    fn paths_display_like_toml() {
        let path = KeyPath::root().key("source").index(0).key("interval");
        assert_eq!(path.to_string(), "source[0].interval");
    }
}
