//! `kill -9` of a process appending to a real on-disk spool, five times in a row: every batch
//! the child reported as appended is still there after each restart, in order, with its
//! checkpoint; the lock is released by the kernel; a consumer acks between rounds so segments
//! are reclaimed across restarts.
//!
//! The child is this same test binary, started with `SPOOL_KILL_CHILD_DIR` set.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use siemcast::spool::{Spool, SpoolOptions};

fn opts() -> SpoolOptions {
    SpoolOptions {
        max_bytes: 256 << 20,
        segment_bytes: 256 << 10,
        cursor_persist_interval: Duration::from_millis(20),
    }
}

fn event(batch: u64, i: u64) -> Vec<u8> {
    format!(
        "{{\"batch\":{batch},\"i\":{i},\"pad\":\"{}\"}}",
        "p".repeat(300)
    )
    .into_bytes()
}

/// The child: appends batches forever, printing `ok <batch> <last seq>` after each durable one.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("SPOOL_KILL_CHILD_DIR") else {
        return;
    };
    let spool = Spool::open(Path::new(&dir), opts()).expect("child: open spool");
    let mut batch: u64 = spool
        .checkpoint("src")
        .and_then(|c| String::from_utf8(c).ok()?.parse().ok())
        .map_or(0, |b: u64| b + 1);
    let mut out = std::io::stdout().lock();
    loop {
        let events: Vec<Vec<u8>> = (0..50).map(|i| event(batch, i)).collect();
        let refs: Vec<&[u8]> = events.iter().map(|e| e.as_slice()).collect();
        let last = spool
            .append_batch("src", &refs, batch.to_string().as_bytes())
            .expect("child: append");
        writeln!(out, "ok {batch} {last}").expect("child: stdout");
        out.flush().expect("child: flush");
        batch += 1;
    }
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spool");
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: Vec<(u64, u64)> = Vec::new(); // (batch, last seq) reported by children
    let mut delivered_upto = 0u64; // batches fully delivered to the consumer
    for round in 0..5u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "spool::kill::child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SPOOL_KILL_CHILD_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first, first_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut it = match line.strip_prefix("ok ") {
                    Some(rest) => rest.split(' '),
                    None => continue,
                };
                if let (Some(Ok(batch)), Some(Ok(seq))) =
                    (it.next().map(str::parse), it.next().map(str::parse))
                {
                    got.push((batch, seq));
                    let _ = first.send(());
                }
            }
            got
        });
        // The kill lands a while after the child's first acknowledged batch (a loaded machine
        // can take longer than the whole wait below just to start the child).
        let _ = first_seen.recv_timeout(Duration::from_secs(60));
        // A plain test thread, no async runtime here: blocking is what we want.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        assert!(!got.is_empty(), "round {round}: child appended nothing");
        eprintln!("round {round}: {} batches acknowledged", got.len());
        acknowledged.extend(got);

        // Restart: the lock is free, every acknowledged batch is there, in order.
        let spool = Spool::open(&dir, opts()).unwrap();
        let last_ok = acknowledged.last().unwrap().0;
        let ck: u64 = String::from_utf8(spool.checkpoint("src").unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            ck == last_ok || ck == last_ok + 1,
            "checkpoint {ck} vs last acknowledged batch {last_ok}"
        );
        let cursor = spool.open_cursor("siem").unwrap();
        let mut out = Vec::new();
        let mut next = cursor;
        loop {
            let before = out.len();
            next = spool.read(next, 500, usize::MAX, &mut out).unwrap();
            if out.len() == before {
                break;
            }
        }
        // Records from the cursor on: whole batches, consecutive, starting where delivery stopped.
        assert_eq!(out.len() % 50, 0, "round {round}: batches are atomic");
        let mut expect_batch = delivered_upto;
        for chunk in out.chunks(50) {
            for (i, r) in chunk.iter().enumerate() {
                assert_eq!(r.payload, event(expect_batch, i as u64), "round {round}");
            }
            expect_batch += 1;
        }
        assert!(
            expect_batch > last_ok,
            "round {round}: acknowledged batch {last_ok} missing"
        );
        // Deliver everything, persist the cursor, reclaim.
        spool.ack("siem", next).unwrap();
        spool.flush_cursors().unwrap();
        delivered_upto = expect_batch;
        let st = spool.stats();
        assert_eq!(st.quarantined_ranges, 0, "{st:?}");
        assert!(spool.status().segments <= 2, "{:?}", spool.status());
    }
}
