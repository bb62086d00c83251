#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# test-rig.sh - the CTest entry of the KVM test rig (test "kvm-rig", label kvm).
#
# Runs kvm-patch/build-modules.sh (KVM from Debian's linux-source-6.1 plus the patches in
# kvm-patch/patches, as external modules), then kvm-patch/run-rig.sh with --cpu max
# (nested paging) and --cpu qemu64 (shadow paging), and prints the time of each.
# When a patch in kvm-patch/patches adds KVM_CAP_VPM, it first checks that the VPM
# definitions the series adds to include/uapi/linux/kvm.h are identical to
# kvm-patch/include/linux/vpm-kvm.h, and both rig runs must show "VPM-ENABLE: PASS"
# (run-rig.sh --require-vpm); when a patch adds KVM_VPM_MAP, also "VPM-MAP: PASS"
# (--require-vpm-map); when a patch adds KVM_VPM_HARVEST, also "VPM-HARVEST: PASS"
# (--require-vpm-harvest); when a patch adds KVM_VPM_COMPLETE, also "VPM-EVENTS: PASS"
# (--require-vpm-events); when a patch adds the uapi comment on a daemon restart
# (re-attaching to an orphaned range), also "VPM-REATTACH: PASS" (--require-vpm-reattach).
# With VPM_BUILD naming a build directory (CTest sets it), both runs also run the VM-level
# test tests/vm-level.sh with that build's vpmd, vpmctl, vpm-vmm and vpm-seqcheck on an
# emulated NVDIMM, which must pass ("VM-TEST: PASS") once the series has patch 5.
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

# vpm_uapi: the VPM definitions of the text on stdin, from the comment before
# KVM_CAP_VPM to the end or to the first #endif, without blank lines.
# shellcheck disable=SC2317 # called through check_uapi and run
vpm_uapi() {
	awk 'pend && / \* KVM_CAP_VPM:/ { on = 1 }
	pend { if (on) printf "%s", buf; pend = 0 }
	!on && /^\/\*$/ { buf = $0 "\n"; pend = 1; next }
	on && /^#endif/ { exit }
	on && !/^[ \t]*$/ { print }'
}

# kvm_h_added PATCH...: the lines the patches add to include/uapi/linux/kvm.h, in order,
# with the leading "+" dropped.  The patches after the one that adds the VPM block only
# append to it, so these lines are the block as the series leaves it; a patch that
# removes a line there makes this fail.
# shellcheck disable=SC2317 # called through check_uapi and run
kvm_h_added() {
	awk 'FNR == 1 { on = 0 }
	/^diff --git / { on = ($3 == "a/include/uapi/linux/kvm.h"); next }
	on && /^(\+\+\+|---) / { next }
	on && /^-/ { printf "%s: removes a line of include/uapi/linux/kvm.h\n",
		FILENAME > "/dev/stderr"; bad = 1 }
	on && /^\+/ { print substr($0, 2) }
	END { exit bad }' "$@"
}

# check_uapi PATCH...: the series and the project header define the same VPM uapi.
# shellcheck disable=SC2317 # called through run
check_uapi() {
	local hdr=$HERE/include/linux/vpm-kvm.h series
	[ -n "$(vpm_uapi <"$hdr")" ] || { echo "no VPM definitions found in $hdr"; return 1; }
	series=$(kvm_h_added "$@") || return 1
	if ! diff -u <(vpm_uapi <<<"$series") <(vpm_uapi <"$hdr"); then
		echo "test-rig: the VPM definitions of the series differ from $hdr"
		return 1
	fi
	echo "test-rig: the series ($# patches) and include/linux/vpm-kvm.h define the same" \
		"VPM uapi ($(vpm_uapi <"$hdr" | wc -l) non-blank lines)"
}

# The patches from the one that adds KVM_CAP_VPM on, if the series has it, and whether
# one adds KVM_VPM_MAP, KVM_VPM_HARVEST, KVM_VPM_COMPLETE or the re-attach uapi comment.
declare -a vpm_patches=() rig_args=()
vpm_map=0
vpm_harvest=0
vpm_events=0
vpm_reattach=0
for p in "$HERE"/patches/*.patch; do
	[ -f "$p" ] || continue
	if [ ${#vpm_patches[@]} -gt 0 ] || grep -q '^+#define KVM_CAP_VPM ' "$p"; then
		vpm_patches+=("$p")
	fi
	! grep -q '^+#define KVM_VPM_MAP ' "$p" || vpm_map=1
	! grep -q '^+#define KVM_VPM_HARVEST ' "$p" || vpm_harvest=1
	! grep -q '^+#define KVM_VPM_COMPLETE ' "$p" || vpm_events=1
	! grep -q '^+ \* Daemon restart: ' "$p" || vpm_reattach=1
done
[ ${#vpm_patches[@]} -eq 0 ] || rig_args=(--require-vpm)
[ "$vpm_map" = 0 ] || rig_args+=(--require-vpm-map)
[ "$vpm_harvest" = 0 ] || rig_args+=(--require-vpm-harvest)
[ "$vpm_events" = 0 ] || rig_args+=(--require-vpm-events)
[ "$vpm_reattach" = 0 ] || rig_args+=(--require-vpm-reattach)

# The VM-level test (tests/vm-level.sh: vpmd serving vpm-vmm's VM on a devdax pool) needs
# vpmd's build: VPM_BUILD names it (CTest sets it).
if [ -n "${VPM_BUILD:-}" ] && [ -x "$VPM_BUILD/vpmd/vpmd" ] && [ -x "$VPM_BUILD/tests/vpm-vmm" ] &&
	[ -x "$VPM_BUILD/tests/vpm-seqcheck" ]; then
	rig_args+=(--vpmd "$VPM_BUILD" --extra "$VPM_BUILD/tests/vpm-vmm"
		--extra "$VPM_BUILD/tests/vpm-seqcheck" --script "$HERE/tests/vm-level.sh")
	[ "$vpm_reattach" = 0 ] || rig_args+=(--require-vm-test)
else
	echo "test-rig: no VPM_BUILD with vpmd, vpm-vmm and vpm-seqcheck: no VM-level test"
fi

T0=$(date +%s.%N)
ok=1
if [ ${#vpm_patches[@]} -gt 0 ]; then
	run "VPM uapi = vpm-kvm.h" check_uapi "${vpm_patches[@]}" || ok=0
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
