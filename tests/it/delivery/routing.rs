//! Routing and per-source identity, whole program against two real rsyslog receivers: each
//! destination receives exactly the ids its route takes (none lost, none extra), across a
//! `kill -9` and a SIGHUP reload that changes the routes, under the HOSTNAME / APP-NAME
//! configured per source or per destination template, as decoded from the syslog header.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use util::*;

/// Events per source in each phase.
const ACTIVITY: usize = 2000;
const ALERTS: usize = 300;
const SIGNINS: usize = 400;

/// `n` events of `kind` from the shipped sample's first record, ids `{prefix}-{i:05}`.
fn sample_events(kind: &str, prefix: &str, range: std::ops::Range<usize>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/events/{kind}.json"));
    let samples: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = String::new();
    for i in range {
        let mut ev = samples[i % samples.len()].clone();
        ev["id"] = format!("{prefix}-{i:05}").into();
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    out
}

/// Writes phase `phase`'s events (ids offset by phase) into each source's folder.
fn write_phase(scratch: &Scratch, phase: usize) {
    let base = phase * 10_000;
    let dir = |name: &str| {
        let d = scratch.input().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.join(format!("phase{phase}.ndjson"))
    };
    std::fs::write(dir("activity"), activity_events(base..base + ACTIVITY)).unwrap();
    std::fs::write(
        dir("alerts"),
        sample_events("graph_alerts", "al", base..base + ALERTS),
    )
    .unwrap();
    std::fs::write(
        dir("signins"),
        sample_events("entra_signins", "si", base..base + SIGNINS),
    )
    .unwrap();
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("{prefix}-{i:05}")).collect()
}

fn config(scratch: &Scratch, metrics: u16, soc: &str, archive: &str) -> String {
    let mappings = shipped_mappings("arcsight");
    let source = |name: &str, kind: &str, extra: &str| {
        format!(
            "[[source]]\nname = \"{name}\"\nkind = \"files\"\npath = \"input/{name}\"\nsource_kind = \"{kind}\"\ninterval = \"200ms\"\nbatch_size = 200\n{extra}\n"
        )
    };
    for name in ["activity", "alerts", "signins"] {
        std::fs::create_dir_all(scratch.input().join(name)).unwrap();
    }
    format!(
        "state_dir = \"state\"\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n\n{}{}{}\n{soc}\nmappings = \"{m}\"\n\n{archive}\nmappings = \"{m}\"\n",
        source("activity", "azure_activity", ""),
        source("alerts", "graph_alerts", "hostname = \"graph-alerts-01\"\napp_name = \"alerts\""),
        source("signins", "entra_signins", ""),
        m = mappings.display(),
    )
}

/// Per received line: (externalId, HOSTNAME, APP-NAME when RFC 5424), from the syslog header.
fn decode(
    lines: &[String],
    variant: syslog_loose::Variant,
) -> Vec<(String, String, Option<String>)> {
    lines
        .iter()
        .map(|line| {
            let msg = syslog_loose::parse_message(line, variant);
            assert!(msg.timestamp.is_some(), "no timestamp: {line}");
            let cef = &line[line
                .find("CEF:0|")
                .unwrap_or_else(|| panic!("no CEF: {line}"))..];
            let id = cef_value(cef, "externalId").unwrap_or_else(|| panic!("no id: {line}"));
            (
                id.to_owned(),
                msg.hostname
                    .unwrap_or_else(|| panic!("no hostname: {line}"))
                    .to_owned(),
                // RFC 3164 has no APP-NAME (siemcast writes no TAG; a parser takes "CEF").
                match variant {
                    syslog_loose::Variant::RFC5424 => msg.appname.map(str::to_owned),
                    _ => None,
                },
            )
        })
        .collect()
}

/// Waits until `rs` has received every id of `want`, then checks it received nothing else
/// and each id under the identity `who` gives it.
fn expect(
    rs: &Rsyslog,
    child: &mut Running,
    want: &BTreeSet<String>,
    variant: syslog_loose::Variant,
    who: impl Fn(&str) -> (&'static str, Option<&'static str>),
    name: &str,
) {
    wait_for_ids(child, want, name, "outside its route", || {
        decode(&rs.lines(), variant)
            .into_iter()
            .map(|d| d.0)
            .collect()
    });
    for (id, host, app) in decode(&rs.lines(), variant) {
        let (h, a) = who(&id);
        assert_eq!(
            (host.as_str(), app.as_deref()),
            (h, a),
            "{name}: identity of {id}"
        );
    }
}

fn wait_for_log(log: &Path, needle: &str, from: usize) {
    wait_until(Duration::from_secs(30), needle, || {
        std::fs::read_to_string(log).unwrap_or_default()[from..].contains(needle)
    });
}

#[test]
fn routes_and_identities_hold_across_kill_and_reload() {
    let soc = Rsyslog::start_tcp();
    let archive = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let log = scratch.dir.path().join("siemcast.log");
    let metrics = free_port();
    // soc: alerts and sign-ins only, RFC 3164 under "soc-<source>" (alerts: its own name).
    // archive: Activity Log and alerts by source name, RFC 5424 under "azure-<source>" /
    // "sc-<kind>", paced so that the kill lands mid-stream.
    let soc_1 = format!(
        "[[destination]]\nname = \"soc\"\naddress = \"{}\"\nkinds = [\"graph_alerts\", \"entra_*\"]\nhostname = \"soc-{{source}}\"",
        soc.address()
    );
    let archive_1 = format!(
        "[[destination]]\nname = \"archive\"\naddress = \"{}\"\nsyslog = \"rfc5424\"\nsources = [\"activity\", \"alerts\"]\nhostname = \"azure-{{source}}\"\napp_name = \"sc-{{kind}}\"\nmax_eps = 3000",
        archive.address()
    );
    std::fs::write(
        scratch.config(),
        config(&scratch, metrics, &soc_1, &archive_1),
    )
    .unwrap();
    let summary = check_summary(&scratch.config());
    for line in [
        "    takes every source; kinds graph_alerts, entra_signins\n",
        "    source \"alerts\": hostname graph-alerts-01\n",
        "    source \"signins\": hostname soc-signins\n",
        "    takes sources activity, alerts; kinds azure_activity, graph_alerts\n",
        "    source \"activity\": hostname azure-activity, app_name sc-azure_activity\n",
        "    source \"alerts\": hostname graph-alerts-01, app_name alerts\n",
    ] {
        assert!(
            summary.contains(line),
            "check summary lacks {line:?}:\n{summary}"
        );
    }

    write_phase(&scratch, 0);
    let mut child = spawn_run_logged(&scratch.config(), &log);
    archive.wait_for_lines_from(Some(&mut *child), 500, Duration::from_secs(30));
    signal(&child, "KILL");
    let _ = child.wait();
    assert!(
        archive.count_lines() < ACTIVITY + ALERTS,
        "the kill came after the stream"
    );
    let mut child = spawn_run_logged(&scratch.config(), &log);

    let p1_soc = &ids("al", 0..ALERTS) | &ids("si", 0..SIGNINS);
    let p1_archive = &ids("ev", 0..ACTIVITY) | &ids("al", 0..ALERTS);
    let soc_who_1 = |id: &str| match &id[..2] {
        "al" => ("graph-alerts-01", None),
        _ => ("soc-signins", None),
    };
    let archive_who_1 = |id: &str| match &id[..2] {
        "al" => ("graph-alerts-01", Some("alerts")),
        _ => ("azure-activity", Some("sc-azure_activity")),
    };
    use syslog_loose::Variant::{RFC3164, RFC5424};
    expect(&soc, &mut child, &p1_soc, RFC3164, soc_who_1, "soc");
    expect(
        &archive,
        &mut child,
        &p1_archive,
        RFC5424,
        archive_who_1,
        "archive",
    );

    // Reload with new routes: soc takes the Activity Log only, under "soc-<kind>"; archive
    // takes everything. Events written after the reload follow the new routes.
    let soc_2 = format!(
        "[[destination]]\nname = \"soc\"\naddress = \"{}\"\nsources = [\"activity\"]\nhostname = \"soc-{{kind}}\"",
        soc.address()
    );
    let archive_2 = format!(
        "[[destination]]\nname = \"archive\"\naddress = \"{}\"\nsyslog = \"rfc5424\"\nhostname = \"azure-{{source}}\"\napp_name = \"sc-{{kind}}\"",
        archive.address()
    );
    std::fs::write(
        scratch.config(),
        config(&scratch, metrics, &soc_2, &archive_2),
    )
    .unwrap();
    let logged = std::fs::read_to_string(&log).unwrap().len();
    signal(&child, "HUP");
    wait_for_log(&log, "Configuration reloaded.", logged);
    write_phase(&scratch, 1);

    let p2_soc = &p1_soc | &ids("ev", 10_000..10_000 + ACTIVITY);
    let p2_archive = &(&p1_archive | &ids("ev", 10_000..10_000 + ACTIVITY))
        | &(&ids("al", 10_000..10_000 + ALERTS) | &ids("si", 10_000..10_000 + SIGNINS));
    expect(
        &soc,
        &mut child,
        &p2_soc,
        RFC3164,
        |id| match (&id[..2], id[3..].starts_with('1')) {
            ("ev", true) => ("soc-azure_activity", None),
            _ => soc_who_1(id),
        },
        "soc",
    );
    expect(
        &archive,
        &mut child,
        &p2_archive,
        RFC5424,
        |id| match (&id[..2], id[3..].starts_with('1')) {
            ("si", true) => ("azure-signins", Some("sc-entra_signins")),
            _ => archive_who_1(id),
        },
        "archive",
    );
    // Events outside a route are counted, by destination and rule; after the restart soc
    // skipped at least the second phase's alerts and sign-ins, at most every Activity Log
    // event and those.
    let (_, text) = http_get(metrics, "/metrics").unwrap();
    let filtered = |d: &str| -> f64 {
        let prefix = format!(
            "siemcast_destination_events_filtered_total{{destination=\"{d}\",rule=\"route\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .parse()
            .unwrap()
    };
    let soc_skipped = filtered("soc");
    assert!(
        ((ALERTS + SIGNINS) as f64..=(2 * ACTIVITY + ALERTS + SIGNINS) as f64)
            .contains(&soc_skipped),
        "soc skipped {soc_skipped}"
    );
    assert!(filtered("archive") <= SIGNINS as f64);
    stop(&mut child);
    // A skipped event is handled, never dead-lettered.
    let dead = scratch.dir.path().join("state/dead-letter");
    let files: Vec<_> = std::fs::read_dir(&dead)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "dead-lettered: {files:?}");

    // Duplicates come only from what the kill left unacknowledged: at most a batch or two.
    for (name, rs, variant) in [("soc", &soc, RFC3164), ("archive", &archive, RFC5424)] {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (id, ..) in decode(&rs.lines(), variant) {
            *counts.entry(id).or_default() += 1;
        }
        let repeated = counts.values().filter(|n| **n > 1).count();
        assert!(
            repeated <= 1000,
            "{name}: {repeated} ids arrived more than once"
        );
        assert!(
            counts
                .iter()
                .filter(|(id, n)| **n > 1 && id[3..].starts_with('1'))
                .count()
                == 0,
            "{name}: ids of the second phase (no crash) arrived twice"
        );
    }
}
