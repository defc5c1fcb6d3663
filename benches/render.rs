//! Rendering throughput: Azure Activity events (~1.5 KB) as parsed JSON → CEF (`render`, which
//! writes the `Value` out and renders it through `render_json`) and as JSON bytes → CEF (parse
//! included, through a full `Value` and through `render_json`'s single scan),
//! and Defender for Cloud alerts → CEF and LEEF; and the `output = "json"` body (the record
//! checked and compacted). One core, one thread. The `render_cpu` group
//! times the two bytes → CEF paths in thread CPU time, so a busy shared machine (other jobs
//! taking the core away) does not inflate the per-event figure.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use siemcast::destinations::body::compact_json;
use siemcast::event::{Event, EventKind};
use siemcast::mapping::Mapping;

fn load(vendor: &str, kind: &str) -> (Mapping, Vec<Value>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = Mapping::load(&root.join(format!("mappings/{vendor}/{kind}.toml"))).unwrap();
    let text = std::fs::read_to_string(root.join(format!("examples/events/{kind}.json"))).unwrap();
    (m, serde_json::from_str(&text).unwrap())
}

fn bench(c: &mut Criterion) {
    let (activity, events) = load("arcsight", "azure_activity");
    // The first sample is the Administrative record of examples/events/azure_activity.json.
    let ev = events[0].clone();
    let bytes = serde_json::to_vec(&ev).unwrap();
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    g.bench_function(
        format!("azure_activity value->cef ({} B json)", bytes.len()),
        |b| {
            b.iter(|| {
                out.clear();
                activity.render(black_box(&ev), &mut out).unwrap();
                black_box(out.len())
            })
        },
    );
    g.bench_function(
        format!("azure_activity bytes->cef ({} B json)", bytes.len()),
        |b| {
            b.iter(|| {
                out.clear();
                let v: Value = serde_json::from_slice(black_box(&bytes)).unwrap();
                activity.render(&v, &mut out).unwrap();
                black_box(out.len())
            })
        },
    );
    g.bench_function(
        format!("azure_activity render_json->cef ({} B json)", bytes.len()),
        |b| {
            b.iter(|| {
                out.clear();
                activity.render_json(black_box(&bytes), &mut out).unwrap();
                black_box(out.len())
            })
        },
    );
    for vendor in ["arcsight", "qradar"] {
        let (m, alerts) = load(vendor, "defender_alerts");
        let name = if vendor == "arcsight" { "cef" } else { "leef" };
        g.bench_function(format!("defender_alerts value->{name}"), |b| {
            b.iter(|| {
                out.clear();
                m.render(black_box(&alerts[0]), &mut out).unwrap();
                black_box(out.len())
            })
        });
        let alert = serde_json::to_vec(&alerts[0]).unwrap();
        g.bench_function(format!("defender_alerts render_json->{name}"), |b| {
            b.iter(|| {
                out.clear();
                m.render_json(black_box(&alert), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();

    // What the files source does with each line: id and time, the bytes kept as the body.
    let mut g = c.benchmark_group("ident");
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        format!("azure_activity from_json_bytes ({} B json)", bytes.len()),
        |b| {
            b.iter(|| {
                let ev =
                    Event::from_json_bytes(EventKind::AzureActivity, "files", black_box(&bytes));
                black_box(ev.map(|e| e.time_ms))
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("render_cpu");
    g.throughput(Throughput::Elements(1));
    g.bench_function("azure_activity bytes->value->cef", |b| {
        b.iter_custom(|iters| {
            cpu_time(|| {
                for _ in 0..iters {
                    out.clear();
                    let v: Value = serde_json::from_slice(black_box(&bytes)).unwrap();
                    activity.render(&v, &mut out).unwrap();
                    black_box(out.len());
                }
            })
        })
    });
    g.bench_function("azure_activity render_json->cef", |b| {
        b.iter_custom(|iters| {
            cpu_time(|| {
                for _ in 0..iters {
                    out.clear();
                    activity.render_json(black_box(&bytes), &mut out).unwrap();
                    black_box(out.len());
                }
            })
        })
    });
    // `output = "json"`: the record checked and compacted to one line instead of a mapping.
    let pretty = serde_json::to_vec_pretty(&ev).unwrap();
    g.bench_function("azure_activity json body (compact)", |b| {
        b.iter_custom(|iters| {
            cpu_time(|| {
                for _ in 0..iters {
                    out.clear();
                    compact_json(black_box(&bytes), &mut out).unwrap();
                    black_box(out.len());
                }
            })
        })
    });
    g.bench_function(
        format!(
            "azure_activity json body (compact, pretty {} B)",
            pretty.len()
        ),
        |b| {
            b.iter_custom(|iters| {
                cpu_time(|| {
                    for _ in 0..iters {
                        out.clear();
                        compact_json(black_box(&pretty), &mut out).unwrap();
                        black_box(out.len());
                    }
                })
            })
        },
    );
    g.finish();
}

/// CPU time this thread spent running `f`.
fn cpu_time(f: impl FnOnce()) -> Duration {
    use rustix::time::{clock_gettime, ClockId};
    let at = |t: rustix::time::Timespec| {
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    };
    let start = at(clock_gettime(ClockId::ThreadCPUTime));
    f();
    at(clock_gettime(ClockId::ThreadCPUTime)).saturating_sub(start)
}

criterion_group!(benches, bench);
criterion_main!(benches);
