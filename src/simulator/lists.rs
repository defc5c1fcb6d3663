//! The simulator's ARM activity log and Graph lists (`alerts_v2`, directory audits, sign-ins)
//! with their filters, and the page every ARM and Graph listing serves: paging by opaque skip
//! tokens (consistent across the pages of one listing), request-id headers as the real
//! services write them, and the page faults (duplicates across pages, malformed pages, broken
//! and bloated records, gzip bombs).

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::data::Item;
use super::wire::{
    arm_error, arm_subscription, graph_error, graph_filter, json_answer, position, skip_token,
    Listing, Query, ACTIVITY_API_VERSION, ACTIVITY_PATH, ARM_CORRELATION_ID, ARM_REQUEST_ID,
    GRAPH_ALERTS, GRAPH_AUDITS, GRAPH_CLIENT_REQUEST_ID, GRAPH_INCIDENTS, GRAPH_REQUEST_ID,
    GRAPH_RISKY_USERS, GRAPH_RISK_DETECTIONS, GRAPH_SIGN_INS, GRAPH_SP_RISK_DETECTIONS,
    NOT_LICENSED,
};
use super::{now_ms, Service, Shared};
use crate::event::parse_time_ms;

const RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;

/// The page of a listing that `query` asks for (`$top`, the listing's offset), with its next link.
pub(super) fn page(
    shared: &Shared,
    service: Service,
    uri: &Uri,
    query: &Query,
    listing: Result<Listing<'_>, Box<Response>>,
    rid: &str,
) -> Response {
    let faults = &shared.cfg.faults;
    let q = |k: &str| query.get(k);
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
    if let Ok(v) = HeaderValue::from_str(rid) {
        let h = r.headers_mut();
        if service == Service::Graph {
            h.insert(GRAPH_REQUEST_ID, v.clone());
            h.insert(GRAPH_CLIENT_REQUEST_ID, v);
        } else {
            h.insert(ARM_REQUEST_ID, v.clone());
            h.insert(ARM_CORRELATION_ID, v);
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

/// `GET /subscriptions/{id}/providers/microsoft.insights/eventtypes/management/values`.
pub(super) fn activity<'a>(
    shared: &'a Shared,
    path: &str,
    q: &Query,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    let s = Service::Management;
    let sub_index = arm_subscription(shared, path, &ACTIVITY_PATH, ACTIVITY_API_VERSION, q, rid)?;
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
    let data: &[Item] = sub_index.map_or(&[], |i| &shared.activity[i]);
    let mut items: Vec<&Item> = data
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

/// Graph lists: `security/alerts_v2` (the current state of each alert),
/// `auditLogs/directoryAudits` and `auditLogs/signIns`, `security/incidents` (alerts only with
/// `$expand=alerts`; newest first, or oldest first with `$orderby=lastUpdateDateTime asc`) and
/// the Identity Protection lists (403 while the tenant is unlicensed).
pub(super) fn graph<'a>(
    shared: &'a Shared,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    let s = Service::Graph;
    let (field, records): (&str, &[Item]) = match path.trim_end_matches('/') {
        GRAPH_ALERTS => ("lastUpdateDateTime", &shared.alerts),
        GRAPH_AUDITS => ("activityDateTime", &shared.audits),
        GRAPH_SIGN_INS => ("createdDateTime", &shared.signins),
        GRAPH_INCIDENTS => ("lastUpdateDateTime", &shared.incidents),
        GRAPH_RISK_DETECTIONS => ("lastUpdatedDateTime", &shared.risk_detections),
        GRAPH_SP_RISK_DETECTIONS => ("lastUpdatedDateTime", &shared.sp_risk_detections),
        GRAPH_RISKY_USERS => ("riskLastUpdatedDateTime", &shared.risky_users),
        _ => {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{path}'."),
                rid,
            )))
        }
    };
    let licensed_only = matches!(
        path.trim_end_matches('/'),
        GRAPH_INCIDENTS | GRAPH_RISK_DETECTIONS | GRAPH_SP_RISK_DETECTIONS | GRAPH_RISKY_USERS
    );
    if licensed_only && shared.lock().unlicensed {
        return Err(Box::new(graph_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            NOT_LICENSED,
            rid,
        )));
    }
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
    let orderby = q.get("$orderby").unwrap_or("");
    match orderby.split_once(' ') {
        _ if orderby.is_empty() => {}
        Some((f, "asc")) if f == field => items.reverse(),
        Some((f, "desc")) if f == field => {}
        None if orderby == field => items.reverse(),
        _ => {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Invalid $orderby: {orderby}"),
                rid,
            )))
        }
    }
    let expand_alerts = q
        .get("$expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "alerts"));
    let unknown_enums = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("include-unknown-enum-members"));
    let values = items
        .into_iter()
        .map(|i| {
            // Evolvable enums: newer members only for clients that ask for them.
            if i.body.get("alerts").is_some() && !expand_alerts {
                let mut v = i.body.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("alerts");
                }
                std::borrow::Cow::Owned(v)
            } else if !unknown_enums && i.body["serviceSource"] == "microsoftDefenderForCloud" {
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
    for key in ["$top", "$orderby", "$expand"] {
        if let Some(v) = q.get(key) {
            base.push((key.to_owned(), v.to_owned()));
        }
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
}
