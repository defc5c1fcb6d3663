//! Prometheus `/metrics`, `/healthz` and `/spool` over a small HTTP/1.1 listener (hyper).
//!
//! Everything is rendered at scrape time from the pipeline's own atomic counters and the
//! spool's status, so there is no second copy of any number to drift. The listener binds to
//! `[metrics] address` (loopback by default) and serves only GET/HEAD on those three paths.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Phase, PipelineStats};
use crate::sources::eventhubs::PartitionCounters;
use crate::sources::SourceStats;
use crate::spool::{Spool, SpoolStats, SpoolStatus};

/// Connections kept open at once. At the limit a new connection closes the one quiet the
/// longest (never one whose request is being answered), so clients that hold connections open
/// without asking anything cannot lock out a scrape or a health check.
const MAX_CONNECTIONS: usize = 64;
/// A client must send a whole request head within this time after it connects or after its
/// last answer (hyper's header read timeout, which thus also bounds idle keep-alive).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one warning about the connection limit per this time.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// What the listener reports on.
#[derive(Debug, Clone)]
pub struct MetricsState {
    pub stats: PipelineStats,
    pub spool: Arc<Spool>,
    /// When the process started, for `siemcast_start_time_seconds`.
    pub started: SystemTime,
    /// `[metrics] poll_grace`: how late past its interval a source's last good poll may be.
    pub poll_grace: Duration,
}

/// Binds the metrics listener. The error says what to change.
pub async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = address.parse().map_err(|_| {
        anyhow::anyhow!(
            "metrics: address \"{address}\" is not an IP:port like 127.0.0.1:9464; fix [metrics] address (\"\" turns the listener off)"
        )
    })?;
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "metrics: cannot listen on {addr}: {e}; choose a free port in [metrics] address, or set it to \"\" to turn the listener off"
        )
    })
}

/// Serves `/metrics`, `/healthz` and `/spool` until `cancel`.
/// `state` is re-read for every request, so a reload shows its new pipeline at once.
pub async fn serve(
    listener: TcpListener,
    state: watch::Receiver<MetricsState>,
    cancel: CancellationToken,
) {
    let table = Arc::new(Mutex::new(Connections::new(MAX_CONNECTIONS)));
    let mut next_id = 0u64;
    let mut warned: Option<Instant> = None;
    let (mut replaced, mut refused) = (0u64, 0u64);
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(message = "Metrics listener cannot accept a connection.", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let id = next_id;
        next_id += 1;
        let close = CancellationToken::new();
        match lock(&table).admit(id, close.clone()) {
            Admission::Admitted => {}
            Admission::Replaced => replaced += 1,
            Admission::Refused => refused += 1,
        }
        if replaced + refused > 0 && warned.is_none_or(|t| t.elapsed() >= LIMIT_WARNING_EVERY) {
            tracing::warn!(
                message = "Metrics listener is at its connection limit; closing the connections idle the longest.",
                limit = MAX_CONNECTIONS,
                closed = replaced,
                refused,
                hint = "something holds connections open without sending requests; counts are since the last such line",
            );
            warned = Some(Instant::now());
            (replaced, refused) = (0, 0);
        }
        if close.is_cancelled() {
            // Refused: every connection is answering a request. Dropping the stream closes it.
            continue;
        }
        let (state, cancel, table) = (state.clone(), cancel.clone(), table.clone());
        tokio::spawn(async move {
            let _slot = Slot {
                table: table.clone(),
                id,
            };
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::new(state.borrow().clone());
                let table = table.clone();
                async move {
                    lock(&table).touch(id, true);
                    let response = handle(&req, &state).await;
                    lock(&table).touch(id, false);
                    Ok::<_, Infallible>(response)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Replaced by a newer connection: dropping it closes the socket.
                _ = close.cancelled() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}

fn lock(table: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// The listener's open connections, to choose which one a new connection replaces.
struct Connections {
    limit: usize,
    /// Orders activity: a higher tick is more recent.
    clock: u64,
    open: HashMap<u64, Activity>,
}

struct Activity {
    /// `clock` when the connection opened, or last started or finished a request.
    last: u64,
    /// A request is being answered.
    busy: bool,
    close: CancellationToken,
}

#[derive(Debug, PartialEq, Eq)]
enum Admission {
    Admitted,
    /// Admitted in place of the connection quiet the longest, which was told to close.
    Replaced,
    /// Every connection is answering a request: the new one is closed (`close` cancelled).
    Refused,
}

impl Connections {
    fn new(limit: usize) -> Connections {
        Connections {
            limit,
            clock: 0,
            open: HashMap::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Registers connection `id`; at the limit, closes the connection that has been quiet the
    /// longest and is not answering a request.
    fn admit(&mut self, id: u64, close: CancellationToken) -> Admission {
        let mut admission = Admission::Admitted;
        if self.open.len() >= self.limit {
            let quietest = self
                .open
                .iter()
                .filter(|(_, a)| !a.busy)
                .min_by_key(|(_, a)| a.last)
                .map(|(id, _)| *id);
            match quietest.and_then(|q| self.open.remove(&q)) {
                Some(old) => {
                    old.close.cancel();
                    admission = Admission::Replaced;
                }
                None => {
                    close.cancel();
                    return Admission::Refused;
                }
            }
        }
        let last = self.tick();
        self.open.insert(
            id,
            Activity {
                last,
                busy: false,
                close,
            },
        );
        admission
    }

    /// Connection `id` starts (`busy`) or finishes answering a request.
    fn touch(&mut self, id: u64, busy: bool) {
        let last = self.tick();
        if let Some(a) = self.open.get_mut(&id) {
            a.last = last;
            a.busy = busy;
        }
    }
}

/// A connection's place in [`Connections`], given up when its task ends however it ends.
struct Slot {
    table: Arc<Mutex<Connections>>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.table).open.remove(&self.id);
    }
}

async fn handle(req: &Request<Incoming>, state: &Arc<MetricsState>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD are served\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let body = snapshot(state).await.map(|(status, spool_stats)| {
                render(&state.stats, &status, &spool_stats, state.started)
            });
            match body {
                Some(body) => reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body,
                ),
                None => internal_error(),
            }
        }
        "/healthz" => match health(
            &state.stats,
            jiff::Timestamp::now().as_millisecond(),
            state.poll_grace,
        ) {
            Ok(()) if state.spool.disk_full().is_none() => {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            }
            result => {
                let mut reasons = result.err().unwrap_or_default();
                reasons.extend(disk_full_reason(&state.spool));
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    reasons.join("\n") + "\n",
                )
            }
        },
        "/spool" => match snapshot(state).await {
            Some((status, _)) => reply(
                StatusCode::OK,
                "application/json",
                status_json(&status).to_string() + "\n",
            ),
            None => internal_error(),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics, /healthz or /spool\n".into(),
        ),
    }
}

fn internal_error() -> Response<Full<Bytes>> {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain",
        "cannot read the spool status; see the service log\n".into(),
    )
}

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// The `/healthz` reason while sources are paused because the spool's disk is full.
fn disk_full_reason(spool: &Spool) -> Option<String> {
    spool.disk_full().map(|free| {
        format!(
            "spool {}: disk full, {free} bytes free on its file system; sources are paused until there is space (destinations go on delivering)",
            spool.dir().display()
        )
    })
}

/// The spool's status and counters, read off the async threads (it may read segment files).
async fn snapshot(state: &Arc<MetricsState>) -> Option<(SpoolStatus, SpoolStats)> {
    let spool = state.spool.clone();
    tokio::task::spawn_blocking(move || (spool.status(), spool.stats()))
        .await
        .ok()
}

/// `Ok` when the service is doing its job; otherwise every reason it is not, one per line.
///
/// Healthy means: the pipeline has started, every source task is alive, every polling source
/// read its API successfully within its interval plus `poll_grace` (see
/// [`crate::sources::freshness`]; a files source counts while it runs), and every destination
/// is connected to its receiver or draining (a stop or reload lets it finish its batch).
pub fn health(stats: &PipelineStats, now_ms: i64, poll_grace: Duration) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    let draining = match stats.lifecycle.phase() {
        Phase::Starting => {
            reasons.push("starting: the pipeline is not running yet".to_owned());
            false
        }
        Phase::Stopping => true,
        Phase::Running => false,
    };
    for (name, why) in stats.lifecycle.stopped_sources() {
        reasons.push(format!("source \"{name}\" is not running: {why}"));
    }
    for (name, s) in &stats.sources {
        let reason = s.freshness.overdue(name, now_ms, poll_grace);
        reasons.extend(reason.map(|r| match s.tenant.as_deref() {
            Some(t) if t != crate::config::tenants::DEFAULT_TENANT => {
                format!("{r} (tenant \"{t}\")")
            }
            _ => r,
        }));
    }
    for (name, d) in &stats.destinations {
        let problem = d
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(problem) = problem {
            reasons.push(format!("destination \"{name}\": {problem}"));
        } else if !d.connected.load(Ordering::Relaxed) && !draining {
            reasons.push(format!(
                "destination \"{name}\" is not connected to its receiver ({} reconnects so far); see the log for the error",
                d.reconnects.load(Ordering::Relaxed)
            ));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// The spool status as JSON: what `/spool` serves and `siemcast spool status --json` prints.
pub fn status_json(status: &SpoolStatus) -> serde_json::Value {
    let destinations: Vec<serde_json::Value> = status
        .destinations
        .iter()
        .map(|d| {
            serde_json::json!({
                "name": d.name,
                "cursor": d.cursor,
                "queued_records": d.queued_records,
                "queued_bytes": d.queued_bytes,
                "oldest_age_seconds": d.oldest_age.map(|a| a.as_secs_f64()),
            })
        })
        .collect();
    serde_json::json!({
        "dir": status.dir.display().to_string(),
        "destinations": destinations,
        "total_records": status.total_records,
        "total_bytes": status.total_bytes,
        "max_bytes": status.max_bytes,
        "segments": status.segments,
        "next_seq": status.next_seq,
    })
}

/// Writes Prometheus text exposition format (version 0.0.4).
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// One family with one sample per `(label value, value)`.
    fn per<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        rows: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        self.family(name, kind, help);
        for (l, v) in rows {
            self.sample(name, &[(label, l)], v);
        }
    }

    /// One family with one sample per source, labelled `source` and, for the Microsoft API
    /// sources, `tenant` (the `[azure.tenants]` name, `default` for `[azure]`).
    fn per_source(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        sources: &[(String, Arc<SourceStats>)],
        value: impl Fn(&SourceStats) -> f64,
    ) {
        self.family(name, kind, help);
        for (n, s) in sources {
            match s.tenant.as_deref() {
                Some(t) => self.sample(name, &[("source", n), ("tenant", t)], value(s)),
                None => self.sample(name, &[("source", n)], value(s)),
            }
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Picks one counter out of a source's stats.
type SourceCounter = fn(&SourceStats) -> &AtomicU64;
/// Name, type, help and value of one per-partition metric family.
type PartitionFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PartitionCounters) -> Option<f64>,
);

/// Per-partition counters of the streaming (`eventhubs`) sources; nothing when there is none.
fn partition_metrics(x: &mut Exposition, sources: &[(String, Arc<SourceStats>)]) {
    let rows: Vec<(&str, String, PartitionCounters)> = sources
        .iter()
        .flat_map(|(name, s)| {
            s.partitions
                .snapshot()
                .into_iter()
                .map(move |(p, c)| (name.as_str(), p.to_string(), c))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let families: [PartitionFamily; 4] = [
        (
            "siemcast_eventhubs_partition_lag_records",
            "gauge",
            "Records in the partition not yet committed by this group (owned partitions only).",
            |c| c.lag.map(|l| l as f64),
        ),
        (
            "siemcast_eventhubs_partition_records_consumed_total",
            "counter",
            "Records this instance read from the partition and made durable in the spool.",
            |c| Some(c.consumed as f64),
        ),
        (
            "siemcast_eventhubs_partition_commit_errors_total",
            "counter",
            "Offset commits that failed (those records may be delivered again).",
            |c| Some(c.commit_errors as f64),
        ),
        (
            "siemcast_eventhubs_partition_commit_seconds",
            "summary",
            "Time the offset commits after each durable batch took.",
            |_| None,
        ),
    ];
    for (name, kind, help, value) in families {
        x.family(name, kind, help);
        for (source, partition, c) in &rows {
            let labels = [("source", *source), ("partition", partition.as_str())];
            if kind == "summary" {
                x.sample(&format!("{name}_sum"), &labels, c.commit_seconds);
                x.sample(&format!("{name}_count"), &labels, c.commits as f64);
            } else if let Some(v) = value(c) {
                x.sample(name, &labels, v);
            }
        }
    }
}

/// Renders every metric as Prometheus text.
pub fn render(
    stats: &PipelineStats,
    spool: &SpoolStatus,
    spool_stats: &SpoolStats,
    started: SystemTime,
) -> String {
    let mut x = Exposition { out: String::new() };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;

    x.family(
        "siemcast_build_info",
        "gauge",
        "Always 1; the version label says which siemcast is running.",
    );
    x.sample(
        "siemcast_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    x.single(
        "siemcast_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the Unix epoch.",
        started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs() as f64),
    );
    x.single(
        "siemcast_up",
        "gauge",
        "1 while the pipeline runs, 0 while it starts or stops.",
        if stats.lifecycle.phase() == Phase::Running {
            1.0
        } else {
            0.0
        },
    );

    let src = &stats.sources;
    x.per_source(
        "siemcast_source_events_spooled_total",
        "counter",
        "Events a source appended to the durable spool.",
        src,
        |s| load(&s.spooled),
    );
    x.per_source(
        "siemcast_source_events_rejected_total",
        "counter",
        "Items a source could not read as events (bad JSON, not an object).",
        src,
        |s| load(&s.rejected),
    );
    x.per_source(
        "siemcast_source_spool_full_pauses_total",
        "counter",
        "Times a source had to wait because the spool was full.",
        src,
        |s| load(&s.paused),
    );

    let api: [(&str, &str, SourceCounter); 7] = [
        (
            "siemcast_source_events_polled_total",
            "Records a source read: API records before dedupe, file items.",
            |s| &s.polled,
        ),
        (
            "siemcast_source_api_requests_total",
            "API requests a source sent (token requests not counted).",
            |s| &s.api_requests,
        ),
        (
            "siemcast_source_api_throttled_total",
            "API answers asking to slow down: 429, or 503 (service busy).",
            |s| &s.api_throttled,
        ),
        (
            "siemcast_source_api_errors_total",
            "API requests that failed otherwise: transport errors, other error statuses.",
            |s| &s.api_errors,
        ),
        (
            "siemcast_source_api_malformed_answers_total",
            "API answers that were not the page expected (not JSON, no value array).",
            |s| &s.api_malformed,
        ),
        (
            "siemcast_source_token_errors_total",
            "Token requests Entra ID refused or that did not reach it.",
            |s| &s.token_errors,
        ),
        (
            "siemcast_source_links_refused_total",
            "Continuation links, content URIs and redirects to another scheme, host or port than the API's, refused (the token is not sent).",
            |s| &s.links_refused,
        ),
    ];
    for (name, help, field) in api {
        x.per_source(name, "counter", help, src, |s| load(field(s)));
    }
    x.per_source(
        "siemcast_source_last_success_timestamp_seconds",
        "gauge",
        "When a source last read everything it asked for, in seconds since the Unix epoch; 0 before its first success.",
        src,
        |s| s.freshness.last_success_ms().unwrap_or(0) as f64 / 1000.0,
    );
    partition_metrics(&mut x, src);

    let dst = &stats.destinations;
    x.per(
        "siemcast_destination_events_delivered_total",
        "counter",
        "Events the receiver's kernel acknowledged (UDP: sent).",
        "destination",
        dst.iter().map(|(n, d)| (n.as_str(), load(&d.delivered))),
    );
    x.per(
        "siemcast_destination_events_resent_total",
        "counter",
        "Events sent again after a connection error.",
        "destination",
        dst.iter().map(|(n, d)| (n.as_str(), load(&d.resent))),
    );
    x.per(
        "siemcast_destination_events_dead_lettered_total",
        "counter",
        "Events that could not be rendered and went to the dead-letter file.",
        "destination",
        dst.iter()
            .map(|(n, d)| (n.as_str(), load(&d.dead_lettered))),
    );
    x.per(
        "siemcast_destination_events_truncated_total",
        "counter",
        "Messages cut to max_message_bytes.",
        "destination",
        dst.iter().map(|(n, d)| (n.as_str(), load(&d.truncated))),
    );
    let filtered = "siemcast_destination_events_filtered_total";
    x.family(
        filtered,
        "counter",
        "Events a destination did not send by choice, per rule (rule=\"route\": outside its sources/kinds; otherwise the name of the filter rule that dropped or sampled them out); they count as handled.",
    );
    for (n, d) in dst {
        let rule = crate::destinations::route::ROUTE_RULE;
        x.sample(
            filtered,
            &[("destination", n), ("rule", rule)],
            load(&d.routed_out),
        );
        for (rule, count) in d.filtered_by_rule() {
            x.sample(
                filtered,
                &[("destination", n), ("rule", &rule)],
                count as f64,
            );
        }
    }
    x.per(
        "siemcast_destination_reconnects_total",
        "counter",
        "Connections lost and re-established.",
        "destination",
        dst.iter().map(|(n, d)| (n.as_str(), load(&d.reconnects))),
    );
    x.per(
        "siemcast_destination_connected",
        "gauge",
        "1 while connected to the receiver.",
        "destination",
        dst.iter().map(|(n, d)| {
            let c = d.connected.load(Ordering::Relaxed);
            (n.as_str(), if c { 1.0 } else { 0.0 })
        }),
    );

    let hec: Vec<_> = dst
        .iter()
        .filter(|(_, d)| load(&d.hec_requests) > 0.0 || load(&d.hec_ack_polls) > 0.0)
        .collect();
    type Field = fn(&crate::destinations::DestinationStats) -> &AtomicU64;
    let hec_counters: [(&str, &str, Field); 5] = [
        (
            "siemcast_hec_requests_total",
            "HEC event requests sent, retries included.",
            |d| &d.hec_requests,
        ),
        (
            "siemcast_hec_ack_polls_total",
            "HEC acknowledgement polls sent.",
            |d| &d.hec_ack_polls,
        ),
        (
            "siemcast_hec_acks_confirmed_total",
            "HEC ackIds Splunk confirmed (their events indexed).",
            |d| &d.hec_acks_confirmed,
        ),
        (
            "siemcast_hec_ack_timeouts_total",
            "HEC ackIds not confirmed within ack_timeout; their events were sent again (counted in siemcast_destination_events_resent_total).",
            |d| &d.hec_ack_timeouts,
        ),
        (
            "siemcast_hec_acks_pending",
            "HEC ackIds waiting for Splunk's confirmation.",
            |d| &d.hec_acks_pending,
        ),
    ];
    for (name, help, field) in hec_counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        x.per(
            name,
            kind,
            help,
            "destination",
            hec.iter().map(|(n, d)| (n.as_str(), load(field(d)))),
        );
    }
    x.per(
        "siemcast_hec_ack_latency_seconds_sum",
        "counter",
        "Total time from an accepted HEC request to its ackId turning true; divide by siemcast_hec_acks_confirmed_total for the mean.",
        "destination",
        hec.iter()
            .map(|(n, d)| (n.as_str(), load(&d.hec_ack_latency_us) / 1e6)),
    );

    // Per destination known to the spool (a removed destination still pins data until
    // `siemcast spool forget-destination`, so it is listed too).
    let q = &spool.destinations;
    x.per(
        "siemcast_spool_queued_events",
        "gauge",
        "Events in the spool this destination has not delivered yet.",
        "destination",
        q.iter().map(|d| (d.name.as_str(), d.queued_records as f64)),
    );
    x.per(
        "siemcast_spool_queued_bytes",
        "gauge",
        "Bytes on disk of the events this destination has not delivered yet.",
        "destination",
        q.iter().map(|d| (d.name.as_str(), d.queued_bytes as f64)),
    );
    x.per(
        "siemcast_spool_oldest_queued_age_seconds",
        "gauge",
        "Age of the oldest undelivered event (from its segment's creation); 0 when none.",
        "destination",
        q.iter().map(|d| {
            let age = d.oldest_age.map_or(0.0, |a| a.as_secs_f64());
            (d.name.as_str(), age)
        }),
    );
    x.single(
        "siemcast_spool_bytes",
        "gauge",
        "Bytes of all spool segments on disk.",
        spool.total_bytes as f64,
    );
    x.single(
        "siemcast_spool_max_bytes",
        "gauge",
        "The spool's size cap; sources pause when it is reached.",
        spool.max_bytes as f64,
    );
    x.single(
        "siemcast_spool_events",
        "gauge",
        "Events retained in the spool.",
        spool.total_records as f64,
    );
    x.single(
        "siemcast_spool_segments",
        "gauge",
        "Segment files in the spool.",
        spool.segments as f64,
    );
    x.single(
        "siemcast_spool_disk_full",
        "gauge",
        "1 while sources are paused because the spool's file system is full.",
        u8::from(spool_stats.disk_full_free_bytes.is_some()).into(),
    );
    let counters: [(&str, &str, u64); 11] = [
        (
            "siemcast_spool_quarantined_ranges_total",
            "Damaged spool ranges or segments moved to quarantine/.",
            spool_stats.quarantined_ranges,
        ),
        (
            "siemcast_spool_records_lost_total",
            "Records lost in quarantined ranges (estimated).",
            spool_stats.records_lost,
        ),
        (
            "siemcast_spool_read_corrupt_total",
            "Records found damaged while reading.",
            spool_stats.read_corrupt,
        ),
        (
            "siemcast_spool_write_errors_total",
            "Failed spool writes.",
            spool_stats.write_errors,
        ),
        (
            "siemcast_spool_sync_errors_total",
            "Failed spool fsyncs.",
            spool_stats.sync_errors,
        ),
        (
            "siemcast_spool_full_rejections_total",
            "Batches refused because the spool or the disk was full.",
            spool_stats.full_rejections,
        ),
        (
            "siemcast_spool_disk_full_rejections_total",
            "Batches refused because the spool's file system was full.",
            spool_stats.disk_full_rejections,
        ),
        (
            "siemcast_spool_cursor_persists_deferred_total",
            "Destination cursor writes put off because the disk was full.",
            spool_stats.cursor_persists_deferred,
        ),
        (
            "siemcast_spool_segments_deleted_total",
            "Spool segments deleted once every destination had passed them.",
            spool_stats.segments_deleted,
        ),
        (
            "siemcast_spool_cursor_gaps_total",
            "Destination cursors found below the retained data.",
            spool_stats.cursor_gaps,
        ),
        (
            "siemcast_spool_batches_appended_total",
            "Batches appended to the spool.",
            spool_stats.batches_appended,
        ),
    ];
    for (name, help, v) in counters {
        x.single(name, "counter", help, v as f64);
    }
    x.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_replaces_the_one_quiet_the_longest_but_never_a_busy_one() {
        let mut table = Connections::new(3);
        let tokens: Vec<CancellationToken> = (0..6).map(|_| CancellationToken::new()).collect();
        for id in 0..3 {
            assert_eq!(
                table.admit(id, tokens[id as usize].clone()),
                Admission::Admitted
            );
        }
        // 0 is answering a request, 1 has just been answered: 2 is the quietest idle one.
        table.touch(0, true);
        table.touch(1, true);
        table.touch(1, false);
        assert_eq!(table.admit(3, tokens[3].clone()), Admission::Replaced);
        assert!(tokens[2].is_cancelled());
        assert!(!tokens[0].is_cancelled() && !tokens[1].is_cancelled());
        // Next: 1 (answered before 3 opened); 0 stays while busy.
        assert_eq!(table.admit(4, tokens[4].clone()), Admission::Replaced);
        assert!(tokens[1].is_cancelled() && !tokens[0].is_cancelled());
        table.touch(3, true);
        table.touch(4, true);
        assert_eq!(table.admit(5, tokens[5].clone()), Admission::Refused);
        assert!(tokens[5].is_cancelled(), "refused: told to close");
        assert_eq!(table.open.len(), 3);
        // A finished request makes its connection the most recent, not the quietest.
        table.touch(0, false);
        table.touch(3, false);
        let late = CancellationToken::new();
        assert_eq!(table.admit(6, late), Admission::Replaced);
        assert!(tokens[0].is_cancelled() && !tokens[3].is_cancelled());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_have_help_and_type_before_samples() {
        let mut x = Exposition { out: String::new() };
        x.per(
            "t_total",
            "counter",
            "help",
            "source",
            [("a", 1.0), ("b", 2.5)],
        );
        assert_eq!(
            x.out,
            "# HELP t_total help\n# TYPE t_total counter\nt_total{source=\"a\"} 1\nt_total{source=\"b\"} 2.5\n"
        );
    }

    #[test]
    fn health_reports_every_reason() {
        let stats = PipelineStats {
            destinations: vec![("siem".into(), Arc::default())],
            ..PipelineStats::default()
        };
        let reasons = health(&stats, 0, Duration::ZERO).unwrap_err();
        assert!(reasons[0].starts_with("starting"), "{reasons:?}");
        assert!(
            reasons[1].starts_with("destination \"siem\" is not connected"),
            "{reasons:?}"
        );
    }

    #[test]
    fn draining_destinations_count_as_healthy() {
        let stats = PipelineStats {
            destinations: vec![("siem".into(), Arc::default())],
            ..PipelineStats::default()
        };
        stats.lifecycle.set(Phase::Running);
        let reasons = health(&stats, 0, Duration::ZERO).unwrap_err();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("destination \"siem\" is not connected"));
        stats.lifecycle.set(Phase::Stopping);
        assert_eq!(health(&stats, 0, Duration::ZERO), Ok(()));
    }

    #[test]
    fn health_names_a_source_whose_last_good_poll_is_too_old() {
        let (api, files): (Arc<SourceStats>, Arc<SourceStats>) = Default::default();
        api.freshness.started(Some(Duration::from_secs(60)));
        files.freshness.started(None);
        api.freshness.succeeded();
        api.freshness.failed("token request failed: invalid_client");
        let stats = PipelineStats {
            sources: vec![("api".into(), api.clone()), ("files".into(), files)],
            ..PipelineStats::default()
        };
        let t = api.freshness.last_success_ms().unwrap();
        let grace = Duration::from_secs(60);
        let reasons = |now| health(&stats, now, grace).unwrap_err();
        // Only the phase (not running in this test) while within interval + grace.
        assert_eq!(reasons(t + 120_000).len(), 1);
        let late = reasons(t + 121_000);
        assert_eq!(
            late[1],
            "source \"api\": last successful poll 2m 1s ago, interval 1m: token request failed: invalid_client"
        );
        assert_eq!(
            late.len(),
            2,
            "the files source is judged by running only: {late:?}"
        );
    }
}
