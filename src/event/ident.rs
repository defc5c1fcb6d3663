//! An event's id and time read straight from its JSON bytes in one pass, without building a
//! tree: only the few top-level fields a kind takes them from are captured (strings borrowed),
//! everything else is parsed and checked by serde_json and dropped. The bytes themselves become
//! the event body, so a line is parsed once here and once more only when it is rendered.
//!
//! The answer is exactly [`Event::from_json`]'s on the parsed `Value` (the tests compare them);
//! inputs that need more than this fast path — not an object, a `value`/`records` envelope, no
//! id (the content-derived id hashes the compact re-serialisation) — return `None` and the
//! caller takes the `Value` path.

use std::fmt;
use std::sync::LazyLock;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{parse_time_ms, Event, EventKind};
use crate::json::capture::{Capture, Leaf, Skip};
use crate::json::visit::scalars_give;
use crate::mapping::scan::{PathSet, PathValues};
use crate::mapping::Node;

/// An event's id and time (ms since the epoch), as the sources read them from its JSON.
pub(crate) type Ident = (String, Option<i64>);

/// Builds the event for one JSON object held in `json`, keeping those bytes as its body.
/// `None` when `json` is not valid JSON or needs the `Value` path (see the module docs).
pub fn from_json_bytes(kind: EventKind, source: &str, json: &[u8]) -> Option<Event> {
    let (id, time_ms) = id_and_time(kind, json)?;
    Some(Event {
        kind,
        source: source.to_owned(),
        id,
        time_ms,
        json: json.to_vec(),
        checked: true,
    })
}

/// [`from_json_bytes`] keeping `json` itself as the body (no copy); the bytes are given back
/// when they need the `Value` path.
pub fn from_json_vec(kind: EventKind, source: &str, json: Vec<u8>) -> Result<Event, Vec<u8>> {
    match id_and_time(kind, &json) {
        Some((id, time_ms)) => Ok(Event {
            kind,
            source: source.to_owned(),
            id,
            time_ms,
            json,
            checked: true,
        }),
        None => Err(json),
    }
}

/// The id and time of the JSON object in `json`, as [`from_json_bytes`] gives them.
pub(crate) fn id_and_time(kind: EventKind, json: &[u8]) -> Option<(String, Option<i64>)> {
    let Ok(text) = std::str::from_utf8(json) else {
        return None;
    };
    match walked_text(kind, text) {
        Some(answer) => answer,
        None => parsed_text(kind, text),
    }
}

/// The paths [`walked_text`] reads for each kind (by `EventKind::ALL` index): the id fields, the
/// time paths, the id suffix paths, then `value` and `records`.
static PATHS: LazyLock<Vec<PathSet>> = LazyLock::new(|| {
    EventKind::ALL
        .iter()
        .map(|kind| {
            let n = Names::of(*kind);
            let ids = n.ids.iter().map(std::slice::from_ref);
            let envelope: [&[&str]; 2] = [&["value"], &["records"]];
            let all: Vec<&[&str]> = ids.chain(n.paths()).chain(envelope).collect();
            PathSet::new(&all)
        })
        .collect()
});

/// [`walked_text`] of bytes.
#[cfg(test)]
fn walked(kind: EventKind, json: &[u8]) -> Option<Option<(String, Option<i64>)>> {
    walked_text(kind, std::str::from_utf8(json).ok()?)
}

/// [`id_and_time`] by the mapping scan's checking walk (`mapping::scan::PathSet`), several
/// times cheaper than serde_json's deserializer: `None` when the walk is not sure serde_json
/// accepts the text (then [`parsed_text`] decides, exactly).
fn walked_text(kind: EventKind, text: &str) -> Option<Option<(String, Option<i64>)>> {
    let set = PATHS.get(kind as usize)?;
    Some(ident_of(kind, &set.read_text(text)?))
}

/// [`id_and_time`] of the JSON value that starts at byte `at` of `text` (a record of an API
/// page), and where that value ends: `Some` only when the value is surely JSON that serde_json's
/// `Value` parse accepts; `None` when that is not sure (not JSON, or JSON the walk leaves to
/// serde_json and serde_json's own read found no id in).
pub(crate) fn id_and_time_checked_at(
    kind: EventKind,
    text: &str,
    at: usize,
) -> Option<(Option<Ident>, usize)> {
    let set = PATHS.get(kind as usize)?;
    if let Some((found, end)) = set.read_at(text, at) {
        return Some((ident_of(kind, &found), end));
    }
    // The walk is not sure: serde_json reads the value where the brackets say it ends (it
    // answers only when that is a whole JSON value).
    let end = crate::json::span::value_end(text.as_bytes(), at)?;
    let answer = parsed_text(kind, text.get(at..end)?)?;
    Some((Some(answer), end))
}

/// The id and time in what the checking walk found in an event.
fn ident_of(kind: EventKind, found: &PathValues<'_, '_>) -> Option<(String, Option<i64>)> {
    if !found.is_object() {
        return None;
    }
    let n = Names::of(kind);
    let (ids, times, suffixes) = (n.ids.len(), n.times.len(), n.suffix.len());
    let at = |i: usize| found.get(i);
    let is_array = |i: usize| matches!(at(i), Some(Node::Val(Value::Array(_))));
    if is_array(ids + times + suffixes) || is_array(ids + times + suffixes + 1) {
        return None;
    }
    let text = |node: Node<'_>| -> Option<String> {
        match node {
            Node::Str(s) if !s.is_empty() => Some(s.to_owned()),
            Node::Val(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Node::Val(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    let id = (0..ids).find_map(|i| text(at(i)?))?;
    let suffix: Vec<&str> = (ids + times..ids + times + suffixes)
        .filter_map(|i| match at(i)? {
            Node::Str(s) => Some(s),
            Node::Val(Value::String(s)) => Some(s.as_str()),
            Node::Val(_) => None,
        })
        .collect();
    let id = if suffix.is_empty() {
        id
    } else {
        format!("{id}@{}", suffix.join("/"))
    };
    let time_ms = (ids..ids + times).find_map(|i| match at(i)? {
        Node::Str(s) => parse_time_ms(s),
        Node::Val(Value::String(s)) => parse_time_ms(s),
        Node::Val(Value::Number(n)) => parse_time_ms(&n.to_string()),
        Node::Val(_) => None,
    });
    Some((id, time_ms))
}

/// [`parsed_text`] of bytes.
#[cfg(test)]
fn parsed(kind: EventKind, json: &[u8]) -> Option<(String, Option<i64>)> {
    parsed_text(kind, std::str::from_utf8(json).ok()?)
}

/// [`id_and_time`] by serde_json's deserializer: exact on every input.
fn parsed_text(kind: EventKind, text: &str) -> Option<(String, Option<i64>)> {
    let names = Names::of(kind);
    let mut de = serde_json::Deserializer::from_str(text);
    let found = Top { names: &names }.deserialize(&mut de).ok()??;
    de.end().ok()?;
    if found.envelope {
        return None;
    }
    let id = found
        .ids
        .iter()
        .find_map(|leaf| scalar_text(leaf.as_ref()?))?;
    let suffix: Vec<&str> = found.paths[names.times.len()..]
        .iter()
        .filter_map(|leaf| match leaf {
            Some(Leaf::Str(t)) => Some(&**t),
            _ => None,
        })
        .collect();
    let id = if suffix.is_empty() {
        id
    } else {
        format!("{id}@{}", suffix.join("/"))
    };
    let time_ms = found.paths[..names.times.len()]
        .iter()
        .find_map(|leaf| match leaf.as_ref()? {
            Leaf::Str(s) => parse_time_ms(s),
            Leaf::Val(Value::Number(n)) => parse_time_ms(&n.to_string()),
            Leaf::Val(_) => None,
        });
    Some((id, time_ms))
}

/// The same text `Event::from_json` takes an id from: a non-empty string or a number.
fn scalar_text(leaf: &Leaf) -> Option<String> {
    match leaf {
        Leaf::Str(s) if !s.is_empty() => Some(s.to_string()),
        Leaf::Val(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Where one kind keeps its id and time: top-level names, and for times and the id's suffix
/// also one nested step.
struct Names {
    ids: &'static [&'static str],
    times: &'static [&'static [&'static str]],
    /// The texts appended to the id as `@…/…` when they are strings, as [`Event::from_json`]
    /// does (`EventKind::id_suffix_paths`).
    suffix: &'static [&'static [&'static str]],
}

impl Names {
    fn of(kind: EventKind) -> Names {
        Names {
            ids: kind.id_fields(),
            times: kind.time_fields(),
            suffix: kind.id_suffix_paths(),
        }
    }

    /// The captured paths: the time paths in order, then the suffix's.
    fn paths(&self) -> impl Iterator<Item = &'static [&'static str]> + '_ {
        self.times
            .iter()
            .copied()
            .chain(self.suffix.iter().copied())
    }
}

/// What the scan captured; a repeated key replaces what its earlier occurrence gave (the last
/// one wins, as in `serde_json::Map`).
struct Found<'de> {
    ids: Vec<Option<Leaf<'de>>>,
    /// By index into [`Names::paths`].
    paths: Vec<Option<Leaf<'de>>>,
    /// The object has a `value` or `records` array: a page of events, not one event.
    envelope: bool,
}

/// The top-level value: an object is scanned, anything else answers `None`.
struct Top<'n> {
    names: &'n Names,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Option<Found<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Option<Found<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalars_give!(None);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let n = self.names;
        let mut found = Found {
            ids: (0..n.ids.len()).map(|_| None).collect(),
            paths: n.paths().map(|_| None).collect(),
            envelope: false,
        };
        let (mut value_array, mut records_array) = (false, false);
        while let Some(key) = map.next_key::<KeyText<'de>>()? {
            let key = key.0.as_ref();
            let id = n.ids.iter().position(|f| *f == key);
            let top = n.paths().any(|p| p.len() == 1 && p[0] == key);
            let nested = n.paths().any(|p| p.len() == 2 && p[0] == key);
            if id.is_some() || top {
                let leaf = map.next_value_seed(Capture)?;
                for (i, p) in n.paths().enumerate() {
                    if p.len() == 1 && p[0] == key {
                        found.paths[i] = Some(clone_leaf(&leaf));
                    }
                }
                if let Some(i) = id {
                    found.ids[i] = Some(leaf);
                }
            } else if nested {
                let inner = map.next_value_seed(Nested { names: n, key })?;
                for (i, p) in n.paths().enumerate() {
                    if p.len() == 2 && p[0] == key {
                        found.paths[i] = inner
                            .iter()
                            .find(|(j, _)| *j == i)
                            .map(|(_, l)| clone_leaf(l));
                    }
                }
            } else if key == "value" || key == "records" {
                let is_array = map.next_value_seed(IsArray)?;
                *(if key == "value" {
                    &mut value_array
                } else {
                    &mut records_array
                }) = is_array;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        found.envelope = value_array || records_array;
        Ok(Some(found))
    }
}

fn clone_leaf<'de>(leaf: &Leaf<'de>) -> Leaf<'de> {
    match leaf {
        Leaf::Str(s) => Leaf::Str(s.clone()),
        Leaf::Val(v) => Leaf::Val(v.clone()),
    }
}

/// An object key, borrowed when it has no escapes.
struct KeyText<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<KeyText<'de>, E> {
                Ok(KeyText(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText<'de>, E> {
                Ok(KeyText(v.to_owned().into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// The value of a key that starts two-step paths (`properties.timeGeneratedUtc`): the
/// captured leaves by index into [`Names::paths`]. Not an object: nothing.
struct Nested<'n, 'k> {
    names: &'n Names,
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for Nested<'_, '_> {
    type Value = Vec<(usize, Leaf<'de>)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(d.deserialize_any(NestedVisitor(self))?.unwrap_or_default())
    }
}

struct NestedVisitor<'n, 'k>(Nested<'n, 'k>);

impl<'de> Visitor<'de> for NestedVisitor<'_, '_> {
    type Value = Option<Vec<(usize, Leaf<'de>)>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    scalars_give!(None);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Nested { names, key } = self.0;
        let mut out: Vec<(usize, Leaf<'de>)> = Vec::new();
        while let Some(k) = map.next_key::<KeyText<'de>>()? {
            let k = k.0.as_ref();
            let hit = names
                .paths()
                .position(|p| p.len() == 2 && p[0] == key && p[1] == k);
            match hit {
                Some(i) => {
                    let leaf = map.next_value_seed(Capture)?;
                    out.retain(|(j, _)| *j != i);
                    out.push((i, leaf));
                }
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Some(out))
    }
}

/// Whether a value is an array (its elements are checked and dropped).
struct IsArray;

impl<'de> DeserializeSeed<'de> for IsArray {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IsArray {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    scalars_give!(false);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(true)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The fast path's event, or the `Value` path's when it declines: what the files source does.
    fn either(kind: EventKind, json: &[u8]) -> Option<Event> {
        from_json_bytes(kind, "s", json).or_else(|| {
            let v: Value = serde_json::from_slice(json).ok()?;
            v.is_object().then(|| Event::from_json(kind, "s", &v))
        })
    }

    /// Same id and time as the `Value` path; the body is the input bytes.
    fn agrees(kind: EventKind, json: &[u8]) {
        let v: Value = serde_json::from_slice(json).unwrap();
        let slow = Event::from_json(kind, "s", &v);
        let fast = either(kind, json).unwrap();
        assert_eq!(
            (&fast.id, fast.time_ms),
            (&slow.id, slow.time_ms),
            "{}",
            String::from_utf8_lossy(json)
        );
        if let Some(ev) = from_json_bytes(kind, "s", json) {
            assert_eq!(ev.json, json);
        }
    }

    #[test]
    fn ids_and_times_match_the_value_path_for_every_kind() {
        let docs = [
            json!({"eventDataId": "e1", "id": "x", "eventTimestamp": "2026-11-01T10:00:00.5Z"}),
            json!({"id": "only-id", "submissionTimestamp": "2026-11-01T10:00:00Z"}),
            json!({"eventDataId": "", "id": 42, "eventTimestamp": 7}),
            json!({"eventDataId": {"a": 1}, "id": "b", "eventTimestamp": "not a time", "submissionTimestamp": "2026-11-01T10:00:00Z"}),
            json!({"id": "d", "name": "n", "properties": {"startTimeUtc": "2026-11-01T10:00:00Z", "timeGeneratedUtc": "2026-11-01T11:00:00Z"}}),
            json!({"name": "n", "properties": "flat"}),
            json!({"id": "d", "properties": {"status": "Active", "timeGeneratedUtc": "2026-11-01T11:00:00Z"}}),
            json!({"id": "d", "properties": {"status": 3}}),
            json!({"id": "g", "lastUpdateDateTime": "2026-11-01T10:00:00Z", "createdDateTime": "2026-10-01T10:00:00Z"}),
            json!({"id": "g", "lastUpdateDateTime": 1_793_527_200_000_i64}),
            json!({"Id": "o", "CreationTime": "11/1/2026 10:00:00 AM"}),
            json!({"id": "e", "time": "soon", "EventTimeString": "9/28/2016 8:40:06 PM +00:00"}),
            json!({"id": "e", "TimeGenerated": 1_765_551_838.5}),
            json!({"id": "g", "lastUpdateDateTime": 5}),
            json!({"id": "a", "activityDateTime": "2026-11-01T10:00:00Z"}),
            json!({"Id": "o", "CreationTime": "2026-11-01T10:00:00"}),
            json!({"x": 1}),
            json!({"value": [{"id": "a"}], "id": "page"}),
            json!({"records": 3, "id": "r"}),
        ];
        for kind in EventKind::ALL {
            for d in &docs {
                agrees(*kind, serde_json::to_string(d).unwrap().as_bytes());
                agrees(*kind, serde_json::to_string_pretty(d).unwrap().as_bytes());
            }
        }
    }

    #[test]
    fn the_walk_leaves_what_it_is_not_sure_of_to_serde_json() {
        let k = EventKind::AzureActivity;
        let deep = |n: usize| format!(r#"{{"id":"a","b":{}1{}}}"#, "[".repeat(n), "]".repeat(n));
        for unsure in [
            br#"{"id":"a","b":"\ud800"}"#.to_vec(),
            br#"{"id":"a","b":"\ud83d\ude00"}"#.to_vec(),
            br#"{"id":"a","b":1e5}"#.to_vec(),
            br#"{"id":"a","b":1e999}"#.to_vec(),
            deep(100).into_bytes(),
            deep(200).into_bytes(),
        ] {
            assert_eq!(
                walked(k, &unsure),
                None,
                "{}",
                String::from_utf8_lossy(&unsure)
            );
        }
        for sure in [
            deep(98).into_bytes(),
            br#"{"id":"a","b":"\u00e9\n\"","c":[-0.5,0,true,null]}"#.to_vec(),
        ] {
            assert!(
                walked(k, &sure).is_some(),
                "{}",
                String::from_utf8_lossy(&sure)
            );
        }
        for refused in [
            &br#"{"id":"a","b":01}"#[..],
            br#"{"id":"a","b":"x\qy"}"#,
            b"{\"id\":\"a\",\"b\":\"x\x01\"}",
            br#"{"id":"a",}"#,
            br#"{"id":"a"} x"#,
            br#"{"id":"a","b":tru}"#,
            br#"{"id":"a","b":[1,]}"#,
            b"{\"id\":\"a\",\"b\":\"\xff\"}",
        ] {
            assert!(serde_json::from_slice::<Value>(refused).is_err());
            assert_eq!(
                walked(k, refused),
                None,
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn declines_what_needs_the_value_path() {
        let k = EventKind::AzureActivity;
        assert!(from_json_bytes(k, "s", br#"{"value":[{"id":"a"}]}"#).is_none());
        assert!(from_json_bytes(k, "s", br#"{"x":1}"#).is_none(), "no id");
        assert!(from_json_bytes(k, "s", b"[1]").is_none());
        assert!(from_json_bytes(k, "s", br#"{"id":"a"} x"#).is_none());
        assert!(
            from_json_bytes(k, "s", br#"{"id":"a","b":"\ud800"}"#).is_none(),
            "bad escape"
        );
        assert!(
            from_json_bytes(k, "s", br#"{"id":"a","b":1e999}"#).is_none(),
            "number out of range"
        );
    }

    #[test]
    fn a_repeated_key_takes_the_last_value() {
        agrees(EventKind::AzureActivity, br#"{"eventDataId":"a","eventDataId":"b","eventTimestamp":"2026-11-01T10:00:00Z","eventTimestamp":"x"}"#);
        agrees(EventKind::DefenderAlerts, br#"{"id":"a","properties":{"timeGeneratedUtc":"2026-11-01T10:00:00Z"},"properties":{}}"#);
        agrees(
            EventKind::AzureActivity,
            br#"{"id":"a","value":[],"value":1}"#,
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            prop::sample::select(vec![
                "2026-11-01T10:00:00Z",
                "2026-11-01T10:00:00",
                "",
                "x\"y",
                "é\\n"
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let key = prop::sample::select(vec![
                "id",
                "eventDataId",
                "eventTimestamp",
                "submissionTimestamp",
                "name",
                "properties",
                "timeGeneratedUtc",
                "startTimeUtc",
                "lastUpdateDateTime",
                "createdDateTime",
                "Id",
                "CreationTime",
                "activityDateTime",
                "value",
                "records",
                "status",
                "lastUpdatedDateTime",
                "riskLastUpdatedDateTime",
                "riskState",
                "riskLevel",
                "other",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..6).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_walk_answers_for_generated_objects_as_serde_json_does(
            v in json_value(),
            pretty in any::<bool>(),
        ) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            for kind in EventKind::ALL {
                // No exponents, no surrogate escapes, shallow: the walk is sure of all of it.
                let walk = walked(*kind, text.as_bytes());
                prop_assert!(walk.is_some(), "the walk gave up on {}", text);
                prop_assert_eq!(walk.unwrap(), parsed(*kind, text.as_bytes()), "{}", text);
                // Read where it stands in a page: the same answer, and where the record ends.
                let page = format!("[{text} ,1]");
                prop_assert_eq!(
                    id_and_time_checked_at(*kind, &page, 1),
                    Some((parsed(*kind, text.as_bytes()), 1 + text.len()))
                );
            }
        }

        #[test]
        fn the_walk_never_answers_for_what_serde_json_refuses(
            v in json_value(),
            cut in any::<prop::sample::Index>(),
            byte in prop_oneof![
                any::<u8>(),
                prop::sample::select(b"{}[],:\\\"0123456789.eE+-tfnu \x01".to_vec()),
            ],
            how in 0u8..3,
        ) {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let at = cut.index(bytes.len());
            match how {
                0 => bytes.truncate(at),
                1 => bytes[at] = byte,
                _ => bytes.insert(at, byte),
            }
            let valid = serde_json::from_slice::<Value>(&bytes).is_ok();
            for kind in EventKind::ALL {
                if let Some(answer) = walked(*kind, &bytes) {
                    prop_assert!(valid, "answered for {:?}", String::from_utf8_lossy(&bytes));
                    prop_assert_eq!(answer, parsed(*kind, &bytes));
                }
            }
        }

        #[test]
        fn agrees_with_the_value_path_on_generated_objects(v in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            for kind in EventKind::ALL {
                let fast = from_json_bytes(*kind, "s", text.as_bytes());
                match (&v, fast) {
                    (Value::Object(_), Some(ev)) => {
                        let slow = Event::from_json(*kind, "s", &v);
                        prop_assert_eq!((&ev.id, ev.time_ms), (&slow.id, slow.time_ms));
                    }
                    (Value::Object(m), None) => prop_assert!(
                        m.get("value").is_some_and(Value::is_array)
                            || m.get("records").is_some_and(Value::is_array)
                            || Event::from_json(*kind, "s", &v).id.starts_with("sha:"),
                        "declined {text}"
                    ),
                    (_, fast) => prop_assert!(fast.is_none()),
                }
            }
        }
    }
}
