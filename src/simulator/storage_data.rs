//! The simulated storage account's content, generated from the seeded timeline: the hourly
//! `PT1H.json` blobs diagnostic settings and NSG flow logs write (see `docs/storage-archives.md`).
//! Activity-log records (the storage and Event Hubs schema, not the REST one) and Key Vault
//! `AuditEvent` resource logs go to append blobs of JSON lines, in the hour they are received;
//! NSG flow logs (version 2) go to block blobs holding one `{"records":[…]}` document, in the
//! hour of the record. Every record has a visibility time: a blob grows as they pass.

use serde_json::{json, Value};

use super::data::{self, azure_time, guid, h, Timeline, CALLERS};
use super::wire::{CONTAINER_ACTIVITY, CONTAINER_KEY_VAULT, CONTAINER_NSG_FLOW};

/// How a blob is written: appended JSON lines, or a block list rewritten with more records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Append,
    Block,
}

impl BlobKind {
    /// `x-ms-blob-type` / `BlobType`.
    pub fn wire_name(self) -> &'static str {
        match self {
            BlobKind::Append => "AppendBlob",
            BlobKind::Block => "BlockBlob",
        }
    }
}

/// One record of a blob: when it is written, and its JSON text (one line).
#[derive(Debug, Clone)]
pub struct Record {
    pub visible_ms: i64,
    pub text: String,
}

/// One `PT1H.json` blob and every record it will ever hold, in the order they are written.
#[derive(Debug, Clone)]
pub struct Blob {
    pub container: &'static str,
    pub name: String,
    pub kind: BlobKind,
    pub records: Vec<Record>,
}

/// `y=2026/m=12/d=06/h=17/m=00`: the hour folders of a blob name.
pub fn hour_path(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("y=%Y/m=%m/d=%d/h=%H/m=00").to_string())
        .unwrap_or_default()
}

/// Groups records into one blob per (container, resource path, hour of `hour_ms`), blobs
/// sorted by name, records of a blob by visibility.
fn into_blobs(
    container: &'static str,
    kind: BlobKind,
    items: Vec<(String, i64, Record)>,
) -> Vec<Blob> {
    let mut by_name: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
    for (resource, hour_ms, record) in items {
        let name = format!("{resource}/{}/PT1H.json", hour_path(hour_ms));
        by_name.entry(name).or_default().push(record);
    }
    by_name
        .into_iter()
        .map(|(name, mut records)| {
            records.sort_by_key(|r| r.visible_ms);
            Blob {
                container,
                name,
                kind,
                records,
            }
        })
        .collect()
}

/// Every blob of the account: activity logs of each subscription, one key vault's audit
/// events, and one NSG's flow logs, `t.count` records of each.
pub fn account(seed: u64, tenant: &str, subscriptions: &[String], t: &Timeline) -> Vec<Blob> {
    let mut out = Vec::new();
    let mut activity_items = Vec::new();
    for (i, sub) in subscriptions.iter().enumerate() {
        for item in data::activity(seed, tenant, i, sub, t) {
            let resource = format!("resourceId=/SUBSCRIPTIONS/{}", sub.to_uppercase());
            let text = activity_record(&item.body).to_string();
            let record = Record {
                visible_ms: item.visible_ms,
                text,
            };
            // Received time decides the hour ("Send to Azure Storage").
            activity_items.push((resource, item.visible_ms, record));
        }
    }
    out.extend(into_blobs(
        CONTAINER_ACTIVITY,
        BlobKind::Append,
        activity_items,
    ));
    let sub = subscriptions
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let vault = format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/RG-SHARED/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-CONTOSO-01",
        sub.to_uppercase()
    );
    let audit = (0..t.count)
        .map(|i| {
            let time = t.time(i);
            let visible = t.visible(seed, i + 11, time);
            let record = Record {
                visible_ms: visible,
                text: key_vault_record(seed, &vault, i, time).to_string(),
            };
            (format!("resourceId={vault}"), visible, record)
        })
        .collect();
    out.extend(into_blobs(CONTAINER_KEY_VAULT, BlobKind::Append, audit));
    let nsg = format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/RG-PROD-APP/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WEB-NSG",
        sub.to_uppercase()
    );
    // Flow logs are filed under the hour of the record itself, the MAC folder after the hour
    // folders ("Read flow logs").
    let mut flows: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
    for i in 0..t.count {
        let time = t.time(i);
        let mac = MACS[i % MACS.len()];
        let name = format!(
            "resourceId={nsg}/{}/macAddress={mac}/PT1H.json",
            hour_path(time)
        );
        flows.entry(name).or_default().push(Record {
            visible_ms: t.visible(seed, i + 23, time),
            text: nsg_flow_record(seed, &nsg, mac, i, time).to_string(),
        });
    }
    for (name, mut records) in flows {
        records.sort_by_key(|r| r.visible_ms);
        out.push(Blob {
            container: CONTAINER_NSG_FLOW,
            name,
            kind: BlobKind::Block,
            records,
        });
    }
    out
}

/// An activity-log record of the REST schema (`data::activity`) in the schema of storage
/// accounts and event hubs (Microsoft Learn, "Azure Monitor activity log schema", section
/// "Schema from storage account and event hubs").
pub fn activity_record(rest: &Value) -> Value {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let op = s(&rest["operationName"]["value"]);
    let status = s(&rest["status"]["value"]);
    let sub_status = s(&rest["subStatus"]["value"]);
    let signature = if sub_status.is_empty() {
        status.clone()
    } else {
        format!("{status}.{sub_status}")
    };
    let resource = s(&rest["resourceId"]);
    json!({
        "time": rest["eventTimestamp"],
        "resourceId": resource.to_uppercase(),
        "operationName": op.to_uppercase(),
        "category": "Administrative",
        "resultType": status,
        "resultSignature": signature,
        "durationMs": 0,
        "callerIpAddress": rest["httpRequest"]["clientIpAddress"],
        "correlationId": rest["correlationId"],
        "identity": {
            "authorization": rest["authorization"],
            "claims": rest["claims"],
        },
        "level": if rest["level"] == "Error" { "Error" } else { "Information" },
        "location": "global",
        "properties": {
            "statusCode": rest["properties"]["statusCode"],
            "serviceRequestId": rest["properties"]["serviceRequestId"],
            "eventCategory": "Administrative",
            "entity": resource,
            "message": op,
            "hierarchy": "",
        },
    })
}

const VAULT_OPERATIONS: &[(&str, &str)] = &[
    ("SecretGet", "secrets/app-db-password"),
    ("SecretList", "secrets"),
    ("KeyGet", "keys/signing-key"),
    ("VaultGet", ""),
];

/// A Key Vault `AuditEvent` resource log, shaped as Microsoft's published sample ("Prepare for
/// format change to Azure Monitor platform logs archived to a storage account").
fn key_vault_record(seed: u64, vault: &str, i: usize, time: i64) -> Value {
    let r = h(seed, &[500, i as u64]);
    let (op, path) = VAULT_OPERATIONS[(r % VAULT_OPERATIONS.len() as u64) as usize];
    let caller = CALLERS[((r >> 8) % CALLERS.len() as u64) as usize];
    let denied = r % 9 == 4;
    json!({
        "time": azure_time(time),
        "resourceId": vault,
        "operationName": op,
        "operationVersion": "7.4",
        "category": "AuditEvent",
        "resultType": if denied { "Unauthorized" } else { "Success" },
        "resultSignature": if denied { "Forbidden" } else { "OK" },
        "resultDescription": "",
        "durationMs": ((r >> 16) % 200 + 5).to_string(),
        "callerIpAddress": format!("203.0.113.{}", (r >> 24) % 250 + 1),
        "correlationId": guid(seed, &[501, i as u64]),
        "identity": {"claim": {
            "http://schemas.microsoft.com/identity/claims/objectidentifier": guid(seed, &[9, (r >> 8) % 4]),
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": caller,
            "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        }},
        "properties": {
            "id": format!("https://kv-contoso-01.vault.azure.net/{path}"),
            "clientInfo": "azsdk-python-keyvault-secrets/4.8.0",
            "httpStatusCode": if denied { 403 } else { 200 },
            "requestUri": format!("https://kv-contoso-01.vault.azure.net/{path}?api-version=7.4"),
            "isAccessPolicyMatch": !denied,
        },
    })
}

const MACS: &[&str] = &["000D3AF87856", "000D3AF8801A"];

/// A version 2 NSG flow log record of one minute: tuples
/// `time,src,dst,sport,dport,T|U,I|O,A|D,B|C|E,packets out,bytes out,packets in,bytes in`
/// ("Flow logging for network security groups", "Log format").
fn nsg_flow_record(seed: u64, nsg: &str, mac: &str, i: usize, time: i64) -> Value {
    let r = h(seed, &[600, i as u64]);
    let secs = time / 1000;
    let tuple = |k: u64, inbound: bool, allow: bool| {
        let x = data::mix(r ^ k);
        let outside = format!("198.51.100.{}", x % 250 + 1);
        let inside = format!("10.5.16.{}", (x >> 8) % 20 + 4);
        let port = [443, 22, 3389, 8088][((x >> 16) % 4) as usize];
        let sport = 1024 + (x >> 24) % 60_000;
        let proto = if (x >> 40) % 5 == 0 { "U" } else { "T" };
        let (src, dst, sp, dp, dir) = if inbound {
            (outside, inside, sport, port, "I")
        } else {
            (inside, outside, sport, port, "O")
        };
        let decision = if allow { "A" } else { "D" };
        let counters = match (allow, (x >> 48) % 3) {
            (false, _) | (true, 0) => ("B", String::from(",,,")),
            (true, 1) => (
                "C",
                format!(
                    "{},{},{},{}",
                    x % 90 + 1,
                    (x % 90 + 1) * 600,
                    (x >> 4) % 90 + 1,
                    ((x >> 4) % 90 + 1) * 900
                ),
            ),
            _ => (
                "E",
                format!("{},{},{},{}", x % 9 + 1, (x % 9 + 1) * 66, 1, 66),
            ),
        };
        format!(
            "{secs},{src},{dst},{sp},{dp},{proto},{dir},{decision},{},{}",
            counters.0, counters.1
        )
    };
    let denied: Vec<String> = (0..(r % 3 + 1)).map(|k| tuple(k, true, false)).collect();
    let allowed: Vec<String> = (0..((r >> 4) % 3 + 1))
        .map(|k| tuple(100 + k, (r >> (8 + k)) % 2 == 0, true))
        .collect();
    json!({
        "time": azure_time(time),
        "systemId": guid(seed, &[601]),
        "macAddress": mac,
        "category": "NetworkSecurityGroupFlowEvent",
        "resourceId": nsg,
        "operationName": "NetworkSecurityGroupFlowEvents",
        "properties": {"Version": 2, "flows": [
            {"rule": "DefaultRule_DenyAllInBound", "flows": [{"mac": mac, "flowTuples": denied}]},
            {"rule": "UserRule_allow-web", "flows": [{"mac": mac, "flowTuples": allowed}]},
        ]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        Timeline {
            count: 30,
            // 2026-12-06T16:50:00Z: the records span two hours.
            start_ms: 1_796_575_800_000,
            span_ms: 20 * 60_000,
            max_latency_ms: 2_000,
            late_every: None,
            late_by_ms: 0,
        }
    }

    #[test]
    fn blobs_are_hourly_and_named_as_azure_names_them() {
        let blobs = account(1, "t", &["5f1c2a7e-aaaa".into()], &timeline());
        let names: Vec<&str> = blobs.iter().map(|b| b.name.as_str()).collect();
        assert!(names.contains(
            &"resourceId=/SUBSCRIPTIONS/5F1C2A7E-AAAA/y=2026/m=12/d=06/h=16/m=00/PT1H.json"
        ));
        assert!(names.contains(
            &"resourceId=/SUBSCRIPTIONS/5F1C2A7E-AAAA/y=2026/m=12/d=06/h=17/m=00/PT1H.json"
        ));
        assert!(names.iter().any(|n| n.starts_with(
            "resourceId=/SUBSCRIPTIONS/5F1C2A7E-AAAA/RESOURCEGROUPS/RG-PROD-APP/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WEB-NSG/y=2026/m=12/d=06/h=17/m=00/macAddress="
        )));
        for container in [CONTAINER_ACTIVITY, CONTAINER_KEY_VAULT, CONTAINER_NSG_FLOW] {
            let n: usize = blobs
                .iter()
                .filter(|b| b.container == container)
                .map(|b| b.records.len())
                .sum();
            assert_eq!(n, 30, "{container}");
        }
        let flow = blobs.iter().find(|b| b.kind == BlobKind::Block).unwrap();
        let record: Value = serde_json::from_str(&flow.records[0].text).unwrap();
        let tuple = record["properties"]["flows"][0]["flows"][0]["flowTuples"][0]
            .as_str()
            .unwrap();
        assert_eq!(tuple.split(',').count(), 13, "{tuple}");
        assert!(blobs.iter().all(|b| b
            .records
            .windows(2)
            .all(|w| w[0].visible_ms <= w[1].visible_ms)));
    }

    #[test]
    fn activity_records_take_the_streamed_schema() {
        let items = data::activity(3, "t", 0, "s", &timeline());
        let rec = activity_record(&items[1].body);
        assert_eq!(rec["time"], items[1].body["eventTimestamp"]);
        assert_eq!(rec["category"], "Administrative");
        assert!(rec["operationName"]
            .as_str()
            .unwrap()
            .starts_with("MICROSOFT."));
        assert!(rec["identity"]["claims"].is_object());
        assert_eq!(rec["correlationId"], items[1].body["correlationId"]);
    }
}
