//! Entra ID app-only tokens: the client-credentials grant with a client secret against the
//! v2.0 token endpoint of the configured cloud. One token per (authority, client, scope), shared
//! by every source, refreshed before it expires and once when an API answers 401. A redirect is
//! never followed: the secret or assertion goes only to the configured login endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::time::Instant;

use super::assertion::ClientCertificate;
use super::token::{token_from_answer, AuthError, Token};
use crate::config::{AzureConfig, Cloud, Secret};

/// The host names of one Microsoft cloud, or the overrides of `[azure]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub login: String,
    pub management: String,
    pub graph: String,
    /// Office 365 Management Activity API host (`manage.office.com`, per plan/cloud).
    pub office: String,
}

impl Endpoints {
    /// Microsoft's public-cloud hosts, for unit tests of the URLs sources ask for.
    #[cfg(test)]
    pub fn public() -> Endpoints {
        Endpoints {
            login: "https://login.microsoftonline.com".into(),
            management: "https://management.azure.com".into(),
            graph: "https://graph.microsoft.com".into(),
            office: "https://manage.office.com".into(),
        }
    }

    /// The cloud's endpoints, each replaced by its `*_endpoint` override when set.
    pub fn from_config(azure: &AzureConfig) -> Endpoints {
        // Office 365: GCC High for usgov (GCC and DoD set office_endpoint); 21Vianet's host is
        // not documented, so china keeps the global one until office_endpoint is set.
        let (login, management, graph, office) = match azure.cloud {
            Cloud::Public => (
                "https://login.microsoftonline.com",
                "https://management.azure.com",
                "https://graph.microsoft.com",
                "https://manage.office.com",
            ),
            Cloud::UsGov => (
                "https://login.microsoftonline.us",
                "https://management.usgovcloudapi.net",
                "https://graph.microsoft.us",
                "https://manage.office365.us",
            ),
            Cloud::China => (
                "https://login.partner.microsoftonline.cn",
                "https://management.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://manage.office.com",
            ),
        };
        let pick = |o: &Option<String>, d: &str| {
            o.as_deref().unwrap_or(d).trim_end_matches('/').to_owned()
        };
        Endpoints {
            login: pick(&azure.login_endpoint, login),
            management: pick(&azure.management_endpoint, management),
            graph: pick(&azure.graph_endpoint, graph),
            office: pick(&azure.office_endpoint, office),
        }
    }
}

/// Checks an endpoint override: an absolute `https://` URL, or `http://` on a loopback host.
pub fn check_endpoint(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("\"{text}\" is not a URL ({e}); write it like https://login.microsoftonline.us")
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "\"{text}\" uses http://, which is accepted only for loopback hosts (tests); use https://"
        )),
        _ => Err(format!("\"{text}\" must start with https://")),
    }
}

/// How the appliance proves who it is.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// Client credentials with the app's secret.
    Secret(Secret),
    /// Client credentials with a JWT assertion signed by the app's certificate.
    Certificate(Arc<ClientCertificate>),
    /// The managed identity of the Azure VM, from IMDS (`client_id` for a user-assigned one).
    ManagedIdentity {
        imds: String,
        client_id: Option<String>,
    },
}

/// The default address of the Azure instance metadata service.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Who the appliance is: tenant, application and how it authenticates. `Debug` never shows a
/// secret or a key.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub method: AuthMethod,
}

impl Credentials {
    /// From `[azure]`: `managed_identity = true`, or `certificate_file` (+ `certificate_key_file`),
    /// or a secret from `client_secret` (normally the environment variable
    /// `SIEMCAST_AZURE__CLIENT_SECRET`) or the first line of `client_secret_file`.
    pub fn from_config(
        azure: &AzureConfig,
        resolve: impl Fn(&std::path::Path) -> std::path::PathBuf,
    ) -> Result<Credentials, String> {
        let tenant_id = azure
            .tenant_id
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("azure: tenant_id is missing")?;
        let client_id = azure.client_id.clone().filter(|t| !t.is_empty());
        if azure.managed_identity {
            return Ok(Credentials {
                tenant_id,
                client_id: client_id.clone().unwrap_or_default(),
                method: AuthMethod::ManagedIdentity {
                    imds: azure
                        .imds_endpoint
                        .as_deref()
                        .unwrap_or(IMDS_ENDPOINT)
                        .trim_end_matches('/')
                        .to_owned(),
                    client_id,
                },
            });
        }
        let client_id = client_id.ok_or("azure: client_id is missing")?;
        if let Some(cert) = &azure.certificate_file {
            let key = azure.certificate_key_file.as_deref().map(&resolve);
            let cert =
                ClientCertificate::load(&resolve(cert), key.as_deref(), azure.assertion_algorithm)
                    .map_err(|e| format!("azure: {e}"))?;
            return Ok(Credentials {
                tenant_id,
                client_id,
                method: AuthMethod::Certificate(Arc::new(cert)),
            });
        }
        let secret = match (&azure.client_secret, &azure.client_secret_file) {
            (Some(s), _) if !s.expose().is_empty() => s.clone(),
            (_, Some(file)) => {
                let path = resolve(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    format!("azure: cannot read client_secret_file {}: {e}", path.display())
                })?;
                let line = text.lines().next().unwrap_or("").trim();
                if line.is_empty() {
                    return Err(format!(
                        "azure: client_secret_file {} is empty; write the secret value on its first line",
                        path.display()
                    ));
                }
                Secret::new(line)
            }
            _ => {
                return Err("azure: no credential; set client_secret_file (or the environment variable SIEMCAST_AZURE__CLIENT_SECRET), certificate_file, or managed_identity = true".into())
            }
        };
        Ok(Credentials {
            tenant_id,
            client_id,
            method: AuthMethod::Secret(secret),
        })
    }

    /// The key of the token cache: (authority, client) for this credential.
    fn cache_key(&self, login: &str) -> (String, String) {
        match &self.method {
            AuthMethod::ManagedIdentity { imds, client_id } => (
                imds.clone(),
                client_id
                    .clone()
                    .unwrap_or_else(|| "system-assigned".into()),
            ),
            _ => (
                format!("{login}/{}", self.tenant_id),
                self.client_id.clone(),
            ),
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// Tokens by (authority, client, scope). One refresh at a time per key (single flight).
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<(String, String, String), Slot>>,
}

impl TokenCache {
    /// The process-wide cache shared by all sources.
    pub fn shared() -> Arc<TokenCache> {
        static SHARED: OnceLock<Arc<TokenCache>> = OnceLock::new();
        SHARED.get_or_init(Arc::default).clone()
    }

    fn slot(&self, authority: &str, client: &str, scope: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((authority.to_owned(), client.to_owned(), scope.to_owned()))
            .or_default()
            .clone()
    }

    /// A token for `scope`, from the cache while it is fresh.
    pub async fn token(
        &self,
        http: &super::client::AzureHttp,
        login: &str,
        creds: &Credentials,
        scope: &str,
    ) -> Result<Secret, AuthError> {
        self.get(http, login, creds, scope, None).await
    }

    /// A new token after an API rejected `rejected` with 401 (unless another task already
    /// replaced it, in which case that newer token is returned).
    pub async fn refresh(
        &self,
        http: &super::client::AzureHttp,
        login: &str,
        creds: &Credentials,
        scope: &str,
        rejected: &Secret,
    ) -> Result<Secret, AuthError> {
        self.get(http, login, creds, scope, Some(rejected)).await
    }

    async fn get(
        &self,
        http: &super::client::AzureHttp,
        login: &str,
        creds: &Credentials,
        scope: &str,
        rejected: Option<&Secret>,
    ) -> Result<Secret, AuthError> {
        let (authority, client) = creds.cache_key(login);
        let slot = self.slot(&authority, &client, scope);
        let mut cached = slot.lock().await;
        if let Some(t) = cached.as_ref() {
            let fresh = Instant::now() < t.refresh_at;
            if fresh && rejected.is_none_or(|r| r != &t.value) {
                return Ok(t.value.clone());
            }
        }
        let token = match &creds.method {
            AuthMethod::ManagedIdentity { imds, client_id } => {
                super::imds::request_token(imds, client_id.as_deref(), scope).await?
            }
            _ => request_token(http, &authority, creds, scope).await?,
        };
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }
}

/// What the user should do about an AADSTS error code.
fn hint(code: u64, server_error: bool) -> &'static str {
    match code {
        7000215 => "check the secret in client_secret_file (the secret's value, not its id)",
        7000222 => "the client secret has expired; create a new one for the app registration",
        700016 => "check client_id and tenant_id: the app is not registered in this tenant",
        90002 => "check tenant_id",
        70011 => "check the endpoint overrides in [azure]",
        700027 => "the certificate is not one uploaded to the app registration, or the key does not match it: check certificate_file (siemcast check prints its x5t#S256 thumbprint)",
        700024 => "the client assertion is outside its validity time: check this machine's clock (NTP)",
        50012 => "the client assertion's audience is not this token endpoint: check tenant_id and login_endpoint",
        700021 => "the client assertion names another application: check client_id",
        50027 => "the client assertion was rejected as malformed",
        _ if server_error => "will retry",
        _ => "check [azure] tenant_id, client_id and the credential (secret, certificate)",
    }
}

/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn request_token(
    http: &super::client::AzureHttp,
    authority: &str,
    creds: &Credentials,
    scope: &str,
) -> Result<Token, AuthError> {
    let url = format!("{authority}/oauth2/v2.0/token");
    let mut form = vec![
        ("client_id", creds.client_id.as_str()),
        ("grant_type", "client_credentials"),
        ("scope", scope),
    ];
    // Kept alive until the form is sent.
    let assertion;
    match &creds.method {
        AuthMethod::Secret(secret) => form.push(("client_secret", secret.expose())),
        AuthMethod::Certificate(cert) => {
            let now = jiff::Timestamp::now().as_second();
            assertion = cert
                .assertion(&creds.client_id, &url, now)
                .map_err(|message| AuthError::Rejected {
                    url: url.clone(),
                    scope: scope.to_owned(),
                    message,
                    hint: "check certificate_file",
                })?;
            form.push(("client_assertion_type", JWT_BEARER));
            form.push(("client_assertion", assertion.expose()));
        }
        AuthMethod::ManagedIdentity { .. } => {
            return Err(AuthError::Transport {
                url,
                message: "managed-identity tokens come from IMDS, not the token endpoint".into(),
            })
        }
    }
    let sent = Instant::now();
    let response = http
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|e| AuthError::Transport {
            url: url.clone(),
            message: http.describe(&url, &e),
        })?;
    let status = response.status();
    if status.is_redirection() {
        // The client follows no redirect: a 307 would post the form, secret included, again.
        let to = super::client::redirect_target(response.headers(), &url);
        return Err(AuthError::Rejected {
            message: format!(
                "HTTP {} redirect to {to} not followed: the client secret or assertion is posted only to the token endpoint of login_endpoint",
                status.as_u16()
            ),
            url,
            scope: scope.to_owned(),
            hint: "check login_endpoint, and any proxy or gateway between siemcast and Entra ID",
        });
    }
    let body: serde_json::Value =
        match super::client::read_body(response, super::client::MAX_TOKEN_ANSWER_BYTES).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(e) => {
                return Err(AuthError::Transport {
                    url,
                    message: e.to_string(),
                })
            }
        };
    if !status.is_success() {
        let error = body["error"].as_str().unwrap_or("");
        let description = body["error_description"]
            .as_str()
            .unwrap_or("")
            .split(" Trace ID:")
            .next()
            .unwrap_or("");
        let code = body["error_codes"][0].as_u64().unwrap_or(0);
        let hint = hint(code, status.is_server_error());
        if status.is_server_error() {
            return Err(AuthError::Transport {
                url,
                message: format!("HTTP {status}"),
            });
        }
        return Err(AuthError::Rejected {
            url,
            scope: scope.to_owned(),
            message: format!("HTTP {} {error}: {description}", status.as_u16()),
            hint,
        });
    }
    token_from_answer(url, scope, &body, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens against the simulator.
    mod simulator;

    #[test]
    fn endpoints_follow_the_cloud_and_overrides() {
        let mut azure = AzureConfig {
            cloud: Cloud::UsGov,
            ..AzureConfig::default()
        };
        let e = Endpoints::from_config(&azure);
        assert_eq!(e.login, "https://login.microsoftonline.us");
        assert_eq!(e.graph, "https://graph.microsoft.us");
        azure.graph_endpoint = Some("http://127.0.0.1:9/".into());
        assert_eq!(Endpoints::from_config(&azure).graph, "http://127.0.0.1:9");
    }

    #[test]
    fn http_only_on_loopback() {
        assert!(check_endpoint("https://login.microsoftonline.us").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://[::1]:8080").is_ok());
        assert!(check_endpoint("http://localhost:1").is_ok());
        let e = check_endpoint("http://login.example.com").unwrap_err();
        assert!(e.contains("only for loopback"), "{e}");
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("login.example.com").is_err());
    }

    #[test]
    fn certificate_refusals_say_what_to_fix() {
        assert!(hint(700024, false).contains("clock"));
        assert!(hint(700027, false).contains("certificate_file"));
        assert!(hint(50012, false).contains("login_endpoint"));
        assert_eq!(hint(1, true), "will retry");
    }

    #[test]
    fn secret_from_file_or_env_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let mut azure = AzureConfig {
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            client_secret_file: Some(file.clone()),
            ..AzureConfig::default()
        };
        let c = Credentials::from_config(&azure, |p| p.to_owned()).unwrap();
        assert!(matches!(&c.method, AuthMethod::Secret(s) if s.expose() == "s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        azure.client_secret = Some(Secret::new("fromenv"));
        let c = Credentials::from_config(&azure, |p| p.to_owned()).unwrap();
        assert!(matches!(&c.method, AuthMethod::Secret(s) if s.expose() == "fromenv"));
        azure.client_secret = None;
        azure.client_secret_file = Some(dir.path().join("nope"));
        let e = Credentials::from_config(&azure, |p| p.to_owned()).unwrap_err();
        assert!(e.contains("cannot read client_secret_file"), "{e}");
    }
}
