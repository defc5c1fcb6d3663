//! The authentication options through the real binary: `siemcast check` loads a certificate,
//! shows its thumbprint and the request rates in force, and points at the bad key in a bad
//! setup; a managed identity (IMDS played by the simulator) carries a replay to rsyslog.

use crate::util;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use siemcast::simulator::{BackgroundSimulator, Service, SimConfig};
use util::*;

/// `openssl req` into `NAME.crt` / `NAME.key`; returns (cert, key) paths.
fn mint(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=siemcast-auth-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl req failed");
    (crt, key)
}

fn siemcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(args)
        .env_remove("SIEMCAST_AZURE__CLIENT_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn config(azure: &str, address: &str, management: &str) -> String {
    format!(
        r#"state_dir = "state"
[metrics]
address = ""
[azure]
tenant_id = "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e"
{azure}
management_endpoint = "{management}"
[azure.rate_limits]
graph_alerts = "100/1m"

[[source]]
name = "activity"
kind = "azure_activity"
subscriptions = ["5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11"]

[[destination]]
name = "rsyslog"
address = "{address}"
hostname = "siemcast-test"
mappings = "{mappings}"
"#,
        mappings = shipped_mappings("arcsight").display()
    )
}

#[test]
fn check_shows_the_certificate_and_rates_and_explains_a_mismatched_key() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let (crt, key) = mint(dir, "app");
    let (_, other_key) = mint(dir, "other");
    let cert_lines = format!(
        "client_id = \"6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b\"\ncertificate_file = \"{}\"\ncertificate_key_file = \"{}\"",
        crt.display(),
        key.display()
    );
    std::fs::write(
        scratch.config(),
        config(&cert_lines, "127.0.0.1:514", "https://management.azure.com"),
    )
    .unwrap();
    let out = siemcast(&["check", "-c", scratch.config().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The thumbprint as Entra shows it (base64url SHA-256 of the DER certificate).
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&crt)
        .output()
        .unwrap()
        .stdout;
    let thumb = siemcast::sources::azure::assertion::thumbprint_s256(&der);
    assert!(
        stdout.contains(&format!("x5t#S256 {thumb}, PS256 assertions")),
        "{stdout}"
    );
    assert!(
        stdout.contains("rate limit entra_reports: 5 per 10s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rate limit arm_reads: 250 per 10s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rate limit graph_alerts: 100 per 1m"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");

    // Another certificate's key: the line of certificate_key_file is named.
    let bad = cert_lines.replace(key.to_str().unwrap(), other_key.to_str().unwrap());
    std::fs::write(
        scratch.config(),
        config(&bad, "127.0.0.1:514", "https://management.azure.com"),
    )
    .unwrap();
    let out = siemcast(&["check", "-c", scratch.config().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = format!("{}:8:", scratch.config().display());
    assert!(stderr.contains(&line), "{stderr}");
    assert!(
        stderr.contains("does not match certificate_file"),
        "{stderr}"
    );

    // Two ways at once are refused; an IMDS override on a non-loopback host too.
    let both =
        format!("{cert_lines}\nmanaged_identity = true\nimds_endpoint = \"http://10.0.0.1\"");
    std::fs::write(
        scratch.config(),
        config(&both, "127.0.0.1:514", "https://management.azure.com"),
    )
    .unwrap();
    let out = siemcast(&["check", "-c", scratch.config().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("choose one way to authenticate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("imds_endpoint \"http://10.0.0.1\" must be"),
        "{stderr}"
    );
}

#[test]
fn a_managed_identity_carries_a_replay_to_rsyslog() {
    let sim = BackgroundSimulator::start(SimConfig::around_now(
        Duration::from_secs(3 * 3600),
        Duration::ZERO,
        120,
    ))
    .unwrap();
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let azure = format!(
        "managed_identity = true\nclient_id = \"{}\"\nimds_endpoint = \"{}\"\nlogin_endpoint = \"{}\"",
        sim.config().user_assigned_client_id,
        sim.endpoint(Service::Imds),
        sim.endpoint(Service::Login),
    );
    std::fs::write(
        scratch.config(),
        config(
            &azure,
            &rsyslog.address(),
            &sim.endpoint(Service::Management),
        ),
    )
    .unwrap();
    let out = siemcast(&["check", "-c", scratch.config().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("managed identity (user-assigned"),
        "{stdout}"
    );

    let out = siemcast(&[
        "replay",
        "-c",
        scratch.config().to_str().unwrap(),
        "--source",
        "activity",
        "--from",
        "2h",
        "--to",
        "1h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = jiff::Timestamp::now().as_millisecond();
    let expected = sim
        .activity_records()
        .iter()
        .filter(|r| {
            let t = siemcast::event::parse_time_ms(r["eventTimestamp"].as_str().unwrap()).unwrap();
            // The binary's "2h" and "1h" were taken a moment earlier than `now`.
            t >= now - 2 * 3_600_000 + 60_000 && t <= now - 3_600_000 - 60_000
        })
        .count();
    let lines = rsyslog.lines();
    assert!(
        lines.len() >= expected && lines.len() <= expected + 4,
        "{} lines, about {expected} expected",
        lines.len()
    );
    let log = sim.requests();
    assert!(log
        .iter()
        .any(|r| r.service == Service::Imds && r.status == 200));
    assert!(
        log.iter().all(|r| r.service != Service::Login),
        "no client-credentials request"
    );
}
