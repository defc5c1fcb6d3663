//! Real records published by Microsoft and other public sources (`tests/fixtures/real/`, each
//! directory's `ORIGIN.md` names every file's origin), rendered through the sender's path with
//! every shipped mapping of both vendors: every line must decode strictly, two distinct record
//! ids must never share an `externalId`, and the output must match
//! `tests/golden/real/<vendor>/<dir>.out` byte for byte.
//! Regenerate deliberately with `UPDATE_GOLDEN=1 cargo test --test it mapping::real_records`.
//!
//! `tests/fixtures/real/<kind>/` holds records of one mapping kind, as the API answers them (a
//! JSON array, an object whose `value` or `records` is the array, or one record alone); `tests/fixtures/real/eventhubs/`
//! holds Event Hubs message bodies (`{"records":[…]}`), routed and stamped by the `eventhubs`
//! source's own decoder, each record rendered with the mapping of the kind it is routed to;
//! `tests/fixtures/real/storage_archive/` holds `PT1H.json` blob contents as diagnostic settings
//! and flow logs write them to a storage account (JSON lines, or one `{"records":[…]}`
//! document), routed by the same decoder, as the streamed records they are.

use super::decoders as mapping_decoders;
use crate::util::golden;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use siemcast::event::{Event, EventKind};
use siemcast::mapping::{Format, Mapping};
use siemcast::sources::eventhubs::records::{decode, Coordinates};
use siemcast::sources::storage_archive;

const VENDORS: &[&str] = &["arcsight", "qradar"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/real")
}

/// The fixture directories, sorted: mapping kinds and `eventhubs`.
fn dirs() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures/real exists")
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The JSON files of one directory, sorted.
fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out
}

/// The records of one file: a JSON array, an object whose `value` or `records` is one, or else
/// one record alone (a "Get" response body).
fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match doc {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("value").or_else(|| o.remove("records")) {
            Some(Value::Array(items)) => items,
            Some(other) => panic!(
                "{}: value or records is not an array: {other}",
                path.display()
            ),
            None => vec![Value::Object(o)],
        },
        _ => panic!("{}: not an array or an envelope", path.display()),
    }
}

fn mapping(vendor: &str, kind: &str) -> Mapping {
    let path = root()
        .join("mappings")
        .join(vendor)
        .join(format!("{kind}.toml"));
    Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether a directory's records are routed by the `eventhubs` decoder (message bodies, or
/// storage-archive blobs holding the same records).
fn routed(dir: &str) -> bool {
    dir == "eventhubs" || dir == "storage_archive"
}

/// The records of a `PT1H.json` blob: one `{"records":[…]}` document (flow logs), or JSON
/// lines, one record a line (diagnostic settings since November 2018).
fn blob_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    if serde_json::from_str::<Value>(&text).is_ok() {
        return records(path);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// One event as the sender gets it from the spool, with the record id it stands for.
struct Sent {
    /// `file#index` (for messages).
    at: String,
    /// The record's own id, before any `@status` suffix: what a SIEM's dedupe keys on.
    record_id: String,
    event: Event,
}

/// The events a fixture directory yields, as its source would spool them.
fn events(dir: &str) -> Vec<Sent> {
    let mut out = Vec::new();
    for path in files(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if routed(dir) {
            // One message per record list, coordinates from the file's place.
            let list = if dir == "eventhubs" {
                records(&path)
            } else {
                blob_records(&path)
            };
            // Flow logs read from a storage archive: one event per tuple, as the
            // `storage_archive` source makes them.
            let (flows, list): (Vec<Value>, Vec<Value>) = list.into_iter().partition(|r| {
                dir == "storage_archive"
                    && storage_archive::flows::maybe_flow(r.to_string().as_bytes())
            });
            for (i, record) in flows.iter().enumerate() {
                let bytes = record.to_string();
                let id =
                    storage_archive::record_id("insights-logs", &name, i as u64, bytes.as_bytes());
                let place = storage_archive::flows::Place {
                    container: "insights-logs",
                    blob: &name,
                    offset: i as u64,
                    id: &id,
                };
                let events = storage_archive::flows::tuple_events("real", record, place)
                    .unwrap_or_else(|| panic!("{name}#{i}: not a flow log"))
                    .unwrap_or_else(|e| panic!("{name}#{i}: {e}"));
                for (j, event) in events.into_iter().enumerate() {
                    out.push(Sent {
                        at: format!("{name}#{i}.{j}"),
                        record_id: event.id.clone(),
                        event,
                    });
                }
            }
            if list.is_empty() {
                continue;
            }
            let body = serde_json::json!({ "records": list });
            let payload = serde_json::to_vec(&body).unwrap();
            let at = Coordinates {
                topic: "insights-logs",
                partition: 0,
                offset: out.len() as i64,
            };
            let decoded = decode("hub", at, Some(&payload));
            assert!(decoded.bad.is_empty(), "{name}: {:?}", decoded.bad);
            for (i, event) in decoded.events.into_iter().enumerate() {
                out.push(Sent {
                    at: format!("{name}#{i}"),
                    record_id: event.id.clone(),
                    event,
                });
            }
        } else {
            let kind: EventKind = dir.parse().unwrap_or_else(|e| panic!("{dir}: {e}"));
            for (i, record) in records(&path).iter().enumerate() {
                let event = Event::from_json(kind, "real", record);
                let record_id = kind
                    .id_fields()
                    .iter()
                    .find_map(|f| record.get(*f).and_then(Value::as_str))
                    .map(str::to_owned)
                    .unwrap_or_else(|| event.id.clone());
                out.push(Sent {
                    at: format!("{name}#{i}"),
                    record_id,
                    event,
                });
            }
        }
    }
    out
}

/// Renders a directory's events with one vendor's mappings: one line per event, prefixed with
/// the kind it was rendered as for `eventhubs`. Checks each line decodes strictly and that no
/// two record ids share an `externalId`.
fn render_dir(vendor: &str, dir: &str) -> String {
    let mut mappings: BTreeMap<EventKind, Mapping> = BTreeMap::new();
    let mut by_external: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out = String::new();
    let sent = events(dir);
    assert!(!sent.is_empty(), "{dir}: no records");
    for s in &sent {
        let m = mappings
            .entry(s.event.kind)
            .or_insert_with(|| mapping(vendor, s.event.kind.as_str()));
        let mut line = Vec::new();
        m.render_json(&s.event.json, &mut line)
            .unwrap_or_else(|e| panic!("{vendor}/{dir} {}: {e}", s.at));
        let line = String::from_utf8(line).unwrap();
        let decoded = match m.format() {
            Format::Cef => mapping_decoders::decode_cef(&line),
            _ => mapping_decoders::decode_leef(&line),
        }
        .unwrap_or_else(|e| panic!("{vendor}/{dir} {}: {e}\n{line}", s.at));
        if let Some((_, ext)) = decoded.pairs.iter().find(|(k, _)| k == "externalId") {
            if let Some((other_id, other_at)) = by_external.get(ext) {
                assert_eq!(
                    other_id, &s.record_id,
                    "{vendor}/{dir}: {} and {} are different records with one externalId {ext:?}",
                    other_at, s.at
                );
            } else {
                by_external.insert(ext.clone(), (s.record_id.clone(), s.at.clone()));
            }
        }
        if routed(dir) {
            out.push_str(s.event.kind.as_str());
            out.push('\t');
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn check(vendor: &str, dir: &str) {
    let golden = root()
        .join("tests/golden/real")
        .join(vendor)
        .join(format!("{dir}.out"));
    let what = format!("{vendor}/{dir}");
    golden::check(
        &golden,
        &render_dir(vendor, dir),
        &what,
        "mapping::real_records",
    );
}

#[test]
fn every_real_record_renders_as_its_golden_line_for_both_vendors() {
    let dirs = dirs();
    assert!(!dirs.is_empty(), "no fixture directories");
    for dir in &dirs {
        assert!(
            fixtures().join(dir).join("ORIGIN.md").is_file(),
            "{dir}: ORIGIN.md names where each file comes from"
        );
        for vendor in VENDORS {
            check(vendor, dir);
        }
    }
}

#[test]
fn every_fixture_file_is_named_in_its_origin_table() {
    for dir in dirs() {
        let origin =
            std::fs::read_to_string(fixtures().join(&dir).join("ORIGIN.md")).unwrap_or_default();
        for path in files(&dir) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                origin.contains(&format!("`{name}`")),
                "{dir}/ORIGIN.md does not name `{name}`"
            );
        }
    }
}
