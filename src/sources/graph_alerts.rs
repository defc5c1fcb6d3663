//! The `graph_alerts` source: Microsoft Graph security `alerts_v2` in windows on
//! `lastUpdateDateTime` (so status changes arrive too), 30-minute overlap, deduplicated on
//! id + lastUpdateDateTime; asks for evolvable enum members (`Prefer` header).

use std::time::Duration;

use super::azure::auth::Endpoints;
use super::poll::{graph_url, WindowApi};
use crate::event::EventKind;

/// Latency of minutes, overlap 15–30 minutes (Microsoft Learn, "List alerts_v2",
/// https://learn.microsoft.com/graph/api/security-list-alerts_v2).
pub static API: WindowApi = WindowApi {
    kind: EventKind::GraphAlerts,
    overlap: Duration::from_secs(30 * 60),
    settle: Duration::from_secs(60),
    max_window: Duration::from_secs(24 * 3600),
    retention: Duration::from_secs(180 * 24 * 3600),
    next_link: "@odata.nextLink",
    headers: &[("Prefer", "include-unknown-enum-members")],
    base: |e| &e.graph,
    first_url,
    licence: |_| {
        "Microsoft Defender XDR or one of its products (Microsoft 365 E5, E5 Security, A5 or A5 Security)"
    },
};

fn first_url(e: &Endpoints, _tenant: &str, from: i64, to: i64) -> String {
    graph_url(
        e,
        "security/alerts_v2",
        "lastUpdateDateTime",
        from,
        "lt",
        to,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_has_no_quotes_and_an_open_end() {
        let e = Endpoints::public();
        let url =
            reqwest::Url::parse(&first_url(&e, "t", 1_793_527_200_000, 1_793_527_800_000)).unwrap();
        assert_eq!(url.path(), "/v1.0/security/alerts_v2");
        let (_, filter) = url.query_pairs().next().unwrap();
        assert_eq!(
            filter,
            "lastUpdateDateTime ge 2026-11-01T10:00:00.000Z and lastUpdateDateTime lt 2026-11-01T10:10:00.000Z"
        );
    }
}
