//! The simulator's request handling: authorization, channels, the event and ack endpoints,
//! and the faults applied to them, answering with Splunk's status codes and bodies.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::batch::{self, Refusal};
use super::wire::{self, Status};
use super::{HecToken, IndexedEvent, Inner, Pending, Shared};

/// A HEC JSON answer: `{"text":…,"code":…}` with the status's HTTP status, plus `extra` members.
fn reply(status: Status, extra: &[(&str, Value)]) -> Response {
    let mut body = json!({ "text": status.text, "code": status.code });
    for (k, v) in extra {
        body[*k] = v.clone();
    }
    let http = StatusCode::from_u16(status.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (http, axum::Json(body)).into_response()
}

fn refused(r: &Refusal) -> Response {
    match r.invalid_event_number {
        Some(n) => reply(r.status, &[(wire::INVALID_EVENT_NUMBER, json!(n))]),
        None => reply(r.status, &[]),
    }
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let path = uri.path().trim_end_matches('/');
    let now = Instant::now();
    let mut st = shared.lock();
    st.settle(now);
    let response = if path == wire::PATH_HEALTH && method == Method::GET {
        Ok(reply(wire::HEALTHY, &[]))
    } else if (path == wire::PATH_EVENT || wire::PATH_EVENT_ALIASES.contains(&path))
        && method == Method::POST
    {
        events(&mut st, &headers, &query, &body, now)
    } else if path == wire::PATH_ACK && method == Method::POST {
        acks(&mut st, &headers, &query, &body)
    } else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"text": "The requested URL was not found on this server.", "code": 404}),
            ),
        )
            .into_response();
    };
    let (code, response) = match response {
        Ok(r) => (0, r),
        Err(Answer::Refused(r)) => (r.status.code, refused(&r)),
        Err(Answer::Throttled(secs)) => {
            st.stats.throttled += 1;
            let mut r = reply(wire::TOO_MANY_REQUESTS, &[]);
            r.headers_mut()
                .insert(wire::HEADER_RETRY_AFTER, HeaderValue::from(secs));
            (wire::TOO_MANY_REQUESTS.code, r)
        }
    };
    *st.stats.by_code.entry(code).or_insert(0) += 1;
    response
}

enum Answer {
    Refused(Refusal),
    Throttled(u64),
}

impl From<Status> for Answer {
    fn from(status: Status) -> Self {
        Answer::Refused(Refusal {
            status,
            invalid_event_number: None,
        })
    }
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Self {
        Answer::Refused(r)
    }
}

/// The request's token, checked: `Authorization: Splunk <token>`, `Authorization: Basic` with
/// the token as password, or `?token=` when allowed.
fn authorize(
    st: &Inner,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<HecToken, Status> {
    let token = match headers.get(wire::HEADER_AUTHORIZATION) {
        None => match query.iter().find(|(k, _)| k == wire::QUERY_TOKEN) {
            None => return Err(wire::TOKEN_REQUIRED),
            Some(_) if !st.cfg.query_string_auth => return Err(wire::QUERY_AUTH_DISABLED),
            Some((_, t)) => t.clone(),
        },
        Some(value) => {
            let text = value.to_str().map_err(|_| wire::INVALID_AUTHORIZATION)?;
            let (scheme, token) = text.split_once(' ').ok_or(wire::INVALID_AUTHORIZATION)?;
            let token = if scheme.eq_ignore_ascii_case(wire::AUTH_SCHEME) {
                token.trim().to_owned()
            } else if scheme.eq_ignore_ascii_case(wire::AUTH_BASIC) {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(token.trim())
                    .map_err(|_| wire::INVALID_AUTHORIZATION)?;
                let pair = String::from_utf8(decoded).map_err(|_| wire::INVALID_AUTHORIZATION)?;
                let (_user, password) = pair.split_once(':').ok_or(wire::INVALID_AUTHORIZATION)?;
                password.to_owned()
            } else {
                return Err(wire::INVALID_AUTHORIZATION);
            };
            if token.is_empty() {
                return Err(wire::INVALID_AUTHORIZATION);
            }
            token
        }
    };
    match st.tokens.get(&token) {
        None => Err(wire::INVALID_TOKEN),
        Some(t) if t.disabled => Err(wire::TOKEN_DISABLED),
        Some(t) => Ok(t.clone()),
    }
}

/// The request's channel (header, else query), which must be a GUID; required with `ack`.
fn channel(
    headers: &HeaderMap,
    query: &[(String, String)],
    required: bool,
) -> Result<Option<String>, Status> {
    let given = match headers.get(wire::HEADER_CHANNEL) {
        Some(v) => Some(v.to_str().map_err(|_| wire::INVALID_CHANNEL)?.to_owned()),
        None => query
            .iter()
            .find(|(k, _)| k == wire::QUERY_CHANNEL)
            .map(|(_, v)| v.clone()),
    };
    match given {
        None if required => Err(wire::CHANNEL_MISSING),
        None => Ok(None),
        Some(c) if is_guid(&c) => Ok(Some(c.to_ascii_lowercase())),
        Some(_) => Err(wire::INVALID_CHANNEL),
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn events(
    st: &mut Inner,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    now: Instant,
) -> Result<Response, Answer> {
    st.stats.event_requests += 1;
    if st.faults.throttle_next > 0 {
        st.faults.throttle_next -= 1;
        return Err(Answer::Throttled(st.faults.retry_after_secs));
    }
    if st.faults.busy_next > 0 {
        st.faults.busy_next -= 1;
        return Err(wire::SERVER_BUSY.into());
    }
    let token = authorize(st, headers, query)?;
    let channel = channel(headers, query, token.ack)?;
    let encoding = headers
        .get(wire::HEADER_CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let gzip = encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    let body = batch::decode(body, encoding, st.cfg.max_body_bytes)?;
    let parsed = batch::parse(&body, &token.indexes)?;
    for (n, e) in parsed.iter().enumerate() {
        if st.faults.invalid_markers.is_empty() {
            break;
        }
        let text = e.event.to_string();
        if st
            .faults
            .invalid_markers
            .iter()
            .any(|m| text.contains(m.as_str()))
        {
            return Err(Refusal {
                status: wire::INVALID_DATA_FORMAT,
                invalid_event_number: Some(n),
            }
            .into());
        }
    }
    st.stats.batches_accepted += 1;
    let accepted = st.stats.batches_accepted;
    if st.faults.revoke_after_batches == Some(accepted) {
        st.tokens.clear();
    }
    let lost = if st.faults.lose_next > 0 {
        st.faults.lose_next -= 1;
        true
    } else {
        st.faults
            .lose_every
            .is_some_and(|n| n > 0 && accepted % n == 0)
    };
    if lost {
        st.stats.batches_lost += 1;
    }
    let mut indexed: Vec<IndexedEvent> = parsed
        .into_iter()
        .map(|event| IndexedEvent {
            token: token.token.clone(),
            channel: channel.clone(),
            ack_id: None,
            gzip,
            event,
        })
        .collect();
    match (token.ack, channel) {
        (true, Some(ch)) => {
            let ready_at = now + st.cfg.ack_delay;
            let entry = st.channels.entry((token.token.clone(), ch)).or_default();
            let id = entry.next_ack;
            entry.next_ack += 1;
            for e in &mut indexed {
                e.ack_id = Some(id);
            }
            entry.pending.insert(
                id,
                Pending {
                    ready_at,
                    lost,
                    events: indexed,
                },
            );
            Ok(reply(wire::SUCCESS, &[("ackId", json!(id))]))
        }
        _ => {
            if !lost {
                st.stats.events_indexed += indexed.len() as u64;
                if st.cfg.keep_events {
                    st.indexed.append(&mut indexed);
                }
            }
            Ok(reply(wire::SUCCESS, &[]))
        }
    }
}

fn acks(
    st: &mut Inner,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Response, Answer> {
    st.stats.ack_requests += 1;
    let token = authorize(st, headers, query)?;
    if !token.ack {
        return Err(wire::ACK_DISABLED.into());
    }
    let Some(channel) = channel(headers, query, true)? else {
        return Err(wire::CHANNEL_MISSING.into());
    };
    let encoding = headers
        .get(wire::HEADER_CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let body = batch::decode(body, encoding, st.cfg.max_body_bytes)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(wire::NO_DATA.into());
    }
    #[derive(serde::Deserialize)]
    struct Query {
        acks: Vec<u64>,
    }
    let ids = serde_json::from_slice::<Query>(&body)
        .map_err(|_| Answer::from(wire::INVALID_DATA_FORMAT))?
        .acks;
    let now = Instant::now();
    let mut answer = serde_json::Map::new();
    let mut confirmed = 0;
    let mut ch = st.channels.get_mut(&(token.token.clone(), channel));
    for id in ids {
        // True once indexed; answered true once, then forgotten (asked again: false).
        let done = ch.as_mut().is_some_and(|c| {
            let ready = c
                .pending
                .get(&id)
                .is_some_and(|p| !p.lost && p.ready_at <= now && p.events.is_empty());
            if ready {
                c.pending.remove(&id);
            }
            ready
        });
        confirmed += u64::from(done);
        answer.insert(id.to_string(), Value::Bool(done));
    }
    st.stats.acks_confirmed += confirmed;
    Ok((StatusCode::OK, axum::Json(json!({ "acks": answer }))).into_response())
}
