#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Remaps that fail (KVM_VPM_MAP can: no memory to pin, a VM going away) lose no write. The sim
# backend fails every 2nd remap of a VM and changes nothing then (VPM_SIM_FAIL_MAP_EVERY, as a
# failed KVM_VPM_MAP); two guests that write pages the policies demote (B-tree updates; whole
# pages in order, with random victims) run while their ratios swing, so that pages move at
# every boundary. The guests must run to their end (a fault that could not be resolved is
# tried again, and a fault on a page whose remap failed remaps it), vpmd must call off the
# demotions whose write-protection failed and map every page again at a boundary before it
# frees or supersedes anything a vCPU may still read; every read of the guests sees what they
# wrote there last (vpm-simguest -V), and at the end every write of each guest must be on its
# device. (Demoting pages the guest can still write loses a write only when one lands
# between the copy to PM and the remap: without that care this test caught it in about one
# run of four.)
. "$(dirname "$0")/lib.sh"
sim_test_env map-failure

write_config "epoch_interval = 10ms" "migration_rate = 1G"
sed -i "s|^path = .*|path = $POOL|; s|^size = 16M|size = 64M|" "$CONF"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 16M
VPM_SIM_FAIL_MAP_EVERY=2 start_vpmd
mkdir "$T/hist"
ctl() { "$VPMCTL" -s "$SOCK" "$@"; }

# a: zipfian updates (a hot set that moves between tiers); b: B-tree updates
"$SIMGUEST" -s "$SIMSOCK" -n a -p 512 -c 2 -w btree -r 2 -d 60 -S 5 -V -H "$T/hist" \
	>"$T/a.out" 2>&1 &
guests+=($!)
"$SIMGUEST" -s "$SIMSOCK" -n b -p 512 -c 2 -w fill -r 4 -P random -d 60 -S 6 -V -H "$T/hist" \
	>"$T/b.out" 2>&1 &
guests+=($!)
wait_vms 2

for r in 8 1.5 64 1 3 512 1.2 2 16 1.1 4 1 256 1.5 2; do
	ctl set-ratio a "$r" >/dev/null || fail "set-ratio a $r"
	ctl set-ratio b "$r" >/dev/null || fail "set-ratio b $r"
	sleep 0.3
done

grep -q "remapping pages failed" "$T/vpmd.log" || fail "no remap failed: the injection did not run"
grep -q "pages stay in DRAM this epoch" "$T/vpmd.log" ||
	fail "no demotion was called off after a failed write-protect"
grep -q "every page mapped again after a failed remap" "$T/vpmd.log" ||
	fail "the mappings were never made right again after a failed remap"

finish_guests
stop_vpmd
check_final a:5 b:6
echo "test-map-failure: $(grep -c 'remapping pages failed' "$T/vpmd.log") failed remaps, no write lost"
