#!/usr/bin/env bash
# End-to-end benchmark, all in one run on the same input:
#   tcp        siemcast files source → spool → CEF → TCP      → counting receiver
#   tls        the same over TLS (certificates made here)
#   syslog-ng  syslog-ng file() → json-parser() → CEF template → TCP → the same receiver
#   poller     the API simulator (own process) → siemcast azure_activity poller → spool → TCP
#   backlog    fill the spool with BACKLOG_N events while the receiver is down, then start it:
#              peak RSS while filling and while draining, drain rate and drain CPU
#   dedupe     the simulator serves DEDUPE_N Entra sign-ins (default 1,000,000) of the last
#              hour, all inside the poller's 2-hour overlap, so every poll reads them all again;
#              the receiver stays DEDUPE_LINGER s (default 120) after the last new id: lines
#              must equal ids (each sign-in exactly once over the later polls too)
# For each: events/s, CPU seconds per million events (user+sys of the forwarder process only),
# peak RSS of the forwarder, and whether every event id arrived (lines and distinct ids).
#
#   benches/e2e.sh [N] [MODES]     N default 200000; MODES default "tcp tls syslog-ng poller"
#   BACKLOG_N=1000000 benches/e2e.sh 200000 "backlog"     (POLLER_N=20000 sets the poller's)
#   DEDUPE_N=1000000 benches/e2e.sh 1000 "dedupe"
#   BATCH_SIZE=5000 benches/e2e.sh     (the files source's batch_size: events per spool fdatasync;
#                                      default: siemcast's own, 1000)
#   BENCH_SIEMCAST=/path/to/other/siemcast benches/e2e.sh   (e.g. an older build, for before/after)
#   RULES_FILE=benches/rules20.toml benches/e2e.sh 200000 tcp   (the destination's filter rules)
#   KEEP_WORK=1 benches/e2e.sh     (keeps the work folder, with each run's config and log)
#   MALLOC_ARENA_MAX=1 benches/e2e.sh   (glibc's arenas for siemcast; default: glibc's own)
#
# Needs python3 and openssl; syslog-ng is unpacked by scripts/install-syslog-ng.sh if missing.
# The receiver is examples/bench_receiver.rs (Rust, 1 MiB reads, hashed ids), far cheaper per
# line than any forwarder measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
MODES="${2:-tcp tls syslog-ng poller}"
BACKLOG_N="${BACKLOG_N:-1000000}"
# The simulator is a correctness double: it filters and copies its records for every page, so
# the poller mode uses fewer events by default.
POLLER_N="${POLLER_N:-20000}"
DEDUPE_N="${DEDUPE_N:-1000000}"
DEDUPE_LINGER="${DEDUPE_LINGER:-120}"
root="$PWD"
tgt="${CARGO_TARGET_DIR:-$root/target}" # where cargo puts the builds
cargo build --release --quiet --bin siemcast --example bench_receiver --example bench_simulator
bin="${BENCH_SIEMCAST:-$tgt/release/siemcast}" # another build to compare against
# siemcast runs at its default settings: glibc's malloc arenas unless MALLOC_ARENA_MAX is set.
arena_env=()
[ -n "${MALLOC_ARENA_MAX:-}" ] && arena_env=("MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX")
receiver="$tgt/release/examples/bench_receiver"
simulator="$tgt/release/examples/bench_simulator"
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
cleanup() {
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "work: $work" || rm -rf "$work"
}
trap cleanup EXIT

# Deterministic input: realistic Azure Activity Log records (REST EventData shape, ~1.4 KB).
generate() { # $1 = count, $2 = file
  python3 - "$1" "$2" <<'PY'
import json, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(20261101)
sub = "00000000-0000-0000-0000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
ops = [("Microsoft.Compute/virtualMachines/write", "Create or Update Virtual Machine", "Microsoft.Compute", "virtualMachines"),
       ("Microsoft.Authorization/roleAssignments/write", "Create role assignment", "Microsoft.Authorization", "roleAssignments"),
       ("Microsoft.Storage/storageAccounts/listKeys/action", "List Storage Account Keys", "Microsoft.Storage", "storageAccounts"),
       ("Microsoft.Network/networkSecurityGroups/securityRules/write", "Create or Update Security Rule", "Microsoft.Network", "networkSecurityGroups")]
with open(path, "w") as f:
    for i in range(n):
        op, op_text, provider, rtype = ops[rnd.randrange(len(ops))]
        rg = f"rg-{rnd.randrange(7)}"
        rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{rtype}/res-{i % 977}"
        failed = rnd.random() < 0.1
        f.write(json.dumps({
            "authorization": {"action": op, "scope": rid},
            "caller": f"user{rnd.randrange(13)}@contoso.com", "channels": "Operation",
            "claims": {"ipaddr": f"10.0.{rnd.randrange(250)}.{rnd.randrange(1, 255)}", "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
            "correlationId": f"c0ffee00-0000-4000-8000-{i:012d}", "description": "",
            "eventDataId": f"ev-{i:08d}",
            "eventName": {"value": "EndRequest", "localizedValue": "End request"},
            "category": {"value": "Administrative", "localizedValue": "Administrative"},
            "eventTimestamp": f"2026-11-01T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}4567Z",
            "id": f"/subscriptions/{sub}/events/ev-{i:08d}",
            "level": "Error" if failed else "Informational", "operationId": f"op-{i}",
            "operationName": {"value": op, "localizedValue": op_text},
            "resourceGroupName": rg,
            "resourceProviderName": {"value": provider, "localizedValue": provider},
            "resourceType": {"value": f"{provider}/{rtype}", "localizedValue": f"{provider}/{rtype}"},
            "resourceId": rid,
            "status": {"value": "Failed" if failed else "Succeeded", "localizedValue": "Failed" if failed else "Succeeded"},
            "subStatus": {"value": "Forbidden" if failed else "Created", "localizedValue": "Forbidden (HTTP Status Code: 403)" if failed else "Created (HTTP Status Code: 201)"},
            "submissionTimestamp": "2026-11-01T10:02:00.000Z", "subscriptionId": sub, "tenantId": tenant,
            "properties": {"statusCode": "Forbidden" if failed else "Created", "serviceRequestId": None},
        }, separators=(",", ":")) + "\n")
PY
}
mkdir -p "$work/input"
generate "$N" "$work/input/events.ndjson"
bytes=$(stat -c %s "$work/input/events.ndjson")
echo "input: $N Azure Activity events, $((bytes / N)) bytes each on average"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (shared with other builds: compare CPU s/M rather than wall time)"

# Certificates for TLS: a CA and a server certificate it signed.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=siemcast bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

results="$work/results"
: > "$results"

# Starts the counting receiver; sets $rx_pid and $rx_port. $1 = expected ids, $2 = out file,
# then extra receiver arguments.
start_receiver() {
  local expect="$1" out="$2"
  shift 2
  "$receiver" --expect "$expect" "$@" > "$out" &
  rx_pid=$!
  for _ in $(seq 200); do [ -s "$out" ] && break; sleep 0.05; done
  rx_port=$(head -n1 "$out")
}

# Waits for the receiver, then records the forwarder's figures. $1 = label, $2 = forwarder
# pid, $3 = start time, $4 = receiver output, $5 = expected events.
finish() {
  local label="$1" pid="$2" start="$3" out="$4" expect="$5" ticks_before="${6:-0}" status=0
  while kill -0 "$rx_pid" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$label: the forwarder exited early:" >&2
      tail -n 20 "$(dirname "$out")"/log "$(dirname "$out")"/stderr 2>/dev/null >&2 || true
      exit 1
    fi
    sleep 0.05
  done
  wait "$rx_pid" || status=$?
  local hwm ticks
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  ticks=$(( $(awk '{print $14 + $15}' "/proc/$pid/stat") - ticks_before ))
  # System CPU and minor page faults since the forwarder started (page buffers freed and
  # faulted in again show here).
  local sys_ticks minflt
  sys_ticks=$(awk '{print $15}' "/proc/$pid/stat")
  minflt=$(awk '{print $10}' "/proc/$pid/stat")
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local line
  line=$(tail -n1 "$out")
  python3 - "$label" "$expect" "$start" "$hwm" "$ticks" "$hz" "$line" "$status" "${7:-}" "$sys_ticks" "$minflt" >> "$results" <<'PY'
import sys
label, n, start, hwm, ticks, hz, line, status = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
sys_ticks, minflt = int(sys.argv[10]), int(sys.argv[11])
f = dict(kv.split("=") for kv in line.split())
if sys.argv[9] == "first":  # from the first event received (a drain: not the reconnect wait)
    start = float(f["first"])
secs = float(f["done"]) - start
cpu = ticks / hz
ok = int(f["distinct"]) == n and status == "0"
print(f"{label}\t{n}\t{n / secs if secs > 0 else 0:.0f}\t{cpu / n * 1e6:.2f}\t{hwm / 1024:.1f}\t{f['lines']}\t{f['distinct']}\t{'ok' if ok else 'MISSING'}\t{float(f['cpu']) / n * 1e6:.2f}\t{sys_ticks / hz / n * 1e6:.2f}\t{minflt / n:.2f}")
PY
  tail -n1 "$results" | awk -F'\t' '{printf "  %-10s %9s events/s  %6s CPU s/M (%s sys)  %6s MiB peak RSS  %s/%s lines/ids %s  %s minor faults/event\n", $1, $3, $4, $10, $5, $6, $7, $8, $11}'
}

siemcast_config() { # $1 = dir, $2 = port, $3 = transport, $4 = source section
  local tls_section=""
  [ "$3" = tls ] && tls_section=$'[destination.tls]\nca_file = "'"$work/ca.pem"$'"\nserver_name = "localhost"'
  local rules_line=""
  [ -n "${RULES_FILE:-}" ] && rules_line="rules_file = \"$root/$RULES_FILE\""
  cat > "$1/siemcast.toml" <<CONF
state_dir = "$1/state"
[spool]
max_bytes = 8589934592
[metrics]
address = ""
$4
[[destination]]
name = "receiver"
address = "127.0.0.1:$2"
transport = "$3"
mappings = "$root/mappings/arcsight"
$rules_line
$tls_section
CONF
}

files_source() {
  cat <<CONF
[[source]]
name = "bench"
kind = "files"
path = "$work/input"
source_kind = "azure_activity"
interval = "100ms"
${BATCH_SIZE:+batch_size = $BATCH_SIZE}
CONF
}

run_siemcast() { # $1 = tcp | tls
  local mode="$1" dir="$work/$1" tls_args=()
  mkdir -p "$dir"
  [ "$mode" = tls ] && tls_args=(--tls-cert "$work/server.pem" --tls-key "$work/server.key")
  start_receiver "$N" "$dir/received" "${tls_args[@]}"
  siemcast_config "$dir" "$rx_port" "$mode" "$(files_source)"
  local start
  start=$(date +%s.%N)
  env ${arena_env[@]+"${arena_env[@]}"} RUST_LOG=warn "$bin" run -c "$dir/siemcast.toml" 2> "$dir/log" &
  finish "siemcast-$mode" $! "$start" "$dir/received" "$N"
}

run_syslog_ng() {
  local dir="$work/syslog-ng" ng="$root/target/peers/syslog-ng"
  [ -x "$ng/usr/sbin/syslog-ng" ] || scripts/install-syslog-ng.sh "$ng"
  mkdir -p "$dir"
  start_receiver "$N" "$dir/received"
  # The same job as siemcast's shipped arcsight/azure_activity mapping: JSON → CEF header and
  # extension (format-cef-extension escapes the values) → one LF-framed line over TCP.
  local set="" kv
  for kv in rt:eventTimestamp externalId:eventDataId cat:category.value act:authorization.action \
      outcome:status.value reason:subStatus.localizedValue suser:caller src:claims.ipaddr \
      requestClientApplication:claims.appid dhost:resourceId \
      destinationServiceName:resourceProviderName.value msg:description cs1:subscriptionId \
      cs2:resourceGroupName cs3:correlationId cs4:tenantId cs5:resourceType.value \
      cs6:eventName.value; do
    set+="set(\"\${.j.${kv#*:}}\" value(\".cef.${kv%%:*}\"));"$'\n'
  done
  for kv in cs1:Subscription "cs2:Resource Group" "cs3:Correlation ID" cs4:Tenant \
      "cs5:Resource Type" "cs6:Event Stage"; do
    set+="set(\"${kv#*:}\" value(\".cef.${kv%%:*}Label\"));"$'\n'
  done
  cat > "$dir/syslog-ng.conf" <<CONF
@version: 3.38
options { keep-hostname(yes); log-msg-size(65536); stats-freq(0); };
source s_in { file("$work/input/events.ndjson" flags(no-parse) log-msg-size(65536) log-fetch-limit(1000) log-iw-size(10000) follow-freq(1)); };
parser p_json { json-parser(prefix(".j.")); };
rewrite r_cef {
$set};
destination d_out { network("127.0.0.1" port($rx_port) transport("tcp") log-fifo-size(10000)
  template("<14>\${ISODATE} bench CEF:0|Microsoft|Azure Activity Log|2015-04-01|\${.j.operationName.value}|\${.j.operationName.localizedValue}|\${.j.level}|\$(format-cef-extension --subkeys .cef.)\n")); };
log { source(s_in); parser(p_json); rewrite(r_cef); destination(d_out); };
CONF
  local start
  start=$(date +%s.%N)
  LD_LIBRARY_PATH="$ng/usr/lib/x86_64-linux-gnu:$ng/usr/lib/syslog-ng" \
    "$ng/usr/sbin/syslog-ng" -F -f "$dir/syslog-ng.conf" --module-path="$ng/usr/lib/syslog-ng/3.38" \
    -R "$dir/persist" -p "$dir/pid" -c "$dir/ctl" 2> "$dir/stderr" &
  finish "syslog-ng" $! "$start" "$dir/received" "$N"
}

run_poller() {
  local dir="$work/poller"
  mkdir -p "$dir"
  "$simulator" --events "$POLLER_N" > "$dir/sim" &
  local sim_pid=$!
  for _ in $(seq 600); do grep -q '^ready' "$dir/sim" 2>/dev/null && break; sleep 0.1; done
  local -A sim
  while IFS='=' read -r k v; do sim[$k]="$v"; done < <(grep = "$dir/sim")
  start_receiver "${sim[activity_records]}" "$dir/received"
  printf '%s' "${sim[client_secret]}" > "$dir/secret"
  siemcast_config "$dir" "$rx_port" tcp "[azure]
tenant_id = \"${sim[tenant_id]}\"
client_id = \"${sim[client_id]}\"
client_secret_file = \"$dir/secret\"
login_endpoint = \"${sim[login]}\"
management_endpoint = \"${sim[management]}\"
graph_endpoint = \"${sim[graph]}\"
[[source]]
name = \"activity\"
kind = \"azure_activity\"
subscriptions = [\"${sim[subscription]}\"]
interval = \"1s\"
settle_delay = \"2s\"
start_at = \"2h\""
  local start
  start=$(date +%s.%N)
  env ${arena_env[@]+"${arena_env[@]}"} RUST_LOG=warn "$bin" run -c "$dir/siemcast.toml" 2> "$dir/log" &
  finish "poller" $! "$start" "$dir/received" "${sim[activity_records]}"
  echo "  (the simulator process used $(awk -v hz="$hz" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$sim_pid/stat") s CPU serving the pages)"
}

run_dedupe() {
  local dir="$work/dedupe" n="$DEDUPE_N"
  mkdir -p "$dir"
  "$simulator" --signins --events "$n" --span-secs 3600 > "$dir/sim" &
  local sim_pid=$!
  for _ in $(seq 600); do grep -q '^ready' "$dir/sim" 2>/dev/null && break; sleep 0.1; done
  local -A sim
  while IFS='=' read -r k v; do sim[$k]="$v"; done < <(grep = "$dir/sim")
  start_receiver "$n" "$dir/received" --linger "$DEDUPE_LINGER"
  printf '%s' "${sim[client_secret]}" > "$dir/secret"
  siemcast_config "$dir" "$rx_port" tcp "[azure]
tenant_id = \"${sim[tenant_id]}\"
client_id = \"${sim[client_id]}\"
client_secret_file = \"$dir/secret\"
login_endpoint = \"${sim[login]}\"
management_endpoint = \"${sim[management]}\"
graph_endpoint = \"${sim[graph]}\"
[azure.rate_limits]
# The simulator does not throttle; Microsoft's 5 requests per 10 s would make this a
# measurement of the limiter (1,000 pages of 1,000 sign-ins: 2,000 s per poll).
entra_reports = \"1000/1s\"
[[source]]
name = \"signins\"
kind = \"entra_signins\"
interval = \"5s\"
settle_delay = \"2s\"
start_at = \"2h\""
  local start
  start=$(date +%s.%N)
  env ${arena_env[@]+"${arena_env[@]}"} RUST_LOG="warn,siemcast::sources::poll=debug" "$bin" run -c "$dir/siemcast.toml" 2> "$dir/log" &
  finish "dedupe" $! "$start" "$dir/received" "$n"
  # Exactly once: as many lines as ids, also after the polls that read every sign-in again.
  local lines
  lines=$(tail -n1 "$dir/received" | tr ' ' '\n' | sed -n 's/^lines=//p')
  [ "$lines" = "$n" ] || sed -i '$ s/\tok\t/\tDUPLICATES\t/' "$results"
  python3 - "$dir/log" "$n" <<'PY'
import re, sys
n = int(sys.argv[2])
lines = (re.sub(r"\x1b\[[0-9;]*m", "", l) for l in open(sys.argv[1]))
reads = [dict(re.findall(r"(\w+)=(\d+)", l)) for l in lines if "Window read." in l]
whole = sum(1 for r in reads if int(r.get("fetched", 0)) >= n)
print(f"  windows read: {len(reads)}, {whole} of them with all {n} sign-ins; records read: "
      f"{sum(int(r.get('fetched', 0)) for r in reads)}; ids remembered at the end: "
      f"{reads[-1].get('remembered', '?') if reads else '?'}")
PY
  echo "  (the simulator process used $(awk -v hz="$hz" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$sim_pid/stat") s CPU serving the pages)"
}

run_backlog() {
  local dir="$work/backlog" n="$BACKLOG_N"
  mkdir -p "$dir/input"
  generate "$n" "$dir/input/events.ndjson"
  # A port nobody listens on yet: the destination retries while the source fills the spool.
  rx_port=$(free_port)
  local mport
  mport=$(free_port)
  siemcast_config "$dir" "$rx_port" tcp "$(files_source | sed "s|$work/input|$dir/input|")"
  sed -i "s|^address = \"\"$|address = \"127.0.0.1:$mport\"|" "$dir/siemcast.toml"
  local start pid
  start=$(date +%s.%N)
  env ${arena_env[@]+"${arena_env[@]}"} RUST_LOG=warn "$bin" run -c "$dir/siemcast.toml" 2> "$dir/log" &
  pid=$!
  # Filled when the source's spooled counter reaches n (read from the metrics endpoint).
  local spooled=0
  while [ "$spooled" -lt "$n" ]; do
    sleep 0.2
    spooled=$(python3 - "$mport" <<'PY'
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
    print(sum(int(float(l.split()[-1])) for l in text.splitlines() if l.startswith("siemcast_source_events_spooled_total")))
except Exception:
    print(0)
PY
)
    kill -0 "$pid" || { echo "siemcast exited while filling" >&2; exit 1; }
  done
  local filled fill_hwm fill_ticks
  filled=$(date +%s.%N)
  fill_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  fill_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo 5 > "/proc/$pid/clear_refs" # resets VmHWM: what follows is the drain alone
  "$receiver" --listen "127.0.0.1:$rx_port" --expect "$n" > "$dir/received" &
  rx_pid=$!
  local drain_start
  drain_start=$(date +%s.%N)
  python3 - "$n" "$start" "$filled" "$fill_hwm" "$fill_ticks" "$hz" <<'PY' >> "$dir/fill"
import sys
n, start, filled, hwm, ticks, hz = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"  fill      {n / (filled - start):9.0f} events/s into the spool  {ticks / hz / n * 1e6:6.2f} CPU s/M  {hwm / 1024:6.1f} MiB peak RSS while filling")
PY
  cat "$dir/fill"
  # The drain rate counts from the first event received: the destination may still be
  # sleeping out its reconnect backoff (up to 30 s) when the receiver starts.
  finish "backlog" "$pid" "$drain_start" "$dir/received" "$n" "$fill_ticks" first
}

echo "running: $MODES"
for mode in $MODES; do
  case "$mode" in
    tcp | tls) run_siemcast "$mode" ;;
    syslog-ng) run_syslog_ng ;;
    poller) run_poller ;;
    backlog) run_backlog ;;
    dedupe) run_dedupe ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done

python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print()
print(f"{'run':<14}{'events':>9}{'events/s':>11}{'CPU s/M':>9}{'sys s/M':>9}{'faults/ev':>10}{'peak RSS MiB':>14}{'lines':>9}{'ids':>9}  check  receiver CPU s/M")
for r in rows:
    print(f"{r[0]:<14}{r[1]:>9}{int(r[2]):>11,}{r[3]:>9}{r[9]:>9}{r[10]:>10}{r[4]:>14}{r[5]:>9}{r[6]:>9}  {r[7]:<6} {r[8]}")
by = {r[0]: r for r in rows}
if "siemcast-tcp" in by and "syslog-ng" in by:
    t, g = by["siemcast-tcp"], by["syslog-ng"]
    print(f"\nsiemcast/syslog-ng: {float(t[2]) / max(float(g[2]), 1):.1f}x events/s, "
          f"{float(g[3]) / max(float(t[3]), 1e-9):.1f}x less CPU per event")
if "siemcast-tcp" in by and "siemcast-tls" in by:
    print(f"TLS/TCP: {float(by['siemcast-tls'][2]) / max(float(by['siemcast-tcp'][2]), 1):.2f} of TCP's events/s")
if any(r[7] != "ok" for r in rows):
    sys.exit(1)
PY
