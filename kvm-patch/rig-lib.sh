# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# rig-lib.sh - shared helpers of build-modules.sh and run-rig.sh (sourced, not run).
#
# Holds the one list of Debian packages the KVM test rig needs on the host, the cache
# location, a step timer that keeps a step's output in a log and shows it only if the
# step fails, and the check/install of the host packages.

# Everything downloaded or built goes here, never into the source tree.
VPM_KVM_CACHE=${VPM_KVM_CACHE:-/var/cache/vpm-kvm}

# Host packages of the rig: the module build (make, gcc, bc, flex, bison, libelf-dev,
# libssl-dev, binutils for strip and objcopy, patch), unpacking (xz-utils for the source tarball), the
# initramfs (busybox-static, cpio, gzip; ndctl and daxctl, copied into it with their
# libraries for run-rig.sh --nvdimm) and the VM (qemu-system-x86).
RIG_PACKAGES="make gcc bc flex bison libelf-dev libssl-dev binutils patch xz-utils \
busybox-static cpio gzip ndctl daxctl qemu-system-x86"

rig_die() {
	echo "${RIG_NAME:-rig}: error: $*" >&2
	exit 1
}

# rig_elapsed START: seconds since START with one decimal.
rig_elapsed() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# rig_note TEXT: a short note that rig_step appends to the step's line.
rig_note() {
	echo "$*" >"$RIG_LOG.note"
}

# rig_step NAME CMD...: run CMD in a subshell with errexit, its output in $RIG_LOG;
# print one timed line.  On failure print the step's output (at most its last 40
# lines) and exit 1.  CMD runs in a subshell (so that errexit holds inside functions):
# it passes results back in files.
rig_step() {
	local name=$1 t0 rc note='' from
	shift
	t0=$(date +%s.%N)
	rm -f "$RIG_LOG.note"
	echo "=== $name" >>"$RIG_LOG"
	from=$(wc -l <"$RIG_LOG")
	set +e
	(set -e; "$@") >>"$RIG_LOG" 2>&1
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		printf '%s: [%6ss] %s: FAILED (exit %d); its output (full log: %s):\n' \
			"${RIG_NAME:-rig}" "$(rig_elapsed "$t0")" "$name" "$rc" "$RIG_LOG" >&2
		tail -n "+$((from + 1))" "$RIG_LOG" | tail -n 40 | sed 's/^/  | /' >&2
		exit 1
	fi
	[ -f "$RIG_LOG.note" ] && note=" ($(cat "$RIG_LOG.note"))"
	rm -f "$RIG_LOG.note"
	printf '%s: [%6ss] %s%s\n' "${RIG_NAME:-rig}" "$(rig_elapsed "$t0")" "$name" "$note"
}

# rig_missing_packages: print the packages of RIG_PACKAGES that are not installed.
rig_missing_packages() {
	local p
	for p in $RIG_PACKAGES; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' ||
			echo "$p"
	done
}

# rig_install_packages: install what is missing (apt-get, quiet).
rig_install_packages() {
	local missing
	missing=$(rig_missing_packages | tr '\n' ' ')
	if [ -z "${missing// /}" ]; then
		rig_note "all present"
		return 0
	fi
	command -v apt-get >/dev/null || { echo "missing packages and no apt-get: $missing"; return 1; }
	echo "installing: $missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $missing; }
	rig_note "installed ${missing% }"
}
