//! Whole-program tests of the `files` source against what really happens to log files: the
//! rotation schemes of logrotate (rename within the folder, rename away and recreate,
//! copytruncate, compression), an oversized NDJSON line, a garbage file and a symbolic link.
//! Rotations happen while siemcast is frozen (SIGSTOP), so that they fall between two of its
//! passes, as they do at any moment in production; every id must reach rsyslog exactly once.

use crate::util;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use util::*;

/// How often each externalId (the event's id) reached the receiver.
fn count_ids(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let id = cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Every id of `range` arrived exactly once, and nothing else.
fn assert_exactly_once(lines: &[String], range: std::ops::Range<usize>) {
    let counts = count_ids(lines);
    let missing: Vec<String> = range
        .clone()
        .map(|i| format!("ev-{i:05}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    let repeated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
    assert!(
        repeated.is_empty(),
        "{} ids repeated, first {:?}",
        repeated.len(),
        repeated.first()
    );
    assert_eq!(counts.len(), range.len(), "unexpected ids arrived");
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Lines of the log file that contain `needle`.
fn log_lines(log: &Path, needle: &str) -> Vec<String> {
    read_lines(log)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

/// Waits until `n` lines arrived, lets a few more passes run (so that late repeats would show),
/// and returns every line.
fn wait_then_settle(rsyslog: &Rsyslog, child: &mut Running, n: usize) -> Vec<String> {
    rsyslog.wait_for_lines_from(Some(&mut **child), n, Duration::from_secs(60));
    pause(Duration::from_millis(1200));
    rsyslog.settled_lines()
}

/// A config with the metrics listener on `port` (the scratch config has none).
fn write_config_with_metrics(scratch: &Scratch, address: &str, port: u16) {
    scratch.write_config(address, "");
    let text = std::fs::read_to_string(scratch.config()).unwrap().replacen(
        "address = \"\"",
        &format!("address = \"127.0.0.1:{port}\""),
        1,
    );
    std::fs::write(scratch.config(), text).unwrap();
}

/// The files source's `siemcast_source_events_rejected_total`.
fn rejected(port: u16) -> u64 {
    let (code, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    let prefix = "siemcast_source_events_rejected_total{source=\"files\"} ";
    body.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {body}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn copytruncate_loses_nothing_and_repeats_nothing() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_config(&rsyslog.address(), "");
    let log = scratch.dir.path().join("siemcast.log");
    let app = scratch.input().join("app.log");
    let copy = scratch.input().join("app.log.1");
    append(&app, &activity_events(0..1500));
    let mut child = spawn_run_logged(&scratch.config(), &log);
    rsyslog.wait_for_lines_from(Some(&mut *child), 1500, Duration::from_secs(60));

    // logrotate `copytruncate`: the writer added lines since siemcast's last pass, the file is
    // copied to app.log.1 and truncated in place, and the writer goes on at its start; by the
    // next pass the new content is longer than the old offset (only the fingerprint tells).
    signal(&child, "STOP");
    append(&app, &activity_events(1500..3000));
    std::fs::copy(&app, &copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, &activity_events(3000..5500));
    signal(&child, "CONT");
    wait_then_settle(&rsyslog, &mut child, 5500);

    // The next rotation (`rotate 2`): app.log.1 -> app.log.2, a new copy, a truncation, and
    // this time less written than the old offset (the size tells).
    signal(&child, "STOP");
    std::fs::rename(&copy, scratch.input().join("app.log.2")).unwrap();
    std::fs::copy(&app, &copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, &activity_events(5500..5600));
    signal(&child, "CONT");
    wait_then_settle(&rsyslog, &mut child, 5600);

    // A third one, with passes between the copy and the truncation (a big file takes a while
    // to copy): the copy is not read beside its original, then takes over its offset.
    signal(&child, "STOP");
    std::fs::rename(&copy, scratch.input().join("app.log.3")).unwrap();
    append(&app, &activity_events(5600..5700));
    std::fs::copy(&app, &copy).unwrap();
    signal(&child, "CONT");
    rsyslog.wait_for_lines_from(Some(&mut *child), 5700, Duration::from_secs(60));
    pause(Duration::from_millis(1000));
    signal(&child, "STOP");
    append(&copy, &activity_events(5700..5710));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, &activity_events(5710..5800));
    signal(&child, "CONT");
    let lines = wait_then_settle(&rsyslog, &mut child, 5800);
    stop(&mut child);

    assert_exactly_once(&lines, 0..5800);
    let truncated = log_lines(&log, "Input file was truncated or rewritten in place");
    assert_eq!(
        truncated.len(),
        3,
        "one warning per truncation: {truncated:#?}"
    );
    assert!(
        truncated.iter().all(|l| l.contains("WARN")),
        "{truncated:#?}"
    );
    assert_eq!(
        log_lines(&log, "Input file starts as one already read").len(),
        3,
        "each copy is recognised"
    );
}

#[test]
fn a_file_renamed_away_and_recreated_loses_nothing() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_config(&rsyslog.address(), "");
    let log = scratch.dir.path().join("siemcast.log");
    let app = scratch.input().join("app.log");
    let archive = scratch.dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    append(&app, &activity_events(0..1500));
    let mut child = spawn_run_logged(&scratch.config(), &log);
    rsyslog.wait_for_lines_from(Some(&mut *child), 1500, Duration::from_secs(60));

    // logrotate `create` with `olddir`: the file is moved out of the folder; the writer adds
    // lines to it until it reopens, then writes a new app.log, longer than the old offset.
    signal(&child, "STOP");
    append(&app, &activity_events(1500..2000));
    let rotated = archive.join("app.log.1");
    std::fs::rename(&app, &rotated).unwrap();
    append(&rotated, &activity_events(2000..2100));
    append(&app, &activity_events(2100..4500));
    signal(&child, "CONT");
    let lines = wait_then_settle(&rsyslog, &mut child, 4500);
    stop(&mut child);

    assert_exactly_once(&lines, 0..4500);
    let finished = log_lines(&log, "Input file was renamed away or deleted");
    assert_eq!(finished.len(), 1, "{finished:#?}");
    assert!(finished[0].contains("events=600"), "{}", finished[0]);
}

#[test]
fn a_file_renamed_within_the_folder_is_not_sent_again_and_compressed_copies_are_not_read() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_config(&rsyslog.address(), "");
    let log = scratch.dir.path().join("siemcast.log");
    let app = scratch.input().join("app.log");
    append(&app, &activity_events(0..1500));
    let mut child = spawn_run_logged(&scratch.config(), &log);
    rsyslog.wait_for_lines_from(Some(&mut *child), 1500, Duration::from_secs(60));

    // logrotate's default: app.log -> app.log.1 in the same folder, a new app.log.
    signal(&child, "STOP");
    append(&app, &activity_events(1500..2000));
    let rotated = scratch.input().join("app.log.1");
    std::fs::rename(&app, &rotated).unwrap();
    append(&app, &activity_events(2000..4000));
    signal(&child, "CONT");
    wait_then_settle(&rsyslog, &mut child, 4000);

    // `compress` (with `delaycompress`): app.log.1 becomes app.log.1.gz at the next rotation.
    let gzip = std::process::Command::new("gzip")
        .arg(&rotated)
        .status()
        .unwrap();
    assert!(gzip.success());
    append(&app, &activity_events(4000..4100));
    let lines = wait_then_settle(&rsyslog, &mut child, 4100);
    stop(&mut child);

    assert_exactly_once(&lines, 0..4100);
    let renamed = log_lines(
        &log,
        "Input file was renamed; reading it on from where it stopped.",
    );
    assert_eq!(renamed.len(), 1, "{renamed:#?}");
    assert!(renamed[0].contains("app.log.1"), "{}", renamed[0]);
    assert_eq!(
        log_lines(&log, "Not reading compressed files in the input folder").len(),
        1
    );
    assert!(log_lines(&log, "Skipping unreadable input.").is_empty());
}

#[test]
fn a_70_mb_line_is_skipped_alone_and_the_process_goes_on() {
    const HUGE: usize = 70_000_000;
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let port = free_port();
    write_config_with_metrics(&scratch, &rsyslog.address(), port);
    let input = scratch.input().join("big.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        f.write_all(activity_events(0..100).as_bytes()).unwrap();
        f.write_all(br#"{"eventDataId":"huge","blob":""#).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        let mut written = 0;
        while written < HUGE {
            f.write_all(&chunk).unwrap();
            written += chunk.len();
        }
        f.write_all(b"\"}\n").unwrap();
        f.write_all(activity_events(100..200).as_bytes()).unwrap();
    }
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    let lines = wait_then_settle(&rsyslog, &mut child, 200);
    assert!(
        child.try_wait().unwrap().is_none(),
        "siemcast stopped after the oversized line"
    );
    let peak = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        .unwrap();
    eprintln!("siemcast peak RSS with a 70 MB line: {peak}");
    let peak_kib: u64 = peak.trim_end_matches("kB").trim().parse().unwrap();
    assert!(
        peak_kib < (HUGE / 1024) as u64,
        "peak RSS {peak} holds the whole line"
    );
    assert_eq!(rejected(port), 1);
    stop(&mut child);
    assert_exactly_once(&lines, 0..200);
    let skipped = log_lines(&log, "Skipping a line over the event size limit.");
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert!(skipped[0].contains("line=101"), "{}", skipped[0]);

    // A restart neither stops on the line again nor repeats anything.
    append(&input, &activity_events(200..250));
    let log2 = scratch.dir.path().join("siemcast-2.log");
    let mut child = spawn_run_logged(&scratch.config(), &log2);
    let lines = wait_then_settle(&rsyslog, &mut child, 250);
    stop(&mut child);
    assert_exactly_once(&lines, 0..250);
    assert!(log_lines(&log2, "over the event size limit").is_empty());
    std::fs::remove_file(&input).unwrap();
}

#[test]
fn a_garbage_file_gives_one_warning_and_a_symlink_is_said_once() {
    const GARBAGE_LINES: usize = 5000;
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let port = free_port();
    write_config_with_metrics(&scratch, &rsyslog.address(), port);
    std::fs::write(scratch.input().join("good.ndjson"), activity_events(0..500)).unwrap();
    // Binary lines: a byte no JSON starts with, then pseudo-random bytes without newline.
    let mut garbage = Vec::new();
    let mut x: u32 = 0x2545_f491;
    for _ in 0..GARBAGE_LINES {
        garbage.push(0xff);
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let b = (x >> 24) as u8;
            garbage.push(if b == b'\n' { 0 } else { b });
        }
        garbage.push(b'\n');
    }
    std::fs::write(scratch.input().join("garbage.bin"), &garbage).unwrap();
    let outside = scratch.dir.path().join("outside.ndjson");
    std::fs::write(&outside, activity_events(600..610)).unwrap();
    std::os::unix::fs::symlink(&outside, scratch.input().join("link.ndjson")).unwrap();

    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    rsyslog.wait_for_lines_from(Some(&mut *child), 500, Duration::from_secs(60));
    // Ten passes or more (interval 200 ms).
    pause(Duration::from_secs(2));
    let lines = rsyslog.settled_lines();
    assert_eq!(rejected(port), GARBAGE_LINES as u64, "each line counted");
    stop(&mut child);

    assert_exactly_once(&lines, 0..500);
    let unreadable = log_lines(&log, "Skipping unreadable input.");
    assert_eq!(
        unreadable.len(),
        1,
        "one warning for the file: {unreadable:#?}"
    );
    assert!(unreadable[0].contains("garbage.bin"), "{}", unreadable[0]);
    assert!(
        unreadable[0].contains(&format!("count={GARBAGE_LINES}")),
        "{}",
        unreadable[0]
    );
    assert!(unreadable[0].contains("line 1: "), "{}", unreadable[0]);
    let link = log_lines(&log, "Not following a symbolic link");
    assert_eq!(link.len(), 1, "said once: {link:#?}");
    assert!(link[0].contains("link.ndjson"), "{}", link[0]);
}
