#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 at random moments while commits stream (with checkpoints running in a background
# thread), then recovery by vpmd and comparison with the oracle; the next round continues the
# workload on the recovered pool. VPM_KILL_ROUNDS (default 100) rounds; more for a soak.
. "$(dirname "$0")/crash-lib.sh"

SEED=${VPM_CRASH_SEED:-7}
ROUNDS=${VPM_KILL_ROUNDS:-100}
write_vpmd_config
fresh_pool
RANDOM=$SEED

for round in $(seq 1 "$ROUNDS"); do
	"$PMSTRESS" run "$POOL" "$T/work" "$SEED" 0 --background-checkpoint 2>"$T/run.err" &
	pid=$!
	sleep "0.0$((RANDOM % 9 + 1))$((RANDOM % 10))"
	kill -9 "$pid" 2>/dev/null || { cat "$T/run.err" >&2; fail "round $round: the workload died"; }
	wait "$pid" 2>/dev/null || true
	recover_with_vpmd
	if ! "$PMSTRESS" verify "$POOL" "$T/work" "$SEED" >"$T/verify.out" 2>&1; then
		cat "$T/verify.out" >&2
		fail "round $round: recovered state differs from the oracle"
	fi
done
echo "kill-loop: $ROUNDS kill -9 rounds, $(tail -n1 "$T/verify.out")"
