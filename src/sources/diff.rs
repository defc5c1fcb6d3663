//! The diffed poll loop, for Microsoft APIs that list objects in their current state with no
//! time filter worth trusting (Defender for Cloud alerts, Entra ID Protection risky users):
//! every poll lists every object of each scope and compares it with the checkpoint's map of
//! object id → last forwarded state. New objects and state changes are forwarded, each
//! (id, state) at most once; the map travels in every batch's checkpoint, so a crash neither
//! repeats nor skips one. What each API is, is a [`DiffApi`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::azure::auth::Endpoints;
use super::azure::http::{ApiClient, FetchError};
use super::azure::paging::LinkGuard;
use super::checkpoint::IDLE_WRITE_EVERY_MS;
use super::discovery::{self, Discovery, Dynamic};
use super::poll::{connect, oversized, resume, run_rounds, Outcome, Rounds, StartAt};
use super::{append_page, SourceContext, SourceError};
use crate::config::{Config, SourceConfig};
use crate::event::{Event, EventKind};

/// What distinguishes one diffed API from another.
#[derive(Debug)]
pub struct DiffApi {
    pub kind: EventKind,
    /// The first page's URL for a scope.
    pub first_url: fn(&Endpoints, &str) -> String,
    /// Body field with the next page's URL.
    pub next_link: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    /// The base URL of the API's host; the token scope is `{base}/.default`.
    pub base: fn(&Endpoints) -> &str,
    /// A listed object's id, state (what a change of is forwarded) and time (ms), if it has
    /// them.
    pub key: fn(&serde_json::Value) -> Option<(String, String, i64)>,
    /// Objects older than this are no longer listed and are forgotten; `None`: listed for ever.
    pub retention: Option<Duration>,
    /// The licence the API needs, told when it answers that the tenant lacks it.
    pub licence: &'static str,
    /// What one object is called in messages ("alert", "risky user").
    pub objects: &'static str,
}

/// Checkpoint format written by this build.
pub const VERSION: u32 = 1;
/// Objects remembered per scope at most; past it the oldest are forgotten (with a warning)
/// and a later change of them is forwarded as new.
const MAX_OBJECTS: usize = 200_000;

/// What was forwarded of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The state last forwarded (or seen, for objects older than the first start).
    pub status: String,
    /// The object's time, ms since the epoch: what pruning goes by.
    pub time_ms: i64,
}

/// One scope's objects as last forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownStates {
    /// Objects whose time is before this (the first start, or what was pruned) are noted, not
    /// forwarded, until they change.
    pub since_ms: i64,
    #[serde(rename = "alerts")]
    pub objects: HashMap<String, Known>,
}

/// The whole checkpoint of a diffed source. (The field names are those of the first
/// `defender_alerts` checkpoints, which this build still reads.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffCheckpoint {
    pub version: u32,
    #[serde(rename = "subscriptions")]
    pub scopes: BTreeMap<String, KnownStates>,
}

impl DiffCheckpoint {
    pub fn decode(bytes: &[u8]) -> Option<DiffCheckpoint> {
        serde_json::from_slice::<DiffCheckpoint>(bytes)
            .ok()
            .filter(|c| c.version == VERSION)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl KnownStates {
    pub fn new(since_ms: i64) -> Self {
        KnownStates {
            since_ms,
            objects: HashMap::new(),
        }
    }

    /// Notes one listed object; true when it is to be forwarded: new (and with a time since
    /// the first start) or in another state than last forwarded.
    pub fn observe(&mut self, id: &str, state: &str, time_ms: i64) -> bool {
        match self.objects.get_mut(id) {
            Some(k) if k.status == state => false,
            Some(k) => {
                k.status = state.to_owned();
                true
            }
            None => {
                let known = Known {
                    status: state.to_owned(),
                    time_ms,
                };
                self.objects.insert(id.to_owned(), known);
                time_ms >= self.since_ms
            }
        }
    }

    /// Forgets objects older than `before_ms` (no longer listed; and should one be listed
    /// again unchanged, it is not new: `since_ms` moves up to `before_ms`), then keeps at most
    /// `max`, dropping the oldest; returns how many were dropped by the bound.
    pub fn prune(&mut self, before_ms: Option<i64>, max: usize) -> usize {
        if let Some(before) = before_ms {
            self.objects.retain(|_, k| k.time_ms >= before);
            self.since_ms = self.since_ms.max(before);
        }
        let excess = self.objects.len().saturating_sub(max);
        if excess > 0 {
            let mut by_age: Vec<(i64, String)> = self
                .objects
                .iter()
                .map(|(id, k)| (k.time_ms, id.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, id) in by_age.into_iter().take(excess) {
                self.objects.remove(&id);
            }
        }
        excess
    }
}

/// A configured diffed source.
#[derive(Debug)]
pub struct DiffSource {
    name: String,
    api: &'static DiffApi,
    scopes: Vec<String>,
    interval: Duration,
    start: StartAt,
    endpoints: Endpoints,
    client: ApiClient,
    /// `subscriptions = ["*"]` or `management_groups`: the scopes are discovered.
    discovery: Option<Dynamic>,
    /// When this process last wrote the checkpoint (ms since the epoch; 0: not yet).
    written_ms: std::sync::atomic::AtomicI64,
}

impl Rounds for DiffSource {
    type State = DiffCheckpoint;

    fn client(&mut self) -> &mut ApiClient {
        &mut self.client
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.api.kind.as_str()
    }

    fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn licence(&self, _: &str) -> &'static str {
        self.api.licence
    }

    fn resume(&self, ctx: &SourceContext) -> (DiffCheckpoint, bool) {
        match resume(ctx, &self.name, DiffCheckpoint::decode) {
            Some(ck) => {
                let resumed = !ck.scopes.is_empty();
                (ck, resumed)
            }
            None => (
                DiffCheckpoint {
                    version: VERSION,
                    ..DiffCheckpoint::default()
                },
                false,
            ),
        }
    }

    fn discovery(&mut self) -> Option<discovery::Parts<'_>> {
        discovery::Parts::of(self.discovery.as_mut(), &self.client, &self.endpoints)
    }

    fn set_scopes(&mut self, scopes: Vec<String>) {
        self.scopes = scopes;
    }

    fn held_scopes(&self, ck: &DiffCheckpoint) -> Vec<String> {
        ck.scopes.keys().cloned().collect()
    }

    /// Past the retention, every object the scope knew is no longer listed.
    fn forget_expired(&self, ck: &mut DiffCheckpoint, scope: &str, now_ms: i64) -> bool {
        let Some(retention) = self.api.retention else {
            return false;
        };
        let oldest = now_ms - retention.as_millis() as i64;
        let expired = ck.scopes.get(scope).is_some_and(|k| {
            let newest = k.objects.values().map(|o| o.time_ms).max();
            newest.unwrap_or(k.since_ms) < oldest
        });
        expired && ck.scopes.remove(scope).is_some()
    }

    async fn poll(
        &self,
        scope: &str,
        ck: &mut DiffCheckpoint,
        ctx: &SourceContext,
        _fresh: bool,
    ) -> Result<Outcome, SourceError> {
        self.list(scope, ck, ctx).await
    }
}

impl DiffSource {
    pub fn from_config(
        cfg: &SourceConfig,
        config: &Config,
        api: &'static DiffApi,
        scopes: Vec<String>,
    ) -> Result<Self, SourceError> {
        let (endpoints, start, client) = connect(cfg, config, api.base, api.headers)?;
        Ok(DiffSource {
            name: cfg.name.clone(),
            api,
            scopes,
            interval: cfg.interval.0,
            start,
            endpoints,
            client,
            discovery: Discovery::of(cfg).map(Dynamic::new),
            written_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// What discovers this source's subscriptions, and through what; `None`: fixed scopes.
    pub fn discovery_view(&self) -> Option<(&Discovery, &ApiClient, &Endpoints)> {
        let d = self.discovery.as_ref()?;
        Some((&d.spec, &self.client, &self.endpoints))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lists every scope every `interval` until cancelled.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        run_rounds(self, ctx).await
    }

    /// Lists one scope's objects page by page, appending each page's new objects and state
    /// changes with the updated map. An error ends the listing early (`Incomplete`): what was
    /// forwarded is in the map, the rest comes at the next poll.
    async fn list(
        &self,
        scope: &str,
        ck: &mut DiffCheckpoint,
        ctx: &SourceContext,
    ) -> Result<Outcome, SourceError> {
        let object = self.api.objects;
        let now = jiff::Timestamp::now().as_millisecond();
        let created = !ck.scopes.contains_key(scope);
        let known_before = ck
            .scopes
            .entry(scope.to_owned())
            .or_insert_with(|| KnownStates::new(self.start.resolve(now)))
            .objects
            .len();
        let mut url = (self.api.first_url)(&self.endpoints, scope);
        let mut guard = LinkGuard::new(&url);
        let (mut listed, mut forwarded) = (0usize, 0usize);
        loop {
            // Each record kept as its text (no tree of the whole page), parsed on its own.
            let page = match self.client.get_listing(&url, None, &ctx.cancel).await {
                Ok(p) => p,
                Err(FetchError::Cancelled) => return Ok(Outcome::Cancelled),
                Err(FetchError::NotLicensed { message, .. }) => {
                    return Ok(Outcome::NotLicensed(message))
                }
                Err(error) => {
                    ctx.stats.freshness.failed(&error.to_string());
                    tracing::warn!(message = "Listing not complete; it is listed again at the next poll.", source = %self.name, scope, object, %error);
                    return Ok(Outcome::Incomplete);
                }
            };
            let rid = page.request_id.as_deref().unwrap_or("-");
            let Some(records) = page.body.records() else {
                tracing::warn!(message = "Page has no value array; listed again at the next poll.", source = %self.name, request_id = rid);
                ctx.stats.api_malformed.fetch_add(1, Ordering::Relaxed);
                ctx.stats.freshness.failed(&format!(
                    "the API answered a page without a value array (request id {rid})"
                ));
                return Ok(Outcome::Incomplete);
            };
            ctx.stats
                .polled
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            // Changed in place: if the append below is cancelled the process is stopping and
            // this state is dropped; the durable one is the spool's.
            let known = ck
                .scopes
                .get_mut(scope)
                .expect("scope state exists while listing it");
            let mut events = Vec::new();
            for (index, record) in records.enumerate() {
                listed += 1;
                if oversized(record.text, &self.name, rid, index) {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let record: serde_json::Value =
                    serde_json::from_str(record.text).unwrap_or_default();
                let Some((id, state, time)) = (self.api.key)(&record) else {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(message = "Listed object without id, state or time skipped.", source = %self.name, object, request_id = rid);
                    continue;
                };
                if known.observe(&id, &state, time) {
                    events.push(Event::from_json(self.api.kind, &self.name, &record));
                }
            }
            forwarded += events.len();
            let next = page
                .body
                .string(self.api.next_link)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let looping = next.as_deref().is_some_and(|n| !guard.admit(n));
            if looping {
                tracing::error!(message = "The API's next link repeats; paging stopped.", source = %self.name, scope, request_id = rid);
            }
            // The answer's text is freed before its events go to the spool.
            drop(page);
            let last = next.is_none() || looping;
            let mut removed = 0;
            if last {
                let before = self.api.retention.map(|r| now - r.as_millis() as i64);
                let listed_objects = known.objects.len();
                let dropped = known.prune(before, MAX_OBJECTS);
                removed = listed_objects - known.objects.len();
                if dropped > 0 {
                    tracing::warn!(message = "Map of known objects full; the oldest were forgotten, so a later change of them is forwarded as new.", source = %self.name, object, dropped);
                }
            }
            // A listing that changed nothing is written only now and then: the spool's older
            // copy of the same map is what a crash would have left.
            let written = self.written_ms.load(Ordering::Relaxed);
            let idle = last
                && forwarded == 0
                && !created
                && removed == 0
                && known.objects.len() == known_before
                && written > 0
                && now - written < IDLE_WRITE_EVERY_MS;
            if !events.is_empty() || (last && !idle) {
                if !append_page(ctx, &self.name, events, ck.encode()).await? {
                    return Ok(Outcome::Cancelled);
                }
                self.written_ms.store(now, Ordering::Relaxed);
            }
            match next {
                Some(n) if !last => url = n,
                _ => {
                    tracing::debug!(message = "Listed.", source = %self.name, scope, object, listed, forwarded);
                    return Ok(Outcome::Complete);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_objects_and_state_changes_are_forwarded_once() {
        let mut k = KnownStates::new(1_000);
        assert!(k.observe("a", "Active", 2_000), "new");
        assert!(!k.observe("a", "Active", 2_000), "listed again, unchanged");
        assert!(k.observe("a", "InProgress", 2_000), "state changed");
        assert!(!k.observe("a", "InProgress", 2_000), "on a later page too");
        assert!(k.observe("a", "Resolved", 2_000));
        assert!(
            !k.observe("old", "Active", 500),
            "older than the first start: noted, not forwarded"
        );
        assert!(k.observe("old", "Dismissed", 500), "but its change is");
        assert_eq!(k.objects["a"].status, "Resolved");
    }

    #[test]
    fn the_map_is_pruned_by_time_and_bounded() {
        let mut k = KnownStates::new(0);
        for (i, t) in [10, 20, 30, 40].into_iter().enumerate() {
            k.observe(&format!("a{i}"), "Active", t);
        }
        assert_eq!(k.prune(Some(15), 10), 0);
        assert!(!k.objects.contains_key("a0"), "older than the retention");
        assert_eq!(k.prune(None, 2), 1);
        assert!(!k.objects.contains_key("a1") && k.objects.contains_key("a3"));
        assert!(
            !k.observe("a0", "Active", 10),
            "listed again after it was forgotten by age: not new"
        );
    }

    #[test]
    fn checkpoint_round_trips_in_the_first_format() {
        let mut c = DiffCheckpoint {
            version: VERSION,
            ..DiffCheckpoint::default()
        };
        let mut k = KnownStates::new(5);
        k.observe("/subscriptions/s/alerts/x", "Active", 9);
        c.scopes.insert("s".into(), k);
        let bytes = c.encode();
        assert_eq!(DiffCheckpoint::decode(&bytes), Some(c.clone()));
        // What the first `defender_alerts` builds wrote.
        let first = br#"{"version":1,"subscriptions":{"s":{"since_ms":5,"alerts":{"/subscriptions/s/alerts/x":{"status":"Active","time_ms":9}}}}}"#;
        assert_eq!(DiffCheckpoint::decode(first), Some(c.clone()));
        c.version = 2;
        assert_eq!(DiffCheckpoint::decode(&c.encode()), None);
    }
}
