//! The Blob service operations the `storage_archive` source needs (docs/storage-archives.md,
//! "Blob service REST facts for the poller"): List Blobs by prefix (XML, paged by
//! `NextMarker`, optionally one level at a time with `delimiter=/`) and ranged Get Blob. Both go
//! through the Azure client ([`ApiClient::send`]: the host's gate, Retry-After, the proxy), with
//! a bearer token for `https://storage.azure.com` or an account/service SAS appended to the URL;
//! 503 `ServerBusy`, 500 `OperationTimedOut` and transport errors are retried, a rejected token
//! renewed once, and every other answer returned with its `x-ms-error-code` in words.

use std::time::Duration;

use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::sources::azure::http::{self, Answer, ApiClient, FetchError};

/// The service version every request names ("Authorize with Microsoft Entra ID": bearer tokens
/// need 2017-11-09 or later).
pub const VERSION_HEADERS: &[(&str, &str)] = &[("x-ms-version", "2023-11-03")];

/// The token scope of the Blob service in every cloud ("Authorize with Microsoft Entra ID":
/// resource ID `https://storage.azure.com/`).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Entries asked for per List Blobs page (the service's maximum is 5,000).
pub const LIST_PAGE: usize = 1000;

/// Why a request did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("cancelled")]
    Cancelled,
    /// An answer the service gave on purpose: 403, 404, 409, 416… with its error code.
    #[error("HTTP {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// Retries exhausted, a token that could not be had, an answer that is not the XML expected.
    #[error("{0}")]
    Failed(String),
}

impl BlobError {
    /// The error code (`ContainerNotFound`, `AuthenticationFailed`…), if the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            BlobError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One blob of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub length: u64,
    /// `Creation-Time` as the service writes it (compared as text: a new one is a new blob).
    pub created: String,
    pub block_blob: bool,
}

/// One page of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub blobs: Vec<Listed>,
    /// `BlobPrefix` names (with a delimiter).
    pub prefixes: Vec<String>,
    /// The marker of the next page; `None` when the listing is complete.
    pub next: Option<String>,
}

/// Bytes of a blob read with a range.
#[derive(Debug)]
pub struct Range {
    pub bytes: Vec<u8>,
    /// The blob's whole length (from `Content-Range`).
    pub total: u64,
    /// `x-ms-creation-time`.
    pub created: Option<String>,
}

/// The Blob service of one storage account.
#[derive(Debug, Clone)]
pub struct Store {
    pub client: ApiClient,
    /// `https://{account}.blob.core.windows.net`, without a trailing `/`.
    pub endpoint: String,
    /// The SAS query string (without `?`), when the source authenticates with one.
    pub sas: Option<Secret>,
}

impl Store {
    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> String {
        let mut url = reqwest::Url::parse(&self.endpoint).expect("the blob endpoint was validated");
        {
            let mut segs = url
                .path_segments_mut()
                .expect("an https URL has path segments");
            segs.pop_if_empty();
            for p in path {
                segs.push(p);
            }
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        let mut text = url.to_string();
        if let Some(sas) = &self.sas {
            text.push(if query.is_empty() { '?' } else { '&' });
            text.push_str(sas.expose());
        }
        text
    }

    /// One page of the blobs of `container` whose names start with `prefix`.
    pub async fn list(
        &self,
        container: &str,
        prefix: &str,
        delimiter: bool,
        marker: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ListPage, BlobError> {
        let page = LIST_PAGE.to_string();
        let mut query = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("prefix", prefix),
            ("maxresults", page.as_str()),
        ];
        if delimiter {
            query.push(("delimiter", "/"));
        }
        if let Some(m) = marker {
            query.push(("marker", m));
        }
        let url = self.url(&[container], &query);
        let (_, _, body) = self.call(&url, &[], cancel).await?;
        let text = String::from_utf8_lossy(&body);
        parse_list(&text).ok_or_else(|| {
            BlobError::Failed(format!(
                "the listing of container \"{container}\" is not the EnumerationResults XML expected"
            ))
        })
    }

    /// Bytes `[from, to)` of blob `name` (fewer when the blob is shorter).
    pub async fn read(
        &self,
        container: &str,
        name: &str,
        from: u64,
        to: u64,
        cancel: &CancellationToken,
    ) -> Result<Range, BlobError> {
        let mut path = vec![container];
        path.extend(name.split('/'));
        let url = self.url(&path, &[]);
        let range = format!("bytes={from}-{}", to.saturating_sub(1).max(from));
        let (status, headers, bytes) = self.call(&url, &[("x-ms-range", range)], cancel).await?;
        let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
        let total = match header("content-range").and_then(|r| r.rsplit('/').next()) {
            Some(t) => t.parse().unwrap_or(from + bytes.len() as u64),
            None if status == StatusCode::OK => bytes.len() as u64,
            None => from + bytes.len() as u64,
        };
        // A 200 answers the whole blob (a service that ignored the range).
        let bytes = if status == StatusCode::OK {
            let start = (from as usize).min(bytes.len());
            let end = (to as usize).min(bytes.len());
            bytes[start..end.max(start)].to_vec()
        } else {
            bytes
        };
        Ok(Range {
            bytes,
            total,
            created: header("x-ms-creation-time").map(str::to_owned),
        })
    }

    /// The URL as logs may show it: without the SAS (the query string is the secret).
    fn shown(&self, url: &str) -> String {
        match &self.sas {
            Some(sas) => url.replace(sas.expose(), "[SAS redacted]"),
            None => url.to_owned(),
        }
    }

    /// GETs `url`, retrying throttling, server errors and transport errors, renewing a rejected
    /// token once; 200 and 206 are answers, anything else a [`BlobError`].
    async fn call(
        &self,
        url: &str,
        extra: &[(&'static str, String)],
        cancel: &CancellationToken,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), BlobError> {
        let fetch = |e: FetchError| match e {
            FetchError::Cancelled => BlobError::Cancelled,
            other => BlobError::Failed(self.shown(&other.to_string())),
        };
        let mut token = match self.sas {
            Some(_) => None,
            None => Some(self.client.token(None, cancel).await.map_err(fetch)?),
        };
        let retry = &self.client.retry;
        let (mut attempt, mut throttled, mut renewed) = (0u32, 0u32, false);
        loop {
            attempt += 1;
            let answer = self
                .client
                .send(&reqwest::Method::GET, url, token.as_ref(), extra, cancel)
                .await
                .map_err(fetch)?;
            let (why, server_wait) = match answer {
                Answer::Transport(e) => {
                    http::count(&self.client.stats.api_errors);
                    (format!("transport error: {}", self.shown(&e)), None)
                }
                Answer::Http {
                    status,
                    headers,
                    body,
                } => {
                    let body = match body {
                        Ok(b) => b,
                        Err(e) => {
                            http::count(&self.client.stats.api_errors);
                            return Err(BlobError::Failed(format!(
                                "{e} (raise [azure] max_answer_bytes if the service really answers this much)"
                            )));
                        }
                    };
                    if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
                        return Ok((status, headers, body));
                    }
                    let code = headers
                        .get("x-ms-error-code")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                        .or_else(|| xml_element(&String::from_utf8_lossy(&body), "Code"))
                        .unwrap_or_default();
                    let rid = http::request_id(&headers).unwrap_or_else(|| "-".into());
                    let busy = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    );
                    let retried = busy
                        || matches!(
                            status,
                            StatusCode::INTERNAL_SERVER_ERROR
                                | StatusCode::BAD_GATEWAY
                                | StatusCode::GATEWAY_TIMEOUT
                        );
                    if status == StatusCode::UNAUTHORIZED && token.is_some() && !renewed {
                        http::count(&self.client.stats.api_errors);
                        tracing::info!(message = "Token rejected; getting a new one.", source = %self.client.source, request_id = %rid, code = %code);
                        renewed = true;
                        token = Some(
                            self.client
                                .token(token.as_ref(), cancel)
                                .await
                                .map_err(fetch)?,
                        );
                        continue;
                    }
                    if !retried {
                        http::count(&self.client.stats.api_errors);
                        let text = String::from_utf8_lossy(&body);
                        let mut message = xml_element(&text, "Message")
                            .map(|m| m.lines().next().unwrap_or_default().to_owned())
                            .unwrap_or_default();
                        if let Some(d) = xml_element(&text, "AuthenticationErrorDetail") {
                            message = format!("{message} ({d})");
                        }
                        return Err(BlobError::Refused {
                            status: status.as_u16(),
                            code,
                            message: format!("{message} (request id {rid})"),
                        });
                    }
                    http::count(if busy {
                        &self.client.stats.api_throttled
                    } else {
                        &self.client.stats.api_errors
                    });
                    (
                        format!("HTTP {} {code} (request id {rid})", status.as_u16()),
                        http::retry_after(&headers),
                    )
                }
            };
            if server_wait.is_some() {
                throttled += 1;
                attempt -= 1;
            }
            if attempt >= retry.max_attempts || throttled > retry.max_throttled {
                return Err(BlobError::Failed(format!(
                    "gave up after {} attempts; last: {why}",
                    attempt + throttled
                )));
            }
            let wait = match server_wait {
                Some(_) => Duration::ZERO,
                None => retry.backoff(attempt),
            };
            tracing::info!(message = "Request not served; retrying.", source = %self.client.source, reason = %why, wait_ms = wait.as_millis() as u64);
            self.client.sleep(wait, cancel).await.map_err(fetch)?;
        }
    }
}

/// The text of the first `<name>…</name>` in `xml`, unescaped.
pub fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Reads a List Blobs answer (`EnumerationResults`); `None` when it is not one.
pub fn parse_list(xml: &str) -> Option<ListPage> {
    if !xml.contains("<EnumerationResults") {
        return None;
    }
    let mut page = ListPage::default();
    let mut rest = xml;
    while let Some(i) = rest.find("<Blob>") {
        let end = rest[i..].find("</Blob>")? + i;
        let item = &rest[i..end];
        page.blobs.push(Listed {
            name: xml_element(item, "Name")?,
            length: xml_element(item, "Content-Length")?.trim().parse().ok()?,
            created: xml_element(item, "Creation-Time").unwrap_or_default(),
            block_blob: xml_element(item, "BlobType").as_deref() == Some("BlockBlob"),
        });
        rest = &rest[end..];
    }
    let mut rest = xml;
    while let Some(i) = rest.find("<BlobPrefix>") {
        let end = rest[i..].find("</BlobPrefix>")? + i;
        page.prefixes.push(xml_element(&rest[i..end], "Name")?);
        rest = &rest[end..];
    }
    page.next = xml_element(xml, "NextMarker").filter(|m| !m.is_empty());
    Some(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_read_with_prefixes_and_markers() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://a.blob.core.windows.net/" ContainerName="c"><Prefix>p</Prefix><Blobs><Blob><Name>resourceId=/SUBSCRIPTIONS/X/y=2026/m=12/d=06/h=17/m=00/PT1H.json</Name><Properties><Creation-Time>Sun, 06 Dec 2026 17:00:01 GMT</Creation-Time><Etag>0x8D1</Etag><Content-Length>1234</Content-Length><BlobType>AppendBlob</BlobType></Properties></Blob><Blob><Name>a&amp;b</Name><Properties><Content-Length>14</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob><BlobPrefix><Name>resourceId=/SUBSCRIPTIONS/</Name></BlobPrefix></Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let page = parse_list(xml).unwrap();
        assert_eq!(page.blobs.len(), 2);
        assert_eq!(page.blobs[0].length, 1234);
        assert_eq!(page.blobs[0].created, "Sun, 06 Dec 2026 17:00:01 GMT");
        assert!(!page.blobs[0].block_blob);
        assert_eq!(page.blobs[1].name, "a&b");
        assert!(page.blobs[1].block_blob);
        assert_eq!(page.prefixes, vec!["resourceId=/SUBSCRIPTIONS/".to_owned()]);
        assert_eq!(page.next.as_deref(), Some("2!abc"));
        let last = parse_list("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>");
        assert_eq!(last, Some(ListPage::default()));
        assert_eq!(parse_list("<Error><Code>X</Code></Error>"), None);
    }
}
