//! The Microsoft API pollers end to end: `siemcast run` reads the simulator (429s and Office
//! 365's 403 AF429 with Retry-After, 503s, tokens that expire and are revoked mid-paging, late
//! events and blobs, duplicates across pages and blobs, malformed pages and blobs, Defender
//! alerts changing status), is killed with SIGKILL in the middle and restarted, and every
//! event reaches a real rsyslog receiver exactly once. The simulator's request log shows that no
//! request came before a Retry-After had passed, and the logs never show the client secret.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use siemcast::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
use util::*;

fn faulty(per_scope: usize) -> SimConfig {
    let mut cfg = SimConfig::around_now(Duration::from_secs(15), Duration::from_secs(8), per_scope);
    cfg.seed = 42;
    cfg.subscriptions
        .push("0b7d4f3a-9c11-4c6a-8d3b-5f1c2a7e9e21".into());
    cfg.page_size = 40;
    cfg.token_lifetime = Duration::from_secs(4);
    cfg.activity.late_every = Some(10);
    cfg.activity.late_by_ms = 5_000;
    cfg.alerts.late_every = Some(10);
    cfg.alerts.late_by_ms = 5_000;
    cfg.defender.late_every = Some(10);
    cfg.defender.late_by_ms = 5_000;
    cfg.office.late_every = Some(4);
    cfg.office.late_by_ms = 5_000;
    cfg.faults = Faults {
        throttle_every: Some(9),
        retry_after_secs: 1,
        unavailable_every: Some(14),
        revoke_tokens_every: Some(11),
        duplicate_across_pages: true,
        malformed_pages: 2,
        slow_page: Some(Duration::from_millis(30)),
        malformed_blobs: 2,
        broken_records_every: None,
        ..Faults::default()
    };
    cfg
}

/// Writes a config reading `kind` from the simulator into the rsyslog at `address`.
fn write_config(
    scratch: &Scratch,
    sim: &BackgroundSimulator,
    kind: &str,
    address: &str,
    secret_in_file: bool,
) {
    let secret_line = if secret_in_file {
        std::fs::write(
            scratch.dir.path().join("client-secret"),
            &sim.config().client_secret,
        )
        .unwrap();
        "client_secret_file = \"client-secret\""
    } else {
        ""
    };
    let text = api_config(sim, "ms", kind, address, "address = \"\"", secret_line);
    std::fs::write(scratch.config(), text).unwrap();
}

/// `siemcast run` with debug logs into `log`, and the secret in the environment when given.
pub(super) fn spawn_logged(config: &Path, log: &Path, secret: Option<&str>) -> Running {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_siemcast"));
    cmd.args(["run", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .env("RUST_LOG", "siemcast=debug,info")
        .env_remove("SIEMCAST_AZURE__CLIENT_SECRET");
    if let Some(s) = secret {
        cmd.env("SIEMCAST_AZURE__CLIENT_SECRET", s);
    }
    Running::from(cmd.spawn().unwrap())
}

fn ok_pages(sim: &BackgroundSimulator, service: Service) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.service == service && r.status == 200)
        .count()
}

/// Kills siemcast (SIGKILL) once the simulator has served `pages` pages; rsyslog is down
/// meanwhile, so nothing is in flight to it and the receiver's count is the sources' count.
fn kill_midway(
    sim: &BackgroundSimulator,
    service: Service,
    child: &mut Running,
    pages: usize,
    log: &Path,
) {
    wait_until(
        Duration::from_secs(60),
        "pages served before the kill",
        || {
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("siemcast exited early ({status}); its log:\n{text}");
            }
            ok_pages(sim, service) >= pages
        },
    );
    signal(child, "KILL");
    let _ = child.wait();
    sim.forget_retry_after();
}

/// Checks the simulator's log: faults were served, Retry-After was honoured, tokens renewed.
/// Events the killed process had spooled (read from its spool on disk).
fn spooled_before_restart(scratch: &Scratch) -> usize {
    let spool = siemcast::spool::Spool::open(
        &scratch.dir.path().join("state").join("spool"),
        siemcast::spool::SpoolOptions::default(),
    )
    .unwrap();
    assert!(
        spool.checkpoint_chain("ms").is_some(),
        "no checkpoint was spooled"
    );
    let (mut from, mut n) = (0, 0);
    loop {
        let mut recs = Vec::new();
        let next = spool.read(from, 10_000, 64 << 20, &mut recs).unwrap();
        n += recs.len();
        if next == from {
            return n;
        }
        from = next;
    }
}

fn check_faults(sim: &BackgroundSimulator, service: Service) -> String {
    let log: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == service)
        .collect();
    let n = |c: u16| log.iter().filter(|r| r.status == c).count();
    let early: Vec<_> = log.iter().filter(|r| r.early).collect();
    assert!(
        early.is_empty(),
        "requests sent before Retry-After passed: {early:#?}"
    );
    // Office 365 throttles with 403 AF429; its malformed answers are blobs.
    let (throttle, malformed, what) = match service {
        Service::Office => (403, sim.malformed_blobs_served(), "blobs"),
        _ => (429, sim.malformed_pages_served(), "pages"),
    };
    for status in [401, throttle, 503] {
        assert!(n(status) > 0, "the simulator served no {status}");
    }
    assert_eq!(malformed, 2, "malformed {what} served");
    assert!(sim.tokens_issued() >= 3, "tokens were not renewed");
    format!(
        "{} requests: {} x 200, {} x 401 (token revoked/expired), {} x {throttle}, {} x 503, 2 malformed {what}, {} tokens issued",
        log.len(),
        n(200),
        n(401),
        n(throttle),
        n(503),
        sim.tokens_issued()
    )
}

fn assert_secret_not_logged(log: &Path, secret: &str) {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.is_empty(), "no logs were written");
    assert!(
        !text.contains(secret),
        "the client secret appears in the logs"
    );
}

/// Runs `kind` from the simulator into rsyslog with a kill -9 midway; asserts every id in
/// `expected` arrived exactly once (read from CEF key `id_key`) and returns the figures.
fn exactly_once_across_kill_9(
    sim: &BackgroundSimulator,
    kind: &str,
    service: Service,
    expected: &[String],
    id_key: &str,
) -> String {
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let scratch = Scratch::new();
    write_config(&scratch, sim, kind, &rsyslog.address(), true);
    let log = scratch.dir.path().join("siemcast.log");

    let mut child = spawn_logged(&scratch.config(), &log, None);
    kill_midway(sim, service, &mut child, 8, &log);
    let before = spooled_before_restart(&scratch);
    assert!(
        before > 0 && before < expected.len(),
        "killed at {before} events: not midway"
    );
    rsyslog.restart(Listen::Tcp);
    let mut child = spawn_logged(&scratch.config(), &log, None);
    let started = Instant::now();
    let lines =
        rsyslog.wait_for_lines_from(Some(&mut *child), expected.len(), Duration::from_secs(90));
    // Let the tail of the timeline pass: nothing more may arrive.
    let end = sim.last_visible_ms() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    pause(Duration::from_secs(1));
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let lines = if rsyslog.lines().len() > lines.len() {
        rsyslog.lines()
    } else {
        lines
    };

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        let id = cef_value(line, id_key).unwrap_or_else(|| panic!("no {id_key}: {line}"));
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids missing: {:?}",
        missing.len(),
        missing.first()
    );
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{} ids delivered twice: {:?}",
        dups.len(),
        dups.first()
    );
    assert_eq!(counts.len(), expected.len());
    let faults = check_faults(sim, service);
    assert_secret_not_logged(&log, &sim.config().client_secret);
    format!(
        "{kind}: {} events delivered exactly once across 1 kill -9 at {before} spooled ({:.1} s after restart); {faults}",
        lines.len(),
        started.elapsed().as_secs_f64()
    )
}

fn ids(records: &[serde_json::Value], field: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| r[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn azure_activity_every_event_exactly_once_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(400)).unwrap();
    let expected = ids(&sim.activity_records(), "eventDataId");
    assert_eq!(expected.len(), 800);
    let figures = exactly_once_across_kill_9(
        &sim,
        "azure_activity",
        Service::Management,
        &expected,
        "externalId",
    );
    eprintln!("{figures}");
}

#[test]
fn entra_audit_every_record_exactly_once_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(400)).unwrap();
    let expected = ids(&sim.audit_records(), "id");
    // externalId holds at most 40 characters (CEF); the whole record id is in flexString2.
    let figures = exactly_once_across_kill_9(
        &sim,
        "entra_audit",
        Service::Graph,
        &expected,
        "flexString2",
    );
    eprintln!("{figures}");
}

#[test]
fn entra_signins_every_record_exactly_once_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(400)).unwrap();
    let expected = ids(&sim.signin_records(), "id");
    let figures = exactly_once_across_kill_9(
        &sim,
        "entra_signins",
        Service::Graph,
        &expected,
        "externalId",
    );
    eprintln!("{figures}");
}

/// Runs `kind` (whose objects change: alerts) with a kill -9 after `kill_pages` pages: every
/// state in `finals` arrives, and each line's state (`line_key`) at most once and one of
/// `versions`. The secret comes from the environment when `secret_in_env`. Returns the figures.
fn states_across_kill_9(
    sim: &BackgroundSimulator,
    kind: &str,
    (service, kill_pages): (Service, usize),
    finals: &[String],
    versions: &BTreeSet<String>,
    line_key: fn(&String) -> String,
    secret_in_env: bool,
) -> String {
    let secret = sim.config().client_secret.clone();
    let env_secret = secret_in_env.then_some(secret.as_str());
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let scratch = Scratch::new();
    write_config(&scratch, sim, kind, &rsyslog.address(), !secret_in_env);
    let log = scratch.dir.path().join("siemcast.log");

    let mut child = spawn_logged(&scratch.config(), &log, env_secret);
    kill_midway(sim, service, &mut child, kill_pages, &log);
    let before = spooled_before_restart(&scratch);
    assert!(
        before > 0 && before < versions.len(),
        "killed at {before} states: not midway"
    );
    rsyslog.restart(Listen::Tcp);
    let mut child = spawn_logged(&scratch.config(), &log, env_secret);
    rsyslog.wait_for_lines_from(Some(&mut *child), finals.len(), Duration::from_secs(90));
    let end = sim.last_visible_ms() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    wait_until(Duration::from_secs(60), "every final state", || {
        let got: BTreeSet<String> = rsyslog.lines().iter().map(line_key).collect();
        finals.iter().all(|k| got.contains(k))
    });
    pause(Duration::from_secs(1));
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

    let lines = rsyslog.lines();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        *counts.entry(line_key(line)).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "states delivered twice: {dups:?}");
    let unknown: Vec<_> = counts.keys().filter(|k| !versions.contains(*k)).collect();
    assert!(unknown.is_empty(), "not a state the API had: {unknown:?}");
    let faults = check_faults(sim, service);
    assert_secret_not_logged(&log, &secret);
    format!(
        "{kind}: {} states delivered ({} objects, {} states generated, every final state), no duplicates across 1 kill -9 at {before} spooled; {faults}",
        lines.len(),
        finals.len(),
        versions.len()
    )
}

#[test]
fn graph_alerts_every_version_at_most_once_and_every_final_state_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(150)).unwrap();
    let key = |a: &serde_json::Value| {
        let t = siemcast::event::parse_time_ms(a["lastUpdateDateTime"].as_str().unwrap()).unwrap();
        format!("{}|{t}", a["id"].as_str().unwrap())
    };
    let finals: Vec<String> = sim.final_alerts().iter().map(key).collect();
    let versions: BTreeSet<String> = sim.alert_versions().iter().map(key).collect();
    let line_key = |line: &String| {
        format!(
            "{}|{}",
            cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}")),
            cef_value(line, "rt").unwrap_or_else(|| panic!("no rt: {line}"))
        )
    };
    // The secret comes from the environment this time.
    let figures = states_across_kill_9(
        &sim,
        "graph_alerts",
        (Service::Graph, 5),
        &finals,
        &versions,
        line_key,
        true,
    );
    eprintln!("{figures}");
}

/// The state key of a Graph record that changes in place: its id and its update time (ms).
fn id_and_time(record: &serde_json::Value, time_field: &str) -> String {
    let t = record[time_field].as_str().unwrap();
    let ms = siemcast::event::parse_time_ms(t).unwrap_or_else(|| panic!("bad time {t}"));
    format!("{}|{ms}", record["id"].as_str().unwrap())
}

/// A CEF line's `flexString2` (the record id whole) and `rt`.
fn full_id_and_rt(line: &String) -> String {
    format!(
        "{}|{}",
        cef_value(line, "flexString2").unwrap_or_else(|| panic!("no flexString2: {line}")),
        cef_value(line, "rt").unwrap_or_else(|| panic!("no rt: {line}"))
    )
}

#[test]
fn graph_incidents_every_version_at_most_once_and_every_final_state_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(120)).unwrap();
    let [incidents, ..] = sim.risk_versions();
    let [finals, ..] = sim.risk_final_records();
    let key = |r: &serde_json::Value| id_and_time(r, "lastUpdateDateTime");
    let finals: Vec<String> = finals.iter().map(key).collect();
    let versions: BTreeSet<String> = incidents.iter().map(key).collect();
    assert_eq!(finals.len(), 120);
    assert!(versions.len() > finals.len() + 60, "incidents change");
    let figures = states_across_kill_9(
        &sim,
        "graph_incidents",
        (Service::Graph, 5),
        &finals,
        &versions,
        full_id_and_rt,
        false,
    );
    // Every request asked for the alerts and filtered on the update time.
    let lists: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.starts_with("/v1.0/security/incidents"))
        .collect();
    let first_pages = lists
        .iter()
        .filter(|r| r.path_and_query.contains("%24filter=lastUpdateDateTime"))
        .count();
    assert!(first_pages > 0, "no window was asked for: {lists:#?}");
    let without: Vec<_> = lists
        .iter()
        .filter(|r| !r.path_and_query.contains("expand=alerts"))
        .collect();
    assert!(without.is_empty(), "alerts not expanded: {without:#?}");
    eprintln!("{figures}; {} incident list requests", lists.len());
}

#[test]
fn entra_risk_detections_of_users_and_service_principals_every_version_at_most_once_across_kill_9()
{
    let sim = BackgroundSimulator::start(faulty(100)).unwrap();
    let [_, users, principals, _] = sim.risk_versions();
    let [_, final_users, final_principals, _] = sim.risk_final_records();
    let key = |r: &serde_json::Value| id_and_time(r, "lastUpdatedDateTime");
    let finals: Vec<String> = final_users
        .iter()
        .chain(&final_principals)
        .map(key)
        .collect();
    let versions: BTreeSet<String> = users.iter().chain(&principals).map(key).collect();
    assert_eq!(finals.len(), 200, "100 of each list");
    assert!(
        versions.len() > finals.len() + 40,
        "detections are remediated"
    );
    let figures = states_across_kill_9(
        &sim,
        "entra_risk_detections",
        (Service::Graph, 5),
        &finals,
        &versions,
        full_id_and_rt,
        true,
    );
    eprintln!("{figures}");
}

#[test]
fn entra_risky_users_every_state_at_most_once_and_every_final_state_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(120)).unwrap();
    let [.., users] = sim.risk_versions();
    let [.., finals] = sim.risk_final_records();
    let key = |r: &serde_json::Value| {
        format!(
            "{}|{}/{}",
            r["id"].as_str().unwrap(),
            r["riskState"].as_str().unwrap(),
            r["riskLevel"].as_str().unwrap()
        )
    };
    let finals: Vec<String> = finals.iter().map(key).collect();
    let versions: BTreeSet<String> = users.iter().map(key).collect();
    assert_eq!(finals.len(), 120);
    assert!(
        versions.len() > finals.len() + 40,
        "risky users change state"
    );
    // flexString2 is the user's id, outcome its risk state, cs1 its risk level.
    let line_key = |line: &String| {
        let v = |k: &str| cef_value(line, k).unwrap_or_else(|| panic!("no {k}: {line}"));
        format!("{}|{}/{}", v("flexString2"), v("outcome"), v("cs1"))
    };
    let figures = states_across_kill_9(
        &sim,
        "entra_risky_users",
        (Service::Graph, 3),
        &finals,
        &versions,
        line_key,
        false,
    );
    eprintln!("{figures}");
}

#[test]
fn o365_management_every_record_exactly_once_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(200)).unwrap();
    let expected = ids(&sim.office_records(&O365_CONTENT_TYPES), "Id");
    assert_eq!(expected.len(), 400);
    let figures = exactly_once_across_kill_9(
        &sim,
        "o365_management",
        Service::Office,
        &expected,
        "externalId",
    );
    // Every call named the tenant as publisher, and the subscriptions were started (again
    // after the restart, which the API answers "already enabled").
    let office: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == Service::Office)
        .collect();
    let publisher = format!("PublisherIdentifier={}", sim.config().tenant_id);
    let without: Vec<_> = office
        .iter()
        .filter(|r| !r.path_and_query.contains(&publisher))
        .collect();
    assert!(
        without.is_empty(),
        "calls without PublisherIdentifier: {without:#?}"
    );
    let starts: Vec<_> = office
        .iter()
        .filter(|r| r.method == "POST" && r.path_and_query.contains("/subscriptions/start"))
        .map(|r| r.status)
        .collect();
    assert!(
        starts.contains(&200) && starts.contains(&400),
        "starts: {starts:?}"
    );
    let pages = office
        .iter()
        .filter(|r| r.path_and_query.contains("nextPage=") && r.status == 200)
        .count();
    assert!(pages > 0, "no NextPageUri was followed");
    eprintln!("{figures}; {pages} NextPageUri pages followed, subscription starts: {starts:?}");
}

#[test]
fn defender_alerts_every_status_at_most_once_and_every_final_state_across_kill_9() {
    let sim = BackgroundSimulator::start(faulty(60)).unwrap();
    let key = |a: &serde_json::Value| {
        format!(
            "{}|{}",
            a["id"].as_str().unwrap(),
            a["properties"]["status"].as_str().unwrap()
        )
    };
    let finals: Vec<String> = sim.defender_final_alerts().iter().map(key).collect();
    let versions: BTreeSet<String> = sim.defender_versions().iter().map(key).collect();
    assert_eq!(finals.len(), 120);
    assert!(versions.len() > finals.len() + 40, "alerts change status");
    // flexString2 is the full ARM id of the alert, outcome its status.
    let line_key = |line: &String| {
        format!(
            "{}|{}",
            cef_value(line, "flexString2").unwrap_or_else(|| panic!("no flexString2: {line}")),
            cef_value(line, "outcome").unwrap_or_else(|| panic!("no outcome: {line}"))
        )
    };
    let figures = states_across_kill_9(
        &sim,
        "defender_alerts",
        (Service::Management, 3),
        &finals,
        &versions,
        line_key,
        false,
    );
    eprintln!("{figures}");
}

/// Every record the simulator serves, per source kind, renders with both vendors' shipped
/// mappings with the keys an analyst needs, and ArcSight's externalId tells every Entra audit
/// record apart (it is a hash of the id; cutting the id to 40 characters made them collide).
#[test]
fn simulated_records_fit_the_shipped_mappings() {
    let mut cfg = faulty(120);
    cfg.faults = Faults::default();
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let kinds: [(&str, Vec<serde_json::Value>, &[&str]); 6] = [
        (
            "azure_activity",
            sim.activity_records(),
            &["rt", "externalId", "suser", "src"],
        ),
        (
            "defender_alerts",
            sim.defender_versions(),
            &["rt", "externalId", "outcome", "src", "flexString2"],
        ),
        (
            "graph_alerts",
            sim.alert_versions(),
            &["rt", "externalId", "outcome"],
        ),
        (
            "entra_audit",
            sim.audit_records(),
            &["rt", "externalId", "suser", "flexString2"],
        ),
        (
            "entra_signins",
            sim.signin_records(),
            &["rt", "externalId", "suser", "src"],
        ),
        (
            "o365_management",
            sim.office_records(siemcast::sources::o365_management::CONTENT_TYPES),
            &["rt", "externalId", "suser", "src", "outcome"],
        ),
    ];
    for (kind, records, cef_keys) in kinds {
        assert!(!records.is_empty(), "{kind}: no records");
        for vendor in ["arcsight", "qradar"] {
            let path = shipped_mappings(vendor).join(format!("{kind}.toml"));
            let mapping = siemcast::mapping::Mapping::load(&path).unwrap();
            let mut external_ids = BTreeSet::new();
            for (i, record) in records.iter().enumerate() {
                let mut line = Vec::new();
                mapping
                    .render(record, &mut line)
                    .unwrap_or_else(|e| panic!("{vendor}/{kind} record {i}: {e}"));
                let line = String::from_utf8(line).unwrap();
                if vendor == "arcsight" {
                    for key in cef_keys {
                        // An IPv6 source address goes to c6a2 instead of src.
                        let ipv6 = *key == "src" && cef_value(&line, "c6a2").is_some();
                        assert!(
                            cef_value(&line, key).is_some() || ipv6,
                            "{kind} record {i} has no {key}: {line}"
                        );
                    }
                    external_ids.insert(cef_value(&line, "externalId").unwrap().to_owned());
                } else {
                    assert!(line.starts_with("LEEF:2.0|Microsoft|"), "{line}");
                }
            }
            if vendor == "arcsight" && kind == "entra_audit" {
                assert_eq!(external_ids.len(), records.len(), "externalIds collide");
                assert!(external_ids.iter().all(|id| id.len() == 40));
            }
        }
    }
}
