//! The `graph_incidents` source: Microsoft Defender XDR incidents from Graph
//! `security/incidents` with their alerts expanded, in windows on `lastUpdateDateTime` (so every
//! change of status, classification, assignment or alert set arrives), 30-minute overlap,
//! deduplicated on id + lastUpdateDateTime; asks for evolvable enum members (`Prefer` header).
//! Needs `SecurityIncident.Read.All` and a Defender XDR licence.

use std::time::Duration;

use super::azure::auth::Endpoints;
use super::poll::{graph_url, WindowApi};
use crate::event::EventKind;

/// "The following properties support `$filter`: … lastUpdateDateTime …"; alerts "Supports
/// `$expand`"; kept "within the time range you specified in your environment retention policy"
/// (Microsoft Learn, "List incidents", https://learn.microsoft.com/graph/api/security-list-incidents,
/// and docs/graph-incidents-and-risk.md). Latency and overlap as for alerts.
pub static API: WindowApi = WindowApi {
    kind: EventKind::GraphIncidents,
    overlap: Duration::from_secs(30 * 60),
    settle: Duration::from_secs(60),
    max_window: Duration::from_secs(24 * 3600),
    retention: Duration::from_secs(180 * 24 * 3600),
    next_link: "@odata.nextLink",
    headers: &[("Prefer", "include-unknown-enum-members")],
    base: |e| &e.graph,
    first_url,
    licence: |_| {
        "Microsoft Defender XDR (Microsoft 365 E5, E5 Security, A5 or A5 Security, or a valid combination)"
    },
};

fn first_url(e: &Endpoints, _tenant: &str, from: i64, to: i64) -> String {
    let url = graph_url(
        e,
        "security/incidents",
        "lastUpdateDateTime",
        from,
        "lt",
        to,
    );
    format!("{url}&%24expand=alerts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_filtered_on_their_update_time_with_alerts_expanded() {
        let e = Endpoints::public();
        let url =
            reqwest::Url::parse(&first_url(&e, "t", 1_793_527_200_000, 1_793_527_800_000)).unwrap();
        assert_eq!(url.path(), "/v1.0/security/incidents");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                (
                    "$filter".to_owned(),
                    "lastUpdateDateTime ge 2026-11-01T10:00:00.000Z and lastUpdateDateTime lt 2026-11-01T10:10:00.000Z".to_owned()
                ),
                ("$expand".to_owned(), "alerts".to_owned())
            ]
        );
    }
}
