//! The default Splunk sourcetype of each event kind: the sourcetype under which the Splunk
//! add-on reading the same Microsoft API indexes the same record, so its field extractions,
//! eventtypes and CIM tags apply. The research behind each row is in `docs/splunk.md`.

use crate::event::EventKind;

/// The default sourcetype of `kind` (`docs/splunk.md`, "Sourcetypes per source kind").
pub fn default_sourcetype(kind: EventKind) -> &'static str {
    match kind {
        EventKind::AzureActivity => "mscs:azure:audit",
        EventKind::DefenderAlerts => "azure:securityCenter:alert",
        EventKind::EntraSignins => "azure:aad:signin",
        EventKind::EntraAudit => "azure:aad:audit",
        EventKind::GraphAlerts => "ms365:defender:incident:alerts",
        EventKind::GraphIncidents => "ms365:defender:incident",
        EventKind::EntraRiskDetections => "azure:aad:identity_protection:risk_detection",
        EventKind::EntraRiskyUsers => "azure:aad:identity_protection:risky_user",
        EventKind::O365Management => "o365:management:activity",
        EventKind::EventHubsEntraSignins
        | EventKind::EventHubsEntraAudit
        | EventKind::EventHubsEntraProvisioning
        | EventKind::EventHubsEntraRisk => "azure:monitor:aad",
        EventKind::EventHubsDefenderXdr => "mscs:azure:eventhub:defender:advancedhunting",
        EventKind::EventHubsActivity
        | EventKind::EventHubsDiagnostic
        | EventKind::EventHubsGraphActivity
        | EventKind::EventHubsDefenderAlerts => "mscs:azure:eventhub",
        EventKind::NetworkFlow => "mscs:nsgflowlogs",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has a sourcetype, and each appears in docs/splunk.md's table on its kind's row.
    #[test]
    fn every_kind_has_the_sourcetype_docs_splunk_md_lists() {
        let doc = include_str!("../../../docs/splunk.md");
        for kind in EventKind::ALL {
            let st = default_sourcetype(*kind);
            let row = doc
                .lines()
                .find(|l| l.starts_with('|') && l.contains(&format!("`{}`", kind.as_str())))
                .unwrap_or_else(|| panic!("no row for {kind} in docs/splunk.md"));
            assert!(
                row.contains(&format!("`{st}`")),
                "{kind}: {st} not in {row}"
            );
        }
    }
}
