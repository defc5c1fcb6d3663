use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::event::{read_documents, Item};

/// The items as `siemcast render` sees them: a piece handed over unparsed that is not JSON
/// becomes the error `read_documents` gives for it.
fn items(input: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    for_each(input, |piece| {
        out.push(match piece {
            Ok((json, line)) => serde_json::from_slice::<Value>(json).map_err(|e| DocumentError {
                line,
                message: format!("not valid JSON: {e}"),
            }),
            Err(e) => Err(e),
        })
    });
    out
}

#[test]
fn finds_the_items_read_documents_finds() {
    let cases: &[&str] = &[
        "",
        "  \n \n",
        "{\"id\":\"a\"}\n\n{\"id\":\"b\"}\n",
        "[{\"id\":\"a\"},{\"id\":\"b\"}]",
        "{\"value\":[{\"id\":\"a\"}],\"nextLink\":null}",
        "{\"records\":[{\"id\":\"a\"},{\"id\":\"b\"}]}",
        "{\"value\":\"not an array\",\"records\":[{\"id\":\"r\"}]}",
        "{\"value\":[{\"id\":1}],\"value\":2}",
        "{\"value\":{\"a\":[1]},\"id\":\"x\"}",
        "{\n  \"id\": \"pretty\",\n  \"n\": [1, 2]\n}\n",
        "{\"id\":\"a\"}\n{broken\n{\"id\":\"c\"}\n",
        "{\"id\":\"a\"}\n[{\"id\":\"b\"},3]\n{\"records\":[{\"id\":\"c\"},\"s\"]}\n",
        "{\"id\":\"a\"}\n{\"\\u0076alue\":[{\"id\":\"escaped key\"}]}\n",
        "{\"id\":\"a\"}\n{\"id\":\"{\\\"value\\\":[\"}\n",
        "[{\"id\":\"a\"}, 1, null, \"x\", [2], true]",
        "[{\"id\":\"a\"},\n{broken",
        "42",
        "\"text\"",
        "{\"id\":\"a\"}\n7\n\"s\"\nnull\n",
        "{\"id\":\"a\"}\n{\"id\":\"b\"} trailing\n",
        "{\"id\":\"a\"}\n{\"id\":\"\\ud800\"}\n",
        "{\"id\":\"a\"}\n{\"n\":1e999}\n",
    ];
    for case in cases {
        assert_eq!(
            items(case.as_bytes()),
            read_documents(case.as_bytes()),
            "{case:?}"
        );
    }
}

#[test]
fn an_ndjson_event_line_is_handed_over_as_it_is() {
    let input = b"{\"id\":\"a\", \"value\": 1}\n  {\"id\":\"b\"}  \n";
    let mut got = Vec::new();
    for_each(input, |p| got.push(p.unwrap()));
    assert_eq!(
        got,
        [
            (&b"{\"id\":\"a\", \"value\": 1}"[..], 1),
            (&b"{\"id\":\"b\"}"[..], 2)
        ]
    );
}

#[test]
fn messages_are_array_elements_one_document_or_lines() {
    let collect = |input: &[u8]| {
        let mut out = Vec::new();
        for_each_message(input, |p| {
            out.push(p.map(|(m, line)| (String::from_utf8(m.to_vec()).unwrap(), line)))
        });
        out
    };
    let m = |s: &str, line| Ok((s.to_owned(), line));
    assert_eq!(
        collect(b"{\"records\":[]}\n{\"records\":[{}]}\n"),
        [m("{\"records\":[]}", 1), m("{\"records\":[{}]}", 2)]
    );
    assert_eq!(
        collect(b"{\n \"records\": [{}]\n}\n"),
        [m("{\n \"records\": [{}]\n}", 1)]
    );
    assert_eq!(
        collect(b"[{\"records\":[]}, {\"records\":[{}]}]"),
        [m("{\"records\":[]}", 1), m("{\"records\":[{}]}", 1)]
    );
    assert!(matches!(&collect(b"[{\"records\":[]}, {")[..], [Err(_)]));
    assert_eq!(collect(b"oops\n"), [m("oops", 1)]);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-z{}\\[\\]\":\\\\ ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("value".to_owned()),
        Just("records".to_owned()),
        Just("id".to_owned()),
        "[a-z\"\\\\{}:]{0,6}",
    ]
}

proptest! {
    /// An object with a top-level `value` or `records` key is never said not to be an
    /// envelope, whatever its other keys and nested values hold; one without them (nested ones
    /// do not count) and without escaped keys is always said not to be.
    #[test]
    fn envelope_hint_never_misses(
        top in prop::collection::vec((key(), json_value()), 0..6),
        pretty in any::<bool>(),
    ) {
        let obj = Value::Object(top.into_iter().collect());
        let text = if pretty {
            serde_json::to_string_pretty(&obj).unwrap().replace('\n', " ")
        } else {
            obj.to_string()
        };
        let map = obj.as_object().unwrap();
        let has = map.contains_key("value") || map.contains_key("records");
        let escaped = map.keys().any(|k| k.contains(['"', '\\']));
        let hint = may_be_envelope(text.as_bytes());
        if has {
            prop_assert!(hint, "{}", text);
        } else if !escaped {
            prop_assert!(!hint, "{}", text);
        }
        // And the items found are those `read_documents` finds.
        prop_assert_eq!(items(text.as_bytes()), read_documents(text.as_bytes()));
        let two = format!("{text}\n{text}\n");
        prop_assert_eq!(items(two.as_bytes()), read_documents(two.as_bytes()));
    }
}

#[test]
fn lines_split_as_slice_split_does() {
    for input in [&b""[..], b"\n", b"a", b"a\n", b"a\nb", b"\n\na\r\n\nb\n\n"] {
        let want: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        assert_eq!(lines(input).collect::<Vec<_>>(), want, "{input:?}");
    }
}
