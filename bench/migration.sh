#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Demotion throughput and convergence time. A simulated guest of 64 MiB runs the scan
# workload (read-mostly) at ratio = pages, so that the pages it touches land in DRAM; once it
# has touched every page (stats pages.image == 0), 'vm-set ratio 1' sends them all to PM.
# migration_rate = 64G, so the rate limit does not bind. vpmd times its demotion batches of
# 2 MiB or more (stats migrations.batch_bytes / batch_usec): their throughput is compared with
# memcpy bandwidth on large buffers measured right before (bench-memcpy). Target: >= 0.7.
# The convergence time runs from the vm-set request to the first 'vms' reply that says
# converged (polled every millisecond). Then 'vm-set ratio = pages' brings the pages back to
# DRAM and the next round starts.
#
#   bench/migration.sh
#
# Environment: MIB (64), VCPUS (2), ROUNDS (5), VPM_BUILD.
# Results: bench/results/migration-*.csv.
. "$(dirname "$0")/lib.sh"

MIB=${MIB:-64}
VCPUS=${VCPUS:-2}
ROUNDS=${ROUNDS:-5}
SEED=${SEED:-42}
PAGES=$((MIB * 256))

bench_need "$VPMD" "$SIMGUEST" "$MEMCPY"
CSV="$RESULTS/migration-$STAMP.csv"

bench_env
bw=$(memcpy_bandwidth)
echo "migration: memcpy bandwidth (bench-memcpy, ${MEMCPY_MIB:-256} MiB buffers, median of ${MEMCPY_RUNS:-7}): $bw MiB/s"
echo "migration: $MIB MiB guest ($PAGES pages, $VCPUS vCPUs, scan), migration_rate = 64G, epoch_interval 100ms"
bench_start_vpmd 1G 256M "migration_rate = 64G" "epoch_interval = 100ms"
name="scan-${MIB}m"
bench_guest "$name" -p "$PAGES" -c "$VCPUS" -w scan -S "$SEED" -m epoch -r "$PAGES" -d 3600
w=$(req wait-until "$name" "s['pages']['image'] == 0" 120) ||
	bench_fail "the guest did not touch every page within 120 s"
echo "migration: every page touched after $(jq -r '.elapsed_sec * 10 | round / 10' <<<"$w") s: $(jq -c '.stats.pages' <<<"$w")"

"$PYTHON" "$BENCH_DIR/migration-rounds.py" "$SOCK" "$name" "$PAGES" "$ROUNDS" "$bw" "$CSV"
bench_stop_guest "$name"
bench_stop_vpmd
echo "results: ${CSV#"$SRC_DIR"/}"
