//! Value-source parsing for the compiler: path, value, template, first, select, lookup tables,
//! defaults and `when` selectors, each problem reported with its position.

use toml_edit::{Item, TableLike};

use super::super::path::{parse_template, Path, PathError};
use super::super::value::{Cond, Select, Source, Test, ValueSpec};
use super::{literal, start_of, Cx, SOURCE_KEYS};

impl Cx<'_> {
    pub(super) fn value_spec(&mut self, t: &dyn TableLike, at: usize) -> Option<ValueSpec> {
        let present: Vec<&str> = SOURCE_KEYS
            .iter()
            .copied()
            .filter(|k| t.contains_key(k))
            .collect();
        if present.is_empty() {
            self.sink.at(
                at,
                "no value source",
                Some("give one of path, value, template, first or select".into()),
            );
            return None;
        }
        if present.len() > 1 {
            let off = Self::key_at(t, present[1], at);
            self.sink.at(
                off,
                format!(
                    "give only one value source, not both '{}' and '{}'",
                    present[0], present[1]
                ),
                None,
            );
            return None;
        }
        let kind = present[0];
        let item = t.get(kind)?;
        let item_at = start_of(item, at);
        let (source, describe) = match kind {
            "path" => {
                let p = self.path_each(item, at)?;
                let d = p.as_str().to_string();
                (Source::Path(p), d)
            }
            "value" => {
                let Some(lit) = literal(item) else {
                    self.err_item(
                        item,
                        at,
                        "'value' must be a string, number or boolean",
                        None,
                    );
                    return None;
                };
                let d = format!("literal {lit:?}");
                (Source::Literal(lit.into()), d)
            }
            "template" => {
                let Some(s) = item.as_str() else {
                    self.err_item(item, at, "'template' must be a string", None);
                    return None;
                };
                match parse_template(s) {
                    Ok(parts) => (Source::Template(parts.into()), format!("template {s:?}")),
                    Err(e) => {
                        self.sink.at(
                            item_at + 1 + e.offset,
                            format!("invalid template: {}", e.message),
                            None,
                        );
                        return None;
                    }
                }
            }
            "first" => {
                let Some(arr) = item.as_array().filter(|a| !a.is_empty()) else {
                    self.err_item(item, at, "'first' must be a non-empty array of paths", None);
                    return None;
                };
                let mut paths = Vec::new();
                for v in arr.iter() {
                    let v_at = v.span().map_or(item_at, |s| s.start);
                    match v.as_str() {
                        Some(s) => match Path::parse(s) {
                            Ok(p) => paths.push(p),
                            Err(e) => self.path_error(s, &e, v_at),
                        },
                        None => {
                            self.sink
                                .at(v_at, "each entry of 'first' must be a path string", None)
                        }
                    }
                }
                if paths.len() != arr.len() {
                    return None;
                }
                let d = format!(
                    "first of [{}]",
                    paths
                        .iter()
                        .map(Path::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (Source::First(paths.into()), d)
            }
            _ => {
                let sel = self.select(item, at)?;
                let d = format!(
                    "select from {} where {}",
                    sel.from.as_str(),
                    sel.by.as_str()
                );
                (Source::Select(Box::new(sel)), d)
            }
        };
        let mut ok = true;
        let mut map = Vec::new();
        if let Some(m) = t.get("map") {
            match m.as_table_like() {
                Some(mt) if !mt.is_empty() => {
                    for (k, v) in mt.iter() {
                        match literal(v) {
                            Some(val) => map.push((k.into(), val.into())),
                            None => {
                                ok = false;
                                self.err_item(
                                    v,
                                    at,
                                    format!("map value for '{k}' must be a string or number"),
                                    None,
                                );
                            }
                        }
                    }
                }
                _ => {
                    ok = false;
                    self.err_item(
                        m,
                        at,
                        "'map' must be a non-empty table, e.g. map = { High = 8, Low = 3 }",
                        None,
                    );
                }
            }
        }
        let mut opt = |cx: &mut Self, name: &str| -> Option<Box<str>> {
            let item = t.get(name)?;
            match literal(item) {
                Some(s) => Some(s.into()),
                None => {
                    ok = false;
                    cx.err_item(
                        item,
                        at,
                        format!("'{name}' must be a string or number"),
                        None,
                    );
                    None
                }
            }
        };
        let otherwise = opt(self, "otherwise");
        let default = opt(self, "default");
        let join = opt(self, "join").unwrap_or_else(|| ",".into());
        let pattern = match t.get("pattern") {
            None => None,
            Some(item) => {
                match item.as_str() {
                    None => {
                        ok = false;
                        self.err_item(
                            item,
                            at,
                            "'pattern' must be a string (a regular expression)",
                            None,
                        );
                        None
                    }
                    Some(text) => match regex::Regex::new(text) {
                        Ok(re) if re.captures_len() == 2 => Some(re),
                        Ok(_) => {
                            ok = false;
                            self.err_item(
                            item,
                            at,
                            "'pattern' must have exactly one capture group: the part to keep",
                            Some("e.g. pattern = \"from ([^ ]+) to\"; write other groups as (?:...)".into()),
                        );
                            None
                        }
                        Err(e) => {
                            ok = false;
                            let why = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                            self.err_item(item, at, format!("invalid 'pattern': {why}"), None);
                            None
                        }
                    },
                }
            }
        };
        if otherwise.is_some() && map.is_empty() {
            let off = Self::key_at(t, "otherwise", at);
            self.sink
                .at(off, "'otherwise' only applies with a 'map'", None);
            ok = false;
        }
        ok.then(|| ValueSpec {
            source,
            map: map.into(),
            otherwise,
            default,
            join,
            pattern,
            describe: describe.into(),
        })
    }

    pub(super) fn path(&mut self, item: &Item, at: usize) -> Option<Path> {
        self.path_as(item, at, Path::parse)
    }

    /// A field's `path`, which may have `[*]` steps.
    fn path_each(&mut self, item: &Item, at: usize) -> Option<Path> {
        self.path_as(item, at, Path::parse_each)
    }

    fn path_as(
        &mut self,
        item: &Item,
        at: usize,
        parse: fn(&str) -> Result<Path, PathError>,
    ) -> Option<Path> {
        let Some(s) = item.as_str() else {
            self.err_item(
                item,
                at,
                "a path must be a string like \"properties.severity\"",
                None,
            );
            return None;
        };
        match parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.path_error(s, &e, start_of(item, at));
                None
            }
        }
    }

    pub(super) fn path_error(&mut self, s: &str, e: &PathError, item_at: usize) {
        self.sink.at(
            item_at + 1 + e.offset,
            format!("invalid path {s:?}: {}", e.message),
            None,
        );
    }

    pub(super) fn select(&mut self, item: &Item, at: usize) -> Option<Select> {
        let item_at = start_of(item, at);
        let Some(t) = item.as_table_like() else {
            self.err_item(
                item,
                at,
                "'select' must be a table { from = ..., where = ..., is = ..., get = ... }",
                None,
            );
            return None;
        };
        self.check_keys(t, &["from", "where", "is", "get"], "select", item_at);
        let need = |cx: &mut Self, k: &str| -> Option<Path> {
            match t.get(k) {
                Some(i) => cx.path(i, item_at),
                None => {
                    cx.sink.at(item_at, format!("select needs '{k}'"), None);
                    None
                }
            }
        };
        let from = need(self, "from");
        let by = need(self, "where");
        let get = match t.get("get") {
            Some(i) => Some(self.path(i, item_at)?),
            None => None,
        };
        let is = match t.get("is") {
            Some(i) => self.string_list(i, item_at, "is"),
            None => {
                self.sink
                    .at(item_at, "select needs 'is' (the value to match)", None);
                None
            }
        };
        Some(Select {
            from: from?,
            by: by?,
            is: is?,
            get,
        })
    }

    pub(super) fn string_list(
        &mut self,
        item: &Item,
        at: usize,
        name: &str,
    ) -> Option<Box<[Box<str>]>> {
        if let Some(s) = literal(item) {
            return Some(vec![s.into()].into());
        }
        if let Some(arr) = item.as_array().filter(|a| !a.is_empty()) {
            let list: Option<Vec<Box<str>>> = arr
                .iter()
                .map(|v| literal(&Item::Value(v.clone())).map(Into::into))
                .collect();
            if let Some(list) = list {
                return Some(list.into());
            }
        }
        self.err_item(
            item,
            at,
            format!("'{name}' must be a string, number or a non-empty list of them"),
            None,
        );
        None
    }

    pub(super) fn cond(&mut self, item: &Item, at: usize) -> Option<Cond> {
        let item_at = start_of(item, at);
        let Some(t) = item.as_table_like() else {
            self.err_item(
                item,
                at,
                "'when' must be a table { path = ..., is = ... }",
                None,
            );
            return None;
        };
        self.check_keys(t, &["path", "is", "not", "exists"], "when", item_at);
        let path = match t.get("path") {
            Some(p) => self.path(p, item_at),
            None => {
                self.sink.at(item_at, "'when' needs a 'path'", None);
                None
            }
        };
        let tests: Vec<&str> = ["is", "not", "exists"]
            .into_iter()
            .filter(|k| t.contains_key(k))
            .collect();
        if tests.len() != 1 {
            self.sink.at(
                item_at,
                "'when' needs exactly one of 'is', 'not' or 'exists'",
                None,
            );
            return None;
        }
        let ti = t.get(tests[0])?;
        let test = match tests[0] {
            "is" => Test::Is(self.string_list(ti, item_at, "is")?),
            "not" => Test::Not(self.string_list(ti, item_at, "not")?),
            _ => match ti.as_bool() {
                Some(b) => Test::Exists(b),
                None => {
                    self.err_item(ti, item_at, "'exists' must be true or false", None);
                    return None;
                }
            },
        };
        Some(Cond { path: path?, test })
    }
}
