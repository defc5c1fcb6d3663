//! The source-neutral event: one JSON object from a Microsoft API (or a file of them) with its
//! kind, a stable id for dedupe and its event time. Also the spool payload encoding of an event
//! and the reader of the JSON shapes users hand us (NDJSON, array, `value`/`records` envelopes).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

pub(crate) mod ident;
pub(crate) use ident::id_and_time;

/// The largest record, as JSON text, that a source hands the spool. A record over it is
/// rejected alone (logged, counted in `siemcast_source_events_rejected_total`) and its source
/// goes on; it stays well below the spool's own record limit (`spool::MAX_PAYLOAD`), which also
/// holds the event's id and source name.
pub const MAX_EVENT_BYTES: usize = 32 << 20;

/// The kind of an event, which selects the mapping file `<kind>.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    AzureActivity,
    DefenderAlerts,
    GraphAlerts,
    EntraAudit,
    EntraSignins,
    O365Management,
    /// Streamed through Event Hubs (Microsoft Learn, "Common and service-specific schemas for
    /// Azure resource logs", https://learn.microsoft.com/azure/azure-monitor/platform/resource-logs-schema): the activity
    /// log, Entra audit and sign-in logs, and any other diagnostic record.
    EventHubsActivity,
    EventHubsEntraAudit,
    EventHubsEntraSignins,
    EventHubsDiagnostic,
    // New kinds go last: the spool stores a kind as its position (`code`).
    /// Entra `ProvisioningLogs` (the Graph `provisioningObjectSummary` under `properties`).
    EventHubsEntraProvisioning,
    /// Entra ID Protection: `RiskyUsers`, `UserRiskEvents`, `RiskyServicePrincipals`,
    /// `ServicePrincipalRiskEvents`.
    EventHubsEntraRisk,
    /// `MicrosoftGraphActivityLogs`: one HTTP request to Microsoft Graph.
    EventHubsGraphActivity,
    /// Defender for Cloud continuous export, flat `SecurityAlert` shape (`SystemAlertId`, …).
    EventHubsDefenderAlerts,
    /// Defender XDR streaming (`AdvancedHunting-<table>`: the table's columns in `properties`).
    EventHubsDefenderXdr,
    /// Graph `security/incidents` (Defender XDR incidents, alerts expanded); each update
    /// (`lastUpdateDateTime`) is its own event.
    GraphIncidents,
    /// Graph `identityProtection/riskDetections` and `servicePrincipalRiskDetections`; each
    /// update (`lastUpdatedDateTime`) is its own event.
    EntraRiskDetections,
    /// Graph `identityProtection/riskyUsers` (and their `history` items); each risk state and
    /// level of a user is its own event.
    EntraRiskyUsers,
    /// One flow tuple of an NSG or VNet flow log read from a storage archive (the
    /// `storage_archive` source), in one flat shape for both.
    NetworkFlow,
}

impl EventKind {
    /// Every kind of event the streamed (Event Hubs) records are sorted into; each needs a
    /// mapping file.
    pub const STREAMED: &'static [EventKind] = &[
        EventKind::EventHubsActivity,
        EventKind::DefenderAlerts,
        EventKind::EventHubsEntraAudit,
        EventKind::EventHubsEntraSignins,
        EventKind::EventHubsDiagnostic,
        EventKind::EventHubsEntraProvisioning,
        EventKind::EventHubsEntraRisk,
        EventKind::EventHubsGraphActivity,
        EventKind::EventHubsDefenderAlerts,
        EventKind::EventHubsDefenderXdr,
    ];

    pub const ALL: &'static [EventKind] = &[
        EventKind::AzureActivity,
        EventKind::DefenderAlerts,
        EventKind::GraphAlerts,
        EventKind::EntraAudit,
        EventKind::EntraSignins,
        EventKind::O365Management,
        EventKind::EventHubsActivity,
        EventKind::EventHubsEntraAudit,
        EventKind::EventHubsEntraSignins,
        EventKind::EventHubsDiagnostic,
        EventKind::EventHubsEntraProvisioning,
        EventKind::EventHubsEntraRisk,
        EventKind::EventHubsGraphActivity,
        EventKind::EventHubsDefenderAlerts,
        EventKind::EventHubsDefenderXdr,
        EventKind::GraphIncidents,
        EventKind::EntraRiskDetections,
        EventKind::EntraRiskyUsers,
        EventKind::NetworkFlow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AzureActivity => "azure_activity",
            EventKind::DefenderAlerts => "defender_alerts",
            EventKind::GraphAlerts => "graph_alerts",
            EventKind::EntraAudit => "entra_audit",
            EventKind::EntraSignins => "entra_signins",
            EventKind::O365Management => "o365_management",
            EventKind::EventHubsActivity => "eventhubs_activity",
            EventKind::EventHubsEntraAudit => "eventhubs_entra_audit",
            EventKind::EventHubsEntraSignins => "eventhubs_entra_signins",
            EventKind::EventHubsDiagnostic => "eventhubs_diagnostic",
            EventKind::EventHubsEntraProvisioning => "eventhubs_entra_provisioning",
            EventKind::EventHubsEntraRisk => "eventhubs_entra_risk",
            EventKind::EventHubsGraphActivity => "eventhubs_graph_activity",
            EventKind::EventHubsDefenderAlerts => "eventhubs_defender_alerts",
            EventKind::EventHubsDefenderXdr => "eventhubs_defender_xdr",
            EventKind::GraphIncidents => "graph_incidents",
            EventKind::EntraRiskDetections => "entra_risk_detections",
            EventKind::EntraRiskyUsers => "entra_risky_users",
            EventKind::NetworkFlow => "network_flow",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The kind whose mapping file renders this one when a mappings folder has no file for it:
    /// the streamed kinds added after the first release fall back to `eventhubs_diagnostic`
    /// (as they were routed before), so a folder copied from an older release keeps working.
    pub fn stand_in(self) -> Option<EventKind> {
        match self {
            EventKind::EventHubsEntraProvisioning
            | EventKind::EventHubsEntraRisk
            | EventKind::EventHubsGraphActivity
            | EventKind::EventHubsDefenderAlerts
            | EventKind::EventHubsDefenderXdr
            | EventKind::NetworkFlow => Some(EventKind::EventHubsDiagnostic),
            _ => None,
        }
    }

    /// The JSON fields that hold this kind's unique id, most specific first.
    pub fn id_fields(self) -> &'static [&'static str] {
        match self {
            EventKind::AzureActivity => &["eventDataId", "id"],
            EventKind::DefenderAlerts => &["id", "name"],
            EventKind::GraphAlerts | EventKind::GraphIncidents => &["id"],
            EventKind::EntraAudit
            | EventKind::EntraSignins
            | EventKind::EntraRiskDetections
            | EventKind::EntraRiskyUsers => &["id"],
            EventKind::O365Management => &["Id"],
            // Streamed records read from files; the `eventhubs` source sets its own ids.
            EventKind::EventHubsActivity
            | EventKind::EventHubsEntraAudit
            | EventKind::EventHubsEntraSignins
            | EventKind::EventHubsDiagnostic
            | EventKind::EventHubsEntraProvisioning
            | EventKind::EventHubsEntraRisk
            | EventKind::EventHubsGraphActivity
            | EventKind::EventHubsDefenderXdr => &["id"],
            EventKind::EventHubsDefenderAlerts => &["SystemAlertId"],
            // The `storage_archive` source sets its own ids (`_siemcast.id`).
            EventKind::NetworkFlow => &["id"],
        }
    }

    /// The paths whose string values, joined by `/`, follow the record's id after `@` in the
    /// event id, for kinds whose records change in place and are sent once per version: a
    /// Graph alert's or incident's update time, a Defender for Cloud alert's status, a risk
    /// detection's update time, a risky user's state and level.
    pub(crate) fn id_suffix_paths(self) -> &'static [&'static [&'static str]] {
        match self {
            EventKind::GraphAlerts | EventKind::GraphIncidents => &[&["lastUpdateDateTime"]],
            EventKind::DefenderAlerts => &[&["properties", "status"]],
            EventKind::EntraRiskDetections => &[&["lastUpdatedDateTime"]],
            EventKind::EntraRiskyUsers => &[&["riskState"], &["riskLevel"]],
            _ => &[],
        }
    }

    /// The JSON fields that hold this kind's event time, most specific first.
    fn time_fields(self) -> &'static [&'static [&'static str]] {
        match self {
            EventKind::AzureActivity => &[&["eventTimestamp"], &["submissionTimestamp"]],
            EventKind::DefenderAlerts => &[
                &["properties", "timeGeneratedUtc"],
                &["properties", "startTimeUtc"],
            ],
            EventKind::GraphAlerts => &[&["lastUpdateDateTime"], &["createdDateTime"]],
            EventKind::EntraAudit => &[&["activityDateTime"]],
            EventKind::EntraSignins => &[&["createdDateTime"]],
            EventKind::O365Management => &[&["CreationTime"]],
            EventKind::EventHubsActivity => &[&["time"]],
            EventKind::EventHubsEntraAudit => &[&["time"], &["properties", "activityDateTime"]],
            EventKind::EventHubsEntraSignins => &[&["time"], &["properties", "createdDateTime"]],
            // The common schema's `time`; Log Analytics-shaped records' `TimeGenerated`; Event
            // Hubs and Service Bus operational logs' `EventTimeString`.
            EventKind::EventHubsDiagnostic => {
                &[&["time"], &["TimeGenerated"], &["EventTimeString"]]
            }
            EventKind::EventHubsEntraProvisioning => {
                &[&["properties", "activityDateTime"], &["time"]]
            }
            EventKind::EventHubsEntraRisk => &[
                &["properties", "activityDateTime"],
                &["properties", "riskLastUpdatedDateTime"],
                &["time"],
            ],
            EventKind::EventHubsGraphActivity => &[&["properties", "timeGenerated"], &["time"]],
            EventKind::EventHubsDefenderAlerts => &[&["TimeGenerated"], &["StartTimeUtc"]],
            EventKind::EventHubsDefenderXdr => &[&["properties", "Timestamp"], &["time"]],
            EventKind::GraphIncidents => &[&["lastUpdateDateTime"], &["createdDateTime"]],
            EventKind::EntraRiskDetections => &[
                &["lastUpdatedDateTime"],
                &["detectedDateTime"],
                &["activityDateTime"],
            ],
            EventKind::EntraRiskyUsers => &[&["riskLastUpdatedDateTime"]],
            EventKind::NetworkFlow => &[&["time"], &["recordTime"]],
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("\"{s}\" is not one of {}", all.join(", "))
            })
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// One event as it travels through the spool.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// The name of the `[[source]]` that produced it.
    pub source: String,
    /// Stable unique id, used for dedupe and visible to the SIEM.
    pub id: String,
    /// Event time in milliseconds since the Unix epoch, when the event has one.
    pub time_ms: Option<i64>,
    /// The JSON object, compact.
    pub json: Vec<u8>,
    /// `json` was checked as serde_json checks a `Value` when the event was made (a whole
    /// parse, or serialized from a `Value`), so the sender may walk it without checking again
    /// (`Mapping::render_body`). Kept in the spool as the payload's format version.
    pub checked: bool,
}

/// Spool payload format versions written by [`Event::encode`]: 1 for a body not checked as
/// JSON when the event was made, 2 for one that was (otherwise the same layout).
const EVENT_FORMAT: u8 = 1;
const EVENT_FORMAT_CHECKED: u8 = 2;

/// Why a spool payload could not be read back as an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event record is truncated")]
    Truncated,
    #[error("event record has unknown format version {0}")]
    Version(u8),
    #[error("event record has unknown event kind code {0}")]
    Kind(u8),
    #[error("event record field is not UTF-8")]
    Utf8,
}

impl Event {
    /// Builds an event from one JSON object: id and time are taken from the kind's fields; an
    /// event without an id gets one derived from its content, so a re-read yields the same id.
    pub fn from_json(kind: EventKind, source: &str, value: &Value) -> Event {
        let json = serde_json::to_vec(value).unwrap_or_default();
        let id = kind
            .id_fields()
            .iter()
            .find_map(|f| value.get(*f).and_then(scalar_text))
            .map(|id| {
                // Records that change in place: each version is its own event.
                let suffix: Vec<&str> = kind
                    .id_suffix_paths()
                    .iter()
                    .filter_map(|path| {
                        path.iter()
                            .try_fold(value, |v, key| v.get(*key))
                            .and_then(Value::as_str)
                    })
                    .collect();
                if suffix.is_empty() {
                    id
                } else {
                    format!("{id}@{}", suffix.join("/"))
                }
            })
            .unwrap_or_else(|| format!("sha:{:08x}{:08x}", crc32c::crc32c(&json), json.len()));
        let time_ms = kind.time_fields().iter().find_map(|path| {
            let mut v = value;
            for key in *path {
                v = v.get(*key)?;
            }
            match v {
                Value::String(s) => parse_time_ms(s),
                // Epoch seconds or milliseconds written as a JSON number.
                Value::Number(n) => parse_time_ms(&n.to_string()),
                _ => None,
            }
        });
        Event {
            kind,
            source: source.to_owned(),
            id,
            time_ms,
            json,
            checked: true,
        }
    }

    /// [`Event::from_json`] for one JSON object still in bytes, which become the body as they
    /// are (no `Value` tree, no re-serialisation). `None` when the bytes need the `Value` path:
    /// not valid JSON, not an object, a `value`/`records` envelope, or no id field.
    pub fn from_json_bytes(kind: EventKind, source: &str, json: &[u8]) -> Option<Event> {
        ident::from_json_bytes(kind, source, json)
    }

    /// [`Event::from_json_bytes`] taking the bytes as the body without copying them; they are
    /// given back (`Err`) when they need the `Value` path.
    pub fn from_json_vec(kind: EventKind, source: &str, json: Vec<u8>) -> Result<Event, Vec<u8>> {
        ident::from_json_vec(kind, source, json)
    }

    /// The spool payload: `ver u8 | kind u8 | time i64 (i64::MIN = none) | source len u16 |
    /// source | id len u16 | id | json`; `ver` is 2 when the body is `checked`, else 1.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let Event {
            kind,
            source,
            id,
            time_ms,
            json,
            checked,
        } = self;
        Event::encode_parts(*kind, source, id, *time_ms, json, *checked, out);
    }

    /// [`Event::encode`] of the event these parts make, without making it.
    pub fn encode_parts(
        kind: EventKind,
        source: &str,
        id: &str,
        time_ms: Option<i64>,
        json: &[u8],
        checked: bool,
        out: &mut Vec<u8>,
    ) {
        out.reserve(12 + source.len() + id.len() + json.len());
        out.push(if checked {
            EVENT_FORMAT_CHECKED
        } else {
            EVENT_FORMAT
        });
        out.push(kind.code());
        out.extend_from_slice(&time_ms.unwrap_or(i64::MIN).to_le_bytes());
        for text in [source, id] {
            let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(json);
    }

    /// Reads back what [`Event::encode`] wrote, as an owned event.
    pub fn decode(payload: &[u8]) -> Result<Event, DecodeError> {
        let view = EventView::decode(payload)?;
        Ok(Event {
            kind: view.kind,
            source: view.source.to_owned(),
            id: view.id.to_owned(),
            time_ms: view.time_ms,
            json: view.json.to_vec(),
            checked: view.checked,
        })
    }
}

/// An encoded event read in place, without copying: what the sender needs per record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventView<'a> {
    pub kind: EventKind,
    pub source: &'a str,
    pub id: &'a str,
    pub time_ms: Option<i64>,
    pub json: &'a [u8],
    /// See [`Event::checked`].
    pub checked: bool,
}

impl<'a> EventView<'a> {
    /// Reads what [`Event::encode`] wrote.
    pub fn decode(payload: &'a [u8]) -> Result<EventView<'a>, DecodeError> {
        let mut rest = payload;
        let mut take = |n: usize| -> Result<&'a [u8], DecodeError> {
            if rest.len() < n {
                return Err(DecodeError::Truncated);
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let version = take(1)?[0];
        if version != EVENT_FORMAT && version != EVENT_FORMAT_CHECKED {
            return Err(DecodeError::Version(version));
        }
        let code = take(1)?[0];
        let kind = EventKind::from_code(code).ok_or(DecodeError::Kind(code))?;
        let time = i64::from_le_bytes(take(8)?.try_into().map_err(|_| DecodeError::Truncated)?);
        let mut text = || -> Result<&'a str, DecodeError> {
            let len = u16::from_le_bytes(take(2)?.try_into().map_err(|_| DecodeError::Truncated)?);
            std::str::from_utf8(take(usize::from(len))?).map_err(|_| DecodeError::Utf8)
        };
        let source = text()?;
        let id = text()?;
        Ok(EventView {
            kind,
            source,
            id,
            time_ms: (time != i64::MIN).then_some(time),
            json: rest,
            checked: version == EVENT_FORMAT_CHECKED,
        })
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Epoch milliseconds of a record's time in any form Microsoft writes one (RFC 3339, zone-less
/// = UTC, .NET's US `9/28/2016 8:40:06 PM +00:00`, epoch digits): see [`crate::parse::time_ms`].
pub fn parse_time_ms(text: &str) -> Option<i64> {
    crate::parse::time_ms(text)
}

/// One problem in an input document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    /// 1-based line in the input where the bad part starts.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// One item read from an input document: an event object, or why an item is unusable.
pub type Item = Result<Value, DocumentError>;

/// Reads the shapes users hand us, in order: a JSON array of events, an object whose `value`
/// or `records` is an array (Microsoft APIs, Event Hubs and Azure Log Integration folders), a
/// single event object, or NDJSON (one of those per line). Bad lines are reported as errors
/// with their line number and do not stop the others.
pub fn read_documents(input: &[u8]) -> Vec<Item> {
    let trimmed = trim_ascii(input);
    let mut out = Vec::new();
    if trimmed.is_empty() {
        return out;
    }
    // A whole-file document first; if it does not parse, NDJSON line by line.
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(doc) => expand(doc, 1, &mut out),
        Err(whole) => {
            if trimmed.first() == Some(&b'[') {
                out.push(Err(DocumentError {
                    line: whole.line(),
                    message: format!("not valid JSON: {whole}"),
                }));
                return out;
            }
            for (i, line) in input.split(|b| *b == b'\n').enumerate() {
                read_line(line, i + 1, &mut out);
            }
        }
    }
    out
}

/// Reads one NDJSON line (blank lines are skipped).
pub fn read_line(line: &[u8], line_no: usize, out: &mut Vec<Item>) {
    let line = trim_ascii(line);
    if line.is_empty() {
        return;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(doc) => expand(doc, line_no, out),
        Err(e) => out.push(Err(DocumentError {
            line: line_no,
            message: format!("not valid JSON: {e}"),
        })),
    }
}

fn expand(doc: Value, line: usize, out: &mut Vec<Item>) {
    match doc {
        Value::Array(items) => {
            for item in items {
                push_event(item, line, out);
            }
        }
        Value::Object(mut map) => {
            let envelope = ["value", "records"]
                .into_iter()
                .find(|k| map.get(*k).is_some_and(Value::is_array));
            match envelope.and_then(|k| map.remove(k)) {
                Some(Value::Array(items)) => {
                    for item in items {
                        push_event(item, line, out);
                    }
                }
                _ => out.push(Ok(Value::Object(map))),
            }
        }
        other => out.push(Err(DocumentError {
            line,
            message: format!(
                "expected a JSON object or array, found {}",
                type_name(&other)
            ),
        })),
    }
}

fn push_event(item: Value, line: usize, out: &mut Vec<Item>) {
    if item.is_object() {
        out.push(Ok(item));
    } else {
        out.push(Err(DocumentError {
            line,
            message: format!("expected an event object, found {}", type_name(&item)),
        }));
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Ok(v) => v["id"].as_str().unwrap().to_owned(),
                Err(e) => format!("err@{}", e.line),
            })
            .collect()
    }

    #[test]
    fn reads_all_four_shapes() {
        let ndjson = b"{\"id\":\"a\"}\n\n{\"id\":\"b\"}\n";
        assert_eq!(ids(&read_documents(ndjson)), ["a", "b"]);
        let array = b"[{\"id\":\"a\"},{\"id\":\"b\"}]";
        assert_eq!(ids(&read_documents(array)), ["a", "b"]);
        let value = b"{\"value\":[{\"id\":\"a\"}],\"nextLink\":null}";
        assert_eq!(ids(&read_documents(value)), ["a"]);
        let records = b"{\"records\":[{\"id\":\"a\"},{\"id\":\"b\"}]}";
        assert_eq!(ids(&read_documents(records)), ["a", "b"]);
        let single = b"  {\"id\":\"a\"}  ";
        assert_eq!(ids(&read_documents(single)), ["a"]);
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_kept() {
        let input = b"{\"id\":\"a\"}\n{not json\n42\n{\"records\":[{\"id\":\"b\"},7]}\n";
        assert_eq!(
            ids(&read_documents(input)),
            ["a", "err@2", "err@3", "b", "err@4"]
        );
    }

    #[test]
    fn broken_array_is_one_error() {
        let items = read_documents(b"[{\"id\":\"a\"},\n{\"id\":");
        assert_eq!(items.len(), 1);
        assert!(items[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("not valid JSON"));
    }

    #[test]
    fn ids_and_times_come_from_the_kind_fields() {
        let v = json!({"eventDataId": "e1", "eventTimestamp": "2026-11-01T10:00:00.5Z"});
        let ev = Event::from_json(EventKind::AzureActivity, "act", &v);
        assert_eq!(ev.id, "e1");
        assert_eq!(ev.time_ms, Some(1_793_527_200_500));
        let o365 = json!({"Id": "x", "CreationTime": "2026-11-01T10:00:00"});
        let ev = Event::from_json(EventKind::O365Management, "o", &o365);
        assert_eq!(
            ev.time_ms,
            Some(1_793_527_200_000),
            "zone-less times are UTC"
        );
        let graph = json!({"id": "g", "lastUpdateDateTime": "2026-11-01T10:00:00Z"});
        assert_eq!(
            Event::from_json(EventKind::GraphAlerts, "g", &graph).id,
            "g@2026-11-01T10:00:00Z"
        );
    }

    #[test]
    fn records_that_change_in_place_get_one_id_per_version() {
        let id = |kind, v: Value| Event::from_json(kind, "s", &v).id;
        assert_eq!(
            id(
                EventKind::GraphIncidents,
                json!({"id": "2972395", "lastUpdateDateTime": "2025-03-04T09:35:45.1133333Z"})
            ),
            "2972395@2025-03-04T09:35:45.1133333Z"
        );
        assert_eq!(
            id(
                EventKind::EntraRiskDetections,
                json!({"id": "d52a", "lastUpdatedDateTime": "2025-03-04T09:22:47Z", "detectedDateTime": "x"})
            ),
            "d52a@2025-03-04T09:22:47Z"
        );
        assert_eq!(
            id(
                EventKind::EntraRiskyUsers,
                json!({"id": "u1", "riskState": "atRisk", "riskLevel": "high", "riskLastUpdatedDateTime": "2025-03-04T09:22:47Z"})
            ),
            "u1@atRisk/high"
        );
        assert_eq!(
            id(
                EventKind::EntraRiskyUsers,
                json!({"id": "u1", "riskLevel": "high"})
            ),
            "u1@high",
            "a missing part is left out"
        );
        assert_eq!(id(EventKind::EntraRiskyUsers, json!({"id": "u1"})), "u1");
        let time = |kind, v: Value| Event::from_json(kind, "s", &v).time_ms;
        assert_eq!(
            time(
                EventKind::EntraRiskyUsers,
                json!({"id": "u1", "riskLastUpdatedDateTime": "2026-11-01T10:00:00Z"})
            ),
            Some(1_793_527_200_000)
        );
        assert_eq!(
            time(
                EventKind::EntraRiskDetections,
                json!({"id": "d", "lastUpdatedDateTime": "2021-10-26T16:28:17.8202975Z)", "detectedDateTime": "2026-11-01T10:00:00Z"})
            ),
            Some(1_793_527_200_000),
            "an unreadable update time falls back to the detection time"
        );
    }

    #[test]
    fn times_in_other_forms_and_fields() {
        let time = |kind, v: Value| Event::from_json(kind, "s", &v).time_ms;
        let utc = |t: &str| Some(t.parse::<jiff::Timestamp>().unwrap().as_millisecond());
        // Event Hubs operational logs: only `EventTimeString`, in .NET's US form.
        assert_eq!(
            time(
                EventKind::EventHubsDiagnostic,
                json!({"EventName": "Create Queue", "EventTimeString": "9/28/2016 8:40:06 PM +00:00"})
            ),
            utc("2016-09-28T20:40:06Z")
        );
        assert_eq!(
            time(
                EventKind::EventHubsDiagnostic,
                json!({"TimeGenerated": "2025-12-12T15:03:58.1234567Z"})
            ),
            utc("2025-12-12T15:03:58.123Z")
        );
        assert_eq!(
            time(
                EventKind::EventHubsDiagnostic,
                json!({"time": "12/12/2025 3:03:58 PM"})
            ),
            utc("2025-12-12T15:03:58Z")
        );
        assert_eq!(
            time(
                EventKind::O365Management,
                json!({"Id": "x", "CreationTime": "2025-12-12 15:03:58"})
            ),
            utc("2025-12-12T15:03:58Z")
        );
        // Epoch numbers, as JSON numbers or text.
        assert_eq!(
            time(
                EventKind::AzureActivity,
                json!({"eventDataId": "e", "eventTimestamp": 1_765_551_838_123_i64})
            ),
            Some(1_765_551_838_123)
        );
        assert_eq!(
            time(
                EventKind::AzureActivity,
                json!({"eventDataId": "e", "eventTimestamp": "1765551838"})
            ),
            Some(1_765_551_838_000)
        );
    }

    #[test]
    fn events_without_ids_get_stable_content_ids() {
        let v = json!({"x": 1});
        let a = Event::from_json(EventKind::AzureActivity, "s", &v);
        let b = Event::from_json(EventKind::AzureActivity, "s", &v);
        assert_eq!(a.id, b.id);
        assert!(a.id.starts_with("sha:"));
        assert_ne!(
            a.id,
            Event::from_json(EventKind::AzureActivity, "s", &json!({"x": 2})).id
        );
    }

    #[test]
    fn encode_round_trips() {
        let v = json!({"eventDataId": "e1", "eventTimestamp": "2026-11-01T10:00:00Z", "s": "ü|="});
        let ev = Event::from_json(EventKind::AzureActivity, "activity", &v);
        let mut buf = Vec::new();
        ev.encode(&mut buf);
        assert_eq!(Event::decode(&buf).unwrap(), ev);
        assert!(matches!(
            Event::decode(&buf[..5]),
            Err(DecodeError::Truncated)
        ));
        buf[0] = 9;
        assert!(matches!(Event::decode(&buf), Err(DecodeError::Version(9))));
    }

    #[test]
    fn whether_the_body_was_checked_is_the_format_version() {
        let v = json!({"eventDataId": "e1"});
        let checked = Event::from_json(EventKind::AzureActivity, "activity", &v);
        assert!(checked.checked);
        let unchecked = Event {
            checked: false,
            ..checked.clone()
        };
        for (ev, version) in [(&checked, 2), (&unchecked, 1)] {
            let mut buf = Vec::new();
            ev.encode(&mut buf);
            assert_eq!(buf[0], version);
            assert_eq!(&Event::decode(&buf).unwrap(), ev);
            assert_eq!(EventView::decode(&buf).unwrap().checked, ev.checked);
        }
    }
}
