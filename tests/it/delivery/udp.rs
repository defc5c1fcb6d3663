//! UDP delivery to a real rsyslog imudp listener: one datagram per message, paced, cut at the
//! configured size on a character boundary.

use crate::util;

use std::collections::BTreeSet;
use std::time::Duration;

use util::*;

#[test]
fn udp_delivers_one_datagram_per_event() {
    let rsyslog = Rsyslog::start(Listen::Udp);
    let scratch = Scratch::new();
    scratch.write_events(0..2000);
    scratch.write_config_for(&rsyslog.address(), "udp", "lf", "rfc3164", "max_eps = 2000");
    let mut child = spawn_run(&scratch.config());
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), 2000, Duration::from_secs(60));
    stop(&mut child);
    let ids: BTreeSet<&str> = lines
        .iter()
        .map(|l| cef_value(l, "externalId").unwrap())
        .collect();
    assert_eq!(ids.len(), 2000);
    assert_eq!(lines.len(), 2000);
}

#[test]
fn udp_messages_are_cut_to_max_message_bytes() {
    let rsyslog = Rsyslog::start(Listen::Udp);
    let scratch = Scratch::new();
    scratch.write_events(0..50);
    scratch.write_config_for(
        &rsyslog.address(),
        "udp",
        "lf",
        "rfc3164",
        "max_message_bytes = 600",
    );
    let mut child = spawn_run(&scratch.config());
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), 50, Duration::from_secs(30));
    stop(&mut child);
    for line in &lines {
        assert!(line.len() <= 600, "{} bytes: {line}", line.len());
        assert!(
            line.starts_with("<166>") && line.contains("CEF:0|Microsoft|"),
            "{line}"
        );
        assert!(
            !line.ends_with('\\'),
            "a cut escape was left dangling: {line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.len() > 550),
        "messages were not long enough to be cut"
    );
}
