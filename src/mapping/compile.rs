//! The mapping-file compiler: TOML (parsed with spans by toml_edit) into a [`Mapping`]. It keeps
//! going after a problem so that one run reports every error with its line, column and a hint.

use std::collections::HashMap;
use std::path::Path as FsPath;

use toml_edit::{ImDocument, Item, TableLike};

use super::diag::{MappingErrors, Sink};
use super::dict::{self, KeyType};

use super::scan::Plan;
use super::text::clip_header;
use super::value::{Source, ValueSpec};
use super::{
    Field, Format, Header, Mapping, Route, Variant, CLASS_ID, NAME, PRODUCT, SEVERITY, VENDOR,
    VERSION,
};

const TOP_KEYS: &[&str] = &[
    "format",
    "delimiter",
    "description",
    "header",
    "variant",
    "field",
];
const SOURCE_KEYS: &[&str] = &["path", "value", "template", "first", "select"];
const SPEC_KEYS: &[&str] = &[
    "path",
    "value",
    "template",
    "first",
    "select",
    "map",
    "otherwise",
    "default",
    "join",
    "pattern",
];
const FIELD_EXTRA: &[&str] = &[
    "key", "convert", "label", "max_len", "when", "required", "custom",
];
const CEF_HEADER: &[&str] = &[
    "vendor", "product", "version", "class_id", "name", "severity",
];
const LEEF_HEADER: &[&str] = &["vendor", "product", "version", "event_id"];
const MAX_SLOTS: usize = 128;

/// Compiles mapping text; `origin` names the file in diagnostics.
pub(crate) fn compile(origin: &FsPath, text: &str) -> Result<Mapping, MappingErrors> {
    let mut cx = Cx {
        sink: Sink::new(origin, text),
        format: Format::Cef,
        slots: HashMap::new(),
    };
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let msg = e.message().trim().replace('\n', "; ");
            cx.sink.at(at, format!("not valid TOML: {msg}"), None);
            return Err(MappingErrors {
                diagnostics: cx.sink.diags,
            });
        }
    };
    let root = doc.as_table();
    cx.check_keys(root, TOP_KEYS, "the top level", 0);
    if let Some(item) = root.get("description") {
        if item.as_str().is_none() {
            cx.err_item(item, 0, "'description' must be a string", None);
        }
    }
    cx.format = cx.format_of(root);
    let leef = cx.format != Format::Cef;

    let header = match root.get("header") {
        Some(item) => match item.as_table_like() {
            Some(t) => cx.header(t, start_of(item, 0), true),
            None => {
                cx.err_item(item, 0, "'header' must be a table: [header]", None);
                empty_header()
            }
        },
        None => {
            cx.sink
                .at(0, "missing [header] table", Some(header_hint(leef)));
            empty_header()
        }
    };

    let mut variants = Vec::new();
    for (t, at) in cx.tables(root, "variant") {
        let when = match t.get("when") {
            Some(w) => cx.cond(w, at),
            None => {
                cx.sink
                    .at(at, "a [[variant]] needs a `when` selector", None);
                None
            }
        };
        let mut allowed: Vec<&str> = vec!["when"];
        allowed.extend_from_slice(if leef { LEEF_HEADER } else { CEF_HEADER });
        cx.check_keys(t, &allowed, "[[variant]]", at);
        let header = cx.header(t, at, false);
        if let Some(when) = when {
            variants.push(Variant { when, header });
        }
    }

    let mut fields = Vec::new();
    let mut seen: HashMap<String, (usize, bool)> = HashMap::new();
    for (t, at) in cx.tables(root, "field") {
        if let Some(f) = cx.field(t, at, &mut seen) {
            fields.push(f);
        }
    }
    if cx.slots.len() > MAX_SLOTS {
        cx.sink.at(
            0,
            format!(
                "too many distinct keys ({}); the limit is {MAX_SLOTS}",
                cx.slots.len()
            ),
            None,
        );
    }

    if cx.sink.diags.is_empty() {
        let (mut header, mut variants, mut fields) = (header, variants, fields);
        let plan = Plan::build(&mut header, &mut variants, &mut fields, &mut []);
        Ok(Mapping {
            origin: origin.to_path_buf(),
            format: cx.format,
            header,
            variants,
            fields,
            plan,
        })
    } else {
        Err(MappingErrors {
            diagnostics: cx.sink.diags,
        })
    }
}

fn empty_header() -> Header {
    Default::default()
}

fn header_hint(leef: bool) -> String {
    let keys = if leef { LEEF_HEADER } else { CEF_HEADER };
    format!("it sets {}", keys.join(", "))
}

fn start_of(item: &Item, fallback: usize) -> usize {
    item.span().map_or(fallback, |s| s.start)
}

struct Cx<'t> {
    sink: Sink<'t>,
    format: Format,
    slots: HashMap<String, u32>,
}

impl Cx<'_> {
    fn err_item(
        &mut self,
        item: &Item,
        fallback: usize,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        self.sink.at(start_of(item, fallback), msg, hint);
    }

    fn key_at(t: &dyn TableLike, key: &str, fallback: usize) -> usize {
        t.get_key_value(key)
            .and_then(|(k, _)| k.span())
            .map_or(fallback, |s| s.start)
    }

    fn check_keys(&mut self, t: &dyn TableLike, allowed: &[&str], what: &str, at: usize) {
        for (k, _) in t.iter() {
            if !allowed.contains(&k) {
                let hint = dict::closest(k, allowed.iter().copied())
                    .map(|c| format!("did you mean '{c}'?"));
                let off = Self::key_at(t, k, at);
                self.sink.at(
                    off,
                    format!(
                        "unknown setting '{k}' in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                    hint,
                );
            }
        }
    }

    /// The tables of `[[name]]` (or `name = [{...}, ...]`) with their offsets.
    fn tables<'a>(
        &mut self,
        root: &'a dyn TableLike,
        name: &str,
    ) -> Vec<(&'a dyn TableLike, usize)> {
        let Some(item) = root.get(name) else {
            return Vec::new();
        };
        let at = Self::key_at(root, name, start_of(item, 0));
        if let Some(aot) = item.as_array_of_tables() {
            return aot
                .iter()
                .map(|t| (t as &dyn TableLike, t.span().map_or(at, |s| s.start)))
                .collect();
        }
        if let Some(arr) = item.as_array() {
            let mut out = Vec::new();
            for v in arr.iter() {
                match v.as_inline_table() {
                    Some(t) => out.push((t as &dyn TableLike, v.span().map_or(at, |s| s.start))),
                    None => self.sink.at(
                        v.span().map_or(at, |s| s.start),
                        format!("each {name} must be a table"),
                        None,
                    ),
                }
            }
            return out;
        }
        self.sink.at(
            at,
            format!("'{name}' must be an array of tables: [[{name}]]"),
            None,
        );
        Vec::new()
    }

    fn format_of(&mut self, root: &dyn TableLike) -> Format {
        let Some(item) = root.get("format") else {
            self.sink.at(
                0,
                "missing 'format'",
                Some("add format = \"cef\", \"leef1\" or \"leef2\"".into()),
            );
            return Format::Cef;
        };
        let fmt = match item.as_str() {
            Some("cef") => Format::Cef,
            Some("leef1") => Format::Leef1,
            Some("leef2") => Format::Leef2 { delimiter: '^' },
            other => {
                let hint = match other {
                    Some(s) if s.eq_ignore_ascii_case("leef") => {
                        Some("did you mean 'leef2' or 'leef1'?".into())
                    }
                    Some(s) => dict::closest(s, ["cef", "leef1", "leef2"].into_iter())
                        .map(|c| format!("did you mean '{c}'?")),
                    None => None,
                };
                self.err_item(
                    item,
                    0,
                    "format must be \"cef\", \"leef1\" or \"leef2\"",
                    hint,
                );
                Format::Cef
            }
        };
        if let Some(d) = root.get("delimiter") {
            if let Format::Leef2 { .. } = fmt {
                match d.as_str().and_then(parse_delimiter) {
                    Some(c) => return Format::Leef2 { delimiter: c },
                    None => self.err_item(
                        d,
                        0,
                        "delimiter must be one ASCII punctuation character or TAB, written as itself or as xHH",
                        Some("\"^\" and \"x09\" are the usual choices".into()),
                    ),
                }
            } else {
                self.err_item(d, 0, "'delimiter' applies only to format = \"leef2\"", None);
            }
        }
        fmt
    }

    fn header(&mut self, t: &dyn TableLike, at: usize, base: bool) -> Header {
        let leef = self.format != Format::Cef;
        let names = if leef { LEEF_HEADER } else { CEF_HEADER };
        let slots: &[usize] = if leef {
            &[VENDOR, PRODUCT, VERSION, CLASS_ID]
        } else {
            &[VENDOR, PRODUCT, VERSION, CLASS_ID, NAME, SEVERITY]
        };
        if base {
            self.check_keys(t, names, "[header]", at);
        }
        let mut header = empty_header();
        for (name, slot) in names.iter().zip(slots) {
            let Some(item) = t.get(name) else {
                if base {
                    self.sink.at(
                        at,
                        format!("missing header field '{name}'"),
                        Some(header_hint(leef)),
                    );
                }
                continue;
            };
            let item_at = start_of(item, at);
            let spec = if let Some(tl) = item.as_table_like() {
                self.check_keys(tl, SPEC_KEYS, &format!("header field '{name}'"), item_at);
                self.value_spec(tl, item_at)
            } else if let Some(lit) = literal(item) {
                Some(ValueSpec::literal(&lit))
            } else {
                self.err_item(item, at, format!("header field '{name}' must be a string or an inline table {{ path = ... }}"), None);
                None
            };
            let Some(spec) = spec else { continue };
            self.check_header_spec(name, *slot, &spec, item_at);
            header[*slot] = Some(spec);
        }
        header
    }

    fn check_header_spec(&mut self, name: &str, slot: usize, spec: &ValueSpec, at: usize) {
        let leef = self.format != Format::Cef;
        if let Source::Literal(lit) = &spec.source {
            if slot <= VERSION && clip_header(lit, 1023).is_empty() {
                self.sink
                    .at(at, format!("header field '{name}' must not be empty"), None);
            }
            if leef && lit.contains('|') {
                self.sink.at(
                    at,
                    format!("header field '{name}' contains '|', which LEEF cannot carry"),
                    None,
                );
            }
        }
        if slot == SEVERITY && !leef {
            let values = spec
                .map
                .iter()
                .map(|(_, v)| v)
                .chain(&spec.otherwise)
                .chain(&spec.default);
            let lit = match &spec.source {
                Source::Literal(l) => Some(l),
                _ => None,
            };
            for v in values.chain(lit) {
                let ok = matches!(v.trim().parse::<i64>(), Ok(0..=10))
                    || ["Unknown", "Low", "Medium", "High", "Very-High"]
                        .iter()
                        .any(|w| w.eq_ignore_ascii_case(v.trim()));
                if !ok {
                    self.sink.at(
                        at,
                        format!("severity value '{v}' is not 0-10 or Unknown, Low, Medium, High, Very-High"),
                        None,
                    );
                }
            }
        }
    }

    fn slot(&mut self, key: &str) -> u32 {
        let n = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let n = *self.slots.entry(key.to_string()).or_insert(n);
        n.min(MAX_SLOTS as u32 - 1)
    }

    fn field(
        &mut self,
        t: &dyn TableLike,
        at: usize,
        seen: &mut HashMap<String, (usize, bool)>,
    ) -> Option<Field> {
        let leef = self.format != Format::Cef;
        let mut allowed: Vec<&str> = SPEC_KEYS.to_vec();
        allowed.extend_from_slice(FIELD_EXTRA);
        self.check_keys(t, &allowed, "[[field]]", at);
        let Some(key_item) = t.get("key") else {
            self.sink.at(at, "a [[field]] needs a 'key'", None);
            return None;
        };
        let key_at = start_of(key_item, at);
        let Some(key) = key_item.as_str() else {
            self.err_item(key_item, at, "'key' must be a string", None);
            return None;
        };
        let custom = match t.get("custom") {
            Some(c) => c.as_bool().unwrap_or_else(|| {
                self.err_item(c, at, "'custom' must be true or false", None);
                false
            }),
            None => false,
        };
        let required = match t.get("required") {
            Some(c) => c.as_bool().unwrap_or_else(|| {
                self.err_item(c, at, "'required' must be true or false", None);
                false
            }),
            None => false,
        };
        let key_type = if leef {
            self.leef_key(key, custom, key_at)
        } else {
            self.cef_key(key, custom, key_at)
        };
        let value = self.value_spec(t, at);
        let when = t.get("when").and_then(|w| self.cond(w, at));

        if let Some((line_at, had_when)) = seen.get(key) {
            if !had_when {
                let (line, _) = super::diag::line_col(self.sink_text(), *line_at);
                self.sink.at(
                    key_at,
                    format!("key '{key}' is already mapped on line {line} without `when`; this field would never be used"),
                    Some("give the earlier field a `when`, or use first = [...] for fallbacks".into()),
                );
            }
        }
        seen.insert(key.to_string(), (key_at, when.is_some()));

        let key_type = key_type?;
        let conv = self.convert_for(t, key, key_type, at);
        let max_chars = self.max_chars(t, key, key_type, custom, at);
        let label = self.label(t, key, at);
        let slot = self.slot(key);
        let ipv6 = if leef {
            None
        } else {
            dict::cef_ipv6_route(key).map(|(rk, label)| Route {
                key: rk,
                slot: self.slot(rk),
                label_key: match rk {
                    "c6a1" => "c6a1Label",
                    "c6a2" => "c6a2Label",
                    _ => "c6a3Label",
                },
                label,
            })
        };
        Some(Field {
            key: key.into(),
            slot,
            value: value?,
            convert: conv?,
            max_chars: max_chars?,
            label: label?,
            ipv6,
            v4_only: !leef && key_type == KeyType::Ipv4,
            v6_only: key_type == KeyType::Ipv6,
            when,
            required,
        })
    }

    fn sink_text(&self) -> &str {
        self.sink.text()
    }
}

/// A string, integer, float or boolean item as text.
fn literal(item: &Item) -> Option<String> {
    let v = item.as_value()?;
    if let Some(s) = v.as_str() {
        Some(s.to_string())
    } else if let Some(i) = v.as_integer() {
        Some(i.to_string())
    } else if let Some(f) = v.as_float() {
        Some(f.to_string())
    } else {
        v.as_bool().map(|b| b.to_string())
    }
}

/// `^`, `x5E`, `0x5e`, a literal TAB or `x09` → the delimiter character.
fn parse_delimiter(s: &str) -> Option<char> {
    let c = if s.chars().count() == 1 {
        s.chars().next()?
    } else {
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix('x'))
            .or_else(|| s.strip_prefix('X'))?;
        if hex.is_empty() || hex.len() > 4 {
            return None;
        }
        char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
    };
    (c == '\t' || (c.is_ascii_punctuation() && c != '|' && c != '=')).then_some(c)
}

mod keys;
mod values;

#[cfg(test)]
mod tests;
