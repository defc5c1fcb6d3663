//! A loopback simulator of a Splunk HTTP Event Collector with indexer acknowledgement, for
//! tests, benches and `demo`: tokens (with or without acknowledgement, disabled, revoked,
//! index allow lists), channels, batches of concatenated JSON events (gzip or not), ackIds that
//! turn true only after a configurable indexing delay, Splunk's documented status codes and
//! bodies, and switchable faults (lost batches, 503 storms, 429 with `Retry-After`, revoked
//! tokens, invalid events). Every indexed event is recorded so tests can count ids exactly.
//! Serves plain HTTP and, with [`SimTls`], HTTPS. Wire constants are its own ([`wire`]).

pub mod batch;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use crate::sources::simulator::SimTls;
pub use batch::HecEvent;
use batch::Refusal;
use wire::Status;

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
}

impl Default for HecConfig {
    fn default() -> Self {
        HecConfig {
            tokens: vec![HecToken::with_ack("00000000-0000-4000-8000-00000000cafe")],
            ack_delay: Duration::from_millis(200),
            tls: None,
            query_string_auth: false,
            max_body_bytes: 64 << 20,
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
                    self.indexed.append(&mut p.events);
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
        let acceptor = cfg.tls.as_ref().map(acceptor).transpose()?;
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
        let app = Router::new().fallback(handle).with_state(shared.clone());
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
                let port = TlsListener::new(tcp, acceptor, stop.clone());
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

// === requests ===

/// A HEC JSON answer: `{"text":…,"code":…}` with the status's HTTP status, plus `extra` members.
fn reply(status: Status, extra: &[(&str, Value)]) -> Response {
    let mut body = json!({ "text": status.text, "code": status.code });
    for (k, v) in extra {
        body[*k] = v.clone();
    }
    let http = StatusCode::from_u16(status.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (http, axum::Json(body)).into_response()
}

fn refused(r: &Refusal) -> Response {
    match r.invalid_event_number {
        Some(n) => reply(r.status, &[(wire::INVALID_EVENT_NUMBER, json!(n))]),
        None => reply(r.status, &[]),
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let path = uri.path().trim_end_matches('/');
    let now = Instant::now();
    let mut st = shared.lock();
    st.settle(now);
    let response = if path == wire::PATH_HEALTH && method == Method::GET {
        Ok(reply(wire::HEALTHY, &[]))
    } else if (path == wire::PATH_EVENT || wire::PATH_EVENT_ALIASES.contains(&path))
        && method == Method::POST
    {
        events(&mut st, &headers, &query, &body, now)
    } else if path == wire::PATH_ACK && method == Method::POST {
        acks(&mut st, &headers, &query, &body)
    } else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"text": "The requested URL was not found on this server.", "code": 404}),
            ),
        )
            .into_response();
    };
    let (code, response) = match response {
        Ok(r) => (0, r),
        Err(Answer::Refused(r)) => (r.status.code, refused(&r)),
        Err(Answer::Throttled(secs)) => {
            st.stats.throttled += 1;
            let mut r = reply(wire::TOO_MANY_REQUESTS, &[]);
            r.headers_mut()
                .insert(wire::HEADER_RETRY_AFTER, HeaderValue::from(secs));
            (wire::TOO_MANY_REQUESTS.code, r)
        }
    };
    *st.stats.by_code.entry(code).or_insert(0) += 1;
    response
}

enum Answer {
    Refused(Refusal),
    Throttled(u64),
}

impl From<Status> for Answer {
    fn from(status: Status) -> Self {
        Answer::Refused(Refusal {
            status,
            invalid_event_number: None,
        })
    }
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Self {
        Answer::Refused(r)
    }
}

/// The request's token, checked: `Authorization: Splunk <token>`, `Authorization: Basic` with
/// the token as password, or `?token=` when allowed.
fn authorize(
    st: &Inner,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<HecToken, Status> {
    let token = match headers.get(wire::HEADER_AUTHORIZATION) {
        None => match query.iter().find(|(k, _)| k == wire::QUERY_TOKEN) {
            None => return Err(wire::TOKEN_REQUIRED),
            Some(_) if !st.cfg.query_string_auth => return Err(wire::QUERY_AUTH_DISABLED),
            Some((_, t)) => t.clone(),
        },
        Some(value) => {
            let text = value.to_str().map_err(|_| wire::INVALID_AUTHORIZATION)?;
            let (scheme, token) = text.split_once(' ').ok_or(wire::INVALID_AUTHORIZATION)?;
            let token = if scheme.eq_ignore_ascii_case(wire::AUTH_SCHEME) {
                token.trim().to_owned()
            } else if scheme.eq_ignore_ascii_case(wire::AUTH_BASIC) {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(token.trim())
                    .map_err(|_| wire::INVALID_AUTHORIZATION)?;
                let pair = String::from_utf8(decoded).map_err(|_| wire::INVALID_AUTHORIZATION)?;
                let (_user, password) = pair.split_once(':').ok_or(wire::INVALID_AUTHORIZATION)?;
                password.to_owned()
            } else {
                return Err(wire::INVALID_AUTHORIZATION);
            };
            if token.is_empty() {
                return Err(wire::INVALID_AUTHORIZATION);
            }
            token
        }
    };
    match st.tokens.get(&token) {
        None => Err(wire::INVALID_TOKEN),
        Some(t) if t.disabled => Err(wire::TOKEN_DISABLED),
        Some(t) => Ok(t.clone()),
    }
}

/// The request's channel (header, else query), which must be a GUID; required with `ack`.
fn channel(
    headers: &HeaderMap,
    query: &[(String, String)],
    required: bool,
) -> Result<Option<String>, Status> {
    let given = match headers.get(wire::HEADER_CHANNEL) {
        Some(v) => Some(v.to_str().map_err(|_| wire::INVALID_CHANNEL)?.to_owned()),
        None => query
            .iter()
            .find(|(k, _)| k == wire::QUERY_CHANNEL)
            .map(|(_, v)| v.clone()),
    };
    match given {
        None if required => Err(wire::CHANNEL_MISSING),
        None => Ok(None),
        Some(c) if is_guid(&c) => Ok(Some(c.to_ascii_lowercase())),
        Some(_) => Err(wire::INVALID_CHANNEL),
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn events(
    st: &mut Inner,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    now: Instant,
) -> Result<Response, Answer> {
    st.stats.event_requests += 1;
    if st.faults.throttle_next > 0 {
        st.faults.throttle_next -= 1;
        return Err(Answer::Throttled(st.faults.retry_after_secs));
    }
    if st.faults.busy_next > 0 {
        st.faults.busy_next -= 1;
        return Err(wire::SERVER_BUSY.into());
    }
    let token = authorize(st, headers, query)?;
    let channel = channel(headers, query, token.ack)?;
    let encoding = headers
        .get(wire::HEADER_CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let gzip = encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    let body = batch::decode(body, encoding, st.cfg.max_body_bytes)?;
    let parsed = batch::parse(&body, &token.indexes)?;
    for (n, e) in parsed.iter().enumerate() {
        if st.faults.invalid_markers.is_empty() {
            break;
        }
        let text = e.event.to_string();
        if st
            .faults
            .invalid_markers
            .iter()
            .any(|m| text.contains(m.as_str()))
        {
            return Err(Refusal {
                status: wire::INVALID_DATA_FORMAT,
                invalid_event_number: Some(n),
            }
            .into());
        }
    }
    st.stats.batches_accepted += 1;
    let accepted = st.stats.batches_accepted;
    if st.faults.revoke_after_batches == Some(accepted) {
        st.tokens.clear();
    }
    let lost = if st.faults.lose_next > 0 {
        st.faults.lose_next -= 1;
        true
    } else {
        st.faults
            .lose_every
            .is_some_and(|n| n > 0 && accepted % n == 0)
    };
    if lost {
        st.stats.batches_lost += 1;
    }
    let mut indexed: Vec<IndexedEvent> = parsed
        .into_iter()
        .map(|event| IndexedEvent {
            token: token.token.clone(),
            channel: channel.clone(),
            ack_id: None,
            gzip,
            event,
        })
        .collect();
    match (token.ack, channel) {
        (true, Some(ch)) => {
            let ready_at = now + st.cfg.ack_delay;
            let entry = st.channels.entry((token.token.clone(), ch)).or_default();
            let id = entry.next_ack;
            entry.next_ack += 1;
            for e in &mut indexed {
                e.ack_id = Some(id);
            }
            entry.pending.insert(
                id,
                Pending {
                    ready_at,
                    lost,
                    events: indexed,
                },
            );
            Ok(reply(wire::SUCCESS, &[("ackId", json!(id))]))
        }
        _ => {
            if !lost {
                st.stats.events_indexed += indexed.len() as u64;
                st.indexed.append(&mut indexed);
            }
            Ok(reply(wire::SUCCESS, &[]))
        }
    }
}

fn acks(
    st: &mut Inner,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Response, Answer> {
    st.stats.ack_requests += 1;
    let token = authorize(st, headers, query)?;
    if !token.ack {
        return Err(wire::ACK_DISABLED.into());
    }
    let Some(channel) = channel(headers, query, true)? else {
        return Err(wire::CHANNEL_MISSING.into());
    };
    let encoding = headers
        .get(wire::HEADER_CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let body = batch::decode(body, encoding, st.cfg.max_body_bytes)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(wire::NO_DATA.into());
    }
    #[derive(serde::Deserialize)]
    struct Query {
        acks: Vec<u64>,
    }
    let ids = serde_json::from_slice::<Query>(&body)
        .map_err(|_| Answer::from(wire::INVALID_DATA_FORMAT))?
        .acks;
    let now = Instant::now();
    let mut answer = serde_json::Map::new();
    let mut confirmed = 0;
    let mut ch = st.channels.get_mut(&(token.token.clone(), channel));
    for id in ids {
        // True once indexed; answered true once, then forgotten (asked again: false).
        let done = ch.as_mut().is_some_and(|c| {
            let ready = c
                .pending
                .get(&id)
                .is_some_and(|p| !p.lost && p.ready_at <= now && p.events.is_empty());
            if ready {
                c.pending.remove(&id);
            }
            ready
        });
        confirmed += u64::from(done);
        answer.insert(id.to_string(), Value::Bool(done));
    }
    st.stats.acks_confirmed += confirmed;
    Ok((StatusCode::OK, axum::Json(json!({ "acks": answer }))).into_response())
}

// === HTTPS ===

fn acceptor(tls: &SimTls) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let invalid = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let chain = tls
        .cert_chain
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.clone()))
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(tls.key.clone().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(invalid)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(invalid)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A listener that completes each TLS handshake on its own task and hands finished
/// connections to the server (a slow or broken client holds up nobody).
struct TlsListener {
    connections:
        tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(tcp: TcpListener, acceptor: tokio_rustls::TlsAcceptor, stop: CancellationToken) -> Self {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, connections) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = tcp.accept() => match a {
                        Ok(a) => a,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await;
                    if let Ok(Ok(tls)) = handshake {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { connections, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
