//! Every transport × framing × header combination delivers 100,000 events to a real rsyslog
//! receiver: each id exactly once and in order, each message whole.

use crate::util;

use std::time::Duration;

use util::*;

const EVENTS: usize = 100_000;

/// Runs siemcast with the given destination settings against `rsyslog` and checks the result.
fn deliver(
    rsyslog: &Rsyslog,
    transport: &str,
    framing: &str,
    syslog: &str,
    extra: &str,
    events: usize,
) {
    let scratch = Scratch::new();
    scratch.write_events(0..events);
    scratch.write_config_for(&rsyslog.address(), transport, framing, syslog, extra);
    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), events, Duration::from_secs(240));
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    assert_eq!(
        lines.len(),
        events,
        "{transport}/{framing}/{syslog}: extra or missing lines"
    );
    let header = match syslog {
        "rfc3164" => "<166>",
        "rfc5424" => "<166>1 ",
        _ => "CEF:0|",
    };
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(header),
            "{transport}/{framing}/{syslog}: bad start: {line}"
        );
        let id = cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        assert_eq!(
            id,
            format!("ev-{i:05}"),
            "{transport}/{framing}/{syslog}: out of order at line {i}"
        );
        assert!(
            line.ends_with("flexString2Label=Record ID"),
            "message cut or merged: {line}"
        );
    }
}

#[test]
fn tcp_lf_rfc3164() {
    deliver(
        &Rsyslog::start(Listen::Tcp),
        "tcp",
        "lf",
        "rfc3164",
        "",
        EVENTS,
    );
}

#[test]
fn tcp_octet_counting_rfc5424() {
    deliver(
        &Rsyslog::start(Listen::Tcp),
        "tcp",
        "octet-counting",
        "rfc5424",
        "",
        EVENTS,
    );
}

#[test]
fn tcp_lf_no_header() {
    deliver(
        &Rsyslog::start(Listen::Tcp),
        "tcp",
        "lf",
        "none",
        "",
        EVENTS,
    );
}

#[test]
fn tls_lf_rfc3164() {
    let certs = Certs::new();
    deliver(
        &Rsyslog::start(Listen::Tls(&certs)),
        "tls",
        "lf",
        "rfc3164",
        &tls_section(&certs),
        EVENTS,
    );
}

#[test]
fn tls_octet_counting_rfc5424() {
    let certs = Certs::new();
    deliver(
        &Rsyslog::start(Listen::Tls(&certs)),
        "tls",
        "octet-counting",
        "rfc5424",
        &tls_section(&certs),
        EVENTS,
    );
}

#[test]
fn udp_rfc3164_paced() {
    // UDP has no acknowledgement: paced so the receiver's buffer keeps up.
    deliver(
        &Rsyslog::start(Listen::Udp),
        "udp",
        "lf",
        "rfc3164",
        "max_eps = 20000",
        EVENTS,
    );
}
