# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the crash tests: a pool on tmpfs (process crashes keep the page cache, so tmpfs
# is as durable as any file here, and fast), vpm-pmstress as the workload, and the real vpmd
# for recovery: start it on the pool, wait until it answers (recovery runs before READY),
# check what it reports, stop it.
set -euo pipefail
: "${VPM_BUILD:?VPM_BUILD must name the build directory}"
PMSTRESS="$VPM_BUILD/tests/vpm-pmstress"
VPMD="$VPM_BUILD/vpmd/vpmd"
VPMCTL="$VPM_BUILD/cli/vpmctl"
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=/tmp
T=$(mktemp -d "$base/vpm-crash.XXXXXX")
# background processes a failed test leaves would hold ctest's output pipe open until its
# timeout: kill them all on the way out
kill_jobs() {
	local j

	for j in $(jobs -p); do kill -9 "$j" 2>/dev/null || true; done
}
trap 'kill_jobs; rm -rf "$T"' EXIT
POOL="$T/pool.pm"
POOL_SIZE=$((8 << 20))
LOG_SIZE=$((1 << 20))

fail() {
	echo "FAIL: $*" >&2
	if [ -s "$T/vpmd.err" ]; then
		echo "--- vpmd's log ---" >&2
		tail -n 30 "$T/vpmd.err" >&2
	fi
	exit 1
}

write_vpmd_config() {
	cat >"$T/vpmd.conf" <<CONF
[daemon]
socket = $T/vpmd.sock
state_dir = $T/state
libvirt_uri =
log_level = warning

[pool crash]
path = $POOL
kind = emulated
CONF
}

# fresh_pool: a new formatted pool and an empty work directory for the device images
fresh_pool() {
	rm -rf "$T/work" "$POOL"
	mkdir -p "$T/work"
	"$PMSTRESS" format "$POOL" "$POOL_SIZE" "$LOG_SIZE" || fail "format failed"
}

# recover_with_vpmd: vpmd recovers the pool before it answers; returns vpmd's status JSON
recover_with_vpmd() {
	local pid rc=0
	"$VPMD" --foreground --config "$T/vpmd.conf" 2>"$T/vpmd.err" &
	pid=$!
	for _ in $(seq 200); do
		if "$VPMCTL" -s "$T/vpmd.sock" -j status >"$T/status.json" 2>/dev/null; then
			break
		fi
		kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; cat "$T/vpmd.err" >&2;
			fail "vpmd refused to start after the crash"; }
		sleep 0.02
	done
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/vpmd.err" >&2; fail "vpmd exited $rc after recovery"; }
}
