//! The simulator's identity: the Entra ID v2.0 token endpoint (client-credentials grant with a
//! client secret or a certificate client assertion: JWT parsed, claims checked, signature
//! verified with the registered certificate's public key, thumbprint matched), the Azure
//! instance metadata service's managed-identity tokens, and the bearer-token check of the APIs.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::wire::{
    aad_error, query_pairs, GRANT_CLIENT_CREDENTIALS, IMDS_TOKEN_PATH, JWT_BEARER,
    STORAGE_AUDIENCE, TOKEN_PATH,
};
use super::{data, now_ms, Service, Shared, Token};

/// Clock skew tolerated on `nbf` and `exp`, as Entra does.
const SKEW_S: i64 = 300;

fn refuse(code: u32, description: &str) -> Box<Response> {
    Box::new(aad_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description,
    ))
}

fn decode_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Checks a client assertion posted to the token endpoint `endpoint` (its full URL).
pub(super) fn check_assertion(
    shared: &Shared,
    form: &HashMap<String, String>,
    endpoint: &str,
) -> Result<(), Box<Response>> {
    let cfg = &shared.cfg;
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("client_assertion_type") != JWT_BEARER {
        return Err(Box::new(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "Invalid client_assertion_type; it must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        )));
    }
    let jwt = get("client_assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    let (Some(header), Some(claims), Some(signature)) = (
        parts.first().and_then(|p| decode_part(p)),
        parts.get(1).and_then(|p| decode_part(p)),
        parts.get(2).and_then(|p| URL_SAFE_NO_PAD.decode(p).ok()),
    ) else {
        return Err(refuse(50027, "JWT token is invalid or malformed."));
    };
    if parts.len() != 3 {
        return Err(refuse(50027, "JWT token is invalid or malformed."));
    }
    let Some(der) = cfg.client_certificate.as_deref() else {
        return Err(refuse(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        ));
    };
    let sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        der,
    ));
    let named = match (header["x5t#S256"].as_str(), header["x5t"].as_str()) {
        (Some(t), _) => {
            t == URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der))
        }
        (None, Some(t)) => t == sha1,
        (None, None) => false,
    };
    if !named {
        return Err(refuse(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        ));
    }
    let alg =
        match header["alg"].as_str() {
            Some("PS256") => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            Some("RS256") => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(refuse(
                5002738,
                "The client assertion's signing algorithm is not supported; use PS256 or RS256.",
            )),
        };
    let cert = rustls_pki_types::CertificateDer::from(der);
    let verified = webpki::EndEntityCert::try_from(&cert).is_ok_and(|ee| {
        let signed = &jwt[..parts[0].len() + 1 + parts[1].len()];
        ee.verify_signature(alg, signed.as_bytes(), &signature)
            .is_ok()
    });
    if !verified {
        return Err(refuse(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    let client = get("client_id");
    if claims["iss"].as_str() != Some(client) || claims["sub"].as_str() != Some(client) {
        return Err(refuse(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let v1 = endpoint.replace("/oauth2/v2.0/token", "/oauth2/token");
    let aud = claims["aud"].as_str().unwrap_or("");
    if aud != endpoint && aud != v1 {
        return Err(refuse(
            50012,
            &format!("Client assertion audience claim does not match Realm issuer. Audience {aud} is not {endpoint}."),
        ));
    }
    let now = now_ms() / 1000;
    let (nbf, exp) = (claims["nbf"].as_i64(), claims["exp"].as_i64());
    let (Some(nbf), Some(exp)) = (nbf, exp) else {
        return Err(refuse(
            50027,
            "JWT token is invalid or malformed: nbf and exp are required.",
        ));
    };
    if nbf > now + SKEW_S || exp < now - SKEW_S || claims["jti"].as_str().is_none_or(str::is_empty)
    {
        return Err(refuse(
            700024,
            &format!("Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}."),
        ));
    }
    Ok(())
}

/// `POST /{tenant}/oauth2/v2.0/token` with the client-credentials grant and a secret or a
/// certificate client assertion.
pub(super) fn token_endpoint(shared: &Shared, method: &Method, uri: &Uri, body: &[u8]) -> Response {
    let cfg = &shared.cfg;
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    if segments.len() != 4 || segments[1..] != TOKEN_PATH {
        return (StatusCode::NOT_FOUND, "").into_response();
    }
    if method != Method::POST {
        return aad_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    if segments[0] != cfg.tenant_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{}' not found.", segments[0]),
        );
    }
    let form: HashMap<String, String> = query_pairs(&String::from_utf8_lossy(body))
        .into_iter()
        .collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != GRANT_CLIENT_CREDENTIALS {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if get("client_id") != cfg.client_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{}'.",
                get("client_id"),
                cfg.tenant_id
            ),
        );
    }
    if !get("client_assertion").is_empty() || !get("client_assertion_type").is_empty() {
        let endpoint = format!("{}{}", shared.base[&Service::Login], uri.path());
        if let Err(refused) = check_assertion(shared, &form, &endpoint) {
            return *refused;
        }
    } else if shared.lock().secret_expired {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                cfg.client_id
            ),
        );
    } else if get("client_secret") != cfg.client_secret {
        // Like Entra, never echo the secret that was sent.
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let scope = get("scope");
    let audience = [Service::Management, Service::Graph, Service::Office]
        .into_iter()
        .find(|s| scope == format!("{}/.default", shared.base[s]))
        .or_else(|| storage_scope(shared, scope.trim_end_matches("/.default")));
    let Some(audience) = audience else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
        );
    };
    let (token, lifetime) = issue_token(shared, audience);
    let lifetime = cfg.faults.token_expires_in.unwrap_or(lifetime);
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
    .into_response()
}

/// Storage takes tokens for `https://storage.azure.com` (every account) or for the account's
/// own endpoint ("Authorize access to blobs using Microsoft Entra ID").
fn storage_scope(shared: &Shared, resource: &str) -> Option<Service> {
    (resource == STORAGE_AUDIENCE || resource == shared.base[&Service::Storage])
        .then_some(Service::Storage)
}

/// A new access token for `audience`, and its lifetime in seconds.
fn issue_token(shared: &Shared, audience: Service) -> (String, u64) {
    let cfg = &shared.cfg;
    let mut st = shared.lock();
    st.issued += 1;
    // The tenant's mark keeps the tokens of tenants served together apart.
    let tenant = u64::from(crc32c::crc32c(cfg.tenant_id.as_bytes()));
    let token = format!(
        "sim.{:016x}{:016x}",
        data::mix(cfg.seed ^ st.issued ^ (tenant << 32)),
        data::mix(now_ms() as u64 ^ st.issued)
    );
    let lifetime = cfg.token_lifetime.as_secs().max(1);
    let generation = st.generation;
    st.tokens.insert(
        token.clone(),
        Token {
            audience,
            expires_ms: now_ms() + lifetime as i64 * 1000,
            generation,
        },
    );
    (token, lifetime)
}

/// Why a bearer token is not accepted, if it is not.
pub(super) fn check_token(
    shared: &Shared,
    service: Service,
    headers: &HeaderMap,
) -> Option<&'static str> {
    let st = shared.lock();
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Some("missing");
    };
    match st.tokens.get(token) {
        None => Some("invalid"),
        Some(t) if t.audience != service => Some("audience"),
        Some(t) if t.expires_ms <= now_ms() || t.generation != st.generation => Some("expired"),
        Some(_) => None,
    }
}

fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `GET /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…]` with
/// `Metadata: true`, answering as IMDS does (times as strings).
pub(super) fn imds(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if uri.path() != IMDS_TOKEN_PATH {
        return (StatusCode::NOT_FOUND, "").into_response();
    }
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "bad_request_102",
            "Required metadata header not specified",
        );
    }
    if method != Method::GET {
        return imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "Only GET is supported",
        );
    }
    let q: HashMap<String, String> = query_pairs(uri.query().unwrap_or("")).into_iter().collect();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("api-version").is_empty() {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let resource = get("resource");
    let audience = [Service::Management, Service::Graph]
        .into_iter()
        .find(|s| resource.trim_end_matches('/') == shared.base[s])
        .or_else(|| storage_scope(shared, resource.trim_end_matches('/')));
    let Some(audience) = audience else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant."),
        );
    };
    let client = get("client_id");
    if !client.is_empty() && client != shared.cfg.user_assigned_client_id {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        );
    }
    let (token, lifetime) = issue_token(shared, audience);
    let lifetime = shared.cfg.faults.token_expires_in.unwrap_or(lifetime);
    let now = now_ms() / 1000;
    axum::Json(json!({
        "access_token": token,
        "client_id": if client.is_empty() { "5c8d2e1f-0a9b-4c7d-8e6f-3a2b1c0d9e8f" } else { client },
        "expires_in": lifetime.to_string(),
        "expires_on": now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)).to_string(),
        "ext_expires_in": lifetime.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
    .into_response()
}
