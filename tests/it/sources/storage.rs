//! The `storage_archive` source end to end: `siemcast run` reads the simulator's storage
//! account (append blobs of JSON lines and flow-log block blobs growing during the test, a
//! partial last line, 503 ServerBusy with Retry-After, 500s, tokens revoked) into a real
//! rsyslog, is killed with SIGKILL midway and restarted, and every record arrives exactly once;
//! a replaced blob is read again from its start without losing a record; bad credentials and
//! missing containers are told in words and make `/healthz` degraded; a large archive is read
//! in ranges with bounded memory; of a 2 GiB archive only the open hours are listed and read,
//! and a replay reads only the hour it asks for.

use crate::util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use siemcast::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
use util::*;

/// The source's `containers` line: the three containers the account holds.
const CONTAINERS: &str = r#"containers = ["insights-activity-logs", "AuditEvent", "insights-logs-networksecuritygroupflowevent"]"#;
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
        storage_broken_lines_every: Some(17),
        ..Faults::default()
    };
    cfg
}

/// A simulator of [`growing`] records without faults, and rsyslog over TCP.
fn calm(per_scope: usize) -> (BackgroundSimulator, Rsyslog) {
    let mut cfg = growing(per_scope);
    cfg.faults = Faults::default();
    (
        BackgroundSimulator::start(cfg).unwrap(),
        Rsyslog::start_tcp(),
    )
}

/// A config reading `containers` of the simulator's account into rsyslog at `address`;
/// `auth` is `client_secret = …` (the `[azure]` identity) or a `sas_token_file` line.
fn write_config(scratch: &Scratch, sim: &BackgroundSimulator, address: &str, extra: &str) -> u16 {
    let metrics = free_port();
    let azure = sim.azure_section(&format!(
        "client_secret = \"{}\"",
        sim.config().client_secret
    ));
    let text = format!(
        r#"state_dir = "state"

[metrics]
address = "127.0.0.1:{metrics}"
poll_grace = "1s"

{azure}
[[source]]
name = "ms"
kind = "storage_archive"
blob_endpoint = "{endpoint}"
interval = "300ms"
start_at = "1h"
{extra}

{destination}"#,
        endpoint = sim.endpoint(Service::Storage),
        destination = rsyslog_destination(address),
    );
    std::fs::write(scratch.config(), text).unwrap();
    metrics
}

/// A scratch folder with a config (see [`write_config`]), the log file and the metrics port.
struct Setup {
    scratch: Scratch,
    log: std::path::PathBuf,
    metrics: u16,
}

impl Setup {
    fn new(sim: &BackgroundSimulator, address: &str, extra: &str) -> Setup {
        let scratch = Scratch::new();
        let metrics = write_config(&scratch, sim, address, extra);
        let log = scratch.dir.path().join("siemcast.log");
        Setup {
            scratch,
            log,
            metrics,
        }
    }

    fn spawn(&self) -> Running {
        super::pollers::spawn_logged(&self.scratch.config(), &self.log, None)
    }
}

/// Requests the storage account answered with 200 or 206.
fn served(sim: &BackgroundSimulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.service == Service::Storage && matches!(r.status, 200 | 206))
        .count()
}

/// Every event the account's records will give: one per record, one per flow tuple of a flow
/// log.
fn expected(sim: &BackgroundSimulator) -> usize {
    let tuples = |r: &serde_json::Value| -> usize {
        r["properties"]["flows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["flows"].as_array().into_iter().flatten())
            .map(|g| g["flowTuples"].as_array().map_or(0, Vec::len))
            .sum()
    };
    ALL.iter()
        .flat_map(|c| sim.storage_records(c))
        .map(|r| match r["category"].as_str() {
            Some("NetworkSecurityGroupFlowEvent") => tuples(&r),
            _ => 1,
        })
        .sum()
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
    let setup = Setup::new(&sim, &rsyslog.address(), CONTAINERS);
    let log = setup.log.clone();

    let mut child = setup.spawn();
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
    let mut child = setup.spawn();
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
    // The broken lines are each in the dead-letter file, whole, with blob and offset.
    let dead = std::fs::read_to_string(
        setup
            .scratch
            .dir
            .path()
            .join("state/dead-letter/source-ms.ndjson"),
    )
    .expect("a dead-letter file");
    let dead: BTreeMap<(String, u64), serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            let at = (
                v["blob"].as_str().unwrap().to_owned(),
                v["offset"].as_u64().unwrap(),
            );
            (at, v)
        })
        .collect();
    let broken = sim.storage_broken_lines();
    assert!(broken > 0, "the simulator wrote no broken line");
    assert_eq!(
        dead.len(),
        broken,
        "each broken line dead-lettered (once per place)"
    );
    for v in dead.values() {
        assert!(
            v["payload"].as_str().unwrap().starts_with("not json: {"),
            "{v}"
        );
        assert_eq!(
            v["container"].as_str().map(|c| ALL.contains(&c)),
            Some(true),
            "{v}"
        );
    }
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
        "storage_archive: {total} events (records, flow tuples) of {} blobs delivered exactly once across 1 kill -9 ({:.1} s after restart); {} x 200, {} x 206, {} x 503, {} x 500, {} x 401",
        ALL.iter().map(|c| sim.storage_blob_names(c).len()).sum::<usize>(),
        started.elapsed().as_secs_f64(),
        n(200),
        n(206),
        n(503),
        n(500),
        n(401)
    );
}

/// The record ids one blob's bytes give, as the source computes them (JSON lines).
fn line_ids(container: &str, name: &str, body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for line in body.split_inclusive('\n') {
        if line.ends_with('\n') {
            let text = line.trim_end_matches('\n');
            out.push(siemcast::sources::storage_archive::record_id(
                container,
                name,
                at,
                text.as_bytes(),
            ));
        }
        at += line.len() as u64;
    }
    out
}

#[test]
fn storage_archive_reads_a_replaced_blob_again_without_losing_a_record() {
    let (sim, rsyslog) = calm(80);
    let container = "insights-logs-auditevent";
    let setup = Setup::new(&sim, &rsyslog.address(), "containers = [\"AuditEvent\"]");
    let log = setup.log.clone();
    let mut child = setup.spawn();
    rsyslog.wait_for_lines_from(Some(&mut *child), 20, Duration::from_secs(60));
    let names = sim.storage_blob_names(container);
    let replaced = names
        .iter()
        .find(|n| sim.storage_replace(container, n))
        .expect("a blob to replace")
        .clone();
    let total = sim.storage_records(container).len();
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), total, Duration::from_secs(60));
    let lines = finish(&sim, &rsyslog, &mut child, lines);

    // Every record of the final blobs, by the id its place and bytes give.
    let sas = sim.storage_sas("rl", jiff::Timestamp::now().as_millisecond() + 600_000);
    let port: u16 = sim
        .endpoint(Service::Storage)
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let counts = id_counts(&lines);
    let mut kept = 0;
    for name in &names {
        let (code, body) = http_get(port, &format!("/{container}/{name}?{sas}")).unwrap();
        assert_eq!(code, 200, "{name}: {body}");
        for id in line_ids(container, name, &body) {
            let n = counts.get(&id).copied().unwrap_or(0);
            assert!(n >= 1, "{name}: record {id} never delivered");
            // Only the records the replaced blob kept come twice, with the same id.
            if n > 1 {
                assert_eq!(name, &replaced, "{id} delivered {n} times");
                assert_eq!(n, 2);
                kept += 1;
            }
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Blob replaced").count(), 1, "told once");
    eprintln!("storage_archive: blob replaced mid-read; {total} final records all delivered, {kept} kept records sent again with their ids");
}

#[test]
fn storage_archive_tells_a_missing_container_and_an_expired_sas_in_words() {
    let (sim, rsyslog) = calm(30);
    let setup = Setup::new(
        &sim,
        &rsyslog.address(),
        "containers = [\"insights-activity-logs\", \"insights-logs-nosuchcategory\"]\nsas_token_file = \"sas\"",
    );
    let (scratch, log, metrics) = (&setup.scratch, setup.log.clone(), setup.metrics);
    // A SAS that expires a few seconds into the run.
    let expiry = jiff::Timestamp::now().as_millisecond() + 6_000;
    std::fs::write(
        scratch.dir.path().join("sas"),
        sim.storage_sas("rl", expiry),
    )
    .unwrap();
    let mut child = setup.spawn();
    let has = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(what)
            .count()
    };
    wait_until(
        Duration::from_secs(30),
        "the missing container told",
        || has("The container does not exist") > 0,
    );
    // Degraded once the poll interval and the grace have passed without a complete poll.
    let mut health = String::new();
    wait_until(Duration::from_secs(10), "/healthz degraded", || {
        let (code, body) = http_get(metrics, "/healthz").unwrap();
        health = body;
        code == 503
    });
    assert!(
        health.contains("insights-logs-nosuchcategory") && health.contains("ContainerNotFound"),
        "{health}"
    );
    // The other container is read meanwhile.
    rsyslog.wait_for_lines_from(Some(&mut *child), 1, Duration::from_secs(30));
    wait_until(Duration::from_secs(30), "the expired SAS told", || {
        has("refused the credential") > 0
    });
    pause(Duration::from_secs(2));
    let (code, health) = http_get(metrics, "/healthz").unwrap();
    assert_eq!(code, 503);
    assert!(health.contains("AuthenticationFailed"), "{health}");
    stop(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("The container does not exist").count(),
        1,
        "told once"
    );
    assert_eq!(
        text.matches("refused the credential").count(),
        2,
        "told once per container"
    );
    assert!(
        !text.contains(sim.storage_sas("rl", expiry).split("sig=").nth(1).unwrap()),
        "the SAS signature is logged"
    );
    // A SAS that cannot list is refused before start, in words.
    std::fs::write(
        scratch.dir.path().join("sas"),
        sim.storage_sas("r", expiry + 600_000),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["check", "-c"])
        .arg(scratch.config())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && said.contains("sas_token_file") && said.contains("sp=rl"),
        "{said}"
    );
}

#[test]
fn storage_archive_reads_a_large_archive_in_ranges_with_bounded_memory() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 5);
    let now = jiff::Timestamp::now().as_millisecond();
    // 15,000 records a kind in the last 20 minutes: a few large blobs (tens of MB); more with
    // STORAGE_BENCH_RECORDS (benches/storage_archive.sh).
    let count = std::env::var("STORAGE_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15_000);
    cfg.storage = siemcast::simulator::Timeline {
        count,
        start_ms: now - 20 * 60_000,
        span_ms: 19 * 60_000,
        max_latency_ms: 1_000,
        late_every: None,
        late_by_ms: 0,
    };
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let total = expected(&sim);
    let rsyslog = Rsyslog::start_tcp();
    let setup = Setup::new(&sim, &rsyslog.address(), CONTAINERS);
    let log = setup.log.clone();
    let mut child = setup.spawn();
    let pid = child.id();
    let started = Instant::now();
    let mut peak = 0;
    wait_until(Duration::from_secs(120), "every record delivered", || {
        peak = peak.max(rss_kib(pid));
        rsyslog.count_lines() >= total
    });
    let took = started.elapsed().as_secs_f64();
    stop(&mut child);
    let biggest = sim
        .requests()
        .iter()
        .filter(|r| r.service == Service::Storage && r.status == 206)
        .count();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Record rejected"), "nothing rejected");
    assert!(biggest > 10, "{biggest} ranged reads");
    // Far below the archive's size: read in ranges, spooled in batches.
    let archive: u64 = ALL
        .iter()
        .map(|c| {
            let text: usize = sim
                .storage_records(c)
                .iter()
                .map(|r| r.to_string().len() + 1)
                .sum();
            text as u64
        })
        .sum();
    // A fixed bound whatever the archive's size (read in 1 MiB ranges, spooled in batches of
    // 1,000 events): 30,000 records a kind (90 MB of blobs) peaked at 67 MiB as well.
    assert!(
        peak < 96 * 1024,
        "peak RSS {peak} KiB for an archive of {archive} bytes"
    );
    eprintln!("storage_archive: {total} events from {} MiB of blobs in {took:.1} s ({:.0} events/s end to end), {biggest} ranged reads, peak RSS {} MiB", archive >> 20, total as f64 / took, peak / 1024);
}

/// The blob reads (Get Blob, Get Blob Properties) of requests `from..` of the storage account,
/// by blob name.
fn blob_reads(sim: &BackgroundSimulator, from: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in sim.requests().iter().skip(from) {
        let path = r.decoded_path();
        if r.service != Service::Storage || r.query("comp").as_deref() == Some("list") {
            continue;
        }
        if let Some((_, name)) = path.trim_start_matches('/').split_once('/') {
            *out.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn storage_archive_reads_only_open_hours_of_a_2_gib_archive_and_replays_one_old_hour() {
    // 2 GiB of Key Vault audit events in 512 old hours (4 MiB blobs generated when read),
    // then 300 records in the last 20 minutes. STORAGE_ARCHIVE_BYTES sets another size.
    let bytes: u64 = std::env::var("STORAGE_ARCHIVE_BYTES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2 << 30);
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 5);
    let now = jiff::Timestamp::now().as_millisecond();
    cfg.storage = siemcast::simulator::Timeline {
        count: 300,
        start_ms: now - 20 * 60_000,
        span_ms: 19 * 60_000,
        max_latency_ms: 1_000,
        late_every: None,
        late_by_ms: 0,
    };
    // The old hours end before the hour of `start_at = "1h"` (the first hour a first start
    // lists).
    cfg.storage_old_hours = Some(siemcast::simulator::storage_data::OldHours {
        bytes,
        before_ms: now - 3_600_000,
    });
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let old = sim.storage_old_blobs();
    let per_blob = (siemcast::simulator::storage_data::OLD_RECORDS_PER_BLOB
        * siemcast::simulator::storage_data::OLD_LINE_BYTES) as u64;
    assert!(
        old.len() as u64 * per_blob >= bytes,
        "{} old blobs",
        old.len()
    );
    let expected = sim.storage_records("insights-logs-auditevent").len();
    assert_eq!(expected, 300);
    let rsyslog = Rsyslog::start_tcp();
    let setup = Setup::new(&sim, &rsyslog.address(), "containers = [\"AuditEvent\"]");
    let mut child = setup.spawn();
    let pid = child.id();
    let mut peak = 0;
    wait_until(
        Duration::from_secs(90),
        "every recent record delivered",
        || {
            peak = peak.max(rss_kib(pid));
            rsyslog.count_lines() >= expected
        },
    );
    // A few more polls: nothing old is read later either.
    for _ in 0..10 {
        peak = peak.max(rss_kib(pid));
        pause(Duration::from_millis(300));
    }
    stop(&mut child);
    let lines = rsyslog.lines();
    let counts = id_counts(&lines);
    assert_eq!(counts.len(), expected, "every recent record");
    assert_eq!(
        lines.len(),
        expected,
        "once, and nothing from the old hours"
    );
    let reads = blob_reads(&sim, 0);
    let old_names: BTreeMap<&str, i64> = old.iter().map(|(_, n, h)| (n.as_str(), *h)).collect();
    let old_read: Vec<&String> = reads
        .keys()
        .filter(|n| old_names.contains_key(n.as_str()))
        .collect();
    assert!(old_read.is_empty(), "old hours read: {old_read:?}");
    assert!(!reads.is_empty(), "the recent blobs were read");
    // Listed by hour: one folder level at a time (a delimiter), or one hour's prefix; a few
    // listings per poll, not one per old hour.
    let lists: Vec<(String, Option<String>)> = sim
        .requests()
        .iter()
        .filter(|r| r.service == Service::Storage && r.query("comp").as_deref() == Some("list"))
        .map(|r| (r.query("prefix").unwrap_or_default(), r.query("delimiter")))
        .collect();
    assert!(
        lists
            .iter()
            .all(|(p, d)| d.as_deref() == Some("/") || p.contains("/h=")),
        "{lists:?}"
    );
    let polls = lists.iter().filter(|(p, _)| p.contains("/h=")).count();
    assert!(
        lists.len() < polls * 3 + 10 && polls < old.len(),
        "{} listings ({polls} of hours) for {} old hours",
        lists.len(),
        old.len()
    );
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");

    // One old hour in the middle of the archive, replayed: only its blob is read.
    let (_, name, hour) = old[old.len() / 2].clone();
    let before = sim.requests().len();
    let started = Instant::now();
    let mut replay = std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["replay", "-c"])
        .arg(setup.scratch.config())
        .args(["--source", "ms", "--from"])
        .arg(siemcast::sources::poll::filter_time(hour))
        .arg("--to")
        .arg(siemcast::sources::poll::filter_time(hour + 3_599_999))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut replay_peak = 0;
    let status = loop {
        replay_peak = replay_peak.max(rss_kib(replay.id()));
        if let Some(status) = replay.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "replay still running"
        );
        pause(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(replay.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    let took = started.elapsed().as_secs_f64();
    let per_hour = siemcast::simulator::storage_data::OLD_RECORDS_PER_BLOB;
    let lines = rsyslog.wait_for_lines(expected + per_hour, Duration::from_secs(60));
    pause(Duration::from_millis(500));
    let lines = if rsyslog.lines().len() > lines.len() {
        rsyslog.lines()
    } else {
        lines
    };
    let counts = id_counts(&lines);
    assert_eq!(lines.len(), expected + per_hour, "the old hour once");
    assert_eq!(counts.len(), expected + per_hour);
    // Its blob, and the next hour's (records land in the hour they are received).
    let next = old
        .iter()
        .find(|(_, _, h)| *h == hour + 3_600_000)
        .map(|(_, n, _)| n.clone())
        .unwrap();
    let reads = blob_reads(&sim, before);
    assert_eq!(
        reads.keys().collect::<Vec<_>>(),
        vec![&name, &next],
        "only the replayed hour and the next read"
    );
    assert!(replay_peak < 96 * 1024, "replay peak RSS {replay_peak} KiB");
    eprintln!(
        "storage_archive: {} GiB archive ({} old hours): {expected} recent records read with {} listings, no old blob read, peak RSS {} MiB; one old hour replayed ({per_hour} records; 8 MiB read) in {took:.1} s, peak RSS {} MiB",
        bytes >> 30,
        old.len(),
        lists.len(),
        peak / 1024,
        replay_peak / 1024
    );
}

#[test]
fn storage_archive_keeps_to_the_storage_request_budget() {
    // `[azure.rate_limits] storage = "4/1s"`: a burst of 4, then one request every 250 ms,
    // for the account, however many containers the source reads (without it, this source
    // makes 10 requests within 15 ms).
    let (sim, rsyslog) = calm(30);
    let setup = Setup::new(&sim, &rsyslog.address(), CONTAINERS);
    let text = std::fs::read_to_string(setup.scratch.config()).unwrap();
    let text = text.replacen(
        "[[source]]",
        "[azure.rate_limits]\nstorage = \"4/1s\"\n\n[[source]]",
        1,
    );
    std::fs::write(setup.scratch.config(), text).unwrap();
    let mut child = setup.spawn();
    let total = expected(&sim);
    rsyslog.wait_for_lines_from(Some(&mut *child), total, Duration::from_secs(60));
    pause(Duration::from_secs(2));
    stop(&mut child);
    let at: Vec<i64> = sim
        .requests()
        .iter()
        .filter(|r| r.service == Service::Storage)
        .map(|r| r.at_ms)
        .collect();
    assert!(at.len() > 30, "{} requests", at.len());
    // In any second at most the burst and four more (a little slack for the clock).
    for w in at.windows(10) {
        assert!(
            w[9] - w[0] >= 900,
            "10 requests within {} ms: {w:?}",
            w[9] - w[0]
        );
    }
    let counts = id_counts(&rsyslog.lines());
    assert!(counts.values().all(|&n| n == 1), "once");
    assert_eq!(counts.len(), total, "every record");
    eprintln!(
        "storage_archive: {} requests in {} ms at storage = \"4/1s\"; {total} events once",
        at.len(),
        at[at.len() - 1] - at[0]
    );
}

#[test]
fn storage_archive_replays_past_hours_keeping_the_window_once() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 5);
    let now = jiff::Timestamp::now().as_millisecond();
    let start = now - 3 * 3_600_000;
    cfg.storage = siemcast::simulator::Timeline {
        count: 60,
        start_ms: start,
        span_ms: 40 * 60_000,
        max_latency_ms: 1_000,
        late_every: None,
        late_by_ms: 0,
    };
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let (from, to) = (start + 10 * 60_000, start + 30 * 60_000);
    let expected = ["insights-activity-logs", "insights-logs-auditevent"]
        .iter()
        .flat_map(|c| sim.storage_records(c))
        .filter(|r| {
            let t: jiff::Timestamp = r["time"].as_str().unwrap().parse().unwrap();
            (from..=to).contains(&t.as_millisecond())
        })
        .count();
    assert!(
        expected > 10 && expected < 120,
        "{expected} records in the window"
    );
    let rsyslog = Rsyslog::start_tcp();
    let setup = Setup::new(
        &sim,
        &rsyslog.address(),
        "containers = [\"insights-activity-logs\", \"AuditEvent\"]",
    );
    let replay = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["replay", "-c"])
            .arg(setup.scratch.config())
            .args(["--source", "ms", "--from"])
            .arg(siemcast::sources::poll::filter_time(from))
            .arg("--to")
            .arg(siemcast::sources::poll::filter_time(to))
            .stdin(std::process::Stdio::null())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = replay();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rsyslog.wait_for_lines(expected, Duration::from_secs(30));
    // The same replay again: its hours are done, nothing is sent twice.
    let again = replay();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    pause(Duration::from_secs(1));
    let lines = rsyslog.lines();
    let counts = id_counts(&lines);
    assert_eq!(counts.len(), expected, "every record of the window");
    assert_eq!(lines.len(), expected, "once");
    eprintln!("storage_archive: replay of 20 minutes three hours back: {expected} records, once across two runs");
}
