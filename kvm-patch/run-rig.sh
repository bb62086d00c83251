#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run-rig.sh - boot Debian's kernel under QEMU TCG with the KVM modules built by
# build-modules.sh and run kvm-smoke, vpm-enable, vpm-map, vpm-harvest and vpm-events
# against them inside the VM.
#
# Usage: run-rig.sh [--cpu max|qemu64] [--modules DIR] [--require-vpm] [--require-vpm-map]
#                   [--require-vpm-harvest] [--require-vpm-events] [--bench]
#
#   --cpu max      (default) QEMU's emulated AMD CPU with SVM and nested paging (NPT):
#                  KVM runs with NPT and the TDP MMU
#   --cpu qemu64   QEMU's qemu64 model: AMD vendor, SVM but no NPT (no +svm needed):
#                  KVM runs with shadow paging
#   --modules DIR  build-modules.sh's output (default: /var/cache/vpm-kvm/out): vmlinuz,
#                  irqbypass.ko, ccp.ko, kvm.ko, kvm-amd.ko
#   --require-vpm  fail unless vpm-enable passed (the modules must have KVM_CAP_VPM)
#   --require-vpm-map  fail unless vpm-map passed (the modules must have KVM_VPM_MAP)
#   --require-vpm-harvest  fail unless vpm-harvest passed (the modules must have
#                  KVM_VPM_HARVEST)
#   --require-vpm-events  fail unless vpm-events passed (the modules must have
#                  KVM_VPM_COMPLETE)
#   --bench        also build bench/vpm-bench.c into the initramfs and run it after the
#                  tests (bench/run-bench.sh extracts its table; RIG_TIMEOUT default 900)
#
# Builds the tests (gcc -static: tests/kvm-smoke.c, tests/vpm-enable.c, tests/vpm-map.c,
# tests/vpm-harvest.c, tests/vpm-events.c)
# and an initramfs (busybox-static, the modules, the tests, an /init that loads
# irqbypass, ccp, kvm, kvm-amd, prints the kernel's KVM/SVM lines, runs kvm-smoke, then
# vpm-enable, vpm-map, vpm-harvest and vpm-events (and with --bench vpm-bench), which skip (exit 77) when the modules
# do not have KVM_CAP_VPM, KVM_VPM_MAP, KVM_VPM_HARVEST or KVM_VPM_COMPLETE, prints
# "RIG: PASS" or "RIG: FAIL ..." and powers off),
# then boots it with qemu-system-x86_64 -accel tcg, bounded by timeout (RIG_TIMEOUT
# seconds, default 300).  QEMU exits 0 on power-off whatever happened inside, so the
# verdict comes from the console log, kept in /var/cache/vpm-kvm/rig/CPU/console.log.
#
# Exit codes: 0 the log says "RIG: PASS" and the paging mode is the expected one (nested
# paging enabled with --cpu max, disabled with --cpu qemu64), and with --require-vpm it
# says "VPM-ENABLE: PASS" (with --require-vpm-map also "VPM-MAP: PASS", with
# --require-vpm-harvest also "VPM-HARVEST: PASS", with --require-vpm-events also
# "VPM-EVENTS: PASS"); 1 otherwise (the
# tail of the console log is printed); 2 usage
# error.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rig-lib.sh
. "$HERE/rig-lib.sh"
RIG_NAME=run-rig

CPU=max
MODULES=$VPM_KVM_CACHE/out
TIMEOUT=
BENCH=0
REQUIRE_VPM=0
REQUIRE_VPM_MAP=0
REQUIRE_VPM_HARVEST=0
REQUIRE_VPM_EVENTS=0
TESTS="kvm-smoke vpm-enable vpm-map vpm-harvest vpm-events"

usage() {
	sed -n '6,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--cpu) [ $# -ge 2 ] || usage; CPU=$2; shift 2 ;;
	--modules) [ $# -ge 2 ] || usage; MODULES=$2; shift 2 ;;
	--require-vpm) REQUIRE_VPM=1; shift ;;
	--require-vpm-map) REQUIRE_VPM_MAP=1; shift ;;
	--require-vpm-harvest) REQUIRE_VPM_HARVEST=1; shift ;;
	--require-vpm-events) REQUIRE_VPM_EVENTS=1; shift ;;
	--bench) BENCH=1; shift ;;
	-h|--help) usage ;;
	*) echo "run-rig: unknown argument: $1" >&2; usage ;;
	esac
done

# The benchmark is only built and run on request, so the CTest run does not pay for it.
if [ "$BENCH" = 1 ]; then
	TESTS="$TESTS vpm-bench"
	TIMEOUT=${RIG_TIMEOUT:-900}
else
	TIMEOUT=${RIG_TIMEOUT:-300}
fi

case $CPU in
max) QEMU_CPU=max; WANT_NPT=Y ;;
qemu64) QEMU_CPU=qemu64; WANT_NPT=N ;;
*) echo "run-rig: --cpu must be max or qemu64" >&2; usage ;;
esac
case $MODULES in /*) ;; *) MODULES=$PWD/$MODULES ;; esac

WORK=$VPM_KVM_CACHE/rig/$CPU
mkdir -p "$WORK" "$VPM_KVM_CACHE/logs"
RIG_LOG=$VPM_KVM_CACHE/logs/run-rig-$CPU.log
: >"$RIG_LOG"
CONSOLE=$WORK/console.log
INITRD=$WORK/initrd.gz

check_inputs() {
	local f missing
	for f in vmlinuz irqbypass.ko ccp.ko kvm.ko kvm-amd.ko; do
		[ -f "$MODULES/$f" ] || { echo "$MODULES/$f is missing: run build-modules.sh"; return 1; }
	done
	missing=$(rig_missing_packages | tr '\n' ' ')
	[ -z "${missing// /}" ] ||
		{ echo "missing packages: $missing(build-modules.sh installs them)"; return 1; }
	rig_note "$(sed -n 's/^patches=\(.\)/patches: \1/p; s/^patches=$/stock KVM/p' \
		"$MODULES/BUILD-INFO" 2>/dev/null || echo "no BUILD-INFO")"
}

# Each test is one .c file plus the shared headers; rebuild when any of them is newer.
# vpm-bench's source is in bench/, the tests' in tests/.
build_tests() {
	local t src bin dep built=
	for t in $TESTS; do
		src=$HERE/tests/$t.c
		[ -f "$src" ] || src=$HERE/bench/$t.c
		bin=$VPM_KVM_CACHE/rig/$t
		for dep in "$src" "$HERE/tests/kvm-lib.h" "$HERE/tests/vpm-guest.h" \
			"$HERE/include/linux/vpm-kvm.h"; do
			if [ ! "$bin" -nt "$dep" ]; then
				gcc -static -O2 -Wall -Wextra -Werror -o "$bin.tmp" "$src"
				mv "$bin.tmp" "$bin"
				built="$built $t"
				break
			fi
		done
	done
	if [ -n "$built" ]; then
		rig_note "built$built"
	else
		rig_note "up to date"
	fi
}

# The VM's /init: quoted, nothing here is expanded on the host.
write_init() {
	cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "RIG: kernel $(uname -r); $(grep -m1 'model name' /proc/cpuinfo)"
grep -q -w svm /proc/cpuinfo && echo "RIG: cpu has svm" || echo "RIG: cpu has no svm"
grep -q -w npt /proc/cpuinfo && echo "RIG: cpu has npt" || echo "RIG: cpu has no npt"
why=
for m in irqbypass ccp kvm kvm-amd; do
	if ! insmod /lib/modules/$m.ko; then
		why="insmod $m.ko failed"
		break
	fi
done
echo "RIG: kernel log:"
dmesg | grep -i -E 'kvm|svm|npt'
echo "RIG: npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null || echo none)"
echo "RIG: tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu 2>/dev/null || echo none)"
if [ -z "$why" ]; then
	/bin/kvm-smoke || why="kvm-smoke failed"
fi
# run_vpm_test NAME WHAT: a VPM selftest; it exits 77 (skip) when KVM lacks WHAT (stock
# modules, or an earlier patch of the series only)
run_vpm_test() {
	[ -z "$why" ] || return 0
	rc=0
	/bin/$1 || rc=$?
	case $rc in
	0) echo "RIG: $1 passed" ;;
	77) echo "RIG: $1 skipped: no $2" ;;
	*) why="$1 failed" ;;
	esac
}
run_vpm_test vpm-enable KVM_CAP_VPM
run_vpm_test vpm-map KVM_VPM_MAP
run_vpm_test vpm-harvest KVM_VPM_HARVEST
run_vpm_test vpm-events KVM_VPM_COMPLETE
# Only in the initramfs of run-rig.sh --bench.
if [ -x /bin/vpm-bench ]; then
	run_vpm_test vpm-bench KVM_VPM_HARVEST
fi
if dmesg | grep -q -E 'BUG:|WARNING:|Oops|general protection'; then
	echo "RIG: kernel warnings:"
	dmesg | grep -A 20 -E 'BUG:|WARNING:|Oops|general protection'
	why="${why:+$why; }kernel warning or oops"
fi
if [ -z "$why" ]; then
	echo "RIG: PASS"
else
	echo "RIG: FAIL $why"
fi
poweroff -f
EOF
	chmod +x "$1"
}

build_initrd() {
	local root=$WORK/initramfs m
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
	cp /bin/busybox "$root/bin/busybox"
	file_is_static "$root/bin/busybox"
	for m in $TESTS; do
		cp "$VPM_KVM_CACHE/rig/$m" "$root/bin/$m"
	done
	for m in irqbypass ccp kvm kvm-amd; do
		cp "$MODULES/$m.ko" "$root/lib/modules/"
	done
	write_init "$root/init"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -1 >"$INITRD.tmp"
	mv "$INITRD.tmp" "$INITRD"
	cp "$MODULES/vmlinuz" "$WORK/vmlinuz"
	rm -rf "$root"
	rig_note "$(du -h "$INITRD" | cut -f1)"
}

# busybox-static's binary must be static: the initramfs has no libc.
file_is_static() {
	if readelf -l "$1" | grep -q 'Requesting program interpreter'; then
		echo "$1 is not static: install busybox-static"
		return 1
	fi
}

boot() {
	local rc=0
	rm -f "$CONSOLE" "$WORK/qemu.status"
	timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu "$QEMU_CPU" \
		-m 1G -smp 1 -nographic -no-reboot -kernel "$WORK/vmlinuz" -initrd "$INITRD" \
		-append 'console=ttyS0 panic=-1 quiet' </dev/null >"$CONSOLE" 2>&1 || rc=$?
	# Console output has CRLF line ends.
	sed -i 's/\r$//' "$CONSOLE"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "QEMU did not power off within ${TIMEOUT}s (RIG_TIMEOUT)" | tee "$WORK/qemu.status"
		rig_note "timed out after ${TIMEOUT}s"
	elif [ "$rc" -ne 0 ]; then
		echo "qemu-system-x86_64 exited with $rc" | tee "$WORK/qemu.status"
		rig_note "QEMU exit $rc"
	else
		rig_note "-cpu $QEMU_CPU, console log $CONSOLE"
	fi
}

# Exclusive use of this CPU model's work dir; shared use of the module cache.
exec 8>"$WORK/.lock"
flock -w 1800 8 || rig_die "cannot lock $WORK/.lock"
exec 9>"$VPM_KVM_CACHE/.lock"
flock -s -w 1800 9 || rig_die "cannot lock $VPM_KVM_CACHE/.lock"

T0=$(date +%s.%N)
rig_step "inputs ($MODULES)" check_inputs
rig_step "build tests" build_tests
rig_step "initramfs" build_initrd
exec 9>&-
rig_step "boot and test (-cpu $QEMU_CPU)" boot

fail=
grep -q '^RIG: PASS' "$CONSOLE" || fail="no 'RIG: PASS' in the console log"
[ -z "$fail" ] || [ ! -s "$WORK/qemu.status" ] || fail="$fail; $(cat "$WORK/qemu.status")"
npt=$(sed -n 's/^RIG: npt=//p' "$CONSOLE" | tail -n 1)
if [ -z "$fail" ] && [ "$npt" != "$WANT_NPT" ]; then
	fail="kvm_amd npt=${npt:-unknown}, want $WANT_NPT"
fi
if [ -z "$fail" ] && [ "$WANT_NPT" = Y ] && ! grep -q 'Nested Paging enabled' "$CONSOLE"; then
	fail="the kernel log does not say 'Nested Paging enabled'"
fi
if [ -z "$fail" ] && [ "$REQUIRE_VPM" = 1 ] && ! grep -q '^VPM-ENABLE: PASS' "$CONSOLE"; then
	fail="no 'VPM-ENABLE: PASS' in the console log (--require-vpm): $(grep -m1 \
		'^VPM-ENABLE: ' "$CONSOLE" || echo 'vpm-enable did not run')"
fi
if [ -z "$fail" ] && [ "$REQUIRE_VPM_MAP" = 1 ] && ! grep -q '^VPM-MAP: PASS' "$CONSOLE"; then
	fail="no 'VPM-MAP: PASS' in the console log (--require-vpm-map): $(grep -m1 \
		'^VPM-MAP: ' "$CONSOLE" || echo 'vpm-map did not run')"
fi
if [ -z "$fail" ] && [ "$REQUIRE_VPM_HARVEST" = 1 ] &&
	! grep -q '^VPM-HARVEST: PASS' "$CONSOLE"; then
	fail="no 'VPM-HARVEST: PASS' in the console log (--require-vpm-harvest): $(grep -m1 \
		'^VPM-HARVEST: ' "$CONSOLE" || echo 'vpm-harvest did not run')"
fi
if [ -z "$fail" ] && [ "$REQUIRE_VPM_EVENTS" = 1 ] &&
	! grep -q '^VPM-EVENTS: PASS' "$CONSOLE"; then
	fail="no 'VPM-EVENTS: PASS' in the console log (--require-vpm-events): $(grep -m1 \
		'^VPM-EVENTS: ' "$CONSOLE" || echo 'vpm-events did not run')"
fi
if [ -n "$fail" ]; then
	echo "run-rig: FAIL (-cpu $QEMU_CPU): $fail; last lines of $CONSOLE:" >&2
	tail -n 40 "$CONSOLE" | sed 's/^/  | /' >&2
	exit 1
fi
paging=$([ "$npt" = Y ] && echo "nested paging" || echo "shadow paging")
vpm=$(grep -c '^vpm-enable: ok' "$CONSOLE" || true)
if grep -q '^VPM-ENABLE: PASS' "$CONSOLE"; then
	vpm="vpm-enable $vpm checks"
else
	vpm="vpm-enable skipped"
fi
if grep -q '^VPM-MAP: PASS' "$CONSOLE"; then
	vpm="$vpm, vpm-map $(grep -c '^vpm-map: ok' "$CONSOLE" || true) checks"
else
	vpm="$vpm, vpm-map skipped"
fi
if grep -q '^VPM-HARVEST: PASS' "$CONSOLE"; then
	vpm="$vpm, vpm-harvest $(grep -c '^vpm-harvest: ok' "$CONSOLE" || true) checks"
else
	vpm="$vpm, vpm-harvest skipped"
fi
if grep -q '^VPM-EVENTS: PASS' "$CONSOLE"; then
	vpm="$vpm, vpm-events $(grep -c '^vpm-events: ok' "$CONSOLE" || true) checks"
else
	vpm="$vpm, vpm-events skipped"
fi
if [ "$BENCH" = 1 ]; then
	if grep -q '^VPM-BENCH: DONE' "$CONSOLE"; then
		vpm="$vpm, vpm-bench done"
	else
		vpm="$vpm, vpm-bench skipped"
	fi
fi
echo "run-rig: PASS (-cpu $QEMU_CPU, $paging, kvm-smoke $(grep -c '^kvm-smoke: ok' "$CONSOLE")" \
	"checks, $vpm) in $(rig_elapsed "$T0")s"
