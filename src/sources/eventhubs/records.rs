//! Turns one Kafka message from Event Hubs (a `{"records":[…]}` envelope) into events: each
//! record's kind is chosen from its `category`/`type`, its id is its own (Entra, Defender) or a
//! stable hash of where it sits in the stream, and it is stamped with its Kafka coordinates.
//! A message that cannot be read is reported as a [`BadMessage`], never dropped silently.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{parse_time_ms, Event, EventKind};

/// Largest message accepted: Event Hubs Standard caps an event at 1 MB, so anything larger is
/// not what a diagnostic setting writes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Where a message sits in the stream.
#[derive(Debug, Clone, Copy)]
pub struct Coordinates<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Why a message (or one record in it) cannot become events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    #[error("message is empty (no payload)")]
    Empty,
    #[error("message is {0} bytes, more than the {MAX_MESSAGE_BYTES} bytes an event can have")]
    TooLarge(usize),
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message is not a {{\"records\":[…]}} envelope: {0}")]
    NoRecords(String),
    #[error("record {0} is not a JSON object")]
    RecordNotObject(usize),
}

/// The events of one message, and the records in it that could not be used.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<Event>,
    pub bad: Vec<BadMessage>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

/// The few fields that choose a record's kind, id and time; everything else is skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Probe<'a> {
    #[serde(borrow, alias = "Category")]
    category: Option<Lenient<'a>>,
    #[serde(borrow, rename = "type", alias = "Type")]
    kind: Option<Lenient<'a>>,
    // The event time, in the first of these a record has (each its own field: an alias would
    // make a record carrying two of them a duplicate-field error).
    #[serde(borrow)]
    time: Option<Lenient<'a>>,
    #[serde(borrow, rename = "Time")]
    time_upper: Option<Lenient<'a>>,
    #[serde(borrow, rename = "TimeGenerated")]
    time_generated: Option<Lenient<'a>>,
    /// Event Hubs and Service Bus operational logs: `9/28/2016 8:40:06 PM +00:00`.
    #[serde(borrow, rename = "EventTimeString")]
    event_time_string: Option<Lenient<'a>>,
    #[serde(borrow)]
    id: Option<Lenient<'a>>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[allow(non_snake_case)]
struct PropertiesProbe<'a> {
    #[serde(borrow)]
    id: Option<Lenient<'a>>,
    #[serde(borrow)]
    eventCategory: Option<Lenient<'a>>,
    #[serde(borrow)]
    alertType: Option<Lenient<'a>>,
    #[serde(borrow)]
    timeGeneratedUtc: Option<Lenient<'a>>,
}

/// A field read as text when it is a string or a number, and ignored otherwise: real streamed
/// records vary in whether numbers are quoted, and a field of an odd type must not sink a record.
#[derive(Debug)]
struct Lenient<'a>(Option<Cow<'a, str>>);

impl<'a, 'de: 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Lenient<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(Visit)
    }
}

fn text<'x>(field: &'x Option<Lenient<'_>>) -> Option<&'x str> {
    field
        .as_ref()
        .and_then(|l| l.0.as_deref())
        .filter(|t| !t.is_empty())
}

/// Reads one message value into events of the source `source`.
pub fn decode(source: &str, at: Coordinates<'_>, payload: Option<&[u8]>) -> Decoded {
    let mut out = Decoded::default();
    let payload = match payload {
        Some(p) if !p.is_empty() => p,
        _ => {
            out.bad.push(BadMessage::Empty);
            return out;
        }
    };
    if payload.len() > MAX_MESSAGE_BYTES {
        out.bad.push(BadMessage::TooLarge(payload.len()));
        return out;
    }
    let envelope: Envelope<'_> = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            out.bad.push(BadMessage::NoRecords(e.to_string()));
            return out;
        }
        Err(e) => {
            out.bad.push(BadMessage::NotJson(e.to_string()));
            return out;
        }
    };
    out.events.reserve(envelope.records.len());
    for (index, raw) in envelope.records.iter().enumerate() {
        match record_event(source, at, index, raw) {
            Some(ev) => out.events.push(ev),
            None => out.bad.push(BadMessage::RecordNotObject(index)),
        }
    }
    out
}

/// Categories of the activity log as streamed by a subscription diagnostic setting.
const ACTIVITY_CATEGORIES: &[&str] = &[
    "Administrative",
    "Security",
    "ServiceHealth",
    "Alert",
    "Recommendation",
    "Policy",
    "Autoscale",
    "ResourceHealth",
    "Write",
    "Delete",
    "Action",
];

const SIGNIN_CATEGORIES: &[&str] = &[
    "SignInLogs",
    "NonInteractiveUserSignInLogs",
    "ServicePrincipalSignInLogs",
    "ManagedIdentitySignInLogs",
];

/// The mapping kind of a record, from its `category`, `type` and a few properties.
fn classify(probe: &Probe<'_>, props: &PropertiesProbe<'_>) -> EventKind {
    let is = |field: Option<&str>, names: &[&str]| {
        field.is_some_and(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
    };
    let category = text(&probe.category);
    if is(text(&probe.kind), &["Microsoft.Security/Locations/alerts"])
        || text(&props.alertType).is_some()
    {
        EventKind::DefenderAlerts
    } else if is(category, &["AuditLogs"]) {
        EventKind::EventHubsEntraAudit
    } else if is(category, SIGNIN_CATEGORIES) {
        EventKind::EventHubsEntraSignins
    } else if is(category, ACTIVITY_CATEGORIES) || text(&props.eventCategory).is_some() {
        EventKind::EventHubsActivity
    } else {
        EventKind::EventHubsDiagnostic
    }
}

/// The id of a record that carries none of its own: a hash of where it sits in the stream, so
/// a redelivery (after a rebalance or a crash) yields the same id and the SIEM can drop it.
pub fn coordinate_id(at: Coordinates<'_>, index: usize) -> String {
    let key = format!("{}\0{}\0{}\0{}", at.topic, at.partition, at.offset, index);
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut id = String::with_capacity(3 + 24);
    id.push_str("eh-");
    for b in &digest.as_ref()[..12] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

fn record_event(source: &str, at: Coordinates<'_>, index: usize, raw: &RawValue) -> Option<Event> {
    let text_raw = raw.get();
    if !text_raw.starts_with('{') {
        return None;
    }
    let probe: Probe<'_> = serde_json::from_str(text_raw).ok()?;
    let props: PropertiesProbe<'_> = probe
        .properties
        .filter(|p| p.get().starts_with('{'))
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let kind = classify(&probe, &props);
    let own_id = match kind {
        EventKind::DefenderAlerts => text(&probe.id),
        EventKind::EventHubsEntraAudit | EventKind::EventHubsEntraSignins => {
            text(&props.id).or(text(&probe.id))
        }
        _ => None,
    };
    let id = own_id.map_or_else(|| coordinate_id(at, index), str::to_owned);
    let time_ms = [
        &probe.time,
        &probe.time_upper,
        &probe.time_generated,
        &probe.event_time_string,
        &props.timeGeneratedUtc,
    ]
    .into_iter()
    .find_map(|field| text(field).and_then(parse_time_ms));
    Some(Event {
        kind,
        source: source.to_owned(),
        json: stamp(text_raw, &id, at, index),
        id,
        time_ms,
    })
}

/// The record with `"_siemcast":{"id","topic","partition","offset","index"}` put first, so a
/// mapping can show the id and the SIEM can trace a record to the hub. The record's own bytes
/// are kept as they are, unless they span lines (then it is written compact).
fn stamp(record: &str, id: &str, at: Coordinates<'_>, index: usize) -> Vec<u8> {
    let compact;
    let record = if record.contains(['\n', '\r']) {
        compact = serde_json::from_str::<serde_json::Value>(record)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| record.replace(['\n', '\r'], " "));
        compact.as_str()
    } else {
        record
    };
    let body = record[1..].trim_start();
    let mut out = Vec::with_capacity(record.len() + 128);
    out.extend_from_slice(b"{\"_siemcast\":{\"id\":");
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, id);
    out.extend_from_slice(b",\"topic\":");
    let _ = serde_json::to_writer(&mut out, at.topic);
    out.extend_from_slice(
        format!(
            ",\"partition\":{},\"offset\":{},\"index\":{}}}",
            at.partition, at.offset, index
        )
        .as_bytes(),
    );
    if !body.starts_with('}') {
        out.push(b',');
    }
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Coordinates<'static> = Coordinates {
        topic: "insights-activity-logs",
        partition: 2,
        offset: 41,
    };

    fn one(record: &str) -> Event {
        let msg = format!("{{\"records\":[{record}]}}");
        let d = decode("hub", AT, Some(msg.as_bytes()));
        assert!(d.bad.is_empty(), "{:?}", d.bad);
        assert_eq!(d.events.len(), 1);
        d.events.into_iter().next().unwrap()
    }

    fn json(ev: &Event) -> serde_json::Value {
        serde_json::from_slice(&ev.json).unwrap()
    }

    #[test]
    fn activity_record_gets_a_stable_coordinate_id_and_its_time() {
        let ev = one(
            r#"{"time":"2025-03-04T09:15:22.1234567Z","category":"Administrative","operationName":"X/WRITE","properties":{"eventCategory":"Administrative"}}"#,
        );
        assert_eq!(ev.kind, EventKind::EventHubsActivity);
        assert_eq!(ev.id, coordinate_id(AT, 0));
        assert!(ev.id.starts_with("eh-") && ev.id.len() == 27, "{}", ev.id);
        assert_eq!(ev.time_ms, Some(1_741_079_722_123));
        let v = json(&ev);
        assert_eq!(v["_siemcast"]["id"], ev.id.as_str());
        assert_eq!(v["_siemcast"]["partition"], 2);
        assert_eq!(v["_siemcast"]["offset"], 41);
        assert_eq!(v["operationName"], "X/WRITE");
        // Same place in the stream, same id; another place, another id.
        assert_eq!(coordinate_id(AT, 0), ev.id);
        assert_ne!(coordinate_id(AT, 1), ev.id);
        assert_ne!(coordinate_id(Coordinates { offset: 42, ..AT }, 0), ev.id);
    }

    #[test]
    fn kinds_follow_category_and_type() {
        let cases = [
            (
                r#"{"category":"AuditLogs","properties":{"id":"Directory_1"}}"#,
                EventKind::EventHubsEntraAudit,
                Some("Directory_1"),
            ),
            (
                r#"{"category":"SignInLogs","properties":{"id":"s-1"}}"#,
                EventKind::EventHubsEntraSignins,
                Some("s-1"),
            ),
            (
                r#"{"category":"NonInteractiveUserSignInLogs","properties":{"id":"s-2"}}"#,
                EventKind::EventHubsEntraSignins,
                Some("s-2"),
            ),
            (
                r#"{"category":"administrative"}"#,
                EventKind::EventHubsActivity,
                None,
            ),
            (
                r#"{"category":"Whatever","properties":{"eventCategory":"Policy"}}"#,
                EventKind::EventHubsActivity,
                None,
            ),
            (
                r#"{"id":"/subscriptions/s/providers/Microsoft.Security/locations/c/alerts/a1","type":"Microsoft.Security/Locations/alerts","properties":{"alertType":"VM_X"}}"#,
                EventKind::DefenderAlerts,
                Some("/subscriptions/s/providers/Microsoft.Security/locations/c/alerts/a1"),
            ),
            (
                r#"{"category":"StorageRead","properties":"a string, not an object"}"#,
                EventKind::EventHubsDiagnostic,
                None,
            ),
            (r#"{}"#, EventKind::EventHubsDiagnostic, None),
        ];
        for (record, kind, id) in cases {
            let ev = one(record);
            assert_eq!(ev.kind, kind, "{record}");
            match id {
                Some(id) => assert_eq!(ev.id, id, "{record}"),
                None => assert_eq!(ev.id, coordinate_id(AT, 0), "{record}"),
            }
            let v = json(&ev);
            assert!(
                v.is_object() && v["_siemcast"]["id"] == ev.id.as_str(),
                "{record}"
            );
        }
    }

    #[test]
    fn lenient_fields_and_multiline_records() {
        // A number where text is expected, an object where a category is expected, and a
        // record pretty-printed over several lines: still one event, on one line.
        let ev =
            one("{\n  \"time\": 5,\n  \"category\": {\"x\":1},\n  \"level\": \"Information\"\n}");
        assert_eq!(ev.kind, EventKind::EventHubsDiagnostic);
        assert!(!ev.json.contains(&b'\n'));
        assert_eq!(json(&ev)["level"], "Information");
    }

    #[test]
    fn times_in_every_documented_field_and_form() {
        let utc = |t: &str| Some(t.parse::<jiff::Timestamp>().unwrap().as_millisecond());
        for (record, want) in [
            // Event Hubs / Service Bus operational logs carry only `EventTimeString`.
            (
                r#"{"ActivityId":"a","EventName":"Create Queue","EventTimeString":"9/28/2016 8:40:06 PM +00:00","Status":"Succeeded","category":"OperationalLogs"}"#,
                utc("2016-09-28T20:40:06Z"),
            ),
            (
                r#"{"time":"12/12/2025 3:03:58 PM","category":"X"}"#,
                utc("2025-12-12T15:03:58Z"),
            ),
            (
                r#"{"TimeGenerated":"2025-12-12 15:03:58Z","category":"X"}"#,
                utc("2025-12-12T15:03:58Z"),
            ),
            // Both the common-schema `time` and a Log Analytics `TimeGenerated`: `time` wins,
            // and the record is not lost to a duplicate field.
            (
                r#"{"time":"2025-12-12T15:03:58.1234567Z","TimeGenerated":"2025-12-12T15:04:00Z","category":"X"}"#,
                utc("2025-12-12T15:03:58.123Z"),
            ),
            // An unreadable `time` does not hide a readable fallback.
            (
                r#"{"time":"soon","TimeGenerated":"2025-12-12T15:04:00Z"}"#,
                utc("2025-12-12T15:04:00Z"),
            ),
            (r#"{"time":1765551838123}"#, Some(1_765_551_838_123)),
        ] {
            assert_eq!(one(record).time_ms, want, "{record}");
        }
    }

    #[test]
    fn bad_messages_are_named() {
        let d = |p: &[u8]| decode("hub", AT, Some(p)).bad;
        assert_eq!(decode("hub", AT, None).bad, [BadMessage::Empty]);
        assert!(matches!(d(b"not json")[..], [BadMessage::NotJson(_)]));
        assert!(matches!(
            d(b"{\"records\":[1,2")[..],
            [BadMessage::NotJson(_)]
        ));
        assert!(matches!(
            d(b"{\"value\":[]}")[..],
            [BadMessage::NoRecords(_)]
        ));
        assert!(matches!(
            d(b"{\"records\":{}}")[..],
            [BadMessage::NoRecords(_)]
        ));
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(d(&huge), [BadMessage::TooLarge(MAX_MESSAGE_BYTES + 1)]);
        // A bad record costs only itself.
        let mixed = decode(
            "hub",
            AT,
            Some(br#"{"records":[{"category":"Write"},"text",{"category":"Delete"}]}"#),
        );
        assert_eq!(mixed.bad, [BadMessage::RecordNotObject(1)]);
        assert_eq!(mixed.events.len(), 2);
        assert_eq!(mixed.events[1].id, coordinate_id(AT, 2));
    }

    #[test]
    fn field_values_cannot_break_out_of_the_stamp() {
        let ev = one(r#"{"category":"AuditLogs","properties":{"id":"a\"b\\c\n"}}"#);
        let v = json(&ev);
        assert_eq!(v["_siemcast"]["id"], "a\"b\\c\n");
        assert!(!ev.json.contains(&b'\n'));
    }

    #[test]
    fn decoded_records_render_with_the_shipped_mappings() {
        // The reference's synthetic activity message, as a diagnostic setting sends it.
        let msg = br#"{"records":[{"time":"2025-03-04T09:15:22.1234567Z","resourceId":"/SUBSCRIPTIONS/5F1C2A7E/RESOURCEGROUPS/RG-PROD-APP","operationName":"MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE","category":"Administrative","resultType":"Success","resultSignature":"Succeeded.Created","callerIpAddress":"203.0.113.42","correlationId":"7d1e2f30-aa41-4b52-9c63-d7e8f9a0b1c2","identity":{"claims":{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":"j.rivera@contoso.example"}},"level":"Information","properties":{"eventCategory":"Administrative"}},
            {"time":"2025-03-04T11:02:03Z","category":"AuditLogs","properties":{"id":"Directory_1","activityDisplayName":"Add member to group","result":"success"}}]}"#;
        let d = decode("hub", AT, Some(msg));
        assert!(d.bad.is_empty());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        for (ev, want) in d.events.iter().zip([
            format!("externalId={} cat=Administrative", coordinate_id(AT, 0)),
            "externalId=Directory_1 ".to_owned(),
        ]) {
            for vendor in ["arcsight", "qradar"] {
                let path = root.join(vendor).join(format!("{}.toml", ev.kind));
                let mapping = crate::mapping::Mapping::load(&path).unwrap();
                let mut out = Vec::new();
                mapping.render_json(&ev.json, &mut out).unwrap();
                let line = String::from_utf8(out).unwrap();
                if vendor == "arcsight" {
                    assert!(line.contains(&want), "{line}");
                } else {
                    assert!(line.contains(&format!("externalId={}", ev.id)), "{line}");
                }
                assert!(line.contains("insights-activity-logs/2@41"), "{line}");
            }
        }
    }
}
