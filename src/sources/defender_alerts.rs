//! The `defender_alerts` source: Microsoft Defender for Cloud security alerts of each configured
//! subscription (ARM `Microsoft.Security/alerts`, api-version 2022-01-01, `nextLink` paging).
//! The API has no time filter, so every poll lists all alerts and diffs them on their status
//! ([`super::diff`]): new alerts and status changes are forwarded, each (id, status) at most
//! once, also across restarts. Alerts older than 90 days are no longer listed and forgotten.

use std::time::Duration;

use super::azure::auth::Endpoints;
use super::diff::DiffApi;
use crate::event::EventKind;

/// The current GA version of the alerts API (Microsoft Learn, "Alerts - List",
/// https://learn.microsoft.com/rest/api/defenderforcloud/alerts/list).
pub const API_VERSION: &str = "2022-01-01";

/// Alerts stay listable for about 90 days.
pub static API: DiffApi = DiffApi {
    kind: EventKind::DefenderAlerts,
    first_url,
    next_link: "nextLink",
    headers: &[],
    base: |e| &e.management,
    key: alert_key,
    retention: Some(Duration::from_secs(90 * 24 * 3600)),
    licence: "Microsoft Defender for Cloud (a Defender plan on the subscription)",
    objects: "alert",
};

/// The id, status and time of a listed alert, if it has them.
fn alert_key(record: &serde_json::Value) -> Option<(String, String, i64)> {
    let id = record.get("id")?.as_str().filter(|s| !s.is_empty())?;
    let props = record.get("properties")?;
    let status = props.get("status")?.as_str().filter(|s| !s.is_empty())?;
    let time = crate::event::parse_time_ms(props.get("timeGeneratedUtc")?.as_str()?)?;
    Some((id.to_owned(), status.to_owned(), time))
}

fn first_url(e: &Endpoints, subscription: &str) -> String {
    let mut url = reqwest::Url::parse(&format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Security/alerts",
        e.management
    ))
    .expect("the management endpoint was validated as a URL");
    url.query_pairs_mut()
        .append_pair("api-version", API_VERSION);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use serde_json::json;

    #[test]
    fn listed_alerts_need_id_status_and_time() {
        let ok = json!({"id": "x", "properties": {"status": "Active", "timeGeneratedUtc": "2025-03-04T09:01:44.0000000Z"}});
        assert_eq!(alert_key(&ok).map(|k| k.1).as_deref(), Some("Active"));
        let no_status =
            json!({"id": "x", "properties": {"timeGeneratedUtc": "2025-03-04T09:01:44Z"}});
        assert!(alert_key(&no_status).is_none());
        assert!(alert_key(&json!({"properties": {"status": "Active"}})).is_none());
    }

    #[test]
    fn each_status_is_its_own_event() {
        let v = json!({"id": "/subscriptions/s/x", "properties": {"status": "Dismissed", "timeGeneratedUtc": "2025-03-04T09:01:44Z"}});
        let ev = Event::from_json(EventKind::DefenderAlerts, "d", &v);
        assert_eq!(ev.id, "/subscriptions/s/x@Dismissed");
    }

    #[test]
    fn first_url_is_the_subscription_list() {
        let e = Endpoints::public();
        assert_eq!(
            first_url(&e, "sub-1"),
            "https://management.azure.com/subscriptions/sub-1/providers/Microsoft.Security/alerts?api-version=2022-01-01"
        );
    }
}
