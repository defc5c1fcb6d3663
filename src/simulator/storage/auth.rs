//! Credentials of the simulated storage account: Entra bearer tokens for
//! `https://storage.azure.com` (with the `x-ms-version` they need) and account SAS tokens this
//! simulator signs (HMAC-SHA256 over the signed fields, as Azure does with the account key),
//! refused with the Blob service's codes: 400 `MissingRequiredHeader`, 401
//! `InvalidAuthenticationInfo`, 403 `AuthenticationFailed` (forged or outside its time window),
//! 403 `Authorization{Service,ResourceType,Permission}Mismatch`, 404 `ResourceNotFound` without
//! any credential.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::super::data::h;
use super::super::wire::{
    Query, STORAGE_AUDIENCE, STORAGE_OAUTH_MIN_VERSION, STORAGE_VERSION_HEADER,
};
use super::super::{identity, Service, Shared};
use super::{error, http_date, set, Op};
use crate::event::parse_time_ms;

/// 403 for a credential that does not allow the request: `Authorization{Service,
/// ResourceType,Permission}Mismatch`.
pub(super) fn mismatch(code: &str, what: &str, rid: &str) -> Response {
    let message =
        format!("This request is not authorized to perform this operation using this {what}.");
    error(StatusCode::FORBIDDEN, code, &message, rid, None)
}

/// The fields an account SAS is signed over, in order.
fn sas_string_to_sign(account: &str, q: &Query) -> String {
    let f = |k: &str| q.get(k).unwrap_or("");
    [
        account,
        f("sp"),
        f("ss"),
        f("srt"),
        f("st"),
        f("se"),
        f("sip"),
        f("spr"),
        f("sv"),
    ]
    .join("\n")
}

fn sas_signature(shared: &Shared, string_to_sign: &str) -> String {
    let key_bytes = format!("{:016x}", h(shared.cfg.seed, &[702]));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key_bytes.as_bytes());
    STANDARD.encode(ring::hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// An account SAS for the Blob service (`ss=b`, `srt=co`) with `permissions` until `expiry_ms`.
pub(in crate::simulator) fn issue_sas(
    shared: &Shared,
    permissions: &str,
    expiry_ms: i64,
) -> String {
    let se = jiff::Timestamp::from_millisecond(expiry_ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let pairs = vec![
        ("sv".to_owned(), "2022-11-02".to_owned()),
        ("ss".to_owned(), "b".to_owned()),
        ("srt".to_owned(), "co".to_owned()),
        ("sp".to_owned(), permissions.to_owned()),
        ("se".to_owned(), se),
        ("spr".to_owned(), "https".to_owned()),
    ];
    let q = Query(pairs.clone());
    let sig = sas_signature(shared, &sas_string_to_sign(&shared.cfg.storage_account, &q));
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        out.append_pair(k, v);
    }
    out.append_pair("sig", &sig);
    out.finish()
}

/// Checks the request's credential: a bearer token for storage, or a SAS this simulator
/// signed, with the permission `op` needs; the refusal if it is not accepted.
pub(super) fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    q: &Query,
    op: Op,
    now: i64,
    rid: &str,
) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if bearer {
        let version = headers
            .get(STORAGE_VERSION_HEADER)
            .and_then(|v| v.to_str().ok());
        match version {
            None => {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "MissingRequiredHeader",
                    "An HTTP header that's mandatory for this request is not specified.",
                    rid,
                    None,
                ))
            }
            Some(v) if v < STORAGE_OAUTH_MIN_VERSION => {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidHeaderValue",
                    "The value for one of the HTTP headers is not in the correct format.",
                    rid,
                    None,
                ))
            }
            Some(_) => {}
        }
        // No reason to refuse: the token is good.
        let why = identity::check_token(shared, Service::Storage, headers)?;
        let detail = match why {
            "expired" => "Lifetime validation failed. The token is expired.",
            "audience" => "Audience validation failed. Audience did not match.",
            _ => "Signature validation failed. Signature is invalid.",
        };
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationInfo",
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
            rid,
            Some(detail),
        );
        let challenge = format!(
            "Bearer authorization_uri=https://login.microsoftonline.com/{}/oauth2/authorize resource_id={STORAGE_AUDIENCE}",
            shared.cfg.tenant_id
        );
        set(&mut r, "www-authenticate", &challenge);
        return Some(r);
    }
    let Some(sig) = q.get("sig") else {
        // A private container, asked without credentials.
        return Some(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The specified resource does not exist.",
            rid,
            None,
        ));
    };
    let auth_failed = |detail: &str| {
        error(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            rid,
            Some(detail),
        )
    };
    let to_sign = sas_string_to_sign(&shared.cfg.storage_account, q);
    if sig != sas_signature(shared, &to_sign) {
        return Some(auth_failed(&format!(
            "Signature did not match. String to sign used was {}",
            to_sign.replace('\n', "\\n")
        )));
    }
    let start = q.get("st").and_then(parse_time_ms);
    let expiry = q.get("se").and_then(parse_time_ms);
    let in_window = expiry.is_some_and(|e| now < e) && start.is_none_or(|s| now >= s);
    if !in_window {
        return Some(auth_failed(&format!(
            "Signature not valid in the specified time frame: Start [{}] - Expiry [{}] - Current [{}]",
            start.map(http_date).unwrap_or_default(),
            expiry.map(http_date).unwrap_or_default(),
            http_date(now)
        )));
    }
    if !q.get("ss").unwrap_or("").contains('b') {
        return Some(mismatch("AuthorizationServiceMismatch", "service", rid));
    }
    let (resource_type, permission) = match op {
        Op::List => ('c', 'l'),
        _ => ('o', 'r'),
    };
    if !q.get("srt").unwrap_or("").contains(resource_type) {
        return Some(mismatch(
            "AuthorizationResourceTypeMismatch",
            "resource type",
            rid,
        ));
    }
    if !q.get("sp").unwrap_or("").contains(permission) {
        return Some(mismatch(
            "AuthorizationPermissionMismatch",
            "permission",
            rid,
        ));
    }
    None
}
