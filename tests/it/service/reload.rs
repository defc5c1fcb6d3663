//! SIGHUP reload of a running `siemcast run` against a real rsyslog: a changed mapping changes
//! the rendering of every later event with none lost or repeated; a broken mapping or config
//! is refused (logged) and the running set stays; a removed destination's cursor is released.

use crate::util;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

const FIRST: usize = 3000;
const SECOND: usize = 500;

fn vendor(line: &str) -> &str {
    let cef = &line[line
        .find("CEF:0|")
        .unwrap_or_else(|| panic!("no CEF: {line}"))..];
    cef.split('|').nth(1).unwrap()
}

fn ids(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let id = cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

fn wait_for_log(log: &std::path::Path, needle: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < timeout,
            "log never said {needle:?}:\n{text}"
        );
        pause(Duration::from_millis(50));
    }
}

#[test]
fn sighup_applies_a_new_mapping_to_later_events_and_refuses_broken_ones() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let mappings = scratch.dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    let mapping_file = mappings.join("azure_activity.toml");
    let original =
        std::fs::read_to_string(shipped_mappings("arcsight").join("azure_activity.toml")).unwrap();
    assert!(original.contains("vendor = \"Microsoft\""));
    std::fs::write(&mapping_file, &original).unwrap();
    std::fs::write(
        scratch.input().join("0001.ndjson"),
        activity_events(0..FIRST),
    )
    .unwrap();
    // Paced, so that the reload lands in the middle of the stream.
    scratch.write_config(&rsyslog.address(), "max_eps = 1500");
    let config = std::fs::read_to_string(scratch.config()).unwrap().replace(
        &shipped_mappings("arcsight").display().to_string(),
        "mappings",
    );
    std::fs::write(scratch.config(), &config).unwrap();
    let log = scratch.dir.path().join("siemcast.log");

    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    rsyslog.wait_for_lines_from(Some(&mut *child), 600, Duration::from_secs(30));

    // 1. A changed mapping: later events carry the new vendor.
    std::fs::write(
        &mapping_file,
        original.replace("vendor = \"Microsoft\"", "vendor = \"MicrosoftReloaded\""),
    )
    .unwrap();
    signal(&child, "HUP");
    wait_for_log(&log, "Configuration reloaded.", Duration::from_secs(20));
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), FIRST, Duration::from_secs(60));
    let before = lines
        .iter()
        .take_while(|l| vendor(l) == "Microsoft")
        .count();
    assert!(
        before < FIRST,
        "the reload came after the whole stream; nothing to compare"
    );
    for line in &lines[before..] {
        assert_eq!(
            vendor(line),
            "MicrosoftReloaded",
            "an event after the reload kept the old mapping"
        );
    }

    // 2. A broken mapping: refused, logged, the running mapping stays.
    std::fs::write(
        &mapping_file,
        original.replace(
            "vendor = \"Microsoft\"",
            "vendor = \"MicrosoftReloaded\"\nvendr = \"typo\"",
        ),
    )
    .unwrap();
    signal(&child, "HUP");
    let text = wait_for_log(
        &log,
        "New configuration is invalid; still running the previous one.",
        Duration::from_secs(20),
    );
    assert!(
        text.contains("vendr"),
        "the log does not say what is wrong:\n{text}"
    );
    // 3. A broken config file: the same.
    let good_config = std::fs::read_to_string(scratch.config()).unwrap();
    std::fs::write(
        scratch.config(),
        good_config.replace("transport = \"tcp\"", "transport = \"tpc\""),
    )
    .unwrap();
    signal(&child, "HUP");
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("New configuration is invalid").count() >= 2 {
            assert!(text.contains("\"tpc\" is not one of"), "{text}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{text}");
        pause(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "siemcast exited");
    std::fs::write(scratch.config(), &good_config).unwrap();

    // Events arriving now are still rendered with the last good mapping.
    std::fs::write(
        scratch.input().join("0002.ndjson"),
        activity_events(FIRST..FIRST + SECOND),
    )
    .unwrap();
    let lines =
        rsyslog.wait_for_lines_from(Some(&mut *child), FIRST + SECOND, Duration::from_secs(60));
    for line in &lines[FIRST..] {
        assert_eq!(vendor(line), "MicrosoftReloaded", "{line}");
    }
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
    pause(Duration::from_millis(300));

    // No event lost, none repeated, across two reload attempts and a reload.
    let counts = ids(&rsyslog.lines());
    let missing: Vec<String> = (0..FIRST + SECOND)
        .map(|i| format!("ev-{i:05}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids missing: {:?}",
        missing.len(),
        missing.first()
    );
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} ids repeated: {:?}",
        repeated.len(),
        repeated.first()
    );
}

#[test]
fn sighup_releases_the_cursor_of_a_removed_destination() {
    let kept = Rsyslog::start_tcp();
    let removed = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("a.ndjson"), activity_events(0..100)).unwrap();
    scratch.write_config(&kept.address(), "");
    let one = std::fs::read_to_string(scratch.config()).unwrap();
    let block = &one[one.find("[[destination]]").unwrap()..];
    let second = block
        .replace("name = \"rsyslog\"", "name = \"second\"")
        .replace(&kept.address(), &removed.address());
    std::fs::write(scratch.config(), format!("{one}\n{second}")).unwrap();
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    kept.wait_for_lines_from(Some(&mut *child), 100, Duration::from_secs(30));
    removed.wait_for_lines_from(Some(&mut *child), 100, Duration::from_secs(30));
    let cursor = scratch.dir.path().join("state/spool/cursor-second.bin");
    assert!(cursor.exists(), "no cursor file at {}", cursor.display());

    std::fs::write(scratch.config(), &one).unwrap();
    signal(&child, "HUP");
    wait_for_log(
        &log,
        "Destination removed; its spool cursor was released.",
        Duration::from_secs(20),
    );
    assert!(
        !cursor.exists(),
        "the removed destination's cursor is still there"
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
}
