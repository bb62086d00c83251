#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of vpmd itself at random moments while a simulated guest's commits stream: after
# each kill the pool is recovered and the guest's device must equal its image after some
# prefix of its writes (a consistent cut), with something committed. VPM_KILL_ROUNDS rounds
# (default 100); each round uses a new guest on the same pool.
. "$(dirname "$0")/crash-lib.sh"
SIMGUEST="$VPM_BUILD/vpmd/backend/sim/vpm-simguest"
SIMCHECK="$VPM_BUILD/tests/vpm-simcheck"
ROUNDS=${VPM_KILL_ROUNDS:-100}
RANDOM=${VPM_CRASH_SEED:-11}

POOL_SIZE=$((64 << 20))
LOG_SIZE=$((4 << 20))
write_vpmd_config
sed -i 's/^log_level = warning$/log_level = warning\nepoch_interval = 10ms/' "$T/vpmd.conf"
fresh_pool
mkdir -p "$T/hist"

for round in $(seq 1 "$ROUNDS"); do
	# every round's guest gets a device of its own: a new pool before the table is full
	if [ $((round % 60)) -eq 0 ]; then
		fresh_pool
	fi
	"$VPMD" --foreground --config "$T/vpmd.conf" 2>>"$T/vpmd.err" &
	vpmd=$!
	for _ in $(seq 1000); do
		[ -S "$T/state/sim.sock" ] && break
		kill -0 "$vpmd" 2>/dev/null || fail "round $round: vpmd did not start"
		sleep 0.01
	done
	"$SIMGUEST" -s "$T/state/sim.sock" -n "g$round" -p 64 -c 2 -w log -d 60 -R 60 \
		-S "$round" -H "$T/hist" >"$T/guest.out" 2>&1 &
	guest=$!
	# the guest writes its history once attached
	for _ in $(seq 300); do
		[ -e "$T/hist/g$round.vcpu0.hist" ] && break
		kill -0 "$guest" 2>/dev/null || fail "round $round: the guest did not attach: $(cat "$T/guest.out")"
		sleep 0.01
	done
	sleep "0.$((RANDOM % 6 + 2))$((RANDOM % 10))"
	kill -9 "$vpmd"
	wait "$vpmd" 2>/dev/null || true
	rm -f "$T/state/sim.sock"
	if ! "$SIMCHECK" "$POOL" "g$round" "$T/hist" "$round" prefix >"$T/check.out" 2>&1; then
		kill -9 "$guest" 2>/dev/null || true
		cat "$T/check.out" >&2
		fail "round $round: the recovered device is no prefix of the guest's writes"
	fi
	kill -9 "$guest" 2>/dev/null || true
	wait "$guest" 2>/dev/null || true
	grep -q "matches the first [1-9]" "$T/check.out" ||
		fail "round $round: nothing committed: $(cat "$T/check.out")"
	rm -f "$T/hist/g$round".*
done
echo "vpmd-kill-loop: $ROUNDS kill -9 rounds of vpmd under a streaming guest, each recovered to a consistent prefix"
