//! Unit tests for the compiler: one per diagnostic, with its exact message and position.

use super::*;

fn errs(text: &str) -> Vec<String> {
    match Mapping::compile(FsPath::new("m.toml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

const CEF_HEAD: &str = r#"format = "cef"
[header]
vendor = "Microsoft"
product = "P"
version = "1"
class_id = { path = "op" }
name = "N"
severity = { path = "level", map = { High = 8 } }
"#;

const LEEF_HEAD: &str = r#"format = "leef2"
delimiter = "^"
[header]
vendor = "Microsoft"
product = "P"
version = "1"
event_id = { path = "op" }
"#;

fn cef(fields: &str) -> Vec<String> {
    errs(&format!("{CEF_HEAD}{fields}"))
}

fn leef(fields: &str) -> Vec<String> {
    errs(&format!("{LEEF_HEAD}{fields}"))
}

#[test]
fn minimal_files_compile() {
    assert_eq!(cef(""), Vec::<String>::new());
    assert_eq!(leef(""), Vec::<String>::new());
    let m = Mapping::compile(FsPath::new("m.toml"), LEEF_HEAD).unwrap();
    assert_eq!(m.format(), Format::Leef2 { delimiter: '^' });
}

#[test]
fn unknown_cef_key_with_space() {
    assert_eq!(
        cef("[[field]]\nkey = \"src ip\"\npath = \"a\"\n"),
        ["m.toml:10:7: 'src ip' is not a CEF key; keys are letters and digits (did you mean 'src'?)"]
    );
}

#[test]
fn cef_key_problems() {
    let e = cef("[[field]]\nkey = \"suer\"\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:10:7: 'suer' is not a CEF dictionary key (did you mean 'suser'? for a vendor-defined key set custom = true)"]);
    let e = cef("[[field]]\nkey = \"sourceAddress\"\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:10:7: 'sourceAddress' is a full name; CEF sends the short key (did you mean 'src'?)"]);
    let e = cef("[[field]]\nkey = \"SRC\"\npath = \"a\"\n");
    assert_eq!(
        e,
        ["m.toml:10:7: 'SRC' is not a CEF key; keys are case-sensitive (did you mean 'src'?)"]
    );
    let e = cef("[[field]]\nkey = \"art\"\npath = \"a\"\n");
    assert_eq!(
        e,
        ["m.toml:10:7: 'art' is set by ArcSight on receipt; producers must not send it"]
    );
    let e = cef("[[field]]\nkey = \"cs1Label\"\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:10:7: 'cs1Label' is written only with its value (put label = \"...\" on the 'cs1' field)"]);
    let e = cef("[[field]]\nkey = \"src\"\ncustom = true\npath = \"a\"\n");
    assert_eq!(
        e,
        ["m.toml:10:7: 'src' is a CEF dictionary key, not a custom key (remove custom = true)"]
    );
    assert!(cef("[[field]]\nkey = \"MicrosoftTenant\"\ncustom = true\npath = \"a\"\n").is_empty());
}

#[test]
fn leef_key_problems() {
    let e = leef("[[field]]\nkey = \"usr name\"\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:9:7: 'usr name' is not a LEEF key: it is not in IBM's predefined list, and custom keys are letters and digits (did you mean 'usrName'?)"]);
    let e = leef("[[field]]\nkey = \"usrname\"\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:9:7: 'usrname' is not a LEEF key; keys are case-sensitive (did you mean 'usrName'?)"]);
    let e = leef("[[field]]\nkey = \"suser\"\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:9:7: 'suser' is not one of IBM's predefined LEEF keys (did you mean 'usrName'? for a custom key set custom = true)"]);
    let e = leef("[[field]]\nkey = \"devTimeFormat\"\nvalue = \"x\"\n");
    assert_eq!(
        e,
        ["m.toml:9:7: 'devTimeFormat' is written by convert = \"leef_time\" on devTime"]
    );
    let e = leef("[[field]]\nkey = \"cat\"\ncustom = true\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:9:7: 'cat' is one of IBM's predefined LEEF keys, not a custom key (remove custom = true)"]);
    let e = leef("[[field]]\nkey = \"cat\"\nlabel = \"x\"\npath = \"a\"\n");
    assert_eq!(
        e,
        ["m.toml:10:9: LEEF has no labels; name the key itself (custom = true)"]
    );
    assert!(leef("[[field]]\nkey = \"tenant\"\ncustom = true\npath = \"a\"\n").is_empty());
}

#[test]
fn bad_paths_point_into_the_string() {
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"a..b\"\n");
    assert_eq!(
        e,
        ["m.toml:11:11: invalid path \"a..b\": empty path segment (two dots, or a leading dot)"]
    );
    let e = cef("[[field]]\nkey = \"msg\"\nfirst = [\"ok\", \"a b\"]\n");
    assert_eq!(e, ["m.toml:11:18: invalid path \"a b\": whitespace in a path; quote such keys as [\"key name\"]"]);
    let e = cef("[[field]]\nkey = \"msg\"\ntemplate = \"x {a\"\n");
    assert_eq!(e, ["m.toml:11:15: invalid template: unclosed '{' in template; write '{{' for a literal brace"]);
    let e = cef("[[field]]\nkey = \"msg\"\nselect = { from = \"e\", where = \"t\" }\n");
    assert_eq!(e, ["m.toml:11:10: select needs 'is' (the value to match)"]);
}

#[test]
fn wrong_conversions() {
    let e = cef("[[field]]\nkey = \"rt\"\npath = \"t\"\nconvert = \"ip\"\n");
    assert_eq!(e, ["m.toml:12:11: convert = \"ip\" does not fit 'rt', which holds a timestamp (use \"epoch_ms\" or leave convert out)"]);
    let e = cef("[[field]]\nkey = \"src\"\npath = \"t\"\nconvert = \"int\"\n");
    assert_eq!(e, ["m.toml:12:11: convert = \"int\" does not fit 'src', which holds an IPv4 address (use \"ip\" or leave convert out)"]);
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"t\"\nconvert = \"leef_time\"\n");
    assert_eq!(e, ["m.toml:12:11: convert = \"leef_time\" does not fit 'msg', which holds a string ('leef_time' applies only to the LEEF devTime key)"]);
    let e = leef("[[field]]\nkey = \"devTime\"\npath = \"t\"\nconvert = \"port\"\n");
    assert_eq!(e, ["m.toml:11:11: convert = \"port\" does not fit 'devTime', which holds a timestamp (use \"epoch_ms\" or \"leef_time\")"]);
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"t\"\nconvert = \"epoch\"\n");
    assert_eq!(e, ["m.toml:12:11: unknown conversion 'epoch'; expected one of: text, epoch_ms, leef_time, ip, int, port, mac, number, bool, hash, id, severity (did you mean 'epoch_ms'?)"]);
    assert!(
        leef("[[field]]\nkey = \"devTime\"\npath = \"t\"\nconvert = \"leef_time\"\n").is_empty()
    );
    assert!(leef("[[field]]\nkey = \"sev\"\npath = \"t\"\nconvert = \"severity\"\n").is_empty());
}

#[test]
fn missing_header_fields_and_sources() {
    let e = errs("format = \"cef\"\n[header]\nvendor = \"Microsoft\"\nproduct = \"P\"\nversion = \"1\"\nname = \"n\"\n");
    assert_eq!(
        e,
        [
            "m.toml:2:1: missing header field 'class_id' (it sets vendor, product, version, class_id, name, severity)",
            "m.toml:2:1: missing header field 'severity' (it sets vendor, product, version, class_id, name, severity)",
        ]
    );
    let e = errs("format = \"cef\"\n");
    assert_eq!(e, ["m.toml:1:1: missing [header] table (it sets vendor, product, version, class_id, name, severity)"]);
    let e = errs("[header]\n");
    assert_eq!(
        e[0],
        "m.toml:1:1: missing 'format' (add format = \"cef\", \"leef1\" or \"leef2\")"
    );
    let e = cef("[[field]]\nkey = \"msg\"\n");
    assert_eq!(
        e,
        ["m.toml:9:1: no value source (give one of path, value, template, first or select)"]
    );
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"a\"\nvalue = \"b\"\n");
    assert_eq!(
        e,
        ["m.toml:12:1: give only one value source, not both 'path' and 'value'"]
    );
    let e = cef("[[field]]\npath = \"a\"\n");
    assert_eq!(e, ["m.toml:9:1: a [[field]] needs a 'key'"]);
}

#[test]
fn header_value_problems() {
    let text = CEF_HEAD
        .replace("vendor = \"Microsoft\"", "vendor = \"  \"")
        .replace("High = 8", "High = 11");
    assert_eq!(
        errs(&text),
        [
            "m.toml:3:10: header field 'vendor' must not be empty",
            "m.toml:8:12: severity value '11' is not 0-10 or Unknown, Low, Medium, High, Very-High",
        ]
    );
    let text = LEEF_HEAD.replace("product = \"P\"", "product = \"A|B\"");
    assert_eq!(
        errs(&text),
        ["m.toml:5:11: header field 'product' contains '|', which LEEF cannot carry"]
    );
}

#[test]
fn unknown_settings_and_format() {
    let e = cef("[[field]]\nkey = \"msg\"\npaht = \"a\"\n");
    assert_eq!(e[0], "m.toml:11:1: unknown setting 'paht' in [[field]]; expected one of: path, value, template, first, select, map, otherwise, default, join, pattern, key, convert, label, max_len, when, required, custom (did you mean 'path'?)");
    let e = errs(&CEF_HEAD.replace("format = \"cef\"", "format = \"leef\""));
    assert_eq!(e[0], "m.toml:1:10: format must be \"cef\", \"leef1\" or \"leef2\" (did you mean 'leef2' or 'leef1'?)");
    let e = errs(&LEEF_HEAD.replace("delimiter = \"^\"", "delimiter = \"ab\""));
    assert_eq!(e, ["m.toml:2:13: delimiter must be one ASCII punctuation character or TAB, written as itself or as xHH (\"^\" and \"x09\" are the usual choices)"]);
    let e = errs(&CEF_HEAD.replace("format = \"cef\"", "format = \"cef\"\ndelimiter = \"^\""));
    assert_eq!(
        e,
        ["m.toml:2:13: 'delimiter' applies only to format = \"leef2\""]
    );
    let e = errs("format = \"cef\"\n[header\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("m.toml:2:8: not valid TOML: "), "{}", e[0]);
}

#[test]
fn labels_lengths_and_duplicates() {
    let e = cef("[[field]]\nkey = \"msg\"\nlabel = \"x\"\npath = \"a\"\n");
    assert!(
        e[0].starts_with("m.toml:11:9: 'msg' has no label key;"),
        "{}",
        e[0]
    );
    let e = cef("[[field]]\nkey = \"externalId\"\npath = \"a\"\nmax_len = 41\n");
    assert_eq!(
        e,
        ["m.toml:12:11: max_len 41 exceeds the 40-character limit of 'externalId'"]
    );
    let e = cef("[[field]]\nkey = \"rt\"\npath = \"a\"\nmax_len = 4\n");
    assert_eq!(
        e,
        ["m.toml:12:11: 'max_len' applies to string keys; 'rt' holds a timestamp"]
    );
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"a\"\n[[field]]\nkey = \"msg\"\npath = \"b\"\n");
    assert_eq!(e, ["m.toml:13:7: key 'msg' is already mapped on line 10 without `when`; this field would never be used (give the earlier field a `when`, or use first = [...] for fallbacks)"]);
    let ok = "[[field]]\nkey = \"msg\"\npath = \"a\"\nwhen = { path = \"c\", is = \"x\" }\n[[field]]\nkey = \"msg\"\npath = \"b\"\n";
    assert!(cef(ok).is_empty());
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"a\"\nwhen = { path = \"c\" }\n");
    assert_eq!(
        e,
        ["m.toml:12:8: 'when' needs exactly one of 'is', 'not' or 'exists'"]
    );
    let e = cef("[[field]]\nkey = \"msg\"\npath = \"a\"\notherwise = \"x\"\n");
    assert_eq!(e, ["m.toml:12:1: 'otherwise' only applies with a 'map'"]);
}

#[test]
fn every_error_at_once() {
    let e = cef("[[field]]\nkey = \"src ip\"\npath = \"a\"\n[[field]]\nkey = \"rt\"\npath = \"a..\"\n[[field]]\nkey = \"dpt\"\npath = \"p\"\nconvert = \"ip\"\n");
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn pattern_problems() {
    let e = cef("[[field]]\nkey = \"src\"\npath = \"m\"\npattern = 'from ([^ ]+'\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("m.toml:12:11: invalid 'pattern': ") && e[0].contains("unclosed group"),
        "{e:?}"
    );
    let e = cef("[[field]]\nkey = \"src\"\npath = \"m\"\npattern = 'from (\\S+):(\\d+)'\n");
    assert_eq!(e, ["m.toml:12:11: 'pattern' must have exactly one capture group: the part to keep (e.g. pattern = \"from ([^ ]+) to\"; write other groups as (?:...))"]);
    let e = cef("[[field]]\nkey = \"src\"\npath = \"m\"\npattern = 5\n");
    assert_eq!(
        e,
        ["m.toml:12:11: 'pattern' must be a string (a regular expression)"]
    );
    assert!(cef("[[field]]\nkey = \"src\"\npath = \"m\"\npattern = 'from (\\S+?)(?::\\d*)? to '\nconvert = \"ip\"\n").is_empty());
}

/// `pattern` keeps the text of its capture group, then the conversion applies; no match means
/// no value (so `default`, or the next field of the same key, applies) — and the key never
/// gets the text around the group.
#[test]
fn pattern_keeps_the_group_only() {
    let m = Mapping::compile(
        FsPath::new("m.toml"),
        &format!(
            "{CEF_HEAD}[[field]]\nkey = \"src\"\npath = \"m\"\npattern = ' from (\\S+?)(?::\\d*)? to '\nconvert = \"ip\"\nwhen = {{ path = \"m\", exists = true }}\n[[field]]\nkey = \"src\"\npath = \"ip\"\n[[field]]\nkey = \"spt\"\npath = \"m\"\npattern = ' from \\S+?:(\\d+) to '\n[[field]]\nkey = \"msg\"\npath = \"m\"\npattern = 'Action: (\\w+)'\ndefault = \"none\"\n"
        ),
    )
    .unwrap();
    let render = |v: serde_json::Value| {
        let mut out = Vec::new();
        m.render_json(&serde_json::to_vec(&v).unwrap(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    let line = render(serde_json::json!({
        "op": "o", "m": "TCP request from 10.0.0.4:49680 to 52.1.2.3:443. Action: Deny."
    }));
    assert!(line.ends_with("|src=10.0.0.4 spt=49680 msg=Deny"), "{line}");
    let line = render(serde_json::json!({"op": "o", "m": "no addresses here", "ip": "10.9.9.9"}));
    assert!(line.ends_with("|src=10.9.9.9 msg=none"), "{line}");
}
