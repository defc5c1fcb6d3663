//! `siemcast dry-run` decides as the sender does: for the same config and events, the ids it
//! says are sent are exactly the ids `siemcast run` delivers to a real rsyslog receiver, each
//! once; the ids a drop rule matches are named with that rule; sampled-out ids are the rest;
//! and the totals add up. Mistakes (an unknown destination, a bad event) are reported.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use util::*;

const EVENTS: usize = 900;

/// `siemcast dry-run -c CONFIG --destination D --source S --input INPUT` plus `more`.
fn dry_run(config: &Path, destination: &str, source: &str, input: &Path, more: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .arg("dry-run")
        .arg("-c")
        .arg(config)
        .args(["--destination", destination, "--source", source, "--input"])
        .arg(input)
        .args(more)
        .output()
        .expect("siemcast runs")
}

/// Activity Log events `i`: every third a `…/read` operation, every sixth of those failed
/// (i % 6 == 0), which the keep rule sends.
fn events() -> String {
    let mut out = String::new();
    for (line, i) in activity_events(0..EVENTS).lines().zip(0..) {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if i % 3 == 0 {
            v["operationName"]["value"] = "Microsoft.Compute/virtualMachines/read".into();
        }
        if i % 6 == 0 {
            v["status"]["value"] = "Failed".into();
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

const RULES: &str = r#"
[[destination.rule]]
name = "failed-reads"
action = "keep"
when = [
  { path = "operationName.value", matches = "*/READ" },
  { path = "status.value", is = "failed" },
]

[[destination.rule]]
name = "reads"
action = "drop"
when = { path = "operationName.value", matches = "*/read" }

[[destination.rule]]
name = "thin"
action = "sample"
keep_one_in = 3
"#;

#[test]
fn dry_run_decides_what_the_sender_sends() {
    let rs = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_config(&rs.address(), RULES);
    let input = events();
    let file = scratch.dir.path().join("events.ndjson");
    std::fs::write(&file, &input).unwrap();
    let config = scratch.config();

    let out = dry_run(&config, "rsyslog", "files", &file, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One line per event, "INDEX ID KIND: decision", in input order.
    let mut decided: BTreeMap<String, String> = BTreeMap::new();
    let lines: Vec<&str> = stdout.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), EVENTS, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let (head, what) = line.split_once(": ").unwrap();
        let parts: Vec<&str> = head.split(' ').collect();
        assert_eq!(parts[0], i.to_string(), "{line}");
        assert_eq!(parts[2], "azure_activity", "{line}");
        decided.insert(parts[1].to_owned(), what.to_owned());
    }
    let ids_where = |f: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        decided
            .iter()
            .filter(|(_, w)| f(w))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let sent = ids_where(&|w| w.starts_with("sent ("));
    let dropped = ids_where(&|w| w.starts_with("dropped by rule \"reads\" (drop;"));
    let sampled = ids_where(&|w| w.starts_with("sampled out by rule \"thin\" (sample 1 in 3;"));
    assert_eq!(
        sent.len() + dropped.len() + sampled.len(),
        EVENTS,
        "{stdout}"
    );

    // The drop rule matched exactly the reads that did not fail; the failed reads were kept
    // by the rule before it, so the sampling rule never saw them.
    let id = |i: usize| format!("ev-{i:05}");
    let reads: BTreeSet<String> = (0..EVENTS)
        .filter(|i| i % 3 == 0 && i % 6 != 0)
        .map(id)
        .collect();
    assert_eq!(dropped, reads);
    for i in (0..EVENTS).filter(|i| i % 6 == 0) {
        assert!(sent.contains(&id(i)), "failed read {} not sent", id(i));
    }
    // Sampling keeps about one in three of the other 600.
    let others = EVENTS - reads.len() - EVENTS / 6;
    let kept_others = others - sampled.len();
    assert!(
        (others / 3 - 60..=others / 3 + 60).contains(&kept_others),
        "sampling kept {kept_others} of {others}"
    );

    // Totals: the kept and filtered counts and each rule's line.
    let totals = &stdout[stdout.find("\nkept ").unwrap() + 1..];
    let number_after = |text: &str, prefix: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap();
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(':')
            .parse()
            .unwrap()
    };
    assert_eq!(number_after(totals, "kept"), sent.len() as u64, "{totals}");
    assert_eq!(
        number_after(totals, "filtered"),
        (dropped.len() + sampled.len()) as u64,
        "{totals}"
    );
    assert!(
        totals.contains(&format!(
            "  rule \"reads\" (drop): {} events,",
            dropped.len()
        )),
        "{totals}"
    );
    assert!(
        totals.contains(&format!(
            "  rule \"thin\" (sample 1 in 3): {} events,",
            sampled.len()
        )),
        "{totals}"
    );
    assert!(
        totals.contains("  rule \"failed-reads\" (keep): 0 events, 0 bytes"),
        "{totals}"
    );

    // The service, with the same config and events, delivers exactly the ids said to be sent.
    std::fs::write(scratch.input().join("events.ndjson"), &input).unwrap();
    let mut run = spawn_run(&scratch.config());
    wait_until(Duration::from_secs(90), "the sent ids at rsyslog", || {
        rs.count_lines() >= sent.len()
    });
    pause(Duration::from_millis(500));
    stop(&mut run);
    let got = cef_ids(&rs);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "an id arrived twice");
    assert_eq!(
        unique, sent,
        "what the service sent differs from the dry run"
    );
}

#[test]
fn dry_run_names_unknown_names_and_reports_bad_events() {
    let scratch = Scratch::new();
    scratch.write_config("127.0.0.1:9", RULES);
    let config = scratch.config();

    let out = dry_run(&config, "qradar", "files", Path::new("/dev/null"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no [[destination]] is named \"qradar\"; the destinations are rsyslog"),
        "{err}"
    );

    let out = dry_run(&config, "rsyslog", "activity", Path::new("/dev/null"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no [[source]] is named \"activity\"; the sources are files"),
        "{err}"
    );

    // A line that is not JSON is reported with its line and the rest are still decided.
    let file = scratch.dir.path().join("mixed.ndjson");
    let good = activity_events(0..2);
    let mut lines = good.lines();
    let text = format!(
        "{}\n{{not json\n{}\n",
        lines.next().unwrap(),
        lines.next().unwrap()
    );
    std::fs::write(&file, text).unwrap();
    let out = dry_run(&config, "rsyslog", "files", &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 - -: cannot be read: line 2: not valid JSON"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(" azure_activity: "))
            .count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("failed           1 items"), "{stdout}");

    // --totals prints only the totals.
    let out = dry_run(&config, "rsyslog", "files", &file, &["--totals"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("kept "), "{stdout}");
    assert!(!stdout.contains("azure_activity:"), "{stdout}");
}

/// With `output = "json"` (no mapping scan), rules with conditions read the parsed record:
/// the same ids are dropped as with a mapping, and what is sent is the record itself.
#[test]
fn rules_decide_alike_for_json_output() {
    let scratch = Scratch::new();
    let text = format!(
        "state_dir = \"state\"\n[metrics]\naddress = \"\"\n\n[[source]]\nname = \"files\"\nkind = \"files\"\npath = \"input\"\nsource_kind = \"azure_activity\"\n\n[[destination]]\nname = \"json\"\naddress = \"127.0.0.1:9\"\noutput = \"json\"\n{RULES}"
    );
    std::fs::write(scratch.config(), text).unwrap();
    let file = scratch.dir.path().join("events.ndjson");
    std::fs::write(&file, events()).unwrap();
    let out = dry_run(&scratch.config(), "json", "files", &file, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dropped: BTreeSet<String> = stdout
        .lines()
        .filter(|l| l.contains(": dropped by rule \"reads\""))
        .map(|l| l.split(' ').nth(1).unwrap().to_owned())
        .collect();
    let reads: BTreeSet<String> = (0..EVENTS)
        .filter(|i| i % 3 == 0 && i % 6 != 0)
        .map(|i| format!("ev-{i:05}"))
        .collect();
    assert_eq!(dropped, reads);
    let sent = stdout.lines().filter(|l| l.contains(": sent (")).count();
    let sampled = stdout
        .lines()
        .filter(|l| l.contains(": sampled out by rule \"thin\""))
        .count();
    assert_eq!(sent + sampled + dropped.len(), EVENTS, "{stdout}");
    assert!(sent >= EVENTS / 6, "the failed reads are kept: {sent} sent");
}
