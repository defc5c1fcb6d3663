use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::simulator::{Service, SimConfig, Simulator, SubscriptionState};
use crate::sources::azure::http::ApiClient;

const A: &str = "5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11";
const B: &str = "0b7d4f3a-9c11-4c6a-8d3b-5f1c2a7e9e21";
const C: &str = "9e219c11-0b7d-4f3a-8d3b-5f1c2a7e4c6a";
const D: &str = "4c6a9e21-5f1c-4a7e-8d3b-0b7d4f3a9c11";

fn spec(every: bool, groups: &[&str], explicit: &[&str]) -> Discovery {
    Discovery {
        every,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        explicit: explicit.iter().map(|s| (*s).to_owned()).collect(),
        interval: DEFAULT_INTERVAL,
    }
}

async fn simulator(subscriptions: &[&str]) -> Simulator {
    let mut cfg = SimConfig::around_now(Duration::from_secs(60), Duration::ZERO, 3);
    cfg.subscriptions = subscriptions.iter().map(|s| (*s).to_owned()).collect();
    // Two subscriptions a page: the lists are read through their next links.
    cfg.page_size = 2;
    Simulator::start(cfg).await.unwrap()
}

async fn run(sim: &Simulator, d: &Discovery) -> Result<Inventory, String> {
    let client = ApiClient::for_simulator(sim, Service::Management, "test");
    let mut endpoints = Endpoints::public();
    endpoints.management = sim.endpoint(Service::Management);
    discover(&client, &endpoints, d, &CancellationToken::new()).await
}

fn verdicts(inv: &Inventory) -> Vec<(String, Option<String>, bool)> {
    inv.subscriptions
        .iter()
        .map(|f| (f.id.clone(), f.state.clone(), f.skipped.is_none()))
        .collect()
}

#[tokio::test]
async fn every_subscription_in_an_active_state_is_collected() {
    let sim = simulator(&[A, B, C, D]).await;
    let all = run(&sim, &spec(true, &[], &[])).await.unwrap();
    assert_eq!(all.collected().len(), 4, "{all:?}");
    assert_eq!(
        all.subscriptions[0].name.as_deref(),
        Some(crate::simulator::inventory::display_name(&all.subscriptions[0].id).as_str())
    );
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Warned),
        (C, SubscriptionState::PastDue),
        (D, SubscriptionState::Disabled),
        (
            "11111111-2222-4333-8444-555555555555",
            SubscriptionState::Deleted,
        ),
    ]);
    let inv = run(&sim, &spec(true, &[], &[])).await.unwrap();
    let mut collected = inv.collected();
    collected.sort();
    let mut want = vec![A.to_owned(), B.to_owned(), C.to_owned()];
    want.sort();
    assert_eq!(collected, want);
    let why = inv.why_skipped(D).unwrap();
    assert!(why.contains("state Disabled"), "{why}");
    assert!(inv
        .why_skipped("11111111-2222-4333-8444-555555555555")
        .unwrap()
        .contains("state Deleted"));
}

#[tokio::test]
async fn management_groups_are_crossed_with_the_subscription_list() {
    let sim = simulator(&[A, B, C, D]).await;
    sim.set_management_group("prod", &[A, B]);
    sim.set_management_group_children("prod", &["prod-eu"]);
    sim.set_management_group("prod-eu", &[C, "77777777-2222-4333-8444-555555555555"]);
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Disabled),
        (C, SubscriptionState::Enabled),
        (D, SubscriptionState::Enabled),
    ]);
    let inv = run(&sim, &spec(false, &["prod"], &[D])).await.unwrap();
    let mut got = verdicts(&inv);
    got.sort();
    let mut want = vec![
        (A.to_owned(), Some("Enabled".to_owned()), true),
        (B.to_owned(), Some("Disabled".to_owned()), false),
        (C.to_owned(), Some("Enabled".to_owned()), true),
        (D.to_owned(), Some("Enabled".to_owned()), true),
        (
            "77777777-2222-4333-8444-555555555555".to_owned(),
            None,
            false,
        ),
    ];
    want.sort();
    assert_eq!(
        got, want,
        "the child group's subscriptions too; D as listed"
    );
    let why = inv
        .why_skipped("77777777-2222-4333-8444-555555555555")
        .unwrap();
    assert!(
        why.contains("not in the subscription list") && why.contains("prod"),
        "{why}"
    );
    // The tenant root group (named by the tenant id) holds every subscription.
    let root = sim.config().tenant_id.clone();
    let inv = run(&sim, &spec(false, &[&root], &[])).await.unwrap();
    assert_eq!(inv.collected().len(), 3, "{inv:?}");
}

#[tokio::test]
async fn an_unknown_group_or_a_refusing_api_is_an_error_in_words() {
    let sim = simulator(&[A]).await;
    let e = run(&sim, &spec(false, &["nope"], &[])).await.unwrap_err();
    assert!(
        e.contains("the descendants of management group nope") && e.contains("404"),
        "{e}"
    );
    // A subscription list whose next link leaves the API is refused, never followed.
    let sim = simulator(&[A, B, C]).await;
    sim.set_hostile_links(Some(crate::simulator::HostileLinks::Foreign));
    let e = run(&sim, &spec(true, &[], &[])).await.unwrap_err();
    assert!(
        e.contains("the subscription list") && e.contains("refused"),
        "{e}"
    );
    assert!(sim.strays().is_empty());
}

#[tokio::test]
async fn data_routes_serve_any_subscription_whatever_the_list_says() {
    let sim = simulator(&[A]).await;
    sim.set_subscription_list(&[(A, SubscriptionState::Disabled)]);
    let client = ApiClient::for_simulator(&sim, Service::Management, "test");
    let base = sim.endpoint(Service::Management);
    let cancel = CancellationToken::new();
    for sub in [A, D] {
        let url = format!(
            "{base}/subscriptions/{sub}/providers/Microsoft.Security/alerts?api-version=2022-01-01"
        );
        let page = client.get(&url, &cancel).await.unwrap();
        let n = page.body["value"].as_array().unwrap().len();
        assert_eq!(n > 0, sub == A, "{sub}: {n} alerts");
    }
}

#[test]
fn inventory_keeps_explicit_ids_and_skips_inactive_states() {
    let mut listed = Listed::new();
    listed.insert(A.into(), (A.into(), "a".into(), "Enabled".into()));
    listed.insert(B.into(), (B.into(), "b".into(), "PastDue".into()));
    listed.insert(C.into(), (C.into(), "c".into(), "Disabled".into()));
    let below = BTreeMap::new();
    let inv = inventory(&spec(true, &[], &[]), &listed, &below);
    assert_eq!(inv.collected(), vec![B.to_owned(), A.to_owned()]);
    // Listed in the configuration: read whatever its state, and only what is asked for.
    let inv = inventory(&spec(false, &[], &[&C.to_uppercase()]), &listed, &below);
    assert_eq!(inv.collected(), vec![C.to_uppercase()]);
    assert_eq!(inv.subscriptions[0].state.as_deref(), Some("Disabled"));
}

#[test]
fn discovery_is_read_from_the_source_keys() {
    let text = |subs: &str, extra: &str| {
        format!("name = \"a\"\nkind = \"azure_activity\"\nsubscriptions = {subs}\n{extra}")
    };
    let of = |t: String| {
        let cfg: crate::config::SourceConfig = toml::from_str(&t).unwrap();
        Discovery::of(&cfg)
    };
    assert_eq!(of(text(&format!("[\"{A}\"]"), "")), None);
    let d = of(text("[\"*\"]", "discovery_interval = \"90m\"")).unwrap();
    assert_eq!(
        d,
        Discovery {
            interval: Duration::from_secs(5400),
            ..spec(true, &[], &[])
        }
    );
    assert_eq!(
        d.describe(),
        "discovers its subscriptions: every subscription the identity can read, every 90m"
    );
    let d = of(text(
        &format!("[\"{A}\"]"),
        "management_groups = [\"prod\"]",
    ))
    .unwrap();
    assert_eq!(d, spec(false, &["prod"], &[A]));
    assert_eq!(
        d.describe(),
        "discovers its subscriptions: the subscriptions below management group prod, and 1 listed, every 1h"
    );
}

/// A configuration with one `azure_activity` source whose keys are `keys`; its problems as
/// `LINE:COL: message`.
fn problems(keys: &str, management: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("mappings/arcsight");
    std::fs::create_dir_all(&maps).unwrap();
    for kind in ["azure_activity", "graph_alerts"] {
        let shipped = format!(
            "{}/mappings/arcsight/{kind}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::copy(shipped, maps.join(format!("{kind}.toml"))).unwrap();
    }
    std::fs::write(dir.path().join("secret"), "x").unwrap();
    let text = format!(
        "[azure]\ntenant_id = \"2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e\"\nclient_id = \"6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b\"\nclient_secret_file = \"secret\"\nmanagement_endpoint = \"{management}\"\n\n[[source]]\nname = \"activity\"\nkind = \"azure_activity\"\n{keys}\n[[source]]\nname = \"alerts\"\nkind = \"graph_alerts\"\nmanagement_groups = [\"prod\"]\n\n[[destination]]\nname = \"arcsight\"\naddress = \"127.0.0.1:514\"\nmappings = \"mappings/arcsight\"\n"
    );
    let path = dir.path().join("siemcast.toml");
    std::fs::write(&path, &text).unwrap();
    let prefix = format!("{}:", path.display());
    match Config::load(&path) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|p| p.to_string().trim_start_matches(&prefix).to_owned())
                .collect()
        }
    }
}

#[test]
fn the_discovery_keys_are_checked_with_their_place() {
    let https = "https://management.azure.com";
    let tail = "14:1: source \"alerts\": management_groups applies only to kinds \"azure_activity\" and \"defender_alerts\"";
    assert_eq!(
        problems(&format!("subscriptions = [\"{A}\", \"*\"]"), https),
        [
            "10:58: source \"activity\": subscriptions = [\"*\"] (every subscription the identity can read) cannot be combined with subscription ids; write either \"*\" alone or the ids",
            tail
        ]
    );
    assert_eq!(
        problems("subscriptions = [\"*\"]\nmanagement_groups = [\"prod\"]", https),
        [
            "11:1: source \"activity\": management_groups cannot be combined with subscriptions = [\"*\"], which already reads every subscription the identity can read; remove one of them",
            "15:1: source \"alerts\": management_groups applies only to kinds \"azure_activity\" and \"defender_alerts\"",
        ]
    );
    assert_eq!(
        problems(
            "management_groups = [\"prod\", \"Prod group.\"]\ndiscovery_interval = \"30s\"",
            https
        ),
        [
            "10:30: source \"activity\": management group \"Prod group.\" is not a management group id (up to 90 letters, digits, '-', '_', '(', ')' and '.', not ending with '.'; the id, not the display name)",
            "11:1: source \"activity\": discovery_interval must be at least 1m (the subscription list changes slowly, and each discovery costs ARM reads)",
            "15:1: source \"alerts\": management_groups applies only to kinds \"azure_activity\" and \"defender_alerts\"",
        ]
    );
    assert_eq!(
        problems(&format!("subscriptions = [\"{A}\"]\ndiscovery_interval = \"2h\""), https),
        [
            "11:1: source \"activity\": discovery_interval applies only with subscriptions = [\"*\"] or management_groups, which are discovered",
            "15:1: source \"alerts\": management_groups applies only to kinds \"azure_activity\" and \"defender_alerts\"",
        ]
    );
    // Below a minute against a loopback endpoint (the simulator, in tests); ids beside groups.
    let loopback = problems(
        &format!("subscriptions = [\"{A}\"]\nmanagement_groups = [\"prod\"]\ndiscovery_interval = \"2s\""),
        "http://127.0.0.1:9",
    );
    assert_eq!(
        loopback,
        ["16:1: source \"alerts\": management_groups applies only to kinds \"azure_activity\" and \"defender_alerts\""]
    );
}

/// A source whose state is the set of scopes it holds a position for, each with its cursor.
struct Fake {
    scopes: Vec<String>,
    dynamic: Dynamic,
    client: ApiClient,
    endpoints: Endpoints,
}

impl Rounds for Fake {
    type State = BTreeMap<String, i64>;
    fn client(&mut self) -> &mut ApiClient {
        &mut self.client
    }
    fn name(&self) -> &str {
        "fake"
    }
    fn kind(&self) -> &'static str {
        "azure_activity"
    }
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn licence(&self, _: &str) -> &'static str {
        "-"
    }
    fn resume(&self, _: &SourceContext) -> (Self::State, bool) {
        (BTreeMap::new(), false)
    }
    fn discovery(&mut self) -> Option<Parts<'_>> {
        Some(Parts {
            dynamic: &mut self.dynamic,
            client: &self.client,
            endpoints: &self.endpoints,
        })
    }
    fn set_scopes(&mut self, scopes: Vec<String>) {
        self.scopes = scopes;
    }
    fn held_scopes(&self, state: &Self::State) -> Vec<String> {
        state.keys().cloned().collect()
    }
    fn forget_expired(&self, state: &mut Self::State, scope: &str, now_ms: i64) -> bool {
        state.get(scope).is_some_and(|c| *c < now_ms - 1000) && state.remove(scope).is_some()
    }
    async fn poll(
        &self,
        _: &str,
        _: &mut Self::State,
        _: &SourceContext,
        _: bool,
    ) -> Result<crate::sources::poll::Outcome, crate::sources::SourceError> {
        Ok(crate::sources::poll::Outcome::Complete)
    }
}

#[tokio::test]
async fn refresh_adds_and_removes_scopes_keeps_cursors_and_survives_failures() {
    let sim = simulator(&[A, B, C]).await;
    let mut endpoints = Endpoints::public();
    endpoints.management = sim.endpoint(Service::Management);
    let mut source = Fake {
        scopes: Vec::new(),
        dynamic: Dynamic::new(Discovery {
            interval: Duration::ZERO,
            ..spec(true, &[], &[])
        }),
        client: ApiClient::for_simulator(&sim, Service::Management, "fake"),
        endpoints,
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = crate::spool::Spool::open(dir.path(), Default::default()).unwrap();
    let ctx = SourceContext {
        spool: std::sync::Arc::new(spool),
        cancel: CancellationToken::new(),
        stats: Default::default(),
    };
    ctx.stats.freshness.started(Some(Duration::from_secs(1)));
    let now = jiff::Timestamp::now().as_millisecond();
    // A checkpoint written when the ids were listed by hand, in upper case; D is long gone.
    let mut state = BTreeMap::from([
        (A.to_uppercase(), now),
        (D.to_owned(), now - 100 * 86_400_000),
    ]);
    assert!(refresh(&mut source, &mut state, &ctx).await);
    let mut want = vec![A.to_uppercase(), B.to_owned(), C.to_owned()];
    want.sort();
    let mut got = source.scopes.clone();
    got.sort();
    assert_eq!(got, want, "A keeps its checkpoint's spelling");
    assert!(!state.contains_key(D), "past the retention: forgotten");
    assert!(state.contains_key(&A.to_uppercase()));

    // B is disabled, and its cursor is recent: not polled, but its state is kept.
    state.insert(B.to_owned(), now);
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Disabled),
        (C, SubscriptionState::Enabled),
    ]);
    assert!(refresh(&mut source, &mut state, &ctx).await);
    assert!(!source.scopes.contains(&B.to_owned()));
    assert!(state.contains_key(B));

    // ARM refuses: the last list stays, the round is not a success, /healthz is told why.
    sim.set_hostile_links(Some(crate::simulator::HostileLinks::Foreign));
    let before = source.scopes.clone();
    // One subscription a page from here on would need paging; a refused link fails it.
    sim.set_subscription_list(&[
        (A, SubscriptionState::Enabled),
        (B, SubscriptionState::Enabled),
        (C, SubscriptionState::Enabled),
        (D, SubscriptionState::Enabled),
    ]);
    assert!(!refresh(&mut source, &mut state, &ctx).await);
    assert_eq!(source.scopes, before);
    let why = ctx
        .stats
        .freshness
        .overdue("fake", now + 3_600_000, Duration::ZERO)
        .unwrap();
    assert!(why.contains("subscription discovery failed"), "{why}");
}
