//! The Microsoft wire contract as the simulator speaks it, written out here on purpose and never
//! taken from the client (so the fake and the client cannot share a mistake): paths, API
//! versions, grant and assertion types, content types and header names; and the helpers every
//! API of the simulator shares: error bodies as each service writes them, query parsing, skip
//! tokens, ARM subscription checks and JSON answers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::data;
use super::{now_ms, Service, Shared};
use crate::event::parse_time_ms;

/// Entra ID v2.0 token endpoint: `/{tenant}/oauth2/v2.0/token`, after the tenant segment.
pub(super) const TOKEN_PATH: [&str; 3] = ["oauth2", "v2.0", "token"];
/// The only grant the simulator's token endpoint accepts.
pub(super) const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// `client_assertion_type` of a certificate client assertion (RFC 7523).
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The instance metadata service's managed-identity token path.
pub(super) const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// ARM activity log list: `/subscriptions/{id}/providers/microsoft.insights/eventtypes/management/values`.
pub(super) const ACTIVITY_PATH: [&str; 7] = [
    "subscriptions",
    "",
    "providers",
    "microsoft.insights",
    "eventtypes",
    "management",
    "values",
];
pub(super) const ACTIVITY_API_VERSION: &str = "2015-04-01";
/// Defender for Cloud alerts: `/subscriptions/{id}/providers/Microsoft.Security/alerts`.
pub(super) const DEFENDER_PATH: [&str; 5] = [
    "subscriptions",
    "",
    "providers",
    "Microsoft.Security",
    "alerts",
];
pub(super) const DEFENDER_API_VERSION: &str = "2022-01-01";
/// ARM's subscription list, `GET /subscriptions` (Microsoft Learn, "Subscriptions - List",
/// https://learn.microsoft.com/rest/api/resources/subscriptions/list).
pub(super) const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// A management group's descendants:
/// `/providers/Microsoft.Management/managementGroups/{id}/descendants` (Microsoft Learn,
/// "Management Groups - Get Descendants",
/// https://learn.microsoft.com/rest/api/managementgroups/management-groups/get-descendants).
pub(super) const DESCENDANTS_PATH: [&str; 5] = [
    "providers",
    "Microsoft.Management",
    "managementGroups",
    "",
    "descendants",
];
pub(super) const MANAGEMENT_GROUPS_API_VERSION: &str = "2020-05-01";
/// The `type` of a management group, and of a subscription, among a group's descendants.
pub(super) const GROUP_TYPE: &str = "Microsoft.Management/managementGroups";
pub(super) const GROUP_SUBSCRIPTION_TYPE: &str =
    "Microsoft.Management/managementGroups/subscriptions";

/// Graph lists.
pub(super) const GRAPH_ALERTS: &str = "/v1.0/security/alerts_v2";
pub(super) const GRAPH_AUDITS: &str = "/v1.0/auditLogs/directoryAudits";
pub(super) const GRAPH_SIGN_INS: &str = "/v1.0/auditLogs/signIns";
pub(super) const GRAPH_INCIDENTS: &str = "/v1.0/security/incidents";
/// Entra ID Protection lists: they share one budget and their 429s carry no `Retry-After`
/// ("Microsoft Graph service-specific throttling limits").
pub(super) const IDENTITY_PROTECTION: &str = "/v1.0/identityProtection/";
pub(super) const GRAPH_RISK_DETECTIONS: &str = "/v1.0/identityProtection/riskDetections";
pub(super) const GRAPH_SP_RISK_DETECTIONS: &str =
    "/v1.0/identityProtection/servicePrincipalRiskDetections";
pub(super) const GRAPH_RISKY_USERS: &str = "/v1.0/identityProtection/riskyUsers";
/// What Graph answers (403 `Forbidden`) a tenant without the licence an API needs (third
/// parties' observation for Identity Protection; see `docs/graph-incidents-and-risk.md`).
pub(super) const NOT_LICENSED: &str = "Your tenant is not licensed for this feature.";

/// The content types of the Office 365 Management Activity API.
pub const CONTENT_TYPES: &[&str] = &[
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
];
/// The Office 365 query parameter naming the caller's tenant (its own throttling pool).
pub(super) const PUBLISHER_IDENTIFIER: &str = "PublisherIdentifier";

/// The Blob service as the simulator speaks it (Microsoft Learn, "Blob service REST API",
/// https://learn.microsoft.com/rest/api/storageservices/blob-service-rest-api): the audience of
/// Entra tokens for every storage account, the version header a bearer token needs, the
/// headers and query values of List Blobs, Get Blob and Get Block List, and the containers
/// Azure Monitor and Network Watcher write to (see `docs/storage-archives.md`).
pub(super) const STORAGE_AUDIENCE: &str = "https://storage.azure.com";
pub(super) const STORAGE_VERSION_HEADER: &str = "x-ms-version";
/// The service version the simulator answers with (`x-ms-version` of its answers).
pub(super) const STORAGE_VERSION: &str = "2025-11-05";
/// The oldest `x-ms-version` that may carry an Entra bearer token ("Authorize with Microsoft
/// Entra ID", https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory).
pub(super) const STORAGE_OAUTH_MIN_VERSION: &str = "2017-11-09";
pub(super) const STORAGE_REQUEST_ID: &str = "x-ms-request-id";
pub(super) const STORAGE_ERROR_CODE: &str = "x-ms-error-code";
pub(super) const STORAGE_BLOB_TYPE: &str = "x-ms-blob-type";
pub(super) const STORAGE_RANGE: &str = "x-ms-range";
pub(super) const STORAGE_CREATION_TIME: &str = "x-ms-creation-time";
pub(super) const STORAGE_BLOB_CONTENT_LENGTH: &str = "x-ms-blob-content-length";
pub(super) const STORAGE_COMMITTED_BLOCKS: &str = "x-ms-blob-committed-block-count";
/// The containers of diagnostic settings and flow logs the simulated account holds.
pub const CONTAINER_ACTIVITY: &str = "insights-activity-logs";
pub const CONTAINER_KEY_VAULT: &str = "insights-logs-auditevent";
pub const CONTAINER_NSG_FLOW: &str = "insights-logs-networksecuritygroupflowevent";
/// The opening and closing of a flow-log document, each its own committed block ("Read flow
/// logs": a 12-byte first block and a 2-byte last block).
pub(super) const FLOW_HEAD: &str = "{\"records\":[";
pub(super) const FLOW_TAIL: &str = "]}";

/// Request-id headers of ARM and of Graph answers.
pub(super) const ARM_REQUEST_ID: &str = "x-ms-request-id";
pub(super) const ARM_CORRELATION_ID: &str = "x-ms-correlation-request-id";
pub(super) const GRAPH_REQUEST_ID: &str = "request-id";
pub(super) const GRAPH_CLIENT_REQUEST_ID: &str = "client-request-id";
pub(super) const RETRY_AFTER: &str = "retry-after";

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
        r.headers_mut().insert(ARM_REQUEST_ID, v.clone());
        r.headers_mut().insert(ARM_CORRELATION_ID, v);
    }
    r
}

pub(super) fn graph_error(status: StatusCode, code: &str, message: &str, rid: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": rid, "client-request-id": rid}}});
    let mut r = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert(GRAPH_REQUEST_ID, v.clone());
        r.headers_mut().insert(GRAPH_CLIENT_REQUEST_ID, v);
    }
    r
}

/// The error answer of `service` (Graph's shape, or ARM's for the others).
pub(super) fn error(
    service: Service,
    status: StatusCode,
    code: &str,
    message: &str,
    rid: &str,
) -> Response {
    match service {
        Service::Graph => graph_error(status, code, message, rid),
        _ => arm_error(status, code, message, rid),
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
/// matching anything, case-insensitive) and its api-version; returns the index of the
/// subscription's data, or `None` for any other subscription id (a GUID): served as a
/// subscription with nothing in it, whatever the subscription list says of it (subscriptions
/// come and go during a test; their data does not). Not a GUID: 404 `SubscriptionNotFound`.
pub(super) fn arm_subscription(
    shared: &Shared,
    path: &str,
    shape: &[&str],
    api_version: &str,
    q: &Query,
    rid: &str,
) -> Result<Option<usize>, Box<Response>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if !path_is(path, shape) {
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
    let known = shared
        .cfg
        .subscriptions
        .iter()
        .position(|x| x.eq_ignore_ascii_case(segs[1]));
    if known.is_none() && !is_guid(segs[1]) {
        return Err(Box::new(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", segs[1]),
            rid,
        )));
    }
    Ok(known)
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits.
fn is_guid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether `path`'s segments are `shape`'s (an empty one matching anything; case-insensitive).
pub(super) fn path_is(path: &str, shape: &[&str]) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    segs.len() == shape.len()
        && segs
            .iter()
            .zip(shape)
            .all(|(a, b)| b.is_empty() || a.eq_ignore_ascii_case(b))
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

pub(super) fn query_pairs(text: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{text}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// An Entra ID (AADSTS) error answer.
pub(super) fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = data::guid(now_ms() as u64, &[1]);
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {trace} Timestamp: {}", data::azure_time(now_ms())),
        "error_codes": [code],
        "timestamp": data::azure_time(now_ms()),
        "trace_id": trace,
        "correlation_id": trace,
    });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_tokens_are_checked() {
        let t = skip_token(5, 1_000, 200);
        assert_eq!(parse_skip_token(5, &t), Some((1_000, 200)));
        assert_eq!(parse_skip_token(6, &t), None);
        assert_eq!(parse_skip_token(5, "3e8!c9!0"), None);
    }
}
