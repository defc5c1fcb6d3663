//! `siemcast render` is the sender: for the same records, what it prints equals byte for byte
//! what `siemcast run` sends (files source → spool → destination → loopback TCP receiver written
//! here), for both vendors and every syslog header, send time aside. The records include the
//! samples, generated ones, hostile text, a whole-file array, a `value` envelope and records
//! whose rendered message passes a destination's default 64 KiB `max_message_bytes`.

use crate::util;

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// A loopback TCP listener keeping every byte it receives, over any number of connections.
struct Receiver {
    port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let keep = bytes.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64 << 10];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        keep.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Receiver { port, bytes }
    }

    fn lines(&self) -> usize {
        self.bytes
            .lock()
            .unwrap()
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }
}

/// Each message with its send time replaced by `<TIME>`: `Mmm dd hh:mm:ss` after an RFC 3164
/// PRI, the TIMESTAMP field of RFC 5424. Everything else is kept, so it is compared exactly.
fn without_time(bytes: &[u8], syslog: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = bytes
        .split_inclusive(|b| *b == b'\n')
        .map(|m| {
            let m = m.to_vec();
            let pri_end = m.iter().position(|b| *b == b'>').map(|i| i + 1);
            match (syslog, pri_end) {
                ("rfc3164", Some(i)) => [&m[..i], b"<TIME>", &m[i + 15..]].concat(),
                ("rfc5424", Some(i)) => {
                    // "<PRI>1 TIMESTAMP HOST ..."
                    let ts = i + 2;
                    let end = ts + m[ts..].iter().position(|b| *b == b' ').unwrap();
                    [&m[..ts], b"<TIME>", &m[end..]].concat()
                }
                _ => m,
            }
        })
        .collect();
    // The receiver gets the files in the order the source reads them; compare as sets of
    // messages with their multiplicity.
    out.sort();
    out
}

/// Records made to be hard on the path: hostile text in header fields and keys, escapes,
/// duplicate keys, odd numbers, and fields long enough for the message to pass 64 KiB.
fn hostile_records() -> Vec<String> {
    let long = "\u{1D11E}".repeat(4000);
    let mut big = json!({
        "eventDataId": "big-1",
        "eventTimestamp": "2026-11-01T10:00:00Z",
        "level": "Error",
        "category": {"value": "Administrative"},
        "status": {"value": "Failed"},
    });
    for key in [
        "caller",
        "description",
        "resourceId",
        "resourceGroupName",
        "subscriptionId",
        "tenantId",
        "correlationId",
        "operationId",
    ] {
        big[key] = Value::String(long.clone());
    }
    for (outer, inner) in [
        ("operationName", "localizedValue"),
        ("subStatus", "localizedValue"),
        ("resourceProviderName", "value"),
        ("authorization", "action"),
        ("authorization", "role"),
        ("claims", "appid"),
    ] {
        big[outer][inner] = Value::String(long.clone());
    }
    let mut big2 = big.clone();
    big2["eventDataId"] = json!("big-2");
    big2["caller"] = json!("a=b\\c|d\r\ne");
    vec![
        big.to_string(),
        big2.to_string(),
        r#"{"eventDataId":"esc-1","caller":"x\r\nCEF:0|forged|line","description":"a=b\\c|d\u0000e","operationName":{"value":"op|with|pipes","localizedValue":"Name\nwith LF"},"level":"Warning"}"#.to_owned(),
        r#"{"eventDataId":"dup-1","caller":"first","caller":"second","level":"Informational","eventTimestamp":"2026-11-01T10:00:00.1234567Z"}"#.to_owned(),
        r#"{"eventDataId":"num-1","level":3,"claims":{"ipaddr":"[2001:db8::1]:443"},"properties":{"statusCode":1.50e2},"description":"\u00e9\u4e2d\ud83d\ude00 \/slash"}"#.to_owned(),
        r#"{"eventDataId":"ws-1" ,  "caller" : "spaced out" , "level":"Critical"}"#.to_owned(),
    ]
}

fn siemcast_render(mapping: &Path, input: &Path, syslog: &str) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["render", "--mapping"])
        .arg(mapping)
        .arg("--input")
        .arg(input)
        .args(["--syslog", syslog])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn render_prints_byte_for_byte_what_a_destination_sends() {
    let scratch = util::Scratch::new();
    let input = scratch.input();
    // NDJSON: generated records and the hostile ones.
    let mut ndjson = util::activity_events(0..40);
    for r in hostile_records() {
        ndjson.push_str(&r);
        ndjson.push('\n');
    }
    std::fs::write(input.join("a.ndjson"), &ndjson).unwrap();
    // A whole-file JSON array (the shipped samples, pretty-printed as they are).
    let samples = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events/azure_activity.json"),
    )
    .unwrap();
    let sample_count = serde_json::from_slice::<Vec<Value>>(&samples)
        .unwrap()
        .len();
    std::fs::write(input.join("b.json"), &samples).unwrap();
    // An API answer: a `value` envelope.
    let page = format!(
        "{{\"value\": [{}],\n \"nextLink\": null}}",
        util::activity_events(100..105).trim().replace('\n', ",\n")
    );
    std::fs::write(input.join("c.json"), page).unwrap();

    // One destination per vendor and syslog header, each with its own receiver; nothing but
    // the header and the mappings set, so every other setting is the default the preview uses.
    let formats = ["rfc3164", "rfc5424", "none"];
    let vendors = ["arcsight", "qradar"];
    let mut receivers = Vec::new();
    let mut config = String::from(
        "state_dir = \"state\"\n[metrics]\naddress = \"\"\n\n[[source]]\nname = \"files\"\nkind = \"files\"\npath = \"input\"\nsource_kind = \"azure_activity\"\ninterval = \"200ms\"\n",
    );
    for vendor in vendors {
        for syslog in formats {
            let r = Receiver::start();
            config.push_str(&format!(
                "\n[[destination]]\nname = \"{vendor}-{syslog}\"\naddress = \"127.0.0.1:{}\"\nsyslog = \"{syslog}\"\nmappings = \"{}\"\n",
                r.port,
                util::shipped_mappings(vendor).display()
            ));
            receivers.push((vendor, syslog, r));
        }
    }
    std::fs::write(scratch.config(), config).unwrap();

    // What the preview prints for the same files.
    let mut previews = Vec::new();
    for (vendor, syslog, _) in &receivers {
        let mapping = util::shipped_mappings(vendor).join("azure_activity.toml");
        let mut printed = Vec::new();
        for file in ["a.ndjson", "b.json", "c.json"] {
            printed.extend(siemcast_render(&mapping, &input.join(file), syslog));
        }
        previews.push(printed);
    }
    let expected_lines = previews[0].iter().filter(|b| **b == b'\n').count();
    assert_eq!(
        expected_lines,
        40 + hostile_records().len() + sample_count + 5
    );

    let mut run = util::spawn_run(&scratch.config());
    for (_, _, r) in &receivers {
        util::wait_until(Duration::from_secs(60), "every destination's lines", || {
            r.lines() >= expected_lines
        });
    }
    util::pause(Duration::from_millis(300));
    util::stop(&mut run);

    let mut cut = 0;
    for ((vendor, syslog, r), printed) in receivers.iter().zip(&previews) {
        let sent = r.bytes.lock().unwrap().clone();
        let sent = without_time(&sent, syslog);
        let shown = without_time(printed, syslog);
        assert_eq!(sent.len(), shown.len(), "{vendor} {syslog}: message counts");
        for (s, p) in sent.iter().zip(&shown) {
            assert!(
                s == p,
                "{vendor} {syslog}: sent and previewed differ:\nsent:    {}\npreview: {}",
                String::from_utf8_lossy(&s[..s.len().min(300)]),
                String::from_utf8_lossy(&p[..p.len().min(300)])
            );
        }
        // The long records reach the destination's limit (64 KiB before the LF) in both.
        let raw: Vec<&[u8]> = printed.split_inclusive(|b| *b == b'\n').collect();
        cut += raw.iter().filter(|m| m.len() == (64 << 10) + 1).count();
        assert!(
            raw.iter().all(|m| m.len() <= (64 << 10) + 1),
            "{vendor} {syslog}"
        );
    }
    assert!(cut >= 2, "no record was long enough to be cut: {cut}");
}

/// The shipped sample of `kind` number `i`, without the `_siemcast` stamp the source adds:
/// the record as a diagnostic setting writes it to the hub.
fn streamed_record(kind: &str, i: usize) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/events/{kind}.json"));
    let mut records: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut r = records.swap_remove(i);
    r.as_object_mut().unwrap().shift_remove("_siemcast");
    r
}

#[test]
fn as_eventhubs_routes_each_record_to_its_kind_and_stamps_it() {
    use siemcast::sources::eventhubs::records::{coordinate_id, decode, Coordinates};
    let scratch = util::Scratch::new();
    let activity = streamed_record("eventhubs_activity", 0);
    let audit = streamed_record("eventhubs_entra_audit", 0);
    let audit_id = audit["properties"]["id"].as_str().unwrap().to_owned();
    // One message with both records, then one whose second record is not an object.
    let first = json!({ "records": [activity, audit] }).to_string();
    let second = json!({ "records": [streamed_record("eventhubs_activity", 1), 7] }).to_string();
    let input = scratch.dir.path().join("messages.ndjson");
    std::fs::write(&input, format!("{first}\n{second}\n")).unwrap();

    for vendor in ["arcsight", "qradar"] {
        let dir = util::shipped_mappings(vendor);
        let out = Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["render", "--as", "eventhubs", "--mappings"])
            .arg(&dir)
            .arg("--input")
            .arg(&input)
            .args(["--topic", "insights-logs-auditlogs", "--partition", "3"])
            .args(["--offset", "17"])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("event 3: line 2 (offset 18): record 1 is not a JSON object"),
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "records rendered by kind: 2 eventhubs_activity, 1 eventhubs_entra_audit"
            ),
            "{stderr}"
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{stdout}");

        // Each record with the mapping of its own kind, its id and stamp from where it sits.
        let head = if vendor == "arcsight" {
            "CEF:0|Microsoft|"
        } else {
            "LEEF:2.0|Microsoft|"
        };
        assert!(
            lines[0].starts_with(&format!("{head}Azure Activity Log|")),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(&format!("{head}Entra ID Audit|")),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with(&format!("{head}Azure Activity Log|")),
            "{}",
            lines[2]
        );
        let at = |offset| Coordinates {
            topic: "insights-logs-auditlogs",
            partition: 3,
            offset,
        };
        assert!(lines[0].contains(&coordinate_id(at(17), 0)), "{}", lines[0]);
        assert!(lines[2].contains(&coordinate_id(at(18), 0)), "{}", lines[2]);
        assert!(lines[1].contains(&audit_id[..30]), "{}", lines[1]);
        for line in &lines[..2] {
            assert!(line.contains("insights-logs-auditlogs/3@17"), "{line}");
        }

        // And exactly what the `eventhubs` source's decoder and the mapping give.
        let mut want = Vec::new();
        for (message, offset) in [(&first, 17), (&second, 18)] {
            for ev in decode("hub", at(offset), Some(message.as_bytes())).events {
                let mapping =
                    siemcast::mapping::Mapping::load(&dir.join(format!("{}.toml", ev.kind)))
                        .unwrap();
                mapping.render_json(&ev.json, &mut want).unwrap();
                want.push(b'\n');
            }
        }
        assert_eq!(stdout, String::from_utf8(want).unwrap(), "{vendor}");
    }
}

#[test]
fn as_eventhubs_needs_a_mappings_folder() {
    let out = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["render", "--as", "eventhubs", "--mapping"])
        .arg(util::shipped_mappings("arcsight").join("eventhubs_activity.toml"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--mappings DIR"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
