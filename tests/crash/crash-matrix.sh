#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The crash matrix: run the scripted multi-device workload once to count its persist points,
# then for every N from 1 to that count, in both modes (die before the Nth durable write, or
# after only half of it reached the media): crash there, let vpmd recover the pool, and
# compare every device with the oracle (the state after the last commit that completed, or
# the one in flight if its commit record made it). Zero mismatches allowed.
. "$(dirname "$0")/crash-lib.sh"

SEED=${VPM_CRASH_SEED:-20261127}
STEPS=${VPM_CRASH_STEPS:-60}
write_vpmd_config

fresh_pool
VPM_CRASH_REPORT="$T/points" "$PMSTRESS" run "$POOL" "$T/work" "$SEED" "$STEPS" ||
	fail "the workload fails without crashes"
"$PMSTRESS" verify "$POOL" "$T/work" "$SEED" >/dev/null || fail "no-crash run does not verify"
total=$(awk '{print $2}' "$T/points")
[ "$total" -gt 100 ] || fail "only $total persist points: the workload is too small"

runs=0
for mode in crash torn; do
	for n in $(seq 1 "$total"); do
		fresh_pool
		rc=0
		VPM_CRASH_AT=$n VPM_CRASH_MODE=$mode "$PMSTRESS" run "$POOL" "$T/work" "$SEED" \
			"$STEPS" 2>"$T/run.err" || rc=$?
		[ "$rc" -eq 99 ] || fail "$mode at point $n: the workload exited $rc, not at the crash"
		recover_with_vpmd
		if ! "$PMSTRESS" verify "$POOL" "$T/work" "$SEED" >"$T/verify.out" 2>&1; then
			cat "$T/verify.out" >&2
			fail "$mode at point $n of $total: recovered state differs from the oracle"
		fi
		runs=$((runs + 1))
	done
done
echo "crash-matrix: $total persist points x 2 modes = $runs crashes recovered by vpmd, 0 mismatches"
