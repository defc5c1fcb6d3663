//! The simulator's Office 365 Management Activity API (Microsoft Learn, "Office 365 Management
//! Activity API reference", https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-reference): start and
//! list subscriptions, list content blobs by `contentCreated` in windows of at most 24 h within
//! 7 days with `NextPageUri` paging, and fetch blobs (JSON arrays of audit records). Checks
//! `PublisherIdentifier` on every call (without it a caller lands in the shared pool and is
//! throttled with 403 AF429) and refuses to list content of a type whose subscription was not
//! started (AF20022), as the real service does.

use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::office_data::content_time;
use super::wire::{
    arm_error, json_answer, parse_skip_token, query_pairs, skip_token, Query, PUBLISHER_IDENTIFIER,
    RETRY_AFTER,
};
use super::{now_ms, Shared};
use crate::event::parse_time_ms;

pub use super::office_data::{blobs, distinct_records, Blob};
pub use super::wire::CONTENT_TYPES;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn office_error(status: StatusCode, code: &str, message: &str, rid: &str) -> Response {
    arm_error(status, code, message, rid)
}

/// The throttling answer of the Management Activity API: 403 with error code AF429.
pub(super) fn af429(
    method: &str,
    publisher: &str,
    rid: &str,
    retry_after: Option<u64>,
) -> Response {
    let mut r = office_error(
        StatusCode::FORBIDDEN,
        "AF429",
        &format!("Too many requests. Method={method}, PublisherId={publisher}"),
        rid,
    );
    if let Some(secs) = retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`, UTC (a `Z` is tolerated).
fn window_time(text: &str) -> Option<i64> {
    parse_time_ms(text).or_else(|| parse_time_ms(&format!("{text}T00:00:00")))
}

/// Answers a request to `/api/v1.0/{tenant}/activity/feed/...` (faults were handled before).
pub(super) fn serve(shared: &Shared, method: &Method, uri: &Uri, rid: &str) -> Response {
    let cfg = &shared.cfg;
    let query = Query(query_pairs(uri.query().unwrap_or("")));
    let path = uri.path().trim_matches('/');
    let Some(rest) = path.strip_prefix("api/v1.0/") else {
        return office_error(StatusCode::NOT_FOUND, "AF20000", "Not found.", rid);
    };
    let (tenant, op) = rest.split_once("/activity/feed/").unwrap_or((rest, ""));
    let publisher = query.get(PUBLISHER_IDENTIFIER).unwrap_or("");
    let op_name = match op {
        "subscriptions/start" => "StartSubscription",
        "subscriptions/list" => "ListSubscriptions",
        "subscriptions/content" => "ListContent",
        _ => "GetBlob",
    };
    if publisher != cfg.tenant_id {
        // Without the tenant as publisher the call shares the one pool of every tenant.
        return af429(
            op_name,
            "00000000-0000-0000-0000-000000000000",
            rid,
            Some(1),
        );
    }
    if tenant != cfg.tenant_id {
        return office_error(
            StatusCode::BAD_REQUEST,
            "AF20010",
            &format!("The tenant ID passed in the URL ({tenant}) does not match the tenant ID passed in the access token ({}).", cfg.tenant_id),
            rid,
        );
    }
    let content_type = query.get("contentType").unwrap_or("");
    match (method, op) {
        (&Method::POST, "subscriptions/start") => {
            if !CONTENT_TYPES.contains(&content_type) {
                return office_error(
                    StatusCode::BAD_REQUEST,
                    "AF20013",
                    &format!("Invalid content type: {content_type}."),
                    rid,
                );
            }
            if !shared.lock().started.insert(content_type.to_owned()) {
                return office_error(
                    StatusCode::BAD_REQUEST,
                    "AF20024",
                    "The subscription is already enabled. No property change.",
                    rid,
                );
            }
            axum::Json(json!({"contentType": content_type, "status": "enabled", "webhook": null}))
                .into_response()
        }
        (&Method::GET, "subscriptions/list") => {
            let started: Vec<Value> = CONTENT_TYPES
                .iter()
                .filter(|c| shared.lock().started.contains(**c))
                .map(|c| json!({"contentType": c, "status": "enabled", "webhook": null}))
                .collect();
            axum::Json(Value::from(started)).into_response()
        }
        (&Method::GET, "subscriptions/content") => list_content(shared, uri, &query, rid),
        (&Method::GET, op) if op.starts_with("audit/") => blob(shared, &op["audit/".len()..], rid),
        _ => office_error(
            StatusCode::NOT_FOUND,
            "AF20000",
            &format!("No operation {} {op}.", method),
            rid,
        ),
    }
}

fn list_content(shared: &Shared, uri: &Uri, q: &Query, rid: &str) -> Response {
    let cfg = &shared.cfg;
    let content_type = q.get("contentType").unwrap_or("");
    let Some(ct) = CONTENT_TYPES.iter().position(|c| *c == content_type) else {
        return office_error(
            StatusCode::BAD_REQUEST,
            "AF20013",
            &format!("Invalid content type: {content_type}."),
            rid,
        );
    };
    if !shared.lock().started.contains(content_type) {
        return office_error(
            StatusCode::BAD_REQUEST,
            "AF20022",
            "No subscription found for the specified content type.",
            rid,
        );
    }
    let now = now_ms();
    let (start, end) = match (q.get("startTime"), q.get("endTime")) {
        (None, None) => (now - DAY_MS, now),
        (Some(s), Some(e)) => match (window_time(s), window_time(e)) {
            (Some(s), Some(e)) => (s, e),
            _ => {
                return office_error(
                    StatusCode::BAD_REQUEST,
                    "AF20055",
                    "Start time and end time must be valid dates.",
                    rid,
                )
            }
        },
        _ => {
            return office_error(
                StatusCode::BAD_REQUEST,
                "AF20055",
                "Start time and end time must both be specified (or both omitted).",
                rid,
            )
        }
    };
    if end <= start || end - start > DAY_MS {
        return office_error(StatusCode::BAD_REQUEST, "AF20055", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time.", rid);
    }
    if start < now - 7 * DAY_MS {
        return office_error(
            StatusCode::BAD_REQUEST,
            "AF20055",
            "Start time cannot be more than 7 days in the past.",
            rid,
        );
    }
    let (asof, offset) = match q.get("nextPage") {
        None => (now, 0),
        Some(t) => match parse_skip_token(cfg.seed, t) {
            Some(p) => p,
            None => {
                return office_error(
                    StatusCode::BAD_REQUEST,
                    "AF20031",
                    "Invalid nextPage Input.",
                    rid,
                )
            }
        },
    };
    let base = format!(
        "{}/{}",
        shared.base[&super::Service::Office],
        uri.path().trim_start_matches('/')
    );
    let items: Vec<&Blob> = shared.office[ct]
        .iter()
        .filter(|b| b.created_ms >= start && b.created_ms < end && b.visible_ms <= asof)
        .collect();
    let per_page = cfg.blobs_per_page.max(1);
    let page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(per_page)
        .map(|b| {
            json!({
                "contentType": b.content_type,
                "contentId": b.content_id,
                "contentUri": super::hostile::link(shared, format!("{base_api}/audit/{}", b.content_id, base_api = base.trim_end_matches("/subscriptions/content"))),
                "contentCreated": content_time(b.created_ms),
                "contentExpiration": content_time(b.created_ms + 7 * DAY_MS),
            })
        })
        .collect();
    let mut r = axum::Json(Value::from(page)).into_response();
    if offset + per_page < items.len() {
        let mut url = reqwest::Url::parse(&base).expect("simulator base URL");
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in q.0.iter().filter(|(k, _)| k != "nextPage") {
                qp.append_pair(k, v);
            }
            qp.append_pair("nextPage", &skip_token(cfg.seed, asof, offset + per_page));
        }
        if let Ok(v) = HeaderValue::from_str(&super::hostile::link(shared, url.into())) {
            r.headers_mut().insert("NextPageUri", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("request-id", v);
    }
    r
}

fn blob(shared: &Shared, content_id: &str, rid: &str) -> Response {
    let found = shared
        .office
        .iter()
        .flatten()
        .find(|b| b.content_id == content_id && b.visible_ms <= now_ms());
    let Some(b) = found else {
        return office_error(
            StatusCode::NOT_FOUND,
            "AF20050",
            "The specified content does not exist.",
            rid,
        );
    };
    let faults = &shared.cfg.faults;
    let mut text = if faults.bloated_records_every.is_some() {
        let mut records = b.records.clone();
        faults.bloat(&mut records);
        serde_json::to_vec(&records).unwrap_or_default()
    } else {
        serde_json::to_vec(&b.records).unwrap_or_default()
    };
    let malformed = {
        let mut st = shared.lock();
        let left = st.malformed_blobs_left > 0;
        st.malformed_blobs_left = st.malformed_blobs_left.saturating_sub(1);
        left
    };
    if malformed {
        // A blob cut off mid-transfer.
        text.truncate(text.len() / 2);
    }
    let mut r = json_answer(text);
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("request-id", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_times_in_the_documented_forms() {
        let t = 1_793_527_200_000;
        assert_eq!(window_time("2026-11-01T10:00:00"), Some(t));
        assert_eq!(window_time("2026-11-01T10:00"), Some(t));
        assert_eq!(window_time("2026-11-01T10:00:00Z"), Some(t));
        assert_eq!(window_time("2026-11-01"), Some(t - 10 * 3600 * 1000));
        assert_eq!(window_time("yesterday"), None);
    }
}

#[cfg(test)]
mod service_tests {
    use super::super::{Service, SimConfig, Simulator};
    use std::time::Duration;

    /// Calls the simulated Office 365 API like a client would, with a token for it.
    struct Client {
        http: reqwest::Client,
        token: String,
        base: String,
        tenant: String,
    }

    impl Client {
        async fn new(sim: &Simulator) -> Client {
            let cfg = sim.config();
            let http = reqwest::Client::clone(&crate::sources::azure::client::client());
            let office = sim.endpoint(Service::Office);
            let token = super::super::test_token(sim, &http, Service::Office).await;
            Client {
                http,
                token,
                base: format!("{office}/api/v1.0/{}/activity/feed", cfg.tenant_id),
                tenant: cfg.tenant_id.clone(),
            }
        }

        /// `(status, error code or "", NextPageUri, body)`.
        async fn call(
            &self,
            method: reqwest::Method,
            op: &str,
        ) -> (u16, String, Option<String>, serde_json::Value) {
            let url = if op.starts_with("http") {
                op.to_owned()
            } else {
                format!("{}/{op}", self.base)
            };
            let r = self
                .http
                .request(method, url)
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let next = r
                .headers()
                .get("NextPageUri")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            (status, code, next, body)
        }
    }

    #[tokio::test]
    async fn content_needs_a_started_subscription_the_publisher_and_a_valid_window() {
        let mut cfg = SimConfig::around_now(Duration::from_secs(600), Duration::ZERO, 30);
        cfg.records_per_blob = 2;
        cfg.blobs_per_page = 4;
        let sim = Simulator::start(cfg).await.unwrap();
        let c = Client::new(&sim).await;
        let p = format!("PublisherIdentifier={}", c.tenant);
        let now = jiff::Timestamp::now();
        let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        let window = |back_h: i64, len_h: i64| {
            let start = now - jiff::SignedDuration::from_hours(back_h);
            let end = start + jiff::SignedDuration::from_hours(len_h);
            format!("startTime={}&endTime={}", fmt(start), fmt(end))
        };
        let list = format!(
            "subscriptions/content?contentType=Audit.General&{}&{p}",
            window(1, 1)
        );
        let get = reqwest::Method::GET;
        let post = reqwest::Method::POST;

        let (status, code, ..) = c.call(get.clone(), &list).await;
        assert_eq!((status, code.as_str()), (400, "AF20022"), "not started yet");
        let start = format!("subscriptions/start?contentType=Audit.General&{p}");
        assert_eq!(c.call(post.clone(), &start).await.0, 200);
        let (status, code, ..) = c.call(post, &start).await;
        assert_eq!((status, code.as_str()), (400, "AF20024"), "already enabled");

        let no_publisher = list.replace(&format!("&{p}"), "");
        let (status, code, ..) = c.call(get.clone(), &no_publisher).await;
        assert_eq!((status, code.as_str()), (403, "AF429"), "shared pool");
        for bad in [window(30, 25), window(24 * 8, 1)] {
            let q = format!("subscriptions/content?contentType=Audit.General&{bad}&{p}");
            let (status, code, ..) = c.call(get.clone(), &q).await;
            assert_eq!((status, code.as_str()), (400, "AF20055"), "{bad}");
        }

        // 15 blobs over the last 10 minutes: four pages by NextPageUri, then each blob.
        let (mut listed, mut url, mut pages) = (Vec::new(), list, 0);
        loop {
            let (status, _, next, body) = c.call(get.clone(), &url).await;
            assert_eq!(status, 200, "{body}");
            pages += 1;
            listed.extend(body.as_array().unwrap().iter().cloned());
            match next {
                Some(n) => {
                    assert!(n.contains(&p) && n.contains("nextPage="), "{n}");
                    url = n;
                }
                None => break,
            }
        }
        assert_eq!((pages, listed.len()), (4, 15));
        let mut records = 0;
        for item in &listed {
            let uri = format!("{}?{p}", item["contentUri"].as_str().unwrap());
            let (status, _, _, body) = c.call(get.clone(), &uri).await;
            assert_eq!(status, 200);
            records += body.as_array().unwrap().len();
        }
        assert_eq!(records, 30);
    }
}
