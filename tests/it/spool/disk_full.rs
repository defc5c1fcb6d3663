//! A `siemcast run` whose `state_dir` is a small tmpfs filled by a file of someone else's and by
//! the spool itself: delivery to a real rsyslog goes on, the space of delivered segments is
//! used again (the sources resume by themselves), `/healthz` and the log say "disk full" with
//! the free space (not "spool full"), and once the disk has room again every id arrives.
//!
//! Mounting needs root; run as another user the test says so and does nothing.

use crate::util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use util::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m") on `dir`; `None` (with the reason printed) when
    /// mounting is impossible because the test does not run as root.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if out.status.success() {
            return Some(Tmpfs(dir.to_owned()));
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned();
        assert_ne!(
            euid,
            "0",
            "mount of a tmpfs failed as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "SKIPPED: mounting a tmpfs needs root (euid {euid}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        None
    }

    /// Bytes an unprivileged writer may still use on it.
    fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.0).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a failed test left a process behind): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// How often each `externalId` arrived.
fn count_ids(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let id = cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

fn assert_every_id_once(counts: &BTreeMap<String, usize>, n: usize) {
    let missing: Vec<String> = (0..n)
        .map(|i| format!("ev-{i:05}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {n} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(repeated.is_empty(), "ids repeated: {repeated:?}");
    assert_eq!(counts.len(), n);
}

/// The value of an unlabelled sample in a Prometheus exposition.
fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").expect("GET /metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// The free bytes `/healthz` gives in its "disk full" line, if it has one.
fn healthz_disk_full(port: u16) -> Option<(u16, u64, String)> {
    let (code, body) = http_get(port, "/healthz").ok()?;
    let line = body.lines().find(|l| l.contains("disk full"))?.to_owned();
    let free = line
        .split("disk full, ")
        .nth(1)?
        .split(" bytes free")
        .next()?
        .parse()
        .ok()?;
    Some((code, free, line))
}

const FIRST: usize = 6000;
const MORE: usize = 1000;

#[test]
fn a_full_disk_pauses_the_sources_but_never_delivery() {
    let scratch = Scratch::new();
    let state = scratch.dir.path().join("state");
    // 8 MiB, of which a file that is not siemcast's takes all but about 2.5 MiB: room for three
    // or four pages of 500 events (~0.7 MB each), far below max_bytes.
    let Some(disk) = Tmpfs::mount(&state, "8m") else {
        return;
    };
    let filler = state.join("filler");
    std::fs::write(&filler, vec![1u8; 5632 << 10]).unwrap();
    scratch.write_events(0..FIRST); // ~8.5 MB
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let metrics = free_port();
    let max_bytes: u64 = 256 << 20;
    let config = format!(
        r#"state_dir = "{state}"

[metrics]
address = "127.0.0.1:{metrics}"

[spool]
max_bytes = {max_bytes}

[[source]]
name = "files"
kind = "files"
path = "input"
source_kind = "azure_activity"
interval = "200ms"
batch_size = 500

{destination}"#,
        state = state.display(),
        destination = rsyslog_destination(&rsyslog.address()),
    );
    std::fs::write(scratch.config(), config).unwrap();
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);

    // The receiver is down: the spool fills the disk and the source pauses, saying why.
    wait_until(Duration::from_secs(30), "/healthz to say disk full", || {
        healthz_disk_full(metrics).is_some()
    });
    let (code, free, line) = healthz_disk_full(metrics).unwrap();
    assert_eq!(code, 503, "{line}");
    assert!(
        line.contains(&state.join("spool").display().to_string()),
        "{line}"
    );
    // The free space it gives is the file system's (statvfs), give or take a retried batch.
    wait_until(
        Duration::from_secs(15),
        "/healthz to give the free space",
        || healthz_disk_full(metrics).is_some_and(|h| h.1.abs_diff(disk.free()) <= 64 << 10),
    );
    assert!(free < 1 << 20, "{free} bytes free is not full: {line}");
    let text = std::fs::read_to_string(&log).unwrap();
    let paused = text
        .lines()
        .find(|l| l.contains("Disk full: source paused until there is space again"))
        .unwrap_or_else(|| panic!("no disk-full line in the log:\n{text}"));
    assert!(
        paused.contains("free_bytes=") && paused.contains("source=\"files\""),
        "{paused}"
    );
    assert!(!text.contains("Spool is full"), "{text}");
    let (_, spool) = http_get(metrics, "/spool").unwrap();
    let spool: serde_json::Value = serde_json::from_str(&spool).unwrap();
    let used = spool["total_bytes"].as_u64().unwrap();
    assert!(used > 0 && used < max_bytes / 50, "{spool}");
    assert_eq!(metric(metrics, "siemcast_spool_disk_full"), 1.0);
    let spooled_before = metric(
        metrics,
        "siemcast_source_events_spooled_total{source=\"files\"}",
    );
    assert!(spooled_before > 0.0 && spooled_before < FIRST as f64);

    // The receiver comes up, the other file stays: what is spooled is delivered, delivered
    // segments are deleted, their space takes new pages, and so on until every id is there.
    rsyslog.restart(Listen::Tcp);
    rsyslog.wait_for_lines_from(Some(&mut *child), FIRST, Duration::from_secs(120));
    assert_every_id_once(&count_ids(&rsyslog.settled_lines()), FIRST);
    assert!(filler.exists());
    assert!(metric(metrics, "siemcast_spool_segments_deleted_total") >= 1.0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Spool has room again; source resumed."),
        "{text}"
    );

    // Space is freed: new events go through and /healthz is green again.
    std::fs::remove_file(&filler).unwrap();
    std::fs::write(
        scratch.input().join("more.ndjson"),
        activity_events(FIRST..FIRST + MORE),
    )
    .unwrap();
    rsyslog.wait_for_lines_from(Some(&mut *child), FIRST + MORE, Duration::from_secs(60));
    wait_until(Duration::from_secs(15), "/healthz to be green", || {
        http_get(metrics, "/healthz").is_ok_and(|(code, body)| code == 200 && body == "ok\n")
    });
    assert_eq!(metric(metrics, "siemcast_spool_disk_full"), 0.0);
    eprintln!(
        "disk full at {free} bytes free with {used} bytes spooled; {} pages refused for the disk, {} segments deleted, RSS {} KiB",
        metric(metrics, "siemcast_spool_disk_full_rejections_total"),
        metric(metrics, "siemcast_spool_segments_deleted_total"),
        rss_kib(child.id()),
    );
    stop(&mut child);
    assert_every_id_once(&count_ids(&rsyslog.settled_lines()), FIRST + MORE);
    drop(child);
    drop(disk);
}
