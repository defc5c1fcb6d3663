//! Flow logs as one event per flow tuple (kind `network_flow`): NSG flow logs (category
//! `NetworkSecurityGroupFlowEvent`, `properties.flows[].flows[].flowTuples`, versions 1 and 2)
//! and VNet flow logs (`FlowLogFlowEvent`, `flowRecords.flows[].flowGroups[].flowTuples`), in
//! one flat shape: `srcIp`, `dstIp`, `srcPort`, `dstPort`, `protocol`, `direction`, `decision`,
//! `state`, packets and bytes each way where the tuple has them, and the record's time,
//! resource, MAC address and rule copied onto each (docs/storage-archives.md, "Records";
//! Microsoft Learn "Flow logging for network security groups",
//! https://learn.microsoft.com/azure/network-watcher/nsg-flow-logs-overview, and "Virtual
//! network flow logs", https://learn.microsoft.com/azure/network-watcher/vnet-flow-logs-overview).

use serde_json::{json, Map, Value};

use crate::event::{parse_time_ms, Event, EventKind};

/// The categories whose records are flow logs.
pub const FLOW_CATEGORIES: [&str; 2] = ["NetworkSecurityGroupFlowEvent", "FlowLogFlowEvent"];

/// Whether `bytes` may be a flow-log record (cheap, before parsing).
pub fn maybe_flow(bytes: &[u8]) -> bool {
    FLOW_CATEGORIES.iter().any(|c| {
        bytes
            .windows(c.len())
            .any(|w| w.eq_ignore_ascii_case(c.as_bytes()))
    })
}

/// Where a record was read, for the events' `_siemcast` object and ids.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub container: &'a str,
    pub blob: &'a str,
    pub offset: u64,
    /// The record's id ([`super::record_id`]); tuple `n` gets `{id}-{n}`.
    pub id: &'a str,
}

/// The events of a flow-log record, one per tuple; `None` when `record` is not a flow log
/// (another category), `Some(Err)` when it is one whose shape is not the documented one.
pub fn tuple_events(
    source: &str,
    record: &Value,
    at: Place<'_>,
) -> Option<Result<Vec<Event>, String>> {
    let category = record
        .get("category")
        .or_else(|| record.get("Category"))?
        .as_str()?;
    let vnet = if category.eq_ignore_ascii_case(FLOW_CATEGORIES[0]) {
        false
    } else if category.eq_ignore_ascii_case(FLOW_CATEGORIES[1]) {
        true
    } else {
        return None;
    };
    Some(tuples_of(
        source,
        record,
        at,
        if vnet { &VNET } else { &NSG },
    ))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn items<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no {key} array"))
}

/// What every tuple event of a record carries.
fn base(record: &Value, vnet: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "flowLogType".into(),
        json!(if vnet { "vnet" } else { "nsg" }),
    );
    for (to, from) in [
        ("category", "category"),
        ("operationName", "operationName"),
        ("recordTime", "time"),
        ("systemId", "systemId"),
        ("flowLogGuid", "flowLogGUID"),
        ("flowLogResourceId", "flowLogResourceID"),
    ] {
        if let Some(v) = record.get(from) {
            m.insert(to.into(), v.clone());
        }
    }
    let resource = ["resourceId", "resourceid", "targetResourceID"]
        .iter()
        .find_map(|k| text(record, k));
    if let Some(r) = resource {
        m.insert("resourceId".into(), json!(r));
    }
    let version = if vnet {
        record.get("flowLogVersion").cloned()
    } else {
        record.pointer("/properties/Version").cloned()
    };
    if let Some(v) = version {
        m.insert("version".into(), v);
    }
    if let Some(mac) = text(record, "macAddress") {
        m.insert("macAddress".into(), json!(mac));
    }
    m
}

/// Where a flow log's tuples sit: `root.outer[].inner[].flowTuples[]`, and the field of each
/// level copied onto its tuples (`(from, to)`).
struct Shape {
    vnet: bool,
    root: &'static str,
    outer: &'static str,
    outer_field: (&'static str, &'static str),
    inner: &'static str,
    inner_field: (&'static str, &'static str),
}

/// NSG flow logs: `properties.flows[]` (`rule`), `.flows[]` (`mac`).
const NSG: Shape = Shape {
    vnet: false,
    root: "properties",
    outer: "flows",
    outer_field: ("rule", "rule"),
    inner: "flows",
    inner_field: ("mac", "macAddress"),
};

/// VNet flow logs: `flowRecords.flows[]` (`aclID`), `.flowGroups[]` (`rule`).
const VNET: Shape = Shape {
    vnet: true,
    root: "flowRecords",
    outer: "flows",
    outer_field: ("aclID", "aclId"),
    inner: "flowGroups",
    inner_field: ("rule", "rule"),
};

fn tuples_of(
    source: &str,
    record: &Value,
    at: Place<'_>,
    shape: &Shape,
) -> Result<Vec<Event>, String> {
    let root = record
        .get(shape.root)
        .ok_or_else(|| format!("no {}", shape.root))?;
    let mut out = Vec::new();
    for outer in items(root, shape.outer)? {
        for inner in items(outer, shape.inner)? {
            for tuple in items(inner, "flowTuples")? {
                let t = tuple.as_str().ok_or("a flow tuple is not a string")?;
                let mut m = base(record, shape.vnet);
                for (level, (from, to)) in [(outer, shape.outer_field), (inner, shape.inner_field)]
                {
                    if let Some(v) = text(level, from) {
                        m.insert(to.into(), json!(v));
                    }
                }
                fields(&mut m, t, shape.vnet)?;
                out.push(event(source, m, at, out.len()));
            }
        }
    }
    Ok(out)
}

/// The fields of one tuple: NSG `time(s),src,dst,sport,dport,T|U,I|O,A|D[,B|C|E,pkts,bytes,pkts,bytes]`;
/// VNet `time(ms),src,dst,sport,dport,proto number,I|O,B|C|E|D,encryption,pkts,bytes,pkts,bytes`.
fn fields(m: &mut Map<String, Value>, tuple: &str, vnet: bool) -> Result<(), String> {
    let f: Vec<&str> = tuple.split(',').collect();
    if f.len() < 8 {
        return Err(format!(
            "flow tuple \"{tuple}\" has {} fields, not 8 or more",
            f.len()
        ));
    }
    let stamp: i64 = f[0]
        .parse()
        .map_err(|_| format!("flow tuple \"{tuple}\" does not start with a time stamp"))?;
    // NSG tuples count seconds; VNet tuples milliseconds (the published sample's values).
    let ms = if vnet || stamp > 100_000_000_000 {
        stamp
    } else {
        stamp * 1000
    };
    let time = jiff::Timestamp::from_millisecond(ms)
        .map_err(|_| format!("flow tuple \"{tuple}\": time stamp out of range"))?;
    m.insert(
        "time".into(),
        json!(time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    );
    m.insert("srcIp".into(), json!(f[1]));
    m.insert("dstIp".into(), json!(f[2]));
    for (key, v) in [("srcPort", f[3]), ("dstPort", f[4])] {
        match v.parse::<u32>() {
            Ok(n) => m.insert(key.into(), json!(n)),
            Err(_) => m.insert(key.into(), json!(v)),
        };
    }
    let (protocol, number) = match f[5] {
        "T" | "6" => ("TCP", Some(6)),
        "U" | "17" => ("UDP", Some(17)),
        "1" => ("ICMP", Some(1)),
        other => (other, other.parse::<u32>().ok()),
    };
    m.insert("protocol".into(), json!(protocol));
    if let Some(n) = number {
        m.insert("protocolNumber".into(), json!(n));
    }
    m.insert(
        "direction".into(),
        json!(match f[6] {
            "I" => "inbound",
            "O" => "outbound",
            other => other,
        }),
    );
    fn state(s: &str) -> &str {
        match s {
            "B" => "begin",
            "C" => "continuing",
            "E" => "end",
            "D" => "denied",
            other => other,
        }
    }
    let (decision, state_field, counts) = if vnet {
        let s = f[7];
        if let Some(e) = f.get(8).filter(|e| !e.is_empty()) {
            m.insert("encryption".into(), json!(e));
        }
        (if s == "D" { "deny" } else { "allow" }, Some(s), 9)
    } else {
        let d = match f[7] {
            "A" => "allow",
            "D" => "deny",
            other => other,
        };
        (d, f.get(8).copied().filter(|s| !s.is_empty()), 9)
    };
    m.insert("decision".into(), json!(decision));
    if let Some(s) = state_field {
        m.insert("state".into(), json!(state(s)));
    }
    for (i, key) in [
        "packetsSent",
        "bytesSent",
        "packetsReceived",
        "bytesReceived",
    ]
    .iter()
    .enumerate()
    {
        if let Some(n) = f.get(counts + i).and_then(|v| v.parse::<u64>().ok()) {
            m.insert((*key).into(), json!(n));
        }
    }
    Ok(())
}

fn event(source: &str, fields: Map<String, Value>, at: Place<'_>, n: usize) -> Event {
    let id = format!("{}-{n}", at.id);
    let time_ms = fields
        .get("time")
        .and_then(Value::as_str)
        .and_then(parse_time_ms);
    let mut m = Map::new();
    m.insert(
        "_siemcast".into(),
        json!({"id": id, "container": at.container, "blob": at.blob, "offset": at.offset, "tuple": n}),
    );
    m.extend(fields);
    Event {
        kind: EventKind::NetworkFlow,
        source: source.to_owned(),
        json: Value::Object(m).to_string().into_bytes(),
        id,
        time_ms,
        checked: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Place<'static> = Place {
        container: "insights-logs-networksecuritygroupflowevent",
        blob: "resourceId=/X/y=2026/m=12/d=06/h=17/m=00/macAddress=M/PT1H.json",
        offset: 12,
        id: "sa-0123456789abcdef01234567",
    };

    fn json_of(ev: &Event) -> Value {
        serde_json::from_slice(&ev.json).unwrap()
    }

    #[test]
    fn nsg_version_2_tuples_become_one_event_each() {
        let record = json!({"time":"2026-12-06T17:01:00.000Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/S/NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":2,"flows":[{"rule":"DefaultRule_DenyAllInBound","flows":[{"mac":"000D3AF87856","flowTuples":["1796576460,192.0.2.95,10.1.0.4,51529,5358,T,I,D,B,,,,","1796576461,10.1.0.4,198.51.100.7,44931,443,T,O,A,E,12,1400,10,9800"]}]}]}});
        let evs = tuple_events("s", &record, AT).unwrap().unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].kind, EventKind::NetworkFlow);
        assert_eq!(evs[1].id, "sa-0123456789abcdef01234567-1");
        assert_eq!(evs[0].time_ms, Some(1_796_576_460_000));
        let a = json_of(&evs[0]);
        assert_eq!(a["decision"], "deny");
        assert_eq!(a["direction"], "inbound");
        assert_eq!(a["state"], "begin");
        assert_eq!(a["rule"], "DefaultRule_DenyAllInBound");
        assert_eq!(a["macAddress"], "000D3AF87856");
        assert!(a.get("bytesSent").is_none());
        let b = json_of(&evs[1]);
        assert_eq!(
            (b["protocol"].as_str(), b["dstPort"].as_u64()),
            (Some("TCP"), Some(443))
        );
        assert_eq!(
            (b["bytesSent"].as_u64(), b["bytesReceived"].as_u64()),
            (Some(1400), Some(9800))
        );
        assert_eq!(b["_siemcast"]["tuple"], 1);
    }

    #[test]
    fn vnet_tuples_carry_state_encryption_and_milliseconds() {
        let record = json!({"time":"2022-09-14T09:00:52.5625085Z","flowLogVersion":4,"category":"FlowLogFlowEvent","macAddress":"00224871C205","targetResourceID":"/subscriptions/S/vnet","flowRecords":{"flows":[{"aclID":"acl-1","flowGroups":[{"rule":"DefaultRule_AllowInternetOutBound","flowTuples":["1663146003599,10.0.0.6,192.0.2.180,23956,443,6,O,B,NX,0,0,0,0","1663146003606,10.0.0.6,192.0.2.180,23956,443,6,O,D,NX,,,,"]}]}]}});
        let evs = tuple_events("s", &record, AT).unwrap().unwrap();
        assert_eq!(evs[0].time_ms, Some(1_663_146_003_599));
        let a = json_of(&evs[0]);
        assert_eq!(
            (a["decision"].as_str(), a["state"].as_str()),
            (Some("allow"), Some("begin"))
        );
        assert_eq!(a["encryption"], "NX");
        assert_eq!(a["aclId"], "acl-1");
        assert_eq!(a["bytesSent"], 0);
        assert_eq!(json_of(&evs[1])["decision"], "deny");
    }

    #[test]
    fn other_records_and_broken_tuples_are_told_apart() {
        assert!(tuple_events("s", &json!({"category":"AuditEvent"}), AT).is_none());
        let bad = json!({"category":"NetworkSecurityGroupFlowEvent","properties":{"flows":[{"flows":[{"flowTuples":["1,2"]}]}]}});
        assert!(tuple_events("s", &bad, AT)
            .unwrap()
            .unwrap_err()
            .contains("fields"));
        assert!(maybe_flow(
            br#"{"category":"NetworkSecurityGroupFlowEvent"}"#
        ));
        assert!(!maybe_flow(br#"{"category":"AuditEvent"}"#));
    }
}
