//! The simulator's hostile modes: continuation links and content URIs that leave the API (to a
//! foreign loopback listener, or downgraded to `http://`), API answers and token requests
//! redirected there with a 307, and the listeners that record what reaches them: the foreign
//! one, and each HTTPS API port for requests sent to it in clear text (answered 400, as a web
//! server does).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::wire::query_pairs;
use super::{Service, Shared};

/// Where continuation links and Office 365 content URIs point while a hostile mode is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileLinks {
    /// The foreign listener (another loopback port), with the same path and query.
    Foreign,
    /// The API's own host and port with `http://`: with [`SimTls`], a downgrade to clear text
    /// (without it the links are unchanged).
    Downgrade,
    /// Links are left alone, but every API request (ARM, Graph, Office 365) is answered with a
    /// 307 to the foreign listener, as by a compromised front end.
    Redirect,
}

/// A certificate chain (DER, leaf first) and its PKCS#8 key (DER) the simulated APIs serve
/// HTTPS with. IMDS stays plain HTTP, as on Azure.
#[derive(Clone)]
pub struct SimTls {
    pub cert_chain: Vec<Vec<u8>>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls")
            .field("certificates", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

/// Where a request that should never have been sent arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Stray {
    /// The foreign listener.
    Foreign,
    /// An HTTPS API port, in clear text.
    Cleartext(Service),
}

/// A request that reached a listener it should not have, with the credentials it carried.
#[derive(Debug, Clone, Serialize)]
pub struct StrayRequest {
    pub at: Stray,
    pub method: String,
    pub path_and_query: String,
    /// The `Authorization` header it carried.
    pub authorization: Option<String>,
    /// The credential fields of its form body (`client_secret`, `client_assertion`), with
    /// their values.
    pub credentials: Vec<(String, String)>,
}

/// The credential fields of a form body.
fn credentials(body: &[u8]) -> Vec<(String, String)> {
    query_pairs(&String::from_utf8_lossy(body))
        .into_iter()
        .filter(|(k, _)| k == "client_secret" || k == "client_assertion")
        .collect()
}

fn record(shared: &Shared, stray: StrayRequest) {
    shared.lock().strays.push(stray);
}

/// `link` as the hostile mode in force rewrites it (unchanged when none is).
pub(super) fn link(shared: &Shared, link: String) -> String {
    let mode = match shared.lock().hostile_links {
        Some(m @ (HostileLinks::Foreign | HostileLinks::Downgrade)) => m,
        _ => return link,
    };
    let Ok(mut url) = reqwest::Url::parse(&link) else {
        return link;
    };
    // Both schemes are "special", so switching between them cannot fail.
    let _ = url.set_scheme("http");
    if mode == HostileLinks::Foreign {
        let _ = url.set_ip_host(shared.foreign.ip());
        let _ = url.set_port(Some(shared.foreign.port()));
    }
    url.to_string()
}

/// The 307 an API request gets in [`HostileLinks::Redirect`] mode.
pub(super) fn api_redirect(shared: &Shared, uri: &Uri) -> Option<Response> {
    if shared.lock().hostile_links != Some(HostileLinks::Redirect) {
        return None;
    }
    Some(redirect_to_foreign(shared, uri))
}

fn redirect_to_foreign(shared: &Shared, uri: &Uri) -> Response {
    let target = format!(
        "http://{}{}",
        shared.foreign,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&target) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// The 307 a redirected token request gets (to the foreign listener, same path and query), if
/// token requests are being redirected.
pub(super) fn token_redirect(shared: &Shared, uri: &Uri) -> Option<Response> {
    if !shared.lock().redirect_tokens {
        return None;
    }
    Some(redirect_to_foreign(shared, uri))
}

/// The foreign listener: records each request and answers as an attacker's server would, with
/// a plausible empty last page (or a token for a token request), so a client that follows it
/// would take the window as read.
pub(super) async fn foreign(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(
        &shared,
        StrayRequest {
            at: Stray::Foreign,
            method: method.to_string(),
            path_and_query: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            credentials: credentials(&body),
        },
    );
    if method == Method::POST && uri.path().ends_with("/token") {
        return axum::Json(
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "foreign.token"}),
        )
        .into_response();
    }
    if uri.path().contains("/activity/feed/") {
        return axum::Json(json!([])).into_response();
    }
    axum::Json(json!({"value": []})).into_response()
}

/// A TLS acceptor for `tls` (ring, HTTP/1.1); the HEC simulator serves HTTPS with it too.
pub(crate) fn acceptor(tls: &SimTls) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let invalid = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let chain = tls
        .cert_chain
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.clone()))
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(tls.key.clone().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(invalid)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(invalid)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What to do with a connection that speaks plain HTTP to an HTTPS port.
pub(crate) type Cleartext = Arc<
    dyn Fn(TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// An HTTPS port (the Azure simulator's APIs, the HEC simulator): TLS connections are handed
/// to the server, each handshake done on its own task (a slow or broken client holds up
/// nobody); with `cleartext`, a connection that speaks plain HTTP is given to it instead (the
/// Azure simulator records it as a [`Stray::Cleartext`] and answers 400).
pub(crate) struct TlsPort {
    connections:
        tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsPort {
    /// Accepts on `tcp` until `stop`, each connection sorted (and its handshake done) on its
    /// own task.
    pub(crate) fn new(
        tcp: TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        cleartext: Option<Cleartext>,
        stop: CancellationToken,
    ) -> std::io::Result<TlsPort> {
        let local = tcp.local_addr()?;
        let (tx, connections) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = tcp.accept() => match a {
                        Ok(a) => a,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, cleartext, tx) = (acceptor.clone(), cleartext.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Some(cleartext) = cleartext {
                        let mut first = [0u8; 1];
                        let peeked =
                            tokio::time::timeout(Duration::from_secs(5), stream.peek(&mut first))
                                .await;
                        if !matches!(peeked, Ok(Ok(1))) {
                            return;
                        }
                        // 0x16: a TLS handshake record.
                        if first[0] != 0x16 {
                            cleartext(stream).await;
                            return;
                        }
                    }
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await;
                    if let Ok(Ok(tls)) = handshake {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsPort { connections, local })
    }
}

/// The Azure simulator's answer to plain HTTP on an HTTPS port of `service`.
pub(super) fn answer_cleartext(shared: Arc<Shared>, service: Service) -> Cleartext {
    Arc::new(move |stream| {
        let shared = shared.clone();
        Box::pin(async move { cleartext(stream, &shared, service).await })
    })
}

impl axum::serve::Listener for TlsPort {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(c) => c,
            // The accept task ended (stopping): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Reads one plain-HTTP request sent to an HTTPS port (head and form body, 64 KiB at most),
/// records it and answers as nginx does.
async fn cleartext(mut stream: TcpStream, shared: &Shared, service: Service) {
    const MAX: usize = 64 * 1024;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(end) = head_end {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let length = header(&head, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length.min(MAX) {
                    return Some((head, buf[end + 4..].to_vec()));
                }
            }
            if buf.len() > MAX {
                return None;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let Ok(Some((head, body))) = tokio::time::timeout(Duration::from_secs(5), read).await else {
        return;
    };
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    record(
        shared,
        StrayRequest {
            at: Stray::Cleartext(service),
            method: request_line.next().unwrap_or("").to_owned(),
            path_and_query: request_line.next().unwrap_or("").to_owned(),
            authorization: header(&head, "authorization").map(str::to_owned),
            credentials: credentials(&body),
        },
    );
    let page = "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n</body>\r\n</html>\r\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The value of header `name` in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_headers_are_found() {
        let body = b"client_id=a&client_secret=s%7E1&scope=x";
        assert_eq!(
            credentials(body),
            [("client_secret".to_owned(), "s~1".to_owned())]
        );
        let head = "GET /a HTTP/1.1\r\nHost: x\r\nauthorization: Bearer t";
        assert_eq!(header(head, "Authorization"), Some("Bearer t"));
        assert_eq!(header(head, "cookie"), None);
    }
}
