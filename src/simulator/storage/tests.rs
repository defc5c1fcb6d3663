//! The simulated Blob service against a plain HTTP client: paging, ranged reads, ETags,
//! growth of append and block blobs, replacement, faults and both kinds of credentials.

use std::time::Duration;

use super::super::wire::{CONTAINER_ACTIVITY, CONTAINER_KEY_VAULT, CONTAINER_NSG_FLOW};
use super::super::{now_ms, Faults, Service, SimConfig, Simulator, Timeline};

/// 2026-12-06T16:50:00Z.
const PAST_MS: i64 = 1_796_575_800_000;

/// Thirty records of each kind over 20 minutes across 16:00–17:00, all long visible.
fn past() -> SimConfig {
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 5);
    cfg.storage = Timeline {
        count: 30,
        start_ms: PAST_MS,
        span_ms: 20 * 60_000,
        max_latency_ms: 2_000,
        late_every: None,
        late_by_ms: 0,
    };
    cfg
}

/// Records written from 1 s ago to `ahead` from now.
fn growing(ahead: Duration) -> SimConfig {
    let mut cfg = past();
    cfg.storage = Timeline {
        count: 12,
        start_ms: now_ms() - 1_000,
        span_ms: ahead.as_millis() as i64,
        max_latency_ms: 200,
        late_every: None,
        late_by_ms: 0,
    };
    cfg
}

/// A storage client of the simulator with a token for `https://storage.azure.com`.
struct S {
    sim: Simulator,
    http: reqwest::Client,
    token: String,
}

/// One answer: status, headers, body.
struct A {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl A {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `<Code>` of an error body, checked against `x-ms-error-code`.
    fn code(&self) -> String {
        let code = tags(&self.text(), "Code").pop().unwrap_or_default();
        assert_eq!(self.header("x-ms-error-code"), Some(code.as_str()));
        code
    }
}

async fn token_for(sim: &Simulator, http: &reqwest::Client, scope: &str) -> reqwest::Response {
    let cfg = sim.config();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("scope", scope),
    ];
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        sim.endpoint(Service::Login),
        cfg.tenant_id
    );
    http.post(url).form(&form).send().await.unwrap()
}

async fn token(sim: &Simulator, http: &reqwest::Client, scope: &str) -> String {
    let body: serde_json::Value = token_for(sim, http, scope).await.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

impl S {
    async fn start(cfg: SimConfig) -> S {
        let sim = Simulator::start(cfg).await.unwrap();
        let http = reqwest::Client::clone(&crate::sources::azure::client::client());
        let token = token(&sim, &http, "https://storage.azure.com/.default").await;
        S { sim, http, token }
    }

    /// A GET of `path_and_query` with the token and `x-ms-version`, plus `headers`.
    async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> A {
        let mut req = self
            .http
            .get(format!(
                "{}{path_and_query}",
                self.sim.endpoint(Service::Storage)
            ))
            .bearer_auth(&self.token)
            .header("x-ms-version", "2025-11-05");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req).await
    }

    /// The body of a GET that must answer 200.
    async fn ok(&self, path_and_query: &str) -> String {
        let a = self.get(path_and_query, &[]).await;
        assert_eq!(a.status, 200, "{path_and_query}: {}", a.text());
        a.text()
    }

    /// Every blob name of a listing, following `NextMarker`, and the pages it took.
    async fn list_all(&self, container: &str, extra: &str) -> (Vec<String>, usize) {
        let (mut names, mut pages, mut marker) = (Vec::new(), 0, String::new());
        loop {
            let xml = self
                .ok(&format!(
                    "/{container}?restype=container&comp=list{extra}&marker={marker}"
                ))
                .await;
            pages += 1;
            names.extend(tags(&xml, "Name"));
            match tags(&xml, "NextMarker").pop() {
                Some(m) if !m.is_empty() => marker = url_encode(&m),
                _ => return (names, pages),
            }
        }
    }
}

async fn answer(req: reqwest::RequestBuilder) -> A {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    A {
        status,
        headers,
        body,
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The texts of every `<tag>…</tag>` of `xml` (`<tag />` counts as empty), unescaped.
fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close, empty) = (
        format!("<{tag}>"),
        format!("</{tag}>"),
        format!("<{tag} />"),
    );
    let mut out = Vec::new();
    let mut rest = xml;
    loop {
        let next_open = rest.find(&open);
        let next_empty = rest.find(&empty);
        match (next_open, next_empty) {
            (Some(o), e) if e.is_none_or(|e| o < e) => {
                let after = &rest[o + open.len()..];
                let end = after.find(&close).unwrap();
                out.push(
                    after[..end]
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&amp;", "&"),
                );
                rest = &after[end..];
            }
            (_, Some(e)) => {
                out.push(String::new());
                rest = &rest[e + empty.len()..];
            }
            _ => return out,
        }
    }
}

fn blob_path(container: &str, name: &str) -> String {
    format!("/{container}/{name}")
}

#[tokio::test]
async fn listing_pages_by_marker_and_groups_by_delimiter() {
    let s = S::start(past()).await;
    let expected = s.sim.storage_blob_names(CONTAINER_ACTIVITY);
    assert_eq!(expected.len(), 2, "one blob an hour: {expected:?}");
    let (names, pages) = s.list_all(CONTAINER_ACTIVITY, "&maxresults=1").await;
    assert_eq!((names, pages), (expected.clone(), 2));
    let (names, pages) = s.list_all(CONTAINER_ACTIVITY, "").await;
    assert_eq!((names, pages), (expected.clone(), 1));

    let sub = s.sim.config().subscriptions[0].to_uppercase();
    let day = format!("resourceId=/SUBSCRIPTIONS/{sub}/y=2026/m=12/d=06/");
    let a = s
        .get(
            &format!(
                "/{CONTAINER_ACTIVITY}?restype=container&comp=list&prefix={}&delimiter=%2F",
                url_encode(&day)
            ),
            &[],
        )
        .await;
    let xml = a.text();
    assert!(xml.starts_with(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\""
    ));
    assert_eq!(tags(&xml, "Prefix"), vec![day.clone()]);
    assert_eq!(tags(&xml, "Delimiter"), vec!["/".to_owned()]);
    assert!(tags(&xml, "Blob").is_empty());
    assert_eq!(
        tags(&xml, "Name"),
        vec![format!("{day}h=16/"), format!("{day}h=17/")],
        "{xml}"
    );
    assert!(xml.contains("<BlobPrefix><Name>"));

    // Properties of every blob: its type and length as Get Blob reads it.
    let a = s
        .get(
            &format!("/{CONTAINER_NSG_FLOW}?restype=container&comp=list&include=metadata"),
            &[],
        )
        .await;
    let xml = a.text();
    let names = tags(&xml, "Name");
    assert!(!names.is_empty());
    assert!(tags(&xml, "BlobType").iter().all(|t| t == "BlockBlob"));
    let lengths = tags(&xml, "Content-Length");
    let etags = tags(&xml, "Etag");
    for ((name, len), etag) in names.iter().zip(&lengths).zip(&etags) {
        let b = s.get(&blob_path(CONTAINER_NSG_FLOW, name), &[]).await;
        assert_eq!(b.status, 200);
        assert_eq!(b.body.len().to_string(), *len);
        assert_eq!(b.header("etag"), Some(format!("\"{etag}\"").as_str()));
        assert_eq!(b.header("x-ms-blob-type"), Some("BlockBlob"));
    }

    for (query, code) in [
        ("&maxresults=0", "OutOfRangeQueryParameterValue"),
        ("&maxresults=many", "InvalidQueryParameterValue"),
        ("&marker=bogus", "InvalidQueryParameterValue"),
    ] {
        let a = s
            .get(
                &format!("/{CONTAINER_ACTIVITY}?restype=container&comp=list{query}"),
                &[],
            )
            .await;
        assert_eq!((a.status, a.code()), (400, code.to_owned()), "{query}");
    }
    let a = s
        .get("/insights-logs-nothing?restype=container&comp=list", &[])
        .await;
    assert_eq!((a.status, a.code()), (404, "ContainerNotFound".to_owned()));
    assert!(a
        .text()
        .contains("<Message>The specified container does not exist.\nRequestId:"));
    let a = s
        .get(
            &blob_path(CONTAINER_ACTIVITY, "resourceId=/nope/PT1H.json"),
            &[],
        )
        .await;
    assert_eq!((a.status, a.code()), (404, "BlobNotFound".to_owned()));
}

#[tokio::test]
async fn ranged_reads_check_etag_and_length() {
    let s = S::start(past()).await;
    let name = &s.sim.storage_blob_names(CONTAINER_KEY_VAULT)[0];
    let path = blob_path(CONTAINER_KEY_VAULT, name);
    let full = s.get(&path, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("x-ms-blob-type"), Some("AppendBlob"));
    let etag = full.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("\"0x8D"), "{etag}");
    let text = full.text();
    assert!(text.ends_with('\n'));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|r| r["category"] == "AuditEvent"));
    assert_eq!(
        full.header("x-ms-blob-committed-block-count"),
        Some(lines.len().to_string().as_str())
    );

    // Resume after the first line, as a reader that stored its offset does.
    let offset = text.find('\n').unwrap() + 1;
    let rest = s
        .get(
            &path,
            &[
                ("x-ms-range", &format!("bytes={offset}-")),
                ("if-match", &etag),
            ],
        )
        .await;
    assert_eq!(rest.status, 206);
    assert_eq!(rest.body, full.body[offset..]);
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes {offset}-{}/{}", full.body.len() - 1, full.body.len()).as_str())
    );
    let some = s.get(&path, &[("range", "bytes=0-9")]).await;
    assert_eq!((some.status, some.body.len()), (206, 10));

    let past_end = s
        .get(
            &path,
            &[("x-ms-range", &format!("bytes={}-", full.body.len()))],
        )
        .await;
    assert_eq!(
        (past_end.status, past_end.code()),
        (416, "InvalidRange".to_owned())
    );
    let changed = s.get(&path, &[("if-match", "\"0x8D0000000000000\"")]).await;
    assert_eq!(
        (changed.status, changed.code()),
        (412, "ConditionNotMet".to_owned())
    );

    let props = s
        .http
        .head(format!("{}{path}", s.sim.endpoint(Service::Storage)))
        .bearer_auth(&s.token)
        .header("x-ms-version", "2025-11-05")
        .send()
        .await
        .unwrap();
    assert_eq!(props.status(), 200);
    assert_eq!(
        props.headers()["content-length"].to_str().unwrap(),
        full.body.len().to_string()
    );

    // Every record the container holds, read blob by blob.
    let mut read = Vec::new();
    for name in s.sim.storage_blob_names(CONTAINER_KEY_VAULT) {
        let a = s.get(&blob_path(CONTAINER_KEY_VAULT, &name), &[]).await;
        read.extend(
            a.text()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    assert_eq!(read, s.sim.storage_records(CONTAINER_KEY_VAULT));
    let a = s.get(&format!("{path}?comp=blocklist"), &[]).await;
    assert_eq!((a.status, a.code()), (409, "InvalidBlobType".to_owned()));
}

/// The committed blocks of a flow log: (id, size) and the blob length header.
async fn blocks(s: &S, path: &str) -> (Vec<(String, usize)>, usize) {
    let a = s
        .get(
            &format!("{path}?comp=blocklist&blocklisttype=committed"),
            &[],
        )
        .await;
    assert_eq!(a.status, 200);
    let xml = a.text();
    let ids = tags(&xml, "Name");
    let sizes = tags(&xml, "Size")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect::<Vec<usize>>();
    let len = a
        .header("x-ms-blob-content-length")
        .unwrap()
        .parse()
        .unwrap();
    (ids.into_iter().zip(sizes).collect(), len)
}

/// Every blob of `container` now: name → (bytes, etag).
async fn snapshot(s: &S, container: &str) -> std::collections::BTreeMap<String, (Vec<u8>, String)> {
    let (names, _) = s.list_all(container, "").await;
    let mut out = std::collections::BTreeMap::new();
    for name in names {
        let a = s.get(&blob_path(container, &name), &[]).await;
        assert_eq!(a.status, 200);
        out.insert(name, (a.body.clone(), a.header("etag").unwrap().to_owned()));
    }
    out
}

#[tokio::test]
async fn append_blobs_grow_by_lines_and_flow_logs_by_committed_blocks() {
    let s = S::start(growing(Duration::from_secs(3))).await;
    let before = snapshot(&s, CONTAINER_ACTIVITY).await;
    let flows_before = snapshot(&s, CONTAINER_NSG_FLOW).await;
    let mut blocks_before = Vec::new();
    for name in flows_before.keys() {
        blocks_before.push(blocks(&s, &blob_path(CONTAINER_NSG_FLOW, name)).await);
    }
    let wait = s.sim.last_visible_ms() - now_ms() + 300;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let after = snapshot(&s, CONTAINER_ACTIVITY).await;

    let count = |m: &std::collections::BTreeMap<String, (Vec<u8>, String)>| {
        m.values()
            .map(|(b, _)| b.iter().filter(|&&c| c == b'\n').count())
            .sum::<usize>()
    };
    assert!(count(&before) < 12, "records still to come at the start");
    assert_eq!(count(&after), 12);
    for (name, (bytes, etag)) in &before {
        let (now, now_etag) = &after[name];
        assert!(now.starts_with(bytes), "{name}: appended, never rewritten");
        if now.len() > bytes.len() {
            assert_ne!(etag, now_etag, "{name}: each append changes the ETag");
        }
    }

    let flows_after = snapshot(&s, CONTAINER_NSG_FLOW).await;
    let mut records = 0;
    for (name, (bytes, _)) in &flows_after {
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        records += doc["records"].as_array().unwrap().len();
        let path = blob_path(CONTAINER_NSG_FLOW, name);
        let (list, len) = blocks(&s, &path).await;
        assert_eq!(len, bytes.len());
        assert_eq!(list.iter().map(|(_, n)| n).sum::<usize>(), bytes.len());
        assert_eq!(
            (list[0].1, list[list.len() - 1].1),
            (12, 2),
            "head and tail blocks"
        );
        assert_eq!(&bytes[..12], b"{\"records\":[");
        // Reading the blocks after the first record from their offset gives the records
        // after it, each with a leading comma.
        if list.len() > 3 {
            let offset: usize = list[..2].iter().map(|(_, n)| n).sum();
            let rest = s
                .get(&path, &[("x-ms-range", &format!("bytes={offset}-"))])
                .await;
            assert_eq!(rest.body[0], b',');
        }
        if let Some(i) = flows_before.keys().position(|k| k == name) {
            let (old, old_len) = &blocks_before[i];
            assert!(*old_len <= len);
            assert_eq!(
                list[..old.len() - 1],
                old[..old.len() - 1],
                "{name}: earlier blocks kept, tail moved"
            );
        }
    }
    assert_eq!(records, 12);
    assert_eq!(s.sim.storage_records(CONTAINER_NSG_FLOW).len(), 12);
}

#[tokio::test]
async fn a_replaced_blob_is_shorter_under_a_new_etag() {
    let s = S::start(past()).await;
    let name = s.sim.storage_blob_names(CONTAINER_ACTIVITY)[0].clone();
    let path = blob_path(CONTAINER_ACTIVITY, &name);
    let old = s.get(&path, &[]).await;
    let old_etag = old.header("etag").unwrap().to_owned();
    let held = s.sim.storage_records(CONTAINER_ACTIVITY).len();
    assert!(s.sim.storage_replace(CONTAINER_ACTIVITY, &name));
    assert!(!s
        .sim
        .storage_replace(CONTAINER_ACTIVITY, "resourceId=/nope/PT1H.json"));
    let new = s.get(&path, &[]).await;
    assert_ne!(new.header("etag").unwrap(), old_etag);
    assert!(new.body.len() < old.body.len());
    assert!(
        old.body.starts_with(&new.body),
        "the first half of what it held"
    );
    assert_ne!(
        new.header("x-ms-creation-time"),
        old.header("x-ms-creation-time")
    );
    let stale = s.get(&path, &[("if-match", &old_etag)]).await;
    assert_eq!(
        (stale.status, stale.code()),
        (412, "ConditionNotMet".to_owned())
    );
    let from = s
        .get(
            &path,
            &[("x-ms-range", &format!("bytes={}-", old.body.len()))],
        )
        .await;
    assert_eq!((from.status, from.code()), (416, "InvalidRange".to_owned()));
    let dropped = old.text().lines().count() - new.text().lines().count();
    assert!(dropped > 0);
    assert_eq!(
        s.sim.storage_records(CONTAINER_ACTIVITY).len(),
        held - dropped
    );
}

#[tokio::test]
async fn a_last_line_being_written_has_no_newline_until_done() {
    let mut cfg = growing(Duration::from_secs(2));
    cfg.faults.storage_partial_last_line = true;
    let s = S::start(cfg).await;
    let before = snapshot(&s, CONTAINER_KEY_VAULT).await;
    let cut: Vec<_> = before
        .values()
        .filter(|(b, _)| b.last() != Some(&b'\n'))
        .collect();
    assert!(!cut.is_empty(), "a record is being written");
    let wait = s.sim.last_visible_ms() - now_ms() + 300;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let after = snapshot(&s, CONTAINER_KEY_VAULT).await;
    for (name, (bytes, _)) in &before {
        let now = &after[name].0;
        assert!(
            now.starts_with(bytes),
            "{name}: the cut line is completed in place"
        );
        assert_eq!(now.last(), Some(&b'\n'));
    }
}

#[tokio::test]
async fn throttled_requests_are_told_to_wait() {
    let mut cfg = past();
    cfg.faults = Faults {
        throttle_every: Some(2),
        unavailable_every: Some(3),
        retry_after_secs: 1,
        ..Faults::default()
    };
    let s = S::start(cfg).await;
    let list = format!("/{CONTAINER_ACTIVITY}?restype=container&comp=list");
    let mut seen = Vec::new();
    for _ in 0..6 {
        let a = s.get(&list, &[]).await;
        let code = if a.status == 200 {
            String::new()
        } else {
            a.code()
        };
        seen.push((a.status, code, a.header("retry-after").map(str::to_owned)));
    }
    let busy = (503, "ServerBusy".to_owned(), Some("1".to_owned()));
    let timed_out = (500, "OperationTimedOut".to_owned(), None);
    let ok = (200, String::new(), None);
    assert_eq!(
        seen,
        vec![ok.clone(), busy.clone(), timed_out, busy.clone(), ok, busy]
    );
    let log = s.sim.requests();
    assert!(log.iter().filter(|r| r.service == Service::Storage).count() >= 6);
    assert!(log.iter().any(|r| r.retry_after_secs == Some(1)));
}

#[tokio::test]
async fn sas_tokens_and_bearer_tokens_are_checked() {
    let s = S::start(past()).await;
    let base = s.sim.endpoint(Service::Storage);
    let name = s.sim.storage_blob_names(CONTAINER_ACTIVITY)[0].clone();
    let list = format!("{base}/{CONTAINER_ACTIVITY}?restype=container&comp=list");
    let blob = format!("{base}/{CONTAINER_ACTIVITY}/{name}");
    let hour = now_ms() + 3_600_000;
    let sas = |perms: &str, expiry: i64| s.sim.storage_sas(perms, expiry);
    let plain = |url: String| answer(s.http.get(url));

    let rl = sas("rl", hour);
    assert!(
        rl.contains("sp=rl") && rl.contains("ss=b") && rl.contains("srt=co") && rl.contains("sig="),
        "{rl}"
    );
    assert_eq!(plain(format!("{list}&{rl}")).await.status, 200);
    assert_eq!(plain(format!("{blob}?{rl}")).await.status, 200);

    let r = plain(format!("{list}&{}", sas("r", hour))).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "AuthorizationPermissionMismatch".to_owned())
    );
    let r = plain(format!("{blob}?{}", sas("l", hour))).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "AuthorizationPermissionMismatch".to_owned())
    );
    let r = plain(format!("{list}&{}", sas("rl", now_ms() - 60_000))).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "AuthenticationFailed".to_owned())
    );
    assert!(r.text().contains("<AuthenticationErrorDetail>Signature not valid in the specified time frame: Start [] - Expiry ["));
    let forged = rl.replace("sp=rl", "sp=rwdl");
    let r = plain(format!("{list}&{forged}")).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "AuthenticationFailed".to_owned())
    );
    assert!(r.text().contains("Signature did not match"));
    let r = plain(list.clone()).await;
    assert_eq!((r.status, r.code()), (404, "ResourceNotFound".to_owned()));

    let listed_with = |token: &str| {
        let req = s.http.get(&list).bearer_auth(token);
        answer(req.header("x-ms-version", "2025-11-05"))
    };
    let r = answer(s.http.get(&list).bearer_auth(&s.token)).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "MissingRequiredHeader".to_owned())
    );
    let graph = token(
        &s.sim,
        &s.http,
        &format!("{}/.default", s.sim.endpoint(Service::Graph)),
    )
    .await;
    let r = listed_with(&graph).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "InvalidAuthenticationInfo".to_owned())
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("resource_id=https://storage.azure.com"));
    let own = token(&s.sim, &s.http, &format!("{base}/.default")).await;
    let r = listed_with(&own).await;
    assert_eq!(r.status, 200, "a token for the account's own endpoint");
    let refused = token_for(&s.sim, &s.http, "https://storage.example/.default").await;
    assert_eq!(refused.status(), 400);

    // A managed identity's token for the storage resource.
    let imds = answer(
        s.http
            .get(format!(
                "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F",
                s.sim.endpoint(Service::Imds)
            ))
            .header("metadata", "true"),
    )
    .await;
    let imds: serde_json::Value = serde_json::from_slice(&imds.body).unwrap();
    let mi = imds["access_token"].as_str().unwrap();
    let r = listed_with(mi).await;
    assert_eq!(
        r.status, 200,
        "a managed identity's token for https://storage.azure.com/"
    );
}
