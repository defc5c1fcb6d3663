//! What a syslog destination puts after the header: the event rendered by its mapping file
//! (CEF or LEEF, `output = "mappings"`), or the source record itself as one compact JSON line
//! (`output = "json"`). A JSON body is checked to be JSON and its whitespace outside strings
//! removed, so it never holds a raw line break, CR or NUL (JSON strings cannot hold them).

use crate::config::{DestinationConfig, Output};
use crate::mapping::{Mapping, MappingSet, RenderError};

/// A destination's bodies: its mapping set, or JSON for every kind (the kinds routed to it).
#[derive(Debug)]
pub enum Bodies {
    Mappings(MappingSet),
    Json(Vec<String>),
}

impl Bodies {
    /// The mapping set for `kinds` from the destination's `mappings` folder (resolved by
    /// `resolve`), or nothing to load for `output = "json"`.
    pub fn load(
        cfg: &DestinationConfig,
        kinds: &[&str],
        resolve: impl FnOnce(&std::path::Path) -> std::path::PathBuf,
    ) -> Result<Self, String> {
        match cfg.output {
            Output::Json => Ok(Bodies::Json(
                kinds.iter().map(|k| (*k).to_owned()).collect(),
            )),
            Output::Mappings => MappingSet::load(&resolve(&cfg.mappings), kinds)
                .map(Bodies::Mappings)
                .map_err(|e| e.to_string()),
        }
    }

    /// How records of `kind` are rendered; `None` when no mapping for it is loaded.
    pub fn get(&self, kind: &str) -> Option<Body<'_>> {
        match self {
            Bodies::Mappings(set) => set.get(kind).map(Body::Mapping),
            Bodies::Json(_) => Some(Body::Json),
        }
    }

    /// The mapping set, when the destination renders with mappings.
    pub fn mappings(&self) -> Option<&MappingSet> {
        match self {
            Bodies::Mappings(set) => Some(set),
            Bodies::Json(_) => None,
        }
    }

    /// The mapping set to change (filter rules add their paths to its scans).
    pub fn mappings_mut(&mut self) -> Option<&mut MappingSet> {
        match self {
            Bodies::Mappings(set) => Some(set),
            Bodies::Json(_) => None,
        }
    }

    /// The kinds it renders: those with a mapping file, or those routed here for JSON.
    pub fn kinds(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Bodies::Mappings(set) => Box::new(set.kinds()),
            Bodies::Json(kinds) => Box::new(kinds.iter().map(String::as_str)),
        }
    }
}

/// How one record becomes a syslog body.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// CEF or LEEF, as the mapping file says.
    Mapping(&'a Mapping),
    /// The record's JSON, compacted to one line.
    Json,
}

/// An event's JSON body to render: its bytes, and whether they were checked as JSON when the
/// event was made (`Event::checked`: then a mapping walks them without checking them again).
#[derive(Debug, Clone, Copy)]
pub struct BodyJson<'a> {
    pub bytes: &'a [u8],
    pub checked: bool,
}

impl<'a> BodyJson<'a> {
    /// JSON from outside the spool (a file, a command line): checked when it is rendered.
    pub fn unchecked(bytes: &'a [u8]) -> Self {
        BodyJson {
            bytes,
            checked: false,
        }
    }

    /// The body of a spooled event.
    pub fn of(event: &crate::event::EventView<'a>) -> Self {
        BodyJson {
            bytes: event.json,
            checked: event.checked,
        }
    }
}

impl<'a> From<&'a Mapping> for Body<'a> {
    fn from(m: &'a Mapping) -> Self {
        Body::Mapping(m)
    }
}

impl Body<'_> {
    /// Appends the body for the event `event` to `out` (`send-test`'s test events).
    pub fn render_value(
        self,
        event: &serde_json::Value,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let json = serde_json::to_vec(event).map_err(|e| RenderError::Json(e.to_string()))?;
        self.render(&json, out)
    }

    /// Where it comes from, for messages: the mapping file, or "JSON output".
    pub fn origin(self) -> String {
        match self {
            Body::Mapping(m) => format!("mapping {}", m.origin().display()),
            Body::Json => "JSON output".to_owned(),
        }
    }

    /// Appends the body for the event JSON `json` to `out`.
    pub fn render(self, json: &[u8], out: &mut Vec<u8>) -> Result<(), RenderError> {
        self.render_body(BodyJson::unchecked(json), out)
    }

    /// [`Body::render`] for a body that may have been checked when its event was made.
    pub fn render_body(self, json: BodyJson<'_>, out: &mut Vec<u8>) -> Result<(), RenderError> {
        match self {
            Body::Mapping(m) => m.render_body(json.bytes, json.checked, out),
            Body::Json => {
                compact_json(json.bytes, out).map_err(|e| RenderError::Json(e.to_string()))
            }
        }
    }
}

/// Appends `json` to `out` without the whitespace between its tokens, after checking that it is
/// one well-formed UTF-8 JSON value. Escapes inside strings are kept as written, and a JSON
/// string cannot hold a raw control character, so the result is one line with no CR or NUL.
/// On error `out` is left as it was.
pub fn compact_json(json: &[u8], out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    // serde_json checks the grammar (and rejects raw control characters in strings); the UTF-8
    // check covers bytes inside strings, which skipping a value does not decode.
    serde_json::from_slice::<serde::de::IgnoredAny>(json)?;
    if let Err(e) = std::str::from_utf8(json) {
        return Err(serde::de::Error::custom(format!(
            "the record is not UTF-8 (byte {})",
            e.valid_up_to()
        )));
    }
    out.reserve(json.len());
    // Spans are copied whole: inside a string up to its closing quote (escapes skipped), outside
    // up to the next whitespace or string.
    let mut i = 0;
    while i < json.len() {
        let rest = &json[i..];
        let run = rest
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'"'))
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest[..run]);
        i += run;
        match json.get(i) {
            None => break,
            Some(b'"') => {
                let start = i;
                i += 1;
                // The closing quote: the next quote not escaped (the text is valid JSON).
                while let Some(at) = memchr::memchr2(b'"', b'\\', &json[i..]) {
                    i += at;
                    if json[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
                i += 1;
                out.extend_from_slice(&json[start..i.min(json.len())]);
            }
            Some(_) => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn compact(json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = b"kept".to_vec();
        compact_json(json, &mut out).map(|()| out.split_off(4))
    }

    /// Values with escaped newlines, CR, NUL, other control characters, quotes, backslashes,
    /// surrogate pairs and non-ASCII text, laid out over many lines: one line out, the same
    /// JSON back.
    #[test]
    fn a_record_becomes_one_line_that_parses_back_to_the_same_json() {
        let input = concat!(
            "{\n  \"a\" : \"line1\\nline2\\r\\nline3\",\r\n",
            "\t\"nul\": \"x\\u0000y\", \"ctl\": \"\\u001f\\u007f\\b\\f\\t\",\n",
            "  \"quote\": \"say \\\"hi\\\" \\\\ \\/ {\\\"not\\\": \\\"json\\\"}\",\n",
            "  \"pair\": \"\\ud83d\\ude00 \u{1F600} é ü 中\", \"spaces\": \"  in   string  \",\n",
            "  \"n\": [ 1 , -2.50e+3 , 12345678901234567890123 , true , null ],\n",
            "  \"nested\" : { \"x\" : { } , \"y\" : [ ] }\n}\n"
        );
        let out = compact(input.as_bytes()).unwrap();
        assert!(
            !out.iter().any(|&b| b < 0x20),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let back: Value = serde_json::from_slice(&out).unwrap();
        let want: Value = serde_json::from_str(input).unwrap();
        assert_eq!(back, want);
        // Escapes and numbers are kept exactly as the source wrote them.
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""a":"line1\nline2\r\nline3""#), "{text}");
        assert!(text.contains("12345678901234567890123"), "{text}");
        assert!(text.contains(r#""spaces":"  in   string  ""#), "{text}");
        assert!(text.starts_with(r#"{"a":"#), "{text}");
    }

    /// Whatever serde_json itself writes for any string (every control character escaped), the
    /// compacted form is one line that parses back to the same value.
    #[test]
    fn every_control_character_stays_escaped() {
        let all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        let record = serde_json::json!({ "all": all, "k\n\r\0": [all.clone()] });
        let pretty = serde_json::to_vec_pretty(&record).unwrap();
        assert!(pretty.contains(&b'\n'));
        let out = compact(&pretty).unwrap();
        assert!(!out.iter().any(|&b| b < 0x20));
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), record);
    }

    /// Any value, with any characters in its keys and strings (every control character, quotes,
    /// backslashes, line and paragraph separators, astral characters), written compact or
    /// pretty with whitespace of every kind between tokens: one line out, the same JSON back.
    mod generated {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                    prop::sample::select(vec![
                        '"',
                        '\\',
                        '/',
                        '\u{7f}',
                        '\u{85}',
                        '\u{2028}',
                        '\u{2029}',
                        '\u{feff}',
                        '\u{1F600}',
                        'é',
                        ' '
                    ]),
                    any::<char>(),
                ],
                0..12,
            )
            .prop_map(|cs| cs.into_iter().collect())
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((text(), inner), 0..5)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn compacts_to_one_line_that_parses_back(v in value(), pretty in any::<bool>(), ws in "[ \t\r\n]{0,3}") {
                let written = if pretty {
                    serde_json::to_string_pretty(&v).unwrap().replace('\n', &format!("\n{ws}"))
                } else {
                    serde_json::to_string(&v).unwrap()
                };
                let written = format!("{ws}{written}{ws}");
                let out = compact(written.as_bytes()).unwrap();
                prop_assert!(!out.iter().any(|&b| b < 0x20), "{}", String::from_utf8_lossy(&out));
                // Compared with what a parser reads from the text written, not with `v`: the
                // text of a float (kept exactly) may read back as a neighbouring f64.
                let back: Value = serde_json::from_slice(&out).unwrap();
                let read: Value = serde_json::from_str(&written).unwrap();
                prop_assert_eq!(back, read);
            }
        }
    }

    /// A lone surrogate escape is valid JSON grammar: it is passed on escaped, on one line.
    #[test]
    fn a_lone_surrogate_escape_is_kept_escaped_on_one_line() {
        let out = compact(b"{\"s\":\n\"a\\ud800b\"}").unwrap();
        assert_eq!(out, br#"{"s":"a\ud800b"}"#);
    }

    /// Raw control characters inside strings, invalid UTF-8, truncated or trailing data are
    /// not JSON: an error (the record goes to the dead-letter file), nothing appended.
    #[test]
    fn what_is_not_json_is_refused() {
        for bad in [
            &b"{\"a\":\"line1\nline2\"}"[..],
            b"{\"a\":\"x\x00y\"}",
            b"{\"a\":\"\xff\xfe\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":1",
            b"{\"a\":1} {\"b\":2}",
            b"",
        ] {
            let mut out = b"kept".to_vec();
            assert!(
                compact_json(bad, &mut out).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(out, b"kept");
        }
    }
}

#[cfg(test)]
mod destination_tests {
    use std::io::BufRead as _;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use crate::config::Config;
    use crate::destinations::{Destination, DestinationStats};
    use crate::event::{Event, EventKind};
    use crate::spool::{Spool, SpoolOptions};

    /// A JSON destination with no mappings folder sends each record as one JSON line after
    /// the header; a record that is not JSON goes to the dead-letter file, the rest are sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_json_destination_sends_records_and_dead_letters_what_is_not_json() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = format!(
            r#"state_dir = "state"
[metrics]
address = ""
[[source]]
name = "src"
kind = "files"
path = "in"
source_kind = "azure_activity"
[[destination]]
name = "d"
address = "127.0.0.1:{port}"
transport = "tcp"
syslog = "none"
output = "json"
"#
        );
        let path = dir.path().join("siemcast.toml");
        std::fs::write(&path, &text).unwrap();
        let config = Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let spool = Arc::new(
            Spool::open(&dir.path().join("state/spool"), SpoolOptions::default()).unwrap(),
        );
        let event = |id: &str, json: &[u8]| {
            let mut out = Vec::new();
            Event {
                kind: EventKind::AzureActivity,
                source: "src".into(),
                id: id.into(),
                time_ms: None,
                json: json.to_vec(),
                checked: false,
            }
            .encode(&mut out);
            out
        };
        let batch = [
            event("a", b"{\n  \"eventDataId\": \"a\",\n  \"v\": \"x\\ny\"\n}"),
            event("bad", br#"{"eventDataId":"bad""#),
            event("b", br#"{"eventDataId":"b","n":1.50}"#),
        ];
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        spool.append_batch("src", &refs, b"ck").unwrap();

        let receiver = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut lines = std::io::BufReader::new(conn).lines();
            (0..2)
                .map(|_| lines.next().unwrap().unwrap())
                .collect::<Vec<_>>()
        });
        let destination = Destination::from_config(&config.destinations[0], &config).unwrap();
        let (cancel, stats) = (
            CancellationToken::new(),
            Arc::new(DestinationStats::default()),
        );
        let task = tokio::spawn(destination.run(spool.clone(), cancel.clone(), stats.clone()));
        let lines = tokio::task::spawn_blocking(move || receiver.join().unwrap())
            .await
            .unwrap();
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(
            lines,
            [
                r#"{"eventDataId":"a","v":"x\ny"}"#,
                r#"{"eventDataId":"b","n":1.50}"#
            ]
        );
        assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
        let dead = std::fs::read_to_string(dir.path().join("state/dead-letter/d.ndjson")).unwrap();
        let dead: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
        assert_eq!(dead["id"], "bad");
        assert!(
            dead["error"]
                .as_str()
                .is_some_and(|e| e.contains("not valid JSON")),
            "{dead}"
        );
    }
}
