//! `siemcast run` under a stand-in for systemd: notifications arrive on the `NOTIFY_SOCKET`
//! datagram socket (READY=1, STATUS=, WATCHDOG=1 at the `WATCHDOG_USEC` pace, RELOADING=1 then
//! READY=1 on SIGHUP, STOPPING=1 on SIGTERM, EXTEND_TIMEOUT_USEC= while a slow stop drains),
//! and the service exits 0.

use crate::util;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

/// Collects notification datagrams (each may hold several `KEY=VALUE` lines).
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &std::path::Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notifications {
            socket,
            seen: Vec::new(),
        }
    }

    /// Reads datagrams until `done(all lines so far)` holds; panics after `timeout`.
    fn until(&mut self, timeout: Duration, what: &str, done: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        while !done(&self.seen) {
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; got {:?}",
                self.seen
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.extend(text.lines().map(str::to_owned));
            }
        }
    }

    /// Reads whatever arrives during `d`.
    fn collect_for(&mut self, d: Duration) {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        while start.elapsed() < d {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.extend(text.lines().map(str::to_owned));
            }
        }
    }

    fn count(&self, line: &str) -> usize {
        self.seen.iter().filter(|l| *l == line).count()
    }
}

#[test]
fn run_tells_systemd_ready_status_watchdog_reloading_and_stopping() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    std::fs::write(scratch.input().join("a.ndjson"), activity_events(0..200)).unwrap();
    scratch.write_config(&rsyslog.address(), "");
    let socket_path = scratch.dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&socket_path);

    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "300000")
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    notes.until(Duration::from_secs(20), "READY=1", |s| {
        s.iter().any(|l| l == "READY=1")
    });
    // A pipeline is ready only once the spool and mappings are up; by then events flow.
    rsyslog.wait_for_lines_from(Some(&mut *child), 200, Duration::from_secs(30));
    notes.until(Duration::from_secs(10), "STATUS= and watchdog pings", |s| {
        s.iter().any(|l| l.starts_with("STATUS=Delivering "))
            && s.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3
    });
    let status = notes
        .seen
        .iter()
        .find(|l| l.starts_with("STATUS=Delivering "))
        .unwrap();
    assert!(
        status.contains("events/s") && status.contains("events queued"),
        "{status}"
    );
    assert_eq!(notes.count("STOPPING=1"), 0);

    // Reload: RELOADING=1 with the monotonic time, then READY=1 again.
    let readies = notes.count("READY=1");
    signal(&child, "HUP");
    notes.until(Duration::from_secs(20), "RELOADING=1 then READY=1", |s| {
        s.iter().any(|l| l == "RELOADING=1")
            && s.iter().filter(|l| *l == "READY=1").count() > readies
    });
    assert!(
        notes.seen.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 without MONOTONIC_USEC: {:?}",
        notes.seen
    );

    signal(&child, "TERM");
    notes.until(Duration::from_secs(15), "STOPPING=1", |s| {
        s.iter().any(|l| l == "STOPPING=1")
    });
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
}

#[test]
fn without_watchdog_usec_no_watchdog_pings_are_sent() {
    let scratch = Scratch::new();
    // A receiver that is down: the service still becomes ready (it retries in the background).
    scratch.write_config(&format!("127.0.0.1:{}", free_port()), "");
    let socket_path = scratch.dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&socket_path);
    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("WATCHDOG_USEC")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    notes.until(Duration::from_secs(20), "READY=1 and STATUS=", |s| {
        s.iter().any(|l| l == "READY=1") && s.iter().any(|l| l.starts_with("STATUS="))
    });
    let status = notes
        .seen
        .iter()
        .find(|l| l.starts_with("STATUS="))
        .unwrap();
    assert!(status.contains("0/1 destinations connected"), "{status}");
    notes.collect_for(Duration::from_millis(800));
    assert_eq!(notes.count("WATCHDOG=1"), 0, "{:?}", notes.seen);
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
}

#[test]
fn a_slow_drain_on_sigterm_asks_systemd_for_more_time() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..2000);
    // 100 events/s: a batch of several hundred takes seconds to send, and a stop lets the
    // batch in hand finish, so the drain outlasts the first extension.
    scratch.write_config(&rsyslog.address(), "max_eps = 100");
    let socket_path = scratch.dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&socket_path);
    let mut child = Running::new(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(scratch.config())
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("WATCHDOG_USEC")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    notes.until(Duration::from_secs(20), "READY=1", |s| {
        s.iter().any(|l| l == "READY=1")
    });
    rsyslog.wait_for_lines_from(Some(&mut *child), 50, Duration::from_secs(30));
    signal(&child, "TERM");
    let at_stop = rsyslog.count_lines();
    notes.until(
        Duration::from_secs(15),
        "STOPPING=1 then EXTEND_TIMEOUT_USEC=",
        |s| {
            let stopping = s.iter().position(|l| l == "STOPPING=1");
            let extend = s.iter().position(|l| l == "EXTEND_TIMEOUT_USEC=10000000");
            matches!((stopping, extend), (Some(a), Some(b)) if a < b)
        },
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "siemcast exited before asking for more time"
    );
    let status = wait_exit(&mut child, Duration::from_secs(40));
    assert!(status.success(), "siemcast exited with {status}");
    let after = rsyslog.count_lines();
    assert!(
        after > at_stop,
        "the drain delivered nothing: {at_stop} lines at SIGTERM, {after} after"
    );
    notes.collect_for(Duration::from_millis(200));
    let stopping = notes.seen.iter().position(|l| l == "STOPPING=1").unwrap();
    let after: Vec<&String> = notes.seen[stopping..]
        .iter()
        .filter(|l| l.starts_with("STATUS="))
        .collect();
    assert!(
        !after.is_empty()
            && after
                .iter()
                .all(|l| l.starts_with("STATUS=Stopping: finishing batches")),
        "status while stopping: {after:?}"
    );
}
