//! Destinations: one sender per SIEM listener. Each reads the spool from its own cursor,
//! renders events with its mapping set at send time, adds the syslog header and framing, paces
//! to `max_eps`, writes, and moves its cursor only past records the peer's kernel acknowledged.
//! After any error it rewinds to the first unacknowledged record and resends.

pub mod body;
pub mod filter;
pub mod hec;
pub mod identity;
pub mod route;
pub mod send_test;
pub mod spec;
pub mod syslog;
pub mod tls;
pub mod transport;

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DestinationConfig};
use crate::event::{Event, EventKind, EventView};
use crate::mapping::RenderError;
use crate::spool::{Record, Spool, SpoolError};
use body::{Bodies, Body, BodyJson};
use filter::{KindRules, Verdict};
use identity::Identities;
use route::Route;
use spec::DestinationSpec;
use syslog::{Stamp, SyslogWriter};
use transport::{Connection, TransportError};

/// Runs a spool call that reads or writes files (and may `fdatasync` a cursor) on the blocking
/// pool, so that a slow disk never holds up an async worker.
async fn blocking<T: Send + 'static>(
    spool: &Arc<Spool>,
    call: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    let sp = spool.clone();
    tokio::task::spawn_blocking(move || call(&sp))
        .await
        .map_err(|e| SpoolError::Io {
            op: "spool task",
            path: spool.dir().to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Records read from the spool per batch.
const BATCH_RECORDS: usize = 1000;
/// Bytes read from the spool per batch, about.
const BATCH_BYTES: usize = 4 << 20;
/// Unacknowledged bytes allowed on the wire before the sender waits for the peer.
const WINDOW_BYTES: u64 = 8 << 20;
/// How long a stopping sender waits for the peer to acknowledge what was sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff between reconnects: from this...
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// ...doubling up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Counters a destination keeps.
#[derive(Debug, Default)]
pub struct DestinationStats {
    /// Records acknowledged by the peer (UDP: sent).
    pub delivered: AtomicU64,
    /// Records sent again after a connection error.
    pub resent: AtomicU64,
    /// Records that could not be rendered and went to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Messages cut to `max_message_bytes`.
    pub truncated: AtomicU64,
    /// Events outside the destination's route (`sources`, `kinds`): handled, never sent.
    pub routed_out: AtomicU64,
    /// Events dropped or sampled out by a filter rule, per rule name (rules of earlier
    /// configurations too, so counters survive a reload): handled, never sent.
    pub filtered: std::sync::Mutex<Vec<(Box<str>, u64)>>,
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
    /// HEC: event requests sent (retries included).
    pub hec_requests: AtomicU64,
    /// HEC: acknowledgement polls sent.
    pub hec_ack_polls: AtomicU64,
    /// HEC: ackIds waiting for Splunk to confirm them.
    pub hec_acks_pending: AtomicU64,
    /// HEC: ackIds Splunk confirmed.
    pub hec_acks_confirmed: AtomicU64,
    /// HEC: total time from an accepted request to its ackId turning true, in microseconds.
    pub hec_ack_latency_us: AtomicU64,
    /// HEC: ackIds not confirmed within `ack_timeout` (their events were sent again).
    pub hec_ack_timeouts: AtomicU64,
    /// What only an operator can fix (a refused token, a misconfigured collector), for
    /// /healthz; cleared once the receiver accepts again.
    pub problem: std::sync::Mutex<Option<String>>,
}

impl DestinationStats {
    /// Adds `n` to the filtered count of rule `name` (listing the rule at 0 when `n` is 0).
    pub fn add_filtered(&self, name: &str, n: u64) {
        let mut list = self
            .filtered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match list.iter_mut().find(|(r, _)| **r == *name) {
            Some((_, count)) => *count += n,
            None => list.push((name.into(), n)),
        }
    }

    /// The filtered counts per rule name, in the order rules were first seen.
    pub fn filtered_by_rule(&self) -> Vec<(Box<str>, u64)> {
        self.filtered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Why a destination could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("destination \"{name}\": {message}")]
    Setup { name: String, message: String },
    #[error("destination \"{name}\": spool error: {error}")]
    Spool { name: String, error: SpoolError },
}

/// A configured destination, ready to run.
#[derive(Debug)]
pub struct Destination {
    cfg: DestinationConfig,
    /// Mapping files or JSON (`output`): `get(kind)` says how a record is rendered.
    mappings: Bodies,
    route: Route,
    /// The filter rules that apply to each event kind (indexed by `EventKind as usize`).
    rules: Vec<KindRules>,
    /// The name of each rule, by its index in the destination's rule set.
    rule_names: Vec<Box<str>>,
    identities: Identities,
    writer: SyslogWriter,
    limiter: Option<DefaultDirectRateLimiter>,
    dead_letter: PathBuf,
    zone: jiff::tz::TimeZone,
    tls: Option<tls::TlsSetup>,
    /// The Splunk HEC side of a `transport = "hec"` destination.
    hec: Option<Arc<hec::HecSetup>>,
}

impl Destination {
    /// Loads the destination's mappings for every kind the sources it takes produce, and
    /// prepares the syslog identity of each (source, kind).
    pub fn from_config(cfg: &DestinationConfig, config: &Config) -> Result<Self, DestinationError> {
        let setup = |message: String| DestinationError::Setup {
            name: cfg.name.clone(),
            message,
        };
        let spec = DestinationSpec::of(cfg, config).map_err(setup)?;
        let route = Route::from_config(cfg);
        let kinds = route.event_kinds(config);
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let mut mappings = if matches!(spec, DestinationSpec::Hec { .. }) {
            // HEC sends the source record itself.
            Bodies::Json(kinds.iter().map(|k| (*k).to_owned()).collect())
        } else {
            Bodies::load(cfg, &kinds, |p| config.resolve(p)).map_err(setup)?
        };
        // Each kind's rules read the event's fields from the scan that renders it (with JSON
        // output, from the parsed record).
        let mut rules = vec![KindRules::default(); EventKind::ALL.len()];
        for kind in route.event_kinds(config) {
            let mut for_kind = cfg.filter.for_kind(kind);
            if for_kind.is_empty() {
                continue;
            }
            if let Some(m) = mappings
                .mappings_mut()
                .and_then(|set| set.get_mut(kind.as_str()))
            {
                m.also_scan(&mut for_kind.paths_mut());
            }
            rules[kind as usize] = for_kind;
        }
        let rule_names = cfg.filter.rules().iter().map(|r| r.name().into()).collect();
        let stand_ins = mappings
            .mappings()
            .map(|m| m.stand_ins())
            .unwrap_or_default();
        for (kind, stand_in) in stand_ins {
            tracing::warn!(message = "Mapping file missing; its records are rendered with a stand-in's file.", destination = %cfg.name, kind = %kind, stand_in = %stand_in, hint = "copy the file from the mappings shipped with this release (/usr/share/siemcast/mappings)");
        }
        let limiter = cfg.max_eps.and_then(NonZeroU32::new).map(|eps| {
            // Bursts of at most one pacing step: smooth for receivers with small buffers (UDP).
            RateLimiter::direct(Quota::per_second(eps).allow_burst(pacing_step(eps)))
        });
        let tls = match spec.tls_host() {
            Some(host) => Some(
                tls::TlsSetup::from_config(&cfg.tls, host, |p| config.resolve(p))
                    .map_err(|e| setup(e.to_string()))?,
            ),
            None => None,
        };
        let hec = match &spec {
            DestinationSpec::Hec { url, token_file } => Some(Arc::new(
                hec::HecSetup::from_config(cfg, config, url, token_file, tls.as_ref())
                    .map_err(setup)?,
            )),
            DestinationSpec::Syslog { .. } => None,
        };
        let writer = SyslogWriter::new(cfg);
        let identities = Identities::build(
            cfg,
            config,
            |source, kind| route.takes(source, kind),
            |identity| writer.tail(identity),
        );
        Ok(Self {
            tls,
            hec,
            route,
            rules,
            rule_names,
            identities,
            writer,
            cfg: cfg.clone(),
            mappings,
            limiter,
            dead_letter: config
                .resolve(&config.state_dir)
                .join("dead-letter")
                .join(format!("{}.ndjson", cfg.name)),
            zone: jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The names of the destination's filter rules, in order.
    pub fn rule_names(&self) -> &[Box<str>] {
        &self.rule_names
    }

    /// Sends until `cancel`; then waits (bounded) for the peer to acknowledge what is in flight
    /// and persists the cursor. Connection errors are retried forever with backoff.
    pub async fn run(
        self,
        spool: Arc<Spool>,
        cancel: CancellationToken,
        stats: Arc<DestinationStats>,
    ) -> Result<(), DestinationError> {
        if self.hec.is_some() {
            return self.run_hec(spool, cancel, stats).await;
        }
        let name = self.cfg.name.clone();
        let spool_err = |error| DestinationError::Spool {
            name: name.clone(),
            error,
        };
        let mut acked = spool.open_cursor(&name).map_err(spool_err)?;
        for rule in &self.rule_names {
            stats.add_filtered(rule, 0);
        }
        tracing::info!(message = "Destination started.", destination = %name, address = %self.cfg.address, transport = %self.cfg.transport, cursor = acked);
        let mut failures: u32 = 0;
        // Highest seq ever sent, to count resends after a rewind.
        let mut high_water = acked;
        while !cancel.is_cancelled() {
            let mut conn = tokio::select! {
                _ = cancel.cancelled() => break,
                c = self.connect() => match c {
                    Ok(c) => c,
                    Err(error) => {
                        failures += 1;
                        let delay = backoff(failures);
                        if error.is_tls_setup() {
                            tracing::error!(message = "TLS handshake with destination failed; fix the certificate or settings. Retrying.", destination = %name, %error, delay_ms = delay.as_millis() as u64);
                        } else {
                            tracing::warn!(message = "Cannot connect to destination; retrying.", destination = %name, %error, delay_ms = delay.as_millis() as u64);
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(delay) => continue,
                        }
                    }
                }
            };
            stats.connected.store(true, Ordering::Relaxed);
            tracing::info!(message = "Connected to destination.", destination = %name, peer = %conn.peer());
            let result = self
                .session(
                    &mut conn,
                    &spool,
                    &cancel,
                    &stats,
                    &mut acked,
                    &mut high_water,
                    &mut failures,
                )
                .await;
            stats.connected.store(false, Ordering::Relaxed);
            blocking(&spool, Spool::flush_cursors)
                .await
                .map_err(spool_err)?;
            match result {
                Ok(()) => {
                    // Bounded: a stalled peer must not hold up the shutdown.
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
                    break;
                }
                Err(SessionError::Spool(error)) => return Err(spool_err(error)),
                Err(SessionError::Transport(error)) => {
                    failures += 1;
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff(failures);
                    tracing::warn!(message = "Destination connection failed; resending from the first unacknowledged record.", destination = %name, %error, cursor = acked, delay_ms = delay.as_millis() as u64);
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        blocking(&spool, Spool::flush_cursors)
            .await
            .map_err(spool_err)?;
        tracing::info!(message = "Destination stopped.", destination = %name, cursor = acked);
        Ok(())
    }

    /// Connects to the primary address, else to each failover address in turn; the error of
    /// the last one tried is returned when none answers.
    async fn connect(&self) -> Result<Connection, TransportError> {
        let mut last = None;
        for (i, address) in self.cfg.addresses().enumerate() {
            match Connection::connect(self.cfg.transport, address, self.tls.as_ref()).await {
                Ok(c) => {
                    if i > 0 {
                        tracing::warn!(message = "Primary address failed; using a failover address.", destination = %self.cfg.name, address);
                    }
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TransportError::NoAddress {
            address: self.cfg.address.clone(),
        }))
    }

    /// One connection's life: send batches, collect acknowledgements, until error or cancel.
    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        conn: &mut Connection,
        spool: &Arc<Spool>,
        cancel: &CancellationToken,
        stats: &DestinationStats,
        acked: &mut u64,
        high_water: &mut u64,
        failures: &mut u32,
    ) -> Result<(), SessionError> {
        let name = &self.cfg.name;
        // (connection byte offset where a batch ends, cursor after that batch, records in it)
        let mut in_flight: VecDeque<(u64, u64, u64)> = VecDeque::new();
        let mut next = *acked;
        let mut records = Vec::new();
        let mut read_bufs = crate::spool::ReadBuffers::default();
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        let mut payload = Vec::new();
        // Dead-letter lines of the batch in hand.
        let mut dead = Vec::new();
        let mut filtered: Vec<u64> = Vec::new();
        let mut draining_since: Option<Instant> = None;
        // When acknowledgements last moved forward (or nothing was outstanding).
        let mut progress_at = Instant::now();
        let mut last_peer_acked = 0;
        loop {
            // Collect what the peer has acknowledged.
            let peer_acked = conn.acknowledged()?;
            if peer_acked != last_peer_acked || peer_acked == conn.written() {
                last_peer_acked = peer_acked;
                progress_at = Instant::now();
            } else if progress_at.elapsed() > self.cfg.ack_timeout() {
                return Err(SessionError::Transport(TransportError::Stalled {
                    peer: conn.peer(),
                    unacknowledged: conn.written() - peer_acked,
                    waited: self.cfg.ack_timeout(),
                }));
            }
            let mut moved = false;
            while let Some(&(end, cursor, count)) = in_flight.front() {
                if end > peer_acked {
                    break;
                }
                in_flight.pop_front();
                *acked = cursor;
                stats.delivered.fetch_add(count, Ordering::Relaxed);
                moved = true;
            }
            if moved {
                *failures = 0;
                let (name, next) = (name.clone(), *acked);
                blocking(spool, move |s| s.ack(&name, next)).await?;
            }
            if cancel.is_cancelled() {
                let since = *draining_since.get_or_insert_with(Instant::now);
                if in_flight.is_empty() {
                    return Ok(());
                }
                if since.elapsed() > DRAIN_TIMEOUT {
                    tracing::warn!(message = "Peer did not acknowledge everything before shutdown; it will be resent at next start.", destination = %name, unacknowledged_records = in_flight.iter().map(|f| f.2).sum::<u64>());
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            if conn.written() - peer_acked >= WINDOW_BYTES {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            read_bufs.recycle(&mut records);
            let (from, mut taken) = (next, std::mem::take(&mut records));
            let mut bufs = std::mem::take(&mut read_bufs);
            let (after, taken, bufs) = blocking(spool, move |s| {
                let read = s.read_with(from, BATCH_RECORDS, BATCH_BYTES, &mut taken, &mut bufs)?;
                Ok((read, taken, bufs))
            })
            .await?;
            records = taken;
            read_bufs = bufs;
            if records.is_empty() {
                next = after;
                if !in_flight.is_empty() {
                    // Waiting for acknowledgements of what was sent.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                if after > *acked {
                    // Only checkpoint records were passed over: nothing to deliver there.
                    *acked = after;
                    let name = name.clone();
                    blocking(spool, move |s| s.ack(&name, after)).await?;
                }
                // Idle: make the cursor durable now rather than at the next acknowledgement,
                // so a crash while idle repeats nothing.
                blocking(spool, Spool::flush_cursors).await?;
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = spool.wait_for_append(after) => {}
                    // Wake up now and then to notice a peer that closed while idle.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                conn.probe()?;
                continue;
            }
            conn.probe()?;
            buf.clear();
            ends.clear();
            let stamp = Stamp::now(&self.zone);
            let mut skipped = 0u64;
            let mut resent = 0u64;
            filtered.clear();
            filtered.resize(self.rule_names.len(), 0);
            for rec in &records {
                let before = buf.len();
                match self.render(&rec.payload, &stamp, &mut payload, &mut buf) {
                    Ok(Rendered::Skipped(by)) => {
                        skipped += 1;
                        // Counted once, not again when a rewind reads it a second time.
                        if rec.seq >= *high_water {
                            match by {
                                None => {
                                    stats.routed_out.fetch_add(1, Ordering::Relaxed);
                                }
                                Some(rule) => filtered[rule] += 1,
                            }
                        }
                        continue;
                    }
                    Ok(Rendered::Framed { truncated }) => {
                        if truncated {
                            stats.truncated.fetch_add(1, Ordering::Relaxed);
                        }
                        ends.push(buf.len());
                    }
                    Err(reason) => {
                        buf.truncate(before);
                        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                        dead.push(self.dead_letter_line(rec, &reason));
                    }
                }
                resent += u64::from(rec.seq < *high_water);
            }
            for (rule, n) in self.rule_names.iter().zip(&filtered) {
                if *n > 0 {
                    stats.add_filtered(rule, *n);
                }
            }
            if !dead.is_empty() {
                write_dead_letters(&self.dead_letter, std::mem::take(&mut dead)).await;
            }
            // A listener that stopped reading fills the socket buffers and blocks the write:
            // bounded by ack_timeout. A shutdown lets the batch in hand finish (so a graceful
            // restart repeats nothing); the bound keeps a stalled peer from holding it up.
            let timeout = self.cfg.ack_timeout();
            match tokio::time::timeout(timeout, self.paced_send(conn, &buf, &ends)).await {
                Ok(result) => result?,
                Err(_) => {
                    let acked_now = conn.acknowledged()?;
                    return Err(SessionError::Transport(TransportError::Stalled {
                        peer: conn.peer(),
                        unacknowledged: conn.written() - acked_now,
                        waited: timeout,
                    }));
                }
            }
            let last_seq = records.last().map_or(next, |r| r.seq);
            stats.resent.fetch_add(resent, Ordering::Relaxed);
            *high_water = (*high_water).max(last_seq + 1);
            // Skipped records ride with the batch: the cursor passes them once what was sent
            // before them is acknowledged.
            in_flight.push_back((conn.written(), after, records.len() as u64 - skipped));
            next = after;
        }
    }

    /// Sends a rendered batch, in steps of 20 ms worth of messages when `max_eps` is set.
    async fn paced_send(
        &self,
        conn: &mut Connection,
        buf: &[u8],
        ends: &[usize],
    ) -> Result<(), TransportError> {
        let Some(limiter) = &self.limiter else {
            return conn.send(buf, ends).await;
        };
        let step = self
            .cfg
            .max_eps
            .and_then(NonZeroU32::new)
            .map_or(NonZeroU32::MIN, pacing_step);
        let mut start = 0;
        let mut relative = Vec::with_capacity(step.get() as usize);
        for chunk in ends.chunks(step.get() as usize) {
            let n = NonZeroU32::new(chunk.len() as u32).unwrap_or(NonZeroU32::MIN);
            // `n` never exceeds the burst, so this cannot fail.
            let _ = limiter.until_n_ready(n).await;
            let end = chunk.last().copied().unwrap_or(start);
            relative.clear();
            relative.extend(chunk.iter().map(|e| e - start));
            conn.send(&buf[start..end], &relative).await?;
            start = end;
        }
        Ok(())
    }

    /// Renders one record into `buf` (framed), unless the destination's route leaves it out
    /// or one of its filter rules drops or samples it out (evaluated here, at send time, so a
    /// changed rule applies to queued events too). `payload` is scratch space reused across
    /// records.
    fn render(
        &self,
        record: &[u8],
        stamp: &Stamp,
        payload: &mut Vec<u8>,
        buf: &mut Vec<u8>,
    ) -> Result<Rendered, String> {
        let event = EventView::decode(record).map_err(|e| e.to_string())?;
        if !self.route.takes(event.source, event.kind) {
            return Ok(Rendered::Skipped(None));
        }
        let mapping = self
            .mappings
            .get(event.kind.as_str())
            .ok_or_else(|| format!("no mapping for kind \"{}\"", event.kind))?;
        let rules = &self.rules[event.kind as usize];
        let early = if rules.is_empty() {
            Some(Verdict::Keep)
        } else {
            rules.decide_early(event.source, event.id)
        };
        let tail = |_: ()| {
            self.identities
                .tail(event.source, event.kind, |i| self.writer.tail(i))
        };
        let truncated = match early {
            Some(Verdict::Filtered(rule)) => return Ok(Rendered::Skipped(Some(rule))),
            Some(Verdict::Keep) => render_message(
                mapping,
                &self.writer,
                &tail(()),
                stamp,
                BodyJson::of(&event),
                payload,
                buf,
            )
            .map_err(|e| e.to_string())?,
            None => {
                payload.clear();
                let filtered = match mapping {
                    // The rules need the event's fields: one scan serves them and the mapping.
                    Body::Mapping(mapping) => mapping
                        .render_json_unless(event.json, event.checked, payload, |doc| {
                            match rules.decide(event.source, event.id, doc) {
                                Verdict::Keep => None,
                                Verdict::Filtered(rule) => Some(rule),
                            }
                        })
                        .map_err(|e| e.to_string())?,
                    // JSON output scans nothing: the rules read the parsed record.
                    Body::Json => {
                        let doc: serde_json::Value =
                            serde_json::from_slice(event.json).map_err(|e| e.to_string())?;
                        match rules.decide(event.source, event.id, &doc) {
                            Verdict::Keep => {
                                mapping
                                    .render(event.json, payload)
                                    .map_err(|e| e.to_string())?;
                                None
                            }
                            Verdict::Filtered(rule) => Some(rule),
                        }
                    }
                };
                if let Some(rule) = filtered {
                    return Ok(Rendered::Skipped(Some(rule)));
                }
                self.writer.write_as(stamp, &tail(()), payload, buf)
            }
        };
        Ok(Rendered::Framed { truncated })
    }

    /// What the destination does with one spooled event (`record`, as [`Event::encode`] wrote
    /// it), for `siemcast dry-run`: sends it (the framed message, left in `buf`), leaves it
    /// out of its route, or filters it by a rule. A filtered event is rendered anyway, so the
    /// bytes a rule saves can be counted. Errors are what a destination dead-letters.
    pub fn decide(
        &self,
        record: &[u8],
        stamp: &Stamp,
        payload: &mut Vec<u8>,
        buf: &mut Vec<u8>,
    ) -> Result<Decision, String> {
        buf.clear();
        if let Some(hec) = &self.hec {
            return self.decide_hec(hec, record, buf);
        }
        match self.render(record, stamp, payload, buf)? {
            Rendered::Framed { .. } => Ok(Decision::Sent { bytes: buf.len() }),
            Rendered::Skipped(None) => Ok(Decision::OutOfRoute),
            Rendered::Skipped(Some(rule)) => {
                let event = EventView::decode(record).map_err(|e| e.to_string())?;
                let mapping = self
                    .mappings
                    .get(event.kind.as_str())
                    .ok_or_else(|| format!("no mapping for kind \"{}\"", event.kind))?;
                let tail = self
                    .identities
                    .tail(event.source, event.kind, |i| self.writer.tail(i));
                buf.clear();
                render_message(
                    mapping,
                    &self.writer,
                    &tail,
                    stamp,
                    BodyJson::of(&event),
                    payload,
                    buf,
                )
                .map_err(|e| e.to_string())?;
                Ok(Decision::Filtered {
                    rule,
                    bytes: buf.len(),
                })
            }
        }
    }

    /// Benches only: what the sender does with one spooled event (`record`, as
    /// [`Event::encode`] wrote it): appends the framed message to `buf` and returns true, or
    /// returns false when the route or a filter rule leaves it out.
    #[doc(hidden)]
    pub fn render_for_bench(
        &self,
        record: &[u8],
        stamp: &Stamp,
        payload: &mut Vec<u8>,
        buf: &mut Vec<u8>,
    ) -> bool {
        matches!(
            self.render(record, stamp, payload, buf),
            Ok(Rendered::Framed { .. })
        )
    }

    /// Keeps a record that cannot be rendered, so nothing is lost silently.
    /// The dead-letter line for a record that could not be rendered (logged as a warning).
    fn dead_letter_line(&self, rec: &Record, reason: &str) -> String {
        let event = Event::decode(&rec.payload).ok();
        let line = serde_json::json!({
            "destination": self.cfg.name,
            "seq": rec.seq,
            "error": reason,
            "id": event.as_ref().map(|e| e.id.clone()),
            "kind": event.as_ref().map(|e| e.kind.as_str()),
            "event": event.as_ref().and_then(|e| serde_json::from_slice::<serde_json::Value>(&e.json).ok()),
        });
        tracing::warn!(message = "Event could not be rendered; written to the dead-letter file.", destination = %self.cfg.name, seq = rec.seq, error = reason, file = %self.dead_letter.display());
        line.to_string()
    }
}

/// Renders one event body (`json`, the event's JSON object) with `mapping` (a mapping file, or
/// [`Body::Json`]: the record compacted to one line) and appends it to
/// `out` with `writer`'s syslog header (its time stamp from `stamp`, then `tail`: the host and
/// app names, from [`SyslogWriter::tail`]), length limit and framing: the bytes a destination sends
/// for a record, and what `siemcast render` prints (one code path for both). `Ok(true)` when the
/// message was cut to the writer's `max_message_bytes`. `payload` is scratch space reused across
/// events; on error `out` is left as it was.
pub fn render_message<'a>(
    mapping: impl Into<Body<'a>>,
    writer: &SyslogWriter,
    tail: &[u8],
    stamp: &Stamp,
    json: BodyJson<'_>,
    payload: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<bool, RenderError> {
    payload.clear();
    mapping.into().render_body(json, payload)?;
    Ok(writer.write_as(stamp, tail, payload, out))
}

/// Appends a batch's dead-letter lines to `path` and makes them durable before the batch can be
/// acknowledged (on the blocking pool: it `fdatasync`s). A failure is logged: the events stay
/// counted as dead-lettered.
async fn write_dead_letters(path: &std::path::Path, lines: Vec<String>) {
    use std::io::Write as _;
    let file = path.to_owned();
    let written = tokio::task::spawn_blocking(move || {
        file.parent().map_or(Ok(()), std::fs::create_dir_all)?;
        let mut f = OpenOptions::new().create(true).append(true).open(&file)?;
        let mut text = lines.join("\n");
        text.push('\n');
        f.write_all(text.as_bytes())?;
        f.sync_data()
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(error) = written {
        tracing::error!(message = "Cannot write the dead-letter file.", file = %path.display(), %error);
    }
}

/// What a destination does with one event ([`Destination::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sent as a framed message of `bytes` bytes (syslog header and framing included).
    Sent { bytes: usize },
    /// Not sent: outside the destination's `sources`/`kinds` route.
    OutOfRoute,
    /// Not sent: dropped or sampled out by the rule at index `rule` of
    /// [`Destination::rule_names`]; it would have taken `bytes`.
    Filtered { rule: usize, bytes: usize },
}

/// What [`Destination::render`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendered {
    /// Appended to the batch; `truncated` when cut to `max_message_bytes`.
    Framed { truncated: bool },
    /// Not sent, nothing appended: outside the destination's route (`None`), or filtered by
    /// the rule at this index of its rule set.
    Skipped(Option<usize>),
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Messages per paced send: 20 ms worth at `eps`, at least one.
fn pacing_step(eps: NonZeroU32) -> NonZeroU32 {
    NonZeroU32::new(eps.get() / 50).unwrap_or(NonZeroU32::MIN)
}

/// Exponential backoff with full jitter: a random delay up to min(max, min * 2^failures).
fn backoff(failures: u32) -> Duration {
    let ceiling = BACKOFF_MIN
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX);
    let ms = rand::random_range(BACKOFF_MIN.as_millis() as u64..=ceiling.as_millis() as u64);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::spool::SpoolOptions;
    use std::io::BufRead as _;

    /// An event the mapping cannot render (its body is not JSON) goes to the dead-letter file,
    /// made durable before its batch is acknowledged; the events around it are delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unrenderable_event_is_dead_lettered_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = format!(
            r#"state_dir = "state"
[metrics]
address = ""
[[source]]
name = "src"
kind = "files"
path = "in"
source_kind = "azure_activity"
[[destination]]
name = "d"
address = "127.0.0.1:{port}"
transport = "tcp"
mappings = "{mappings}"
"#,
            mappings = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/arcsight"),
        );
        let path = dir.path().join("siemcast.toml");
        std::fs::write(&path, &text).unwrap();
        let config = Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let spool = Arc::new(
            Spool::open(&dir.path().join("state/spool"), SpoolOptions::default()).unwrap(),
        );
        let event = |id: &str, json: &[u8]| {
            let mut out = Vec::new();
            Event {
                kind: EventKind::AzureActivity,
                source: "src".into(),
                id: id.into(),
                time_ms: None,
                json: json.to_vec(),
                checked: false,
            }
            .encode(&mut out);
            out
        };
        let good = |id: &str| event(id, format!(r#"{{"eventDataId":"{id}"}}"#).as_bytes());
        let batch = [
            good("a"),
            event("bad", br#"{"eventDataId":"bad""#),
            good("b"),
        ];
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        spool.append_batch("src", &refs, b"ck").unwrap();

        let receiver = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut lines = std::io::BufReader::new(conn).lines();
            (0..2)
                .map(|_| lines.next().unwrap().unwrap())
                .collect::<Vec<_>>()
        });
        let destination = Destination::from_config(&config.destinations[0], &config).unwrap();
        let (cancel, stats) = (
            CancellationToken::new(),
            Arc::new(DestinationStats::default()),
        );
        let task = tokio::spawn(destination.run(spool.clone(), cancel.clone(), stats.clone()));
        let lines = tokio::task::spawn_blocking(move || receiver.join().unwrap())
            .await
            .unwrap();
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert!(lines[0].contains("externalId=a"), "{lines:?}");
        assert!(lines[1].contains("externalId=b"), "{lines:?}");
        assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
        let dead = std::fs::read_to_string(dir.path().join("state/dead-letter/d.ndjson")).unwrap();
        let dead: Vec<serde_json::Value> = dead
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0]["id"], "bad");
        assert_eq!(dead[0]["destination"], "d");
        assert!(dead[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for f in 0..40 {
            let d = backoff(f);
            assert!(d >= BACKOFF_MIN && d <= BACKOFF_MAX, "{f}: {d:?}");
        }
        assert!((0..50)
            .map(|_| backoff(1))
            .all(|d| d <= Duration::from_millis(400)));
    }
}
