//! Filter rules' cost: a destination's send-time work per event (decode the spooled record,
//! route, rules, render, syslog header and framing) with no rules and with 20 rules that do not
//! match (every event is still rendered: the rules' whole cost, nothing saved by drops), on
//! the shipped Azure Activity samples (~1.5 KB). Also timed in thread CPU time, so a busy
//! shared machine does not inflate the figures.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use siemcast::config::Config;
use siemcast::destinations::syslog::Stamp;
use siemcast::destinations::Destination;
use siemcast::event::{Event, EventKind};

/// 20 rules of the kinds the README suggests, none matching the samples' events.
fn twenty_rules() -> String {
    let mut rules = String::new();
    let conditions = [
        r#"{ path = "operationName.value", matches = "*/listKeys/action" }"#,
        r#"{ path = "caller", regex = "^svc-[0-9]+@" }"#,
        r#"{ path = "category.value", is = ["Recommendation", "Autoscale"] }"#,
        r#"{ path = "level", is = "Verbose" }"#,
        r#"{ path = "httpRequest.clientIpAddress", matches = "168.63.129.*" }"#,
        r#"{ path = "properties.statusCode", is = ["NoContent"] }"#,
        r#"{ path = "resourceProviderName.value", is = "Microsoft.Insights" }"#,
        r#"{ path = "properties.durationMs", gt = 1000000 }"#,
        r#"[{ path = "status.value", is = "Started" }, { path = "subStatus.value", exists = true }]"#,
        r#"{ path = "claims.appid", is = "00000000-0000-0000-0000-00000000beef" }"#,
    ];
    for i in 0..20 {
        let when = conditions[i % conditions.len()].replace("Verbose", &format!("Verbose{i}"));
        // The last rule samples the events of another source: checked, never applies here.
        let (action, extra) = if i == 19 {
            ("sample", "keep_one_in = 10\nsources = [\"other\"]\n")
        } else {
            ("drop", "")
        };
        rules.push_str(&format!(
            "\n[[destination.rule]]\nname = \"r{i}\"\naction = \"{action}\"\n{extra}when = {when}\n"
        ));
    }
    rules
}

fn destination(dir: &Path, rules: &str) -> Destination {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "state_dir = \"state\"\n[metrics]\naddress = \"\"\n[[source]]\nname = \"activity\"\nkind = \"files\"\npath = \"in\"\nsource_kind = \"azure_activity\"\n[[source]]\nname = \"other\"\nkind = \"files\"\npath = \"in\"\nsource_kind = \"azure_activity\"\n[[destination]]\nname = \"d\"\naddress = \"127.0.0.1:514\"\nhostname = \"bench\"\nmappings = \"{}\"\n{rules}",
        root.join("mappings/arcsight").display()
    );
    let path = dir.join("siemcast.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.destinations[0].filter.len(),
        rules.matches("[[destination.rule]]").count()
    );
    Destination::from_config(&config.destinations[0], &config).unwrap()
}

fn records() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/events/azure_activity.json")).unwrap();
    let samples: Vec<Value> = serde_json::from_str(&text).unwrap();
    (0..64)
        .map(|i| {
            let mut ev = samples[i % samples.len()].clone();
            ev["eventDataId"] = format!("bench-{i}").into();
            let mut out = Vec::new();
            Event {
                kind: EventKind::AzureActivity,
                source: "activity".into(),
                id: format!("bench-{i}"),
                time_ms: None,
                json: serde_json::to_vec(&ev).unwrap(),
                checked: true,
            }
            .encode(&mut out);
            out
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let records = records();
    let stamp = Stamp::now(&jiff::tz::TimeZone::UTC);
    let setups = [("0 rules", String::new()), ("20 rules", twenty_rules())];
    let mut g = c.benchmark_group("destination_render");
    g.throughput(Throughput::Elements(records.len() as u64));
    let (mut payload, mut buf) = (Vec::with_capacity(4096), Vec::with_capacity(1 << 18));
    for (name, rules) in &setups {
        let d = destination(dir.path(), rules);
        g.bench_function(*name, |b| {
            b.iter(|| {
                buf.clear();
                for r in &records {
                    assert!(d.render_for_bench(black_box(r), &stamp, &mut payload, &mut buf));
                }
                black_box(buf.len())
            })
        });
    }
    g.finish();
    // Thread CPU time per event, alternating the two setups to share the machine's noise.
    let ds: Vec<Destination> = setups
        .iter()
        .map(|(_, r)| destination(dir.path(), r))
        .collect();
    let mut cpu = [Duration::ZERO; 2];
    let rounds = 400;
    for _ in 0..rounds {
        for (i, d) in ds.iter().enumerate() {
            cpu[i] += cpu_time(|| {
                buf.clear();
                for r in &records {
                    assert!(d.render_for_bench(black_box(r), &stamp, &mut payload, &mut buf));
                }
            });
        }
    }
    let per = |t: Duration| t.as_nanos() as f64 / (rounds * records.len()) as f64;
    println!(
        "destination_render CPU per event: 0 rules {:.0} ns, 20 rules {:.0} ns (+{:.1} %)",
        per(cpu[0]),
        per(cpu[1]),
        (per(cpu[1]) / per(cpu[0]) - 1.0) * 100.0
    );
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
