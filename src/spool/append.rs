//! The write side of the spool: appending a batch with its checkpoint under one
//! `fdatasync`, rolling to a new segment, and what a failed write or sync leaves behind.

use super::*;

/// The largest batch buffer the writer keeps between batches.
const KEEP_BUFFER: usize = 8 << 20;

impl Spool {
    /// Appends `events` and one checkpoint record for `source` as one batch with one
    /// `fdatasync`; returns the seq of the checkpoint (the batch's last record; its events have
    /// the seqs just below). Only after `Ok` is the batch durable; on any error nothing was
    /// acknowledged and the caller retries later ([`SpoolError::Full`]: when there is room).
    pub fn append_batch(
        &self,
        source: &str,
        events: &[&[u8]],
        checkpoint: &[u8],
    ) -> Result<u64, SpoolError> {
        self.append(source, events, checkpoint, RecordKind::Checkpoint)
    }

    /// [`Spool::append_batch`] with a checkpoint *delta*: `delta` is kept after the source's
    /// checkpoint instead of replacing it, and [`Spool::checkpoint_chain`] returns the full
    /// checkpoint with every delta since. The source must write a full checkpoint first, and
    /// should write one again before its deltas outgrow it (a new segment copies the chain).
    pub fn append_batch_delta(
        &self,
        source: &str,
        events: &[&[u8]],
        delta: &[u8],
    ) -> Result<u64, SpoolError> {
        if !lock(&self.state).checkpoints.contains_key(source) {
            return Err(self.invalid(
                "checkpoint delta",
                format!("source {source:?} has no full checkpoint to extend"),
            ));
        }
        self.append(source, events, delta, RecordKind::CheckpointDelta)
    }

    fn append(
        &self,
        source: &str,
        events: &[&[u8]],
        checkpoint: &[u8],
        ck_kind: RecordKind,
    ) -> Result<u64, SpoolError> {
        if source.len() > u16::MAX as usize {
            return Err(self.invalid("source name", format!("{} bytes long", source.len())));
        }
        let ck_len = 2 + source.len() + checkpoint.len();
        if ck_len > MAX_PAYLOAD {
            return Err(self.invalid(
                "checkpoint",
                format!("{ck_len} bytes long (max {MAX_PAYLOAD})"),
            ));
        }
        if let Some(e) = events.iter().find(|e| e.len() > MAX_PAYLOAD) {
            return Err(self.invalid(
                "event",
                format!("{} bytes long (max {MAX_PAYLOAD})", e.len()),
            ));
        }
        let batch_bytes: u64 = events
            .iter()
            .map(|e| record_size(e.len()) as u64)
            .sum::<u64>()
            + record_size(ck_len) as u64;

        let mut w = lock(&self.writer);
        let roll = w.file.is_none()
            || (w.end > w.base_end && w.end + batch_bytes > self.opts.segment_bytes);
        let roll_bytes = if roll { self.roll_bytes() } else { 0 };
        let need = batch_bytes + roll_bytes;
        if need > self.opts.max_bytes {
            return Err(SpoolError::BatchTooLarge {
                dir: self.dir.clone(),
                bytes: need,
                max: self.opts.max_bytes,
            });
        }
        let used = lock(&self.state).total_bytes;
        if used + need > self.opts.max_bytes {
            lock(&self.stats).full_rejections += 1;
            return Err(self.full(used, false, 0));
        }
        let tried_recently = w.no_space_at.is_some_and(|t| t.elapsed() < DISK_FULL_RETRY);
        if !roll && w.end == w.base_end && tried_recently && self.disk_full().is_some() {
            // Still full from the last try: do not write (and cut again) a batch that does not
            // fit, except now and then (statvfs does not count the blocks only root may use).
            // A roll, which may give the reserve back, is always tried.
            if let Ok(free) = self.storage.free_space(&self.dir) {
                if free < need {
                    return Err(self.disk_full_error(Some(free)));
                }
            }
        }
        if roll {
            self.roll(&mut w)?;
        }

        // Encode the batch.
        let first = w.next_seq;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        for (i, e) in events.iter().enumerate() {
            encode_record(&mut buf, first + i as u64, RecordKind::Event, &[e]);
        }
        let ck_seq = first + events.len() as u64;
        let prefix = checkpoint_prefix(source);
        encode_record(
            &mut buf,
            ck_seq,
            ck_kind,
            &[&prefix, source.as_bytes(), checkpoint],
        );
        // The seqs are used up even if the write fails: seqs never repeat in the log.
        w.next_seq = ck_seq + 1;
        let offset = w.end;
        let result = match w.file.as_mut() {
            Some(f) => f
                .write_all_at(offset, &buf)
                .map_err(|e| (false, e))
                .and_then(|()| f.sync_data().map_err(|e| (true, e))),
            None => Err((false, io::Error::other("no open segment"))),
        };
        // Kept for the next batch unless a huge one grew it: that memory goes back at once.
        if buf.capacity() <= KEEP_BUFFER {
            w.buf = buf;
        }
        if let Err((sync, e)) = result {
            return Err(self.abandon_batch(&mut w, sync, e));
        }
        w.end += batch_bytes;

        // Commit: make the batch visible.
        {
            let mut st = lock(&self.state);
            st.total_bytes += batch_bytes;
            if let Some(seg) = st.segments.back_mut() {
                for (i, e) in events.iter().enumerate() {
                    seg.push(first + i as u64, RecordKind::Event, e.len());
                }
                seg.push(ck_seq, ck_kind, ck_len);
            }
            st.checkpoints.entry(source.to_owned()).or_default().add(
                ck_seq,
                ck_kind,
                checkpoint.to_vec(),
            );
        }
        self.committed_next.store(w.next_seq, Ordering::Release);
        drop(w);
        self.disk_free.store(DISK_NOT_FULL, Ordering::Relaxed);
        {
            let mut s = lock(&self.stats);
            s.batches_appended += 1;
            s.events_appended += events.len() as u64;
        }
        self.notify.notify_waiters();
        Ok(ck_seq)
    }

    pub(super) fn full(&self, used: u64, disk_full: bool, free: u64) -> SpoolError {
        SpoolError::Full {
            dir: self.dir.clone(),
            used,
            max: self.opts.max_bytes,
            disk_full,
            free,
        }
    }

    /// After a failed write or sync of a batch: drop its bytes if possible, close the segment
    /// when its durability is in doubt, and turn the error into what the caller should see.
    pub(super) fn abandon_batch(&self, w: &mut Writer, sync: bool, e: io::Error) -> SpoolError {
        let end = w.end;
        {
            let mut s = lock(&self.stats);
            if sync {
                s.sync_errors += 1;
            } else {
                s.write_errors += 1;
            }
        }
        let cleaned = match w.file.as_mut() {
            Some(f) => f.set_len(end).and_then(|()| f.sync_data()).is_ok(),
            None => false,
        };
        let no_space = is_no_space(&e);
        // After a failed fsync the kernel may have dropped dirty pages and a retry could
        // "succeed" without the data: never trust this segment again.
        if sync || !cleaned {
            tracing::error!(segment = %w.path.display(), error = %e,
                "spool: {} failed; closing the segment, the batch was not acknowledged",
                if sync { "fdatasync" } else { "write" });
            w.file = None;
        } else if no_space && w.end > w.base_end {
            // The disk is full. The newest segment is never deleted, so while batches keep
            // going into this one, delivering it would free nothing: close it, and the next
            // batch starts a new segment (small: header and checkpoints) after which this one
            // is deleted once every destination has passed it.
            w.file = None;
        }
        if no_space {
            w.no_space_at = Some(Instant::now());
            return self.disk_full_error(None);
        }
        io_err(
            if sync {
                "fdatasync segment"
            } else {
                "write segment"
            },
            &w.path,
            e,
        )
    }

    /// Bytes a new segment starts with (header and the latest checkpoints).
    pub(super) fn roll_bytes(&self) -> u64 {
        let st = lock(&self.state);
        SEGMENT_HEADER as u64
            + st.checkpoints
                .iter()
                .map(|(s, c)| c.record_bytes(s))
                .sum::<u64>()
    }

    /// Starts a new segment: header plus a copy of every source's latest checkpoint, synced
    /// with its directory before any batch goes in.
    pub(super) fn roll(&self, w: &mut Writer) -> Result<(), SpoolError> {
        let first = w.next_seq;
        let path = self.dir.join(segment::file_name(first));
        let created_ms = now_ms();
        // Every source's chain, in order: its full checkpoint, then its deltas.
        let mut chains: Vec<(String, Vec<Vec<u8>>)> = lock(&self.state)
            .checkpoints
            .iter()
            .map(|(s, c)| (s.clone(), c.parts.clone()))
            .collect();
        chains.sort();
        let cks: Vec<(String, RecordKind, Vec<u8>)> = chains
            .into_iter()
            .flat_map(|(s, parts)| {
                parts.into_iter().enumerate().map(move |(i, d)| {
                    let kind = if i == 0 {
                        RecordKind::Checkpoint
                    } else {
                        RecordKind::CheckpointDelta
                    };
                    (s.clone(), kind, d)
                })
            })
            .collect();
        let mut buf = Vec::new();
        buf.extend_from_slice(
            &SegmentHeader {
                first_seq: first,
                created_ms,
            }
            .encode(),
        );
        for (seq, (s, kind, d)) in (first..).zip(&cks) {
            encode_record(
                &mut buf,
                seq,
                *kind,
                &[&checkpoint_prefix(s), s.as_bytes(), d],
            );
        }
        w.file = None;
        let create = || {
            let created = self.storage.create(&path).and_then(|mut f| {
                f.write_all_at(0, &buf)?;
                f.sync_data()?;
                self.storage.sync_dir(&self.dir)?;
                let reader = self.storage.open_read(&path)?;
                Ok((f, reader))
            });
            if created.is_err() {
                // Best effort: the file is not referenced by anything yet.
                let _ = self.storage.remove(&path);
                let _ = self.storage.sync_dir(&self.dir);
                lock(&self.stats).write_errors += 1;
            }
            created
        };
        let mut released = false;
        let created = match create() {
            // Without a new segment nothing already delivered can be deleted: give the
            // reserve back to the disk and try once more.
            Err(e) if is_no_space(&e) && self.release_reserve() => {
                released = true;
                create()
            }
            r => r,
        };
        let (file, reader) = match created {
            Ok(x) => x,
            Err(e) if is_no_space(&e) => return Err(self.disk_full_error(None)),
            Err(e) => return Err(io_err("create segment", &path, e)),
        };
        let mut seg = Segment::new(first, path.clone(), created_ms, reader);
        for (seq, (s, kind, d)) in (first..).zip(&cks) {
            seg.push(seq, *kind, 2 + s.len() + d.len());
        }
        let seq = first + cks.len() as u64;
        w.file = Some(file);
        w.path = path;
        w.end = buf.len() as u64;
        w.base_end = w.end;
        w.next_seq = seq;
        {
            let mut st = lock(&self.state);
            st.total_bytes += buf.len() as u64;
            st.segments.push_back(seg);
        }
        self.committed_next.store(seq, Ordering::Release);
        lock(&self.stats).segments_created += 1;
        if !released {
            // A new spool, or one whose reserve could not be written back yet.
            self.ensure_reserve();
        }
        Ok(())
    }
}
