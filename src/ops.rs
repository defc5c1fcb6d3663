//! Operator commands around a configured installation: `send-test` (one marked event through
//! each destination, confirmed by the receiver), `spool status` and `spool forget-destination`,
//! and the Azure part of `check`'s summary. Each prints a human report or `--json`, and says what to do when something is wrong.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
use crate::destinations::Destination;
use crate::spool::{Spool, SpoolError, SpoolOptions};

/// `siemcast send-test`: returns success only when every chosen destination acknowledged.
pub async fn send_test(
    config: &Config,
    only: Option<&str>,
    timeout: Duration,
    as_json: bool,
) -> ExitCode {
    let chosen: Vec<_> = config
        .destinations
        .iter()
        .filter(|d| only.is_none_or(|n| n == d.name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = config
            .destinations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        eprintln!(
            "error: no destination named \"{}\" in the config; configured: {}",
            only.unwrap_or_default(),
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    let mut failed = 0;
    for cfg in chosen {
        let outcome = match Destination::from_config(cfg, config) {
            Ok(dest) => dest.send_test(None, timeout).await,
            Err(e) => Err(e.to_string()),
        };
        let entry = match outcome {
            Ok(r) => {
                if !as_json {
                    let hec = cfg.transport == crate::config::Transport::Hec;
                    let how = if hec && r.acknowledged {
                        format!("indexed by {} (its ackId confirmed)", r.peer)
                    } else if hec {
                        format!(
                            "accepted by {} (200; the token has no indexer acknowledgement)",
                            r.peer
                        )
                    } else if r.acknowledged {
                        format!("acknowledged by {}", r.peer)
                    } else {
                        format!(
                            "sent to {} (UDP has no acknowledgement: look for it in the SIEM)",
                            r.peer
                        )
                    };
                    println!(
                        "destination \"{}\": OK, {how} in {} ms ({} {} bytes, {} mapping)",
                        cfg.name,
                        r.elapsed.as_millis(),
                        cfg.transport,
                        r.bytes,
                        r.kind
                    );
                    println!("  event id: {}", r.event_id);
                    println!("  sent:     {}", r.message);
                }
                json!({
                    "destination": cfg.name, "ok": true, "address": cfg.url.as_deref().unwrap_or(&cfg.address),
                    "transport": cfg.transport.as_str(), "peer": r.peer,
                    "acknowledged": r.acknowledged, "kind": r.kind, "event_id": r.event_id,
                    "message": r.message, "bytes": r.bytes,
                    "elapsed_ms": r.elapsed.as_millis() as u64,
                })
            }
            Err(error) => {
                failed += 1;
                if !as_json {
                    println!("destination \"{}\": FAILED: {error}", cfg.name);
                }
                json!({
                    "destination": cfg.name, "ok": false, "address": cfg.url.as_deref().unwrap_or(&cfg.address),
                    "transport": cfg.transport.as_str(), "error": error,
                })
            }
        };
        results.push(entry);
    }
    if as_json {
        println!("{}", Value::Array(results));
    } else if failed > 0 {
        println!(
            "{failed} of {} destination{} failed",
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        );
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// How the spool was reached.
enum Opened {
    /// Nobody held it: opened (and locked) here.
    Spool(Spool),
    /// The service holds it: its status, read from the service's metrics listener.
    Service(Value, String),
    /// There is no spool directory yet.
    Missing,
}

fn open(config: &Config) -> Result<Opened, String> {
    let dir = config.spool_dir();
    if !dir.exists() {
        return Ok(Opened::Missing);
    }
    let opts = SpoolOptions {
        max_bytes: config.spool.max_bytes,
        ..SpoolOptions::default()
    };
    match Spool::open(&dir, opts) {
        Ok(s) => Ok(Opened::Spool(s)),
        Err(SpoolError::Locked { .. }) => {
            let address = &config.metrics.address;
            if address.is_empty() {
                return Err(format!(
                    "the spool {} is in use by a running siemcast (the service?) and its metrics listener is off ([metrics] address = \"\"), so its status cannot be read; set [metrics] address, or stop the service",
                    dir.display()
                ));
            }
            let status = fetch_status(address).map_err(|e| {
                format!(
                    "the spool {} is in use by a running siemcast (the service?), and its status could not be read from its metrics listener at {address}: {e}",
                    dir.display()
                )
            })?;
            Ok(Opened::Service(status, address.clone()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `GET /spool` from the running service's metrics listener.
fn fetch_status(address: &str) -> Result<Value, String> {
    let mut addr: SocketAddr = address
        .parse()
        .map_err(|_| format!("\"{address}\" is not an IP:port"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /spool HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "it answered {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("its answer is not JSON: {e}"))
}

/// `siemcast spool status`.
pub fn spool_status(config: &Config, as_json: bool) -> ExitCode {
    let (mut status, origin) = match open(config) {
        Ok(Opened::Spool(s)) => (crate::metrics::status_json(&s.status()), "spool".to_owned()),
        Ok(Opened::Service(v, address)) => (v, format!("service:{address}")),
        Ok(Opened::Missing) => {
            let dir = config.spool_dir();
            if as_json {
                println!(
                    "{}",
                    json!({"dir": dir.display().to_string(), "exists": false, "destinations": []})
                );
            } else {
                println!(
                    "No spool at {} yet: siemcast has not run with this state_dir.",
                    dir.display()
                );
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service_running = origin.starts_with("service:");
    if let Some(dests) = status["destinations"].as_array_mut() {
        for d in dests {
            let name = d["name"].as_str().unwrap_or_default();
            let configured = config.destinations.iter().any(|c| c.name == name);
            d["configured"] = json!(configured);
        }
    }
    status["service_running"] = json!(service_running);
    status["exists"] = json!(true);
    if as_json {
        println!("{status}");
        return ExitCode::SUCCESS;
    }
    print_status(&status, &origin);
    ExitCode::SUCCESS
}

fn print_status(status: &Value, origin: &str) {
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "Spool {}: {} of {} used, {} segment{}, {} events retained",
        status["dir"].as_str().unwrap_or_default(),
        bytes(num(&status["total_bytes"])),
        bytes(num(&status["max_bytes"])),
        num(&status["segments"]),
        if num(&status["segments"]) == 1 {
            ""
        } else {
            "s"
        },
        num(&status["total_records"]),
    );
    if let Some(address) = origin.strip_prefix("service:") {
        println!("(siemcast is running and holds the spool; figures from its metrics listener at {address})");
    }
    let empty = Vec::new();
    let dests = status["destinations"].as_array().unwrap_or(&empty);
    if dests.is_empty() {
        println!("No destination has a cursor yet.");
        return;
    }
    let width = dests
        .iter()
        .filter_map(|d| d["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max("DESTINATION".len());
    println!(
        "{:<width$}  {:>14}  {:>12}  {:>12}",
        "DESTINATION", "QUEUED EVENTS", "QUEUED BYTES", "OLDEST"
    );
    let mut stale = Vec::new();
    for d in dests {
        let name = d["name"].as_str().unwrap_or_default();
        let age = d["oldest_age_seconds"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), age);
        println!(
            "{name:<width$}  {:>14}  {:>12}  {:>12}",
            num(&d["queued_records"]),
            bytes(num(&d["queued_bytes"])),
            age
        );
        if d["configured"] == json!(false) {
            stale.push(name.to_owned());
        }
    }
    for name in stale {
        println!(
            "note: \"{name}\" is not in the config but its cursor keeps its undelivered events on disk; release them with `siemcast spool forget-destination {name}`"
        );
    }
}

/// `siemcast spool forget-destination NAME`.
pub fn forget_destination(
    config: &Config,
    config_path: &Path,
    name: &str,
    as_json: bool,
) -> ExitCode {
    if config.destinations.iter().any(|d| d.name == name) {
        eprintln!(
            "error: destination \"{name}\" is still configured in {}; remove its [[destination]] first, otherwise it would start again from the oldest retained event",
            config_path.display()
        );
        return ExitCode::FAILURE;
    }
    let spool = match open(config) {
        Ok(Opened::Spool(s)) => s,
        Ok(Opened::Service(..)) => {
            eprintln!(
                "error: siemcast is running and holds the spool {}; a reload releases the cursors of destinations removed from the config (systemctl reload siemcast), or stop the service and run this again",
                config.spool_dir().display()
            );
            return ExitCode::FAILURE;
        }
        Ok(Opened::Missing) => {
            eprintln!(
                "error: there is no spool at {} (siemcast has not run with this state_dir)",
                config.spool_dir().display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let before = spool.status();
    let Some(entry) = before.destinations.iter().find(|d| d.name == name) else {
        let known: Vec<&str> = before
            .destinations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        eprintln!(
            "error: the spool {} has no cursor for destination \"{name}\"; it has: {}",
            before.dir.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return ExitCode::FAILURE;
    };
    if let Err(e) = spool.forget_destination(name) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let after = spool.status();
    let freed = before.total_bytes.saturating_sub(after.total_bytes);
    if as_json {
        println!(
            "{}",
            json!({
                "forgotten": name,
                "queued_records": entry.queued_records,
                "freed_bytes": freed,
                "spool": crate::metrics::status_json(&after),
            })
        );
    } else {
        println!(
            "Released destination \"{name}\": its {} undelivered events are no longer kept for it; {} freed on disk now ({} segment{} left).",
            entry.queued_records,
            bytes(freed),
            after.segments,
            if after.segments == 1 { "" } else { "s" }
        );
    }
    ExitCode::SUCCESS
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn age(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `siemcast discover`: for each source whose subscriptions are discovered (or only `only`),
/// the subscriptions it would collect now, and those it skips with the reason. `Err` names
/// what failed in words (an unknown source, one that does not discover, a failed listing);
/// what could be listed is in the text either way.
pub async fn discover(config: &Config, only: Option<&str>) -> (String, Result<(), String>) {
    use crate::sources::Source;
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut errors = Vec::new();
    let names = || {
        config
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<_> = config
        .sources
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
        .collect();
    if let (Some(name), true) = (only, chosen.is_empty()) {
        let e = format!(
            "no source named \"{name}\" in the configuration; its sources are: {}",
            names()
        );
        return (out, Err(e));
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut any = false;
    for cfg in chosen {
        let source = match Source::from_config(cfg, config) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let Some((spec, client, endpoints)) = source.discovery() else {
            if only.is_some() {
                errors.push(format!("source \"{}\" does not discover its subscriptions; discover applies to sources with subscriptions = [\"*\"] or management_groups", cfg.name));
            }
            continue;
        };
        any = true;
        let kind = cfg.kind.map(|k| k.as_str()).unwrap_or("?");
        let _ = writeln!(out, "source \"{}\" ({kind}): {}", cfg.name, spec.describe());
        match crate::sources::discovery::discover(client, endpoints, spec, &cancel).await {
            Ok(inv) => {
                for f in &inv.subscriptions {
                    let verdict = match &f.skipped {
                        None => "collect".to_owned(),
                        Some(why) => format!("skip: {why}"),
                    };
                    let _ = writeln!(
                        out,
                        "  {}  {}  {}  {verdict}",
                        f.id,
                        f.state.as_deref().unwrap_or("-"),
                        f.name.as_deref().unwrap_or("-"),
                    );
                }
                let n = inv.collected().len();
                let _ = writeln!(
                    out,
                    "  {n} subscription{} collected, {} skipped",
                    if n == 1 { "" } else { "s" },
                    inv.subscriptions.len() - n
                );
            }
            Err(e) => {
                let _ = writeln!(out, "  discovery failed: {e}");
                errors.push(format!(
                    "source \"{}\": subscription discovery failed: {e}",
                    cfg.name
                ));
            }
        }
    }
    if !any && errors.is_empty() {
        errors.push(format!("no source discovers its subscriptions (subscriptions = [\"*\"] or management_groups); the sources are: {}", names()));
    }
    let result = if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    };
    (out, result)
}

/// For `siemcast check`, when a source reads a Microsoft API: per tenant in use, how the
/// pollers authenticate (never a secret), the proxy they go through (never its credentials),
/// the request rates per API family and the largest answer read; then a note when one secret
/// file serves app registrations with different client ids.
pub fn print_azure_summary(config: &Config) {
    use crate::config::SourceKind;
    let used: std::collections::BTreeSet<&str> = config
        .sources
        .iter()
        .filter(|s| s.kind.is_some_and(SourceKind::reads_azure_api))
        .map(|s| s.tenant_name())
        .collect();
    if used.is_empty() {
        return;
    }
    let tenants: Vec<_> = config
        .azure
        .all_tenants(true)
        .into_iter()
        .filter(|(name, _)| used.contains(name))
        .collect();
    let several = !config.azure.tenants.is_empty();
    for (name, azure) in &tenants {
        let indent = if several {
            let sources: Vec<&str> = config
                .sources
                .iter()
                .filter(|s| s.kind.is_some_and(SourceKind::reads_azure_api))
                .filter(|s| s.tenant_name() == *name)
                .map(|s| s.name.as_str())
                .collect();
            println!(
                "  tenant \"{name}\" ({}): sources {}",
                azure.tenant_id.as_deref().unwrap_or("no tenant_id"),
                sources.join(", ")
            );
            "    "
        } else {
            "  "
        };
        print_tenant_summary(config, azure, indent);
    }
    for note in shared_secret_notes(config, &tenants) {
        println!("  note: {note}");
    }
}

/// One tenant's lines of [`print_azure_summary`], each starting with `indent`.
fn print_tenant_summary(config: &Config, azure: &crate::config::AzureConfig, indent: &str) {
    use crate::sources::azure::auth::{AuthMethod, Credentials};
    use crate::sources::azure::limits::{describe, ApiFamily};
    match Credentials::from_config(azure, |p| config.resolve(p)) {
        Ok(c) => match c.method {
            AuthMethod::Secret(_) => {
                println!("{indent}azure: client secret of app {}", c.client_id)
            }
            AuthMethod::Certificate(cert) => println!(
                "{indent}azure: certificate of app {}, x5t#S256 {}, {} assertions",
                c.client_id,
                cert.thumbprint(),
                cert.algorithm()
            ),
            AuthMethod::ManagedIdentity { imds, client_id } => println!(
                "{indent}azure: managed identity ({}) from {imds}",
                client_id.map_or("system-assigned".to_owned(), |id| format!(
                    "user-assigned {id}"
                ))
            ),
        },
        Err(e) => println!("{indent}azure: {e}"),
    }
    match azure.proxy_route(|p| config.resolve(p)) {
        Ok(route) => println!("{indent}proxy: {}", route.describe()),
        Err(errors) => {
            for e in errors {
                println!("{indent}proxy: {e}");
            }
        }
    }
    if azure.managed_identity {
        println!(
            "{indent}managed identity: IMDS is always reached directly, never through a proxy"
        );
    }
    for family in ApiFamily::ALL {
        println!(
            "{indent}rate limit {}: {}",
            family.key(),
            describe(family.rate(&azure.rate_limits))
        );
    }
    let max = azure.max_answer_bytes();
    println!(
        "{indent}largest API answer read (max_answer_bytes): {max} bytes ({:.1} MiB)",
        max as f64 / f64::from(1 << 20)
    );
}

/// One note per secret file that tenants with different client ids read: allowed (a file may
/// hold what two app registrations share), but more likely a copy-paste slip.
fn shared_secret_notes(
    config: &Config,
    tenants: &[(&str, std::borrow::Cow<'_, crate::config::AzureConfig>)],
) -> Vec<String> {
    let mut by_file: std::collections::BTreeMap<std::path::PathBuf, Vec<(&str, &str)>> =
        Default::default();
    for (name, azure) in tenants {
        if let (Some(file), Some(client)) = (&azure.client_secret_file, &azure.client_id) {
            by_file
                .entry(config.resolve(file))
                .or_default()
                .push((name, client));
        }
    }
    by_file
        .into_iter()
        .filter(|(_, users)| users.iter().any(|(_, c)| *c != users[0].1))
        .map(|(file, users)| {
            let who: Vec<String> = users
                .iter()
                .map(|(n, c)| format!("\"{n}\" (client_id {c})"))
                .collect();
            format!(
                "client_secret_file {} is read by tenants with different client ids: {}; one secret belongs to one app registration, check that this is meant",
                file.display(),
                who.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_read_for_two_client_ids_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s\n").unwrap();
        let text = r#"
[azure]
client_id = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
client_secret_file = "secret"
[azure.tenants.a]
tenant_id = "7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0"
[azure.tenants.b]
tenant_id = "8e4f3b2c-1d0a-4f9e-b8c7-d6e5f4a3b2c1"
client_id = "3d4e5f60-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
client_secret_file = "secret"
[azure.tenants.c]
tenant_id = "9e4f3b2c-1d0a-4f9e-b8c7-d6e5f4a3b2c1"
[[source]]
name = "alerts-a"
kind = "graph_alerts"
tenant = "a"
[[destination]]
name = "d"
address = "127.0.0.1:514"
output = "json"
"#;
        let path = dir.path().join("siemcast.toml");
        let config =
            crate::config::Config::from_toml(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let tenants = config.azure.all_tenants(false);
        let notes = shared_secret_notes(&config, &tenants);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("\"a\" (client_id 6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b), \"b\" (client_id 3d4e5f60-7a8b-4c9d-8e0f-1a2b3c4d5e6f), \"c\""),
            "{notes:?}"
        );
        // The same app in every tenant: nothing to note.
        let same = &tenants[..1];
        assert!(shared_secret_notes(&config, same).is_empty());
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
        assert_eq!(age(5.2), "5s");
        assert_eq!(age(303.0), "5m 3s");
        assert_eq!(age(7300.0), "2h 1m");
        assert_eq!(age(90000.0), "1d 1h");
    }
}
