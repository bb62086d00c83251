#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vpmd's libvirt connection across a libvirtd restart, against a libvirtd of our own (root;
# packages libvirt-daemon, libvirt-clients). Starts libvirtd on a private socket, runs the
# "reconnect" case of test-virt, which connects through test+unix:// (libvirtd's test driver),
# defines a domain and says it is ready; then stops libvirtd (the test must see the connection
# go down and keep its domains, stale), starts it again after a few seconds (the test must
# reconnect, find the daemon's fresh test driver without the domain it defined, and report
# that one removed). Everything started here is stopped by its pid.
#
# usage: VPM_BUILD=/path/to/build tests/libvirt/reconnect-manual.sh
# exit: 0 passed, 1 failed, 77 skipped (not root, or no libvirtd)
set -euo pipefail

build=${VPM_BUILD:-$(dirname "$0")/../../build-virt}
test_virt=$build/tests/test-virt
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
command -v libvirtd >/dev/null || { echo "skipped: no libvirtd"; exit 77; }
[ -x "$test_virt" ] || { echo "no $test_virt: build test-virt first"; exit 1; }

dir=$(mktemp -d /tmp/vpm-reconnect.XXXXXX)
daemon_pid=
test_pid=
cleanup() {
	[ -n "$test_pid" ] && kill "$test_pid" 2>/dev/null || true
	stop_libvirtd
	rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/libvirtd.conf" <<EOF
unix_sock_dir = "$dir"
unix_sock_group = "root"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$dir/libvirtd.log"
EOF

start_libvirtd() {
	libvirtd -d -f "$dir/libvirtd.conf" -p "$dir/libvirtd.pid"
	for _ in $(seq 100); do
		[ -S "$dir/libvirt-sock" ] && [ -s "$dir/libvirtd.pid" ] && break
		sleep 0.1
	done
	daemon_pid=$(cat "$dir/libvirtd.pid")
	echo "libvirtd started, pid $daemon_pid"
}

stop_libvirtd() {
	[ -n "$daemon_pid" ] || return 0
	kill "$daemon_pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "libvirtd stopped, pid $daemon_pid"
	daemon_pid=
	rm -f "$dir/libvirt-sock" "$dir/libvirt-sock-ro" "$dir/libvirt-admin-sock"
}

start_libvirtd
VPM_TEST_RECONNECT_URI="test+unix:///default?socket=$dir/libvirt-sock" \
	VPM_TEST_READY_FILE="$dir/ready" CK_RUN_CASE=reconnect CK_DEFAULT_TIMEOUT=300 \
	"$test_virt" &
test_pid=$!

for _ in $(seq 300); do
	[ -e "$dir/ready" ] && break
	kill -0 "$test_pid" 2>/dev/null || break
	sleep 0.1
done
[ -e "$dir/ready" ] || { echo "test-virt never got ready"; exit 1; }
down_at=$(date +%s.%N)
stop_libvirtd
sleep 3
start_libvirtd
rc=0
wait "$test_pid" || rc=$?
test_pid=
echo "libvirtd was down for $(echo "$(date +%s.%N) - $down_at" | bc 2>/dev/null || echo '?') s" \
	"until the test finished"
[ "$rc" = 0 ] && echo "PASS" || echo "FAIL ($rc)"
exit "$rc"
