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
    /// Every record, or none when the blob is an old hour generated when read (`old`).
    pub records: Vec<Record>,
    pub old: Option<OldBlob>,
}

impl Blob {
    /// How many records the blob will ever hold.
    pub fn len(&self) -> usize {
        match &self.old {
            Some(_) => OLD_RECORDS_PER_BLOB,
            None => self.records.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When record `i` is written.
    pub fn visible_ms(&self, i: usize) -> i64 {
        match &self.old {
            Some(old) => old.hour_ms + i as i64 * (HOUR_MS / OLD_RECORDS_PER_BLOB as i64),
            None => self.records[i].visible_ms,
        }
    }

    /// The JSON text (one line) of record `i`.
    pub fn text(&self, i: usize) -> std::borrow::Cow<'_, str> {
        match &self.old {
            Some(old) => std::borrow::Cow::Owned(old_record(old, i, self.visible_ms(i))),
            None => std::borrow::Cow::Borrowed(&self.records[i].text),
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
/// Bytes of every line of an old hour's blob, its newline included: blob sizes are known
/// without generating them.
pub const OLD_LINE_BYTES: usize = 2_048;
/// Records of one old hour's blob (4 MiB).
pub const OLD_RECORDS_PER_BLOB: usize = 2_048;

/// Whole hours of Key Vault audit events before `before_ms`, about `bytes` in all (one 4 MiB
/// append blob an hour, [`OLD_RECORDS_PER_BLOB`] lines of [`OLD_LINE_BYTES`]), generated
/// record by record when read: an archive of gigabytes costs the simulator only its names.
#[derive(Debug, Clone)]
pub struct OldHours {
    pub bytes: u64,
    pub before_ms: i64,
}

/// One old hour's blob: the records are made from the seed, the vault and the index.
#[derive(Debug, Clone)]
pub struct OldBlob {
    seed: u64,
    vault: String,
    pub hour_ms: i64,
    /// Index of the blob's first record among all old records (they differ from blob to blob).
    first: usize,
}

/// The blobs of `old`, newest hour first.
pub fn old_hours(seed: u64, subscriptions: &[String], old: &OldHours) -> Vec<Blob> {
    let per_blob = (OLD_RECORDS_PER_BLOB * OLD_LINE_BYTES) as u64;
    let vault = vault_id(subscriptions);
    let last = old.before_ms.div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
    (0..old.bytes.div_ceil(per_blob) as usize)
        .map(|k| {
            let hour_ms = last - k as i64 * HOUR_MS;
            Blob {
                container: CONTAINER_KEY_VAULT,
                name: format!("resourceId={vault}/{}/PT1H.json", hour_path(hour_ms)),
                kind: BlobKind::Append,
                records: Vec::new(),
                old: Some(OldBlob {
                    seed,
                    vault: vault.clone(),
                    hour_ms,
                    first: 10_000_000 + k * OLD_RECORDS_PER_BLOB,
                }),
            }
        })
        .collect()
}

/// Record `i` of an old blob, its `resultDescription` padded so that the line is
/// [`OLD_LINE_BYTES`] long.
fn old_record(old: &OldBlob, i: usize, time: i64) -> String {
    let mut record = key_vault_record(old.seed, &old.vault, old.first + i, time);
    let short = record.to_string().len() + 1;
    let pad = OLD_LINE_BYTES.saturating_sub(short);
    record["resultDescription"] = Value::String("archived ".repeat(pad / 9 + 1)[..pad].to_owned());
    record.to_string()
}

/// The Key Vault whose audit events the account holds.
fn vault_id(subscriptions: &[String]) -> String {
    let sub = subscriptions
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/RG-SHARED/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-CONTOSO-01",
        sub.to_uppercase()
    )
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
                old: None,
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
    let vault = vault_id(subscriptions);
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
            old: None,
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
    fn old_hours_are_whole_hours_of_fixed_lines_before_the_timeline() {
        let before = 1_796_575_800_000; // 16:50
        let old = OldHours {
            bytes: 3 * (OLD_RECORDS_PER_BLOB * OLD_LINE_BYTES) as u64 - 1,
            before_ms: before,
        };
        let blobs = old_hours(1, &["5f1c2a7e-aaaa".into()], &old);
        assert_eq!(blobs.len(), 3);
        assert!(
            blobs[0].name.contains("/y=2026/m=12/d=06/h=15/m=00/"),
            "{}",
            blobs[0].name
        );
        assert!(blobs[2].name.contains("/h=13/m=00/"), "{}", blobs[2].name);
        let mut ids = std::collections::BTreeSet::new();
        for b in &blobs {
            assert!(b.records.is_empty(), "generated when read");
            assert_eq!(b.len(), OLD_RECORDS_PER_BLOB);
            for i in [0, 1, OLD_RECORDS_PER_BLOB - 1] {
                let text = b.text(i);
                assert_eq!(text.len() + 1, OLD_LINE_BYTES, "{text}");
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["category"], "AuditEvent");
                assert!(ids.insert(v["correlationId"].as_str().unwrap().to_owned()));
                let hour = b.old.as_ref().unwrap().hour_ms;
                assert!((hour..hour + HOUR_MS).contains(&b.visible_ms(i)));
            }
            assert_eq!(b.text(7), b.text(7), "the same bytes at every read");
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
