#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run-bench.sh - run vpm-bench (bench/vpm-bench.c) inside the rig's VM for each CPU model
# and print its table.
#
# Usage: run-bench.sh [--cpu max|qemu64]...   (default: both, max first)
#
# For each CPU model: run-rig.sh --cpu MODEL --bench (the selftests, then vpm-bench), then
# the "VPM-BENCH:" lines of the console log ($VPM_KVM_CACHE/rig/MODEL/console.log) with
# the prefix dropped, also kept in $VPM_KVM_CACHE/rig/MODEL/bench.txt.  Extra options for
# run-rig.sh (e.g. --modules DIR) go after "--".
#
# Exit codes: 0 every run printed "VPM-BENCH: DONE"; 1 otherwise; 2 usage error.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR/.. source=rig-lib.sh
. "$HERE/rig-lib.sh"

cpus=()
while [ $# -gt 0 ]; do
	case $1 in
	--cpu) [ $# -ge 2 ] || { sed -n '6,13s/^# \{0,1\}//p' "$0" >&2; exit 2; }
		cpus+=("$2"); shift 2 ;;
	--) shift; break ;;
	-h|--help) sed -n '6,13s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	*) echo "run-bench: unknown argument: $1" >&2; exit 2 ;;
	esac
done
[ ${#cpus[@]} -gt 0 ] || cpus=(max qemu64)

rc=0
for cpu in "${cpus[@]}"; do
	echo "run-bench: --- -cpu $cpu"
	if ! "$HERE/run-rig.sh" --cpu "$cpu" --bench "$@"; then
		rc=1
		continue
	fi
	console=$VPM_KVM_CACHE/rig/$cpu/console.log
	out=$VPM_KVM_CACHE/rig/$cpu/bench.txt
	sed -n 's/^VPM-BENCH: //p' "$console" >"$out"
	sed -n 's/^vpm-bench: info /  /p' "$console" >>"$out"
	if ! grep -q '^DONE' "$out"; then
		echo "run-bench: -cpu $cpu: no 'VPM-BENCH: DONE' in $console:" >&2
		grep -E '^(VPM-BENCH|vpm-bench):' "$console" | tail -n 20 | sed 's/^/  | /' >&2
		rc=1
		continue
	fi
	echo "run-bench: -cpu $cpu (absolute times: nested TCG, compare the ratios only)"
	sed 's/^/  /' "$out"
done
exit "$rc"
