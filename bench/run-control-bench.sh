#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Start a private vpmd on a temporary socket with one small emulated pool, run bench-control
# against it and stop vpmd again. Arguments after the build directory go to bench-control.
#
#   run-control-bench.sh [BUILD_DIR [BENCH_ARGS...]]
set -euo pipefail

BUILD=${1:-$(dirname "$0")/../build}
[ $# -gt 0 ] && shift
VPMD="$BUILD/vpmd/vpmd"
VPMCTL="$BUILD/cli/vpmctl"
BENCH="$BUILD/bench/bench-control"
for f in "$VPMD" "$VPMCTL" "$BENCH"; do
	if [ ! -x "$f" ]; then
		echo "run-control-bench: $f is missing; build the tree first" >&2
		exit 1
	fi
done

TMP=$(mktemp -d /tmp/vpm-bench.XXXXXX)
VPMD_PID=
cleanup() {
	if [ -n "$VPMD_PID" ] && kill -0 "$VPMD_PID" 2>/dev/null; then
		kill -TERM "$VPMD_PID" 2>/dev/null || true
		wait "$VPMD_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

SOCK="$TMP/vpmd.sock"
cat >"$TMP/vpmd.conf" <<CONF
[daemon]
socket = $SOCK
state_dir = $TMP/state
libvirt_uri =
socket_mode = 0600
max_clients = 64
log_level = warning

[pool bench]
path = $TMP/pool
kind = emulated
size = 16M
CONF

"$VPMD" --foreground --config "$TMP/vpmd.conf" &
VPMD_PID=$!

# Wait up to 10 s for vpmd to answer.
for _ in $(seq 100); do
	if "$VPMCTL" -s "$SOCK" status >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$VPMD_PID" 2>/dev/null; then
		echo "run-control-bench: vpmd exited during startup" >&2
		exit 1
	fi
	sleep 0.1
done
if ! "$VPMCTL" -s "$SOCK" status >/dev/null; then
	echo "run-control-bench: vpmd did not answer on $SOCK within 10 s" >&2
	exit 1
fi

status=0
"$BENCH" -s "$SOCK" "$@" || status=$?

kill -TERM "$VPMD_PID"
wait "$VPMD_PID" || echo "run-control-bench: vpmd exited with status $?" >&2
VPMD_PID=
exit "$status"
