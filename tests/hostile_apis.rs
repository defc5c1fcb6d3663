//! `siemcast run` against hostile Microsoft API answers played by the simulator: a record far
//! over the event size limit, pages of big records, a gzip bomb, an absurd `Retry-After` and an
//! absurd token `expires_in`. The process stays up, the other records arrive, what is refused
//! is logged and counted, and memory stays bounded (the peak RSS, `VmHWM`, is measured).

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use siemcast::sources::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
use util::*;

const MIB: u64 = 1 << 20;

/// Peak resident memory of a process in KiB (Linux `VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One subscription's activity log of `records` records, all visible, in one page of
/// `page_size`.
fn sim_config(records: usize, page_size: usize, faults: Faults) -> SimConfig {
    let mut cfg = SimConfig::around_now(Duration::from_secs(20), Duration::ZERO, records);
    cfg.page_size = page_size;
    cfg.faults = faults;
    cfg
}

/// A running `siemcast run` reading the simulator's activity log into an rsyslog, logging at
/// info into `siemcast.log` of its scratch directory, with its metrics on a free port.
struct Run {
    child: Running,
    scratch: Scratch,
    metrics_port: u16,
}

impl Run {
    fn start(sim: &BackgroundSimulator, kind: &str, rsyslog: &Rsyslog, azure_extra: &str) -> Run {
        let scratch = Scratch::new();
        std::fs::write(
            scratch.dir.path().join("client-secret"),
            &sim.config().client_secret,
        )
        .unwrap();
        let metrics_port = free_port();
        let azure = format!("client_secret_file = \"client-secret\"\n{azure_extra}");
        let text = api_config(
            sim,
            "ms",
            kind,
            &rsyslog.address(),
            &format!("address = \"127.0.0.1:{metrics_port}\""),
            &azure,
        );
        std::fs::write(scratch.config(), text).unwrap();
        let child = spawn_run_logged(&scratch.config(), &scratch.dir.path().join("siemcast.log"));
        Run {
            child,
            scratch,
            metrics_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.dir.path().join("siemcast.log")).unwrap_or_default()
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.scratch.dir.path().join("siemcast.log")
    }

    /// Panics with the log if siemcast has exited.
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "siemcast exited ({status}); its log:\n{}",
                tail(&self.log())
            );
        }
    }

    /// A counter of the source from `/metrics`.
    fn source_counter(&self, name: &str) -> f64 {
        let (_, body) = http_get(self.metrics_port, "/metrics").expect("GET /metrics");
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains("source=\"ms\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn peak_rss_mib(&self) -> u64 {
        peak_rss_kib(self.child.id()) / 1024
    }

    fn stop(mut self) {
        stop(&mut self.child);
    }
}

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn activity_ids(sim: &BackgroundSimulator) -> Vec<String> {
    sim.activity_records()
        .iter()
        .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits for `expected` lines at rsyslog while siemcast stays up, then asserts each id of
/// `expected` arrived exactly once.
fn assert_delivered_once(run: &mut Run, rsyslog: &Rsyslog, expected: &[String], timeout: Duration) {
    let lines = rsyslog.wait_for_lines_from(Some(&mut run.child), expected.len(), timeout);
    let lines = if rsyslog.settled_lines().len() > lines.len() {
        rsyslog.lines()
    } else {
        lines
    };
    let mut got: Vec<&str> = lines
        .iter()
        .map(|l| cef_value(l, "externalId").unwrap_or_else(|| panic!("no externalId: {l}")))
        .collect();
    got.sort_unstable();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "delivered ids differ from the expected ones");
}

fn count_in(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// 200 records of 1 MiB in one 200 MiB page: every record arrives, and the peak RSS stays
/// within a small multiple of the page (the answer, its records and their spool batch are not
/// all held at once).
#[test]
fn a_page_of_big_records_is_read_within_bounded_memory() {
    let faults = Faults {
        bloated_records_every: Some(1),
        bloated_record_bytes: MIB as usize,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(sim_config(200, 200, faults)).unwrap();
    let expected = activity_ids(&sim);
    let rsyslog = Rsyslog::start_tcp();
    let mut run = Run::start(&sim, "azure_activity", &rsyslog, "");
    let started = Instant::now();
    assert_delivered_once(&mut run, &rsyslog, &expected, Duration::from_secs(120));
    let peak = run.peak_rss_mib();
    eprintln!(
        "200 records of 1 MiB in one page: delivered in {:.1} s, siemcast peak RSS (VmHWM) {peak} MiB, RSS after {} MiB",
        started.elapsed().as_secs_f64(),
        rss_kib(run.child.id()) / 1024
    );
    run.assert_alive();
    run.stop();
}
