//! The consumer loop of an `eventhubs` source: polls messages into a batch, makes the batch
//! durable (bad messages to the dead-letter file, events to the spool, both synced; on a
//! thread of its own, one batch at a time, while polling goes on) and only then commits the
//! next offsets. When the group takes partitions away, the batch in hand is
//! finished and committed inside the rebalance callback, before the partitions move on.
//!
//! A group that is rebalancing refuses commits (`REBALANCE_IN_PROGRESS`, as Kafka and Event Hubs
//! do) until every member has rejoined. So when a commit is refused the loop pauses fetching
//! (what it reads now could not be committed either, and the next owner would read it again),
//! keeps the refused offsets, and commits them under the new generation for the partitions it
//! still owns once the group has settled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::records::{self, BadMessage, Coordinates};
use super::EventHubsSource;
use crate::event::Event;
use crate::sources::page::EncodedPage;
use crate::sources::{SourceContext, SourceError};
use crate::spool::SpoolError;

/// How long a batch may wait for more records before it is made durable.
const LINGER: Duration = Duration::from_millis(100);
/// One poll's wait when no message is ready.
const POLL: Duration = Duration::from_millis(50);
/// Longest pause after a refused commit when no rebalance follows.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Records read since the last commit.
#[derive(Debug, Default)]
struct Batch {
    events: Vec<Event>,
    /// Dead-letter lines for the messages (or records) that could not be read.
    dead: Vec<String>,
    /// Per partition: the offset to commit (last message + 1) and the records taken from it.
    next_offsets: BTreeMap<i32, i64>,
    records: BTreeMap<i32, u64>,
    started: Option<Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.next_offsets.is_empty()
    }
}

/// What the polling loop and the rebalance callback share.
struct Shared {
    name: String,
    topic: String,
    ctx: SourceContext,
    /// The runtime the source was started from, for waiting on it from this thread.
    runtime: tokio::runtime::Handle,
    dead_letter: PathBuf,
    batch: Mutex<Batch>,
    /// The batch being made durable on its own thread, if any.
    in_flight: Mutex<Option<InFlight>>,
    /// Offsets made durable whose commit was refused, to commit with the next batch or, after a
    /// rebalance, for the partitions still owned.
    pending: Mutex<BTreeMap<i32, i64>>,
    /// A commit was refused because the group is rebalancing: stop fetching until it settles.
    rebalancing: AtomicBool,
    /// A failure inside a callback, reported by the loop.
    failure: Mutex<Option<SourceError>>,
}

/// The librdkafka context: statistics feed the lag metrics, revocations flush the batch.
struct Context {
    shared: Arc<Shared>,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.shared.topic) else {
            return;
        };
        let owned: Vec<(i32, i64)> = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.desired)
            .filter_map(|p| {
                let lag = if p.consumer_lag >= 0 {
                    p.consumer_lag
                } else if p.hi_offset >= 0 {
                    p.hi_offset - p.lo_offset.max(0)
                } else {
                    return None;
                };
                Some((p.partition, lag))
            })
            .collect();
        self.shared.ctx.stats.partitions.set_lags(&owned);
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(message = "Partitions revoked; committing the batch in hand.", source = %self.shared.name, partitions = ?parts);
                if let Err(e) = flush(&self.shared, consumer) {
                    self.shared.fail(e);
                }
                self.shared.ctx.stats.partitions.revoked(&parts);
            }
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(message = "Partitions assigned; resuming from the committed offsets.", source = %self.shared.name, partitions = ?parts);
                // Before the assignment fetches its start offsets: commit, under the new
                // generation, what this member made durable but could not commit, for the
                // partitions it keeps. Others' offsets belong to their new owners now.
                let kept: BTreeMap<i32, i64> = {
                    let mut pending = lock(&self.shared.pending);
                    let kept = pending
                        .iter()
                        .filter(|(p, _)| parts.contains(p))
                        .map(|(p, o)| (*p, *o))
                        .collect();
                    pending.clear();
                    kept
                };
                if !kept.is_empty() {
                    // A refusal here leaves them uncommitted: read again, never lost.
                    let _ = commit(&self.shared, consumer, &kept);
                }
                self.shared.rebalancing.store(false, Ordering::Release);
            }
            Rebalance::Error(e) => {
                tracing::warn!(message = "Consumer group rebalance failed.", source = %self.shared.name, error = %e);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl Shared {
    fn fail(&self, e: SourceError) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
    }

    fn take_failure(&self) -> Option<SourceError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    fn config_error(&self, message: String) -> SourceError {
        SourceError::Config {
            source_name: self.name.clone(),
            message,
        }
    }

    /// Adds one message to the batch.
    fn add(&self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        let at = Coordinates {
            topic: &self.topic,
            partition,
            offset,
        };
        let decoded = records::decode(&self.name, at, payload);
        let mut batch = lock(&self.batch);
        batch.started.get_or_insert_with(Instant::now);
        for bad in &decoded.bad {
            batch.dead.push(self.dead_line(at, bad, payload));
        }
        *batch.records.entry(partition).or_default() += decoded.events.len() as u64;
        batch.events.extend(decoded.events);
        batch.next_offsets.insert(partition, offset + 1);
    }

    /// One dead-letter line: where the message sits, what is wrong, and the message itself
    /// (as text when it is UTF-8, else as hex), so nothing is lost.
    fn dead_line(&self, at: Coordinates<'_>, bad: &BadMessage, payload: Option<&[u8]>) -> String {
        let fields = serde_json::json!({
            "source": self.name,
            "topic": at.topic,
            "partition": at.partition,
            "offset": at.offset,
            "error": bad.to_string(),
        });
        crate::sources::dead_letter::line(fields, payload.unwrap_or_default())
    }

    /// Appends the dead-letter lines and syncs the file.
    fn write_dead(&self, lines: &[String]) -> Result<(), SourceError> {
        let written = crate::sources::dead_letter::append(&self.dead_letter, lines);
        written.map_err(|e| {
            self.config_error(format!(
                "cannot write the dead-letter file {}: {e}",
                self.dead_letter.display()
            ))
        })?;
        tracing::warn!(message = "Unreadable Event Hubs messages written to the dead-letter file.", source = %self.name, count = lines.len(), file = %self.dead_letter.display());
        self.ctx
            .stats
            .rejected
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Appends the events with a checkpoint (the offsets, for `spool status` and humans) as one
    /// synced batch, waiting while the spool is full; `None`: cancelled before appending, else
    /// how many events were rejected. A batch the spool cannot take at once goes in parts (each
    /// with the same checkpoint: the offsets are committed only after the last), and an event
    /// that can never fit in the spool is rejected alone, so one record never stops the source.
    fn spool(
        &self,
        events: &[Event],
        next: &BTreeMap<i32, i64>,
    ) -> Result<Option<u64>, SourceError> {
        if events.is_empty() {
            return Ok(Some(0));
        }
        // Every payload in one buffer, kept from batch to batch.
        let mut payloads = EncodedPage::pooled();
        for ev in events {
            payloads.push(ev);
        }
        let refs: Vec<&[u8]> = payloads.payloads().collect();
        let ends: Vec<usize> = refs
            .iter()
            .scan(0, |end, r| {
                *end += r.len();
                Some(*end)
            })
            .collect();
        let result = self.spool_payloads(events, &refs, &ends, next);
        drop(refs);
        payloads.recycle();
        result
    }

    /// [`Shared::spool`] of the events' payloads (`ends`: where each ends, counted from the
    /// first).
    fn spool_payloads(
        &self,
        events: &[Event],
        refs: &[&[u8]],
        ends: &[usize],
        next: &BTreeMap<i32, i64>,
    ) -> Result<Option<u64>, SourceError> {
        let checkpoint =
            serde_json::json!({ "version": 1, "topic": self.topic, "next_offsets": next })
                .to_string();
        let mut waited = false;
        let (mut done, mut take, mut rejected) = (0, refs.len(), 0);
        loop {
            let part = &refs[done..done + take];
            match self
                .ctx
                .spool
                .append_batch(&self.name, part, checkpoint.as_bytes())
            {
                Ok(_) => {
                    done += take;
                    if done < refs.len() {
                        take = refs.len() - done;
                        continue;
                    }
                    if waited {
                        tracing::info!(message = "Spool has room again; source resumed.", source = %self.name);
                    }
                    return Ok(Some(rejected));
                }
                Err(SpoolError::BatchTooLarge { max, .. }) if take > 1 => {
                    take = crate::sources::quarter(ends, done, take, max);
                }
                Err(SpoolError::Full { max, .. })
                    if take > 1 && crate::sources::part_bytes(ends, done, take) > max / 4 =>
                {
                    take = crate::sources::quarter(ends, done, take, max);
                }
                Err(SpoolError::BatchTooLarge { .. }) => {
                    tracing::warn!(message = "Record rejected: it can never fit in the spool ([spool] max_bytes).", source = %self.name, event = %events[done].id, bytes = part[0].len());
                    self.ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    rejected += 1;
                    done += 1;
                    take = refs.len() - done;
                    if take == 0 {
                        return Ok(Some(rejected));
                    }
                }
                Err(SpoolError::Full {
                    disk_full, free, ..
                }) => {
                    if !waited {
                        if disk_full {
                            tracing::warn!(message = "Disk full: source paused until there is space again; destinations go on delivering.", source = %self.name, free_bytes = free, spool = %self.ctx.spool.dir().display());
                        } else {
                            tracing::warn!(message = "Spool is full; source paused until destinations catch up.", source = %self.name);
                        }
                        self.ctx.stats.paused.fetch_add(1, Ordering::Relaxed);
                        waited = true;
                    }
                    // This is the source's own blocking thread: wait on the runtime for room or
                    // for the cancellation, whichever comes first. The timer is made inside the
                    // runtime (made on this thread, outside it, it panicked).
                    let cancel = self.ctx.cancel.clone();
                    let cancelled = self.runtime.block_on(async move {
                        tokio::time::timeout(Duration::from_millis(200), cancel.cancelled())
                            .await
                            .is_ok()
                    });
                    if cancelled {
                        return Ok(None);
                    }
                }
                Err(error) => {
                    return Err(SourceError::Spool {
                        source_name: self.name.clone(),
                        error,
                    })
                }
            }
        }
    }
}

/// A batch being made durable on its own thread while the consumer goes on polling.
struct InFlight {
    /// `None`: cancelled before the batch was appended; else how many events were rejected.
    handle: std::thread::JoinHandle<Result<Option<u64>, SourceError>>,
    next_offsets: BTreeMap<i32, i64>,
    records: BTreeMap<i32, u64>,
    events: u64,
}

/// Starts making the batch in hand durable (dead letters, then the spool, each synced) on a
/// thread of its own, so the fsync does not stall fetching. At most one is in flight: the
/// previous one is finished (and committed) first, which keeps commits in order.
fn start_flush(shared: &Arc<Shared>, consumer: &BaseConsumer<Context>) -> Result<(), SourceError> {
    finish_flush(shared, consumer)?;
    let batch = std::mem::take(&mut *lock(&shared.batch));
    if batch.is_empty() {
        // Offsets refused earlier (not during a rebalance, which settles them itself) are
        // retried even when no new record came.
        let pending = lock(&shared.pending).clone();
        if !pending.is_empty() && !shared.rebalancing.load(Ordering::Acquire) {
            lock(&shared.pending).clear();
            commit(shared, consumer, &pending);
        }
        return Ok(());
    }
    let worker = shared.clone();
    let (dead, events, next) = (batch.dead, batch.events, batch.next_offsets.clone());
    let count = events.len() as u64;
    let handle = std::thread::Builder::new()
        .name("eventhubs-spool".into())
        .spawn(move || {
            if !dead.is_empty() {
                worker.write_dead(&dead)?;
            }
            worker.spool(&events, &next)
        })
        .map_err(|e| shared.config_error(format!("cannot start a spool writer thread: {e}")))?;
    *lock(&shared.in_flight) = Some(InFlight {
        handle,
        next_offsets: batch.next_offsets,
        records: batch.records,
        events: count,
    });
    Ok(())
}

/// Waits for the batch in flight, then commits its offsets (with any refused before). A batch
/// that could not be appended (cancelled while the spool was full) is not committed: it will
/// be read again.
fn finish_flush(shared: &Shared, consumer: &BaseConsumer<Context>) -> Result<(), SourceError> {
    let Some(job) = lock(&shared.in_flight).take() else {
        return Ok(());
    };
    let durable = job
        .handle
        .join()
        .unwrap_or_else(|_| Err(shared.config_error("the spool writer thread panicked".into())))?;
    let Some(rejected) = durable else {
        return Ok(());
    };
    let stats = &shared.ctx.stats;
    stats
        .spooled
        .fetch_add(job.events.saturating_sub(rejected), Ordering::Relaxed);
    for (p, n) in &job.records {
        stats.partitions.add_consumed(*p, *n);
    }
    let mut offsets = std::mem::take(&mut *lock(&shared.pending));
    offsets.extend(job.next_offsets);
    commit(shared, consumer, &offsets);
    Ok(())
}

/// Makes everything in hand durable and commits it, before returning.
fn flush(shared: &Arc<Shared>, consumer: &BaseConsumer<Context>) -> Result<(), SourceError> {
    start_flush(shared, consumer)?;
    finish_flush(shared, consumer)
}

/// Whether the batch in flight has finished (so its commit need not wait).
fn in_flight_done(shared: &Shared) -> bool {
    lock(&shared.in_flight)
        .as_ref()
        .is_some_and(|j| j.handle.is_finished())
}

/// Commits `offsets` (partition → next offset to read). A refused commit keeps them pending;
/// a refusal because the group is rebalancing also pauses fetching (see the module comment).
fn commit(shared: &Shared, consumer: &BaseConsumer<Context>, offsets: &BTreeMap<i32, i64>) -> bool {
    let mut tpl = TopicPartitionList::new();
    for (p, next) in offsets {
        // Cannot fail for a fresh list and a concrete offset.
        let _ = tpl.add_partition_offset(&shared.topic, *p, Offset::Offset(*next));
    }
    let parts: Vec<i32> = offsets.keys().copied().collect();
    let started = Instant::now();
    let result = consumer.commit(&tpl, CommitMode::Sync);
    shared
        .ctx
        .stats
        .partitions
        .commit_done(&parts, started.elapsed(), result.is_ok());
    let Err(error) = result else {
        return true;
    };
    let mut pending = lock(&shared.pending);
    for (p, next) in offsets {
        let e = pending.entry(*p).or_insert(*next);
        *e = (*e).max(*next);
    }
    let code = match &error {
        KafkaError::ConsumerCommit(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    if matches!(
        code,
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
        )
    ) {
        shared.rebalancing.store(true, Ordering::Release);
        tracing::info!(message = "The group is rebalancing; offsets will be committed once it settles.", source = %shared.name, partitions = ?parts);
    } else {
        // The records are in the spool; if the commit never succeeds they are read again
        // after a restart or rebalance, with the same ids, so the SIEM can drop the repeats.
        tracing::warn!(message = "Offset commit failed; will retry with the next batch.", source = %shared.name, partitions = ?parts, %error);
    }
    false
}

/// The source's blocking thread: subscribe, poll, batch, flush; on cancel flush and leave.
pub(super) fn consume(source: EventHubsSource, ctx: SourceContext) -> Result<(), SourceError> {
    let cancel = ctx.cancel.clone();
    let shared = Arc::new(Shared {
        name: source.name.clone(),
        topic: source.topic.clone(),
        ctx,
        runtime: tokio::runtime::Handle::current(),
        dead_letter: source.dead_letter.clone(),
        batch: Mutex::default(),
        in_flight: Mutex::default(),
        pending: Mutex::default(),
        rebalancing: AtomicBool::new(false),
        failure: Mutex::default(),
    });
    let consumer: BaseConsumer<Context> = source
        .client
        .create_with_context(Context {
            shared: shared.clone(),
        })
        .map_err(|e| shared.config_error(format!("cannot create the Kafka consumer: {e}")))?;
    consumer.subscribe(&[&source.topic]).map_err(|e| {
        shared.config_error(format!(
            "cannot subscribe to topic \"{}\": {e}",
            source.topic
        ))
    })?;
    tracing::info!(message = "Source started.", source = %source.name, topic = %source.topic, group = %source.group);
    let mut last_error: Option<Instant> = None;
    let mut paused: Option<(Instant, TopicPartitionList)> = None;
    let result = loop {
        if cancel.is_cancelled() {
            break flush(&shared, &consumer);
        }
        let rebalancing = shared.rebalancing.load(Ordering::Acquire);
        match (&paused, rebalancing) {
            (None, true) => {
                if let Ok(assigned) = consumer.assignment() {
                    let _ = consumer.pause(&assigned);
                    paused = Some((Instant::now(), assigned));
                }
            }
            (Some((since, assigned)), _) if !rebalancing || since.elapsed() > MAX_PAUSE => {
                // A new assignment starts unpaused; resuming what was paused is for the case
                // where no rebalance came.
                let _ = consumer.resume(assigned);
                shared.rebalancing.store(false, Ordering::Release);
                paused = None;
            }
            _ => {}
        }
        let polled = consumer.poll(POLL);
        let idle = polled.is_none();
        match polled {
            None => {}
            Some(Ok(msg)) => shared.add(msg.partition(), msg.offset(), msg.payload()),
            Some(Err(error)) => log_error(&shared.name, &error, &mut last_error),
        }
        if let Some(e) = shared.take_failure() {
            break Err(e);
        }
        if in_flight_done(&shared) {
            if let Err(e) = finish_flush(&shared, &consumer) {
                break Err(e);
            }
        }
        let (due, full) = {
            let b = lock(&shared.batch);
            let full = b.events.len() >= source.batch_size;
            let due =
                !b.is_empty() && (idle || full || b.started.is_some_and(|s| s.elapsed() >= LINGER));
            (due, full)
        };
        // While a batch is in flight the next one keeps growing, up to batch_size; then it
        // waits for the one in flight (start_flush finishes that first).
        let busy = lock(&shared.in_flight).is_some();
        if due && (!busy || full) {
            if let Err(e) = start_flush(&shared, &consumer) {
                break Err(e);
            }
        }
    };
    // Leaving the group hands the partitions to the other members at once.
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(message = "Source stopped.", source = %source.name);
    result?;
    shared.take_failure().map_or(Ok(()), Err)
}

/// Broker errors are retried by librdkafka; say so at most every 30 s.
fn log_error(source: &str, error: &rdkafka::error::KafkaError, last: &mut Option<Instant>) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
        tracing::warn!(message = "Kafka consumer error; retrying.", source, %error);
        *last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::sources::SourceStats;
    use crate::spool::{Spool, SpoolOptions};

    fn event(id: &str, bytes: usize) -> Event {
        Event::from_json(
            EventKind::EventHubsActivity,
            "eh",
            &serde_json::json!({"id": id, "pad": "p".repeat(bytes)}),
        )
    }

    /// A batch larger than the spool goes in parts, waiting while the spool is full; a record
    /// that can never fit is rejected alone and counted (before: the spool's refusal stopped
    /// the source, and the process; and waiting on a full spool panicked, the timer being made
    /// outside the runtime).
    #[test]
    fn a_batch_larger_than_the_spool_goes_in_parts_and_one_record_never_stops_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = SpoolOptions {
            max_bytes: 4 << 20,
            ..SpoolOptions::default()
        };
        let spool = Arc::new(Spool::open(&dir.path().join("spool"), opts).unwrap());
        let shared = Shared {
            name: "eh".into(),
            topic: "t".into(),
            ctx: SourceContext {
                spool: spool.clone(),
                cancel: tokio_util::sync::CancellationToken::new(),
                stats: Arc::new(SourceStats::default()),
            },
            runtime: runtime.handle().clone(),
            dead_letter: dir.path().join("dead.ndjson"),
            batch: Mutex::default(),
            in_flight: Mutex::default(),
            pending: Mutex::default(),
            rebalancing: AtomicBool::new(false),
            failure: Mutex::default(),
        };
        let mut events: Vec<Event> = (0..20)
            .map(|i| event(&format!("e{i}"), 300 << 10))
            .collect();
        events.insert(7, event("too-big", 5 << 20));
        let mut from = spool.open_cursor("d").unwrap();
        let rejected = std::thread::scope(|s| {
            let writer = s.spawn(|| shared.spool(&events, &BTreeMap::from([(0, 21)])));
            let mut ids = Vec::new();
            // Reading starts once the writer has found the spool full.
            while shared.ctx.stats.paused.load(Ordering::Relaxed) == 0 && !writer.is_finished() {
                runtime.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
            }
            while !writer.is_finished() || from < spool.next_seq() {
                let mut recs = Vec::new();
                let next = spool.read(from, 1_000, 64 << 20, &mut recs).unwrap();
                ids.extend(recs.iter().map(|r| Event::decode(&r.payload).unwrap().id));
                if next > from {
                    spool.ack("d", next).unwrap();
                    spool.flush_cursors().unwrap();
                    from = next;
                }
                runtime.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
            }
            let want: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
            assert_eq!(ids, want);
            writer.join().unwrap().unwrap()
        });
        assert_eq!(rejected, Some(1));
        assert_eq!(shared.ctx.stats.rejected.load(Ordering::Relaxed), 1);
        assert!(
            shared.ctx.stats.paused.load(Ordering::Relaxed) >= 1,
            "the spool was never full: the wait was not exercised"
        );
    }
}
