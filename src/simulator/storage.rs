//! The simulator's Azure Blob service: one storage account holding the `PT1H.json` blobs of
//! `storage_data.rs`, answering List Blobs (prefix, delimiter, marker paging, maxresults),
//! Get Blob and Get Blob Properties (ranges, `If-Match`, 412, 416) and Get Block List, with
//! XML bodies and errors in the Blob service's shapes. Blobs grow as their records become
//! visible; a blob can be replaced at run time (new ETag, shorter). Requests carry an Entra
//! bearer token (audience `https://storage.azure.com`, `x-ms-version` required) or an account
//! SAS the simulator issued; faults answer 503 `ServerBusy` with `Retry-After` and 500
//! `OperationTimedOut` on the simulator's shared counters. See `docs/storage-archives.md`.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::data::{self, h};
use super::storage_data::{Blob, BlobKind};
use super::wire::{
    query_pairs, Query, FLOW_HEAD, FLOW_TAIL, RETRY_AFTER, STORAGE_BLOB_CONTENT_LENGTH,
    STORAGE_BLOB_TYPE, STORAGE_COMMITTED_BLOCKS, STORAGE_CREATION_TIME, STORAGE_ERROR_CODE,
    STORAGE_RANGE, STORAGE_REQUEST_ID, STORAGE_VERSION, STORAGE_VERSION_HEADER,
};
use super::{route, Service, Shared};

mod auth;
#[cfg(test)]
mod tests;

pub(super) use auth::issue_sas;

/// The largest `maxresults` List Blobs honours ("Listing Blob storage resources").
const MAX_RESULTS: usize = 5000;

/// Run-time changes to the account: blobs replaced since start.
#[derive(Debug, Default)]
pub(super) struct Live {
    replaced: HashMap<usize, Replacement>,
}

/// A blob rewritten at `at_ms`: it keeps `kept` (indices of its records) and then grows again
/// with the records written after `at_ms`.
#[derive(Debug, Clone)]
struct Replacement {
    generation: u64,
    at_ms: i64,
    kept: Vec<usize>,
}

/// A blob as a reader sees it at one instant.
#[derive(Debug, Clone)]
pub(super) struct View {
    pub(super) bytes: Vec<u8>,
    /// Committed blocks (id, size): one per appended record, or head, records and tail.
    pub(super) blocks: Vec<(String, usize)>,
    pub(super) etag: String,
    pub(super) created_ms: i64,
    pub(super) modified_ms: i64,
    /// Indices of the records the view holds whole.
    pub(super) records: Vec<usize>,
}

/// Indices of the records of `blob` written by `now`.
fn visible(blob: &Blob, rep: Option<&Replacement>, now: i64) -> Vec<usize> {
    let after = rep.map_or(i64::MIN, |r| r.at_ms);
    let mut out = rep.map(|r| r.kept.clone()).unwrap_or_default();
    out.extend((0..blob.len()).filter(|&i| {
        let at = blob.visible_ms(i);
        at > after && at <= now
    }));
    out
}

/// Whether blob `index` exists at `now` (what [`view`] tells, without building the bytes).
fn exists(shared: &Shared, index: usize, now: i64) -> bool {
    let blob = &shared.storage[index];
    shared.lock().storage.replaced.contains_key(&index)
        || (!blob.is_empty() && blob.visible_ms(0) <= now)
}

fn block_id(seed: u64, name: &str, generation: u64, k: u64) -> String {
    let key = crc32c::crc32c(name.as_bytes()) as u64;
    let a = h(seed, &[700, key, generation, k]);
    STANDARD.encode(format!("{a:016x}{:016x}", data::mix(a)))
}

/// What blob `index` looks like at `now`, if it exists yet. With `partial`, an append blob
/// also shows the first half of the record being written next (a line without its newline).
pub(super) fn view(shared: &Shared, index: usize, now: i64, partial: bool) -> Option<View> {
    let blob = &shared.storage[index];
    let rep = shared.lock().storage.replaced.get(&index).cloned();
    let records = visible(blob, rep.as_ref(), now);
    let created_ms = match (&rep, records.first()) {
        (Some(r), _) => r.at_ms,
        (None, Some(&i)) => blob.visible_ms(i),
        (None, None) => return None,
    };
    let generation = rep.as_ref().map_or(0, |r| r.generation);
    let seed = shared.cfg.seed;
    let mut bytes = Vec::new();
    let mut blocks = Vec::new();
    let mut push = |bytes: &mut Vec<u8>, text: &[u8], k: u64| {
        bytes.extend_from_slice(text);
        blocks.push((block_id(seed, &blob.name, generation, k), text.len()));
    };
    match blob.kind {
        BlobKind::Append => {
            for &i in &records {
                let line = format!("{}\n", served_text(shared, blob, i));
                push(&mut bytes, line.as_bytes(), i as u64 + 1);
            }
            let next = (0..blob.len()).find(|&j| blob.visible_ms(j) > now);
            if let (true, Some(j)) = (partial, next) {
                let text = blob.text(j);
                push(&mut bytes, &text.as_bytes()[..text.len() / 2], j as u64 + 1);
            }
        }
        BlobKind::Block => {
            push(&mut bytes, FLOW_HEAD.as_bytes(), 0);
            for (n, &i) in records.iter().enumerate() {
                let comma = if n == 0 { "" } else { "," };
                let block = format!("{comma}{}", blob.text(i));
                push(&mut bytes, block.as_bytes(), i as u64 + 1);
            }
            push(&mut bytes, FLOW_TAIL.as_bytes(), u64::MAX);
        }
    }
    let modified_ms = records
        .iter()
        .map(|&i| blob.visible_ms(i))
        .chain([created_ms])
        .max()
        .unwrap_or(created_ms);
    let tag = h(
        seed,
        &[
            701,
            crc32c::crc32c(blob.name.as_bytes()) as u64,
            generation,
            bytes.len() as u64,
        ],
    );
    Some(View {
        bytes,
        blocks,
        etag: format!("\"0x8D{:013X}\"", tag >> 12),
        created_ms,
        modified_ms,
        records,
    })
}

/// Replaces blob `index` at `now`: it keeps the first half of the records it shows, under a
/// new ETag and creation time, and grows again from there.
pub(super) fn replace(shared: &Shared, index: usize, now: i64) {
    let Some(before) = view(shared, index, now, false) else {
        return;
    };
    let mut st = shared.lock();
    let generation = st
        .storage
        .replaced
        .get(&index)
        .map_or(1, |r| r.generation + 1);
    let kept = before.records[..before.records.len() / 2].to_vec();
    st.storage.replaced.insert(
        index,
        Replacement {
            generation,
            at_ms: now,
            kept,
        },
    );
}

/// Every record text blob `index` will hold in the end (replacements drop some); none for an
/// old hour's blob (`storage_old_hours`: gigabytes, generated when read).
pub(super) fn final_records(shared: &Shared, index: usize) -> Vec<String> {
    let blob = &shared.storage[index];
    if blob.old.is_some() {
        return Vec::new();
    }
    let rep = shared.lock().storage.replaced.get(&index).cloned();
    visible(blob, rep.as_ref(), i64::MAX)
        .into_iter()
        .map(|i| served_text(shared, blob, i).into_owned())
        .collect()
}

/// Record `i` of `blob` as written: broken when `storage_broken_lines_every` picks it.
fn served_text<'a>(shared: &Shared, blob: &'a Blob, i: usize) -> std::borrow::Cow<'a, str> {
    let text = blob.text(i);
    let every = shared.cfg.faults.storage_broken_lines_every;
    match every {
        Some(n) if blob.kind == BlobKind::Append && (i as u32 + 1) % n.max(1) == 0 => {
            std::borrow::Cow::Owned(format!("not json: {text}"))
        }
        _ => text,
    }
}

/// `Sun, 06 Dec 2026 17:00:00 GMT`.
fn http_date(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// An error of the Blob service: XML `<Error>` with code and message (request id and time
/// appended, as the service writes them), `x-ms-error-code`, `x-ms-request-id`.
fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    rid: &str,
    detail: Option<&str>,
) -> Response {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}\nRequestId:{rid}\nTime:{}</Message>",
        xml_escape(message),
        data::azure_time(super::now_ms())
    );
    if let Some(d) = detail {
        let _ = write!(
            body,
            "<AuthenticationErrorDetail>{}</AuthenticationErrorDetail>",
            xml_escape(d)
        );
    }
    body.push_str("</Error>");
    let mut r = (status, body).into_response();
    set(&mut r, "content-type", "application/xml");
    set(&mut r, STORAGE_ERROR_CODE, code);
    set(&mut r, STORAGE_REQUEST_ID, rid);
    set(&mut r, STORAGE_VERSION_HEADER, STORAGE_VERSION);
    r
}

/// The operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    List,
    GetBlob,
    Properties,
    BlockList,
}

/// Answers one request to the storage account (`/{container}?restype=container&comp=list`,
/// `/{container}/{blob}`, `/{container}/{blob}?comp=blocklist`).
pub(super) async fn serve(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: i64,
) -> Response {
    let n = route::count_request(shared, Service::Storage);
    let rid = super::wire::request_id(now, n);
    let q = Query(query_pairs(uri.query().unwrap_or("")));
    let path = uri.path().trim_start_matches('/');
    let (container, blob) = path.split_once('/').unwrap_or((path, ""));
    let (container, blob) = (percent_decode(container), percent_decode(blob));
    let op =
        match (blob.is_empty(), method, q.get("restype"), q.get("comp")) {
            (true, &Method::GET, Some("container"), Some("list")) => Op::List,
            (false, &Method::GET, _, None) => Op::GetBlob,
            (false, &Method::HEAD, _, None) => Op::Properties,
            (false, &Method::GET, _, Some("blocklist")) => Op::BlockList,
            (_, m, _, _) if m != Method::GET && m != Method::HEAD => {
                return auth::mismatch("AuthorizationPermissionMismatch", "permission", &rid)
            }
            _ => return error(
                StatusCode::BAD_REQUEST,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
                &rid,
                None,
            ),
        };
    if let Some(r) = auth::authorize(shared, headers, &q, op, now, &rid) {
        return r;
    }
    let faults = &shared.cfg.faults;
    if faults.throttles(n) {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
            &rid,
            None,
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(faults.retry_after_secs));
        return r;
    }
    if faults.unavailable(n) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "OperationTimedOut",
            "The operation could not be completed within the permitted time.",
            &rid,
            None,
        );
    }
    if let Some(d) = faults.slow_page {
        tokio::time::sleep(d).await;
    }
    if !shared.storage.iter().any(|b| b.container == container) {
        return error(
            StatusCode::NOT_FOUND,
            "ContainerNotFound",
            "The specified container does not exist.",
            &rid,
            None,
        );
    }
    let mut r = match op {
        Op::List => list(shared, &container, &q, now, &rid),
        _ => {
            let index = shared
                .storage
                .iter()
                .position(|b| b.container == container && b.name == blob);
            let found = index.and_then(|i| {
                view(shared, i, now, faults.storage_partial_last_line).map(|v| (i, v))
            });
            let Some((index, v)) = found else {
                return error(
                    StatusCode::NOT_FOUND,
                    "BlobNotFound",
                    "The specified blob does not exist.",
                    &rid,
                    None,
                );
            };
            let kind = shared.storage[index].kind;
            let if_match = headers.get("if-match").and_then(|v| v.to_str().ok());
            if if_match.is_some_and(|m| m != "*" && m != v.etag) {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "ConditionNotMet",
                    "The condition specified using HTTP conditional header(s) is not met.",
                    &rid,
                    None,
                );
            }
            match op {
                Op::BlockList => block_list(kind, &v, &q, &rid),
                _ => get_blob(kind, v, headers, op == Op::Properties, &rid),
            }
        }
    };
    set(&mut r, STORAGE_REQUEST_ID, &rid);
    set(&mut r, STORAGE_VERSION_HEADER, STORAGE_VERSION);
    r
}

/// The entries of a listing: blob names and, with a delimiter, the prefixes standing for the
/// blobs below them; sorted, each prefix once.
fn entries<'a>(
    names: impl Iterator<Item = &'a str>,
    prefix: &str,
    delimiter: &str,
) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for name in names.filter(|n| n.starts_with(prefix)) {
        let rest = &name[prefix.len()..];
        let entry = match rest.find(delimiter).filter(|_| !delimiter.is_empty()) {
            Some(p) => (format!("{prefix}{}", &rest[..p + delimiter.len()]), true),
            None => (name.to_owned(), false),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

fn list(shared: &Shared, container: &str, q: &Query, now: i64, rid: &str) -> Response {
    let bad = |code: &str, message: &str| error(StatusCode::BAD_REQUEST, code, message, rid, None);
    let max = match q.get("maxresults").map(str::parse::<i64>) {
        None => MAX_RESULTS,
        Some(Ok(m)) if m > 0 => (m as usize).min(MAX_RESULTS),
        Some(Ok(_)) => {
            return bad(
                "OutOfRangeQueryParameterValue",
                "One of the query parameters specified in the request URI is outside the permissible range.",
            )
        }
        Some(Err(_)) => {
            return bad(
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
            )
        }
    };
    let from = match q.get("marker").filter(|m| !m.is_empty()) {
        None => String::new(),
        Some(m) => match m
            .strip_prefix("2!")
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(name) => name,
            None => return bad(
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
            ),
        },
    };
    let prefix = q.get("prefix").unwrap_or("");
    let delimiter = q.get("delimiter").unwrap_or("");
    let partial = shared.cfg.faults.storage_partial_last_line;
    // Blobs below the prefix that exist now; only those listed on this page are built.
    let listed: Vec<usize> = (0..shared.storage.len())
        .filter(|&i| {
            let b = &shared.storage[i];
            b.container == container && b.name.starts_with(prefix) && exists(shared, i, now)
        })
        .collect();
    let names = listed.iter().map(|&i| shared.storage[i].name.as_str());
    let all = entries(names, prefix, delimiter);
    let mut page = all.iter().filter(|(name, _)| *name >= from).peekable();
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"{}/\" ContainerName=\"{}\">",
        shared.base[&Service::Storage],
        xml_escape(container)
    );
    for (key, value) in [
        ("Prefix", q.get("prefix")),
        ("Marker", q.get("marker")),
        ("MaxResults", q.get("maxresults")),
        ("Delimiter", q.get("delimiter")),
    ] {
        if let Some(v) = value {
            let _ = write!(body, "<{key}>{}</{key}>", xml_escape(v));
        }
    }
    body.push_str("<Blobs>");
    let metadata = q
        .get("include")
        .is_some_and(|i| i.split(',').any(|x| x == "metadata"));
    for (name, is_prefix) in page.by_ref().take(max) {
        if *is_prefix {
            let _ = write!(
                body,
                "<BlobPrefix><Name>{}</Name></BlobPrefix>",
                xml_escape(name)
            );
            continue;
        }
        let found = listed
            .iter()
            .find(|&&i| shared.storage[i].name == *name)
            .and_then(|&i| view(shared, i, now, partial).map(|v| (i, v)));
        let Some((i, v)) = found else {
            continue;
        };
        let kind = shared.storage[i].kind;
        let _ = write!(
            body,
            "<Blob><Name>{}</Name><Properties><Creation-Time>{}</Creation-Time><Last-Modified>{}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language /><Content-CRC64 /><Content-MD5 /><Cache-Control /><Content-Disposition /><BlobType>{}</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>{}<OrMetadata /></Blob>",
            xml_escape(name),
            http_date(v.created_ms),
            http_date(v.modified_ms),
            v.etag.trim_matches('"'),
            v.bytes.len(),
            kind.wire_name(),
            if metadata { "<Metadata />" } else { "" },
        );
    }
    body.push_str("</Blobs>");
    match page.next() {
        Some((next, _)) => {
            let _ = write!(
                body,
                "<NextMarker>2!{}</NextMarker>",
                URL_SAFE_NO_PAD.encode(next)
            );
        }
        None => body.push_str("<NextMarker />"),
    }
    body.push_str("</EnumerationResults>");
    let mut r = (StatusCode::OK, body).into_response();
    set(&mut r, "content-type", "application/xml");
    r
}

/// `bytes=N-` or `bytes=N-M` (inclusive), from `x-ms-range` or else `Range`.
fn range(headers: &HeaderMap) -> Option<Result<(u64, Option<u64>), ()>> {
    let text = headers
        .get(STORAGE_RANGE)
        .or_else(|| headers.get("range"))?
        .to_str()
        .ok()?;
    let parsed = text.strip_prefix("bytes=").and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let a = a.trim().parse().ok()?;
        let b = match b.trim() {
            "" => None,
            b => Some(b.parse().ok()?),
        };
        (b.is_none_or(|b| b >= a)).then_some((a, b))
    });
    Some(parsed.ok_or(()))
}

fn get_blob(kind: BlobKind, v: View, headers: &HeaderMap, head: bool, rid: &str) -> Response {
    let len = v.bytes.len() as u64;
    let (status, start, end) = match range(headers).filter(|_| !head) {
        None => (StatusCode::OK, 0, len),
        Some(Ok((a, b))) if a < len => {
            let end = b.map_or(len, |b| (b + 1).min(len));
            (StatusCode::PARTIAL_CONTENT, a, end)
        }
        Some(_) => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
                rid,
                None,
            );
            set(&mut r, "content-range", &format!("bytes */{len}"));
            return r;
        }
    };
    let body = if head {
        Vec::new()
    } else {
        v.bytes[start as usize..end as usize].to_vec()
    };
    let mut r = (status, body).into_response();
    set(&mut r, "content-type", "application/octet-stream");
    set(&mut r, "etag", &v.etag);
    set(&mut r, "last-modified", &http_date(v.modified_ms));
    set(&mut r, STORAGE_CREATION_TIME, &http_date(v.created_ms));
    set(&mut r, STORAGE_BLOB_TYPE, kind.wire_name());
    set(&mut r, "accept-ranges", "bytes");
    if kind == BlobKind::Append {
        set(
            &mut r,
            STORAGE_COMMITTED_BLOCKS,
            &v.blocks.len().to_string(),
        );
    }
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut r,
            "content-range",
            &format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    if head {
        set(&mut r, "content-length", &len.to_string());
    }
    r
}

fn block_list(kind: BlobKind, v: &View, q: &Query, rid: &str) -> Response {
    if kind != BlobKind::Block {
        return error(
            StatusCode::CONFLICT,
            "InvalidBlobType",
            "The blob type is invalid for this operation.",
            rid,
            None,
        );
    }
    let which = q.get("blocklisttype").unwrap_or("committed");
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    if which == "committed" || which == "all" {
        body.push_str("<CommittedBlocks>");
        for (id, size) in &v.blocks {
            let _ = write!(body, "<Block><Name>{id}</Name><Size>{size}</Size></Block>");
        }
        body.push_str("</CommittedBlocks>");
    }
    if which == "uncommitted" || which == "all" {
        body.push_str("<UncommittedBlocks />");
    }
    body.push_str("</BlockList>");
    let mut r = (StatusCode::OK, body).into_response();
    set(&mut r, "content-type", "application/xml");
    set(&mut r, "etag", &v.etag);
    set(&mut r, "last-modified", &http_date(v.modified_ms));
    set(
        &mut r,
        STORAGE_BLOB_CONTENT_LENGTH,
        &v.bytes.len().to_string(),
    );
    r
}
