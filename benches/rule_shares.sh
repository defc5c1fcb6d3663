#!/usr/bin/env bash
# What each example noise rule (mappings/rules.example.toml) filters, per source kind, on the
# simulator's data (examples/simulator_records.rs, PER_KIND records per kind), on the samples
# in examples/events and on the documentation records in tests/fixtures/real: the figures that
# rules.example.toml quotes. Each set is decided by `siemcast dry-run --totals` with the
# shipped QRadar mappings, as the service would at send time; rules that filter nothing of a
# kind are left out of its lines.
#
#   benches/rule_shares.sh            PER_KIND=2000 (Office 365: that many per content type)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tgt="${CARGO_TARGET_DIR:-$root/target}"
cargo build --quiet --bin siemcast --example simulator_records
bin="$tgt/debug/siemcast"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kinds="azure_activity defender_alerts graph_alerts entra_audit entra_signins o365_management"

"$tgt/debug/examples/simulator_records" --out "$work/simulator" --per-kind "${PER_KIND:-2000}" > /dev/null

{
  echo "state_dir = \"$work/state\""
  for k in $kinds; do
    printf '[[source]]\nname = "%s"\nkind = "files"\npath = "%s"\nsource_kind = "%s"\n' "$k" "$work" "$k"
  done
  printf '[[destination]]\nname = "siem"\naddress = "127.0.0.1:514"\ntransport = "tcp"\n'
  printf 'mappings = "%s/mappings/qradar"\nrules_file = "%s/mappings/rules.example.toml"\n' "$root" "$root"
} > "$work/siemcast.toml"

# One NDJSON file per kind from each data set.
mkdir -p "$work/examples" "$work/real"
for k in $kinds; do
  cp "examples/events/$k.json" "$work/examples/$k.ndjson"
  : > "$work/real/$k.ndjson"
  for f in tests/fixtures/real/"$k"/*.json; do
    python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
recs = v["value"] if isinstance(v, dict) and isinstance(v.get("value"), list) else (v if isinstance(v, list) else [v])
for r in recs: print(json.dumps(r, separators=(",", ":")))' "$f" >> "$work/real/$k.ndjson"
  done
done

for set in simulator examples real; do
  echo "== $set"
  for k in $kinds; do
    input="$work/$set/$k.ndjson"
    [ -s "$input" ] || { echo "$k: no records"; continue; }
    echo "-- $k"
    "$bin" dry-run -c "$work/siemcast.toml" --destination siem --source "$k" --input "$input" --totals |
      grep -v ': 0 events, 0 bytes$' || true
  done
done
