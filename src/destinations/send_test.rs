//! `siemcast send-test`: one clearly marked test event through a destination's real mapping,
//! syslog header, framing and transport, confirmed by the receiver's kernel acknowledgement
//! (TCP/TLS) — the same rule the sender uses to count a record as delivered.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::syslog::Stamp;
use super::transport::Connection;
use super::Destination;
use crate::config::{Framing, Transport};

/// What a successful test send did.
#[derive(Debug, Clone)]
pub struct SendTestReport {
    /// The source kind whose mapping rendered the event.
    pub kind: String,
    /// The test event's id (its `externalId` / id field), to search for in the SIEM.
    pub event_id: String,
    /// The message as sent, header included, framing removed.
    pub message: String,
    pub peer: String,
    pub bytes: usize,
    /// False for UDP, which has no acknowledgement.
    pub acknowledged: bool,
    pub elapsed: Duration,
}

/// Bundled sample events, one file per source kind; the first event of each is the template.
const SAMPLES: [(&str, &str); 19] = [
    (
        "azure_activity",
        include_str!("../../examples/events/azure_activity.json"),
    ),
    (
        "defender_alerts",
        include_str!("../../examples/events/defender_alerts.json"),
    ),
    (
        "entra_audit",
        include_str!("../../examples/events/entra_audit.json"),
    ),
    (
        "entra_signins",
        include_str!("../../examples/events/entra_signins.json"),
    ),
    (
        "graph_alerts",
        include_str!("../../examples/events/graph_alerts.json"),
    ),
    (
        "o365_management",
        include_str!("../../examples/events/o365_management.json"),
    ),
    (
        "eventhubs_activity",
        include_str!("../../examples/events/eventhubs_activity.json"),
    ),
    (
        "eventhubs_entra_audit",
        include_str!("../../examples/events/eventhubs_entra_audit.json"),
    ),
    (
        "eventhubs_entra_signins",
        include_str!("../../examples/events/eventhubs_entra_signins.json"),
    ),
    (
        "eventhubs_diagnostic",
        include_str!("../../examples/events/eventhubs_diagnostic.json"),
    ),
    (
        "eventhubs_entra_provisioning",
        include_str!("../../examples/events/eventhubs_entra_provisioning.json"),
    ),
    (
        "eventhubs_entra_risk",
        include_str!("../../examples/events/eventhubs_entra_risk.json"),
    ),
    (
        "eventhubs_graph_activity",
        include_str!("../../examples/events/eventhubs_graph_activity.json"),
    ),
    (
        "eventhubs_defender_alerts",
        include_str!("../../examples/events/eventhubs_defender_alerts.json"),
    ),
    (
        "eventhubs_defender_xdr",
        include_str!("../../examples/events/eventhubs_defender_xdr.json"),
    ),
    (
        "graph_incidents",
        include_str!("../../examples/events/graph_incidents.json"),
    ),
    (
        "entra_risk_detections",
        include_str!("../../examples/events/entra_risk_detections.json"),
    ),
    (
        "entra_risky_users",
        include_str!("../../examples/events/entra_risky_users.json"),
    ),
    (
        "network_flow",
        include_str!("../../examples/events/network_flow.json"),
    ),
];

/// Text put in the name-like fields of the test event, so nobody mistakes it for a real one.
pub const TEST_NAME: &str = "siemcast send-test";

/// A test event of `kind`: a bundled sample with its id, time and name fields replaced.
pub fn test_event(kind: &str, id: &str, now: jiff::Timestamp) -> Option<Value> {
    let text = SAMPLES.iter().find(|(k, _)| *k == kind)?.1;
    let mut event = crate::event::read_documents(text.as_bytes())
        .into_iter()
        .find_map(Result::ok)?;
    let iso = now.to_string();
    let plain = now.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let set: &[(&str, &str)] = match kind {
        "azure_activity" => &[
            ("eventDataId", id),
            ("eventTimestamp", &iso),
            ("submissionTimestamp", &iso),
            ("operationName.localizedValue", TEST_NAME),
            ("category.value", "Administrative"),
            ("level", "Informational"),
            ("caller", TEST_NAME),
            ("description", TEST_NAME),
        ],
        "defender_alerts" => &[
            ("properties.systemAlertId", id),
            ("properties.alertDisplayName", TEST_NAME),
            ("properties.timeGeneratedUtc", &iso),
            ("properties.severity", "Informational"),
            ("properties.description", TEST_NAME),
        ],
        "entra_audit" => &[
            ("id", id),
            ("activityDisplayName", TEST_NAME),
            ("activityDateTime", &iso),
        ],
        "entra_signins" => &[
            ("id", id),
            ("createdDateTime", &iso),
            ("appDisplayName", TEST_NAME),
            ("userDisplayName", TEST_NAME),
        ],
        "graph_alerts" => &[
            ("id", id),
            ("title", TEST_NAME),
            ("severity", "informational"),
            ("createdDateTime", &iso),
            ("lastUpdateDateTime", &iso),
            ("description", TEST_NAME),
        ],
        "o365_management" => &[
            ("Id", id),
            ("CreationTime", &plain),
            ("Operation", "SiemcastSendTest"),
        ],
        "eventhubs_activity" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.message", TEST_NAME),
            ("level", "Information"),
        ],
        "eventhubs_entra_audit" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.activityDisplayName", TEST_NAME),
            ("properties.activityDateTime", &iso),
        ],
        "eventhubs_entra_signins" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.createdDateTime", &iso),
            ("properties.appDisplayName", TEST_NAME),
        ],
        "eventhubs_diagnostic" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("operationName", TEST_NAME),
        ],
        "eventhubs_entra_provisioning" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.activityDateTime", &iso),
            ("properties.action", TEST_NAME),
        ],
        "eventhubs_entra_risk" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.riskLastUpdatedDateTime", &iso),
            ("properties.activityDateTime", &iso),
            ("operationName", TEST_NAME),
        ],
        "eventhubs_graph_activity" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.timeGenerated", &iso),
            ("properties.requestUri", TEST_NAME),
        ],
        "eventhubs_defender_alerts" => &[
            ("_siemcast.id", id),
            ("SystemAlertId", id),
            ("TimeGenerated", &iso),
            ("AlertDisplayName", TEST_NAME),
        ],
        "eventhubs_defender_xdr" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("properties.Timestamp", &iso),
            ("properties.ActionType", TEST_NAME),
        ],
        "graph_incidents" => &[
            ("id", id),
            ("displayName", TEST_NAME),
            ("severity", "informational"),
            ("createdDateTime", &iso),
            ("lastUpdateDateTime", &iso),
            ("description", TEST_NAME),
        ],
        "entra_risk_detections" => &[
            ("id", id),
            ("riskEventType", TEST_NAME),
            ("riskLevel", "low"),
            ("activityDateTime", &iso),
            ("detectedDateTime", &iso),
            ("lastUpdatedDateTime", &iso),
            ("userDisplayName", TEST_NAME),
        ],
        "entra_risky_users" => &[
            ("id", id),
            ("riskLevel", "low"),
            ("riskLastUpdatedDateTime", &iso),
            ("userDisplayName", TEST_NAME),
        ],
        "network_flow" => &[
            ("_siemcast.id", id),
            ("time", &iso),
            ("recordTime", &iso),
            ("rule", TEST_NAME),
        ],
        _ => &[],
    };
    for (path, value) in set {
        set_if_present(&mut event, path, value);
    }
    Some(event)
}

/// Sets a dotted path's value when the path already exists (the sample keeps its shape).
fn set_if_present(v: &mut Value, path: &str, value: &str) {
    let mut cur = v;
    for part in path.split('.') {
        match cur.get_mut(part) {
            Some(next) => cur = next,
            None => return,
        }
    }
    *cur = Value::String(value.to_owned());
}

impl Destination {
    /// Renders one test event with this destination's mapping for `kind` (the first kind it
    /// has when `None`), connects, sends it and waits up to `timeout` for the receiver's kernel
    /// to acknowledge it. The error says exactly which step failed.
    pub async fn send_test(
        &self,
        kind: Option<&str>,
        timeout: Duration,
    ) -> Result<SendTestReport, String> {
        if let Some(hec) = &self.hec {
            return self.send_test_hec(hec, kind, timeout).await;
        }
        let started = Instant::now();
        let kind = match kind {
            Some(k) => k.to_owned(),
            None => self.mappings.kinds().next().map(str::to_owned).ok_or_else(|| {
                "no mapping is loaded: configure at least one [[source]] so the destination knows which mapping to use".to_owned()
            })?,
        };
        let mapping = self.mappings.get(&kind).ok_or_else(|| {
            format!(
                "no mapping for source kind \"{kind}\" in {}",
                self.cfg.mappings.display()
            )
        })?;
        let now = jiff::Timestamp::now();
        let event_id = format!("siemcast-send-test-{}", now.as_millisecond());
        let event = test_event(&kind, &event_id, now)
            .ok_or_else(|| format!("no bundled test event for source kind \"{kind}\""))?;
        let mut payload = Vec::new();
        mapping
            .render_value(&event, &mut payload)
            .map_err(|e| format!("the {} cannot render the test event: {e}", mapping.origin()))?;
        let mut framed = Vec::new();
        // Under the identity of the first source that sends this kind here, as the SIEM will
        // see that source's events.
        let stamp = Stamp::now(&self.zone);
        let tail = kind.parse::<crate::event::EventKind>().ok().and_then(|k| {
            let source = self.identities.first_of_kind(k)?;
            Some(self.identities.tail(source, k, |i| self.writer.tail(i)))
        });
        match tail {
            Some(tail) => self.writer.write_as(&stamp, &tail, &payload, &mut framed),
            None => self.writer.write(&stamp, &payload, &mut framed),
        };
        let message = unframe(&framed, self.cfg.framing == Framing::OctetCounting);

        let connect = Connection::connect(self.cfg.transport, &self.cfg.address, self.tls.as_ref());
        let mut conn = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| {
                format!(
                    "cannot connect to {} ({}): no answer within {timeout:?}; check the address, the port and any firewall",
                    self.cfg.address, self.cfg.transport
                )
            })?
            .map_err(|e| e.to_string())?;
        let peer = conn.peer().to_string();
        conn.send(&framed, &[framed.len()])
            .await
            .map_err(|e| e.to_string())?;
        let acknowledged = self.cfg.transport != Transport::Udp;
        if acknowledged {
            let deadline = Instant::now() + timeout;
            loop {
                conn.probe().map_err(|e| {
                    format!("{e} before acknowledging the test event; is this a syslog listener with the same transport ({}) and framing ({})?", self.cfg.transport, self.cfg.framing)
                })?;
                if conn.acknowledged().map_err(|e| e.to_string())? >= conn.written() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{peer} accepted the connection but did not acknowledge the test event within {timeout:?}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        conn.close().await;
        Ok(SendTestReport {
            kind,
            event_id,
            message,
            peer,
            bytes: framed.len(),
            acknowledged,
            elapsed: started.elapsed(),
        })
    }
}

/// The message without its framing (octet count prefix or trailing LF).
fn unframe(framed: &[u8], octet_counting: bool) -> String {
    let text = String::from_utf8_lossy(framed);
    if octet_counting {
        if let Some((_, rest)) = text.split_once(' ') {
            return rest.to_owned();
        }
    }
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_marked_test_event() {
        for kind in crate::event::EventKind::ALL {
            let now = jiff::Timestamp::now();
            let ev = test_event(kind.as_str(), "siemcast-send-test-1", now)
                .unwrap_or_else(|| panic!("no test event for {kind}"));
            let text = ev.to_string();
            assert!(text.contains("siemcast-send-test-1"), "{kind}: {text}");
        }
    }

    #[test]
    fn unframe_removes_octet_count_and_lf() {
        assert_eq!(unframe(b"5 <13>a", true), "<13>a");
        assert_eq!(unframe(b"<13>a b\n", false), "<13>a b");
    }
}
