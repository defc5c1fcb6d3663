//! Over every shipped mapping file (`mappings/<vendor>/*.toml`, found on disk, so files added
//! later are checked too): a record id never reaches a key that may cut it unless the short key
//! holds a collision-free hash and another key holds the id whole, and an operation name never
//! reaches a short key without a whole copy elsewhere in the mapping.

use std::path::PathBuf;

use siemcast::event::EventKind;
use siemcast::mapping::{FieldInfo, Mapping};

/// A key that keeps this many characters keeps any record id or operation name whole (CEF
/// `cs*` hold 4000, `flexString*` and custom keys 1023, LEEF custom keys 4000).
const WHOLE: usize = 1023;
/// The length of a `convert = "hash"` value (`"id"`: the id when it is no longer, else its hash).
const HASH_CHARS: usize = 40;

/// Record ids other than the kind's own `id_fields`: the id the `eventhubs` source stamps, the
/// Entra id of streamed records and the Defender for Cloud system alert id in both shapes.
const MORE_IDS: &[&str] = &[
    "_siemcast.id",
    "properties.id",
    "properties.systemAlertId",
    "SystemAlertId",
];

/// Paths that hold an operation name in the records of the shipped kinds.
const OPERATIONS: &[&str] = &[
    "operationName",
    "operationName.value",
    "OperationName",
    "Operation",
    "authorization.action",
    "identity.authorization.action",
    "activityDisplayName",
    "properties.activityDisplayName",
    "properties.operationName",
];

fn mapping_files() -> Vec<(String, String, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mut out = Vec::new();
    for vendor in std::fs::read_dir(&root).unwrap() {
        let vendor = vendor.unwrap();
        if !vendor.file_type().unwrap().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(vendor.path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                let kind = path.file_stem().unwrap().to_string_lossy().into_owned();
                out.push((
                    vendor.file_name().to_string_lossy().into_owned(),
                    kind,
                    path,
                ));
            }
        }
    }
    out.sort();
    out
}

fn id_paths(kind: &str) -> Vec<String> {
    let own: &[&str] = match kind.parse::<EventKind>() {
        Ok(k) => k.id_fields(),
        Err(_) => &["id"],
    };
    own.iter().chain(MORE_IDS).map(|s| s.to_string()).collect()
}

/// Problems with one mapping's record ids: each key that may cut an id must hash it, and the
/// id read the same way (same fallbacks up to it) must be whole in another key.
fn id_problems(fields: &[FieldInfo], ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        for (i, p) in f.paths.iter().enumerate() {
            if !ids.contains(p) || f.max_chars >= WHOLE {
                continue;
            }
            let hashed = matches!(f.convert, "hash" | "id")
                && f.max_chars >= HASH_CHARS
                && matches!(f.source, "path" | "first");
            if !hashed {
                out.push(format!(
                    "`{}` keeps {} characters of the id `{p}` ({} {}): cut ids collide; use convert = \"id\" or \"hash\"",
                    f.key, f.max_chars, f.source, f.convert
                ));
            }
            let prefix = &f.paths[..=i];
            let whole = fields.iter().any(|g| {
                !std::ptr::eq(g, f)
                    && matches!(g.source, "path" | "first")
                    && g.paths.starts_with(prefix)
                    && g.convert == "text"
                    && !g.mapped
                    && !g.conditional
                    && g.max_chars >= WHOLE
            });
            if !whole {
                out.push(format!(
                    "`{}` cuts or hashes the id `{p}` and no key keeps {prefix:?} whole (>= {WHOLE} characters, unconditional, unmapped)",
                    f.key
                ));
            }
        }
    }
    out
}

/// Problems with one mapping's operation names: a short key reading one needs a key that
/// keeps the same operation whole.
fn operation_problems(fields: &[FieldInfo]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        if f.max_chars >= WHOLE || f.convert != "text" {
            continue;
        }
        for p in f.paths.iter().filter(|p| OPERATIONS.contains(&p.as_str())) {
            let whole = fields.iter().any(|g| {
                g.max_chars >= WHOLE
                    && g.source != "select"
                    && g.paths.contains(p)
                    && g.convert == "text"
                    && !g.mapped
                    && !g.conditional
            });
            if !whole {
                out.push(format!(
                    "`{}` keeps {} characters of the operation `{p}` and no key keeps it whole",
                    f.key, f.max_chars
                ));
            }
        }
    }
    out
}

#[test]
fn no_shipped_mapping_cuts_a_record_id_or_an_operation_without_a_whole_copy() {
    let files = mapping_files();
    assert!(
        files.len() >= 20,
        "found only {} mapping files",
        files.len()
    );
    let mut problems = Vec::new();
    for (vendor, kind, path) in &files {
        let m = Mapping::load(path).unwrap_or_else(|e| panic!("{e}"));
        let fields = m.fields();
        for p in id_problems(&fields, &id_paths(kind)) {
            problems.push(format!("{vendor}/{kind}: {p}"));
        }
        for p in operation_problems(&fields) {
            problems.push(format!("{vendor}/{kind}: {p}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

fn compiled(text: &str) -> Vec<FieldInfo> {
    Mapping::compile(std::path::Path::new("t.toml"), text)
        .unwrap()
        .fields()
}

/// The checks above find what they are meant to find (so a pass means something).
#[test]
fn the_checks_catch_cut_ids_and_cut_operations() {
    let head = "format = \"cef\"\n[header]\nvendor = \"V\"\nproduct = \"P\"\nversion = \"1\"\nclass_id = \"c\"\nname = \"n\"\nseverity = 3\n";
    let ids = id_paths("entra_audit");
    // Cut, no copy.
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"externalId\"\npath = \"id\"\n"
    ));
    assert_eq!(
        id_problems(&f, &ids).len(),
        2,
        "{:?}",
        id_problems(&f, &ids)
    );
    // Whole copy, but the short key still cuts.
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"externalId\"\npath = \"id\"\n[[field]]\nkey = \"cs1\"\nlabel = \"Record ID\"\npath = \"id\"\n"
    ));
    assert_eq!(id_problems(&f, &ids).len(), 1);
    // Hashed, but the copy is conditional or too short.
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"externalId\"\npath = \"id\"\nconvert = \"hash\"\n[[field]]\nkey = \"cs1\"\nlabel = \"Record ID\"\npath = \"id\"\nwhen = {{ path = \"x\", exists = true }}\n[[field]]\nkey = \"act\"\npath = \"id\"\nconvert = \"hash\"\n"
    ));
    assert_eq!(
        id_problems(&f, &ids).len(),
        2,
        "{:?}",
        id_problems(&f, &ids)
    );
    // A fallback id needs a copy with the same fallbacks before it.
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"externalId\"\nfirst = [\"x\", \"_siemcast.id\"]\nconvert = \"hash\"\n[[field]]\nkey = \"cs1\"\nlabel = \"Record ID\"\npath = \"_siemcast.id\"\n"
    ));
    assert_eq!(id_problems(&f, &ids).len(), 1);
    // Hash plus a whole copy: clean.
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"externalId\"\npath = \"id\"\nconvert = \"hash\"\n[[field]]\nkey = \"flexString2\"\nlabel = \"Record ID\"\npath = \"id\"\n"
    ));
    assert!(id_problems(&f, &ids).is_empty());
    // An operation in act alone is cut; with a whole copy it is not.
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"act\"\npath = \"operationName\"\n"
    ));
    assert_eq!(operation_problems(&f).len(), 1);
    let f = compiled(&format!(
        "{head}[[field]]\nkey = \"act\"\npath = \"operationName\"\n[[field]]\nkey = \"cs1\"\nlabel = \"Operation\"\npath = \"operationName\"\n"
    ));
    assert!(operation_problems(&f).is_empty());
    // LEEF EventID keeps 255 characters.
    let f = compiled(
        "format = \"leef2\"\n[header]\nvendor = \"V\"\nproduct = \"P\"\nversion = \"1\"\nevent_id = { path = \"Operation\" }\n",
    );
    assert_eq!(operation_problems(&f).len(), 1);
}
