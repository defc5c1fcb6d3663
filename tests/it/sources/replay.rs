//! `siemcast replay` end to end: a past window of the activity log is read from the simulator
//! (with throttling, 503s, revoked tokens and duplicates across pages; authenticated with a
//! certificate client assertion the simulator verifies) while the service's spool is locked as
//! by a running service, and delivered to a real rsyslog exactly once; a second replay of an
//! overlapping window sends only what the first did not. The same for an Office 365 source
//! (content listed a day at a time, blobs repeating records, one cut off mid-transfer). Bad
//! windows, and a source without a time window, are refused clearly.

use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use siemcast::event::parse_time_ms;
use siemcast::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
use util::*;

/// A self-signed RSA certificate with its key in one PEM file; returns the DER certificate.
fn mint_certificate(dir: &Path) -> Vec<u8> {
    let (crt, key, der) = (
        dir.join("app.crt"),
        dir.join("app.key"),
        dir.join("app.der"),
    );
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=siemcast-replay-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl req failed");
    let ok = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&crt)
        .arg("-out")
        .arg(&der)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl x509 failed");
    let pem = std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap();
    std::fs::write(dir.join("app.pem"), pem).unwrap();
    std::fs::read(der).unwrap()
}

fn write_config(scratch: &Scratch, sim: &BackgroundSimulator, address: &str) {
    let text = format!(
        r#"state_dir = "state"

[metrics]
address = ""

{azure}
[[source]]
name = "activity"
kind = "azure_activity"
{subs}

[[destination]]
name = "rsyslog"
address = "{address}"
transport = "tcp"
hostname = "siemcast-test"
mappings = "{mappings}"
"#,
        azure = sim.azure_section("certificate_file = \"app.pem\""),
        subs = sim.config().subscriptions_line(),
        mappings = shipped_mappings("arcsight").display(),
    );
    std::fs::write(scratch.config(), text).unwrap();
}

fn replay(scratch: &Scratch, from: &str, to: &str) -> Output {
    replay_source(scratch, "activity", from, to)
}

fn replay_source(scratch: &Scratch, source: &str, from: &str, to: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["replay", "-c"])
        .arg(scratch.config())
        .args(["--source", source, "--from", from, "--to", to])
        .stdin(Stdio::null())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn rfc3339(ms: i64) -> String {
    siemcast::sources::poll::filter_time(ms)
}

/// The `id` of each of `records` whose `time` field is in `[from, to]`, sorted.
fn ids_between(
    records: &[serde_json::Value],
    (time, id): (&str, &str),
    from: i64,
    to: i64,
) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .filter(|r| {
            let t = parse_time_ms(r[time].as_str().unwrap()).unwrap();
            t >= from && t <= to
        })
        .map(|r| r[id].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// eventDataIds of the simulator's activity records with an event time in `[from, to]`.
fn activity_ids_between(sim: &BackgroundSimulator, from: i64, to: i64) -> Vec<String> {
    let fields = ("eventTimestamp", "eventDataId");
    ids_between(&sim.activity_records(), fields, from, to)
}

/// The replay succeeded, reported `new` new events, and the receiver holds exactly `expected`
/// (sorted), each once; returns the replay's stderr.
fn assert_delivered_once(
    out: &Output,
    rsyslog: &Rsyslog,
    expected: &[String],
    new: usize,
) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{new} new event")), "{stdout}");
    // Acknowledged means received: the lines are there when replay exits.
    let counts = received_counts(rsyslog);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
    stderr
}

#[test]
fn replay_delivers_a_past_window_exactly_once_and_overlapping_replays_do_not_repeat() {
    let scratch = Scratch::new();
    let mut cfg = SimConfig::around_now(Duration::from_secs(4 * 3600), Duration::ZERO, 300);
    cfg.seed = 7;
    cfg.subscriptions
        .push("0b7d4f3a-9c11-4c6a-8d3b-5f1c2a7e9e21".into());
    cfg.page_size = 25;
    cfg.client_certificate = Some(mint_certificate(scratch.dir.path()));
    cfg.faults = Faults {
        throttle_every: Some(9),
        retry_after_secs: 1,
        unavailable_every: Some(13),
        revoke_tokens_every: Some(11),
        duplicate_across_pages: true,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let rsyslog = Rsyslog::start_tcp();
    write_config(&scratch, &sim, &rsyslog.address());

    // The service's spool is locked, as while `siemcast run` runs.
    let service_spool = siemcast::spool::Spool::open(
        &scratch.dir.path().join("state").join("spool"),
        siemcast::spool::SpoolOptions::default(),
    )
    .unwrap();

    let now = jiff::Timestamp::now().as_millisecond();
    let (t0, t1, t2) = (now - 3 * 3_600_000, now - 2 * 3_600_000, now - 3_600_000);
    let first = activity_ids_between(&sim, t0, t1);
    assert!(
        first.len() > 100,
        "{} records in the first window",
        first.len()
    );

    let out = replay(&scratch, &rfc3339(t0), &rfc3339(t1));
    let stderr = assert_delivered_once(&out, &rsyslog, &first, first.len());
    // Not a terminal: one plain progress line per window (one per subscription here).
    assert!(
        stderr.contains("replay activity: window 1/2 read"),
        "{stderr}"
    );
    assert!(stderr.contains("window 2/2 read"), "{stderr}");

    // Overlapping the first window's second half: only the new part is sent.
    let mid = (t0 + t1) / 2;
    let out = replay(&scratch, &rfc3339(mid), &rfc3339(t2));
    let all = activity_ids_between(&sim, t0, t2);
    let new = all.len() - first.len();
    assert_delivered_once(&out, &rsyslog, &all, new);

    // The faults were served and waited out; the certificate assertion was accepted.
    let log = sim.requests();
    assert!(log.iter().any(|r| r.status == 429));
    assert!(log.iter().any(|r| r.status == 401));
    assert!(
        log.iter().all(|r| !r.early),
        "a request came before Retry-After"
    );
    assert!(log
        .iter()
        .any(|r| r.service == Service::Login && r.status == 200));
    let n = |c: u16| log.iter().filter(|r| r.status == c).count();
    eprintln!(
        "replay figures: first window {} events, overlapping second window {new} new ({} in all, each once); {} requests: {} x 200, {} x 401, {} x 429, {} x 503",
        first.len(),
        all.len(),
        log.len(),
        n(200),
        n(401),
        n(429),
        n(503)
    );
    drop(service_spool);
}

#[test]
fn replay_refuses_bad_windows_and_sources_clearly() {
    let scratch = Scratch::new();
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 1);
    cfg.client_certificate = Some(mint_certificate(scratch.dir.path()));
    let sim = BackgroundSimulator::start(cfg).unwrap();
    write_config(&scratch, &sim, "127.0.0.1:9");
    let fails = |args: &[&str], expect: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["replay", "-c"])
            .arg(scratch.config())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    };
    fails(
        &["--source", "activity", "--from", "1h", "--to", "2h"],
        "must be before --to",
    );
    fails(
        &["--source", "activity", "--from", "91d", "--to", "90d"],
        "older than the 90 days the azure_activity API keeps",
    );
    fails(
        &["--source", "nope", "--from", "2h", "--to", "1h"],
        "no source named \"nope\"",
    );
    fails(
        &["--source", "activity", "--from", "yesterday", "--to", "now"],
        "--from \"yesterday\" is not a time",
    );
    fails(
        &[
            "--source",
            "activity",
            "--from",
            "1h",
            "--to",
            "2099-01-01T00:00:00Z",
        ],
        "is in the future",
    );
    // The help explains the design: own spool, exit status, dedupe semantics.
    let help = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["replay", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "Example:",
        "siemcast replay -c",
        "STATE_DIR/replay/SOURCE",
        "Dedupe:",
        "--fresh",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    // Nothing was requested from the API for refused windows.
    assert!(sim.requests().is_empty());
}

/// The Office 365 content types of [`api_config`]'s source.
const OFFICE_TYPES: [&str; 2] = O365_CONTENT_TYPES;

/// The shared API config with an Office 365 source named "office" and a Defender source.
fn write_office_config(scratch: &Scratch, sim: &BackgroundSimulator, address: &str) {
    let secret = format!("client_secret = \"{}\"", sim.config().client_secret);
    let defender = format!(
        "\n[[source]]\nname = \"defender\"\nkind = \"defender_alerts\"\nsubscriptions = [\"{}\"]\n",
        sim.config().subscriptions[0]
    );
    let text = api_config(
        sim,
        "office",
        "o365_management",
        address,
        "address = \"\"",
        &secret,
    );
    // A blob is created after its last record: 30 min of records here. The replay lists
    // `overlap` past its end to find them; the default 2 h, not the poller tests' 15 s.
    let text = text.replace("overlap = \"15s\"", "overlap = \"2h\"");
    assert!(text.contains("overlap = \"2h\""));
    std::fs::write(scratch.config(), text + &defender).unwrap();
}

/// Ids of the simulator's distinct audit records with a `CreationTime` in `[from, to]`.
fn office_ids_between(sim: &BackgroundSimulator, from: i64, to: i64) -> Vec<String> {
    let fields = ("CreationTime", "Id");
    ids_between(&sim.office_records(&OFFICE_TYPES), fields, from, to)
}

#[test]
fn o365_replay_lists_a_day_at_a_time_and_delivers_each_record_once() {
    let scratch = Scratch::new();
    let hour = 3_600_000;
    let mut cfg = SimConfig::around_now(Duration::from_secs(30 * 3600), Duration::ZERO, 600);
    cfg.seed = 11;
    cfg.records_per_blob = 10;
    cfg.blobs_per_page = 4;
    cfg.office.late_every = Some(5);
    cfg.office.late_by_ms = 40 * 60_000;
    cfg.faults = Faults {
        throttle_every: Some(9),
        retry_after_secs: 1,
        unavailable_every: Some(13),
        revoke_tokens_every: Some(17),
        duplicate_across_pages: true,
        malformed_blobs: 1,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let rsyslog = Rsyslog::start_tcp();
    write_office_config(&scratch, &sim, &rsyslog.address());

    // Whole seconds, as CreationTime is written.
    let now = jiff::Timestamp::now().as_millisecond() / 1000 * 1000;
    let (t0, t1, t2) = (now - 27 * hour, now - 3 * hour, now - hour);
    let first = office_ids_between(&sim, t0, t1);
    assert!(
        first.len() > 500,
        "{} records in the first window",
        first.len()
    );

    // 24 h plus the overlap past the end: two listings per content type.
    let out = replay_source(&scratch, "office", &rfc3339(t0), &rfc3339(t1));
    let stderr = assert_delivered_once(&out, &rsyslog, &first, first.len());
    assert!(
        stderr.contains("replay office: window 1/4 read"),
        "{stderr}"
    );
    assert!(stderr.contains("window 4/4 read"), "{stderr}");

    // Overlapping the first window's second half: only the new part is sent.
    let out = replay_source(&scratch, "office", &rfc3339(now - 15 * hour), &rfc3339(t2));
    let all = office_ids_between(&sim, t0, t2);
    let new = all.len() - first.len();
    assert!(new > 0);
    assert_delivered_once(&out, &rsyslog, &all, new);

    // Every listing was at most 24 h and within 7 days; the faults were served and waited out.
    let log = sim.requests();
    let office: Vec<_> = log
        .iter()
        .filter(|r| r.service == Service::Office)
        .collect();
    assert!(office
        .iter()
        .any(|r| r.path_and_query.contains("subscriptions/start")));
    assert!(
        office
            .iter()
            .filter(|r| r.path_and_query.contains("subscriptions/content"))
            .all(|r| r.status != 400),
        "a listing was refused"
    );
    assert!(office
        .iter()
        .any(|r| r.path_and_query.contains("nextPage=")));
    assert_eq!(sim.malformed_blobs_served(), 1);
    assert!(log.iter().any(|r| r.status == 403), "throttled with AF429");
    assert!(
        log.iter().all(|r| !r.early),
        "a request came before Retry-After"
    );
    eprintln!(
        "o365 replay figures: first window {} records, overlapping second window {new} new ({} in all, each once); {} requests",
        first.len(),
        all.len(),
        log.len()
    );

    // No time window, or older than the API's 7 days: refused without a request.
    let before = sim.requests().len();
    for (source, from, to, expect) in [
        (
            "defender",
            "2h",
            "1h",
            "\"defender_alerts\", which has no time window",
        ),
        (
            "office",
            "8d",
            "7d",
            "older than the 7 days the o365_management API keeps",
        ),
    ] {
        let out = replay_source(&scratch, source, from, to);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{source}: {stderr}");
        assert!(stderr.contains(expect), "{source}: {stderr}");
    }
    assert_eq!(sim.requests().len(), before);
}

/// A replay goes only where the source is routed: a destination whose route leaves the source
/// out receives nothing, its cursor passes the replayed events (the replay ends), and the
/// routed destination receives each event once, under the source's own hostname.
#[test]
fn replay_respects_each_destinations_route() {
    let scratch = Scratch::new();
    let mut cfg = SimConfig::around_now(Duration::from_secs(2 * 3600), Duration::ZERO, 120);
    cfg.seed = 11;
    cfg.client_certificate = Some(mint_certificate(scratch.dir.path()));
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let rsyslog = Rsyslog::start_tcp();
    let alerts_only = Rsyslog::start_tcp();
    write_config(&scratch, &sim, &rsyslog.address());
    let text = std::fs::read_to_string(scratch.config()).unwrap().replace(
        "subscriptions = [",
        "hostname = \"azure-activity-log\"\nsubscriptions = [",
    ) + &format!(
        "\n[[source]]\nname = \"alerts\"\nkind = \"graph_alerts\"\n\n[[destination]]\nname = \"alerts-only\"\naddress = \"{}\"\nsources = [\"alerts\"]\nmappings = \"{}\"\n",
        alerts_only.address(),
        shipped_mappings("arcsight").display()
    );
    std::fs::write(scratch.config(), text).unwrap();

    let now = jiff::Timestamp::now().as_millisecond();
    let (from, to) = (now - 2 * 3_600_000 + 60_000, now - 60_000);
    let expected = activity_ids_between(&sim, from, to);
    assert!(!expected.is_empty());
    let out = replay(&scratch, &rfc3339(from), &rfc3339(to));
    assert_delivered_once(&out, &rsyslog, &expected, expected.len());
    for line in rsyslog.lines() {
        let msg = syslog_loose::parse_message(&line, syslog_loose::Variant::RFC3164);
        assert_eq!(msg.hostname, Some("azure-activity-log"), "{line}");
    }
    assert_eq!(alerts_only.count_lines(), 0, "{:?}", alerts_only.lines());
    // Passed over as outside the route, not dead-lettered for want of a mapping.
    let dead = scratch
        .dir
        .path()
        .join("state/dead-letter/alerts-only.ndjson");
    assert!(
        !dead.exists(),
        "{}",
        std::fs::read_to_string(&dead).unwrap_or_default()
    );
}

/// A replay applies each destination's filter rules: a destination that samples one event in
/// two receives exactly the ids whose hash keeps them, each once; the other receives all.
#[test]
fn replay_applies_each_destinations_rules() {
    let scratch = Scratch::new();
    let mut cfg = SimConfig::around_now(Duration::from_secs(2 * 3600), Duration::ZERO, 120);
    cfg.seed = 13;
    cfg.client_certificate = Some(mint_certificate(scratch.dir.path()));
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let rsyslog = Rsyslog::start_tcp();
    let sampled = Rsyslog::start_tcp();
    write_config(&scratch, &sim, &rsyslog.address());
    let text = std::fs::read_to_string(scratch.config()).unwrap()
        + &format!(
            "\n[[destination]]\nname = \"sampled\"\naddress = \"{}\"\nmappings = \"{}\"\n\n[[destination.rule]]\nname = \"half\"\naction = \"sample\"\nkeep_one_in = 2\n",
            sampled.address(),
            shipped_mappings("arcsight").display()
        );
    std::fs::write(scratch.config(), text).unwrap();

    let now = jiff::Timestamp::now().as_millisecond();
    let (from, to) = (now - 2 * 3_600_000 + 60_000, now - 60_000);
    let expected = activity_ids_between(&sim, from, to);
    assert!(expected.len() >= 20, "{}", expected.len());
    let out = replay(&scratch, &rfc3339(from), &rfc3339(to));
    assert_delivered_once(&out, &rsyslog, &expected, expected.len());
    let kept: Vec<String> = expected
        .iter()
        .filter(|id| siemcast::destinations::filter::sample_bucket(id, 2) == 0)
        .cloned()
        .collect();
    assert!(!kept.is_empty() && kept.len() < expected.len());
    let counts = received_counts(&sampled);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), kept);
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
}

/// Risk detections keep history: a past window of both lists (users' and service principals')
/// is replayed, each detection's version in the window once; risky users list current states
/// only and are refused, naming the kinds that can be replayed.
#[test]
fn risk_detections_of_both_lists_replay_and_risky_users_are_refused() {
    let scratch = Scratch::new();
    let mut cfg = SimConfig::around_now(Duration::from_secs(3 * 3600), Duration::ZERO, 60);
    cfg.client_certificate = Some(mint_certificate(scratch.dir.path()));
    cfg.page_size = 7;
    cfg.faults = Faults {
        throttle_every: Some(5),
        retry_after_secs: 1,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let rsyslog = Rsyslog::start_tcp();
    write_config(&scratch, &sim, &rsyslog.address());
    let extra = "\n[[source]]\nname = \"risk\"\nkind = \"entra_risk_detections\"\n\n[[source]]\nname = \"risky\"\nkind = \"entra_risky_users\"\n\n[azure.rate_limits]\nidentity_protection = \"50/1s\"\n";
    let text = std::fs::read_to_string(scratch.config()).unwrap();
    let text = text.replacen("[[destination]]", &format!("{extra}\n[[destination]]"), 1);
    std::fs::write(scratch.config(), text).unwrap();

    let now = jiff::Timestamp::now().as_millisecond();
    let (from, to) = (now - 2 * 3600 * 1000, now - 3600 * 1000);
    let [_, users, principals, _] = sim.risk_final_records();
    let mut want: Vec<String> = users
        .iter()
        .chain(&principals)
        .filter(|r| {
            let t = parse_time_ms(r["lastUpdatedDateTime"].as_str().unwrap()).unwrap();
            t >= from && t < to
        })
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert!(want.len() > 20, "the window holds detections of both lists");
    let out = replay_source(&scratch, "risk", &rfc3339(from), &rfc3339(to));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = rsyslog.wait_for_lines(want.len(), Duration::from_secs(30));
    let mut got: Vec<String> = lines
        .iter()
        .map(|l| cef_value(l, "flexString2").expect("flexString2").to_owned())
        .collect();
    got.sort();
    assert_eq!(got, want, "each detection of the window once");
    let lists: BTreeMap<&str, usize> =
        sim.requests()
            .iter()
            .filter(|r| r.status == 200)
            .fold(BTreeMap::new(), |mut m, r| {
                for list in ["/riskDetections", "/servicePrincipalRiskDetections"] {
                    if r.path_and_query.contains(list) {
                        *m.entry(list).or_default() += 1;
                    }
                }
                m
            });
    assert_eq!(lists.len(), 2, "both lists read: {lists:?}");

    let out = replay_source(&scratch, "risky", "2h", "1h");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"entra_risky_users\", which has no time window to replay")
            && stderr.contains("entra_risk_detections"),
        "{stderr}"
    );
    eprintln!(
        "replayed {} detections of both lists once ({lists:?} pages)",
        want.len()
    );
}
