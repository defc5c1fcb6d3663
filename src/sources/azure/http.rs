//! HTTP for the pollers: one reqwest client (rustls with the ring provider, gzip, timeouts, no
//! redirects followed) and a GET that adds the bearer token only for its API's own scheme, host
//! and port (a link elsewhere is refused), refreshes it once on 401, holds every request to a
//! host back until its `Retry-After` passed (at most [`MAX_RETRY_AFTER`]), keeps within its API
//! family's rate limit, and backs off exponentially with jitter on other failures. Answers are
//! read in chunks against a limit on their inflated size, so a gzip bomb costs at most that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::auth::{Credentials, TokenCache};
use super::client::{later, read_body, redirect_target, BodyError};
use super::listing::Listing;
use super::token::AuthError;
use crate::sources::SourceStats;

/// The longest `Retry-After` honoured. Microsoft's services ask for seconds to minutes; a longer
/// wait is taken as this (and logged), so a hostile or broken answer cannot stop a source for
/// years while `/healthz` stays green.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Retry policy for one request.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Failed attempts (errors, 5xx without `Retry-After`, bad JSON) before giving up.
    pub max_attempts: u32,
    /// Answers with a `Retry-After` (429/503) waited out before giving up.
    pub max_throttled: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 8,
            max_throttled: 60,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// Exponential backoff with "equal jitter": half the step fixed, half random.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date (as asked, not capped:
/// see [`capped_retry_after`]).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text)
        .ok()?;
    let wait = when.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// The wait honoured for a `Retry-After` that asked for `asked`: at most [`MAX_RETRY_AFTER`].
pub fn capped_retry_after(asked: Duration) -> Duration {
    asked.min(MAX_RETRY_AFTER)
}

/// What went wrong with a request that was given up on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("request to {url} failed: {message}")]
    Failed { url: String, message: String },
    /// A 403 whose body says the tenant lacks the licence the API needs (Identity Protection
    /// answers "Your tenant is not licensed for this feature."): not a permission problem, and
    /// not worth retrying before the licence is bought.
    #[error("request to {url} refused: the tenant is not licensed for this API: {message}")]
    NotLicensed { url: String, message: String },
    /// A continuation link, content URI or redirect outside the API: not followed, so the
    /// token is not sent. Names the link's origin, never the token.
    #[error(
        "{what} to {link} refused ({why}); the token goes only to {api}, the API it was issued for"
    )]
    Refused {
        what: &'static str,
        link: String,
        why: &'static str,
        api: String,
    },
}

/// The scheme, host and port of `base` (an API's endpoint): where its token may be sent.
pub fn origin(base: &str) -> url::Origin {
    reqwest::Url::parse(base)
        .map(|u| u.origin())
        .unwrap_or_else(|_| url::Origin::new_opaque())
}

/// Why `link` is not on `api`'s origin, if it is not: `(the link's origin, why)`. A default
/// port written out (`:443`) and the host's case make no difference.
fn outside(api: &url::Origin, link: &str) -> Option<(String, &'static str)> {
    let Ok(url) = reqwest::Url::parse(link) else {
        return Some(("a text that is not an absolute URL".into(), "not a URL"));
    };
    let theirs = url.origin();
    if theirs == *api {
        return None;
    }
    let why = match (api, &theirs) {
        // Same port, or the default ones (https://host → http://host).
        (url::Origin::Tuple(s1, h1, p1), url::Origin::Tuple(s2, h2, p2))
            if s1 == "https"
                && s2 == "http"
                && h1 == h2
                && (p1 == p2 || (*p1, *p2) == (443, 80)) =>
        {
            "a downgrade to http://, which would carry the token in clear text"
        }
        (url::Origin::Tuple(_, h1, p1), url::Origin::Tuple(_, h2, p2)) if h1 == h2 && p1 == p2 => {
            "another scheme"
        }
        (url::Origin::Tuple(_, h1, _), url::Origin::Tuple(_, h2, _)) if h1 == h2 => "another port",
        _ => "another host",
    };
    let shown = match &theirs {
        url::Origin::Tuple(..) => theirs.ascii_serialization(),
        url::Origin::Opaque(_) => format!("a {}: URL", url.scheme()),
    };
    Some((shown, why))
}

/// A parsed JSON answer: a `Value` tree, or a [`Listing`](super::listing::Listing) that keeps
/// each record's bytes.
#[derive(Debug)]
pub struct Page<B = serde_json::Value> {
    pub body: B,
    /// `x-ms-request-id` or `request-id`, for support cases and logs.
    pub request_id: Option<String>,
    /// Answers on the way that were not usable: 429/5xx, transport errors, bad JSON.
    pub retries: u32,
    pub malformed: u32,
    /// The answer's headers (O365 pages by its `NextPageUri` header).
    pub headers: reqwest::header::HeaderMap,
}

/// Calls one API family (one token scope) on behalf of a source.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub http: super::client::AzureHttp,
    pub tokens: Arc<TokenCache>,
    pub login: String,
    pub creds: Credentials,
    pub scope: String,
    pub headers: &'static [(&'static str, &'static str)],
    pub retry: Retry,
    /// For logs.
    pub source: String,
    /// Where requests, throttles and errors are counted (the source's, once it runs).
    pub stats: Arc<SourceStats>,
    /// The API family's request budget (governor), shared by every source using it.
    pub limit: Option<super::limits::Limit>,
    /// Answers larger than this (inflated) are refused: `[azure] max_answer_bytes`.
    pub max_answer_bytes: u64,
    /// The scheme, host and port of the API the token is for (see [`origin`]): the only place
    /// the token is sent. A URL elsewhere (a hostile or broken continuation link or content
    /// URI) is refused and counted in `links_refused`.
    pub origin: url::Origin,
}

#[cfg(test)]
impl ApiClient {
    /// A client of the simulator's `service` API with its app's client secret, as
    /// `poll::connect` makes one (fresh token cache, default retries and answer cap, no rate
    /// limit): tests change what they need with `ApiClient { field, ..for_simulator(…) }`.
    pub(crate) fn for_simulator(
        sim: &crate::simulator::Simulator,
        service: crate::simulator::Service,
        source: &str,
    ) -> ApiClient {
        use super::auth::AuthMethod;
        let base = sim.endpoint(service);
        let cfg = sim.config();
        ApiClient {
            http: super::client::client(),
            tokens: Arc::new(TokenCache::default()),
            login: sim.endpoint(crate::simulator::Service::Login),
            creds: Credentials {
                tenant_id: cfg.tenant_id.clone(),
                client_id: cfg.client_id.clone(),
                method: AuthMethod::Secret(crate::config::Secret::new(cfg.client_secret.clone())),
            },
            scope: format!("{base}/.default"),
            origin: origin(&base),
            headers: &[],
            retry: Retry::default(),
            source: source.into(),
            stats: Arc::default(),
            limit: None,
            max_answer_bytes: super::client::DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

pub(crate) fn request_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    ["x-ms-request-id", "request-id"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok().map(str::to_owned))
}

/// `code: message` from an ARM or Graph error body, or the start of the text.
fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v["error"].is_object() => format!(
            "{}: {}",
            v["error"]["code"].as_str().unwrap_or("?"),
            v["error"]["message"].as_str().unwrap_or("")
        ),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

/// Office 365 answers throttling as `403` with error code `AF429` in the body
/// (Microsoft Learn, "Office 365 Management Activity API reference",
/// https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-reference);
/// such an answer is a throttle, not a permission problem.
pub fn is_af429(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::FORBIDDEN
        && serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["error"]["code"].as_str() == Some("AF429"))
}

/// Whether a 403's body says the tenant is not licensed (Microsoft documents no code for it;
/// the message observed for Identity Protection is "Your tenant is not licensed for this
/// feature.", see docs/graph-incidents-and-risk.md). A missing permission ("Missing
/// application roles", `Authorization_RequestDenied`) is not this.
pub fn is_not_licensed(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| {
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("not licensed"))
    })
}

pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One gate per API host (origin), shared by every source in the process: requests to a host
/// go one at a time, and none is sent before a `Retry-After` the host gave has passed (ARM and
/// Graph throttle per app and tenant, so all sources count against the same budget).
type Gate = Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>;

fn gate(url: &str) -> Gate {
    static GATES: OnceLock<Mutex<HashMap<String, Gate>>> = OnceLock::new();
    let key = reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    GATES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

/// One answer, read while holding the host's gate.
pub(crate) enum Answer {
    Transport(String),
    Http {
        status: StatusCode,
        headers: reqwest::header::HeaderMap,
        body: Result<Vec<u8>, BodyError>,
    },
}

impl ApiClient {
    /// Sends one request through the host's gate, waiting out any `Retry-After` first; with
    /// the bearer `token` when given (a SAS URL carries its own credential) and `extra`
    /// headers beside the client's own (a blob range).
    pub(crate) async fn send(
        &self,
        method: &reqwest::Method,
        url: &str,
        token: Option<&crate::config::Secret>,
        extra: &[(&'static str, String)],
        cancel: &CancellationToken,
    ) -> Result<Answer, FetchError> {
        // The family's budget first: waiting for it must not hold the host's gate, which other
        // families on the same host (Graph alerts and Entra reports) share.
        if let Some(limit) = &self.limit {
            tokio::select! {
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                _ = limit.until_ready(url) => {}
            }
        }
        let gate = gate(url);
        let mut not_before = tokio::select! {
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            g = gate.lock() => g,
        };
        if let Some(t) = *not_before {
            let now = tokio::time::Instant::now();
            if t > now {
                self.sleep(t - now, cancel).await?;
            }
        }
        let mut request = self.http.request(method.clone(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        for (k, v) in self.headers {
            request = request.header(*k, *v);
        }
        for (k, v) in extra {
            request = request.header(*k, v.as_str());
        }
        if method != reqwest::Method::GET {
            // An explicit empty body: some front ends answer 411 to a POST without a length.
            request = request.body(Vec::<u8>::new());
        }
        count(&self.stats.api_requests);
        let response = tokio::select! {
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            r = request.send() => r,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => return Ok(Answer::Transport(self.http.describe(url, &e))),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::select! {
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            b = read_body(response, self.max_answer_bytes) => b,
        };
        if let Some(asked) = retry_after(&headers) {
            let wait = capped_retry_after(asked);
            if wait < asked {
                let host = reqwest::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                tracing::warn!(
                    message = "Retry-After capped; requests to the host are held back for the cap only.",
                    source = %self.source,
                    %host,
                    asked_secs = asked.as_secs(),
                    waiting_secs = wait.as_secs()
                );
                // What /healthz says once the wait makes the source late.
                self.stats.freshness.failed(&format!(
                    "{host} asked to wait {} s (Retry-After); requests to it are held back for {} s",
                    asked.as_secs(),
                    wait.as_secs()
                ));
            }
            // A little extra absorbs clock granularity.
            *not_before = Some(later(
                tokio::time::Instant::now(),
                wait + Duration::from_millis(20),
            ));
        }
        Ok(Answer::Http {
            status,
            headers,
            body,
        })
    }

    /// Counts and logs a link or redirect that leaves the API, and the error to return.
    fn refuse(&self, what: &'static str, link: String, why: &'static str) -> FetchError {
        count(&self.stats.links_refused);
        let api = self.origin.ascii_serialization();
        tracing::error!(
            message = "Link outside the API refused; the token goes only to the API's own scheme, host and port.",
            source = %self.source,
            link = %link,
            reason = why,
            api = %api
        );
        FetchError::Refused {
            what,
            link,
            why,
            api,
        }
    }

    pub(crate) async fn sleep(
        &self,
        d: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), FetchError> {
        tokio::select! {
            _ = cancel.cancelled() => Err(FetchError::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    pub(crate) async fn token(
        &self,
        rejected: Option<&crate::config::Secret>,
        cancel: &CancellationToken,
    ) -> Result<crate::config::Secret, FetchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let got = match rejected {
                None => {
                    self.tokens
                        .token(&self.http, &self.login, &self.creds, &self.scope)
                        .await
                }
                Some(r) => {
                    self.tokens
                        .refresh(&self.http, &self.login, &self.creds, &self.scope, r)
                        .await
                }
            };
            if got.is_err() {
                count(&self.stats.token_errors);
            }
            match got {
                Ok(t) => return Ok(t),
                Err(e @ AuthError::Transport { .. }) if attempt < self.retry.max_attempts => {
                    tracing::warn!(message = "Cannot get a token; retrying.", source = %self.source, error = %e);
                    // Told by /healthz while the retries go on (a proxy or network down).
                    self.stats.freshness.failed(&e.to_string());
                    self.sleep(self.retry.backoff(attempt), cancel).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// GETs `url` (verbatim) and parses the JSON answer, retrying what is worth retrying.
    pub async fn get(&self, url: &str, cancel: &CancellationToken) -> Result<Page, FetchError> {
        self.request(reqwest::Method::GET, url, cancel).await
    }

    /// [`ApiClient::get`] parsing the answer as `B` (a body `B` rejects counts as malformed and
    /// is fetched again, like invalid JSON).
    pub async fn get_as<B: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        cancel: &CancellationToken,
    ) -> Result<Page<B>, FetchError> {
        self.request(reqwest::Method::GET, url, cancel).await
    }

    /// Sends `method` to `url` (verbatim, no body) and parses the JSON answer, with the
    /// retries of [`ApiClient::get`].
    pub async fn request<B: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        cancel: &CancellationToken,
    ) -> Result<Page<B>, FetchError> {
        self.request_parsed(method, url, cancel, |body| serde_json::from_slice(&body))
            .await
    }

    /// A list answer ([`Listing::read`]: its records and their ids and times read once, for
    /// `kind` when given), with the retries of [`ApiClient::get`].
    pub async fn get_listing(
        &self,
        url: &str,
        kind: Option<crate::event::EventKind>,
        cancel: &CancellationToken,
    ) -> Result<Page<Listing>, FetchError> {
        self.request_parsed(reqwest::Method::GET, url, cancel, |body| {
            Listing::read(body, kind)
        })
        .await
    }

    /// [`ApiClient::request`] with the body of a `200` made into `B` by `parse` (an error
    /// counts as malformed and the answer is fetched again).
    async fn request_parsed<B>(
        &self,
        method: reqwest::Method,
        url: &str,
        cancel: &CancellationToken,
        parse: impl Fn(Vec<u8>) -> Result<B, serde_json::Error>,
    ) -> Result<Page<B>, FetchError> {
        if let Some((link, why)) = outside(&self.origin, url) {
            return Err(self.refuse("link", link, why));
        }
        let mut token = self.token(None, cancel).await?;
        let mut refreshed = false;
        let mut retries = 0;
        let mut malformed = 0;
        let mut attempt = 0;
        let mut throttled = 0;
        loop {
            attempt += 1;
            let failure = match self.send(&method, url, Some(&token), &[], cancel).await? {
                Answer::Transport(e) => {
                    count(&self.stats.api_errors);
                    // Told by /healthz while the retries go on (a proxy or network down).
                    self.stats
                        .freshness
                        .failed(&format!("request to {url}: transport error: {e}; retrying"));
                    (format!("transport error: {e}"), None)
                }
                Answer::Http {
                    status,
                    headers,
                    body,
                } => {
                    let rid = request_id(&headers);
                    match (status, body) {
                        (_, Err(e @ BodyError::TooLarge { .. })) => {
                            // The same answer would come again: not retried here; the source
                            // reads the window again at its next poll.
                            count(&self.stats.api_errors);
                            tracing::warn!(
                                message = "Answer larger than [azure] max_answer_bytes; refused.",
                                source = %self.source,
                                request_id = rid.as_deref().unwrap_or("-"),
                                status = status.as_u16(),
                                max_answer_bytes = self.max_answer_bytes
                            );
                            return Err(FetchError::Failed {
                                url: url.to_owned(),
                                message: format!(
                                    "{e}; raise [azure] max_answer_bytes (now {}) if the API really answers this much (request id {})",
                                    self.max_answer_bytes,
                                    rid.as_deref().unwrap_or("-")
                                ),
                            });
                        }
                        (_, Err(e)) => {
                            count(&self.stats.api_errors);
                            (e.to_string(), None)
                        }
                        (StatusCode::OK, Ok(body)) => match parse(body) {
                            Ok(json) => {
                                return Ok(Page {
                                    body: json,
                                    request_id: rid,
                                    retries,
                                    malformed,
                                    headers,
                                })
                            }
                            Err(e) => {
                                malformed += 1;
                                count(&self.stats.api_malformed);
                                tracing::warn!(
                                    message = "Malformed page; fetching it again.",
                                    source = %self.source,
                                    request_id = rid.as_deref().unwrap_or("-"),
                                    error = %e
                                );
                                (format!("answer is not valid JSON: {e}"), None)
                            }
                        },
                        (StatusCode::UNAUTHORIZED, Ok(body)) if !refreshed => {
                            count(&self.stats.api_errors);
                            tracing::info!(
                                message = "Token rejected; getting a new one.",
                                source = %self.source,
                                request_id = rid.as_deref().unwrap_or("-"),
                                error = %error_text(&body)
                            );
                            refreshed = true;
                            token = self.token(Some(&token), cancel).await?;
                            continue;
                        }
                        (
                            StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::INTERNAL_SERVER_ERROR
                            | StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT,
                            Ok(body),
                        ) => {
                            let busy = [
                                StatusCode::TOO_MANY_REQUESTS,
                                StatusCode::SERVICE_UNAVAILABLE,
                            ];
                            count(if busy.contains(&status) {
                                &self.stats.api_throttled
                            } else {
                                &self.stats.api_errors
                            });
                            (
                                format!("HTTP {} {}", status.as_u16(), error_text(&body)),
                                retry_after(&headers),
                            )
                        }
                        (StatusCode::FORBIDDEN, Ok(body)) if is_af429(status, &body) => {
                            count(&self.stats.api_throttled);
                            (
                                format!("HTTP 403 {} (throttled)", error_text(&body)),
                                retry_after(&headers),
                            )
                        }
                        (_, Ok(_)) if status.is_redirection() => {
                            // Never followed (the client has no redirect policy): elsewhere it
                            // would take the token along; within the API no endpoint redirects.
                            let to = redirect_target(&headers, url);
                            let inside =
                                reqwest::Url::parse(&to).is_ok_and(|u| u.origin() == self.origin);
                            if !inside {
                                let why = "a redirect answer pointed there";
                                return Err(self.refuse("redirect", to, why));
                            }
                            count(&self.stats.api_errors);
                            return Err(FetchError::Failed {
                                url: url.to_owned(),
                                message: format!(
                                    "HTTP {} redirect to {to} not followed (request id {}); the API's endpoints do not redirect: check the endpoint settings in [azure]",
                                    status.as_u16(),
                                    rid.as_deref().unwrap_or("-")
                                ),
                            });
                        }
                        (StatusCode::FORBIDDEN, Ok(body)) if is_not_licensed(&body) => {
                            count(&self.stats.api_errors);
                            return Err(FetchError::NotLicensed {
                                url: url.to_owned(),
                                message: format!(
                                    "HTTP 403 {} (request id {})",
                                    error_text(&body),
                                    rid.as_deref().unwrap_or("-")
                                ),
                            });
                        }
                        (_, Ok(body)) => {
                            count(&self.stats.api_errors);
                            let hint = match status {
                                StatusCode::UNAUTHORIZED => "; the API rejected a fresh token too: check the app's permissions and admin consent",
                                StatusCode::FORBIDDEN => "; grant the app the role or permission this source needs (README, permissions)",
                                StatusCode::NOT_FOUND => "; check the subscription id and the endpoint",
                                _ => "",
                            };
                            return Err(FetchError::Failed {
                                url: url.to_owned(),
                                message: format!(
                                    "HTTP {} {} (request id {}){hint}",
                                    status.as_u16(),
                                    error_text(&body),
                                    rid.as_deref().unwrap_or("-")
                                ),
                            });
                        }
                    }
                }
            };
            let (message, server_wait) = failure;
            // A server that says when to come back is waited for longer than one that fails.
            if server_wait.is_some() {
                throttled += 1;
                attempt -= 1;
            }
            if attempt >= self.retry.max_attempts || throttled > self.retry.max_throttled {
                return Err(FetchError::Failed {
                    url: url.to_owned(),
                    message: format!(
                        "gave up after {} attempts; last: {message}",
                        attempt + throttled
                    ),
                });
            }
            retries += 1;
            // After a Retry-After the host's gate holds the next request back; otherwise back off.
            let wait = match server_wait {
                Some(_) => Duration::ZERO,
                None => self.retry.backoff(attempt),
            };
            tracing::info!(
                message = "Request not served; retrying.",
                source = %self.source,
                reason = %message,
                wait_ms = wait.as_millis() as u64
            );
            self.sleep(wait, cancel).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let r = Retry::default();
        for attempt in 1..12 {
            let step = Duration::from_secs(1 << (attempt - 1).min(6)).min(r.cap);
            let d = r.backoff(attempt);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let date = later.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        h.insert("retry-after", date.parse().unwrap());
        let w = retry_after(&h).unwrap();
        assert!(
            w > Duration::from_secs(27) && w <= Duration::from_secs(30),
            "{w:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(
            error_text(br#"{"error":{"code":"AuthorizationFailed","message":"no"}}"#),
            "AuthorizationFailed: no"
        );
        assert_eq!(error_text(b"plain"), "plain");
    }

    #[test]
    fn a_403_saying_not_licensed_is_told_from_a_missing_role() {
        let unlicensed = br#"{"error":{"code":"Forbidden","message":"Your tenant is not licensed for this feature."}}"#;
        assert!(is_not_licensed(unlicensed));
        let role = br#"{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: IdentityRiskEvent.Read.All"}}"#;
        assert!(!is_not_licensed(role));
        assert!(!is_not_licensed(b"not licensed, but not JSON"));
    }

    #[test]
    fn af429_in_a_403_is_a_throttle() {
        let af429 = br#"{"error":{"code":"AF429","message":"Too many requests. Method=GetBlob, PublisherId=x"}}"#;
        assert!(is_af429(StatusCode::FORBIDDEN, af429));
        assert!(!is_af429(StatusCode::OK, af429));
        let denied = br#"{"error":{"code":"AF10001","message":"The permission set () sent in the request does not include the expected permission."}}"#;
        assert!(!is_af429(StatusCode::FORBIDDEN, denied));
        assert!(!is_af429(StatusCode::FORBIDDEN, b"AF429 but not JSON"));
    }

    #[test]
    fn only_the_apis_own_scheme_host_and_port_is_inside() {
        let arm = origin("https://management.azure.com");
        for same in [
            "https://management.azure.com/subscriptions/s?$skiptoken=x",
            "https://management.azure.com:443/subscriptions/s",
            "https://MANAGEMENT.azure.com/x",
            "https://user@management.azure.com/x",
        ] {
            assert_eq!(outside(&arm, same), None, "{same}");
        }
        let why = |link: &str| outside(&arm, link).unwrap();
        assert_eq!(
            why("https://evil.example/subscriptions/s"),
            ("https://evil.example".into(), "another host")
        );
        assert_eq!(
            why("https://management.azure.com.evil.example/x").0,
            "https://management.azure.com.evil.example"
        );
        assert_eq!(
            why("https://management.azure.com:8443/x"),
            ("https://management.azure.com:8443".into(), "another port")
        );
        for downgrade in [
            "http://management.azure.com/x",
            "http://management.azure.com:443/x",
        ] {
            let (link, reason) = why(downgrade);
            assert!(link.starts_with("http://management.azure.com"), "{link}");
            assert!(reason.starts_with("a downgrade to http://"), "{reason}");
        }
        assert_eq!(why("http://management.azure.com:8080/x").1, "another port");
        assert_eq!(why("/subscriptions/s").1, "not a URL");
        assert_eq!(why("data:text/plain,x").0, "a data: URL");
        // Loopback endpoints (tests): the port is part of the origin.
        let sim = origin("http://127.0.0.1:4000");
        assert_eq!(outside(&sim, "http://127.0.0.1:4000/a?b"), None);
        assert_eq!(
            outside(&sim, "http://127.0.0.1:4001/a").unwrap().1,
            "another port"
        );
        assert_eq!(
            outside(&sim, "http://localhost:4000/a").unwrap().1,
            "another host"
        );
        // An unusable endpoint lets nothing through.
        assert!(outside(&origin("not a url"), "https://management.azure.com/").is_some());
    }
}
