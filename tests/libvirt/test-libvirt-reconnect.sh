#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vpmd's libvirt connection survives a libvirtd restart. Runs the "reconnect" case of
# test-virt against a real libvirtd of the rig (libvirtd-lib.sh), through the daemon's test
# driver (test+unix:///default): the case defines a domain and says it is ready; then
# libvirtd is stopped (the case must see the connection go down and keep its domains, stale)
# and started again a few seconds later (the case must reconnect, find the daemon's fresh
# test driver without the domain it defined, and report that one removed).
#
# The rig's libvirtd uses the system's socket, so this test and test-libvirtd-rig.sh cannot
# overlap: CTest runs them one after the other (RUN_SERIAL), each with its own daemons, and
# lv_start refuses to start when some libvirtd is running already.
#
# usage: VPM_BUILD=/path/to/build tests/libvirt/test-libvirt-reconnect.sh
# exit: 0 passed, 1 failed, 77 skipped (not root, or no way to get libvirtd)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=libvirtd-lib.sh
. "$here/libvirtd-lib.sh"

build=${VPM_BUILD:-$here/../../build}
test_virt=$build/tests/test-virt
down_seconds=3
test_pid=

fail() { lv_log "FAIL: $*"; exit 1; }

cleanup() {
	if [ -n "$test_pid" ]; then
		kill "$test_pid" 2>/dev/null || true
		wait "$test_pid" 2>/dev/null || true
	fi
	lv_stop
}

# until test-virt says it is ready (bounded), or dies
wait_ready() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -e "$LV_DIR/ready" ] && return 0
		kill -0 "$test_pid" 2>/dev/null || break
		sleep 0.1
	done
	fail "test-virt (reconnect case) never got ready"
}

lv_require || exit $?
[ -x "$test_virt" ] || fail "no $test_virt: build test-virt first (VPM_BUILD=$build)"
trap cleanup EXIT

lv_install || fail "could not install ${LV_PACKAGES[*]}"
lv_start || fail "libvirtd did not start"

VPM_TEST_RECONNECT_URI="test+unix:///default" VPM_TEST_READY_FILE="$LV_DIR/ready" \
	CK_RUN_CASE=reconnect CK_DEFAULT_TIMEOUT=300 "$test_virt" &
test_pid=$!
wait_ready

down_at=$EPOCHREALTIME
lv_stop_libvirtd
lv_log "libvirtd stopped; starting it again in $down_seconds s"
sleep "$down_seconds"
lv_start_libvirtd || fail "libvirtd did not start again"

rc=0
wait "$test_pid" || rc=$?
test_pid=
lv_log "test-virt finished $(lv_since "$down_at") s after libvirtd went down"
[ "$rc" = 0 ] || fail "test-virt's reconnect case failed ($rc)"
lv_log "PASS"
