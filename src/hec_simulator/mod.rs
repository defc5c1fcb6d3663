//! A loopback simulator of a Splunk HTTP Event Collector with indexer acknowledgement, for
//! tests, benches and `demo`: tokens (with or without acknowledgement, disabled, revoked,
//! index allow lists), channels, batches of concatenated JSON events (gzip or not), ackIds that
//! turn true only after a configurable indexing delay, Splunk's documented status codes and
//! bodies, and switchable faults (lost batches, 503 storms, 429 with `Retry-After`, revoked
//! tokens, invalid events). Every indexed event is recorded so tests can count ids exactly.
//! Serves plain HTTP and, with [`SimTls`], HTTPS. Wire constants are its own ([`wire`]).

pub mod batch;
mod handle;

pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::simulator::SimTls;
pub use batch::HecEvent;

/// A HEC token as configured on Splunk (Settings > Data inputs > HTTP Event Collector).
#[derive(Debug, Clone)]
pub struct HecToken {
    pub token: String,
    /// "Enable indexer acknowledgement" (`useACK`).
    pub ack: bool,
    pub disabled: bool,
    /// Allowed indexes; empty: any.
    pub indexes: Vec<String>,
}

impl HecToken {
    /// An enabled token with indexer acknowledgement and no index restriction.
    pub fn with_ack(token: &str) -> Self {
        HecToken {
            token: token.to_owned(),
            ack: true,
            disabled: false,
            indexes: Vec::new(),
        }
    }

    /// An enabled token without acknowledgement.
    pub fn without_ack(token: &str) -> Self {
        HecToken {
            ack: false,
            ..Self::with_ack(token)
        }
    }
}

/// What the simulator serves.
#[derive(Debug, Clone)]
pub struct HecConfig {
    pub tokens: Vec<HecToken>,
    /// How long after a batch is accepted its ackId turns true (its events are indexed).
    pub ack_delay: Duration,
    /// Serve HTTPS too (the HTTP port stays).
    pub tls: Option<SimTls>,
    /// `allowQueryStringAuth`: accept `?token=` (off on Splunk by default).
    pub query_string_auth: bool,
    /// Largest request body, decoded (Splunk's `max_content_length` defaults to 800 MB; kept
    /// smaller here).
    pub max_body_bytes: usize,
    /// Keep every indexed event for [`HecSimulator::indexed`] (off for benches: counts only).
    pub keep_events: bool,
}

impl Default for HecConfig {
    fn default() -> Self {
        HecConfig {
            tokens: vec![HecToken::with_ack("00000000-0000-4000-8000-00000000cafe")],
            ack_delay: Duration::from_millis(200),
            tls: None,
            query_string_auth: false,
            max_body_bytes: 64 << 20,
            keep_events: true,
        }
    }
}

/// Faults switched on and off while running ([`HecSimulator::faults`]).
#[derive(Debug, Clone, Default)]
pub struct HecFaults {
    /// The next this-many accepted batches are answered 200 with an ackId and then lost: never
    /// indexed, their ackId never true (an indexer that restarted before indexing them).
    pub lose_next: u32,
    /// Every n-th accepted batch is lost as above.
    pub lose_every: Option<u64>,
    /// The next this-many event requests are answered 503 "Server is busy" (code 9).
    pub busy_next: u32,
    /// The next this-many event requests are answered 429 with `Retry-After`.
    pub throttle_next: u32,
    pub retry_after_secs: u64,
    /// An event whose `event` JSON contains one of these strings is refused, every time, as
    /// invalid data (400, code 6, with its `invalid-event-number`); its batch is not indexed.
    pub invalid_markers: Vec<String>,
    /// After this many accepted batches every token is revoked (403 "Invalid token").
    pub revoke_after_batches: Option<u64>,
}

/// An event the simulator indexed, with the request it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedEvent {
    pub token: String,
    pub channel: Option<String>,
    pub ack_id: Option<u64>,
    pub gzip: bool,
    pub event: HecEvent,
}

/// Counters of what the simulator answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HecStats {
    pub event_requests: u64,
    pub ack_requests: u64,
    pub batches_accepted: u64,
    pub batches_lost: u64,
    pub events_indexed: u64,
    /// Answers by HEC status code (0 = success), event and ack endpoints together.
    pub by_code: BTreeMap<u32, u64>,
    pub throttled: u64,
    /// ackIds answered `true`.
    pub acks_confirmed: u64,
}

struct Pending {
    ready_at: Instant,
    lost: bool,
    events: Vec<IndexedEvent>,
}

#[derive(Default)]
struct Channel {
    next_ack: u64,
    pending: BTreeMap<u64, Pending>,
}

struct Inner {
    cfg: HecConfig,
    tokens: HashMap<String, HecToken>,
    faults: HecFaults,
    /// (token, channel) → its ackIds.
    channels: HashMap<(String, String), Channel>,
    indexed: Vec<IndexedEvent>,
    stats: HecStats,
}

impl Inner {
    /// Indexes the batches whose delay has passed (lost ones never are).
    fn settle(&mut self, now: Instant) {
        for ch in self.channels.values_mut() {
            for p in ch.pending.values_mut() {
                if !p.lost && p.ready_at <= now && !p.events.is_empty() {
                    self.stats.events_indexed += p.events.len() as u64;
                    if self.cfg.keep_events {
                        self.indexed.append(&mut p.events);
                    } else {
                        p.events.clear();
                    }
                }
            }
        }
    }
}

struct Shared(Mutex<Inner>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator; stops when dropped.
#[derive(Debug)]
pub struct HecSimulator {
    shared: Arc<Shared>,
    http: SocketAddr,
    https: Option<SocketAddr>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl HecSimulator {
    /// Binds 127.0.0.1 (HTTP, and HTTPS with `cfg.tls`) and serves until dropped.
    pub async fn start(cfg: HecConfig) -> std::io::Result<HecSimulator> {
        let acceptor = cfg
            .tls
            .as_ref()
            .map(crate::simulator::tls_acceptor)
            .transpose()?;
        let shared = Arc::new(Shared(Mutex::new(Inner {
            tokens: cfg
                .tokens
                .iter()
                .map(|t| (t.token.clone(), t.clone()))
                .collect(),
            cfg,
            faults: HecFaults::default(),
            channels: HashMap::new(),
            indexed: Vec::new(),
            stats: HecStats::default(),
        })));
        let stop = CancellationToken::new();
        let app = Router::new()
            .fallback(handle::handle)
            .with_state(shared.clone());
        let plain = TcpListener::bind("127.0.0.1:0").await?;
        let http = plain.local_addr()?;
        let s = stop.clone();
        let a = app.clone();
        tokio::spawn(async move {
            let _ = axum::serve(plain, a)
                .with_graceful_shutdown(s.cancelled_owned())
                .await;
        });
        let https = match acceptor {
            None => None,
            Some(acceptor) => {
                let tcp = TcpListener::bind("127.0.0.1:0").await?;
                let local = tcp.local_addr()?;
                let port = crate::simulator::TlsPort::new(tcp, acceptor, None, stop.clone())?;
                let s = stop.clone();
                tokio::spawn(async move {
                    let _ = axum::serve(port, app)
                        .with_graceful_shutdown(s.cancelled_owned())
                        .await;
                });
                Some(local)
            }
        };
        Ok(HecSimulator {
            shared,
            http,
            https,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// `https://127.0.0.1:PORT`, when serving HTTPS.
    pub fn https_url(&self) -> Option<String> {
        self.https.map(|a| format!("https://{a}"))
    }

    /// Changes the faults.
    pub fn faults(&self, change: impl FnOnce(&mut HecFaults)) {
        change(&mut self.shared.lock().faults);
    }

    /// Deletes a token on the server (its next use: 403 "Invalid token").
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().tokens.remove(token);
    }

    /// Adds a token, or puts back one that was revoked (a new token pasted into the HEC input).
    pub fn add_token(&self, token: HecToken) {
        self.shared.lock().tokens.insert(token.token.clone(), token);
    }

    /// Disables or enables a token (403 "Token disabled" while disabled).
    pub fn set_token_disabled(&self, token: &str, disabled: bool) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.disabled = disabled;
        }
    }

    /// Every event indexed so far (batches whose acknowledgement delay has passed), in order.
    pub fn indexed(&self) -> Vec<IndexedEvent> {
        let mut st = self.shared.lock();
        st.settle(Instant::now());
        st.indexed.clone()
    }

    /// How many times each value of `key` in the indexed events' `event` objects was indexed
    /// (events without it are counted under "").
    pub fn count_by(&self, key: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in self.indexed() {
            let id = match e.event.event.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }

    /// ackIds issued and not yet answered `true` (lost ones included).
    pub fn pending_acks(&self) -> usize {
        let st = self.shared.lock();
        st.channels.values().map(|c| c.pending.len()).sum()
    }

    pub fn stats(&self) -> HecStats {
        let mut st = self.shared.lock();
        st.settle(Instant::now());
        st.stats.clone()
    }
}

impl Drop for HecSimulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A simulator on its own runtime thread, for synchronous whole-program tests.
#[derive(Debug)]
pub struct BackgroundHecSimulator {
    sim: Option<HecSimulator>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundHecSimulator {
    pub fn start(cfg: HecConfig) -> std::io::Result<BackgroundHecSimulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let sim = runtime.block_on(HecSimulator::start(cfg))?;
        Ok(BackgroundHecSimulator {
            sim: Some(sim),
            runtime: Some(runtime),
        })
    }
}

impl std::ops::Deref for BackgroundHecSimulator {
    type Target = HecSimulator;
    fn deref(&self) -> &HecSimulator {
        self.sim.as_ref().expect("running")
    }
}

impl Drop for BackgroundHecSimulator {
    fn drop(&mut self) {
        drop(self.sim.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
