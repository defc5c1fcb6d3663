//! Subscription discovery for the sources whose scopes are Azure subscriptions
//! (`subscriptions = ["*"]`, `management_groups = [...]`): ARM's subscription list, and each
//! management group's descendants crossed with it, read through the source's own API client
//! (its token, rate budget, link checks and answer cap). Only `Enabled`, `Warned` and `PastDue`
//! subscriptions are collected. The poll loop ([`refresh`]) lists them again every
//! `discovery_interval`, adds new subscriptions as first starts, stops polling those that went
//! away, and forgets their checkpoint state once the API's retention has passed.

mod check;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::azure::auth::Endpoints;
use super::azure::http::{ApiClient, FetchError};
use super::azure::paging::LinkGuard;
use super::poll::Rounds;
use super::SourceContext;
use crate::config::SourceConfig;

/// `subscriptions = ["*"]`: every subscription the identity can read.
pub const EVERY: &str = "*";
/// Default and least `discovery_interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// "Subscriptions - List" (Microsoft Learn,
/// https://learn.microsoft.com/rest/api/resources/subscriptions/list).
const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// "Management Groups - Get Descendants" (Microsoft Learn,
/// https://learn.microsoft.com/rest/api/managementgroups/management-groups/get-descendants).
const MANAGEMENT_GROUPS_API_VERSION: &str = "2020-05-01";
/// The `type` of a subscription among a management group's descendants.
const GROUP_SUBSCRIPTION_TYPE: &str = "Microsoft.Management/managementGroups/subscriptions";
/// The subscription states whose subscriptions are read. `Disabled` (cancelled or expired:
/// read-only, its resources stopped) and `Deleted` subscriptions log nothing new.
const ACTIVE_STATES: [&str; 3] = ["Enabled", "Warned", "PastDue"];

/// What a source's `subscriptions` and `management_groups` ask to discover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// `subscriptions = ["*"]`.
    pub every: bool,
    /// `management_groups`.
    pub groups: Vec<String>,
    /// Subscription ids listed beside `management_groups`: always read, as configured.
    pub explicit: Vec<String>,
    pub interval: Duration,
}

impl Discovery {
    /// The discovery source `cfg` asks for; `None` when its subscriptions are a fixed list.
    pub fn of(cfg: &SourceConfig) -> Option<Discovery> {
        let subs = cfg.subscriptions.clone().unwrap_or_default();
        let every = subs.iter().any(|s| s == EVERY);
        let groups = cfg.management_groups.clone().unwrap_or_default();
        (every || !groups.is_empty()).then(|| Discovery {
            every,
            groups,
            explicit: subs.into_iter().filter(|s| s != EVERY).collect(),
            interval: cfg.discovery_interval.map_or(DEFAULT_INTERVAL, |d| d.0),
        })
    }

    /// What is discovered, in words (`check`, `discover`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.every {
            parts.push("every subscription the identity can read".to_owned());
        }
        if !self.groups.is_empty() {
            parts.push(format!(
                "the subscriptions below management group{} {}",
                if self.groups.len() > 1 { "s" } else { "" },
                self.groups.join(", ")
            ));
        }
        if !self.explicit.is_empty() {
            parts.push(format!("{} listed", self.explicit.len()));
        }
        format!(
            "discovers its subscriptions: {}, every {}",
            parts.join(", and "),
            interval_text(self.interval)
        )
    }
}

/// `1h`, `90m`, `45s`.
fn interval_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        _ if s > 0 => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// One subscription as discovery saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    /// Its display name, when the subscription list has it.
    pub name: Option<String>,
    /// Its state, when the subscription list has it.
    pub state: Option<String>,
    /// Why it is not collected; `None` when it is.
    pub skipped: Option<String>,
}

/// The outcome of one discovery, sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub subscriptions: Vec<Found>,
}

impl Inventory {
    /// The ids to poll.
    pub fn collected(&self) -> Vec<String> {
        self.subscriptions
            .iter()
            .filter(|f| f.skipped.is_none())
            .map(|f| f.id.clone())
            .collect()
    }

    /// Why `id` is not collected, if discovery saw it.
    pub fn why_skipped(&self, id: &str) -> Option<&str> {
        self.subscriptions
            .iter()
            .find(|f| f.id.eq_ignore_ascii_case(id))
            .and_then(|f| f.skipped.as_deref())
    }
}

/// A listed subscription: `(name, state)` by lower-case id, with its id as written.
type Listed = BTreeMap<String, (String, String, String)>;

/// Lists what `d` asks for through `client` (the source's ARM client).
pub async fn discover(
    client: &ApiClient,
    endpoints: &Endpoints,
    d: &Discovery,
    cancel: &CancellationToken,
) -> Result<Inventory, String> {
    let base = endpoints.management.trim_end_matches('/');
    let mut listed: Listed = BTreeMap::new();
    let url = format!("{base}/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}");
    for item in list_all(client, &url, "the subscription list", cancel).await? {
        let text = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let Some(id) = text("subscriptionId").filter(|s| !s.is_empty()) else {
            continue;
        };
        let name = text("displayName").unwrap_or_default();
        let state = text("state").unwrap_or_default();
        listed.insert(id.to_ascii_lowercase(), (id, name, state));
    }
    let mut below: BTreeMap<String, (String, String)> = BTreeMap::new();
    for group in &d.groups {
        let url = format!(
            "{base}/providers/Microsoft.Management/managementGroups/{}/descendants?api-version={MANAGEMENT_GROUPS_API_VERSION}",
            percent_path(group)
        );
        let what = format!("the descendants of management group {group}");
        for item in list_all(client, &url, &what, cancel).await? {
            let is_sub = item
                .get("type")
                .and_then(|v| v.as_str())
                .is_some_and(|t| t.eq_ignore_ascii_case(GROUP_SUBSCRIPTION_TYPE));
            let name = item.get("name").and_then(|v| v.as_str()).unwrap_or("");
            if is_sub && !name.is_empty() {
                below
                    .entry(name.to_ascii_lowercase())
                    .or_insert_with(|| (name.to_owned(), group.clone()));
            }
        }
    }
    Ok(inventory(d, &listed, &below))
}

/// Decides what is collected from what was listed (see [`discover`]).
fn inventory(
    d: &Discovery,
    listed: &Listed,
    below: &BTreeMap<String, (String, String)>,
) -> Inventory {
    let mut out: BTreeMap<String, Found> = BTreeMap::new();
    let judge = |key: &str, id: &str, group: Option<&str>| {
        let Some((listed_id, name, state)) = listed.get(key) else {
            return Found {
                id: id.to_owned(),
                name: None,
                state: None,
                skipped: Some(format!(
                    "below management group {} but not in the subscription list: the identity cannot read it (give it Reader on the subscription or the group)",
                    group.unwrap_or("?")
                )),
            };
        };
        let active = ACTIVE_STATES.iter().any(|s| s.eq_ignore_ascii_case(state));
        Found {
            id: listed_id.clone(),
            name: Some(name.clone()),
            state: Some(state.clone()),
            skipped: (!active).then(|| {
                format!("state {state}: only Enabled, Warned and PastDue subscriptions are read")
            }),
        }
    };
    if d.every {
        for (key, (id, ..)) in listed {
            out.insert(key.clone(), judge(key, id, None));
        }
    }
    for (key, (id, group)) in below {
        out.entry(key.clone())
            .or_insert_with(|| judge(key, id, Some(group)));
    }
    for id in &d.explicit {
        let key = id.to_ascii_lowercase();
        let (name, state) = listed
            .get(&key)
            .map(|(_, n, s)| (Some(n.clone()), Some(s.clone())))
            .unwrap_or_default();
        // Listed in the configuration: read as configured, whatever the list says.
        out.insert(
            key,
            Found {
                id: id.clone(),
                name,
                state,
                skipped: None,
            },
        );
    }
    Inventory {
        subscriptions: out.into_values().collect(),
    }
}

/// A management group id as one URL path segment.
fn percent_path(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Every item of an ARM list, following `nextLink` (on the client's own host only).
async fn list_all(
    client: &ApiClient,
    first: &str,
    what: &str,
    cancel: &CancellationToken,
) -> Result<Vec<serde_json::Value>, String> {
    let mut url = first.to_owned();
    let mut guard = LinkGuard::new(first);
    let mut items = Vec::new();
    loop {
        let page = match client.get(&url, cancel).await {
            Ok(p) => p,
            Err(FetchError::Cancelled) => return Err("cancelled".to_owned()),
            Err(e) => return Err(format!("cannot read {what}: {e}")),
        };
        let mut body = page.body;
        let Some(serde_json::Value::Array(values)) = body.get_mut("value").map(std::mem::take)
        else {
            return Err(format!(
                "cannot read {what}: the answer has no value array (request id {})",
                page.request_id.as_deref().unwrap_or("-")
            ));
        };
        items.extend(values);
        match body.get("nextLink").and_then(|v| v.as_str()) {
            Some(next) if !next.is_empty() => {
                if !guard.admit(next) {
                    return Err(format!("cannot read {what}: its next link repeats"));
                }
                url = next.to_owned();
            }
            _ => return Ok(items),
        }
    }
}

/// The discovery state a source keeps while it runs.
#[derive(Debug)]
pub struct Dynamic {
    pub spec: Discovery,
    /// When to list again (`None`: at the next round).
    next: Option<tokio::time::Instant>,
    /// The last list read; `None` before the first.
    known: Option<Inventory>,
    /// A failure was told and discovery has not worked since.
    failing: bool,
}

impl Dynamic {
    pub fn new(spec: Discovery) -> Dynamic {
        Dynamic {
            spec,
            next: None,
            known: None,
            failing: false,
        }
    }
}

/// What a source whose scopes are discovered gives [`refresh`].
pub(crate) struct Parts<'a> {
    pub dynamic: &'a mut Dynamic,
    pub client: &'a ApiClient,
    pub endpoints: &'a Endpoints,
}

impl<'a> Parts<'a> {
    /// The parts of a source whose discovery is `dynamic` (`None`: fixed scopes).
    pub(crate) fn of(
        dynamic: Option<&'a mut Dynamic>,
        client: &'a ApiClient,
        endpoints: &'a Endpoints,
    ) -> Option<Parts<'a>> {
        Some(Parts {
            dynamic: dynamic?,
            client,
            endpoints,
        })
    }
}

/// Before a round of `source`: lists its subscriptions again when due and updates its scopes.
/// Returns false when the round cannot count as a successful poll (discovery failed).
pub(crate) async fn refresh<R: Rounds>(
    source: &mut R,
    state: &mut R::State,
    ctx: &SourceContext,
) -> bool {
    let name = source.name().to_owned();
    let held = source.held_scopes(state);
    let old: BTreeSet<String> = source.scopes().iter().cloned().collect();
    let Some(parts) = source.discovery() else {
        return true;
    };
    let now = tokio::time::Instant::now();
    if parts.dynamic.next.is_some_and(|due| now < due) {
        return true;
    }
    let result = discover(
        parts.client,
        parts.endpoints,
        &parts.dynamic.spec,
        &ctx.cancel,
    )
    .await;
    let dynamic = parts.dynamic;
    let inventory = match result {
        Ok(inv) => inv,
        Err(_) if ctx.cancel.is_cancelled() => return true,
        Err(error) => {
            let have = dynamic.known.is_some();
            ctx.stats
                .freshness
                .failed(&format!("subscription discovery failed: {error}"));
            if !dynamic.failing {
                if have {
                    tracing::warn!(message = "Subscription discovery failed; polling the subscriptions found last, and trying again at every poll.", source = %name, %error);
                } else {
                    tracing::error!(message = "Subscription discovery failed and no subscription list was read yet; nothing is polled until it works (tried again at every poll).", source = %name, %error);
                }
            } else {
                tracing::debug!(message = "Subscription discovery still failing.", source = %name, %error);
            }
            dynamic.failing = true;
            return false;
        }
    };
    if dynamic.failing {
        tracing::info!(message = "Subscription discovery works again.", source = %name);
        dynamic.failing = false;
    }
    dynamic.next = Some(now + dynamic.spec.interval);
    let first = dynamic.known.is_none();
    dynamic.known = Some(inventory.clone());
    // Ids keep the spelling their checkpoint state has, so a cursor is found whatever case
    // the list writes an id in.
    let spelled = |id: String| {
        held.iter()
            .find(|h| h.eq_ignore_ascii_case(&id))
            .cloned()
            .unwrap_or(id)
    };
    let new: Vec<String> = inventory.collected().into_iter().map(spelled).collect();
    if first {
        tracing::info!(message = "Subscriptions discovered.", source = %name, collected = new.len(), skipped = inventory.subscriptions.len() - new.len(), subscriptions = %new.join(","));
        if new.is_empty() {
            tracing::warn!(message = "Subscription discovery found no subscription to read; check the identity's Reader role (siemcast discover).", source = %name);
        }
    } else {
        for id in new.iter().filter(|id| !old.contains(*id)) {
            tracing::info!(message = "New subscription discovered; polling it from start_at, as at a first start.", source = %name, subscription = %id);
        }
        for id in old.iter().filter(|id| !new.contains(id)) {
            let why = inventory
                .why_skipped(id)
                .unwrap_or("no longer in the subscription list or below the management groups");
            tracing::info!(message = "Subscription no longer collected; its polling stopped (its checkpoint state is kept for the API's retention, in case it comes back).", source = %name, subscription = %id, why);
        }
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for scope in held.iter().filter(|h| !new.contains(h)) {
        if source.forget_expired(state, scope, now_ms) {
            tracing::info!(message = "Checkpoint state of a subscription no longer collected dropped: the API's retention has passed.", source = %name, subscription = %scope);
        }
    }
    source.set_scopes(new);
    true
}

#[cfg(test)]
mod tests;
