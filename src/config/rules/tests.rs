//! Filter rules in the configuration and in a rules file: compiled into the destination's
//! rule set, every mistake reported with the file, line and column it is written at.

use super::super::tests::{Scratch, GOOD};
use crate::config::Config;
use crate::destinations::filter::Action;

fn names_and_actions(cfg: &Config) -> Vec<(String, Action)> {
    cfg.destinations[0]
        .filter
        .rules()
        .iter()
        .map(|r| (r.name().to_owned(), r.action()))
        .collect()
}

#[test]
fn inline_rules_then_the_rules_file_compile_in_order() {
    let s = Scratch::new();
    std::fs::write(
        s.dir.path().join("noise.toml"),
        "[[rule]]\nname = \"bulk\"\naction = \"sample\"\nkeep_one_in = 10\nkinds = [\"azure_*\"]\n",
    )
    .unwrap();
    let text = format!(
        "{GOOD}rules_file = \"noise.toml\"\n\n[[destination.rule]]\nname = \"reads\"\naction = \"drop\"\nwhen = {{ path = \"operationName.value\", matches = \"*/read\" }}\n\n[[destination.rule]]\nname = \"slow\"\naction = \"keep\"\nsources = [\"logs\"]\nwhen = [{{ path = \"durationMs\", ge = 1000 }}, {{ path = \"level\", is = [\"Error\", \"Critical\"] }}]\n"
    );
    let cfg = s.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        names_and_actions(&cfg),
        [
            ("reads".to_owned(), Action::Drop),
            ("slow".to_owned(), Action::Keep),
            ("bulk".to_owned(), Action::Sample(10)),
        ]
    );
    assert_eq!(
        cfg.destinations[0].filter.describe(),
        "3 filter rules, first match wins: reads (drop), slow (keep), bulk (sample 1 in 10)"
    );
}

#[test]
fn mistakes_in_inline_rules_are_located() {
    let s = Scratch::new();
    let text = format!(
        r#"{GOOD}
[[destination.rule]]
name = "a"
action = "drop"
when = {{ path = "x", regex = "(unclosed" }}

[[destination.rule]]
name = "a"
action = "sample"

[[destination.rule]]
name = "c"
action = "drop"
sources = ["log"]
kinds = ["entra_*"]
colour = "red"

[[destination.rule]]
name = "d"
action = "keep"
when = [{{ path = "x", is = "1" }}, {{ path = "y", mathces = "*/read" }}]

[[destination.rule]]
name = "e"
action = "sample"
keep_one_in = 1
when = {{ path = "a..b", gt = "ten" }}
"#
    );
    assert_eq!(
        s.problems(&text),
        [
            "19:22: destination \"arcsight\": rule \"a\": when: regex is not a valid regular expression: error: unclosed group",
            "22:1: destination \"arcsight\": rule \"a\": another rule of this destination has the same name",
            "23:1: destination \"arcsight\": rule \"a\": action \"sample\" needs keep_one_in = N (keep one event in N, N at least 2)",
            "28:12: destination \"arcsight\": rule \"c\": sources names \"log\", which is not a [[source]] of this configuration (did you mean \"logs\"?); the sources are logs",
            "29:10: destination \"arcsight\": rule \"c\": kinds: \"entra_*\" matches no event this destination takes, which are azure_activity",
            "30:1: unknown key \"colour\" in destination[0].rule[2]",
            "35:35: destination \"arcsight\": rule \"d\": when needs exactly one of is, not, exists, matches, regex, gt, ge, lt, le (found none)",
            "35:49: destination \"arcsight\": rule \"d\": unknown key \"mathces\" in when (did you mean \"matches\"?); expected one of: path, is, not, exists, matches, regex, gt, ge, lt, le",
            "40:1: destination \"arcsight\": rule \"e\": keep_one_in must be at least 2 (1 keeps everything: omit the rule)",
            "41:10: destination \"arcsight\": rule \"e\": when: path \"a..b\" at character 3: empty path segment (two dots, or a leading dot)",
            "41:25: destination \"arcsight\": rule \"e\": when: gt must be a number",
        ]
    );
}

#[test]
fn mistakes_in_a_rules_file_are_located_in_it() {
    let s = Scratch::new();
    let rules = s.dir.path().join("noise.toml");
    std::fs::write(
        &rules,
        "# noise\n[[rule]]\nname = \"reads\"\naction = \"drop\"\n\n[[rule]]\nname = \"probe\"\naction = \"dorp\"\nwhen = { path = \"x\", exists = true, is = \"y\" }\n",
    )
    .unwrap();
    let text = format!(
        "{GOOD}rules_file = \"noise.toml\"\n\n[[destination.rule]]\nname = \"reads\"\naction = \"keep\"\n"
    );
    let errors = s.load(&text).unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let file = rules.display();
    assert_eq!(
        lines,
        [
            format!("{file}:3:1: destination \"arcsight\": rule \"reads\": a [[destination.rule]] of the configuration has the same name; rule names must be unique per destination"),
            format!("{file}:8:1: destination \"arcsight\": rule \"probe\": action \"dorp\" is not one of drop, keep, sample"),
            format!("{file}:9:1: destination \"arcsight\": rule \"probe\": when needs exactly one of is, not, exists, matches, regex, gt, ge, lt, le (found is, exists)"),
        ]
    );
    std::fs::remove_file(&rules).unwrap();
    let missing = s.problems(&text);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].starts_with(&format!(
            "{file}: destination \"arcsight\": cannot read rules_file:"
        )),
        "{missing:?}"
    );
}

#[test]
fn a_rule_may_not_take_the_route_label() {
    let s = Scratch::new();
    let text = format!("{GOOD}\n[[destination.rule]]\nname = \"route\"\naction = \"drop\"\n");
    assert_eq!(
        s.problems(&text),
        ["17:1: destination \"arcsight\": rule \"route\": the name \"route\" is taken by events outside the destination's sources/kinds; choose another"]
    );
}

#[test]
fn the_shipped_example_rules_file_compiles() {
    let s = Scratch::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/rules.example.toml");
    let maps = s.dir.path().join("mappings/arcsight");
    let kinds = [
        "entra_signins",
        "entra_audit",
        "o365_management",
        "graph_alerts",
    ];
    let mut text = GOOD.replace("[[destination]]", "[[destination]]\nrules_file = \"RULES\"");
    for kind in kinds {
        std::fs::copy(
            format!(
                "{}/mappings/arcsight/{kind}.toml",
                env!("CARGO_MANIFEST_DIR")
            ),
            maps.join(format!("{kind}.toml")),
        )
        .unwrap();
        text.push_str(&format!(
            "\n[[source]]\nname = \"{kind}\"\nkind = \"files\"\npath = \"input\"\nsource_kind = \"{kind}\"\n"
        ));
    }
    let cfg = s
        .load(&text.replace("RULES", example))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.destinations[0].filter.len(), 7);
}
