//! The read side of the spool: destination cursors, reading records, acknowledging them,
//! persisting cursors, reclaiming segments every cursor has passed, and status.

use super::*;

impl Spool {
    /// Registers `destination` (persisting its cursor file) and returns the seq of the next
    /// record it must deliver. A new destination starts at the oldest retained record.
    pub fn open_cursor(&self, destination: &str) -> Result<u64, SpoolError> {
        if destination.is_empty() || destination.len() > cursor::MAX_NAME {
            return Err(self.invalid(
                "destination name",
                format!("must be 1..={} bytes long", cursor::MAX_NAME),
            ));
        }
        let mut cs = lock(&self.cursors);
        let oldest = self.oldest_seq();
        if let Some(c) = cs.get_mut(destination) {
            if c.acked < oldest {
                lock(&self.stats).cursor_gaps += 1;
                c.acked = oldest;
            }
            return Ok(c.acked);
        }
        let create = || CursorFile::create(self.storage.as_ref(), &self.dir, destination, oldest);
        let file = match create() {
            Err(e) if is_no_space(&e) && self.release_reserve() => create(),
            r => r,
        }
        .map_err(|e| {
            io_err(
                "create cursor file for",
                &self.dir.join(cursor::file_name(destination)),
                e,
            )
        })?;
        cs.insert(
            destination.to_owned(),
            Cursor {
                file,
                acked: oldest,
                persisted: oldest,
                last_persist: Instant::now(),
                deferred: false,
            },
        );
        Ok(oldest)
    }

    /// Reads event records with `seq >= from` into `out` (checkpoint records are skipped), at
    /// most `max_records` and about `max_bytes` of payload (at least one record when any is
    /// available). Returns the seq to read from next time; `from` itself when caught up.
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<u64, SpoolError> {
        self.read_with(
            from,
            max_records,
            max_bytes,
            out,
            &mut ReadBuffers::default(),
        )
    }

    /// [`Spool::read`] reusing `bufs` (payload buffers given back with
    /// [`ReadBuffers::recycle`], and the read window).
    pub fn read_with(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
        bufs: &mut ReadBuffers,
    ) -> Result<u64, SpoolError> {
        let max_records = max_records.max(1);
        let mut next = from;
        let mut count = 0usize;
        let mut bytes = 0usize;
        let win = &mut bufs.window;
        loop {
            let (reader, path, start, end, seg_next, after) = {
                let st = lock(&self.state);
                let Some(front) = st.segments.front() else {
                    return Ok(next);
                };
                if next < front.first_seq {
                    next = front.first_seq;
                }
                let i = st
                    .segments
                    .partition_point(|s| s.first_seq <= next)
                    .saturating_sub(1);
                let seg = &st.segments[i];
                let after = st.segments.get(i + 1).map(|s| s.first_seq);
                if next >= seg.next_seq {
                    match after {
                        Some(a) => {
                            next = next.max(a);
                            continue;
                        }
                        None => return Ok(next),
                    }
                }
                (
                    seg.reader.clone(),
                    seg.path.clone(),
                    seg.locate(next).offset,
                    seg.end,
                    seg.next_seq,
                    after,
                )
            };
            let mut off = start;
            win.reset();
            while off < end {
                let hb = win
                    .get(reader.as_ref(), off, record::RECORD_HEADER, end)
                    .map_err(|e| io_err("read segment", &path, e))?;
                let h = match hb {
                    Some(hb) => record::decode_header(hb),
                    None => break,
                };
                let size = record_size(h.len) as u64;
                if h.seq < next {
                    off += size;
                    continue;
                }
                if RecordKind::is_checkpoint(h.kind) {
                    next = h.seq + 1;
                    off += size;
                    continue;
                }
                if count >= max_records || (count > 0 && bytes >= max_bytes) {
                    return Ok(next);
                }
                let payload = win
                    .get(
                        reader.as_ref(),
                        off + record::RECORD_HEADER as u64,
                        h.len,
                        end,
                    )
                    .map_err(|e| io_err("read segment", &path, e))?;
                match payload {
                    Some(p) if record::crc_ok(&h, p) => {
                        let mut payload = bufs.spare.take();
                        payload.extend_from_slice(p);
                        out.push(Record {
                            seq: h.seq,
                            payload,
                        });
                        count += 1;
                        bytes += h.len;
                        next = h.seq + 1;
                        off += size;
                    }
                    _ => {
                        // Damaged since start-up (the disk changed under us): skip the rest of
                        // this segment rather than block the queue; it is counted.
                        lock(&self.stats).read_corrupt += 1;
                        tracing::error!(segment = %path.display(), offset = off,
                            "spool record failed its CRC while reading; skipping the rest of the segment");
                        break;
                    }
                }
            }
            next = next.max(seg_next);
            match after {
                Some(a) => next = next.max(a),
                None => return Ok(next),
            }
        }
    }

    /// Marks every record below `next` delivered for `destination`; persists the cursor when
    /// the last persist is older than `cursor_persist_interval`, then reclaims segments.
    pub fn ack(&self, destination: &str, next: u64) -> Result<(), SpoolError> {
        let persisted = {
            let mut cs = lock(&self.cursors);
            let c = cs
                .get_mut(destination)
                .ok_or_else(|| SpoolError::UnknownDestination {
                    dir: self.dir.clone(),
                    destination: destination.to_owned(),
                })?;
            let next = next.min(self.next_seq());
            if next > c.acked {
                c.acked = next;
            }
            if c.acked > c.persisted
                && c.last_persist.elapsed() >= self.opts.cursor_persist_interval
            {
                self.persist(c)?;
                true
            } else {
                false
            }
        };
        if persisted {
            self.reclaim()?;
        }
        Ok(())
    }

    /// Writes `c.acked` to the cursor file. On a full disk (a copy-on-write file system needs
    /// space even to overwrite) the persist is put off, not failed: delivery goes on, the
    /// cursor is persisted with a later acknowledgement, and until then nothing it passed is
    /// deleted (a crash meanwhile repeats records, never loses them).
    pub(super) fn persist(&self, c: &mut Cursor) -> Result<(), SpoolError> {
        let mut result = c.file.persist(c.acked);
        if matches!(&result, Err(e) if is_no_space(e)) && self.release_reserve() {
            result = c.file.persist(c.acked);
        }
        c.last_persist = Instant::now();
        match result {
            Ok(()) => {
                if std::mem::take(&mut c.deferred) {
                    tracing::info!(cursor = %c.file.path.display(), "spool cursor persisted again after a full disk");
                }
                c.persisted = c.acked;
                lock(&self.stats).cursor_persists += 1;
                Ok(())
            }
            Err(e) if is_no_space(&e) => {
                if !std::mem::replace(&mut c.deferred, true) {
                    tracing::warn!(cursor = %c.file.path.display(), error = %e, "spool cursor not persisted: disk full; delivery goes on and the cursor is persisted once there is room");
                }
                lock(&self.stats).cursor_persists_deferred += 1;
                Ok(())
            }
            Err(e) => Err(io_err("persist cursor", &c.file.path, e)),
        }
    }

    /// Persists every cursor with unpersisted acknowledgements, then reclaims segments. Call it
    /// periodically and at shutdown.
    pub fn flush_cursors(&self) -> Result<(), SpoolError> {
        {
            let mut cs = lock(&self.cursors);
            for c in cs.values_mut() {
                if c.acked > c.persisted {
                    self.persist(c)?;
                }
            }
        }
        self.reclaim()
    }

    /// Deletes the segments every persisted cursor has passed (never the newest one).
    pub(super) fn reclaim(&self) -> Result<(), SpoolError> {
        let min = {
            let cs = lock(&self.cursors);
            match cs.values().map(|c| c.persisted).min() {
                Some(m) => m,
                None => return Ok(()),
            }
        };
        let doomed: Vec<PathBuf> = {
            let mut st = lock(&self.state);
            let mut v = Vec::new();
            while st.segments.len() > 1 && st.segments[1].first_seq <= min {
                if let Some(s) = st.segments.pop_front() {
                    st.total_bytes -= s.end;
                    v.push(s.path);
                }
            }
            v
        };
        if doomed.is_empty() {
            return Ok(());
        }
        for p in &doomed {
            self.storage
                .remove(p)
                .map_err(|e| io_err("delete delivered segment", p, e))?;
        }
        lock(&self.stats).segments_deleted += doomed.len() as u64;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| io_err("sync directory", &self.dir, e))?;
        // Space was freed: put the reserve back first if a full disk took it.
        self.ensure_reserve();
        Ok(())
    }

    /// Waits until a record with seq >= `seq` exists. Cancel-safe; no polling.
    pub async fn wait_for_append(&self, seq: u64) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.next_seq() > seq {
                return;
            }
            notified.await;
        }
    }

    /// Per-destination queue depth and age, plus totals.
    pub fn status(&self) -> SpoolStatus {
        let cs: Vec<(String, u64)> = lock(&self.cursors)
            .iter()
            .map(|(n, c)| (n.clone(), c.acked))
            .collect();
        let st = lock(&self.state);
        let now = now_ms();
        let destinations = cs
            .into_iter()
            .map(|(name, cursor)| {
                let mut records = 0;
                let mut bytes = 0;
                let mut oldest = None;
                for s in &st.segments {
                    let (r, b) = s.queued_from(cursor).unwrap_or_else(|e| {
                        tracing::warn!(segment = %s.path.display(), error = %e,
                            "spool status: cannot read segment; counting all of it");
                        (s.events, s.event_bytes)
                    });
                    if r > 0 && oldest.is_none() {
                        oldest = Some(Duration::from_millis(now.saturating_sub(s.created_ms)));
                    }
                    records += r;
                    bytes += b;
                }
                DestinationStatus {
                    name,
                    cursor,
                    queued_records: records,
                    queued_bytes: bytes,
                    oldest_age: oldest,
                }
            })
            .collect();
        SpoolStatus {
            dir: self.dir.clone(),
            destinations,
            total_records: st.segments.iter().map(|s| s.events).sum(),
            total_bytes: st.total_bytes,
            max_bytes: self.opts.max_bytes,
            segments: st.segments.len(),
            next_seq: self.next_seq(),
        }
    }

    /// Releases a removed destination's cursor (deletes its file) so it no longer pins disk.
    pub fn forget_destination(&self, destination: &str) -> Result<(), SpoolError> {
        let removed = lock(&self.cursors).remove(destination);
        if let Some(c) = removed {
            self.storage
                .remove(&c.file.path)
                .and_then(|()| self.storage.sync_dir(&self.dir))
                .map_err(|e| io_err("delete cursor file", &c.file.path, e))?;
            self.reclaim()?;
        }
        Ok(())
    }
}
