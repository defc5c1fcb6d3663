//! Unit tests for the scan plan (trie building, slot numbering) and for what a scan keeps.

use super::super::Mapping;
use super::*;
use std::borrow::Cow;

fn mapping(fields: &str) -> Mapping {
    let text = format!(
        "format = \"cef\"\n[header]\nvendor = \"V\"\nproduct = \"P\"\nversion = \"1\"\n\
         class_id = {{ path = \"a.id\" }}\nname = \"n\"\nseverity = \"3\"\n{fields}"
    );
    Mapping::compile(std::path::Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn all_paths(m: &mut Mapping) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    rooted_paths(
        &mut m.header,
        &mut m.variants,
        &mut m.fields,
        &mut [],
        &mut |p| {
            out.push((p.as_str().to_string(), p.id));
        },
    );
    out
}

#[test]
fn a_path_ending_above_another_captures_the_whole_value() {
    let mut m = mapping(
        "[[field]]\nkey = \"msg\"\npath = \"a\"\n[[field]]\nkey = \"cat\"\npath = \"a.b[1].c\"\n",
    );
    // `a` is captured whole, so `a.id` and `a.b[1].c` read inside that one slot.
    assert_eq!(m.plan.slots, 1);
    assert_eq!(m.plan.nodes[0].keys.len(), 1);
    let ids = all_paths(&mut m);
    assert!(ids.iter().all(|(_, id)| *id != Path::UNPLANNED), "{ids:?}");
    let doc = scan(&m.plan, br#"{"a":{"id":"x","b":[0,{"c":"deep"}]}}"#).unwrap();
    let mut out = Vec::new();
    m.render_doc(&doc, &mut out).unwrap();
    let line = String::from_utf8(out).unwrap();
    assert!(line.contains("|x|n|3|"), "{line}");
    assert!(line.ends_with(" cat=deep"), "{line}");
}

#[test]
fn every_rooted_path_of_every_shipped_mapping_is_planned() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    for vendor in ["arcsight", "qradar"] {
        for entry in std::fs::read_dir(root.join(vendor)).unwrap() {
            let path = entry.unwrap().path();
            let mut m = Mapping::load(&path).unwrap();
            for (p, id) in all_paths(&mut m) {
                assert_ne!(id, Path::UNPLANNED, "{}: {p}", path.display());
            }
        }
    }
}

#[test]
fn strings_without_escapes_are_borrowed() {
    let m = mapping("[[field]]\nkey = \"msg\"\npath = \"m\"\n");
    let json = br#"{"m":"plain","a":{"id":"e\u0301"}}"#;
    let doc = scan(&m.plan, json).unwrap();
    assert_eq!(doc.root, "an object");
    let borrowed = doc
        .slots
        .iter()
        .flatten()
        .filter(|l| matches!(l, Leaf::Str(Cow::Borrowed(_))))
        .count();
    let owned = doc
        .slots
        .iter()
        .flatten()
        .filter(|l| matches!(l, Leaf::Str(Cow::Owned(_))))
        .count();
    assert_eq!((borrowed, owned), (1, 1));
}

#[test]
fn index_paths_and_duplicates() {
    let m = mapping("[[field]]\nkey = \"msg\"\npath = \"l[2]\"\n");
    let text = |json: &[u8]| {
        let doc = scan(&m.plan, json).unwrap();
        let mut out = Vec::new();
        m.render_doc(&doc, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert!(text(br#"{"l":[0,1,"two",3]}"#).ends_with("msg=two"));
    assert!(!text(br#"{"l":[0,1]}"#).contains("msg="));
    assert!(!text(br#"{"l":[0,1,"two"],"l":{"2":"x"}}"#).contains("msg="));
    assert!(text(br#"{"l":{"2":"x"},"l":[0,1,"z"]}"#).ends_with("msg=z"));
    assert_eq!(
        scan(&m.plan, b"[1]").unwrap().root,
        "an array",
        "the root kind is reported for NotAnObject"
    );
    assert!(scan(&m.plan, br#"{"l":[0,1,"two"]"#).is_err());
}

#[test]
fn every_element_paths_join_each_distinct_value_in_order_on_both_views() {
    let m = mapping(
        "[[field]]\nkey = \"cs1\"\npath = \"alerts[*].id\"\n\
         [[field]]\nkey = \"cs2\"\npath = \"alerts[*].evidence[*].ipAddress\"\njoin = \" \"\n\
         [[field]]\nkey = \"cs3\"\npath = \"alerts[0].id\"\n\
         [[field]]\nkey = \"cs4\"\npath = \"none[*].id\"\n",
    );
    let json = br#"{"a":{"id":"c"},"alerts":[
        {"id":"da1","evidence":[{"ipAddress":"203.0.113.5"},{"userAccount":{}},{"ipAddress":"10.0.0.1"}]},
        {"id":"da2","evidence":[{"ipAddress":"203.0.113.5"}]},
        {"id":null},
        {"id":"da1"},
        "not an object"]}"#;
    let by_scan = {
        let mut out = Vec::new();
        m.render_json(json, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let by_tree = {
        let mut out = Vec::new();
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        m.render_tree(&v, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert_eq!(by_scan, by_tree);
    assert!(
        by_scan.ends_with("cs1=da1,da2 cs2=203.0.113.5 10.0.0.1 cs3=da1"),
        "{by_scan}"
    );
    // Only a field's `path` may reach many values.
    for (fields, want) in [
        ("first = [\"a[*].b\"]", "allowed only in a field's `path`"),
        (
            "template = \"{a[*].b}\"",
            "allowed only in a field's `path`",
        ),
        ("path = \"a[x]\"", "array index must be a number or *"),
    ] {
        let text = format!(
            "format = \"cef\"\n[header]\nvendor = \"V\"\nproduct = \"P\"\nversion = \"1\"\n\
             class_id = \"c\"\nname = \"n\"\nseverity = \"3\"\n[[field]]\nkey = \"msg\"\n{fields}\n"
        );
        let e = Mapping::compile(std::path::Path::new("t.toml"), &text).unwrap_err();
        assert!(e.to_string().contains(want), "{fields}: {e}");
    }
}
