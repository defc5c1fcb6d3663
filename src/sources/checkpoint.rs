//! The position of a windowed poller, per scope (subscription, …): the cursor (everything with
//! an event time before it has been read), the first start, and a bounded seen-id set pruned by
//! event time. Serialized as JSON into the spool as each batch's checkpoint record.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Checkpoint format written by this build.
pub const VERSION: u32 = 1;

/// The whole checkpoint of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub scopes: BTreeMap<String, ScopeState>,
}

/// One scope's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeState {
    /// Where reading began on the first start, ms since the epoch; never read before it.
    pub since_ms: i64,
    /// Every record with an event time before this has been read, ms since the epoch.
    pub cursor_ms: i64,
    #[serde(default)]
    pub seen: SeenSet,
    /// Containers read whole (Office 365 content blobs, by `contentId`, with their
    /// `contentCreated`), so a re-listing does not fetch them again.
    #[serde(default, skip_serializing_if = "SeenSet::is_empty")]
    pub done: SeenSet,
}

impl ScopeState {
    pub fn new(start_ms: i64) -> Self {
        ScopeState {
            since_ms: start_ms,
            cursor_ms: start_ms,
            seen: SeenSet::default(),
            done: SeenSet::default(),
        }
    }
}

/// Ids already delivered, each with its event time (ms), so it can be pruned once no query
/// can return it again. Bounded: past `max` entries the oldest are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeenSet {
    ids: HashMap<String, i64>,
}

impl SeenSet {
    /// Records `id`; false if it was already there (a duplicate).
    pub fn insert(&mut self, id: &str, time_ms: i64) -> bool {
        if self.ids.contains_key(id) {
            return false;
        }
        self.ids.insert(id.to_owned(), time_ms);
        true
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Forgets ids with an event time before `before_ms`: windows never reach back that far.
    pub fn prune_before(&mut self, before_ms: i64) {
        self.ids.retain(|_, t| *t >= before_ms);
    }

    /// Keeps at most `max` ids, dropping the oldest; returns how many were dropped.
    pub fn bound(&mut self, max: usize) -> usize {
        let excess = self.ids.len().saturating_sub(max);
        if excess == 0 {
            return 0;
        }
        let mut times: Vec<i64> = self.ids.values().copied().collect();
        times.sort_unstable();
        let cut = times[excess - 1];
        let mut dropped = 0;
        self.ids.retain(|_, t| {
            if *t <= cut && dropped < excess {
                dropped += 1;
                false
            } else {
                true
            }
        });
        dropped
    }
}

/// What one page changed in a windowed source's checkpoint: the ids it added to one scope's
/// seen set. Written as a spool checkpoint delta, so a window of many pages does not rewrite
/// the whole (growing) seen set with every page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenDelta {
    pub version: u32,
    pub scope: String,
    pub seen: Vec<(String, i64)>,
}

impl SeenDelta {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Checkpoint {
    /// Reads a checkpoint chain as the spool keeps it (a full checkpoint, then [`SeenDelta`]s);
    /// `None` when absent or not one this build understands.
    pub fn decode_chain(parts: &[Vec<u8>]) -> Option<Checkpoint> {
        let (base, deltas) = parts.split_first()?;
        let mut ck = Checkpoint::decode(base)?;
        for d in deltas {
            let d = serde_json::from_slice::<SeenDelta>(d)
                .ok()
                .filter(|d| d.version == VERSION)?;
            let state = ck.scopes.get_mut(&d.scope)?;
            for (id, t) in &d.seen {
                state.seen.insert(id, *t);
            }
        }
        Some(ck)
    }

    /// Reads a checkpoint; `None` when absent or not one this build understands.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        serde_json::from_slice::<Checkpoint>(bytes)
            .ok()
            .filter(|c| c.version == VERSION)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_set_dedupes_prunes_and_bounds() {
        let mut s = SeenSet::default();
        assert!(s.insert("a", 10));
        assert!(!s.insert("a", 10));
        assert!(s.insert("b", 20));
        assert!(s.insert("c", 30));
        s.prune_before(20);
        assert!(!s.contains("a") && s.contains("b") && s.contains("c"));
        assert_eq!(s.bound(1), 1);
        assert!(s.contains("c") && !s.contains("b"));
        assert_eq!(s.bound(5), 0);
    }

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let mut c = Checkpoint {
            version: VERSION,
            ..Checkpoint::default()
        };
        let mut st = ScopeState::new(1_000);
        st.seen.insert("x", 1_500);
        c.scopes.insert("sub".into(), st);
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(c.clone()));
        c.version = 99;
        assert_eq!(Checkpoint::decode(&c.encode()), None);
        assert_eq!(Checkpoint::decode(b"{not json"), None);
    }
}
