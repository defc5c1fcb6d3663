#!/bin/sh
# Throughput of the storage_archive source reading archived blobs from the simulator: runs the
# large-archive test (three containers of STORAGE_BENCH_RECORDS records each, read in 1 MiB
# ranges, every event delivered to rsyslog as CEF) and prints its figure line:
# events/s end to end, ranged reads, peak RSS.
#   benches/storage_archive.sh [records per container, default 15000] [--release]
set -eu
n=${1:-15000}
profile=${2:-}
STORAGE_BENCH_RECORDS=$n cargo test $profile --test it \
    sources::storage::storage_archive_reads_a_large_archive_in_ranges_with_bounded_memory \
    -- --nocapture 2>&1 | grep '^storage_archive:'
