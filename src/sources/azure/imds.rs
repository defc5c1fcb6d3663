//! Managed-identity tokens from the Azure instance metadata service (IMDS) of the VM siemcast
//! runs on: `GET /metadata/identity/oauth2/token` with `Metadata: true`, the v1-style resource
//! and, for a user-assigned identity, its `client_id`. Never through a proxy, never redirected.

use std::time::Duration;

use tokio::time::Instant;

use super::token::{token_from_answer, AuthError, Token};

/// The IMDS API version requested.
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// The resource IMDS expects for an Entra scope: `https://management.azure.com/.default` →
/// `https://management.azure.com/`.
pub fn resource_of(scope: &str) -> &str {
    scope.strip_suffix(".default").unwrap_or(scope)
}

/// IMDS is link-local and must not be reached through a proxy: its own client, short timeouts.
fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            super::client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("the IMDS client configuration is valid")
        })
        .clone()
}

/// One token request. 404/410 (IMDS updating), 429 and 5xx are transient (the caller retries
/// with backoff); other answers are explained.
pub(super) async fn request_token(
    imds: &str,
    client_id: Option<&str>,
    scope: &str,
) -> Result<Token, AuthError> {
    let base = format!("{imds}/metadata/identity/oauth2/token");
    let mut url = reqwest::Url::parse(&base).map_err(|e| AuthError::Transport {
        url: base.clone(),
        message: e.to_string(),
    })?;
    url.query_pairs_mut()
        .append_pair("api-version", IMDS_API_VERSION)
        .append_pair("resource", resource_of(scope));
    if let Some(id) = client_id {
        url.query_pairs_mut().append_pair("client_id", id);
    }
    let sent = Instant::now();
    let response = client()
        .get(url.clone())
        .header("Metadata", "true")
        .send()
        .await
        .map_err(|e| AuthError::Transport {
            url: base.clone(),
            message: format!(
                "{}; managed_identity works only on an Azure VM or scale set with an identity",
                super::client::error_chain(&e)
            ),
        })?;
    let status = response.status();
    if status.is_redirection() {
        let to = super::client::redirect_target(response.headers(), url.as_str());
        return Err(AuthError::Rejected {
            url: base,
            scope: scope.to_owned(),
            message: format!(
                "HTTP {} redirect to {to} not followed: IMDS answers token requests itself",
                status.as_u16()
            ),
            hint: "check imds_endpoint; IMDS must be reached directly, without a proxy",
        });
    }
    let body: serde_json::Value =
        match super::client::read_body(response, super::client::MAX_TOKEN_ANSWER_BYTES).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(e) => {
                return Err(AuthError::Transport {
                    url: base,
                    message: e.to_string(),
                })
            }
        };
    if status.is_success() {
        return token_from_answer(base, scope, &body, sent);
    }
    let message = format!(
        "HTTP {} {}: {}",
        status.as_u16(),
        body["error"].as_str().unwrap_or(""),
        body["error_description"].as_str().unwrap_or("")
    );
    let transient = matches!(status.as_u16(), 404 | 410 | 429) || status.is_server_error();
    if transient {
        return Err(AuthError::Transport { url: base, message });
    }
    let hint = if client_id.is_some() {
        "check that the VM has the user-assigned identity whose client_id is set in [azure]"
    } else {
        "check that the VM has a system-assigned identity, or set client_id of a user-assigned one"
    };
    Err(AuthError::Rejected {
        url: base,
        scope: scope.to_owned(),
        message,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_is_the_scope_without_default() {
        assert_eq!(
            resource_of("https://management.azure.com/.default"),
            "https://management.azure.com/"
        );
        assert_eq!(
            resource_of("https://graph.microsoft.com"),
            "https://graph.microsoft.com"
        );
    }
}
