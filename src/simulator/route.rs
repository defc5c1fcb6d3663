//! The simulator's routing, in one place: each listener's requests go to the token endpoint,
//! IMDS or the APIs; an API request meets the injected faults first, then goes by service and
//! path to its listing (ARM activity log, Defender for Cloud, the subscription inventory, Graph,
//! bulk sign-ins) or to the Office 365 feed; the storage account answers on its own (`storage.rs`, `storage/auth.rs`:
//! SAS or token, the Blob service's errors). Every answer is logged, and a `Retry-After` given
//! is remembered.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;

use super::wire::{error, query_pairs, request_id, Query, IDENTITY_PROTECTION, RETRY_AFTER};
use super::{
    bulk, defender, hostile, identity, inventory, lists, now_ms, office, storage, RequestRecord,
    Service, Shared,
};

/// Every tenant served on one set of listeners, the first also answering what names none.
pub(super) type Tenants = Arc<[Arc<Shared>]>;

pub(super) type Ctx = (Tenants, Service);

/// The tenant a request is for, as the real services tell: the token endpoint by the tenant in
/// its path, Office 365 by the tenant in its path, ARM, Graph and storage by the tenant that
/// issued the bearer token. IMDS, and a request naming no known tenant, go to the first.
fn tenant_of(tenants: &Tenants, service: Service, uri: &Uri, headers: &HeaderMap) -> Arc<Shared> {
    let first = || tenants[0].clone();
    if tenants.len() == 1 {
        return first();
    }
    let by_id = |id: &str| {
        tenants
            .iter()
            .find(|t| t.cfg.tenant_id.eq_ignore_ascii_case(id))
            .cloned()
    };
    let mut segments = uri.path().trim_start_matches('/').split('/');
    let found = match service {
        Service::Login => segments.next().and_then(by_id),
        Service::Office => segments.nth(2).and_then(by_id),
        Service::Imds => None,
        _ => {
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            token.and_then(|token| {
                tenants
                    .iter()
                    .find(|t| t.lock().tokens.contains_key(token))
                    .cloned()
            })
        }
    };
    found.unwrap_or_else(first)
}

pub(super) async fn handle(
    State((tenants, service)): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = tenant_of(&tenants, service, &uri, &headers);
    let at_ms = now_ms();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (early, epoch) = {
        let st = shared.lock();
        let early = st
            .blocked_until_ms
            .get(&service)
            .is_some_and(|until| at_ms < *until);
        (early, st.retry_epoch)
    };
    let redirect = match service {
        Service::Login | Service::Imds => hostile::token_redirect(&shared, &uri),
        _ => None,
    };
    let response = match (service, redirect) {
        (_, Some(r)) => r,
        (Service::Login, None) => identity::token_endpoint(&shared, &method, &uri, &body),
        (Service::Imds, None) => identity::imds(&shared, &method, &uri, &headers),
        (Service::Storage, None) => storage::serve(&shared, &method, &uri, &headers, at_ms).await,
        _ => serve(&shared, service, &method, &uri, &headers, at_ms).await,
    };
    let retry_after_secs = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut st = shared.lock();
    if let Some(secs) = retry_after_secs.filter(|_| st.retry_epoch == epoch) {
        let wait_ms = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
        st.blocked_until_ms
            .insert(service, now_ms().saturating_add(wait_ms));
    }
    st.log.push(RequestRecord {
        service,
        at_ms,
        method: method.to_string(),
        path_and_query,
        status: response.status().as_u16(),
        retry_after_secs,
        early,
    });
    response
}

/// Counts an API request of `service` (the fault counters) and returns its number; every
/// `revoke_tokens_every`-th one revokes the tokens issued so far.
pub(super) fn count_request(shared: &Shared, service: Service) -> u64 {
    let mut st = shared.lock();
    let n = st.counters.entry(service).or_insert(0);
    *n += 1;
    let n = *n;
    if shared
        .cfg
        .faults
        .revoke_tokens_every
        .is_some_and(|k| k > 0 && n % k == 0)
    {
        st.generation += 1;
    }
    n
}

/// Answers one API request, faults first.
async fn serve(
    shared: &Shared,
    service: Service,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    at_ms: i64,
) -> Response {
    let faults = &shared.cfg.faults;
    let n = count_request(shared, service);
    let rid = request_id(at_ms, n);
    if let Some(why) = identity::check_token(shared, service, headers) {
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
    if let Some(r) = hostile::api_redirect(shared, uri) {
        return r;
    }
    if faults.throttles(n) {
        if service == Service::Office {
            // Office 365 throttles with 403 AF429; every other time without a Retry-After.
            let wait = ((n / faults.throttle_every.unwrap_or(1)) % 2 == 1)
                .then_some(faults.retry_after_secs);
            return office::af429("ListContent", &shared.cfg.tenant_id, &rid, wait);
        }
        let mut r = error(
            service,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled. Please retry after the time in the Retry-After header.",
            &rid,
        );
        // Identity Protection's 429s carry no Retry-After ("Microsoft Graph service-specific
        // throttling limits").
        if !uri.path().starts_with(IDENTITY_PROTECTION) {
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(faults.retry_after_secs));
        }
        return r;
    }
    if faults.unavailable(n) {
        let mut r = error(
            service,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry.",
            &rid,
        );
        if (n / faults.unavailable_every.unwrap_or(1)) % 2 == 1 {
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(faults.retry_after_secs));
        }
        return r;
    }
    if let Some(d) = faults.slow_page {
        tokio::time::sleep(d).await;
    }
    if service == Service::Office {
        return office::serve(shared, method, uri, &rid);
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
    if let Some(r) = bulk::serve(shared, service, uri, &query, &rid) {
        return r;
    }
    let lower = uri.path().trim_end_matches('/').to_ascii_lowercase();
    let listing = match service {
        Service::Management if lower == "/subscriptions" => {
            inventory::subscriptions(shared, &query, &rid)
        }
        Service::Management if lower.starts_with("/providers/microsoft.management/") => {
            inventory::descendants(shared, uri.path(), &query, &rid)
        }
        Service::Management
            if uri
                .path()
                .to_ascii_lowercase()
                .contains("/providers/microsoft.security/") =>
        {
            defender::listing(shared, uri.path(), &query, &rid)
        }
        Service::Management => lists::activity(shared, uri.path(), &query, &rid),
        _ => lists::graph(shared, uri.path(), &query, headers, &rid),
    };
    lists::page(shared, service, uri, &query, listing, &rid)
}
