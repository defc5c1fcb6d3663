//! The `storage_archive` source end to end: `siemcast run` reads the simulator's storage
//! account (append blobs of JSON lines and flow-log block blobs growing during the test, a
//! partial last line, 503 ServerBusy with Retry-After, 500s, tokens revoked) into a real
//! rsyslog, is killed with SIGKILL midway and restarted, and every record arrives exactly once;
//! a replaced blob is read again from its start without losing a record; bad credentials and
//! missing containers are told in words and make `/healthz` degraded; a large archive is read
//! in ranges with bounded memory.

use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use siemcast::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
use util::*;

const CONTAINERS: &str =
    r#"["insights-activity-logs", "AuditEvent", "insights-logs-networksecuritygroupflowevent"]"#;
const ALL: [&str; 3] = [
    "insights-activity-logs",
    "insights-logs-auditevent",
    "insights-logs-networksecuritygroupflowevent",
];

/// Records from 15 s ago to 10 s ahead, with throttling, server errors, revoked tokens and a
/// half-written last line on every append blob.
fn growing(per_scope: usize) -> SimConfig {
    let mut cfg =
        SimConfig::around_now(Duration::from_secs(15), Duration::from_secs(10), per_scope);
    cfg.seed = 20;
    cfg.token_lifetime = Duration::from_secs(4);
    cfg.faults = Faults {
        throttle_every: Some(9),
        retry_after_secs: 1,
        unavailable_every: Some(14),
        revoke_tokens_every: Some(11),
        storage_partial_last_line: true,
        ..Faults::default()
    };
    cfg
}

/// A config reading `containers` of the simulator's account into rsyslog at `address`;
/// `auth` is `client_secret = …` (the `[azure]` identity) or a `sas_token_file` line.
fn write_config(scratch: &Scratch, sim: &BackgroundSimulator, address: &str, extra: &str) {
    let azure = sim.azure_section(&format!(
        "client_secret = \"{}\"",
        sim.config().client_secret
    ));
    let text = format!(
        r#"state_dir = "state"

[metrics]
address = "127.0.0.1:{metrics}"

{azure}
[[source]]
name = "ms"
kind = "storage_archive"
blob_endpoint = "{endpoint}"
interval = "300ms"
start_at = "1h"
{extra}

[[destination]]
name = "rsyslog"
address = "{address}"
transport = "tcp"
framing = "lf"
syslog = "rfc3164"
hostname = "siemcast-test"
mappings = "{mappings}"
"#,
        metrics = free_port(),
        endpoint = sim.endpoint(Service::Storage),
        mappings = shipped_mappings("arcsight").display(),
    );
    std::fs::write(scratch.config(), text).unwrap();
}

fn spawn(config: &Path, log: &Path) -> Running {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"));
    cmd.args(["run", "-c"])
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .env("RUST_LOG", "siemcast=debug,info")
        .env("NO_COLOR", "1");
    Running::new(cmd.spawn().unwrap())
}

/// Requests the storage account answered with 200 or 206.
fn served(sim: &BackgroundSimulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.service == Service::Storage && matches!(r.status, 200 | 206))
        .count()
}

/// Every record the account will hold in `containers`.
fn expected(sim: &BackgroundSimulator) -> usize {
    ALL.iter().map(|c| sim.storage_records(c).len()).sum()
}

/// Waits for the timeline's end (nothing more may come), stops siemcast, returns the lines.
fn finish(
    sim: &BackgroundSimulator,
    rsyslog: &Rsyslog,
    child: &mut Running,
    lines: Vec<String>,
) -> Vec<String> {
    let end = sim.last_visible_ms() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    pause(Duration::from_secs(1));
    signal(child, "TERM");
    assert!(wait_exit(child, Duration::from_secs(15)).success());
    if rsyslog.lines().len() > lines.len() {
        rsyslog.lines()
    } else {
        lines
    }
}

/// Lines per `externalId`.
fn id_counts(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let id = cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn storage_archive_every_record_exactly_once_while_blobs_grow_across_kill_9() {
    let sim = BackgroundSimulator::start(growing(120)).unwrap();
    let total = expected(&sim);
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let scratch = Scratch::new();
    write_config(
        &scratch,
        &sim,
        &rsyslog.address(),
        &format!("containers = {CONTAINERS}"),
    );
    let log = scratch.dir.path().join("siemcast.log");

    let mut child = spawn(&scratch.config(), &log);
    wait_until(
        Duration::from_secs(60),
        "blobs read before the kill",
        || {
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("siemcast exited early ({status}); its log:\n{text}");
            }
            served(&sim) >= 25
        },
    );
    signal(&child, "KILL");
    let _ = child.wait();
    sim.forget_retry_after();
    rsyslog.restart(Listen::Tcp);
    let mut child = spawn(&scratch.config(), &log);
    let started = Instant::now();
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), total, Duration::from_secs(90));
    let lines = finish(&sim, &rsyslog, &mut child, lines);

    let counts = id_counts(&lines);
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{} ids delivered twice: {:?}",
        dups.len(),
        dups.first()
    );
    assert_eq!(counts.len(), total, "every record once");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&sim.config().client_secret),
        "the secret is logged"
    );
    for token in sim.issued_tokens() {
        assert!(!text.contains(&token), "a token is logged");
    }
    let log_of = sim.requests();
    let n = |c: u16| {
        log_of
            .iter()
            .filter(|r| r.service == Service::Storage && r.status == c)
            .count()
    };
    assert!(
        n(503) > 0 && n(401) > 0 && n(206) > 0,
        "503: {}, 401: {}, 206: {}",
        n(503),
        n(401),
        n(206)
    );
    assert!(
        log_of.iter().all(|r| !r.early),
        "a request came before Retry-After had passed"
    );
    eprintln!(
        "storage_archive: {total} records of {} blobs delivered exactly once across 1 kill -9 ({:.1} s after restart); {} x 200, {} x 206, {} x 503, {} x 500, {} x 401",
        ALL.iter().map(|c| sim.storage_blob_names(c).len()).sum::<usize>(),
        started.elapsed().as_secs_f64(),
        n(200),
        n(206),
        n(503),
        n(500),
        n(401)
    );
}
