//! The HTTP client every Azure call goes through: one reqwest client per proxy route (rustls
//! with the ring provider and the system's CAs, gzip, timeouts, no redirect followed, the
//! proxy of [`super::proxy`]), answers read in chunks
//! against a limit on their inflated size (a gzip bomb costs at most that), and errors told
//! with their whole chain of causes on one line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::proxy::{DirectWhy, ProxyKeys, ProxyRoute};

/// How long one request may take, and how long connecting may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Azure HTTP client with the proxy route it was built for, which explains its errors.
/// Derefs to the reqwest client.
#[derive(Debug, Clone)]
pub struct AzureHttp {
    client: reqwest::Client,
    route: Arc<ProxyRoute>,
}

impl std::ops::Deref for AzureHttp {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.client
    }
}

impl AzureHttp {
    /// A client built elsewhere (tests with their own roots) that uses no proxy.
    pub fn direct(client: reqwest::Client) -> AzureHttp {
        AzureHttp {
            client,
            route: Arc::new(ProxyRoute::Direct(DirectWhy::TurnedOff)),
        }
    }

    /// The proxy route the client uses.
    pub fn route(&self) -> &ProxyRoute {
        &self.route
    }

    /// A failed request to `url` on one line: the proxy's refusal in words when it is one
    /// (see [`ProxyRoute::explain`]), else the error's chain.
    pub fn describe(&self, url: &str, error: &reqwest::Error) -> String {
        self.route
            .explain(url, error)
            .unwrap_or_else(|| error_chain(error))
    }
}

/// The shared HTTP client for `route`: one per route (so one connection pool), built once.
pub fn client_for(route: &ProxyRoute) -> AzureHttp {
    static CLIENTS: Mutex<Vec<AzureHttp>> = Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.iter().find(|c| *c.route == *route) {
        return c.clone();
    }
    let made = AzureHttp {
        client: build_client(route),
        route: Arc::new(route.clone()),
    };
    tracing::info!(
        message = "Azure HTTP client ready.",
        proxy = %route.describe(),
        imds = "never through a proxy"
    );
    clients.push(made.clone());
    made
}

/// The shared client with the proxy the environment alone chooses (none when its values are
/// unusable): for tests and tools without a configuration.
pub fn client() -> AzureHttp {
    let route = ProxyRoute::from_env(ProxyKeys::default(), std::path::Path::to_owned)
        .unwrap_or(ProxyRoute::Direct(DirectWhy::NoneSet));
    client_for(&route)
}

/// No redirect is followed: a token request would re-post the client secret or assertion to
/// wherever a 307 points, and an API answer must not send a token elsewhere either. The proxy
/// is `route`'s alone (reqwest's own reading of the environment is off).
fn build_client(route: &ProxyRoute) -> reqwest::Client {
    route
        .apply(builder())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .gzip(true)
        .build()
        .expect("the HTTP client configuration is valid")
}

/// A client builder with rustls (ring provider, the system's CAs) and the user agent.
pub fn builder() -> reqwest::ClientBuilder {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("siemcast/", env!("CARGO_PKG_VERSION")))
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Default of `[azure] max_answer_bytes`: the largest answer (after gzip decoding) read from an
/// API. Real pages are far smaller (a Graph page holds at most 1,000 records of a few KB to a
/// few hundred KB; ARM activity-log pages about 200 records; Office 365 content blobs a few
/// MB), and a page is held at most about twice while it is parsed and spooled.
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 256 << 20;

/// Token answers (Entra ID, IMDS) are a few KB; anything past this is refused.
pub const MAX_TOKEN_ANSWER_BYTES: u64 = 1 << 20;

/// Why an answer's body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes (after decompression)")]
    TooLarge { limit: u64 },
    #[error("reading the answer: {0}")]
    Read(String),
}

/// Reads an answer's body in chunks, refusing it as soon as it (inflated, as reqwest decodes
/// gzip on the way) passes `limit` bytes: one copy in memory, never more than `limit`.
pub async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    // Sized from the header when there is one (not touched until written, so a false one costs
    // no memory); otherwise grown as the chunks come.
    let mut body = Vec::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(error_chain(&e)))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `at + wait`, saturating about a century ahead instead of panicking on overflow.
pub fn later(at: tokio::time::Instant, wait: Duration) -> tokio::time::Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(wait.min(CENTURY)).unwrap_or(at)
}

/// Where a redirect answer points: the origin of its `Location` (resolved against `url`).
pub fn redirect_target(headers: &reqwest::header::HeaderMap, url: &str) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| reqwest::Url::parse(url).ok()?.join(l).ok())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "an unreadable Location".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_is_named_by_its_targets_origin() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("location", "https://evil.example:8443/a?b".parse().unwrap());
        assert_eq!(
            redirect_target(&h, "https://graph.microsoft.com/v1.0/x"),
            "https://evil.example:8443"
        );
        h.insert("location", "/v1.0/y".parse().unwrap());
        assert_eq!(
            redirect_target(&h, "https://graph.microsoft.com/v1.0/x"),
            "https://graph.microsoft.com"
        );
        h.remove("location");
        assert_eq!(
            redirect_target(&h, "https://graph.microsoft.com/"),
            "an unreadable Location"
        );
    }

    #[test]
    fn no_aws_lc_in_the_client() {
        // Building the client must not need a process-wide provider (ring is passed in).
        let _ = client();
    }
}
