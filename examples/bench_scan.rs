//! A fixed-work loop over the two JSON scans of the hot path, for counting instructions with
//! callgrind (repeatable on a busy shared machine, unlike wall time):
//!
//! ```sh
//! cargo build --release --example bench_scan
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/bench_scan render 6000 [FILE.ndjson]
//! ```
//!
//! `ident` runs the files source's id and time read (`Event::from_json_bytes`), `render` the
//! ArcSight Azure Activity mapping's `render_json`, `checked` its `render_body` of a body
//! checked at ingest (what the sender does with spooled events), ITERATIONS times over one
//! event: the first
//! line of FILE, or the first sample of `examples/events/azure_activity.json`. Run it twice with
//! different counts and divide the difference to leave out start-up (`benches/README.md`).

use std::hint::black_box;
use std::path::Path;

use anyhow::{bail, Context};
use siemcast::event::{Event, EventKind};
use siemcast::mapping::Mapping;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, iterations, file) = match args.as_slice() {
        [m, n] => (m.as_str(), n, None),
        [m, n, f] => (m.as_str(), n, Some(f)),
        _ => bail!("usage: bench_scan ident|render|checked ITERATIONS [FILE.ndjson]"),
    };
    let iterations: u64 = iterations.parse().context("ITERATIONS")?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let event = match file {
        Some(f) => {
            let text = std::fs::read(f).with_context(|| f.clone())?;
            text.split(|&c| c == b'\n')
                .next()
                .unwrap_or_default()
                .to_vec()
        }
        None => {
            let text = std::fs::read_to_string(root.join("examples/events/azure_activity.json"))?;
            let samples: Vec<serde_json::Value> = serde_json::from_str(&text)?;
            serde_json::to_vec(&samples[0])?
        }
    };
    let mapping = Mapping::load(&root.join("mappings/arcsight/azure_activity.toml"))?;
    let mut out = Vec::with_capacity(4096);
    let mut total = 0u64;
    for _ in 0..iterations {
        match mode {
            "ident" => {
                let ev =
                    Event::from_json_bytes(EventKind::AzureActivity, "files", black_box(&event))
                        .context("the event has no id")?;
                total += ev.id.len() as u64;
            }
            "render" => {
                out.clear();
                mapping.render_json(black_box(&event), &mut out)?;
                total += out.len() as u64;
            }
            "checked" => {
                out.clear();
                mapping.render_body(black_box(&event), true, &mut out)?;
                total += out.len() as u64;
            }
            other => bail!("unknown mode {other:?}: ident, render or checked"),
        }
    }
    println!("{total}");
    Ok(())
}
