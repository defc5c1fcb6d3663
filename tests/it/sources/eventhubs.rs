//! Whole-program tests of the `eventhubs` source against librdkafka's mock cluster (the real
//! Kafka protocol, hosted by this test process on loopback, 4 partitions) and a real rsyslog
//! receiver: every record arrives, two instances share the partitions and survive `kill -9`
//! of one, and unreadable messages are dead-lettered while consumption goes on.

use crate::util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};

use util::*;

const TOPIC: &str = "insights-activity-logs";
const PARTITIONS: i32 = 4;
const RECORDS_PER_MESSAGE: usize = 20;

/// The mock cluster with the hub's topic, and a producer writing to it.
struct Hub {
    mock: MockCluster<'static, DefaultProducerContext>,
    producer: BaseProducer,
}

impl Hub {
    fn start() -> Hub {
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic(TOPIC, PARTITIONS, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .set("message.max.bytes", "4000000")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        Hub { mock, producer }
    }

    fn bootstrap(&self) -> String {
        self.mock.bootstrap_servers()
    }

    fn send(&self, partition: i32, value: &[u8]) {
        send(&self.producer, partition, value);
    }

    fn send_records(&self, range: std::ops::Range<usize>) {
        send_records(&self.producer, range);
    }

    fn flush(&self) {
        self.producer.flush(Duration::from_secs(60)).unwrap();
    }
}

/// Sends one message value to a partition, waiting for room in the producer's queue.
fn send(producer: &BaseProducer, partition: i32, value: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(TOPIC)
        .partition(partition)
        .payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, r)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "produce failed: {e}"
                );
                record = r;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
}

/// Sends activity records `range` in envelopes of `RECORDS_PER_MESSAGE`, round-robin over the
/// partitions, and waits until the cluster has them.
fn send_records(producer: &BaseProducer, range: std::ops::Range<usize>) {
    let ids: Vec<usize> = range.collect();
    for (n, chunk) in ids.chunks(RECORDS_PER_MESSAGE).enumerate() {
        let partition = (chunk[0] / RECORDS_PER_MESSAGE) as i32 % PARTITIONS;
        send(producer, partition, &envelope(chunk));
        if n % 100 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Records the mock cluster may hold unread: its partitions keep about 5 MB each and delete
/// older messages like retention does, so the test never runs further ahead of the consumers.
const MAX_AHEAD: usize = 16_000;

/// Sends records `range` in steps, each only once `delivered()` is within `MAX_AHEAD` of what
/// was sent (a producer the consumers keep up with, as a live hub is).
fn stream_records(
    producer: &BaseProducer,
    range: std::ops::Range<usize>,
    delivered: impl Fn() -> usize,
) {
    const STEP: usize = 2000;
    let mut from = range.start;
    while from < range.end {
        let start = Instant::now();
        while from.saturating_sub(delivered()) > MAX_AHEAD - STEP {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "consumers stalled: {} of {from} delivered",
                delivered()
            );
            pause(Duration::from_millis(20));
        }
        let to = (from + STEP).min(range.end);
        send_records(producer, from..to);
        from = to;
    }
}

/// A `{"records":[…]}` message of streamed activity records, correlation ids `corr-NNNNNNN`.
fn envelope(ids: &[usize]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = ids
        .iter()
        .map(|i| {
            serde_json::json!({
                "time": "2025-03-04T09:15:22.1234567Z",
                "resourceId": "/SUBSCRIPTIONS/5F1C2A7E-8D3B-4C6A-9E21-0B7D4F3A9C11/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1",
                "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE",
                "category": "Administrative",
                "resultType": "Success",
                "resultSignature": "Succeeded.Created",
                "callerIpAddress": "203.0.113.42",
                "correlationId": format!("corr-{i:07}"),
                "identity": {"claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "j.rivera@contoso.example"}},
                "level": "Information",
                "properties": {"eventCategory": "Administrative", "message": "Microsoft.Compute/virtualMachines/write"}
            })
        })
        .collect();
    serde_json::json!({ "records": records })
        .to_string()
        .into_bytes()
}

/// A siemcast instance's directory and config: the hub → the receiver at `address`.
struct Instance {
    dir: PathBuf,
    metrics_port: u16,
}

impl Instance {
    fn new(root: &Path, name: &str, bootstrap: &str, address: &str, batch: usize) -> Instance {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let metrics_port = free_port();
        let text = format!(
            r#"state_dir = "state"

[metrics]
address = "127.0.0.1:{metrics_port}"

[[source]]
name = "hub"
kind = "eventhubs"
bootstrap_servers = "{bootstrap}"
topic = "{TOPIC}"
group = "siemcast-test"
security = "plaintext"
session_timeout = "6s"
batch_size = {batch}

[[destination]]
name = "rsyslog"
address = "{address}"
transport = "tcp"
hostname = "siemcast-test"
mappings = "{mappings}"
"#,
            mappings = shipped_mappings("arcsight").display()
        );
        std::fs::write(dir.join("siemcast.toml"), text).unwrap();
        Instance { dir, metrics_port }
    }

    fn spawn(&self) -> Running {
        spawn_run_logged(&self.dir.join("siemcast.toml"), &self.dir.join("log.txt"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log.txt")).unwrap_or_default()
    }

    /// The value of a metric line that starts with `prefix` (name and labels).
    fn metric(&self, prefix: &str) -> Option<f64> {
        let (_, body) = http_get(self.metrics_port, "/metrics").ok()?;
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The partitions this instance owns now (those with a lag gauge).
    fn owned_partitions(&self) -> usize {
        let Ok((_, body)) = http_get(self.metrics_port, "/metrics") else {
            return 0;
        };
        body.lines()
            .filter(|l| l.starts_with("siemcast_eventhubs_partition_lag_records{"))
            .count()
    }
}

/// How often each correlation id arrived, from the CEF `cs3` of every line.
fn count_ids(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let cef = line
            .find("CEF:0|")
            .map(|i| &line[i..])
            .unwrap_or_else(|| panic!("no CEF payload: {line}"));
        let id = cef_value(cef, "cs3").unwrap_or_else(|| panic!("no cs3: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Ids of `0..n` that never arrived, and the number of extra copies of those that did.
fn missing_and_duplicates(counts: &BTreeMap<String, usize>, n: usize) -> (Vec<String>, usize) {
    let missing = (0..n)
        .map(|i| format!("corr-{i:07}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    let extra = counts.values().map(|c| c - 1).sum();
    (missing, extra)
}

fn wait_for(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        pause(Duration::from_millis(100));
    }
}

#[test]
fn two_hundred_thousand_records_reach_rsyslog_exactly_once() {
    const N: usize = 200_000;
    let hub = Hub::start();
    let rsyslog = Rsyslog::start_tcp();
    let root = tempfile::tempdir().unwrap();
    let one = Instance::new(
        root.path(),
        "one",
        &hub.bootstrap(),
        &rsyslog.address(),
        5000,
    );
    let mut child = one.spawn();
    stream_records(&hub.producer, 0..N, || rsyslog.count_lines());
    rsyslog.wait_for_lines_from(Some(&mut *child), N, Duration::from_secs(300));
    // Everything is committed: nothing is left behind on any partition.
    wait_for(Duration::from_secs(20), "lag 0 on all partitions", || {
        (0..PARTITIONS).all(|p| {
            one.metric(&format!(
                "siemcast_eventhubs_partition_lag_records{{source=\"hub\",partition=\"{p}\"}}"
            )) == Some(0.0)
        })
    });
    let consumed: f64 = (0..PARTITIONS)
        .map(|p| {
            one.metric(&format!(
                "siemcast_eventhubs_partition_records_consumed_total{{source=\"hub\",partition=\"{p}\"}}"
            ))
            .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(consumed, N as f64);
    let commits = one
        .metric("siemcast_eventhubs_partition_commit_seconds_count{source=\"hub\",partition=\"0\"}")
        .unwrap_or(0.0);
    assert!(commits >= 1.0, "no commit latency recorded");
    stop(&mut child);

    let counts = count_ids(&rsyslog.settled_lines());
    let (missing, extra) = missing_and_duplicates(&counts, N);
    assert!(
        missing.is_empty(),
        "{} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(extra, 0, "duplicates in a run without failures");
    assert_eq!(counts.len(), N);

    // A restart resumes from the committed offsets: nothing is read again.
    let mut again = one.spawn();
    wait_for(
        Duration::from_secs(30),
        "the restarted instance to own partitions",
        || one.owned_partitions() == PARTITIONS as usize,
    );
    pause(Duration::from_secs(2));
    stop(&mut again);
    assert_eq!(
        rsyslog.settled_lines().len(),
        N,
        "a restart re-read committed records"
    );
}

#[test]
fn a_group_of_two_survives_kill_9_of_one_member() {
    const N: usize = 60_000;
    const BATCH: usize = 1000;
    let hub = Hub::start();
    let rsyslog = Rsyslog::start_tcp();
    let root = tempfile::tempdir().unwrap();
    let a = Instance::new(
        root.path(),
        "a",
        &hub.bootstrap(),
        &rsyslog.address(),
        BATCH,
    );
    let b = Instance::new(
        root.path(),
        "b",
        &hub.bootstrap(),
        &rsyslog.address(),
        BATCH,
    );
    let mut child_a = a.spawn();
    let mut child_b = b.spawn();
    // The first fifth lands before the group forms, the rest streams in while it runs.
    hub.send_records(0..N / 5);
    wait_for(
        Duration::from_secs(60),
        "both members to own partitions",
        || a.owned_partitions() > 0 && b.owned_partitions() > 0,
    );
    assert_eq!(
        a.owned_partitions() + b.owned_partitions(),
        PARTITIONS as usize,
        "the members should split the 4 partitions"
    );
    std::thread::scope(|s| {
        let producer = &hub.producer;
        let receiver = &rsyslog;
        let streaming = s.spawn(move || {
            stream_records(producer, N / 5..N, || receiver.count_lines());
        });
        // Mid-stream: a's share is being delivered when it dies.
        wait_for(
            Duration::from_secs(60),
            "a to deliver part of its share",
            || {
                a.metric("siemcast_source_events_spooled_total{source=\"hub\"}")
                    .is_some_and(|v| v >= (N / 5) as f64 / 4.0)
            },
        );
        assert!(
            rsyslog.count_lines() < N,
            "the kill came after the stream ended"
        );
        child_a.kill().unwrap();
        child_a.wait().unwrap();
        streaming.join().unwrap();
    });
    // The group notices the silent member after its session timeout and gives b everything.
    wait_for(
        Duration::from_secs(60),
        "b to take over all partitions",
        || b.owned_partitions() == PARTITIONS as usize,
    );
    assert!(
        b.log().contains("Partitions assigned"),
        "b's log does not show the new assignment"
    );
    // a restarts (as systemd would) and delivers what its spool still holds.
    let mut child_a = a.spawn();
    wait_for(Duration::from_secs(120), "every id at the receiver", || {
        let (missing, _) = missing_and_duplicates(&count_ids(&rsyslog.lines()), N);
        missing.is_empty()
    });
    // The group settles with a back in it before both stop: a SIGTERM in the middle of a
    // rebalance waits for the rebalance, which can pass the 15 s `stop` allows.
    wait_for(
        Duration::from_secs(60),
        "the group to settle with a back in it",
        || {
            let (in_a, in_b) = (a.owned_partitions(), b.owned_partitions());
            in_a > 0 && in_a + in_b == PARTITIONS as usize
        },
    );
    stop(&mut child_a);
    stop(&mut child_b);
    let counts = count_ids(&rsyslog.settled_lines());
    let (missing, extra) = missing_and_duplicates(&counts, N);
    assert!(missing.is_empty(), "{} ids missing", missing.len());
    assert_eq!(counts.len(), N, "ids the test never sent");
    // Duplicates come only from batches made durable but not committed: a's last batch when it
    // died; when a rejoins, the batch each member had in hand as the group refused commits
    // (for the partitions that moved); and what a's destination had sent in its last cursor
    // interval before the kill (resent after the restart).
    eprintln!("kill -9 of one member: {extra} duplicates of {N} records");
    assert!(
        extra <= 3 * BATCH + 2000,
        "{extra} duplicates: more than the uncommitted batches can explain"
    );
}

#[test]
fn unreadable_messages_are_dead_lettered_and_consumption_goes_on() {
    let hub = Hub::start();
    let rsyslog = Rsyslog::start_tcp();
    let root = tempfile::tempdir().unwrap();
    let one = Instance::new(
        root.path(),
        "one",
        &hub.bootstrap(),
        &rsyslog.address(),
        100,
    );
    hub.send_records(0..200);
    // On partition 1, between good messages: not JSON, no `records`, one bad record among
    // good ones, and a message larger than an event can be.
    hub.send(1, b"this is not JSON {");
    hub.send(1, br#"{"value":[{"category":"Administrative"}]}"#);
    let mut mixed = String::from_utf8(envelope(&[200, 201])).unwrap();
    mixed = mixed.replacen("\"records\":[", "\"records\":[\"a string record\",", 1);
    hub.send(1, mixed.as_bytes());
    let huge = format!(
        "{{\"records\":[{{\"category\":\"Administrative\",\"pad\":\"{}\"}}]}}",
        "x".repeat(1_200_000)
    );
    hub.send(1, huge.as_bytes());
    hub.flush();
    hub.send_records(202..400);

    let mut child = one.spawn();
    rsyslog.wait_for_lines_from(Some(&mut *child), 400, Duration::from_secs(60));
    wait_for(Duration::from_secs(10), "the rejected count", || {
        one.metric("siemcast_source_events_rejected_total{source=\"hub\"}") == Some(4.0)
    });
    stop(&mut child);

    let counts = count_ids(&rsyslog.settled_lines());
    let (missing, extra) = missing_and_duplicates(&counts, 400);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!((extra, counts.len()), (0, 400));

    let dead = read_lines(&one.dir.join("state/dead-letter/source-hub.ndjson"));
    assert_eq!(dead.len(), 4, "{dead:#?}");
    let dead: Vec<serde_json::Value> = dead
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let errors: Vec<&str> = dead.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert!(errors[0].starts_with("message is not JSON"), "{errors:?}");
    assert!(
        errors[1].starts_with("message is not a {\"records\":[…]} envelope"),
        "{errors:?}"
    );
    assert_eq!(errors[2], "record 0 is not a JSON object");
    assert!(errors[3].starts_with("message is 1200"), "{errors:?}");
    for d in &dead {
        assert_eq!(d["topic"], TOPIC);
        assert_eq!(d["partition"], 1);
    }
    // Nothing is lost: the bad messages are kept whole.
    assert_eq!(dead[0]["payload"], "this is not JSON {");
    assert_eq!(dead[3]["payload"].as_str().map(str::len), Some(huge.len()));
    let offsets: Vec<i64> = dead.iter().map(|d| d["offset"].as_i64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(
        one.log().contains("dead-letter"),
        "the log does not mention the dead letters"
    );
}
