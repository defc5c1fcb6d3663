//! Spool throughput: append+fdatasync of 1000-event batches of 1.4 KB payloads (on tmpfs and on
//! the real disk under /work), and sequential read. Run with `cargo bench --bench spool`.
//!
//! Set `SPOOL_BENCH_DISK_DIR` to put the disk case elsewhere (default: `target/spool-bench`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siemcast::spool::{Spool, SpoolOptions};

const BATCH: usize = 1000;
const PAYLOAD: usize = 1400;

fn events() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let mut p = format!("{{\"id\":\"{i:08}\",\"operationName\":\"Microsoft.Compute/virtualMachines/write\",\"x\":\"").into_bytes();
            p.resize(PAYLOAD - 2, b'a' + (i % 26) as u8);
            p.extend_from_slice(b"\"}");
            p
        })
        .collect()
}

fn opts() -> SpoolOptions {
    SpoolOptions {
        max_bytes: 2 << 30,
        segment_bytes: 64 << 20,
        ..SpoolOptions::default()
    }
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Appends `iters` batches; a destination acks everything every 16 batches so segments are
/// reclaimed and the disk does not fill.
fn append_run(dir: &Path, iters: u64, evs: &[Vec<u8>]) -> Duration {
    let spool = Spool::open(dir, opts()).expect("open spool");
    spool.open_cursor("bench").expect("cursor");
    let refs: Vec<&[u8]> = evs.iter().map(|e| e.as_slice()).collect();
    let start = Instant::now();
    for i in 0..iters {
        let last = spool
            .append_batch(
                "bench-source",
                &refs,
                b"{\"cursor\":\"2026-11-01T00:00:00Z\"}",
            )
            .expect("append");
        if i % 16 == 15 {
            spool.ack("bench", last + 1).expect("ack");
            spool.flush_cursors().expect("flush");
        }
    }
    let t = start.elapsed();
    drop(spool);
    let _ = std::fs::remove_dir_all(dir);
    t
}

fn bench_append(c: &mut Criterion) {
    let evs = events();
    let disk_base = std::env::var_os("SPOOL_BENCH_DISK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/spool-bench"));
    let shm = Path::new("/dev/shm");
    let mut g = c.benchmark_group("spool_append_1000x1400B");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes((BATCH * PAYLOAD) as u64));
    if shm.is_dir() {
        g.bench_function("tmpfs", |b| {
            b.iter_custom(|iters| append_run(&fresh_dir(shm, "siemcast-spool-bench"), iters, &evs))
        });
    }
    g.bench_function("disk", |b| {
        b.iter_custom(|iters| append_run(&fresh_dir(&disk_base, "append"), iters, &evs))
    });
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let evs = events();
    let refs: Vec<&[u8]> = evs.iter().map(|e| e.as_slice()).collect();
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = fresh_dir(&base, "siemcast-spool-read-bench");
    let spool = Spool::open(&dir, opts()).expect("open spool");
    const BATCHES: usize = 100; // 100k events, 140 MB
    for _ in 0..BATCHES {
        spool.append_batch("src", &refs, b"ck").expect("append");
    }
    let mut g = c.benchmark_group("spool_read");
    g.sample_size(10);
    g.throughput(Throughput::Elements((BATCHES * BATCH) as u64));
    g.bench_function("100k_events_1000_per_read", |b| {
        let mut out = Vec::with_capacity(BATCH);
        b.iter(|| {
            let mut next = 0;
            let mut n = 0;
            loop {
                out.clear();
                next = spool.read(next, BATCH, 4 << 20, &mut out).expect("read");
                if out.is_empty() {
                    break;
                }
                n += out.len();
                black_box(&out);
            }
            assert_eq!(n, BATCHES * BATCH);
        })
    });
    g.finish();
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
