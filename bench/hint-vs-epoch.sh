#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Write amplification of the two durability modes that consolidate. A simulated guest runs
# the log workload (64-512 byte appends, each followed by a persist hint of exactly its bytes)
# at ratio 2, once in hint mode (vpmd commits each hinted range before the hint returns) and
# once in epoch mode (vpmd commits the dirty pages every epoch). After a warm-up, the same
# number of operations is measured in both: bytes vpmd appended to the PM log (stats
# log_bytes) per byte the guest asked to persist (stats hints.persist_bytes), and PM bytes
# written in all (log + PM frames, stats pm_bytes_written) per persisted byte. The ratio of
# the two modes is the figure to compare between runs.
#
#   bench/hint-vs-epoch.sh
#
# Environment: OPS (operations measured per mode, 1000000), PAGES (2048), VCPUS (2),
# WARMUP (1 s), PACE_USEC (think time after each operation, both modes; 0), VPM_BUILD.
# Results: bench/results/hint-vs-epoch-*.csv.
. "$(dirname "$0")/lib.sh"

OPS=${OPS:-1000000}
PAGES=${PAGES:-2048}
VCPUS=${VCPUS:-2}
WARMUP=${WARMUP:-1}
PACE_USEC=${PACE_USEC:-0}
SEED=${SEED:-42}
RATIO=2

bench_need "$VPMD" "$SIMGUEST"
CSV="$RESULTS/hint-vs-epoch-$STAMP.csv"

bench_env
echo "hint-vs-epoch: log workload, $PAGES pages, $VCPUS vCPUs, ratio $RATIO, $OPS operations per mode after a ${WARMUP} s warm-up, pace ${PACE_USEC} us"
bench_start_vpmd 512M 64M "epoch_interval = 100ms"
echo "mode,ratio,pages,vcpus,ops,persist_hints,persist_bytes,log_bytes,log_per_persisted_byte,pm_bytes_written,pm_written_per_persisted_byte,epochs,wall_sec,wall_ops_per_sec,modeled_ops_per_sec" >"$CSV"
for mode in hint epoch; do
	name="log-$mode"
	bench_guest "$name" -p "$PAGES" -c "$VCPUS" -w log -S "$SEED" -m "$mode" -r "$RATIO" \
		-i "$PACE_USEC" -d 3600
	sleep "$WARMUP"
	a=$(vm_stats "$name")
	b=$(req wait-until "$name" "s['ops'] >= $(jq .ops <<<"$a") + $OPS" 600 0.005) ||
		bench_fail "$name did not run $OPS operations within 600 s"
	bench_stop_guest "$name"
	jq -nr --argjson a "$a" --argjson b "$b" --arg mode "$mode" --argjson ratio "$RATIO" '
		$b.stats as $s | ($s.ops - $a.ops) as $ops |
		($s.hints.persist_bytes - $a.hints.persist_bytes) as $pb |
		($s.log_bytes - $a.log_bytes) as $lb |
		($s.pm_bytes_written - $a.pm_bytes_written) as $wb |
		($s.modeled_ns - $a.modeled_ns) as $ns |
		[$mode, $ratio, $b.vm.pages, $b.vm.vcpus, $ops,
		 ($s.hints.persist - $a.hints.persist), $pb, $lb, ($lb / $pb * 1000 | round / 1000),
		 $wb, ($wb / $pb * 1000 | round / 1000), ($s.epochs - $a.epochs),
		 ($b.elapsed_sec * 100 | round / 100), ($ops / $b.elapsed_sec | round),
		 (if $ns > 0 then $ops * $b.vm.vcpus * 1e9 / $ns | round else 0 end)] | @csv' >>"$CSV"
	bench_log "$mode done"
done
bench_stop_vpmd

awk -F, 'NR > 1 {
	gsub(/"/, "")
	mode[NR] = $1; lpp[$1] = $9; wpp[$1] = $11
	printf "%-6s %9d %9d %12d %12d %9.3f %12d %9.3f %7d %9.2f %10d\n", $1, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
}
BEGIN {
	printf "\n%-6s %9s %9s %12s %12s %9s %12s %9s %7s %9s %10s\n", "mode", "ops", "hints",
		"persisted B", "logged B", "log/pers", "PM written B", "PM/pers", "epochs", "wall s", "wall ops/s"
}
END {
	printf "\nbytes logged per byte persisted: hint %.3f, epoch %.3f; epoch / hint = %.2f\n",
		lpp["hint"], lpp["epoch"], lpp["epoch"] / lpp["hint"]
	printf "PM bytes written (log + frames) per byte persisted: hint %.3f, epoch %.3f; epoch / hint = %.2f\n",
		wpp["hint"], wpp["epoch"], wpp["epoch"] / wpp["hint"]
}' "$CSV"
echo "results: ${CSV#"$SRC_DIR"/}"
