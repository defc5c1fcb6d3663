//! The HEC delivery loop. Batches are read from the spool and sent by several requests in
//! flight; each batch is a range of spool seqs. A range is done when its ackId comes back true
//! (or, without indexer acknowledgement, when its request is answered 200); ranges complete in
//! any order and the cursor is the start of the lowest range not done. An ackId not confirmed
//! within `ack_timeout` has its range read again from the spool and sent again (a new ackId).
//! A range is always rebuilt from the spool, so nothing but its bounds is held in memory.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::HecError;
use super::{HecRendered, HecSetup};
use crate::destinations::{
    backoff, blocking, write_dead_letters, Destination, DestinationError, DestinationStats,
};
use crate::spool::{Record, Spool, SpoolError};

/// How often pending ackIds are polled.
const ACK_POLL: Duration = Duration::from_millis(100);
/// Ranges waiting for their ackId at most; reading pauses beyond (the spool holds the data).
const MAX_WAITING: usize = 2000;
/// ackIds asked about per poll at most.
const MAX_POLL_IDS: usize = 1000;
/// How long a stopping sender waits for what is in flight to be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A range of spool seqs sent as one request.
#[derive(Debug)]
struct Range {
    /// Event records in it (what to read again to rebuild it).
    records: usize,
    /// Events sent in it (route, filters and dead letters take the others).
    events: u64,
    /// Seqs Splunk refused and that went to the dead-letter file.
    excluded: Vec<u64>,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Its request is in flight (or backing off).
    Sending,
    /// Accepted; waiting for `ack_id` to turn true since `since`.
    Waiting { ack_id: u64, since: Instant },
}

/// A batch built from spool records.
struct Built {
    body: Bytes,
    events: u64,
    /// The seq of each event in the body, in order.
    seqs: Vec<u64>,
    dead: Vec<String>,
    filtered: Vec<u64>,
    routed_out: u64,
}

type PostResult = (u64, Result<Option<u64>, Option<HecError>>);
/// An acknowledgement poll's outcome: the ids confirmed.
type PollResult = Result<Vec<u64>, HecError>;

impl Destination {
    /// Runs a HEC destination until `cancel`; then waits (bounded) for what is in flight.
    pub(in crate::destinations) async fn run_hec(
        self,
        spool: Arc<Spool>,
        cancel: CancellationToken,
        stats: Arc<DestinationStats>,
    ) -> Result<(), DestinationError> {
        let name = self.cfg.name.clone();
        let spool_err = |error| DestinationError::Spool {
            name: name.clone(),
            error,
        };
        let Some(hec) = self.hec.clone() else {
            return Err(DestinationError::Setup {
                name,
                message: "not a HEC destination".into(),
            });
        };
        if let Err(e) = hec.persist_channel() {
            tracing::warn!(message = "Cannot keep the HEC channel; a new one is used at the next start.", destination = %name, error = %e);
        }
        let acked = spool.open_cursor(&name).map_err(spool_err)?;
        for rule in &self.rule_names {
            stats.add_filtered(rule, 0);
        }
        tracing::info!(message = "Destination started.", destination = %name, url = %hec.client.base, transport = "hec", channel = %hec.channel, cursor = acked);
        let mut sender = Sender {
            this: Arc::new(self),
            hec,
            spool,
            stats,
            cancel,
            ranges: BTreeMap::new(),
            waiting: HashMap::new(),
            posts: JoinSet::new(),
            acked,
            next: acked,
            high_water: acked,
            ack_on: None,
        };
        sender.ack_on = sender.hec.ack.filter(|a| !a);
        let result = sender.run().await;
        sender.posts.abort_all();
        blocking(&sender.spool, Spool::flush_cursors)
            .await
            .map_err(spool_err)?;
        sender.stats.hec_acks_pending.store(0, Ordering::Relaxed);
        result.map_err(spool_err)?;
        tracing::info!(message = "Destination stopped.", destination = %name, cursor = sender.acked);
        Ok(())
    }
}

struct Sender {
    this: Arc<Destination>,
    hec: Arc<HecSetup>,
    spool: Arc<Spool>,
    stats: Arc<DestinationStats>,
    cancel: CancellationToken,
    /// Ranges not done, by their first seq.
    ranges: BTreeMap<u64, Range>,
    /// ackId → the range it acknowledges.
    waiting: HashMap<u64, u64>,
    posts: JoinSet<PostResult>,
    /// The cursor: every seq below it is done.
    acked: u64,
    /// Where the next batch is read from.
    next: u64,
    /// Highest seq ever read + 1: below it, records are being sent again.
    high_water: u64,
    /// Indexer acknowledgement in use: `None` until Splunk's first answer says.
    ack_on: Option<bool>,
}

impl Sender {
    fn name(&self) -> &str {
        &self.this.cfg.name
    }

    async fn run(&mut self) -> Result<(), SpoolError> {
        // Whether the collector answers, before there is anything to send (/healthz).
        let probe = self.hec.client.health();
        match tokio::time::timeout(Duration::from_secs(10), probe).await {
            Ok(Ok(())) => self.stats.connected.store(true, Ordering::Relaxed),
            Ok(Err(error)) => {
                tracing::warn!(message = "The HTTP Event Collector's health check failed.", destination = %self.name(), %error);
            }
            Err(_) => {
                tracing::warn!(message = "The HTTP Event Collector's health check got no answer within 10 s.", destination = %self.name());
            }
        }
        let mut polls: JoinSet<PollResult> = JoinSet::new();
        let mut last_poll = Instant::now();
        let mut draining_since: Option<Instant> = None;
        let mut flushed = false;
        let max_in_flight = self.this.cfg.hec_max_in_flight();
        loop {
            self.advance().await?;
            let mut idle = false;
            if self.cancel.is_cancelled() {
                let since = *draining_since.get_or_insert_with(Instant::now);
                // Done, or nothing left that could still complete (requests stopped while
                // backing off leave their ranges for the next start).
                if self.ranges.is_empty() || (self.posts.is_empty() && self.waiting.is_empty()) {
                    return Ok(());
                }
                if since.elapsed() > DRAIN_TIMEOUT {
                    let events: u64 = self.ranges.values().map(|r| r.events).sum();
                    tracing::warn!(message = "Splunk did not acknowledge everything before shutdown; it will be sent again at the next start.", destination = %self.name(), unacknowledged_events = events);
                    return Ok(());
                }
            } else {
                self.resend_timed_out().await?;
                while self.posts.len() < max_in_flight && self.waiting.len() < MAX_WAITING {
                    if !self.send_next().await? {
                        idle = true;
                        break;
                    }
                    flushed = false;
                }
            }
            if !self.waiting.is_empty() && polls.is_empty() && last_poll.elapsed() >= ACK_POLL {
                last_poll = Instant::now();
                let ids: Vec<u64> = self.waiting.keys().copied().take(MAX_POLL_IDS).collect();
                let client = self.hec.client.clone();
                self.stats.hec_ack_polls.fetch_add(1, Ordering::Relaxed);
                polls.spawn(async move { client.poll_acks(&ids).await });
            }
            if idle && self.ranges.is_empty() && !flushed {
                // Idle: make the cursor durable now, so a crash while idle repeats nothing.
                blocking(&self.spool, Spool::flush_cursors).await?;
                flushed = true;
            }
            let quiet = idle && self.ranges.is_empty();
            let spool = self.spool.clone();
            let next = self.next;
            tokio::select! {
                Some(done) = self.posts.join_next() => {
                    if let Ok((start, result)) = done {
                        self.posted(start, result).await?;
                    }
                }
                Some(done) = polls.join_next() => {
                    if let Ok(result) = done {
                        self.polled(result);
                    }
                }
                _ = spool.wait_for_append(next), if quiet && !self.cancel.is_cancelled() => {}
                _ = self.cancel.cancelled(), if !self.cancel.is_cancelled() => {}
                _ = tokio::time::sleep(if quiet { Duration::from_secs(1) } else { ACK_POLL / 2 }) => {}
            }
        }
    }

    /// Moves the cursor to the start of the lowest range not done.
    async fn advance(&mut self) -> Result<(), SpoolError> {
        let cursor = self.ranges.keys().next().copied().unwrap_or(self.next);
        self.stats
            .hec_acks_pending
            .store(self.waiting.len() as u64, Ordering::Relaxed);
        if cursor > self.acked {
            self.acked = cursor;
            let name = self.name().to_owned();
            blocking(&self.spool, move |s| s.ack(&name, cursor)).await?;
        }
        Ok(())
    }

    /// Reads, builds and sends the next batch. False when the spool has nothing new.
    async fn send_next(&mut self) -> Result<bool, SpoolError> {
        let from = self.next;
        let max = self.this.cfg.hec_batch_events();
        let bytes = self.this.cfg.hec_batch_bytes();
        let (this, hec, stats, high_water) = (
            self.this.clone(),
            self.hec.clone(),
            self.stats.clone(),
            self.high_water,
        );
        let (after, count, built) = blocking(&self.spool, move |s| {
            let mut records = Vec::new();
            let after = s.read(from, max, bytes, &mut records)?;
            let built = this.build(&hec, &records, &[], high_water, &stats);
            Ok((after, records.len(), built))
        })
        .await?;
        if count == 0 {
            self.next = after;
            return Ok(false);
        }
        self.next = after;
        self.high_water = self.high_water.max(after);
        let built = self.account(built).await;
        if built.events == 0 {
            // Nothing to send (all routed out or filtered): done once what precedes it is.
            return Ok(true);
        }
        self.ranges.insert(
            from,
            Range {
                records: count,
                events: built.events,
                excluded: Vec::new(),
                state: State::Sending,
            },
        );
        self.spawn_post(from, built.body, built.events);
        Ok(true)
    }

    /// Counts what a build filtered out and makes its dead letters durable.
    async fn account(&self, mut built: Built) -> Built {
        for (rule, n) in self.this.rule_names.iter().zip(&built.filtered) {
            if *n > 0 {
                self.stats.add_filtered(rule, *n);
            }
        }
        self.stats
            .routed_out
            .fetch_add(built.routed_out, Ordering::Relaxed);
        if !built.dead.is_empty() {
            write_dead_letters(&self.this.dead_letter, std::mem::take(&mut built.dead)).await;
        }
        built
    }

    fn spawn_post(&mut self, start: u64, body: Bytes, events: u64) {
        let (this, client, stats, cancel) = (
            self.this.clone(),
            self.hec.client.clone(),
            self.stats.clone(),
            self.cancel.clone(),
        );
        self.posts.spawn(async move {
            if let Some(limiter) = &this.limiter {
                let step = this
                    .cfg
                    .max_eps
                    .and_then(NonZeroU32::new)
                    .map_or(NonZeroU32::MIN, crate::destinations::pacing_step);
                let mut left = events;
                while left > 0 {
                    let n = left.min(u64::from(step.get())) as u32;
                    let _ = limiter
                        .until_n_ready(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
                        .await;
                    left -= u64::from(n);
                }
            }
            let mut failures = 0u32;
            loop {
                stats.hec_requests.fetch_add(1, Ordering::Relaxed);
                match client.post(body.clone()).await {
                    Ok(ack_id) => {
                        if failures > 0 || !stats.connected.load(Ordering::Relaxed) {
                            if failures > 0 {
                                tracing::info!(message = "Splunk accepts events again.", destination = %this.cfg.name);
                            }
                            stats.connected.store(true, Ordering::Relaxed);
                            *lock(&stats.problem) = None;
                        }
                        return (start, Ok(ack_id));
                    }
                    Err(e @ HecError::Invalid { .. }) => return (start, Err(Some(e))),
                    Err(error) => {
                        failures += 1;
                        let delay = match &error {
                            HecError::Busy {
                                retry_after: Some(d),
                                ..
                            } => *d,
                            _ => backoff(failures),
                        };
                        if error.needs_operator() {
                            stats.connected.store(false, Ordering::Relaxed);
                            *lock(&stats.problem) = Some(error.to_string());
                            tracing::error!(message = "Splunk refused the events; nothing is lost, they are retried.", destination = %this.cfg.name, %error, delay_ms = delay.as_millis() as u64);
                        } else {
                            if matches!(&error, HecError::Busy { retry_after: None, .. }) && failures >= 3 {
                                stats.connected.store(false, Ordering::Relaxed);
                            }
                            stats.reconnects.fetch_add(u64::from(failures == 1), Ordering::Relaxed);
                            tracing::warn!(message = "HEC request failed; retrying.", destination = %this.cfg.name, %error, delay_ms = delay.as_millis() as u64);
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => return (start, Err(None)),
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
        });
    }

    /// A request's outcome.
    async fn posted(
        &mut self,
        start: u64,
        result: Result<Option<u64>, Option<HecError>>,
    ) -> Result<(), SpoolError> {
        match result {
            Ok(Some(ack_id)) if self.ack_on != Some(false) => {
                if self.ack_on.is_none() {
                    self.ack_on = Some(true);
                    tracing::info!(message = "The HEC token has indexer acknowledgement: events count as delivered once Splunk confirms they are indexed.", destination = %self.name());
                }
                if let Some(r) = self.ranges.get_mut(&start) {
                    r.state = State::Waiting {
                        ack_id,
                        since: Instant::now(),
                    };
                    self.waiting.insert(ack_id, start);
                }
            }
            Ok(_) => {
                if self.ack_on.is_none() {
                    self.ack_on = Some(false);
                    if self.hec.ack == Some(true) {
                        tracing::error!(message = "ack = true, but the HEC token has no indexer acknowledgement: events count as delivered when Splunk answers 200. Enable \"Indexer acknowledgement\" on the token.", destination = %self.name());
                    } else {
                        tracing::info!(message = "No indexer acknowledgement (token without it, or ack = false): events count as delivered when Splunk answers 200.", destination = %self.name());
                    }
                }
                self.done(start);
            }
            Err(Some(HecError::Invalid { index, message })) => {
                self.refused(start, index, &message).await?;
            }
            // Stopped while backing off: the range stays, sent again at the next start.
            Err(_) => {}
        }
        Ok(())
    }

    /// An acknowledgement poll's outcome.
    fn polled(&mut self, result: Result<Vec<u64>, HecError>) {
        match result {
            Ok(confirmed) => {
                // Splunk answers again (a token put back while only acknowledgements waited).
                if lock(&self.stats.problem).take().is_some() {
                    self.stats.connected.store(true, Ordering::Relaxed);
                }
                for id in confirmed {
                    let Some(start) = self.waiting.remove(&id) else {
                        continue;
                    };
                    if let Some(Range {
                        state: State::Waiting { since, .. },
                        ..
                    }) = self.ranges.get(&start)
                    {
                        let us = since.elapsed().as_micros() as u64;
                        self.stats
                            .hec_ack_latency_us
                            .fetch_add(us, Ordering::Relaxed);
                        self.stats
                            .hec_acks_confirmed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.done(start);
                }
            }
            Err(error) if error.needs_operator() => {
                *lock(&self.stats.problem) = Some(error.to_string());
                self.stats.connected.store(false, Ordering::Relaxed);
                tracing::error!(message = "Splunk refused the acknowledgement poll.", destination = %self.name(), %error);
            }
            Err(error) => {
                tracing::warn!(message = "HEC acknowledgement poll failed; retrying.", destination = %self.name(), %error);
            }
        }
    }

    fn done(&mut self, start: u64) {
        if let Some(r) = self.ranges.remove(&start) {
            self.stats.delivered.fetch_add(r.events, Ordering::Relaxed);
        }
    }

    /// Sends again every range whose ackId was not confirmed within `ack_timeout`.
    async fn resend_timed_out(&mut self) -> Result<(), SpoolError> {
        let timeout = self.this.cfg.ack_timeout();
        let late: Vec<(u64, u64)> = self
            .ranges
            .iter()
            .filter_map(|(start, r)| match r.state {
                State::Waiting { ack_id, since } if since.elapsed() > timeout => {
                    Some((*start, ack_id))
                }
                _ => None,
            })
            .collect();
        for (start, ack_id) in late {
            self.waiting.remove(&ack_id);
            self.stats.hec_ack_timeouts.fetch_add(1, Ordering::Relaxed);
            let events = self.ranges.get(&start).map_or(0, |r| r.events);
            tracing::warn!(message = "Splunk did not confirm a batch within ack_timeout (lost by an indexer?); sending it again.", destination = %self.name(), ack_id, events, first_seq = start, timeout_s = timeout.as_secs());
            self.resend(start, None).await?;
        }
        Ok(())
    }

    /// Splunk refused event number `index` of the range at `start`: it goes to the dead-letter
    /// file with Splunk's reason, and the rest is sent again.
    async fn refused(&mut self, start: u64, index: usize, message: &str) -> Result<(), SpoolError> {
        self.resend(start, Some((index, message))).await
    }

    /// Reads the range at `start` again, rebuilds it (leaving out its refused events and, with
    /// `refused`, the event at that index with that reason) and sends it.
    async fn resend(
        &mut self,
        start: u64,
        refused: Option<(usize, &str)>,
    ) -> Result<(), SpoolError> {
        let Some(range) = self.ranges.get(&start) else {
            return Ok(());
        };
        let (count, excluded) = (range.records, range.excluded.clone());
        let (this, hec, stats, high_water) = (
            self.this.clone(),
            self.hec.clone(),
            self.stats.clone(),
            self.high_water,
        );
        let (records, built) = blocking(&self.spool, move |s| {
            let mut records = Vec::new();
            s.read(start, count, usize::MAX, &mut records)?;
            let built = this.build(&hec, &records, &excluded, high_water, &stats);
            Ok((records, built))
        })
        .await?;
        let mut built = self.account(built).await;
        if let Some((index, reason)) = refused {
            if let Some(&seq) = built.seqs.get(index) {
                if let Some(rec) = records.iter().find(|r| r.seq == seq) {
                    let line = self.this.dead_letter_line(rec, reason);
                    write_dead_letters(&self.this.dead_letter, vec![line]).await;
                }
                self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                let mut excluded = self
                    .ranges
                    .get(&start)
                    .map(|r| r.excluded.clone())
                    .unwrap_or_default();
                excluded.push(seq);
                let (this, hec, stats) = (self.this.clone(), self.hec.clone(), self.stats.clone());
                let ex = excluded.clone();
                built = tokio::task::spawn_blocking(move || {
                    this.build(&hec, &records, &ex, high_water, &stats)
                })
                .await
                .map_err(|e| SpoolError::Io {
                    op: "build HEC batch",
                    path: self.spool.dir().to_owned(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                if let Some(r) = self.ranges.get_mut(&start) {
                    r.excluded = excluded;
                }
            }
        } else {
            self.stats.resent.fetch_add(built.events, Ordering::Relaxed);
        }
        let Some(r) = self.ranges.get_mut(&start) else {
            return Ok(());
        };
        r.state = State::Sending;
        r.events = built.events;
        if built.events == 0 {
            self.ranges.remove(&start);
            return Ok(());
        }
        self.spawn_post(start, built.body, built.events);
        Ok(())
    }
}

impl Destination {
    /// Builds the body of a HEC request from spool records: each record's HEC event, gzipped
    /// when configured. Records in `excluded` are left out; records at or past `high_water`
    /// (read for the first time) are counted when filtered and dead-lettered when they cannot
    /// be sent (below it, they were counted the first time).
    fn build(
        &self,
        hec: &HecSetup,
        records: &[Record],
        excluded: &[u64],
        high_water: u64,
        stats: &DestinationStats,
    ) -> Built {
        let mut raw = Vec::with_capacity(records.iter().map(|r| r.payload.len() + 160).sum());
        let mut built = Built {
            body: Bytes::new(),
            events: 0,
            seqs: Vec::with_capacity(records.len()),
            dead: Vec::new(),
            filtered: vec![0; self.rule_names.len()],
            routed_out: 0,
        };
        for rec in records {
            if excluded.contains(&rec.seq) {
                continue;
            }
            let first = rec.seq >= high_water;
            match self.render_hec(hec, &rec.payload, &mut raw) {
                Ok(HecRendered::Event) => {
                    built.events += 1;
                    built.seqs.push(rec.seq);
                }
                Ok(HecRendered::Skipped(by)) if first => match by {
                    None => built.routed_out += 1,
                    Some(rule) => built.filtered[rule] += 1,
                },
                Ok(HecRendered::Skipped(_)) => {}
                Err(reason) if first => {
                    stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    built.dead.push(self.dead_letter_line(rec, &reason));
                }
                Err(_) => {}
            }
        }
        built.body = if self.cfg.hec_gzip() {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 6),
                flate2::Compression::fast(),
            );
            // Writing to a Vec cannot fail.
            let _ = gz.write_all(&raw);
            Bytes::from(gz.finish().unwrap_or_default())
        } else {
            Bytes::from(raw)
        };
        built
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
