//! The registry of source kinds: the closed set of `kind = "…"` values of `[[source]]` and, for
//! each, what the rest of the program needs to know (the events it produces, how it reads, what
//! its scopes are, which API limit it shares). Validation, the build step, replay and the rate
//! limits ask here instead of listing kinds; a new kind is its module, its entry here, its spec.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};

use super::azure::limits::ApiFamily;
use super::diff::DiffApi;
use super::poll::WindowApi;
use super::{
    azure_activity, defender_alerts, entra_audit, entra_risk_detections, entra_risky_users,
    entra_signins, graph_alerts, graph_incidents,
};
use crate::event::EventKind;

crate::config::choice!(
    /// What a `[[source]]` reads.
    SourceKind {
        AzureActivity = "azure_activity",
        DefenderAlerts = "defender_alerts",
        GraphAlerts = "graph_alerts",
        EntraAudit = "entra_audit",
        EntraSignins = "entra_signins",
        O365Management = "o365_management",
        GraphIncidents = "graph_incidents",
        EntraRiskDetections = "entra_risk_detections",
        EntraRiskyUsers = "entra_risky_users",
        Files = "files",
        EventHubs = "eventhubs",
        StorageArchive = "storage_archive",
    }
);

/// How a kind reads its input.
#[derive(Debug, Clone, Copy)]
pub enum Family {
    /// A Microsoft API filtered on a time field, polled in windows ([`super::poll`]).
    Windowed(&'static WindowApi),
    /// A Microsoft API listing objects in their current state: every object listed at each
    /// poll, diffed on its state ([`super::diff`]).
    Diffed(&'static DiffApi),
    /// The Office 365 Management Activity API: content blobs listed in windows.
    ContentBlobs,
    /// Local files of exported records.
    Files,
    /// A stream read over Kafka (Event Hubs).
    Stream,
    /// Diagnostic-setting and flow-log blobs archived to a storage account, read as they grow.
    Archive,
}

/// What the scopes of a polling kind are (each scope keeps its own cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scopes {
    /// The `subscriptions` key: Azure subscription ids.
    Subscriptions,
    /// The one tenant of `[azure] tenant_id`.
    Tenant,
    /// Fixed lists of the one tenant, each its own scope (e.g. user and service principal
    /// risk detections).
    Fixed(&'static [&'static str]),
    /// The `content_types` key: Office 365 audit content types.
    ContentTypes,
    /// The `containers` key: blob containers of a storage account.
    Containers,
    /// Not a polling kind.
    None,
}

/// What is known about one source kind.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    pub family: Family,
    pub scopes: Scopes,
    /// The kind of the events it produces; `None` when the configuration says (`files`) or
    /// when there are several (`eventhubs`).
    pub event_kind: Option<EventKind>,
    /// The API rate limit it shares; `None` when it reads no Microsoft REST API.
    pub api: Option<ApiFamily>,
}

impl SourceKind {
    /// The registry entry of this kind.
    pub fn info(self) -> KindInfo {
        let windowed = |api: &'static WindowApi, scopes, family| KindInfo {
            family: Family::Windowed(api),
            scopes,
            event_kind: Some(api.kind),
            api: Some(family),
        };
        let diffed = |api: &'static DiffApi, scopes, family| KindInfo {
            family: Family::Diffed(api),
            scopes,
            event_kind: Some(api.kind),
            api: Some(family),
        };
        match self {
            SourceKind::AzureActivity => windowed(
                &azure_activity::API,
                Scopes::Subscriptions,
                ApiFamily::ArmReads,
            ),
            SourceKind::GraphAlerts => {
                windowed(&graph_alerts::API, Scopes::Tenant, ApiFamily::GraphAlerts)
            }
            SourceKind::EntraAudit => {
                windowed(&entra_audit::API, Scopes::Tenant, ApiFamily::EntraReports)
            }
            SourceKind::EntraSignins => {
                windowed(&entra_signins::API, Scopes::Tenant, ApiFamily::EntraReports)
            }
            SourceKind::GraphIncidents => windowed(
                &graph_incidents::API,
                Scopes::Tenant,
                ApiFamily::GraphIncidents,
            ),
            SourceKind::EntraRiskDetections => windowed(
                &entra_risk_detections::API,
                Scopes::Fixed(entra_risk_detections::SCOPES),
                ApiFamily::IdentityProtection,
            ),
            SourceKind::DefenderAlerts => diffed(
                &defender_alerts::API,
                Scopes::Subscriptions,
                ApiFamily::ArmReads,
            ),
            SourceKind::EntraRiskyUsers => diffed(
                &entra_risky_users::API,
                Scopes::Tenant,
                ApiFamily::IdentityProtection,
            ),
            SourceKind::O365Management => KindInfo {
                family: Family::ContentBlobs,
                scopes: Scopes::ContentTypes,
                event_kind: Some(EventKind::O365Management),
                api: Some(ApiFamily::O365),
            },
            SourceKind::Files => KindInfo {
                family: Family::Files,
                scopes: Scopes::None,
                event_kind: None,
                api: None,
            },
            SourceKind::EventHubs => KindInfo {
                family: Family::Stream,
                scopes: Scopes::None,
                event_kind: None,
                api: None,
            },
            // The Blob service has no per-app budget of its own here: its 503s are honoured.
            SourceKind::StorageArchive => KindInfo {
                family: Family::Archive,
                scopes: Scopes::Containers,
                event_kind: None,
                api: None,
            },
        }
    }

    /// Whether this kind polls a Microsoft API through the Azure client (and so needs `[azure]`,
    /// unless a `storage_archive` source has a SAS): every kind but the local files and the
    /// Event Hubs stream.
    pub fn reads_azure_api(self) -> bool {
        self.info().api.is_some() || matches!(self.info().family, Family::Archive)
    }

    /// Whether `replay` can read a past time window of this kind again.
    pub fn replayable(self) -> bool {
        matches!(
            self.info().family,
            Family::Windowed(_) | Family::ContentBlobs | Family::Archive
        )
    }

    /// Whether this kind polls a Microsoft API on a schedule (the poller keys apply).
    pub fn polls(self) -> bool {
        self.info().scopes != Scopes::None
    }
}

/// The kinds for which `keep` holds, as `"a"`, `"a" and "b"`, `"a", "b" and "c"` (with
/// `quote`), in the registry's order: how messages name them.
pub fn kinds_text(keep: impl Fn(SourceKind) -> bool, quote: bool) -> String {
    let names: Vec<String> = SourceKind::ALL
        .iter()
        .filter(|k| keep(**k))
        .map(|k| {
            if quote {
                format!("\"{k}\"")
            } else {
                k.to_string()
            }
        })
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_kinds_produce_their_apis_events() {
        for kind in SourceKind::ALL {
            let info = kind.info();
            match info.family {
                Family::Windowed(api) => {
                    assert_eq!(info.event_kind, Some(api.kind), "{kind}");
                    assert!(kind.replayable() && kind.polls(), "{kind}");
                }
                Family::Diffed(api) => {
                    assert_eq!(info.event_kind, Some(api.kind), "{kind}");
                    assert!(!kind.replayable() && kind.polls(), "{kind}");
                }
                _ => {}
            }
            assert_eq!(kind.reads_azure_api(), kind.polls(), "{kind}");
        }
    }

    #[test]
    fn kinds_text_lists_like_a_sentence() {
        let subs = kinds_text(|k| k.info().scopes == Scopes::Subscriptions, true);
        assert_eq!(subs, "\"azure_activity\" and \"defender_alerts\"");
        let replay = kinds_text(SourceKind::replayable, false);
        assert_eq!(
            replay,
            "azure_activity, graph_alerts, entra_audit, entra_signins, o365_management, graph_incidents, entra_risk_detections and storage_archive"
        );
        assert_eq!(kinds_text(|k| k == SourceKind::Files, true), "\"files\"");
    }
}
