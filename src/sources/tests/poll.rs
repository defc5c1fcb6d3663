//! The windowed sources against the in-process simulator with its faults on, writing to a
//! real spool: every record is spooled exactly once, also across a stop and a restart that
//! resumes from the spooled checkpoint; no request is sent before a `Retry-After` passed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::Event;
use crate::simulator::{Faults, Service, SimConfig, Simulator};
use crate::sources::{Source, SourceContext, SourceStats};
use crate::spool::{Spool, SpoolOptions};

fn faulty_sim_config() -> SimConfig {
    let mut cfg = SimConfig::around_now(Duration::from_secs(12), Duration::from_secs(3), 240);
    cfg.subscriptions
        .push("0b7d4f3a-9c11-4c6a-8d3b-5f1c2a7e9e21".into());
    cfg.page_size = 25;
    cfg.token_lifetime = Duration::from_secs(4);
    cfg.activity.late_every = Some(10);
    cfg.activity.late_by_ms = 4_000;
    cfg.alerts.count = 90;
    cfg.alerts.late_every = Some(10);
    cfg.alerts.late_by_ms = 4_000;
    cfg.faults = Faults {
        throttle_every: Some(10),
        retry_after_secs: 1,
        unavailable_every: Some(13),
        revoke_tokens_every: Some(17),
        duplicate_across_pages: true,
        malformed_pages: 2,
        slow_page: None,
        malformed_blobs: 0,
        broken_records_every: None,
        ..Faults::default()
    };
    cfg
}

fn config(sim: &Simulator, dir: &Path, source: &str) -> Config {
    config_with(sim, dir, source, "12s")
}

/// [`config`] with another `overlap`.
fn config_with(sim: &Simulator, dir: &Path, source: &str, overlap: &str) -> Config {
    std::fs::write(dir.join("secret"), &sim.config().client_secret).unwrap();
    let text = format!(
        r#"state_dir = "state"
[metrics]
address = ""
{azure}
[azure.rate_limits]
entra_reports = "50/1s"

[[source]]
name = "src"
kind = "{source}"
{subs}
interval = "300ms"
overlap = "{overlap}"
settle_delay = "500ms"
start_at = "30s"

[[destination]]
name = "d"
address = "127.0.0.1:1"
mappings = "{mappings}"
"#,
        azure = sim.azure_section("client_secret_file = \"secret\""),
        subs = if source == "azure_activity" {
            sim.config().subscriptions_line()
        } else {
            String::new()
        },
        mappings = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/arcsight"),
        overlap = overlap,
    );
    let path = dir.join("siemcast.toml");
    std::fs::write(&path, &text).unwrap();
    Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn open_spool(dir: &Path) -> Arc<Spool> {
    Arc::new(Spool::open(&dir.join("spool"), SpoolOptions::default()).unwrap())
}

/// Runs the configured source until `done` says so (or the deadline), then stops it; returns
/// how many events it spooled.
async fn run_until(
    cfg: &Config,
    spool: &Arc<Spool>,
    deadline: Duration,
    done: impl Fn(u64) -> bool,
) -> u64 {
    let stats = run_with_stats(cfg, spool, deadline, done).await;
    stats.spooled.load(Ordering::Relaxed)
}

/// [`run_until`], returning the source's statistics.
async fn run_with_stats(
    cfg: &Config,
    spool: &Arc<Spool>,
    deadline: Duration,
    done: impl Fn(u64) -> bool,
) -> Arc<SourceStats> {
    run_while(cfg, spool, deadline, |s| {
        !done(s.spooled.load(Ordering::Relaxed))
    })
    .await
}

/// Runs the configured source while `going` says so (and the deadline has not passed).
async fn run_while(
    cfg: &Config,
    spool: &Arc<Spool>,
    deadline: Duration,
    going: impl Fn(&SourceStats) -> bool,
) -> Arc<SourceStats> {
    let source = Source::from_config(&cfg.sources[0], cfg).unwrap();
    let ctx = SourceContext {
        spool: spool.clone(),
        cancel: CancellationToken::new(),
        stats: Arc::new(SourceStats::default()),
    };
    let (cancel, stats) = (ctx.cancel.clone(), ctx.stats.clone());
    let task = tokio::spawn(source.run(ctx));
    let start = Instant::now();
    while going(&stats) && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    stats
}

fn spooled_events(spool: &Spool) -> Vec<Event> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let mut recs = Vec::new();
        let next = spool.read(from, 10_000, 64 << 20, &mut recs).unwrap();
        out.extend(recs.iter().map(|r| Event::decode(&r.payload).unwrap()));
        if next == from {
            return out;
        }
        from = next;
    }
}

/// How often each id was spooled, read without holding every event.
fn spooled_counts(spool: &Spool) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    let mut from = 0;
    loop {
        let mut recs = Vec::new();
        let next = spool.read(from, 10_000, 64 << 20, &mut recs).unwrap();
        for r in &recs {
            *m.entry(Event::decode(&r.payload).unwrap().id).or_insert(0) += 1;
        }
        if next == from {
            return m;
        }
        from = next;
    }
}

fn counts(events: &[Event]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        *m.entry(e.id.clone()).or_insert(0) += 1;
    }
    m
}

fn assert_faults_seen_and_retry_after_honoured(sim: &Simulator, service: Service) {
    let log: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == service)
        .collect();
    let status = |c: u16| log.iter().filter(|r| r.status == c).count();
    eprintln!(
        "{service:?}: {} requests: {} ok, {} x 401, {} x 429, {} x 503; {} tokens issued",
        log.len(),
        status(200),
        status(401),
        status(429),
        status(503),
        sim.tokens_issued()
    );
    let early: Vec<_> = log.iter().filter(|r| r.early).collect();
    assert!(early.is_empty(), "requests before Retry-After: {early:#?}");
    for status in [401, 429, 503] {
        assert!(
            log.iter().any(|r| r.status == status),
            "no {status} was served"
        );
    }
    assert!(sim.tokens_issued() >= 2, "the token was never refreshed");
    assert_eq!(sim.malformed_pages_served(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_spools_every_record_once_through_faults_and_a_restart() {
    let sim = Simulator::start(faulty_sim_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "azure_activity");
    let expected: Vec<String> = sim
        .activity_records()
        .iter()
        .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 480);
    let spool = open_spool(dir.path());
    let first = run_until(&cfg, &spool, Duration::from_secs(30), |n| n >= 150).await;
    assert!(first < 480, "stopped too late ({first})");
    eprintln!("activity: {first} of 480 spooled before the restart");
    drop(spool);
    // The cancelled run may not have read an answer's Retry-After (the request was in flight).
    sim.forget_retry_after();
    // A restart: the spool is reopened from disk and the source resumes from its checkpoint.
    let spool = open_spool(dir.path());
    let all_visible = sim.last_visible_ms();
    run_until(&cfg, &spool, Duration::from_secs(60), |n| {
        first + n >= 480 && jiff::Timestamp::now().as_millisecond() > all_visible + 2_000
    })
    .await;
    let got = counts(&spooled_events(&spool));
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !got.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {} ids: {missing:?}",
        missing.len()
    );
    assert_eq!(got.len(), expected.len());
    assert_faults_seen_and_retry_after_honoured(&sim, Service::Management);
}

/// A window of many pages writes a full checkpoint and then only each page's new ids (spool
/// checkpoint deltas), not the whole growing seen set with every page; a restart in the middle
/// of the window resumes from the chain, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_window_checkpoints_by_deltas_and_resumes_from_them() {
    let mut sc = SimConfig::around_now(Duration::from_secs(12), Duration::ZERO, 2000);
    sc.page_size = 20;
    sc.faults = Faults::default();
    let sim = Simulator::start(sc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "azure_activity");
    let expected = sim.activity_records().len();
    let spool = open_spool(dir.path());
    let first = run_until(&cfg, &spool, Duration::from_secs(30), |n| n >= 600).await;
    assert!(first < expected as u64, "stopped too late ({first})");
    let chain = spool.checkpoint_chain("src").expect("a checkpoint chain");
    assert!(
        chain.len() > 10,
        "pages after the first are deltas: {} parts",
        chain.len()
    );
    let full = chain[0].len();
    let deltas: usize = chain[1..].iter().map(Vec::len).sum();
    // Each delta holds one page's ids, not the set so far.
    let biggest = chain[1..].iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        biggest < 20 * 200,
        "a delta of {biggest} bytes for a 20-record page"
    );
    let ck =
        crate::sources::checkpoint::Checkpoint::decode_chain(&chain).expect("the chain decodes");
    let seen: usize = ck.scopes.values().map(|s| s.seen.len()).sum();
    assert!(seen as u64 >= first, "{seen} ids seen, {first} spooled");
    eprintln!(
        "{first} of {expected} spooled; chain: {} bytes full + {deltas} bytes in {} deltas",
        full,
        chain.len() - 1
    );
    drop(spool);
    let spool = open_spool(dir.path());
    run_until(&cfg, &spool, Duration::from_secs(60), |n| {
        first + n >= expected as u64
    })
    .await;
    let got = counts(&spooled_events(&spool));
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    assert_eq!(got.len(), expected);
}

/// Sign-ins in the big-window test: more than the 200,000 ids the seen-id set once held.
/// `SIEMCAST_TEST_BIG_WINDOW` sets another count (a measurement run).
fn big_window() -> usize {
    std::env::var("SIEMCAST_TEST_BIG_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000)
}

/// One window of more sign-ins than the seen-id set once held (it dropped the oldest ids past
/// 200,000, and each poll sent them again), all inside the overlap so every poll reads them
/// all again: each id is spooled exactly once through a stop in the middle of the window, a
/// restart from the spooled checkpoint and two more polls of the whole window; the checkpoint
/// remembers every id, and the next windows are narrowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_more_than_200k_ids_is_spooled_exactly_once() {
    let n = big_window();
    let mut sc = SimConfig::around_now(Duration::from_secs(20), Duration::ZERO, 0);
    sc.signins.count = n;
    sc.bulk = true;
    sc.page_size = 1000;
    let sim = Simulator::start(sc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(&sim, dir.path(), "entra_signins", "10m");
    let spool = open_spool(dir.path());
    let started = Instant::now();
    let deadline = Duration::from_secs(900);
    let first = run_until(&cfg, &spool, deadline, |k| k >= n as u64 * 2 / 5).await;
    assert!(first < n as u64, "stopped too late ({first})");
    drop(spool);
    let spool = open_spool(dir.path());
    let all_visible = sim.last_visible_ms();
    // The rest of the window, then two more polls that read every sign-in again.
    let stats = run_while(&cfg, &spool, deadline, |s| {
        first + s.spooled.load(Ordering::Relaxed) < n as u64
            || s.polled.load(Ordering::Relaxed) < 3 * n as u64
            || jiff::Timestamp::now().as_millisecond() < all_visible + 2_000
    })
    .await;
    let polled = stats.polled.load(Ordering::Relaxed);
    eprintln!(
        "{n} sign-ins: {first} spooled before the stop; after it {} more, {polled} read; {:.1?}",
        stats.spooled.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(polled >= 3 * n as u64, "only {polled} records read");
    let got = spooled_counts(&spool);
    let dups: Vec<_> = got.iter().filter(|(_, k)| **k > 1).collect();
    assert!(
        dups.is_empty(),
        "{} ids spooled more than once, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(3)]
    );
    let expected = sim.signin_ids();
    let missing = expected.iter().filter(|id| !got.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {n} ids never spooled");
    assert_eq!(got.len(), n);
    let chain = spool.checkpoint_chain("src").expect("a checkpoint chain");
    let sizes: Vec<usize> = chain.iter().map(Vec::len).collect();
    let ck =
        crate::sources::checkpoint::Checkpoint::decode_chain(&chain).expect("the chain decodes");
    assert!(ck.ids() >= n, "{} ids remembered of {n}", ck.ids());
    let state = ck.scopes.values().next().expect("the tenant's state");
    assert!(
        state
            .span_ms
            .is_some_and(|s| s < crate::sources::poll::INITIAL_SPAN_MS),
        "windows narrowed after one of {n} records: {:?}",
        state.span_ms
    );
    eprintln!(
        "checkpoint chain: whole {} bytes + {} bytes in {} deltas ({:.1} bytes per id)",
        sizes[0],
        sizes[1..].iter().sum::<usize>(),
        sizes.len() - 1,
        sizes[0] as f64 / n as f64
    );
}

/// A spool written by the previous version (checkpoint version 1: the seen ids as strings) is
/// resumed: the ids it remembered are not spooled again though the first window reads them
/// again, everything after its cursor is spooled once, and the checkpoint is version 2 from then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_checkpoint_is_resumed_without_repeats() {
    let mut sc = SimConfig::around_now(Duration::from_secs(12), Duration::ZERO, 300);
    sc.page_size = 40;
    let sim = Simulator::start(sc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "azure_activity");
    let mut records: Vec<(String, i64)> = sim
        .activity_records()
        .iter()
        .map(|r| {
            let time = crate::event::parse_time_ms(r["eventTimestamp"].as_str().unwrap());
            (r["eventDataId"].as_str().unwrap().to_owned(), time.unwrap())
        })
        .collect();
    records.sort_by_key(|r| r.1);
    // What the previous version had read: everything before the middle record's time.
    let cursor = records[records.len() / 2].1;
    let (before, after): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.1 < cursor);
    let seen: serde_json::Map<String, serde_json::Value> = before
        .iter()
        .map(|(id, t)| (id.clone(), serde_json::Value::from(*t)))
        .collect();
    let v1 = serde_json::json!({"version": 1, "scopes": {sim.config().subscriptions[0].clone(): {
        "since_ms": records[0].1 - 5_000, "cursor_ms": cursor, "seen": seen}}});
    let spool = open_spool(dir.path());
    spool
        .append_batch("src", &[], &serde_json::to_vec(&v1).unwrap())
        .unwrap();
    let all_visible = sim.last_visible_ms();
    run_until(&cfg, &spool, Duration::from_secs(60), |n| {
        n >= after.len() as u64 && jiff::Timestamp::now().as_millisecond() > all_visible + 2_000
    })
    .await;
    let got = counts(&spooled_events(&spool));
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    let again: Vec<_> = before.iter().filter(|r| got.contains_key(&r.0)).collect();
    assert!(
        again.is_empty(),
        "{} ids the old checkpoint remembered were spooled again",
        again.len()
    );
    let expected: BTreeSet<&String> = after.iter().map(|r| &r.0).collect();
    assert_eq!(got.keys().collect::<BTreeSet<_>>(), expected);
    let chain = spool.checkpoint_chain("src").unwrap();
    let whole: serde_json::Value = serde_json::from_slice(&chain[0]).unwrap();
    assert_eq!(whole["version"], 2, "rewritten in this version");
    let ck = crate::sources::checkpoint::Checkpoint::decode_chain(&chain).unwrap();
    assert!(ck.scopes.values().all(|s| s.cursor_ms > cursor));
}

/// A record no JSON parser may read (a lone surrogate escape in one of its strings) is skipped
/// alone and counted as rejected: the rest of its page is spooled, and the page is not taken for
/// a malformed answer to be fetched again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_valid_json_is_skipped_alone() {
    let mut sc = SimConfig::around_now(Duration::from_secs(12), Duration::ZERO, 300);
    sc.page_size = 25;
    sc.faults = Faults {
        broken_records_every: Some(7),
        ..Faults::default()
    };
    let faults = sc.faults.clone();
    let sim = Simulator::start(sc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "azure_activity");
    let (broken, expected): (Vec<String>, Vec<String>) = sim
        .activity_records()
        .iter()
        .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
        .partition(|id| faults.breaks(id));
    assert!(
        broken.len() > 10 && expected.len() > 200,
        "{} broken of {}",
        broken.len(),
        broken.len() + expected.len()
    );
    let spool = open_spool(dir.path());
    let all_visible = sim.last_visible_ms();
    let stats = run_with_stats(&cfg, &spool, Duration::from_secs(60), |n| {
        n >= expected.len() as u64 && jiff::Timestamp::now().as_millisecond() > all_visible + 2_000
    })
    .await;
    let got = counts(&spooled_events(&spool));
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    let got: BTreeSet<&String> = got.keys().collect();
    assert_eq!(got, expected.iter().collect::<BTreeSet<_>>());
    let rejected = stats.rejected.load(Ordering::Relaxed);
    assert!(
        rejected >= broken.len() as u64,
        "{rejected} rejected, {} broken",
        broken.len()
    );
    assert_eq!(stats.api_malformed.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_alerts_spool_each_version_once_and_every_final_state() {
    let sim = Simulator::start(faulty_sim_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "graph_alerts");
    let spool = open_spool(dir.path());
    let first = run_until(&cfg, &spool, Duration::from_secs(30), |n| n >= 40).await;
    drop(spool);
    // The cancelled run may not have read an answer's Retry-After (the request was in flight).
    sim.forget_retry_after();
    let spool = open_spool(dir.path());
    let all_visible = sim.last_visible_ms();
    let finals: Vec<String> = sim
        .final_alerts()
        .iter()
        .map(|a| {
            format!(
                "{}@{}",
                a["id"].as_str().unwrap(),
                a["lastUpdateDateTime"].as_str().unwrap()
            )
        })
        .collect();
    let versions: std::collections::BTreeSet<String> = sim
        .alert_versions()
        .iter()
        .map(|a| {
            format!(
                "{}@{}",
                a["id"].as_str().unwrap(),
                a["lastUpdateDateTime"].as_str().unwrap()
            )
        })
        .collect();
    run_until(&cfg, &spool, Duration::from_secs(60), |_| {
        jiff::Timestamp::now().as_millisecond() > all_visible + 2_000
    })
    .await;
    let events = spooled_events(&spool);
    assert!(first > 0);
    let got = counts(&events);
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    let missing: Vec<_> = finals.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(missing.is_empty(), "final states missing: {missing:?}");
    let unknown: Vec<_> = got.keys().filter(|k| !versions.contains(*k)).collect();
    assert!(unknown.is_empty(), "not a version the API had: {unknown:?}");
    // The Prefer header brings the evolvable enum members.
    assert!(events
        .iter()
        .all(|e| !String::from_utf8_lossy(&e.json).contains("unknownFutureValue")));
    assert_faults_seen_and_retry_after_honoured(&sim, Service::Graph);
}

#[tokio::test]
async fn a_wrong_secret_is_explained_without_showing_it() {
    let sim = Simulator::start(SimConfig::around_now(
        Duration::from_secs(5),
        Duration::ZERO,
        3,
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "graph_alerts");
    let good =
        crate::sources::azure::auth::Credentials::from_config(&cfg.azure, |p| cfg.resolve(p))
            .unwrap();
    let creds = crate::sources::azure::auth::Credentials {
        method: crate::sources::azure::auth::AuthMethod::Secret(crate::config::Secret::new(
            "wrong-secret-value-123",
        )),
        ..good.clone()
    };
    let tokens = crate::sources::azure::auth::TokenCache::default();
    let login = sim.endpoint(Service::Login);
    let scope = format!("{}/.default", sim.endpoint(Service::Graph));
    let err = tokens
        .token(
            &crate::sources::azure::client::client(),
            &login,
            &creds,
            &scope,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(
        err.contains("check the secret in client_secret_file"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret-value-123"), "{err}");
    // A scope for another resource is refused by the token endpoint.
    let err = tokens
        .token(
            &crate::sources::azure::client::client(),
            &login,
            &good,
            "https://example.com/.default",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS70011"), "{err}");
    assert!(tokens
        .token(
            &crate::sources::azure::client::client(),
            &login,
            &good,
            &scope
        )
        .await
        .is_ok());
}
