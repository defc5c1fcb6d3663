//! Operator commands against real receivers and a real spool: `send-test`, `spool status`
//! (stopped and while the service runs), `spool forget-destination`, their `--help` examples,
//! and that a client secret never reaches logs or `check` output.

use crate::util;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use util::*;

fn siemcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(args)
        .env_remove("SIEMCAST_CONFIG")
        .output()
        .expect("siemcast runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn with_config(args: &[&str], scratch: &Scratch) -> Output {
    let config = scratch.config();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-c", config.to_str().unwrap()]);
    siemcast(&all)
}

/// Runs `siemcast run` until every event reached `rsyslog`, then stops it cleanly.
fn run_to_completion(scratch: &Scratch, rsyslog: &Rsyslog, events: usize) {
    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), events, Duration::from_secs(60));
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
}

#[test]
fn each_new_command_has_help_with_an_example() {
    for cmd in [
        &["send-test"][..],
        &["spool"],
        &["spool", "status"],
        &["spool", "forget-destination"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = siemcast(&args);
        assert!(out.status.success(), "{cmd:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Example:"), "`{cmd:?} --help`:\n{help}");
        assert!(
            help.contains(&format!("siemcast {}", cmd.join(" "))),
            "`{cmd:?} --help` example does not show the command:\n{help}"
        );
    }
    let top = text(&siemcast(&["--help"]).stdout);
    for cmd in ["send-test", "spool"] {
        assert!(top.contains(&format!("\n  {cmd} ")), "{top}");
    }
}

#[test]
fn send_test_delivers_one_marked_event_and_reports_it() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_config(&rsyslog.address(), "");
    let out = with_config(&["send-test"], &scratch);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "destination \"rsyslog\": OK, acknowledged by {}",
            rsyslog.address()
        )),
        "{stdout}"
    );
    let id = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("event id: "))
        .unwrap_or_else(|| panic!("no event id in {stdout}"))
        .to_owned();
    assert!(id.starts_with("siemcast-send-test-"), "{id}");
    let lines = rsyslog.wait_for_lines(1, Duration::from_secs(10));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(cef_value(line, "externalId"), Some(id.as_str()), "{line}");
    assert!(
        line.contains("|siemcast send-test|"),
        "the CEF name does not mark the test: {line}"
    );
    let msg = syslog_loose::parse_message(line, syslog_loose::Variant::RFC3164);
    assert_eq!(msg.hostname, Some("siemcast-test"), "{line}");
    // What it printed as sent is what arrived.
    assert!(
        stdout.contains(&format!("sent:     {line}")),
        "{stdout}\n{line}"
    );

    // --json, and --destination.
    let out = with_config(
        &["send-test", "--json", "--destination", "rsyslog"],
        &scratch,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["destination"], "rsyslog");
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["acknowledged"], true);
    assert_eq!(v[0]["kind"], "azure_activity");
    rsyslog.wait_for_lines(2, Duration::from_secs(10));
}

#[test]
fn send_test_reports_the_exact_failure_and_exits_1() {
    let port = free_port();
    let scratch = Scratch::new();
    scratch.write_config(&format!("127.0.0.1:{port}"), "");
    let out = with_config(&["send-test", "--timeout", "3"], &scratch);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "destination \"rsyslog\": FAILED: cannot connect to 127.0.0.1:{port}: Connection refused"
        )),
        "{stdout}"
    );
    let out = with_config(&["send-test", "--json"], &scratch);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["ok"], false);
    assert!(v[0]["error"]
        .as_str()
        .unwrap()
        .contains("Connection refused"));

    let out = with_config(&["send-test", "--destination", "nope"], &scratch);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("no destination named \"nope\" in the config; configured: rsyslog"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn spool_status_before_a_run_while_stopped_and_while_running() {
    let scratch = Scratch::new();
    let port = free_port();
    scratch.write_config(&format!("127.0.0.1:{port}"), "");
    let out = with_config(&["spool", "status"], &scratch);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("No spool at "),
        "{}",
        text(&out.stdout)
    );

    // Receiver down: every event stays queued.
    std::fs::write(scratch.input().join("a.ndjson"), activity_events(0..250)).unwrap();
    let mut child = spawn_run(&scratch.config());
    let spool_dir = scratch.dir.path().join("state/spool");
    wait_until(Duration::from_secs(20), "events to be spooled", || {
        std::fs::read_dir(&spool_dir).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 100_000))
        })
    });
    // While running with the metrics listener off: a clear refusal.
    let out = with_config(&["spool", "status"], &scratch);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is in use by a running siemcast")
            && stderr.contains("metrics listener is off"),
        "{stderr}"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

    let out = with_config(&["spool", "status", "--json"], &scratch);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["service_running"], false);
    assert_eq!(v["destinations"][0]["name"], "rsyslog");
    assert_eq!(v["destinations"][0]["queued_records"], 250);
    assert_eq!(v["destinations"][0]["configured"], true);
    assert!(v["destinations"][0]["queued_bytes"].as_u64().unwrap() > 0);
    assert!(v["destinations"][0]["oldest_age_seconds"]
        .as_f64()
        .is_some());
    let out = with_config(&["spool", "status"], &scratch);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("QUEUED EVENTS"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("rsyslog "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(row.split_whitespace().nth(1), Some("250"), "{row}");

    // While running with metrics on: the figures come from the service.
    let metrics = free_port();
    let config = std::fs::read_to_string(scratch.config()).unwrap().replace(
        "[metrics]\naddress = \"\"",
        &format!("[metrics]\naddress = \"127.0.0.1:{metrics}\""),
    );
    std::fs::write(scratch.config(), config).unwrap();
    let mut child = spawn_run(&scratch.config());
    wait_until(Duration::from_secs(20), "the metrics listener", || {
        http_get(metrics, "/healthz").is_ok()
    });
    let out = with_config(&["spool", "status", "--json"], &scratch);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["service_running"], true);
    assert_eq!(v["destinations"][0]["queued_records"], 250);
    let out = with_config(&["spool", "status"], &scratch);
    assert!(
        text(&out.stdout).contains("siemcast is running and holds the spool"),
        "{}",
        text(&out.stdout)
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn forget_destination_releases_a_removed_destination_only() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("a.ndjson"), activity_events(0..100)).unwrap();
    // Two destinations: "rsyslog" receives, "gone" points at a closed port and queues.
    scratch.write_config(&rsyslog.address(), "");
    let one = std::fs::read_to_string(scratch.config()).unwrap();
    let block = &one[one.find("[[destination]]").unwrap()..];
    let gone = block
        .replace("name = \"rsyslog\"", "name = \"gone\"")
        .replace(&rsyslog.address(), &format!("127.0.0.1:{}", free_port()));
    std::fs::write(scratch.config(), format!("{one}\n{gone}")).unwrap();
    run_to_completion(&scratch, &rsyslog, 100);

    // Still configured: refused.
    let out = with_config(&["spool", "forget-destination", "gone"], &scratch);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("destination \"gone\" is still configured"),
        "{}",
        text(&out.stderr)
    );
    // Removed from the config: status points it out, forget releases it.
    std::fs::write(scratch.config(), &one).unwrap();
    let out = with_config(&["spool", "status"], &scratch);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\"gone\" is not in the config")
            && stdout.contains("siemcast spool forget-destination gone"),
        "{stdout}"
    );
    let out = with_config(&["spool", "forget-destination", "gone", "--json"], &scratch);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["forgotten"], "gone");
    assert_eq!(v["queued_records"], 100);
    let names: Vec<&str> = v["spool"]["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rsyslog"]);
    assert!(!scratch
        .dir
        .path()
        .join("state/spool/cursor-gone.bin")
        .exists());

    let out = with_config(&["spool", "forget-destination", "gone"], &scratch);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no cursor for destination \"gone\"; it has: rsyslog"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_client_secret_never_appears_in_logs_or_check_output() {
    // Numeric and bracketed secrets too: the environment parser must not turn them into a
    // number or an array, and no error may echo them.
    for secret in ["Xq8~s3cr3t.VALUE-never-print", "8723465987234", "[s3cr3t"] {
        let rsyslog = Rsyslog::start_tcp();
        let scratch = Scratch::new();
        std::fs::write(scratch.input().join("a.ndjson"), activity_events(0..20)).unwrap();
        scratch.write_config(&rsyslog.address(), "");
        let run = |args: &[&str]| {
            let config = scratch.config();
            Command::new(env!("CARGO_BIN_EXE_siemcast"))
                .args(args)
                .arg("-c")
                .arg(&config)
                .env("SIEMCAST_AZURE__CLIENT_SECRET", secret)
                .env("SIEMCAST_AZURE__TENANT_ID", "tenant")
                .env("SIEMCAST_AZURE__CLIENT_ID", "client")
                .output()
                .unwrap()
        };
        let mut outputs = Vec::new();
        let ok = run(&["--log-level", "trace", "check"]);
        assert!(ok.status.success(), "{secret}: {}", text(&ok.stderr));
        outputs.push(ok);
        outputs.push(run(&["--log-level", "trace", "send-test"]));
        // An invalid config next to the secret.
        let good = std::fs::read_to_string(scratch.config()).unwrap();
        std::fs::write(
            scratch.config(),
            good.replace("transport = \"tcp\"", "transport = \"tpc\""),
        )
        .unwrap();
        let bad = run(&["check"]);
        assert_eq!(bad.status.code(), Some(1));
        outputs.push(bad);
        std::fs::write(scratch.config(), &good).unwrap();

        // The service, at the most verbose level, through start, delivery and stop.
        let log = scratch.dir.path().join("run.log");
        let mut child = Running::new(
            Command::new(env!("CARGO_BIN_EXE_siemcast"))
                .args(["--log-level", "trace", "run", "-c"])
                .arg(scratch.config())
                .env("SIEMCAST_AZURE__CLIENT_SECRET", secret)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(scratch.dir.path().join("run.out")).unwrap())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        rsyslog.wait_for_lines_from(Some(&mut *child), 21, Duration::from_secs(30));
        signal(&child, "TERM");
        assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

        let mut all = String::new();
        for o in &outputs {
            all.push_str(&text(&o.stdout));
            all.push_str(&text(&o.stderr));
        }
        all.push_str(&std::fs::read_to_string(&log).unwrap());
        all.push_str(&std::fs::read_to_string(scratch.dir.path().join("run.out")).unwrap());
        assert!(
            all.len() > 1000,
            "too little output to be a meaningful check"
        );
        assert!(!all.contains(secret), "secret {secret:?} printed:\n{all}");
        for line in rsyslog.lines() {
            assert!(!line.contains(secret), "secret sent to the SIEM: {line}");
        }
    }
}

/// Uncomments every setting of the example config: lines `#key = ...`, and whole blocks that
/// start with `#[[...]]` or `#[destination.tls]` up to the next blank line.
fn uncomment_all(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("#[") {
            in_block = true;
        }
        if line.trim().is_empty() {
            in_block = false;
        }
        let setting = line.strip_prefix('#').is_some_and(|rest| {
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            !key.is_empty() && rest[key.len()..].starts_with(" = ")
        });
        let block_line = in_block && line.starts_with('#') && !line.starts_with("# ");
        out.push(if setting || block_line {
            &line[1..]
        } else {
            line
        });
    }
    out.join("\n") + "\n"
}

#[test]
fn the_example_config_is_commented_and_every_option_it_lists_is_real() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/siemcast.toml");
    // As shipped (all commented): only "add a source and a destination".
    let out = siemcast(&["check", "-c", example.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no [[source]] is configured"), "{stderr}");
    assert!(
        stderr.contains("no [[destination]] is configured"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems"), "{stderr}");

    // With everything uncommented: every key is known and every value has the right shape
    // (what remains are facts of this machine, e.g. /usr/share/siemcast not installed).
    let scratch = Scratch::new();
    let all = uncomment_all(&std::fs::read_to_string(&example).unwrap());
    for key in [
        "state_dir",
        "address",
        "poll_grace",
        "max_bytes",
        "cloud",
        "tenant_id",
        "client_id",
        "client_secret_file",
        "certificate_file",
        "certificate_key_file",
        "assertion_algorithm",
        "managed_identity",
        "imds_endpoint",
        "arm_reads",
        "graph_alerts",
        "entra_reports",
        "o365",
        "login_endpoint",
        "management_endpoint",
        "graph_endpoint",
        "office_endpoint",
        "max_answer_bytes",
        "proxy",
        "proxy_credentials_file",
        "no_proxy",
        "name",
        "kind",
        "path",
        "source_kind",
        "interval",
        "batch_size",
        "subscriptions",
        "lookback",
        "start_at",
        "overlap",
        "settle_delay",
        "content_types",
        "bootstrap_servers",
        "topic",
        "group",
        "security",
        "connection_string_file",
        "failover_addresses",
        "ack_timeout",
        "transport",
        "framing",
        "syslog",
        "hostname",
        "app_name",
        "facility",
        "mappings",
        "output",
        "max_eps",
        "max_message_bytes",
        "ca_file",
        "server_name",
        "cert_file",
        "key_file",
        "pin_sha256",
        "url",
        "token_file",
        "index",
        "host",
        "source",
        "ack",
        "gzip",
        "batch_events",
        "batch_bytes",
        "max_in_flight",
    ] {
        assert!(
            all.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "the example does not list {key}"
        );
    }
    std::fs::write(scratch.config(), &all).unwrap();
    let out = with_config(&["check"], &scratch);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("problem"), "{stderr}");
    for bad in [
        "unknown key",
        "invalid TOML",
        "is not one of",
        "is not a duration",
        "invalid type",
    ] {
        assert!(!stderr.contains(bad), "{bad}:\n{stderr}");
    }
}
