//! `output = "json"`: each source record reaches a real rsyslog receiver as one JSON line after
//! the syslog header, exactly once, parsing back to the record that was read, even when its
//! values hold line breaks, CR, NUL and other control characters.

use crate::util;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use util::*;

const EVENTS: usize = 5_000;

/// Records whose values would split or corrupt a line if written raw.
fn hostile_records() -> Vec<Value> {
    let nasty = [
        "line1\nline2",
        "crlf\r\nnext",
        "nul\u{0}byte",
        "bell\u{7}esc\u{1b}[31m del\u{7f}",
        "tab\there \"quoted\" back\\slash",
        "seps\u{2028}\u{2029}\u{85}",
        "emoji \u{1F600} é 中",
        "<13>Nov  1 10:00:00 forged-host forged: CEF:0|x|y|1|2|3|10|",
    ];
    nasty
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::json!({
                "eventDataId": format!("hostile-{i}"),
                "eventTimestamp": "2026-11-01T10:00:00.0000000Z",
                "caller": text,
                "operationName": {"value": text, "localizedValue": [text, {"k\nk": text}]},
                "level": "Warning",
                "big": 12345678901234567890u64,
            })
        })
        .collect()
}

#[test]
fn every_record_arrives_once_as_one_parseable_json_line() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    let hostile = hostile_records();
    // Pretty-printed: the input itself spans many lines.
    std::fs::write(
        scratch.input().join("hostile.json"),
        serde_json::to_string_pretty(&hostile).unwrap(),
    )
    .unwrap();
    let text = config(&rsyslog.address(), "tcp", "rfc3164", "lf");
    std::fs::write(scratch.config(), text).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["check", "-c"])
        .arg(scratch.config())
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && summary.contains("output json"),
        "{summary}{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // send-test sends its test event as JSON too.
    let stdout = send_test_output(&scratch.config());
    let test_id = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("event id: "))
        .unwrap_or_else(|| panic!("no event id in {stdout}"))
        .to_owned();
    let first = rsyslog.wait_for_lines(1, Duration::from_secs(10)).remove(0);
    let test_event: Value = serde_json::from_str(&first[first.find('{').unwrap()..])
        .unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(test_event.to_string().contains(&test_id), "{first}");

    let total = EVENTS + hostile.len();
    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), total + 1, Duration::from_secs(90));
    stop(&mut child);
    let mut lines = rsyslog.settled_lines();
    assert_eq!(lines.remove(0), first);
    assert_eq!(lines.len(), total, "one line per record, no more");

    assert_each_record_once(&lines, hostile, EVENTS, |line| {
        line.starts_with("<166>") && line.contains(" siemcast-test {")
    });
}

/// RFC 5424 headers and octet-counting framing (RFC 6587): the same records, whole.
#[test]
fn octet_counted_rfc5424_messages_carry_the_records_whole() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let events = 1_000;
    scratch.write_events(0..events);
    let hostile = hostile_records();
    std::fs::write(
        scratch.input().join("hostile.json"),
        serde_json::to_string(&hostile).unwrap(),
    )
    .unwrap();
    let text = config(&rsyslog.address(), "tcp", "rfc5424", "octet-counting");
    std::fs::write(scratch.config(), text).unwrap();
    let total = events + hostile.len();
    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), total, Duration::from_secs(90));
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    assert_eq!(lines.len(), total, "one message per record, no more");
    assert_each_record_once(&lines, hostile, events, |line| {
        line.starts_with("<166>1 ") && line.contains(" siemcast-test siemcast - - - {")
    });
}

/// A files source on `input/` (Azure Activity records) and one JSON destination.
fn config(address: &str, transport: &str, syslog: &str, framing: &str) -> String {
    format!(
        r#"state_dir = "state"
[metrics]
address = ""
[[source]]
name = "files"
kind = "files"
path = "input"
source_kind = "azure_activity"
interval = "200ms"
batch_size = 500
[[destination]]
name = "json"
address = "{address}"
transport = "{transport}"
syslog = "{syslog}"
framing = "{framing}"
hostname = "siemcast-test"
output = "json"
"#
    )
}

/// Each received line has the expected header and, after it, exactly one of the records
/// written (the hostile ones and activity events `0..events`), unchanged; each arrived once.
fn assert_each_record_once(
    lines: &[String],
    hostile: Vec<Value>,
    events: usize,
    header_ok: impl Fn(&str) -> bool,
) {
    let total = events + hostile.len();
    let mut expected: BTreeMap<String, Value> = hostile
        .into_iter()
        .map(|v| (v["eventDataId"].as_str().unwrap().to_owned(), v))
        .collect();
    for line in activity_events(0..events).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        expected.insert(v["eventDataId"].as_str().unwrap().to_owned(), v);
    }
    let mut seen = BTreeMap::new();
    for line in lines {
        assert!(header_ok(line), "{line}");
        let body = &line[line.find('{').unwrap()..];
        let record: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        let id = record["eventDataId"].as_str().unwrap().to_owned();
        assert_eq!(
            Some(&record),
            expected.get(&id),
            "record {id} arrived changed"
        );
        *seen.entry(id).or_insert(0usize) += 1;
    }
    assert_eq!(seen.len(), total, "every id arrived");
    assert!(seen.values().all(|&n| n == 1), "each exactly once");
}
