#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# test-rig.sh - the CTest entry of the KVM test rig (test "kvm-rig", label kvm).
#
# Runs kvm-patch/build-modules.sh (KVM from Debian's linux-source-6.1 plus the patches in
# kvm-patch/patches, as external modules), then kvm-patch/run-rig.sh with --cpu max
# (nested paging) and --cpu qemu64 (shadow paging), and prints the time of each.
# When a patch in kvm-patch/patches adds KVM_CAP_VPM, it first checks that the patch's
# VPM definitions in include/uapi/linux/kvm.h are identical to
# kvm-patch/include/linux/vpm-kvm.h, and both rig runs must show "VPM-ENABLE: PASS"
# (run-rig.sh --require-vpm).
#
# Exit codes: 0 all passed; 1 the build or a rig run failed; 77 (skip) the machine
# cannot run the rig: not root, or no apt-get and neither the cached downloads in
# /var/cache/vpm-kvm/debs nor the host packages to use them.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR/.. source=rig-lib.sh
. "$HERE/rig-lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "test-rig: SKIP: needs root (apt-get, dpkg-deb -x)"
	exit 77
fi
if ! command -v apt-get >/dev/null; then
	if ! ls "$VPM_KVM_CACHE"/debs/linux-source-6.1_*.deb >/dev/null 2>&1; then
		echo "test-rig: SKIP: no apt-get and no cached downloads in $VPM_KVM_CACHE/debs"
		exit 77
	fi
	if ! command -v dpkg-query >/dev/null || [ -n "$(rig_missing_packages)" ]; then
		echo "test-rig: SKIP: no apt-get to install the missing host packages:" \
			"$(rig_missing_packages 2>/dev/null | tr '\n' ' ')"
		exit 77
	fi
fi

declare -a names=() times=() verdicts=()
rc=0

# run NAME CMD...: run CMD, record its time and verdict.
run() {
	local name=$1 t0 r=0
	shift
	t0=$(date +%s.%N)
	echo "test-rig: --- $name"
	"$@" || r=$?
	names+=("$name")
	times+=("$(rig_elapsed "$t0")")
	verdicts+=("$([ "$r" -eq 0 ] && echo PASS || echo "FAIL (exit $r)")")
	[ "$r" -eq 0 ] || rc=1
	return "$r"
}

# vpm_uapi FILE: the VPM definitions of FILE (the project header, or a patch with the
# leading "+" dropped), from the comment before KVM_CAP_VPM to KVM_VPM_ENABLE.
# shellcheck disable=SC2317 # called through check_uapi and run
vpm_uapi() {
	awk '{ sub(/^\+/, "") }
	pend && / \* KVM_CAP_VPM:/ { on = 1 }
	pend { if (on) printf "%s", buf; pend = 0 }
	!on && /^\/\*$/ { buf = $0 "\n"; pend = 1; next }
	on { print }
	on && /^#define KVM_VPM_ENABLE / { exit }' "$1"
}

# check_uapi PATCH: the patch and the project header define the same VPM uapi.
# shellcheck disable=SC2317 # called through run
check_uapi() {
	local hdr=$HERE/include/linux/vpm-kvm.h
	[ -n "$(vpm_uapi "$hdr")" ] || { echo "no VPM definitions found in $hdr"; return 1; }
	if ! diff -u <(vpm_uapi "$1") <(vpm_uapi "$hdr"); then
		echo "test-rig: the VPM definitions of $(basename "$1") differ from $hdr"
		return 1
	fi
	echo "test-rig: $(basename "$1") and include/linux/vpm-kvm.h define the same VPM uapi" \
		"($(vpm_uapi "$hdr" | wc -l) lines)"
}

# The patch that adds KVM_CAP_VPM, if the series has it.
vpm_patch=
for p in "$HERE"/patches/*.patch; do
	if [ -f "$p" ] && grep -q '^+#define KVM_CAP_VPM ' "$p"; then
		vpm_patch=$p
		break
	fi
done
declare -a rig_args=()
[ -z "$vpm_patch" ] || rig_args=(--require-vpm)

T0=$(date +%s.%N)
ok=1
if [ -n "$vpm_patch" ]; then
	run "VPM uapi = vpm-kvm.h" check_uapi "$vpm_patch" || ok=0
fi
if [ "$ok" = 1 ] && run "build-modules" "$HERE/build-modules.sh"; then
	run "rig -cpu max (NPT)" "$HERE/run-rig.sh" --cpu max ${rig_args[@]+"${rig_args[@]}"} ||
		true
	run "rig -cpu qemu64 (shadow)" "$HERE/run-rig.sh" --cpu qemu64 \
		${rig_args[@]+"${rig_args[@]}"} || true
fi

echo "test-rig: summary"
for i in "${!names[@]}"; do
	printf 'test-rig:   %-26s %7ss  %s\n' "${names[$i]}" "${times[$i]}" "${verdicts[$i]}"
done
printf 'test-rig:   %-26s %7ss  %s\n' total "$(rig_elapsed "$T0")" \
	"$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)"
exit "$rc"
