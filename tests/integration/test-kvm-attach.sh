#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The kvm backend on a host whose KVM has no VPM (the patched KVM runs in the VM-level test,
# kvm-patch/tests/vm-level.sh): vpmd with backend = kvm starts, refuses what it cannot serve
# with one clear line each (bad names, ranges and pids, a process without a KVM VM, a KVM
# without KVM_CAP_VPM, the sim backend, libvirt VMs with a policy it could not serve),
# keeps serving, leaves no files behind, and at start
# drops the records of VMs whose VMM is gone. A runtime_dir off tmpfs is refused at start.
. "$(dirname "$0")/lib.sh"
VMM="$VPM_BUILD/tests/vpm-vmm"
RUN=/dev/shm/vpm-kvm-attach.$$
[ -d /dev/shm ] && [ "$(stat -f -c %T /dev/shm)" = tmpfs ] || {
	echo "SKIP: no tmpfs at /dev/shm for runtime_dir"
	exit 77
}
VMM_PID=
trap '[ -z "$VMM_PID" ] || kill "$VMM_PID" 2>/dev/null; cleanup; rm -rf "$RUN"' EXIT

# the sim backend says how to serve KVM VMs
write_config
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test
start_vpmd
expect_rc 1 "$VPMCTL" -s "$SOCK" attach vm1 --pid $$ --gpa 0x100000000 --size 4M
expect_grep "backend = kvm" "$T/stderr"
stop_vpmd

# a runtime_dir that is not a tmpfs is refused with the reason
if [ "$(stat -f -c %T "$T")" != tmpfs ]; then
	write_config "backend = kvm" "runtime_dir = $T/run"
	expect_rc 1 "$VPMD" --foreground --config "$CONF"
	expect_grep "is not a tmpfs" "$T/stderr"
fi

write_config "backend = kvm" "runtime_dir = $RUN"
# records of a previous vpmd: a VM whose VMM exited while no vpmd ran (what it left in DRAM is
# committed: one page mapped to DRAM holding a pattern), and a file vpmd did not write
mkdir -p "$RUN/kvm"
sleep 0.1 &
dead=$!
wait "$dead"
printf 'pid %d\nstarttime 1\ngpa 0\nsize 8192\nratio 0\nmode -\npolicy -\n' "$dead" \
	>"$RUN/kvm/gone.vm"
# gfn 1 on DRAM, writable: bits 63 (present) and 61 (writable), frame 1
python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<QQ", 0, (1<<63)|(1<<61)|1))' \
	>"$RUN/kvm/gone.map"
python3 -c 'import sys; sys.stdout.buffer.write(bytes(4096) + b"VPMLEFT\n" * 512)' \
	>"$RUN/kvm/gone.dram"
echo garbage >"$RUN/kvm/junk.vm"
start_vpmd
expect_grep "VM 'gone': its VMM (process $dead) exited while vpmd was away; committing" \
	"$T/vpmd.log"
expect_grep "Ignoring the record of 'junk'" "$T/vpmd.log"
[ -z "$(ls "$RUN/kvm")" ] || fail "records left in $RUN/kvm: $(ls "$RUN/kvm")"
stop_vpmd
# the page it left is durable in the VM's device
# (in the pool's log, or in the device's image once a checkpoint applied it)
python3 - "$T/pool0" "$T"/state/images/* <<'PY' || fail "the DRAM page of 'gone' was not committed"
import sys
found = any(b"VPMLEFT\n" * 512 in open(f, "rb").read() for f in sys.argv[1:])
sys.exit(0 if found else 1)
PY
start_vpmd

# usage errors (status 2) and refusals (status 1), each naming the cause
expect_rc 2 "$VPMCTL" -s "$SOCK" attach vm1 --gpa 0x100000000 --size 4M
expect_grep "give --pid, --gpa and --size" "$T/stderr"
expect_rc 2 "$VPMCTL" -s "$SOCK" attach vm1 --pid 1 --size 4M
expect_grep "give --pid, --gpa and --size" "$T/stderr"
expect_rc 2 "$VPMCTL" -s "$SOCK" attach vm1 --pid 1 --gpa nowhere --size 4M
expect_grep "guest-physical base" "$T/stderr"
expect_rc 2 "$VPMCTL" -s "$SOCK" attach vm1 --pid 1 --gpa 0 --size 4M --ratio x
expect_rc 1 "$VPMCTL" -s "$SOCK" attach vm1 --pid $$ --gpa 0x100000000 --size 5000
expect_grep "whole 4 KiB pages" "$T/stderr"
expect_rc 1 "$VPMCTL" -s "$SOCK" attach vm1 --pid $$ --gpa 0x100000000 --size 4M --ratio 0.5
expect_grep "out of range" "$T/stderr"
expect_rc 1 "$VPMCTL" -s "$SOCK" attach ../vm --pid $$ --gpa 0x100000000 --size 4M
expect_grep "not a VM name" "$T/stderr"
expect_rc 1 "$VPMCTL" -s "$SOCK" attach vm1 --pid $$ --gpa 0x100000000 --size 4M --mode fast
expect_grep "mode" "$T/stderr"
expect_rc 1 "$VPMCTL" -s "$SOCK" attach vm1 --pid "$dead" --gpa 0x100000000 --size 4M
expect_grep "no process $dead" "$T/stderr"
expect_rc 1 "$VPMCTL" -s "$SOCK" attach vm1 --pid $$ --gpa 0x100000000 --size 4M
expect_grep "process $$ has no KVM VM" "$T/stderr"

# a real KVM VM, but this host's KVM has no VPM
if [ -c /dev/kvm ] && [ -x "$VMM" ]; then
	"$VMM" --pm-size 4M --wait-start >"$T/vmm.log" 2>&1 &
	VMM_PID=$!
	for _ in $(seq 100); do
		grep -q '^VMM: pid=' "$T/vmm.log" && break
		sleep 0.1
	done
	expect_grep '^VMM: pid=' "$T/vmm.log"
	gpa=$(sed -n 's/.*pm-gpa=\(0x[0-9a-f]*\).*/\1/p' "$T/vmm.log")
	if "$VPMCTL" -s "$SOCK" attach vm1 --pid "$VMM_PID" --gpa "$gpa" --size 4M \
		>"$T/stdout" 2>"$T/stderr"; then
		echo "note: this host's KVM has VPM; vm1 attached"
	else
		expect_grep "no VPM support (KVM_CAP_VPM)" "$T/stderr"
	fi
	kill "$VMM_PID"
	wait "$VMM_PID" 2>/dev/null || true
	VMM_PID=
else
	echo "note: no /dev/kvm here: the KVM_CAP_VPM refusal is not exercised"
fi

# libvirt's hook with the kvm backend: a VM with a VPM policy is refused at prepare when KVM
# has no VPM (its reason in virsh's error); one without a policy starts, its PM not managed;
# a VM already running is not taken over by a reconnect (its guest wrote QEMU's pages)
DATA=$(dirname "$0")/data/hook
if ! "$VPMCTL" -s "$SOCK" -j hook shop prepare begin - <"$DATA/shop-prepare.xml" \
	>"$T/hook.json" 2>"$T/stderr"; then
	expect_grep "VM 'shop' has a VPM policy but this host's KVM has no VPM support" "$T/stderr"
	sed '/<vpm:policy/d' "$DATA/shop-prepare.xml" >"$T/nopolicy.xml"
	expect_rc 0 "$VPMCTL" -s "$SOCK" -j hook shop prepare begin - <"$T/nopolicy.xml"
	jq_check '.action == "none" and (.message | test("not managed"))' "$T/stdout"
else
	echo "note: this host's KVM has VPM; shop was reserved"
fi
expect_rc 0 "$VPMCTL" -s "$SOCK" -j hook shop reconnect begin - <"$DATA/shop-reconnect.xml"
jq_check '.action == "none" and (.message | test("runs since before"))' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j hook shop release end - <"$DATA/shop-release.xml"

# vpmd still serves, and nothing is left behind
expect_rc 0 "$VPMCTL" -s "$SOCK" status
[ -z "$(ls "$RUN/kvm")" ] || fail "files left in $RUN/kvm: $(ls "$RUN/kvm")"
stop_vpmd
echo "PASS"
