//! One page of an ARM or Graph list answer, read for its records without building a tree: each
//! element of the `value` array is kept as its own JSON text (one copy, no `Value`), and the
//! other top-level members that are strings (the next page's link) as strings. A poller turns
//! each record into an event straight from those bytes ([`record_event_owned`]: the text moves
//! into the event, no copy), so a record is tokenised twice (here for its extent, there for its
//! id and time) and never allocated as a tree nor re-serialised.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::{Event, EventKind};
use crate::json::visit::scalars_give;

/// A list answer: `{"value": [records...], "nextLink": "...", ...}`.
#[derive(Debug, Default)]
pub struct Listing {
    /// The `value` array's elements; `None` when the page has no `value` array.
    pub records: Option<Vec<Box<RawValue>>>,
    /// The other top-level members whose values are strings, in order.
    strings: Vec<(String, String)>,
}

impl Listing {
    /// The top-level member `key` when it is a string (a repeated key: the last one, as in a
    /// `Value`).
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
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
pub fn record_event(kind: EventKind, source: &str, record: &RawValue) -> Option<Event> {
    let text = record.get();
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

impl<'de> serde::Deserialize<'de> for Listing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Top)
    }
}

/// The whole answer: an object is read, anything else is a listing without records.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Listing;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalars_give!(Listing::default());
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Listing::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listing, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Listing::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listing, A::Error> {
        let mut listing = Listing::default();
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
    use serde_json::json;

    fn listing(text: &str) -> Listing {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn keeps_each_record_as_its_text_and_the_string_members() {
        let l = listing(
            r#"{"value":[{"id":"a","n":1},{"id":"b","s":"x\ny"}, 3],"nextLink":"https://h/p?skip=2","count":7}"#,
        );
        let texts: Vec<&str> = l
            .records
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.get())
            .collect();
        assert_eq!(
            texts,
            [r#"{"id":"a","n":1}"#, r#"{"id":"b","s":"x\ny"}"#, "3"]
        );
        assert_eq!(l.string("nextLink"), Some("https://h/p?skip=2"));
        assert_eq!(l.string("count"), None);
        assert_eq!(l.string("@odata.nextLink"), None);
    }

    #[test]
    fn a_page_without_a_value_array_has_no_records() {
        for text in [
            r#"{"value":{"id":"a"}}"#,
            r#"{"nextLink":"x"}"#,
            "[1,2]",
            "null",
            r#""s""#,
        ] {
            assert!(listing(text).records.is_none(), "{text}");
        }
        assert_eq!(listing(r#"{"value":[]}"#).records.unwrap().len(), 0);
    }

    #[test]
    fn a_repeated_member_takes_the_last_value_as_a_value_tree_does() {
        let text =
            r#"{"value":[{"id":"a"}],"value":5,"nextLink":"one","nextLink":"two","x":"s","x":1}"#;
        let l = listing(text);
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(l.records.is_some(), v["value"].is_array());
        assert_eq!(l.string("nextLink"), v["nextLink"].as_str());
        assert_eq!(l.string("x"), v["x"].as_str());
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
            "",
            r#"{"value":[]} x"#,
        ] {
            assert!(serde_json::from_str::<Listing>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn records_become_the_same_events_as_through_a_value() {
        let kind = EventKind::AzureActivity;
        let record = json!({"eventDataId": "e1", "eventTimestamp": "2026-11-01T10:00:00Z", "x": {"y": [1, "é"]}});
        let text = serde_json::to_string(&json!({ "value": [record] })).unwrap();
        let l = listing(&text);
        let raw = l.records.unwrap().remove(0);
        let ev = record_event(kind, "s", &raw).unwrap();
        assert_eq!(ev, Event::from_json(kind, "s", &record));
        assert_eq!(record_event_owned(kind, "s", raw), Some(ev));
    }

    #[test]
    fn records_that_are_not_valid_objects_give_no_event() {
        let kind = EventKind::AzureActivity;
        // The structural read lets a lone surrogate and an out-of-range number through; the
        // event read does not.
        let l =
            listing(r#"{"value":[3,"s",{"id":"a","b":"\ud800"},{"id":"a","b":1e999},{"x":1}]}"#);
        let records = l.records.unwrap();
        let events: Vec<Option<Event>> =
            records.iter().map(|r| record_event(kind, "s", r)).collect();
        assert!(events[..4].iter().all(Option::is_none), "{events:?}");
        // Valid, without an id: an event with a content-derived id (the poller skips it).
        assert!(events[4].as_ref().unwrap().id.starts_with("sha:"));
        // The same without copying the records.
        let owned: Vec<Option<Event>> = records
            .into_iter()
            .map(|r| record_event_owned(kind, "s", r))
            .collect();
        assert_eq!(owned, events);
    }
}
