//! Temporary in-memory stand-in for the durable spool (replaced by the spool's branch).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub max_bytes: u64,
    pub segment_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool full")]
    Full { needed: u64 },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<(u64, bool, Vec<u8>)>,
    checkpoints: HashMap<String, Vec<u8>>,
    cursors: HashMap<String, u64>,
}

#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
}

impl Spool {
    pub fn open(_dir: &Path, _opts: SpoolOptions) -> Result<Spool, SpoolError> {
        Ok(Spool {
            inner: Mutex::default(),
            notify: tokio::sync::Notify::new(),
        })
    }
    pub fn append_batch(
        &self,
        source: &str,
        events: &[&[u8]],
        checkpoint: &[u8],
    ) -> Result<u64, SpoolError> {
        let mut g = self.inner.lock().unwrap();
        for e in events {
            let seq = g.records.len() as u64 + 1;
            g.records.push((seq, true, e.to_vec()));
        }
        let seq = g.records.len() as u64 + 1;
        g.records.push((seq, false, checkpoint.to_vec()));
        g.checkpoints.insert(source.to_owned(), checkpoint.to_vec());
        self.notify.notify_waiters();
        Ok(seq)
    }
    pub fn checkpoint(&self, source: &str) -> Option<Vec<u8>> {
        self.inner.lock().unwrap().checkpoints.get(source).cloned()
    }
    pub fn open_cursor(&self, destination: &str) -> Result<u64, SpoolError> {
        Ok(*self
            .inner
            .lock()
            .unwrap()
            .cursors
            .entry(destination.to_owned())
            .or_insert(1))
    }
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        _max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<u64, SpoolError> {
        let g = self.inner.lock().unwrap();
        let mut next = from;
        for (seq, ev, p) in g.records.iter().filter(|r| r.0 >= from) {
            if out.len() >= max_records {
                break;
            }
            if *ev {
                out.push(Record {
                    seq: *seq,
                    payload: p.clone(),
                });
            }
            next = seq + 1;
        }
        Ok(next)
    }
    pub fn ack(&self, destination: &str, next: u64) -> Result<(), SpoolError> {
        self.inner
            .lock()
            .unwrap()
            .cursors
            .insert(destination.to_owned(), next);
        Ok(())
    }
    pub fn flush_cursors(&self) -> Result<(), SpoolError> {
        Ok(())
    }
    pub async fn wait_for_append(&self, seq: u64) {
        loop {
            let n = self.notify.notified();
            if self.inner.lock().unwrap().records.len() as u64 >= seq {
                return;
            }
            n.await;
        }
    }
}
