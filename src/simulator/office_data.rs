//! Generated Office 365 audit content for the simulator: records of each content type in the
//! common schema plus their workload's fields (Microsoft Learn, "Office 365 Management Activity
//! API schema", https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-schema), with
//! zone-less `CreationTime`s, grouped into blobs that can be listed late and that repeat a
//! record of the blob before (the API's duplicates by design).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::data::{guid, h, Timeline, CALLERS};
use super::wire::CONTENT_TYPES;

const FILE_OPERATIONS: [&str; 4] = [
    "FileDownloaded",
    "FileAccessed",
    "FileModified",
    "FileDeleted",
];

/// One content blob: what a listing shows of it, and its records.
#[derive(Debug, Clone)]
pub struct Blob {
    pub content_type: String,
    pub content_id: String,
    /// `contentCreated`, ms since the epoch: what listings filter on.
    pub created_ms: i64,
    /// When listings start to show it (late blobs show up well after `contentCreated`).
    pub visible_ms: i64,
    pub records: Vec<Value>,
}

/// `2025-03-04T09:10:41`: how audit records write `CreationTime` (UTC, no zone).
fn creation_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `2025-03-04T09:35:00.123Z`: how listings write `contentCreated`.
pub(super) fn content_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// One audit record of `content_type` in the common schema plus its workload's fields.
fn record(seed: u64, tenant: &str, ct: usize, i: usize, time: i64) -> Value {
    let r = h(seed, &[500, ct as u64, i as u64]);
    let user = CALLERS[(r % CALLERS.len() as u64) as usize];
    let ip = format!("198.51.100.{}", (r >> 8) % 250 + 1);
    let failed = r % 9 == 4;
    let mut v = json!({
        "CreationTime": creation_time(time),
        "Id": guid(seed, &[501, ct as u64, i as u64]),
        "OrganizationId": tenant,
        "UserKey": format!("10032001{:08X}", (r >> 16) & 0xffff_ffff),
        "UserType": 0,
        "Version": 1,
        "UserId": user,
        "ClientIP": ip,
    });
    let site = "https://contoso.sharepoint.com/sites/finance/";
    let extra = match CONTENT_TYPES[ct] {
        "Audit.AzureActiveDirectory" => json!({
            "RecordType": 15, "Workload": "AzureActiveDirectory",
            "Operation": if failed { "UserLoginFailed" } else { "UserLoggedIn" },
            "ResultStatus": if failed { "Failed" } else { "Success" },
            "ObjectId": "00000003-0000-0000-c000-000000000000",
            "ErrorNumber": if failed { "50126" } else { "0" },
            "ExtendedProperties": [{"Name": "UserAgent", "Value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
                                   {"Name": "RequestType", "Value": "OAuth2:Authorize"}],
        }),
        "Audit.Exchange" if r % 2 == 0 => json!({
            "RecordType": 1, "Workload": "Exchange", "Operation": "New-InboxRule",
            "ResultStatus": if failed { "False" } else { "True" },
            "ObjectId": format!("{user}\\Forward to archive"),
            "ClientIP": format!("[2001:db8::{:x}]:{}", (r >> 20) & 0xfff, 40_000 + (r >> 32) % 20_000),
            "Parameters": [{"Name": "ForwardTo", "Value": "archive@contoso.example"}],
        }),
        "Audit.Exchange" => json!({
            "RecordType": 50, "Workload": "Exchange", "Operation": "MailItemsAccessed",
            "ResultStatus": "Succeeded", "MailboxOwnerUPN": user, "ClientIP": format!("{ip}:{}", 50_000 + (r >> 32) % 10_000),
            "ObjectId": format!("/Inbox/<{}@contoso.example>", guid(seed, &[502, i as u64])),
        }),
        "Audit.General" => json!({
            "RecordType": 25, "Workload": "MicrosoftTeams",
            "Operation": if r % 2 == 0 { "MemberAdded" } else { "TeamCreated" },
            "ResultStatus": "Succeeded", "ObjectId": "Finance Team", "TeamName": "Finance Team",
        }),
        "DLP.All" => json!({
            "RecordType": 11, "Workload": "SharePoint", "Operation": "DLPRuleMatch",
            "ResultStatus": "Succeeded", "ObjectId": format!("{site}Shared Documents/cards-{i}.xlsx"),
            "SiteUrl": site, "PolicyDetails": [{"PolicyName": "PCI DSS", "Rules": [{"RuleName": "Credit card numbers", "Severity": "High"}]}],
        }),
        _ => json!({
            "RecordType": 6, "Workload": if r % 3 == 0 { "OneDrive" } else { "SharePoint" },
            "Operation": FILE_OPERATIONS[((r >> 4) % 4) as usize],
            "ResultStatus": "Succeeded",
            "ObjectId": format!("{site}Shared Documents/Q{}-forecast.xlsx", i % 4 + 1),
            "SiteUrl": site, "SourceFileName": format!("Q{}-forecast.xlsx", i % 4 + 1), "SourceFileExtension": "xlsx",
            "UserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        }),
    };
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            v.insert(k.clone(), x.clone());
        }
    }
    v
}

/// The blobs of one content type: `t.count` records, `per_blob` to a blob in time order. With
/// `duplicate`, each blob after the first repeats the previous blob's last record (same `Id`),
/// as upstream retries do; late blobs (the timeline's `late_every`) are listed `late_by_ms`
/// after their `contentCreated`.
pub fn blobs(
    seed: u64,
    tenant: &str,
    ct: usize,
    t: &Timeline,
    per_blob: usize,
    duplicate: bool,
) -> Vec<Blob> {
    let per_blob = per_blob.max(1);
    let content_type = CONTENT_TYPES[ct];
    let mut out: Vec<Blob> = Vec::new();
    let mut k = 0;
    while k * per_blob < t.count {
        let range = k * per_blob..((k + 1) * per_blob).min(t.count);
        let last_time = t.time(range.end - 1);
        let mut records: Vec<Value> = range
            .map(|i| record(seed, tenant, ct, i, t.time(i)))
            .collect();
        if duplicate {
            if let Some(prev) = out.last().and_then(|b| b.records.last()) {
                records.insert(0, prev.clone());
            }
        }
        let created = last_time + 500 + (h(seed, &[503, ct as u64, k as u64]) % 500) as i64;
        let stamp = jiff::Timestamp::from_millisecond(created)
            .map(|t| t.strftime("%Y%m%d%H%M%S%3f").to_string())
            .unwrap_or_default();
        let lower = content_type.to_lowercase().replace('.', "_");
        let content_id = format!(
            "{stamp}{k:06}${stamp}{k:06}${lower}${}$emea{:04}",
            content_type.replace('.', "_"),
            ct * 10 + 42
        );
        out.push(Blob {
            content_type: content_type.to_owned(),
            content_id,
            created_ms: created,
            visible_ms: t.visible(seed, k, created),
            records,
        });
        k += 1;
    }
    out
}

/// Every distinct record (by `Id`) of the blobs.
pub fn distinct_records(blobs: &[Vec<Blob>]) -> Vec<Value> {
    let mut seen = HashSet::new();
    blobs
        .iter()
        .flatten()
        .flat_map(|b| &b.records)
        .filter(|r| seen.insert(r["Id"].as_str().unwrap_or("").to_owned()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        Timeline {
            count: 25,
            start_ms: 1_793_527_200_000,
            span_ms: 60_000,
            max_latency_ms: 1_000,
            late_every: Some(2),
            late_by_ms: 30_000,
        }
    }

    #[test]
    fn blobs_hold_zone_less_records_and_repeat_one_across_blobs() {
        let b = blobs(1, "t", 2, &timeline(), 10, true);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].records.len(), 10);
        assert_eq!(b[1].records.len(), 11, "one repeated from the blob before");
        assert_eq!(b[1].records[0]["Id"], b[0].records[9]["Id"]);
        assert_eq!(distinct_records(std::slice::from_ref(&b)).len(), 25);
        let t = b[0].records[0]["CreationTime"].as_str().unwrap();
        assert_eq!(t.len(), "2026-11-01T10:00:00".len(), "{t}");
        assert_eq!(
            b[0].records[0]["Workload"]
                .as_str()
                .map(|w| w == "SharePoint" || w == "OneDrive"),
            Some(true)
        );
        assert!(
            b[1].visible_ms - b[1].created_ms >= 30_000,
            "blob 1 is late"
        );
        assert!(b.windows(2).all(|w| w[0].created_ms < w[1].created_ms));
    }
}
