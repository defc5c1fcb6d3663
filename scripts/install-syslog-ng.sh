#!/usr/bin/env bash
# Unpacks Debian's syslog-ng-core into a folder (default: target/peers/syslog-ng) so tests can
# run it beside rsyslog: the two packages conflict, so only its libraries are installed with
# apt-get and the package itself is unpacked with dpkg -x.
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/target/peers/syslog-ng}"
if [ -x "$dest/usr/sbin/syslog-ng" ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q syslog-ng-core >/dev/null) || {
  $sudo apt-get update -qq
  (cd "$tmp" && apt-get download -q syslog-ng-core >/dev/null)
}
deb=$(ls "$tmp"/syslog-ng-core_*.deb)
# Its libraries, without the alternatives that would replace the system logger.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' \
  | grep -v -E '^(sysvinit-utils|lsb-base)$' | tr '\n' ' ')
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $deps >/dev/null
mkdir -p "$dest"
dpkg -x "$deb" "$dest"
echo "syslog-ng unpacked into $dest"
