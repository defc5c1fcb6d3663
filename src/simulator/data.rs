//! Deterministic, realistic data for the simulator: Azure Activity Log records and Graph
//! `alerts_v2` alerts in the shapes of Microsoft Learn's pages "Azure activity log event schema"
//! (https://learn.microsoft.com/azure/azure-monitor/platform/activity-log-schema) and "List
//! alerts_v2" (https://learn.microsoft.com/graph/api/security-list-alerts_v2). The same seed
//! always yields the same records, event times and availability times.

use serde_json::{json, Value};

/// A record on the simulator's timeline.
#[derive(Debug, Clone)]
pub struct Item {
    /// The time the API filters on (eventTimestamp, lastUpdateDateTime), ms since the epoch.
    pub time_ms: i64,
    /// When the record becomes visible to queries (ingestion latency), ms since the epoch.
    pub visible_ms: i64,
    /// Identifies the object: for alerts, versions of one alert share it.
    pub object: usize,
    pub body: Value,
}

/// SplitMix64: a small deterministic mixer, enough to spread generated values.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(super) fn h(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |acc, p| mix(acc ^ p))
}

/// A GUID-shaped string derived from the inputs.
pub fn guid(seed: u64, parts: &[u64]) -> String {
    let a = h(seed, parts);
    let b = mix(a ^ 0x5151);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// `2026-11-01T10:00:00.1230000Z`: the 7-digit form Azure writes.
pub fn azure_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.7fZ").to_string())
        .unwrap_or_default()
}

/// .NET ticks (100 ns since 0001-01-01), as in activity-log ids.
fn ticks(ms: i64) -> i64 {
    ms * 10_000 + 621_355_968_000_000_000
}

/// How a timeline is laid out.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Records (activity) or alerts (graph) per scope.
    pub count: usize,
    /// Event time of the first record, ms since the epoch.
    pub start_ms: i64,
    /// Event times are spread evenly over this many ms.
    pub span_ms: i64,
    /// Normal ingestion latency is uniform in `0..max_latency_ms`.
    pub max_latency_ms: i64,
    /// Every `late_every`-th record becomes visible `late_by_ms` after its event time instead.
    pub late_every: Option<usize>,
    pub late_by_ms: i64,
}

impl Timeline {
    pub(super) fn time(&self, i: usize) -> i64 {
        self.start_ms + self.span_ms * i as i64 / self.count.max(1) as i64
    }

    pub(super) fn visible(&self, seed: u64, i: usize, time: i64) -> i64 {
        if self.late_every.is_some_and(|n| n > 0 && i % n == n / 2) {
            return time + self.late_by_ms;
        }
        time + (h(seed, &[7, i as u64]) % self.max_latency_ms.max(1) as u64) as i64
    }
}

const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "Microsoft.Authorization/roleAssignments/write",
        "Create role assignment",
        "Microsoft.Authorization",
        "roleAssignments",
    ),
    (
        "Microsoft.Compute/virtualMachines/write",
        "Create or Update Virtual Machine",
        "Microsoft.Compute",
        "virtualMachines",
    ),
    (
        "Microsoft.Network/networkSecurityGroups/securityRules/write",
        "Create or Update Security Rule",
        "Microsoft.Network",
        "networkSecurityGroups",
    ),
    (
        "Microsoft.Storage/storageAccounts/listKeys/action",
        "List Storage Account Keys",
        "Microsoft.Storage",
        "storageAccounts",
    ),
    (
        "Microsoft.KeyVault/vaults/write",
        "Update Key Vault",
        "Microsoft.KeyVault",
        "vaults",
    ),
    (
        "Microsoft.Compute/virtualMachines/delete",
        "Delete Virtual Machine",
        "Microsoft.Compute",
        "virtualMachines",
    ),
];

pub(super) const CALLERS: &[&str] = &[
    "j.rivera@contoso.example",
    "m.chen@contoso.example",
    "a.okafor@contoso.example",
    "ops-automation@contoso.example",
];

/// The activity-log records of one subscription. Records come in BeginRequest/EndRequest
/// pairs of one operation (same correlationId, different eventDataId), as ARM writes them.
pub fn activity(seed: u64, tenant: &str, sub_index: usize, sub: &str, t: &Timeline) -> Vec<Item> {
    let s = sub_index as u64 + 1;
    (0..t.count)
        .map(|i| {
            let op_n = i / 2;
            let begin = i % 2 == 0;
            let r = h(seed, &[s, op_n as u64]);
            let (op, op_text, provider, rtype) = OPERATIONS[(r % OPERATIONS.len() as u64) as usize];
            let failed = r % 11 == 3;
            let caller = CALLERS[((r >> 8) % CALLERS.len() as u64) as usize];
            let rg = format!("rg-{}", ["prod-app", "shared", "data", "dev"][((r >> 12) % 4) as usize]);
            let ip = format!("203.0.113.{}", (r >> 20) % 250 + 1);
            let correlation = guid(seed, &[s, op_n as u64, 1]);
            let event_id = guid(seed, &[s, i as u64, 2]);
            let resource_id = format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{rtype}/{}-{:03}",
                &rtype[..rtype.len().min(6)],
                (r >> 28) % 400
            );
            let time = t.time(i);
            let visible = t.visible(seed, i, time);
            let (status, sub_status, level) = match (begin, failed) {
                (true, _) => ("Started", "", "Informational"),
                (false, false) => ("Succeeded", "OK", "Informational"),
                (false, true) => ("Failed", "Forbidden", "Error"),
            };
            let body = json!({
                "authorization": {
                    "action": op,
                    "scope": resource_id,
                },
                "caller": caller,
                "channels": "Operation",
                "claims": {
                    "aud": "https://management.core.windows.net/",
                    "appid": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
                    "ipaddr": ip,
                    "name": caller.split('@').next().unwrap_or(caller),
                    "http://schemas.microsoft.com/identity/claims/objectidentifier": guid(seed, &[9, (r >> 8) % 4]),
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": caller,
                },
                "correlationId": correlation,
                "description": "",
                "eventDataId": event_id,
                "eventName": if begin {
                    json!({"value": "BeginRequest", "localizedValue": "Begin request"})
                } else {
                    json!({"value": "EndRequest", "localizedValue": "End request"})
                },
                "category": {"value": "Administrative", "localizedValue": "Administrative"},
                "eventTimestamp": azure_time(time),
                "httpRequest": {
                    "clientRequestId": guid(seed, &[s, op_n as u64, 3]),
                    "clientIpAddress": ip,
                    "method": if op.ends_with("/delete") { "DELETE" } else if op.ends_with("/action") { "POST" } else { "PUT" },
                },
                "id": format!("{resource_id}/events/{event_id}/ticks/{}", ticks(time)),
                "level": level,
                "operationId": correlation,
                "operationName": {"value": op, "localizedValue": op_text},
                "resourceGroupName": rg,
                "resourceProviderName": {"value": provider, "localizedValue": provider},
                "resourceType": {"value": format!("{provider}/{rtype}"), "localizedValue": format!("{provider}/{rtype}")},
                "resourceId": resource_id,
                "status": {"value": status, "localizedValue": status},
                "subStatus": {"value": sub_status, "localizedValue": sub_status},
                "submissionTimestamp": azure_time(visible),
                "subscriptionId": sub,
                "tenantId": tenant,
                "properties": {
                    "statusCode": if failed && !begin { "Forbidden" } else if begin { "" } else { "OK" },
                    "serviceRequestId": guid(seed, &[s, i as u64, 4]),
                },
            });
            Item {
                time_ms: time,
                visible_ms: visible,
                object: i,
                body,
            }
        })
        .collect()
}

const ALERTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "Suspicious LSASS memory access",
        "A process accessed LSASS memory in a way consistent with credential theft.",
        "CredentialAccess",
        "T1003.001",
        "microsoftDefenderForEndpoint",
    ),
    (
        "Impossible travel activity",
        "Sign-ins from geographically distant locations within a short time.",
        "InitialAccess",
        "T1078",
        "microsoftDefenderForCloudApps",
    ),
    (
        "Suspicious PowerShell command line",
        "A PowerShell command line with encoded content was run.",
        "Execution",
        "T1059.001",
        "microsoftDefenderForEndpoint",
    ),
    (
        "Anomalous key vault access",
        "An unusual principal listed secrets of a key vault.",
        "CredentialAccess",
        "T1555",
        "microsoftDefenderForCloud",
    ),
    (
        "Email messages containing malicious URL removed after delivery",
        "Messages with a malicious URL were removed from mailboxes.",
        "InitialAccess",
        "T1566.002",
        "microsoftDefenderForOffice365",
    ),
];

/// The versions of Graph alerts: every alert is created (`new`); every third one is later
/// moved to `inProgress` and every sixth resolved, each change a new version with a later
/// `lastUpdateDateTime`. Only the newest visible version of an alert is ever listed.
pub fn alerts(seed: u64, tenant: &str, t: &Timeline) -> Vec<Item> {
    let mut out = Vec::new();
    for j in 0..t.count {
        let r = h(seed, &[100, j as u64]);
        let (title, description, category, technique, service) =
            ALERTS[(r % ALERTS.len() as u64) as usize];
        let id = format!(
            "da{}_{}",
            638_765_081_234_567_890u64 + j as u64 * 7919,
            -(((r >> 16) % 2_000_000_000) as i64)
        );
        let created = t.time(j);
        let severity = ["low", "medium", "high", "informational"][((r >> 8) % 4) as usize];
        let user = CALLERS[((r >> 24) % CALLERS.len() as u64) as usize];
        let device = format!("fin-ws-{:03}.contoso.example", (r >> 32) % 200);
        let gap = (t.span_ms / 8).max(1_000);
        let changes: &[&str] = if j % 6 == 0 {
            &["new", "inProgress", "resolved"]
        } else if j % 3 == 0 {
            &["new", "inProgress"]
        } else {
            &["new"]
        };
        for (v, status) in changes.iter().enumerate() {
            let updated = created + 1_500 + v as i64 * gap;
            let visible = t.visible(seed, j * 3 + v, updated);
            let resolved = (*status == "resolved").then(|| azure_time(updated));
            let body = json!({
                "@odata.type": "#microsoft.graph.security.alert",
                "id": id,
                "providerAlertId": id,
                "incidentId": (48_000 + j).to_string(),
                "status": status,
                "severity": severity,
                "classification": if *status == "resolved" { "truePositive" } else { "unknown" },
                "determination": if *status == "resolved" { "malware" } else { "unknown" },
                "serviceSource": service,
                "detectionSource": service,
                "detectorId": guid(seed, &[101, (r >> 4) % 32]),
                "tenantId": tenant,
                "title": title,
                "description": description,
                "category": category,
                "mitreTechniques": [technique],
                "createdDateTime": azure_time(created),
                "lastUpdateDateTime": azure_time(updated),
                "resolvedDateTime": resolved,
                "firstActivityDateTime": azure_time(created - 180_000),
                "lastActivityDateTime": azure_time(created - 175_000),
                "assignedTo": if v > 0 { Value::from(user) } else { Value::Null },
                "alertWebUrl": format!("https://security.microsoft.com/alerts/{id}?tid={tenant}"),
                "incidentWebUrl": format!("https://security.microsoft.com/incidents/{}?tid={tenant}", 48_000 + j),
                "evidence": [
                    {"@odata.type": "#microsoft.graph.security.deviceEvidence", "roles": ["compromised"], "verdict": "suspicious",
                     "deviceDnsName": device, "mdeDeviceId": format!("{:016x}{:016x}", r, mix(r)), "ipInterfaces": [format!("10.20.{}.{}", (r >> 40) % 250, (r >> 48) % 250)]},
                    {"@odata.type": "#microsoft.graph.security.userEvidence", "roles": [], "verdict": "unknown",
                     "userAccount": {"accountName": user.split('@').next().unwrap_or(user), "domainName": "CONTOSO",
                                     "azureAdUserId": guid(seed, &[9, (r >> 24) % 4]), "userPrincipalName": user}},
                ],
            });
            out.push(Item {
                time_ms: updated,
                visible_ms: visible,
                object: j,
                body,
            });
        }
    }
    out
}

const AUDITS: &[(&str, &str, &str, &str)] = &[
    (
        "Add member to role",
        "RoleManagement",
        "Assign",
        "Core Directory",
    ),
    (
        "Add member to group",
        "GroupManagement",
        "Add",
        "Core Directory",
    ),
    ("Update user", "UserManagement", "Update", "Core Directory"),
    (
        "Reset user password",
        "UserManagement",
        "Update",
        "Self-service Password Management",
    ),
    (
        "Add service principal credentials",
        "ApplicationManagement",
        "Update",
        "Core Directory",
    ),
    (
        "Add eligible member to role in PIM completed (permanent)",
        "RoleManagement",
        "Add",
        "PIM",
    ),
];

/// Entra directory audit records in the shape of Microsoft Learn's "directoryAudit resource
/// type" (https://learn.microsoft.com/graph/api/resources/directoryaudit), one version each.
pub fn directory_audits(seed: u64, t: &Timeline) -> Vec<Item> {
    (0..t.count)
        .map(|i| {
            let r = h(seed, &[200, i as u64]);
            let (activity, category, op, service) = AUDITS[(r % AUDITS.len() as u64) as usize];
            let correlation = guid(seed, &[201, i as u64]);
            let actor = CALLERS[((r >> 8) % CALLERS.len() as u64) as usize];
            let target = CALLERS[((r >> 12) % CALLERS.len() as u64) as usize];
            let time = t.time(i);
            let failed = r % 13 == 5;
            let body = json!({
                "id": format!("Directory_{correlation}_{}_{}", ["KZ1QX", "7PW2B", "R9T0D"][((r >> 16) % 3) as usize], 41_000_000 + i),
                "category": category,
                "correlationId": correlation,
                "result": if failed { "failure" } else { "success" },
                "resultReason": if failed { "Insufficient privileges" } else { "" },
                "activityDisplayName": activity,
                "activityDateTime": azure_time(time),
                "loggedByService": service,
                "operationType": op,
                "initiatedBy": {
                    "user": {"id": guid(seed, &[9, (r >> 8) % 4]), "displayName": actor.split('@').next().unwrap_or(actor),
                             "userPrincipalName": actor, "ipAddress": format!("203.0.113.{}", (r >> 20) % 250 + 1)},
                    "app": null,
                },
                "targetResources": [{
                    "id": guid(seed, &[9, (r >> 12) % 4]), "displayName": null, "type": "User", "userPrincipalName": target,
                    "modifiedProperties": [{"displayName": "Role.DisplayName", "oldValue": null, "newValue": "\"Security Reader\""}],
                }],
                "additionalDetails": [{"key": "User-Agent", "value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}],
            });
            Item {
                time_ms: time,
                visible_ms: t.visible(seed, i, time),
                object: i,
                body,
            }
        })
        .collect()
}

const APPS: &[(&str, &str)] = &[
    (
        "00000002-0000-0ff1-ce00-000000000000",
        "Office 365 Exchange Online",
    ),
    (
        "00000003-0000-0ff1-ce00-000000000000",
        "Office 365 SharePoint Online",
    ),
    ("c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Azure Portal"),
    ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams"),
];

/// Entra interactive sign-ins in the shape of Microsoft Learn's "signIn resource type"
/// (https://learn.microsoft.com/graph/api/resources/signin), one version each.
pub fn sign_ins(seed: u64, t: &Timeline) -> Vec<Item> {
    (0..t.count).map(|i| sign_in(seed, t, i)).collect()
}

/// The id of sign-in `i`.
pub fn sign_in_id(seed: u64, i: usize) -> String {
    guid(seed, &[301, i as u64])
}

/// The event time and visibility time of sign-in `i`, without its body.
pub fn sign_in_times(seed: u64, t: &Timeline, i: usize) -> (i64, i64) {
    let time = t.time(i);
    (time, t.visible(seed, i + 7, time))
}

/// Sign-in `i` of the timeline.
pub fn sign_in(seed: u64, t: &Timeline, i: usize) -> Item {
    let r = h(seed, &[300, i as u64]);
    let (app_id, app) = APPS[(r % APPS.len() as u64) as usize];
    let user = CALLERS[((r >> 8) % CALLERS.len() as u64) as usize];
    let time = t.time(i);
    let failed = r % 7 == 2;
    let (city, country) = [
        ("Lisbon", "PT"),
        ("Seattle", "US"),
        ("Berlin", "DE"),
        ("Lagos", "NG"),
    ][((r >> 16) % 4) as usize];
    let risk = if r % 17 == 4 { "medium" } else { "none" };
    let body = json!({
        "id": sign_in_id(seed, i),
        "createdDateTime": azure_time(time),
        "userDisplayName": user.split('@').next().unwrap_or(user),
        "userPrincipalName": user,
        "userId": guid(seed, &[9, (r >> 8) % 4]),
        "appId": app_id,
        "appDisplayName": app,
        "ipAddress": format!("198.51.100.{}", (r >> 24) % 250 + 1),
        "clientAppUsed": "Browser",
        "correlationId": guid(seed, &[302, i as u64]),
        "conditionalAccessStatus": if failed { "notApplied" } else { "success" },
        "isInteractive": true,
        "riskDetail": "none",
        "riskLevelAggregated": risk,
        "riskLevelDuringSignIn": risk,
        "riskState": if risk == "none" { "none" } else { "atRisk" },
        "riskEventTypes_v2": if risk == "none" { json!([]) } else { json!(["unfamiliarFeatures"]) },
        "resourceDisplayName": app,
        "resourceId": app_id,
        "status": if failed {
            json!({"errorCode": 50126, "failureReason": "Error validating credentials due to invalid username or password.", "additionalDetails": null})
        } else {
            json!({"errorCode": 0, "failureReason": "Other.", "additionalDetails": null})
        },
        "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "Windows 10", "browser": "Edge 122.0.0",
                         "isCompliant": false, "isManaged": false, "trustType": ""},
        "location": {"city": city, "state": "", "countryOrRegion": country, "geoCoordinates": {"latitude": 38.72, "longitude": -9.14}},
        "appliedConditionalAccessPolicies": [],
    });
    Item {
        time_ms: time,
        visible_ms: t.visible(seed, i + 7, time),
        object: i,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        Timeline {
            count: 40,
            start_ms: 1_793_527_200_000,
            span_ms: 60_000,
            max_latency_ms: 2_000,
            late_every: Some(10),
            late_by_ms: 30_000,
        }
    }

    #[test]
    fn generation_is_deterministic_and_ids_unique() {
        let a = activity(7, "t", 0, "s", &timeline());
        let b = activity(7, "t", 0, "s", &timeline());
        assert_eq!(a.len(), 40);
        let ids: std::collections::BTreeSet<_> = a
            .iter()
            .map(|i| i.body["eventDataId"].to_string())
            .collect();
        assert_eq!(ids.len(), 40);
        assert!(a.iter().zip(&b).all(|(x, y)| x.body == y.body));
        assert_ne!(
            a[0].body["eventDataId"],
            activity(8, "t", 0, "s", &timeline())[0].body["eventDataId"]
        );
        // Pairs share an operation.
        assert_eq!(a[0].body["correlationId"], a[1].body["correlationId"]);
        assert_eq!(
            a[0].body["eventTimestamp"].as_str().unwrap().len(),
            "2026-11-01T10:00:00.0000000Z".len()
        );
    }

    #[test]
    fn late_records_become_visible_late() {
        let t = timeline();
        let items = activity(1, "t", 0, "s", &t);
        let late = items
            .iter()
            .filter(|i| i.visible_ms - i.time_ms >= 30_000)
            .count();
        assert_eq!(late, 4);
        assert!(items
            .iter()
            .all(|i| i.visible_ms >= i.time_ms && i.visible_ms - i.time_ms <= 30_000));
    }

    #[test]
    fn alerts_change_status_in_later_versions() {
        let items = alerts(3, "t", &timeline());
        let first = items.iter().filter(|i| i.object == 0).count();
        assert_eq!(first, 3, "alert 0 is created, taken in progress, resolved");
        let v: Vec<_> = items.iter().filter(|i| i.object == 0).collect();
        assert!(v[0].time_ms < v[1].time_ms && v[1].time_ms < v[2].time_ms);
        assert_eq!(v[2].body["status"], "resolved");
        assert_eq!(v[0].body["id"], v[2].body["id"]);
    }
}
