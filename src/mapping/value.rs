//! Compiled value sources (path, literal, template, first-non-empty, array select), lookup
//! tables, defaults, `when` conditions and typed conversions. Resolution borrows from the event
//! where it can and otherwise writes into one scratch string reused across the event's fields.

use std::fmt::Write as _;

use serde_json::Value;

use super::doc::{append, is_present, present_value, scalar_eq, text_of, value_eq, Doc, Node};
use super::path::{Part, Path};

/// Where a value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Literal(Box<str>),
    Path(Path),
    First(Box<[Path]>),
    Template(Box<[Part]>),
    Select(Box<Select>),
}

/// `select = { from = "entities", where = "type", is = "ip", get = "address" }`.
#[derive(Debug, Clone)]
pub(crate) struct Select {
    pub(crate) from: Path,
    pub(crate) by: Path,
    pub(crate) is: Box<[Box<str>]>,
    pub(crate) get: Option<Path>,
}

/// A value source plus its lookup table, fallbacks and array join text.
#[derive(Debug, Clone)]
pub(crate) struct ValueSpec {
    pub(crate) source: Source,
    /// Lookup table; keys match case-insensitively (ASCII).
    pub(crate) map: Box<[(Box<str>, Box<str>)]>,
    /// Used when the value is present but not in `map` (otherwise it passes through).
    pub(crate) otherwise: Option<Box<str>>,
    /// Used when the source yields nothing (missing, null, empty or blank).
    pub(crate) default: Option<Box<str>>,
    pub(crate) join: Box<str>,
    /// `pattern = "…"`: only the text of its one capture group is kept (the value's first match;
    /// no match: no value), before the table; e.g. the addresses inside a log line.
    pub(crate) pattern: Option<regex::Regex>,
    /// How to name this source in render errors.
    pub(crate) describe: Box<str>,
}

impl ValueSpec {
    /// A literal with no table.
    pub(crate) fn literal(s: &str) -> ValueSpec {
        ValueSpec {
            source: Source::Literal(s.into()),
            map: Box::new([]),
            otherwise: None,
            default: None,
            join: ",".into(),
            pattern: None,
            describe: format!("literal {s:?}").into(),
        }
    }

    /// The text of this value for `ev`, after table and defaults; `None` when there is none.
    pub(crate) fn resolve<'a, D: Doc>(
        &'a self,
        ev: &'a D,
        scratch: &'a mut String,
    ) -> Option<&'a str> {
        self.resolve_nth(ev, scratch, 0)
    }

    /// For a typed key whose first present value does not convert: the first later value of
    /// `first = [...]` that does (an unreadable time in the first field must not hide a
    /// readable one after it). `None` for other sources, or when no later value converts.
    pub(crate) fn later_converting<'a, D: Doc>(
        &'a self,
        ev: &'a D,
        spare: &'a mut String,
        conv: Convert,
    ) -> Option<Converted<'a>> {
        if !matches!(&self.source, Source::First(paths) if paths.len() > 1) {
            return None;
        }
        // Found first, then resolved again: a value borrowed from `spare` cannot leave a loop
        // that goes on borrowing it.
        let mut nth = 1;
        loop {
            match self.resolve_nth(ev, spare, nth) {
                None => return None,
                Some(raw) if convert(conv, raw).is_some() => break,
                Some(_) => nth += 1,
            }
        }
        convert(conv, self.resolve_nth(ev, spare, nth)?)
    }

    /// [`ValueSpec::resolve`] with, for `first = [...]`, the `nth` present path (0: the
    /// first); other sources have only a 0th. `default` applies to the 0th alone.
    fn resolve_nth<'a, D: Doc>(
        &'a self,
        ev: &'a D,
        scratch: &'a mut String,
        nth: usize,
    ) -> Option<&'a str> {
        if nth > 0 && !matches!(self.source, Source::First(_)) {
            return None;
        }
        let raw: Option<&'a str> = match &self.source {
            Source::Literal(s) => Some(s),
            Source::Path(p) if p.fans_out() => self.join_each(ev, p, scratch),
            Source::Path(p) => text_of(ev.at(p), &self.join, scratch),
            Source::First(paths) => {
                let found = paths
                    .iter()
                    .map(|p| ev.at(p))
                    .filter(|v| is_present(*v))
                    .nth(nth);
                text_of(found.flatten(), &self.join, scratch)
            }
            Source::Template(parts) => {
                scratch.clear();
                let mut any = false;
                for part in parts.iter() {
                    match part {
                        Part::Text(t) => scratch.push_str(t),
                        Part::Path(p) => {
                            if let Some(v) = ev.at(p) {
                                any |= is_present(Some(v));
                                append(v, &self.join, scratch);
                            }
                        }
                    }
                }
                if any {
                    Some(scratch.as_str())
                } else {
                    None
                }
            }
            Source::Select(sel) => text_of(sel.find(ev), &self.join, scratch),
        };
        let raw = match (&self.pattern, raw) {
            (Some(re), Some(r)) => re.captures(r).and_then(|c| c.get(1)).map(|m| m.as_str()),
            (_, raw) => raw,
        };
        match raw {
            // Blank (only spaces and controls) counts as empty, so `default` applies.
            Some(r) if !r.bytes().all(super::text::is_blank) => {
                if self.map.is_empty() {
                    return Some(r);
                }
                let r_trim = r.trim();
                match self
                    .map
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(r_trim))
                {
                    Some((_, v)) => Some(v),
                    None => Some(self.otherwise.as_deref().unwrap_or(r)),
                }
            }
            _ if nth > 0 => None,
            _ => self.default.as_deref(),
        }
    }
}

impl ValueSpec {
    /// Every present value a `[*]` path reaches, each distinct text once, joined by `join`.
    fn join_each<'a, D: Doc>(&self, ev: &'a D, p: &Path, out: &'a mut String) -> Option<&'a str> {
        out.clear();
        // Where each text written so far lies in `out`.
        let mut items: Vec<(usize, usize)> = Vec::new();
        let mut item = String::new();
        ev.each(p, &mut |v| {
            if !is_present(Some(v)) {
                return;
            }
            item.clear();
            append(v, &self.join, &mut item);
            if items.iter().any(|&(a, b)| out[a..b] == *item) {
                return;
            }
            if !items.is_empty() {
                out.push_str(&self.join);
            }
            items.push((out.len(), out.len() + item.len()));
            out.push_str(&item);
        });
        (!items.is_empty()).then_some(out.as_str())
    }
}

impl Select {
    /// The first element of `from` whose `where` value is in `is` and whose `get` is present.
    fn find<'a, D: Doc>(&self, ev: &'a D) -> Option<Node<'a>> {
        let Some(Node::Val(Value::Array(items))) = ev.at(&self.from) else {
            return None;
        };
        items.iter().find_map(|item| {
            let key = self.by.get(item)?;
            if !self.is.iter().any(|want| value_eq(key, want)) {
                return None;
            }
            let v = match &self.get {
                Some(g) => g.get(item)?,
                None => item,
            };
            present_value(v).then_some(Node::Val(v))
        })
    }
}

/// A `when` selector.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub(crate) path: Path,
    pub(crate) test: Test,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// Present and equal to one of these.
    Is(Box<[Box<str>]>),
    /// Missing, or equal to none of these.
    Not(Box<[Box<str>]>),
    /// Present (non-empty) or not.
    Exists(bool),
    /// A scalar whose text matches: a glob (`*/read`, compiled to a case-insensitive regex) or
    /// a regular expression. Filter rules only; mapping files do not offer it.
    Matches(regex::Regex),
    /// A glob whose only `*` are at its ends and that is ASCII without `?` (`*/read`,
    /// `Microsoft.Storage/*`): compared as ASCII text without regard to case, far cheaper than
    /// a case-insensitive regex search. Filter rules only.
    Glob(SimpleGlob),
    /// A number (or a string holding one) that compares so with the bound. Filter rules only.
    Compare(Compare, f64),
}

/// A glob of the form `text`, `text*`, `*text` or `*text*` with ASCII `text` (kept lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimpleGlob {
    text: Box<[u8]>,
    open_start: bool,
    open_end: bool,
}

impl SimpleGlob {
    /// The glob, when it has that form.
    pub(crate) fn new(glob: &str) -> Option<SimpleGlob> {
        let (body, open_start) = match glob.strip_prefix('*') {
            Some(b) => (b, true),
            None => (glob, false),
        };
        let (body, open_end) = match body.strip_suffix('*') {
            Some(b) => (b, true),
            None => (body, false),
        };
        // Case folding beyond ASCII (the Kelvin sign is a `k`) is left to the regex.
        let simple = body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation() || b == b' ')
            && !body.contains(['*', '?']);
        simple.then(|| SimpleGlob {
            text: body.to_ascii_lowercase().into_bytes().into(),
            open_start,
            open_end,
        })
    }

    pub(crate) fn is_match(&self, t: &str) -> bool {
        let (t, p) = (t.as_bytes(), &*self.text);
        if t.len() < p.len() {
            return false;
        }
        let at = |i: usize| t[i..i + p.len()].eq_ignore_ascii_case(p);
        match (self.open_start, self.open_end) {
            (false, false) => t.len() == p.len() && at(0),
            (false, true) => at(0),
            (true, false) => at(t.len() - p.len()),
            (true, true) => (0..=t.len() - p.len()).any(at),
        }
    }
}

/// A numeric comparison of a `when` selector: `gt`, `ge`, `lt`, `le`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cond {
    pub(crate) fn matches<D: Doc + ?Sized>(&self, ev: &D) -> bool {
        let v = ev.at(&self.path);
        match &self.test {
            Test::Is(list) => v.is_some_and(|v| list.iter().any(|w| scalar_eq(v, w))),
            Test::Not(list) => !v.is_some_and(|v| list.iter().any(|w| scalar_eq(v, w))),
            Test::Exists(want) => is_present(v) == *want,
            Test::Matches(re) => v.is_some_and(|v| scalar_text(v, |t| re.is_match(t))),
            Test::Glob(g) => v.is_some_and(|v| scalar_text(v, |t| g.is_match(t))),
            Test::Compare(op, bound) => v.and_then(scalar_number).is_some_and(|n| match op {
                Compare::Gt => n > *bound,
                Compare::Ge => n >= *bound,
                Compare::Lt => n < *bound,
                Compare::Le => n <= *bound,
            }),
        }
    }
}

/// Calls `f` with the text of a scalar (string, number, boolean); false for null, arrays and
/// objects.
fn scalar_text(v: Node<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    match v {
        Node::Str(s) => f(s),
        Node::Val(Value::String(s)) => f(s),
        Node::Val(Value::Bool(b)) => f(if *b { "true" } else { "false" }),
        Node::Val(Value::Number(n)) => f(&n.to_string()),
        Node::Val(_) => false,
    }
}

/// The number a scalar holds: a JSON number, or a string that parses as one.
fn scalar_number(v: Node<'_>) -> Option<f64> {
    match v {
        Node::Str(s) => s.trim().parse().ok(),
        Node::Val(Value::String(s)) => s.trim().parse().ok(),
        Node::Val(Value::Number(n)) => n.as_f64(),
        Node::Val(_) => None,
    }
}

/// Typed conversions applied to a resolved value before encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Convert {
    Text,
    EpochMs,
    LeefTime,
    Ip,
    Int,
    Port,
    Mac,
    Number,
    Bool,
    /// The first 40 hex digits (160 bits) of the value's SHA-256: a stable id that fits
    /// 40-character keys such as CEF `externalId` when the real id is longer.
    Hash,
    /// The value itself when it has at most 40 characters, else its [`Convert::Hash`]: a
    /// record id that stays readable when it fits a 40-character key and is never cut.
    Id,
    /// CEF header severity: 0–10 or Unknown/Low/Medium/High/Very-High.
    Severity,
    /// LEEF `sev`: 1–10.
    LeefSev,
}

impl Convert {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "text",
        "epoch_ms",
        "leef_time",
        "ip",
        "int",
        "port",
        "mac",
        "number",
        "bool",
        "hash",
        "id",
        "severity",
    ];

    pub(crate) fn parse(s: &str) -> Option<Convert> {
        Some(match s {
            "text" => Convert::Text,
            "epoch_ms" => Convert::EpochMs,
            "leef_time" => Convert::LeefTime,
            "ip" => Convert::Ip,
            "int" => Convert::Int,
            "port" => Convert::Port,
            "mac" => Convert::Mac,
            "number" => Convert::Number,
            "bool" => Convert::Bool,
            "hash" => Convert::Hash,
            "id" => Convert::Id,
            "severity" => Convert::Severity,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Convert::Text => "text",
            Convert::EpochMs => "epoch_ms",
            Convert::LeefTime => "leef_time",
            Convert::Ip => "ip",
            Convert::Int => "int",
            Convert::Port => "port",
            Convert::Mac => "mac",
            Convert::Number => "number",
            Convert::Bool => "bool",
            Convert::Hash => "hash",
            Convert::Id => "id",
            Convert::Severity | Convert::LeefSev => "severity",
        }
    }

    /// What a failed conversion expected, for render errors.
    pub(crate) fn expects(self) -> &'static str {
        match self {
            Convert::Text => "text",
            Convert::EpochMs | Convert::LeefTime => {
                "a timestamp (RFC 3339, US month/day/year, or epoch digits)"
            }
            Convert::Ip => "an IP address",
            Convert::Int => "an integer",
            Convert::Port => "a port number 0-65535",
            Convert::Mac => "a MAC address",
            Convert::Number => "a number",
            Convert::Bool => "true or false",
            Convert::Hash | Convert::Id => "text",
            Convert::Severity | Convert::LeefSev => "a severity",
        }
    }
}

/// A small stack buffer for converted values (numbers, times, addresses).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buf {
    b: [u8; 64],
    n: usize,
}

impl Buf {
    pub(crate) fn new() -> Buf {
        Buf { b: [0; 64], n: 0 }
    }
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII and `str` pieces are ever written.
        std::str::from_utf8(&self.b[..self.n]).unwrap_or("")
    }
}

impl std::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.n + s.len();
        if end > self.b.len() {
            return Err(std::fmt::Error);
        }
        self.b[self.n..end].copy_from_slice(s.as_bytes());
        self.n = end;
        Ok(())
    }
}

/// The result of a conversion.
#[derive(Debug)]
pub(crate) enum Converted<'a> {
    Text(&'a str),
    Buf(Buf),
    /// An IPv6 address (for CEF IPv4 keys: goes to the routed `c6a*` key).
    V6(Buf),
}

impl Converted<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Converted::Text(s) => s,
            Converted::Buf(b) | Converted::V6(b) => b.as_str(),
        }
    }
}

/// The longest id `convert = "id"` passes as it is: the length of a hash.
const ID_CHARS: usize = 40;

/// Applies `conv` to `s`; `None` when the value does not convert (the key is then omitted).
pub(crate) fn convert(conv: Convert, s: &str) -> Option<Converted<'_>> {
    let mut buf = Buf::new();
    let t = s.trim();
    match conv {
        Convert::Text => return Some(Converted::Text(s)),
        Convert::EpochMs => {
            write!(buf, "{}", crate::parse::time_ms(t)?).ok()?;
        }
        Convert::LeefTime => {
            write_leef_time(&mut buf, parse_time(t)?)?;
        }
        // A plain dotted quad is its own canonical form (the standard parser refuses leading
        // zeros and anything else), so it is written as given rather than formatted again.
        Convert::Ip if t.parse::<std::net::Ipv4Addr>().is_ok() => {
            return Some(Converted::Text(t));
        }
        Convert::Ip => {
            let ip = crate::parse::ip(t)?;
            write!(buf, "{ip}").ok()?;
            if ip.is_ipv6() {
                return Some(Converted::V6(buf));
            }
        }
        Convert::Int => {
            write!(buf, "{}", parse_int(t)?).ok()?;
        }
        Convert::Port => {
            let n = parse_int(t)?;
            let p = u16::try_from(n).ok()?;
            write!(buf, "{p}").ok()?;
        }
        Convert::Mac => write_mac(&mut buf, t)?,
        Convert::Id if !t.is_empty() && t.chars().count() <= ID_CHARS => {
            return Some(Converted::Text(t));
        }
        Convert::Hash | Convert::Id => {
            if t.is_empty() {
                return None;
            }
            let digest = ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
            for b in &digest.as_ref()[..20] {
                write!(buf, "{b:02x}").ok()?;
            }
        }
        Convert::Number => {
            let f: f64 = t.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            write!(buf, "{f}").ok()?;
        }
        Convert::Bool => {
            let v = if t.eq_ignore_ascii_case("true") {
                "true"
            } else if t.eq_ignore_ascii_case("false") {
                "false"
            } else {
                return None;
            };
            return Some(Converted::Text(v));
        }
        Convert::Severity => {
            if let Some(n) = parse_sev_number(t) {
                write!(buf, "{}", n.clamp(0, 10)).ok()?;
            } else {
                let word = ["Unknown", "Low", "Medium", "High", "Very-High"]
                    .into_iter()
                    .find(|w| w.eq_ignore_ascii_case(t))
                    .unwrap_or("Unknown");
                return Some(Converted::Text(word));
            }
        }
        Convert::LeefSev => {
            write!(buf, "{}", parse_sev_number(t)?.clamp(1, 10)).ok()?;
        }
    }
    Some(Converted::Buf(buf))
}

fn parse_sev_number(t: &str) -> Option<i64> {
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    let f: f64 = t.parse().ok()?;
    // Clamp before casting so huge values stay in range; NaN fails the parse-as-number test.
    f.is_finite().then(|| f.round().clamp(-1.0, 11.0) as i64)
}

/// Decimal or `0x` hex integers (Defender reports process ids as `0x1a2c`).
pub(crate) fn parse_int(t: &str) -> Option<i64> {
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    t.parse().ok()
}

/// A time in any form [`crate::parse::time_ms`] reads.
fn parse_time(t: &str) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(crate::parse::time_ms(t)?).ok()
}

/// The LEEF devTimeFormat siemcast writes with `convert = "leef_time"`.
pub(crate) const LEEF_TIME_FORMAT: &str = "MMM dd yyyy HH:mm:ss.SSS z";

/// `Mar 04 2025 09:15:22.123 GMT` (English months, UTC).
fn write_leef_time(buf: &mut Buf, ts: jiff::Timestamp) -> Option<()> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let month = MONTHS[usize::try_from(dt.month() - 1).ok()?];
    write!(
        buf,
        "{month} {:02} {:04} {:02}:{:02}:{:02}.{:03} GMT",
        dt.day(),
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1_000_000
    )
    .ok()
}

/// Six hex pairs separated by `:` or `-` (or twelve bare hex digits) → `AA:BB:CC:DD:EE:FF`.
fn write_mac(buf: &mut Buf, t: &str) -> Option<()> {
    let hex: Vec<u8> = t.bytes().filter(|b| *b != b':' && *b != b'-').collect();
    let seps = t.len() - hex.len();
    if hex.len() != 12 || !(seps == 0 || seps == 5) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if seps == 5
        && !t
            .as_bytes()
            .chunks(3)
            .all(|c| c.len() == 2 || matches!(c[2], b':' | b'-'))
    {
        return None;
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        if i > 0 {
            buf.write_str(":").ok()?;
        }
        let up = [pair[0].to_ascii_uppercase(), pair[1].to_ascii_uppercase()];
        buf.write_str(std::str::from_utf8(&up).ok()?).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests;
