//! `siemcast demo`: the whole pipeline on one machine with no credentials and no network.
//! The built-in simulator of Microsoft's APIs (tokens, ARM activity log and Defender for Cloud
//! alerts, Graph alerts and incidents, Entra logs and Identity Protection risk, Office 365 audit
//! content; throttling every 3rd request)
//! feeds the real pollers of all nine Microsoft source kinds, the spool, ArcSight mappings and a
//! TCP syslog destination to a listener on loopback; what arrives is printed with a summary. The
//! same events also go to the built-in Splunk HEC simulator through a HEC destination with
//! indexer acknowledgement, and its count is part of the summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::simulator::{Service, SimConfig, Simulator};

/// The mappings the demo's source kinds use.
const MAPPINGS: [(&str, &str); 9] = [
    (
        "azure_activity",
        include_str!("../mappings/arcsight/azure_activity.toml"),
    ),
    (
        "defender_alerts",
        include_str!("../mappings/arcsight/defender_alerts.toml"),
    ),
    (
        "o365_management",
        include_str!("../mappings/arcsight/o365_management.toml"),
    ),
    (
        "graph_alerts",
        include_str!("../mappings/arcsight/graph_alerts.toml"),
    ),
    (
        "entra_audit",
        include_str!("../mappings/arcsight/entra_audit.toml"),
    ),
    (
        "entra_signins",
        include_str!("../mappings/arcsight/entra_signins.toml"),
    ),
    (
        "graph_incidents",
        include_str!("../mappings/arcsight/graph_incidents.toml"),
    ),
    (
        "entra_risk_detections",
        include_str!("../mappings/arcsight/entra_risk_detections.toml"),
    ),
    (
        "entra_risky_users",
        include_str!("../mappings/arcsight/entra_risky_users.toml"),
    ),
];
/// The Office 365 content types the demo reads.
const CONTENT_TYPES: [&str; 3] = [
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
];
/// How long the demo waits for every event to arrive.
const DEMO_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the demo; exit code 0 when every sample event arrived.
pub async fn run() -> anyhow::Result<ExitCode> {
    let dir = DemoDir::create()?;
    let outcome = run_in(&dir.0).await;
    drop(dir);
    outcome
}

async fn run_in(dir: &Path) -> anyhow::Result<ExitCode> {
    let mappings = dir.join("mappings").join("arcsight");
    std::fs::create_dir_all(&mappings)?;
    for (kind, text) in MAPPINGS {
        std::fs::write(mappings.join(format!("{kind}.toml")), text)?;
    }
    // A tenant whose last 20 minutes hold 16 activity records, 6 Defender for Cloud alerts,
    // 6 Graph alerts, 6 directory audit records, 6 sign-ins and 4 audit records of each of
    // three Office 365 content types (two to a blob), all ingested.
    let mut sim_config = SimConfig::around_now(Duration::from_secs(20 * 60), Duration::ZERO, 16);
    sim_config.activity.span_ms = 10 * 60 * 1000;
    sim_config.alerts.count = 6;
    sim_config.alerts.span_ms = 10 * 60 * 1000;
    sim_config.audits = sim_config.alerts.clone();
    sim_config.signins = sim_config.alerts.clone();
    sim_config.defender = sim_config.alerts.clone();
    sim_config.office = sim_config.alerts.clone();
    sim_config.office.count = 4;
    sim_config.records_per_blob = 2;
    sim_config.page_size = 10;
    sim_config.faults.throttle_every = Some(3);
    sim_config.faults.retry_after_secs = 1;
    let sim = Simulator::start(sim_config)
        .await
        .context("cannot start the API simulator on 127.0.0.1")?;
    std::fs::write(dir.join("client-secret"), &sim.config().client_secret)?;
    let activity = sim.activity_records().len();
    let alerts = sim.final_alerts().len();
    let audits = sim.audit_records().len();
    let signins = sim.signin_records().len();
    let defender = sim.defender_final_alerts().len();
    let office = sim.office_records(&CONTENT_TYPES).len();
    // Incidents, user and service principal risk detections, risky users: their newest
    // versions (every version is visible by the first poll).
    let [incidents, detections, sp_detections, risky] = sim.risk_final_records().map(|r| r.len());
    let expected = activity
        + alerts
        + audits
        + signins
        + defender
        + office
        + incidents
        + detections
        + sp_detections
        + risky;

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a listener on 127.0.0.1")?;
    let address = listener.local_addr()?;
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let listen = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
    });

    let hec = crate::hec_simulator::HecSimulator::start(crate::hec_simulator::HecConfig {
        tokens: vec![crate::hec_simulator::HecToken::with_ack(DEMO_HEC_TOKEN)],
        ack_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .context("cannot start the HEC simulator on 127.0.0.1")?;
    std::fs::write(dir.join("hec-token"), DEMO_HEC_TOKEN)?;

    let config_path = dir.join("siemcast.toml");
    let text = format!(
        r#"state_dir = "state"

[metrics]
address = ""

{azure}
# The simulator is not Entra: its reports need not be read at 5 per 10 s, nor Identity
# Protection at 1 per second.
[azure.rate_limits]
entra_reports = "50/1s"
identity_protection = "50/1s"

[[source]]
name = "demo-activity"
kind = "azure_activity"
subscriptions = ["{subscription}"]
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-defender"
kind = "defender_alerts"
subscriptions = ["{subscription}"]
interval = "1s"
start_at = "30m"

[[source]]
name = "demo-alerts"
kind = "graph_alerts"
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-o365"
kind = "o365_management"
content_types = {content_types:?}
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-audit"
kind = "entra_audit"
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-signins"
kind = "entra_signins"
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-incidents"
kind = "graph_incidents"
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-risk"
kind = "entra_risk_detections"
interval = "1s"
start_at = "30m"
settle_delay = "1s"

[[source]]
name = "demo-risky-users"
kind = "entra_risky_users"
interval = "1s"
start_at = "30m"

[[destination]]
name = "demo-listener"
address = "{address}"
transport = "tcp"
framing = "lf"
syslog = "rfc3164"
hostname = "siemcast-demo"
mappings = "mappings/arcsight"

[[destination]]
name = "demo-splunk"
transport = "hec"
url = "{hec_url}"
token_file = "hec-token"
host = "siemcast-demo"
"#,
        hec_url = hec.http_url(),
        azure = sim.azure_section("client_secret_file = \"client-secret\""),
        subscription = sim.config().subscriptions[0],
        content_types = CONTENT_TYPES,
    );
    std::fs::write(&config_path, &text)?;
    let config = Config::from_toml(&config_path, &text).map_err(|e| anyhow::anyhow!("{e}"))?;

    println!("siemcast demo");
    println!(
        "  APIs:     simulated Entra token endpoint {}, ARM {}, Graph {}, Office 365 {}",
        sim.endpoint(Service::Login),
        sim.endpoint(Service::Management),
        sim.endpoint(Service::Graph),
        sim.endpoint(Service::Office)
    );
    println!("  sources:  azure_activity ({activity} Activity Log records), defender_alerts ({defender} Defender for Cloud alerts),");
    println!("            graph_alerts ({alerts} alerts_v2 alerts), entra_audit ({audits} directory audit records),");
    println!("            entra_signins ({signins} sign-ins), o365_management ({office} audit records of {}),", CONTENT_TYPES.join(", "));
    println!("            graph_incidents ({incidents} Defender XDR incidents), entra_risk_detections ({detections} user and");
    println!("            {sp_detections} service principal risk detections), entra_risky_users ({risky} risky users)");
    println!("  faults:   every 3rd API request per host is throttled (429 with Retry-After: 1; Office 365: 403 AF429, every other one with Retry-After: 1)");
    println!("  mapping:  mappings/arcsight/<kind>.toml (CEF)");
    println!("  listener: tcp://{address} (RFC 3164 header, LF framing)");
    println!(
        "  splunk:   HEC simulator {} (the source records as JSON, gzip, indexer acknowledgement)",
        hec.http_url()
    );
    println!();

    let started = Instant::now();
    let pipeline = Pipeline::build(&config)?;
    let stats = pipeline.stats();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pipeline.run(shutdown.clone()));

    let mut received = Vec::new();
    let deadline = tokio::time::sleep(DEMO_TIMEOUT);
    tokio::pin!(deadline);
    while received.len() < expected {
        tokio::select! {
            line = lines_rx.recv() => match line {
                Some(l) => received.push(l),
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    // The HEC destination counts an event once its ackId is confirmed.
    let splunk = stats
        .destinations
        .iter()
        .find(|(n, _)| n == "demo-splunk")
        .map(|(_, s)| s.clone());
    while splunk
        .as_ref()
        .is_some_and(|s| (s.delivered.load(Ordering::Relaxed) as usize) < expected)
    {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = &mut deadline => break,
        }
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    running.await.context("the pipeline task failed")??;
    listen.abort();

    println!("Received by the listener:");
    for line in &received {
        println!("{line}");
    }
    println!();
    let spooled: u64 = stats
        .sources
        .iter()
        .map(|(_, s)| s.spooled.load(Ordering::Relaxed))
        .sum();
    let delivered: u64 = stats
        .destinations
        .iter()
        .filter(|(n, _)| n == "demo-listener")
        .map(|(_, s)| s.delivered.load(Ordering::Relaxed))
        .sum();
    let hec_stats = hec.stats();
    let indexed = hec_stats.events_indexed as usize;
    let cef = received.iter().filter(|l| l.contains("CEF:0|")).count();
    let requests = sim.requests();
    let throttled = requests
        .iter()
        .filter(|r| r.status == 429 || (r.service == Service::Office && r.status == 403))
        .count();
    let early = requests.iter().filter(|r| r.early).count();
    println!("Summary:");
    println!(
        "  API requests answered:          {} ({throttled} throttled, {early} sent before Retry-After)",
        requests.len()
    );
    println!("  events read and spooled:        {spooled}");
    println!("  delivered (acknowledged by TCP): {delivered}");
    println!("  lines received with CEF:        {cef} of {expected}");
    println!(
        "  indexed by the HEC simulator:   {indexed} of {expected} ({} requests, {} ackIds confirmed)",
        hec_stats.batches_accepted, hec_stats.acks_confirmed
    );
    println!(
        "  time:                           {} ms",
        elapsed.as_millis()
    );
    if received.len() == expected && cef == expected && early == 0 && indexed == expected {
        println!("Demo OK: every event arrived exactly once as CEF over TCP syslog, and once in Splunk HEC with indexer acknowledgement.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "Demo FAILED: expected {expected} CEF lines, received {}; {indexed} of {expected} indexed by the HEC simulator.",
            received.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The token of the demo's HEC simulator (a made-up GUID).
const DEMO_HEC_TOKEN: &str = "0d3e8a1c-5b7f-4c2d-9e6a-1f0b2c3d4e5f";

/// A scratch directory removed when dropped.
struct DemoDir(PathBuf);

impl DemoDir {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("siemcast-demo-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
