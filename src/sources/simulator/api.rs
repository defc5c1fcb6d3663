//! The simulator's API surface: ARM's activity-log list and Graph's `alerts_v2`, with their
//! filters, paging by opaque skip tokens (consistent across the pages of one listing), error
//! bodies and headers as the real services write them, and the injected faults.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::data::{self, Item};
use super::{check_token, now_ms, query_pairs, Service, Shared};
use crate::event::parse_time_ms;

const ACTIVITY_API_VERSION: &str = "2015-04-01";
const RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;

pub(super) fn request_id(at_ms: i64, n: u64) -> String {
    data::guid(at_ms as u64, &[n])
}

pub(super) fn arm_error(status: StatusCode, code: &str, message: &str, rid: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("x-ms-request-id", v.clone());
        r.headers_mut().insert("x-ms-correlation-request-id", v);
    }
    r
}

pub(super) fn graph_error(status: StatusCode, code: &str, message: &str, rid: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": rid, "client-request-id": rid}}});
    let mut r = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("request-id", v.clone());
        r.headers_mut().insert("client-request-id", v);
    }
    r
}

fn error(service: Service, status: StatusCode, code: &str, message: &str, rid: &str) -> Response {
    match service {
        Service::Graph => graph_error(status, code, message, rid),
        _ => arm_error(status, code, message, rid),
    }
}

/// Answers one API request, faults first.
pub(super) async fn serve(
    shared: &Shared,
    service: Service,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    at_ms: i64,
) -> Response {
    let faults = &shared.cfg.faults;
    let n = {
        let mut st = shared.lock();
        let n = st.counters.entry(service).or_insert(0);
        *n += 1;
        let n = *n;
        if faults
            .revoke_tokens_every
            .is_some_and(|k| k > 0 && n % k == 0)
        {
            st.generation += 1;
        }
        n
    };
    let rid = request_id(at_ms, n);
    if let Some(why) = check_token(shared, service, headers) {
        let (code, message) = match (service, why) {
            (Service::Graph, _) => (
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ),
            (_, "missing") => (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ),
            (_, "expired") => (
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            ),
            _ => (
                "InvalidAuthenticationToken",
                "The access token is invalid or was issued for another audience.",
            ),
        };
        let mut r = error(service, StatusCode::UNAUTHORIZED, code, message, &rid);
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return r;
    }
    if let Some(r) = super::hostile::api_redirect(shared, uri) {
        return r;
    }
    if faults.throttle_every.is_some_and(|k| k > 0 && n % k == 0) {
        if service == Service::Office {
            // Office 365 throttles with 403 AF429; every other time without a Retry-After.
            let wait = ((n / faults.throttle_every.unwrap_or(1)) % 2 == 1)
                .then_some(faults.retry_after_secs);
            return super::office::af429("ListContent", &shared.cfg.tenant_id, &rid, wait);
        }
        let mut r = error(
            service,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled. Please retry after the time in the Retry-After header.",
            &rid,
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(faults.retry_after_secs));
        return r;
    }
    if faults
        .unavailable_every
        .is_some_and(|k| k > 0 && n % k == 0)
    {
        let mut r = error(
            service,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry.",
            &rid,
        );
        if (n / faults.unavailable_every.unwrap_or(1)) % 2 == 1 {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(faults.retry_after_secs));
        }
        return r;
    }
    if let Some(d) = faults.slow_page {
        tokio::time::sleep(d).await;
    }
    if service == Service::Office {
        return super::office::serve(shared, method, uri, &rid);
    }
    if method != Method::GET {
        return error(
            service,
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Only GET is supported.",
            &rid,
        );
    }
    let query = Query(query_pairs(uri.query().unwrap_or("")));
    let q = |k: &str| query.get(k);
    if let Some(r) = super::bulk::serve(shared, service, uri, &query, &rid) {
        return r;
    }
    let listing = match service {
        Service::Management
            if uri
                .path()
                .to_ascii_lowercase()
                .contains("/providers/microsoft.security/") =>
        {
            super::defender::listing(shared, uri.path(), &query, &rid)
        }
        Service::Management => activity_listing(shared, uri.path(), &query, &rid),
        _ => graph_listing(shared, uri.path(), &query, headers, &rid),
    };
    let (items, base_query, asof, offset) = match listing {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let top = q("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(shared.cfg.page_size)
        .clamp(1, 1000);
    let mut page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(top)
        .map(|v| v.clone().into_owned())
        .collect();
    if faults.duplicate_across_pages && offset > 0 {
        if let Some(prev) = items.get(offset - 1) {
            page.insert(0, prev.clone().into_owned());
        }
    }
    let next = (offset + top < items.len()).then(|| {
        let mut url = reqwest::Url::parse(&format!("{}{}", shared.base[&service], uri.path()))
            .expect("simulator base URL");
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in &base_query {
                qp.append_pair(k, v);
            }
            qp.append_pair(
                "$skiptoken",
                &skip_token(shared.cfg.seed, asof, offset + top),
            );
        }
        super::hostile::link(shared, url.to_string())
    });
    let malformed = offset > 0 && {
        let mut st = shared.lock();
        let left = st.malformed_left > 0;
        st.malformed_left = st.malformed_left.saturating_sub(1);
        left
    };
    let bomb = offset > 0 && !malformed && {
        let mut st = shared.lock();
        let left = st.gzip_bombs_left > 0;
        st.gzip_bombs_left = st.gzip_bombs_left.saturating_sub(1);
        left
    };
    if faults.broken_records_every.is_some() {
        mark_broken(&mut page, faults);
    }
    faults.bloat(&mut page);
    let body = match service {
        Service::Graph => {
            let mut b = json!({
                "@odata.context": format!("{}/v1.0/$metadata#{}", shared.base[&service], uri.path().trim_start_matches("/v1.0/")),
                "value": page,
            });
            if let Some(n) = next {
                b["@odata.nextLink"] = Value::from(n);
            }
            b
        }
        _ => {
            let mut b = json!({ "value": page });
            if let Some(n) = next {
                b["nextLink"] = Value::from(n);
            }
            b
        }
    };
    let mut text = serde_json::to_vec(&body).unwrap_or_default();
    if faults.broken_records_every.is_some() {
        text = String::from_utf8_lossy(&text)
            .replace(&format!("\"{BROKEN_MARK}\""), r#""\ud800""#)
            .into_bytes();
    }
    if malformed {
        // A body cut off mid-transfer: valid status and headers, invalid JSON.
        text.truncate(text.len() / 2);
    }
    let mut r = if bomb {
        let mut r = json_answer(gzip_bomb(&text, faults.gzip_bomb_bytes));
        r.headers_mut()
            .insert("content-encoding", HeaderValue::from_static("gzip"));
        r
    } else {
        json_answer(text)
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        let h = r.headers_mut();
        if service == Service::Graph {
            h.insert("request-id", v.clone());
            h.insert("client-request-id", v);
        } else {
            h.insert("x-ms-request-id", v.clone());
            h.insert("x-ms-correlation-request-id", v);
            h.insert(
                "x-ms-ratelimit-remaining-subscription-reads",
                HeaderValue::from(11_999u32),
            );
        }
    }
    r
}

/// A gzip body inflating to `inflated` bytes (at least the page): `page` with whitespace
/// before its closing brace, so it is still the same valid JSON page. Whitespace compresses
/// about 1000:1, and a megabyte of it is compressed once and repeated (every deflate block
/// ends on a byte boundary after a sync flush and refers back only to whitespace), so a 4 GiB
/// bomb takes a few MB and no time to make.
fn gzip_bomb(page: &[u8], inflated: u64) -> Vec<u8> {
    use std::io::Write as _;
    const CHUNK: usize = 1 << 20;
    let Some((_, head)) = page.split_last() else {
        return Vec::new();
    };
    let padding = inflated.saturating_sub(page.len() as u64);
    let (chunks, rest) = (padding / CHUNK as u64, (padding % CHUNK as u64) as usize);
    let spaces = vec![b' '; CHUNK];
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let mut crc = flate2::Crc::new();
    let mut chunk_crc = flate2::Crc::new();
    chunk_crc.update(&spaces);
    // In memory: writing and flushing a Vec cannot fail.
    let _ = deflate.write_all(head).and_then(|()| deflate.flush());
    crc.update(head);
    let head_end = deflate.get_ref().len();
    let _ = deflate.write_all(&spaces).and_then(|()| deflate.flush());
    let chunk_end = deflate.get_ref().len();
    let _ = deflate.write_all(&spaces[..rest]);
    let _ = deflate.write_all(b"}");
    let stream = deflate.finish().unwrap_or_default();
    let (first, tail) = stream.split_at(head_end);
    let (chunk, last) = tail.split_at(chunk_end - head_end);
    let mut out = Vec::with_capacity(first.len() + chunk.len() * chunks as usize + last.len() + 18);
    // Header: magic, deflate, no flags, no time, best compression, unknown OS.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
    out.extend_from_slice(first);
    for _ in 0..chunks {
        out.extend_from_slice(chunk);
        crc.combine(&chunk_crc);
    }
    out.extend_from_slice(last);
    crc.update(&spaces[..rest]);
    crc.update(b"}");
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the inflated length modulo 2^32.
    let total = page.len() as u64 + padding;
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out
}

/// A string member given to the records [`Faults::breaks`] picks; the serialised page then has
/// its value replaced by a lone surrogate escape, which a `Value` cannot hold.
const BROKEN_MARK: &str = "siemcast-simulator-broken-string";

/// Marks the records of a page that are to be served broken (see [`BROKEN_MARK`]).
fn mark_broken(page: &mut [Value], faults: &super::Faults) {
    for record in page {
        let id = ["eventDataId", "id"]
            .iter()
            .find_map(|k| record.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        if let (Some(id), Some(obj)) = (id, record.as_object_mut()) {
            if faults.breaks(&id) {
                obj.insert("note".into(), Value::from(BROKEN_MARK));
            }
        }
    }
}

pub(super) fn skip_token(seed: u64, asof: i64, offset: usize) -> String {
    let check = data::mix(seed ^ asof as u64 ^ ((offset as u64) << 20)) & 0xffff;
    format!("{asof:x}!{offset:x}!{check:x}")
}

pub(super) fn parse_skip_token(seed: u64, token: &str) -> Option<(i64, usize)> {
    let mut parts = token.split('!');
    let asof = i64::from_str_radix(parts.next()?, 16).ok()?;
    let offset = usize::from_str_radix(parts.next()?, 16).ok()?;
    let check = u64::from_str_radix(parts.next()?, 16).ok()?;
    (check == data::mix(seed ^ asof as u64 ^ ((offset as u64) << 20)) & 0xffff)
        .then_some((asof, offset))
}

/// Decoded query parameters.
pub(super) struct Query(pub(super) Vec<(String, String)>);

impl Query {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One listing as of its snapshot: the items (borrowed from the timelines unless the answer
/// alters them; only the page served is cloned), the query a next link carries, the snapshot
/// time and the offset of the page asked for.
pub(super) type Listing<'a> = (
    Vec<std::borrow::Cow<'a, Value>>,
    Vec<(String, String)>,
    i64,
    usize,
);

/// The snapshot time and offset of a listing: from the skip token, or now for a first page.
pub(super) fn position(
    shared: &Shared,
    q: &Query,
    service: Service,
    rid: &str,
) -> Result<(i64, usize), Box<Response>> {
    match q.get("$skiptoken") {
        None => Ok((now_ms(), 0)),
        Some(t) => parse_skip_token(shared.cfg.seed, t).ok_or_else(|| {
            Box::new(error(
                service,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The $skiptoken is invalid or has expired.",
                rid,
            ))
        }),
    }
}

/// Checks an ARM list request `/subscriptions/{id}/…` against `shape` (segments, an empty one
/// matching anything, case-insensitive) and its api-version; returns the subscription's index.
pub(super) fn arm_subscription(
    shared: &Shared,
    path: &str,
    shape: &[&str],
    api_version: &str,
    q: &Query,
    rid: &str,
) -> Result<usize, Box<Response>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let matches = segs.len() == shape.len()
        && segs
            .iter()
            .zip(shape)
            .all(|(a, b)| b.is_empty() || a.eq_ignore_ascii_case(b));
    if !matches {
        return Err(Box::new(arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            &format!("The resource type could not be found for path '{path}'."),
            rid,
        )));
    }
    if q.get("api-version") != Some(api_version) {
        return Err(Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{}' is invalid. The supported versions are '{api_version}'.",
                q.get("api-version").unwrap_or("")
            ),
            rid,
        )));
    }
    shared
        .cfg
        .subscriptions
        .iter()
        .position(|x| x == segs[1])
        .ok_or_else(|| {
            Box::new(arm_error(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                &format!("The subscription '{}' could not be found.", segs[1]),
                rid,
            ))
        })
}

/// A 200 answer with a JSON body (possibly cut short by a fault).
pub(super) fn json_answer(text: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /subscriptions/{id}/providers/microsoft.insights/eventtypes/management/values`.
fn activity_listing<'a>(
    shared: &'a Shared,
    path: &str,
    q: &Query,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    let s = Service::Management;
    let shape = [
        "subscriptions",
        "",
        "providers",
        "microsoft.insights",
        "eventtypes",
        "management",
        "values",
    ];
    let sub_index = arm_subscription(shared, path, &shape, ACTIVITY_API_VERSION, q, rid)?;
    let filter = q.get("$filter").unwrap_or("");
    let Some((ge, le)) = activity_filter(filter) else {
        return Err(Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("The $filter '{filter}' is not supported. Use eventTimestamp ge '<start>' and eventTimestamp le '<end>'."),
            rid,
        )));
    };
    if ge < now_ms() - RETENTION_MS {
        return Err(Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The start time of the query must be within the last 90 days.",
            rid,
        )));
    }
    let (asof, offset) = position(shared, q, s, rid)?;
    let mut items: Vec<&Item> = shared.activity[sub_index]
        .iter()
        .filter(|i| i.time_ms >= ge && i.time_ms <= le && i.visible_ms <= asof)
        .collect();
    items.sort_by(|a, b| b.time_ms.cmp(&a.time_ms).then(a.object.cmp(&b.object)));
    let base = vec![
        ("api-version".to_owned(), ACTIVITY_API_VERSION.to_owned()),
        ("$filter".to_owned(), filter.to_owned()),
    ];
    Ok((
        items
            .into_iter()
            .map(|i| std::borrow::Cow::Borrowed(&i.body))
            .collect(),
        base,
        asof,
        offset,
    ))
}

/// `eventTimestamp ge '<t1>' and eventTimestamp le '<t2>'` (and at most one more clause).
fn activity_filter(filter: &str) -> Option<(i64, i64)> {
    let rest = filter.trim().strip_prefix("eventTimestamp ge '")?;
    let (t1, rest) = rest.split_once('\'')?;
    let rest = rest.strip_prefix(" and eventTimestamp le '")?;
    let (t2, _) = rest.split_once('\'')?;
    Some((parse_time_ms(t1)?, parse_time_ms(t2)?))
}

/// `{field} ge <t1>` optionally followed by `and {field} lt|le <t2>` (Graph: no quotes);
/// returns the bounds as a half-open range.
pub(super) fn graph_filter(field: &str, filter: &str) -> Option<(i64, i64)> {
    let rest = filter.trim().strip_prefix(&format!("{field} ge "))?;
    let (t1, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let end = if rest.is_empty() {
        i64::MAX
    } else {
        let rest = rest.strip_prefix(&format!("and {field} "))?;
        let (op, t2) = rest.split_once(' ')?;
        let t2 = parse_time_ms(t2.trim())?;
        match op {
            "lt" => t2,
            "le" => t2 + 1,
            _ => return None,
        }
    };
    if t1.starts_with('\'') {
        return None;
    }
    Some((parse_time_ms(t1)?, end))
}

/// Graph lists: `security/alerts_v2` (the current state of each alert),
/// `auditLogs/directoryAudits` and `auditLogs/signIns`.
fn graph_listing<'a>(
    shared: &'a Shared,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    let s = Service::Graph;
    let (field, records): (&str, &[Item]) = match path.trim_end_matches('/') {
        "/v1.0/security/alerts_v2" => ("lastUpdateDateTime", &shared.alerts),
        "/v1.0/auditLogs/directoryAudits" => ("activityDateTime", &shared.audits),
        "/v1.0/auditLogs/signIns" => ("createdDateTime", &shared.signins),
        _ => {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{path}'."),
                rid,
            )))
        }
    };
    let filter = q.get("$filter").unwrap_or("");
    let (ge, lt) = if filter.is_empty() {
        (i64::MIN, i64::MAX)
    } else {
        graph_filter(field, filter).ok_or_else(|| {
            Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Invalid filter clause: {filter}"),
                rid,
            ))
        })?
    };
    let (asof, offset) = position(shared, q, s, rid)?;
    // Newest visible version of each object (alerts change; log records have one version).
    let mut current: std::collections::BTreeMap<usize, &Item> = Default::default();
    for item in records.iter().filter(|i| i.visible_ms <= asof) {
        current.insert(item.object, item);
    }
    let mut items: Vec<&Item> = current
        .into_values()
        .filter(|i| i.time_ms >= ge && i.time_ms < lt)
        .collect();
    items.sort_by(|a, b| b.time_ms.cmp(&a.time_ms).then(a.object.cmp(&b.object)));
    let unknown_enums = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("include-unknown-enum-members"));
    let values = items
        .into_iter()
        .map(|i| {
            // Evolvable enums: newer members only for clients that ask for them.
            if !unknown_enums && i.body["serviceSource"] == "microsoftDefenderForCloud" {
                let mut v = i.body.clone();
                v["serviceSource"] = Value::from("unknownFutureValue");
                v["detectionSource"] = Value::from("unknownFutureValue");
                std::borrow::Cow::Owned(v)
            } else {
                std::borrow::Cow::Borrowed(&i.body)
            }
        })
        .collect();
    let mut base = Vec::new();
    if !filter.is_empty() {
        base.push(("$filter".to_owned(), filter.to_owned()));
    }
    if let Some(top) = q.get("$top") {
        base.push(("$top".to_owned(), top.to_owned()));
    }
    Ok((values, base, asof, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_like_the_services() {
        assert!(activity_filter(
            "eventTimestamp ge '2026-11-01T10:00:00Z' and eventTimestamp le '2026-11-01T11:00:00.1234567Z'"
        )
        .is_some());
        assert!(activity_filter("eventTimestamp ge 2026-11-01T10:00:00Z").is_none());
        assert!(activity_filter("submissionTimestamp ge '2026-11-01T10:00:00Z'").is_none());
        let (a, b) = graph_filter(
            "lastUpdateDateTime",
            "lastUpdateDateTime ge 2026-11-01T10:00:00Z and lastUpdateDateTime lt 2026-11-01T10:10:00Z",
        )
        .unwrap();
        assert_eq!(b - a, 600_000);
        let (a, b) = graph_filter(
            "createdDateTime",
            "createdDateTime ge 2026-11-01T10:00:00Z and createdDateTime le 2026-11-01T10:10:00Z",
        )
        .unwrap();
        assert_eq!(b - a, 600_001, "le includes the end");
        assert!(graph_filter(
            "lastUpdateDateTime",
            "lastUpdateDateTime ge '2026-11-01T10:00:00Z'"
        )
        .is_none());
        assert!(graph_filter(
            "createdDateTime",
            "activityDateTime ge 2026-11-01T10:00:00Z"
        )
        .is_none());
    }

    #[test]
    fn a_gzip_bomb_inflates_to_the_same_page_padded_and_checks_out() {
        use std::io::Read as _;
        let page = br#"{"value":[{"id":"a   b"}],"nextLink":"http://x/?a=1"}"#;
        let inflated = (3 << 20) + 123;
        let bomb = gzip_bomb(page, inflated);
        assert!(bomb.len() < 16 << 10, "{} bytes on the wire", bomb.len());
        let mut text = Vec::new();
        // The decoder checks the trailer's CRC-32 and length.
        flate2::read::GzDecoder::new(&bomb[..])
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text.len() as u64, inflated);
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v, serde_json::from_slice::<Value>(page).unwrap());
    }

    #[test]
    fn skip_tokens_are_checked() {
        let t = skip_token(5, 1_000, 200);
        assert_eq!(parse_skip_token(5, &t), Some((1_000, 200)));
        assert_eq!(parse_skip_token(6, &t), None);
        assert_eq!(parse_skip_token(5, "3e8!c9!0"), None);
    }
}
