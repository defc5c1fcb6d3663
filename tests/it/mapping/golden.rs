//! Golden files: every shipped mapping rendered over the sample events of its source kind must
//! match `tests/golden/<vendor>/<kind>.out` byte for byte (one line per event).
//! Regenerate deliberately with `UPDATE_GOLDEN=1 cargo test --test it mapping::golden`.

use crate::util::golden;

use std::path::{Path, PathBuf};

use siemcast::mapping::Mapping;

const KINDS: &[&str] = &[
    "azure_activity",
    "defender_alerts",
    "graph_alerts",
    "entra_audit",
    "entra_signins",
    "o365_management",
    "eventhubs_activity",
    "eventhubs_entra_audit",
    "eventhubs_entra_signins",
    "eventhubs_diagnostic",
    "eventhubs_entra_provisioning",
    "eventhubs_entra_risk",
    "eventhubs_graph_activity",
    "eventhubs_defender_alerts",
    "eventhubs_defender_xdr",
    "graph_incidents",
    "entra_risk_detections",
    "entra_risky_users",
];
const VENDORS: &[&str] = &["arcsight", "qradar"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Renders every sample event of `kind` with the vendor's mapping, one line per event.
fn render_all(vendor: &str, kind: &str) -> String {
    let mapping_path = root()
        .join("mappings")
        .join(vendor)
        .join(format!("{kind}.toml"));
    let mapping = Mapping::load(&mapping_path).unwrap_or_else(|e| panic!("{e}"));
    let events_path = root().join("examples/events").join(format!("{kind}.json"));
    let text = std::fs::read_to_string(&events_path).unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(
        (3..=5).contains(&events.len()),
        "{kind}: want 3-5 sample events"
    );
    let mut out = String::new();
    for (i, ev) in events.iter().enumerate() {
        let mut line = Vec::new();
        mapping
            .render(ev, &mut line)
            .unwrap_or_else(|e| panic!("{vendor}/{kind} event {i}: {e}"));
        assert!(
            !line.contains(&b'\n') && !line.contains(&b'\r'),
            "{vendor}/{kind} event {i}"
        );
        out.push_str(std::str::from_utf8(&line).unwrap());
        out.push('\n');
    }
    out
}

fn check(vendor: &str, kind: &str) {
    let golden = root()
        .join("tests/golden")
        .join(vendor)
        .join(format!("{kind}.out"));
    let what = format!("{vendor}/{kind}");
    golden::check(&golden, &render_all(vendor, kind), &what, "mapping::golden");
}

#[test]
fn golden_files_match() {
    for vendor in VENDORS {
        for kind in KINDS {
            check(vendor, kind);
        }
    }
}

#[test]
fn golden_format_prefixes() {
    for kind in KINDS {
        let m = Mapping::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("mappings/arcsight/{kind}.toml")),
        )
        .unwrap();
        assert_eq!(m.format(), siemcast::mapping::Format::Cef, "{kind}");
        for line in render_all("arcsight", kind).lines() {
            assert!(line.starts_with("CEF:0|Microsoft|"), "{line}");
        }
        for line in render_all("qradar", kind).lines() {
            assert!(line.starts_with("LEEF:2.0|Microsoft|"), "{line}");
        }
    }
}
