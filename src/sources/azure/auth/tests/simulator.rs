//! Certificate and managed-identity tokens against the simulator, which validates assertions
//! like Entra (claims, signature with the registered certificate's key, thumbprint) and serves
//! IMDS; refused credentials come back as errors that say what to fix and show no secret.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{AssertionAlgorithm, Secret};
use crate::simulator::Service;
use crate::simulator::{SimConfig, Simulator};
use crate::sources::azure::assertion::{tests::mint, ClientCertificate};
use crate::sources::azure::auth::{AuthMethod, Credentials, TokenCache};
use crate::sources::azure::http::{ApiClient, Retry};

async fn sim_with_cert(der: Vec<u8>) -> Simulator {
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 5);
    cfg.client_certificate = Some(der);
    Simulator::start(cfg).await.unwrap()
}

fn cert_creds(sim: &Simulator, path: &std::path::Path, alg: AssertionAlgorithm) -> Credentials {
    Credentials {
        tenant_id: sim.config().tenant_id.clone(),
        client_id: sim.config().client_id.clone(),
        method: AuthMethod::Certificate(Arc::new(
            ClientCertificate::load(path, None, alg).unwrap(),
        )),
    }
}

/// An activity-log GET with `creds`: the token must be accepted by the API too.
async fn list_activity(sim: &Simulator, creds: Credentials) -> Result<(), String> {
    let management = sim.endpoint(Service::Management);
    let client = ApiClient {
        creds,
        retry: Retry {
            max_attempts: 2,
            ..Retry::default()
        },
        ..ApiClient::for_simulator(sim, Service::Management, "test")
    };
    let url = format!(
        "{management}/subscriptions/{}/providers/microsoft.insights/eventtypes/management/values?api-version=2015-04-01&$filter=eventTimestamp ge '{}' and eventTimestamp le '{}'",
        sim.config().subscriptions[0],
        crate::sources::poll::filter_time(crate::simulator::now_ms() - 120_000),
        crate::sources::poll::filter_time(crate::simulator::now_ms()),
    );
    let page = client
        .get(&url, &CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    assert!(page.body["value"].is_array());
    Ok(())
}

#[tokio::test]
async fn certificate_assertions_ps256_and_rs256_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, der) = mint(dir.path(), "app.pem");
    let sim = sim_with_cert(der).await;
    for alg in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
        list_activity(&sim, cert_creds(&sim, &path, alg))
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
    assert_eq!(sim.tokens_issued(), 2);
}

#[tokio::test]
async fn a_certificate_not_registered_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, registered) = mint(dir.path(), "registered.pem");
    let (other, _) = mint(dir.path(), "other.pem");
    let sim = sim_with_cert(registered).await;
    let err = list_activity(&sim, cert_creds(&sim, &other, AssertionAlgorithm::Ps256))
        .await
        .unwrap_err();
    assert!(err.contains("AADSTS700027"), "{err}");
    assert!(err.contains("check certificate_file"), "{err}");
    assert_eq!(sim.tokens_issued(), 0);
}

/// Posts a hand-made assertion to the simulator's token endpoint; returns (status, body).
async fn post_assertion(sim: &Simulator, assertion: &str) -> (u16, serde_json::Value) {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        sim.endpoint(Service::Login),
        sim.config().tenant_id
    );
    let scope = format!("{}/.default", sim.endpoint(Service::Graph));
    let form = [
        ("client_id", sim.config().client_id.as_str()),
        ("grant_type", "client_credentials"),
        ("scope", scope.as_str()),
        (
            "client_assertion_type",
            crate::sources::azure::auth::JWT_BEARER,
        ),
        ("client_assertion", assertion),
    ];
    let r = crate::sources::azure::client::client()
        .post(&url)
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn wrong_key_expired_and_wrong_audience_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, der) = mint(dir.path(), "app.pem");
    let (other, _) = mint(dir.path(), "other.pem");
    let sim = sim_with_cert(der).await;
    let cert = ClientCertificate::load(&path, None, AssertionAlgorithm::Ps256).unwrap();
    let endpoint = format!(
        "{}/{}/oauth2/v2.0/token",
        sim.endpoint(Service::Login),
        sim.config().tenant_id
    );
    let client = sim.config().client_id.clone();
    let now = crate::simulator::now_ms() / 1000;
    let code = |body: &serde_json::Value| body["error_codes"][0].as_u64().unwrap_or(0);

    // The control: a good assertion is accepted.
    let good = cert.assertion(&client, &endpoint, now).unwrap();
    let (status, body) = post_assertion(&sim, good.expose()).await;
    assert_eq!(status, 200, "{body}");

    // Signed by another key while naming the registered certificate's thumbprint.
    let forged = {
        let text = std::fs::read_to_string(&other).unwrap();
        let key_pem = &text[text.find("-----BEGIN PRIVATE KEY").unwrap()..];
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(cert.thumbprint().to_owned());
        let claims = serde_json::json!({"aud": endpoint, "iss": client, "sub": client,
            "jti": "4f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11", "nbf": now, "iat": now, "exp": now + 600});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let (status, body) = post_assertion(&sim, &forged).await;
    assert_eq!((status, code(&body)), (401, 700027), "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("signature validation"));

    // Expired an hour ago.
    let expired = cert.assertion(&client, &endpoint, now - 4_200).unwrap();
    let (status, body) = post_assertion(&sim, expired.expose()).await;
    assert_eq!((status, code(&body)), (401, 700024), "{body}");

    // For another tenant's token endpoint.
    let elsewhere = endpoint.replace(
        &sim.config().tenant_id,
        "00000000-0000-0000-0000-000000000000",
    );
    let wrong_aud = cert.assertion(&client, &elsewhere, now).unwrap();
    let (status, body) = post_assertion(&sim, wrong_aud.expose()).await;
    assert_eq!((status, code(&body)), (401, 50012), "{body}");

    // Another application's id.
    let other_app = cert.assertion("someone-else", &endpoint, now).unwrap();
    let (_, body) = post_assertion(&sim, other_app.expose()).await;
    assert_eq!(code(&body), 700021, "{body}");

    // Tampered claims break the signature.
    let mut parts: Vec<String> = good.expose().split('.').map(str::to_owned).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    claims["exp"] = serde_json::json!(now + 86_400);
    parts[1] = b64.encode(serde_json::to_vec(&claims).unwrap());
    let (_, body) = post_assertion(&sim, &parts.join(".")).await;
    assert_eq!(code(&body), 700027, "{body}");

    // Through the client, an audience the endpoint does not recognise as itself (the login
    // host spelled differently) gives the user a hint about the endpoint.
    let aliased = sim
        .endpoint(Service::Login)
        .replace("127.0.0.1", "localhost");
    let err = TokenCache::default()
        .token(
            &crate::sources::azure::client::client(),
            &aliased,
            &cert_creds(&sim, &path, AssertionAlgorithm::Ps256),
            &format!("{}/.default", sim.endpoint(Service::Graph)),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS50012"), "{err}");
    assert!(err.contains("login_endpoint"), "{err}");
    assert_eq!(sim.tokens_issued(), 1, "only the control got a token");
}

fn msi_creds(sim: &Simulator, client_id: Option<&str>) -> Credentials {
    Credentials {
        tenant_id: sim.config().tenant_id.clone(),
        client_id: String::new(),
        method: AuthMethod::ManagedIdentity {
            imds: sim.endpoint(Service::Imds),
            client_id: client_id.map(str::to_owned),
        },
    }
}

#[tokio::test]
async fn managed_identity_tokens_come_from_imds() {
    let sim = Simulator::start(SimConfig::around_now(
        Duration::from_secs(60),
        Duration::ZERO,
        5,
    ))
    .await
    .unwrap();
    // System-assigned and user-assigned identities both reach the API.
    list_activity(&sim, msi_creds(&sim, None)).await.unwrap();
    let user = sim.config().user_assigned_client_id.clone();
    list_activity(&sim, msi_creds(&sim, Some(&user)))
        .await
        .unwrap();
    let imds: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.service == Service::Imds)
        .collect();
    assert_eq!(imds.len(), 2);
    for r in &imds {
        assert_eq!(r.method, "GET");
        assert!(r.path_and_query.contains("api-version=2018-02-01"), "{r:?}");
        let resource = format!(
            "resource={}",
            url::form_urlencoded::byte_serialize(
                format!("{}/", sim.endpoint(Service::Management)).as_bytes()
            )
            .collect::<String>()
        );
        assert!(r.path_and_query.contains(&resource), "{r:?}");
    }
    assert!(imds[1]
        .path_and_query
        .contains(&format!("client_id={user}")));
    // An identity the VM does not have is explained.
    let err = list_activity(
        &sim,
        msi_creds(&sim, Some("0e0e0e0e-0000-4000-8000-000000000000")),
    )
    .await
    .unwrap_err();
    assert!(err.contains("Identity not found"), "{err}");
    assert!(err.contains("user-assigned identity"), "{err}");
    // IMDS refuses a request without `Metadata: true` (server-side request forgery guard).
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}/",
        sim.endpoint(Service::Imds),
        sim.endpoint(Service::Graph)
    );
    let r = crate::sources::azure::client::client()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_request_102");
}

#[test]
fn debug_output_of_credentials_and_tokens_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = mint(dir.path(), "app.pem");
    let cert = ClientCertificate::load(&path, None, AssertionAlgorithm::Ps256).unwrap();
    let assertion = cert
        .assertion("app", "https://login/t/oauth2/v2.0/token", 1)
        .unwrap();
    let key_text = std::fs::read_to_string(&path).unwrap();
    let key_line = key_text
        .lines()
        .skip_while(|l| !l.contains("BEGIN PRIVATE KEY"))
        .nth(1)
        .unwrap()
        .to_owned();
    let secret = Credentials {
        tenant_id: "t".into(),
        client_id: "c".into(),
        method: AuthMethod::Secret(Secret::new("very-secret-value")),
    };
    let certificate = Credentials {
        method: AuthMethod::Certificate(Arc::new(cert)),
        ..secret.clone()
    };
    let token = crate::sources::azure::token::token_from_answer(
        "https://login/t/oauth2/v2.0/token".into(),
        "scope",
        &serde_json::json!({"access_token": "eyJ0eXAiOiJKV1QiLCJub25jZSI6IkFRQUJBQUFBQUFB", "expires_in": "3599"}),
        tokio::time::Instant::now(),
    )
    .unwrap();
    let shown = format!("{secret:?} {certificate:?} {assertion:?} {assertion} {token:?}");
    assert!(!shown.contains("eyJ0eXAiOiJKV1Qi"), "{shown}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
    assert!(!shown.contains(&key_line), "{shown}");
    assert!(!shown.contains(&assertion.expose()[..30]), "{shown}");
    assert!(shown.contains("[redacted]"));
}
