//! Outcome, severity and network fields with the shipped mappings of both vendors: every
//! Office 365 `ResultStatus` Microsoft documents lands in one outcome vocabulary (`success`,
//! `failure`, `partial`) with a matching severity, a numeric `Level` maps like the word, and the
//! network fields of diagnostic records reach the address and port keys.

use super::decoders as mapping_decoders;

use std::path::PathBuf;

use serde_json::{json, Value};
use siemcast::mapping::{Format, Mapping};

fn load(vendor: &str, kind: &str) -> Mapping {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mappings")
        .join(vendor)
        .join(format!("{kind}.toml"));
    Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The decoded line: CEF header severity (or LEEF `sev`) and the extension pairs.
fn render(vendor: &str, kind: &str, event: &Value) -> (String, Vec<(String, String)>) {
    let m = load(vendor, kind);
    let mut out = Vec::new();
    m.render(event, &mut out).unwrap();
    let line = String::from_utf8(out).unwrap();
    let d = match m.format() {
        Format::Cef => mapping_decoders::decode_cef(&line),
        _ => mapping_decoders::decode_leef(&line),
    }
    .unwrap_or_else(|e| panic!("{e}: {line}"));
    let sev = if m.format() == Format::Cef {
        line.split('|').nth(6).unwrap().to_owned()
    } else {
        get(&d.pairs, "sev").unwrap_or_default()
    };
    (sev, d.pairs)
}

fn get(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

#[test]
fn office_365_result_statuses_land_in_one_outcome_vocabulary_and_severity() {
    // Management Activity API schema: Succeeded, PartiallySucceeded, Failed; Exchange admin
    // records True / False; Entra sign-in records Success / Failure.
    let cases = [
        ("Succeeded", "success", "3"),
        ("Success", "success", "3"),
        ("True", "success", "3"),
        ("PartiallySucceeded", "partial", "4"),
        ("Failed", "failure", "5"),
        ("Failure", "failure", "5"),
        ("False", "failure", "5"),
    ];
    for vendor in ["arcsight", "qradar"] {
        for (status, outcome, sev) in cases {
            let ev = json!({"Id": "1", "Operation": "X", "ResultStatus": status});
            let (got_sev, pairs) = render(vendor, "o365_management", &ev);
            assert_eq!(
                get(&pairs, "outcome").as_deref(),
                Some(outcome),
                "{vendor} {status}"
            );
            assert_eq!(got_sev, sev, "{vendor} {status}");
        }
    }
}

#[test]
fn every_outcome_a_mapping_writes_is_in_the_vocabulary() {
    let vocabulary = ["success", "failure", "partial"];
    let cases: &[(&str, Value)] = &[
        ("azure_activity", json!({"status": {"value": "Failure"}})),
        (
            "azure_activity",
            json!({"status": {"value": "PartiallySucceeded"}}),
        ),
        ("entra_audit", json!({"id": "1", "result": "timeout"})),
        (
            "eventhubs_entra_audit",
            json!({"properties": {"result": "timeout"}}),
        ),
        (
            "eventhubs_activity",
            json!({"resultType": "PartiallySucceeded"}),
        ),
        ("eventhubs_diagnostic", json!({"resultType": "Succeeded"})),
        ("eventhubs_diagnostic", json!({"resultType": "Failed"})),
    ];
    for vendor in ["arcsight", "qradar"] {
        for (kind, ev) in cases {
            let (_, pairs) = render(vendor, kind, ev);
            let outcome = get(&pairs, "outcome").unwrap_or_default();
            assert!(
                vocabulary.contains(&outcome.as_str()),
                "{vendor}/{kind}: outcome {outcome:?} for {ev}"
            );
        }
    }
}

#[test]
fn numeric_levels_map_like_their_names() {
    let names = [
        ("1", "Critical"),
        ("2", "Error"),
        ("3", "Warning"),
        ("4", "Informational"),
        ("5", "Verbose"),
    ];
    for vendor in ["arcsight", "qradar"] {
        for kind in [
            "azure_activity",
            "eventhubs_activity",
            "eventhubs_diagnostic",
        ] {
            for (number, name) in names {
                let (by_name, _) = render(vendor, kind, &json!({ "level": name }));
                let (by_text, _) = render(vendor, kind, &json!({ "level": number }));
                let n: u8 = number.parse().unwrap();
                let (by_number, _) = render(vendor, kind, &json!({ "Level": n }));
                assert_ne!(by_name, "Unknown", "{vendor}/{kind} {name}");
                assert_eq!(by_text, by_name, "{vendor}/{kind} level {number:?}");
                assert_eq!(by_number, by_name, "{vendor}/{kind} Level {n}");
            }
        }
    }
}

#[test]
fn network_fields_of_diagnostic_records_reach_address_and_port_keys() {
    // Azure Firewall structured network rule log, and an Application Gateway access log.
    let firewall = json!({
        "time": "2025-03-04T09:15:22Z", "category": "AZFWNetworkRule",
        "operationName": "AzureFirewallNetworkRuleLog",
        "properties": {"Protocol": "TCP", "SourceIp": "10.0.0.4", "SourcePort": 51234,
                       "DestinationIp": "203.0.113.9", "DestinationPort": 443, "Action": "Allow"}
    });
    let gateway = json!({
        "time": "2025-03-04T09:15:22Z", "category": "ApplicationGatewayAccessLog",
        "operationName": "ApplicationGatewayAccess",
        "properties": {"clientIP": "198.51.100.7", "clientPort": 50001, "httpMethod": "GET"}
    });
    for (vendor, spt, dpt) in [("arcsight", "spt", "dpt"), ("qradar", "srcPort", "dstPort")] {
        let (_, p) = render(vendor, "eventhubs_diagnostic", &firewall);
        assert_eq!(get(&p, "src").as_deref(), Some("10.0.0.4"), "{vendor}");
        assert_eq!(get(&p, spt).as_deref(), Some("51234"), "{vendor}");
        assert_eq!(get(&p, "dst").as_deref(), Some("203.0.113.9"), "{vendor}");
        assert_eq!(get(&p, dpt).as_deref(), Some("443"), "{vendor}");
        assert_eq!(get(&p, "proto").as_deref(), Some("TCP"), "{vendor}");
        let (_, p) = render(vendor, "eventhubs_diagnostic", &gateway);
        assert_eq!(get(&p, "src").as_deref(), Some("198.51.100.7"), "{vendor}");
        assert_eq!(get(&p, spt).as_deref(), Some("50001"), "{vendor}");
    }
}

/// Entra categories streamed without a mapping of their own (Global Secure Access traffic)
/// carry their Graph object under `properties` (property names of Microsoft Graph's
/// `networkAccessTraffic` resource): the generic mapping still yields time, user, addresses,
/// ports and protocol.
#[test]
fn network_access_traffic_fields_reach_the_generic_mapping_keys() {
    let record = json!({
        "time": "not written",
        "category": "NetworkAccessTrafficLogs",
        "operationName": "Traffic",
        "_siemcast": {"id": "eh-0123456789abcdef01234567", "topic": "t", "partition": 0, "offset": 1},
        "properties": {
            "createdDateTime": "2024-05-02T10:11:12.345Z",
            "userPrincipalName": "a.user@contoso.example",
            "sourceIp": "[2001:db8::7]:51000",
            "sourcePort": 51000,
            "destinationIp": "203.0.113.9",
            "destinationPort": 443,
            "transportProtocol": "tcp",
            "action": "allow"
        }
    });
    let (_, cef) = render("arcsight", "eventhubs_diagnostic", &record);
    assert_eq!(get(&cef, "rt").as_deref(), Some("1714644672345"));
    assert_eq!(
        get(&cef, "suser").as_deref(),
        Some("a.user@contoso.example")
    );
    assert_eq!(get(&cef, "c6a2").as_deref(), Some("2001:db8::7"));
    assert_eq!(get(&cef, "spt").as_deref(), Some("51000"));
    assert_eq!(get(&cef, "dst").as_deref(), Some("203.0.113.9"));
    assert_eq!(get(&cef, "dpt").as_deref(), Some("443"));
    assert_eq!(get(&cef, "proto").as_deref(), Some("tcp"));
    let (_, leef) = render("qradar", "eventhubs_diagnostic", &record);
    assert_eq!(get(&leef, "src").as_deref(), Some("2001:db8::7"));
    assert_eq!(get(&leef, "dstPort").as_deref(), Some("443"));
    assert_eq!(
        get(&leef, "usrName").as_deref(),
        Some("a.user@contoso.example")
    );
}
