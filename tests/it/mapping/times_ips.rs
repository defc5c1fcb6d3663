//! Every shipped mapping, both vendors, renders `rt` / `devTime` for a record whose event time
//! is in any of its kind's documented time fields, written in any form Microsoft uses, and the
//! source address in every form Microsoft writes one; the rendered time equals the event time
//! the sources put on the spool. Records are the sample events with those fields rewritten.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use siemcast::event::{Event, EventKind};
use siemcast::mapping::Mapping;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each kind's documented event-time fields, most specific first.
const TIME_FIELDS: &[(&str, &[&str])] = &[
    ("azure_activity", &["eventTimestamp", "submissionTimestamp"]),
    (
        "defender_alerts",
        &["properties.timeGeneratedUtc", "properties.startTimeUtc"],
    ),
    ("graph_alerts", &["lastUpdateDateTime", "createdDateTime"]),
    ("entra_audit", &["activityDateTime"]),
    ("entra_signins", &["createdDateTime"]),
    ("o365_management", &["CreationTime"]),
    ("eventhubs_activity", &["time"]),
    (
        "eventhubs_entra_audit",
        &["properties.activityDateTime", "time"],
    ),
    (
        "eventhubs_entra_signins",
        &["properties.createdDateTime", "time"],
    ),
    (
        "eventhubs_diagnostic",
        &["time", "TimeGenerated", "EventTimeString"],
    ),
];

fn samples(kind: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(root().join(format!("examples/events/{kind}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn mapping(vendor: &str, kind: &str) -> Mapping {
    Mapping::load(&root().join(format!("mappings/{vendor}/{kind}.toml")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn render(m: &Mapping, record: &Value) -> String {
    let mut out = Vec::new();
    m.render_json(&serde_json::to_vec(record).unwrap(), &mut out)
        .unwrap_or_else(|e| panic!("{e}: {record}"));
    String::from_utf8(out).unwrap()
}

/// The value of extension key `key` (the first one after the header), up to the next
/// delimiter: a space in CEF (ours are numbers and addresses), `^` or a tab in LEEF.
fn ext<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let cef = line.starts_with("CEF:");
    let header_pipes = if cef {
        7
    } else if line.starts_with("LEEF:2.0") {
        6
    } else {
        5
    };
    // Skip the header: pipes escaped as `\|` are text.
    let b = line.as_bytes();
    let (mut i, mut pipes) = (0, 0);
    while pipes < header_pipes {
        match b.get(i)? {
            b'\\' => i += 1,
            b'|' => pipes += 1,
            _ => {}
        }
        i += 1;
    }
    let rest = &line[i..];
    let starts_field = |c: u8| {
        if cef {
            c == b' '
        } else {
            c == b'^' || c == b'\t'
        }
    };
    let needle = format!("{key}=");
    let mut at = 0;
    loop {
        let i = at + rest[at..].find(&needle)?;
        if i == 0 || starts_field(rest.as_bytes()[i - 1]) {
            let v = &rest[i + needle.len()..];
            let end = v
                .find(|c| if cef { c == ' ' } else { c == '^' || c == '\t' })
                .unwrap_or(v.len());
            return Some(&v[..end]);
        }
        at = i + 1;
    }
}

fn set(v: &mut Value, path: &str, to: Value) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = to;
}

fn remove(v: &mut Value, path: &str) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (v.pointer_mut(&format!("/{}", p.replace('.', "/"))), l),
        None => (Some(v), path),
    };
    if let Some(Value::Object(o)) = parent {
        o.remove(last);
    }
}

fn utc(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[test]
fn every_time_field_in_every_form_renders_rt_and_dev_time() {
    let whole = utc("2025-12-12T15:03:58Z");
    let forms: [(Value, i64); 9] = [
        (json!("2025-12-12T15:03:58.1234567Z"), whole + 123),
        (json!("2025-12-12 15:03:58Z"), whole),
        (json!("2025-12-12T16:03:58+01:00"), whole),
        (json!("2025-12-12T15:03:58"), whole),
        (json!("12/12/2025 3:03:58 PM"), whole),
        (json!("12/12/2025 3:03:58 PM +00:00"), whole),
        (json!("12/12/2025 15:03:58"), whole),
        (json!(1_765_551_838_123_i64), whole + 123),
        (json!("1765551838"), whole),
    ];
    let mut checked = 0;
    for (kind, fields) in TIME_FIELDS {
        let ev_kind: EventKind = kind.parse().unwrap();
        let maps = [mapping("arcsight", kind), mapping("qradar", kind)];
        for sample in samples(kind) {
            for field in *fields {
                for (form, want) in &forms {
                    let mut record = sample.clone();
                    for f in *fields {
                        remove(&mut record, f);
                    }
                    set(&mut record, field, form.clone());
                    let want_text = want.to_string();
                    for (m, key) in maps.iter().zip(["rt", "devTime"]) {
                        let line = render(m, &record);
                        assert_eq!(
                            ext(&line, key),
                            Some(want_text.as_str()),
                            "{kind}: {field} = {form}\n{line}"
                        );
                    }
                    // The spool's event time is the same instant.
                    let ev = Event::from_json(ev_kind, "s", &record);
                    assert_eq!(ev.time_ms, Some(*want), "{kind}: {field} = {form}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} records checked");
}

/// Where each kind's source address is, and how to put one there.
fn put_address(kind: &str, record: &mut Value, addr: &str) {
    match kind {
        "azure_activity" => set(record, "httpRequest.clientIpAddress", json!(addr)),
        "entra_audit" => set(record, "initiatedBy.user.ipAddress", json!(addr)),
        "entra_signins" => set(record, "ipAddress", json!(addr)),
        "o365_management" => set(record, "ClientIP", json!(addr)),
        "eventhubs_activity" => set(record, "callerIpAddress", json!(addr)),
        "eventhubs_diagnostic" => {
            // An Azure Firewall record in the legacy form names its source in the text of
            // `properties.msg`, which comes first (see `streamed_legacy_firewall_logs_carry_their_
            // network_fields`); without it, `callerIpAddress` is the source.
            remove(record, "properties.msg");
            set(record, "callerIpAddress", json!(addr))
        }
        "eventhubs_entra_audit" => {
            set(record, "properties.initiatedBy.user.ipAddress", json!(addr))
        }
        "eventhubs_entra_signins" => set(record, "properties.ipAddress", json!(addr)),
        "defender_alerts" => set(
            record,
            "properties.entities",
            json!([{"type": "ip", "address": addr}]),
        ),
        "graph_alerts" => set(
            record,
            "evidence",
            json!([{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": addr}]),
        ),
        _ => unreachable!("{kind}"),
    }
}

#[test]
fn every_address_form_renders_src() {
    let forms = [
        ("[10.1.2.3]:12345", "10.1.2.3"),
        ("[10.1.2.3]", "10.1.2.3"),
        ("10.1.2.3:443", "10.1.2.3"),
        ("  10.1.2.3\t", "10.1.2.3"),
        ("10.1.2.3, 10.1.2.4", "10.1.2.3"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("[::ffff:10.1.2.3]:443", "10.1.2.3"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%12", "fe80::1"),
        ("[fe80::1%12]:443", "fe80::1"),
    ];
    for (kind, _) in TIME_FIELDS {
        let arcsight = mapping("arcsight", kind);
        let qradar = mapping("qradar", kind);
        for sample in samples(kind) {
            for (form, want) in forms {
                let mut record = sample.clone();
                put_address(kind, &mut record, form);
                let cef = render(&arcsight, &record);
                let leef = render(&qradar, &record);
                if want.contains(':') {
                    // CEF src holds IPv4 only: IPv6 goes to c6a2 with its label.
                    assert_eq!(ext(&cef, "c6a2"), Some(want), "{kind}: {form}\n{cef}");
                    assert!(
                        cef.contains(" c6a2Label=Source IPv6 Address"),
                        "{kind}: {form}\n{cef}"
                    );
                    assert_eq!(ext(&cef, "src"), None, "{kind}: {form}\n{cef}");
                } else {
                    assert_eq!(ext(&cef, "src"), Some(want), "{kind}: {form}\n{cef}");
                }
                assert_eq!(ext(&leef, "src"), Some(want), "{kind}: {form}\n{leef}");
            }
            // Not an address: the key is never filled with the text. It is left out, or takes
            // the address of a later field of the mapping's `first = [...]` that the sample has
            // (see `a_typed_key_takes_the_first_field_that_converts`).
            for bad in ["unknown", "10.1.2.3:http", "[10.1.2.3", "fe80::1%eth 0"] {
                let mut record = sample.clone();
                put_address(kind, &mut record, bad);
                let cef = render(&arcsight, &record);
                let leef = render(&qradar, &record);
                for (line, key) in [(&cef, "src"), (&cef, "c6a2"), (&leef, "src")] {
                    if let Some(v) = ext(line, key) {
                        assert!(
                            v.parse::<std::net::IpAddr>().is_ok() && !bad.contains(v),
                            "{kind}: {bad} gave {key}={v}\n{line}"
                        );
                    }
                }
            }
        }
    }
}

/// An Event Hubs operational log as Microsoft documents it (only `EventTimeString`), through
/// the Event Hubs source's decoding and the shipped diagnostic mappings.
#[test]
fn event_hubs_operational_log_keeps_its_time() {
    let msg = br#"{"records":[{"ActivityId":"5ee74c9e-72b5-4e98-97c4-08a62e56e221","EventName":"Create EventHub","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.EVENTHUB/NAMESPACES/NS","SubscriptionId":"00000000-0000-0000-0000-000000000000","EventTimeString":"9/28/2016 8:40:06 PM +00:00","EventProperties":"{\"Namespace\":\"ns\"}","Status":"Succeeded","Caller":"ServiceBus Client","category":"OperationalLogs"}]}"#;
    let at = siemcast::sources::eventhubs::records::Coordinates {
        topic: "insights-logs-operationallogs",
        partition: 0,
        offset: 7,
    };
    let decoded = siemcast::sources::eventhubs::records::decode("hub", at, Some(msg));
    assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
    let ev = &decoded.events[0];
    let want = utc("2016-09-28T20:40:06Z");
    assert_eq!(ev.time_ms, Some(want));
    let kind = ev.kind.to_string();
    for (vendor, key) in [("arcsight", "rt"), ("qradar", "devTime")] {
        let mut out = Vec::new();
        mapping(vendor, &kind)
            .render_json(&ev.json, &mut out)
            .unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            ext(&line, key),
            Some(want.to_string().as_str()),
            "{vendor}: {line}"
        );
    }
}

/// A typed key reading `first = [...]` takes the first value that converts: an unreadable time
/// (or address) in the first field present does not hide a readable one after it, and a key
/// whose fields all fail is left out rather than written wrong.
#[test]
fn a_typed_key_takes_the_first_field_that_converts() {
    let m = Mapping::compile(
        Path::new("first.toml"),
        r#"format = "cef"
[header]
vendor = "V"
product = "P"
version = "1"
class_id = "c"
name = "n"
severity = 3
[[field]]
key = "rt"
first = ["a", "b", "c"]
[[field]]
key = "src"
first = ["ip1", "ip2"]
convert = "ip"
"#,
    )
    .unwrap();
    let line = render(
        &m,
        &json!({"a": "2022-09-09T99:59:27Z", "b": "not a time", "c": "9/9/2022 9:59:27 AM",
                "ip1": "unknown", "ip2": "[10.1.2.3]:4431"}),
    );
    assert_eq!(ext(&line, "rt"), Some("1662717567000"), "{line}");
    assert_eq!(ext(&line, "src"), Some("10.1.2.3"), "{line}");
    let line = render(&m, &json!({"a": "later", "ip2": "n/a"}));
    assert_eq!(ext(&line, "rt"), None, "{line}");
    assert_eq!(ext(&line, "src"), None, "{line}");
}
