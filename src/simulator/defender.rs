//! The simulator's Defender for Cloud alerts: `GET /subscriptions/{id}/providers/
//! Microsoft.Security/alerts?api-version=2022-01-01` (no filter, `nextLink` paging) over alerts
//! in the REST shape of Microsoft Learn's "Alerts - List"
//! (https://learn.microsoft.com/rest/api/defenderforcloud/alerts/list) whose status changes
//! between polls.

use axum::response::Response;
use serde_json::json;

use super::data::{azure_time, guid, h, Item, Timeline, CALLERS};
use super::wire::{
    arm_subscription, position, Listing, Query, DEFENDER_API_VERSION, DEFENDER_PATH,
};
use super::{Service, Shared};

const KINDS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "VM_SuspiciousPowerShellCmdlet",
        "Suspicious PowerShell command line detected",
        "A PowerShell process ran an encoded command typical of download cradles.",
        "Execution",
        "T1059",
        "Servers",
    ),
    (
        "Storage.Blob_AnonymousAccessAnomaly",
        "Unusual unauthenticated access to a storage container",
        "A container was read anonymously from an address never seen before.",
        "Collection",
        "T1530",
        "Storage",
    ),
    (
        "KV_ListGetAnomaly",
        "Unusual user accessed a key vault",
        "A principal that normally does not read secrets listed and read several of them.",
        "CredentialAccess",
        "T1555",
        "KeyVault",
    ),
    (
        "SQL.DB_BruteForce",
        "Potential SQL brute force attempt",
        "An abnormally high number of failed sign-ins with different credentials.",
        "PreAttack",
        "T1110",
        "SQL",
    ),
];

const LOCATIONS: &[&str] = &["westeurope", "centralus"];

/// The versions of one subscription's alerts: each alert is raised `Active`; every third is
/// later taken `InProgress`, every sixth then `Resolved`, every fifth `Dismissed`; each change
/// is a version with a later change time. A listing shows each alert's newest visible version.
pub fn alerts(seed: u64, sub_index: usize, sub: &str, t: &Timeline) -> Vec<Item> {
    let s = sub_index as u64 + 1;
    let mut out = Vec::new();
    for j in 0..t.count {
        let r = h(seed, &[400, s, j as u64]);
        let (alert_type, title, description, intent, technique, component) =
            KINDS[(r % KINDS.len() as u64) as usize];
        let location = LOCATIONS[((r >> 4) % LOCATIONS.len() as u64) as usize];
        let rg = ["rg-prod-app", "rg-data", "rg-shared"][((r >> 8) % 3) as usize];
        let host = format!("web-vm-{:02}", (r >> 12) % 40);
        let name = format!(
            "{}_{}",
            2_517_398_712_345_678_901u64 - (j as u64) * 7_919,
            guid(seed, &[401, s, j as u64])
        );
        let id = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{location}/alerts/{name}");
        let generated = t.time(j);
        let severity = ["High", "Medium", "Low", "Informational"][((r >> 16) % 4) as usize];
        let account = CALLERS[((r >> 20) % CALLERS.len() as u64) as usize];
        let account = account.split('@').next().unwrap_or(account);
        let changes: &[&str] = if j % 6 == 0 {
            &["Active", "InProgress", "Resolved"]
        } else if j % 5 == 0 {
            &["Active", "Dismissed"]
        } else if j % 3 == 0 {
            &["Active", "InProgress"]
        } else {
            &["Active"]
        };
        let gap = (t.span_ms / 6).max(1_000);
        for (v, status) in changes.iter().enumerate() {
            let changed = generated + 1_000 + v as i64 * gap;
            let visible = t.visible(seed, j * 3 + v + 11, changed);
            let resource = format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{host}"
            );
            let body = json!({
                "id": id,
                "name": name,
                "type": "Microsoft.Security/Locations/alerts",
                "properties": {
                    "version": DEFENDER_API_VERSION,
                    "alertType": alert_type,
                    "systemAlertId": name,
                    "productComponentName": component,
                    "alertDisplayName": title,
                    "description": description,
                    "severity": severity,
                    "intent": intent,
                    "startTimeUtc": azure_time(generated - 240_000),
                    "endTimeUtc": azure_time(generated - 200_000),
                    "resourceIdentifiers": [{"type": "AzureResource", "azureResourceId": resource}],
                    "remediationSteps": ["Isolate the machine.", "Review the activity and reset the credentials involved."],
                    "vendorName": "Microsoft",
                    "status": status,
                    "alertUri": format!("https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{name}/subscriptionId/{sub}/resourceGroup/{rg}/referencedFrom/alertDeepLink/location/{location}"),
                    "timeGeneratedUtc": azure_time(generated),
                    "productName": "Microsoft Defender for Cloud",
                    "processingEndTimeUtc": azure_time(changed),
                    "entities": [
                        {"type": "host", "hostName": host, "azureID": resource},
                        {"type": "account", "name": account, "ntDomain": host.to_uppercase()},
                        {"type": "ip", "address": format!("198.51.100.{}", (r >> 24) % 250 + 1)},
                    ],
                    "isIncident": false,
                    "correlationKey": guid(seed, &[402, s, j as u64]),
                    "extendedProperties": {"user name": format!("{}\\{account}", host.to_uppercase()), "resourceType": "Virtual Machine"},
                    "compromisedEntity": host,
                    "techniques": [technique],
                    "subTechniques": [],
                },
            });
            out.push(Item {
                time_ms: changed,
                visible_ms: visible,
                object: j,
                body,
            });
        }
    }
    out
}

/// `GET /subscriptions/{id}/providers/Microsoft.Security/alerts`: the newest visible version of
/// every alert of the subscription, most recently generated first.
pub(super) fn listing<'a>(
    shared: &'a Shared,
    path: &str,
    q: &Query,
    rid: &str,
) -> Result<Listing<'a>, Box<Response>> {
    let sub_index = arm_subscription(shared, path, &DEFENDER_PATH, DEFENDER_API_VERSION, q, rid)?;
    let (asof, offset) = position(shared, q, Service::Management, rid)?;
    let mut current: std::collections::BTreeMap<usize, &Item> = Default::default();
    let data: &[Item] = sub_index.map_or(&[], |i| &shared.defender[i]);
    for item in data.iter().filter(|i| i.visible_ms <= asof) {
        current.insert(item.object, item);
    }
    let mut items: Vec<&Item> = current.into_values().collect();
    items.sort_by(|a, b| {
        let t = |i: &Item| {
            i.body["properties"]["timeGeneratedUtc"]
                .as_str()
                .map(str::to_owned)
        };
        t(b).cmp(&t(a)).then(a.object.cmp(&b.object))
    });
    let base = vec![("api-version".to_owned(), DEFENDER_API_VERSION.to_owned())];
    Ok((
        items
            .into_iter()
            .map(|i| std::borrow::Cow::Borrowed(&i.body))
            .collect(),
        base,
        asof,
        offset,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_change_status_and_keep_their_id() {
        let t = Timeline {
            count: 12,
            start_ms: 1_793_527_200_000,
            span_ms: 60_000,
            max_latency_ms: 1_000,
            late_every: None,
            late_by_ms: 0,
        };
        let items = alerts(1, 0, "sub", &t);
        let v0: Vec<_> = items.iter().filter(|i| i.object == 0).collect();
        let statuses: Vec<_> = v0
            .iter()
            .map(|i| i.body["properties"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["Active", "InProgress", "Resolved"]);
        assert!(v0.windows(2).all(|w| w[0].time_ms < w[1].time_ms));
        assert!(v0.iter().all(|i| i.body["id"] == v0[0].body["id"]));
        let dismissed = items
            .iter()
            .filter(|i| i.body["properties"]["status"] == "Dismissed")
            .count();
        assert_eq!(dismissed, 2, "alerts 5 and 10");
        let ids: std::collections::BTreeSet<_> =
            items.iter().map(|i| i.body["id"].to_string()).collect();
        assert_eq!(ids.len(), 12);
    }
}
