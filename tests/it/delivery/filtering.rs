//! Filter rules, whole program against two real rsyslog receivers: each destination receives
//! exactly the ids its rules keep (none lost, none extra), across a `kill -9` (sampling decides
//! by record id, so the resend decides as before) and a SIGHUP reload that changes the rules;
//! `/metrics` counts the filtered events per destination and rule; nothing is dead-lettered.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use siemcast::destinations::filter::sample_bucket;
use util::*;

const ACTIVITY: usize = 2000;
const SIGNINS: usize = 400;

/// Activity Log events `ev-{i}`: every third a `…/read` operation, every tenth level Error.
fn activity(range: std::ops::Range<usize>) -> String {
    let mut out = String::new();
    for (line, i) in activity_events(range.clone()).lines().zip(range) {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if i % 3 == 0 {
            v["operationName"]["value"] = "Microsoft.Compute/virtualMachines/read".into();
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// Sign-ins `si-{i}` from the shipped sample: every fifth failed (error code 50126).
fn signins(range: std::ops::Range<usize>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events/entra_signins.json");
    let samples: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = String::new();
    for i in range {
        let mut ev = samples[i % samples.len()].clone();
        ev["id"] = format!("si-{i:05}").into();
        ev["status"]["errorCode"] = if i % 5 == 0 { 50126 } else { 0 }.into();
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    out
}

fn write_phase(scratch: &Scratch, phase: usize) {
    let base = phase * 10_000;
    let file = |name: &str| {
        scratch
            .input()
            .join(name)
            .join(format!("phase{phase}.ndjson"))
    };
    std::fs::write(file("activity"), activity(base..base + ACTIVITY)).unwrap();
    std::fs::write(file("signins"), signins(base..base + SIGNINS)).unwrap();
}

fn select(
    prefix: &str,
    range: std::ops::Range<usize>,
    keep: impl Fn(usize, &str) -> bool,
) -> BTreeSet<String> {
    range
        .map(|i| (i, format!("{prefix}-{i:05}")))
        .filter(|(i, id)| keep(*i, id))
        .map(|(_, id)| id)
        .collect()
}

fn config(scratch: &Scratch, metrics: u16, soc: &str, archive: &str) -> String {
    let source = |name: &str, kind: &str| {
        std::fs::create_dir_all(scratch.input().join(name)).unwrap();
        format!(
            "[[source]]\nname = \"{name}\"\nkind = \"files\"\npath = \"input/{name}\"\nsource_kind = \"{kind}\"\ninterval = \"200ms\"\nbatch_size = 200\n\n"
        )
    };
    format!(
        "state_dir = \"state\"\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n\n{}{}{soc}\n\n{archive}\n",
        source("activity", "azure_activity"),
        source("signins", "entra_signins"),
    )
}

fn destination(name: &str, rs: &Rsyslog, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"{name}\"\naddress = \"{}\"\nmappings = \"{}\"\n{extra}",
        rs.address(),
        shipped_mappings("arcsight").display()
    )
}

fn received(rs: &Rsyslog) -> Vec<String> {
    cef_ids(rs)
}

/// Waits until `rs` has every id of `want`, failing at once on any id outside it.
fn expect(rs: &Rsyslog, child: &mut Running, want: &BTreeSet<String>, name: &str) {
    wait_for_ids(child, want, name, "its rules drop", || {
        received(rs).into_iter().collect()
    });
}

#[test]
fn rules_hold_across_kill_and_reload() {
    let soc = Rsyslog::start_tcp();
    let archive = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let log = scratch.dir.path().join("siemcast.log");
    let metrics = free_port();
    // soc: no Activity Log reads (the glob in another case than the data), a quarter of the
    // sign-ins. archive, from a rules file: Activity Log errors, else a third of it; failed
    // sign-ins only. Paced so that the kill lands mid-stream.
    let soc_1 = destination(
        "soc",
        &soc,
        "[[destination.rule]]\nname = \"reads\"\naction = \"drop\"\nkinds = [\"azure_activity\"]\nwhen = { path = \"operationName.value\", matches = \"*/READ\" }\n\n[[destination.rule]]\nname = \"signins-quarter\"\naction = \"sample\"\nkeep_one_in = 4\nsources = [\"signins\"]\n",
    );
    std::fs::write(
        scratch.dir.path().join("archive-rules.toml"),
        "[[rule]]\nname = \"errors\"\naction = \"keep\"\nwhen = { path = \"level\", is = \"Error\" }\n\n[[rule]]\nname = \"activity-third\"\naction = \"sample\"\nkeep_one_in = 3\nkinds = [\"azure_activity\"]\n\n[[rule]]\nname = \"signin-ok\"\naction = \"drop\"\nsources = [\"signins\"]\nwhen = [{ path = \"status.errorCode\", le = 0 }, { path = \"status.errorCode\", exists = true }]\n",
    )
    .unwrap();
    let archive_1 = destination(
        "archive",
        &archive,
        "rules_file = \"archive-rules.toml\"\nmax_eps = 3000\n",
    );
    std::fs::write(
        scratch.config(),
        config(&scratch, metrics, &soc_1, &archive_1),
    )
    .unwrap();
    let summary = check_summary(&scratch.config());
    for line in [
        "    2 filter rules, first match wins: reads (drop), signins-quarter (sample 1 in 4)\n",
        "    3 filter rules, first match wins: errors (keep), activity-third (sample 1 in 3), signin-ok (drop)\n",
    ] {
        assert!(summary.contains(line), "check summary lacks {line:?}:\n{summary}");
    }

    write_phase(&scratch, 0);
    let mut child = spawn_run_logged(&scratch.config(), &log);
    archive.wait_for_lines_from(Some(&mut *child), 200, Duration::from_secs(30));
    signal(&child, "KILL");
    let _ = child.wait();
    let mut child = spawn_run_logged(&scratch.config(), &log);

    let p1_soc = &select("ev", 0..ACTIVITY, |i, _| i % 3 != 0)
        | &select("si", 0..SIGNINS, |_, id| sample_bucket(id, 4) == 0);
    let p1_archive = &select("ev", 0..ACTIVITY, |i, id| {
        i % 10 == 0 || sample_bucket(id, 3) == 0
    }) | &select("si", 0..SIGNINS, |i, _| i % 5 == 0);
    // Not everything, not nothing: the rules bite.
    assert!(
        (60..140).contains(&(p1_soc.len() - 1333)),
        "{}",
        p1_soc.len()
    );
    expect(&soc, &mut child, &p1_soc, "soc");
    expect(&archive, &mut child, &p1_archive, "archive");

    // Reload with new rules: soc keeps only Activity Log errors (and every sign-in), archive
    // has no rules any more. An invalid rule first: refused, the running rules stay.
    let soc_bad = destination(
        "soc",
        &soc,
        "[[destination.rule]]\nname = \"x\"\naction = \"drop\"\nwhen = { path = \"a\", regex = \"(\" }\n",
    );
    std::fs::write(
        scratch.config(),
        config(&scratch, metrics, &soc_bad, &archive_1),
    )
    .unwrap();
    let logged = std::fs::read_to_string(&log).unwrap().len();
    signal(&child, "HUP");
    wait_until(Duration::from_secs(30), "the refused reload", || {
        std::fs::read_to_string(&log).unwrap_or_default()[logged..]
            .contains("still running the previous one")
    });
    let soc_2 = destination(
        "soc",
        &soc,
        "[[destination.rule]]\nname = \"not-errors\"\naction = \"drop\"\nkinds = [\"azure_activity\"]\nwhen = { path = \"level\", not = \"Error\" }\n",
    );
    let archive_2 = destination("archive", &archive, "");
    std::fs::write(
        scratch.config(),
        config(&scratch, metrics, &soc_2, &archive_2),
    )
    .unwrap();
    let logged = std::fs::read_to_string(&log).unwrap().len();
    signal(&child, "HUP");
    wait_until(Duration::from_secs(30), "the reload", || {
        std::fs::read_to_string(&log).unwrap_or_default()[logged..]
            .contains("Configuration reloaded.")
    });
    write_phase(&scratch, 1);
    let (a2, s2) = (10_000..10_000 + ACTIVITY, 10_000..10_000 + SIGNINS);
    let p2_soc = &(&p1_soc | &select("ev", a2.clone(), |i, _| i % 10 == 0))
        | &select("si", s2.clone(), |_, _| true);
    let p2_archive =
        &(&p1_archive | &select("ev", a2, |_, _| true)) | &select("si", s2, |_, _| true);
    expect(&soc, &mut child, &p2_soc, "soc");
    expect(&archive, &mut child, &p2_archive, "archive");

    // Filtered events are counted per destination and rule; the new rule counted exactly the
    // second phase's drops, the earlier rules at most the first phase's.
    let (_, text) = http_get(metrics, "/metrics").unwrap();
    let filtered = |d: &str, rule: &str| -> f64 {
        let prefix = format!(
            "siemcast_destination_events_filtered_total{{destination=\"{d}\",rule=\"{rule}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        filtered("soc", "not-errors"),
        (ACTIVITY - ACTIVITY / 10) as f64
    );
    assert!(filtered("soc", "reads") <= (ACTIVITY / 3 + 1) as f64);
    assert!(filtered("archive", "signin-ok") <= (SIGNINS - SIGNINS / 5) as f64);
    assert_eq!(filtered("soc", "route"), 0.0);
    stop(&mut child);
    let dead = scratch.dir.path().join("state/dead-letter");
    let files: Vec<_> = std::fs::read_dir(&dead)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "dead-lettered: {files:?}");
    // Duplicates come only from what the kill left unacknowledged.
    for (name, rs) in [("soc", &soc), ("archive", &archive)] {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for id in received(rs) {
            *counts.entry(id).or_default() += 1;
        }
        let repeated = counts.values().filter(|n| **n > 1).count();
        assert!(
            repeated <= 1000,
            "{name}: {repeated} ids arrived more than once"
        );
    }
}
