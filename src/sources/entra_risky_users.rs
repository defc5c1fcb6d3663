//! The `entra_risky_users` source: Microsoft Entra ID Protection risky users from Graph
//! `identityProtection/riskyUsers`. A risky user is one object whose risk state and level
//! change in place (at risk, remediated, dismissed, confirmed compromised; low to high), and
//! filtering the list on its update time is not documented, so every poll lists every risky
//! user and diffs them on (`riskState`, `riskLevel`) ([`super::diff`]): each change is one
//! event, each (id, state and level) at most once, also across restarts. Needs
//! `IdentityRiskyUser.Read.All` and Entra ID P2.

use super::azure::auth::Endpoints;
use super::diff::DiffApi;
use crate::event::EventKind;

/// Risky users are kept "until the risk has been remediated", with no time limit (Microsoft
/// Learn, "Microsoft Entra data retention",
/// https://learn.microsoft.com/entra/identity/monitoring-health/reference-reports-data-retention),
/// so none is forgotten by age; "Using the riskyUsers API requires a Microsoft Entra ID P2
/// license" ("Get riskyUser", https://learn.microsoft.com/graph/api/riskyuser-get).
pub static API: DiffApi = DiffApi {
    kind: EventKind::EntraRiskyUsers,
    first_url,
    next_link: "@odata.nextLink",
    headers: &[("Prefer", "include-unknown-enum-members")],
    base: |e| &e.graph,
    key: user_key,
    retention: None,
    licence: "Microsoft Entra ID P2 (risky users)",
    objects: "risky user",
};

fn first_url(e: &Endpoints, _tenant: &str) -> String {
    format!("{}/v1.0/identityProtection/riskyUsers", e.graph)
}

/// A risky user's id, its state as `riskState/riskLevel` (the event id's suffix, see
/// `EventKind::id_suffix_paths`) and `riskLastUpdatedDateTime`.
fn user_key(record: &serde_json::Value) -> Option<(String, String, i64)> {
    let text = |k: &str| record.get(k)?.as_str().filter(|s| !s.is_empty());
    let id = text("id")?;
    let state = format!("{}/{}", text("riskState")?, text("riskLevel")?);
    let time = crate::event::parse_time_ms(text("riskLastUpdatedDateTime")?)?;
    Some((id.to_owned(), state, time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use serde_json::json;

    #[test]
    fn a_risky_users_state_is_its_risk_state_and_level_as_in_its_event_id() {
        let user = json!({
            "id": "c2b6c2b9-dddc-acd0-2b39-d519d803dbc3",
            "riskLastUpdatedDateTime": "2016-01-29T20:03:57.7872426Z",
            "riskLevel": "high",
            "riskState": "atRisk",
            "riskDetail": "none",
            "userPrincipalName": "alex@contoso.com"
        });
        let (id, state, time) = user_key(&user).unwrap();
        assert_eq!(state, "atRisk/high");
        assert!(time > 0);
        let ev = Event::from_json(EventKind::EntraRiskyUsers, "r", &user);
        assert_eq!(ev.id, format!("{id}@{state}"));
        let mut no_level = user.clone();
        no_level["riskLevel"] = json!(null);
        assert!(user_key(&no_level).is_none());
    }

    #[test]
    fn the_list_is_read_whole() {
        let e = Endpoints::public();
        assert_eq!(
            first_url(&e, "t"),
            "https://graph.microsoft.com/v1.0/identityProtection/riskyUsers"
        );
    }
}
