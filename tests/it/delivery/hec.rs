//! `transport = "hec"` against the Splunk HEC simulator, the real siemcast binary in between:
//! every event indexed exactly once when nothing fails; batches Splunk accepted and then lost
//! (their ackId never true) sent again and indexed, none lost; `kill -9` with acknowledgements
//! pending loses nothing; 503 storms and 429s with `Retry-After` are waited out; an event Splunk
//! refuses goes to the dead-letter file and the rest arrives; a revoked token is reported on
//! /healthz and nothing is lost once it is restored.

use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use siemcast::hec_simulator::{BackgroundHecSimulator, HecConfig, HecToken};
use util::*;

const TOKEN: &str = "5b1c3a8e-1d2f-4e6a-9b7c-0123456789ab";

/// `range` small Azure Activity records with ids `ev-000000`…, as NDJSON; the record `poison`
/// (if in range) carries the simulator's invalid-event marker.
fn events(range: std::ops::Range<usize>, poison: Option<usize>) -> String {
    let mut out = String::with_capacity(range.len() * 160);
    for i in range {
        let marker = if Some(i) == poison { "POISON" } else { "ok" };
        out.push_str(&format!(
            r#"{{"eventDataId":"ev-{i:06}","eventTimestamp":"2026-11-01T10:00:{:02}.{:03}Z","operationName":{{"value":"Microsoft.Compute/virtualMachines/write"}},"caller":"user{}@contoso.com","level":"Informational","note":"{marker}"}}"#,
            i % 60,
            i % 1000,
            i % 13
        ));
        out.push('\n');
    }
    out
}

fn simulator(ack_delay: Duration) -> BackgroundHecSimulator {
    BackgroundHecSimulator::start(HecConfig {
        tokens: vec![HecToken::with_ack(TOKEN)],
        ack_delay,
        ..HecConfig::default()
    })
    .unwrap()
}

/// A config: a files source reading `input/` into a HEC destination at `url`; `extra` lines
/// are added to the destination; metrics on `metrics` (a port) or off.
fn write_config(scratch: &Scratch, url: &str, metrics: Option<u16>, extra: &str) {
    std::fs::write(scratch.dir.path().join("hec-token"), format!("{TOKEN}\n")).unwrap();
    let metrics = metrics.map_or(String::new(), |p| format!("127.0.0.1:{p}"));
    let text = format!(
        r#"state_dir = "state"

[metrics]
address = "{metrics}"

[[source]]
name = "activity"
kind = "files"
path = "input"
source_kind = "azure_activity"
interval = "200ms"
batch_size = 5000

[[destination]]
name = "splunk"
transport = "hec"
url = "{url}"
token_file = "hec-token"
host = "siemcast-test"
index = "azure"
{extra}
"#
    );
    std::fs::write(scratch.config(), text).unwrap();
}

/// Waits until the simulator has indexed at least `n` events (or fails after `timeout`).
fn wait_indexed(sim: &BackgroundHecSimulator, child: &mut Running, n: u64, timeout: Duration) {
    let start = Instant::now();
    loop {
        let got = sim.stats().events_indexed;
        if got >= n {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("siemcast exited with {status}");
        }
        assert!(
            start.elapsed() < timeout,
            "{got} of {n} events indexed after {timeout:?}"
        );
        pause(Duration::from_millis(50));
    }
}

/// How many times each id was indexed; asserts every id of `0..n` is there and no other.
fn counts(sim: &BackgroundHecSimulator, n: usize) -> BTreeMap<String, usize> {
    let counts = sim.count_by("eventDataId");
    let missing: Vec<String> = (0..n)
        .map(|i| format!("ev-{i:06}"))
        .filter(|id| !counts.contains_key(id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "ids never indexed, e.g. {missing:?}");
    assert_eq!(counts.len(), n, "ids outside the input were indexed");
    counts
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(name) && l.contains("destination=\"splunk\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Waits until the destination's cursor has passed every spooled event (all acknowledged).
fn wait_drained(port: u16) {
    wait_until(
        Duration::from_secs(10),
        "the cursor to pass everything",
        || metric(port, "siemcast_spool_queued_events") == 0.0,
    );
}

fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("state/dead-letter/splunk.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_hundred_thousand_events_are_indexed_exactly_once() {
    const N: usize = 200_000;
    let sim = simulator(Duration::from_millis(100));
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("events.ndjson"), events(0..N, None)).unwrap();
    write_config(&scratch, &sim.http_url(), None, "");
    let started = Instant::now();
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, N as u64, Duration::from_secs(120));
    let took = started.elapsed();
    // Everything acknowledged: the cursor reaches the end and nothing more is sent.
    wait_until(Duration::from_secs(10), "every ackId confirmed", || {
        sim.pending_acks() == 0
    });
    stop(&mut child);
    let counts = counts(&sim, N);
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(twice.is_empty(), "indexed more than once: {twice:?}");
    let indexed = sim.indexed();
    let first = &indexed[0].event;
    assert_eq!(first.host.as_deref(), Some("siemcast-test"));
    assert_eq!(first.sourcetype.as_deref(), Some("mscs:azure:audit"));
    assert_eq!(first.source.as_deref(), Some("activity"));
    assert_eq!(first.index.as_deref(), Some("azure"));
    assert!(indexed.iter().all(|e| e.gzip && e.channel.is_some()));
    // The event time, in epoch seconds with milliseconds.
    let e = indexed
        .iter()
        .find(|e| e.event.event["eventDataId"] == "ev-000061")
        .unwrap();
    assert_eq!(e.event.time, Some(1_793_527_201.061));
    eprintln!("{N} events indexed in {took:?}");
}

#[test]
fn batches_splunk_lost_are_sent_again_and_none_is_missing() {
    const N: usize = 20_000;
    let sim = simulator(Duration::from_millis(100));
    sim.faults(|f| f.lose_next = 3);
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("events.ndjson"), events(0..N, None)).unwrap();
    let port = free_port();
    write_config(
        &scratch,
        &sim.http_url(),
        Some(port),
        "ack_timeout = \"2s\"",
    );
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, N as u64, Duration::from_secs(60));
    wait_drained(port);
    assert_eq!(sim.stats().batches_lost, 3);
    let counts = counts(&sim, N);
    // Lost batches were never indexed: each event exactly once.
    assert!(counts.values().all(|c| *c == 1));
    assert_eq!(metric(port, "siemcast_hec_ack_timeouts_total"), 3.0);
    let resent = metric(port, "siemcast_destination_events_resent_total");
    assert!(resent >= 3.0, "resent {resent}");
    assert_eq!(
        metric(port, "siemcast_destination_events_delivered_total"),
        N as f64
    );
    // `spool status` (through the running service) shows the HEC destination caught up.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["spool", "status", "--json", "-c"])
        .arg(scratch.config())
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let splunk = status["destinations"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "splunk"))
        .unwrap_or_else(|| panic!("no splunk in {status}"));
    assert_eq!(splunk["queued_records"], 0, "{status}");
    stop(&mut child);
}

#[test]
fn kill_9_with_acknowledgements_pending_loses_nothing() {
    const N: usize = 30_000;
    // Slow acknowledgements: there are always some pending when siemcast is killed.
    let sim = simulator(Duration::from_millis(1500));
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("events.ndjson"), events(0..N, None)).unwrap();
    write_config(&scratch, &sim.http_url(), None, "batch_events = 500");
    let mut child = spawn_run(&scratch.config());
    wait_until(Duration::from_secs(30), "acknowledgements pending", || {
        sim.pending_acks() > 0 && sim.stats().batches_accepted > 5
    });
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(5));
    let before = sim.stats().batches_accepted;
    assert!(sim.pending_acks() > 0);
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, N as u64, Duration::from_secs(60));
    wait_until(Duration::from_secs(15), "every event indexed", || {
        sim.count_by("eventDataId").len() == N
    });
    stop(&mut child);
    let counts = counts(&sim, N);
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    assert!(sim.stats().batches_accepted > before);
    eprintln!(
        "after kill -9: {duplicates} duplicates (batches pending acknowledgement, sent again)"
    );
}

#[test]
fn busy_and_throttling_answers_are_waited_out() {
    const N: usize = 10_000;
    let sim = simulator(Duration::from_millis(50));
    sim.faults(|f| {
        f.busy_next = 15;
        f.throttle_next = 2;
        f.retry_after_secs = 1;
    });
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("events.ndjson"), events(0..N, None)).unwrap();
    write_config(&scratch, &sim.http_url(), None, "");
    let started = Instant::now();
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, N as u64, Duration::from_secs(60));
    stop(&mut child);
    let stats = sim.stats();
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.by_code.get(&9).copied(), Some(15 + 2), "{stats:?}");
    // Retry-After: 1 s was honoured.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(counts(&sim, N).values().all(|c| *c == 1));
}

#[test]
fn an_event_splunk_refuses_is_dead_lettered_and_the_rest_arrives() {
    const N: usize = 5_000;
    let sim = simulator(Duration::from_millis(50));
    sim.faults(|f| f.invalid_markers = vec!["POISON".to_owned()]);
    let scratch = Scratch::new();
    std::fs::write(
        scratch.input().join("events.ndjson"),
        events(0..N, Some(1234)),
    )
    .unwrap();
    let port = free_port();
    write_config(&scratch, &sim.http_url(), Some(port), "");
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, N as u64 - 1, Duration::from_secs(60));
    wait_drained(port);
    assert_eq!(
        metric(port, "siemcast_destination_events_dead_lettered_total"),
        1.0
    );
    stop(&mut child);
    let counts = sim.count_by("eventDataId");
    assert_eq!(counts.len(), N - 1);
    assert!(!counts.contains_key("ev-001234"));
    assert!(counts.values().all(|c| *c == 1));
    let dead = dead_letters(scratch.dir.path());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], "ev-001234");
    let reason = dead[0]["error"].as_str().unwrap();
    assert!(reason.contains("Invalid data format"), "{reason}");
}

#[test]
fn a_revoked_token_is_reported_and_nothing_is_lost_once_restored() {
    const N: usize = 10_000;
    let sim = simulator(Duration::from_millis(50));
    sim.faults(|f| f.revoke_after_batches = Some(2));
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("events.ndjson"), events(0..N, None)).unwrap();
    let port = free_port();
    write_config(&scratch, &sim.http_url(), Some(port), "");
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    wait_until(
        Duration::from_secs(30),
        "/healthz to name the token",
        || matches!(http_get(port, "/healthz"), Ok((503, body)) if body.contains("does not accept the HEC token")),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("revoked"), "{text}");
    assert!(!text.contains(TOKEN), "the token was logged");
    sim.add_token(HecToken::with_ack(TOKEN));
    wait_indexed(&sim, &mut child, N as u64, Duration::from_secs(60));
    wait_until(Duration::from_secs(30), "/healthz ok", || {
        matches!(http_get(port, "/healthz"), Ok((200, _)))
    });
    stop(&mut child);
    assert!(counts(&sim, N).values().all(|c| *c == 1));
}

/// The simulator's HTTPS certificate: the server certificate of `certs` and its key.
fn sim_tls(certs: &Certs) -> siemcast::hec_simulator::SimTls {
    use rustls_pki_types::pem::PemObject as _;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(certs.server_key_file()).unwrap();
    siemcast::hec_simulator::SimTls {
        cert_chain: vec![certs.server_der.clone()],
        key: key.secret_der().to_vec(),
    }
}

#[test]
fn check_and_send_test_cover_a_hec_destination_over_https() {
    let certs = Certs::new();
    let sim = BackgroundHecSimulator::start(HecConfig {
        tokens: vec![HecToken::with_ack(TOKEN)],
        ack_delay: Duration::from_millis(100),
        tls: Some(sim_tls(&certs)),
        ..HecConfig::default()
    })
    .unwrap();
    let scratch = Scratch::new();
    let url = sim.https_url().unwrap().replace("127.0.0.1", "localhost");
    let tls = format!(
        "[destination.tls]\nca_file = \"{}\"\n[destination.sourcetypes]\nentra_audit = \"my:audit\"",
        certs.ca_file().display()
    );
    write_config(&scratch, &url, None, &tls);
    let summary = check_summary(&scratch.config());
    for line in [
        &format!(
            "destination \"splunk\": hec {url}, ack indexer acknowledgement when the token has it"
        ),
        "token_file ",
        "sourcetype mscs:azure:audit for azure_activity (default, see docs/splunk.md)",
        "index azure, host siemcast-test, source (each [[source]]'s name)",
    ] {
        assert!(summary.contains(line), "no {line:?} in {summary}");
    }
    assert!(!summary.contains(TOKEN), "{summary}");
    let stdout = send_test_output(&scratch.config());
    assert!(stdout.contains("indexed by https://localhost:"), "{stdout}");
    let indexed = sim.indexed();
    assert_eq!(indexed.len(), 1);
    let event = &indexed[0].event;
    assert!(event.event["eventDataId"]
        .as_str()
        .unwrap()
        .starts_with("siemcast-send-test-"));
    assert_eq!(event.sourcetype.as_deref(), Some("mscs:azure:audit"));
    assert_eq!(sim.stats().acks_confirmed, 1);

    // The same destination delivers over HTTPS.
    std::fs::write(scratch.input().join("events.ndjson"), events(0..3000, None)).unwrap();
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, 3001, Duration::from_secs(60));
    stop(&mut child);
    let counts = sim.count_by("eventDataId");
    assert_eq!(counts.len(), 3001);
}

#[test]
fn without_indexer_acknowledgement_a_200_counts() {
    const N: usize = 5_000;
    let sim = BackgroundHecSimulator::start(HecConfig {
        tokens: vec![HecToken::without_ack(TOKEN)],
        ..HecConfig::default()
    })
    .unwrap();
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("events.ndjson"), events(0..N, None)).unwrap();
    let port = free_port();
    write_config(&scratch, &sim.http_url(), Some(port), "gzip = false");
    let mut child = spawn_run(&scratch.config());
    wait_indexed(&sim, &mut child, N as u64, Duration::from_secs(60));
    wait_drained(port);
    assert_eq!(sim.stats().ack_requests, 0);
    assert_eq!(metric(port, "siemcast_hec_acks_confirmed_total"), 0.0);
    stop(&mut child);
    assert!(counts(&sim, N).values().all(|c| *c == 1));
    assert!(sim.indexed().iter().all(|e| !e.gzip && e.ack_id.is_none()));
}

#[test]
fn dry_run_shows_the_hec_events_a_destination_would_send() {
    let scratch = Scratch::new();
    write_config(&scratch, "http://127.0.0.1:9", None, "");
    let input = scratch.dir.path().join("three.ndjson");
    std::fs::write(&input, events(0..3, None)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["dry-run", "-c"])
        .arg(scratch.config())
        .args(["--destination", "splunk", "--source", "activity", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The HEC event of ev-000000: its record, time and fields, as the destination builds it.
    let record = events(0..1, None);
    let event = format!(
        r#"{{"time":1793527200.000,"event":{},"host":"siemcast-test","source":"activity","sourcetype":"mscs:azure:audit","index":"azure"}}"#,
        record.trim_end()
    );
    let line = format!("ev-000000 azure_activity: sent ({} bytes)", event.len());
    assert!(stdout.contains(&line), "no {line:?} in {stdout}");
    assert_eq!(stdout.matches(": sent (").count(), 3, "{stdout}");
}
