//! The `defender_alerts` source: Microsoft Defender for Cloud security alerts of each configured
//! subscription (ARM `Microsoft.Security/alerts`, api-version 2022-01-01, `nextLink` paging).
//! The API has no time filter, so every poll lists all alerts and diffs them against the
//! checkpoint's map of alert id → last forwarded status: new alerts and status changes are
//! forwarded, each (id, status) at most once; the map travels in every batch's checkpoint, so a
//! crash neither repeats nor skips one. The map is pruned by alert time (90-day retention).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::azure::auth::Endpoints;
use super::azure::http::{ApiClient, FetchError};
use super::azure::listing::Listing;
use super::azure::paging::LinkGuard;
use super::poll::{connect, oversized, resume, run_rounds, Outcome, Rounds, StartAt};
use super::{append_page, SourceContext, SourceError};
use crate::config::{Config, SourceConfig};
use crate::event::{Event, EventKind};

/// The current GA version of the alerts API (Microsoft Learn, "Alerts - List",
/// https://learn.microsoft.com/rest/api/defenderforcloud/alerts/list).
pub const API_VERSION: &str = "2022-01-01";
/// Alerts stay listable for about 90 days; older entries of the map are forgotten.
const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// Checkpoint format written by this build.
pub const VERSION: u32 = 1;
/// Alerts remembered per subscription at most; past it the oldest are forgotten (with a
/// warning) and a later change of them is forwarded as new.
const MAX_ALERTS: usize = 200_000;

/// What was forwarded of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The status last forwarded (or seen, for alerts older than the first start).
    pub status: String,
    /// `timeGeneratedUtc`, ms since the epoch: what pruning goes by.
    pub time_ms: i64,
}

/// One subscription's alerts as last forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownAlerts {
    /// The first start: alerts generated before it are noted, not forwarded (until they change).
    pub since_ms: i64,
    pub alerts: HashMap<String, Known>,
}

/// The whole checkpoint of a `defender_alerts` source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCheckpoint {
    pub version: u32,
    pub subscriptions: BTreeMap<String, KnownAlerts>,
}

impl AlertCheckpoint {
    pub fn decode(bytes: &[u8]) -> Option<AlertCheckpoint> {
        serde_json::from_slice::<AlertCheckpoint>(bytes)
            .ok()
            .filter(|c| c.version == VERSION)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl KnownAlerts {
    pub fn new(since_ms: i64) -> Self {
        KnownAlerts {
            since_ms,
            alerts: HashMap::new(),
        }
    }

    /// Notes one listed alert; true when it is to be forwarded: new (and generated since the
    /// first start) or in another status than last forwarded.
    pub fn observe(&mut self, id: &str, status: &str, time_ms: i64) -> bool {
        match self.alerts.get_mut(id) {
            Some(k) if k.status == status => false,
            Some(k) => {
                k.status = status.to_owned();
                true
            }
            None => {
                let known = Known {
                    status: status.to_owned(),
                    time_ms,
                };
                self.alerts.insert(id.to_owned(), known);
                time_ms >= self.since_ms
            }
        }
    }

    /// Forgets alerts generated before `before_ms` (no longer listed), then keeps at most
    /// `max`, dropping the oldest; returns how many were dropped by the bound.
    pub fn prune(&mut self, before_ms: i64, max: usize) -> usize {
        self.alerts.retain(|_, k| k.time_ms >= before_ms);
        let excess = self.alerts.len().saturating_sub(max);
        if excess > 0 {
            let mut by_age: Vec<(i64, String)> = self
                .alerts
                .iter()
                .map(|(id, k)| (k.time_ms, id.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, id) in by_age.into_iter().take(excess) {
                self.alerts.remove(&id);
            }
        }
        excess
    }
}

/// The id, status and time of a listed alert, if it has them.
fn alert_key(record: &serde_json::Value) -> Option<(&str, &str, i64)> {
    let id = record.get("id")?.as_str().filter(|s| !s.is_empty())?;
    let props = record.get("properties")?;
    let status = props.get("status")?.as_str().filter(|s| !s.is_empty())?;
    let time = crate::event::parse_time_ms(props.get("timeGeneratedUtc")?.as_str()?)?;
    Some((id, status, time))
}

fn first_url(e: &Endpoints, subscription: &str) -> String {
    let mut url = reqwest::Url::parse(&format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Security/alerts",
        e.management
    ))
    .expect("the management endpoint was validated as a URL");
    url.query_pairs_mut()
        .append_pair("api-version", API_VERSION);
    url.to_string()
}

impl Rounds for DefenderSource {
    type State = AlertCheckpoint;

    fn client(&mut self) -> &mut ApiClient {
        &mut self.client
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        EventKind::DefenderAlerts.as_str()
    }

    fn scopes(&self) -> &[String] {
        &self.subscriptions
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn resume(&self, ctx: &SourceContext) -> (AlertCheckpoint, bool) {
        match resume(ctx, &self.name, AlertCheckpoint::decode) {
            Some(ck) => {
                let resumed = !ck.subscriptions.is_empty();
                (ck, resumed)
            }
            None => (
                AlertCheckpoint {
                    version: VERSION,
                    ..AlertCheckpoint::default()
                },
                false,
            ),
        }
    }

    async fn poll(
        &self,
        sub: &str,
        ck: &mut AlertCheckpoint,
        ctx: &SourceContext,
        _fresh: bool,
    ) -> Result<Outcome, SourceError> {
        self.list(sub, ck, ctx).await
    }
}

/// A configured `defender_alerts` source.
#[derive(Debug)]
pub struct DefenderSource {
    name: String,
    subscriptions: Vec<String>,
    interval: Duration,
    start: StartAt,
    endpoints: Endpoints,
    client: ApiClient,
}

impl DefenderSource {
    pub fn from_config(
        cfg: &SourceConfig,
        config: &Config,
        subscriptions: Vec<String>,
    ) -> Result<Self, SourceError> {
        let (endpoints, start, client) = connect(cfg, config, |e| &e.management, &[])?;
        Ok(DefenderSource {
            name: cfg.name.clone(),
            subscriptions,
            interval: cfg.interval.0,
            start,
            endpoints,
            client,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lists every subscription every `interval` until cancelled.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        run_rounds(self, ctx).await
    }

    /// Lists one subscription's alerts page by page, appending each page's new alerts and
    /// status changes with the updated map. An error ends the listing early (`Incomplete`):
    /// what was forwarded is in the map, the rest comes at the next poll.
    async fn list(
        &self,
        sub: &str,
        ck: &mut AlertCheckpoint,
        ctx: &SourceContext,
    ) -> Result<Outcome, SourceError> {
        let now = jiff::Timestamp::now().as_millisecond();
        ck.subscriptions
            .entry(sub.to_owned())
            .or_insert_with(|| KnownAlerts::new(self.start.resolve(now)));
        let mut url = first_url(&self.endpoints, sub);
        let mut guard = LinkGuard::new(&url);
        let (mut listed, mut forwarded) = (0usize, 0usize);
        loop {
            // Each record kept as its text (no tree of the whole page), parsed on its own.
            let mut page = match self.client.get_as::<Listing>(&url, &ctx.cancel).await {
                Ok(p) => p,
                Err(FetchError::Cancelled) => return Ok(Outcome::Cancelled),
                Err(error) => {
                    ctx.stats.freshness.failed(&error.to_string());
                    tracing::warn!(message = "Alert listing not complete; it is listed again at the next poll.", source = %self.name, subscription = sub, %error);
                    return Ok(Outcome::Incomplete);
                }
            };
            let rid = page.request_id.as_deref().unwrap_or("-");
            let Some(records) = page.body.records.take() else {
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
                .subscriptions
                .get_mut(sub)
                .expect("subscription state exists while listing it");
            let mut events = Vec::new();
            for (index, text) in records.into_iter().enumerate() {
                listed += 1;
                if oversized(&text, &self.name, rid, index) {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let record: serde_json::Value =
                    serde_json::from_str(text.get()).unwrap_or_default();
                drop(text);
                let Some((id, status, time)) = alert_key(&record) else {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(message = "Alert without id, status or time skipped.", source = %self.name, request_id = rid);
                    continue;
                };
                if known.observe(id, status, time) {
                    events.push(Event::from_json(
                        EventKind::DefenderAlerts,
                        &self.name,
                        &record,
                    ));
                }
            }
            forwarded += events.len();
            let next = page
                .body
                .string("nextLink")
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let looping = next.as_deref().is_some_and(|n| !guard.admit(n));
            if looping {
                tracing::error!(message = "The API's next link repeats; paging stopped.", source = %self.name, subscription = sub, request_id = rid);
            }
            let last = next.is_none() || looping;
            if last {
                let dropped = known.prune(now - RETENTION.as_millis() as i64, MAX_ALERTS);
                if dropped > 0 {
                    tracing::warn!(message = "Alert map full; the oldest alerts were forgotten, so a later change of them is forwarded as new.", source = %self.name, dropped);
                }
            }
            if (!events.is_empty() || last)
                && !append_page(ctx, &self.name, events, ck.encode()).await?
            {
                return Ok(Outcome::Cancelled);
            }
            match next {
                Some(n) if !last => url = n,
                _ => {
                    tracing::debug!(message = "Alerts listed.", source = %self.name, subscription = sub, listed, forwarded);
                    return Ok(Outcome::Complete);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_alerts_and_status_changes_are_forwarded_once() {
        let mut k = KnownAlerts::new(1_000);
        assert!(k.observe("a", "Active", 2_000), "new");
        assert!(!k.observe("a", "Active", 2_000), "listed again, unchanged");
        assert!(k.observe("a", "InProgress", 2_000), "status changed");
        assert!(!k.observe("a", "InProgress", 2_000), "on a later page too");
        assert!(k.observe("a", "Resolved", 2_000));
        assert!(
            !k.observe("old", "Active", 500),
            "generated before the first start: noted, not forwarded"
        );
        assert!(k.observe("old", "Dismissed", 500), "but its change is");
        assert_eq!(k.alerts["a"].status, "Resolved");
    }

    #[test]
    fn the_map_is_pruned_by_time_and_bounded() {
        let mut k = KnownAlerts::new(0);
        for (i, t) in [10, 20, 30, 40].into_iter().enumerate() {
            k.observe(&format!("a{i}"), "Active", t);
        }
        assert_eq!(k.prune(15, 10), 0);
        assert!(!k.alerts.contains_key("a0"), "older than the retention");
        assert_eq!(k.prune(0, 2), 1);
        assert!(!k.alerts.contains_key("a1") && k.alerts.contains_key("a3"));
    }

    #[test]
    fn checkpoint_round_trips() {
        let mut c = AlertCheckpoint {
            version: VERSION,
            ..AlertCheckpoint::default()
        };
        let mut k = KnownAlerts::new(5);
        k.observe("/subscriptions/s/alerts/x", "Active", 9);
        c.subscriptions.insert("s".into(), k);
        assert_eq!(AlertCheckpoint::decode(&c.encode()), Some(c.clone()));
        c.version = 2;
        assert_eq!(AlertCheckpoint::decode(&c.encode()), None);
    }

    #[test]
    fn listed_alerts_need_id_status_and_time() {
        let ok = json!({"id": "x", "properties": {"status": "Active", "timeGeneratedUtc": "2025-03-04T09:01:44.0000000Z"}});
        assert_eq!(alert_key(&ok).map(|k| k.1), Some("Active"));
        let no_status =
            json!({"id": "x", "properties": {"timeGeneratedUtc": "2025-03-04T09:01:44Z"}});
        assert!(alert_key(&no_status).is_none());
        assert!(alert_key(&json!({"properties": {"status": "Active"}})).is_none());
    }

    #[test]
    fn each_status_is_its_own_event() {
        let v = json!({"id": "/subscriptions/s/x", "properties": {"status": "Dismissed", "timeGeneratedUtc": "2025-03-04T09:01:44Z"}});
        let ev = Event::from_json(EventKind::DefenderAlerts, "d", &v);
        assert_eq!(ev.id, "/subscriptions/s/x@Dismissed");
    }

    #[test]
    fn first_url_is_the_subscription_list() {
        let e = Endpoints {
            login: String::new(),
            management: "https://management.azure.com".into(),
            graph: String::new(),
            office: String::new(),
        };
        assert_eq!(
            first_url(&e, "sub-1"),
            "https://management.azure.com/subscriptions/sub-1/providers/Microsoft.Security/alerts?api-version=2022-01-01"
        );
    }
}
