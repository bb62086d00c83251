#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Epoch pause against the dirty set. For each size, a simulated guest of that many MiB runs
# the fill workload (whole-page writes in order: every page dirty every epoch) with every page
# in DRAM (ratio = pages: one page on PM) and epoch_interval = 100ms. Its pause p99 (vpmd's
# 'stats') is compared with a bound measured right before on this machine: dirty bytes /
# memcpy bandwidth on large buffers (bench-memcpy). Target: p99 <= 1.5 x bound + 100 us.
# The dirty pages per epoch (mean over the measured window) must equal the page count, or the
# run did not measure what it says; the report tells.
#
#   bench/pause.sh
#
# Environment: SIZES (MiB, "1 2 4 8 16 32 64"), VCPUS (1: the guest's vCPU and vpmd's thread
# each get one of two cores), DURATION (30 s per size: 300 epochs, so that the 1 % above the
# p99 can hold the warm-up's pauses), VPM_BUILD. Results: bench/results/pause-*.csv.
. "$(dirname "$0")/lib.sh"

SIZES=${SIZES:-1 2 4 8 16 32 64}
VCPUS=${VCPUS:-1}
DURATION=${DURATION:-30}
SEED=${SEED:-42}

bench_need "$VPMD" "$SIMGUEST" "$MEMCPY"
CSV="$RESULTS/pause-$STAMP.csv"

bench_env
bw=$(memcpy_bandwidth)
echo "pause: memcpy bandwidth (bench-memcpy, ${MEMCPY_MIB:-256} MiB buffers, median of ${MEMCPY_RUNS:-7}): $bw MiB/s"
echo "pause: fill workload, $VCPUS vCPU(s), ratio = pages (all in DRAM but one page), epoch_interval 100ms, $DURATION s per size"
# the log takes two commits of the largest dirty set with room to spare
bench_start_vpmd 1G 512M "epoch_interval = 100ms"

echo "size_mib,pages,vcpus,epochs,pause_samples,pause_p50_usec,pause_p99_usec,pause_max_usec,bound_usec,p99_over_bound,target_usec,target_met,dirty_per_epoch_window,dirty_per_epoch_last,dirty_equals_pages,memcpy_mib_per_sec" >"$CSV"
rows=()
for mib in $SIZES; do
	pages=$((mib * 256))
	name="fill-${mib}m"
	bench_guest "$name" -p "$pages" -c "$VCPUS" -w fill -S "$SEED" -m epoch -r "$pages" \
		-d $((DURATION + 60))
	start=$(date +%s.%N)
	# warm: every page touched (in DRAM) and one whole epoch of them dirty
	req wait-until "$name" "s['pages']['image'] == 0 and s['dirty_pages_per_epoch']['last'] >= $pages" \
		20 >/dev/null || bench_log "$name: not every page dirty in an epoch within 20 s; measuring anyway"
	a=$(vm_summary "$name")
	left=$(awk -v s="$start" -v now="$(date +%s.%N)" -v d="$DURATION" 'BEGIN { x = d - (now - s); print (x > 1 ? x : 1) }')
	sleep "$left"
	b=$(vm_summary "$name")
	s=$(vm_stats "$name")
	bench_stop_guest "$name"
	line=$(jq -nr --argjson a "$a" --argjson b "$b" --argjson s "$s" --argjson mib "$mib" \
		--argjson pages "$pages" --argjson vcpus "$VCPUS" --argjson bw "$bw" '
		($pages * 4096 / ($bw * 1048576) * 1e6) as $bound |
		(1.5 * $bound + 100) as $target |
		(($b.dirty_pages - $a.dirty_pages) / ([($b.epochs - $a.epochs), 1] | max)) as $dpe |
		[$mib, $pages, $vcpus, $s.epochs, $s.pause_usec.samples, $s.pause_usec.p50,
		 $s.pause_usec.p99, $s.pause_usec.max, ($bound * 10 | round / 10),
		 ($s.pause_usec.p99 / $bound * 100 | round / 100), ($target | round),
		 (if $s.pause_usec.p99 <= $target then "yes" else "no" end),
		 ($dpe * 10 | round / 10), $s.dirty_pages_per_epoch.last,
		 (if ($dpe - $pages | fabs) < 1 then "yes" else "no" end), $bw] | @csv')
	echo "$line" >>"$CSV"
	rows+=("$line")
	bench_log "$mib MiB done"
done
bench_stop_vpmd

printf '\n%-6s %6s %7s %9s %9s %9s %9s %7s %10s %-8s %-s\n' "dirty" "pages" "epochs" \
	"p50 us" "p99 us" "max us" "bound us" "p99/bd" "target us" "target" "dirty pages/epoch (window mean)"
for line in "${rows[@]}"; do
	awk -F, '{
		gsub(/"/, "")
		dirty = ($15 == "yes") ? sprintf("%.0f = pages", $13) : \
			sprintf("%.0f: NOT the page count (%.0f%% of it)", $13, 100 * $13 / $2)
		printf "%3d MiB %6d %7d %9d %9d %9d %9.1f %7.2f %10d %-8s %s\n",
			$1, $2, $4, $6, $7, $8, $9, $10, $11, ($12 == "yes" ? "met" : "NOT met"), dirty
	}' <<<"$line"
done
echo
echo "bound = dirty bytes / memcpy bandwidth ($bw MiB/s); target: p99 <= 1.5 x bound + 100 us."
echo "p50/p99/max: vpmd's pause_usec over every epoch since the guest attached (warm-up included)."
met=$(cut -d, -f12 "$CSV" | grep -c '"yes"' || true)
echo "target met at $met of ${#rows[@]} sizes"
echo "results: ${CSV#"$SRC_DIR"/}"
