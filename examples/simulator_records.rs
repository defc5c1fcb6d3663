//! Writes the records the project's Microsoft API simulator serves, one NDJSON file per source
//! kind (`azure_activity.ndjson`, `entra_signins.ndjson`, …), into a folder: input for
//! `siemcast dry-run` and `siemcast render` on the simulator's data (see
//! `benches/rule_shares.sh`). The records are exactly what the simulator's APIs list (for
//! alerts, incidents, risk detections and risky users, the newest version of each).
//!
//!   cargo run --example simulator_records -- --out DIR [--per-kind N] [--seed S]

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use siemcast::simulator::{SimConfig, Simulator};

#[derive(Parser, Debug)]
struct Args {
    /// Folder to write the NDJSON files into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Records per kind (per subscription or content type where the API has several).
    #[arg(long, default_value_t = 2000)]
    per_kind: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = SimConfig::around_now(Duration::from_secs(3600), Duration::ZERO, args.per_kind);
    cfg.seed = args.seed;
    let sim = Simulator::start(cfg).await?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let [incidents, mut detections, sp_detections, risky_users] = sim.risk_final_records();
    detections.extend(sp_detections);
    let kinds = [
        ("azure_activity", sim.activity_records()),
        ("defender_alerts", sim.defender_final_alerts()),
        ("graph_alerts", sim.final_alerts()),
        ("entra_audit", sim.audit_records()),
        ("entra_signins", sim.signin_records()),
        ("graph_incidents", incidents),
        ("entra_risk_detections", detections),
        ("entra_risky_users", risky_users),
        (
            "o365_management",
            sim.office_records(&[
                "Audit.AzureActiveDirectory",
                "Audit.Exchange",
                "Audit.SharePoint",
                "Audit.General",
                "DLP.All",
            ]),
        ),
    ];
    for (kind, records) in kinds {
        let path = args.out.join(format!("{kind}.ndjson"));
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?,
        );
        for r in &records {
            serde_json::to_writer(&mut f, r)?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
        println!("{kind}\t{}", records.len());
    }
    sim.stop();
    Ok(())
}
