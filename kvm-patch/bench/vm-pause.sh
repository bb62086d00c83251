#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vm-pause.sh - vpmd's epoch pause on the patched KVM, inside the rig's VM (busybox sh, root):
# for each size, vpm-vmm runs a guest that stores over every page of its vPM range as fast as it
# can, vpmd (backend kvm, a devdax pool on the emulated NVDIMM) serves it with every page in DRAM
# (ratio = pages) and epoch_interval = 100ms, and the pause (KVM_VPM_HOLD, HARVEST, the copy
# of the dirty pages, RESUME; vpmd's pause_usec) is compared with the bound dirty bytes / memcpy
# bandwidth (bench-memcpy, measured in the same VM right before). Nested TCG is slow in
# absolute terms: only the ratios mean something.
#
#   kvm-patch/run-rig.sh --cpu max --vpmd BUILD --extra BUILD/tests/vpm-vmm \
#       --extra BUILD/bench/bench-memcpy --script kvm-patch/bench/vm-pause.sh
#
# Prints "VM-PAUSE: ..." lines; SIZES (MiB) "2 8 32", MEASURE (s) 10.

set -eu

W=/run/vm-pause
SOCK=$W/vpmd.sock
CONF=$W/vpmd.conf
GPA=0x10000000
SIZES=${SIZES:-2 8 32}
MEASURE=${MEASURE:-10}
VMM_PID=

say() { echo "VM-PAUSE: $*"; }

fail() {
	echo "VM-PAUSE: FAIL $*"
	[ -f "$W/vpmd.log" ] && tail -n 20 "$W/vpmd.log" | sed 's/^/  vpmd| /'
	[ -n "$VMM_PID" ] && kill -9 "$VMM_PID" 2>/dev/null
	[ -n "$VPMD_PID" ] && kill -9 "$VPMD_PID" 2>/dev/null
	exit 1
}

. "$(dirname "$0")/rig-vpmd.sh"

# flat FILE: the JSON of FILE on one line without blanks
flat() { tr -d ' \n' <"$1"; }

rig_pool 96M "dram_budget = 512M" "epoch_interval = 100ms"
[ -n "$DAX" ] || fail "no devdax namespace"

bw=$(bench-memcpy -m 64 -r 5 -j | sed -n 's/.*"median_mib_per_sec": *\([0-9]*\).*/\1/p')
[ -n "$bw" ] || fail "bench-memcpy gave no bandwidth"
say "memcpy bandwidth (64 MiB buffers, median of 5): $bw MiB/s"
start_vpmd
printf 'VM-PAUSE: %-6s %8s %9s %9s %9s %8s %8s\n' size "dirty/ep" "p50 us" "p99 us" \
	"bound us" "p50/bd" "p99/bd"
for mib in $SIZES; do
	pages=$((mib * 256))
	vpm-vmm --pm-gpa $GPA --pm-size "${mib}M" --wait-start --report-every 1000000000 \
		>"$W/vmm.log" 2>&1 &
	VMM_PID=$!
	i=0
	until grep -q '^VMM: pid=' "$W/vmm.log"; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "vpm-vmm did not start"
		sleep 0.1
	done
	ctl attach "p$mib" --pid "$VMM_PID" --gpa $GPA --size "${mib}M" --ratio "$pages" \
		>/dev/null 2>"$W/attach.err" || fail "attach: $(cat "$W/attach.err")"
	kill -USR1 "$VMM_PID"
	sleep 3
	ctl -j show "p$mib" >"$W/a.json"
	sleep "$MEASURE"
	ctl -j show "p$mib" >"$W/b.json"
	kill -TERM "$VMM_PID"
	wait "$VMM_PID" || fail "vpm-vmm: $(tail -n 3 "$W/vmm.log")"
	VMM_PID=
	ea=$(flat "$W/a.json" | sed -n 's/.*"epochs":\([0-9]*\).*/\1/p')
	eb=$(flat "$W/b.json" | sed -n 's/.*"epochs":\([0-9]*\).*/\1/p')
	da=$(flat "$W/a.json" | sed -n 's/.*"dirty_pages":\([0-9]*\).*/\1/p')
	db=$(flat "$W/b.json" | sed -n 's/.*"dirty_pages":\([0-9]*\).*/\1/p')
	p50=$(flat "$W/b.json" | sed -n 's/.*"pause_usec":{"p50":\([0-9]*\).*/\1/p')
	p99=$(flat "$W/b.json" | sed -n 's/.*"pause_usec":{"p50":[0-9]*,"p99":\([0-9]*\).*/\1/p')
	[ -n "$p50" ] && [ -n "$p99" ] && [ -n "$eb" ] || fail "no pause figures for p$mib"
	awk -v mib="$mib" -v e=$((eb - ea)) -v d=$((db - da)) -v p50="$p50" -v p99="$p99" \
		-v bw="$bw" 'BEGIN {
		dpe = e > 0 ? d / e : 0
		bound = dpe * 4096 / (bw * 1048576) * 1e6
		r50 = r99 = 0
		if (bound > 0) {
			r50 = p50 / bound
			r99 = p99 / bound
		}
		printf "VM-PAUSE: %3d MiB %8.0f %9d %9d %9.0f %8.2f %8.2f\n", mib, dpe, p50, p99,
			bound, r50, r99
	}'
done
stop_vpmd
say "bound = dirty bytes per epoch (measured) / memcpy bandwidth; design target p99 <= 1.5 x bound + 100 us"
say "DONE"
