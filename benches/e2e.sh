#!/usr/bin/env bash
# End-to-end benchmark: N realistic Azure Activity events (deterministic) in a folder →
# `siemcast run` (files source → spool → CEF → syslog) → a real rsyslog receiver on loopback,
# over TCP and over TLS. Prints events/s, CPU seconds per million events and peak RSS of
# siemcast, and checks that every event arrived.
#
#   benches/e2e.sh [N]          (default N = 200000; needs rsyslog, rsyslog-openssl, openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
cargo build --release --quiet
bin="$PWD/target/release/siemcast"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Deterministic input: the same generator as the tests, in Python for speed of writing.
mkdir -p "$work/input"
python3 - "$N" "$work/input/events.ndjson" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
sub = "00000000-0000-0000-0000-000000000001"
with open(path, "w") as f:
    for i in range(n):
        rg = f"rg-{i % 7}"
        rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm-{i}"
        f.write(json.dumps({
            "authorization": {"action": "Microsoft.Compute/virtualMachines/write", "scope": rid},
            "caller": f"user{i % 13}@contoso.com", "channels": "Operation",
            "claims": {"ipaddr": f"10.0.{i % 250}.{i % 200}", "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
            "correlationId": f"c0ffee00-0000-0000-0000-{i:012d}", "description": "",
            "eventDataId": f"ev-{i:07d}",
            "eventName": {"value": "EndRequest", "localizedValue": "End request"},
            "category": {"value": "Administrative", "localizedValue": "Administrative"},
            "eventTimestamp": "2026-11-01T10:00:00.1234567Z", "id": f"/subscriptions/{sub}/events/ev-{i:07d}",
            "level": "Error" if i % 10 == 0 else "Informational", "operationId": f"op-{i}",
            "operationName": {"value": "Microsoft.Compute/virtualMachines/write", "localizedValue": "Create or Update Virtual Machine"},
            "resourceGroupName": rg,
            "resourceProviderName": {"value": "Microsoft.Compute", "localizedValue": "Microsoft.Compute"},
            "resourceType": {"value": "Microsoft.Compute/virtualMachines", "localizedValue": "Microsoft.Compute/virtualMachines"},
            "resourceId": rid, "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
            "subStatus": {"value": "Created", "localizedValue": "Created (HTTP Status Code: 201)"},
            "submissionTimestamp": "2026-11-01T10:02:00.000Z", "subscriptionId": sub,
            "tenantId": "11111111-1111-1111-1111-111111111111",
            "properties": {"statusCode": "Created", "serviceRequestId": None},
        }, separators=(",", ":")) + "\n")
PY
bytes=$(stat -c %s "$work/input/events.ndjson")
echo "input: $N events, $((bytes / N)) bytes each on average"

# Certificates for the TLS run.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=siemcast bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_one() { # $1 = tcp | tls
  local mode="$1" port dir
  port=$(free_port)
  dir="$work/$mode"
  mkdir -p "$dir"
  local global="" module="module(load=\"imtcp\")"
  if [ "$mode" = tls ]; then
    global=" defaultNetstreamDriver=\"ossl\" defaultNetstreamDriverCAFile=\"$work/ca.pem\" defaultNetstreamDriverCertFile=\"$work/server.pem\" defaultNetstreamDriverKeyFile=\"$work/server.key\""
    module="module(load=\"imtcp\" streamDriver.name=\"ossl\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")"
  fi
  cat > "$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir" maxMessageSize="64k"$global)
$module
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="in") { action(type="omfile" file="$dir/out.log" template="raw" asyncWriting="on" ioBufferSize="1m" flushOnTXEnd="off") }
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="in")
CONF
  /usr/sbin/rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslog.pid" &
  local rs=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  local tls_section=""
  [ "$mode" = tls ] && tls_section=$'[destination.tls]\nca_file = "'"$work/ca.pem"$'"\nserver_name = "localhost"'
  cat > "$dir/siemcast.toml" <<CONF
state_dir = "$dir/state"
[metrics]
address = ""
[[source]]
name = "bench"
kind = "files"
path = "$work/input"
source_kind = "azure_activity"
interval = "100ms"
batch_size = 5000
[[destination]]
name = "rsyslog"
address = "127.0.0.1:$port"
transport = "$mode"
mappings = "$PWD/mappings/arcsight"
$tls_section
CONF
  local start end pid lines=0
  start=$(date +%s.%N)
  RUST_LOG=warn "$bin" run -c "$dir/siemcast.toml" &
  pid=$!
  local deadline=$((SECONDS + 600))
  while [ "$lines" -lt "$N" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
    lines=$( (wc -l < "$dir/out.log") 2>/dev/null || echo 0)
  done
  end=$(date +%s.%N)
  local hwm ticks
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)
  kill -TERM $pid; wait $pid || true
  kill -TERM $rs; wait $rs 2>/dev/null || true
  local distinct
  distinct=$(grep -o 'externalId=ev-[0-9]*' "$dir/out.log" | sort -u | wc -l)
  python3 - "$mode" "$N" "$start" "$end" "$hwm" "$ticks" "$(getconf CLK_TCK)" "$distinct" <<'PY'
import sys
mode, n, start, end, hwm, ticks, hz, distinct = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
secs = end - start
cpu = ticks / hz
print(f"{mode}: {n} events in {secs:.2f} s = {n/secs:,.0f} events/s; siemcast CPU {cpu:.2f} s "
      f"({cpu / n * 1e6:.2f} s per million); peak RSS {hwm/1024:.1f} MiB; distinct ids received {distinct}"
      + ("" if distinct == n else "  <-- MISSING EVENTS"))
PY
}

run_one tcp
run_one tls
