//! `siemcast run` against hostile Microsoft API answers played by the simulator: a record far
//! over the event size limit, pages of big records, a gzip bomb, an absurd `Retry-After` and an
//! absurd token `expires_in`. The process stays up, the other records arrive, what is refused
//! is logged and counted, and memory stays bounded (the peak RSS, `VmHWM`, is measured).

use crate::util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use siemcast::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
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
    /// `siemcast run` of [`api_config`] for `kind`, polling every `interval`, with `/healthz`
    /// judging the source late after `interval` plus `grace`.
    fn start(
        sim: &BackgroundSimulator,
        kind: &str,
        rsyslog: &Rsyslog,
        interval: &str,
        grace: &str,
    ) -> Run {
        let scratch = Scratch::new();
        std::fs::write(
            scratch.dir.path().join("client-secret"),
            &sim.config().client_secret,
        )
        .unwrap();
        let metrics_port = free_port();
        let text = api_config(
            sim,
            "ms",
            kind,
            &rsyslog.address(),
            &format!("address = \"127.0.0.1:{metrics_port}\"\npoll_grace = \"{grace}\""),
            "client_secret_file = \"client-secret\"",
        )
        .replace(
            "interval = \"300ms\"",
            &format!("interval = \"{interval}\""),
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

    fn log_path(&self) -> PathBuf {
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
    let mut run = Run::start(&sim, "azure_activity", &rsyslog, "5s", "5m");
    let started = Instant::now();
    assert_delivered_once(&mut run, &rsyslog, &expected, Duration::from_secs(120));
    let peak = run.peak_rss_mib();
    eprintln!(
        "200 records of 1 MiB in one page: delivered in {:.1} s, siemcast peak RSS (VmHWM) {peak} MiB, RSS after {} MiB",
        started.elapsed().as_secs_f64(),
        rss_kib(run.child.id()) / 1024
    );
    // Held twice at most (the answer and its records while parsing; the encoded page and the
    // spool's batch while appending): 786 MiB before (1 MiB records were copied 4 times).
    assert!(peak < 3 * 200, "peak RSS {peak} MiB for a 200 MiB page");
    run.assert_alive();
    run.stop();
}

/// One record of 70 MiB (over the event size limit, and over what the spool takes in one
/// record) among ordinary ones: it is rejected alone, logged and counted; every other record
/// arrives and siemcast goes on (before: the spool refused the whole page and `siemcast run`
/// exited 1, again at every restart).
#[test]
fn an_oversized_record_is_rejected_alone_and_the_source_goes_on() {
    for kind in ["azure_activity", "o365_management", "defender_alerts"] {
        let faults = Faults {
            bloated_records_every: Some(40),
            bloated_record_bytes: 70 * MIB as usize,
            ..Faults::default()
        };
        let mut cfg = sim_config(80, 20, faults.clone());
        cfg.records_per_blob = 20;
        let sim = BackgroundSimulator::start(cfg).unwrap();
        let (records, id_field, id_key) = match kind {
            "azure_activity" => (sim.activity_records(), "eventDataId", "externalId"),
            "o365_management" => (sim.office_records(&O365_CONTENT_TYPES), "Id", "externalId"),
            // flexString2: the alert's ARM id.
            _ => (sim.defender_final_alerts(), "id", "flexString2"),
        };
        let (bloated, expected): (Vec<String>, Vec<String>) = records
            .iter()
            .map(|r| r[id_field].as_str().unwrap().to_owned())
            .partition(|id| faults.bloats(id));
        assert!(
            !bloated.is_empty() && expected.len() > 20,
            "{kind}: {} bloated of {}",
            bloated.len(),
            records.len()
        );
        let rsyslog = Rsyslog::start_tcp();
        let mut run = Run::start(&sim, kind, &rsyslog, "10s", "5m");
        let lines = rsyslog.wait_for_lines_from(
            Some(&mut run.child),
            expected.len(),
            Duration::from_secs(120),
        );
        let settled = rsyslog.settled_lines();
        let lines = if settled.len() > lines.len() {
            settled
        } else {
            lines
        };
        let mut got: Vec<String> = lines
            .iter()
            .map(|l| cef_value(l, id_key).unwrap_or_else(|| panic!("no {id_key}: {l}")))
            .map(str::to_owned)
            .collect();
        got.sort_unstable();
        got.dedup();
        let mut want = expected.clone();
        want.sort_unstable();
        assert_eq!(got, want, "{kind}: delivered ids");
        let rejected = run.source_counter("siemcast_source_events_rejected_total");
        assert!(
            rejected >= bloated.len() as f64,
            "{kind}: {rejected} rejected, {} bloated",
            bloated.len()
        );
        let warnings = count_in(
            &run.log_path(),
            "Record rejected: larger than the event size limit.",
        );
        assert!(warnings >= bloated.len(), "{kind}: {warnings} warnings");
        eprintln!(
            "{kind}: {} records delivered, {} of 70 MiB rejected alone ({rejected} counted), peak RSS {} MiB",
            expected.len(),
            bloated.len(),
            run.peak_rss_mib()
        );
        run.assert_alive();
        run.stop();
    }
}

/// A continuation page served once as a gzip bomb (1 MB on the wire, 1 GiB inflated): refused
/// at `max_answer_bytes` (default 256 MiB) with an error naming the key, memory bounded by
/// it, and the window read again at the next poll, so every record arrives.
#[test]
fn a_gzip_bomb_is_refused_at_the_answer_size_cap() {
    let faults = Faults {
        gzip_bombs: 1,
        gzip_bomb_bytes: 1 << 30,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(sim_config(60, 20, faults)).unwrap();
    let expected = activity_ids(&sim);
    let rsyslog = Rsyslog::start_tcp();
    let mut run = Run::start(&sim, "azure_activity", &rsyslog, "1s", "5m");
    assert_delivered_once(&mut run, &rsyslog, &expected, Duration::from_secs(120));
    assert_eq!(sim.gzip_bombs_served(), 1);
    let peak = run.peak_rss_mib();
    eprintln!("a 1 GiB gzip bomb against a 256 MiB cap: peak RSS {peak} MiB");
    let refused = count_in(
        &run.log_path(),
        "Answer larger than [azure] max_answer_bytes; refused.",
    );
    assert_eq!(refused, 1, "{}", tail(&run.log()));
    assert!(
        run.log()
            .contains("raise [azure] max_answer_bytes (now 268435456)"),
        "{}",
        tail(&run.log())
    );
    // The answer is read up to the cap, once (before: all of it, twice over).
    assert!(peak < 256 + 128, "peak RSS {peak} MiB");
    run.assert_alive();
    run.stop();
}

/// `Retry-After: 18446744073709551615` (before: an `Instant` overflow panic that ended
/// `siemcast run`; and 999999999 held the host back for 31 years): the wait is capped at 15
/// minutes and logged, nothing goes to the host meanwhile, `/healthz` says why the source is
/// late, and a stop is not held up by the wait.
#[test]
fn an_absurd_retry_after_is_capped_and_logged() {
    let faults = Faults {
        throttle_every: Some(2),
        retry_after_secs: u64::MAX,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(sim_config(60, 20, faults)).unwrap();
    let rsyslog = Rsyslog::start_tcp();
    let mut run = Run::start(&sim, "azure_activity", &rsyslog, "300ms", "1s");
    let throttled_at = || {
        sim.requests()
            .iter()
            .find(|r| r.service == Service::Management && r.status == 429)
            .map(|r| r.at_ms)
    };
    wait_until(Duration::from_secs(30), "a 429", || {
        run.assert_alive();
        throttled_at().is_some()
    });
    let throttled_at = throttled_at().unwrap();
    pause(Duration::from_secs(3));
    run.assert_alive();
    let after: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == Service::Management && r.at_ms > throttled_at)
        .collect();
    assert!(after.is_empty(), "requests during the wait: {after:?}");
    let log = run.log();
    assert!(
        log.contains("Retry-After capped")
            && log.contains("asked_secs=18446744073709551615")
            && log.contains("waiting_secs=900"),
        "{}",
        tail(&log)
    );
    let (code, health) = http_get(run.metrics_port, "/healthz").unwrap();
    assert_eq!(code, 503, "{health}");
    assert!(
        health.contains("asked to wait 18446744073709551615 s (Retry-After)"),
        "{health}"
    );
    let stopping = Instant::now();
    run.stop();
    eprintln!(
        "Retry-After 2^64-1: capped at 900 s, host held back, /healthz 503; stopped in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
}

/// A tenant without the licence: Identity Protection answers 403 "Your tenant is not licensed
/// for this feature.". The source says so once, in words naming the licence (not at every
/// poll), `/healthz` is 503 with the same words, nothing is sent and nothing stops; once the
/// licence is there, the risky users arrive, each state once, and the log says so once.
#[test]
fn a_tenant_without_the_licence_is_told_once_and_read_once_licensed() {
    let sim = BackgroundSimulator::start(sim_config(20, 20, Faults::default())).unwrap();
    sim.set_unlicensed(true);
    let rsyslog = Rsyslog::start_tcp();
    let mut run = Run::start(&sim, "entra_risky_users", &rsyslog, "300ms", "1s");
    let refused = || sim.requests().iter().filter(|r| r.status == 403).count();
    wait_until(Duration::from_secs(30), "several polls refused", || {
        run.assert_alive();
        refused() >= 6
    });
    let told = count_in(&run.log_path(), "The tenant is not licensed for this API");
    assert_eq!(
        told,
        1,
        "told once, not at every poll:\n{}",
        tail(&run.log())
    );
    assert!(
        run.log().contains("Microsoft Entra ID P2 (risky users)"),
        "{}",
        tail(&run.log())
    );
    let (code, health) = http_get(run.metrics_port, "/healthz").unwrap();
    assert_eq!(code, 503, "{health}");
    assert!(
        health.contains("not licensed for this API; it needs Microsoft Entra ID P2"),
        "{health}"
    );
    assert!(rsyslog.lines().is_empty(), "nothing can have been read");

    sim.set_unlicensed(false);
    let [.., finals] = sim.risk_final_records();
    let state = |id: &str, state: &str, level: &str| format!("{id}|{state}/{level}");
    let finals: Vec<String> = finals
        .iter()
        .map(|r| {
            let v = |k: &str| r[k].as_str().unwrap().to_owned();
            state(&v("id"), &v("riskState"), &v("riskLevel"))
        })
        .collect();
    let line_key = |line: &String| {
        let v = |k: &str| cef_value(line, k).unwrap_or_else(|| panic!("no {k}: {line}"));
        state(v("flexString2"), v("outcome"), v("cs1"))
    };
    wait_until(Duration::from_secs(30), "every final state", || {
        run.assert_alive();
        let got: Vec<String> = rsyslog.lines().iter().map(line_key).collect();
        finals.iter().all(|f| got.contains(f))
    });
    let mut got: Vec<String> = rsyslog.settled_lines().iter().map(line_key).collect();
    let all = got.len();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), all, "a state delivered twice");
    assert_eq!(count_in(&run.log_path(), "the licence is in place"), 1);
    wait_until(Duration::from_secs(10), "/healthz healthy again", || {
        http_get(run.metrics_port, "/healthz").is_ok_and(|(code, _)| code == 200)
    });
    eprintln!(
        "not licensed: {} refusals told once, /healthz 503 in words; licensed: {all} states of {} risky users delivered once",
        refused(),
        finals.len()
    );
    run.stop();
}
