//! Whole-program delivery to a real rsyslog receiver over TCP: every event arrives exactly
//! once, as one RFC 3164 line carrying its CEF payload, also across a graceful restart.

use crate::util;

use std::collections::BTreeMap;
use std::time::Duration;

use util::*;

const EVENTS: usize = 10_000;

/// Parses each line with syslog_loose and returns how often each externalId arrived.
fn count_ids(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let msg = syslog_loose::parse_message(line, syslog_loose::Variant::RFC3164);
        assert_eq!(msg.hostname, Some("siemcast-test"), "bad header: {line}");
        assert!(msg.timestamp.is_some(), "no timestamp: {line}");
        assert!(
            line.starts_with("<166>"),
            "PRI should be local4.info: {line}"
        );
        let cef = line
            .find("CEF:0|")
            .map(|i| &line[i..])
            .unwrap_or_else(|| panic!("no CEF payload: {line}"));
        assert!(
            cef.matches('|').count() >= 7,
            "CEF header incomplete: {line}"
        );
        let id = cef_value(cef, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

fn assert_exactly_once(counts: &BTreeMap<String, usize>) {
    let missing: Vec<String> = (0..EVENTS)
        .map(|i| format!("ev-{i:05}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    let duplicated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first: {:?}",
        missing.len(),
        missing.first()
    );
    assert!(
        duplicated.is_empty(),
        "{} ids duplicated, first: {:?}",
        duplicated.len(),
        duplicated.first()
    );
    assert_eq!(counts.len(), EVENTS);
}

#[test]
fn ten_thousand_events_reach_rsyslog_exactly_once() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    // Two files: one NDJSON, one Microsoft-style {"value": [...]} page.
    std::fs::write(scratch.input().join("0001.json"), activity_events(0..6000)).unwrap();
    let page: Vec<serde_json::Value> = activity_events(6000..EVENTS)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    std::fs::write(
        scratch.input().join("0002.json"),
        serde_json::json!({ "value": page, "nextLink": null }).to_string(),
    )
    .unwrap();
    scratch.write_config(&rsyslog.address(), "");

    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), EVENTS, Duration::from_secs(60));
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    assert_exactly_once(&count_ids(&lines));
}

#[test]
fn graceful_restart_midway_delivers_every_event_exactly_once() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    // Paced, so that the stop surely lands in the middle of the stream.
    scratch.write_config(&rsyslog.address(), "max_eps = 2500");

    let mut first = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *first), 1500, Duration::from_secs(30));
    stop(&mut first);
    pause(Duration::from_millis(300));
    let midway = rsyslog.lines().len();
    assert!(
        midway < EVENTS,
        "the stop came too late to test a restart ({midway} lines)"
    );

    let mut second = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *second), EVENTS, Duration::from_secs(60));
    stop(&mut second);
    let lines = rsyslog.settled_lines();
    assert_exactly_once(&count_ids(&lines));
}
