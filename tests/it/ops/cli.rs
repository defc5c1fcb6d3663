//! The command-line contract: help texts, `check` error reports, `render` and `demo`.

use crate::util;

use std::process::{Command, Output};

fn siemcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(args)
        .output()
        .expect("siemcast runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `dir/siemcast.toml` with `sources` and one destination "siem" that renders with the
/// mapping files of `dir/mappings`, and runs `check` on it.
fn check_with_mappings(dir: &std::path::Path, sources: &str) -> Output {
    let config = dir.join("siemcast.toml");
    let text = format!(
        "{sources}\n[[destination]]\nname = \"siem\"\naddress = \"127.0.0.1:514\"\nmappings = \"mappings\"\n"
    );
    std::fs::write(&config, text).unwrap();
    siemcast(&["check", "-c", config.to_str().unwrap()])
}

#[test]
fn help_lists_the_commands_and_each_has_an_example() {
    let out = siemcast(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["run", "check", "render", "demo"] {
        assert!(
            help.contains(&format!("\n  {cmd} ")),
            "--help does not list {cmd}:\n{help}"
        );
        let sub = siemcast(&[cmd, "--help"]);
        assert!(sub.status.success());
        let sub = text(&sub.stdout);
        assert!(
            sub.contains("Example:"),
            "`{cmd} --help` has no example:\n{sub}"
        );
        assert!(
            sub.contains(&format!("siemcast {cmd}")),
            "`{cmd} --help` example does not show the command:\n{sub}"
        );
    }
}

#[test]
fn check_reports_every_mistake_with_its_location() {
    let scratch = util::Scratch::new();
    scratch.write_config("127.0.0.1:514", "");
    let path = scratch.config();
    let good = std::fs::read_to_string(&path).unwrap();
    let ok = siemcast(&["check", "-c", path.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "valid config rejected: {}",
        text(&ok.stderr)
    );
    assert!(text(&ok.stdout).contains("OK"));

    let bad = good
        .replace("transport = \"tcp\"", "transport = \"tpc\"")
        .replace("interval = \"200ms\"", "interval = \"soon\"")
        .replace(
            "hostname = \"siemcast-test\"",
            "hostname = \"siemcast-test\"\nmax_epss = 10",
        );
    std::fs::write(&path, &bad).unwrap();
    let out = siemcast(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let file = path.display().to_string();
    let expected = [
        format!("{file}:11:1: source \"files\": interval \"soon\" is not a duration"),
        format!(
            "{file}:17:1: destination \"rsyslog\": transport \"tpc\" is not one of udp, tcp, tls, hec"
        ),
        format!("{file}:21:1: unknown key \"max_epss\" in destination[0]"),
    ];
    for e in &expected {
        assert!(stderr.contains(e.as_str()), "missing {e:?} in:\n{stderr}");
    }
    assert!(stderr.contains("3 problems"), "{stderr}");
}

/// `check` reports a mapping file's mistakes with the same hint `render` gives, not only the
/// message: a misspelt dictionary key comes with "did you mean 'suser'?".
#[test]
fn check_keeps_the_hints_of_mapping_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    let shipped =
        std::fs::read_to_string(util::shipped_mappings("arcsight").join("azure_activity.toml"))
            .unwrap();
    let line = 1 + shipped
        .lines()
        .position(|l| l == "key = \"suser\"")
        .expect("the shipped mapping maps suser");
    let typo = shipped.replacen("key = \"suser\"", "key = \"susr\"", 1);
    let mapping = mappings.join("azure_activity.toml");
    std::fs::write(&mapping, typo).unwrap();
    let sources = "[[source]]\nname = \"files\"\nkind = \"files\"\npath = \"input\"\nsource_kind = \"azure_activity\"\n";
    let out = check_with_mappings(dir.path(), sources);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = format!(
        "{}:{line}:7: destination \"siem\": 'susr' is not a CEF dictionary key (did you mean 'suser'?",
        mapping.display()
    );
    assert!(
        stderr.contains(&expected),
        "missing {expected:?} in:\n{stderr}"
    );
}

#[test]
fn render_prints_one_cef_line_per_event() {
    let scratch = util::Scratch::new();
    let input = scratch.dir.path().join("events.json");
    std::fs::write(&input, util::activity_events(0..25)).unwrap();
    let mapping = util::shipped_mappings("arcsight").join("azure_activity.toml");
    let out = siemcast(&[
        "render",
        "--mapping",
        mapping.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 25);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with("CEF:0|Microsoft|"), "{line}");
        assert_eq!(
            util::cef_value(line, "externalId"),
            Some(format!("ev-{i:05}").as_str())
        );
    }
}

#[test]
fn render_reports_bad_events_and_renders_the_rest() {
    let scratch = util::Scratch::new();
    let input = scratch.dir.path().join("events.ndjson");
    let good = util::activity_events(0..2);
    let mut lines = good.lines();
    let data = format!(
        "{}\n{{broken\n{}\n",
        lines.next().unwrap(),
        lines.next().unwrap()
    );
    std::fs::write(&input, data).unwrap();
    let mapping = util::shipped_mappings("arcsight").join("azure_activity.toml");
    let out = siemcast(&[
        "render",
        "--mapping",
        mapping.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--syslog",
        "rfc5424",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).lines().count(), 2);
    for line in text(&out.stdout).lines() {
        assert!(line.starts_with("<166>1 "), "{line}");
    }
    assert!(
        text(&out.stderr).contains("event 1: line 2: not valid JSON"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_runs_end_to_end_and_exits_zero() {
    let out = siemcast(&["demo"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Demo OK"), "{stdout}");
    let cef = stdout
        .lines()
        .filter(|l| l.contains(" siemcast-demo CEF:0|Microsoft|"))
        .count();
    assert!(
        cef >= 3,
        "expected CEF lines that arrived over TCP:\n{stdout}"
    );
    // Events of all six Microsoft source kinds, by the product their mapping names.
    for product in [
        "|Microsoft|Azure Activity Log|",
        "|Microsoft|Defender for Cloud|",
        "|Microsoft|Defender XDR/",
        "|Microsoft|Entra ID Audit|",
        "|Microsoft|Entra ID SignIn|",
        "|Microsoft|Office 365 ",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(" siemcast-demo CEF:0") && l.contains(product)),
            "no {product} event:\n{stdout}"
        );
    }
}

/// A mappings folder copied from a release before the newer streamed kinds existed: `check`
/// passes, says which files are missing and what renders those records meanwhile; a folder
/// missing a file that has no stand-in is still an error naming the file.
#[test]
fn check_names_streamed_kinds_whose_mapping_file_an_older_folder_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("mappings");
    std::fs::create_dir(&old).unwrap();
    let added = [
        "eventhubs_entra_provisioning",
        "eventhubs_entra_risk",
        "eventhubs_graph_activity",
        "eventhubs_defender_alerts",
        "eventhubs_defender_xdr",
    ];
    for entry in std::fs::read_dir(util::shipped_mappings("arcsight")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !added.contains(&stem.as_str()) {
            std::fs::copy(&path, old.join(path.file_name().unwrap())).unwrap();
        }
    }
    let config = dir.path().join("siemcast.toml");
    std::fs::write(
        &config,
        r#"[[source]]
name = "hub"
kind = "eventhubs"
bootstrap_servers = "127.0.0.1:9092"
topic = "insights-logs"
group = "siemcast"
security = "plaintext"

[[destination]]
name = "siem"
address = "127.0.0.1:514"
mappings = "mappings"
"#,
    )
    .unwrap();
    let out = siemcast(&["check", "-c", config.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for kind in added {
        assert!(
            stdout.contains(&format!(
                "note: no {kind}.toml there: those records are rendered with eventhubs_diagnostic.toml"
            )),
            "{kind}:\n{stdout}"
        );
    }
    std::fs::remove_file(old.join("eventhubs_entra_audit.toml")).unwrap();
    let out = siemcast(&["check", "-c", config.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("eventhubs_entra_audit.toml"), "{stderr}");
}

/// `mappings keys --custom` lists, per shipped mapping file, exactly the keys the file marks
/// `custom = true` (read here straight from the TOML), each once; a file with a mistake is
/// reported with its location and exit status 1.
#[test]
fn mappings_keys_lists_exactly_the_custom_keys_of_each_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    for vendor in ["qradar", "arcsight"] {
        let dir = root.join(vendor);
        let out = siemcast(&["mappings", "keys", dir.to_str().unwrap(), "--custom"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let listing = text(&out.stdout);
        // "# FILE (FORMAT): N custom keys", a title row, then one row per key.
        let mut listed: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut current = None;
        for line in listing.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                let file = rest.split(" (").next().unwrap();
                let name = std::path::Path::new(file).file_name().unwrap();
                current = Some(name.to_string_lossy().into_owned());
                listed.entry(current.clone().unwrap()).or_default();
            } else if !line.is_empty() && !line.starts_with("key ") {
                let key = line.split_whitespace().next().unwrap().to_owned();
                listed.get_mut(current.as_ref().unwrap()).unwrap().push(key);
            }
        }
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            files += 1;
            let doc: toml::Value =
                toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut custom: Vec<String> = Vec::new();
            for f in doc
                .get("field")
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
            {
                if f.get("custom").and_then(|c| c.as_bool()) == Some(true) {
                    let key = f["key"].as_str().unwrap().to_owned();
                    if !custom.contains(&key) {
                        custom.push(key);
                    }
                }
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut got = listed
                .remove(&name)
                .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"));
            got.sort();
            custom.sort();
            assert_eq!(got, custom, "{vendor}/{name}");
        }
        assert!(files >= 10, "{vendor}: only {files} mapping files");
        assert!(
            listed.is_empty(),
            "listed but not in the folder: {listed:?}"
        );
    }
    // The QRadar activity mapping sends its record id in the custom key `externalId`.
    let out = siemcast(&[
        "mappings",
        "keys",
        root.join("qradar/azure_activity.toml").to_str().unwrap(),
    ]);
    let listing = text(&out.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["externalId", "custom", "text", "eventDataId"]),
        "{listing}"
    );

    let scratch = util::Scratch::new();
    let bad = scratch.dir.path().join("bad.toml");
    std::fs::write(&bad, "format = \"cef\"\n[header]\nvendor = 1\n").unwrap();
    let out = siemcast(&["mappings", "keys", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.toml:2:1: missing header field 'product'"),
        "{}",
        text(&out.stderr)
    );
}
