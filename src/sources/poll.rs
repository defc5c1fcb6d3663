//! The windowed poll loop shared by the Microsoft APIs that filter on a time field: per scope,
//! query `[cursor − overlap, now − settle_delay]` page by page, drop ids already seen, and append
//! each page with the updated checkpoint as one spool batch; the cursor moves only after the
//! window's last page is durable, so a crash at any point neither loses nor repeats an event.
//! Also what every Microsoft API source shares: client setup (`connect`), resuming from the
//! spool's checkpoint (`resume`) and polling its scopes in rounds (`Rounds`, `run_rounds`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::azure::auth::{Credentials, Endpoints, TokenCache};
use super::azure::http::{self, ApiClient, FetchError, Retry};
use super::azure::limits::Limit;
use super::azure::listing::record_event;
use super::checkpoint::{Append, Checkpoint, Delta, ScopeState};
use super::discovery::{self, Discovery, Dynamic};
use super::page::EncodedPage;
use super::{append_page, append_page_delta, SourceContext, SourceError};
use crate::config::{Config, SourceConfig};
use crate::event::{Event, EventKind};

/// What distinguishes one windowed API from another.
#[derive(Debug)]
pub struct WindowApi {
    pub kind: EventKind,
    /// Default overlap: at least the API's worst normal ingestion latency.
    pub overlap: Duration,
    /// Default delay behind now, so half-populated recent data is not read as complete.
    pub settle: Duration,
    /// Longest window of one query (long catch-ups are split).
    pub max_window: Duration,
    /// How far back the API keeps data.
    pub retention: Duration,
    /// Body field with the next page's URL.
    pub next_link: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    /// The base URL of the API's host; the token scope is `{base}/.default`.
    pub base: fn(&Endpoints) -> &str,
    /// The first page's URL for a scope and window (ms since the epoch).
    pub first_url: fn(&Endpoints, &str, i64, i64) -> String,
    /// The licence a scope's API needs, told when the API answers that the tenant lacks it.
    pub licence: fn(&str) -> &'static str,
}

/// Where the first poll of a scope starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// This long before the first start (`now` is zero).
    Back(Duration),
    /// A fixed time, ms since the epoch.
    At(i64),
}

impl StartAt {
    /// `now`, a duration back (`"2h"`), or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<StartAt, String> {
        let t = text.trim();
        if t == "now" {
            return Ok(StartAt::Back(Duration::ZERO));
        }
        if let Ok(d) = t.parse::<crate::config::HumanDuration>() {
            return Ok(StartAt::Back(d.0));
        }
        t.parse::<jiff::Timestamp>()
            .map(|ts| StartAt::At(ts.as_millisecond()))
            .map_err(|_| {
                format!("start_at \"{text}\" is not \"now\", a duration back like \"2h\", or a time like \"2026-11-01T00:00:00Z\"")
            })
    }

    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            StartAt::Back(d) => now_ms - d.as_millis() as i64,
            StartAt::At(ms) => ms,
        }
    }
}

/// `2026-11-01T10:00:00.000Z`: how filters and logs write times.
pub fn filter_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A Microsoft Graph list URL on `path` filtered to `{field} ge <from> and {field} <upper> <to>`
/// (`upper` is `le` or `lt`; Graph takes the times unquoted).
pub fn graph_url(
    e: &Endpoints,
    path: &str,
    field: &str,
    from: i64,
    upper: &str,
    to: i64,
) -> String {
    let mut url = reqwest::Url::parse(&format!("{}/v1.0/{path}", e.graph))
        .expect("the graph endpoint was validated as a URL");
    url.query_pairs_mut().append_pair(
        "$filter",
        &format!(
            "{field} ge {} and {field} {upper} {}",
            filter_time(from),
            filter_time(to)
        ),
    );
    url.to_string()
}

/// The timing of a poller.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub overlap: Duration,
    pub settle: Duration,
    pub max_window: Duration,
    pub retention: Duration,
}

/// Records past the cursor a window should hold: when one holds more, the next reaches less
/// far past the cursor (down to [`MIN_SPAN_MS`]); when one holds less than half and used its
/// whole span, the next reaches twice as far (up to the API's longest window).
pub const WINDOW_RECORDS: usize = 100_000;
/// How far past the cursor a scope's first window reaches, ms.
pub const INITIAL_SPAN_MS: i64 = 3_600_000;
/// The narrowest window past the cursor, ms.
pub const MIN_SPAN_MS: i64 = 1_000;

/// How far back the window after one that ended at `cursor_ms` must reach: records can turn
/// up late only within `overlap` (plus `settle`) before that window was read (`read_ms`), so a
/// window read long after its end (a catch-up) needs no overlap at all. Seen ids older than
/// this are never returned again. Without `read_ms` (a first window, an older checkpoint):
/// `overlap` before the cursor.
pub fn horizon(cursor_ms: i64, read_ms: Option<i64>, t: &Timing) -> i64 {
    let ms = |d: Duration| d.as_millis() as i64;
    match read_ms {
        Some(r) => cursor_ms.min(r - ms(t.settle) - ms(t.overlap)),
        None => cursor_ms - ms(t.overlap),
    }
}

/// The next window `[from, to]` to query for a scope at `now`, or `None` when the cursor is
/// already at `now − settle`. `from` is the [`horizon`] (never before the first start or the
/// retention); `to` passes the cursor by at most the scope's span (see [`WINDOW_RECORDS`]) and
/// the API's `max_window`.
pub fn next_window(state: &ScopeState, now_ms: i64, t: &Timing) -> Option<(i64, i64)> {
    let ms = |d: Duration| d.as_millis() as i64;
    let end = now_ms - ms(t.settle);
    if end <= state.cursor_ms {
        return None;
    }
    // A minute of slack keeps the start inside the retention while the request travels.
    let oldest = now_ms - ms(t.retention) + 60_000;
    let from = horizon(state.cursor_ms, state.read_ms, t)
        .max(state.since_ms)
        .max(oldest);
    let max = ms(t.max_window).max(MIN_SPAN_MS);
    let span = state
        .span_ms
        .unwrap_or(INITIAL_SPAN_MS)
        .clamp(MIN_SPAN_MS, max);
    let to = end.min(state.cursor_ms.max(from) + span);
    (to > from).then_some((from, to))
}

/// The span after a window that read `ahead` new records over the `covered` ms past the
/// previous cursor, with `span` in force (see [`WINDOW_RECORDS`]).
pub fn next_span(span: i64, covered: i64, ahead: usize, t: &Timing) -> i64 {
    let max = (t.max_window.as_millis() as i64).max(MIN_SPAN_MS);
    let target = WINDOW_RECORDS as i64;
    let ahead = ahead as i64;
    let next = if covered <= 0 {
        span
    } else if ahead > target {
        // i128: a covered span of years times the target stays exact.
        (i128::from(covered) * i128::from(target) / i128::from(ahead)) as i64
    } else if ahead * 2 <= target && covered >= span {
        span.saturating_mul(2)
    } else {
        span
    };
    next.clamp(MIN_SPAN_MS, max)
}

/// True (with a warning) when an API record is larger than
/// [`MAX_EVENT_BYTES`](crate::event::MAX_EVENT_BYTES): it is rejected alone, without being
/// parsed, and the rest of its page is read. `index` is its place in the page.
pub(crate) fn oversized(record: &str, source: &str, request_id: &str, index: usize) -> bool {
    let bytes = record.len();
    let over = bytes > crate::event::MAX_EVENT_BYTES;
    if over {
        tracing::warn!(
            message = "Record rejected: larger than the event size limit.",
            source,
            request_id,
            index,
            bytes,
            max = crate::event::MAX_EVENT_BYTES
        );
    }
    over
}

/// [`append_commit`] of events already encoded.
pub(crate) async fn append_commit_encoded(
    ctx: &SourceContext,
    source: &str,
    events: EncodedPage,
    append: Append,
) -> Result<bool, SourceError> {
    let (checkpoint, delta) = match append {
        Append::Full { bytes, dropped } => {
            forgot(source, dropped);
            (bytes, false)
        }
        Append::Delta(bytes) => (bytes, true),
    };
    super::append_encoded_as(ctx, source, events, checkpoint, delta).await
}

/// Says that ids were forgotten to keep a checkpoint within its limit.
fn forgot(source: &str, dropped: usize) {
    if dropped > 0 {
        tracing::warn!(
            message = "Seen ids over their limit; the oldest were forgotten, so late copies of them could repeat.",
            source,
            dropped,
            limit = super::checkpoint::MAX_IDS
        );
    }
}

/// Appends a page's events with the checkpoint record [`Checkpoint::commit`] chose; says so
/// when ids had to be forgotten to keep the checkpoint within its limit.
pub(crate) async fn append_commit<I>(
    ctx: &SourceContext,
    source: &str,
    events: I,
    append: Append,
) -> Result<bool, SourceError>
where
    I: IntoIterator,
    I::Item: std::borrow::Borrow<Event>,
{
    match append {
        Append::Full { bytes, dropped } => {
            forgot(source, dropped);
            append_page(ctx, source, events, bytes).await
        }
        Append::Delta(bytes) => append_page_delta(ctx, source, events, bytes).await,
    }
}

/// A configured windowed source.
#[derive(Debug)]
pub struct PollSource {
    name: String,
    api: &'static WindowApi,
    scopes: Vec<String>,
    interval: Duration,
    timing: Timing,
    start: StartAt,
    endpoints: Endpoints,
    client: ApiClient,
    /// `subscriptions = ["*"]` or `management_groups`: the scopes are discovered.
    discovery: Option<Dynamic>,
}

/// How a window, a scope or a listing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Complete,
    /// Not finished (an error); retried at the next poll from the same cursor.
    Incomplete,
    /// The API answered that the tenant lacks the licence it needs (its message): nothing can
    /// be read until the licence is there; asked again at the next poll from the same cursor.
    NotLicensed(String),
    Cancelled,
}

/// What every Microsoft API source builds from its config: the endpoints, where its first poll
/// starts, and a client for the API whose host `base` picks (token scope `{base}/.default`).
pub fn connect(
    cfg: &SourceConfig,
    config: &Config,
    base: fn(&Endpoints) -> &str,
    headers: &'static [(&'static str, &'static str)],
) -> Result<(Endpoints, StartAt, ApiClient), SourceError> {
    let fail = |message: String| SourceError::Config {
        source_name: cfg.name.clone(),
        message,
    };
    let azure = config.azure_for(cfg).map_err(fail)?;
    let endpoints = Endpoints::from_config(&azure);
    let creds = Credentials::from_config(&azure, |p| config.resolve(p)).map_err(fail)?;
    let start = match &cfg.start_at {
        Some(text) => StartAt::parse(text).map_err(fail)?,
        None => StartAt::Back(cfg.lookback.0),
    };
    let route = azure.proxy_route(|p| config.resolve(p)).map_err(|errors| {
        fail(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let client = ApiClient {
        http: super::azure::client::client_for(&route),
        tokens: TokenCache::shared(),
        origin: http::origin(base(&endpoints)),
        login: endpoints.login.clone(),
        scope: format!("{}/.default", base(&endpoints)),
        headers,
        retry: Retry::default(),
        max_answer_bytes: azure.max_answer_bytes(),
        source: cfg.name.clone(),
        // Replaced by the pipeline's counters when the source runs.
        stats: Arc::default(),
        limit: cfg.event_kind().and_then(|kind| {
            Limit::for_kind(kind, &azure.rate_limits, &creds.tenant_id, &creds.client_id)
        }),
        creds,
    };
    Ok((endpoints, start, client))
}

/// The checkpoint a source resumes from: the spool's last one, or `None` (with a warning
/// when there was one this build cannot read).
pub fn resume<T>(ctx: &SourceContext, name: &str, decode: fn(&[u8]) -> Option<T>) -> Option<T> {
    let bytes = ctx.spool.checkpoint(name)?;
    let decoded = decode(&bytes);
    if decoded.is_none() {
        tracing::warn!(message = "Checkpoint not readable by this version; starting from start_at.", source = %name);
    }
    decoded
}

/// A Microsoft API source polled in rounds: every `interval`, each scope (subscription, content
/// type, tenant) in turn, with one state that the scopes' checkpoints live in.
pub(crate) trait Rounds {
    type State;
    /// The API client, whose counters `run_rounds` points at the source's.
    fn client(&mut self) -> &mut ApiClient;
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn scopes(&self) -> &[String];
    fn interval(&self) -> Duration;
    /// The licence a scope needs (see [`WindowApi::licence`]).
    fn licence(&self, scope: &str) -> &'static str;
    /// The state to start from, and whether it was resumed from a checkpoint.
    fn resume(&self, ctx: &SourceContext) -> (Self::State, bool);
    /// The discovery of a source whose subscriptions are discovered; `None`: fixed scopes.
    fn discovery(&mut self) -> Option<discovery::Parts<'_>> {
        None
    }
    /// Replaces the scopes polled (after a discovery).
    fn set_scopes(&mut self, _scopes: Vec<String>) {}
    /// The scopes `state` holds a position for.
    fn held_scopes(&self, _state: &Self::State) -> Vec<String> {
        Vec::new()
    }
    /// Forgets the state of `scope`, no longer polled, once the API's retention has passed
    /// (nothing it held could still be read); true if it was forgotten.
    fn forget_expired(&self, _state: &mut Self::State, _scope: &str, _now_ms: i64) -> bool {
        false
    }
    /// Reads one scope up to now. While `fresh` (no scope failed in this round), each unit
    /// read (a window) may count as a successful poll, so a long catch-up stays healthy.
    async fn poll(
        &self,
        scope: &str,
        state: &mut Self::State,
        ctx: &SourceContext,
        fresh: bool,
    ) -> Result<Outcome, SourceError>;
}

/// Runs `source` round after round until cancelled; a round that read every scope completely
/// is a successful poll (`/healthz`, last-success metric).
pub(crate) async fn run_rounds<R: Rounds>(
    mut source: R,
    ctx: SourceContext,
) -> Result<(), SourceError> {
    source.client().stats = ctx.stats.clone();
    ctx.stats.freshness.started(Some(source.interval()));
    let (mut state, resumed) = source.resume(&ctx);
    let discovers = source.discovery().is_some();
    tracing::info!(
        message = "Source started.",
        source = %source.name(),
        kind = source.kind(),
        scopes = source.scopes().len(),
        discovers,
        resumed
    );
    // Scopes whose missing licence was told: told once, not at every poll.
    let mut unlicensed = std::collections::BTreeSet::new();
    'outer: loop {
        // Discovered subscriptions: listed again when due; a failure keeps the last list.
        let mut complete = discovery::refresh(&mut source, &mut state, &ctx).await;
        unlicensed.retain(|s| source.scopes().contains(s));
        for scope in source.scopes() {
            match source.poll(scope, &mut state, &ctx, complete).await? {
                Outcome::Complete => {
                    if unlicensed.remove(scope) {
                        tracing::info!(message = "The API answers now: the licence is in place; reading from where the source stopped.", source = %source.name(), scope);
                    }
                }
                Outcome::Incomplete => complete = false,
                Outcome::NotLicensed(answer) => {
                    let licence = source.licence(scope);
                    if unlicensed.insert(scope.clone()) {
                        tracing::error!(message = "The tenant is not licensed for this API, so nothing of it can be read; siemcast asks again at every poll and says when it answers.", source = %source.name(), scope, needs = licence, %answer);
                    } else {
                        tracing::debug!(message = "Still not licensed.", source = %source.name(), scope);
                    }
                }
                Outcome::Cancelled => break 'outer,
            }
        }
        if complete && !source.scopes().is_empty() && unlicensed.len() == source.scopes().len() {
            // Nothing at all can be read: unhealthy, in words.
            let needs: Vec<&str> = source.scopes().iter().map(|s| source.licence(s)).collect();
            ctx.stats.freshness.failed(&format!(
                "the tenant is not licensed for this API; it needs {}",
                needs.join(", and ")
            ));
        } else if complete {
            ctx.stats.freshness.succeeded();
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep(source.interval()) => {}
        }
    }
    tracing::info!(message = "Source stopped.", source = %source.name());
    Ok(())
}

/// A windowed source's checkpoint: the spool's last one, or an empty one.
pub fn resume_windows(ctx: &SourceContext, name: &str) -> (Checkpoint, bool) {
    let chain = ctx.spool.checkpoint_chain(name);
    let decoded = chain.as_deref().and_then(Checkpoint::decode_chain);
    if chain.is_some() && decoded.is_none() {
        tracing::warn!(message = "Checkpoint not readable by this version; starting from start_at.", source = %name);
    }
    match decoded {
        Some(ck) => {
            let resumed = !ck.scopes.is_empty();
            (ck, resumed)
        }
        None => (Checkpoint::new(), false),
    }
}

impl Rounds for PollSource {
    type State = Checkpoint;

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

    fn licence(&self, scope: &str) -> &'static str {
        (self.api.licence)(scope)
    }

    fn resume(&self, ctx: &SourceContext) -> (Checkpoint, bool) {
        resume_windows(ctx, &self.name)
    }

    fn discovery(&mut self) -> Option<discovery::Parts<'_>> {
        discovery::Parts::of(self.discovery.as_mut(), &self.client, &self.endpoints)
    }

    fn set_scopes(&mut self, scopes: Vec<String>) {
        self.scopes = scopes;
    }

    fn held_scopes(&self, ck: &Checkpoint) -> Vec<String> {
        ck.scopes.keys().cloned().collect()
    }

    fn forget_expired(&self, ck: &mut Checkpoint, scope: &str, now_ms: i64) -> bool {
        let oldest = now_ms - self.timing.retention.as_millis() as i64;
        ck.scopes.get(scope).is_some_and(|s| s.cursor_ms < oldest) && ck.forget_scope(scope)
    }

    async fn poll(
        &self,
        scope: &str,
        ck: &mut Checkpoint,
        ctx: &SourceContext,
        fresh: bool,
    ) -> Result<Outcome, SourceError> {
        self.poll_scope(scope, ck, ctx, fresh).await
    }
}

impl PollSource {
    pub fn from_config(
        cfg: &SourceConfig,
        config: &Config,
        api: &'static WindowApi,
        scopes: Vec<String>,
    ) -> Result<Self, SourceError> {
        let (endpoints, start, client) = connect(cfg, config, api.base, api.headers)?;
        Ok(PollSource {
            name: cfg.name.clone(),
            api,
            scopes,
            interval: cfg.interval.0,
            timing: Timing {
                overlap: cfg.overlap.map_or(api.overlap, |d| d.0),
                settle: cfg.settle_delay.map_or(api.settle, |d| d.0),
                max_window: api.max_window,
                retention: api.retention,
            },
            start,
            client,
            endpoints,
            discovery: Discovery::of(cfg).map(Dynamic::new),
        })
    }

    /// What discovers this source's subscriptions, and through what; `None`: fixed scopes.
    pub fn discovery_view(&self) -> Option<(&Discovery, &ApiClient, &Endpoints)> {
        let d = self.discovery.as_ref()?;
        Some((&d.spec, &self.client, &self.endpoints))
    }

    /// Adds scopes (subscriptions discovered for a replay).
    pub(super) fn add_scopes(&mut self, scopes: impl IntoIterator<Item = String>) {
        for s in scopes {
            if !self.scopes.contains(&s) {
                self.scopes.push(s);
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls every scope every `interval` until cancelled.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        run_rounds(self, ctx).await
    }

    /// Reads every window of one scope up to now. While `fresh` (no scope failed in this poll),
    /// each window read counts as a successful poll, so a long catch-up stays healthy.
    async fn poll_scope(
        &self,
        scope: &str,
        ck: &mut Checkpoint,
        ctx: &SourceContext,
        fresh: bool,
    ) -> Result<Outcome, SourceError> {
        let now = jiff::Timestamp::now().as_millisecond();
        ck.scopes
            .entry(scope.to_owned())
            .or_insert_with(|| ScopeState::new(self.start.resolve(now)));
        while let Some((from, to)) = next_window(&ck.scopes[scope], now, &self.timing) {
            match self.read_window(scope, from, to, ck, ctx, true).await? {
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

    /// The scopes polled and the API they are polled through.
    pub(super) fn parts(&self) -> (&[String], &'static WindowApi) {
        (&self.scopes, self.api)
    }

    /// Reads one window page by page; each page is appended with what it changed in the
    /// checkpoint (its new ids; at the window's end the cursor too).
    /// `prune`: forget seen ids older than the next window's [`horizon`] (polling); a backfill
    /// keeps them, so a later backfill of an overlapping window repeats nothing.
    pub(super) async fn read_window(
        &self,
        scope: &str,
        from: i64,
        to: i64,
        ck: &mut Checkpoint,
        ctx: &SourceContext,
        prune: bool,
    ) -> Result<Outcome, SourceError> {
        let mut url = (self.api.first_url)(&self.endpoints, scope, from, to);
        let mut used = HashSet::new();
        // Records that were not visible yet when the first page was asked for are those that
        // can turn up late; the next window reaches back for them from here.
        let read_ms = jiff::Timestamp::now().as_millisecond();
        let (start_cursor, start_span) = ck
            .scopes
            .get(scope)
            .map(|s| (s.cursor_ms, s.span_ms))
            .expect("scope state exists while polling it");
        // New records past the cursor: what the next window's span is fitted to.
        let (mut fetched, mut new, mut ahead) = (0usize, 0usize, 0usize);
        loop {
            let page = match self
                .client
                .get_listing(&url, Some(self.api.kind), &ctx.cancel)
                .await
            {
                Ok(p) => p,
                Err(FetchError::Cancelled) => return Ok(Outcome::Cancelled),
                Err(FetchError::NotLicensed { message, .. }) => {
                    return Ok(Outcome::NotLicensed(message))
                }
                Err(error) => {
                    ctx.stats.freshness.failed(&error.to_string());
                    tracing::warn!(
                        message = "Window not read completely; it is read again at the next poll.",
                        source = %self.name,
                        scope,
                        from = %filter_time(from),
                        to = %filter_time(to),
                        %error
                    );
                    return Ok(Outcome::Incomplete);
                }
            };
            let rid = page.request_id.as_deref().unwrap_or("-");
            let Some(records) = page.body.records() else {
                tracing::warn!(message = "Page has no value array; the window is read again at the next poll.", source = %self.name, request_id = rid);
                ctx.stats.api_malformed.fetch_add(1, Ordering::Relaxed);
                ctx.stats.freshness.failed(&format!(
                    "the API answered a page without a value array (request id {rid})"
                ));
                return Ok(Outcome::Incomplete);
            };
            // The ids this page adds; the checkpoint itself changes only when it is appended.
            let seen = &ck
                .scopes
                .get(scope)
                .expect("scope state exists while polling it")
                .seen;
            let mut delta = Delta::at(scope, &ck.scopes[scope]);
            // The new records, encoded for the spool straight from the page's text.
            let mut events = EncodedPage::pooled();
            let mut rejected = 0u64;
            ctx.stats
                .polled
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            for (index, record) in records.enumerate() {
                fetched += 1;
                if oversized(record.text, &self.name, rid, index) {
                    rejected += 1;
                    continue;
                }
                let kind = self.api.kind;
                // Its id and time read with the page, or else read now (through a `Value`
                // when the bytes path declines it).
                let mut event = None;
                let (id, time) = match record.ident {
                    Some((id, time)) => (id.as_str(), *time),
                    None => {
                        event = record_event(kind, &self.name, record.text);
                        event
                            .as_ref()
                            .map_or(("", None), |ev| (ev.id.as_str(), ev.time_ms))
                    }
                };
                let Some(time) = time.filter(|_| !id.starts_with("sha:")) else {
                    rejected += 1;
                    tracing::warn!(message = "Record skipped: not a JSON object with an id and a time.", source = %self.name, request_id = rid);
                    continue;
                };
                let h = ck.key.hash(id);
                if !seen.contains(h, time) && delta.seen.insert(h, time, time) {
                    ahead += usize::from(time > start_cursor);
                    match &event {
                        Some(ev) => events.push(ev),
                        None => events.push_parts(kind, &self.name, id, Some(time), record.text),
                    }
                }
            }
            new += events.len();
            let next = page
                .body
                .string(self.api.next_link)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let looping = next.as_ref().is_some_and(|n| {
                !used.insert(n.clone()) || used.len() > super::azure::paging::MAX_PAGES || *n == url
            });
            if looping {
                tracing::error!(message = "The API's next link repeats; paging stopped and the window taken as read.", source = %self.name, scope, request_id = rid);
            }
            // The answer's text is freed before its encoded events go to the spool, so a page
            // is not held three times over (text, encoded events, the spool's batch).
            drop(page);
            let last = next.is_none() || looping;
            if last {
                // The cursor moves; ids no later window can return are forgotten.
                let span = start_span.unwrap_or(INITIAL_SPAN_MS);
                let covered = to - start_cursor.max(from);
                delta.cursor_ms = to;
                delta.read_ms = Some(read_ms);
                delta.span_ms = Some(next_span(span, covered, ahead, &self.timing));
                if prune {
                    delta.prune_seen = Some(horizon(to, Some(read_ms), &self.timing));
                }
            }
            // Only each page's new ids (and at the end the new cursor) are written, as a delta
            // on the checkpoint in the spool, until the deltas outgrow the whole checkpoint:
            // a window of P pages writes O(P) checkpoint bytes, and a poll does not rewrite
            // the ids of the whole overlap.
            // An idle window's end is written only now and then (`advance_unwritten`).
            if !events.is_empty() || (last && !ck.advance_unwritten(&delta)) {
                let append = ck.commit(delta);
                if !append_commit_encoded(ctx, &self.name, events, append).await? {
                    return Ok(Outcome::Cancelled);
                }
            } else {
                events.recycle();
            }
            ctx.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
            match next {
                Some(n) if !last => url = n,
                _ => {
                    tracing::debug!(message = "Window read.", source = %self.name, scope, from = %filter_time(from), to = %filter_time(to), fetched, new, remembered = ck.scopes[scope].seen.len());
                    return Ok(Outcome::Complete);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn timing() -> Timing {
        Timing {
            overlap: Duration::from_secs(60 * 60),
            settle: Duration::from_secs(120),
            max_window: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }

    #[test]
    fn windows_overlap_the_cursor_and_stop_before_now() {
        let now = 1_000_000 * MIN;
        let mut st = ScopeState::new(now - 15 * MIN);
        // First start: from the start, not before it, up to now − settle.
        assert_eq!(
            next_window(&st, now, &timing()),
            Some((now - 15 * MIN, now - 2 * MIN))
        );
        st.cursor_ms = now - 2 * MIN;
        assert_eq!(next_window(&st, now, &timing()), None, "nothing new yet");
        // A minute later: the window reaches back the overlap, floored at the first start.
        assert_eq!(
            next_window(&st, now + MIN, &timing()),
            Some((now - 15 * MIN, now - MIN))
        );
        // With the first start further back than the overlap: back exactly the overlap, and
        // past the cursor by the first span (an hour).
        st.since_ms = now - 200 * MIN;
        let later = now + 300 * MIN;
        assert_eq!(
            next_window(&st, later, &timing()),
            Some((now - 62 * MIN, now - 2 * MIN + 60 * MIN))
        );
        // Up to now when the span reaches that far.
        st.span_ms = Some(24 * 60 * MIN);
        assert_eq!(
            next_window(&st, later, &timing()),
            Some((now - 62 * MIN, later - 2 * MIN))
        );
    }

    #[test]
    fn the_overlap_is_counted_from_when_the_window_was_read() {
        let now = 1_000_000 * MIN;
        let t = timing();
        let mut st = ScopeState::new(now - 3000 * MIN);
        st.span_ms = Some(24 * 60 * MIN);
        // Read as soon as it ended (polling): back the overlap (and the settle delay).
        st.cursor_ms = now - 2 * MIN;
        st.read_ms = Some(now);
        assert_eq!(horizon(st.cursor_ms, st.read_ms, &t), now - 62 * MIN);
        assert_eq!(
            next_window(&st, now + MIN, &t).map(|w| w.0),
            Some(now - 62 * MIN)
        );
        // Read two days after its end (a catch-up): nothing of it can still turn up late,
        // so the next window starts at the cursor and its ids need not be kept.
        st.cursor_ms = now - 2000 * MIN;
        st.read_ms = Some(now - 10 * MIN);
        assert_eq!(horizon(st.cursor_ms, st.read_ms, &t), st.cursor_ms);
        assert_eq!(
            next_window(&st, now, &t),
            Some((now - 2000 * MIN, now - 2000 * MIN + 24 * 60 * MIN))
        );
        // Read 30 minutes after its end: back to 60 + 2 minutes before the read.
        st.cursor_ms = now - 40 * MIN;
        assert_eq!(horizon(st.cursor_ms, st.read_ms, &t), now - 72 * MIN);
    }

    #[test]
    fn spans_narrow_for_dense_windows_and_widen_for_sparse_ones() {
        let t = timing();
        let hour = 60 * MIN;
        // 400,000 new records in an hour: a quarter of an hour holds about 100,000.
        assert_eq!(next_span(hour, hour, 400_000, &t), 15 * MIN);
        // A million in one second: not below a second.
        assert_eq!(next_span(1_000, 1_000, 1_000_000, &t), MIN_SPAN_MS);
        // Few records over the whole span: twice as far, up to the API's longest window.
        assert_eq!(next_span(hour, hour, 1_000, &t), 2 * hour);
        assert_eq!(next_span(20 * hour, 20 * hour, 10, &t), 24 * hour);
        // A window that stopped short of its span (it reached now) leaves it as it was.
        assert_eq!(next_span(hour, MIN, 10, &t), hour);
        assert_eq!(next_span(hour, 0, 10, &t), hour);
        // A catch-up of a day of 1.2 million records per hour takes windows of about 5
        // minutes: each holds about 100,000 ids, not the day's 29 million.
        let mut span = INITIAL_SPAN_MS;
        for _ in 0..5 {
            let ahead = (1_200_000 * span / hour) as usize;
            span = next_span(span, span, ahead, &t);
        }
        assert_eq!(span, 5 * MIN);
    }

    #[test]
    fn long_catch_ups_are_split_and_retention_is_respected() {
        let now = 1_000_000 * MIN;
        let mut st = ScopeState::new(now - 200 * 24 * 60 * MIN);
        st.span_ms = Some(48 * 60 * MIN);
        let (from, to) = next_window(&st, now, &timing()).unwrap();
        assert_eq!(from, now - 90 * 24 * 60 * MIN + MIN, "within retention");
        assert_eq!(
            to - st.cursor_ms.max(from),
            24 * 60 * MIN,
            "the API's longest window"
        );
        st.cursor_ms = to;
        let (from2, _) = next_window(&st, now, &timing()).unwrap();
        assert_eq!(
            from2,
            to - 60 * MIN,
            "the next chunk overlaps the previous one"
        );
    }

    #[test]
    fn start_at_forms() {
        assert_eq!(StartAt::parse("now"), Ok(StartAt::Back(Duration::ZERO)));
        assert_eq!(
            StartAt::parse("2h"),
            Ok(StartAt::Back(Duration::from_secs(7200)))
        );
        assert_eq!(
            StartAt::parse("2026-11-01T10:00:00Z"),
            Ok(StartAt::At(1_793_527_200_000))
        );
        assert!(StartAt::parse("yesterday")
            .unwrap_err()
            .contains("start_at"));
        assert_eq!(filter_time(1_793_527_200_000), "2026-11-01T10:00:00.000Z");
    }
}
