//! The simulator's Defender XDR incidents (Graph `security/incidents`, alerts expanded on
//! request) and Entra ID Protection records (`riskDetections`, `servicePrincipalRiskDetections`,
//! `riskyUsers`), in the shapes of Microsoft Learn's "incident resource type", "riskDetection
//! resource type" and "riskyUser resource type" (see `docs/graph-incidents-and-risk.md`). Records
//! change in place: an incident is updated later with a new `lastUpdateDateTime` and a grown
//! alert set, a detection is remediated, a risky user's state and level move.

use serde_json::{json, Value};

use super::data::{azure_time, guid, h, Item, Timeline, CALLERS};

/// The versions of the tenant's incidents: each is raised with one alert; every second one is
/// updated later with a second alert (`inProgress`, severity raised to `high`), every fourth
/// then resolved as a true positive. A listing shows each incident's newest visible version.
pub fn incidents(seed: u64, tenant: &str, t: &Timeline) -> Vec<Item> {
    let mut out = Vec::new();
    let gap = (t.span_ms / 8).max(1_000);
    for j in 0..t.count {
        let r = h(seed, &[900, j as u64]);
        let id = (3_100_000 + j as u64).to_string();
        let created = t.time(j);
        let user = CALLERS[(r % CALLERS.len() as u64) as usize];
        let device = format!("fin-ws-{:03}.contoso.example", (r >> 8) % 200);
        let ip = format!("203.0.113.{}", (r >> 16) % 250 + 1);
        let versions = if j % 4 == 0 {
            3
        } else if j % 2 == 0 {
            2
        } else {
            1
        };
        for v in 0..versions {
            let updated = created + 2_000 + v as i64 * gap;
            let visible = t.visible(seed, j * 3 + v, updated);
            let (status, severity, classification, determination) = match v {
                0 => ("active", "medium", "unknown", "unknown"),
                1 => ("inProgress", "high", "unknown", "unknown"),
                _ => ("resolved", "high", "truePositive", "compromisedUser"),
            };
            let mut alerts = vec![alert(
                &format!(
                    "da{}_{}",
                    638_800_000_000_000_000u64 + j as u64,
                    r % 1_000_000
                ),
                &id,
                created,
                updated.min(created + 2_000),
                "microsoftDefenderForEndpoint",
                "Suspicious PowerShell command line",
                json!([{
                    "@odata.type": "#microsoft.graph.security.deviceEvidence",
                    "deviceDnsName": device,
                    "ipInterfaces": [format!("10.20.{}.{}", (r >> 24) % 250, (r >> 32) % 250 + 1)]
                }, {
                    "@odata.type": "#microsoft.graph.security.userEvidence",
                    "userAccount": {"accountName": user.split('@').next().unwrap_or(user), "userPrincipalName": user}
                }]),
            )];
            if v >= 1 {
                alerts.push(alert(
                    &format!("ca{}", guid(seed, &[901, j as u64]).replace('-', "")),
                    &id,
                    created + gap,
                    updated,
                    "microsoftCloudAppSecurity",
                    "Activity from an anonymous proxy",
                    json!([{
                        "@odata.type": "#microsoft.graph.security.ipEvidence",
                        "ipAddress": ip
                    }]),
                ));
            }
            out.push(version(
                j,
                updated,
                visible,
                json!({
                    "@odata.type": "#microsoft.graph.security.incident",
                    "id": id,
                    "incidentWebUrl": format!("https://security.microsoft.com/incidents/{id}?tid={tenant}"),
                    "redirectIncidentId": null,
                    "tenantId": tenant,
                    "displayName": format!("Multi-stage incident involving Execution on {device}"),
                    "description": null,
                    "createdDateTime": azure_time(created),
                    "lastUpdateDateTime": azure_time(updated),
                    "assignedTo": (v >= 1).then_some("soc-analyst@contoso.example"),
                    "classification": classification,
                    "determination": determination,
                    "status": status,
                    "severity": severity,
                    "tags": [],
                    "systemTags": [],
                    "comments": [],
                    "alerts": alerts,
                }),
            ));
        }
    }
    out
}

fn alert(
    id: &str,
    incident: &str,
    created: i64,
    updated: i64,
    service: &str,
    title: &str,
    evidence: Value,
) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id,
        "incidentId": incident,
        "status": "new",
        "severity": "medium",
        "serviceSource": service,
        "title": title,
        "createdDateTime": azure_time(created),
        "lastUpdateDateTime": azure_time(updated),
        "evidence": evidence,
    })
}

const RISK_TYPES: &[&str] = &[
    "anonymizedIPAddress",
    "unfamiliarFeatures",
    "impossibleTravel",
    "leakedCredentials",
    "passwordSpray",
];

/// The versions of the tenant's risk detections (user ones, or with `service_principals` the
/// service principal ones): each is raised `atRisk`; every third is remediated later (a new
/// `lastUpdatedDateTime`). Users' detections carry an id of 64 hex digits, as published.
pub fn detections(seed: u64, t: &Timeline, service_principals: bool) -> Vec<Item> {
    let tag = if service_principals { 920 } else { 910 };
    let mut out = Vec::new();
    let gap = (t.span_ms / 8).max(1_000);
    for j in 0..t.count {
        let r = h(seed, &[tag, j as u64]);
        let id = format!(
            "{}{}",
            guid(seed, &[tag, j as u64, 1]).replace('-', ""),
            guid(seed, &[tag, j as u64, 2]).replace('-', "")
        );
        let detected = t.time(j);
        let risk_type = RISK_TYPES[(r % RISK_TYPES.len() as u64) as usize];
        let level = ["low", "medium", "high"][((r >> 8) % 3) as usize];
        let user = CALLERS[((r >> 16) % CALLERS.len() as u64) as usize];
        let versions = if j % 3 == 0 { 2 } else { 1 };
        for v in 0..versions {
            let updated = detected + 1_000 + v as i64 * gap;
            let visible = t.visible(seed, j * 2 + v, updated);
            let (state, detail) = if v == 0 {
                ("atRisk", "none")
            } else {
                ("remediated", "userPassedMFADrivenByRiskBasedPolicy")
            };
            let mut body = json!({
                "id": id,
                "requestId": null,
                "correlationId": null,
                "riskEventType": risk_type,
                "riskState": state,
                "riskLevel": level,
                "riskDetail": detail,
                "source": "IdentityProtection",
                "detectionTimingType": "realtime",
                "tokenIssuerType": "AzureAD",
                "activityDateTime": azure_time(detected - 500),
                "detectedDateTime": azure_time(detected),
                "lastUpdatedDateTime": azure_time(updated),
                "additionalInfo": "[{\"Key\":\"userAgent\",\"Value\":\"Mozilla/5.0\"}]",
            });
            let extra = if service_principals {
                json!({
                    "@odata.type": "#microsoft.graph.servicePrincipalRiskDetection",
                    "riskEventType": "investigationsThreatIntelligence",
                    "activity": "servicePrincipal",
                    "ipAddress": null,
                    "location": null,
                    "servicePrincipalId": guid(seed, &[tag, j as u64, 3]),
                    "servicePrincipalDisplayName": format!("Contoso App {}", j % 7),
                    "appId": guid(seed, &[tag, j as u64, 4]),
                    "keyIds": [guid(seed, &[tag, j as u64, 5])],
                })
            } else {
                json!({
                    "@odata.type": "#microsoft.graph.riskDetection",
                    "requestId": guid(seed, &[tag, j as u64, 6]),
                    "correlationId": guid(seed, &[tag, j as u64, 7]),
                    "activity": "signin",
                    "ipAddress": format!("198.51.100.{}", (r >> 24) % 250 + 1),
                    "location": {"city": "Chisinau", "state": "Chisinau", "countryOrRegion": "MD",
                        "geoCoordinates": {"latitude": 47.0, "longitude": 28.8}},
                    "userId": guid(seed, &[930, (r >> 16) % CALLERS.len() as u64]),
                    "userDisplayName": user.split('@').next().unwrap_or(user),
                    "userPrincipalName": user,
                })
            };
            if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
                b.extend(e);
            }
            out.push(version(j, updated, visible, body));
        }
    }
    out
}

/// The versions of the tenant's risky users: each becomes `atRisk` at some level; every second
/// one is later remediated (`none`), every fourth then at risk again at `high`.
pub fn risky_users(seed: u64, t: &Timeline) -> Vec<Item> {
    let mut out = Vec::new();
    let gap = (t.span_ms / 8).max(1_000);
    for j in 0..t.count {
        let r = h(seed, &[940, j as u64]);
        let user = CALLERS[(j as u64 % CALLERS.len() as u64) as usize];
        let first = ["low", "medium"][(r % 2) as usize];
        let changes: &[(&str, &str, &str)] = if j % 4 == 0 {
            &[
                ("atRisk", "medium", "none"),
                ("remediated", "none", "userPerformedSecuredPasswordReset"),
                ("atRisk", "high", "none"),
            ]
        } else if j % 2 == 0 {
            &[
                ("atRisk", "medium", "none"),
                ("remediated", "none", "userPassedMFADrivenByRiskBasedPolicy"),
            ]
        } else {
            &[("atRisk", "medium", "none")]
        };
        for (v, (state, level, detail)) in changes.iter().enumerate() {
            let level = if v == 0 { first } else { level };
            let updated = t.time(j) + 1_000 + v as i64 * gap;
            let visible = t.visible(seed, j * 3 + v, updated);
            out.push(version(
                j,
                updated,
                visible,
                json!({
                    "id": guid(seed, &[941, j as u64]),
                    "isDeleted": false,
                    "isProcessing": false,
                    "riskLevel": level,
                    "riskState": state,
                    "riskDetail": detail,
                    "riskLastUpdatedDateTime": azure_time(updated),
                    "userDisplayName": user.split('@').next().unwrap_or(user),
                    "userPrincipalName": user,
                }),
            ));
        }
    }
    out
}

/// One version of object `object`, filtered on `updated`, listed from `visible`.
fn version(object: usize, updated: i64, visible: i64, body: Value) -> Item {
    Item {
        time_ms: updated,
        visible_ms: visible,
        object,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_token, Faults, Service, SimConfig, Simulator};
    use serde_json::Value;
    use std::time::Duration;

    /// A Graph client of the simulator, with a token.
    struct G {
        sim: Simulator,
        http: reqwest::Client,
        token: String,
    }

    impl G {
        async fn start(cfg: SimConfig) -> G {
            let sim = Simulator::start(cfg).await.unwrap();
            let http = reqwest::Client::clone(&crate::sources::azure::client::client());
            let token = test_token(&sim, &http, Service::Graph).await;
            G { sim, http, token }
        }
        async fn get(&self, url: &str) -> (u16, Option<String>, Value) {
            get(&self.sim, &self.http, &self.token, url).await
        }
        async fn all(&self, url: &str) -> (Vec<Value>, usize) {
            all(&self.sim, &self.http, &self.token, url).await
        }
    }

    /// `(status, Retry-After, body)` of a Graph GET with a token.
    async fn get(
        sim: &Simulator,
        http: &reqwest::Client,
        token: &str,
        url: &str,
    ) -> (u16, Option<String>, Value) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", sim.endpoint(Service::Graph))
        };
        let r = http.get(url).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, r.json().await.unwrap_or_default())
    }

    /// Follows `@odata.nextLink` from `first`; every record of every page.
    async fn all(
        sim: &Simulator,
        http: &reqwest::Client,
        token: &str,
        first: &str,
    ) -> (Vec<Value>, usize) {
        let (mut out, mut pages, mut url) = (Vec::new(), 0, first.to_owned());
        loop {
            let (status, _, body) = get(sim, http, token, &url).await;
            assert_eq!(status, 200, "{url}: {body}");
            pages += 1;
            out.extend(body["value"].as_array().unwrap().iter().cloned());
            match body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return (out, pages),
            }
        }
    }

    fn config() -> SimConfig {
        let mut cfg = SimConfig::around_now(Duration::from_secs(3600), Duration::ZERO, 24);
        cfg.alerts.max_latency_ms = 1;
        cfg.alerts.late_every = None;
        cfg
    }

    #[tokio::test]
    async fn incidents_page_filter_order_and_expand_alerts_only_when_asked() {
        let g = G::start(config()).await;
        let (plain, pages) = g.all("/v1.0/security/incidents?$top=5").await;
        assert_eq!(plain.len(), 24, "one current version per incident");
        assert_eq!(pages, 5);
        assert!(plain.iter().all(|i| i.get("alerts").is_none()));
        let times = |v: &[Value]| -> Vec<i64> {
            v.iter()
                .map(|i| {
                    crate::event::parse_time_ms(i["lastUpdateDateTime"].as_str().unwrap()).unwrap()
                })
                .collect()
        };
        let t = times(&plain);
        assert!(t.windows(2).all(|w| w[0] >= w[1]), "newest first");
        // A window on lastUpdateDateTime, oldest first, alerts expanded, across pages.
        let (lo, hi) = (t[20], t[4]);
        let q = format!(
            "/v1.0/security/incidents?$expand=alerts&$orderby=lastUpdateDateTime%20asc&$top=3&$filter=lastUpdateDateTime%20ge%20{}%20and%20lastUpdateDateTime%20lt%20{}",
            super::azure_time(lo),
            super::azure_time(hi)
        );
        let (window, pages) = g.all(&q).await;
        let w = times(&window);
        assert!(w.iter().all(|x| *x >= lo && *x < hi), "{w:?}");
        assert_eq!(w.len(), t.iter().filter(|x| **x >= lo && **x < hi).count());
        assert!(pages > 1);
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "oldest first");
        assert!(window
            .iter()
            .all(|i| i["alerts"].as_array().is_some_and(|a| !a.is_empty())));
        // An incident updated later has a newer time and a grown alert set.
        let versions = &g.sim.risk_versions()[0];
        let of = |id: &str| {
            versions
                .iter()
                .filter(|v| v["id"] == id)
                .collect::<Vec<_>>()
        };
        let grown = of(versions[0]["id"].as_str().unwrap());
        assert_eq!(grown.len(), 3);
        assert!(grown[1]["lastUpdateDateTime"].as_str() > grown[0]["lastUpdateDateTime"].as_str());
        assert_eq!(grown[0]["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(grown[1]["alerts"].as_array().unwrap().len(), 2);
        let (status, _, body) = g.get("/v1.0/security/incidents?$orderby=severity").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("BadRequest"))
        );
    }

    #[tokio::test]
    async fn identity_protection_lists_filter_and_answer_unlicensed_tenants_403() {
        let g = G::start(config()).await;
        for (path, field, kind) in [
            (
                "riskDetections",
                "lastUpdatedDateTime",
                "#microsoft.graph.riskDetection",
            ),
            (
                "servicePrincipalRiskDetections",
                "lastUpdatedDateTime",
                "#microsoft.graph.servicePrincipalRiskDetection",
            ),
            ("riskyUsers", "riskLastUpdatedDateTime", ""),
        ] {
            let (every, pages) = g
                .all(&format!("/v1.0/identityProtection/{path}?$top=10"))
                .await;
            assert_eq!((every.len(), pages), (24, 3), "{path}");
            assert!(every
                .iter()
                .all(|r| kind.is_empty() || r["@odata.type"] == kind));
            let mid = every[12][field].as_str().unwrap().to_owned();
            let (newer, _) = g
                .all(&format!(
                    "/v1.0/identityProtection/{path}?$filter={field}%20ge%20{mid}"
                ))
                .await;
            let expected = every
                .iter()
                .filter(|r| r[field].as_str().unwrap() >= mid.as_str())
                .count();
            assert!((13..24).contains(&expected), "{path}: {expected}");
            assert_eq!(newer.len(), expected, "{path}: ge includes the boundary");
        }
        g.sim.set_unlicensed(true);
        for path in [
            "identityProtection/riskyUsers",
            "identityProtection/riskDetections",
            "security/incidents",
        ] {
            let (status, _, body) = g.get(&format!("/v1.0/{path}")).await;
            assert_eq!(status, 403, "{path}");
            assert_eq!(body["error"]["message"], super::super::wire::NOT_LICENSED);
        }
        let (status, _, _) = g.get("/v1.0/security/alerts_v2").await;
        assert_eq!(status, 200, "other lists are not licensed apart");
    }

    #[tokio::test]
    async fn identity_protection_throttles_without_retry_after_and_incidents_with_it() {
        let mut cfg = config();
        cfg.faults = Faults {
            throttle_every: Some(1),
            retry_after_secs: 0,
            ..Faults::default()
        };
        let g = G::start(cfg).await;
        let (status, retry, _) = g.get("/v1.0/identityProtection/riskyUsers").await;
        assert_eq!((status, retry), (429, None));
        let (status, retry, _) = g.get("/v1.0/security/incidents").await;
        assert_eq!((status, retry.as_deref()), (429, Some("0")));
    }
}
