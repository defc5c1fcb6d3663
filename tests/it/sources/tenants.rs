//! Many tenants in one process: three tenants served together by the simulator (each its own
//! token authority, data and throttling), read by every Microsoft API poller kind in each
//! tenant (27 sources) of one `siemcast run`, killed with SIGKILL midway and restarted. Every
//! record arrives exactly once (each state at most once, every final state), from its own
//! tenant only, named by `{tenant}` in the syslog HOSTNAME; the metrics carry `tenant="…"`.
//! Two tenants share one multi-tenant app registration written once in `[azure]`; the third
//! has its own app.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use siemcast::simulator::{BackgroundTenants, Faults, SimConfig, Simulator};
use util::*;

/// Every Microsoft API poller kind.
const KINDS: [&str; 9] = [
    "azure_activity",
    "defender_alerts",
    "graph_alerts",
    "entra_audit",
    "entra_signins",
    "o365_management",
    "graph_incidents",
    "entra_risk_detections",
    "entra_risky_users",
];

/// A tenant of the test: config name, tenant id, subscription, and its own app's client id
/// and secret (`None`: the multi-tenant app of `[azure]`).
type Tenant = (
    &'static str,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// Versions served and final states, as keys ([`key`]).
type Expected = (BTreeSet<String>, BTreeSet<String>);

const TENANTS: [Tenant; 3] = [
    (
        "default",
        "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e",
        "5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11",
        None,
    ),
    (
        "fabrikam",
        "7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0",
        "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d",
        None,
    ),
    (
        "northwind",
        "8e4f3b2c-1d0a-4f9e-b8c7-d6e5f4a3b2c1",
        "9c8b7a6d-5e4f-4321-8fed-cba987654321",
        Some((
            "3d4e5f60-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
            "northwind~own.secret-0123456789",
        )),
    ),
];

fn tenant_configs() -> Vec<SimConfig> {
    TENANTS
        .iter()
        .enumerate()
        .map(|(i, (_, tenant, sub, app))| {
            let mut cfg =
                SimConfig::around_now(Duration::from_secs(15), Duration::from_secs(6), 40);
            cfg.seed = 100 + i as u64;
            cfg.tenant_id = (*tenant).into();
            cfg.subscriptions = vec![(*sub).into()];
            if let Some((client, secret)) = app {
                cfg.client_id = (*client).into();
                cfg.client_secret = (*secret).into();
            }
            cfg.page_size = 15;
            cfg.records_per_blob = 5;
            // One tenant is throttled: the others must not wait for it.
            if i == 1 {
                cfg.faults = Faults {
                    throttle_every: Some(7),
                    retry_after_secs: 1,
                    ..Faults::default()
                };
            }
            cfg
        })
        .collect()
}

fn config(sims: &[Simulator], scratch: &Scratch, address: &str, metrics_port: u16) -> String {
    let dir = scratch.dir.path();
    std::fs::write(dir.join("shared-secret"), &sims[0].config().client_secret).unwrap();
    let mut text = format!(
        "state_dir = \"state\"\n\n[metrics]\naddress = \"127.0.0.1:{metrics_port}\"\n\n{}\
         [azure.rate_limits]\nentra_reports = \"50/1s\"\ngraph_incidents = \"50/1s\"\nidentity_protection = \"50/1s\"\n\n",
        sims[0].azure_section("client_secret_file = \"shared-secret\"")
    );
    for ((name, _, _, app), sim) in TENANTS.iter().zip(sims).skip(1) {
        let credential = match app {
            Some((client, secret)) => {
                std::fs::write(dir.join(format!("{name}-secret")), secret).unwrap();
                format!("client_id = \"{client}\"\nclient_secret_file = \"{name}-secret\"")
            }
            None => String::new(),
        };
        text.push_str(&sim.tenant_section(name, &credential));
        text.push('\n');
    }
    for (name, _, sub, _) in TENANTS {
        for kind in KINDS {
            let tenant = if name == "default" {
                String::new()
            } else {
                format!("tenant = \"{name}\"\n")
            };
            let scope = match kind {
                "azure_activity" | "defender_alerts" => format!("subscriptions = [\"{sub}\"]\n"),
                "o365_management" => format!("content_types = {O365_CONTENT_TYPES:?}\n"),
                _ => String::new(),
            };
            let window = if matches!(kind, "defender_alerts" | "entra_risky_users") {
                ""
            } else {
                "overlap = \"15s\"\nsettle_delay = \"500ms\"\n"
            };
            text.push_str(&format!(
                "[[source]]\nname = \"{kind}-{name}\"\nkind = \"{kind}\"\n{tenant}{scope}{window}interval = \"300ms\"\nstart_at = \"40s\"\n\n"
            ));
        }
    }
    text.push_str(&format!(
        "[[destination]]\nname = \"rsyslog\"\naddress = \"{address}\"\ntransport = \"tcp\"\nframing = \"lf\"\n\
         syslog = \"rfc5424\"\nhostname = \"{{tenant}}\"\napp_name = \"{{source}}\"\noutput = \"json\"\n"
    ));
    text
}

/// The key a record is told apart by: its id, and for records that change, its state.
fn key(kind: &str, r: &Value) -> String {
    let s = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("{kind}: {r}"))
            .to_owned()
    };
    let time = |v: &Value| siemcast::event::parse_time_ms(&s(v)).unwrap();
    match kind {
        "azure_activity" => s(&r["eventDataId"]),
        "o365_management" => s(&r["Id"]),
        "entra_audit" | "entra_signins" => s(&r["id"]),
        "defender_alerts" => format!("{}|{}", s(&r["id"]), s(&r["properties"]["status"])),
        "entra_risky_users" => format!(
            "{}|{}/{}",
            s(&r["id"]),
            s(&r["riskState"]),
            s(&r["riskLevel"])
        ),
        "entra_risk_detections" => format!("{}|{}", s(&r["id"]), time(&r["lastUpdatedDateTime"])),
        _ => format!("{}|{}", s(&r["id"]), time(&r["lastUpdateDateTime"])),
    }
}

/// Every version a tenant serves of `kind`, and the final states that must arrive.
fn expected(sim: &Simulator, kind: &str) -> Expected {
    let keys = |records: Vec<Value>| -> BTreeSet<String> {
        records.iter().map(|r| key(kind, r)).collect()
    };
    let [incidents, detections, sp_detections, users] = sim.risk_versions();
    let [f_incidents, f_detections, f_sp_detections, f_users] = sim.risk_final_records();
    let (versions, finals) = match kind {
        "azure_activity" => (sim.activity_records(), sim.activity_records()),
        "defender_alerts" => (sim.defender_versions(), sim.defender_final_alerts()),
        "graph_alerts" => (sim.alert_versions(), sim.final_alerts()),
        "entra_audit" => (sim.audit_records(), sim.audit_records()),
        "entra_signins" => (sim.signin_records(), sim.signin_records()),
        "o365_management" => (
            sim.office_records(&O365_CONTENT_TYPES),
            sim.office_records(&O365_CONTENT_TYPES),
        ),
        "graph_incidents" => (incidents, f_incidents),
        "entra_risk_detections" => (
            [detections, sp_detections].concat(),
            [f_detections, f_sp_detections].concat(),
        ),
        _ => (users, f_users),
    };
    (keys(versions), keys(finals))
}

/// `<PRI>1 TIME HOST APP - - - JSON` → (host, app, record).
fn parse_line(line: &str) -> (String, String, Value) {
    let mut parts = line.splitn(8, ' ');
    let host = parts.nth(2).unwrap_or_default().to_owned();
    let app = parts.next().unwrap_or_default().to_owned();
    let json = parts
        .nth(3)
        .unwrap_or_else(|| panic!("not RFC 5424: {line}"));
    let record = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
    (host, app, record)
}

#[test]
fn three_tenants_times_every_poller_kind_deliver_exactly_once_across_kill_9() {
    let sims = BackgroundTenants::start(tenant_configs()).unwrap();
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let scratch = Scratch::new();
    let port = free_port();
    let text = config(&sims, &scratch, &rsyslog.address(), port);
    std::fs::write(scratch.config(), &text).unwrap();

    // `check` tells the tenants apart, and notes nothing about shared secrets here.
    let out = check_summary(&scratch.config());
    for (name, tenant, _, _) in TENANTS {
        assert!(
            out.contains(&format!("tenant \"{name}\" ({tenant}): sources ")),
            "{out}"
        );
    }
    assert!(!out.contains("note: client_secret_file"), "{out}");

    let mut expect: BTreeMap<(usize, &str), Expected> = BTreeMap::new();
    for (t, sim) in sims.iter().enumerate() {
        for kind in KINDS {
            let (versions, finals) = expected(sim, kind);
            assert!(!finals.is_empty(), "{kind} of tenant {t} serves nothing");
            expect.insert((t, kind), (versions, finals));
        }
    }
    let total: usize = expect.values().map(|(_, f)| f.len()).sum();

    // Killed once a good part was spooled (rsyslog is down meanwhile), then restarted.
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    wait_until(
        Duration::from_secs(60),
        "a third of the records spooled",
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "siemcast exited early ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let (code, body) = http_get(port, "/metrics").unwrap_or((0, String::new()));
            code == 200 && spooled_total(&body) >= total / 3
        },
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains(
            "siemcast_source_api_requests_total{source=\"graph_alerts-fabrikam\",tenant=\"fabrikam\"}"
        ),
        "no tenant label: {metrics}"
    );
    signal(&child, "KILL");
    let _ = child.wait();
    for sim in sims.iter() {
        sim.forget_retry_after();
    }
    rsyslog.restart(Listen::Tcp);
    let mut child = spawn_run_logged(&scratch.config(), &log);
    let done = |lines: &[String]| {
        let got: BTreeSet<(String, String)> = lines
            .iter()
            .map(|l| {
                let (_, app, r) = parse_line(l);
                let kind = app.rsplit_once('-').map(|(k, _)| k.to_owned()).unwrap();
                let k = key(&kind, &r);
                (app, k)
            })
            .collect();
        expect.iter().all(|((t, kind), (_, finals))| {
            let app = format!("{kind}-{}", TENANTS[*t].0);
            finals
                .iter()
                .all(|f| got.contains(&(app.clone(), f.clone())))
        })
    };
    wait_until(
        Duration::from_secs(120),
        "every final state delivered",
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "siemcast exited early ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            done(&rsyslog.lines())
        },
    );
    // Let the tail of every timeline pass: nothing more may arrive twice.
    let end = sims.iter().map(|s| s.last_visible_ms()).max().unwrap() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    pause(Duration::from_secs(1));
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

    let mut counts: BTreeMap<(usize, String, String), usize> = BTreeMap::new();
    for line in rsyslog.lines() {
        let (host, app, record) = parse_line(&line);
        let (kind, name) = app.rsplit_once('-').unwrap();
        let t = TENANTS.iter().position(|x| x.0 == name).unwrap();
        assert_eq!(host, TENANTS[t].1, "HOSTNAME is not the tenant id: {line}");
        let k = key(kind, &record);
        let (versions, _) = &expect[&(t, kind)];
        assert!(
            versions.contains(&k),
            "{app} delivered a record its tenant never served: {k}"
        );
        *counts.entry((t, kind.to_owned(), k)).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{} delivered twice: {:?}",
        dups.len(),
        dups.first()
    );
    for ((t, kind), (_, finals)) in &expect {
        let missing = finals
            .iter()
            .filter(|f| !counts.contains_key(&(*t, kind.to_string(), (*f).clone())))
            .count();
        assert_eq!(missing, 0, "{kind} of {}: {missing} missing", TENANTS[*t].0);
    }
    // Each tenant's tokens came from its own authority, and the throttled one was throttled.
    for (sim, (name, ..)) in sims.iter().zip(TENANTS) {
        assert!(sim.tokens_issued() > 0, "{name} issued no token");
        let early = sim.requests().iter().filter(|r| r.early).count();
        assert_eq!(early, 0, "{name}: requests before Retry-After passed");
    }
    let throttled = sims[1]
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(throttled > 0, "fabrikam was never throttled");
    let text = std::fs::read_to_string(&log).unwrap();
    for (sim, _) in sims.iter().zip(TENANTS) {
        assert!(
            !text.contains(&sim.config().client_secret),
            "a secret was logged"
        );
    }
    eprintln!(
        "3 tenants x 9 kinds: {} records, {} lines, each once; fabrikam throttled {throttled} times",
        total,
        counts.len()
    );
}

fn spooled_total(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("siemcast_source_events_spooled_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}
