//! Hostile API answers against the HTTP client, the token cache, a poller and the spool append
//! path, in process: an absurd `Retry-After` neither panics nor holds a host for more than the
//! cap, an answer over `max_answer_bytes` (plain or gzip) is refused once with an error naming
//! the key, an absurd `expires_in` is capped, and one event never stops a page from being
//! spooled.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, EventKind};
use crate::simulator::{Faults, Service, SimConfig, Simulator};
use crate::sources::azure::http::{self, ApiClient, FetchError};
use crate::sources::{append_page, Source, SourceContext, SourceStats};
use crate::spool::{Spool, SpoolOptions};

const MIB: usize = 1 << 20;

fn client(sim: &Simulator, max_answer_bytes: u64) -> ApiClient {
    ApiClient {
        max_answer_bytes,
        ..ApiClient::for_simulator(sim, Service::Management, "hostile")
    }
}

/// The first page of the simulator's activity log for its first subscription, over the last
/// minute.
fn activity_url(sim: &Simulator) -> String {
    let now = crate::simulator::now_ms();
    let e = crate::sources::azure::auth::Endpoints {
        login: String::new(),
        management: sim.endpoint(Service::Management),
        graph: String::new(),
        office: String::new(),
    };
    (crate::sources::azure_activity::API.first_url)(
        &e,
        &sim.config().subscriptions[0],
        now - 60_000,
        now,
    )
}

#[test]
fn retry_after_is_capped_at_fifteen_minutes_in_seconds_and_dates() {
    let mut h = reqwest::header::HeaderMap::new();
    let centuries = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8_000_000);
    let date = centuries.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    for text in ["18446744073709551615", "999999999", &date] {
        h.insert("retry-after", text.parse().unwrap());
        let asked = http::retry_after(&h).unwrap();
        assert!(asked > http::MAX_RETRY_AFTER, "{text}: {asked:?}");
        assert_eq!(
            http::capped_retry_after(asked),
            Duration::from_secs(900),
            "{text}"
        );
    }
    h.insert("retry-after", "7".parse().unwrap());
    let asked = http::retry_after(&h).unwrap();
    assert_eq!(http::capped_retry_after(asked), Duration::from_secs(7));
    // Time arithmetic on what the network said saturates.
    let now = tokio::time::Instant::now();
    assert!(crate::sources::azure::client::later(now, Duration::MAX) > now);
    assert_eq!(
        crate::sources::azure::client::later(now, Duration::from_secs(3)),
        now + Duration::from_secs(3)
    );
}

/// `Retry-After: 18446744073709551615` on a 429: the request task neither panics (before: an
/// `Instant + Duration` overflow) nor sends anything more to the host while it waits, and it
/// stops when cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_neither_panics_nor_lets_requests_through() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(30), Duration::ZERO, 10);
    cfg.faults = Faults {
        throttle_every: Some(1),
        retry_after_secs: u64::MAX,
        ..Faults::default()
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let c = client(
        &sim,
        crate::sources::azure::client::DEFAULT_MAX_ANSWER_BYTES,
    );
    c.stats.freshness.started(Some(Duration::from_secs(1)));
    let cancel = CancellationToken::new();
    let url = activity_url(&sim);
    let task = tokio::spawn({
        let (c, cancel) = (c.clone(), cancel.clone());
        async move { c.get_listing(&url, None, &cancel).await.map(|_| ()) }
    });
    let start = Instant::now();
    while !sim.requests().iter().any(|r| r.status == 429) {
        assert!(start.elapsed() < Duration::from_secs(10), "no 429 served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!task.is_finished(), "the request ended: {:?}", task.await);
    let api: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == Service::Management)
        .collect();
    assert_eq!(api.len(), 1, "requests during the wait: {api:?}");
    cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(
        matches!(ended, Ok(Ok(Err(FetchError::Cancelled)))),
        "{ended:?}"
    );
    assert_eq!(c.stats.api_throttled.load(Ordering::Relaxed), 1);
    let reason = c.stats.freshness.overdue(
        "hostile",
        crate::simulator::now_ms() + 3_600_000,
        Duration::ZERO,
    );
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("Retry-After")),
        "{reason:?}"
    );
}

/// An answer over `max_answer_bytes` is refused once (not fetched again and again within the
/// request), with an error that names the key: plain, and gzip-encoded (a bomb whose inflated
/// size is over the cap, however small it is on the wire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_max_answer_bytes_is_refused_once_with_the_key_named() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(30), Duration::ZERO, 40);
    cfg.page_size = 20;
    cfg.faults = Faults {
        bloated_records_every: Some(1),
        bloated_record_bytes: 200 << 10,
        gzip_bombs: 1,
        gzip_bomb_bytes: 64 << 20,
        ..Faults::default()
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let cancel = CancellationToken::new();
    // 20 records of 200 KiB: 4 MiB, over a 2 MiB cap.
    let small = client(&sim, 2 << 20);
    let url = activity_url(&sim);
    let err = small.get_listing(&url, None, &cancel).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("larger than 2097152 bytes") && text.contains("[azure] max_answer_bytes"),
        "{text}"
    );
    assert_eq!(
        sim.requests().len() - 1,
        1,
        "one token request, one API request"
    );
    assert_eq!(small.stats.api_errors.load(Ordering::Relaxed), 1);
    // Under the default cap the page is read; its continuation is a bomb of 64 MiB inflated,
    // refused at a 16 MiB cap.
    let page = client(
        &sim,
        crate::sources::azure::client::DEFAULT_MAX_ANSWER_BYTES,
    )
    .get_listing(&url, None, &cancel)
    .await
    .unwrap();
    let next = page.body.string("nextLink").unwrap().to_owned();
    let bombed = client(&sim, 16 << 20);
    let err = bombed.get_listing(&next, None, &cancel).await.unwrap_err();
    assert!(
        err.to_string().contains("larger than 16777216 bytes"),
        "{err}"
    );
    assert_eq!(sim.gzip_bombs_served(), 1);
}

/// A config reading the simulator's activity log (first subscription) into a spool.
fn activity_config(sim: &Simulator, dir: &std::path::Path) -> Config {
    std::fs::write(dir.join("secret"), &sim.config().client_secret).unwrap();
    let text = format!(
        r#"state_dir = "state"
[metrics]
address = ""
{azure}
[[source]]
name = "src"
kind = "azure_activity"
subscriptions = ["{sub}"]
interval = "300ms"
overlap = "12s"
settle_delay = "500ms"
start_at = "30s"

[[destination]]
name = "d"
address = "127.0.0.1:1"
mappings = "{mappings}"
"#,
        azure = sim.azure_section("client_secret_file = \"secret\""),
        sub = sim.config().subscriptions[0],
        mappings = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/arcsight"),
    );
    let path = dir.join("siemcast.toml");
    std::fs::write(&path, &text).unwrap();
    Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn spooled_ids(spool: &Spool) -> Vec<String> {
    let (mut out, mut from) = (Vec::new(), 0);
    loop {
        let mut recs = Vec::new();
        let next = spool.read(from, 10_000, 256 << 20, &mut recs).unwrap();
        out.extend(recs.iter().map(|r| Event::decode(&r.payload).unwrap().id));
        if next == from {
            return out;
        }
        from = next;
    }
}

/// Token answers saying `expires_in: 18446744073709551615` (before: an `Instant` overflow
/// panic in the source's task) while the tokens really expire after 2 s: the lifetime is
/// capped, the API's 401 replaces the token, and every record is spooled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_expires_in_is_capped_and_the_source_goes_on() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(12), Duration::from_secs(4), 120);
    cfg.page_size = 20;
    cfg.token_lifetime = Duration::from_secs(2);
    cfg.faults = Faults {
        token_expires_in: Some(u64::MAX),
        ..Faults::default()
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = activity_config(&sim, dir.path());
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), SpoolOptions::default()).unwrap());
    let source = Source::from_config(&cfg.sources[0], &cfg).unwrap();
    let ctx = SourceContext {
        spool: spool.clone(),
        cancel: CancellationToken::new(),
        stats: Arc::new(SourceStats::default()),
    };
    let (cancel, stats) = (ctx.cancel.clone(), ctx.stats.clone());
    let task = tokio::spawn(source.run(ctx));
    let expected = sim.activity_records().len() as u64;
    let all_visible = sim.last_visible_ms();
    let start = Instant::now();
    while !(stats.spooled.load(Ordering::Relaxed) >= expected
        && crate::simulator::now_ms() > all_visible + 3_000)
    {
        assert!(!task.is_finished(), "the source ended: {:?}", task.await);
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {expected} spooled",
            stats.spooled.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    let mut ids = spooled_ids(&spool);
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((n, ids.len() as u64), (ids.len(), expected), "once each");
    let unauthorized = sim.requests().iter().filter(|r| r.status == 401).count();
    assert!(
        sim.tokens_issued() >= 2 && unauthorized >= 1,
        "{} tokens, {unauthorized} x 401",
        sim.tokens_issued()
    );
}

fn event(id: &str, bytes: usize) -> Event {
    let pad = "p".repeat(bytes);
    Event::from_json(
        EventKind::AzureActivity,
        "s",
        &serde_json::json!({"eventDataId": id, "eventTimestamp": "2026-11-01T10:00:00Z", "pad": pad}),
    )
}

/// A page no spool batch can hold, with one event no spool can hold and one over the event
/// size limit: the two are rejected alone (counted), the others are spooled in parts, the
/// page's checkpoint comes last (before: the spool refused the batch and the source stopped
/// with an error, which ends `siemcast run`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_never_stops_a_page_from_being_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        max_bytes: 8 << 20,
        ..SpoolOptions::default()
    };
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), opts).unwrap());
    // A destination that keeps reading and acknowledging, so space comes back.
    let consumer = {
        let spool = spool.clone();
        let mut from = spool.open_cursor("d").unwrap();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                let mut recs = Vec::new();
                let next = spool.read(from, 1_000, 64 << 20, &mut recs).unwrap();
                ids.extend(recs.iter().map(|r| Event::decode(&r.payload).unwrap().id));
                if next > from {
                    spool.ack("d", next).unwrap();
                    spool.flush_cursors().unwrap();
                    from = next;
                }
                if spool.checkpoint("s").as_deref() == Some(b"ck1") && next == spool.next_seq() {
                    return ids;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the page was not spooled in 60 s; read {ids:?}");
        })
    };
    let ctx = SourceContext {
        spool: spool.clone(),
        cancel: CancellationToken::new(),
        stats: Arc::new(SourceStats::default()),
    };
    assert!(
        append_page(&ctx, "s", &[event("first", 10)], b"ck0".to_vec())
            .await
            .unwrap()
    );
    let mut page: Vec<Event> = (0..10)
        .map(|i| event(&format!("e{i}"), 3 * MIB / 2))
        .collect();
    page.insert(4, event("too-big-for-the-spool", 9 * MIB));
    page.insert(
        8,
        event("over-the-event-limit", crate::event::MAX_EVENT_BYTES + 1),
    );
    let appended = tokio::time::timeout(
        Duration::from_secs(60),
        append_page(&ctx, "s", &page, b"ck1".to_vec()),
    )
    .await
    .expect("appended within 60 s");
    assert!(appended.unwrap());
    let ids = consumer.await.unwrap();
    let mut want = vec!["first".to_owned()];
    want.extend((0..10).map(|i| format!("e{i}")));
    assert_eq!(ids, want);
    assert_eq!(ctx.stats.spooled.load(Ordering::Relaxed), 11);
    assert_eq!(ctx.stats.rejected.load(Ordering::Relaxed), 2);
    assert_eq!(spool.checkpoint("s").as_deref(), Some(&b"ck1"[..]));
}
