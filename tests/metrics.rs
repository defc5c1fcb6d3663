//! `/metrics` and `/healthz` of a running `siemcast run`: the exposition parses strictly as
//! Prometheus text, its counters match what a real rsyslog receiver got and what the API
//! simulator served, and health turns 503 with the reason when the receiver goes away or a
//! source cannot poll (its client secret expired); debug logs show no secret and no token.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use siemcast::sources::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
use util::*;

const EVENTS: usize = 3000;

/// A sample: metric name and its labels, in order.
type Series = (String, Vec<(String, String)>);

/// Parses Prometheus text exposition format 0.0.4 strictly: every line is a comment, a
/// `# HELP`/`# TYPE` line or a sample; names and labels are well formed; each family has one
/// TYPE, given before its samples, and its samples are contiguous; no series repeats.
fn parse_exposition(text: &str) -> Result<BTreeMap<Series, f64>, String> {
    fn metric_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn label_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !metric_name(name) {
                        return Err(at("bad metric name"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("bad type"));
                    }
                    if types.insert(name.into(), kind.into()).is_some() {
                        return Err(at("second TYPE for a family"));
                    }
                    if finished.contains(name) || current.as_deref() == Some(name) {
                        return Err(at("TYPE after the family's samples"));
                    }
                }
                (Some("HELP"), Some(name), Some(_))
                    if !metric_name(name) || !helps.insert(name.into()) =>
                {
                    return Err(at("bad or repeated HELP"));
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => return Err(at("sample without a value")),
        };
        if !metric_name(name) {
            return Err(at("bad metric name"));
        }
        let mut labels = Vec::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .ok_or_else(|| at("open labels"))?;
                if body[start..].starts_with('}') {
                    end = start + 1;
                    break;
                }
                let eq = body[start..]
                    .find('=')
                    .ok_or_else(|| at("label without ="))?
                    + start;
                let lname = &body[start..eq];
                if !label_name(lname) {
                    return Err(at("bad label name"));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(at("label value not quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => return Err(at("bad escape in label value")),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err(at("unterminated label value")),
                    }
                }
                labels.push((lname.to_owned(), value));
                match chars.peek().map(|(_, c)| *c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => return Err(at("expected , or } after a label")),
                }
            }
            &body[end..]
        } else {
            rest
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value"))?
            .split(' ');
        let value = fields.next().ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| at("value is not a float"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp"))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text"));
        }
        let kind = types
            .get(name)
            .ok_or_else(|| at("sample before its TYPE"))?;
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("negative counter"));
        }
        if current.as_deref() != Some(name) {
            if finished.contains(name) {
                return Err(at("family samples are not contiguous"));
            }
            if let Some(prev) = current.replace(name.to_owned()) {
                finished.insert(prev);
            }
        }
        if samples.insert((name.to_owned(), labels), value).is_some() {
            return Err(at("series repeated"));
        }
    }
    Ok(samples)
}

fn value(samples: &BTreeMap<Series, f64>, name: &str, label: Option<(&str, &str)>) -> f64 {
    let labels: Vec<(String, String)> = label
        .map(|(k, v)| vec![(k.to_owned(), v.to_owned())])
        .unwrap_or_default();
    *samples
        .get(&(name.to_owned(), labels))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
}

#[test]
fn the_parser_rejects_what_prometheus_rejects() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{s=\"q\\\"\"} 1\n";
    assert!(parse_exposition(ok).is_ok());
    for bad in [
        "a_total 1\n",                                     // no TYPE
        "# TYPE a gauge\na{s=\"x} 1\n",                    // unterminated
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", // not contiguous
        "# TYPE a gauge\na{s=\"x\"} 1\na{s=\"x\"} 2\n",    // repeated
        "# TYPE a counter\na -1\n",                        // negative counter
        "# TYPE a gauge\na one\n",                         // not a float
        "# TYPE 1a gauge\n1a 1\n",                         // bad name
        "# TYPE a gauge\na 1",                             // no final newline
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn metrics_match_what_rsyslog_received_and_health_follows_the_receiver() {
    let mut rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config(&rsyslog.address(), "");
    let port = free_port();
    let config = std::fs::read_to_string(scratch.config()).unwrap().replace(
        "[metrics]\naddress = \"\"",
        &format!("[metrics]\naddress = \"127.0.0.1:{port}\""),
    );
    assert!(config.contains(&format!("127.0.0.1:{port}")));
    std::fs::write(scratch.config(), config).unwrap();

    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), EVENTS, Duration::from_secs(60));
    pause(Duration::from_millis(300));
    let received = rsyslog.lines().len();
    assert_eq!(received, EVENTS, "rsyslog got {} lines", lines.len());

    // Acknowledgements are collected a moment after the receiver wrote the lines.
    let start = Instant::now();
    let samples = loop {
        let (code, body) = http_get(port, "/metrics").expect("GET /metrics");
        assert_eq!(code, 200, "{body}");
        let samples = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let delivered = value(
            &samples,
            "siemcast_destination_events_delivered_total",
            Some(("destination", "rsyslog")),
        );
        let queued = value(
            &samples,
            "siemcast_spool_queued_events",
            Some(("destination", "rsyslog")),
        );
        if (delivered as usize == received && queued == 0.0)
            || start.elapsed() > Duration::from_secs(10)
        {
            break samples;
        }
        pause(Duration::from_millis(100));
    };
    let dest = Some(("destination", "rsyslog"));
    let src = Some(("source", "files"));
    assert_eq!(
        value(
            &samples,
            "siemcast_destination_events_delivered_total",
            dest
        ) as usize,
        received,
        "delivered counter vs lines rsyslog received"
    );
    assert_eq!(
        value(&samples, "siemcast_source_events_spooled_total", src) as usize,
        EVENTS
    );
    assert_eq!(
        value(&samples, "siemcast_source_events_rejected_total", src),
        0.0
    );
    for zero in [
        "siemcast_destination_events_resent_total",
        "siemcast_destination_events_dead_lettered_total",
        "siemcast_destination_events_truncated_total",
        "siemcast_destination_reconnects_total",
        "siemcast_spool_queued_events",
        "siemcast_spool_queued_bytes",
    ] {
        assert_eq!(value(&samples, zero, dest), 0.0, "{zero}");
    }
    assert_eq!(value(&samples, "siemcast_destination_connected", dest), 1.0);
    assert_eq!(
        value(&samples, "siemcast_spool_events", None) as usize,
        EVENTS
    );
    assert!(value(&samples, "siemcast_spool_bytes", None) > 0.0);
    assert_eq!(value(&samples, "siemcast_up", None), 1.0);

    assert_eq!(
        http_get(port, "/healthz").unwrap(),
        (200, "ok\n".to_owned())
    );
    assert_eq!(http_get(port, "/nothing").unwrap().0, 404);

    // The receiver goes away: health says so, with the destination's name.
    rsyslog.stop();
    let start = Instant::now();
    let body = loop {
        let (code, body) = http_get(port, "/healthz").unwrap();
        if code == 503 {
            break body;
        }
        assert_eq!(code, 200);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "/healthz stayed 200 with the receiver down"
        );
        pause(Duration::from_millis(100));
    };
    assert!(
        body.contains("destination \"rsyslog\" is not connected"),
        "{body}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let samples = parse_exposition(&metrics).unwrap();
    assert_eq!(value(&samples, "siemcast_destination_connected", dest), 0.0);

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
}

/// Counts the simulator's answers to API requests (not token requests) that match `status`.
fn answered(sim: &BackgroundSimulator, status: impl Fn(u16) -> bool) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.service != Service::Login && status(r.status))
        .count()
}

fn scrape(port: u16) -> BTreeMap<Series, f64> {
    let (code, body) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// `/healthz` until it answers `code`; returns the body.
fn health_until(port: u16, code: u16, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let (got, body) = http_get(port, "/healthz").expect("GET /healthz");
        if got == code {
            return body;
        }
        assert!(
            start.elapsed() < timeout,
            "/healthz stayed {got} for {timeout:?}, not {code}: {body}"
        );
        pause(Duration::from_millis(100));
    }
}

#[test]
fn api_metrics_match_the_simulator_and_health_names_a_source_that_cannot_poll() {
    let test_start = jiff::Timestamp::now().as_second() as f64;
    let mut cfg = SimConfig::around_now(Duration::from_secs(20), Duration::from_secs(2), 120);
    cfg.page_size = 25;
    cfg.token_lifetime = Duration::from_secs(4);
    cfg.faults = Faults {
        throttle_every: Some(4),
        retry_after_secs: 1,
        unavailable_every: Some(7),
        malformed_pages: 1,
        ..Faults::default()
    };
    let sim = BackgroundSimulator::start(cfg).unwrap();
    let records = sim.activity_records().len();
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    let port = free_port();
    let grace = Duration::from_secs(4);
    let metrics = format!(
        "address = \"127.0.0.1:{port}\"\npoll_grace = \"{}s\"",
        grace.as_secs()
    );
    let text = api_config(
        &sim,
        "activity",
        "azure_activity",
        &rsyslog.address(),
        &metrics,
        "",
    );
    std::fs::write(scratch.config(), text).unwrap();
    let log = scratch.dir.path().join("siemcast.log");
    let secret = sim.config().client_secret.clone();
    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            // Everything at debug, the HTTP client's own logs included: no secret, no token.
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .env("SIEMCAST_AZURE__CLIENT_SECRET", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    rsyslog.wait_for_lines_from(Some(&mut *child), records, Duration::from_secs(60));
    health_until(port, 200, Duration::from_secs(10));

    // The app's secret expires: tokens can no longer be renewed, polls fail, and once the last
    // good poll is older than interval + grace, /healthz names the source and the cause.
    sim.set_client_secret_expired(true);
    let body = health_until(port, 503, Duration::from_secs(30));
    assert!(
        body.starts_with("source \"activity\": last successful poll ")
            && body.contains(", interval 300ms: ")
            && body.contains("AADSTS7000222"),
        "{body}"
    );
    assert!(!body.contains("destination"), "{body}");

    // No API request goes out without a token now, so the simulator's log is final for them.
    let before = scrape(port);
    let login_refusals = sim
        .requests()
        .iter()
        .filter(|r| r.service == Service::Login && r.status == 401)
        .count();
    let samples = scrape(port);
    let src = Some(("source", "activity"));
    let get = |s: &BTreeMap<Series, f64>, name: &str| value(s, name, src) as usize;
    let requests = answered(&sim, |_| true);
    let throttled = answered(&sim, |s| s == 429 || s == 503);
    let errors = answered(&sim, |s| s >= 400 && s != 429 && s != 503);
    assert!(
        requests > 0 && throttled > 0,
        "{requests} requests, {throttled} throttled"
    );
    for s in [&before, &samples] {
        assert_eq!(get(s, "siemcast_source_api_requests_total"), requests);
        assert_eq!(get(s, "siemcast_source_api_throttled_total"), throttled);
        assert_eq!(get(s, "siemcast_source_api_errors_total"), errors);
        assert_eq!(
            get(s, "siemcast_source_api_malformed_answers_total"),
            sim.malformed_pages_served() as usize
        );
    }
    assert_eq!(sim.malformed_pages_served(), 1);
    let token_errors = |s| get(s, "siemcast_source_token_errors_total");
    assert!(
        token_errors(&before) <= login_refusals
            && login_refusals <= token_errors(&samples)
            && login_refusals > 0,
        "token errors {} / {} vs {login_refusals} refusals",
        token_errors(&before),
        token_errors(&samples)
    );
    let lines = rsyslog.lines().len();
    assert_eq!(lines, records);
    assert_eq!(
        get(&samples, "siemcast_source_events_spooled_total"),
        records
    );
    assert!(get(&samples, "siemcast_source_events_polled_total") >= records);
    assert_eq!(
        value(
            &samples,
            "siemcast_destination_events_delivered_total",
            Some(("destination", "rsyslog"))
        ) as usize,
        lines,
        "delivered counter vs lines rsyslog received"
    );
    let last = value(
        &samples,
        "siemcast_source_last_success_timestamp_seconds",
        src,
    );
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    assert!(
        last >= test_start && now - last > grace.as_secs_f64(),
        "last success {last}, test start {test_start}, now {now}"
    );

    // A renewed secret: the next poll succeeds and health recovers.
    sim.set_client_secret_expired(false);
    health_until(port, 200, Duration::from_secs(15));
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("AADSTS7000222"), "the cause is logged");
    assert!(
        !text.contains(&secret),
        "the client secret appears in the log"
    );
    let tokens = sim.issued_tokens();
    assert!(!tokens.is_empty());
    for token in tokens {
        assert!(!text.contains(&token), "an access token appears in the log");
    }
}
