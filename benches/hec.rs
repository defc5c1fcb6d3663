//! End-to-end throughput of a HEC destination: the release `siemcast run` reads a file of
//! Azure Activity records (files source → spool → HEC destination) and delivers them over
//! HTTPS, gzipped (HEC_BENCH_GZIP=0: not), with indexer acknowledgement, to the built-in HEC simulator in this process.
//! Prints events/s (from start until every event is indexed and acknowledged) and siemcast's
//! CPU seconds per million events (user + system, from /proc). The simulator shares the
//! machine: on 2 cores it takes one of them (TLS, gunzip, parsing every event).
//!
//! `cargo bench --bench hec` (HEC_BENCH_EVENTS=n to change the 1,000,000 events;
//! HEC_BENCH_BIG=1 for ~1.4 KB records instead of ~250 B ones). Not SIEMCAST_*: siemcast reads
//! those as configuration.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use siemcast::hec_simulator::{BackgroundHecSimulator, HecConfig, HecToken, SimTls};

const TOKEN: &str = "5b1c3a8e-1d2f-4e6a-9b7c-0123456789ab";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("HEC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let big = std::env::var_os("HEC_BENCH_BIG").is_some();
    let gzip = std::env::var("HEC_BENCH_GZIP").map_or(true, |v| v != "0");
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = certificates();
    std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    let sim = BackgroundHecSimulator::start(HecConfig {
        tokens: vec![HecToken::with_ack(TOKEN)],
        ack_delay: Duration::from_millis(200),
        tls: Some(tls),
        keep_events: false,
        ..HecConfig::default()
    })
    .unwrap();
    std::fs::create_dir(dir.path().join("input")).unwrap();
    let mut input = std::io::BufWriter::new(
        std::fs::File::create(dir.path().join("input/events.ndjson")).unwrap(),
    );
    let mut bytes = 0;
    for i in 0..n {
        let line = record(i, big);
        bytes += line.len() + 1;
        writeln!(input, "{line}").unwrap();
    }
    input.flush().unwrap();
    drop(input);
    std::fs::write(dir.path().join("hec-token"), TOKEN).unwrap();
    let config = dir.path().join("siemcast.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"
[metrics]
address = ""
[spool]
max_bytes = 8589934592
[[source]]
name = "activity"
kind = "files"
path = "input"
source_kind = "azure_activity"
batch_size = 5000
[[destination]]
name = "splunk"
transport = "hec"
url = "{url}"
token_file = "hec-token"
gzip = {gzip}
[destination.tls]
ca_file = "ca.pem"
"#,
            url = sim.https_url().unwrap().replace("127.0.0.1", "localhost"),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["run", "-c"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        let st = sim.stats();
        if st.events_indexed >= n as u64 && sim.pending_acks() == 0 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("siemcast exited with {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(600), "too slow");
        pause(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let cpu = cpu_seconds(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let st = sim.stats();
    println!(
        "hec: {n} events ({:.0} B each) over HTTPS {} and indexer acknowledgement in {:.2} s: {:.0} events/s; siemcast CPU {:.2} s per million events; {} requests, {} ack polls, {} ackIds confirmed",
        bytes as f64 / n as f64,
        if gzip { "with gzip" } else { "without gzip" },
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        cpu / (n as f64 / 1e6),
        st.batches_accepted,
        st.ack_requests,
        st.acks_confirmed,
    );
}

/// An Azure Activity record with id `ev-<i>`: small (~250 B), or about 1.4 KB with a long
/// description (a realistic Activity Log record's size).
fn record(i: usize, big: bool) -> String {
    let description = if big {
        format!(
            "Create or Update Virtual Machine /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/vm-{i} {}",
            i % 7,
            "x".repeat(1050)
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"eventDataId":"ev-{i:08}","eventTimestamp":"2026-11-01T10:00:{:02}.{:03}Z","operationName":{{"value":"Microsoft.Compute/virtualMachines/write"}},"caller":"user{}@contoso.com","level":"Informational","status":{{"value":"Succeeded"}},"description":"{description}"}}"#,
        i % 60,
        i % 1000,
        i % 13
    )
}

/// A CA and a server certificate for localhost signed by it: the simulator's TLS and the CA
/// PEM siemcast trusts.
fn certificates() -> (SimTls, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "siemcast hec bench CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let server = params.signed_by(&key, &issuer).unwrap();
    (
        SimTls {
            cert_chain: vec![server.der().to_vec()],
            key: key.serialize_der(),
        },
        ca.pem(),
    )
}

/// User + system CPU seconds of a running process (`/proc/PID/stat`, clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Sleeps the bench's own thread (no runtime runs on it).
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}
