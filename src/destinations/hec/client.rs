//! The HTTP side of a HEC destination: one POST of concatenated events, one acknowledgement
//! poll, and every answer classified by Splunk's documented HEC status codes (`docs/splunk.md`)
//! into what the sender does next: count or wait for the ackId, back off and retry, report a
//! token or configuration problem (and retry), or dead-letter the one event Splunk names.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::config::Secret;
use crate::destinations::tls::TlsSetup;

/// `X-Splunk-Request-Channel`: the channel that scopes ackIds.
const HEADER_CHANNEL: &str = "x-splunk-request-channel";
/// The event endpoint (JSON events, concatenated).
const PATH_EVENT: &str = "services/collector/event";
/// The acknowledgement endpoint.
const PATH_ACK: &str = "services/collector/ack";
/// The health endpoint (no token needed; 200 "HEC is healthy").
const PATH_HEALTH: &str = "services/collector/health";
/// The longest `Retry-After` honoured; a longer one is taken as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Largest answer body read (Splunk's are tens of bytes; ack answers grow with the ids asked).
const MAX_ANSWER_BYTES: usize = 4 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not succeed, and so what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HecError {
    /// Back off and send the same again: 503 server busy, 429, other 5xx, network errors.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 401/403: the token is missing, wrong, revoked or disabled. Retried with backoff until an
    /// operator fixes it; nothing is lost meanwhile.
    #[error("{message}")]
    Token { message: String },
    /// 400 naming one event (`invalid-event-number`, 0-based): it goes to the dead-letter file
    /// and the rest of the batch is sent again.
    #[error("{message}")]
    Invalid { index: usize, message: String },
    /// Anything else Splunk refuses (channel, acknowledgement, index, URL): a configuration
    /// problem, retried with backoff.
    #[error("{message}")]
    Config { message: String },
}

impl HecError {
    /// Whether only an operator can fix it (logged as an error, /healthz degraded).
    pub fn needs_operator(&self) -> bool {
        matches!(self, HecError::Token { .. } | HecError::Config { .. })
    }
}

/// A HEC endpoint with its token and channel.
#[derive(Clone)]
pub struct HecClient {
    http: reqwest::Client,
    event_url: Url,
    ack_url: Url,
    health_url: Url,
    headers: HeaderMap,
    gzip: bool,
    /// The base URL, for messages.
    pub base: String,
}

impl std::fmt::Debug for HecClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HecClient")
            .field("base", &self.base)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl HecClient {
    /// A client for the collector at `base` (checked by `config::hec::hec_url`), sending
    /// `token` and `channel`; `tls` is the destination's TLS setup for an https URL.
    pub fn new(
        base: &Url,
        token: &Secret,
        channel: &str,
        gzip: bool,
        tls: Option<&TlsSetup>,
        connections: usize,
    ) -> Result<HecClient, String> {
        let mut auth =
            HeaderValue::from_str(&format!("Splunk {}", token.expose())).map_err(|_| {
                "the HEC token holds characters not allowed in an HTTP header".to_owned()
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            HEADER_CHANNEL,
            HeaderValue::from_str(channel).map_err(|e| e.to_string())?,
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // The project's client builder (ring provider, system CAs); the destination's own TLS
        // settings replace its TLS configuration for an https URL.
        let mut builder = crate::sources::azure::client::builder()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(connections + 1)
            .pool_idle_timeout(Duration::from_secs(50));
        if let Some(tls) = tls {
            let mut config = (**tls.connector.config()).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let join = |path: &str| base.join(path).map_err(|e| e.to_string());
        Ok(HecClient {
            http,
            event_url: join(PATH_EVENT)?,
            ack_url: join(PATH_ACK)?,
            health_url: join(PATH_HEALTH)?,
            headers,
            gzip,
            base: base.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// POSTs a batch (`body`: concatenated event objects, gzipped when the client gzips).
    /// Returns the ackId when Splunk gave one (a token with indexer acknowledgement).
    pub async fn post(&self, body: Bytes) -> Result<Option<u64>, HecError> {
        let mut req = self
            .http
            .post(self.event_url.clone())
            .headers(self.headers.clone())
            .body(body);
        if self.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let answer = self.send(req).await?;
        Ok(answer.get("ackId").and_then(Value::as_u64))
    }

    /// Asks which of `ids` are indexed; returns those answered `true`.
    pub async fn poll_acks(&self, ids: &[u64]) -> Result<Vec<u64>, HecError> {
        let body = serde_json::json!({ "acks": ids }).to_string();
        let req = self
            .http
            .post(self.ack_url.clone())
            .headers(self.headers.clone())
            .body(body);
        let answer = self.send(req).await?;
        let acks = answer
            .get("acks")
            .and_then(Value::as_object)
            .ok_or_else(|| HecError::Busy {
                message: format!(
                    "{}: acknowledgement answer without \"acks\": {answer}",
                    self.base
                ),
                retry_after: None,
            })?;
        Ok(acks
            .iter()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .filter_map(|(k, _)| k.parse().ok())
            .collect())
    }

    /// `GET /services/collector/health`: whether the collector answers and is healthy.
    pub async fn health(&self) -> Result<(), HecError> {
        self.send(self.http.get(self.health_url.clone()))
            .await
            .map(|_| ())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, HecError> {
        let resp = req.send().await.map_err(|e| HecError::Busy {
            message: format!(
                "{}: {}",
                self.base,
                crate::sources::azure::client::error_chain(&e)
            ),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let bytes = resp.bytes().await.map_err(|e| HecError::Busy {
            message: format!("{}: reading the answer: {e}", self.base),
            retry_after: None,
        })?;
        let body: Value = if bytes.len() > MAX_ANSWER_BYTES {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        classify(&self.base, status, retry_after, body)
    }
}

/// Sorts an answer by Splunk's HEC status codes (`docs/splunk.md`, from Splunk's
/// "Troubleshoot HTTP Event Collector" table).
pub fn classify(
    base: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Value,
) -> Result<Value, HecError> {
    let code = body.get("code").and_then(Value::as_i64);
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if status.is_success() {
        return Ok(body);
    }
    let said = match code {
        Some(c) => format!("HTTP {} (HEC code {c}, \"{text}\")", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    let invalid = body.get("invalid-event-number").and_then(Value::as_u64);
    Err(match (status.as_u16(), code) {
        (429, _) | (503, _) => HecError::Busy {
            message: format!("{base} is busy: {said}; backing off"),
            retry_after,
        },
        (401 | 403, Some(1)) => HecError::Token {
            message: format!("{base}: the HEC token is disabled in Splunk: {said}; enable it under Settings > Data inputs > HTTP Event Collector"),
        },
        (401 | 403, Some(4)) => HecError::Token {
            message: format!("{base}: Splunk does not accept the HEC token (unknown, deleted or revoked): {said}; check token_file against Settings > Data inputs > HTTP Event Collector"),
        },
        (401 | 403, _) => HecError::Token {
            message: format!("{base}: Splunk refused the authorization: {said}; check token_file"),
        },
        (400, Some(6 | 12 | 13)) if invalid.is_some() => HecError::Invalid {
            index: invalid.unwrap_or(0) as usize,
            message: format!("Splunk refused the event: {said}"),
        },
        (400, Some(7)) => HecError::Config {
            message: format!("{base}: the token may not write to the index configured: {said}; set index to one the token allows, or add it to the token's allowed indexes"),
        },
        (400, Some(10 | 11)) => HecError::Config {
            message: format!("{base}: Splunk refused the request channel: {said}"),
        },
        (400, Some(14)) => HecError::Config {
            message: format!("{base}: indexer acknowledgement is off for this token ({said}) but was required: enable \"Indexer acknowledgement\" on the token, or set ack = false"),
        },
        (404, _) => HecError::Config {
            message: format!("{base}: {said}: is url the HTTP Event Collector's address (port 8088 by default)?"),
        },
        (s, _) if s >= 500 => HecError::Busy {
            message: format!("{base}: {said}; retrying"),
            retry_after,
        },
        _ => HecError::Config {
            message: format!("{base} refused the request: {said}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(status: u16, body: Value) -> HecError {
        classify(
            "https://splunk:8088",
            StatusCode::from_u16(status).unwrap(),
            Some(Duration::from_secs(7)),
            body,
        )
        .unwrap_err()
    }

    #[test]
    fn answers_are_sorted_by_splunks_status_codes() {
        let ok = classify(
            "b",
            StatusCode::OK,
            None,
            json!({"text":"Success","code":0,"ackId":3}),
        )
        .unwrap();
        assert_eq!(ok["ackId"], 3);
        assert_eq!(
            err(503, json!({"text":"Server is busy","code":9})),
            HecError::Busy {
                message: "https://splunk:8088 is busy: HTTP 503 (HEC code 9, \"Server is busy\"); backing off".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
        assert!(matches!(
            err(429, Value::Null),
            HecError::Busy {
                retry_after: Some(_),
                ..
            }
        ));
        let disabled = err(403, json!({"text":"Token disabled","code":1}));
        assert!(disabled.to_string().contains("disabled"), "{disabled}");
        let invalid = err(403, json!({"text":"Invalid token","code":4}));
        assert!(invalid.to_string().contains("revoked"), "{invalid}");
        assert!(invalid.needs_operator());
        assert_eq!(
            err(
                400,
                json!({"text":"Invalid data format","code":6,"invalid-event-number":2})
            ),
            HecError::Invalid {
                index: 2,
                message: "Splunk refused the event: HTTP 400 (HEC code 6, \"Invalid data format\")"
                    .into()
            }
        );
        let no_ack = err(400, json!({"text":"ACK is disabled","code":14}));
        assert!(no_ack.to_string().contains("ack = false"), "{no_ack}");
        assert!(matches!(
            err(400, json!({"text":"Data channel is missing","code":10})),
            HecError::Config { .. }
        ));
        assert!(matches!(err(500, Value::Null), HecError::Busy { .. }));
        assert!(matches!(err(404, Value::Null), HecError::Config { .. }));
    }
}
