//! `Mapping::render_json` (one scan of the JSON bytes) must equal `Mapping::render_tree` on the
//! `Value` that `serde_json::from_slice` builds, for every input and every shipped mapping: the
//! same bytes on success, the same error otherwise (invalid JSON: serde_json's own message).
//! Inputs: random objects over the keys the samples use, the real sample events mutated with
//! hostile strings, duplicate keys, escapes and odd numbers, and broken JSON.

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use siemcast::mapping::{Mapping, RenderError};

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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every shipped mapping, and every sample event (of all kinds).
struct Fixtures {
    mappings: Vec<(String, Mapping)>,
    samples: Vec<J>,
    keys: Vec<String>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let mut mappings = Vec::new();
        for vendor in ["arcsight", "qradar"] {
            for kind in KINDS {
                let p = root().join(format!("mappings/{vendor}/{kind}.toml"));
                let m = Mapping::load(&p).unwrap_or_else(|e| panic!("{e}"));
                mappings.push((format!("{vendor}/{kind}"), m));
            }
        }
        let mut samples = Vec::new();
        let mut keys = Vec::new();
        for kind in KINDS {
            let text = std::fs::read_to_string(root().join(format!("examples/events/{kind}.json")))
                .unwrap();
            let events: Vec<Value> = serde_json::from_str(&text).unwrap();
            for ev in &events {
                collect_keys(ev, &mut keys);
                samples.push(J::from(ev));
            }
        }
        keys.sort();
        keys.dedup();
        Fixtures {
            mappings,
            samples,
            keys,
        }
    })
}

fn collect_keys(v: &Value, keys: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                keys.push(k.clone());
                collect_keys(x, keys);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_keys(x, keys)),
        _ => {}
    }
}

/// JSON as text pieces, so objects can hold duplicate keys and numbers keep their spelling.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl From<&Value> for J {
    fn from(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.to_string()),
            Value::String(s) => J::Str(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from).collect()),
            Value::Object(m) => J::Obj(m.iter().map(|(k, v)| (k.clone(), J::from(v))).collect()),
        }
    }
}

/// How strings are spelled: 0 minimal escapes, 1 every non-ASCII char as `\u` (surrogate pairs
/// above the BMP), 2 also `/` as `\/` and controls as `\u00XX`.
fn write_str(out: &mut String, s: &str, style: u8) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if style < 2 => out.push_str("\\n"),
            '\t' if style < 2 => out.push_str("\\t"),
            '/' if style == 2 => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if style >= 1 && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(out: &mut String, j: &J, style: u8) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => write_str(out, s, style),
        J::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(if style == 2 { " , " } else { "," });
                }
                write_json(out, x, style);
            }
            out.push(']');
        }
        J::Obj(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k, style);
                out.push_str(if style == 2 { " :\n" } else { ":" });
                write_json(out, x, style);
            }
            out.push('}');
        }
    }
}

fn text(j: &J, style: u8) -> Vec<u8> {
    let mut s = String::new();
    write_json(&mut s, j, style);
    s.into_bytes()
}

/// What `render_tree(&from_slice(json)?)` gives, with the prefix `out` started with.
fn reference(m: &Mapping, json: &[u8]) -> (Result<(), RenderError>, Vec<u8>) {
    let mut out = b"<prefix>".to_vec();
    let r = match serde_json::from_slice::<Value>(json) {
        Ok(v) => m.render_tree(&v, &mut out),
        Err(e) => Err(RenderError::Json(e.to_string())),
    };
    (r, out)
}

fn same_for_all(json: &[u8]) -> Result<(), TestCaseError> {
    // A body checked at ingest is one serde_json parses: only then may the sender walk it
    // without checking (`render_checked_walk`), and the walk must then give the same result.
    let valid = serde_json::from_slice::<Value>(json).is_ok();
    for (name, m) in &fixtures().mappings {
        let (want, want_out) = reference(m, json);
        let mut out = b"<prefix>".to_vec();
        let got = m.render_json(json, &mut out);
        prop_assert_eq!(&got, &want, "{}: {:?}", name, String::from_utf8_lossy(json));
        prop_assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want_out),
            "{}: {:?}",
            name,
            String::from_utf8_lossy(json)
        );
        let mut walked = b"<prefix>".to_vec();
        let walk = m.render_checked_walk(json, &mut walked);
        let gave_up = walk.is_none();
        if valid {
            let walk = walk.ok_or_else(|| {
                TestCaseError::fail(format!("{name}: the walk gave up on valid JSON"))
            })?;
            prop_assert_eq!(
                &walk,
                &want,
                "{}: {:?}",
                name,
                String::from_utf8_lossy(json)
            );
            if walk.is_ok() {
                prop_assert_eq!(
                    String::from_utf8_lossy(&walked),
                    String::from_utf8_lossy(&want_out),
                    "{}: {:?}",
                    name,
                    String::from_utf8_lossy(json)
                );
            }
        }
        // The checking walk answers only where serde_json accepts, and then as it does.
        let mut checking = b"<prefix>".to_vec();
        if let Some(got) = m.render_checking_walk(json, &mut checking) {
            prop_assert!(
                valid,
                "{}: answered for {:?}",
                name,
                String::from_utf8_lossy(json)
            );
            prop_assert_eq!(&got, &want, "{}: {:?}", name, String::from_utf8_lossy(json));
            if got.is_ok() {
                prop_assert_eq!(&checking, &walked);
            }
        }
        // On invalid JSON the walk has to stop without panicking (it did, to get here); when it
        // gives up, `render_body` checks the bytes and reports what `render_json` does.
        let mut body = b"<prefix>".to_vec();
        let checked = m.render_body(json, true, &mut body);
        if valid || gave_up {
            prop_assert_eq!(
                &checked,
                &want,
                "{}: {:?}",
                name,
                String::from_utf8_lossy(json)
            );
        }
    }
    Ok(())
}

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,12}",
        2 => "\\PC{0,10}",
        1 => prop::collection::vec(
            prop_oneof![
                Just("\n".to_string()), Just("\r\n".to_string()), Just("|".to_string()),
                Just("=".to_string()), Just("\\".to_string()), Just("\t".to_string()),
                Just("\u{0}".to_string()), Just("\u{7f}".to_string()), Just("😀".to_string()),
                Just("\"".to_string()), Just("é".to_string()), Just(" ".to_string()),
                Just("\u{2028}".to_string()), Just("\u{feff}".to_string()),
            ],
            0..8
        ).prop_map(|v| v.concat()),
        1 => prop_oneof![
            Just("2025-03-04T09:15:22.1234567Z".to_string()),
            Just("2025-03-04T09:15:22+02:00".to_string()),
            Just("2025-03-04 09:15:22".to_string()),
            Just("1741079722123".to_string()),
            Just("203.0.113.7".to_string()),
            Just("[2001:db8::1]:443".to_string()),
            Just("::ffff:10.0.0.1".to_string()),
            Just("High".to_string()),
            Just("ip".to_string()),
            Just("ServiceHealth".to_string()),
            Just("Succeeded".to_string()),
            Just("0x1a2c".to_string()),
            Just(String::new()),
            Just("   ".to_string()),
        ],
        1 => "\\PC{200,400}",
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop_oneof![
            Just("-0"),
            Just("0.0"),
            Just("1e400"),
            Just("-1e400"),
            Just("1E2"),
            Just("18446744073709551616"),
            Just("-9223372036854775809"),
            Just("5"),
            Just("3.0"),
            Just("1.5e-320"),
            Just("7"),
            Just("10"),
        ]
        .prop_map(str::to_string),
    ]
}

fn key() -> impl Strategy<Value = String> {
    let pool = fixtures().keys.clone();
    prop_oneof![
        6 => prop::sample::select(pool),
        1 => hostile(),
    ]
}

fn scalar() -> impl Strategy<Value = J> {
    prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        2 => number().prop_map(J::Num),
        6 => hostile().prop_map(J::Str),
    ]
}

fn json() -> impl Strategy<Value = J> {
    scalar().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..8).prop_map(J::Obj),
        ]
    })
}

/// Every location (as child indices) inside `j`.
fn locations(j: &J, at: &mut Vec<usize>, all: &mut Vec<Vec<usize>>) {
    all.push(at.clone());
    let kids: Vec<&J> = match j {
        J::Arr(a) => a.iter().collect(),
        J::Obj(m) => m.iter().map(|(_, v)| v).collect(),
        _ => return,
    };
    for (i, k) in kids.into_iter().enumerate() {
        at.push(i);
        locations(k, at, all);
        at.pop();
    }
}

fn node_mut<'a>(j: &'a mut J, loc: &[usize]) -> &'a mut J {
    match loc.split_first() {
        None => j,
        Some((i, rest)) => match j {
            J::Arr(a) => node_mut(&mut a[*i], rest),
            J::Obj(m) => node_mut(&mut m[*i].1, rest),
            _ => unreachable!(),
        },
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(J),
    /// Repeat one key of an object with a new value: after (it wins) or before (it loses).
    Duplicate {
        value: J,
        after: bool,
    },
    Remove,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => json().prop_map(Mutation::Replace),
        4 => scalar().prop_map(Mutation::Replace),
        3 => (json(), any::<bool>()).prop_map(|(value, after)| Mutation::Duplicate { value, after }),
        1 => Just(Mutation::Remove),
    ]
}

fn mutate(ev: &mut J, picks: &[(prop::sample::Index, Mutation)]) {
    for (pick, m) in picks {
        let mut all = Vec::new();
        locations(ev, &mut Vec::new(), &mut all);
        let loc = pick.get(&all).clone();
        if loc.is_empty() {
            continue;
        }
        let (last, parent) = loc.split_last().unwrap();
        let parent = node_mut(ev, parent);
        match (m, parent) {
            (Mutation::Replace(v), J::Arr(a)) => a[*last] = v.clone(),
            (Mutation::Replace(v), J::Obj(o)) => o[*last].1 = v.clone(),
            (Mutation::Remove, J::Arr(a)) => {
                a.remove(*last);
            }
            (Mutation::Remove, J::Obj(o)) => {
                o.remove(*last);
            }
            (Mutation::Duplicate { value, after }, J::Obj(o)) => {
                let k = o[*last].0.clone();
                let at = if *after { o.len() } else { *last };
                o.insert(at, (k, value.clone()));
            }
            (Mutation::Duplicate { value, .. }, J::Arr(a)) => a.push(value.clone()),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn random_objects_render_the_same(
        fields in prop::collection::vec((key(), json()), 0..16),
        style in 0u8..3,
    ) {
        same_for_all(&text(&J::Obj(fields), style))?;
    }

    #[test]
    fn mutated_samples_render_the_same(
        which in any::<prop::sample::Index>(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..6),
        style in 0u8..3,
    ) {
        let mut ev = which.get(&fixtures().samples).clone();
        mutate(&mut ev, &picks);
        same_for_all(&text(&ev, style))?;
    }

    #[test]
    fn broken_json_fails_the_same(
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0u8..3,
    ) {
        let mut bytes = text(which.get(&fixtures().samples), 0);
        let at = cut.index(bytes.len());
        match how {
            0 => bytes.truncate(at),
            1 => bytes[at] = byte,
            _ => bytes.insert(at, byte),
        }
        same_for_all(&bytes)?;
    }
}

#[test]
fn samples_render_the_same_in_every_spelling() {
    for ev in &fixtures().samples {
        for style in 0..3 {
            same_for_all(&text(ev, style)).unwrap();
        }
        // The real samples hold nothing the checking walk leaves to serde_json.
        let (name, m) = &fixtures().mappings[0];
        let json = text(ev, 0);
        assert!(
            m.render_checking_walk(&json, &mut Vec::new()).is_some(),
            "{name}: {}",
            String::from_utf8_lossy(&json)
        );
    }
}

#[test]
fn duplicate_keys_last_one_wins() {
    let m = &fixtures().mappings[0].1; // arcsight/azure_activity
    let json = br#"{"level":"Error","operationName":{"value":"a"},"level":"Warning",
        "operationName":{"localizedValue":"b"},"caller":"x","caller":null}"#;
    let mut out = Vec::new();
    m.render_json(json, &mut out).unwrap();
    let line = String::from_utf8(out).unwrap();
    // Severity from the second `level`; the second `operationName` replaced the first whole.
    assert!(line.starts_with("CEF:0|Microsoft|Azure Activity Log|2015-04-01|unknown|b|5|"));
    assert!(!line.contains("suser="), "{line}");
    same_for_all(json).unwrap();
}

#[test]
fn hostile_inputs_fail_or_render_the_same() {
    let deep = |n: usize, key: &str| format!("{{\"{key}\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for n in [1, 126, 127, 128, 129, 500] {
        cases.push(deep(n, "level").into_bytes());
        cases.push(deep(n, "unmapped").into_bytes());
        cases.push(format!("{}{{}}{}", "[".repeat(n), "]".repeat(n)).into_bytes());
    }
    for s in [
        &b"{}"[..],
        b"",
        b"   ",
        b"[]",
        b"null",
        b"1",
        b"\"x\"",
        b"true",
        b"{} {}",
        b"{}x",
        b"{\"level\":\"Error\"",
        b"{\"level\":\"Err\xffor\"}",
        b"{\"unmapped\":\"\xff\"}",
        b"{\"\xc3\":1}",
        b"{\"level\":\"\\ud800\"}",
        b"{\"unmapped\":\"\\ud800\"}",
        b"{\"unmapped\":\"\\ud83d\\ude00\",\"caller\":\"\\ud83d\\ude00\"}",
        b"{\"caller\":\"\\u0000a\\u2028\"}",
        b"{\"caller\":\"a\\qb\"}",
        b"{\"unmapped\":\"a\\qb\"}",
        b"{\"unmapped\":1e400}",
        b"{\"level\":1e400}",
        b"{\"level\":-0}",
        b"{\"level\":7.0,\"caller\":18446744073709551616}",
        b"{\"unmapped\":01}",
        b"{\"caller\":\"a\x01b\"}",
        b"{\"unmapped\":\"a\nb\"}",
        b"{\"level\":[1,2,],\"x\":1}",
        b"{\"level\":{\"a\":1,\"a\":2}}",
        b"{\"claims\":{\"ipaddr\":\"10.0.0.1\"},\"claims\":{\"appid\":\"z\"}}",
        b"{\"claims\":{\"ipaddr\":\"10.0.0.1\"},\"claims\":5}",
        b"\xef\xbb\xbf{}",
        b"{\"caller\":\"\xf0\x9f\x98\x80\"}",
    ] {
        cases.push(s.to_vec());
    }
    for c in &cases {
        same_for_all(c).unwrap();
    }
}
