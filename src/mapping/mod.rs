//! Mapping files compiled into CEF/LEEF renderers. A [`Mapping`] is checked completely at load
//! (keys, paths, conversions: every problem with file:line:col) and then renders any JSON event
//! into exactly one line that a strict parser decodes back to the mapped keys.

mod cef;
mod compile;
mod diag;
mod dict;
mod doc;
mod inspect;
mod leef;
mod path;
pub(crate) mod scan;
mod text;
mod value;

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};

use serde_json::Value;

pub use diag::{Diagnostic, MappingErrors};
pub(crate) use dict::closest;
pub use inspect::FieldInfo;

pub(crate) use doc::{Doc, Node};
pub(crate) use path::Path as JsonPath;
use value::{convert, Convert, Converted, ValueSpec};
pub(crate) use value::{Compare, Cond, SimpleGlob, Test};

/// Output format of a mapping file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ArcSight CEF (`CEF:0|...`).
    Cef,
    /// IBM LEEF 1.0, TAB-delimited.
    Leef1,
    /// IBM LEEF 2.0 with the given single ASCII delimiter.
    Leef2 { delimiter: char },
}

impl Format {
    /// The attribute delimiter byte for LEEF (TAB for 1.0).
    fn leef_delimiter(self) -> u8 {
        match self {
            Format::Leef2 { delimiter } => u8::try_from(delimiter).unwrap_or(b'\t'),
            _ => b'\t',
        }
    }
}

/// Header slots: CEF uses all six, LEEF the first four (slot 3 is the LEEF EventID).
pub(crate) const VENDOR: usize = 0;
pub(crate) const PRODUCT: usize = 1;
pub(crate) const VERSION: usize = 2;
pub(crate) const CLASS_ID: usize = 3;
pub(crate) const NAME: usize = 4;
pub(crate) const SEVERITY: usize = 5;
pub(crate) type Header = [Option<ValueSpec>; 6];

/// Header overrides applied when `when` matches (first matching variant wins).
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub(crate) when: Cond,
    pub(crate) header: Header,
}

/// Where an IPv6 value of a CEF IPv4 key goes.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) key: &'static str,
    pub(crate) slot: u32,
    pub(crate) label_key: &'static str,
    pub(crate) label: &'static str,
}

/// One compiled extension key.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) key: Box<str>,
    pub(crate) slot: u32,
    pub(crate) value: ValueSpec,
    pub(crate) convert: Convert,
    pub(crate) max_chars: usize,
    /// `(cs1Label, "Subscription")`, written right after the value, never alone.
    pub(crate) label: Option<(Box<str>, Box<str>)>,
    pub(crate) ipv6: Option<Route>,
    /// CEF IPv4 key: an IPv6 value goes to `ipv6` or is omitted.
    pub(crate) v4_only: bool,
    /// `c6a*` key: an IPv4 value is omitted.
    pub(crate) v6_only: bool,
    pub(crate) when: Option<Cond>,
    pub(crate) required: bool,
}

/// A compiled, immutable mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    origin: PathBuf,
    format: Format,
    header: Header,
    variants: Vec<Variant>,
    fields: Vec<Field>,
    /// Every rooted path above as one trie, for [`Mapping::render_json`].
    plan: scan::Plan,
}

/// Why one event could not be rendered (the caller dead-letters it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The bytes are not one JSON value; the message is serde_json's, with line and column.
    #[error("the event is not valid JSON: {0}")]
    Json(String),
    #[error("the event is {found}, not a JSON object; mappings render objects only")]
    NotAnObject { found: &'static str },
    #[error("required key '{key}' has no value: {from} is missing or empty in the event")]
    Missing { key: String, from: String },
    #[error("required key '{key}': {value:?} from {from} is not {expected}")]
    Invalid {
        key: String,
        from: String,
        value: String,
        expected: &'static str,
    },
}

impl Mapping {
    /// Reads and compiles one mapping file. All problems at once.
    pub fn load(path: &FsPath) -> Result<Mapping, MappingErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Mapping::compile(path, &text),
            Err(e) => Err(MappingErrors {
                diagnostics: vec![Diagnostic {
                    file: path.to_path_buf(),
                    position: Some(diag::Position { line: 1, column: 1 }),
                    message: format!("cannot read mapping file: {e}"),
                    hint: None,
                }],
            }),
        }
    }

    /// Compiles text; `origin` is the file name used in diagnostics.
    pub fn compile(origin: &FsPath, text: &str) -> Result<Mapping, MappingErrors> {
        compile::compile(origin, text)
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The file this mapping was compiled from.
    pub fn origin(&self) -> &FsPath {
        &self.origin
    }

    /// The extension keys in output order (routed IPv6 keys and labels not included).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| &*f.key)
    }

    /// Appends the CEF/LEEF payload for one event (no syslog header, no trailing newline) to
    /// `out`. Pure: no I/O, no clock. Never emits CR or LF. On error `out` is left as it was.
    /// The event is written out as JSON and rendered by [`Mapping::render_json`], the one path
    /// that destinations and `siemcast render` use.
    pub fn render(&self, event: &Value, out: &mut Vec<u8>) -> Result<(), RenderError> {
        let json = serde_json::to_vec(event).map_err(|e| RenderError::Json(e.to_string()))?;
        self.render_json(&json, out)
    }

    /// Reference for tests only, not a renderer of the product: the same rendering as
    /// [`Mapping::render_json`] with every path resolved on a parsed `Value` tree instead of
    /// the single-pass scan, so tests can check that the scan resolves paths exactly as
    /// serde_json's `Value` does.
    #[doc(hidden)]
    pub fn render_tree(&self, event: &Value, out: &mut Vec<u8>) -> Result<(), RenderError> {
        if !event.is_object() {
            return Err(RenderError::NotAnObject {
                found: kind_of(event),
            });
        }
        self.render_doc(event, out)
    }

    /// Renders the event in `json` (one JSON object, UTF-8) without building a `Value`: one
    /// pass over the bytes keeps only what the mapping's paths reach. The result, output or
    /// error, is exactly that of `render_tree(&serde_json::from_slice(json)?, out)`; invalid JSON is
    /// [`RenderError::Json`] with serde_json's message. On error `out` is left as it was.
    pub fn render_json(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), RenderError> {
        self.render_body(json, false, out)
    }

    /// [`Mapping::render_json`] for a body that may have been `checked` as JSON when it entered
    /// the spool (`EventView::checked`): then its bytes are walked without checking them again,
    /// with the same result (and checked after all if the walk finds them not well-formed).
    /// Unchecked bytes are checked as they are walked; serde_json decides where the walk is not
    /// sure. Same output and errors either way.
    pub fn render_body(
        &self,
        json: &[u8],
        checked: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        self.render_scanned(self.scan(json, checked)?, out)
    }

    /// For tests only: [`Mapping::render_body`] of a checked body by the unchecking walk alone,
    /// `None` where that walk gives up (and `render_body` would check the bytes instead).
    #[doc(hidden)]
    pub fn render_checked_walk(
        &self,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Result<(), RenderError>> {
        Some(self.render_scanned(scan::scan_checked(&self.plan, json)?, out))
    }

    /// For tests only: rendering by the checking walk of not yet checked bytes (what the
    /// sources' id and time read uses), `None` where it is not sure serde_json accepts them.
    #[doc(hidden)]
    pub fn render_checking_walk(
        &self,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Result<(), RenderError>> {
        Some(self.render_scanned(scan::scan_checking(&self.plan, json)?, out))
    }

    fn render_scanned(
        &self,
        doc: scan::Scanned<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        if doc.root != "an object" {
            return Err(RenderError::NotAnObject { found: doc.root });
        }
        self.render_doc(&doc, out)
    }

    fn scan<'p, 'de>(
        &'p self,
        json: &'de [u8],
        checked: bool,
    ) -> Result<scan::Scanned<'p, 'de>, RenderError> {
        // The walks are several times cheaper than serde_json's deserializer; where they give
        // up (see `scan/walk.rs`), serde_json decides and words the error.
        let walked = if checked {
            scan::scan_checked(&self.plan, json)
        } else {
            scan::scan_checking(&self.plan, json)
        };
        match walked {
            Some(doc) => Ok(doc),
            None => scan::scan(&self.plan, json).map_err(|e| RenderError::Json(e.to_string())),
        }
    }

    /// Makes [`Mapping::render_json_unless`]'s single scan also collect the values at `extra`
    /// (a destination's filter conditions), giving those paths their ids in this mapping's plan:
    /// they resolve only against documents of this mapping from then on.
    pub(crate) fn also_scan(&mut self, extra: &mut [&mut JsonPath]) {
        self.plan = scan::Plan::build(
            &mut self.header,
            &mut self.variants,
            &mut self.fields,
            extra,
        );
    }

    /// [`Mapping::render_json`], unless `skip` (given the scanned event, on which the paths
    /// passed to [`Mapping::also_scan`] resolve) says otherwise: then nothing is rendered and its
    /// answer is returned. One scan of the bytes serves both.
    pub(crate) fn render_json_unless<T>(
        &self,
        json: &[u8],
        checked: bool,
        out: &mut Vec<u8>,
        skip: impl FnOnce(&dyn Doc) -> Option<T>,
    ) -> Result<Option<T>, RenderError> {
        let doc = self.scan(json, checked)?;
        if doc.root != "an object" {
            return Err(RenderError::NotAnObject { found: doc.root });
        }
        if let Some(answer) = skip(&doc) {
            return Ok(Some(answer));
        }
        self.render_doc(&doc, out)?;
        Ok(None)
    }

    fn render_doc<D: Doc>(&self, ev: &D, out: &mut Vec<u8>) -> Result<(), RenderError> {
        let start = out.len();
        let result = self.render_inner(ev, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn render_inner<D: Doc>(&self, ev: &D, out: &mut Vec<u8>) -> Result<(), RenderError> {
        let mut scratch = String::new();
        // For a later value of `first = [...]` when the first does not convert (rarely used).
        let mut spare = String::new();
        let variant = self.variants.iter().find(|v| v.when.matches(ev));
        let spec = |slot: usize| {
            variant
                .and_then(|v| v.header[slot].as_ref())
                .or(self.header[slot].as_ref())
        };
        let leef = self.format != Format::Cef;
        let delim = self.format.leef_delimiter();
        if leef {
            leef::start(out, matches!(self.format, Format::Leef2 { .. }));
            for slot in [VENDOR, PRODUCT, VERSION, CLASS_ID] {
                let s = spec(slot)
                    .and_then(|s| s.resolve(ev, &mut scratch))
                    .unwrap_or("");
                leef::header_field(out, s);
            }
            if let Format::Leef2 { .. } = self.format {
                leef::delimiter_field(out, delim);
            }
        } else {
            cef::start(out);
            for slot in [VENDOR, PRODUCT, VERSION, CLASS_ID, NAME] {
                let s = spec(slot)
                    .and_then(|s| s.resolve(ev, &mut scratch))
                    .unwrap_or("");
                cef::header_field(out, s, cef::HEADER_MAX[slot]);
            }
            let sev = spec(SEVERITY)
                .and_then(|s| s.resolve(ev, &mut scratch))
                .unwrap_or("");
            match convert(Convert::Severity, sev) {
                Some(c) => out.extend_from_slice(c.as_str().as_bytes()),
                None => out.extend_from_slice(b"Unknown"),
            }
            out.push(b'|');
        }

        let mut emitted: u128 = 0;
        let mut first = true;
        for f in &self.fields {
            if emitted & (1u128 << f.slot) != 0 {
                continue;
            }
            if let Some(w) = &f.when {
                if !w.matches(ev) {
                    continue;
                }
            }
            let Some(raw) = f.value.resolve(ev, &mut scratch) else {
                if f.required {
                    return Err(missing(f));
                }
                continue;
            };
            let conv = match convert(f.convert, raw) {
                None if f.convert != Convert::Text => {
                    f.value.later_converting(ev, &mut spare, f.convert)
                }
                conv => conv,
            };
            let Some(conv) = conv else {
                if f.required {
                    return Err(RenderError::Invalid {
                        key: f.key.to_string(),
                        from: f.value.describe.to_string(),
                        value: text::truncate_chars(raw, 64).to_string(),
                        expected: f.convert.expects(),
                    });
                }
                continue;
            };
            let routed = match &conv {
                Converted::V6(_) if f.v4_only => f.ipv6.as_ref().map(|r| (r.key, r.slot, r.label)),
                Converted::Buf(_) if f.v6_only => None,
                _ => Some(("", f.slot, "")),
            };
            let Some((rkey, slot, rlabel)) = routed else {
                if f.required {
                    return Err(RenderError::Invalid {
                        key: f.key.to_string(),
                        from: f.value.describe.to_string(),
                        value: conv.as_str().to_string(),
                        expected: if f.v4_only {
                            "an IPv4 address"
                        } else {
                            "an IPv6 address"
                        },
                    });
                }
                continue;
            };
            let (key, label) = if rkey.is_empty() {
                (&*f.key, f.label.as_ref().map(|(k, l)| (&**k, &**l)))
            } else {
                let lk = f.ipv6.as_ref().map_or("", |r| r.label_key);
                (rkey, Some((lk, rlabel)))
            };
            if emitted & (1u128 << slot) != 0 {
                continue;
            }
            let written = if leef {
                let ok = leef::pair(out, first, delim, key, conv.as_str(), f.max_chars);
                if ok && f.convert == Convert::LeefTime {
                    leef::pair(
                        out,
                        false,
                        delim,
                        "devTimeFormat",
                        value::LEEF_TIME_FORMAT,
                        64,
                    );
                }
                ok
            } else {
                let ok = cef::pair(out, first, key, conv.as_str(), f.max_chars);
                if ok {
                    if let Some((lk, lv)) = label {
                        cef::pair(out, false, lk, lv, usize::MAX);
                    }
                }
                ok
            };
            if written {
                first = false;
                emitted |= 1u128 << slot;
            } else if f.required {
                return Err(missing(f));
            }
        }
        Ok(())
    }
}

fn missing(f: &Field) -> RenderError {
    RenderError::Missing {
        key: f.key.to_string(),
        from: f.value.describe.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The mappings of one destination: `<dir>/<kind>.toml` for each source kind it serves.
#[derive(Debug, Clone)]
pub struct MappingSet {
    by_kind: BTreeMap<String, Mapping>,
    /// Kinds whose file is missing, rendered with their stand-in's mapping: (kind, stand-in).
    stand_ins: Vec<(String, String)>,
}

impl MappingSet {
    /// Loads `<dir>/<kind>.toml` for each kind; collects every file's errors (a missing file is
    /// a diagnostic naming its path). A streamed kind added by a later release whose file is
    /// missing from a folder made before it (see `EventKind::stand_in`) is rendered with its
    /// stand-in's file instead, and listed in [`MappingSet::stand_ins`]: an upgrade does not
    /// stop a destination whose folder was copied from an older release.
    pub fn load(dir: &FsPath, kinds: &[&str]) -> Result<MappingSet, MappingErrors> {
        let mut by_kind = BTreeMap::new();
        let mut stand_ins = Vec::new();
        let mut diagnostics = Vec::new();
        for kind in kinds {
            let file = dir.join(format!("{kind}.toml"));
            let stand_in = kind
                .parse::<crate::event::EventKind>()
                .ok()
                .and_then(crate::event::EventKind::stand_in)
                .filter(|s| !file.exists() && dir.join(format!("{s}.toml")).is_file());
            if let Some(s) = stand_in {
                stand_ins.push(((*kind).to_string(), s.as_str().to_string()));
                continue;
            }
            match Mapping::load(&file) {
                Ok(m) => {
                    by_kind.insert((*kind).to_string(), m);
                }
                Err(e) => diagnostics.extend(e.diagnostics),
            }
        }
        for (kind, s) in &stand_ins {
            let m = match by_kind.get(s) {
                Some(m) => m.clone(),
                None => match Mapping::load(&dir.join(format!("{s}.toml"))) {
                    Ok(m) => m,
                    Err(e) => {
                        diagnostics.extend(e.diagnostics);
                        continue;
                    }
                },
            };
            by_kind.insert(kind.clone(), m);
        }
        if diagnostics.is_empty() {
            Ok(MappingSet { by_kind, stand_ins })
        } else {
            Err(MappingErrors { diagnostics })
        }
    }

    /// The kinds rendered with a stand-in's file because theirs is missing: (kind, stand-in).
    pub fn stand_ins(&self) -> &[(String, String)] {
        &self.stand_ins
    }

    /// The mapping for a source kind.
    pub fn get(&self, kind: &str) -> Option<&Mapping> {
        self.by_kind.get(kind)
    }

    /// The mapping for a source kind, to extend its scan (see [`Mapping::also_scan`]).
    pub(crate) fn get_mut(&mut self, kind: &str) -> Option<&mut Mapping> {
        self.by_kind.get_mut(kind)
    }

    /// The source kinds loaded.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.by_kind.keys().map(String::as_str)
    }
}
