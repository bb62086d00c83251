#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run-rig.sh - boot Debian's kernel under QEMU TCG with the KVM modules built by
# build-modules.sh and run kvm-smoke, vpm-enable, vpm-map, vpm-harvest and vpm-events
# against them inside the VM; on request also vpmd, vpmctl and other programs on an
# emulated NVDIMM, and a test script.
#
# Usage: run-rig.sh [--cpu max|qemu64] [--modules DIR] [--require-vpm] [--require-vpm-map]
#                   [--require-vpm-harvest] [--require-vpm-events]
#                   [--require-vpm-reattach] [--bench]
#                   [--vpmd BUILD_DIR] [--extra FILE]... [--nvdimm SIZE]
#                   [--script FILE] [--require-vm-test]
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
#   --require-vpm-reattach  fail unless vpm-reattach passed (the modules must let
#                  KVM_VPM_ENABLE re-attach to a range whose event fd was closed)
#   --bench        also build bench/vpm-bench.c into the initramfs and run it after the
#                  tests (bench/run-bench.sh extracts its table; RIG_TIMEOUT default 900)
#   --vpmd BUILD_DIR  also put BUILD_DIR/vpmd/vpmd and BUILD_DIR/cli/vpmctl (a CMake build
#                  directory of VPM) into the initramfs; implies --nvdimm 256M
#   --extra FILE   also put the program FILE into the initramfs (repeatable)
#   --nvdimm SIZE  give the VM an emulated NVDIMM of SIZE (M or G; a file under the cache,
#                  recreated each run, plus a 128 KiB label area) and put the NVDIMM
#                  modules, ndctl and daxctl into the initramfs; /init makes it a devdax
#                  namespace with 4 KiB alignment and prints "RIG: devdax=/dev/daxX.Y ..."
#   --script FILE  run FILE in the VM after the tests, as "sh /vm-test.sh" (beside it
#                  /rig-vpmd.sh, tests/rig-vpmd.sh, the vpmd helpers it may source): exit 0
#                  prints "VM-TEST: PASS", 77 "VM-TEST: SKIP", anything else "VM-TEST: FAIL
#                  (exit N)" and fails the run
#   --require-vm-test  fail when the script skipped too
#
# Programs (vpmd, vpmctl, --extra, ndctl, daxctl) go to /usr/bin, stripped, with the shared
# libraries ldd finds for them (and the dynamic loader) at the same paths.  With programs
# or a script the initramfs also has /etc/passwd, /etc/group (root, vpm), /tmp and /run,
# and /init mounts a tmpfs on /dev/shm.
#
# Builds the tests (gcc -static: tests/kvm-smoke.c, tests/vpm-enable.c, tests/vpm-map.c,
# tests/vpm-harvest.c, tests/vpm-events.c, tests/vpm-reattach.c)
# and an initramfs (busybox-static, the modules, the tests, an /init that loads
# irqbypass, ccp, kvm, kvm-amd, prints the kernel's KVM/SVM lines, runs kvm-smoke, then
# vpm-enable, vpm-map, vpm-harvest, vpm-events and vpm-reattach (and with --bench vpm-bench), which skip (exit 77) when the modules
# do not have KVM_CAP_VPM, KVM_VPM_MAP, KVM_VPM_HARVEST, KVM_VPM_COMPLETE or re-attach, prints
# "RIG: PASS" or "RIG: FAIL ..." and powers off),
# then boots it with qemu-system-x86_64 -accel tcg, bounded by timeout (RIG_TIMEOUT
# seconds, default 300).  QEMU exits 0 on power-off whatever happened inside, so the
# verdict comes from the console log, kept in /var/cache/vpm-kvm/rig/CPU/console.log.
#
# Exit codes: 0 the log says "RIG: PASS" and the paging mode is the expected one (nested
# paging enabled with --cpu max, disabled with --cpu qemu64), and with --require-vpm it
# says "VPM-ENABLE: PASS" (with --require-vpm-map also "VPM-MAP: PASS", with
# --require-vpm-harvest also "VPM-HARVEST: PASS", with --require-vpm-events also
# "VPM-EVENTS: PASS", with --require-vpm-reattach also "VPM-REATTACH: PASS"), with
# --script "VM-TEST: PASS" or (without --require-vm-test) "VM-TEST: SKIP", and with an
# NVDIMM "RIG: devdax="; 1 otherwise (the tail of the console log is printed); 2 usage
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
REQUIRE_VPM_REATTACH=0
VPMD_BUILD=
NVDIMM=
SCRIPT=
REQUIRE_VM_TEST=0
# The programs for /usr/bin of the VM (with their shared libraries).
declare -a PROGRAMS=()
TESTS="kvm-smoke vpm-enable vpm-map vpm-harvest vpm-events vpm-reattach"

usage() {
	sed -n '/^# Usage:/,/^# Programs (/{/^# Programs (/d; s/^# \{0,1\}//p;}' "${BASH_SOURCE[0]}" >&2
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
	--require-vpm-reattach) REQUIRE_VPM_REATTACH=1; shift ;;
	--bench) BENCH=1; shift ;;
	--vpmd) [ $# -ge 2 ] || usage; VPMD_BUILD=$2; shift 2 ;;
	--extra) [ $# -ge 2 ] || usage; PROGRAMS+=("$2"); shift 2 ;;
	--nvdimm) [ $# -ge 2 ] || usage; NVDIMM=$2; shift 2 ;;
	--script) [ $# -ge 2 ] || usage; SCRIPT=$2; shift 2 ;;
	--require-vm-test) REQUIRE_VM_TEST=1; shift ;;
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

# abs PATH: PATH made absolute.
abs() {
	case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
}

if [ -n "$VPMD_BUILD" ]; then
	VPMD_BUILD=$(abs "$VPMD_BUILD")
	PROGRAMS=("$VPMD_BUILD/vpmd/vpmd" "$VPMD_BUILD/cli/vpmctl" ${PROGRAMS[@]+"${PROGRAMS[@]}"})
	NVDIMM=${NVDIMM:-256M}
fi
for i in ${PROGRAMS[@]+"${!PROGRAMS[@]}"}; do
	PROGRAMS[i]=$(abs "${PROGRAMS[i]}")
done
# The NVDIMM: SIZE in MiB, the backing file (SIZE plus the label area) and the hotplug
# memory QEMU needs for it beside the VM's 1 GiB.
NVDIMM_MB=0
if [ -n "$NVDIMM" ]; then
	case $NVDIMM in
	[1-9]*M) NVDIMM_MB=${NVDIMM%M} ;;
	[1-9]*G) NVDIMM_MB=$((${NVDIMM%G} * 1024)) ;;
	*) NVDIMM_MB=x ;;
	esac
	case $NVDIMM_MB in
	*[!0-9]*) echo "run-rig: --nvdimm takes a size in M or G, e.g. 256M" >&2; usage ;;
	esac
	[ "$NVDIMM_MB" -ge 16 ] || { echo "run-rig: --nvdimm must be at least 16M" >&2; usage; }
	PROGRAMS+=(/usr/bin/ndctl /usr/bin/daxctl)
fi
if [ -n "$SCRIPT" ]; then
	SCRIPT=$(abs "$SCRIPT")
elif [ "$REQUIRE_VM_TEST" = 1 ]; then
	echo "run-rig: --require-vm-test needs --script" >&2
	usage
fi

WORK=$VPM_KVM_CACHE/rig/$CPU
mkdir -p "$WORK" "$VPM_KVM_CACHE/logs"
RIG_LOG=$VPM_KVM_CACHE/logs/run-rig-$CPU.log
: >"$RIG_LOG"
CONSOLE=$WORK/console.log
INITRD=$WORK/initrd.gz
STAGE=$WORK/programs
NVDIMM_FILE=$WORK/nvdimm.img
NVDIMM_LABEL=131072

check_inputs() {
	local f missing
	for f in vmlinuz irqbypass.ko ccp.ko kvm.ko kvm-amd.ko; do
		[ -f "$MODULES/$f" ] || { echo "$MODULES/$f is missing: run build-modules.sh"; return 1; }
	done
	if [ -n "$NVDIMM" ]; then
		[ -s "$MODULES/nvdimm-modules" ] ||
			{ echo "$MODULES/nvdimm-modules is missing: run build-modules.sh"; return 1; }
		while read -r f; do
			[ -f "$MODULES/$f.ko" ] ||
				{ echo "$MODULES/$f.ko is missing: run build-modules.sh"; return 1; }
		done <"$MODULES/nvdimm-modules"
	fi
	for f in ${PROGRAMS[@]+"${PROGRAMS[@]}"}; do
		if [ ! -f "$f" ] || [ ! -x "$f" ]; then
			echo "$f is not an executable file"
			return 1
		fi
	done
	[ -z "$SCRIPT" ] || [ -f "$SCRIPT" ] || { echo "$SCRIPT is not a file"; return 1; }
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

# The programs into $STAGE/usr/bin, each with the shared libraries ldd finds for it (the
# dynamic loader included) at the same paths, all stripped.
stage_programs() {
	local p bin lib n=0
	rm -rf "$STAGE" "$STAGE.libs"
	mkdir -p "$STAGE/usr/bin"
	: >"$STAGE.libs"
	for p in "${PROGRAMS[@]}"; do
		bin=$STAGE/usr/bin/$(basename "$p")
		[ ! -e "$bin" ] || { echo "two programs named $(basename "$p")"; return 1; }
		cp -L "$p" "$bin"
		# Not ELF (a script): copied as it is.
		readelf -h "$p" >/dev/null 2>&1 || continue
		strip --strip-unneeded "$bin"
		readelf -l "$p" | grep -q 'Requesting program interpreter' || continue
		ldd "$p" >"$STAGE.ldd" || { echo "ldd $p failed"; return 1; }
		if grep -q 'not found' "$STAGE.ldd"; then
			echo "$p: shared libraries not found:"
			grep 'not found' "$STAGE.ldd"
			return 1
		fi
		awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
			"$STAGE.ldd" >>"$STAGE.libs"
	done
	while read -r lib; do
		# A variant for this host's CPU level (DIR/glibc-hwcaps/x86-64-vN/NAME) may not
		# suit the VM's CPU: take the baseline DIR/NAME.
		case $lib in
		*/glibc-hwcaps/*)
			lib=${lib%%/glibc-hwcaps/*}/${lib##*/}
			[ -f "$lib" ] || { echo "no baseline $lib of a glibc-hwcaps library"; return 1; }
			;;
		esac
		mkdir -p "$STAGE$(dirname "$lib")"
		cp -L "$lib" "$STAGE$lib"
		strip --strip-unneeded "$STAGE$lib"
		n=$((n + 1))
	done < <(sort -u "$STAGE.libs")
	rm -f "$STAGE.libs" "$STAGE.ldd"
	rig_note "${#PROGRAMS[@]} programs, $n libraries, $(du -sh "$STAGE" | cut -f1)"
}

# The VM's /init: quoted, nothing here is expanded on the host.
write_init() {
	cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# Only in an initramfs with programs or a script (it has /run): POSIX shared memory.
if [ -d /run ]; then
	mkdir -p /dev/shm
	mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
fi
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
run_vpm_test vpm-reattach "re-attach (KVM_VPM_ENABLE of an orphaned range)"
# Only in the initramfs of run-rig.sh --bench.
if [ -x /bin/vpm-bench ]; then
	run_vpm_test vpm-bench KVM_VPM_HARVEST
fi
# Only in the initramfs of run-rig.sh --nvdimm (or --vpmd): the NVDIMM modules, then the
# emulated NVDIMM as a devdax namespace with 4 KiB alignment.
if [ -z "$why" ] && [ -f /lib/modules/nvdimm/load-order ]; then
	for m in $(cat /lib/modules/nvdimm/load-order); do
		if ! insmod /lib/modules/nvdimm/$m.ko; then
			why="insmod $m.ko failed"
			break
		fi
	done
fi
# The fresh NVDIMM has an empty label area, so the kernel shows its region label-less,
# as one raw namespace0.0; create-namespace -f -e destroys that, initialises the labels
# (disable-region, init-labels, enable-region) and creates namespace0.0 again, devdax.
if [ -z "$why" ] && [ -f /lib/modules/nvdimm/load-order ]; then
	echo "RIG: ndctl create-namespace -f -e namespace0.0 -m devdax -a 4K:"
	if ndctl create-namespace -f -e namespace0.0 -m devdax -a 4K; then
		for d in /sys/bus/dax/devices/dax*; do
			[ -c "/dev/${d##*/}" ] || continue
			echo "RIG: devdax=/dev/${d##*/} size=$(cat "$d/size") align=$(cat "$d/align")"
			dax=${d##*/}
		done
		[ -n "${dax:-}" ] || why="no devdax device after ndctl create-namespace"
	else
		why="ndctl create-namespace failed"
	fi
	[ -z "$why" ] || ndctl list -R -D -N -i
fi
# Only in the initramfs of run-rig.sh --script: the VM test.
if [ -f /vm-test.sh ]; then
	if [ -n "$why" ]; then
		echo "RIG: vm-test not run: $why"
	else
		echo "RIG: vm-test:"
		rc=0
		sh /vm-test.sh </dev/null || rc=$?
		case $rc in
		0) echo "VM-TEST: PASS" ;;
		77) echo "VM-TEST: SKIP" ;;
		*)
			echo "VM-TEST: FAIL (exit $rc)"
			why="vm-test failed (exit $rc)"
			;;
		esac
	fi
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
	if [ -n "$NVDIMM" ]; then
		mkdir -p "$root/lib/modules/nvdimm"
		while read -r m; do
			cp "$MODULES/$m.ko" "$root/lib/modules/nvdimm/"
		done <"$MODULES/nvdimm-modules"
		cp "$MODULES/nvdimm-modules" "$root/lib/modules/nvdimm/load-order"
	fi
	if [ ${#PROGRAMS[@]} -gt 0 ]; then
		cp -a "$STAGE/." "$root/"
		rm -rf "$STAGE"
	fi
	if [ -n "$SCRIPT" ]; then
		cp "$SCRIPT" "$root/vm-test.sh"
		# the VM scripts' shared vpmd helpers, sourced from the script's directory
		cp "$HERE/tests/rig-vpmd.sh" "$root/rig-vpmd.sh"
	fi
	if [ ${#PROGRAMS[@]} -gt 0 ] || [ -n "$SCRIPT" ]; then
		# What programs expect of a system: root and the group vpmd's socket
		# defaults to (systemd/vpmd.sysusers), /tmp and /run.
		mkdir -p "$root"/{etc,run,tmp,root}
		chmod 1777 "$root/tmp"
		echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
		printf 'root:x:0:\nvpm:x:999:\n' >"$root/etc/group"
	fi
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
	local -a mem=(-m 1G)
	local size maxmem
	rm -f "$CONSOLE" "$WORK/qemu.status"
	if [ -n "$NVDIMM" ]; then
		# A fresh (sparse) backing file each run: the NVDIMM, then its label area at the
		# end; the VM's 1 GiB plus hotplug room for it (at least 4 GiB in all).
		size=$((NVDIMM_MB * 1048576 + NVDIMM_LABEL))
		maxmem=$(((1024 + NVDIMM_MB + 1023) / 1024 * 1024))
		[ "$maxmem" -ge 4096 ] || maxmem=4096
		rm -f "$NVDIMM_FILE"
		truncate -s "$size" "$NVDIMM_FILE"
		mem=(-machine "pc,nvdimm=on" -m "1G,slots=2,maxmem=${maxmem}M"
			-object "memory-backend-file,id=nvmem0,share=on,mem-path=$NVDIMM_FILE,size=$size"
			-device "nvdimm,id=nvdimm0,memdev=nvmem0,label-size=$NVDIMM_LABEL")
	fi
	timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu "$QEMU_CPU" \
		"${mem[@]}" -smp 1 -nographic -no-reboot -kernel "$WORK/vmlinuz" -initrd "$INITRD" \
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
[ ${#PROGRAMS[@]} -eq 0 ] || rig_step "programs" stage_programs
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
if [ -z "$fail" ] && [ "$REQUIRE_VPM_REATTACH" = 1 ] &&
	! grep -q '^VPM-REATTACH: PASS' "$CONSOLE"; then
	fail="no 'VPM-REATTACH: PASS' in the console log (--require-vpm-reattach): $(grep -m1 \
		'^VPM-REATTACH: ' "$CONSOLE" || echo 'vpm-reattach did not run')"
fi
if [ -z "$fail" ] && [ -n "$NVDIMM" ] && ! grep -q '^RIG: devdax=/dev/dax' "$CONSOLE"; then
	fail="no 'RIG: devdax=' in the console log (--nvdimm)"
fi
vm_test=$(sed -n 's/^VM-TEST: //p' "$CONSOLE" | tail -n 1)
if [ -z "$fail" ] && [ -n "$SCRIPT" ]; then
	case $vm_test in
	PASS) ;;
	SKIP)
		[ "$REQUIRE_VM_TEST" = 0 ] ||
			fail="'VM-TEST: SKIP' in the console log (--require-vm-test)"
		;;
	*) fail="no 'VM-TEST: PASS' or 'VM-TEST: SKIP' in the console log (--script)" ;;
	esac
fi
if [ -n "$fail" ]; then
	echo "run-rig: FAIL (-cpu $QEMU_CPU): $fail; last lines of $CONSOLE:" >&2
	tail -n 40 "$CONSOLE" | sed 's/^/  | /' >&2
	exit 1
fi
paging=$([ "$npt" = Y ] && echo "nested paging" || echo "shadow paging")
# each VPM selftest's checks, or that it skipped
vpm=
for t in vpm-enable vpm-map vpm-harvest vpm-events vpm-reattach; do
	if grep -q "^$(echo "$t" | tr '[:lower:]' '[:upper:]'): PASS" "$CONSOLE"; then
		vpm="$vpm${vpm:+, }$t $(grep -c "^$t: ok" "$CONSOLE" || true) checks"
	else
		vpm="$vpm${vpm:+, }$t skipped"
	fi
done
if [ "$BENCH" = 1 ]; then
	if grep -q '^VPM-BENCH: DONE' "$CONSOLE"; then
		vpm="$vpm, vpm-bench done"
	else
		vpm="$vpm, vpm-bench skipped"
	fi
fi
if [ -n "$NVDIMM" ]; then
	vpm="$vpm, $(sed -n 's/^RIG: \(devdax=[^ ]*\) size=\([0-9]*\).*/\1 (\2 bytes)/p' "$CONSOLE" |
		head -n 1)"
fi
[ -z "$SCRIPT" ] || vpm="$vpm, vm-test $(echo "$vm_test" | tr '[:upper:]' '[:lower:]')"
echo "run-rig: PASS (-cpu $QEMU_CPU, $paging, kvm-smoke $(grep -c '^kvm-smoke: ok' "$CONSOLE")" \
	"checks, $vpm) in $(rig_elapsed "$T0")s"
