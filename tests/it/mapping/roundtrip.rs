//! Property tests: arbitrary Unicode in any mapped field renders to one line that the strict
//! decoders accept, with exactly the mapped keys, each decoding back to the input after the
//! documented substitutions and truncation. Also: every golden line decodes strictly, and the
//! compiler never panics on any text.

use super::decoders;

use std::path::Path;

use decoders::{decode_cef, decode_leef};
use proptest::prelude::*;
use serde_json::{json, Value};
use siemcast::mapping::Mapping;

/// (key, max chars, label) for the CEF property mapping; values come from `f<i>`.
const CEF_KEYS: &[(&str, usize, Option<&str>)] = &[
    ("msg", 1023, None),
    ("suser", 1023, None),
    ("act", 63, None),
    ("externalId", 40, None),
    ("cs1", 4000, Some("Label with = and \\ and |")),
    ("requestContext", 2048, None),
    ("MicrosoftCustom", 1023, None),
];
const LEEF_KEYS: &[(&str, usize)] = &[
    ("usrName", 255),
    ("cat", 4000),
    ("resource", 4000),
    ("calLanguage", 2),
    ("customKey", 4000),
];
const CEF_HEADER_MAX: [usize; 5] = [63, 63, 31, 1023, 512];

fn cef_mapping() -> Mapping {
    let mut t = String::from(
        "format = \"cef\"\n[header]\nvendor = { path = \"h0\", default = \"V\" }\n\
         product = { path = \"h1\" }\nversion = { path = \"h2\" }\nclass_id = { path = \"h3\" }\n\
         name = { path = \"h4\" }\nseverity = { path = \"sev\" }\n",
    );
    for (i, (k, _, label)) in CEF_KEYS.iter().enumerate() {
        t.push_str(&format!("[[field]]\nkey = \"{k}\"\npath = \"f{i}\"\n"));
        if let Some(l) = label {
            t.push_str(&format!("label = '{l}'\n"));
        }
        if k.starts_with("Microsoft") {
            t.push_str("custom = true\n");
        }
    }
    Mapping::compile(Path::new("prop-cef.toml"), &t).unwrap_or_else(|e| panic!("{e}"))
}

fn leef_mapping(head: &str) -> Mapping {
    let mut t = format!(
        "{head}\n[header]\nvendor = {{ path = \"h0\" }}\nproduct = {{ path = \"h1\" }}\n\
         version = {{ path = \"h2\" }}\nevent_id = {{ path = \"h3\" }}\n"
    );
    for (i, (k, _)) in LEEF_KEYS.iter().enumerate() {
        t.push_str(&format!("[[field]]\nkey = \"{k}\"\npath = \"f{i}\"\n"));
        if k.starts_with("custom") {
            t.push_str("custom = true\n");
        }
    }
    Mapping::compile(Path::new("prop-leef.toml"), &t).unwrap_or_else(|e| panic!("{e}"))
}

fn blank(c: char) -> bool {
    c <= ' ' || c == '\u{7f}'
}

fn take(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// CEF extension value as a receiver sees it: first n chars, trailing blanks trimmed, controls
/// other than CR/LF shown as spaces.
fn cef_expect(s: &str, n: usize) -> String {
    let t = take(s, n);
    t.trim_end_matches(blank)
        .chars()
        .map(|c| {
            if blank(c) && c != '\n' && c != '\r' && c != ' ' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Header: leading/trailing blanks trimmed, first n chars, all controls → space, empty → unknown.
fn header_expect(s: &str, n: usize, pipe: Option<char>) -> String {
    let t = take(s.trim_start_matches(blank), n);
    let t: String = t
        .trim_end_matches(blank)
        .replace("\r\n", if pipe.is_some() { " " } else { "  " })
        .chars()
        .map(|c| {
            if blank(c) {
                ' '
            } else if Some(c) == Some('|') && pipe.is_some() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if t.is_empty() {
        "unknown".into()
    } else {
        t
    }
}

/// LEEF value: first n chars, trailing blanks and delimiter trimmed, CRLF → one space, other
/// controls and the delimiter → space.
fn leef_expect(s: &str, n: usize, delim: char) -> String {
    let t = take(s, n);
    t.trim_end_matches(|c| blank(c) || c == delim)
        .replace("\r\n", " ")
        .chars()
        .map(|c| if blank(c) || c == delim { ' ' } else { c })
        .collect()
}

/// Strings rich in everything that could break the formats.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\r".to_string()),
        Just("|".to_string()),
        Just("=".to_string()),
        Just("\\".to_string()),
        Just("\t".to_string()),
        Just("\0".to_string()),
        Just("^".to_string()),
        Just(" ".to_string()),
        Just(" src=1.2.3.4".to_string()),
        Just("CEF:0|x|".to_string()),
        Just("😀".to_string()),
        Just("\u{7f}".to_string()),
        "[a-z]{1,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..24).prop_map(|v| v.concat()),
        2 => any::<String>(),
        1 => ("[a-zé😀=\\\\|\n ]{1,4}", 2500usize..2700).prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn event(strings: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for (i, s) in strings.iter().enumerate().take(5) {
        m.insert(format!("h{i}"), json!(s));
    }
    for (i, s) in strings.iter().enumerate().skip(5) {
        m.insert(format!("f{}", i - 5), json!(s));
    }
    m.insert("sev".into(), json!(strings[0].len() % 13));
    Value::Object(m)
}

fn render(m: &Mapping, ev: &Value) -> String {
    let mut out = Vec::new();
    m.render(ev, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "line break on the wire: {s:?}"
    );
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn cef_round_trips(strings in prop::collection::vec(hostile(), 12)) {
        let m = cef_mapping();
        let ev = event(&strings);
        let line = render(&m, &ev);
        let d = decode_cef(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
        for (i, max) in CEF_HEADER_MAX.iter().enumerate() {
            let want = if i == 0 && header_expect(&strings[0], 63, None) == "unknown" {
                "V".to_string()
            } else {
                header_expect(&strings[i], *max, None)
            };
            prop_assert_eq!(&d.header[i], &want, "header {}", i);
        }
        prop_assert_eq!(&d.header[5], &(strings[0].len() % 13).min(10).to_string());
        let mut want = Vec::new();
        for (i, (k, max, label)) in CEF_KEYS.iter().enumerate() {
            let v = cef_expect(&strings[5 + i], *max);
            if !v.is_empty() {
                want.push((k.to_string(), v));
                if let Some(l) = label {
                    want.push((format!("{k}Label"), l.to_string()));
                }
            }
        }
        prop_assert_eq!(d.pairs, want);
    }

    #[test]
    fn leef2_round_trips(strings in prop::collection::vec(hostile(), 10)) {
        leef_check(&leef_mapping("format = \"leef2\"\ndelimiter = \"^\""), &strings, '^')?;
    }

    #[test]
    fn leef1_round_trips(strings in prop::collection::vec(hostile(), 10)) {
        leef_check(&leef_mapping("format = \"leef1\""), &strings, '\t')?;
    }

    #[test]
    fn compiler_never_panics(text in any::<String>()) {
        let _ = Mapping::compile(Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn compiler_never_panics_on_mutated_mappings(
        pick in 0usize..12,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..6),
    ) {
        let vendor = if pick % 2 == 0 { "arcsight" } else { "qradar" };
        let kind = ["azure_activity", "defender_alerts", "graph_alerts", "entra_audit", "entra_signins", "o365_management"][pick / 2];
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("mappings/{vendor}/{kind}.toml"));
        let mut chars: Vec<char> = std::fs::read_to_string(&path).unwrap().chars().collect();
        for (at, c, op) in edits {
            let i = at.index(chars.len().max(1)).min(chars.len());
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => { chars.remove(i); }
                _ if i < chars.len() => chars[i] = c,
                _ => {}
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(m) = Mapping::compile(&path, &text) {
            // Whatever still compiles must still render safely.
            let mut out = Vec::new();
            let _ = m.render(&json!({"a": "x\ny"}), &mut out);
            prop_assert!(!out.contains(&b'\n'));
        }
    }
}

fn leef_check(m: &Mapping, strings: &[String], delim: char) -> Result<(), TestCaseError> {
    let ev = event(strings);
    let line = render(m, &ev);
    let d = decode_leef(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
    prop_assert_eq!(d.header.len(), 4);
    for (i, (got, input)) in d.header.iter().zip(strings).enumerate() {
        prop_assert_eq!(got, &header_expect(input, 255, Some('|')), "header {}", i);
    }
    let mut want = Vec::new();
    for (i, (k, max)) in LEEF_KEYS.iter().enumerate() {
        let v = leef_expect(&strings[5 + i], *max, delim);
        if !v.is_empty() {
            want.push((k.to_string(), v));
        }
    }
    prop_assert_eq!(d.pairs, want);
    Ok(())
}

#[test]
fn every_golden_line_decodes_strictly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut n = 0;
    for vendor in ["arcsight", "qradar"] {
        for entry in std::fs::read_dir(root.join(vendor)).unwrap() {
            let path = entry.unwrap().path();
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let r = if vendor == "arcsight" {
                    decode_cef(line)
                } else {
                    decode_leef(line)
                };
                let d = r.unwrap_or_else(|e| panic!("{}: {e}\n{line}", path.display()));
                assert_eq!(d.header[0], "Microsoft");
                n += 1;
            }
        }
    }
    assert!(n >= 36, "{n} golden lines");
}

#[test]
fn hostile_sample_cannot_forge_keys() {
    let m = cef_mapping();
    let ev = json!({"h0": "V", "h1": "P", "h2": "1", "h3": "c", "h4": "n",
        "f0": "x\nCEF:0|Evil|P|1|c|n|10|src=6.6.6.6 act=forged", "f1": "a=b suser=root"});
    let d = decode_cef(&render(&m, &ev)).unwrap();
    let keys: Vec<&str> = d.pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["msg", "suser"]);
    assert_eq!(d.pairs[1].1, "a=b suser=root");
}

#[test]
fn ipv6_goes_to_c6a2_and_bad_ips_are_omitted() {
    let t = "format = \"cef\"\n[header]\nvendor = \"M\"\nproduct = \"P\"\nversion = \"1\"\nclass_id = \"c\"\nname = \"n\"\nseverity = 3\n[[field]]\nkey = \"src\"\npath = \"ip\"\n[[field]]\nkey = \"dst\"\npath = \"ip2\"\n";
    let m = Mapping::compile(Path::new("m.toml"), t).unwrap();
    let line = render(&m, &json!({"ip": "2001:db8::1", "ip2": "10.1.1.x"}));
    assert_eq!(
        line,
        "CEF:0|M|P|1|c|n|3|c6a2=2001:db8::1 c6a2Label=Source IPv6 Address"
    );
    let line = render(&m, &json!({"ip": "10.0.0.1:443", "ip2": "2001:db8::2"}));
    assert_eq!(
        line,
        "CEF:0|M|P|1|c|n|3|src=10.0.0.1 c6a3=2001:db8::2 c6a3Label=Destination IPv6 Address"
    );
}

#[test]
fn leef_time_writes_devtime_format() {
    let t = "format = \"leef1\"\n[header]\nvendor = \"M\"\nproduct = \"P\"\nversion = \"1\"\nevent_id = \"e\"\n[[field]]\nkey = \"devTime\"\npath = \"t\"\nconvert = \"leef_time\"\n[[field]]\nkey = \"sev\"\npath = \"s\"\n";
    let m = Mapping::compile(Path::new("m.toml"), t).unwrap();
    let line = render(&m, &json!({"t": "2025-03-04T09:15:22.1234567Z", "s": 0}));
    assert_eq!(line, "LEEF:1.0|M|P|1|e|devTime=Mar 04 2025 09:15:22.123 GMT\tdevTimeFormat=MMM dd yyyy HH:mm:ss.SSS z\tsev=1");
    decode_leef(&line).unwrap();
}

#[test]
fn required_keys_fail_the_render_with_a_clear_error() {
    let t = "format = \"cef\"\n[header]\nvendor = \"M\"\nproduct = \"P\"\nversion = \"1\"\nclass_id = \"c\"\nname = \"n\"\nseverity = 3\n[[field]]\nkey = \"rt\"\npath = \"time\"\nrequired = true\n";
    let m = Mapping::compile(Path::new("m.toml"), t).unwrap();
    let mut out = b"keep".to_vec();
    let e = m.render(&json!({"x": 1}), &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "required key 'rt' has no value: time is missing or empty in the event"
    );
    assert_eq!(out, b"keep");
    let e = m.render(&json!({"time": "soon"}), &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "required key 'rt': \"soon\" from time is not a timestamp (RFC 3339, US month/day/year, or epoch digits)"
    );
    let e = m.render(&json!([1]), &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the event is an array, not a JSON object; mappings render objects only"
    );
}
