#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Remaps that fail (KVM_VPM_MAP can: no memory to pin, a VM going away) lose no write. The sim
# backend fails every 2nd remap of a VM and changes nothing then (VPM_SIM_FAIL_MAP_EVERY, as a
# failed KVM_VPM_MAP); two guests that write pages the policies demote (B-tree updates; whole
# pages in order, with random victims) run while their ratios swing, so that pages move at
# every boundary. The guests must run to their end (a fault that could not be resolved is
# tried again, and a fault on a page whose remap failed remaps it), vpmd must call off the
# demotions whose write-protection failed, and at the end every write of each guest must be
# on its device. (Demoting pages the guest can still write loses a write only when one lands
# between the copy to PM and the remap: without that care this test caught it in about one
# run of four.)
. "$(dirname "$0")/lib.sh"
SIMGUEST="$VPM_BUILD/vpmd/backend/sim/vpm-simguest"
SIMCHECK="$VPM_BUILD/tests/vpm-simcheck"
base=/dev/shm
[ -w "$base" ] || base=$T
POOL="$base/vpm-map-failure-test.$$.pool"
guests=()
trap 'for g in "${guests[@]}"; do kill -9 "$g" 2>/dev/null; done; cleanup; rm -f "$POOL"' EXIT

write_config "epoch_interval = 10ms" "migration_rate = 1G"
sed -i "s|^path = .*|path = $POOL|; s|^size = 16M|size = 64M|" "$CONF"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 16M
VPM_SIM_FAIL_MAP_EVERY=2 start_vpmd
SIMSOCK="$T/state/sim.sock"
mkdir "$T/hist"
ctl() { "$VPMCTL" -s "$SOCK" "$@"; }

# a: zipfian updates (a hot set that moves between tiers); b: B-tree updates
"$SIMGUEST" -s "$SIMSOCK" -n a -p 512 -c 2 -w btree -r 2 -d 60 -S 5 -H "$T/hist" \
	>"$T/a.out" 2>&1 &
guests+=($!)
"$SIMGUEST" -s "$SIMSOCK" -n b -p 512 -c 2 -w fill -r 4 -P random -d 60 -S 6 -H "$T/hist" \
	>"$T/b.out" 2>&1 &
guests+=($!)
for _ in $(seq 100); do
	[ "$(ctl -j list | jq '.vms | length')" = 2 ] && break
	sleep 0.1
done
[ "$(ctl -j list | jq '.vms | length')" = 2 ] || fail "the guests did not attach: $(cat "$T"/?.out)"

for r in 8 1.5 64 1 3 512 1.2 2 16 1.1 4 1 256 1.5 2; do
	ctl set-ratio a "$r" >/dev/null || fail "set-ratio a $r"
	ctl set-ratio b "$r" >/dev/null || fail "set-ratio b $r"
	sleep 0.3
done

grep -q "remapping pages failed" "$T/vpmd.log" || fail "no remap failed: the injection did not run"
grep -q "pages stay in DRAM this epoch" "$T/vpmd.log" ||
	fail "no demotion was called off after a failed write-protect"

kill -TERM "${guests[@]}"
for g in "${guests[@]}"; do
	wait "$g" || fail "a guest failed: $(cat "$T"/a.out "$T"/b.out)"
done
guests=()
for _ in $(seq 100); do
	[ "$(ctl -j list | jq '.vms | length')" = 0 ] && break
	sleep 0.1
done
ctl -j stats >"$T/stats.json"
stop_vpmd
for vm in a:5 b:6; do
	"$SIMCHECK" "$POOL" "${vm%%:*}" "$T/hist" "${vm#*:}" final >"$T/check.out" 2>&1 ||
		fail "${vm%%:*}: $(cat "$T/check.out")"
done
echo "test-map-failure: $(grep -c 'remapping pages failed' "$T/vpmd.log") failed remaps, no write lost"
