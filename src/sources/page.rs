//! One page of events encoded for the spool in one buffer, and the pool that keeps those
//! buffers between pages. A page's buffers are megabytes; allocated and freed for every page on
//! whichever threads the source's task and the spool's writes run on, glibc hands the memory
//! back to the kernel and faults it in again page after page (a tenth of a fault per event,
//! most of the files source's system time). Kept in the pool, they are allocated once.

use std::sync::Mutex;

use crate::event::{Event, EventKind};

/// Pages kept for reuse at most (one per source writing at the same time is enough).
const KEEP_PAGES: usize = 8;
/// A page buffer larger than this (a page of huge events) is freed rather than kept.
const KEEP_BYTES: usize = 16 << 20;

static POOL: Mutex<Vec<EncodedPage>> = Mutex::new(Vec::new());

/// Events encoded as spool payloads ([`Event::encode`]), one after another in one buffer.
#[derive(Debug, Default)]
pub struct EncodedPage {
    pub(super) bytes: Vec<u8>,
    /// Where each payload ends in `bytes`.
    pub(super) ends: Vec<usize>,
}

impl EncodedPage {
    /// An empty page, with the buffers of an earlier one when the pool has some.
    pub fn pooled() -> EncodedPage {
        let page = POOL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        debug_assert!(page.ends.is_empty());
        page
    }

    /// Gives the buffers back to the pool for the next page.
    pub fn recycle(mut self) {
        if self.bytes.capacity() > KEEP_BYTES {
            return;
        }
        self.bytes.clear();
        self.ends.clear();
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < KEEP_PAGES {
            pool.push(self);
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn push(&mut self, ev: &Event) {
        ev.encode(&mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    /// Adds the JSON object `json` as an event of `kind` from `source`, its id and time read
    /// from the bytes as [`Event::from_json_bytes`] reads them, without making an [`Event`]
    /// (no copy of the body but the one into the page). False, and nothing added, when the
    /// record needs the `Value` path.
    pub fn push_json(&mut self, kind: EventKind, source: &str, json: &[u8]) -> bool {
        let Some((id, time_ms)) = crate::event::id_and_time(kind, json) else {
            return false;
        };
        Event::encode_parts(kind, source, &id, time_ms, json, true, &mut self.bytes);
        self.ends.push(self.bytes.len());
        true
    }

    /// Adds the event these parts make (its body `json`, checked as JSON) without making it.
    pub fn push_parts(
        &mut self,
        kind: EventKind,
        source: &str,
        id: &str,
        time_ms: Option<i64>,
        json: &str,
    ) {
        Event::encode_parts(
            kind,
            source,
            id,
            time_ms,
            json.as_bytes(),
            true,
            &mut self.bytes,
        );
        self.ends.push(self.bytes.len());
    }

    /// The payloads, in order.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pushed_reads_back_as_the_event_from_its_bytes() {
        let json = br#"{"eventDataId":"e1","eventTimestamp":"2026-12-06T17:00:00Z","x":"a|b"}"#;
        let mut page = EncodedPage::default();
        assert!(page.push_json(EventKind::AzureActivity, "s", json));
        let ev = Event::from_json_bytes(EventKind::AzureActivity, "s", json).unwrap();
        page.push(&ev);
        assert!(!page.push_json(EventKind::AzureActivity, "s", b"[1]"));
        assert_eq!(page.len(), 2);
        let got: Vec<Event> = page.payloads().map(|p| Event::decode(p).unwrap()).collect();
        assert_eq!(got[0], ev);
        assert_eq!(got[1], ev);
    }
}
