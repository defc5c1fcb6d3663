//! End-to-end throughput of the `eventhubs` source: a backlog of streamed activity records in
//! librdkafka's mock cluster (the real Kafka protocol on loopback) → the real pipeline (consumer
//! group, spool with fsync per batch, CEF mapping, RFC 3164) → a TCP receiver that counts lines.
//! Runs one instance, then two instances sharing the consumer group, and prints records/s.
//!
//!   cargo bench --bench eventhubs            (EVENTHUBS_BENCH_RECORDS, default 120000;
//!                                             EVENTHUBS_BENCH_ROUNDS runs of each, default 3)
//!
//! The mock cluster keeps about 5 MB per partition (older messages are deleted, like retention),
//! so the backlog is spread over 32 partitions, the most an Event Hubs Standard hub has; with
//! ~1.1 KB records that holds about 140,000 records. The bench checks the backlog is whole.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use siemcast::config::Config;
use siemcast::pipeline::Pipeline;
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 32;
const RECORDS_PER_MESSAGE: usize = 20;

/// One streamed activity record, as a subscription diagnostic setting writes it (~700 bytes).
fn record(i: usize) -> serde_json::Value {
    serde_json::json!({
        "time": "2025-03-04T09:15:22.1234567Z",
        "resourceId": format!("/SUBSCRIPTIONS/5F1C2A7E-8D3B-4C6A-9E21-0B7D4F3A9C11/RESOURCEGROUPS/RG-{}/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM-{i}", i % 7),
        "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE",
        "category": "Administrative",
        "resultType": "Success",
        "resultSignature": "Succeeded.Created",
        "durationMs": "0",
        "callerIpAddress": format!("203.0.{}.{}", i % 250, i % 200),
        "correlationId": format!("c0ffee00-0000-4000-8000-{i:012}"),
        "identity": {
            "authorization": {"scope": "/subscriptions/5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11/resourceGroups/rg-prod-app", "action": "Microsoft.Compute/virtualMachines/write", "evidence": {"role": "Contributor", "principalType": "User"}},
            "claims": {"appid": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": format!("user{}@contoso.example", i % 13)}
        },
        "level": "Information",
        "location": "global",
        "properties": {"statusCode": "Created", "eventCategory": "Administrative", "message": "Microsoft.Compute/virtualMachines/write", "hierarchy": "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e/5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11"}
    })
}

/// Fills `topic` with `n` records in envelopes of `RECORDS_PER_MESSAGE`, round-robin.
fn produce(bootstrap: &str, topic: &str, n: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut i = 0;
    let mut message = 0;
    while i < n {
        let records: Vec<serde_json::Value> =
            (i..(i + RECORDS_PER_MESSAGE).min(n)).map(record).collect();
        let value = serde_json::json!({ "records": records }).to_string();
        let partition = message % PARTITIONS;
        loop {
            let r = BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(&value);
            match producer.send(r) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
        i += RECORDS_PER_MESSAGE;
        message += 1;
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// Asserts the mock cluster still holds every message produced (none aged out).
fn check_backlog(bootstrap: &str, topic: &str, n: usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("probe");
    let mut messages = 0;
    for p in 0..PARTITIONS {
        let (low, high) = probe
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            low, 0,
            "partition {p} lost its oldest messages; use fewer records"
        );
        messages += high;
    }
    assert_eq!(messages as usize, n.div_ceil(RECORDS_PER_MESSAGE));
}

/// A TCP receiver on loopback that counts the lines of every connection.
fn receiver() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let lines = Arc::new(AtomicU64::new(0));
    let count = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let newlines = buf[..n].iter().filter(|b| **b == b'\n').count();
                    count.fetch_add(newlines as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (address, lines)
}

fn config(dir: &Path, bootstrap: &str, topic: &str, address: &str) -> Config {
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/arcsight");
    let text = format!(
        r#"state_dir = "state"
[metrics]
address = ""
[[source]]
name = "hub"
kind = "eventhubs"
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
group = "bench"
security = "plaintext"
batch_size = 20000
[[destination]]
name = "siem"
address = "{address}"
transport = "tcp"
hostname = "bench"
mappings = "{}"
"#,
        mappings.display()
    );
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("siemcast.toml");
    std::fs::write(&path, &text).expect("config");
    Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `instances` pipelines in one group over a fresh backlog of `n` records: records/s from
/// the first record received to the last, the time to that first record, and the total.
fn run(instances: usize, n: usize) -> (f64, Duration, Duration) {
    let mock = MockCluster::new(1).expect("mock cluster");
    let topic = format!("bench-{instances}");
    mock.create_topic(&topic, PARTITIONS, 1).expect("topic");
    let bootstrap = mock.bootstrap_servers();
    produce(&bootstrap, &topic, n);
    check_backlog(&bootstrap, &topic, n);
    let (address, lines) = receiver();
    let root = tempfile::tempdir_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..instances {
        let cfg = config(
            &root.path().join(format!("i{k}")),
            &bootstrap,
            &topic,
            &address,
        );
        let pipeline = Pipeline::build(&cfg).expect("pipeline");
        tasks.push(runtime.spawn(pipeline.run(stop.clone())));
    }
    // The clock starts at the first record received: before it, the consumer group forms
    // (the mock coordinator waits 3 s for members to join, as Kafka's
    // group.initial.rebalance.delay.ms does), which is a one-off cost, not throughput.
    let (first, last) = runtime.block_on(async {
        let (mut seen, mut progress) = (0, Instant::now());
        let mut first = None;
        while seen < n as u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = lines.load(Ordering::Relaxed);
            if now > seen {
                first.get_or_insert_with(Instant::now);
                (seen, progress) = (now, Instant::now());
            }
            assert!(
                progress.elapsed() < Duration::from_secs(30),
                "stalled at {seen} of {n} records"
            );
        }
        (first.unwrap_or(started), Instant::now())
    });
    let join = first - started;
    let elapsed = last - first;
    stop.cancel();
    for t in tasks {
        let _ = runtime.block_on(t);
    }
    let got = lines.load(Ordering::Relaxed);
    assert_eq!(
        got, n as u64,
        "the receiver got {got} lines for {n} records"
    );
    (n as f64 / elapsed.as_secs_f64(), join, last - started)
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("EVENTHUBS_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120_000);
    // One run's window is about a second on a fast machine, so each case runs several times
    // (each on a fresh cluster) and the median is the figure; min and max show the spread.
    let rounds: usize = std::env::var("EVENTHUBS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    for instances in [1, 2] {
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let (rate, join, total) = run(instances, n);
            println!(
                "eventhubs end to end ({instances} instance{}, {n} records, {PARTITIONS} partitions): {rate:.0} records/s after the group formed ({join:.1?} to the first record, {total:.1?} in all)",
                if instances == 1 { "" } else { "s" }
            );
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "eventhubs {instances} instance{}: median {:.0} records/s (min {:.0}, max {:.0}, {rounds} runs)",
            if instances == 1 { "" } else { "s" },
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    }
}
