//! What analysts need from real records published by Microsoft (`tests/fixtures/real/`), with the
//! shipped mappings of both vendors: the alert's own severity and account of Activity Log
//! Security events, the title of Resource Health events, the file and account of Graph alert
//! evidence, and the failure reason and device of Office 365 records.

#[path = "mapping_decoders.rs"]
mod mapping_decoders;

use std::path::PathBuf;

use serde_json::Value;
use siemcast::mapping::{Format, Mapping};

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
