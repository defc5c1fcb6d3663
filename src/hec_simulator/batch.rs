//! Reading a `/services/collector/event` body as Splunk does: gzip undone when the request says
//! so, then JSON event objects one after another (whitespace between them allowed), each with
//! a non-blank `event` and optional `time`, `host`, `source`, `sourcetype`, `index`, `fields`.
//! The first bad event stops the batch and is named by its 0-based number.

use std::io::Read as _;

use serde_json::Value;

use super::wire::{self, Status};

/// One event of a batch, as HEC would index it.
#[derive(Debug, Clone, PartialEq)]
pub struct HecEvent {
    /// Epoch seconds (fractions allowed), when the event gave one.
    pub time: Option<f64>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    /// The `event` member: a JSON object or a string.
    pub event: Value,
    pub fields: Option<Value>,
}

/// Why a batch was refused: the status, and the bad event's number when one is to blame.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: Status,
    pub invalid_event_number: Option<usize>,
}

impl Refusal {
    fn at(status: Status, n: usize) -> Self {
        Refusal {
            status,
            invalid_event_number: Some(n),
        }
    }
}

/// Undoes `Content-Encoding: gzip`; any other encoding, or a broken gzip stream, is invalid
/// data. `limit` bounds the decoded size (a gzip bomb is invalid data too).
pub fn decode(body: &[u8], encoding: Option<&str>, limit: usize) -> Result<Vec<u8>, Refusal> {
    let invalid = Refusal {
        status: wire::INVALID_DATA_FORMAT,
        invalid_event_number: None,
    };
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
            decoder.read_to_end(&mut out).map_err(|_| invalid.clone())?;
            if out.len() > limit {
                return Err(invalid);
            }
            Ok(out)
        }
        Some(_) => Err(invalid),
    }
}

/// The events of a (decoded) body, or the refusal of the whole batch. `allowed_indexes` is
/// the token's list (empty: any index).
pub fn parse(body: &[u8], allowed_indexes: &[String]) -> Result<Vec<HecEvent>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal {
            status: wire::NO_DATA,
            invalid_event_number: None,
        });
    }
    let mut events = Vec::new();
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    for (n, item) in stream.enumerate() {
        let Ok(Value::Object(mut obj)) = item else {
            return Err(Refusal::at(wire::INVALID_DATA_FORMAT, n));
        };
        let event = match obj.remove("event") {
            None => return Err(Refusal::at(wire::EVENT_REQUIRED, n)),
            Some(Value::Null) => return Err(Refusal::at(wire::EVENT_BLANK, n)),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(Refusal::at(wire::EVENT_BLANK, n))
            }
            Some(v) => v,
        };
        let time = match obj.remove("time") {
            None => None,
            Some(Value::Number(x)) => Some(
                x.as_f64()
                    .ok_or_else(|| Refusal::at(wire::INVALID_DATA_FORMAT, n))?,
            ),
            Some(Value::String(s)) => Some(
                s.parse::<f64>()
                    .map_err(|_| Refusal::at(wire::INVALID_DATA_FORMAT, n))?,
            ),
            Some(_) => return Err(Refusal::at(wire::INVALID_DATA_FORMAT, n)),
        };
        let mut text = |key: &str| match obj.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Refusal::at(wire::INVALID_DATA_FORMAT, n)),
        };
        let (host, source, sourcetype, index) = (
            text("host")?,
            text("source")?,
            text("sourcetype")?,
            text("index")?,
        );
        if let Some(i) = &index {
            if !allowed_indexes.is_empty() && !allowed_indexes.contains(i) {
                return Err(Refusal::at(wire::INCORRECT_INDEX, n));
            }
        }
        let fields = obj.remove("fields");
        if fields.as_ref().is_some_and(|f| !f.is_object()) {
            return Err(Refusal::at(wire::INVALID_DATA_FORMAT, n));
        }
        events.push(HecEvent {
            time,
            host,
            source,
            sourcetype,
            index,
            event,
            fields,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_objects_with_or_without_whitespace_are_one_batch() {
        let body = br#"{"time":1700000000.123,"host":"h","source":"s","sourcetype":"st","index":"main","event":{"id":"a"}}{"event":"b"}
  {"event":{"id":"c"},"time":"1700000001","fields":{"k":"v"}}"#;
        let events = parse(body, &[]).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].time, Some(1_700_000_000.123));
        assert_eq!(events[0].sourcetype.as_deref(), Some("st"));
        assert_eq!(events[1].event, Value::String("b".into()));
        assert_eq!(events[2].time, Some(1_700_000_001.0));
        assert_eq!(events[2].fields, Some(serde_json::json!({"k":"v"})));
    }

    #[test]
    fn the_first_bad_event_is_named_by_its_number() {
        let cases: [(&[u8], Status, usize); 8] = [
            (br#"{"event":1}{"nope":1}"#, wire::EVENT_REQUIRED, 1),
            (br#"{"event":""}"#, wire::EVENT_BLANK, 0),
            (
                br#"{"event":1}{"event":2}{"event":null}"#,
                wire::EVENT_BLANK,
                2,
            ),
            (br#"{"event":1}[1]"#, wire::INVALID_DATA_FORMAT, 1),
            (br#"{"event":1}{"event":2"#, wire::INVALID_DATA_FORMAT, 1),
            (
                br#"{"event":1,"time":"noon"}"#,
                wire::INVALID_DATA_FORMAT,
                0,
            ),
            (
                br#"{"event":1}{"event":1,"host":5}"#,
                wire::INVALID_DATA_FORMAT,
                1,
            ),
            (
                br#"{"event":1}{"event":1,"index":"secret"}"#,
                wire::INCORRECT_INDEX,
                1,
            ),
        ];
        for (body, status, n) in cases {
            let refusal = parse(body, &["main".to_owned()]).unwrap_err();
            assert_eq!(
                refusal,
                Refusal::at(status, n),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(parse(b"  \n", &[]).unwrap_err().status, wire::NO_DATA);
    }

    #[test]
    fn gzip_is_undone_and_other_encodings_or_bombs_are_invalid() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[b' '; 10_000]).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode(&gz, Some("gzip"), 10_000).unwrap().len(), 10_000);
        assert!(decode(&gz, Some("gzip"), 9_999).is_err());
        assert!(decode(b"not gzip", Some("gzip"), 100).is_err());
        assert!(decode(b"x", Some("br"), 100).is_err());
        assert_eq!(decode(b"x", None, 100).unwrap(), b"x");
    }
}
