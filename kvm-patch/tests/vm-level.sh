#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vm-level.sh - the VM-level test, run by the rig's /init inside the nested VM (busybox sh,
# root) after the selftests: vpmd with the kvm backend serves the vPM range of a VM that
# vpm-vmm runs under the patched KVM, on a devdax pool of the VM's emulated NVDIMM found
# through libndctl.
#
#   1. vpmd without pools lists the host's PM (libndctl); the devdax namespace becomes the pool
#   2. vpm-vmm creates its VM and waits; vpmctl attach; the guest starts writing its sequence
#      (every store checked by the guest itself against what it wrote before)
#   3. epochs commit; set-ratio 4 moves pages from PM frames to DRAM, set-ratio 1 back, while
#      the guest runs with its data intact
#   4. kill -9 vpmd: the guest runs on; the pool's durable image of the VM is a consistent
#      point-in-time state of the guest's writes (vpm-seqcheck)
#   5. vpmd restarts and takes the VM over (the kernel keeps its mappings); the guest goes on
#   6. the VMM stops: vpmd commits the last epoch; the durable image equals the guest's final
#      state exactly
#   7. hint mode: a second VM whose guest hints every 7th store (the persist hypercall); after
#      kill -9 of vpmd every hinted store the guest saw return is durable; after the take-over
#      and the VMM's exit the image is the guest's final state
#
# Prints "VM-LEVEL: ..." lines; exit 0 pass, 1 fail, 77 skip (no devdax, no VPM in KVM).
# Programs come from PATH: vpmd, vpmctl, vpm-vmm, vpm-seqcheck; helpers from rig-vpmd.sh.

set -eu

W=/run/vm-level
SOCK=$W/vpmd.sock
CONF=$W/vpmd.conf
GPA=0x10000000
SIZE=8M
WPP=16
VMM_PID=

say() { echo "VM-LEVEL: $*"; }

fail() {
	echo "VM-LEVEL: FAIL $*"
	[ -f "$W/vpmd.log" ] && tail -n 40 "$W/vpmd.log" | sed 's/^/  vpmd| /'
	[ -f "$W/vmm.log" ] && tail -n 10 "$W/vmm.log" | sed 's/^/  vmm| /'
	[ -n "$VMM_PID" ] && kill -9 "$VMM_PID" 2>/dev/null
	[ -n "$VPMD_PID" ] && kill -9 "$VPMD_PID" 2>/dev/null
	exit 1
}

skip() {
	echo "VM-LEVEL: SKIP $*"
	exit 77
}

. "$(dirname "$0")/rig-vpmd.sh"

# json_num KEY FILE: the first number after "KEY": in FILE (vpmctl -j output)
json_num() {
	sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" "$2" | head -n 1
}

# vm_show: 'vpmctl -j show vm1' into $W/show.json
vm_show() { ctl -j show vm1 >"$W/show.json" || fail "vpmctl show vm1 failed"; }

# wait_epochs N: until vm1 committed N more epochs than now, at most 120 s
wait_epochs() {
	vm_show
	want=$(($(json_num epochs "$W/show.json") + $1))
	i=0
	while :; do
		vm_show
		[ "$(json_num epochs "$W/show.json")" -ge "$want" ] && return 0
		i=$((i + 1))
		[ $i -lt 600 ] || fail "vm1 did not commit $1 epochs in 120 s"
		kill -0 "$VMM_PID" 2>/dev/null || fail "the VMM exited"
		sleep 0.2
	done
}

# vmm_seq: the guest's last reported sequence number
vmm_seq() {
	sed -n 's/^VMM: progress seq=\([0-9]*\).*/\1/p' "$W/vmm.log" | tail -n 1
}

# wait_progress SEQ: until the guest reported a sequence number beyond SEQ, at most 60 s
wait_progress() {
	i=0
	while [ "$(vmm_seq)" = "" ] || [ "$(vmm_seq)" -le "$1" ]; do
		kill -0 "$VMM_PID" 2>/dev/null || fail "the VMM exited: $(tail -n 3 "$W/vmm.log")"
		i=$((i + 1))
		[ $i -lt 600 ] || fail "the guest made no progress beyond $1 in 60 s"
		sleep 0.1
	done
}

# kill_vpmd: kill -9, as a crash would
kill_vpmd() {
	kill -9 "$VPMD_PID"
	wait "$VPMD_PID" 2>/dev/null || true
	VPMD_PID=
}

# finish_vm NAME: stop the VMM; once vpmd has committed NAME's last epoch and let it go, stop
# vpmd; NAME's durable image must be the state after the guest's last store ($final)
finish_vm() {
	kill -TERM "$VMM_PID"
	wait "$VMM_PID" || fail "vpm-vmm of $1 exited with $?: $(tail -n 5 "$W/vmm.log")"
	VMM_PID=
	final=$(sed -n 's/^VMM: final seq=\([0-9]*\).*/\1/p' "$W/vmm.log")
	[ -n "$final" ] || fail "vpm-vmm of $1 reported no final seq"
	i=0
	while ctl -j list | grep -q "\"name\": *\"$1\""; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "vpmd did not notice the exit of $1's VMM"
		sleep 0.1
	done
	stop_vpmd
	vpm-seqcheck "/dev/$DAX" "$1" $WPP --expect "$final" >"$W/check.out" 2>&1 ||
		fail "$1's durable image after its VMM's exit: $(cat "$W/check.out")"
}

# start_vmm [options]: vpm-vmm waiting for SIGUSR1, its output in $W/vmm.log
start_vmm() {
	vpm-vmm --pm-gpa $GPA --pm-size $SIZE --words-per-page $WPP --wait-start \
		--report-every 4096 "$@" >"$W/vmm.log" 2>&1 &
	VMM_PID=$!
	i=0
	until grep -q '^VMM: pid=' "$W/vmm.log"; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "vpm-vmm $* did not start: $(cat "$W/vmm.log")"
		sleep 0.1
	done
}

# 1. the pool: the devdax namespace libndctl reports
rig_pool 32M "dram_budget = 64M" "epoch_interval = 200ms" "migration_rate = 64M" \
	"log_level = debug"
[ -n "$DAX" ] || skip "libndctl reports no devdax namespace: $(cat "$W/pools.json")"
say "pool: /dev/$DAX (libndctl)"
start_vpmd
ctl -j pools >"$W/pools.json"
grep -q '"kind": *"devdax"' "$W/pools.json" || fail "pool pm0 is not devdax: $(cat "$W/pools.json")"

# 2. the VM, attached before its guest runs
start_vmm
if ! ctl attach vm1 --pid "$VMM_PID" --gpa $GPA --size $SIZE >"$W/attach.out" 2>"$W/attach.err"; then
	grep -q 'KVM_CAP_VPM' "$W/attach.err" && skip "KVM has no VPM: $(cat "$W/attach.err")"
	fail "vpmctl attach: $(cat "$W/attach.err")"
fi
say "attached: $(grep -i -m1 'pages' "$W/attach.out" || true)"
kill -USR1 "$VMM_PID"
wait_progress 0

# 3. epochs and migrations while the guest runs
wait_epochs 3
say "epochs commit: $(json_num epochs "$W/show.json") so far, guest at seq $(vmm_seq)"
ctl set-ratio vm1 4 --wait --timeout 120 >"$W/set.out" 2>&1 || fail "set-ratio 4: $(cat "$W/set.out")"
vm_show
p=$(json_num promotions "$W/show.json")
[ "${p:-0}" -gt 0 ] || fail "set-ratio 4 promoted no page: $(cat "$W/show.json")"
ctl set-ratio vm1 1 --wait --timeout 120 >"$W/set.out" 2>&1 || fail "set-ratio 1: $(cat "$W/set.out")"
vm_show
d=$(json_num demotions "$W/show.json")
[ "${d:-0}" -gt 0 ] || fail "set-ratio 1 demoted no page: $(cat "$W/show.json")"
ctl set-ratio vm1 2 --wait --timeout 120 >"$W/set.out" 2>&1 || fail "set-ratio 2: $(cat "$W/set.out")"
seq_before=$(vmm_seq)
wait_progress "$seq_before"
say "migrations: $p promotions, $d demotions; guest intact at seq $(vmm_seq)"

# 4. vpmd killed: the guest runs on its mappings; the durable image is a consistent cut
wait_epochs 2
kill_vpmd
sleep 1
kill -0 "$VMM_PID" 2>/dev/null || fail "the VM died with vpmd: $(tail -n 3 "$W/vmm.log")"
vpm-seqcheck "/dev/$DAX" vm1 $WPP >"$W/check1.out" 2>&1 ||
	fail "durable image after kill -9: $(cat "$W/check1.out")"
say "after kill -9 of vpmd: $(cat "$W/check1.out")"

# 5. a new vpmd takes the VM over
start_vpmd
ctl -j list >"$W/list.json"
grep -q '"name": *"vm1"' "$W/list.json" || fail "the new vpmd did not take vm1 over: $(cat "$W/list.json")"
seq_before=$(vmm_seq)
wait_progress "$seq_before"
wait_epochs 3
say "taken over by the new vpmd; guest at seq $(vmm_seq)"

# 5b. native mode (the guest writes PM frames in place), vpmd killed and taken over again,
#     back to epoch mode: step 6 shows that no write got lost on the way
ctl set-mode vm1 native --wait --timeout 120 >"$W/set.out" 2>&1 || fail "set-mode native: $(cat "$W/set.out")"
seq_before=$(vmm_seq)
wait_progress "$seq_before"
kill_vpmd
start_vpmd
ctl -j show vm1 >"$W/show.json" 2>&1 || fail "the new vpmd did not take vm1 over in native mode"
grep -q '"mode": *"native"' "$W/show.json" || fail "vm1 is not native after the take-over: $(cat "$W/show.json")"
seq_before=$(vmm_seq)
wait_progress "$seq_before"
ctl set-mode vm1 epoch --wait --timeout 120 >"$W/set.out" 2>&1 || fail "set-mode epoch: $(cat "$W/set.out")"
seq_before=$(vmm_seq)
wait_progress "$seq_before"
say "native mode taken over and left; guest at seq $(vmm_seq)"

# 6. the VMM stops: the last epoch commits; the image is the guest's final state
finish_vm vm1
say "final: guest seq $final; $(cat "$W/check.out")"
[ -z "$(ls /run/vpmd/kvm 2>/dev/null)" ] || fail "files left in /run/vpmd/kvm: $(ls /run/vpmd/kvm)"

# 7. hint mode: every store whose persist hint returned is durable
: >"$W/vmm.log"
start_vpmd
start_vmm --hint-every 7
ctl attach vm2 --pid "$VMM_PID" --gpa $GPA --size $SIZE --mode hint --ratio 2 \
	>"$W/attach.out" 2>"$W/attach.err" || fail "vpmctl attach vm2: $(cat "$W/attach.err")"
kill -USR1 "$VMM_PID"
wait_progress 8192
through=$(vmm_seq)
kill_vpmd
vpm-seqcheck "/dev/$DAX" vm2 $WPP --hinted 7 --through "$through" >"$W/check3.out" 2>&1 ||
	fail "hinted stores after kill -9: $(cat "$W/check3.out")"
say "hint mode, after kill -9 of vpmd: $(cat "$W/check3.out")"
# the new vpmd takes vm2 over in hint mode (its record keeps the mode): again
start_vpmd
seq_before=$(vmm_seq)
wait_progress "$((seq_before + 4096))"
ctl -j show vm2 >"$W/show.json"
grep -q '"mode": *"hint"' "$W/show.json" || fail "vm2 is not in hint mode after the take-over"
through=$(vmm_seq)
kill_vpmd
vpm-seqcheck "/dev/$DAX" vm2 $WPP --hinted 7 --through "$through" >"$W/check3.out" 2>&1 ||
	fail "hinted stores after the take-over and another kill -9: $(cat "$W/check3.out")"
say "hint mode, taken over and killed again: $(cat "$W/check3.out")"
start_vpmd
seq_before=$(vmm_seq)
wait_progress "$seq_before"
finish_vm vm2
say "hint mode, final: guest seq $final; $(cat "$W/check.out")"
say "PASS"
