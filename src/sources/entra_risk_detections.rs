//! The `entra_risk_detections` source: Microsoft Entra ID Protection risk detections from Graph
//! `identityProtection/riskDetections` (users) and `identityProtection/servicePrincipalRiskDetections`
//! (workload identities), each its own scope with its own cursor, in windows on
//! `lastUpdatedDateTime` (so a detection that is remediated or dismissed arrives again),
//! deduplicated on id + lastUpdatedDateTime. Needs `IdentityRiskEvent.Read.All`; the users' list
//! needs Entra ID P1 or P2, the service principals' list Workload ID Premium: a scope whose
//! licence is missing is told once and the other goes on.

use std::time::Duration;

use super::azure::auth::Endpoints;
use super::poll::{graph_url, WindowApi};
use crate::event::EventKind;

/// The two lists, as the scopes of the source (and the last segment of their path).
pub const SCOPES: &[&str] = &[USERS, SERVICE_PRINCIPALS];
const USERS: &str = "riskDetections";
const SERVICE_PRINCIPALS: &str = "servicePrincipalRiskDetections";

/// Risky sign-ins and detections are kept 90 days with P2 (Microsoft Learn, "Microsoft Entra
/// data retention", https://learn.microsoft.com/entra/identity/monitoring-health/reference-reports-data-retention);
/// licences from "List riskDetections" (https://learn.microsoft.com/graph/api/riskdetection-list)
/// and "List servicePrincipalRiskDetections"
/// (https://learn.microsoft.com/graph/api/identityprotectionroot-list-serviceprincipalriskdetections).
/// Offline detections are computed after the sign-in, but they get their `lastUpdatedDateTime`
/// when they are listed; an hour of overlap covers the list's own lag.
pub static API: WindowApi = WindowApi {
    kind: EventKind::EntraRiskDetections,
    overlap: Duration::from_secs(3600),
    settle: Duration::from_secs(2 * 60),
    max_window: Duration::from_secs(24 * 3600),
    retention: Duration::from_secs(90 * 24 * 3600),
    next_link: "@odata.nextLink",
    headers: &[("Prefer", "include-unknown-enum-members")],
    base: |e| &e.graph,
    first_url,
    licence,
};

fn licence(scope: &str) -> &'static str {
    if scope == SERVICE_PRINCIPALS {
        "Microsoft Entra Workload ID Premium (service principal risk detections)"
    } else {
        "Microsoft Entra ID P1 or P2 (risk detections; P2 for their details)"
    }
}

fn first_url(e: &Endpoints, scope: &str, from: i64, to: i64) -> String {
    let list = if scope == SERVICE_PRINCIPALS {
        SERVICE_PRINCIPALS
    } else {
        USERS
    };
    graph_url(
        e,
        &format!("identityProtection/{list}"),
        "lastUpdatedDateTime",
        from,
        "lt",
        to,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_is_its_list_filtered_on_the_update_time() {
        let e = Endpoints::public();
        let paths: Vec<String> = SCOPES
            .iter()
            .map(|s| {
                let url = reqwest::Url::parse(&first_url(&e, s, 0, 60_000)).unwrap();
                let (_, filter) = url.query_pairs().next().unwrap();
                assert_eq!(
                    filter,
                    "lastUpdatedDateTime ge 1970-01-01T00:00:00.000Z and lastUpdatedDateTime lt 1970-01-01T00:01:00.000Z"
                );
                url.path().to_owned()
            })
            .collect();
        assert_eq!(
            paths,
            [
                "/v1.0/identityProtection/riskDetections",
                "/v1.0/identityProtection/servicePrincipalRiskDetections"
            ]
        );
        assert!(licence(SERVICE_PRINCIPALS).contains("Workload ID"));
        assert!(licence(USERS).contains("P1 or P2"));
    }
}
