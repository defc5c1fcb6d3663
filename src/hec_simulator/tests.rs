//! The simulator against a plain reqwest client: each documented behaviour and each fault.

use super::*;
use serde_json::json;
use std::io::Write as _;

const TOKEN: &str = "11111111-2222-4333-8444-555555555555";
const NO_ACK: &str = "66666666-7777-4888-9999-aaaaaaaaaaaa";
const OFF: &str = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff";
const LIMITED: &str = "12121212-3434-4545-8656-787878787878";
const CHANNEL: &str = "0f9d8b42-5b55-4c36-9d7e-3f7c2b8a1e00";

fn config() -> HecConfig {
    HecConfig {
        tokens: vec![
            HecToken::with_ack(TOKEN),
            HecToken::without_ack(NO_ACK),
            HecToken {
                disabled: true,
                ..HecToken::with_ack(OFF)
            },
            HecToken {
                indexes: vec!["security".to_owned()],
                ..HecToken::without_ack(LIMITED)
            },
        ],
        ack_delay: Duration::from_millis(300),
        ..HecConfig::default()
    }
}

/// `n` events `{"id":"<prefix>-<i>"}` concatenated, with envelope metadata.
fn batch(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({
                "time": 1_764_000_000.125 + i as f64,
                "host": "siemcast-01",
                "source": "activity",
                "sourcetype": "mscs:azure:audit",
                "index": "security",
                "event": {"id": format!("{prefix}-{i}"), "text": "line1\nline2"},
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("")
}

/// A plain reqwest client (the crate's reqwest has no default crypto provider: ring is given).
fn client(roots: rustls::RootCertStore) -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn post(
    url: &str,
    path: &str,
    auth: Option<&str>,
    channel: Option<&str>,
    body: impl Into<reqwest::Body>,
    gzip: bool,
) -> Answer {
    let mut req = client(rustls::RootCertStore::empty()).post(format!("{url}{path}"));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(c) = channel {
        req = req.header("X-Splunk-Request-Channel", c);
    }
    if gzip {
        req = req.header("Content-Encoding", "gzip");
    }
    let resp = req.body(body).send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        retry_after: resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: resp.json().await.unwrap(),
    }
}

fn splunk(token: &str) -> String {
    format!("Splunk {token}")
}

async fn send(sim: &HecSimulator, token: &str, body: &str) -> Answer {
    post(
        &sim.http_url(),
        "/services/collector/event",
        Some(&splunk(token)),
        Some(CHANNEL),
        body.to_owned(),
        false,
    )
    .await
}

async fn ack(sim: &HecSimulator, ids: &[u64]) -> Value {
    let a = post(
        &sim.http_url(),
        "/services/collector/ack",
        Some(&splunk(TOKEN)),
        Some(CHANNEL),
        json!({ "acks": ids }).to_string(),
        false,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

fn assert_answer(a: &Answer, status: u16, body: Value) {
    assert_eq!((a.status, &a.body), (status, &body));
}

#[tokio::test]
async fn tokens_are_checked_with_splunks_codes_and_texts() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let url = sim.http_url();
    let path = "/services/collector/event";
    let body = || batch("a", 1);
    let a = post(&url, path, None, Some(CHANNEL), body(), false).await;
    assert_answer(&a, 401, json!({"text": "Token is required", "code": 2}));
    let a = post(
        &url,
        path,
        Some(&format!("Bearer {TOKEN}")),
        Some(CHANNEL),
        body(),
        false,
    )
    .await;
    assert_answer(&a, 401, json!({"text": "Invalid authorization", "code": 3}));
    let a = post(&url, path, Some(TOKEN), Some(CHANNEL), body(), false).await;
    assert_answer(&a, 401, json!({"text": "Invalid authorization", "code": 3}));
    // Basic authentication: any user, the token as password.
    use base64::Engine as _;
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let a = post(
        &url,
        path,
        Some(&basic(&format!("x:{NO_ACK}"))),
        None,
        body(),
        false,
    )
    .await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0}));
    let a = post(&url, path, Some(&basic(NO_ACK)), None, body(), false).await;
    assert_answer(&a, 401, json!({"text": "Invalid authorization", "code": 3}));
    let a = post(&url, path, Some(&basic("x:nope")), None, body(), false).await;
    assert_answer(&a, 403, json!({"text": "Invalid token", "code": 4}));
    let a = post(
        &url,
        path,
        Some("Splunk nope"),
        Some(CHANNEL),
        body(),
        false,
    )
    .await;
    assert_answer(&a, 403, json!({"text": "Invalid token", "code": 4}));
    let a = post(&url, path, Some(&splunk(OFF)), Some(CHANNEL), body(), false).await;
    assert_answer(&a, 403, json!({"text": "Token disabled", "code": 1}));
    let a = post(
        &url,
        &format!("{path}?token={TOKEN}"),
        None,
        Some(CHANNEL),
        body(),
        false,
    )
    .await;
    assert_answer(
        &a,
        400,
        json!({"text": "Query string authorization is not enabled", "code": 16}),
    );
    assert_eq!(sim.indexed().len(), 1, "only the basic-authenticated batch");
    // A token disabled and enabled again, then revoked.
    sim.set_token_disabled(TOKEN, true);
    assert_answer(
        &send(&sim, TOKEN, &body()).await,
        403,
        json!({"text": "Token disabled", "code": 1}),
    );
    sim.set_token_disabled(TOKEN, false);
    assert_eq!(send(&sim, TOKEN, &body()).await.status, 200);
    sim.revoke_token(TOKEN);
    assert_answer(
        &send(&sim, TOKEN, &body()).await,
        403,
        json!({"text": "Invalid token", "code": 4}),
    );
}

#[tokio::test]
async fn channels_are_required_with_acknowledgement_and_must_be_guids() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let url = sim.http_url();
    let path = "/services/collector/event";
    let auth = splunk(TOKEN);
    let a = post(&url, path, Some(&auth), None, batch("a", 1), false).await;
    assert_answer(
        &a,
        400,
        json!({"text": "Data channel is missing", "code": 10}),
    );
    let a = post(
        &url,
        path,
        Some(&auth),
        Some("not-a-guid"),
        batch("a", 1),
        false,
    )
    .await;
    assert_answer(&a, 400, json!({"text": "Invalid data channel", "code": 11}));
    // The channel as a query parameter; each channel counts its own ackIds from 0.
    let q = format!("{path}?channel={CHANNEL}");
    let a = post(&url, &q, Some(&auth), None, batch("a", 1), false).await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0, "ackId": 0}));
    let a = post(&url, path, Some(&auth), Some(CHANNEL), batch("b", 1), false).await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0, "ackId": 1}));
    let other = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    let a = post(&url, path, Some(&auth), Some(other), batch("c", 1), false).await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0, "ackId": 0}));
    // Without acknowledgement no channel is needed and no ackId given.
    let a = post(
        &url,
        path,
        Some(&splunk(NO_ACK)),
        None,
        batch("d", 1),
        false,
    )
    .await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0}));
}

#[tokio::test]
async fn acks_turn_true_only_after_the_delay_and_are_answered_true_once() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let a = send(&sim, TOKEN, &batch("a", 3)).await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0, "ackId": 0}));
    let a = send(&sim, TOKEN, &batch("b", 2)).await;
    assert_eq!(a.body["ackId"], 1);
    assert_eq!(
        ack(&sim, &[0, 1, 7]).await,
        json!({"acks": {"0": false, "1": false, "7": false}})
    );
    assert!(sim.indexed().is_empty(), "not indexed before the delay");
    assert_eq!(sim.pending_acks(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ack(&sim, &[0, 1]).await,
        json!({"acks": {"0": true, "1": true}})
    );
    assert_eq!(
        ack(&sim, &[0]).await,
        json!({"acks": {"0": false}}),
        "an ackId answered true is forgotten"
    );
    let indexed = sim.indexed();
    assert_eq!(indexed.len(), 5);
    assert_eq!(indexed[0].ack_id, Some(0));
    assert_eq!(indexed[0].channel.as_deref(), Some(CHANNEL));
    assert_eq!(
        indexed[0].event.sourcetype.as_deref(),
        Some("mscs:azure:audit")
    );
    assert_eq!(indexed[0].event.time, Some(1_764_000_000.125));
    assert_eq!(indexed[0].event.event["text"], "line1\nline2");
    let counts = sim.count_by("id");
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|&n| n == 1));
    assert_eq!(sim.stats().acks_confirmed, 2);
    assert_eq!(sim.pending_acks(), 0);
}

#[tokio::test]
async fn the_ack_endpoint_refuses_tokens_without_ack_and_requests_without_channel() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let url = sim.http_url();
    let path = "/services/collector/ack";
    let body = || json!({"acks": [0]}).to_string();
    let a = post(
        &url,
        path,
        Some(&splunk(NO_ACK)),
        Some(CHANNEL),
        body(),
        false,
    )
    .await;
    assert_answer(&a, 400, json!({"text": "ACK is disabled", "code": 14}));
    let a = post(&url, path, Some(&splunk(TOKEN)), None, body(), false).await;
    assert_answer(
        &a,
        400,
        json!({"text": "Data channel is missing", "code": 10}),
    );
    let a = post(&url, path, None, Some(CHANNEL), body(), false).await;
    assert_answer(&a, 401, json!({"text": "Token is required", "code": 2}));
    let a = post(
        &url,
        path,
        Some(&splunk(TOKEN)),
        Some(CHANNEL),
        "{\"acks\":\"x\"}",
        false,
    )
    .await;
    assert_answer(&a, 400, json!({"text": "Invalid data format", "code": 6}));
}

#[tokio::test]
async fn gzip_bodies_and_tokens_without_ack_index_at_once() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch("z", 50).as_bytes()).unwrap();
    let a = post(
        &sim.http_url(),
        "/services/collector/event",
        Some(&splunk(NO_ACK)),
        None,
        gz.finish().unwrap(),
        true,
    )
    .await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0}));
    let indexed = sim.indexed();
    assert_eq!(indexed.len(), 50);
    assert!(indexed.iter().all(|e| e.gzip && e.ack_id.is_none()));
    assert_eq!(indexed[49].event.event["id"], "z-49");
    // A body that says gzip but is not.
    let a = post(
        &sim.http_url(),
        "/services/collector/event",
        Some(&splunk(NO_ACK)),
        None,
        batch("y", 1),
        true,
    )
    .await;
    assert_answer(&a, 400, json!({"text": "Invalid data format", "code": 6}));
}

#[tokio::test]
async fn bad_events_are_named_by_invalid_event_number_and_nothing_of_the_batch_is_indexed() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let good = batch("g", 2);
    let a = send(&sim, NO_ACK, &format!("{good}{{\"time\":1}}")).await;
    assert_answer(
        &a,
        400,
        json!({"text": "Event field is required", "code": 12, "invalid-event-number": 2}),
    );
    let a = send(&sim, NO_ACK, &format!("{good}{{\"event\":\"\"}}")).await;
    assert_answer(
        &a,
        400,
        json!({"text": "Event field cannot be blank", "code": 13, "invalid-event-number": 2}),
    );
    let a = send(&sim, NO_ACK, &format!("{good}{{\"event\":")).await;
    assert_answer(
        &a,
        400,
        json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 2}),
    );
    let a = send(
        &sim,
        LIMITED,
        &format!("{good}{{\"event\":1,\"index\":\"main\"}}"),
    )
    .await;
    assert_answer(
        &a,
        400,
        json!({"text": "Incorrect index", "code": 7, "invalid-event-number": 2}),
    );
    let a = send(&sim, NO_ACK, "  ").await;
    assert_answer(&a, 400, json!({"text": "No data", "code": 5}));
    // The fault: event "g-1" is refused every time it is sent.
    sim.faults(|f| f.invalid_markers = vec!["\"g-1\"".to_owned()]);
    for _ in 0..2 {
        let a = send(&sim, TOKEN, &batch("g", 3)).await;
        assert_answer(
            &a,
            400,
            json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1}),
        );
    }
    assert!(sim.indexed().is_empty());
    assert_eq!(sim.stats().by_code.get(&6), Some(&3));
}

#[tokio::test]
async fn a_lost_batch_is_acknowledged_with_an_ackid_that_never_turns_true() {
    let sim = HecSimulator::start(config()).await.unwrap();
    sim.faults(|f| f.lose_next = 1);
    let lost = send(&sim, TOKEN, &batch("lost", 2)).await;
    assert_answer(
        &lost,
        200,
        json!({"text": "Success", "code": 0, "ackId": 0}),
    );
    let kept = send(&sim, TOKEN, &batch("kept", 2)).await;
    assert_eq!(kept.body["ackId"], 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        ack(&sim, &[0, 1]).await,
        json!({"acks": {"0": false, "1": true}})
    );
    assert_eq!(ack(&sim, &[0]).await, json!({"acks": {"0": false}}));
    let ids: Vec<String> = sim.count_by("id").into_keys().collect();
    assert_eq!(ids, ["kept-0", "kept-1"]);
    let stats = sim.stats();
    assert_eq!((stats.batches_accepted, stats.batches_lost), (2, 1));
    assert_eq!(sim.pending_acks(), 1, "the lost ackId stays pending");
    // Every n-th batch.
    sim.faults(|f| f.lose_every = Some(2));
    let third = send(&sim, TOKEN, &batch("third", 1)).await;
    let fourth = send(&sim, TOKEN, &batch("fourth", 1)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (t, f) = (
        third.body["ackId"].as_u64().unwrap(),
        fourth.body["ackId"].as_u64().unwrap(),
    );
    assert_eq!(
        ack(&sim, &[t, f]).await,
        json!({"acks": {t.to_string(): true, f.to_string(): false}})
    );
}

#[tokio::test]
async fn busy_storms_and_throttling_answer_503_and_429_then_recover() {
    let sim = HecSimulator::start(config()).await.unwrap();
    sim.faults(|f| {
        f.busy_next = 3;
        f.throttle_next = 2;
        f.retry_after_secs = 7;
    });
    for _ in 0..2 {
        let a = send(&sim, TOKEN, &batch("t", 1)).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.retry_after.as_deref(), Some("7"));
    }
    for _ in 0..3 {
        let a = send(&sim, TOKEN, &batch("b", 1)).await;
        assert_answer(&a, 503, json!({"text": "Server is busy", "code": 9}));
    }
    let a = send(&sim, TOKEN, &batch("ok", 1)).await;
    assert_answer(&a, 200, json!({"text": "Success", "code": 0, "ackId": 0}));
    let stats = sim.stats();
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.by_code.get(&9), Some(&5));
    assert_eq!(stats.event_requests, 6);
}

#[tokio::test]
async fn the_token_is_revoked_after_the_configured_batch() {
    let sim = HecSimulator::start(config()).await.unwrap();
    sim.faults(|f| f.revoke_after_batches = Some(2));
    assert_eq!(send(&sim, TOKEN, &batch("a", 1)).await.status, 200);
    assert_eq!(send(&sim, TOKEN, &batch("b", 1)).await.status, 200);
    assert_answer(
        &send(&sim, TOKEN, &batch("c", 1)).await,
        403,
        json!({"text": "Invalid token", "code": 4}),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        sim.indexed().len(),
        2,
        "what was accepted before is indexed"
    );
}

#[tokio::test]
async fn health_aliases_and_unknown_paths() {
    let sim = HecSimulator::start(config()).await.unwrap();
    let url = sim.http_url();
    let health = client(rustls::RootCertStore::empty())
        .get(format!("{url}/services/collector/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"text": "HEC is healthy", "code": 17})
    );
    for path in ["/services/collector", "/services/collector/event/1.0"] {
        let a = post(
            &url,
            path,
            Some(&splunk(NO_ACK)),
            None,
            batch("x", 1),
            false,
        )
        .await;
        assert_answer(&a, 200, json!({"text": "Success", "code": 0}));
    }
    let a = post(
        &url,
        "/services/collector/raw2",
        Some(&splunk(NO_ACK)),
        None,
        "x",
        false,
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn https_serves_the_same_api() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params
        .signed_by(&key, &rcgen::Issuer::new(ca, &ca_key))
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let client = client(roots);
    let sim = HecSimulator::start(HecConfig {
        tls: Some(SimTls {
            cert_chain: vec![cert.der().to_vec()],
            key: key.serialize_der(),
        }),
        ..config()
    })
    .await
    .unwrap();
    let url = sim.https_url().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"));
    let resp = client
        .post(format!("{url}/services/collector/event"))
        .header("Authorization", splunk(TOKEN))
        .header("X-Splunk-Request-Channel", CHANNEL)
        .body(batch("s", 4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"text": "Success", "code": 0, "ackId": 0})
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sim.indexed().len(), 4);
}

/// Many gzip batches on two channels (ackIds counted per channel): every id indexed once.
#[tokio::test]
async fn ten_thousand_events_in_gzip_batches_are_counted_exactly() {
    let sim = HecSimulator::start(HecConfig {
        ack_delay: Duration::from_millis(50),
        ..config()
    })
    .await
    .unwrap();
    let other = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    for b in 0..20 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(batch(&format!("b{b:02}"), 500).as_bytes())
            .unwrap();
        let channel = if b % 2 == 0 { CHANNEL } else { other };
        let a = post(
            &sim.http_url(),
            "/services/collector/event",
            Some(&splunk(TOKEN)),
            Some(channel),
            gz.finish().unwrap(),
            true,
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["ackId"], b / 2);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = sim.count_by("id");
    assert_eq!(counts.len(), 10_000);
    assert!(counts.values().all(|&n| n == 1));
    assert_eq!(sim.stats().events_indexed, 10_000);
}

/// The background simulator serves synchronous callers (whole-program tests): a raw HTTP/1.1
/// request over a plain TCP socket.
#[test]
fn the_background_simulator_serves_synchronous_callers() {
    use std::io::{Read as _, Write as _};
    let sim = BackgroundHecSimulator::start(config()).unwrap();
    let addr = sim.http_url().trim_start_matches("http://").to_owned();
    let body = batch("sync", 2);
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /services/collector/event HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Splunk {NO_ACK}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(r#"{"text":"Success","code":0}"#),
        "{answer}"
    );
    assert_eq!(sim.indexed().len(), 2);
}
