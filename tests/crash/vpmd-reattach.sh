#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of vpmd while three simulated guests run in epoch mode (zipf-kv at ratio 2, btree at
# ratio 1.5, log at ratio 1: demotions, promotions and early epochs all under way), then a new
# vpmd that recovers the pool and adopts the running guests. After every kill each device
# must equal its guest's image after some prefix of its writes (a consistent cut across the
# guest's vCPUs); the guests never stop. In the end they finish cleanly and every device
# holds every write. Then a guest in hint mode: after every kill, every write whose persist
# hint had returned is on its device. VPM_REATTACH_ROUNDS rounds (default 20) each.
. "$(dirname "$0")/crash-lib.sh"
SIMGUEST="$VPM_BUILD/vpmd/backend/sim/vpm-simguest"
SIMCHECK="$VPM_BUILD/tests/vpm-simcheck"
ROUNDS=${VPM_REATTACH_ROUNDS:-20}
RANDOM=${VPM_CRASH_SEED:-23}

POOL_SIZE=$((64 << 20))
LOG_SIZE=$((8 << 20))
write_vpmd_config
sed -i 's/^log_level = warning$/log_level = warning\nepoch_interval = 20ms/' "$T/vpmd.conf"
fresh_pool
mkdir -p "$T/hist"
vpmd=
guests=()

cleanup_all() {
	[ -n "$vpmd" ] && kill -9 "$vpmd" 2>/dev/null
	for g in "${guests[@]}"; do kill -9 "$g" 2>/dev/null; done
	kill_jobs
	rm -rf "$T"
}
trap cleanup_all EXIT

start_vpmd() {
	"$VPMD" --foreground --config "$T/vpmd.conf" 2>>"$T/vpmd.err" &
	vpmd=$!
	for _ in $(seq 300); do
		"$VPMCTL" -s "$T/vpmd.sock" status >/dev/null 2>&1 && return 0
		kill -0 "$vpmd" 2>/dev/null || { tail "$T/vpmd.err" >&2; fail "vpmd did not start"; }
		sleep 0.02
	done
	fail "vpmd did not answer"
}

# wait_attached N: until vpmd serves N VMs (the guests re-attach every 100 ms)
wait_attached() {
	for _ in $(seq 300); do
		n=$("$VPMCTL" -s "$T/vpmd.sock" -j list 2>/dev/null | jq '.vms | length') || n=0
		[ "$n" -eq "$1" ] && return 0
		sleep 0.02
	done
	tail -n 20 "$T/vpmd.err" >&2
	cat "$T"/*.out >&2
	fail "only $n of $1 guests attached"
}

kill_vpmd() {
	kill -9 "$vpmd"
	wait "$vpmd" 2>/dev/null || true
	vpmd=
}

check_all() {
	local how=$1 vm
	shift
	for vm in "$@"; do
		"$SIMCHECK" "$POOL" "$vm" "$T/hist" 7 "$how" >"$T/check.out" 2>&1 ||
			{ cat "$T/check.out" >&2; tail -n 20 "$T/vpmd.err" >&2;
			  fail "$vm ($how): the recovered device does not match"; }
	done
}

# ---- epoch mode, three guests, kill -9 and re-attach ----
start_vpmd
for spec in kv:zipf-kv:2 bt:btree:1.5 lg:log:1; do
	IFS=: read -r name wl ratio <<<"$spec"
	"$SIMGUEST" -s "$T/state/sim.sock" -n "$name" -p 256 -c 2 -w "$wl" -r "$ratio" \
		-m epoch -d 600 -R 60 -S 7 -i 20 -H "$T/hist" >"$T/$name.out" 2>&1 &
	guests+=($!)
done
wait_attached 3
for round in $(seq 1 "$ROUNDS"); do
	sleep "0.$((RANDOM % 5 + 2))$((RANDOM % 10))"
	kill_vpmd
	check_all prefix kv bt lg
	for g in "${guests[@]}"; do
		kill -0 "$g" 2>/dev/null || fail "round $round: a guest died: $(cat "$T"/*.out)"
	done
	start_vpmd
	wait_attached 3
done
grep -q "adopted" "$T/vpmd.err" || true
# the guests finish; their last epochs are committed as they leave
for g in "${guests[@]}"; do kill -TERM "$g"; done
for g in "${guests[@]}"; do
	wait "$g" || fail "a guest failed: $(cat "$T"/*.out)"
done
guests=()
wait_attached 0
kill -TERM "$vpmd"
wait "$vpmd" || fail "vpmd failed to stop"
vpmd=
check_all final kv bt lg

# ---- hint mode: what a returned persist hint named survives every kill ----
start_vpmd
"$SIMGUEST" -s "$T/state/sim.sock" -n hl -p 128 -c 2 -w log -r 2 -m hint -d 600 -R 60 -S 7 -i 20 \
	-H "$T/hist" >"$T/hl.out" 2>&1 &
guests=($!)
wait_attached 1
for round in $(seq 1 "$ROUNDS"); do
	sleep "0.$((RANDOM % 4 + 1))$((RANDOM % 10))"
	kill_vpmd
	check_all hint hl
	start_vpmd
	wait_attached 1
done
kill -TERM "${guests[0]}"
wait "${guests[0]}" || fail "the hint-mode guest failed: $(cat "$T/hl.out")"
guests=()
wait_attached 0
kill -TERM "$vpmd"
wait "$vpmd" || fail "vpmd failed to stop"
vpmd=
check_all final hl
check_all hint hl
echo "vpmd-reattach: $ROUNDS kill -9 rounds with three epoch-mode guests re-attached and $ROUNDS with a hint-mode guest: every cut consistent, every persisted write kept, every final image complete"
