#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Modeled guest throughput against the consolidation ratio, per workload and placement policy.
#
# For each workload, ratio and policy one simulated guest runs in epoch mode with that ratio
# and policy (vpm-simguest -r -P -m epoch); after a warm-up (the policies need epochs to
# converge) two 'stats' snapshots WINDOW seconds apart give its steady-state modeled
# throughput: delta ops * vCPUs / (delta modeled_ns / 1e9). Baselines, measured in the same
# run: ratio 1 (every page on a PM frame; its vpm run) and DRAM-only (ratio = pages: one page
# on PM). ratio-sweep-report.py prints the tables, the targets (vpm >= 0.95 x oracle at every
# ratio, and ahead of static, random and lru) and plots the sweep.
#
#   bench/ratio-sweep.sh
#
# Environment: WORKLOADS, RATIOS, POLICIES (space-separated), PAGES (2048), VCPUS (2),
# SEED (42), WARMUP (2 s), WINDOW (2 s), VPM_BUILD. Results: bench/results/ratio-sweep-*.csv
# and .png. Each workload gets a fresh pool and vpmd; each run a new VM.
. "$(dirname "$0")/lib.sh"

WORKLOADS=${WORKLOADS:-zipf-kv btree scan log}
RATIOS=${RATIOS:-1 1.5 2 3 4 8}
POLICIES=${POLICIES:-vpm static random lru oracle}
PAGES=${PAGES:-2048}
VCPUS=${VCPUS:-2}
SEED=${SEED:-42}
WARMUP=${WARMUP:-2}
WINDOW=${WINDOW:-2}
MAX_DEVICES=60 # a pool's device table holds 64; each run creates one

bench_need "$VPMD" "$SIMGUEST"
command -v gnuplot >/dev/null || bench_log "gnuplot is missing (scripts/deps.sh bench): no plot"
CSV="$RESULTS/ratio-sweep-$STAMP.csv"
PNG="$RESULTS/ratio-sweep-$STAMP.png"
devices=0

fresh_vpmd() {
	# a pool whose log takes a whole DRAM-only commit, and frames for every run's device
	bench_start_vpmd 512M 64M "epoch_interval = 100ms"
	devices=0
}

# run WORKLOAD POLICY RATIO LABEL: one guest, one CSV line.
run() {
	local wl=$1 pol=$2 ratio=$3 label=$4 name s1 s2 v
	if [ "$devices" -ge "$MAX_DEVICES" ]; then
		fresh_vpmd
	fi
	devices=$((devices + 1))
	name="$wl-$pol-r${label//./_}"
	bench_guest "$name" -p "$PAGES" -c "$VCPUS" -w "$wl" -S "$SEED" -m epoch -r "$ratio" \
		-P "$pol" -d $((WARMUP + WINDOW + 60))
	sleep "$WARMUP"
	s1=$(vm_stats "$name")
	sleep "$WINDOW"
	s2=$(vm_stats "$name")
	v=$(vm_summary "$name")
	bench_stop_guest "$name"
	jq -nr --argjson a "$s1" --argjson b "$s2" --argjson v "$v" \
		--arg wl "$wl" --arg pol "$pol" --arg lab "$label" '
		($b.ops - $a.ops) as $ops | ($b.modeled_ns - $a.modeled_ns) as $ns |
		[$wl, $pol, $v.ratio, $lab, $v.pages, $v.vcpus, $v.pm_target, $v.dram_share,
		 $ops, $ns, (if $ns > 0 then $ops * $v.vcpus * 1e9 / $ns else 0 end),
		 $b.pages.dram, $b.pages.pm, $v.converged, ($b.epochs - $a.epochs),
		 ($b.early_epochs - $a.early_epochs),
		 ($b.migrations.promotions - $a.migrations.promotions),
		 ($b.migrations.demotions - $a.migrations.demotions), $b.pause_usec.p99]
		| @csv' >>"$CSV"
	tail -n 1 "$CSV" | awk -F, '{ printf "  %-8s %-7s ratio %-9s %6.3f Mops/s  (%s ops in the window)\n",
		$1, $2, $4, $11 / 1e6, $9 }' | tr -d '"' >&2
}

echo "workload,policy,ratio,ratio_label,pages,vcpus,pm_target,dram_share,ops,modeled_ns,modeled_ops_per_sec,dram_pages,pm_pages,converged,epochs,early_epochs,promotions,demotions,pause_p99_usec" >"$CSV"
bench_env
echo "ratio-sweep: $PAGES pages, $VCPUS vCPUs, seed $SEED, epoch mode, warm-up ${WARMUP} s, window ${WINDOW} s"
t0=$(date +%s)
for wl in $WORKLOADS; do
	bench_log "$wl: fresh pool and vpmd"
	fresh_vpmd
	# DRAM-only baseline: ratio = pages leaves one page on PM
	run "$wl" vpm "$PAGES" dram-only
	for ratio in $RATIOS; do
		for pol in $POLICIES; do
			run "$wl" "$pol" "$ratio" "$ratio"
		done
	done
	bench_stop_vpmd
done
echo "ratio-sweep: $(($(date +%s) - t0)) s of runs"
"$PYTHON" "$BENCH_DIR/ratio-sweep-report.py" "$CSV" ${PNG:+--png "$PNG"}
