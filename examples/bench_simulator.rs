//! The project's Microsoft API simulator as a standalone process for `benches/e2e.sh`'s poller
//! and dedupe modes: serves `--events` Azure Activity records (one subscription), or with
//! `--signins` that many Entra sign-ins (generated when served: the simulator's bulk mode),
//! event times spread over the last `--span-secs`, all already visible, and prints, one
//! `key=value` per line, what a siemcast config needs to poll it. Runs until killed, in its own
//! process so its CPU is not siemcast's.

use std::time::Duration;

use clap::Parser;
use siemcast::simulator::{Service, SimConfig, Simulator};

#[derive(Parser, Debug)]
struct Args {
    /// Activity-log records to serve.
    #[arg(long)]
    events: usize,
    /// Records per page when the request does not say.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Serve the records as Entra sign-ins instead.
    #[arg(long)]
    signins: bool,
    /// Event times are spread over this many seconds before now.
    #[arg(long, default_value_t = 3600)]
    span_secs: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let span = Duration::from_secs(args.span_secs);
    let mut cfg = SimConfig::around_now(span, Duration::ZERO, args.events);
    cfg.seed = args.seed;
    cfg.page_size = args.page_size;
    cfg.bulk = args.signins;
    // Only one timeline is polled; keep the others empty.
    for t in [
        &mut cfg.alerts,
        &mut cfg.audits,
        &mut cfg.defender,
        &mut cfg.office,
    ] {
        t.count = 0;
    }
    if args.signins {
        cfg.activity.count = 0;
    } else {
        cfg.signins.count = 0;
    }
    let sim = Simulator::start(cfg).await?;
    let c = sim.config();
    println!("activity_records={}", sim.activity_records().len());
    println!("signin_records={}", c.signins.count);
    println!("tenant_id={}", c.tenant_id);
    println!("client_id={}", c.client_id);
    println!("client_secret={}", c.client_secret);
    println!("subscription={}", c.subscriptions[0]);
    println!("login={}", sim.endpoint(Service::Login));
    println!("management={}", sim.endpoint(Service::Management));
    println!("graph={}", sim.endpoint(Service::Graph));
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}
