#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with Rust: installs the real peers the
# tests talk to (rsyslog with its TLS driver, syslog-ng unpacked beside it, openssl, tinyproxy),
# systemd-analyze (package systemd), groff (groff-base, lints the man page), man (man-db:
# verify resolves the unit's Documentation=man:siemcast(1)) and librdkafka's build tools with
# apt-get when missing, checks formatting and lints, checks the systemd unit and the .deb
# (cargo-deb from the Rust package registry when missing), then runs every unit, golden, property and
# whole-program test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so ] || [ -n "$(find /usr/lib -name lmnsd_ossl.so 2>/dev/null | head -n 1)" ] || missing+=(rsyslog-openssl)
command -v openssl >/dev/null || missing+=(openssl)
# The HTTP proxy of the proxy tests (tests/it/sources/proxy.rs).
[ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v groff >/dev/null || missing+=(groff-base)
command -v man >/dev/null || missing+=(man-db)
# Building librdkafka (the rdkafka crate's C library, for the eventhubs source): make, a C
# compiler, pkg-config and the OpenSSL and zlib headers.
command -v make >/dev/null || missing+=(make)
command -v cc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing test dependencies: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# syslog-ng conflicts with rsyslog as a package: it is unpacked into target/peers instead.
./scripts/install-syslog-ng.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --locked
./scripts/check-systemd.sh target/debug/siemcast
./scripts/check-deb.sh
cargo test --locked
