//! `siemcast demo`: the whole pipeline on one machine with no credentials and no network.
//! Bundled sample events go through the files source, the spool, the ArcSight mapping and a
//! TCP syslog destination to a listener on loopback; what arrives is printed with a summary.

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

const SAMPLE_EVENTS: &str = include_str!("../examples/events/azure_activity.json");
const SAMPLE_MAPPING: &str = include_str!("../mappings/arcsight/azure_activity.toml");
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
    let input = dir.join("input");
    let mappings = dir.join("mappings").join("arcsight");
    std::fs::create_dir_all(&input)?;
    std::fs::create_dir_all(&mappings)?;
    std::fs::write(input.join("azure_activity.json"), SAMPLE_EVENTS)?;
    std::fs::write(mappings.join("azure_activity.toml"), SAMPLE_MAPPING)?;
    let expected = crate::event::read_documents(SAMPLE_EVENTS.as_bytes())
        .iter()
        .filter(|i| i.is_ok())
        .count();

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

    let config_path = dir.join("siemcast.toml");
    let text = format!(
        r#"state_dir = "state"

[metrics]
address = ""

[[source]]
name = "demo-files"
kind = "files"
path = "input"
source_kind = "azure_activity"
interval = "1s"

[[destination]]
name = "demo-listener"
address = "{address}"
transport = "tcp"
framing = "lf"
syslog = "rfc3164"
hostname = "siemcast-demo"
mappings = "mappings/arcsight"
"#
    );
    std::fs::write(&config_path, &text)?;
    let config = Config::from_toml(&config_path, &text).map_err(|e| anyhow::anyhow!("{e}"))?;

    println!("siemcast demo");
    println!("  input:    {expected} sample Azure Activity events (files source)");
    println!("  mapping:  mappings/arcsight/azure_activity.toml (CEF)");
    println!("  listener: tcp://{address} (RFC 3164 header, LF framing)");
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
        .map(|(_, s)| s.delivered.load(Ordering::Relaxed))
        .sum();
    let cef = received.iter().filter(|l| l.contains("CEF:0|")).count();
    println!("Summary:");
    println!("  events read and spooled:        {spooled}");
    println!("  delivered (acknowledged by TCP): {delivered}");
    println!("  lines received with CEF:        {cef} of {expected}");
    println!(
        "  time:                           {} ms",
        elapsed.as_millis()
    );
    if received.len() == expected && cef == expected {
        println!("Demo OK: every event arrived exactly once as CEF over TCP syslog.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "Demo FAILED: expected {expected} CEF lines, received {}.",
            received.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

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
