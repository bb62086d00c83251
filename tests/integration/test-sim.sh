#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The engine with simulated guests: three vpm-simguest VMs (zipf-kv, log, btree) run in epoch
# mode against vpmd on an emulated pool; afterwards every device holds exactly the guests'
# write histories; a guest that comes back at once finds what it wrote. Then kill -9 of vpmd
# while a guest's commits stream, several times: each time the recovered device equals the
# guest's image after some prefix of its writes.
. "$(dirname "$0")/lib.sh"
sim_test_env sim

write_config "epoch_interval = 20ms"
sed -i "s|^path = .*|path = $POOL|; s|^size = 16M|size = 64M|" "$CONF"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test
start_vpmd
mkdir "$T/hist"

vms() {
	"$VPMCTL" -s "$SOCK" -j list
}

pids=()
for spec in kv1:zipf-kv log1:log bt1:btree; do
	"$SIMGUEST" -s "$SIMSOCK" -n "${spec%%:*}" -p 256 -c 2 -w "${spec#*:}" -d 2 -S 7 \
		-H "$T/hist" >"$T/${spec%%:*}.out" 2>&1 &
	pids+=($!)
done
sleep 1
vms >"$T/vms.json"
jq_check '.vms | length == 3' "$T/vms.json"
expect_rc 0 "$VPMCTL" -s "$SOCK" list
expect_grep "^kv1 *epoch *256 *2 " "$T/stdout"
jq_check '[.vms[].epochs] | min > 3' "$T/vms.json"
jq_check '[.vms[].page_table_bytes] | all(. == 256 * 8)' "$T/vms.json"
# staging room follows the DRAM pages (faulted in outside pauses), never beyond the VM
jq_check '[.vms[] | .stage_bytes >= .dram_pages * 4096 and .stage_bytes <= 256 * 4096] | all' \
	"$T/vms.json"
for p in "${pids[@]}"; do
	wait "$p" || fail "a guest failed: $(cat "$T"/*.out)"
done
vms >"$T/vms.json"
jq_check '.vms == []' "$T/vms.json"
stop_vpmd
check_final kv1:7 log1:7 bt1:7

# a guest back at once (its last commits not yet checkpointed) reads what it wrote before
start_vpmd
mkdir "$T/h1" "$T/h2"
"$SIMGUEST" -s "$SIMSOCK" -n again -p 256 -c 1 -w fill -r 2 -o 2000 -S 7 -H "$T/h1" \
	>"$T/r1.out" 2>&1 || fail "first life: $(cat "$T/r1.out")"
"$SIMGUEST" -s "$SIMSOCK" -n again -p 256 -c 1 -w zipf-kv -W 0 -r 1 -o 20000 -S 8 -H "$T/h2" \
	>"$T/r2.out" 2>&1 || fail "second life: $(cat "$T/r2.out")"
stop_vpmd
"$SIMCHECK" "$POOL" again "$T/h1" 7 final >"$T/check.out" 2>&1 ||
	fail "a guest back at once lost its first life's writes: $(cat "$T/check.out")"

# kill -9 while commits stream: the device is a consistent cut of the guest's writes
for round in 1 2 3 4 5; do
	start_vpmd
	"$SIMGUEST" -s "$SIMSOCK" -n "k$round" -p 128 -c 2 -w btree -d 30 -R 30 -S "$round" \
		-H "$T/hist" >"$T/k.out" 2>&1 &
	guest=$!
	sleep "0.$((RANDOM % 5 + 3))"
	kill -9 "$VPMD_PID"
	wait "$VPMD_PID" 2>/dev/null || true
	VPMD_PID=
	"$SIMCHECK" "$POOL" "k$round" "$T/hist" "$round" prefix >"$T/check.out" 2>&1 ||
		{ kill -9 "$guest"; fail "round $round: $(cat "$T/check.out")"; }
	grep -q "matches the first [1-9]" "$T/check.out" ||
		{ kill -9 "$guest"; fail "round $round: nothing was committed: $(cat "$T/check.out")"; }
	kill -9 "$guest"
	wait "$guest" 2>/dev/null || true
done
echo "test-sim: ok"
