//! Compiles each destination's filter rules: `[[destination.rule]]` in the configuration, then
//! the `[[rule]]` entries of its `rules_file`, each problem located in the file it is written in
//! (the rules file with its own line and column).

use std::path::Path;
use std::sync::Arc;

use super::{deserialize_all, Config, KeyPath, Locator, Problem, Problems};
use crate::destinations::filter::{self, RuleSet, RulesFile};
use crate::destinations::route::Route;

impl Config {
    /// Compiles every destination's rules into [`super::DestinationConfig::filter`].
    pub(super) fn compile_rules_into(&mut self, p: &mut Problems<'_>) {
        let sources: Vec<String> = self.sources.iter().map(|s| s.name.clone()).collect();
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        let mut compiled = Vec::with_capacity(self.destinations.len());
        for (i, d) in self.destinations.iter().enumerate() {
            let who = if d.name.is_empty() {
                format!("destination #{}", i + 1)
            } else {
                format!("destination \"{}\"", d.name)
            };
            let kinds = Route::from_config(d).event_kinds(self);
            let cx = filter::Context {
                sources: &sources,
                kinds: &kinds,
            };
            let at = KeyPath::root().key("destination").index(i);
            let (mut set, problems) = filter::compile(&d.rules, &at.key("rule"), cx);
            for (path, message) in problems {
                p.add(&path, format!("{who}: {message}"));
            }
            if let Some(file) = &d.rules_file {
                let path = self.resolve(file);
                let taken: Vec<&str> = set.rules().iter().map(|r| r.name()).collect();
                if let Some(more) = load_rules_file(&path, cx, &taken, &who, &mut p.list) {
                    set = set.chain(more);
                }
            }
            compiled.push(set);
        }
        for (d, set) in self.destinations.iter_mut().zip(compiled) {
            d.filter = Arc::new(set);
        }
    }
}

/// Reads and compiles a rules file; its problems (located in it) are appended to `list`.
fn load_rules_file(
    path: &Path,
    cx: filter::Context<'_>,
    taken: &[&str],
    who: &str,
    list: &mut Vec<Problem>,
) -> Option<RuleSet> {
    let single = |message: String, position| Problem {
        file: path.to_owned(),
        position,
        message: format!("{who}: {message}"),
        hint: None,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            list.push(single(format!("cannot read rules_file: {e}"), None));
            return None;
        }
    };
    let locator = match Locator::parse(&text) {
        Ok(l) => l,
        Err((pos, message)) => {
            list.push(single(format!("invalid TOML: {message}"), Some(pos)));
            return None;
        }
    };
    let mut tree: serde_json::Value = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            list.push(single(format!("invalid TOML: {}", e.message()), None));
            return None;
        }
    };
    let mut p = Problems {
        file: path,
        locator: &locator,
        list: Vec::new(),
    };
    let parsed = deserialize_all::<RulesFile>(&mut tree, &mut p);
    let mut result = None;
    if let Some(parsed) = parsed {
        if parsed.rule.is_empty() && p.list.is_empty() {
            p.add(
                &KeyPath::root(),
                "the rules file has no [[rule]]; add one or remove rules_file",
            );
        }
        let at = KeyPath::root().key("rule");
        let (set, problems) = filter::compile(&parsed.rule, &at, cx);
        for (at, message) in problems {
            p.add(&at, message);
        }
        for (j, r) in parsed.rule.iter().enumerate() {
            if taken.contains(&r.name.as_str()) {
                p.add(
                    &at.index(j).key("name"),
                    format!("rule \"{}\": a [[destination.rule]] of the configuration has the same name; rule names must be unique per destination", r.name),
                );
            }
        }
        result = p.list.is_empty().then_some(set);
    }
    for mut problem in p.list {
        problem.message = format!("{who}: {}", problem.message);
        list.push(problem);
    }
    result
}

#[cfg(test)]
mod tests;
