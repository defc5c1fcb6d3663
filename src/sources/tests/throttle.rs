//! Throttling against the simulator's request log: the governor keeps two sources of one API
//! family, together, under the family's rate; no request goes out before a `Retry-After` the
//! server gave has passed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RateText;
use crate::simulator::{Faults, RequestRecord, Service, SimConfig, Simulator};
use crate::sources::azure::auth::TokenCache;
use crate::sources::azure::http::ApiClient;
use crate::sources::azure::limits::{ApiFamily, Limit, Limiters};

fn client(sim: &Simulator, source: &str, limit: Option<Limit>) -> ApiClient {
    ApiClient {
        tokens: TokenCache::shared(),
        limit,
        ..ApiClient::for_simulator(sim, Service::Graph, source)
    }
}

/// `n` GETs of the audit log by each of `clients` at once; returns the Graph requests logged.
async fn hammer(sim: &Simulator, clients: Vec<ApiClient>, n: usize) -> Vec<RequestRecord> {
    let url = format!(
        "{}/v1.0/auditLogs/directoryAudits?$top=2",
        sim.endpoint(Service::Graph)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        let url = url.clone();
        tasks.spawn(async move {
            for _ in 0..n {
                c.get(&url, &CancellationToken::new()).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let mut log: Vec<RequestRecord> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == Service::Graph)
        .collect();
    log.sort_by_key(|r| r.at_ms);
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_governor_keeps_a_family_under_its_rate_across_sources() {
    let sim = Simulator::start(SimConfig::around_now(
        Duration::from_secs(60),
        Duration::ZERO,
        20,
    ))
    .await
    .unwrap();
    // A test-sized budget: a burst of 4, then one request every 250 ms.
    let rate = RateText {
        burst: 4,
        period: Duration::from_secs(1),
    };
    let limiters = Arc::new(Limiters::default());
    let limit = Limit {
        family: ApiFamily::EntraReports,
        rate,
        principal: "tenant/app".into(),
        limiters,
    };
    let clients = vec![
        client(&sim, "audit", Some(limit.clone())),
        client(&sim, "signins", Some(limit)),
    ];
    let log = hammer(&sim, clients, 8).await;
    assert_eq!(log.len(), 16);
    let times: Vec<i64> = log.iter().map(|r| r.at_ms).collect();
    // GCRA: within any second at most the burst plus one second's refill (+1 for arrival jitter).
    for (i, t) in times.iter().enumerate() {
        let within = times[i..].iter().filter(|u| **u < t + 1_000).count();
        assert!(
            within <= 4 + 4 + 1,
            "{within} requests within 1 s from {t}: {times:?}"
        );
    }
    // 12 requests past the burst at 4/s take at least 3 s (less a little timer slack).
    let span = times.last().unwrap() - times.first().unwrap();
    assert!(span >= 2_900, "16 requests in {span} ms: {times:?}");

    // The control: without the governor the same load goes out at once.
    let sim2 = Simulator::start(SimConfig::around_now(
        Duration::from_secs(60),
        Duration::ZERO,
        20,
    ))
    .await
    .unwrap();
    let log = hammer(
        &sim2,
        vec![client(&sim2, "a", None), client(&sim2, "b", None)],
        8,
    )
    .await;
    let span = log.last().unwrap().at_ms - log.first().unwrap().at_ms;
    assert!(span < 2_000, "unlimited took {span} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_goes_out_before_retry_after_has_passed() {
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 20);
    cfg.faults = Faults {
        throttle_every: Some(4),
        retry_after_secs: 1,
        unavailable_every: Some(7),
        ..Faults::default()
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let limit = Limit::for_kind(
        crate::event::EventKind::EntraAudit,
        &crate::config::RateLimitsConfig {
            entra_reports: Some("100/1s".parse().unwrap()),
            ..Default::default()
        },
        "tenant",
        "app",
    )
    .expect("the Entra reports have a budget");
    let clients = vec![
        client(&sim, "a", Some(limit.clone())),
        client(&sim, "b", Some(limit)),
    ];
    let log = hammer(&sim, clients, 6).await;
    let throttled: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.retry_after_secs.is_some())
        .collect();
    assert!(throttled.len() >= 3, "{log:?}");
    assert!(
        log.iter().all(|r| !r.early),
        "a request came early: {log:?}"
    );
    // And each answer after a Retry-After came at least that long after it.
    for t in &throttled {
        let next = log.iter().find(|r| r.at_ms > t.at_ms);
        if let Some(n) = next {
            assert!(n.at_ms - t.at_ms >= 1_000, "{t:?} then {n:?}");
        }
    }
}
