//! Rendering throughput: Azure Activity events (~1.5 KB) as parsed JSON → CEF and as JSON bytes
//! → CEF (parse included), and Defender for Cloud alerts → CEF and LEEF. One core, one thread.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use siemcast::mapping::Mapping;

fn load(vendor: &str, kind: &str) -> (Mapping, Vec<Value>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = Mapping::load(&root.join(format!("mappings/{vendor}/{kind}.toml"))).unwrap();
    let text = std::fs::read_to_string(root.join(format!("examples/events/{kind}.json"))).unwrap();
    (m, serde_json::from_str(&text).unwrap())
}

fn bench(c: &mut Criterion) {
    let (activity, events) = load("arcsight", "azure_activity");
    // The first sample is the ~1.5 KB Administrative record from the reference.
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
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
