#!/usr/bin/env bash
# `siemcast render` throughput on one core: N Azure Activity Log records (the samples of
# examples/events/azure_activity.json, each copy with its own eventDataId) rendered to CEF with
# the shipped ArcSight mapping, as NDJSON and as one JSON array. Prints events/s by CPU time
# (user + system of the render process: what one core does, whatever else the machine runs)
# and by wall time, and checks that one line came out per record.
#
#   benches/render.sh [N] [SYSLOG]      N default 200000, SYSLOG default none
#   BENCH_SIEMCAST=/path/to/other/siemcast benches/render.sh   (another build, for before/after)
#
# Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
SYSLOG="${2:-none}"
tgt="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${BENCH_SIEMCAST:-}" ]; then
  cargo build --release --quiet --bin siemcast
fi
bin="${BENCH_SIEMCAST:-$tgt/release/siemcast}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$N" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
samples = json.load(open("examples/events/azure_activity.json"))
lines = []
for i in range(n):
    ev = dict(samples[i % len(samples)])
    ev["eventDataId"] = f"render-bench-{i:08d}"
    lines.append(json.dumps(ev, separators=(",", ":")))
with open(f"{work}/events.ndjson", "w") as f:
    f.write("\n".join(lines) + "\n")
with open(f"{work}/events.json", "w") as f:
    f.write("[" + ",\n".join(lines) + "]\n")
size = sum(len(l) for l in lines) / n
print(f"{n} records, {size:.0f} bytes each on average")
PY

for input in events.ndjson events.json; do
  python3 - "$bin" "$work/$input" "$SYSLOG" "$N" <<'PY'
import os, resource, subprocess, sys, time
bin, path, syslog, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
best = None
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(os.devnull, "wb") as null:
        out = subprocess.run(
            [bin, "render", "--mapping", "mappings/arcsight/azure_activity.toml",
             "--input", path, "--syslog", syslog],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = out.stdout.count(b"\n")
    assert lines == n, f"{lines} lines for {n} records: {out.stderr[-500:]!r}"
    if best is None or cpu < best[0]:
        best = (cpu, wall)
cpu, wall = best
print(f"{os.path.basename(path):14} --syslog {syslog}: {n / cpu:,.0f} events/s by CPU time "
      f"({cpu:.3f} s), {n / wall:,.0f} by wall time; best of 3")
PY
done
