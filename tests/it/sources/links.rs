//! Tokens and secrets stay with their API, through the real binary: `siemcast run` reads four
//! API sources (ARM activity log and Defender alerts, Graph directory audits, Office 365) from
//! the simulator over HTTPS while it serves hostile answers in turn: continuation links and
//! content URIs to a foreign loopback listener, 307s to it, links downgraded to `http://`, and
//! token requests redirected. Nothing reaches the foreign listener nor crosses in clear text;
//! every refusal is counted in `/metrics` and logged with the link's host; once the simulator
//! behaves again every record arrives at rsyslog exactly once.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use siemcast::simulator::{BackgroundSimulator, HostileLinks, Service, SimConfig};
use util::*;

const SOURCES: [&str; 4] = ["activity", "audit", "office", "defender"];

fn config(sim: &BackgroundSimulator, address: &str, metrics_port: u16) -> String {
    let sub = &sim.config().subscriptions[0];
    let window =
        "overlap = \"15s\"\nsettle_delay = \"500ms\"\nstart_at = \"40s\"\ninterval = \"300ms\"";
    format!(
        r#"state_dir = "state"

[metrics]
address = "127.0.0.1:{metrics_port}"

{azure}
[azure.rate_limits]
entra_reports = "50/1s"

[[source]]
name = "activity"
kind = "azure_activity"
subscriptions = ["{sub}"]
{window}

[[source]]
name = "audit"
kind = "entra_audit"
{window}

[[source]]
name = "office"
kind = "o365_management"
content_types = {types:?}
{window}

[[source]]
name = "defender"
kind = "defender_alerts"
subscriptions = ["{sub}"]
interval = "300ms"
start_at = "40s"

{destination}"#,
        azure = sim.azure_section("client_secret_file = \"client-secret\""),
        types = O365_CONTENT_TYPES,
        destination = rsyslog_destination(address),
    )
}

/// `name{source="…"}` of every source, from `/metrics`.
fn per_source(port: u16, name: &str) -> BTreeMap<String, u64> {
    let Ok((200, body)) = http_get(port, "/metrics") else {
        return BTreeMap::new();
    };
    body.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix("{source=\""))
        .filter_map(|l| {
            // `{source="x",tenant="default"} 3`: the source, then the value after the labels.
            let (source, rest) = l.split_once('"')?;
            let (_, value) = rest.split_once("} ")?;
            Some((source.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Fails at once when anything reached the foreign listener or crossed in clear text, saying
/// what it carried.
fn no_strays(sim: &BackgroundSimulator) {
    let strays = sim.strays();
    if let Some(s) = strays.first() {
        let carried = match (&s.authorization, s.credentials.first()) {
            (Some(_), _) => "an Authorization header (the token)",
            (None, Some(_)) => "a credential in its form (client secret or assertion)",
            (None, None) => "no credential",
        };
        panic!(
            "{} request(s) went where they must not; the first, {} {} to {:?}, carried {carried}",
            strays.len(),
            s.method,
            s.path_and_query,
            s.at
        );
    }
}

/// Waits until `name` has grown past `before` for every source (checking all along that
/// nothing strayed); returns the new values.
fn wait_growth(
    sim: &BackgroundSimulator,
    port: u16,
    name: &str,
    before: &BTreeMap<String, u64>,
    what: &str,
    child: &mut Running,
    log: &Path,
) -> BTreeMap<String, u64> {
    let mut now = BTreeMap::new();
    wait_until(Duration::from_secs(60), what, || {
        no_strays(sim);
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("siemcast exited ({status}); its log:\n{text}");
        }
        now = per_source(port, name);
        SOURCES
            .iter()
            .all(|s| now.get(*s).copied().unwrap_or(0) > before.get(*s).copied().unwrap_or(0))
    });
    now
}

#[test]
fn tokens_and_secrets_never_leave_their_api_and_the_windows_are_read_once_it_behaves() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let mut cfg = SimConfig::around_now(Duration::from_secs(20), Duration::ZERO, 60);
    cfg.seed = 22;
    cfg.page_size = 10;
    cfg.blobs_per_page = 2;
    cfg.records_per_blob = 5;
    cfg.token_lifetime = Duration::from_secs(4);
    cfg.tls = Some(sim_tls(dir));
    // Hostile from the first request: no window can be read before.
    cfg.faults.hostile_links = Some(HostileLinks::Foreign);
    let sim = BackgroundSimulator::start(cfg).unwrap();
    assert!(sim.endpoint(Service::Office).starts_with("https://"));
    let foreign = format!("http://{}", sim.foreign_address());

    let rsyslog = Rsyslog::start_tcp();
    let port = free_port();
    std::fs::write(dir.join("client-secret"), &sim.config().client_secret).unwrap();
    std::fs::write(scratch.config(), config(&sim, &rsyslog.address(), port)).unwrap();
    let log = dir.join("siemcast.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .env("RUST_LOG", "siemcast=info")
            .env("NO_COLOR", "1")
            // The simulator's CA, for the HTTPS APIs and token endpoint.
            .env("SSL_CERT_FILE", dir.join("ca.pem"))
            .env_remove("SSL_CERT_DIR")
            .env_remove("SIEMCAST_AZURE__CLIENT_SECRET")
            .spawn()
            .unwrap(),
    );

    let refused = "siemcast_source_links_refused_total";
    // Links (nextLink, @odata.nextLink, NextPageUri, contentUri) to another port.
    let mut counts = wait_growth(
        &sim,
        port,
        refused,
        &BTreeMap::new(),
        "links to the foreign listener refused by every source",
        &mut child,
        &log,
    );
    // API answers redirecting there.
    sim.set_hostile_links(Some(HostileLinks::Redirect));
    counts = wait_growth(
        &sim,
        port,
        refused,
        &counts,
        "redirects refused",
        &mut child,
        &log,
    );
    // Links downgraded to http:// on the API's own host and port.
    sim.set_hostile_links(Some(HostileLinks::Downgrade));
    wait_growth(
        &sim,
        port,
        refused,
        &counts,
        "downgrades refused",
        &mut child,
        &log,
    );
    // Token requests redirected (tokens live 4 s, so every scope asks again meanwhile).
    sim.set_hostile_links(None);
    sim.set_redirect_token_requests(true);
    let token_errors = wait_growth(
        &sim,
        port,
        "siemcast_source_token_errors_total",
        &BTreeMap::new(),
        "token requests redirected for every source",
        &mut child,
        &log,
    );
    sim.set_redirect_token_requests(false);

    // Behaving again: every record arrives.
    let activity: BTreeSet<String> = sim
        .activity_records()
        .iter()
        .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
        .collect();
    let audits: BTreeSet<String> = sim
        .audit_records()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let office: BTreeSet<String> = sim
        .office_records(&O365_CONTENT_TYPES)
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    let alert = |a: &serde_json::Value| {
        format!(
            "{}|{}",
            a["id"].as_str().unwrap(),
            a["properties"]["status"].as_str().unwrap()
        )
    };
    let finals: BTreeSet<String> = sim.defender_final_alerts().iter().map(alert).collect();
    let versions: BTreeSet<String> = sim.defender_versions().iter().map(alert).collect();
    assert_eq!(
        (activity.len(), audits.len(), office.len(), finals.len()),
        (60, 60, 120, 60)
    );
    let arrived = |lines: &[String]| {
        let mut external = BTreeMap::<String, usize>::new();
        let (mut cs5, mut alerts) = (BTreeMap::<String, usize>::new(), BTreeSet::new());
        for line in lines {
            if let Some(id) = cef_value(line, "externalId") {
                *external.entry(id.to_owned()).or_default() += 1;
            }
            if let Some(id) = cef_value(line, "flexString2") {
                *cs5.entry(id.to_owned()).or_default() += 1;
            }
            // Defender alerts: flexString2 is the alert's ARM id, outcome its status.
            if let (Some(id), Some(status)) =
                (cef_value(line, "flexString2"), cef_value(line, "outcome"))
            {
                if id.contains("/providers/Microsoft.Security/locations/") {
                    alerts.insert(format!("{id}|{status}"));
                }
            }
        }
        (external, cs5, alerts)
    };
    let complete = |lines: &[String]| {
        let (external, cs5, alerts) = arrived(lines);
        activity
            .iter()
            .chain(&office)
            .all(|id| external.contains_key(id))
            && audits.iter().all(|id| cs5.contains_key(id))
            && finals.iter().all(|a| alerts.contains(a))
    };
    wait_until(Duration::from_secs(90), "every record delivered", || {
        no_strays(&sim);
        if let Some(status) = child.try_wait().unwrap() {
            panic!("siemcast exited ({status})");
        }
        complete(&rsyslog.lines())
    });
    // Let late versions and repeats surface, then stop.
    let end = sim.last_visible_ms() + 2_000;
    while jiff::Timestamp::now().as_millisecond() < end {
        pause(Duration::from_millis(100));
    }
    pause(Duration::from_secs(1));
    let final_counts = per_source(port, refused);
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    let (external, cs5, alerts) = arrived(&lines);
    let twice: Vec<_> = external
        .iter()
        .chain(&cs5)
        .filter(|(id, n)| {
            **n > 1 && (activity.contains(*id) || office.contains(*id) || audits.contains(*id))
        })
        .collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert!(
        alerts.iter().all(|a| versions.contains(a)),
        "an alert state the simulator never had"
    );

    // Nothing ever reached the foreign listener, nor an HTTPS port in clear text.
    no_strays(&sim);
    // The simulator did serve every hostile answer.
    let requests = sim.requests();
    let redirected = |s: Service| {
        requests
            .iter()
            .filter(|r| r.service == s && r.status == 307)
            .count()
    };
    for s in [
        Service::Management,
        Service::Graph,
        Service::Office,
        Service::Login,
    ] {
        assert!(redirected(s) > 0, "no 307 from {s:?}");
    }
    // The log names the links' hosts and why, and never a token or the secret.
    let text = std::fs::read_to_string(&log).unwrap();
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Link outside the API refused"))
        .collect();
    for host in [
        foreign.clone(),
        sim.endpoint(Service::Management).replace("https", "http"),
        sim.endpoint(Service::Graph).replace("https", "http"),
        sim.endpoint(Service::Office).replace("https", "http"),
    ] {
        assert!(
            refusals.iter().any(|l| l.contains(&format!("link={host}"))),
            "no refusal names {host}: {}",
            refusals[..refusals.len().min(5)].join("\n")
        );
    }
    assert!(refusals.iter().any(|l| l.contains("downgrade to http://")));
    assert!(text.contains(&format!("redirect to {foreign} not followed")));
    assert!(text.contains("Window not read completely; it is read again at the next poll."));
    assert!(
        !text.contains(&sim.config().client_secret),
        "the secret is logged"
    );
    for token in sim.issued_tokens() {
        assert!(!text.contains(&token), "a token is logged");
    }
    eprintln!(
        "links refused per source: {final_counts:?}; token errors while redirected: {token_errors:?}; \
         {} refusal log lines; 307s served: ARM {}, Graph {}, Office {}, login {}; \
         {} lines delivered ({} activity, {} audit, {} office ids, {} alert states), none twice",
        refusals.len(),
        redirected(Service::Management),
        redirected(Service::Graph),
        redirected(Service::Office),
        redirected(Service::Login),
        lines.len(),
        activity.len(),
        audits.len(),
        office.len(),
        alerts.len(),
    );
}
