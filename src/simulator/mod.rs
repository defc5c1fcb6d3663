//! A loopback simulator of the Microsoft APIs the pollers read: Entra v2.0 tokens, ARM's activity
//! log and Defender for Cloud alerts, Graph `alerts_v2`, incidents, directory audits, sign-ins
//! and Identity Protection risk (`risk.rs`; 403 for an unlicensed tenant), the Office 365
//! Management Activity API, and an Azure Storage account of archived logs (`storage.rs`), one
//! port per host (HTTPS with [`SimTls`]). Seeded data;
//! faults (429 / 403 AF429, 503, token expiry, late events and blobs, duplicates, malformed and
//! slow pages and blobs, alerts changing status) and hostile answers (oversized records, gzip
//! bombs, absurd `Retry-After` and `expires_in`, links out of the API, redirected token
//! requests); a request log, and a log of requests that reached where they should not have.

mod bulk;
pub mod data;
mod defender;
mod hostile;
mod identity;
pub mod inventory;
mod lists;
pub mod office;
mod office_data;
mod risk;
mod route;
mod storage;
pub mod storage_data;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use data::Timeline;
pub(crate) use hostile::{acceptor as tls_acceptor, TlsPort};
pub use hostile::{HostileLinks, SimTls, Stray, StrayRequest};
pub use inventory::SubscriptionState;

/// Which switchable faults the simulator injects. Counters are per service (ARM, Graph), over
/// that service's API requests (token requests are not counted).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every n-th request is answered 429 with `Retry-After: retry_after_secs`.
    pub throttle_every: Option<u64>,
    pub retry_after_secs: u64,
    /// Every n-th request is answered 503 (every other one of them with a `Retry-After`).
    pub unavailable_every: Option<u64>,
    /// Every n-th request finds every issued token revoked (401 mid-paging, as when a token
    /// expires earlier than its client believed).
    pub revoke_tokens_every: Option<u64>,
    /// Pages after the first repeat the previous page's last record.
    pub duplicate_across_pages: bool,
    /// The first this-many continuation pages are served once as truncated JSON.
    pub malformed_pages: u32,
    /// Every page is delayed this long.
    pub slow_page: Option<Duration>,
    /// The first this-many Office 365 content blobs are served once as truncated JSON.
    pub malformed_blobs: u32,
    /// ARM and Graph list records for which [`Faults::breaks`] holds are served, every time,
    /// with a string holding a lone surrogate escape (`"\ud800"`): well-formed JSON text that
    /// no JSON parser may accept, as from an upstream bug. Only that record is unreadable.
    pub broken_records_every: Option<u32>,
    /// ARM and Graph list records and Office 365 audit records for which [`Faults::bloats`]
    /// holds are served, every time, with a string member `padding` of `bloated_record_bytes`
    /// bytes: one record too big for any client in an otherwise normal page (or, every 1, pages
    /// of big records).
    pub bloated_records_every: Option<u32>,
    pub bloated_record_bytes: usize,
    /// The first this-many continuation pages of ARM and Graph lists are served once as a gzip
    /// body (`Content-Encoding: gzip`) that inflates to `gzip_bomb_bytes`: the page itself,
    /// padded with whitespace before its closing brace (a decompression bomb; a few MB on the
    /// wire for GBs inflated).
    pub gzip_bombs: u32,
    pub gzip_bomb_bytes: u64,
    /// Token answers (Entra and IMDS) state this `expires_in`, in seconds, instead of the
    /// token's real lifetime (`token_lifetime`, after which the APIs refuse it).
    pub token_expires_in: Option<u64>,
    /// Continuation links (ARM `nextLink`, Graph `@odata.nextLink`, Office 365 `NextPageUri`)
    /// and Office 365 `contentUri`s leave the API, as in a hostile or compromised answer; see
    /// [`HostileLinks`]. Switched at run time with [`Simulator::set_hostile_links`].
    pub hostile_links: Option<HostileLinks>,
    /// The token endpoint and IMDS answer every token request with a 307 to the foreign
    /// listener. Switched at run time with [`Simulator::set_redirect_token_requests`].
    pub redirect_token_requests: bool,
    /// Append blobs of the storage account also show the first half of the record being
    /// written next: their last line has no newline yet.
    pub storage_partial_last_line: bool,
    /// Every n-th record of each append blob (by its place in the blob) is written broken:
    /// `not json: ` before its text, as from a writer's bug. Not among `storage_records`.
    pub storage_broken_lines_every: Option<u32>,
}

impl Faults {
    /// Whether the `n`-th API request of a service is throttled (`throttle_every`).
    pub(crate) fn throttles(&self, n: u64) -> bool {
        self.throttle_every.is_some_and(|k| k > 0 && n % k == 0)
    }

    /// Whether the `n`-th API request of a service fails as unavailable (`unavailable_every`).
    pub(crate) fn unavailable(&self, n: u64) -> bool {
        self.unavailable_every.is_some_and(|k| k > 0 && n % k == 0)
    }

    /// Whether the record with this id is served broken (`broken_records_every`).
    pub fn breaks(&self, id: &str) -> bool {
        self.broken_records_every
            .is_some_and(|n| crc32c::crc32c(id.as_bytes()) % n.max(1) == 0)
    }

    /// Whether the record with this id is served padded (`bloated_records_every`); picked
    /// independently of [`Faults::breaks`].
    pub fn bloats(&self, id: &str) -> bool {
        self.bloated_records_every
            .is_some_and(|n| crc32c::crc32c_append(0x5eed, id.as_bytes()) % n.max(1) == 0)
    }

    /// Pads the records of `page` that [`Faults::bloats`] picks (by `eventDataId`, `id` or `Id`).
    pub(crate) fn bloat(&self, page: &mut [serde_json::Value]) {
        if self.bloated_records_every.is_none() {
            return;
        }
        for record in page {
            let id = ["eventDataId", "id", "Id"]
                .iter()
                .find_map(|k| record.get(*k).and_then(serde_json::Value::as_str))
                .map(str::to_owned);
            if let (Some(id), Some(obj)) = (id, record.as_object_mut()) {
                if self.bloats(&id) {
                    let padding = "x".repeat(self.bloated_record_bytes);
                    obj.insert("padding".into(), serde_json::Value::from(padding));
                }
            }
        }
    }
}

/// What the simulator serves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued tokens; requests with an older token get 401.
    pub token_lifetime: Duration,
    /// DER of the certificate registered for the app: client assertions signed by its key are
    /// accepted (PS256 or RS256, `x5t#S256` or `x5t` naming it).
    pub client_certificate: Option<Vec<u8>>,
    /// Client id of the VM's user-assigned managed identity (IMDS always has a system-assigned
    /// one).
    pub user_assigned_client_id: String,
    pub subscriptions: Vec<String>,
    /// Activity-log records per subscription.
    pub activity: Timeline,
    /// Graph alerts (each has one to three versions).
    pub alerts: Timeline,
    /// Entra directory audit records.
    pub audits: Timeline,
    /// Entra sign-ins.
    pub signins: Timeline,
    /// Defender for Cloud alerts per subscription (each has one to three versions).
    pub defender: Timeline,
    /// Office 365 audit records per content type (every type the API knows has data).
    pub office: Timeline,
    /// Records per scope of the storage account: activity log per subscription, Key Vault
    /// audit events, NSG flow logs (one record a minute in Azure).
    pub storage: Timeline,
    /// The storage account's name (SAS tokens are signed over it).
    pub storage_account: String,
    /// Old hours of Key Vault audit events before the timeline, generated when read and never
    /// held: a large archive for scale tests.
    pub storage_old_hours: Option<storage_data::OldHours>,
    /// Audit records per Office 365 content blob.
    pub records_per_blob: usize,
    /// Blobs per Office 365 content listing page (more follow through `NextPageUri`).
    pub blobs_per_page: usize,
    /// Records per page when the request does not say (`$top`).
    pub page_size: usize,
    pub faults: Faults,
    /// Serve the APIs and the token endpoint over HTTPS with this certificate.
    pub tls: Option<SimTls>,
    /// Sign-ins are generated when a page is served instead of kept (for tenants of millions;
    /// see `bulk.rs`): [`Simulator::signin_records`] is then empty, [`Simulator::signin_ids`]
    /// still gives every id.
    pub bulk: bool,
}

impl SimConfig {
    /// `subscriptions = ["…", …]`: the source key naming every subscription served.
    pub fn subscriptions_line(&self) -> String {
        let quoted: Vec<String> = self
            .subscriptions
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        format!("subscriptions = [{}]", quoted.join(", "))
    }

    /// A small tenant whose records start `back` before now and keep arriving for `ahead`.
    pub fn around_now(back: Duration, ahead: Duration, per_scope: usize) -> SimConfig {
        let now = now_ms();
        let timeline = Timeline {
            count: per_scope,
            start_ms: now - back.as_millis() as i64,
            span_ms: (back + ahead).as_millis() as i64,
            max_latency_ms: 1_500,
            late_every: None,
            late_by_ms: 0,
        };
        SimConfig {
            seed: 1,
            tenant_id: "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e".into(),
            client_id: "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b".into(),
            client_secret: "sim~secret.0123456789abcdefghij".into(),
            token_lifetime: Duration::from_secs(3599),
            client_certificate: None,
            user_assigned_client_id: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d".into(),
            subscriptions: vec!["5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11".into()],
            activity: timeline.clone(),
            alerts: timeline.clone(),
            audits: timeline.clone(),
            signins: timeline.clone(),
            defender: timeline.clone(),
            storage: timeline.clone(),
            storage_account: "contosologarchive".into(),
            storage_old_hours: None,
            office: timeline,
            records_per_blob: 10,
            blobs_per_page: 4,
            page_size: 200,
            faults: Faults::default(),
            tls: None,
            bulk: false,
        }
    }
}

/// The simulated services, each on its own listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Service {
    Login,
    Management,
    Graph,
    /// The Azure instance metadata service (managed-identity tokens).
    Imds,
    Office,
    /// The Blob service of one storage account (archived logs).
    Storage,
}

/// One request the simulator answered.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub service: Service,
    /// Arrival, ms since the Unix epoch.
    pub at_ms: i64,
    pub method: String,
    pub path_and_query: String,
    pub status: u16,
    /// The `Retry-After` the answer carried, in seconds.
    pub retry_after_secs: Option<u64>,
    /// The request came before a `Retry-After` this service had given had passed.
    pub early: bool,
}

impl RequestRecord {
    /// The path (without the query), `%XX` escapes decoded: a blob's name as it was asked for.
    pub fn decoded_path(&self) -> String {
        storage::percent_decode(self.path_and_query.split('?').next().unwrap_or(""))
    }

    /// The decoded value of query parameter `key`.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.path_and_query.split_once('?')?.1;
        wire::query_pairs(query)
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

#[derive(Debug)]
struct Token {
    audience: Service,
    expires_ms: i64,
    generation: u64,
}

#[derive(Debug, Default)]
struct Mutable {
    tokens: HashMap<String, Token>,
    generation: u64,
    issued: u64,
    counters: HashMap<Service, u64>,
    blocked_until_ms: HashMap<Service, i64>,
    /// Bumped by [`Simulator::forget_retry_after`]: a request that started before
    /// (the killed client's, answered after the kill) does not block the next client.
    retry_epoch: u64,
    malformed_left: u32,
    malformed_blobs_left: u32,
    gzip_bombs_left: u32,
    /// Office 365 content types whose subscription was started.
    started: std::collections::HashSet<String>,
    log: Vec<RequestRecord>,
    /// The app's client secret has expired: token requests with it are refused.
    secret_expired: bool,
    hostile_links: Option<HostileLinks>,
    redirect_tokens: bool,
    /// Requests that reached the foreign listener, or an HTTPS port in clear text.
    strays: Vec<StrayRequest>,
    /// The tenant lacks the Defender XDR and Entra ID P2 licences: incidents and Identity
    /// Protection lists answer 403.
    unlicensed: bool,
    /// Blobs of the storage account replaced at run time.
    storage: storage::Live,
    /// The subscription list and management groups, changed at run time.
    inventory: inventory::Inventory,
}

#[derive(Debug)]
struct Shared {
    cfg: SimConfig,
    activity: Vec<Vec<data::Item>>,
    alerts: Vec<data::Item>,
    audits: Vec<data::Item>,
    signins: Vec<data::Item>,
    /// Defender XDR incidents and Entra ID Protection records (generated on the alerts'
    /// timeline).
    incidents: Vec<data::Item>,
    risk_detections: Vec<data::Item>,
    sp_risk_detections: Vec<data::Item>,
    risky_users: Vec<data::Item>,
    defender: Vec<Vec<data::Item>>,
    office: Vec<Vec<office::Blob>>,
    /// The storage account's blobs, sorted by container and name.
    storage: Vec<storage_data::Blob>,
    base: HashMap<Service, String>,
    /// The foreign listener of the hostile modes.
    foreign: SocketAddr,
    state: Mutex<Mutable>,
    bulk: bulk::Cache,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mutable> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One tenant's data, generated from `cfg`, served at `base`.
    fn new(cfg: SimConfig, base: HashMap<Service, String>, foreign: SocketAddr) -> Shared {
        let activity = cfg
            .subscriptions
            .iter()
            .enumerate()
            .map(|(i, s)| data::activity(cfg.seed, &cfg.tenant_id, i, s, &cfg.activity))
            .collect();
        let alerts = data::alerts(cfg.seed, &cfg.tenant_id, &cfg.alerts);
        let audits = data::directory_audits(cfg.seed, &cfg.audits);
        let incidents = risk::incidents(cfg.seed, &cfg.tenant_id, &cfg.alerts);
        let risk_detections = risk::detections(cfg.seed, &cfg.alerts, false);
        let sp_risk_detections = risk::detections(cfg.seed, &cfg.alerts, true);
        let risky_users = risk::risky_users(cfg.seed, &cfg.alerts);
        let signins = if cfg.bulk {
            Vec::new()
        } else {
            data::sign_ins(cfg.seed, &cfg.signins)
        };
        let defender = cfg
            .subscriptions
            .iter()
            .enumerate()
            .map(|(i, s)| defender::alerts(cfg.seed, i, s, &cfg.defender))
            .collect();
        let office = (0..wire::CONTENT_TYPES.len())
            .map(|ct| {
                office::blobs(
                    cfg.seed,
                    &cfg.tenant_id,
                    ct,
                    &cfg.office,
                    cfg.records_per_blob,
                    cfg.faults.duplicate_across_pages,
                )
            })
            .collect();
        let mut storage =
            storage_data::account(cfg.seed, &cfg.tenant_id, &cfg.subscriptions, &cfg.storage);
        if let Some(old) = &cfg.storage_old_hours {
            storage.extend(storage_data::old_hours(cfg.seed, &cfg.subscriptions, old));
            storage.sort_by(|a, b| (a.container, &a.name).cmp(&(b.container, &b.name)));
        }
        Shared {
            state: Mutex::new(Mutable {
                malformed_left: cfg.faults.malformed_pages,
                malformed_blobs_left: cfg.faults.malformed_blobs,
                gzip_bombs_left: cfg.faults.gzip_bombs,
                hostile_links: cfg.faults.hostile_links,
                redirect_tokens: cfg.faults.redirect_token_requests,
                ..Mutable::default()
            }),
            foreign,
            cfg,
            activity,
            alerts,
            audits,
            signins,
            incidents,
            risk_detections,
            sp_risk_detections,
            risky_users,
            defender,
            office,
            storage,
            base,
            bulk: bulk::Cache::default(),
        }
    }
}

/// A running simulator; stops when dropped.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

/// The newest version of each object of `items`, sorted by id.
fn newest(items: &[data::Item]) -> Vec<serde_json::Value> {
    let mut last: HashMap<usize, &data::Item> = HashMap::new();
    for item in items {
        last.insert(item.object, item);
    }
    let mut v: Vec<_> = last.into_values().map(|i| i.body.clone()).collect();
    v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    v
}

/// A token for `service` from the simulator's token endpoint, as a client would get it.
#[cfg(test)]
async fn test_token(sim: &Simulator, http: &reqwest::Client, service: Service) -> String {
    let cfg = sim.config();
    let scope = format!("{}/.default", sim.endpoint(service));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("scope", scope.as_str()),
    ];
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        sim.endpoint(Service::Login),
        cfg.tenant_id
    );
    let body: serde_json::Value = http
        .post(url)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Simulator {
    /// Binds one loopback listener per service and serves until dropped.
    pub async fn start(cfg: SimConfig) -> std::io::Result<Simulator> {
        let mut one = Self::start_tenants(vec![cfg]).await?;
        Ok(one.remove(0))
    }

    /// Serves several tenants on one set of listeners, as Microsoft's hosts serve every
    /// tenant: each has its own data, token authority (`/{tenant}/oauth2/v2.0/token` with its
    /// app and secret), faults and throttling counters, and answers only the tokens it issued
    /// (see `route.rs`). The TLS setting of the first applies to all. One [`Simulator`] per
    /// tenant, in order; they all stop when the first is dropped.
    pub async fn start_tenants(cfgs: Vec<SimConfig>) -> std::io::Result<Vec<Simulator>> {
        let cancel = CancellationToken::new();
        let mut listeners = Vec::new();
        let mut base = HashMap::new();
        let first = cfgs
            .first()
            .ok_or_else(|| std::io::Error::other("no tenant to serve"))?;
        let acceptor = first.tls.as_ref().map(hostile::acceptor).transpose()?;
        for service in [
            Service::Login,
            Service::Management,
            Service::Graph,
            Service::Imds,
            Service::Office,
            Service::Storage,
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            // IMDS is plain HTTP on Azure too.
            let scheme = match acceptor {
                Some(_) if service != Service::Imds => "https",
                _ => "http",
            };
            base.insert(service, format!("{scheme}://{addr}"));
            listeners.push((service, listener));
        }
        let foreign = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let foreign_addr = foreign.local_addr()?;
        let tenants: route::Tenants = cfgs
            .into_iter()
            .map(|cfg| Arc::new(Shared::new(cfg, base.clone(), foreign_addr)))
            .collect();
        let shared = tenants[0].clone();
        for (service, listener) in listeners {
            let app = Router::new()
                .fallback(route::handle)
                .with_state((tenants.clone(), service));
            let stop = cancel.clone();
            match &acceptor {
                Some(tls) if service != Service::Imds => {
                    let port = hostile::TlsPort::new(
                        listener,
                        tls.clone(),
                        Some(hostile::answer_cleartext(shared.clone(), service)),
                        stop.clone(),
                    )?;
                    tokio::spawn(async move {
                        let _ = axum::serve(port, app)
                            .with_graceful_shutdown(async move { stop.cancelled().await })
                            .await;
                    });
                }
                _ => {
                    tokio::spawn(async move {
                        let _ = axum::serve(listener, app)
                            .with_graceful_shutdown(async move { stop.cancelled().await })
                            .await;
                    });
                }
            }
        }
        let app = Router::new()
            .fallback(hostile::foreign)
            .with_state(shared.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(foreign, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(tenants
            .iter()
            .map(|shared| Simulator {
                shared: shared.clone(),
                cancel: cancel.clone(),
            })
            .collect())
    }

    /// `http://127.0.0.1:PORT` of a service (`https://` with [`SimTls`], but for IMDS).
    pub fn endpoint(&self, service: Service) -> String {
        self.shared.base[&service].clone()
    }

    /// `127.0.0.1:PORT` of the foreign listener that hostile links and redirects point at.
    pub fn foreign_address(&self) -> SocketAddr {
        self.shared.foreign
    }

    /// Turns a hostile-links mode on or off (see [`Faults::hostile_links`]).
    pub fn set_hostile_links(&self, mode: Option<HostileLinks>) {
        self.shared.lock().hostile_links = mode;
    }

    /// Takes the tenant's Defender XDR and Entra ID P2 licences away (`true`): incidents and the
    /// Identity Protection lists answer 403 "Your tenant is not licensed for this feature.".
    pub fn set_unlicensed(&self, on: bool) {
        self.shared.lock().unlicensed = on;
    }

    /// Every version of the incidents, risk detections (user, then service principal) and
    /// risky users the simulator serves, in that order.
    pub fn risk_versions(&self) -> [Vec<serde_json::Value>; 4] {
        let s = &self.shared;
        [
            &s.incidents,
            &s.risk_detections,
            &s.sp_risk_detections,
            &s.risky_users,
        ]
        .map(|items| items.iter().map(|i| i.body.clone()).collect())
    }

    /// Redirects token requests (token endpoint and IMDS) to the foreign listener, or stops.
    pub fn set_redirect_token_requests(&self, on: bool) {
        self.shared.lock().redirect_tokens = on;
    }

    /// What `GET /subscriptions` lists from now on: these subscriptions in these states (at
    /// start: every configured one, `Enabled`). The activity log and Defender alerts of any
    /// subscription stay readable whatever the list says.
    pub fn set_subscription_list(&self, list: &[(&str, SubscriptionState)]) {
        self.shared.lock().inventory.set_subscriptions(list);
    }

    /// Management group `group` (created if new) holds these subscriptions from now on. The
    /// tenant root group (named by the tenant id) holds every listed subscription until set.
    pub fn set_management_group(&self, group: &str, subscriptions: &[&str]) {
        self.shared.lock().inventory.set_group(group, subscriptions);
    }

    /// Management group `group` has these child groups (created if new) from now on.
    pub fn set_management_group_children(&self, group: &str, children: &[&str]) {
        self.shared.lock().inventory.set_children(group, children);
    }

    /// Requests that reached the foreign listener, or an HTTPS port in clear text, so far.
    pub fn strays(&self) -> Vec<StrayRequest> {
        self.shared.lock().strays.clone()
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// The `[azure]` section of a siemcast config that reads this simulator: its tenant and
    /// app, `credential` (a line such as `client_secret_file = "secret"`) and every endpoint.
    pub fn azure_section(&self, credential: &str) -> String {
        format!(
            "[azure]\ntenant_id = \"{tenant}\"\nclient_id = \"{client}\"\n{credential}\n\
             login_endpoint = \"{login}\"\nmanagement_endpoint = \"{management}\"\n\
             graph_endpoint = \"{graph}\"\noffice_endpoint = \"{office}\"\n",
            tenant = self.shared.cfg.tenant_id,
            client = self.shared.cfg.client_id,
            login = self.endpoint(Service::Login),
            management = self.endpoint(Service::Management),
            graph = self.endpoint(Service::Graph),
            office = self.endpoint(Service::Office),
        )
    }

    /// An `[azure.tenants.NAME]` section for this tenant of a [`Simulator::start_tenants`]
    /// set: its tenant id and `credential` lines (none: the `[azure]` app registration's);
    /// the endpoints, shared by every tenant, come from `[azure]`.
    pub fn tenant_section(&self, name: &str, credential: &str) -> String {
        format!(
            "[azure.tenants.{name}]\ntenant_id = \"{tenant}\"\n{credential}\n",
            tenant = self.shared.cfg.tenant_id,
        )
    }

    /// Every request answered so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.lock().issued
    }

    /// Every access token issued so far (tests check that none is ever logged).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().tokens.keys().cloned().collect()
    }

    /// Lets the app's client secret expire (`true`) or renews it (`false`). While expired, the
    /// token endpoint answers as Entra does (401 `invalid_client`, AADSTS7000222); tokens
    /// issued before stay valid until their own expiry, as in the real service.
    pub fn set_client_secret_expired(&self, expired: bool) {
        self.shared.lock().secret_expired = expired;
    }

    /// Forgets the `Retry-After`s given so far (a test does this when it kills the client: a
    /// new process cannot know them), so `early` only flags the current client's requests.
    pub fn forget_retry_after(&self) {
        let mut st = self.shared.lock();
        st.blocked_until_ms.clear();
        st.retry_epoch += 1;
    }

    /// Continuation pages served as truncated JSON so far.
    pub fn malformed_pages_served(&self) -> u32 {
        self.shared.cfg.faults.malformed_pages - self.shared.lock().malformed_left
    }

    /// Continuation pages served as gzip bombs so far.
    pub fn gzip_bombs_served(&self) -> u32 {
        self.shared.cfg.faults.gzip_bombs - self.shared.lock().gzip_bombs_left
    }

    /// Office 365 content blobs served as truncated JSON so far.
    pub fn malformed_blobs_served(&self) -> u32 {
        self.shared.cfg.faults.malformed_blobs - self.shared.lock().malformed_blobs_left
    }

    /// Every distinct Office 365 audit record (by `Id`) of the given content types.
    pub fn office_records(&self, content_types: &[&str]) -> Vec<serde_json::Value> {
        let chosen: Vec<Vec<office::Blob>> = wire::CONTENT_TYPES
            .iter()
            .zip(&self.shared.office)
            .filter(|(c, _)| content_types.contains(c))
            .map(|(_, b)| b.clone())
            .collect();
        office::distinct_records(&chosen)
    }

    /// Every version of every Defender for Cloud alert, over all subscriptions.
    pub fn defender_versions(&self) -> Vec<serde_json::Value> {
        self.shared
            .defender
            .iter()
            .flatten()
            .map(|i| i.body.clone())
            .collect()
    }

    /// The newest version of every Defender for Cloud alert: what a poller must deliver.
    pub fn defender_final_alerts(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for sub in &self.shared.defender {
            let mut last: std::collections::BTreeMap<usize, &data::Item> = Default::default();
            for item in sub {
                last.insert(item.object, item);
            }
            out.extend(last.into_values().map(|i| i.body.clone()));
        }
        out
    }

    /// Every activity-log record that will ever be listed, over all subscriptions.
    pub fn activity_records(&self) -> Vec<serde_json::Value> {
        self.shared
            .activity
            .iter()
            .flatten()
            .map(|i| i.body.clone())
            .collect()
    }

    /// Every Entra directory audit record that will ever be listed.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        self.shared.audits.iter().map(|i| i.body.clone()).collect()
    }

    /// Every Entra sign-in that will ever be listed.
    pub fn signin_records(&self) -> Vec<serde_json::Value> {
        self.shared.signins.iter().map(|i| i.body.clone()).collect()
    }

    /// The id of every Entra sign-in that will ever be listed (also in bulk mode).
    pub fn signin_ids(&self) -> Vec<String> {
        let cfg = &self.shared.cfg;
        if cfg.bulk {
            return (0..cfg.signins.count)
                .map(|i| data::sign_in_id(cfg.seed, i))
                .collect();
        }
        let id = |i: &data::Item| i.body["id"].as_str().unwrap_or_default().to_owned();
        self.shared.signins.iter().map(id).collect()
    }

    /// Every version of every alert (an intermediate version may be superseded unseen).
    pub fn alert_versions(&self) -> Vec<serde_json::Value> {
        self.shared.alerts.iter().map(|i| i.body.clone()).collect()
    }

    /// The newest version of every alert: what a poller must deliver in the end.
    pub fn final_alerts(&self) -> Vec<serde_json::Value> {
        newest(&self.shared.alerts)
    }

    /// The newest version of each incident, risk detection (user ones, then service principal
    /// ones) and risky user, each list sorted by id.
    pub fn risk_final_records(&self) -> [Vec<serde_json::Value>; 4] {
        let s = &self.shared;
        [
            &s.incidents,
            &s.risk_detections,
            &s.sp_risk_detections,
            &s.risky_users,
        ]
        .map(|items| newest(items))
    }

    /// Ms since the epoch when the last record of the data becomes visible.
    pub fn last_visible_ms(&self) -> i64 {
        let cfg = &self.shared.cfg;
        let bulk_signins = (0..cfg.signins.count).filter(|_| cfg.bulk);
        self.shared
            .activity
            .iter()
            .flatten()
            .chain(&self.shared.alerts)
            .chain(&self.shared.audits)
            .chain(&self.shared.signins)
            .chain(self.shared.defender.iter().flatten())
            .map(|i| i.visible_ms)
            .chain(self.shared.office.iter().flatten().map(|b| b.visible_ms))
            .chain(
                self.shared
                    .storage
                    .iter()
                    .filter_map(|b| b.len().checked_sub(1).map(|i| b.visible_ms(i))),
            )
            .chain(bulk_signins.map(|i| data::sign_in_times(cfg.seed, &cfg.signins, i).1))
            .max()
            .unwrap_or(0)
    }

    /// The name of the simulated storage account.
    pub fn storage_account(&self) -> &str {
        &self.shared.cfg.storage_account
    }

    /// Every blob name the storage account will ever list in `container`, sorted.
    pub fn storage_blob_names(&self, container: &str) -> Vec<String> {
        self.shared
            .storage
            .iter()
            .filter(|b| b.container == container)
            .map(|b| b.name.clone())
            .collect()
    }

    /// The blobs of the old hours (`storage_old_hours`): container, name and hour (ms since
    /// the epoch), newest first. None of their records is among [`Self::storage_records`].
    pub fn storage_old_blobs(&self) -> Vec<(&'static str, String, i64)> {
        let mut out: Vec<_> = self
            .shared
            .storage
            .iter()
            .filter_map(|b| {
                b.old
                    .as_ref()
                    .map(|o| (b.container, b.name.clone(), o.hour_ms))
            })
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.2));
        out
    }

    /// Every record `container` will hold in the end, blob by blob in name order, each blob's
    /// in the order written (records a replacement dropped are not among them).
    pub fn storage_records(&self, container: &str) -> Vec<serde_json::Value> {
        (0..self.shared.storage.len())
            .filter(|&i| self.shared.storage[i].container == container)
            .flat_map(|i| storage::final_records(&self.shared, i))
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect()
    }

    /// How many broken lines (`storage_broken_lines_every`) the account's blobs hold in the
    /// end, over every container.
    pub fn storage_broken_lines(&self) -> usize {
        (0..self.shared.storage.len())
            .flat_map(|i| storage::final_records(&self.shared, i))
            .filter(|text| text.starts_with("not json: "))
            .count()
    }

    /// Replaces a blob now, as when its writer recreates it: a new ETag and creation time,
    /// the first half of what it showed, then growth again. False if it does not exist yet.
    pub fn storage_replace(&self, container: &str, name: &str) -> bool {
        let index = self
            .shared
            .storage
            .iter()
            .position(|b| b.container == container && b.name == name);
        let now = now_ms();
        match index {
            Some(i) if storage::view(&self.shared, i, now, false).is_some() => {
                storage::replace(&self.shared, i, now);
                true
            }
            _ => false,
        }
    }

    /// An account SAS query string (`sv=…&ss=b&srt=co&sp=…&se=…&spr=https&sig=…`) for the
    /// storage account, valid until `expiry_ms`, with `permissions` (`rl`: read and list).
    pub fn storage_sas(&self, permissions: &str, expiry_ms: i64) -> String {
        storage::issue_sas(&self.shared, permissions, expiry_ms)
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A simulator on its own thread and runtime, for synchronous whole-program tests.
#[derive(Debug)]
pub struct BackgroundSimulator {
    sim: Option<Simulator>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundSimulator {
    pub fn start(cfg: SimConfig) -> std::io::Result<BackgroundSimulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let sim = runtime.block_on(Simulator::start(cfg))?;
        Ok(BackgroundSimulator {
            sim: Some(sim),
            runtime: Some(runtime),
        })
    }
}

/// Several tenants served together ([`Simulator::start_tenants`]) on their own thread and
/// runtime, for synchronous whole-program tests.
#[derive(Debug)]
pub struct BackgroundTenants {
    sims: Vec<Simulator>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundTenants {
    pub fn start(cfgs: Vec<SimConfig>) -> std::io::Result<BackgroundTenants> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let sims = runtime.block_on(Simulator::start_tenants(cfgs))?;
        Ok(BackgroundTenants {
            sims,
            runtime: Some(runtime),
        })
    }
}

impl std::ops::Deref for BackgroundTenants {
    type Target = [Simulator];
    fn deref(&self) -> &[Simulator] {
        &self.sims
    }
}

impl Drop for BackgroundTenants {
    fn drop(&mut self) {
        self.sims.clear();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl std::ops::Deref for BackgroundSimulator {
    type Target = Simulator;
    fn deref(&self) -> &Simulator {
        self.sim.as_ref().expect("running")
    }
}

impl Drop for BackgroundSimulator {
    fn drop(&mut self) {
        drop(self.sim.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
