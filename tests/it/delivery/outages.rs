//! Nothing lost: a receiver that is down when siemcast starts, a receiver restart in the
//! middle of the stream, and siemcast killed with SIGKILL again and again. Every event id
//! must reach the real rsyslog receiver; duplicates are allowed only from batches that were
//! not yet acknowledged when something failed, and are counted.

use crate::util;

use std::collections::BTreeMap;
use std::time::Duration;

use util::*;

const EVENTS: usize = 10_000;

/// How often each externalId arrived, counting whole messages only.
fn count_ids(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines.iter().filter(|l| is_whole(l)) {
        let id = cef_value(line, "externalId").unwrap_or_else(|| panic!("no externalId: {line}"));
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Whether a received line is a whole message (the mapping's last key ends it). A sender
/// killed in the middle of a write leaves the start of one message, which rsyslog records
/// when the connection closes: a fragment, resent whole after the restart.
fn is_whole(line: &str) -> bool {
    line.ends_with("flexString2Label=Record ID")
}

/// Lines that are not whole messages.
fn fragments(lines: &[String]) -> usize {
    lines.iter().filter(|l| !is_whole(l)).count()
}

/// Asserts every id arrived; returns the number of duplicate deliveries.
fn assert_none_missing(counts: &BTreeMap<String, usize>) -> usize {
    let missing: Vec<String> = (0..EVENTS)
        .map(|i| format!("ev-{i:05}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first: {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(counts.len(), EVENTS, "unexpected ids arrived");
    counts.values().map(|n| n - 1).sum()
}

#[test]
fn receiver_down_at_start_gets_everything_once_it_is_up() {
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config(&rsyslog.address(), "");
    let mut child = spawn_run(&scratch.config());
    // siemcast spools everything and keeps retrying the connection.
    pause(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "siemcast gave up while the receiver was down"
    );
    rsyslog.restart(Listen::Tcp);
    rsyslog.wait_for_lines_from(Some(&mut *child), EVENTS, Duration::from_secs(90));
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    assert_eq!(
        assert_none_missing(&count_ids(&lines)) + fragments(&lines),
        0,
        "no failure happened after connecting, so no duplicates"
    );
}

#[test]
fn receiver_restart_mid_stream_loses_nothing() {
    let mut rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config(&rsyslog.address(), "max_eps = 4000");
    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), 2000, Duration::from_secs(30));
    // A maintenance restart: rsyslog stops cleanly, stays down a moment, comes back.
    rsyslog.stop_gracefully();
    let before = rsyslog.lines().len();
    assert!(
        before < EVENTS,
        "the restart came too late ({before} lines)"
    );
    // Down for 20 s, as in a maintenance window.
    pause(Duration::from_secs(20));
    rsyslog.restart(Listen::Tcp);
    rsyslog.wait_for_lines_from(Some(&mut *child), EVENTS, Duration::from_secs(90));
    wait_until(Duration::from_secs(30), "every id", || {
        count_ids(&rsyslog.lines()).len() == EVENTS
    });
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    let duplicates = assert_none_missing(&count_ids(&lines));
    eprintln!("receiver restart: {duplicates} duplicate deliveries");
    // The receiver may record the one message it was reading when it stopped, cut.
    assert!(fragments(&lines) <= 1, "{} broken lines", fragments(&lines));
}

#[test]
fn kill_9_at_random_points_five_times_loses_nothing() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config(&rsyslog.address(), "max_eps = 5000");
    let mut kills = 0;
    let mut target = 0;
    for _ in 0..5 {
        let mut child = spawn_run(&scratch.config());
        // A random point: somewhere in the next 300 to 1800 deliveries.
        target += rand::random_range(300..1800);
        rsyslog.wait_for_lines_from(Some(&mut *child), target, Duration::from_secs(60));
        signal(&child, "KILL");
        let _ = child.wait();
        kills += 1;
    }
    let mut child = spawn_run(&scratch.config());
    wait_until(Duration::from_secs(90), "every id after the kills", || {
        count_ids(&rsyslog.lines()).len() == EVENTS
    });
    stop(&mut child);
    pause(Duration::from_millis(300));
    let lines = rsyslog.lines();
    let duplicates = assert_none_missing(&count_ids(&lines));
    eprintln!("{kills} kills: {duplicates} duplicate deliveries");
    // At most one cut message per kill; no other line may be broken.
    assert!(
        fragments(&lines) <= kills,
        "{} fragments after {kills} kills",
        fragments(&lines)
    );
    // Only what was sent but not yet durably acknowledged can repeat: the batch in flight
    // (1000 records) plus ~50 ms of acknowledgements (250 at 5000/s), with room for a slow
    // machine.
    assert!(
        duplicates <= kills * 2000,
        "{duplicates} duplicates after {kills} kills"
    );
}

/// A listener that accepts connections and does not read them until told to; then it reads
/// everything its kernel buffered, so nothing it acknowledged is lost to the test.
struct Blackhole {
    port: u16,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Blackhole {
    fn start() -> Blackhole {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => a.lock().unwrap().push(stream),
                    Err(_) => pause(Duration::from_millis(10)),
                }
            }
        });
        Blackhole {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    /// Stops listening and reads every accepted connection to its end.
    fn drain(mut self) -> Vec<String> {
        use std::io::Read;
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let mut lines = Vec::new();
        for mut stream in self.accepted.lock().unwrap().drain(..) {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut data = Vec::new();
            let _ = stream.read_to_end(&mut data);
            lines.extend(String::from_utf8_lossy(&data).lines().map(str::to_owned));
        }
        lines
    }
}

#[test]
fn a_listener_that_stops_reading_is_noticed_and_memory_stays_bounded() {
    let blackhole = Blackhole::start();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config(
        &format!("127.0.0.1:{}", blackhole.port),
        "ack_timeout = \"2s\"",
    );
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    // The receive buffers fill, acknowledgements stop, and siemcast gives up on the connection.
    wait_until(Duration::from_secs(20), "the stall to be noticed", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("the listener has stopped reading")
    });
    wait_until(Duration::from_secs(20), "a reconnect", || {
        blackhole.connections() >= 2
    });
    let rss = rss_kib(child.id());
    assert!(rss < 100 * 1024, "siemcast uses {rss} KiB while stalled");
    // The stalled listener recovers as a real rsyslog on another port; the configured address is
    // switched over by a restart of siemcast.
    stop(&mut child);
    let mut lines = blackhole.drain();
    let rsyslog = Rsyslog::start_tcp();
    scratch.write_config(&rsyslog.address(), "");
    let mut child = spawn_run(&scratch.config());
    wait_until(Duration::from_secs(60), "the rest of the events", || {
        let mut all = lines.clone();
        all.extend(rsyslog.lines());
        count_ids(&all).len() == EVENTS
    });
    stop(&mut child);
    lines.extend(rsyslog.lines());
    let duplicates = assert_none_missing(&count_ids(&lines));
    eprintln!("stalled listener: {duplicates} duplicate deliveries");
}

#[test]
fn a_full_spool_pauses_the_source_and_loses_nothing() {
    let mut rsyslog = Rsyslog::prepared(Listen::Tcp);
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    scratch.write_config(&rsyslog.address(), "");
    // ~14 MB of events against a 4 MB spool.
    let config = std::fs::read_to_string(scratch.config()).unwrap();
    std::fs::write(
        scratch.config(),
        config.replace("[metrics]", "[spool]\nmax_bytes = 4194304\n\n[metrics]"),
    )
    .unwrap();
    let log = scratch.dir.path().join("siemcast.log");
    let mut child = spawn_run_logged(&scratch.config(), &log);
    wait_until(Duration::from_secs(20), "the source to pause", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Spool is full; source paused")
    });
    let spool_bytes: u64 = std::fs::read_dir(scratch.dir.path().join("state/spool"))
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        spool_bytes <= 4 * 1024 * 1024 + 64 * 1024,
        "spool grew to {spool_bytes} bytes"
    );
    rsyslog.restart(Listen::Tcp);
    rsyslog.wait_for_lines_from(Some(&mut *child), EVENTS, Duration::from_secs(90));
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    assert_eq!(assert_none_missing(&count_ids(&lines)), 0);
    assert_eq!(fragments(&lines), 0, "a message arrived broken");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("Spool has room again; source resumed"));
}

#[test]
fn a_dead_primary_fails_over_to_the_next_address() {
    let rsyslog = Rsyslog::start_tcp();
    let scratch = Scratch::new();
    scratch.write_events(0..EVENTS);
    let dead = format!("127.0.0.1:{}", free_port());
    scratch.write_config(
        &dead,
        &format!("failover_addresses = [\"{}\"]", rsyslog.address()),
    );
    let mut child = spawn_run(&scratch.config());
    let lines = rsyslog.wait_for_lines_from(Some(&mut *child), EVENTS, Duration::from_secs(60));
    stop(&mut child);
    assert_eq!(assert_none_missing(&count_ids(&lines)), 0);
    assert_eq!(fragments(&lines), 0, "a message arrived broken");
}
