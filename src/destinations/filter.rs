//! Filter rules: which events a destination drops, keeps or samples, by source name, event kind
//! and conditions on the event's fields (the mapping files' `when` selectors, plus glob and
//! regular-expression matches and numeric comparisons, evaluated by the mapping's own code on
//! the same single scan that renders the event). First matching rule wins; default keep.
//! Sampling is decided by a hash of the event's record id, so a resend after a crash or a
//! reload decides the same way.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::config::KeyPath;
use crate::destinations::route::kind_pattern;
use crate::event::EventKind;
use crate::mapping::{Compare, Cond, Doc, JsonPath, SimpleGlob, Test};

const KINDS: usize = EventKind::ALL.len();

/// The keys of one `when` condition.
const WHEN_KEYS: [&str; 10] = [
    "path", "is", "not", "exists", "matches", "regex", "gt", "ge", "lt", "le",
];
/// The keys that say what a condition tests; exactly one per condition.
const TESTS: [&str; 9] = [
    "is", "not", "exists", "matches", "regex", "gt", "ge", "lt", "le",
];

/// One `[[destination.rule]]` (or `[[rule]]` of a rules file), as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleConfig {
    /// Unique per destination; the `rule` label of the filtered-events metric.
    #[serde(default)]
    pub name: String,
    /// `drop`, `keep` or `sample` (checked when compiled, so a typo is one problem, not two).
    pub action: Option<String>,
    /// For `action = "sample"`: keep one event in this many.
    pub keep_one_in: Option<u64>,
    /// The rule applies only to events of these sources (all if absent).
    pub sources: Option<Vec<String>>,
    /// The rule applies only to events of these kinds (all if absent); as `kinds` of a route.
    pub kinds: Option<Vec<String>>,
    /// One condition table or a list of them (all must hold); compiled by [`compile`].
    pub when: Option<Value>,
}

/// A rules file: `[[rule]]` entries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RulesFile {
    #[serde(default)]
    pub rule: Vec<RuleConfig>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Drop,
    Keep,
    /// Keep the events whose id hashes to 0 modulo this (at least 2).
    Sample(u64),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Drop => f.write_str("drop"),
            Action::Keep => f.write_str("keep"),
            Action::Sample(n) => write!(f, "sample 1 in {n}"),
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    name: Box<str>,
    action: Action,
    sources: Option<Box<[Box<str>]>>,
    /// Indexed by `EventKind as usize`.
    kinds: [bool; KINDS],
    when: Box<[Cond]>,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn action(&self) -> Action {
        self.action
    }

    #[inline]
    fn takes_source(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| **s == *source))
    }
}

/// A destination's rules, in order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// What the rules decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Dropped or sampled out by the rule at this index of the set.
    Filtered(usize),
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// These rules, then `more`'s.
    pub fn chain(mut self, more: RuleSet) -> RuleSet {
        self.rules.extend(more.rules);
        self
    }

    /// What `siemcast check` prints: `3 rules: noise-reads (drop), probes (drop), bulk (sample
    /// 1 in 10)`, or `no filter rules`.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            return "no filter rules: every event it takes is sent".to_owned();
        }
        let list: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("{} ({})", r.name, r.action))
            .collect();
        let n = self.rules.len();
        format!(
            "{n} filter rule{}, first match wins: {}",
            if n == 1 { "" } else { "s" },
            list.join(", ")
        )
    }

    /// The rules that can apply to events of `kind`, with the paths of their conditions, for
    /// [`KindRules`]: the caller gives those paths their ids in the kind's mapping plan.
    pub fn for_kind(&self, kind: EventKind) -> KindRules {
        let rules: Vec<(usize, Rule)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kinds[kind as usize])
            .map(|(i, r)| (i, r.clone()))
            .collect();
        KindRules { rules }
    }
}

/// The rules of a destination that apply to one event kind (in order, each with its index in
/// the destination's [`RuleSet`]), their condition paths planned into that kind's mapping.
#[derive(Debug, Clone, Default)]
pub struct KindRules {
    rules: Vec<(usize, Rule)>,
}

impl KindRules {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every condition path, to plan into the kind's mapping scan.
    pub(crate) fn paths_mut(&mut self) -> Vec<&mut JsonPath> {
        self.rules
            .iter_mut()
            .flat_map(|(_, r)| r.when.iter_mut().map(|c| &mut c.path))
            .collect()
    }

    /// The verdict when it does not depend on the event's fields: the first rule that applies
    /// to `source` has no conditions (or no rule applies). `None`: the body must be read.
    #[inline]
    pub fn decide_early(&self, source: &str, id: &str) -> Option<Verdict> {
        for (i, r) in &self.rules {
            if !r.takes_source(source) {
                continue;
            }
            if !r.when.is_empty() {
                return None;
            }
            return Some(apply(r.action, *i, id));
        }
        Some(Verdict::Keep)
    }

    /// The verdict of the first rule that matches the event (`doc`: its scanned fields).
    #[inline]
    pub(crate) fn decide(&self, source: &str, id: &str, doc: &dyn Doc) -> Verdict {
        for (i, r) in &self.rules {
            if r.takes_source(source) && r.when.iter().all(|c| c.matches(doc)) {
                return apply(r.action, *i, id);
            }
        }
        Verdict::Keep
    }
}

#[inline]
fn apply(action: Action, index: usize, id: &str) -> Verdict {
    match action {
        Action::Keep => Verdict::Keep,
        Action::Drop => Verdict::Filtered(index),
        Action::Sample(n) if sample_bucket(id, n) == 0 => Verdict::Keep,
        Action::Sample(_) => Verdict::Filtered(index),
    }
}

/// The bucket in `0..n` of a record id: FNV-1a 64 of its bytes, mixed by the SplitMix64
/// finalizer so that every bit of the id moves the low bits. Stable across runs, builds and
/// machines (no seed): the same id always gets the same sampling decision.
pub fn sample_bucket(id: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h % n.max(1)
}

/// What the rules are checked against: the configuration's source names, and the event kinds
/// the sources routed to the destination produce.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub sources: &'a [&'a str],
    pub kinds: &'a [EventKind],
}

/// Compiles `rules` (written at `at`, the path of the rule array); every problem is returned
/// with the key path it is about.
pub fn compile(
    rules: &[RuleConfig],
    at: &KeyPath,
    cx: Context<'_>,
) -> (RuleSet, Vec<(KeyPath, String)>) {
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut set = RuleSet::default();
    for (i, r) in rules.iter().enumerate() {
        let at = at.index(i);
        let who = if r.name.is_empty() {
            format!("rule #{}", i + 1)
        } else {
            format!("rule \"{}\"", r.name)
        };
        let before = problems.len();
        if r.name.is_empty() {
            problems.push((at.clone(), format!("{who}: name is missing; it is the rule label of siemcast_destination_events_filtered_total")));
        } else if r.name == crate::destinations::route::ROUTE_RULE {
            problems.push((at.key("name"), format!("{who}: the name \"route\" is taken by events outside the destination's sources/kinds; choose another")));
        } else if !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            problems.push((
                at.key("name"),
                format!("{who}: name may use only letters, digits, '-', '_' and '.'"),
            ));
        } else if !names.insert(r.name.clone()) {
            problems.push((
                at.key("name"),
                format!("{who}: another rule of this destination has the same name"),
            ));
        }
        let action = match (r.action.as_deref(), r.keep_one_in) {
            (None, _) => {
                problems.push((
                    at.clone(),
                    format!(
                        "{who}: action is missing; write action = \"drop\", \"keep\" or \"sample\""
                    ),
                ));
                None
            }
            (Some("sample"), None) => {
                problems.push((at.key("action"), format!("{who}: action \"sample\" needs keep_one_in = N (keep one event in N, N at least 2)")));
                None
            }
            (Some("sample"), Some(n)) if n < 2 => {
                problems.push((
                    at.key("keep_one_in"),
                    format!(
                        "{who}: keep_one_in must be at least 2 (1 keeps everything: omit the rule)"
                    ),
                ));
                None
            }
            (Some("sample"), Some(n)) => Some(Action::Sample(n)),
            (Some(a @ ("drop" | "keep")), n) => {
                if n.is_some() {
                    problems.push((
                        at.key("keep_one_in"),
                        format!("{who}: keep_one_in applies only to action = \"sample\""),
                    ));
                }
                Some(if a == "drop" {
                    Action::Drop
                } else {
                    Action::Keep
                })
            }
            (Some(other), _) => {
                problems.push((
                    at.key("action"),
                    format!("{who}: action \"{other}\" is not one of drop, keep, sample"),
                ));
                None
            }
        };
        if let Some(list) = &r.sources {
            if list.is_empty() {
                problems.push((
                    at.key("sources"),
                    format!("{who}: sources is empty; omit it to apply to every source"),
                ));
            }
            for (j, name) in list.iter().enumerate() {
                if cx.sources.contains(&name.as_str()) {
                    continue;
                }
                let hint = crate::mapping::closest(name, cx.sources.iter().copied())
                    .map(|c| format!(" (did you mean \"{c}\"?)"))
                    .unwrap_or_default();
                problems.push((
                    at.key("sources").index(j),
                    format!(
                        "{who}: sources names \"{name}\", which is not a [[source]] of this configuration{hint}; the sources are {}",
                        cx.sources.join(", ")
                    ),
                ));
            }
        }
        let mut kinds = [true; KINDS];
        if let Some(patterns) = &r.kinds {
            kinds = [false; KINDS];
            if patterns.is_empty() {
                problems.push((
                    at.key("kinds"),
                    format!("{who}: kinds is empty; omit it to apply to every kind"),
                ));
            }
            for (j, pattern) in patterns.iter().enumerate() {
                match kind_pattern(pattern) {
                    Err(e) => {
                        problems.push((at.key("kinds").index(j), format!("{who}: kinds: {e}")))
                    }
                    Ok(matched) => {
                        if !cx.kinds.is_empty() && !matched.iter().any(|k| cx.kinds.contains(k)) {
                            problems.push((
                                at.key("kinds").index(j),
                                format!(
                                    "{who}: kinds: \"{pattern}\" matches no event this destination takes, which are {}",
                                    cx.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                        for k in matched {
                            kinds[k as usize] = true;
                        }
                    }
                }
            }
        }
        let when = match &r.when {
            None => Vec::new(),
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    problems.push((
                        at.key("when"),
                        format!("{who}: when is empty; omit it to match every event"),
                    ));
                }
                list.iter()
                    .enumerate()
                    .filter_map(|(j, c)| {
                        condition(c, &at.key("when").index(j), &who, &mut problems)
                    })
                    .collect()
            }
            Some(c) => condition(c, &at.key("when"), &who, &mut problems)
                .into_iter()
                .collect(),
        };
        if problems.len() == before {
            if let Some(action) = action {
                set.rules.push(Rule {
                    name: r.name.as_str().into(),
                    action,
                    sources: r
                        .sources
                        .as_ref()
                        .map(|l| l.iter().map(|s| s.as_str().into()).collect()),
                    kinds,
                    when: when.into(),
                });
            }
        }
    }
    (set, problems)
}

/// Compiles one `when` table: `{ path = "...", <one test> }`.
fn condition(
    item: &Value,
    at: &KeyPath,
    who: &str,
    problems: &mut Vec<(KeyPath, String)>,
) -> Option<Cond> {
    let Some(table) = item.as_object() else {
        problems.push((
            at.clone(),
            format!("{who}: when must be a table {{ path = \"...\", is = \"...\" }} or a list of them (all must hold)"),
        ));
        return None;
    };
    let mut ok = true;
    for key in table.keys() {
        if !WHEN_KEYS.contains(&key.as_str()) {
            let hint = crate::mapping::closest(key, WHEN_KEYS.iter().copied())
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            problems.push((
                at.key(key),
                format!(
                    "{who}: unknown key \"{key}\" in when{hint}; expected one of: {}",
                    WHEN_KEYS.join(", ")
                ),
            ));
            ok = false;
        }
    }
    let path = match table.get("path") {
        None => {
            problems.push((at.clone(), format!("{who}: when needs a path (a JSON path into the event, as in the mapping files)")));
            None
        }
        Some(Value::String(text)) => match JsonPath::parse(text) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push((
                    at.key("path"),
                    format!(
                        "{who}: when: path \"{text}\" at character {}: {}",
                        e.offset + 1,
                        e.message
                    ),
                ));
                None
            }
        },
        Some(_) => {
            problems.push((
                at.key("path"),
                format!("{who}: when: path must be a string"),
            ));
            None
        }
    };
    let tests: Vec<&str> = TESTS
        .iter()
        .copied()
        .filter(|k| table.contains_key(*k))
        .collect();
    if tests.len() != 1 {
        problems.push((
            at.clone(),
            format!(
                "{who}: when needs exactly one of {} (found {})",
                TESTS.join(", "),
                if tests.is_empty() {
                    "none".to_owned()
                } else {
                    tests.join(", ")
                }
            ),
        ));
        return None;
    }
    let key = tests[0];
    let value = &table[key];
    let here = at.key(key);
    let mut bad = |message: String| {
        problems.push((here.clone(), format!("{who}: when: {key} {message}")));
        None
    };
    let test = match key {
        "is" | "not" => {
            let list = match value {
                Value::Array(items) if !items.is_empty() => {
                    items.iter().map(scalar).collect::<Option<Vec<_>>>()
                }
                other => scalar(other).map(|s| vec![s]),
            };
            match list {
                Some(list) => {
                    let list: Box<[Box<str>]> = list.into_iter().map(Into::into).collect();
                    Some(if key == "is" {
                        Test::Is(list)
                    } else {
                        Test::Not(list)
                    })
                }
                None => bad(
                    "must be a string, number or boolean, or a non-empty list of them".to_owned(),
                ),
            }
        }
        "exists" => match value.as_bool() {
            Some(b) => Some(Test::Exists(b)),
            None => bad("must be true or false".to_owned()),
        },
        "matches" => match value.as_str() {
            Some(glob) if !glob.is_empty() => match SimpleGlob::new(glob) {
                Some(simple) => Some(Test::Glob(simple)),
                None => match glob_regex(glob) {
                    Ok(re) => Some(Test::Matches(re)),
                    Err(e) => bad(format!("\"{glob}\" is not a usable glob: {e}")),
                },
            },
            _ => bad(
                "must be a non-empty glob such as \"*/read\" ('*' any text, '?' one character)"
                    .to_owned(),
            ),
        },
        "regex" => match value.as_str() {
            Some(text) => match regex::Regex::new(text) {
                Ok(re) => Some(Test::Matches(re)),
                Err(e) => bad(format!(
                    "is not a valid regular expression: {}",
                    e.to_string().lines().last().unwrap_or("").trim()
                )),
            },
            None => bad("must be a string holding a regular expression".to_owned()),
        },
        _ => match value.as_f64() {
            Some(n) => {
                let op = match key {
                    "gt" => Compare::Gt,
                    "ge" => Compare::Ge,
                    "lt" => Compare::Lt,
                    _ => Compare::Le,
                };
                Some(Test::Compare(op, n))
            }
            None => bad("must be a number".to_owned()),
        },
    };
    if !ok {
        return None;
    }
    Some(Cond {
        path: path?,
        test: test?,
    })
}

/// The condition text of a TOML scalar, as the mapping compiler writes it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // As the mapping files read TOML numbers: a float as Rust prints it (`-2.0` is "-2").
        Value::Number(n) if n.is_f64() => n.as_f64().map(|f| f.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A glob as an anchored, case-insensitive regular expression: `*` any text (including `/`),
/// `?` one character, everything else literal. Case-insensitive like the `is` selector (and
/// like Azure resource provider operation names, which Azure compares without case).
pub fn glob_regex(glob: &str) -> Result<regex::Regex, regex::Error> {
    let mut re = String::with_capacity(glob.len() + 8);
    re.push_str("(?is)");
    // A leading or trailing `*` is an unanchored end rather than `.*`: the same matches, and
    // the engine can search for the literal part instead of trying every start.
    let body = glob.strip_prefix('*').unwrap_or_else(|| {
        re.push('^');
        glob
    });
    let (body, open_end) = match body.strip_suffix('*') {
        Some(b) => (b, true),
        None => (body, false),
    };
    for c in body.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    if !open_end {
        re.push('$');
    }
    regex::Regex::new(&re)
}

#[cfg(test)]
mod tests;
