//! The `o365_management` source: the Office 365 Management Activity API (Purview unified audit
//! log). Starts the subscription of each configured content type (idempotent), lists available
//! content blobs by `contentCreated` in windows of at most 24 h within the last 7 days (paging
//! by the `NextPageUri` header, followed verbatim, with loop detection), fetches each blob and
//! forwards its audit records deduplicated on `Id`. Every call carries `PublisherIdentifier`
//! (the tenant id), which puts it in the tenant's own throttling pool; 403 AF429 is throttling.
//! A blob's records are spooled with the checkpoint that marks the blob read, so a crash
//! neither repeats nor skips a record.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::azure::auth::Endpoints;
use super::azure::http::{ApiClient, FetchError};
use super::azure::listing::{record_event_owned, RecordArray};
use super::azure::paging::LinkGuard;
use super::checkpoint::{Checkpoint, Delta, ScopeState};
use super::poll::{
    append_commit, connect, filter_time, oversized, resume_windows, run_rounds, Outcome, Rounds,
    StartAt,
};
use super::{SourceContext, SourceError};
use crate::config::{Config, SourceConfig};
use crate::event::EventKind;

/// The content types of the API (Microsoft Learn, "Office 365 Management Activity API reference",
/// https://learn.microsoft.com/en-us/office/office-365-management-api/office-365-management-activity-api-reference).
/// What the API needs beside the permission (told if it answers that the tenant lacks it).
pub const LICENCE: &str = "Microsoft 365 with unified audit logging on";

pub const CONTENT_TYPES: &[&str] = &[
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
];

const HOUR: Duration = Duration::from_secs(3600);
/// A checkpoint appended without events.
const NO_EVENTS: &[crate::event::Event] = &[];
/// Blobs keep being listed late (60–90 min is normal): each listing reaches back this far.
const DEFAULT_OVERLAP: Duration = Duration::from_secs(2 * 3600);
const DEFAULT_SETTLE: Duration = Duration::from_secs(60);
/// The API's limits: one listing spans at most 24 h and starts at most 7 days back.
pub(crate) const MAX_WINDOW_MS: i64 = 24 * 3600 * 1000;
pub(crate) const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Duplicates come in later blobs: record ids are kept this long past the listing overlap.
const KEEP_IDS: Duration = Duration::from_secs(24 * 3600);

/// The next listing window `[from, to)` of a content type at `now`, in whole seconds (the
/// API's time format): from `overlap` before the cursor (never before the first start, never
/// more than 7 days back), at most 24 h long, ending `settle` before now. `None` when the
/// cursor is already there. The overlap is capped at 12 h so every window advances the cursor.
pub fn o365_window(
    state: &ScopeState,
    now_ms: i64,
    overlap: Duration,
    settle: Duration,
) -> Option<(i64, i64)> {
    const SEC: i64 = 1000;
    let overlap = overlap.min(12 * HOUR).as_millis() as i64;
    let end = now_ms - settle.as_millis() as i64;
    if end <= state.cursor_ms {
        return None;
    }
    // A minute of slack keeps the start inside the 7 days while the request travels.
    let oldest = now_ms - RETENTION_MS + 60 * SEC;
    let from = (state.cursor_ms - overlap).max(state.since_ms).max(oldest);
    let from = (from + SEC - 1).div_euclid(SEC) * SEC;
    let to = end.min(from + MAX_WINDOW_MS).div_euclid(SEC) * SEC;
    (to > from && to > state.cursor_ms).then_some((from, to))
}

/// `2026-11-01T10:00:00`: the documented window time format (UTC, no zone).
fn window_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `url` with `PublisherIdentifier=<tenant>` added unless it already carries one (continuation
/// links from the API keep theirs and are then used verbatim).
pub fn with_publisher(url: &str, tenant: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.query_pairs().any(|(k, _)| k == "PublisherIdentifier") {
                return url.to_owned();
            }
            u.query_pairs_mut()
                .append_pair("PublisherIdentifier", tenant);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// Why paging a content listing stops.
#[derive(Debug, PartialEq, Eq)]
pub enum NextPage {
    Follow(String),
    Done,
    /// The server sent a link this listing already followed.
    Loop(String),
}

/// Reads the `NextPageUri` header of a listing page against the links already followed.
pub fn next_page(headers: &reqwest::header::HeaderMap, guard: &mut LinkGuard) -> NextPage {
    let next = headers
        .get("NextPageUri")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match next {
        None => NextPage::Done,
        Some(n) if guard.admit(n) => NextPage::Follow(n.to_owned()),
        Some(n) => NextPage::Loop(n.to_owned()),
    }
}

/// A blob the API says is expired (`AF20051`, 7 days after `contentCreated`) or does not exist
/// (`AF20050`).
fn gone(message: &str) -> bool {
    message.contains("AF20051") || message.contains("AF20050")
}

/// One listed blob.
#[derive(Debug)]
struct Content {
    id: String,
    uri: String,
    created_ms: i64,
}

fn content_item(v: &serde_json::Value) -> Option<Content> {
    Some(Content {
        id: v.get("contentId")?.as_str()?.to_owned(),
        uri: v.get("contentUri")?.as_str()?.to_owned(),
        created_ms: crate::event::parse_time_ms(v.get("contentCreated")?.as_str()?)?,
    })
}

/// The checkpoint, and the content types whose subscription this process has started.
type State = (Checkpoint, HashSet<String>);

impl Rounds for O365Source {
    type State = State;

    fn client(&mut self) -> &mut ApiClient {
        &mut self.client
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        EventKind::O365Management.as_str()
    }

    fn scopes(&self) -> &[String] {
        &self.content_types
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn licence(&self, _: &str) -> &'static str {
        LICENCE
    }

    fn resume(&self, ctx: &SourceContext) -> (State, bool) {
        let (ck, resumed) = resume_windows(ctx, &self.name);
        ((ck, HashSet::new()), resumed)
    }

    async fn poll(
        &self,
        ct: &str,
        (ck, started): &mut State,
        ctx: &SourceContext,
        fresh: bool,
    ) -> Result<Outcome, SourceError> {
        if let Some(stopped) = self.ensure_started(ct, started, ctx).await {
            return Ok(stopped);
        }
        self.poll_type(ct, ck, started, ctx, fresh).await
    }
}

/// Which records of a listing's blobs are read, and what reading them moves.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reading {
    /// The poller: blobs read before are skipped; after the last, the cursor moves and old ids
    /// are pruned.
    Poll,
    /// A replay of `[from_ms, to_ms]`: every listed blob is read (one read before may hold
    /// records of this window that an earlier, shorter window left out), only records with a
    /// `CreationTime` inside are kept, and the seen ids are never pruned.
    Replay { from_ms: i64, to_ms: i64 },
}

/// A configured `o365_management` source.
#[derive(Debug)]
pub struct O365Source {
    name: String,
    content_types: Vec<String>,
    interval: Duration,
    overlap: Duration,
    settle: Duration,
    start: StartAt,
    endpoints: Endpoints,
    tenant: String,
    client: ApiClient,
}

impl O365Source {
    pub fn from_config(
        cfg: &SourceConfig,
        config: &Config,
        tenant: String,
        content_types: Vec<String>,
    ) -> Result<Self, SourceError> {
        let (endpoints, start, client) = connect(cfg, config, |e| &e.office, &[])?;
        Ok(O365Source {
            name: cfg.name.clone(),
            content_types,
            interval: cfg.interval.0,
            overlap: cfg.overlap.map_or(DEFAULT_OVERLAP, |d| d.0),
            settle: cfg.settle_delay.map_or(DEFAULT_SETTLE, |d| d.0),
            start,
            endpoints,
            tenant,
            client,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The content types it lists (its scopes).
    pub fn content_types(&self) -> &[String] {
        &self.content_types
    }

    fn feed_url(&self, op: &str) -> String {
        format!(
            "{}/api/v1.0/{}/activity/feed/{op}",
            self.endpoints.office, self.tenant
        )
    }

    /// Polls every content type every `interval` until cancelled.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        run_rounds(self, ctx).await
    }

    /// The listing reaches this far past a window's end for blobs created late.
    pub(super) fn overlap(&self) -> Duration {
        self.overlap
    }

    /// Makes sure the subscription of `ct` was started by this process (once); `Some` with
    /// the outcome when it could not be.
    async fn ensure_started(
        &self,
        ct: &str,
        started: &mut HashSet<String>,
        ctx: &SourceContext,
    ) -> Option<Outcome> {
        if started.contains(ct) {
            return None;
        }
        match self.start_subscription(ct, ctx).await {
            Err(FetchError::Cancelled) => Some(Outcome::Cancelled),
            Err(error) => {
                ctx.stats.freshness.failed(&error.to_string());
                tracing::warn!(message = "Cannot start the content type's subscription; trying again at the next poll.", source = %self.name, content_type = %ct, %error);
                Some(Outcome::Incomplete)
            }
            Ok(()) => {
                started.insert(ct.to_owned());
                None
            }
        }
    }

    /// Reads one listing window `[from, to)` of `ct` for a replay: the subscription started,
    /// the blobs listed and read as `reading` says (`siemcast replay`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn replay_window(
        &self,
        ct: &str,
        from: i64,
        to: i64,
        reading: Reading,
        ck: &mut Checkpoint,
        started: &mut HashSet<String>,
        ctx: &SourceContext,
    ) -> Result<Outcome, SourceError> {
        if let Some(stopped) = self.ensure_started(ct, started, ctx).await {
            return Ok(stopped);
        }
        match self.listed(ct, from, to, started, ctx).await {
            Ok(contents) => {
                self.read_blobs(ct, from, to, contents, reading, ck, ctx)
                    .await
            }
            Err(stopped) => Ok(stopped),
        }
    }

    /// Lists `[from, to)` of `ct`; a failure is logged and given as the outcome. When the API
    /// says the subscription is not started (AF20022: stopped meanwhile), it is taken out of
    /// `started` to be started again.
    async fn listed(
        &self,
        ct: &str,
        from: i64,
        to: i64,
        started: &mut HashSet<String>,
        ctx: &SourceContext,
    ) -> Result<Vec<Content>, Outcome> {
        match self.list(ct, from, to, ctx).await {
            Ok(c) => Ok(c),
            Err(FetchError::Cancelled) => Err(Outcome::Cancelled),
            Err(error) => {
                if matches!(&error, FetchError::Failed { message, .. } if message.contains("AF20022"))
                {
                    started.remove(ct);
                }
                ctx.stats.freshness.failed(&error.to_string());
                tracing::warn!(message = "Content not listed; the window is read again at the next poll.", source = %self.name, content_type = ct, from = %filter_time(from), to = %filter_time(to), %error);
                Err(Outcome::Incomplete)
            }
        }
    }

    /// Starts the content type's subscription; one already enabled (AF20024) is fine.
    async fn start_subscription(&self, ct: &str, ctx: &SourceContext) -> Result<(), FetchError> {
        let mut url = reqwest::Url::parse(&self.feed_url("subscriptions/start"))
            .expect("the office endpoint was validated as a URL");
        url.query_pairs_mut()
            .append_pair("contentType", ct)
            .append_pair("PublisherIdentifier", &self.tenant);
        match self
            .client
            .request::<serde_json::Value>(reqwest::Method::POST, url.as_str(), &ctx.cancel)
            .await
        {
            Ok(_) => {
                tracing::info!(message = "Subscription started.", source = %self.name, content_type = ct);
                Ok(())
            }
            Err(FetchError::Failed { message, .. }) if message.contains("AF20024") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads every window of one content type up to now; each window read counts as a
    /// successful poll while `fresh`.
    async fn poll_type(
        &self,
        ct: &str,
        ck: &mut Checkpoint,
        started: &mut HashSet<String>,
        ctx: &SourceContext,
        fresh: bool,
    ) -> Result<Outcome, SourceError> {
        let now = jiff::Timestamp::now().as_millisecond();
        ck.scopes
            .entry(ct.to_owned())
            .or_insert_with(|| ScopeState::new(self.start.resolve(now)));
        while let Some((from, to)) = o365_window(&ck.scopes[ct], now, self.overlap, self.settle) {
            let contents = match self.listed(ct, from, to, started, ctx).await {
                Ok(c) => c,
                Err(stopped) => return Ok(stopped),
            };
            match self
                .read_blobs(ct, from, to, contents, Reading::Poll, ck, ctx)
                .await?
            {
                Outcome::Complete if fresh => ctx.stats.freshness.succeeded(),
                Outcome::Complete => {}
                other => return Ok(other),
            }
        }
        Ok(if ctx.cancel.is_cancelled() {
            Outcome::Cancelled
        } else {
            Outcome::Complete
        })
    }

    /// Lists the blobs of `[from, to)`, every page.
    async fn list(
        &self,
        ct: &str,
        from: i64,
        to: i64,
        ctx: &SourceContext,
    ) -> Result<Vec<Content>, FetchError> {
        let mut first = reqwest::Url::parse(&self.feed_url("subscriptions/content"))
            .expect("the office endpoint was validated as a URL");
        first
            .query_pairs_mut()
            .append_pair("contentType", ct)
            .append_pair("startTime", &window_time(from))
            .append_pair("endTime", &window_time(to))
            .append_pair("PublisherIdentifier", &self.tenant);
        let mut url = first.to_string();
        let mut guard = LinkGuard::new(&url);
        let mut out = Vec::new();
        loop {
            let page = self.client.get(&url, &ctx.cancel).await?;
            let rid = page.request_id.as_deref().unwrap_or("-");
            let Some(items) = page.body.as_array() else {
                ctx.stats.api_malformed.fetch_add(1, Ordering::Relaxed);
                return Err(FetchError::Failed {
                    url,
                    message: format!("the content listing is not a JSON array (request id {rid})"),
                });
            };
            for item in items {
                match content_item(item) {
                    Some(c) => out.push(c),
                    None => {
                        ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(message = "Content item without contentId, contentUri or contentCreated skipped.", source = %self.name, request_id = rid);
                    }
                }
            }
            match next_page(&page.headers, &mut guard) {
                NextPage::Follow(next) => url = with_publisher(&next, &self.tenant),
                NextPage::Done => return Ok(out),
                NextPage::Loop(next) => {
                    tracing::error!(message = "NextPageUri repeats; paging stopped and the listing taken as complete.", source = %self.name, content_type = ct, next = %next, request_id = rid);
                    return Ok(out);
                }
            }
        }
    }

    /// Fetches each blob (as `reading` says); its new records go to the spool with the
    /// checkpoint that marks it read. After the last, a poll moves the cursor to `to`.
    #[allow(clippy::too_many_arguments)]
    async fn read_blobs(
        &self,
        ct: &str,
        from: i64,
        to: i64,
        contents: Vec<Content>,
        reading: Reading,
        ck: &mut Checkpoint,
        ctx: &SourceContext,
    ) -> Result<Outcome, SourceError> {
        let (mut fetched, mut new) = (0usize, 0usize);
        let key = ck.key;
        for content in contents {
            let blob = key.hash(&content.id);
            if matches!(reading, Reading::Poll)
                && ck.scopes[ct].done.contains(blob, content.created_ms)
            {
                continue;
            }
            let url = with_publisher(&content.uri, &self.tenant);
            let mut page = match self.client.get_as::<RecordArray>(&url, &ctx.cancel).await {
                Ok(p) => p,
                Err(FetchError::Cancelled) => return Ok(Outcome::Cancelled),
                Err(FetchError::Failed { message, .. }) if gone(&message) => {
                    // Expired or withdrawn: no retry can read it, so it must not hold back the
                    // blobs after it.
                    tracing::error!(message = "Blob no longer available; skipped.", source = %self.name, content_type = ct, content_id = %content.id, error = %message);
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    let mut delta = Delta::at(ct, &ck.scopes[ct]);
                    delta
                        .done
                        .insert(blob, content.created_ms, content.created_ms);
                    if !append_commit(ctx, &self.name, NO_EVENTS, ck.commit(delta)).await? {
                        return Ok(Outcome::Cancelled);
                    }
                    continue;
                }
                Err(error) => {
                    ctx.stats.freshness.failed(&error.to_string());
                    tracing::warn!(message = "Blob not read; its window is read again at the next poll.", source = %self.name, content_type = ct, content_id = %content.id, %error);
                    return Ok(Outcome::Incomplete);
                }
            };
            let rid = page.request_id.as_deref().unwrap_or("-");
            // Taken out of the answer: each record is dropped once it is an event.
            let Some(records) = page.body.0.take() else {
                ctx.stats.api_malformed.fetch_add(1, Ordering::Relaxed);
                ctx.stats.freshness.failed(&format!(
                    "the API answered a blob that is not a JSON array (request id {rid})"
                ));
                tracing::warn!(message = "Blob is not a JSON array; its window is read again at the next poll.", source = %self.name, content_id = %content.id, request_id = rid);
                return Ok(Outcome::Incomplete);
            };
            ctx.stats
                .polled
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            // A record is looked up by its Id and CreationTime (the same in every blob that
            // carries it) and kept for as long as its blob's creation time says.
            let state = &ck.scopes[ct];
            let mut delta = Delta::at(ct, state);
            let mut events = Vec::new();
            for (index, record) in records.into_iter().enumerate() {
                fetched += 1;
                if oversized(record.get(), &self.name, rid, index) {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let ev = record_event_owned(EventKind::O365Management, &self.name, record)
                    .filter(|ev| !ev.id.starts_with("sha:"))
                    .and_then(|ev| Some((ev.time_ms?, ev)));
                let Some((time, ev)) = ev else {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(message = "Audit record skipped: not a JSON object with an Id and a CreationTime.", source = %self.name, content_id = %content.id, request_id = rid);
                    continue;
                };
                let inside = match reading {
                    Reading::Poll => true,
                    Reading::Replay { from_ms, to_ms } => time >= from_ms && time <= to_ms,
                };
                let h = key.hash(&ev.id);
                if inside
                    && !state.seen.contains(h, time)
                    && delta.seen.insert(h, time, content.created_ms)
                {
                    events.push(ev);
                }
            }
            delta
                .done
                .insert(blob, content.created_ms, content.created_ms);
            new += events.len();
            if !append_commit(ctx, &self.name, events, ck.commit(delta)).await? {
                return Ok(Outcome::Cancelled);
            }
        }
        if let Reading::Replay { .. } = reading {
            tracing::debug!(message = "Window read.", source = %self.name, content_type = ct, from = %filter_time(from), to = %filter_time(to), fetched, new);
            return Ok(Outcome::Complete);
        }
        let overlap = self.overlap.min(12 * HOUR).as_millis() as i64;
        let mut delta = Delta::at(ct, &ck.scopes[ct]);
        delta.cursor_ms = to;
        delta.prune_done = Some(to - overlap);
        delta.prune_seen = Some(to - overlap - KEEP_IDS.as_millis() as i64);
        if !append_commit(ctx, &self.name, NO_EVENTS, ck.commit(delta)).await? {
            return Ok(Outcome::Cancelled);
        }
        tracing::debug!(message = "Window read.", source = %self.name, content_type = ct, from = %filter_time(from), to = %filter_time(to), fetched, new, remembered = ck.scopes[ct].seen.len());
        Ok(Outcome::Complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use serde_json::json;

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;

    #[test]
    fn windows_are_at_most_a_day_within_seven_days_in_whole_seconds() {
        let now = 1_793_527_200_000 + 123; // not on a second
        let hour = Duration::from_secs(3600);
        // start_at 30 days back: clamped to the last 7 days (plus a minute of slack).
        let mut st = ScopeState::new(now - 30 * DAY);
        let (from, to) = o365_window(&st, now, 2 * hour, Duration::from_secs(60)).unwrap();
        assert!(from >= now - 7 * DAY + MIN && from < now - 7 * DAY + MIN + 1000);
        assert_eq!(to - from, DAY, "a day at most");
        assert_eq!((from % 1000, to % 1000), (0, 0));
        // Catching up: each window advances the cursor though it reaches back the overlap.
        st.cursor_ms = to;
        let (from2, to2) = o365_window(&st, now, 2 * hour, Duration::from_secs(60)).unwrap();
        assert_eq!(from2, to - 2 * 60 * MIN);
        assert_eq!(to2 - from2, DAY);
        assert!(to2 > to);
        // Up to date: the last window ends settle before now, then nothing until time passes.
        st.cursor_ms = now - 10 * MIN;
        let (_, to3) = o365_window(&st, now, 2 * hour, Duration::from_secs(60)).unwrap();
        assert_eq!(to3, (now - MIN) / 1000 * 1000);
        st.cursor_ms = to3;
        assert_eq!(
            o365_window(&st, now, 2 * hour, Duration::from_secs(60)),
            None
        );
        // An overlap of a week is capped so the cursor still moves.
        let st = ScopeState::new(now - 5 * DAY);
        let (f, t) = o365_window(&st, now, 7 * 24 * hour, Duration::ZERO).unwrap();
        assert!(t > st.cursor_ms && t - f <= DAY);
        assert_eq!(window_time(1_793_527_200_000), "2026-11-01T10:00:00");
    }

    #[test]
    fn zone_less_creation_times_are_utc() {
        let rec = json!({"Id": "5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170", "CreationTime": "2024-05-01T10:00:00"});
        let ev = Event::from_json(EventKind::O365Management, "o", &rec);
        let utc: jiff::Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        assert_eq!(ev.time_ms, Some(utc.as_millisecond()));
        assert_eq!(ev.id, "5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170");
        let frac = json!({"Id": "x", "CreationTime": "2024-05-01T10:00:00.5"});
        assert_eq!(
            Event::from_json(EventKind::O365Management, "o", &frac).time_ms,
            Some(utc.as_millisecond() + 500)
        );
    }

    #[test]
    fn next_page_uri_is_followed_verbatim_until_it_repeats() {
        let first = "https://manage.office.com/api/v1.0/t/activity/feed/subscriptions/content?contentType=Audit.General&PublisherIdentifier=t";
        let mut guard = LinkGuard::new(first);
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(next_page(&h, &mut guard), NextPage::Done);
        let p2 = format!("{first}&nextPage=20260101$abc");
        h.insert("NextPageUri", p2.parse().unwrap());
        assert_eq!(next_page(&h, &mut guard), NextPage::Follow(p2.clone()));
        assert_eq!(next_page(&h, &mut guard), NextPage::Loop(p2));
        h.insert("NextPageUri", first.parse().unwrap());
        assert!(matches!(next_page(&h, &mut guard), NextPage::Loop(_)));
    }

    #[test]
    fn publisher_identifier_is_added_once() {
        let blob = "https://manage.office.com/api/v1.0/t/activity/feed/audit/2026$x$audit_general$Audit_General$emea0042";
        let with = with_publisher(blob, "t");
        assert_eq!(with, format!("{blob}?PublisherIdentifier=t"));
        assert_eq!(with_publisher(&with, "t"), with, "verbatim when present");
        let q = "https://h/api?contentType=a&PublisherIdentifier=t&nextPage=1";
        assert_eq!(with_publisher(q, "t"), q);
    }

    #[test]
    fn expired_and_missing_blobs_are_gone_other_errors_are_not() {
        assert!(gone(
            "HTTP 400 AF20051: Content requested with the key … has already expired."
        ));
        assert!(gone(
            "HTTP 404 AF20050: The specified content does not exist."
        ));
        assert!(!gone("HTTP 500 AF50000: An internal error occurred."));
        assert!(!gone("gave up after 8 attempts; last: transport error"));
    }

    #[test]
    fn content_items_need_id_uri_and_time() {
        let ok = json!({"contentType": "Audit.SharePoint", "contentId": "c1", "contentUri": "https://x/c1",
                        "contentCreated": "2025-03-04T09:35:00.123Z", "contentExpiration": "2025-03-11T09:35:00.123Z"});
        assert_eq!(content_item(&ok).map(|c| c.created_ms % 1000), Some(123));
        assert!(content_item(&json!({"contentId": "c1"})).is_none());
    }
}
