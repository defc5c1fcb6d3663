//! The `azure_activity` source: the Azure Activity Log of each configured subscription through
//! ARM's `eventtypes/management/values` list (api-version 2015-04-01), in event-time windows
//! with a 60-minute overlap and a 2-minute settle delay, deduplicated on `eventDataId`.

use std::time::Duration;

use super::azure::auth::Endpoints;
use super::poll::{filter_time, WindowApi};
use crate::event::EventKind;

/// Latency 3–20 minutes, 90 days kept (Microsoft Learn, "Azure Monitor activity log",
/// https://learn.microsoft.com/azure/azure-monitor/platform/activity-log; the API: "Activity Logs -
/// List", https://learn.microsoft.com/rest/api/monitor/activity-logs/list).
pub static API: WindowApi = WindowApi {
    kind: EventKind::AzureActivity,
    overlap: Duration::from_secs(60 * 60),
    settle: Duration::from_secs(2 * 60),
    max_window: Duration::from_secs(24 * 3600),
    retention: Duration::from_secs(90 * 24 * 3600),
    next_link: "nextLink",
    headers: &[],
    base: |e| &e.management,
    first_url,
    licence: |_| "an Azure subscription (no separate licence)",
};

fn first_url(e: &Endpoints, subscription: &str, from: i64, to: i64) -> String {
    let mut url = reqwest::Url::parse(&format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values",
        e.management
    ))
    .expect("the management endpoint was validated as a URL");
    url.query_pairs_mut()
        .append_pair("api-version", "2015-04-01")
        .append_pair(
            "$filter",
            &format!(
                "eventTimestamp ge '{}' and eventTimestamp le '{}'",
                filter_time(from),
                filter_time(to)
            ),
        );
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_url_has_the_documented_filter() {
        let e = Endpoints::public();
        let url = first_url(&e, "sub-1", 1_793_527_200_000, 1_793_527_260_000);
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(
            parsed.path(),
            "/subscriptions/sub-1/providers/Microsoft.Insights/eventtypes/management/values"
        );
        let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q[0], ("api-version".into(), "2015-04-01".into()));
        assert_eq!(
            q[1].1,
            "eventTimestamp ge '2026-11-01T10:00:00.000Z' and eventTimestamp le '2026-11-01T10:01:00.000Z'"
        );
    }
}
