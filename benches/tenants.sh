#!/usr/bin/env bash
# Many tenants in one process: the simulator (examples/bench_tenants.rs, its own process) serves
# TENANTS tenants (default 100) with SUBS subscriptions each (default 10); one siemcast reads
# 6 sources per tenant (azure_activity and defender_alerts over the subscriptions, graph_alerts,
# entra_audit, entra_signins, o365_management: 600 sources, 2,500 scopes) into a counting
# receiver. The first tenant is throttled (every second request 429, Retry-After 5 s).
# Prints: the catch-up (every source's first complete poll), then over ROUNDS idle poll rounds
# of INTERVAL (default 4 x 30s): siemcast's CPU per round and as a share of one core, peak RSS,
# and per tenant the age of its oldest last complete poll (a starved tenant would fall behind).
#
#   benches/tenants.sh                 TENANTS=100 SUBS=10 INTERVAL=30 ROUNDS=4
#   BENCH_SIEMCAST=/path/to/siemcast benches/tenants.sh
#   PERF=1 KEEP_WORK=1 benches/tenants.sh   (perf record of the idle rounds; the profile is kept)
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS="${TENANTS:-100}"
SUBS="${SUBS:-10}"
INTERVAL="${INTERVAL:-30}"
ROUNDS="${ROUNDS:-4}"
root="$PWD"
tgt="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet --bin siemcast --example bench_receiver --example bench_tenants
bin="${BENCH_SIEMCAST:-$tgt/release/siemcast}"
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
cleanup() {
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "work: $work" || rm -rf "$work"
}
trap cleanup EXIT

"$tgt/release/examples/bench_receiver" --expect 1000000000 --timeout 100000 > "$work/received" &
for _ in $(seq 200); do [ -s "$work/received" ] && break; sleep 0.05; done
rx_port=$(head -n1 "$work/received")
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tgt/release/examples/bench_tenants" --tenants "$TENANTS" --subscriptions "$SUBS" \
  --interval "${INTERVAL}s" --config "$work/siemcast.toml" --receiver "127.0.0.1:$rx_port" \
  --mappings "$root/mappings/arcsight" --metrics "127.0.0.1:$metrics_port" > "$work/sim" &
sim_pid=$!
for _ in $(seq 1200); do grep -q '^ready' "$work/sim" 2>/dev/null && break; sleep 0.1; done
sources=$(awk -F= '/^sources=/ {print $2}' "$work/sim")
"$bin" check -c "$work/siemcast.toml" > "$work/check" || { cat "$work/check"; exit 1; }

start=$(date +%s.%N)
RUST_LOG=warn "$bin" run -c "$work/siemcast.toml" 2> "$work/log" &
pid=$!
metrics() { curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null || true; }
# Catch-up: every source has completed a poll.
while :; do
  kill -0 "$pid" 2>/dev/null || { echo "siemcast exited:"; tail -n 20 "$work/log"; exit 1; }
  done_sources=$(metrics | awk '/^siemcast_source_last_success_timestamp_seconds\{/ && $NF > 0' | wc -l)
  [ "$done_sources" -ge "$sources" ] && break
  sleep 1
done
caught=$(date +%s.%N)
ticks_caught=$(awk '{print $14 + $15}' "/proc/$pid/stat")
spooled=$(metrics | awk '/^siemcast_source_events_spooled_total\{/ {s += $NF} END {print s}')
printf 'catch-up: %d sources of %d tenants, %d events spooled, in %.1f s, %.1f CPU s\n' \
  "$sources" "$TENANTS" "$spooled" "$(awk -v a="$caught" -v b="$start" 'BEGIN {print a - b}')" "$(awk -v t="$ticks_caught" -v hz="$hz" 'BEGIN {print t / hz}')"

# Idle rounds: nothing new to read, every source polls every INTERVAL (PERF=1: profiled).
if [ -n "${PERF:-}" ]; then
  perf record -F 499 -g -p "$pid" -o "$work/perf.data" -- sleep $((INTERVAL * ROUNDS)) 2> /dev/null
  perf report -i "$work/perf.data" --stdio --no-children --percent-limit 1.5 2> /dev/null \
    | grep -v '^$' | head -n 120 > "$work/profile"
  echo "profile: $work/profile"
else
  sleep $((INTERVAL * ROUNDS))
fi
ticks_idle=$(( $(awk '{print $14 + $15}' "/proc/$pid/stat") - ticks_caught ))
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
now=$(date +%s)
metrics > "$work/metrics"
python3 - "$work/metrics" "$now" "$INTERVAL" "$ROUNDS" "$ticks_idle" "$hz" "$hwm" "$rss" <<'PY'
import re, sys
path, now, interval, rounds, ticks, hz, hwm, rss = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
last, requests, throttled = {}, {}, {}
for line in open(path):
    m = re.match(r'(\w+)\{source="[^"]*",tenant="([^"]*)"\} (\S+)', line)
    if not m:
        continue
    name, tenant, value = m.group(1), m.group(2), float(m.group(3))
    if name == "siemcast_source_last_success_timestamp_seconds":
        last[tenant] = min(last.get(tenant, now), value)
    elif name == "siemcast_source_api_requests_total":
        requests[tenant] = requests.get(tenant, 0) + value
    elif name == "siemcast_source_api_throttled_total":
        throttled[tenant] = throttled.get(tenant, 0) + value
cpu = ticks / hz
print(f"idle: {rounds} rounds of {interval}s: {cpu / rounds:.2f} CPU s per round, {100 * cpu / (rounds * interval):.2f} % of one core")
print(f"memory: peak RSS {hwm / 1024:.1f} MiB, RSS now {rss / 1024:.1f} MiB")
ages = sorted((now - t, tenant) for tenant, t in last.items())
others = [a for a, t in ages if t != "t000"]
print(f"freshness: {len(last)} tenants; oldest last complete poll of a tenant {max(others):.1f} s ago (throttled t000: {now - last['t000']:.1f} s ago, interval {interval} s)")
print(f"requests: t000 {requests.get('t000', 0):.0f} ({throttled.get('t000', 0):.0f} throttled); others median {sorted(requests[t] for t in requests if t != 't000')[len(requests) // 2 - 1]:.0f} ({sum(throttled.get(t, 0) for t in requests if t != 't000'):.0f} throttled in all)")
PY
echo "  (the simulator used $(awk -v hz="$hz" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$sim_pid/stat") s CPU)"
