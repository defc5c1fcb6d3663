#!/usr/bin/env bash
# Checks systemd/siemcast.service the way systemd will read it: `systemd-analyze verify` must
# report nothing, and `systemd-analyze security --offline=true` must score at most 2.0 ("OK").
# The unit names /usr/bin/siemcast; verify needs an executable there, so a copy of the unit
# pointing at this tree's build is checked. Usage: scripts/check-systemd.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."

unit=systemd/siemcast.service
max_exposure=2.0
binary=${1:-$PWD/target/debug/siemcast}

command -v systemd-analyze >/dev/null || {
  echo "check-systemd: systemd-analyze not found; install the systemd package (apt-get install systemd)" >&2
  exit 1
}
[ -x "$binary" ] || {
  echo "check-systemd: $binary is not built; run cargo build first" >&2
  exit 1
}
binary=$(realpath "$binary") # systemd accepts only absolute paths

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#/usr/bin/siemcast#$binary#g" "$unit" >"$work/siemcast.service"
# Documentation=man:siemcast(1) must resolve: the page of this tree, as the package installs it.
mkdir -p "$work/man/man1"
cp man/siemcast.1 "$work/man/man1/"
export MANPATH="$work/man:"

echo "systemd-analyze verify $unit"
out=$(systemd-analyze verify "$work/siemcast.service" 2>&1) || {
  echo "$out" >&2
  echo "check-systemd: systemd-analyze verify failed for $unit" >&2
  exit 1
}
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "check-systemd: systemd-analyze verify printed warnings for $unit; fix them" >&2
  exit 1
fi

echo "systemd-analyze security --offline=true $unit"
report=$(systemd-analyze security --offline=true --no-pager "$work/siemcast.service" 2>&1) || true
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -n 1)
if [ -z "$score" ]; then
  printf '%s\n' "$report" >&2
  echo "check-systemd: no exposure level in the security report" >&2
  exit 1
fi
if awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
  printf '%s\n' "$report" | grep -E '^✗' >&2 || true
  echo "check-systemd: exposure $score is above $max_exposure" >&2
  exit 1
fi
echo "check-systemd: verify clean, exposure $score (limit $max_exposure)"
