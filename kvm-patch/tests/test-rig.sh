#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# test-rig.sh - the CTest entry of the KVM test rig (test "kvm-rig", label kvm).
#
# Runs kvm-patch/build-modules.sh (KVM from Debian's linux-source-6.1 plus the patches in
# kvm-patch/patches, as external modules), then kvm-patch/run-rig.sh with --cpu max
# (nested paging) and --cpu qemu64 (shadow paging), and prints the time of each.
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

T0=$(date +%s.%N)
if run "build-modules" "$HERE/build-modules.sh"; then
	run "rig -cpu max (NPT)" "$HERE/run-rig.sh" --cpu max || true
	run "rig -cpu qemu64 (shadow)" "$HERE/run-rig.sh" --cpu qemu64 || true
fi

echo "test-rig: summary"
for i in "${!names[@]}"; do
	printf 'test-rig:   %-26s %7ss  %s\n' "${names[$i]}" "${times[$i]}" "${verdicts[$i]}"
done
printf 'test-rig:   %-26s %7ss  %s\n' total "$(rig_elapsed "$T0")" \
	"$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)"
exit "$rc"
