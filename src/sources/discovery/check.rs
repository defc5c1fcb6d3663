//! Checks of the discovery keys, run by config validation: `subscriptions = ["*"]` alone (not
//! with ids, not with `management_groups`), management group ids, `discovery_interval` (at
//! least 1m, only where something is discovered), and the keys refused on the kinds whose
//! scopes are not subscriptions.

use super::{EVERY, MIN_INTERVAL};
use crate::config::{Config, KeyPath, Problems, SourceConfig, SourceKind};
use crate::sources::registry::{kinds_text, Scopes};

impl SourceConfig {
    /// The discovery keys of source `who` (at `at`), for any kind.
    /// Below 1m, `discovery_interval` is taken only against a loopback `management_endpoint`
    /// (tests against the simulator).
    pub(crate) fn validate_discovery_into(
        &self,
        cfg: &Config,
        who: &str,
        at: &KeyPath,
        p: &mut Problems<'_>,
    ) {
        let subscription_kinds = || kinds_text(|k| k.info().scopes == Scopes::Subscriptions, true);
        let scoped = self
            .kind
            .is_some_and(|k: SourceKind| k.info().scopes == Scopes::Subscriptions);
        if !scoped {
            for (key, present) in [
                ("management_groups", self.management_groups.is_some()),
                ("discovery_interval", self.discovery_interval.is_some()),
            ] {
                if present && self.kind.is_some() {
                    p.add(
                        &at.key(key),
                        format!(
                            "{who}: {key} applies only to kinds {}",
                            subscription_kinds()
                        ),
                    );
                }
            }
            return;
        }
        let subs = self.subscriptions.as_deref().unwrap_or_default();
        let every = subs.iter().position(|s| s == EVERY);
        if let Some(i) = every {
            if subs.len() > 1 {
                p.add(
                    &at.key("subscriptions").index(i),
                    format!("{who}: subscriptions = [\"*\"] (every subscription the identity can read) cannot be combined with subscription ids; write either \"*\" alone or the ids"),
                );
            }
            if self.management_groups.is_some() {
                p.add(
                    &at.key("management_groups"),
                    format!("{who}: management_groups cannot be combined with subscriptions = [\"*\"], which already reads every subscription the identity can read; remove one of them"),
                );
            }
        }
        if let Some(groups) = &self.management_groups {
            if groups.is_empty() {
                p.add(
                    &at.key("management_groups"),
                    format!("{who}: management_groups is empty; name at least one management group id, or remove the key"),
                );
            }
            for (i, g) in groups.iter().enumerate() {
                if !valid_group(g) {
                    p.add(
                        &at.key("management_groups").index(i),
                        format!("{who}: management group \"{g}\" is not a management group id (up to 90 letters, digits, '-', '_', '(', ')' and '.', not ending with '.'; the id, not the display name)"),
                    );
                }
            }
        }
        if let Some(d) = self.discovery_interval {
            if every.is_none() && self.management_groups.is_none() {
                p.add(
                    &at.key("discovery_interval"),
                    format!("{who}: discovery_interval applies only with subscriptions = [\"*\"] or management_groups, which are discovered"),
                );
            } else if d.0 < MIN_INTERVAL && !loopback(cfg.azure.management_endpoint.as_deref()) {
                p.add(
                    &at.key("discovery_interval"),
                    format!("{who}: discovery_interval must be at least 1m (the subscription list changes slowly, and each discovery costs ARM reads)"),
                );
            }
        }
    }
}

/// A management group id as Azure allows it (Microsoft Learn, "Management Groups - Create Or
/// Update", https://learn.microsoft.com/rest/api/managementgroups/management-groups/create-or-update).
fn valid_group(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 90
        && !id.ends_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_().".contains(c))
}

/// Whether `endpoint` is an http(s) URL of a loopback host.
fn loopback(endpoint: Option<&str>) -> bool {
    let Some(url) = endpoint.and_then(|e| reqwest::Url::parse(e).ok()) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
