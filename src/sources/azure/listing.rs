//! One page of an ARM or Graph list answer, read for its records without building a tree: the
//! page's text is kept whole, with the byte range of each element of its `value` array, and the
//! other top-level members that are strings (the next page's link) as strings.
//!
//! [`Listing::read`] walks the page once with the mapping scan's checking walk
//! (`mapping::scan::top_members`): the envelope is checked there, and each record by the read
//! of its id and time for the source's kind (`event::ident`), so a record is tokenised once on
//! its way in, and a poller encodes it for the spool straight from the page's bytes. Whatever
//! the walk is not sure of (see `mapping::scan::walk`) sends the whole page to serde_json's
//! parse ([`Listing::parsed`], the records kept as raw JSON texts), which decides exactly as
//! before, with serde_json's own error.

use std::fmt;
use std::sync::LazyLock;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::ident::Ident;
use crate::event::{Event, EventKind};
use crate::json::visit::scalars_give;
use crate::mapping::scan::{top_members, PathSet, TopValue};

/// A list answer: `{"value": [records...], "nextLink": "...", ...}`.
#[derive(Debug, Default)]
pub struct Listing {
    /// The page's text; when serde_json read the page, its records one after another.
    text: String,
    /// The byte ranges in `text` of the `value` array's elements; `None` when the page has no
    /// `value` array.
    spans: Option<Vec<(usize, usize)>>,
    /// Each record's id and time when the page was read for a kind and the record has them
    /// (else empty, or `None` for that record).
    idents: Vec<Option<Ident>>,
    /// The other top-level members whose values are strings, in order.
    strings: Vec<(String, String)>,
}

/// One record of a [`Listing`].
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Its JSON text.
    pub text: &'a str,
    /// Its id and time, read with the page; `None` when they were not ([`record_event`] reads
    /// the record then, exactly).
    pub ident: Option<&'a Ident>,
}

/// Checks a record read without a kind: no path, every byte checked.
static CHECK_ONLY: LazyLock<PathSet> = LazyLock::new(|| PathSet::new(&[]));

impl Listing {
    /// Reads a page (`kind`: the records' kind, whose ids and times are read with it). An
    /// error when serde_json's parse refuses the page.
    pub fn read(body: Vec<u8>, kind: Option<EventKind>) -> Result<Listing, serde_json::Error> {
        match String::from_utf8(body) {
            Ok(text) => match walked(&text, kind) {
                Some(listing) => Ok(Listing { text, ..listing }),
                None => Listing::parsed(text.as_bytes()),
            },
            Err(e) => Listing::parsed(e.as_bytes()),
        }
    }

    /// The page as serde_json's parse reads it (each record's extent checked structurally;
    /// a record serde_json's `Value` parse refuses is found when it is made an event).
    pub fn parsed(body: &[u8]) -> Result<Listing, serde_json::Error> {
        let Parsed { records, strings } = serde_json::from_slice(body)?;
        let mut text = String::with_capacity(
            records
                .as_ref()
                .map_or(0, |r| r.iter().map(|raw| raw.get().len()).sum()),
        );
        let spans = records.map(|records| {
            records
                .iter()
                .map(|raw| {
                    let start = text.len();
                    text.push_str(raw.get());
                    (start, text.len())
                })
                .collect()
        });
        Ok(Listing {
            text,
            spans,
            idents: Vec::new(),
            strings,
        })
    }

    /// The `value` array's records; `None` when the page has none.
    pub fn records(&self) -> Option<impl ExactSizeIterator<Item = Record<'_>>> {
        let spans = self.spans.as_ref()?;
        Some(spans.iter().enumerate().map(|(i, &(a, b))| Record {
            text: &self.text[a..b],
            ident: self.idents.get(i).and_then(Option::as_ref),
        }))
    }

    /// The top-level member `key` when it is a string (a repeated key: the last one, as in a
    /// `Value`).
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What [`Listing::read`] takes from the page by the checking walk: the record spans, their ids
/// and times, the string members (all but the text, which the caller keeps). `None` when the
/// walk is not sure of every byte serde_json's parse would read (then that parse decides).
fn walked(text: &str, kind: Option<EventKind>) -> Option<Listing> {
    let mut spans = None;
    let mut strings: Vec<(String, String)> = Vec::new();
    // Each record is checked as its id and time are read, and that read finds where it ends.
    let mut idents = Vec::new();
    let mut arrays = 0;
    let mut record = |at: usize| match kind {
        Some(kind) => {
            let (ident, end) = crate::event::ident::id_and_time_checked_at(kind, text, at)?;
            idents.push(ident);
            Some(end)
        }
        None => CHECK_ONLY.read_at(text, at).map(|(_, end)| end),
    };
    for member in top_members(text, "value", &mut record)? {
        // A repeated key replaces what its earlier occurrence gave, as in `Parsed`.
        strings.retain(|(k, _)| k != member.key);
        match member.value {
            TopValue::Elements(elements) if member.key == "value" => {
                // The ids read are those of every `value` array: rare enough to leave to
                // serde_json.
                arrays += 1;
                spans = Some(elements);
            }
            _ if member.key == "value" => spans = None,
            TopValue::Text { span, escaped } => {
                let quoted = text.get(span.0..span.1)?;
                let value = if escaped {
                    serde_json::from_str::<String>(quoted).ok()?
                } else {
                    quoted.get(1..quoted.len() - 1)?.to_owned()
                };
                strings.push((member.key.to_owned(), value));
            }
            _ => {}
        }
    }
    if arrays > 1 {
        return None;
    }
    if spans.is_none() {
        idents.clear();
    }
    Some(Listing {
        text: String::new(),
        spans,
        idents,
        strings,
    })
}

/// serde_json's read of a list answer ([`Listing::parsed`]).
#[derive(Debug, Default)]
struct Parsed {
    records: Option<Vec<Box<RawValue>>>,
    strings: Vec<(String, String)>,
}

/// An answer that is a bare array of records (an Office 365 content blob); `None` when the
/// answer is not an array.
#[derive(Debug, Default)]
pub struct RecordArray(pub Option<Vec<Box<RawValue>>>);

impl<'de> serde::Deserialize<'de> for RecordArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Records.deserialize(d).map(RecordArray)
    }
}

/// The event for one record: read from its bytes when it can be, else through a `Value` (what
/// the bytes path declines, see [`Event::from_json_bytes`]). `None` when the record is not a
/// JSON object or not valid JSON (a string with a lone surrogate, a number out of range: what
/// the structural read above lets through).
pub fn record_event(kind: EventKind, source: &str, text: &str) -> Option<Event> {
    Event::from_json_bytes(kind, source, text.as_bytes()).or_else(|| {
        let value: Value = serde_json::from_str(text).ok()?;
        value
            .is_object()
            .then(|| Event::from_json(kind, source, &value))
    })
}

/// [`record_event`] taking the record: its text becomes the event's body without a copy.
pub fn record_event_owned(kind: EventKind, source: &str, record: Box<RawValue>) -> Option<Event> {
    let text: Box<str> = record.into();
    Event::from_json_vec(kind, source, String::from(text).into_bytes())
        .or_else(|bytes| {
            let value: Value = serde_json::from_slice(&bytes).map_err(|_| ())?;
            drop(bytes);
            if value.is_object() {
                Ok(Event::from_json(kind, source, &value))
            } else {
                Err(())
            }
        })
        .ok()
}

impl<'de> serde::Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Top)
    }
}

/// The whole answer: an object is read, anything else is a listing without records.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalars_give!(Parsed::default());
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Parsed::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parsed::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut listing = Parsed::default();
        while let Some(key) = map.next_key::<String>()? {
            // A repeated key replaces what its earlier occurrence gave.
            listing.strings.retain(|(k, _)| *k != key);
            if key == "value" {
                listing.records = map.next_value_seed(Records)?;
            } else if let Some(text) = map.next_value_seed(MaybeString)? {
                listing.strings.push((key, text));
            }
        }
        Ok(listing)
    }
}

/// The `value` member (or a whole blob): its elements when it is an array.
struct Records;

impl<'de> DeserializeSeed<'de> for Records {
    type Value = Option<Vec<Box<RawValue>>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records {
    type Value = Option<Vec<Box<RawValue>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    scalars_give!(None);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(record) = seq.next_element::<Box<RawValue>>()? {
            records.push(record);
        }
        Ok(Some(records))
    }
}

/// Any value, kept when it is a string.
struct MaybeString;

impl<'de> DeserializeSeed<'de> for MaybeString {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MaybeString {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    scalars_give!(None);
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The page read by the walk, after checking that serde_json's parse reads it the same.
    fn listing(text: &str) -> Listing {
        let read = Listing::read(text.as_bytes().to_vec(), Some(EventKind::AzureActivity));
        let parsed = Listing::parsed(text.as_bytes());
        assert_same(&read, &parsed, text);
        read.unwrap()
    }

    fn texts(l: &Listing) -> Option<Vec<&str>> {
        Some(l.records()?.map(|r| r.text).collect())
    }

    /// Both reads accept the page or neither; when they do, the same records and strings.
    fn assert_same(
        read: &Result<Listing, serde_json::Error>,
        parsed: &Result<Listing, serde_json::Error>,
        text: &str,
    ) {
        match (read, parsed) {
            (Ok(r), Ok(p)) => {
                assert_eq!(texts(r), texts(p), "{text}");
                assert_eq!(r.strings, p.strings, "{text}");
            }
            (Err(r), Err(p)) => assert_eq!(r.to_string(), p.to_string(), "{text}"),
            _ => panic!("the reads disagree on {text}: {read:?} against {parsed:?}"),
        }
    }

    #[test]
    fn keeps_each_record_as_its_text_and_the_string_members() {
        let l = listing(
            r#"{"value":[{"id":"a","n":1},{"id":"b","s":"x\ny"}, 3],"nextLink":"https://h/p?skip=2","count":7}"#,
        );
        assert_eq!(
            texts(&l).unwrap(),
            [r#"{"id":"a","n":1}"#, r#"{"id":"b","s":"x\ny"}"#, "3"]
        );
        assert_eq!(l.string("nextLink"), Some("https://h/p?skip=2"));
        assert_eq!(l.string("count"), None);
        assert_eq!(l.string("@odata.nextLink"), None);
        // Read by the walk: the ids came with the page.
        assert_eq!(l.idents.len(), 3);
        let escaped = listing(r#"{"value":[],"@odata.nextLink":"https:\/\/h\/p?a=1\u0026b=2"}"#);
        assert_eq!(
            escaped.string("@odata.nextLink"),
            Some("https://h/p?a=1&b=2")
        );
        assert_eq!(escaped.idents.len(), 0);
    }

    #[test]
    fn a_page_without_a_value_array_has_no_records() {
        for text in [
            r#"{"value":{"id":"a"}}"#,
            r#"{"nextLink":"x"}"#,
            r#"{"value":"x"}"#,
            "[1,2]",
            "null",
            r#""s""#,
        ] {
            assert!(listing(text).records().is_none(), "{text}");
        }
        assert_eq!(listing(r#"{"value":[]}"#).records().unwrap().len(), 0);
    }

    #[test]
    fn a_repeated_member_takes_the_last_value_as_a_value_tree_does() {
        for text in [
            r#"{"value":[{"id":"a"}],"value":5,"nextLink":"one","nextLink":"two","x":"s","x":1}"#,
            r#"{"value":5,"value":[{"id":"a"}],"x":1,"x":"s"}"#,
        ] {
            let l = listing(text);
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(l.records().is_some(), v["value"].is_array());
            assert_eq!(l.string("nextLink"), v["nextLink"].as_str());
            assert_eq!(l.string("x"), v["x"].as_str());
        }
    }

    #[test]
    fn a_blob_is_a_bare_array_of_records() {
        let blob: RecordArray = serde_json::from_str(r#"[{"Id":"a"}, {"Id":"b"}]"#).unwrap();
        let texts: Vec<&str> = blob.0.as_ref().unwrap().iter().map(|r| r.get()).collect();
        assert_eq!(texts, [r#"{"Id":"a"}"#, r#"{"Id":"b"}"#]);
        let not: RecordArray = serde_json::from_str(r#"{"value":[{"Id":"a"}]}"#).unwrap();
        assert!(not.0.is_none());
        assert!(serde_json::from_str::<RecordArray>(r#"[{"Id":"a"},"#).is_err());
    }

    #[test]
    fn broken_json_is_an_error() {
        for text in [
            r#"{"value":[{"id":"a"}"#,
            r#"{"value":[1,]}"#,
            r#"{"value":[{"id":tru}]}"#,
            r#"{"value":[{"id":"a"]}]}"#,
            "",
            r#"{"value":[]} x"#,
        ] {
            let read = Listing::read(text.as_bytes().to_vec(), Some(EventKind::AzureActivity));
            assert!(read.is_err(), "{text}");
            assert_same(&read, &Listing::parsed(text.as_bytes()), text);
        }
    }

    #[test]
    fn records_become_the_same_events_as_through_a_value() {
        let kind = EventKind::AzureActivity;
        let record = json!({"eventDataId": "e1", "eventTimestamp": "2026-11-01T10:00:00Z", "x": {"y": [1, "é"]}});
        let text = serde_json::to_string(&json!({ "value": [record] })).unwrap();
        let l = listing(&text);
        let r = l.records().unwrap().next().unwrap();
        let ev = record_event(kind, "s", r.text).unwrap();
        assert_eq!(ev, Event::from_json(kind, "s", &record));
        assert_eq!(r.ident, Some(&(ev.id.clone(), ev.time_ms)));
        let raw = RawValue::from_string(r.text.to_owned()).unwrap();
        assert_eq!(record_event_owned(kind, "s", raw), Some(ev));
    }

    #[test]
    fn records_that_are_not_valid_objects_give_no_event() {
        let kind = EventKind::AzureActivity;
        // The structural read lets a lone surrogate and an out-of-range number through; the
        // event read does not. The walk is not sure of them: serde_json reads the page.
        let l =
            listing(r#"{"value":[3,"s",{"id":"a","b":"\ud800"},{"id":"a","b":1e999},{"x":1}]}"#);
        assert!(l.idents.is_empty());
        let events: Vec<Option<Event>> = l
            .records()
            .unwrap()
            .map(|r| record_event(kind, "s", r.text))
            .collect();
        assert!(events[..4].iter().all(Option::is_none), "{events:?}");
        // Valid, without an id: an event with a content-derived id (the poller skips it).
        assert!(events[4].as_ref().unwrap().id.starts_with("sha:"));
        // The same without copying the records.
        let owned: Vec<Option<Event>> = l
            .records()
            .unwrap()
            .map(|r| record_event_owned(kind, "s", RawValue::from_string(r.text.into()).unwrap()))
            .collect();
        assert_eq!(owned, events);
    }

    fn record() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            prop::sample::select(vec!["2026-11-01T10:00:00Z", "", "x\"y", "é\\n", "a/b"])
                .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["id", "eventDataId", "eventTimestamp", "x"]),
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        /// On generated pages, whole and cut or changed at one byte, the walk's read and
        /// serde_json's agree: both refuse, or both give the same records and strings; and each
        /// id read with the page is the record's own.
        #[test]
        fn the_walk_reads_pages_as_serde_json_does(
            records in prop::collection::vec(record(), 0..5),
            next in prop::option::of(prop::sample::select(vec!["https://h/p?s=1", "a\"b", "c\\/d"])),
            extra in any::<bool>(),
            cut in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[],:\\\"0123456789.eEtfnu \x01\xff".to_vec()),
            how in 0u8..4,
        ) {
            let mut page = serde_json::Map::new();
            if extra {
                page.insert("count".into(), json!(records.len()));
            }
            page.insert("value".into(), Value::Array(records));
            if let Some(n) = next {
                page.insert("nextLink".into(), json!(n));
            }
            let mut bytes = serde_json::to_vec(&page).unwrap();
            let at = cut.index(bytes.len());
            match how {
                0 => {}
                1 => bytes.truncate(at),
                2 => bytes[at] = byte,
                _ => bytes.insert(at, byte),
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            for kind in [Some(EventKind::AzureActivity), Some(EventKind::EntraAudit), None] {
                let read = Listing::read(bytes.clone(), kind);
                let parsed = Listing::parsed(&bytes);
                assert_same(&read, &parsed, &text);
                if let (Ok(l), Some(kind)) = (&read, kind) {
                    for r in l.records().into_iter().flatten() {
                        if let Some(ident) = r.ident {
                            prop_assert_eq!(
                                Some(ident.clone()),
                                crate::event::ident::id_and_time(kind, r.text.as_bytes())
                            );
                        }
                    }
                }
            }
        }
    }
}
