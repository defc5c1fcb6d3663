//! Delivery to a real syslog-ng receiver (Debian's syslog-ng-core, unpacked beside rsyslog):
//! LF framing on `network()`, RFC 6587 octet counting on `syslog()`, and TLS.

use crate::util;

use std::time::Duration;

use util::*;

const EVENTS: usize = 10_000;

fn deliver(ng: &SyslogNg, transport: &str, framing: &str, syslog: &str, extra: &str) {
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config_for(&ng.address(), transport, framing, syslog, extra);
    let mut child = spawn_run(&scratch.config());
    wait_until(
        Duration::from_secs(120),
        "syslog-ng to receive every event",
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("siemcast exited with {status}");
            }
            ng.lines().len() >= EVENTS
        },
    );
    stop(&mut child);
    pause(Duration::from_millis(300));
    let lines = ng.lines();
    assert_eq!(
        lines.len(),
        EVENTS,
        "{transport}/{framing}: extra lines arrived"
    );
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.contains("CEF:0|Microsoft|Azure Activity Log|"),
            "{line}"
        );
        assert_eq!(
            cef_value(line, "externalId"),
            Some(format!("ev-{i:05}").as_str()),
            "order at {i}"
        );
    }
}

#[test]
fn syslog_ng_network_tcp_lf() {
    deliver(
        &SyslogNg::start(NgListen::NetworkTcp),
        "tcp",
        "lf",
        "rfc3164",
        "",
    );
}

#[test]
fn syslog_ng_syslog_tcp_octet_counting() {
    deliver(
        &SyslogNg::start(NgListen::SyslogTcp),
        "tcp",
        "octet-counting",
        "rfc5424",
        "",
    );
}

#[test]
fn syslog_ng_network_tls() {
    let certs = Certs::new();
    deliver(
        &SyslogNg::start(NgListen::NetworkTls(&certs)),
        "tls",
        "lf",
        "rfc3164",
        &tls_section(&certs),
    );
}
