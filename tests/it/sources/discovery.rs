//! Subscription discovery end to end: `siemcast run` with `subscriptions = ["*"]` against the
//! simulator's changing subscription list collects a subscription added mid-run from
//! `start_at` (each of its events exactly once at a real rsyslog) and stops polling one that
//! was disabled (the simulator's request log shows no request for it after the list that
//! said so), for `azure_activity` and `defender_alerts`; a source switched from listed ids to
//! `"*"` keeps their cursors; explicit ids beside a management group; `siemcast discover`'s
//! listing; a replay that discovers once and replays each subscription collected; and `"*"`
//! beside ids refused by `siemcast check` with its place. Each tenant discovers its own
//! subscriptions (two tenants served together).

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use siemcast::simulator::{BackgroundSimulator, Service, SimConfig, SubscriptionState};
use util::*;

const A: &str = "5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11";
const B: &str = "0b7d4f3a-9c11-4c6a-8d3b-5f1c2a7e9e21";
const C: &str = "9e219c11-0b7d-4f3a-8d3b-5f1c2a7e4c6a";

fn simulator(ahead: Duration) -> BackgroundSimulator {
    let mut cfg = SimConfig::around_now(Duration::from_secs(10), ahead, 60);
    cfg.seed = 18;
    cfg.subscriptions = [A, B, C].map(str::to_owned).to_vec();
    cfg.page_size = 20;
    BackgroundSimulator::start(cfg).unwrap()
}

/// [`simulator`], its subscription list set to `list`.
fn listed(ahead: Duration, list: &[(&str, SubscriptionState)]) -> BackgroundSimulator {
    let sim = simulator(ahead);
    sim.set_subscription_list(list);
    sim
}

/// An `azure_activity` config of the simulator whose subscription keys are `keys`.
fn write_config(scratch: &Scratch, sim: &BackgroundSimulator, address: &str, keys: &str) {
    write_kind_config(scratch, sim, address, "azure_activity", keys);
}

/// A config of the simulator's `kind` whose subscription keys are `keys`.
fn write_kind_config(
    scratch: &Scratch,
    sim: &BackgroundSimulator,
    address: &str,
    kind: &str,
    keys: &str,
) {
    std::fs::write(
        scratch.dir.path().join("client-secret"),
        &sim.config().client_secret,
    )
    .unwrap();
    let text = api_config(
        sim,
        "activity",
        kind,
        address,
        "address = \"\"",
        "client_secret_file = \"client-secret\"",
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("subscriptions = "))
        .unwrap()
        .to_owned();
    std::fs::write(scratch.config(), text.replace(&line, keys)).unwrap();
}

/// A receiver, and a config of `sim` with subscription keys `keys` delivering to it.
fn receiving(sim: &BackgroundSimulator, keys: &str) -> (Rsyslog, Scratch) {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    write_config(&scratch, sim, &rsyslog.address(), keys);
    (rsyslog, scratch)
}

/// `siemcast ARGS -c CONFIG`, logging at info.
fn siemcast(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// eventDataIds of the simulator's activity records of `subscription`.
fn ids_of(sim: &BackgroundSimulator, subscription: &str) -> BTreeSet<String> {
    sim.activity_records()
        .iter()
        .filter(|r| r["subscriptionId"] == subscription)
        .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
        .collect()
}

/// Activity-log requests of `subscription`, by arrival time (ms).
fn activity_requests(sim: &BackgroundSimulator, subscription: &str) -> Vec<i64> {
    let path = format!("/subscriptions/{subscription}/providers/");
    sim.requests()
        .iter()
        .filter(|r| r.service == Service::Management && r.path_and_query.starts_with(&path))
        .map(|r| r.at_ms)
        .collect()
}

/// Subscription-list requests answered after `after_ms` (arrival times).
fn list_requests_after(sim: &BackgroundSimulator, after_ms: i64) -> Vec<i64> {
    sim.requests()
        .iter()
        .filter(|r| r.path_and_query.starts_with("/subscriptions?") && r.status == 200)
        .map(|r| r.at_ms)
        .filter(|t| *t > after_ms)
        .collect()
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
}

/// Waits until the receiver holds every id of `want` (failing on a duplicate or an id not in
/// `allowed`), then until the simulator's timeline has passed, and returns the counts.
fn collect(
    child: &mut Running,
    rsyslog: &Rsyslog,
    sim: &BackgroundSimulator,
    want: &BTreeSet<String>,
    allowed: &BTreeSet<String>,
    log: &Path,
) -> BTreeMap<String, usize> {
    let start = Instant::now();
    loop {
        let got = received_counts(rsyslog);
        let stray: Vec<_> = got.keys().filter(|id| !allowed.contains(*id)).collect();
        assert!(stray.is_empty(), "ids from elsewhere: {stray:?}");
        if want.iter().all(|id| got.contains_key(id)) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "siemcast exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{} of {} ids received; missing e.g. {:?}",
            want.iter().filter(|id| got.contains_key(*id)).count(),
            want.len(),
            want.iter().find(|id| !got.contains_key(*id))
        );
        pause(Duration::from_millis(100));
    }
    let end = sim.last_visible_ms() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    pause(Duration::from_secs(1));
    received_counts(rsyslog)
}

#[test]
fn every_subscription_is_discovered_an_added_one_is_read_from_start_at_and_a_disabled_one_stops() {
    // C is not in the list yet.
    let sim = listed(
        Duration::from_secs(14),
        &[
            (A, SubscriptionState::Enabled),
            (B, SubscriptionState::Warned),
        ],
    );
    let keys = "subscriptions = [\"*\"]\ndiscovery_interval = \"1s\"";
    let (rsyslog, scratch) = receiving(&sim, keys);
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    wait_until(Duration::from_secs(30), "B polled", || {
        !activity_requests(&sim, B).is_empty()
    });
    assert!(activity_requests(&sim, C).is_empty(), "C is not listed yet");
    assert!(log_has(&log, "Subscriptions discovered."));

    // C appears, B is disabled.
    let changed = jiff::Timestamp::now().as_millisecond();
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Disabled),
        (C, SubscriptionState::Enabled),
    ]);
    wait_until(Duration::from_secs(30), "the change logged", || {
        log_has(&log, "Subscription no longer collected")
            && log_has(&log, "New subscription discovered")
    });
    let (a, b, c) = (ids_of(&sim, A), ids_of(&sim, B), ids_of(&sim, C));
    let want: BTreeSet<String> = a.union(&c).cloned().collect();
    let allowed: BTreeSet<String> = want.union(&b).cloned().collect();
    let counts = collect(&mut child, &rsyslog, &sim, &want, &allowed, &log);
    stop(&mut child);

    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "delivered twice: {dups:?}");
    // C's events, from 10 s before its addition (start_at is 40 s back), all arrived.
    assert!(c.iter().all(|id| counts.contains_key(id)));
    // No request for B after the first list that said it was disabled.
    let told = list_requests_after(&sim, changed)[0];
    let late: Vec<i64> = activity_requests(&sim, B)
        .into_iter()
        .filter(|t| *t > told)
        .collect();
    assert!(late.is_empty(), "B polled after it was disabled: {late:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let stopped = text
        .lines()
        .filter(|l| l.contains("Subscription no longer collected"))
        .collect::<Vec<_>>();
    assert_eq!(stopped.len(), 1, "told once: {stopped:?}");
    assert!(
        stopped[0].contains(B) && stopped[0].contains("state Disabled"),
        "{}",
        stopped[0]
    );
    eprintln!(
        "discovery: {} events of A and C once, {} of B's {} before it was disabled; {} subscription lists read",
        want.len(),
        b.iter().filter(|id| counts.contains_key(*id)).count(),
        b.len(),
        list_requests_after(&sim, 0).len()
    );
}

#[test]
fn explicit_ids_beside_a_management_group_and_what_discover_lists() {
    let sim = simulator(Duration::from_secs(4));
    sim.set_management_group("prod", &[B, C]);
    sim.set_subscription_list(&[
        (A, SubscriptionState::Disabled),
        (B, SubscriptionState::Disabled),
        (C, SubscriptionState::PastDue),
    ]);
    let keys = format!("subscriptions = [\"{A}\"]\nmanagement_groups = [\"prod\"]");
    let (rsyslog, scratch) = receiving(&sim, &keys);
    let out = siemcast(&["discover"], &scratch.config());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = |s: &str| siemcast::simulator::inventory::display_name(s);
    assert_eq!(
        stdout,
        format!(
            "source \"activity\" (azure_activity): discovers its subscriptions: the subscriptions below management group prod, and 1 listed, every 1h\n\
             \x20 {B}  Disabled  {b}  skip: state Disabled: only Enabled, Warned and PastDue subscriptions are read\n\
             \x20 {A}  Disabled  {a}  collect\n\
             \x20 {C}  PastDue  {c}  collect\n\
             \x20 2 subscriptions collected, 1 skipped\n",
            a = name(A),
            b = name(B),
            c = name(C),
        )
    );
    let summary = check_summary(&scratch.config());
    assert!(
        summary.contains("    discovers its subscriptions: the subscriptions below management group prod, and 1 listed, every 1h (siemcast discover -c FILE lists them; check stays offline)"),
        "{summary}"
    );
    // --source naming a source that does not exist: in words.
    let out = siemcast(&["discover", "--source", "nope"], &scratch.config());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "no source named \"nope\" in the configuration; its sources are: activity\n"
    );

    let before = sim.requests().len();
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    let want: BTreeSet<String> = ids_of(&sim, A).union(&ids_of(&sim, C)).cloned().collect();
    let counts = collect(&mut child, &rsyslog, &sim, &want, &want, &log);
    stop(&mut child);
    assert_eq!(counts.len(), want.len());
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
    let descendants = sim.requests()[before..]
        .iter()
        .filter(|r| {
            r.path_and_query
                .contains("/managementGroups/prod/descendants?")
        })
        .count();
    assert!(descendants >= 1);
    assert!(
        activity_requests(&sim, B).is_empty(),
        "B (disabled) was never polled"
    );
}

#[test]
fn every_subscription_beside_ids_is_a_located_config_error() {
    let sim = simulator(Duration::ZERO);
    let scratch = Scratch::new();
    write_config(
        &scratch,
        &sim,
        "127.0.0.1:9",
        &format!("subscriptions = [\"*\", \"{A}\"]"),
    );
    let out = siemcast(&["check"], &scratch.config());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(scratch.config()).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("subscriptions = "))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "{}:{line}:18: source \"activity\": subscriptions = [\"*\"] (every subscription the identity can read) cannot be combined with subscription ids; write either \"*\" alone or the ids",
            scratch.config().display()
        )),
        "{stderr}"
    );
}

#[test]
fn replay_of_every_subscription_discovers_once_and_replays_each_collected_one() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(3 * 3600), Duration::ZERO, 90);
    cfg.seed = 19;
    cfg.subscriptions = [A, B, C].map(str::to_owned).to_vec();
    cfg.page_size = 25;
    let sim = BackgroundSimulator::start(cfg).unwrap();
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Deleted),
        (C, SubscriptionState::Warned),
    ]);
    let (rsyslog, scratch) = receiving(&sim, "subscriptions = [\"*\"]");
    let now = jiff::Timestamp::now().as_millisecond();
    let (from, to) = (now - 2 * 3_600_000, now - 3_600_000);
    let fmt = siemcast::sources::poll::filter_time;
    let (from_text, to_text) = (fmt(from), fmt(to));
    let args = [
        "replay", "--source", "activity", "--from", &from_text, "--to", &to_text,
    ];
    let out = siemcast(&args, &scratch.config());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Subscriptions discovered for the replay."),
        "{stderr}"
    );
    let in_window = |sub: &str| -> BTreeSet<String> {
        sim.activity_records()
            .iter()
            .filter(|r| r["subscriptionId"] == sub)
            .filter(|r| {
                let t = siemcast::event::parse_time_ms(r["eventTimestamp"].as_str().unwrap());
                t.is_some_and(|t| t >= from && t <= to)
            })
            .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
            .collect()
    };
    let want: BTreeSet<String> = in_window(A).union(&in_window(C)).cloned().collect();
    assert!(want.len() > 20, "{} events in the window", want.len());
    let counts = received_counts(&rsyslog);
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
    assert!(
        activity_requests(&sim, B).is_empty(),
        "B (deleted) was not read"
    );
}

#[test]
fn switching_from_listed_ids_to_every_subscription_keeps_their_cursors() {
    let sim = listed(
        Duration::from_secs(2),
        &[
            (A, SubscriptionState::Enabled),
            (B, SubscriptionState::Enabled),
            (C, SubscriptionState::Disabled),
        ],
    );
    let (rsyslog, scratch) = receiving(&sim, &format!("subscriptions = [\"{A}\"]"));
    let log = scratch.dir.path().join("siemcast.log");
    let a = ids_of(&sim, A);
    let mut child = spawn_run_logged(&scratch.config(), &log);
    let first = collect(&mut child, &rsyslog, &sim, &a, &a, &log);
    stop(&mut child);
    assert_eq!(first.len(), a.len());

    // The same source now discovers: A goes on from its cursor, B starts at start_at.
    write_config(
        &scratch,
        &sim,
        &rsyslog.address(),
        "subscriptions = [\"*\"]",
    );
    let b = ids_of(&sim, B);
    let want: BTreeSet<String> = a.union(&b).cloned().collect();
    let mut child = spawn_run_logged(&scratch.config(), &log);
    wait_until(Duration::from_secs(30), "the discovery", || {
        log_has(&log, "Subscriptions discovered.")
    });
    let counts = collect(&mut child, &rsyslog, &sim, &want, &want, &log);
    stop(&mut child);
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "A's events repeated: {dups:?}");
    assert_eq!(counts.len(), want.len());
}

#[test]
fn defender_alerts_of_every_subscription_follow_the_list() {
    let sim = listed(
        Duration::from_secs(10),
        &[
            (A, SubscriptionState::Enabled),
            (B, SubscriptionState::Enabled),
        ],
    );
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let keys = "subscriptions = [\"*\"]\ndiscovery_interval = \"1s\"";
    write_kind_config(&scratch, &sim, &rsyslog.address(), "defender_alerts", keys);
    let log = scratch.dir.path().join("siemcast.log");
    let alerts = |sub: &str| format!("/subscriptions/{sub}/providers/Microsoft.Security/alerts");
    let polled = |sub: &str| -> Vec<i64> {
        sim.requests()
            .iter()
            .filter(|r| r.path_and_query.starts_with(&alerts(sub)))
            .map(|r| r.at_ms)
            .collect()
    };
    let mut child = spawn_run_logged(&scratch.config(), &log);
    wait_until(Duration::from_secs(30), "B listed", || {
        !polled(B).is_empty()
    });
    let changed = jiff::Timestamp::now().as_millisecond();
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Disabled),
        (C, SubscriptionState::Enabled),
    ]);
    // Every final state of A's and C's alerts (flexString2: the alert's ARM id; outcome: status).
    let key = |a: &serde_json::Value| {
        format!(
            "{}|{}",
            a["id"].as_str().unwrap(),
            a["properties"]["status"].as_str().unwrap()
        )
    };
    let of = |sub: &str| format!("/subscriptions/{sub}/");
    let finals: BTreeSet<String> = sim
        .defender_final_alerts()
        .iter()
        .filter(|a| {
            let id = a["id"].as_str().unwrap();
            id.starts_with(&of(A)) || id.starts_with(&of(C))
        })
        .map(key)
        .collect();
    let line_key = |line: &String| {
        format!(
            "{}|{}",
            cef_value(line, "flexString2").unwrap(),
            cef_value(line, "outcome").unwrap()
        )
    };
    wait_until(
        Duration::from_secs(90),
        "every final state of A and C",
        || {
            let got: BTreeSet<String> = rsyslog.lines().iter().map(line_key).collect();
            finals.iter().all(|k| got.contains(k))
        },
    );
    let end = sim.last_visible_ms() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    pause(Duration::from_secs(1));
    stop(&mut child);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in rsyslog.lines() {
        *counts.entry(line_key(&line)).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "states delivered twice: {dups:?}");
    let told = list_requests_after(&sim, changed)[0];
    let late: Vec<i64> = polled(B).into_iter().filter(|t| *t > told).collect();
    assert!(late.is_empty(), "B listed after it was disabled: {late:?}");
    assert!(!polled(C).is_empty());
}

#[test]
fn each_tenant_discovers_its_own_subscriptions() {
    let configs = [
        (A, "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e"),
        (C, "7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0"),
    ]
    .map(|(sub, tenant)| {
        let mut cfg = SimConfig::around_now(Duration::from_secs(10), Duration::ZERO, 5);
        cfg.tenant_id = tenant.to_owned();
        cfg.subscriptions = vec![sub.to_owned(), B.to_owned()];
        cfg
    });
    let sims = siemcast::simulator::BackgroundTenants::start(configs.to_vec()).unwrap();
    // In the second tenant, B is disabled.
    sims[1].set_subscription_list(&[
        (C, SubscriptionState::Enabled),
        (B, SubscriptionState::Disabled),
    ]);
    let scratch = Scratch::new();
    let secret = &sims[0].config().client_secret;
    std::fs::write(scratch.dir.path().join("secret"), secret).unwrap();
    let text = format!(
        "state_dir = \"state\"\n\n{}\n{}\n[[source]]\nname = \"home\"\nkind = \"azure_activity\"\nsubscriptions = [\"*\"]\n\n[[source]]\nname = \"fabrikam\"\nkind = \"azure_activity\"\ntenant = \"fabrikam\"\nsubscriptions = [\"*\"]\n\n[[destination]]\nname = \"rsyslog\"\naddress = \"127.0.0.1:9\"\ntransport = \"tcp\"\nmappings = \"{}\"\n",
        sims[0].azure_section("client_secret_file = \"secret\""),
        sims[1].tenant_section("fabrikam", ""),
        shipped_mappings("arcsight").display()
    );
    std::fs::write(scratch.config(), text).unwrap();
    let out = siemcast(&["discover"], &scratch.config());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sections: Vec<&str> = stdout.split("source \"").skip(1).collect();
    assert_eq!(sections.len(), 2, "{stdout}");
    let (home, fabrikam) = (sections[0], sections[1]);
    assert!(home.starts_with("home\""), "{stdout}");
    assert!(home.contains(&format!("{A}  Enabled")) && home.contains(&format!("{B}  Enabled")));
    assert!(
        home.contains("2 subscriptions collected, 0 skipped"),
        "{home}"
    );
    assert!(!home.contains(C), "another tenant's subscription: {home}");
    assert!(fabrikam.contains(&format!("{C}  Enabled")), "{fabrikam}");
    assert!(fabrikam.contains(&format!("{B}  Disabled")), "{fabrikam}");
    assert!(
        fabrikam.contains("1 subscription collected, 1 skipped"),
        "{fabrikam}"
    );
}
