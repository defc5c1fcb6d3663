//! Turns one Kafka message from Event Hubs (a `{"records":[…]}` envelope) into events: each
//! record's kind is chosen from its `category`/`type`, its id is its own (Entra, Defender) or a
//! stable hash of where it sits in the stream, and it is stamped with its Kafka coordinates.
//! A message that cannot be read is reported as a [`BadMessage`], never dropped silently.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{parse_time_ms, Event, EventKind};
use crate::mapping::scan::{PathSet, PathValues};
use crate::mapping::Node;

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
    // `category` or `Category`, `type` or `Type`: each its own field, so that a record carrying
    // both spellings is not a duplicate-field error.
    #[serde(borrow)]
    category: Option<Lenient<'a>>,
    #[serde(borrow, rename = "Category")]
    category_upper: Option<Lenient<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Lenient<'a>>,
    #[serde(borrow, rename = "Type")]
    kind_upper: Option<Lenient<'a>>,
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
    /// Application Gateway access and firewall logs write `timeStamp` (or `timestamp`) instead
    /// of the common schema's `time`.
    #[serde(borrow, rename = "timeStamp")]
    time_stamp: Option<Lenient<'a>>,
    #[serde(borrow, rename = "timestamp")]
    time_stamp_lower: Option<Lenient<'a>>,
    #[serde(borrow)]
    id: Option<Lenient<'a>>,
    /// Defender for Cloud continuous export, flat `SecurityAlert` shape.
    #[serde(borrow, rename = "SystemAlertId")]
    system_alert_id: Option<Lenient<'a>>,
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
    /// Graph activity: the request's own id.
    #[serde(borrow)]
    requestId: Option<Lenient<'a>>,
    /// Risk detections and risky users change in place; each update is its own event.
    #[serde(borrow)]
    lastUpdatedDateTime: Option<Lenient<'a>>,
    #[serde(borrow)]
    riskLastUpdatedDateTime: Option<Lenient<'a>>,
    /// Event times inside `properties`, for records whose top-level `time` is missing or in a
    /// form that does not parse.
    #[serde(borrow)]
    createdDateTime: Option<Lenient<'a>>,
    #[serde(borrow)]
    activityDateTime: Option<Lenient<'a>>,
    #[serde(borrow)]
    timeGenerated: Option<Lenient<'a>>,
    #[serde(borrow)]
    Timestamp: Option<Lenient<'a>>,
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
    decode_by(source, at, payload, true)
}

/// [`decode`]; `walk` false reads the message with serde_json alone (for the tests that compare
/// the two).
fn decode_by(source: &str, at: Coordinates<'_>, payload: Option<&[u8]>, walk: bool) -> Decoded {
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
    if let Some(walked) = walk.then(|| decode_walked(source, at, payload)).flatten() {
        return walked;
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

/// Entra ID diagnostic-setting categories, by the mapping their records need ("Logs available
/// for streaming from Microsoft Entra ID", Microsoft Learn:
/// https://learn.microsoft.com/entra/identity/monitoring-health/concept-diagnostic-settings-logs-options).
/// All sign-in categories carry the Graph `signIn` object under `properties`; service-principal
/// and managed-identity sign-ins name the principal (`servicePrincipalName`) instead of a user.
const SIGNIN_CATEGORIES: &[&str] = &[
    "SignInLogs",
    "NonInteractiveUserSignInLogs",
    "ServicePrincipalSignInLogs",
    "ManagedIdentitySignInLogs",
    "MicrosoftServicePrincipalSignInLogs",
    "ADFSSignInLogs",
];

/// The Graph `directoryAudit` object under `properties` (custom security attribute audits are
/// a subset of the audit logs, in the same shape).
const AUDIT_CATEGORIES: &[&str] = &["AuditLogs", "CustomSecurityAttributeAuditLogs"];

const PROVISIONING_CATEGORIES: &[&str] = &["ProvisioningLogs"];

/// Entra ID Protection: risky identities and their risk detections.
const RISK_CATEGORIES: &[&str] = &[
    "RiskyUsers",
    "UserRiskEvents",
    "RiskyServicePrincipals",
    "ServicePrincipalRiskEvents",
];

const GRAPH_ACTIVITY_CATEGORIES: &[&str] = &["MicrosoftGraphActivityLogs"];

/// Defender XDR streaming names each record's category `AdvancedHunting-<table>`.
const XDR_CATEGORY_PREFIX: &str = "AdvancedHunting-";

/// The mapping kind of a record, from its `category`, `type` and a few properties.
fn classify(probe: &Probe<'_>, props: &PropertiesProbe<'_>) -> EventKind {
    let is = |field: Option<&str>, names: &[&str]| {
        field.is_some_and(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
    };
    let category = text(&probe.category).or(text(&probe.category_upper));
    if is(
        text(&probe.kind).or(text(&probe.kind_upper)),
        &["Microsoft.Security/Locations/alerts"],
    ) || text(&props.alertType).is_some()
    {
        EventKind::DefenderAlerts
    } else if text(&probe.system_alert_id).is_some() {
        EventKind::EventHubsDefenderAlerts
    } else if is(category, AUDIT_CATEGORIES) {
        EventKind::EventHubsEntraAudit
    } else if is(category, SIGNIN_CATEGORIES) {
        EventKind::EventHubsEntraSignins
    } else if is(category, PROVISIONING_CATEGORIES) {
        EventKind::EventHubsEntraProvisioning
    } else if is(category, RISK_CATEGORIES) {
        EventKind::EventHubsEntraRisk
    } else if is(category, GRAPH_ACTIVITY_CATEGORIES) {
        EventKind::EventHubsGraphActivity
    } else if category.is_some_and(|c| {
        c.len() > XDR_CATEGORY_PREFIX.len()
            && c.is_char_boundary(XDR_CATEGORY_PREFIX.len())
            && c[..XDR_CATEGORY_PREFIX.len()].eq_ignore_ascii_case(XDR_CATEGORY_PREFIX)
    }) {
        EventKind::EventHubsDefenderXdr
    } else if is(category, ACTIVITY_CATEGORIES) || text(&props.eventCategory).is_some() {
        EventKind::EventHubsActivity
    } else {
        EventKind::EventHubsDiagnostic
    }
}

/// The record's own id for its kind, if it has one.
fn own_id(kind: EventKind, probe: &Probe<'_>, props: &PropertiesProbe<'_>) -> Option<String> {
    let owned = |t: Option<&str>| t.map(str::to_owned);
    match kind {
        EventKind::DefenderAlerts => owned(text(&probe.id)),
        EventKind::EventHubsDefenderAlerts => owned(text(&probe.system_alert_id)),
        EventKind::EventHubsEntraAudit
        | EventKind::EventHubsEntraSignins
        | EventKind::EventHubsEntraProvisioning => owned(text(&props.id).or(text(&probe.id))),
        // A risky user's id is the user's; a detection is updated in place: the update time
        // tells one state from the next, as for Graph alerts.
        EventKind::EventHubsEntraRisk => {
            let id = text(&props.id).or(text(&probe.id))?;
            Some(
                match text(&props.lastUpdatedDateTime).or(text(&props.riskLastUpdatedDateTime)) {
                    Some(at) => format!("{id}@{at}"),
                    None => id.to_owned(),
                },
            )
        }
        EventKind::EventHubsGraphActivity => owned(text(&props.requestId)),
        _ => None,
    }
}

/// The id of a record that carries none of its own: a hash of where it sits in the stream, so
/// a redelivery (after a rebalance or a crash) yields the same id and the SIEM can drop it.
pub fn coordinate_id(at: Coordinates<'_>, index: usize) -> String {
    let key = format!("{}\0{}\0{}\0{}", at.topic, at.partition, at.offset, index);
    digest_id(
        "eh-",
        &ring::digest::digest(&ring::digest::SHA256, key.as_bytes()),
    )
}

/// `prefix` and the first 12 bytes of `digest` in hex (24 digits): the ids of records that
/// carry none of their own, made from where they were read (Event Hubs, storage archives).
pub fn digest_id(prefix: &str, digest: &ring::digest::Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for b in &digest.as_ref()[..12] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

fn record_event(source: &str, at: Coordinates<'_>, index: usize, raw: &RawValue) -> Option<Event> {
    routed_event(
        source,
        raw.get(),
        || coordinate_id(at, index),
        &place(at, index),
    )
}

/// Where record `index` of the message at `at` was read, as [`stamp`] writes it.
fn place(at: Coordinates<'_>, index: usize) -> String {
    place_of(&message_place(at), index)
}

/// What [`place`] writes for every record of the message at `at`: all but the index.
fn message_place(at: Coordinates<'_>) -> String {
    let mut place = String::from(",\"topic\":");
    place.push_str(&serde_json::Value::from(at.topic).to_string());
    place.push_str(&format!(
        ",\"partition\":{},\"offset\":{}",
        at.partition, at.offset
    ));
    place
}

/// [`place`] of record `index` of the message whose [`message_place`] is `message`.
fn place_of(message: &str, index: usize) -> String {
    use std::fmt::Write as _;
    let mut place = String::with_capacity(message.len() + 16);
    place.push_str(message);
    // Writing into a String cannot fail.
    let _ = write!(place, ",\"index\":{index}");
    place
}

/// [`decode`] of a message the checking walk is sure of, envelope and every record (one pass
/// over each record, which also checks it); `None` leaves the message to serde_json.
fn decode_walked(source: &str, at: Coordinates<'_>, payload: &[u8]) -> Option<Decoded> {
    let text = std::str::from_utf8(payload).ok()?;
    // Each record is checked as its probes are read, and that read finds where it ends.
    let mut found: Vec<PathValues<'_, '_>> = Vec::new();
    let mut read = |at: usize| {
        let (values, end) = PROBE_PATHS.read_at(text, at)?;
        found.push(values);
        Some(end)
    };
    let spans = crate::mapping::scan::array_member_elements(text, "records", &mut read)?;
    let records: Vec<&str> = spans
        .iter()
        .map(|&(a, b)| text.get(a..b))
        .collect::<Option<_>>()?;
    // A repeated `records` array was refused above, so the reads are those of these records.
    if found.len() != records.len() {
        return None;
    }
    let mut out = Decoded::default();
    out.events.reserve(records.len());
    let message = message_place(at);
    for (index, (raw, found)) in records.iter().zip(&found).enumerate() {
        let event = probes_of(found).map(|(probe, props)| {
            let place = place_of(&message, index);
            let id = || coordinate_id(at, index);
            probed_event(source, raw, id, &place, (&probe, &props), true)
        });
        match event {
            Some(ev) => out.events.push(ev),
            None => out.bad.push(BadMessage::RecordNotObject(index)),
        }
    }
    Some(out)
}

/// One streamed record (its JSON text) as an event of the kind its category picks: its own id
/// or else `fallback_id()`, its time, and `"_siemcast":{"id":…<place>}` put first, where
/// `place` (`,"key":value…`) says where the record was read. `None` when it is not a JSON
/// object. What the `eventhubs` source and the `storage_archive` source (the same records,
/// archived to blobs) share.
pub(crate) fn routed_event(
    source: &str,
    text_raw: &str,
    fallback_id: impl FnOnce() -> String,
    place: &str,
) -> Option<Event> {
    routed_event_by(source, text_raw, fallback_id, place, true)
}

/// [`routed_event`]; `walk` false reads the record with serde_json alone (for the tests that
/// compare the two).
fn routed_event_by(
    source: &str,
    text_raw: &str,
    fallback_id: impl FnOnce() -> String,
    place: &str,
    walk: bool,
) -> Option<Event> {
    if !text_raw.starts_with('{') {
        return None;
    }
    // The checking walk reads the probed fields and checks the record as a `Value` parse
    // would, in one pass; where it is not sure, serde_json reads them (and checks less).
    let walked = walk.then(|| PROBE_PATHS.read_text(text_raw)).flatten();
    let (probe, props, checked) = match &walked {
        Some(found) => {
            let (probe, props) = probes_of(found)?;
            (probe, props, true)
        }
        None => {
            let probe: Probe<'_> = serde_json::from_str(text_raw).ok()?;
            let props: PropertiesProbe<'_> = probe
                .properties
                .filter(|p| p.get().starts_with('{'))
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .unwrap_or_default();
            (probe, props, false)
        }
    };
    Some(probed_event(
        source,
        text_raw,
        fallback_id,
        place,
        (&probe, &props),
        checked,
    ))
}

/// The event of a record whose probed fields were read.
fn probed_event(
    source: &str,
    text_raw: &str,
    fallback_id: impl FnOnce() -> String,
    place: &str,
    (probe, props): (&Probe<'_>, &PropertiesProbe<'_>),
    checked: bool,
) -> Event {
    let kind = classify(probe, props);
    let id = own_id(kind, probe, props).unwrap_or_else(fallback_id);
    // The record's own time (the common schema's), or what its kind's properties say happened
    // when (provisioning, risk, Graph activity and XDR records carry the event's own time
    // there, and the envelope's `time` is when it was written out): as `EventKind::time_fields`.
    let top = [
        &probe.time,
        &probe.time_upper,
        &probe.time_generated,
        &probe.event_time_string,
        &probe.time_stamp,
        &probe.time_stamp_lower,
    ];
    let inner = [
        &props.timeGeneratedUtc,
        &props.createdDateTime,
        &props.activityDateTime,
        &props.timeGenerated,
        &props.Timestamp,
    ];
    let inner_first = matches!(
        kind,
        EventKind::EventHubsEntraProvisioning
            | EventKind::EventHubsEntraRisk
            | EventKind::EventHubsGraphActivity
            | EventKind::EventHubsDefenderXdr
    );
    let (first, then) = if inner_first {
        (inner.as_slice(), top.as_slice())
    } else {
        (top.as_slice(), inner.as_slice())
    };
    let time_ms = first
        .iter()
        .chain(then)
        .copied()
        .find_map(|field| text(field).and_then(parse_time_ms));
    Event {
        kind,
        source: source.to_owned(),
        json: stamp(text_raw, &id, place),
        id,
        time_ms,
        // Checked by the walk; a record serde_json read as a `RawValue` is not checked as
        // much as a `Value` parse checks (lone surrogate escapes, number range, depth): the
        // sender checks it when it renders.
        checked,
    }
}

/// The fields [`Probe`] reads at the top of a record, then [`PropertiesProbe`]'s inside
/// `properties`, in the order of the struct fields; for the checking walk.
const PROBE_TOP: [&str; 12] = [
    "category",
    "Category",
    "type",
    "Type",
    "time",
    "Time",
    "TimeGenerated",
    "EventTimeString",
    "timeStamp",
    "timestamp",
    "id",
    "SystemAlertId",
];
const PROBE_PROPERTIES: [&str; 11] = [
    "id",
    "eventCategory",
    "alertType",
    "timeGeneratedUtc",
    "requestId",
    "lastUpdatedDateTime",
    "riskLastUpdatedDateTime",
    "createdDateTime",
    "activityDateTime",
    "timeGenerated",
    "Timestamp",
];

static PROBE_PATHS: std::sync::LazyLock<PathSet> = std::sync::LazyLock::new(|| {
    let top = PROBE_TOP.iter().map(std::slice::from_ref);
    let inner: Vec<[&str; 2]> = PROBE_PROPERTIES.iter().map(|k| ["properties", k]).collect();
    let all: Vec<&[&str]> = top.chain(inner.iter().map(|p| &p[..])).collect();
    PathSet::new(&all)
});

/// [`Probe`] and [`PropertiesProbe`] from what the checking walk found: each field as
/// [`Lenient`] reads it (a string, or a number's text; anything else none). `None` when the
/// record is not a JSON object.
fn probes_of<'v>(found: &'v PathValues<'_, '_>) -> Option<(Probe<'v>, PropertiesProbe<'v>)> {
    if !found.is_object() {
        return None;
    }
    let field = |i: usize| -> Option<Lenient<'v>> {
        let text = match found.get(i)? {
            Node::Str(s) => Some(Cow::Borrowed(s)),
            Node::Val(serde_json::Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
            Node::Val(serde_json::Value::Number(n)) => Some(Cow::Owned(lenient_number(n))),
            Node::Val(_) => None,
        };
        Some(Lenient(text))
    };
    let probe = Probe {
        category: field(0),
        category_upper: field(1),
        kind: field(2),
        kind_upper: field(3),
        time: field(4),
        time_upper: field(5),
        time_generated: field(6),
        event_time_string: field(7),
        time_stamp: field(8),
        time_stamp_lower: field(9),
        id: field(10),
        system_alert_id: field(11),
        properties: None,
    };
    let p = |i: usize| field(PROBE_TOP.len() + i);
    let props = PropertiesProbe {
        id: p(0),
        eventCategory: p(1),
        alertType: p(2),
        timeGeneratedUtc: p(3),
        requestId: p(4),
        lastUpdatedDateTime: p(5),
        riskLastUpdatedDateTime: p(6),
        createdDateTime: p(7),
        activityDateTime: p(8),
        timeGenerated: p(9),
        Timestamp: p(10),
    };
    Some((probe, props))
}

/// A number's text as [`Lenient`] gives it (serde_json hands it an unsigned, a signed or a
/// float, each written by its own `Display`).
fn lenient_number(n: &serde_json::Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        n.as_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

/// The record with `"_siemcast":{"id"<place>}` put first (`place`: the hub's
/// `"topic","partition","offset","index"`, or a blob's), so a mapping can show the id and the
/// SIEM can trace a record to where it was read. The record's own bytes are kept as they are,
/// unless they span lines (then it is written compact).
fn stamp(record: &str, id: &str, place: &str) -> Vec<u8> {
    let compact;
    let record = if memchr::memchr2(b'\n', b'\r', record.as_bytes()).is_some() {
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
    out.extend_from_slice(place.as_bytes());
    out.push(b'}');
    if !body.starts_with('}') {
        out.push(b',');
    }
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_place_names_topic_partition_offset_and_index() {
        let at = Coordinates {
            topic: "in\"sights",
            partition: 7,
            offset: -1,
        };
        assert_eq!(
            place(at, 12),
            r#","topic":"in\"sights","partition":7,"offset":-1,"index":12"#
        );
        let message = message_place(at);
        assert_eq!(place_of(&message, 0), format!("{message},\"index\":0"));
    }

    fn probed_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::{json, Value};
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            // Hundredths: written without an exponent, which the walk would leave to serde_json.
            any::<i32>().prop_map(|n| json!(f64::from(n) / 100.0)),
            prop::sample::select(vec![
                "",
                "Administrative",
                "AuditLogs",
                "SignInLogs",
                "RiskyUsers",
                "AdvancedHunting-DeviceEvents",
                "MicrosoftGraphActivityLogs",
                "Microsoft.Security/Locations/alerts",
                "2025-12-12T15:03:58.1234567Z",
                "9/28/2016 8:40:06 PM +00:00",
                "x\"y\\z\u{e9}\n",
            ])
            .prop_map(|s| json!(s)),
        ];
        let key = prop::sample::select(
            PROBE_TOP
                .iter()
                .chain(PROBE_PROPERTIES.iter())
                .chain(["properties", "other"].iter())
                .copied()
                .collect::<Vec<_>>(),
        );
        let object = move |inner: BoxedStrategy<Value>| {
            prop::collection::vec((key.clone(), inner), 0..12).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            })
        };
        let props = object(leaf.clone().boxed());
        object(prop_oneof![3 => leaf, 1 => props].boxed())
    }

    proptest! {
        /// The checking walk reads a record's kind, id, time and body exactly as serde_json's
        /// probes do (records without repeated keys: serde_json refuses those, the walk takes
        /// the last), and checks the record.
        #[test]
        fn the_walk_reads_records_as_serde_json_does(v in probed_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let by = |walk| routed_event_by("hub", &text, || "fallback".to_owned(), ",\"index\":0", walk);
            let (walked, parsed) = (by(true).unwrap(), by(false).unwrap());
            prop_assert!(walked.checked, "{}", text);
            prop_assert!(!parsed.checked);
            prop_assert_eq!(Event { checked: false, ..walked }, parsed);
        }
    }

    /// A message of generated records (and some that are not objects), maybe with other keys.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        use serde_json::{json, Value};
        let element = prop_oneof![
            6 => probed_value(),
            1 => Just(json!("text")),
            1 => Just(json!([1, {"a": 2}])),
        ];
        (
            prop::collection::vec(element, 0..6),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(records, other, pretty)| {
                let mut m = serde_json::Map::new();
                if other {
                    m.insert("other".into(), json!({"records": [1], "x": "]}\"\\"}));
                }
                m.insert("records".into(), Value::Array(records));
                if pretty {
                    serde_json::to_vec_pretty(&Value::Object(m)).unwrap()
                } else {
                    serde_json::to_vec(&Value::Object(m)).unwrap()
                }
            })
    }

    fn same(walked: &Decoded, parsed: &Decoded) -> Result<(), TestCaseError> {
        let unchecked = |d: &Decoded| -> Vec<Event> {
            d.events
                .iter()
                .map(|e| Event {
                    checked: false,
                    ..e.clone()
                })
                .collect()
        };
        prop_assert_eq!(unchecked(walked), unchecked(parsed));
        prop_assert_eq!(format!("{:?}", walked.bad), format!("{:?}", parsed.bad));
        Ok(())
    }

    proptest! {
        /// The walk splits and reads a message exactly as serde_json does, and checks it.
        #[test]
        fn the_walk_decodes_messages_as_serde_json_does(payload in message()) {
            let walked = decode_walked("hub", AT, &payload);
            prop_assert!(walked.is_some(), "{}", String::from_utf8_lossy(&payload));
            let walked = walked.unwrap();
            prop_assert!(walked.events.iter().all(|e| e.checked));
            same(&walked, &decode_by("hub", AT, Some(&payload), false))?;
        }

        /// On a broken message the walk answers only where serde_json reads the message, and
        /// then as it does.
        #[test]
        fn the_walk_leaves_broken_messages_to_serde_json(
            payload in message(),
            cut in any::<prop::sample::Index>(),
            byte in prop_oneof![any::<u8>(), prop::sample::select(b"{}[],:\"\\ 0e".to_vec())],
            how in 0u8..3,
        ) {
            let mut bytes = payload;
            let at = cut.index(bytes.len());
            match how {
                0 => bytes.truncate(at),
                1 => bytes[at] = byte,
                _ => bytes.insert(at, byte),
            }
            if let Some(walked) = decode_walked("hub", AT, &bytes) {
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
                same(&walked, &decode_by("hub", AT, Some(&bytes), false))?;
            }
        }
    }

    #[test]
    fn the_walk_leaves_odd_envelopes_to_serde_json() {
        for message in [
            &br#"{"records":[],"records":[]}"#[..],
            br#"{"rec\u006frds":[]}"#,
            br#"{"records":{}}"#,
            br#"{"other":[]}"#,
            br#"[]"#,
            br#"{"records":[{"a":1e5}]}"#,
        ] {
            assert!(
                decode_walked("hub", AT, message).is_none(),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        let d = decode_walked(
            "hub",
            AT,
            br#"{"x":[1,"]"],"records":[{"category":"AuditLogs"},2]}"#,
        )
        .unwrap();
        assert_eq!(d.events.len(), 1);
        assert!(matches!(d.bad[..], [BadMessage::RecordNotObject(1)]));
    }

    #[test]
    fn a_record_the_walk_is_not_sure_of_is_read_by_serde_json_unchecked() {
        for record in [
            r#"{"category":"AuditLogs","properties":{"id":"a","x":"\ud800"}}"#,
            r#"{"category":"AuditLogs","properties":{"id":"a","x":1e999}}"#,
        ] {
            let ev = routed_event("hub", record, || "f".to_owned(), "").unwrap();
            assert_eq!(
                (ev.kind, ev.id.as_str(), ev.checked),
                (EventKind::EventHubsEntraAudit, "a", false)
            );
        }
        let ev = routed_event(
            "hub",
            r#"{"category":"AuditLogs","properties":{"id":"a"}}"#,
            || "f".to_owned(),
            "",
        )
        .unwrap();
        assert!(ev.checked);
    }

    #[test]
    fn digest_ids_are_the_prefix_and_the_first_twelve_bytes_in_lower_hex() {
        for text in ["", "a", "hub\u{0}3\u{0}17\u{0}0"] {
            let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
            let hex: String = d.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(digest_id("eh-", &d), format!("eh-{hex}"));
        }
    }

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
            // Both spellings in one record (Log Analytics-shaped exports): read, not refused.
            (
                r#"{"Category":"SignInLogs","category":"SignInLogs","properties":{"id":"s-3"}}"#,
                EventKind::EventHubsEntraSignins,
                Some("s-3"),
            ),
            (
                r#"{"id":"/a/alerts/a2","Type":"Microsoft.Security/Locations/alerts","type":"Microsoft.Security/Locations/alerts","properties":{}}"#,
                EventKind::DefenderAlerts,
                Some("/a/alerts/a2"),
            ),
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

    /// Every category Microsoft documents for Entra ID diagnostic settings ("Logs available for
    /// streaming from Microsoft Entra ID", Microsoft Learn:
    /// https://learn.microsoft.com/entra/identity/monitoring-health/concept-diagnostic-settings-logs-options),
    /// with the kind its shape needs.
    /// Written out here from the docs, not taken from the code under test.
    #[test]
    fn every_documented_entra_category_routes_to_its_kind() {
        let table = [
            ("AuditLogs", "eventhubs_entra_audit"),
            ("CustomSecurityAttributeAuditLogs", "eventhubs_entra_audit"),
            ("SignInLogs", "eventhubs_entra_signins"),
            ("NonInteractiveUserSignInLogs", "eventhubs_entra_signins"),
            ("ServicePrincipalSignInLogs", "eventhubs_entra_signins"),
            ("ManagedIdentitySignInLogs", "eventhubs_entra_signins"),
            (
                "MicrosoftServicePrincipalSignInLogs",
                "eventhubs_entra_signins",
            ),
            ("ADFSSignInLogs", "eventhubs_entra_signins"),
            ("ProvisioningLogs", "eventhubs_entra_provisioning"),
            ("RiskyUsers", "eventhubs_entra_risk"),
            ("UserRiskEvents", "eventhubs_entra_risk"),
            ("RiskyServicePrincipals", "eventhubs_entra_risk"),
            ("ServicePrincipalRiskEvents", "eventhubs_entra_risk"),
            ("MicrosoftGraphActivityLogs", "eventhubs_graph_activity"),
        ];
        for (category, want) in table {
            for spelled in [category.to_owned(), category.to_ascii_lowercase()] {
                let record = format!(
                    r#"{{"time":"2025-03-04T09:15:22Z","category":"{spelled}","properties":{{"id":"r-{category}","requestId":"q-{category}"}}}}"#
                );
                let ev = one(&record);
                assert_eq!(ev.kind.as_str(), want, "{record}");
                // Each of these carries an id of its own, so none gets a stream-position id.
                assert_ne!(ev.id, coordinate_id(AT, 0), "{record}");
                assert!(ev.id.contains(category), "{record}: id {}", ev.id);
                assert_eq!(ev.time_ms, Some(1_741_079_722_000), "{record}");
            }
        }
    }

    #[test]
    fn every_defender_xdr_table_routes_to_the_xdr_kind() {
        // Tables of "Configure Microsoft Defender XDR to stream Advanced Hunting events to your
        // Azure Event Hub" (Microsoft Learn: https://learn.microsoft.com/defender-xdr/streaming-api-event-hub).
        for table in [
            "AlertInfo",
            "AlertEvidence",
            "DeviceInfo",
            "DeviceNetworkInfo",
            "DeviceProcessEvents",
            "DeviceNetworkEvents",
            "DeviceFileEvents",
            "DeviceRegistryEvents",
            "DeviceLogonEvents",
            "DeviceImageLoadEvents",
            "DeviceEvents",
            "DeviceFileCertificateInfo",
            "EmailEvents",
            "EmailUrlInfo",
            "EmailAttachmentInfo",
            "EmailPostDeliveryEvents",
            "UrlClickEvents",
            "IdentityLogonEvents",
            "IdentityQueryEvents",
            "IdentityDirectoryEvents",
            "CloudAppEvents",
        ] {
            let record = format!(
                r#"{{"time":"2022-11-09T17:51:33Z","category":"AdvancedHunting-{table}","properties":{{"Timestamp":"2022-11-09T17:47:28Z","DeviceName":"pc"}}}}"#
            );
            let ev = one(&record);
            assert_eq!(ev.kind, EventKind::EventHubsDefenderXdr, "{record}");
            assert_eq!(ev.id, coordinate_id(AT, 0), "{record}");
            // The row's own `Timestamp`, as the mapping's `rt` (the envelope's `time` is when it
            // was streamed).
            assert_eq!(ev.time_ms, Some(1_668_016_048_000), "{record}");
        }
        // The prefix alone names no table.
        assert_eq!(
            one(r#"{"category":"AdvancedHunting-"}"#).kind,
            EventKind::EventHubsDiagnostic
        );
    }

    #[test]
    fn defender_for_cloud_export_routes_in_both_shapes_with_its_own_id() {
        // The REST alert schema (`properties`).
        let rest = one(
            r#"{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/centralus/alerts/2517_abc","name":"2517_abc","type":"Microsoft.Security/Locations/alerts","properties":{"alertType":"VM_X","systemAlertId":"2517_abc","timeGeneratedUtc":"2023-05-11T13:17:09Z"}}"#,
        );
        assert_eq!(rest.kind, EventKind::DefenderAlerts);
        assert!(rest.id.ends_with("/alerts/2517_abc"), "{}", rest.id);
        assert_eq!(rest.time_ms, Some(1_683_811_029_000));
        // The flat `SecurityAlert` shape (continuous export, workflow automation).
        let flat = one(
            r#"{"VendorName":"Microsoft","AlertType":"ARM_X","SystemAlertId":"2517184898549829577_cdcf9f94-ec53-47a6-ab87-76130f87218d","TimeGenerated":"2023-05-11T13:17:09.0170422Z","Severity":"Medium","AlertDisplayName":"Login from a suspicious IP"}"#,
        );
        assert_eq!(flat.kind, EventKind::EventHubsDefenderAlerts);
        assert_eq!(
            flat.id,
            "2517184898549829577_cdcf9f94-ec53-47a6-ab87-76130f87218d"
        );
        assert_eq!(flat.time_ms, Some(1_683_811_029_017));
        assert_eq!(json(&flat)["_siemcast"]["id"], flat.id.as_str());
    }

    #[test]
    fn risk_records_change_in_place_and_each_update_is_its_own_event() {
        let at = |t: &str| {
            one(&format!(
                r#"{{"time":"8/22/2022 6:07:16 PM","category":"UserRiskEvents","properties":{{"id":"ce0e","lastUpdatedDateTime":"{t}","activityDateTime":"2022-08-22T18:05:06.133Z"}}}}"#
            ))
        };
        let first = at("2022-08-22T18:07:16.894Z");
        assert_eq!(first.id, "ce0e@2022-08-22T18:07:16.894Z");
        assert_ne!(first.id, at("2022-09-01T00:00:00Z").id);
        // The top-level time is in a US form; the detection's own time is used.
        assert_eq!(first.time_ms, Some(1_661_191_506_133));
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
            // Application Gateway access and firewall logs: `timeStamp` or `timestamp`.
            (
                r#"{"timeStamp":"2023-01-20T21:25:55+00:00","category":"ApplicationGatewayFirewallLog"}"#,
                utc("2023-01-20T21:25:55Z"),
            ),
            (
                r#"{"timestamp":"2017-04-26T19:27:38Z","category":"ApplicationGatewayAccessLog"}"#,
                utc("2017-04-26T19:27:38Z"),
            ),
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
        // A synthetic activity message in the shape of Microsoft Learn's "Azure activity log event
        // schema" (https://learn.microsoft.com/azure/azure-monitor/platform/activity-log-schema,
        // schema from storage account and event hubs), as a diagnostic setting sends it.
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
