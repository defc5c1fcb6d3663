//! What analysts need from real records published by Microsoft (`tests/fixtures/real/`), with the
//! shipped mappings of both vendors: the alert's own severity and account of Activity Log
//! Security events, the title of Resource Health events, the file and account of Graph alert
//! evidence, and the failure reason and device of Office 365 records; for records streamed
//! through Event Hubs (routed by the `eventhubs` source's own decoder), the time and operation
//! of resource logs that do not follow the common schema.

use super::decoders as mapping_decoders;

use std::path::PathBuf;

use serde_json::Value;
use siemcast::event::EventKind;
use siemcast::mapping::{Format, Mapping};
use siemcast::sources::eventhubs::records::{decode, Coordinates};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The record of `tests/fixtures/real/<file>` whose `key` is `id` (the file is an array or an
/// object with a `value` array).
fn record(file: &str, key: &str, id: &str) -> Value {
    let path = root().join("tests/fixtures/real").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let items = match doc {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("value") {
            Some(Value::Array(items)) => items,
            _ => panic!("{file}: no value array"),
        },
        _ => panic!("{file}: not an array"),
    };
    items
        .into_iter()
        .find(|r| r.get(key).and_then(Value::as_str) == Some(id))
        .unwrap_or_else(|| panic!("{file}: no record with {key} {id}"))
}

/// The records of `tests/fixtures/real/eventhubs/<file>` as the `eventhubs` source spools them
/// (one message holding them all): each one's kind, event time and stamped record.
fn streamed(file: &str) -> Vec<(EventKind, Option<i64>, Value)> {
    let path = root().join("tests/fixtures/real/eventhubs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let records: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let body = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
    let at = Coordinates {
        topic: "insights-logs",
        partition: 0,
        offset: 7,
    };
    let decoded = decode("hub", at, Some(&body));
    assert!(decoded.bad.is_empty(), "{file}: {:?}", decoded.bad);
    decoded
        .events
        .into_iter()
        .map(|e| (e.kind, e.time_ms, serde_json::from_slice(&e.json).unwrap()))
        .collect()
}

/// One rendered line through the sender's path: the CEF header name and severity (LEEF: no name,
/// `sev`) and the extension pairs.
struct Line {
    name: Option<String>,
    severity: Option<String>,
    pairs: Vec<(String, String)>,
}

impl Line {
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn render(vendor: &str, kind: &str, event: &Value) -> Line {
    let path = root()
        .join("mappings")
        .join(vendor)
        .join(format!("{kind}.toml"));
    let m = Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    m.render_json(&serde_json::to_vec(event).unwrap(), &mut out)
        .unwrap();
    let line = String::from_utf8(out).unwrap();
    let cef = m.format() == Format::Cef;
    let d = if cef {
        mapping_decoders::decode_cef(&line)
    } else {
        mapping_decoders::decode_leef(&line)
    }
    .unwrap_or_else(|e| panic!("{e}: {line}"));
    let header: Vec<&str> = line.split('|').collect();
    let mut l = Line {
        name: cef.then(|| header[5].to_owned()),
        severity: cef.then(|| header[6].to_owned()),
        pairs: d.pairs,
    };
    if !cef {
        l.severity = l.get("sev").map(str::to_owned);
    }
    l
}

#[test]
fn activity_log_security_events_carry_the_alerts_severity_and_account() {
    // The schema page's Security sample: level Informational, properties.Severity High, no
    // caller, properties.userName myUser.
    let ev = record(
        "azure_activity/activity-log-schema_samples.json",
        "eventDataId",
        "eeee4444-ff55-6666-77aa-888888bbbbbb",
    );
    for (vendor, user) in [("arcsight", "suser"), ("qradar", "usrName")] {
        let l = render(vendor, "azure_activity", &ev);
        assert_eq!(l.severity.as_deref(), Some("8"), "{vendor}: High alert");
        assert_eq!(l.get(user), Some("myUser"), "{vendor}");
    }
    // Other categories keep their level and caller.
    let admin = record(
        "azure_activity/activity-log-schema_samples.json",
        "correlationId",
        "aaaa0000-bb11-2222-33cc-444444dddddd",
    );
    for (vendor, user) in [("arcsight", "suser"), ("qradar", "usrName")] {
        let l = render(vendor, "azure_activity", &admin);
        assert_eq!(l.severity.as_deref(), Some("3"), "{vendor}");
        assert_eq!(l.get(user), Some("rob@contoso.com"), "{vendor}");
    }
}

#[test]
fn activity_log_resource_health_events_say_what_changed() {
    let ev = record(
        "azure_activity/activity-log-schema_samples.json",
        "eventDataId",
        "a80024e1-883d-37ur-8b01-7591a1befccb",
    );
    let cef = render("arcsight", "azure_activity", &ev);
    assert_eq!(
        cef.name.as_deref(),
        Some("Virtual Machine health status changed to unavailable")
    );
    assert_eq!(
        cef.get("msg"),
        Some("Virtual machine has experienced an unexpected event")
    );
    let leef = render("qradar", "azure_activity", &ev);
    assert_eq!(
        leef.get("description"),
        Some("Virtual machine has experienced an unexpected event")
    );
}

#[test]
fn graph_alerts_carry_the_file_and_account_of_their_evidence() {
    // Defender for Endpoint alert: fileEvidence (fileDetails), processEvidence (imageFile,
    // userAccount SYSTEM), no userEvidence.
    let ev = record(
        "graph_alerts/security-list-alerts_v2.json",
        "id",
        "da637551227677560813_-961444813",
    );
    let sha = "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec";
    for (vendor, user, file) in [
        ("arcsight", "suser", "fname"),
        ("qradar", "usrName", "fileName"),
    ] {
        let l = render(vendor, "graph_alerts", &ev);
        assert_eq!(l.get("fileHash"), Some(sha), "{vendor}");
        assert_eq!(l.get(file), Some("MsSense.exe"), "{vendor}");
        assert_eq!(l.get(user), Some("SYSTEM"), "{vendor}");
    }
    // Only file evidence: its hash is in fileDetails, not imageFile.
    let mut only_file = ev.clone();
    let evidence = only_file["evidence"].as_array_mut().unwrap();
    evidence.retain(|e| e["@odata.type"] == "#microsoft.graph.security.fileEvidence");
    for (vendor, file) in [("arcsight", "fname"), ("qradar", "fileName")] {
        let l = render(vendor, "graph_alerts", &only_file);
        assert_eq!(l.get("fileHash"), Some(sha), "{vendor}");
        assert_eq!(l.get(file), Some("MsSense.exe"), "{vendor}");
    }
}

#[test]
fn office_365_records_carry_the_logon_failure_reason_and_the_device() {
    let failed = record(
        "o365_management/ActivityApiReference_content.json",
        "Id",
        "80c76bd2-9d81-4c57-a97a-accfc3443dca",
    );
    let reason = "-2147217390;PP_E_BAD_PASSWORD;The entered and stored passwords do not match.";
    assert_eq!(
        render("arcsight", "o365_management", &failed).get("reason"),
        Some(reason)
    );
    assert_eq!(
        render("qradar", "o365_management", &failed).get("failureReason"),
        Some(reason)
    );
    let aip = record(
        "o365_management/AipDiscover.json",
        "Id",
        "e15273c7-f07e-41ec-bac1-5da8739623a5",
    );
    assert_eq!(
        render("arcsight", "o365_management", &aip).get("shost"),
        Some("WinDev2210Eval")
    );
    assert_eq!(
        render("qradar", "o365_management", &aip).get("identHostName"),
        Some("WinDev2210Eval")
    );
}

#[test]
fn streamed_application_gateway_records_carry_their_timestamp() {
    // Application Gateway access and firewall logs write `timestamp` / `timeStamp`, not the
    // common schema's `time`: records 0 (`timestamp`) and 1 (`time`) are the same instant,
    // record 4 has `timeStamp` 2023-01-20T21:25:55+00:00.
    let records = streamed("application_gateway.json");
    for (kind, _, _) in &records[..5] {
        assert_eq!(*kind, EventKind::EventHubsDiagnostic);
    }
    assert_eq!(
        records[0].1,
        Some(1_493_234_858_000),
        "event time of `timestamp`"
    );
    assert_eq!(
        records[4].1,
        Some(1_674_249_955_000),
        "event time of `timeStamp`"
    );
    let cef: Vec<Line> = records
        .iter()
        .map(|r| render("arcsight", "eventhubs_diagnostic", &r.2))
        .collect();
    assert_eq!(cef[0].get("rt"), Some("1493234858000"));
    assert_eq!(cef[1].get("rt"), Some("1493234858000"));
    assert_eq!(cef[4].get("rt"), Some("1674249955000"));
    let leef: Vec<Line> = records
        .iter()
        .map(|r| render("qradar", "eventhubs_diagnostic", &r.2))
        .collect();
    assert!(leef[1].get("devTime").is_some());
    assert_eq!(leef[0].get("devTime"), leef[1].get("devTime"));
    assert!(
        leef[4].get("devTime").is_some(),
        "`timeStamp` gives devTime"
    );
    assert_ne!(leef[4].get("devTime"), leef[1].get("devTime"));
}

#[test]
fn streamed_event_hubs_operational_logs_name_their_operation_and_outcome() {
    // Event Hubs / Service Bus operational logs: `EventName`, `Status`, `EventTimeString`, and
    // no `operationName` or `resultType`.
    let records = streamed("eventhubs_operational_logs.json");
    let (kind, time, ev) = &records[0];
    assert_eq!(*kind, EventKind::EventHubsDiagnostic);
    assert_eq!(*time, Some(1_604_394_402_000));
    let cef = render("arcsight", "eventhubs_diagnostic", ev);
    assert_eq!(cef.name.as_deref(), Some("Retreive ConsumerGroup"));
    assert_eq!(cef.get("act"), Some("Retreive ConsumerGroup"));
    assert_eq!(cef.get("outcome"), Some("success"));
    assert_eq!(cef.get("rt"), Some("1604394402000"));
    let leef = render("qradar", "eventhubs_diagnostic", ev);
    assert_eq!(leef.get("operationName"), Some("Retreive ConsumerGroup"));
    assert_eq!(leef.get("outcome"), Some("success"));
    assert!(leef.get("devTime").is_some());
}

#[test]
fn streamed_audit_records_of_one_operation_keep_distinct_whole_ids() {
    // Two AuditLogs records of one correlationId, ids of 62 characters that share their first 56.
    let records = streamed("entra_audit_one_operation.json");
    let ids = [
        "Directory_53161141-e3f4-4944-85b6-7b953f17265e_6X649_134684731",
        "Directory_53161141-e3f4-4944-85b6-7b953f17265e_6X649_134684743",
    ];
    let mut short = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (kind, time, ev) = &records[i];
        assert_eq!(*kind, EventKind::EventHubsEntraAudit);
        assert_eq!(*time, Some(1_642_875_302_516));
        let cef = render("arcsight", "eventhubs_entra_audit", ev);
        assert_eq!(cef.get("flexString2"), Some(*id));
        assert!(cef.get("externalId").is_some_and(|x| x.len() <= 40));
        short.push(cef.get("externalId").unwrap().to_owned());
        let leef = render("qradar", "eventhubs_entra_audit", ev);
        assert_eq!(leef.get("externalId"), Some(*id));
    }
    assert_ne!(short[0], short[1]);
}

#[test]
fn streamed_legacy_firewall_logs_carry_their_network_fields() {
    // Azure Firewall in the legacy form writes its network fields only in the text of
    // `properties.msg`; record 1: "UDP request from 192.168.0.2:51106 to 89.160.20.156:53.
    // Action: Allow.", record 0: "ICMP Type=8 request from 192.168.0.2 to 89.160.20.156.",
    // record 7: an HTTP request to a host name (no address: no dst).
    let records = streamed("firewall_legacy_msg.json");
    let cef: Vec<Line> = records
        .iter()
        .map(|r| render("arcsight", "eventhubs_diagnostic", &r.2))
        .collect();
    let leef: Vec<Line> = records
        .iter()
        .map(|r| render("qradar", "eventhubs_diagnostic", &r.2))
        .collect();
    for (key, want) in [
        ("src", "192.168.0.2"),
        ("spt", "51106"),
        ("dst", "89.160.20.156"),
        ("dpt", "53"),
        ("proto", "UDP"),
    ] {
        assert_eq!(cef[1].get(key), Some(want), "CEF {key}");
    }
    for (key, want) in [
        ("src", "192.168.0.2"),
        ("srcPort", "51106"),
        ("dst", "89.160.20.156"),
        ("dstPort", "53"),
        ("proto", "UDP"),
    ] {
        assert_eq!(leef[1].get(key), Some(want), "LEEF {key}");
    }
    assert_eq!(cef[0].get("dst"), Some("89.160.20.156"));
    assert_eq!(cef[0].get("spt"), None);
    assert_eq!(cef[0].get("proto"), Some("ICMP"));
    assert_eq!(cef[7].get("dst"), None, "a host name is not an address");
    assert_eq!(cef[7].get("dpt"), Some("80"));
}
