//! The simulator serving many tenants for `benches/tenants.sh`: `--tenants` tenants (one
//! multi-tenant app registration consented in each), each with `--subscriptions`
//! subscriptions and `--records` records per scope spread over the last ten minutes. Writes the
//! siemcast configuration that reads all of them (per tenant: `azure_activity` and
//! `defender_alerts` over its subscriptions, `graph_alerts`, `entra_audit`, `entra_signins`,
//! `o365_management`) into `--config`, then prints `sources=N` and `ready` and serves until
//! killed, in its own process so its CPU is not siemcast's. The first tenant is throttled
//! (every second request answered 429 with `Retry-After: 5`), to show that its budget is its
//! own.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use siemcast::simulator::{Faults, Service, SimConfig, Simulator};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    #[arg(long, default_value_t = 20)]
    records: usize,
    /// The sources' poll interval (e.g. `30s`).
    #[arg(long, default_value = "30s")]
    interval: String,
    /// Where to write the siemcast configuration.
    #[arg(long)]
    config: PathBuf,
    /// `host:port` of the syslog receiver.
    #[arg(long)]
    receiver: String,
    /// The mappings folder of the destination.
    #[arg(long)]
    mappings: PathBuf,
    /// The metrics listener of siemcast.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: String,
}

fn guid(kind: u32, i: usize, j: usize) -> String {
    format!("{kind:08x}-{j:04x}-4000-8000-{i:012x}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfgs: Vec<SimConfig> = (0..args.tenants)
        .map(|i| {
            let mut cfg =
                SimConfig::around_now(Duration::from_secs(600), Duration::ZERO, args.records);
            cfg.seed = i as u64 + 1;
            cfg.tenant_id = guid(0x7e5a_0000, i, 0);
            cfg.subscriptions = (0..args.subscriptions)
                .map(|j| guid(0x5ab5_0000, i, j))
                .collect();
            if i == 0 {
                cfg.faults = Faults {
                    throttle_every: Some(2),
                    retry_after_secs: 5,
                    ..Faults::default()
                };
            }
            cfg
        })
        .collect();
    let sims = Simulator::start_tenants(cfgs).await?;
    let first = &sims[0];
    let secret = args.config.with_file_name("client-secret");
    std::fs::write(&secret, &first.config().client_secret)?;
    let mut text = format!(
        "state_dir = \"{state}\"\n[metrics]\naddress = \"{metrics}\"\n\n[azure]\nclient_id = \"{client}\"\n\
         client_secret_file = \"{secret}\"\nlogin_endpoint = \"{login}\"\nmanagement_endpoint = \"{management}\"\n\
         graph_endpoint = \"{graph}\"\noffice_endpoint = \"{office}\"\n\n",
        state = args.config.with_file_name("state").display(),
        metrics = args.metrics,
        client = first.config().client_id,
        secret = secret.display(),
        login = first.endpoint(Service::Login),
        management = first.endpoint(Service::Management),
        graph = first.endpoint(Service::Graph),
        office = first.endpoint(Service::Office),
    );
    let mut sources = 0;
    for (i, sim) in sims.iter().enumerate() {
        let name = format!("t{i:03}");
        text.push_str(&sim.tenant_section(&name, ""));
        for (kind, scope) in [
            (
                "azure_activity",
                format!("{}\n", sim.config().subscriptions_line()),
            ),
            (
                "defender_alerts",
                format!("{}\n", sim.config().subscriptions_line()),
            ),
            ("graph_alerts", String::new()),
            ("entra_audit", String::new()),
            ("entra_signins", String::new()),
            (
                "o365_management",
                "content_types = [\"Audit.SharePoint\", \"Audit.Exchange\"]\n".to_owned(),
            ),
        ] {
            let _ = write!(
                text,
                "\n[[source]]\nname = \"{kind}-{name}\"\nkind = \"{kind}\"\ntenant = \"{name}\"\n{scope}interval = \"{}\"\n",
                args.interval
            );
            sources += 1;
        }
        text.push('\n');
    }
    let _ = write!(
        text,
        "\n[[destination]]\nname = \"receiver\"\naddress = \"{}\"\ntransport = \"tcp\"\nmappings = \"{}\"\n",
        args.receiver,
        args.mappings.display()
    );
    std::fs::write(&args.config, text)?;
    println!("sources={sources}");
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}
