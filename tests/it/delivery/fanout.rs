//! One spool feeding two SIEMs at once: ArcSight (CEF, rsyslog) and QRadar (LEEF 2.0,
//! syslog-ng), each with its own cursor, so one receiver's outage does not hold up the other.

use crate::util;

use std::collections::BTreeSet;
use std::time::Duration;

use util::*;

const EVENTS: usize = 5_000;

/// The value of LEEF 2.0 attribute `key` (delimiter `^`) in a line.
fn leef_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split('^')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn two_destinations_get_every_event_each_with_its_own_format_and_cursor() {
    // ArcSight's listener is down at first; QRadar must get everything meanwhile.
    let mut arcsight = Rsyslog::prepared(Listen::Tcp);
    let qradar = SyslogNg::start(NgListen::NetworkTcp);
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    let second = format!(
        "\n[[destination]]\nname = \"qradar\"\naddress = \"{}\"\ntransport = \"tcp\"\nhostname = \"siemcast-qradar\"\nmappings = \"{}\"\n",
        qradar.address(),
        shipped_mappings("qradar").display()
    );
    scratch.write_config(&arcsight.address(), &second);
    let mut child = spawn_run(&scratch.config());
    wait_until(
        Duration::from_secs(60),
        "QRadar to receive every event",
        || qradar.lines().len() >= EVENTS,
    );
    arcsight.restart(Listen::Tcp);
    wait_until(Duration::from_secs(60), "ArcSight to catch up", || {
        arcsight
            .lines()
            .iter()
            .filter_map(|l| cef_value(l, "externalId"))
            .collect::<BTreeSet<_>>()
            .len()
            == EVENTS
    });
    stop(&mut child);

    let leef = qradar.lines();
    assert_eq!(leef.len(), EVENTS, "QRadar got duplicates or extra lines");
    for (i, line) in leef.iter().enumerate() {
        assert!(
            line.contains("LEEF:2.0|Microsoft|Azure Activity Log|"),
            "{line}"
        );
        assert!(
            line.contains(" siemcast-qradar LEEF:2.0|"),
            "QRadar identifies the log source by hostname: {line}"
        );
        assert_eq!(
            leef_value(line, "externalId"),
            Some(format!("ev-{i:05}").as_str()),
            "order at {i}"
        );
    }
    let cef = arcsight.settled_lines();
    assert!(
        cef.iter().all(|l| l.contains("CEF:0|Microsoft|")),
        "ArcSight got something else than CEF"
    );
}
