//! The simulator's bulk mode ([`SimConfig::bulk`](super::SimConfig::bulk)): Entra sign-ins are
//! not kept but generated when a page is served, and a listing's order is computed once per
//! snapshot, so a tenant of a million sign-ins costs a few MB and each page only its own
//! records. Answers as the normal listing does (filter, `$top`, skip tokens, `@odata.nextLink`);
//! the page faults (duplicates across pages, malformed pages, broken records) are not served.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::wire::{
    graph_error, graph_filter, json_answer, position, skip_token, Query, GRAPH_SIGN_INS,
};
use super::{data, Service, Shared};

/// A listing's `(ge, lt, asof)`: its filter's bounds and its snapshot time.
type Key = (i64, i64, i64);

/// The order of the last listing asked for, and the sign-ins it lists.
#[derive(Debug, Default)]
pub(super) struct Cache(Mutex<Option<(Key, Arc<Vec<u32>>)>>);

/// Answers a sign-in listing in bulk mode; `None` for every other request.
pub(super) fn serve(
    shared: &Shared,
    service: Service,
    uri: &Uri,
    q: &Query,
    rid: &str,
) -> Option<Response> {
    if !shared.cfg.bulk
        || service != Service::Graph
        || uri.path().trim_end_matches('/') != GRAPH_SIGN_INS
    {
        return None;
    }
    let filter = q.get("$filter").unwrap_or("");
    let (ge, lt) = if filter.is_empty() {
        (i64::MIN, i64::MAX)
    } else {
        match graph_filter("createdDateTime", filter) {
            Some(range) => range,
            None => {
                return Some(graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Invalid filter clause: {filter}"),
                    rid,
                ))
            }
        }
    };
    let (asof, offset) = match position(shared, q, Service::Graph, rid) {
        Ok(p) => p,
        Err(r) => return Some(*r),
    };
    let order = listing(shared, ge, lt, asof);
    let top = q
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(shared.cfg.page_size)
        .clamp(1, 1000);
    let (seed, t) = (shared.cfg.seed, &shared.cfg.signins);
    let page: Vec<Value> = order
        .get(offset..)
        .unwrap_or(&[])
        .iter()
        .take(top)
        .map(|&i| data::sign_in(seed, t, i as usize).body)
        .collect();
    let base = &shared.base[&service];
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#auditLogs/signIns"),
        "value": page,
    });
    if offset + top < order.len() {
        let mut url =
            reqwest::Url::parse(&format!("{base}{GRAPH_SIGN_INS}")).expect("simulator URL");
        {
            let mut qp = url.query_pairs_mut();
            if !filter.is_empty() {
                qp.append_pair("$filter", filter);
            }
            if let Some(top) = q.get("$top") {
                qp.append_pair("$top", top);
            }
            qp.append_pair("$skiptoken", &skip_token(seed, asof, offset + top));
        }
        body["@odata.nextLink"] = Value::from(url.to_string());
    }
    let mut r = json_answer(serde_json::to_vec(&body).unwrap_or_default());
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("request-id", v.clone());
        r.headers_mut().insert("client-request-id", v);
    }
    Some(r)
}

/// The sign-ins visible at `asof` with a time in `[ge, lt)`, newest first (then by index), as
/// the normal listing orders them; computed once per snapshot.
fn listing(shared: &Shared, ge: i64, lt: i64, asof: i64) -> Arc<Vec<u32>> {
    let key = (ge, lt, asof);
    let mut cache = shared.bulk.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, order)) = cache.as_ref() {
        if *k == key {
            return order.clone();
        }
    }
    let (seed, t) = (shared.cfg.seed, &shared.cfg.signins);
    // Event times grow with the index: the range is found by bisection.
    let first = |bound: i64| {
        let (mut lo, mut hi) = (0, t.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if data::sign_in_times(seed, t, mid).0 < bound {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let (lo, hi) = (first(ge), first(lt));
    let mut order: Vec<u32> = (lo..hi)
        .filter(|&i| data::sign_in_times(seed, t, i).1 <= asof)
        .map(|i| i as u32)
        .collect();
    order.sort_by(|&a, &b| {
        let time = |i: u32| data::sign_in_times(seed, t, i as usize).0;
        time(b).cmp(&time(a)).then(a.cmp(&b))
    });
    let order = Arc::new(order);
    *cache = Some((key, order.clone()));
    order
}
