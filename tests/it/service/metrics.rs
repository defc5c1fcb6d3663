//! `/metrics` and `/healthz` of a running `siemcast run`: the exposition parses strictly as
//! Prometheus text, its counters match what a real rsyslog receiver got and what the API
//! simulator served, and health turns 503 with the reason when the receiver goes away or a
//! source cannot poll (its client secret expired); debug logs show no secret and no token.
//! A flood of idle and slowloris connections neither starves the listener nor outlives its
//! header timeout.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use siemcast::simulator::{BackgroundSimulator, Faults, Service, SimConfig};
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
    value_of(samples, name, label.as_slice())
}

/// The sample of `name` with exactly these labels.
fn value_of(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    *samples
        .get(&(name.to_owned(), key))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
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
    // A Microsoft API source's series carry its tenant (`default`: [azure]).
    let src: &[(&str, &str)] = &[("source", "activity"), ("tenant", "default")];
    let get = |s: &BTreeMap<Series, f64>, name: &str| value_of(s, name, src) as usize;
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
    let last = value_of(
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

/// The header timeout of the metrics listener (src/metrics.rs, documented in the README): a
/// connection that has not sent a whole request head this long after it opened, or after its
/// last answer, is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Raises this process's soft open-files limit to `want` (the flood test holds more than
/// 1,050 sockets; the usual soft limit is 1,024).
fn raise_open_files(want: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    if limit.current.is_none_or(|c| c >= want) {
        return;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= want,
        "this test holds {want} sockets but the hard open-files limit is {hard}; raise it (ulimit -Hn)"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        },
    )
    .expect("raise the soft open-files limit");
}

/// One `GET path` on a fresh connection that must be answered whole within `limit`:
/// (status code, body), or what went wrong and after how long.
fn get_within(port: u16, path: &str, limit: Duration) -> Result<(u16, String), String> {
    use std::io::{Read as _, Write as _};
    let start = Instant::now();
    let late = |what: String| format!("GET {path}: {what} after {:?}", start.elapsed());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| late(e.to_string()))?;
    s.set_read_timeout(Some(limit)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| late(e.to_string()))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| late(format!("{e} (read so far: {response:?})")))?;
    if start.elapsed() > limit {
        return Err(late("answered too late".into()));
    }
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| late(format!("no header end in {response:?}")))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| late(format!("bad status line in {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// Whether the server has given up on `s`: end of stream, a reset, or any answer (these
/// clients never finish a request, so an answer can only be an error before the close).
fn ended_by_server(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let ended = match s.peek(&mut byte) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    ended
}

/// A slowloris client on `s`: sends a request head one byte every 200 ms and never ends it.
/// Returns how long the connection lasted once the server ends it; `None` at `stop` or after
/// `limit`.
fn trickle(s: &mut TcpStream, stop: &AtomicBool, limit: Duration) -> Option<Duration> {
    use std::io::{Read as _, Write as _};
    const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 512];
    for i in 0.. {
        if stop.load(Ordering::Relaxed) || start.elapsed() > limit {
            return None;
        }
        let byte = HEAD.get(i).copied().unwrap_or(b'a');
        if s.write_all(&[byte]).is_err() {
            return Some(start.elapsed());
        }
        match s.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // End of stream, a reset, or an error answer: the server ended it.
            _ => return Some(start.elapsed()),
        }
    }
    unreachable!()
}

/// Blocks until the server ends `s`; how long that took from `since`, or `None` after `limit`.
fn wait_ended(s: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    use std::io::Read as _;
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        _ => Some(since.elapsed()),
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_connection_flood_does_not_starve_metrics_or_healthz() {
    const IDLE: usize = 1000;
    const SLOWLORIS: usize = 50;
    raise_open_files(4096);
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..10);
    scratch.write_config(&rsyslog.address(), "");
    let port = free_port();
    let config = std::fs::read_to_string(scratch.config()).unwrap().replace(
        "[metrics]\naddress = \"\"",
        &format!("[metrics]\naddress = \"127.0.0.1:{port}\""),
    );
    std::fs::write(scratch.config(), config).unwrap();
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    rsyslog.wait_for_lines_from(Some(&mut *child), 10, Duration::from_secs(60));
    health_until(port, 200, Duration::from_secs(10));
    let pid = child.id();
    let fds_before = open_fds(pid);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // 50 slowloris clients, each connecting again whenever the server drops it, as the tool
    // does; then 1,000 connections that never send a byte.
    let stop = Arc::new(AtomicBool::new(false));
    let slowloris: Vec<_> = (0..SLOWLORIS)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut dropped = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        Ok(mut s) => {
                            if trickle(&mut s, &stop, Duration::from_secs(120)).is_some() {
                                dropped += 1;
                            }
                        }
                        Err(_) => pause(Duration::from_millis(200)),
                    }
                }
                dropped
            })
        })
        .collect();
    pause(Duration::from_millis(500));
    let flood_start = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    let mut refused = 0;
    for _ in 0..IDLE {
        // A listener that stops accepting leaves connects to time out one by one: bounded.
        if flood_start.elapsed() > Duration::from_secs(20) {
            refused += 1;
            continue;
        }
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => idle.push(s),
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "{} idle connections opened in {:?} ({refused} not accepted by the kernel within 1 s, or not tried after 20 s)",
        idle.len(),
        flood_start.elapsed()
    );

    // While they are all held open, fresh requests are answered at once.
    let limit = Duration::from_secs(2);
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let health = get_within(port, "/healthz", limit);
        assert_eq!(health, Ok((200, "ok\n".to_owned())), "under the flood");
        let (code, body) = get_within(port, "/metrics", limit).expect("/metrics under the flood");
        assert_eq!(code, 200, "{body}");
        let samples = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        assert_eq!(value(&samples, "siemcast_up", None), 1.0);
        slowest = slowest.max(t.elapsed());
        pause(Duration::from_millis(300));
    }
    let fds = open_fds(pid);
    let ended = idle.iter().filter(|s| ended_by_server(s)).count();
    eprintln!(
        "under the flood: slowest /healthz + /metrics pair {slowest:?}; siemcast has {fds} open \
         descriptors ({fds_before} before), RSS {} KiB; it closed {ended} of the {} idle connections",
        rss_kib(pid),
        idle.len()
    );
    assert!(
        fds < fds_before + 100,
        "siemcast holds {fds} descriptors under the flood ({fds_before} before)"
    );
    stop.store(true, Ordering::Relaxed);
    let dropped: usize = slowloris.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!("slowloris connections dropped by the server: {dropped}");
    drop(idle);
    pause(Duration::from_millis(300));

    // Alone, a slowloris client, a silent connection and a keep-alive connection idle after its
    // answer are each closed after the header timeout, not before.
    let (early, late) = (
        HEADER_TIMEOUT - Duration::from_millis(500),
        HEADER_TIMEOUT + Duration::from_secs(3),
    );
    let give_up = HEADER_TIMEOUT * 2;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        trickle(&mut s, &AtomicBool::new(false), give_up)
    });
    let silent = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        wait_ended(&mut s, Instant::now(), give_up)
    });
    let kept = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"\r\n\r\nok\n") {
            let n = s.read(&mut buf).expect("the keep-alive answer");
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        wait_ended(&mut s, Instant::now(), give_up)
    });
    for (what, t) in [
        ("slowloris", slow),
        ("silent", silent),
        ("keep-alive idle", kept),
    ] {
        let held = t.join().unwrap();
        eprintln!("{what} connection closed by the server after {held:?}");
        let held = held.unwrap_or_else(|| panic!("the {what} connection was never closed"));
        assert!(
            early <= held && held <= late,
            "the {what} connection was closed after {held:?}, expected about {HEADER_TIMEOUT:?}"
        );
    }

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Metrics listener is at its connection limit"))
        .collect();
    eprintln!("{warnings:#?}");
    assert_eq!(warnings.len(), 1, "one warning per minute at most:\n{text}");
}
