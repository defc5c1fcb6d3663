//! A read-only view of a compiled mapping for reviews, tests and `siemcast mappings keys`: for
//! each header slot and extension key, the JSON paths it reads, the longest value it keeps, its
//! conversion and whether the SIEM needs a custom property for it. Used to prove properties over
//! every shipped mapping (ids never cut without a full copy) and to list what to set up in a SIEM.

use super::path::{Part, Path, Seg};
use super::value::{Source, ValueSpec};
use super::{cef, dict, leef, Format, Mapping, CLASS_ID, NAME, PRODUCT, SEVERITY, VENDOR, VERSION};

/// One header slot or extension key of a compiled mapping, as [`Mapping::fields`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    /// The extension key (`externalId`, `cs5`, …), or `header.<slot>` for a header field
    /// (`header.class_id`, `header.name`; LEEF's EventID is `header.event_id`).
    pub key: String,
    /// The JSON paths the value is read from, in order, written canonically (`a.b[0]`,
    /// `claims["http://x/upn"]`, no leading `$.`). A `select` names its elements as
    /// `from[].get`.
    pub paths: Vec<String>,
    /// What kind of source: `path`, `first`, `template`, `select` or `value`.
    pub source: &'static str,
    /// The most characters the key keeps (a header field's or the dictionary's length, or
    /// `max_len`); longer values are cut.
    pub max_chars: usize,
    /// The conversion (`text`, `hash`, `ip`, …).
    pub convert: &'static str,
    /// True when a lookup table (`map`) may replace the value.
    pub mapped: bool,
    /// True when the key is written only when a `when` selector (or variant) matches.
    pub conditional: bool,
    /// True for a vendor-defined key (`custom = true`: in neither the CEF dictionary nor IBM's
    /// predefined LEEF attributes): the SIEM shows it only through a custom property.
    pub custom: bool,
    /// The label written beside the key (CEF `cs1Label = "Subscription"`), if any.
    pub label: Option<String>,
}

impl FieldInfo {
    /// True when this key writes the value of `path` whole whenever the event has it: read
    /// from `path` first (alone or first of `first`), unconverted, unmapped, unconditional,
    /// and keeping at least `min_chars` characters.
    pub fn copies_whole(&self, path: &str, min_chars: usize) -> bool {
        matches!(self.source, "path" | "first")
            && self.paths.first().is_some_and(|p| p == path)
            && self.convert == "text"
            && !self.mapped
            && !self.conditional
            && self.max_chars >= min_chars
    }
}

/// `a.b[0]["x.y"]` for a path, whatever spelling the file used.
pub(crate) fn canonical(path: &Path) -> String {
    let mut out = String::new();
    for seg in path.segs() {
        match seg {
            Seg::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '@');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                } else {
                    out.push_str("[\"");
                    out.push_str(k);
                    out.push_str("\"]");
                }
            }
            Seg::Index(n) => {
                out.push('[');
                out.push_str(&n.to_string());
                out.push(']');
            }
            Seg::Each => out.push_str("[*]"),
        }
    }
    out
}

fn source_of(spec: &ValueSpec) -> (&'static str, Vec<String>) {
    match &spec.source {
        Source::Literal(_) => ("value", Vec::new()),
        Source::Path(p) => ("path", vec![canonical(p)]),
        Source::First(ps) => ("first", ps.iter().map(canonical).collect()),
        Source::Template(parts) => (
            "template",
            parts
                .iter()
                .filter_map(|part| match part {
                    Part::Path(p) => Some(canonical(p)),
                    Part::Text(_) => None,
                })
                .collect(),
        ),
        Source::Select(sel) => {
            let from = canonical(&sel.from);
            let get = sel.get.as_ref().map(canonical);
            let elem = match get {
                Some(g) => format!("{from}[].{g}"),
                None => format!("{from}[]"),
            };
            ("select", vec![elem])
        }
    }
}

fn info(
    key: String,
    spec: &ValueSpec,
    max_chars: usize,
    convert: &'static str,
    conditional: bool,
) -> FieldInfo {
    let (source, paths) = source_of(spec);
    FieldInfo {
        key,
        paths,
        source,
        max_chars,
        convert,
        mapped: !spec.map.is_empty(),
        conditional,
        custom: false,
        label: None,
    }
}

impl Mapping {
    /// Every header slot (the base header, then each variant's overrides, marked conditional)
    /// and every extension key in file order, with what it reads and how much it keeps.
    pub fn fields(&self) -> Vec<FieldInfo> {
        let leef = self.format != Format::Cef;
        let slots: &[(usize, &str)] = if leef {
            &[
                (VENDOR, "vendor"),
                (PRODUCT, "product"),
                (VERSION, "version"),
                (CLASS_ID, "event_id"),
            ]
        } else {
            &[
                (VENDOR, "vendor"),
                (PRODUCT, "product"),
                (VERSION, "version"),
                (CLASS_ID, "class_id"),
                (NAME, "name"),
                (SEVERITY, "severity"),
            ]
        };
        let header_max = |slot: usize| {
            if leef {
                leef::HEADER_MAX
            } else if slot == SEVERITY {
                // Only a number or a word survives: nothing of a value is kept as text.
                0
            } else {
                cef::HEADER_MAX[slot]
            }
        };
        let mut out = Vec::new();
        let headers = std::iter::once((&self.header, false))
            .chain(self.variants.iter().map(|v| (&v.header, true)));
        for (header, conditional) in headers {
            for &(slot, name) in slots {
                if let Some(spec) = &header[slot] {
                    let convert = if slot == SEVERITY { "severity" } else { "text" };
                    out.push(info(
                        format!("header.{name}"),
                        spec,
                        header_max(slot),
                        convert,
                        conditional,
                    ));
                }
            }
        }
        for f in &self.fields {
            let mut field = info(
                f.key.to_string(),
                &f.value,
                f.max_chars,
                f.convert.name(),
                f.when.is_some(),
            );
            field.custom = if leef {
                dict::leef_key(&f.key).is_none()
            } else {
                dict::cef_key(&f.key).is_none()
            };
            field.label = f.label.as_ref().map(|(_, text)| text.to_string());
            out.push(field);
        }
        out
    }

    /// The file's format in words (`CEF`, `LEEF 1.0`, `LEEF 2.0`).
    pub fn format_name(&self) -> &'static str {
        match self.format {
            Format::Cef => "CEF",
            Format::Leef1 => "LEEF 1.0",
            Format::Leef2 { .. } => "LEEF 2.0",
        }
    }

    /// The extension keys as a table for people setting up a SIEM (`siemcast mappings keys`):
    /// one row per key, in file order and once per key, with whether it is custom, its label,
    /// its conversion and the paths it reads. With `custom_only`, only the custom keys: the
    /// custom event properties to create in QRadar, the vendor fields to map in ArcSight.
    pub fn keys_table(&self, custom_only: bool) -> String {
        use std::fmt::Write as _;
        let mut rows: Vec<[String; 5]> = Vec::new();
        for f in self.fields() {
            if f.key.starts_with("header.") || (custom_only && !f.custom) {
                continue;
            }
            if let Some(row) = rows.iter_mut().find(|r| r[0] == f.key) {
                // Several `[[field]]`s share a key under `when`: one row, every path.
                for p in f.paths {
                    if !row[4].split(" | ").any(|q| q == p) {
                        row[4] = format!("{} | {p}", row[4]);
                    }
                }
                continue;
            }
            let from = if f.paths.is_empty() {
                format!("({})", f.source)
            } else {
                f.paths.join(" | ")
            };
            rows.push([
                f.key,
                if f.custom { "custom" } else { "" }.to_owned(),
                f.label.unwrap_or_default(),
                f.convert.to_owned(),
                from,
            ]);
        }
        let titles = ["key", "custom", "label", "convert", "from"];
        let width = |i: usize| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([titles[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..4).map(width).collect();
        let mut out = String::new();
        for row in std::iter::once(titles.map(str::to_owned)).chain(rows) {
            for (i, w) in widths.iter().enumerate() {
                let _ = write!(out, "{:<w$}  ", row[i], w = w);
            }
            out.push_str(&row[4]);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Mapping {
        Mapping::compile(std::path::Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn fields_name_paths_limits_and_conversions() {
        let m = compile(
            r#"format = "cef"
[header]
vendor = "V"
product = "P"
version = "1"
class_id = { path = "$.op" }
name = { first = ["title", "op"] }
severity = { path = "level", map = { Error = 7 } }
[[variant]]
when = { path = "x", is = "y" }
name = { template = "{a.b} on {c}" }
[[field]]
key = "externalId"
path = "id"
convert = "hash"
[[field]]
key = "cs1"
label = "Full"
path = 'claims["http://x/upn"]'
when = { path = "id", exists = true }
[[field]]
key = "src"
select = { from = "entities", where = "type", is = "ip", get = "address" }
[[field]]
key = "msg"
path = "id"
max_len = 100
"#,
        );
        let f = m.fields();
        let by = |k: &str| f.iter().filter(|i| i.key == k).collect::<Vec<_>>();
        assert_eq!(by("header.class_id")[0].paths, vec!["op"]);
        assert_eq!(by("header.class_id")[0].max_chars, 1023);
        assert_eq!(by("header.name")[0].paths, vec!["title", "op"]);
        assert!(!by("header.name")[0].conditional);
        assert_eq!(by("header.name")[1].paths, vec!["a.b", "c"]);
        assert_eq!(by("header.name")[1].source, "template");
        assert!(by("header.name")[1].conditional);
        assert!(by("header.severity")[0].mapped);
        let ext = by("externalId")[0];
        assert_eq!((ext.max_chars, ext.convert), (40, "hash"));
        let cs1 = by("cs1")[0];
        assert_eq!(cs1.paths, vec![r#"claims["http://x/upn"]"#]);
        assert!(cs1.conditional);
        assert!(!cs1.copies_whole(r#"claims["http://x/upn"]"#, 1023));
        assert_eq!(by("src")[0].paths, vec!["entities[].address"]);
        assert_eq!(by("src")[0].convert, "ip");
        let msg = by("msg")[0];
        assert_eq!(msg.max_chars, 100);
        assert!(msg.copies_whole("id", 100));
        assert!(!msg.copies_whole("id", 101));
    }

    #[test]
    fn leef_header_is_event_id_at_255() {
        let m = compile(
            "format = \"leef2\"\n[header]\nvendor = \"V\"\nproduct = \"P\"\nversion = \"1\"\nevent_id = { path = \"op\" }\n[[field]]\nkey = \"opName\"\ncustom = true\npath = \"op\"\n",
        );
        let f = m.fields();
        let ev = f.iter().find(|i| i.key == "header.event_id").unwrap();
        assert_eq!(ev.max_chars, 255);
        let custom = f.iter().find(|i| i.key == "opName").unwrap();
        assert!(custom.copies_whole("op", 1023), "{custom:?}");
    }

    #[test]
    fn keys_table_lists_each_key_once_with_custom_label_and_paths() {
        let m = compile(
            r#"format = "leef2"
delimiter = "^"
[header]
vendor = "V"
product = "P"
version = "1"
event_id = { path = "op" }
[[field]]
key = "usrName"
path = "user.upn"
when = { path = "kind", is = "user" }
[[field]]
key = "usrName"
path = "app.name"
[[field]]
key = "opName"
custom = true
path = "op"
[[field]]
key = "vendorSays"
custom = true
value = "x"
"#,
        );
        assert_eq!(m.format_name(), "LEEF 2.0");
        let rows = |custom_only| -> Vec<Vec<String>> {
            m.keys_table(custom_only)
                .lines()
                .map(|l| l.split_whitespace().map(str::to_owned).collect())
                .collect()
        };
        assert_eq!(
            rows(false),
            [
                vec!["key", "custom", "label", "convert", "from"],
                vec!["usrName", "text", "user.upn", "|", "app.name"],
                vec!["opName", "custom", "text", "op"],
                vec!["vendorSays", "custom", "text", "(value)"],
            ]
        );
        assert_eq!(rows(true).len(), 3, "{}", m.keys_table(true));
        assert!(!m.keys_table(true).contains("usrName"));
        let cef = compile(
            "format = \"cef\"\n[header]\nvendor = \"V\"\nproduct = \"P\"\nversion = \"1\"\nclass_id = \"c\"\nname = \"n\"\nseverity = 3\n[[field]]\nkey = \"cs1\"\nlabel = \"Subscription\"\npath = \"sub\"\n",
        );
        let table = cef.keys_table(false);
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row, ["cs1", "Subscription", "text", "sub"], "{table}");
        assert!(!cef.fields().iter().any(|f| f.custom));
    }
}
