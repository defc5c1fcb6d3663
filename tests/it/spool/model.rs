//! Model-based tests of the spool: random appends, reads, acks, cursor flushes, I/O faults,
//! crashes (with writes torn at any byte) and restarts, checked against a plain in-memory model.
//!
//! Invariant checked after every step: each destination reads exactly the model's events from
//! its position (so every batch whose append returned `Ok` is still readable or was acked, with
//! no gaps), a restart resumes at the last flushed cursor (duplicates = acked since then), and
//! the latest checkpoint of every source is the one of its last acknowledged batch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use siemcast::spool::{FaultError, FaultOp, MemStorage, Spool, SpoolError, SpoolOptions};

const DESTS: [&str; 2] = ["arcsight", "qradar"];
const SOURCES: [&str; 2] = ["activity", "graph"];
const DIR: &str = "/state/spool";

#[derive(Debug, Clone)]
enum Op {
    Append {
        source: usize,
        n: usize,
        size: usize,
    },
    AppendWithFault {
        n: usize,
        op: FaultOp,
        err: FaultError,
        skip: u32,
    },
    Read {
        dest: usize,
        max: usize,
    },
    Ack {
        dest: usize,
    },
    Flush,
    Reopen,
    Crash {
        seed: u64,
    },
    CrashDuringAppend {
        n: usize,
        cut: u64,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..6usize, 0..400usize).prop_map(|(source, n, size)| Op::Append { source, n, size }),
        1 => (
            0..5usize,
            prop_oneof![Just(FaultOp::Write), Just(FaultOp::Sync)],
            prop_oneof![Just(FaultError::Eio), Just(FaultError::NoSpace)],
            0..3u32
        )
            .prop_map(|(n, op, err, skip)| Op::AppendWithFault { n, op, err, skip }),
        5 => (0..2usize, 1..12usize).prop_map(|(dest, max)| Op::Read { dest, max }),
        3 => (0..2usize).prop_map(|dest| Op::Ack { dest }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        2 => (1..6usize, 0..3000u64, any::<u64>())
            .prop_map(|(n, cut, seed)| Op::CrashDuringAppend { n, cut, seed }),
    ]
}

#[derive(Debug, Default, Clone, Copy)]
struct Dest {
    read_next: u64,
    acked: u64,
    persisted: u64,
}

struct Harness {
    storage: MemStorage,
    spool: Option<Spool>,
    opts: SpoolOptions,
    /// Every event of an acknowledged batch: (seq, payload), in order.
    events: Vec<(u64, Vec<u8>)>,
    checkpoints: HashMap<&'static str, Vec<u8>>,
    dests: [Dest; 2],
    batch_no: u64,
}

impl Harness {
    fn new(opts: SpoolOptions) -> Harness {
        let storage = MemStorage::new();
        let mut h = Harness {
            storage,
            spool: None,
            opts,
            events: Vec::new(),
            checkpoints: HashMap::new(),
            dests: [Dest::default(); 2],
            batch_no: 0,
        };
        h.open();
        for (i, d) in DESTS.iter().enumerate() {
            let c = h.spool().open_cursor(d).unwrap();
            h.dests[i] = Dest {
                read_next: c,
                acked: c,
                persisted: c,
            };
        }
        h
    }

    fn spool(&self) -> &Spool {
        self.spool.as_ref().unwrap()
    }

    fn open(&mut self) {
        let s = Spool::open_with(
            Arc::new(self.storage.clone()),
            Path::new(DIR),
            self.opts.clone(),
        )
        .unwrap_or_else(|e| panic!("reopen must always succeed: {e}"));
        let st = s.stats();
        assert_eq!(st.quarantined_ranges, 0, "no damage was injected: {st:?}");
        assert_eq!(st.cursor_gaps, 0, "{st:?}");
        assert_eq!(st.cursors_ahead, 0, "{st:?}");
        self.spool = Some(s);
    }

    /// After a restart: cursors are the flushed ones, checkpoints the last acknowledged ones.
    fn after_restart(&mut self) {
        for (i, d) in DESTS.iter().enumerate() {
            let c = self.spool().open_cursor(d).unwrap();
            assert_eq!(c, self.dests[i].persisted, "{d}: cursor after restart");
            self.dests[i] = Dest {
                read_next: c,
                acked: c,
                persisted: c,
            };
        }
        self.check_checkpoints();
    }

    fn check_checkpoints(&self) {
        for s in SOURCES {
            assert_eq!(
                self.spool().checkpoint(s),
                self.checkpoints.get(s).cloned(),
                "checkpoint of {s}"
            );
        }
    }

    fn batch(&mut self, n: usize, size: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        self.batch_no += 1;
        let b = self.batch_no;
        let events = (0..n)
            .map(|i| {
                let mut p = format!("b{b}e{i}:").into_bytes();
                p.resize(p.len() + size, b'a' + (i % 26) as u8);
                p
            })
            .collect();
        (events, format!("ck-{b}").into_bytes())
    }

    fn commit(&mut self, source: usize, last: u64, events: Vec<Vec<u8>>, ck: Vec<u8>) {
        let n = events.len() as u64;
        if let Some(&(prev, _)) = self.events.last() {
            assert!(last - n > prev, "seqs increase across batches");
        }
        for (i, e) in events.into_iter().enumerate() {
            self.events.push((last - n + i as u64, e));
        }
        self.checkpoints.insert(SOURCES[source], ck);
    }

    fn append(
        &mut self,
        source: usize,
        events: Vec<Vec<u8>>,
        ck: Vec<u8>,
    ) -> Result<u64, SpoolError> {
        let refs: Vec<&[u8]> = events.iter().map(|e| e.as_slice()).collect();
        let r = self.spool().append_batch(SOURCES[source], &refs, &ck);
        if let Ok(last) = r {
            self.commit(source, last, events, ck);
        }
        r
    }

    fn expected_from(&self, from: u64) -> impl Iterator<Item = &(u64, Vec<u8>)> {
        self.events.iter().filter(move |(s, _)| *s >= from)
    }

    fn check_status(&self) {
        let st = self.spool().status();
        for (i, d) in DESTS.iter().enumerate() {
            let ds = st.destinations.iter().find(|x| x.name == *d).unwrap();
            assert_eq!(ds.cursor, self.dests[i].acked);
            let queued = self.expected_from(self.dests[i].acked).count() as u64;
            assert_eq!(ds.queued_records, queued, "{d}: queued records");
        }
        assert!(st.total_bytes <= self.opts.max_bytes + 4096, "{st:?}");
    }

    fn crash_and_reopen(&mut self, seed: u64) {
        self.spool = None;
        self.storage.crash(seed);
        self.open();
        self.after_restart();
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Append { source, n, size } => {
                let (events, ck) = self.batch(n, size);
                match self.append(source, events, ck) {
                    Ok(_) => {}
                    Err(SpoolError::Full { .. }) => {}
                    Err(e) => panic!("unexpected append error: {e}"),
                }
            }
            Op::AppendWithFault { n, op, err, skip } => {
                let (events, ck) = self.batch(n, 50);
                self.storage.inject(op, skip, err);
                let _ = self.append(0, events, ck);
                self.storage.clear_faults();
            }
            Op::Read { dest, max } => {
                let from = self.dests[dest].read_next;
                let mut out = Vec::new();
                let next = self.spool().read(from, max, usize::MAX, &mut out).unwrap();
                let want: Vec<&(u64, Vec<u8>)> = self.expected_from(from).take(max).collect();
                let got: Vec<(u64, Vec<u8>)> =
                    out.into_iter().map(|r| (r.seq, r.payload)).collect();
                assert_eq!(got.len(), want.len(), "read from {from}: count");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g, *w, "read from {from}");
                }
                match got.last() {
                    Some((s, _)) => assert!(next > *s),
                    None => assert!(next >= from),
                }
                // Nothing the model has is skipped by `next`.
                let skipped = self.expected_from(from).filter(|(s, _)| *s < next).count();
                assert_eq!(skipped, got.len(), "next {next} skips no event");
                self.dests[dest].read_next = next;
            }
            Op::Ack { dest } => {
                let next = self.dests[dest].read_next;
                self.spool().ack(DESTS[dest], next).unwrap();
                self.dests[dest].acked = next;
            }
            Op::Flush => {
                self.spool().flush_cursors().unwrap();
                for d in &mut self.dests {
                    d.persisted = d.acked;
                }
            }
            Op::Reopen => {
                self.spool = None;
                self.open();
                self.after_restart();
            }
            Op::Crash { seed } => self.crash_and_reopen(seed),
            Op::CrashDuringAppend { n, cut, seed } => {
                let (events, ck) = self.batch(n, 30);
                self.storage.power_cut_after(cut);
                let refs: Vec<&[u8]> = events.iter().map(|e| e.as_slice()).collect();
                let r = self.spool().append_batch(SOURCES[1], &refs, &ck);
                if let Ok(last) = r {
                    self.commit(1, last, events.clone(), ck.clone());
                }
                self.spool = None;
                self.storage.crash(seed);
                self.open();
                if r.is_err() && self.spool().checkpoint(SOURCES[1]).as_deref() == Some(&ck[..]) {
                    // The whole batch reached the disk before the power cut: it is the last
                    // thing in the log, and it counts as appended.
                    let last = self.spool().next_seq() - 1;
                    self.commit(1, last, events, ck);
                }
                self.after_restart();
            }
        }
        self.check_checkpoints();
        self.check_status();
    }
}

fn opts() -> SpoolOptions {
    SpoolOptions {
        max_bytes: 48 * 1024,
        segment_bytes: 2048,
        cursor_persist_interval: Duration::from_secs(1 << 30),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness::new(opts());
        for op in &ops {
            h.step(op);
        }
        // Finally everything the model holds is still delivered to each destination.
        for d in 0..2 {
            loop {
                let before = h.dests[d].read_next;
                h.step(&Op::Read { dest: d, max: 1000 });
                if h.dests[d].read_next == before { break; }
            }
        }
    }

    #[test]
    fn every_ack_persisted_means_no_duplicates_after_crash(
        ops in proptest::collection::vec(op(), 1..60), seed in any::<u64>()
    ) {
        let mut h = Harness::new(SpoolOptions { cursor_persist_interval: Duration::ZERO, ..opts() });
        for op in &ops {
            h.step(op);
            if let Op::Ack { dest } = op {
                // With a zero interval an ack is durable at once.
                h.dests[*dest].persisted = h.dests[*dest].acked;
            }
            if let Op::Flush = op {}
        }
        h.crash_and_reopen(seed);
    }
}

/// Damage anywhere in an older segment: start-up succeeds, the damage is quarantined and counted,
/// and every event outside the damaged segment is still delivered, in order.
#[derive(Debug, Clone)]
struct Damage {
    batches: usize,
    victim: prop::sample::Index,
    offset: prop::sample::Index,
    xor: u8,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        10..40usize,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        1..=255u8,
    )
        .prop_map(|(batches, victim, offset, xor)| Damage {
            batches,
            victim,
            offset,
            xor,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn damage_in_older_segment_is_quarantined(d in damage()) {
        let storage = MemStorage::new();
        let dir = Path::new(DIR);
        let spool = Spool::open_with(Arc::new(storage.clone()), dir, opts()).unwrap();
        let mut all = Vec::new();
        for b in 0..d.batches {
            let events: Vec<Vec<u8>> = (0..4).map(|i| format!("b{b}e{i}-{}", "z".repeat(60)).into_bytes()).collect();
            let refs: Vec<&[u8]> = events.iter().map(|e| e.as_slice()).collect();
            let last = spool.append_batch("activity", &refs, format!("ck-{b}").as_bytes()).unwrap();
            for (i, e) in events.into_iter().enumerate() {
                all.push((last - 4 + i as u64, e));
            }
        }
        drop(spool);
        let segs: Vec<(u64, std::path::PathBuf)> = storage
            .paths()
            .into_iter()
            .filter_map(|p| {
                let n = p.file_name()?.to_str()?.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()?;
                Some((n, p))
            })
            .collect();
        prop_assume!(segs.len() >= 2);
        let vi = d.victim.index(segs.len() - 1);
        let (first, path) = &segs[vi];
        let next_first = segs[vi + 1].0;
        let len = storage.read(path).unwrap().len();
        storage.corrupt(path, d.offset.index(len), d.xor);

        let spool = Spool::open_with(Arc::new(storage.clone()), dir, opts())
            .unwrap_or_else(|e| panic!("start-up must survive damage: {e}"));
        let st = spool.stats();
        prop_assert!(st.quarantined_ranges >= 1, "{:?}", st);
        let mut got = Vec::new();
        let mut next = 0;
        loop {
            let before = got.len();
            next = spool.read(next, 100, usize::MAX, &mut got).unwrap();
            if got.len() == before { break; }
        }
        let got: Vec<(u64, Vec<u8>)> = got.into_iter().map(|r| (r.seq, r.payload)).collect();
        // In order, no invention.
        let mut it = all.iter();
        for g in &got {
            prop_assert!(it.any(|a| a == g), "unexpected or reordered record {:?}", g.0);
        }
        // Everything outside the damaged segment survived.
        for a in &all {
            if a.0 < *first || a.0 >= next_first {
                prop_assert!(got.contains(a), "lost seq {} outside the damaged segment", a.0);
            }
        }
        let lost = (all.len() - got.len()) as u64;
        prop_assert!(lost >= 1 || st.quarantined_ranges >= 1);
        // The quarantine holds the damaged bytes.
        prop_assert!(storage.paths().iter().any(|p| p.starts_with(dir.join("quarantine"))));
        // And the checkpoint is still the latest one.
        prop_assert_eq!(spool.checkpoint("activity"), Some(format!("ck-{}", d.batches - 1).into_bytes()));
    }
}
