//! The simulator's ARM inventory of the tenant: the subscription list (`GET /subscriptions`,
//! each with its state) and management groups with their descendants (child groups and
//! subscriptions), both paged with `nextLink` like every ARM list. Tests change them while
//! siemcast runs ([`super::Simulator::set_subscription_list`],
//! [`super::Simulator::set_management_group`]); at start every configured subscription is
//! `Enabled` and the tenant root group (named by the tenant id, as in Azure) holds them all.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::wire::{
    arm_error, path_is, position, Listing, Query, DESCENDANTS_PATH, GROUP_SUBSCRIPTION_TYPE,
    GROUP_TYPE, MANAGEMENT_GROUPS_API_VERSION, SUBSCRIPTIONS_API_VERSION,
};
use super::{Service, Shared};

/// A subscription's `state` (Microsoft Learn, "Subscriptions - List": SubscriptionState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    Enabled,
    Warned,
    PastDue,
    Disabled,
    Deleted,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Enabled => "Enabled",
            SubscriptionState::Warned => "Warned",
            SubscriptionState::PastDue => "PastDue",
            SubscriptionState::Disabled => "Disabled",
            SubscriptionState::Deleted => "Deleted",
        }
    }
}

/// One management group as set by a test.
#[derive(Debug, Clone, Default)]
struct Group {
    subscriptions: Vec<String>,
    children: Vec<String>,
}

/// What the inventory lists now.
#[derive(Debug, Clone, Default)]
pub(super) struct Inventory {
    /// `None`: every configured subscription, `Enabled`.
    subscriptions: Option<Vec<(String, SubscriptionState)>>,
    /// By lower-case name. The tenant root group, unless set, holds every listed subscription.
    groups: BTreeMap<String, Group>,
}

impl Inventory {
    fn subscriptions(&self, shared: &Shared) -> Vec<(String, SubscriptionState)> {
        self.subscriptions.clone().unwrap_or_else(|| {
            shared
                .cfg
                .subscriptions
                .iter()
                .map(|s| (s.clone(), SubscriptionState::Enabled))
                .collect()
        })
    }

    pub(super) fn set_subscriptions(&mut self, list: &[(&str, SubscriptionState)]) {
        self.subscriptions = Some(list.iter().map(|(s, st)| ((*s).to_owned(), *st)).collect());
    }

    pub(super) fn set_group(&mut self, group: &str, subscriptions: &[&str]) {
        self.groups
            .entry(group.to_ascii_lowercase())
            .or_default()
            .subscriptions = subscriptions.iter().map(|s| (*s).to_owned()).collect();
    }

    pub(super) fn set_children(&mut self, group: &str, children: &[&str]) {
        for child in children {
            self.groups.entry(child.to_ascii_lowercase()).or_default();
        }
        self.groups
            .entry(group.to_ascii_lowercase())
            .or_default()
            .children = children.iter().map(|s| (*s).to_owned()).collect();
    }
}

/// The display name the simulator gives a subscription.
pub fn display_name(subscription: &str) -> String {
    format!("Contoso {}", subscription.get(..8).unwrap_or(subscription))
}

fn group_id(name: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{name}")
}

/// `GET /subscriptions?api-version=2022-12-01`.
pub(super) fn subscriptions<'a>(
    shared: &'a Shared,
    q: &Query,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    api_version(q, SUBSCRIPTIONS_API_VERSION, rid)?;
    let (asof, offset) = position(shared, q, Service::Management, rid)?;
    let tenant = &shared.cfg.tenant_id;
    let items = shared
        .lock()
        .inventory
        .subscriptions(shared)
        .into_iter()
        .map(|(id, state)| {
            std::borrow::Cow::Owned(json!({
                "id": format!("/subscriptions/{id}"),
                "authorizationSource": "RoleBased",
                "managedByTenants": [],
                "subscriptionId": id,
                "tenantId": tenant,
                "displayName": display_name(&id),
                "state": state.as_str(),
                "subscriptionPolicies": {
                    "locationPlacementId": "Public_2014-09-01",
                    "quotaId": "PayAsYouGo_2014-09-01",
                    "spendingLimit": "Off"
                }
            }))
        })
        .collect();
    let base = vec![(
        "api-version".to_owned(),
        SUBSCRIPTIONS_API_VERSION.to_owned(),
    )];
    Ok((items, base, asof, offset))
}

/// `GET /providers/Microsoft.Management/managementGroups/{id}/descendants?api-version=2020-05-01`:
/// child groups and subscriptions, depth first; an unknown group is 404 as in ARM.
pub(super) fn descendants<'a>(
    shared: &'a Shared,
    path: &str,
    q: &Query,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if !path_is(path, &DESCENDANTS_PATH) {
        return Err(Box::new(arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            &format!("The resource type could not be found for path '{path}'."),
            rid,
        )));
    }
    api_version(q, MANAGEMENT_GROUPS_API_VERSION, rid)?;
    let (asof, offset) = position(shared, q, Service::Management, rid)?;
    let root = segs[3];
    let st = shared.lock();
    let mut groups = st.inventory.groups.clone();
    let tenant_root = shared.cfg.tenant_id.to_ascii_lowercase();
    groups.entry(tenant_root).or_insert_with(|| Group {
        subscriptions: (st.inventory.subscriptions(shared))
            .into_iter()
            .map(|(s, _)| s)
            .collect(),
        children: Vec::new(),
    });
    drop(st);
    if !groups.contains_key(&root.to_ascii_lowercase()) {
        return Err(Box::new(arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("'{root}' management group not found."),
            rid,
        )));
    }
    let mut items = Vec::new();
    let mut visited = BTreeSet::new();
    walk(&groups, root, &mut visited, &mut items);
    let base = vec![(
        "api-version".to_owned(),
        MANAGEMENT_GROUPS_API_VERSION.to_owned(),
    )];
    Ok((
        items.into_iter().map(std::borrow::Cow::Owned).collect(),
        base,
        asof,
        offset,
    ))
}

/// The descendants of `group` into `out`: its subscriptions, then each child group and its own.
fn walk(
    groups: &BTreeMap<String, Group>,
    group: &str,
    visited: &mut BTreeSet<String>,
    out: &mut Vec<Value>,
) {
    if !visited.insert(group.to_ascii_lowercase()) {
        return;
    }
    let Some(g) = groups.get(&group.to_ascii_lowercase()) else {
        return;
    };
    for sub in &g.subscriptions {
        out.push(json!({
            "id": format!("{}/subscriptions/{sub}", group_id(group)),
            "type": GROUP_SUBSCRIPTION_TYPE,
            "name": sub,
            "properties": {"displayName": display_name(sub), "parent": {"id": group_id(group)}}
        }));
    }
    for child in &g.children {
        out.push(json!({
            "id": group_id(child),
            "type": GROUP_TYPE,
            "name": child,
            "properties": {"displayName": child, "parent": {"id": group_id(group)}}
        }));
        walk(groups, child, visited, out);
    }
}

fn api_version(q: &Query, want: &str, rid: &str) -> Result<(), Box<Response>> {
    if q.get("api-version") == Some(want) {
        return Ok(());
    }
    Err(Box::new(arm_error(
        StatusCode::BAD_REQUEST,
        "InvalidApiVersionParameter",
        &format!(
            "The api-version '{}' is invalid. The supported versions are '{want}'.",
            q.get("api-version").unwrap_or("")
        ),
        rid,
    )))
}
