//! Tokens stay with their API: against the simulator's hostile modes, ARM `nextLink`s, Graph
//! `@odata.nextLink`s, Office 365 `NextPageUri`s and `contentUri`s that point at a foreign
//! listener, downgrade HTTPS to `http://`, or come back as 307s are refused before a token is
//! attached (named and counted), and token requests redirected with a 307 post nothing there.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{AssertionAlgorithm, Secret};
use crate::simulator::{HostileLinks, Service, SimConfig, SimTls, Simulator};
use crate::sources::azure::assertion::{tests::mint, ClientCertificate};
use crate::sources::azure::auth::{AuthMethod, Credentials, TokenCache};
use crate::sources::azure::client::AzureHttp;
use crate::sources::azure::http::{self, ApiClient, FetchError, Retry};

fn secret(sim: &Simulator) -> Credentials {
    Credentials {
        tenant_id: sim.config().tenant_id.clone(),
        client_id: sim.config().client_id.clone(),
        method: AuthMethod::Secret(Secret::new(sim.config().client_secret.clone())),
    }
}

/// A client of `service`'s API as `poll::connect` makes one.
fn client(sim: &Simulator, service: Service, http: AzureHttp) -> ApiClient {
    ApiClient {
        http,
        retry: Retry {
            max_attempts: 2,
            ..Retry::default()
        },
        ..ApiClient::for_simulator(sim, service, "links")
    }
}

fn config() -> SimConfig {
    let mut cfg = SimConfig::around_now(Duration::from_secs(120), Duration::ZERO, 6);
    cfg.page_size = 2;
    cfg.records_per_blob = 1;
    cfg.blobs_per_page = 1;
    cfg
}

/// The first page of each API's listing, and how its continuation is found: ARM (activity
/// log), Graph (directory audits), Office 365 (content listing; its first blob).
struct Lists {
    arm: ApiClient,
    graph: ApiClient,
    office: ApiClient,
    arm_first: String,
    graph_first: String,
    office_first: String,
}

async fn lists(sim: &Simulator, http: AzureHttp) -> Lists {
    let now = crate::simulator::now_ms();
    let arm_first = format!(
        "{}/subscriptions/{}/providers/microsoft.insights/eventtypes/management/values?api-version=2015-04-01&$filter=eventTimestamp ge '{}' and eventTimestamp le '{}'",
        sim.endpoint(Service::Management),
        sim.config().subscriptions[0],
        crate::sources::poll::filter_time(now - 600_000),
        crate::sources::poll::filter_time(now),
    );
    let graph_first = format!(
        "{}/v1.0/auditLogs/directoryAudits?$top=2",
        sim.endpoint(Service::Graph)
    );
    let tenant = &sim.config().tenant_id;
    let feed = format!(
        "{}/api/v1.0/{tenant}/activity/feed",
        sim.endpoint(Service::Office)
    );
    let office = client(sim, Service::Office, http.clone());
    let start = format!(
        "{feed}/subscriptions/start?contentType=Audit.General&PublisherIdentifier={tenant}"
    );
    office
        .request::<serde_json::Value>(reqwest::Method::POST, &start, &CancellationToken::new())
        .await
        .unwrap();
    Lists {
        arm: client(sim, Service::Management, http.clone()),
        graph: client(sim, Service::Graph, http),
        office,
        arm_first,
        graph_first,
        office_first: format!(
            "{feed}/subscriptions/content?contentType=Audit.General&PublisherIdentifier={tenant}"
        ),
    }
}

impl Lists {
    /// `(name, client, the link its first page gives)` for the four kinds of link.
    async fn links(&self) -> Vec<(&'static str, &ApiClient, String)> {
        let cancel = CancellationToken::new();
        let arm = self.arm.get(&self.arm_first, &cancel).await.unwrap();
        let graph = self.graph.get(&self.graph_first, &cancel).await.unwrap();
        let office = self.office.get(&self.office_first, &cancel).await.unwrap();
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        let next_page = office.headers["NextPageUri"].to_str().unwrap().to_owned();
        vec![
            ("ARM nextLink", &self.arm, text(&arm.body["nextLink"])),
            (
                "Graph @odata.nextLink",
                &self.graph,
                text(&graph.body["@odata.nextLink"]),
            ),
            ("Office 365 NextPageUri", &self.office, next_page),
            (
                "Office 365 contentUri",
                &self.office,
                format!(
                    "{}?PublisherIdentifier={}",
                    text(&office.body[0]["contentUri"]),
                    self.office.creds.tenant_id
                ),
            ),
        ]
    }
}

fn refused(sim: &Simulator, name: &str, got: Result<http::Page, FetchError>, host: &str) {
    let error = got.map(|_| ()).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, FetchError::Refused { link, .. } if link == host),
        "{name}: {text}"
    );
    assert!(text.contains(host), "{name}: {text}");
    for token in sim.issued_tokens() {
        assert!(!text.contains(&token), "{name}: the error shows a token");
    }
}

#[tokio::test]
async fn links_to_another_host_or_port_are_refused_counted_and_nothing_reaches_it() {
    let sim = Simulator::start(config()).await.unwrap();
    let lists = lists(&sim, crate::sources::azure::client::client()).await;
    let foreign = format!("http://{}", sim.foreign_address());
    sim.set_hostile_links(Some(HostileLinks::Foreign));
    let cancel = CancellationToken::new();
    let links = lists.links().await;
    for (name, client, link) in &links {
        assert!(link.starts_with(&foreign), "{name}: {link}");
        let before = client.stats.links_refused.load(Ordering::Relaxed);
        refused(&sim, name, client.get(link, &cancel).await, &foreign);
        assert_eq!(
            client.stats.links_refused.load(Ordering::Relaxed),
            before + 1,
            "{name}: not counted"
        );
    }
    let strays = sim.strays();
    assert!(
        strays.is_empty(),
        "reached the foreign listener: {strays:#?}"
    );

    // The mode off: the same listings page on within the API.
    sim.set_hostile_links(None);
    for (name, client, link) in lists.links().await {
        let api = client.origin.ascii_serialization();
        assert!(link.starts_with(&api), "{name}: {link}");
        client
            .get(&link, &cancel)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn an_api_answer_redirecting_elsewhere_is_not_followed() {
    let sim = Simulator::start(config()).await.unwrap();
    let lists = lists(&sim, crate::sources::azure::client::client()).await;
    let foreign = format!("http://{}", sim.foreign_address());
    sim.set_hostile_links(Some(HostileLinks::Redirect));
    let cancel = CancellationToken::new();
    for (name, client, first) in [
        ("ARM", &lists.arm, &lists.arm_first),
        ("Graph", &lists.graph, &lists.graph_first),
        ("Office 365", &lists.office, &lists.office_first),
    ] {
        refused(&sim, name, client.get(first, &cancel).await, &foreign);
        assert_eq!(client.stats.links_refused.load(Ordering::Relaxed), 1);
    }
    let strays = sim.strays();
    assert!(
        strays.is_empty(),
        "reached the foreign listener: {strays:#?}"
    );
    let redirects = sim.requests().iter().filter(|r| r.status == 307).count();
    assert_eq!(redirects, 3, "each answer was one 307, not retried");
}

/// A CA and a certificate for 127.0.0.1 signed by it: the simulator's [`SimTls`], and a
/// client that trusts the CA (otherwise as `http::client`: no redirects).
fn tls() -> (SimTls, AzureHttp) {
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
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sim_tls = SimTls {
        cert_chain: vec![cert.der().to_vec()],
        key: key.serialize_der(),
    };
    (sim_tls, AzureHttp::direct(client))
}

#[tokio::test]
async fn a_downgrade_to_http_is_refused_and_no_token_crosses_in_clear_text() {
    let (sim_tls, http) = tls();
    let mut cfg = config();
    cfg.tls = Some(sim_tls);
    let sim = Simulator::start(cfg).await.unwrap();
    assert!(sim
        .endpoint(Service::Graph)
        .starts_with("https://127.0.0.1:"));
    let lists = lists(&sim, http).await;
    sim.set_hostile_links(Some(HostileLinks::Downgrade));
    let cancel = CancellationToken::new();
    for (name, client, link) in lists.links().await {
        let api = client.origin.ascii_serialization();
        let http_api = api.replace("https://", "http://");
        assert!(link.starts_with(&http_api), "{name}: {link}");
        let before = client.stats.links_refused.load(Ordering::Relaxed);
        let error = client.get(&link, &cancel).await.map(|_| ()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&http_api), "{name}: {text}");
        assert!(text.contains("downgrade to http://"), "{name}: {text}");
        assert_eq!(
            client.stats.links_refused.load(Ordering::Relaxed),
            before + 1,
            "{name}: not counted"
        );
    }
    let strays = sim.strays();
    assert!(strays.is_empty(), "sent in clear text: {strays:#?}");
}

/// A token for `scope` with `creds` while token requests are redirected: the error names the
/// target, and the foreign listener got nothing.
async fn redirected_token(sim: &Simulator, creds: &Credentials, login: &str) -> String {
    sim.set_redirect_token_requests(true);
    let scope = format!("{}/.default", sim.endpoint(Service::Management));
    let error = TokenCache::default()
        .token(
            &crate::sources::azure::client::client(),
            login,
            creds,
            &scope,
        )
        .await
        .unwrap_err()
        .to_string();
    let foreign = format!("http://{}", sim.foreign_address());
    assert!(
        error.contains(&format!("redirect to {foreign} not followed")),
        "{error}"
    );
    let strays = sim.strays();
    assert!(
        strays.is_empty(),
        "reached the foreign listener: {strays:#?}"
    );
    // The same request succeeds once the endpoint stops redirecting.
    sim.set_redirect_token_requests(false);
    TokenCache::default()
        .token(
            &crate::sources::azure::client::client(),
            login,
            creds,
            &scope,
        )
        .await
        .unwrap();
    error
}

#[tokio::test]
async fn token_requests_follow_no_redirect_with_a_secret_an_assertion_or_imds() {
    let dir = tempfile::tempdir().unwrap();
    let (path, der) = mint(dir.path(), "app.pem");
    let mut cfg = config();
    cfg.client_certificate = Some(der);
    let sim = Simulator::start(cfg).await.unwrap();
    let login = sim.endpoint(Service::Login);

    let error = redirected_token(&sim, &secret(&sim), &login).await;
    assert!(error.contains("check login_endpoint"), "{error}");
    assert!(!error.contains(&sim.config().client_secret), "{error}");

    let cert = Credentials {
        method: AuthMethod::Certificate(Arc::new(
            ClientCertificate::load(&path, None, AssertionAlgorithm::Ps256).unwrap(),
        )),
        ..secret(&sim)
    };
    redirected_token(&sim, &cert, &login).await;

    let imds = Credentials {
        method: AuthMethod::ManagedIdentity {
            imds: sim.endpoint(Service::Imds),
            client_id: None,
        },
        ..secret(&sim)
    };
    let error = redirected_token(&sim, &imds, &login).await;
    assert!(error.contains("check imds_endpoint"), "{error}");
    let redirects = sim
        .requests()
        .iter()
        .filter(|r| r.status == 307 && matches!(r.service, Service::Login | Service::Imds))
        .count();
    assert_eq!(redirects, 3);
}
